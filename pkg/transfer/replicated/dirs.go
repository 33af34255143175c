package replicated

import "fmt"

// A recursive transfer makes its directories as well as copying its files,
// so that the tree arrives whole, empty directories included. The
// directories are listed with the files when the transfer is created
// (pkg/transfer's plan, tree.go) and travel in its create entry
// (KindCreateV3, format 4), so that any active knows them; the active makes
// them through its fenced endpoint before it copies any file (pkg/transfer's
// prepare), and records each made or failed as a DirEvent in a
// transfer.files entry. A directory that exists already counts as made, so
// a new active that makes them again after a failover changes nothing.
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
