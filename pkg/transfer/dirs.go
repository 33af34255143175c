package transfer

import (
	"context"
	"fmt"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
)

// A recursive transfer makes its directories as well as copying its files,
// so that the tree arrives whole, empty directories included. The
// directories are listed with the files when the transfer is created (plan,
// tree.go) and travel in its create entry (KindCreateV3, format 4), so that
// any active knows them; the active makes them through its fenced endpoint
// before it copies any file (prepare), and records each made or failed as a
// DirEvent in a transfer.files entry. A directory that exists already
// counts as made, so a new active that makes them again after a failover
// changes nothing.
//
// The events travel in transfer.files, a kind of format 1, not in a kind of
// format 4: they concern only transfers that a KindCreateV3 entry created,
// which a build that does not read format 4 refused (with the snapshots
// that hold them), applying nothing after it, so no build that would ignore
// them ever applies one. A kind of format 4 could not be written after a
// failover while an instance is down (it has reported no format to the new
// active), and the transfer could never end.

// DirEvent is one directory made (EventDone) or failed (EventFailed, with
// the reason).
type DirEvent struct {
	Index  int    `json:"index"`
	Kind   string `json:"kind"`
	Reason string `json:"reason,omitempty"`
}

// dirEvents checks a files entry's directory events against t, and returns
// the directories' states and reasons once applied, by index; nothing is
// changed yet (an entry applies whole or not at all).
func dirEvents(t *Transfer, evs []DirEvent) (map[int]Dir, error) {
	next := map[int]Dir{}
	for _, ev := range evs {
		if ev.Index < 0 || ev.Index >= len(t.Dirs) {
			return nil, fmt.Errorf("%w: directory %d of %d", ErrBadFileEvent, ev.Index, len(t.Dirs))
		}
		d, ok := next[ev.Index]
		if !ok {
			d = t.Dirs[ev.Index]
		}
		switch {
		case ev.Kind == EventDone && d.State == StateCompleted:
			continue // a replay: harmless
		case Terminal(d.State):
			return nil, fmt.Errorf("%w: directory %d is %s", ErrBadFileEvent, ev.Index, d.State)
		case ev.Kind == EventDone:
			d.State, d.Reason = StateCompleted, ""
		case ev.Kind == EventFailed:
			d.State, d.Reason = StateFailed, ev.Reason
		default:
			return nil, fmt.Errorf("%w: directory event kind %q", ErrBadFileEvent, ev.Kind)
		}
		next[ev.Index] = d
	}
	return next, nil
}

// dirsMade reports whether evs record a directory made: progress, as a
// checkpoint or a completion is.
func dirsMade(evs []DirEvent) bool {
	for _, ev := range evs {
		if ev.Kind == EventDone {
			return true
		}
	}
	return false
}

// prepare readies transfer id for its copies, before any byte is written:
// it fails each file and directory whose name the endpoint cannot hold
// (Endpoint.CheckName), then makes the directories not yet made, parents
// first, each recorded as made or failed. A directory that cannot be made
// for good (a file or a link in its place, permission) fails alone, as a
// file does; any other error is returned, and is transient.
func (m *Manager) prepare(ctx context.Context, lease ha.Lease, id string) error {
	t, ok := m.state.Get(id)
	if !ok || Terminal(t.State) {
		return nil
	}
	var refused []FileEvent
	for i := range t.fileCount() {
		f := t.fileAt(i)
		if f.Started || Terminal(f.State) {
			continue // checked before it started
		}
		if err := m.nameError(f.Source, f.Destination); err != nil {
			refused = append(refused, FileEvent{Index: i, Kind: EventFailed, Reason: Text(err.Error())})
		}
	}
	if len(refused) > 0 {
		if err := m.recordFiles(lease.Epoch, filesCmd{ID: id, Time: time.Now().UTC(), Events: refused}); err != nil {
			return err
		}
	}
	if len(t.Dirs) == 0 {
		return nil
	}
	// Parents come before their children in t.Dirs (tree.go); a
	// directory's parent that failed fails it too, by the endpoint's
	// own error.
	var evs []DirEvent
	for i, d := range t.Dirs {
		if Terminal(d.State) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err := m.nameError(d.Source, d.Destination)
		if err == nil {
			err = m.ep.MakeDir(ctx, d.Destination)
		}
		switch {
		case err == nil:
			evs = append(evs, DirEvent{Index: i, Kind: EventDone})
		case endpoint.Permanent(err):
			evs = append(evs, DirEvent{Index: i, Kind: EventFailed, Reason: Text(err.Error())})
		default:
			if len(evs) > 0 {
				// What was made is recorded; the rest is retried.
				if rerr := m.recordDirs(lease.Epoch, id, evs); rerr != nil {
					return rerr
				}
			}
			return fmt.Errorf("make directory %s: %w", reasonName(d.Destination), err)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	return m.recordDirs(lease.Epoch, id, evs)
}

// recordDirs commits directory events, in entries of at most 1,024.
func (m *Manager) recordDirs(epoch uint64, id string, evs []DirEvent) error {
	for len(evs) > 0 {
		n := min(len(evs), 1024)
		// The plain kind: see above for why, and the compact one does
		// not carry directories.
		if _, err := m.raft.Apply(KindFiles, epoch, filesCmd{ID: id, Time: time.Now().UTC(), Dirs: evs[:n]}, applyTimeout); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

// nameError says why the endpoint cannot hold a source or destination
// name, if it cannot.
func (m *Manager) nameError(src, dst string) error {
	if err := m.ep.CheckName(src); err != nil {
		return fmt.Errorf("source name: %w", err)
	}
	if err := m.ep.CheckName(dst); err != nil {
		return fmt.Errorf("destination name: %w", err)
	}
	return nil
}
