// Package checkpoint owns the checkpoint record of a file being transferred —
// offset, saved SHA-256 state, lease epoch, source identity — and the rules that
// decide whether a new checkpoint may replace the last one.
//
// It knows nothing of raft; of the rest of ftagent it imports only the leaf
// pkg/replog, whose ErrStaleEpoch it returns for a checkpoint of an older lease
// epoch (the one error for anything written under an older lease). The replicated
// state calls Check before it records a checkpoint; the copy loop uses NewHash,
// SaveHash and Resume to carry the SHA-256 of a file across a failover without
// reading again any byte before the checkpoint (DESIGN.md, invariants 1 and 3).
package checkpoint

import (
	"errors"
	"fmt"

	"github.com/ftagent/ftagent/pkg/replog"
)

// Checkpoint says: the first Offset bytes of the destination's .part file are on
// stable storage and hash to Hash's state.
type Checkpoint struct {
	Offset int64  `json:"offset"`
	Hash   []byte `json:"hash"`  // crypto/sha256 digest state, from MarshalBinary
	Epoch  uint64 `json:"epoch"` // lease epoch of the instance that wrote it
	Source Source `json:"source"`
}

var (
	ErrBackwards     = errors.New("checkpoint moves the offset backwards")
	ErrSourceChanged = errors.New("source changed")
	ErrBeyondSize    = errors.New("checkpoint offset beyond the source size")
)

// Check decides whether next may replace prev; the zero Checkpoint as prev means
// there is none yet. It returns nil if next may be recorded, else an error that
// wraps one of the sentinels (errors.Is) and states the numbers:
//
//   - next.Offset < 0: an error (no sentinel; the record is malformed);
//   - next.Epoch < prev.Epoch: replog.ErrStaleEpoch;
//   - next.Offset < prev.Offset: ErrBackwards (an equal offset is allowed, e.g. a
//     resume re-recording its start under a new epoch);
//   - prev has an offset > 0 or a non-zero Source, and next.Source differs:
//     ErrSourceChanged;
//   - next.Offset > next.Source.Size: ErrBeyondSize.
//
// The rules are checked in that order, so a stale writer is told it is stale
// whatever else is wrong with its checkpoint.
func Check(prev, next Checkpoint) error {
	if next.Offset < 0 {
		return fmt.Errorf("checkpoint offset %d is negative", next.Offset)
	}
	if next.Epoch < prev.Epoch {
		return fmt.Errorf("%w: checkpoint epoch %d, last checkpoint has epoch %d", replog.ErrStaleEpoch, next.Epoch, prev.Epoch)
	}
	if next.Offset < prev.Offset {
		return fmt.Errorf("%w: offset %d, last checkpoint is at %d", ErrBackwards, next.Offset, prev.Offset)
	}
	if (prev.Offset > 0 || prev.Source != (Source{})) && !prev.Source.Recorded(next.Source) {
		return fmt.Errorf("%w: was %s, now %s", ErrSourceChanged, prev.Source, next.Source)
	}
	if next.Offset > next.Source.Size {
		return fmt.Errorf("%w: offset %d, source size %d", ErrBeyondSize, next.Offset, next.Source.Size)
	}
	return nil
}
