package ha

import (
	"bufio"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// fsm is the thin bridge between raft and the replicated state: each method
// delegates, so that the rules live in state.go where tests reach them.
type fsm struct{ s *state }

var _ raft.FSM = fsm{}

// snapshotBuffer is the buffer between a snapshot's JSON and raft's snapshot
// store, each way: the JSON is written and read in small pieces (a file, a
// token), the store's file and its network stream want large ones.
const snapshotBuffer = 256 << 10

func (f fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	return f.s.apply(l.Index, l.Data)
}

func (f fsm) Snapshot() (raft.FSMSnapshot, error) {
	snap, err := f.s.snapshot()
	if err != nil {
		return nil, err
	}
	return fsmSnapshot{snap}, nil
}

func (f fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.s.restore(bufio.NewReaderSize(rc, snapshotBuffer))
}

// fsmSnapshot is raft's handle on a captured state. Raft persists it on a
// goroutine of its own, while entries go on being applied.
type fsmSnapshot struct{ snap *stateSnapshot }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, snapshotBuffer)
	err := s.snap.write(w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot %s: %w", sink.ID(), err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() { s.snap.release() }
