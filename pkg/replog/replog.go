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

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

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
//
// A snapshot is streamed both ways, never held whole as one []byte: with a
// transfer of a million files the state's JSON is hundreds of megabytes, and
// a []byte of it would be held several times over (the state's, pkg/ha's
// envelope, raft's copy on a restore).
type StateMachine interface {
	// Apply applies one command of a kind the state machine owns and returns
	// the result handed back to the proposer (an error value for a refusal).
	Apply(kind string, epoch uint64, data []byte, index uint64) any
	// Snapshot captures the state for a snapshot. It runs under pkg/ha's
	// lock, which Apply waits for, so it only captures: it copies what a
	// later Apply may change and shares what none does, and leaves the
	// encoding to the Snapshot it returns, which raft writes out while
	// Apply goes on.
	Snapshot() (Snapshot, error)
	// Restore decodes exactly one JSON value from dec, the state machine's
	// part of a snapshot, into a new state, and returns commit, which
	// replaces the state with it. Until commit is called the state is as it
	// was: pkg/ha commits only once the whole snapshot has decoded, so that
	// a snapshot that fails changes nothing at all. The JSON null stands for
	// the empty state: that of a snapshot without the state machine's.
	Restore(dec *json.Decoder) (commit func(), err error)
}

// Snapshot is a state machine's state as Snapshot captured it.
type Snapshot interface {
	// WriteJSON writes the state as one JSON value to w. It runs
	// concurrently with Apply, so it reads only what Snapshot captured,
	// never the live state. pkg/ha buffers w and cancels the snapshot if
	// WriteJSON fails.
	WriteJSON(w io.Writer) error
	// Release lets go of what Snapshot captured, once the snapshot is
	// written or abandoned.
	Release()
}

// OpenValue reads the first token of dec's next JSON value, which must be
// null (null true) or the opening delimiter open ('{' or '['): the start of
// an object or array that the caller then reads a member at a time.
func OpenValue(dec *json.Decoder, open json.Delim) (null bool, err error) {
	t, err := dec.Token()
	switch {
	case err != nil:
		return false, err
	case t == nil:
		return true, nil
	case t == open:
		return false, nil
	case open == '{':
		return false, fmt.Errorf("%v where an object was expected", t)
	default:
		return false, fmt.Errorf("%v where an array was expected", t)
	}
}

// SkipValue reads past the next JSON value of dec, checking its syntax but
// keeping nothing of it: a snapshot's key that its reader does not know
// (written by a newer build) costs no memory however large its value.
func SkipValue(dec *json.Decoder) error {
	depth := 0
	for {
		t, err := dec.Token()
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
