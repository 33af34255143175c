package ha

import (
	"io"

	"github.com/hashicorp/raft"
)

// fsm is the thin bridge between raft and the replicated state: each method
// delegates, so that the rules live in state.go where tests reach them.
type fsm struct{ s *state }

var _ raft.FSM = fsm{}

func (f fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	return f.s.apply(l.Index, l.Data)
}

func (f fsm) Snapshot() (raft.FSMSnapshot, error) {
	b, err := f.s.snapshot()
	if err != nil {
		return nil, err
	}
	return fsmSnapshot(b), nil
}

func (f fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	return f.s.restore(b)
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}
