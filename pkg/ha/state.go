package ha

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/rs/zerolog"
)

// state is the whole replicated state: the lease, plus the plugged-in state
// machine. It is the only thing the raft log changes.
type state struct {
	mu    sync.RWMutex
	lease Lease
	app   replog.StateMachine
	log   zerolog.Logger // the node's; the zero value logs nothing

	// reads is the highest format this build reads; 0 means FormatVersion.
	// Tests set it to play an older or a newer build.
	reads int
	// format is the highest format among the commands applied and the
	// snapshot restored: what a snapshot of this state needs to be read.
	format int
	// refused is set by the first entry this build cannot apply. From then on
	// nothing is applied, restored or snapshotted: the state stays as it was
	// before that entry, and the instance fails.
	refused *RefusalError
	failed  chan struct{} // closed once refused is set; made on first use
}

func (s *state) currentLease() Lease {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lease
}

// applied is the highest format among the commands applied (and the
// snapshot restored).
func (s *state) applied() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.format
}

// knows is the highest format this build reads.
func (s *state) knows() int {
	if s.reads > 0 {
		return s.reads
	}
	return FormatVersion
}

// refusal returns the refusal that stopped this state, if any.
func (s *state) refusal() *RefusalError {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.refused
}

// failedCh is closed once the state refused an entry.
func (s *state) failedCh() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = make(chan struct{})
		if s.refused != nil {
			close(s.failed)
		}
	}
	return s.failed
}

// refuseLocked stops the state at a log entry (or a snapshot) this build
// cannot apply: it logs one error line, records the refusal and signals it.
func (s *state) refuseLocked(r *RefusalError) *RefusalError {
	s.refused = r
	if s.failed == nil {
		s.failed = make(chan struct{})
	}
	close(s.failed)
	ev := s.log.Error().Err(r.Err).Str("kind", r.Kind).Int("format", r.Format).Int("knows", r.Knows).Str("status", StatusFailed)
	if r.Snapshot {
		ev = ev.Bool("snapshot", true)
	} else {
		ev = ev.Uint64("index", r.Index)
	}
	ev.Msgf("replicated state refused (nothing further is applied; the instance fails): this build knows formats ≤ %d; upgrade this instance", r.Knows)
	return r
}

// apply applies one log entry at index. It returns the result for the
// proposer: nil, a value, or an error. Errors such as a stale epoch are
// ordinary results that every instance reaches alike; a *RefusalError means
// this build cannot apply the entry at all, and nothing after it either.
func (s *state) apply(index uint64, b []byte) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused != nil {
		return s.refused
	}
	c, err := decodeCommand(b)
	if err != nil {
		return s.refuseLocked(&RefusalError{Index: index, Kind: c.Kind, Format: c.Format, Knows: s.knows(), Err: err})
	}
	if c.Format > s.knows() {
		return s.refuseLocked(&RefusalError{Index: index, Kind: c.Kind, Format: c.Format, Knows: s.knows(), Err: ErrNewerFormat})
	}
	if _, ok := replog.KindFormat(c.Kind); !ok {
		return s.refuseLocked(&RefusalError{Index: index, Kind: c.Kind, Format: c.Format, Knows: s.knows(), Err: replog.ErrUnknownKind})
	}
	if c.Format > s.format {
		s.format = c.Format
	}
	switch c.Kind {
	case KindLease:
		var l Lease
		if err := json.Unmarshal(c.Data, &l); err != nil {
			return fmt.Errorf("decode lease: %w", err)
		}
		// Epochs only grow: a lease entry that does not raise the epoch is a
		// proposer that raced another and lost.
		if l.Epoch <= s.lease.Epoch {
			return fmt.Errorf("%w: lease epoch %d is not above current %d", replog.ErrStaleEpoch, l.Epoch, s.lease.Epoch)
		}
		s.lease = l
		return nil
	default:
		if c.Epoch < s.lease.Epoch {
			return fmt.Errorf("%w: %s written under epoch %d, lease is at %d", replog.ErrStaleEpoch, c.Kind, c.Epoch, s.lease.Epoch)
		}
		if s.app == nil {
			return fmt.Errorf("%w: %q (no state machine)", replog.ErrUnknownKind, c.Kind)
		}
		return s.app.Apply(c.Kind, c.Epoch, c.Data, index)
	}
}

// snapshotData is the snapshot format. Format is the highest format among the
// commands that built the state: a snapshot of a state that no newer command
// touched stays readable by the older builds of a rolling upgrade.
type snapshotData struct {
	Format int             `json:"v"`
	Lease  Lease           `json:"lease"`
	App    json.RawMessage `json:"app,omitempty"`
}

// errNoSnapshotAfterRefusal keeps raft from recording, as applied, entries
// this state refused.
var errNoSnapshotAfterRefusal = errors.New("no snapshot: this instance refused its replicated log")

func (s *state) snapshot() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.refused != nil {
		return nil, fmt.Errorf("%w: %v", errNoSnapshotAfterRefusal, s.refused)
	}
	d := snapshotData{Format: max(s.format, 1), Lease: s.lease}
	if s.app != nil {
		b, err := s.app.Snapshot()
		if err != nil {
			return nil, fmt.Errorf("snapshot state machine: %w", err)
		}
		d.App = b
	}
	return json.Marshal(d)
}

func (s *state) restore(b []byte) error {
	var d snapshotData
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused != nil {
		return s.refused
	}
	if d.Format > s.knows() {
		return s.refuseLocked(&RefusalError{Snapshot: true, Format: d.Format, Knows: s.knows(), Err: ErrNewerFormat})
	}
	// The application's state first: a restore that fails leaves the
	// lease and the format as they were, not half a state.
	// A snapshot without the application's state (taken with no state
	// machine) restores it empty: a restore replaces the whole state, it
	// never keeps what was there before.
	if s.app != nil {
		app := d.App
		if len(app) == 0 {
			app = json.RawMessage("null")
		}
		if err := s.app.Restore(app); err != nil {
			return fmt.Errorf("restore state machine: %w", err)
		}
	}
	s.lease = d.Lease
	s.format = max(d.Format, 1)
	return nil
}
