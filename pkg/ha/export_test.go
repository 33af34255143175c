package ha

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// Build is the replicated state of a build that reads the command formats up
// to reads, over sm: for the tests of packages that own kinds (package
// ha_test), to play an older or a newer build against their entries.
type Build struct{ s *state }

// NewBuild returns the state of a build that reads formats ≤ reads (0: this
// build's FormatVersion), logging to log.
func NewBuild(reads int, sm replog.StateMachine, log zerolog.Logger) *Build {
	return &Build{s: &state{app: sm, reads: reads, log: log}}
}

// Apply applies a log entry at index, as raft hands it to the FSM.
func (b *Build) Apply(index uint64, entry []byte) any {
	return fsm{b.s}.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: entry})
}

// Snapshot and Restore go through the FSM, as raft drives them: a snapshot
// is persisted into a sink in memory, and restored from a reader.
func (b *Build) Snapshot() ([]byte, error) { return b.s.snapshotBytes() }
func (b *Build) Restore(snap []byte) error { return b.s.restoreBytes(snap) }
func (b *Build) Failed() <-chan struct{}   { return b.s.failedCh() }

// SnapshotTo persists a snapshot into a sink that writes to w, and
// RestoreFrom restores the snapshot r holds, as raft does (benchmarks).
func (b *Build) SnapshotTo(w io.Writer) error {
	snap, err := fsm{b.s}.Snapshot()
	if err != nil {
		return err
	}
	defer snap.Release()
	return snap.Persist(&sink{Writer: w})
}

func (b *Build) RestoreFrom(r io.Reader) error { return fsm{b.s}.Restore(io.NopCloser(r)) }

// snapshotBytes is a snapshot of s, persisted as raft persists it.
func (s *state) snapshotBytes() ([]byte, error) {
	snap, err := fsm{s}.Snapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Release()
	var b bytes.Buffer
	sink := &sink{Writer: &b}
	if err := snap.Persist(sink); err != nil {
		return nil, err
	}
	if !sink.closed {
		return nil, errors.New("snapshot persisted, its sink not closed")
	}
	return b.Bytes(), nil
}

// restoreBytes restores the snapshot b, as raft restores one.
func (s *state) restoreBytes(b []byte) error {
	return fsm{s}.Restore(io.NopCloser(bytes.NewReader(b)))
}

// sink is a raft snapshot sink that writes to its Writer.
type sink struct {
	io.Writer
	closed, cancelled bool
}

func (s *sink) ID() string    { return "test" }
func (s *sink) Close() error  { s.closed = true; return nil }
func (s *sink) Cancel() error { s.cancelled = true; return nil }

// jsonSnapshot is the snapshot of a test's state machine: v, encoded as it
// is written.
type jsonSnapshot struct{ v any }

func (s jsonSnapshot) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(s.v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (jsonSnapshot) Release() {}

// EncodeCommand builds a log entry as Node.Apply does.
var EncodeCommand = encodeCommand
