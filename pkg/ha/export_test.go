package ha

import (
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

func (b *Build) Snapshot() ([]byte, error) { return b.s.snapshot() }
func (b *Build) Restore(snap []byte) error { return b.s.restore(snap) }
func (b *Build) Failed() <-chan struct{}   { return b.s.failedCh() }

// EncodeCommand builds a log entry as Node.Apply does.
var EncodeCommand = encodeCommand
