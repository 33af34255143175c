package ha

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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
//
// App is the state machine's JSON, and is never set: a snapshot is
// streamed, the state machine's JSON written in App's place (write) and
// decoded where it stands (restore). The bytes are those json.Marshal
// writes of a snapshotData holding it, as earlier builds wrote and read
// them.
type snapshotData struct {
	Format int             `json:"v"`
	Lease  Lease           `json:"lease"`
	App    json.RawMessage `json:"app,omitempty"`
}

// errNoSnapshotAfterRefusal keeps raft from recording, as applied, entries
// this state refused.
var errNoSnapshotAfterRefusal = errors.New("no snapshot: this instance refused its replicated log")

// stateSnapshot is the state as snapshot captured it, for raft to write out
// while entries go on being applied.
type stateSnapshot struct {
	format int
	lease  Lease
	app    replog.Snapshot // nil without a state machine
}

// snapshot captures the state. It holds the lock only while the state
// machine captures its own (replog.StateMachine.Snapshot); the encoding is
// write's, outside it.
func (s *state) snapshot() (*stateSnapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.refused != nil {
		return nil, fmt.Errorf("%w: %v", errNoSnapshotAfterRefusal, s.refused)
	}
	snap := &stateSnapshot{format: max(s.format, 1), lease: s.lease}
	if s.app != nil {
		app, err := s.app.Snapshot()
		if err != nil {
			return nil, fmt.Errorf("snapshot state machine: %w", err)
		}
		snap.app = app
	}
	return snap, nil
}

// write writes the snapshot to w as json.Marshal writes its snapshotData:
// the format and the lease, then the state machine's JSON streamed in as
// the value of "app", left out without a state machine.
func (snap *stateSnapshot) write(w io.Writer) error {
	head, err := json.Marshal(snapshotData{Format: snap.format, Lease: snap.lease})
	if err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	if snap.app == nil {
		_, err := w.Write(head)
		return err
	}
	// head ends with the envelope's closing brace: "app" goes before it.
	if _, err := w.Write(append(head[:len(head)-1], `,"app":`...)); err != nil {
		return err
	}
	if err := snap.app.WriteJSON(w); err != nil {
		return fmt.Errorf("write state machine snapshot: %w", err)
	}
	_, err = io.WriteString(w, "}")
	return err
}

// release lets go of what the state machine captured.
func (snap *stateSnapshot) release() {
	if snap.app != nil {
		snap.app.Release()
	}
}

// restore replaces the state with the snapshot r holds. It reads the
// envelope key by key, in any order (unknown keys are skipped, and keys
// match as encoding/json matches them, case aside, as earlier builds read
// them), and the state machine decodes its part into a new state as it
// streams by: what is held is the state being built, never the snapshot's
// bytes. The lease, the format and the state machine's state are replaced
// together, once all of it has decoded: a restore that fails leaves them
// as they were, not half a state.
func (s *state) restore(r io.Reader) error {
	if ref := s.refusal(); ref != nil {
		return ref
	}
	dec := json.NewDecoder(r)
	var d snapshotData
	// A snapshot of a newer format is refused as soon as its format is
	// read ("v" comes first in the snapshots of every build), before the
	// state machine decodes a part it may not read; in a snapshot written
	// with "v" later, at the end, before anything is replaced.
	newer := func() error {
		if d.Format <= s.knows() {
			return nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.refused != nil {
			return s.refused
		}
		return s.refuseLocked(&RefusalError{Snapshot: true, Format: d.Format, Knows: s.knows(), Err: ErrNewerFormat})
	}
	var commitApp func()
	// null is the zero snapshot, as json.Unmarshal reads it.
	null, err := replog.OpenValue(dec, '{')
	if err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	if !null {
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return fmt.Errorf("decode snapshot: %w", err)
			}
			key, _ := t.(string)
			switch {
			case strings.EqualFold(key, "v"):
				if err := dec.Decode(&d.Format); err != nil {
					return fmt.Errorf("decode snapshot format: %w", err)
				}
				if err := newer(); err != nil {
					return err
				}
			case strings.EqualFold(key, "lease"):
				if err := dec.Decode(&d.Lease); err != nil {
					return fmt.Errorf("decode snapshot lease: %w", err)
				}
			case strings.EqualFold(key, "app") && s.app != nil:
				commitApp, err = s.app.Restore(dec)
				if err != nil {
					return fmt.Errorf("restore state machine: %w", err)
				}
			default:
				if err := replog.SkipValue(dec); err != nil {
					return fmt.Errorf("decode snapshot: %w", err)
				}
			}
		}
		if _, err := dec.Token(); err != nil {
			return fmt.Errorf("decode snapshot: %w", err)
		}
	}
	if t, err := dec.Token(); err != io.EOF {
		if err != nil {
			return fmt.Errorf("decode snapshot: %w", err)
		}
		return fmt.Errorf("decode snapshot: %v after the snapshot", t)
	}
	if err := newer(); err != nil {
		return err
	}
	// A snapshot without the application's state (taken with no state
	// machine) restores it empty: a restore replaces the whole state, it
	// never keeps what was there before.
	if s.app != nil && commitApp == nil {
		commitApp, err = s.app.Restore(json.NewDecoder(strings.NewReader("null")))
		if err != nil {
			return fmt.Errorf("restore state machine: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused != nil {
		return s.refused
	}
	if commitApp != nil {
		commitApp()
	}
	s.lease = d.Lease
	s.format = max(d.Format, 1)
	return nil
}
