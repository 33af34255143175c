// Package replog is the replicated log's contract: the command kinds and the
// format that introduced each, the state machine that an agent's replicated
// state implements, and the errors of applying an entry.
//
// It is a leaf: it imports nothing of ftagent and not raft. pkg/ha, which owns
// the raft node, the lease and the log's envelope, reads the registry and
// drives the StateMachine; pkg/transfer/replicated registers its kinds and
// implements the StateMachine without reaching raft; pkg/checkpoint refuses a
// checkpoint of an older epoch with the same ErrStaleEpoch.
package replog

import "errors"

var (
	// ErrStaleEpoch is the result of anything written under an older lease
	// epoch than the one it meets: a command under an older lease, a lease
	// entry that does not raise the epoch, a checkpoint of an epoch below the
	// last one's (pkg/checkpoint). The error wrapping it says which.
	ErrStaleEpoch = errors.New("stale lease epoch")
	// ErrUnknownKind is the result of a command kind no one registered, or
	// one a state machine does not own.
	ErrUnknownKind = errors.New("unknown command kind")
)

// StateMachine is the replicated state an agent plugs into pkg/ha (the
// transfers, in pkg/transfer/replicated). Apply must be deterministic and
// change nothing outside the state machine; pkg/ha has already checked the
// epoch. Every kind it applies must be registered with RegisterKind.
type StateMachine interface {
	// Apply applies one command of a kind the state machine owns and returns
	// the result handed back to the proposer (an error value for a refusal).
	Apply(kind string, epoch uint64, data []byte, index uint64) any
	// Snapshot returns the state machine's state; it runs under pkg/ha's lock,
	// so it must be quick (serialise, do not do I/O).
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot's. The JSON null stands
	// for the empty state: that of a snapshot without the state machine's.
	Restore(data []byte) error
}
