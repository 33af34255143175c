package ha

import (
	"encoding/json"
	"fmt"
	"sync"
)

// StateMachine is the replicated state a user of pkg/ha plugs in (the
// transfers, in pkg/transfer). Apply must be deterministic and change nothing
// outside the state machine; pkg/ha has already checked the epoch.
type StateMachine interface {
	// Apply applies one command of a kind the state machine owns and returns
	// the result handed back to the proposer (an error value for a refusal).
	Apply(kind string, epoch uint64, data []byte, index uint64) any
	// Snapshot returns the state machine's state; it runs under pkg/ha's lock,
	// so it must be quick (serialise, do not do I/O).
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot's.
	Restore(data []byte) error
}

// state is the whole replicated state: the lease, plus the plugged-in state
// machine. It is the only thing the raft log changes.
type state struct {
	mu    sync.RWMutex
	lease Lease
	app   StateMachine
}

func (s *state) currentLease() Lease {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lease
}

// apply applies one decoded log entry at index.
func (s *state) apply(index uint64, b []byte) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := decodeCommand(b)
	if err != nil {
		return err
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
			return fmt.Errorf("%w: lease epoch %d is not above current %d", ErrStaleEpoch, l.Epoch, s.lease.Epoch)
		}
		s.lease = l
		return nil
	default:
		if c.Epoch < s.lease.Epoch {
			return fmt.Errorf("%w: %s written under epoch %d, lease is at %d", ErrStaleEpoch, c.Kind, c.Epoch, s.lease.Epoch)
		}
		if s.app == nil {
			return fmt.Errorf("%w: %q", ErrUnknownKind, c.Kind)
		}
		return s.app.Apply(c.Kind, c.Epoch, c.Data, index)
	}
}

// snapshotData is the snapshot format.
type snapshotData struct {
	Format int             `json:"v"`
	Lease  Lease           `json:"lease"`
	App    json.RawMessage `json:"app,omitempty"`
}

func (s *state) snapshot() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := snapshotData{Format: FormatVersion, Lease: s.lease}
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
	if d.Format > FormatVersion {
		return fmt.Errorf("%w: snapshot format %d, this build knows up to %d", ErrNewerFormat, d.Format, FormatVersion)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lease = d.Lease
	if s.app != nil && len(d.App) > 0 {
		if err := s.app.Restore(d.App); err != nil {
			return fmt.Errorf("restore state machine: %w", err)
		}
	}
	return nil
}
