package replicated

// Cheap reads of the replicated state, for the active's scheduler and for
// clients that follow a transfer: they copy what they need under the read
// lock rather than whole transfers with every file.

import (
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"
)

// notify wakes whoever waits on Changed; s.mu is held for writing.
func (s *State) notify() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// Changed returns a channel closed when the next command is applied (to
// any transfer). Take it before reading the state, so that nothing applied
// after the read is missed.
func (s *State) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// Pending returns, without their files and directories, the transfers the
// active has work for: those that have not ended, and ended ones with
// sources still to delete.
func (s *State) Pending() []*Transfer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Transfer
	for _, t := range s.transfers {
		if !Terminal(t.State) || t.SourcesToDelete() {
			c := *t
			c.Files, c.files, c.Dirs = nil, nil, nil
			out = append(out, &c)
		}
	}
	return out
}

// ViewPage makes the client view of one transfer under the read lock,
// without copying the transfer first, with the files and directories of w
// (none when w is nil, or when whenEnded and the transfer has not ended:
// decided under the same lock as the view, so a view that has ended has
// its files). Without files it still names the current file. live, if
// set, adjusts the checkpointed offset of file i (the active's progress
// beyond it).
func (s *State) ViewPage(id, root string, w *Window, whenEnded bool, live func(t *Transfer) (int, int64)) (View, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.transfers[id]
	if !ok {
		return View{}, false
	}
	return viewOf(t, root, listed(t, w, whenEnded), live), true
}

// ListFilter chooses the transfers ListViews lists.
type ListFilter struct {
	States map[string]bool // nil: every state
	Since  time.Time       // created at or after; zero: any
	// DestinationAgent: only the transfers to this agent; "" any, and
	// LocalOnly only those to this agent's own storage.
	DestinationAgent string
	LocalOnly        bool
	// After is a page's Next: the transfers after it (in creation
	// order). Count bounds the page (0: no bound).
	After string
	Count int
}

// ErrBadCursor is a ListFilter.After that is not a page's Next.
var ErrBadCursor = errors.New("not the next-page value of a transfer list")

// ListViews is ViewPage of each transfer f chooses, in creation order
// (List's), without copying them first: at most f.Count of them, and
// next, the After of the following page when more match. live, if set,
// gives a transfer's live progress by its id.
func (s *State) ListViews(root string, w *Window, whenEnded bool, live func(id string) func(*Transfer) (int, int64), f ListFilter) (views []View, next string, err error) {
	var afterSeq uint64
	var afterID string
	if f.After != "" {
		seq, id, ok := strings.Cut(f.After, ".")
		n, perr := strconv.ParseUint(seq, 10, 64)
		if !ok || perr != nil || id == "" {
			return nil, "", ErrBadCursor
		}
		afterSeq, afterID = n, id
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ts := make([]*Transfer, 0, len(s.transfers))
	for _, t := range s.transfers {
		if f.States != nil && !f.States[t.State] {
			continue
		}
		if !f.Since.IsZero() && t.Created.Before(f.Since) {
			continue
		}
		if f.DestinationAgent != "" && t.Request.DestinationAgent != f.DestinationAgent ||
			f.LocalOnly && t.Request.DestinationAgent != "" {
			continue
		}
		if f.After != "" && !(t.Seq > afterSeq || t.Seq == afterSeq && t.ID > afterID) {
			continue
		}
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return seqBefore(ts[i], ts[j]) })
	if f.Count > 0 && len(ts) > f.Count {
		ts = ts[:f.Count]
		last := ts[len(ts)-1]
		next = strconv.FormatUint(last.Seq, 10) + "." + last.ID
	}
	views = make([]View, len(ts))
	for i, t := range ts {
		var l func(*Transfer) (int, int64)
		if live != nil {
			l = live(t.ID)
		}
		views[i] = viewOf(t, root, listed(t, w, whenEnded), l)
	}
	return views, next, nil
}

// listed is the window a view of t lists: w, or nil when whenEnded and t
// has not ended.
func listed(t *Transfer, w *Window, whenEnded bool) *Window {
	if whenEnded && !Terminal(t.State) {
		return nil
	}
	return w
}

// Ended reports whether transfer id has ended (or is gone).
func (s *State) Ended(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.transfers[id]
	return !ok || Terminal(t.State)
}

// File returns file i of transfer id as the state has it now.
func (s *State) File(id string, i int) (File, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.transfers[id]
	if !ok || i < 0 || i >= t.FileCount() {
		return File{}, false
	}
	return t.FileAt(i), true
}

// PruneCandidates lists, oldest first and at most max, the ended transfers
// that the history rules let go at now: beyond the newest count ended ones
// (count < 0: no limit) or ended more than age ago (age 0: no limit), but
// never one ended less than keep ago (its id answers a client's retry) nor
// one with a source still to delete.
func (s *State) PruneCandidates(now time.Time, count int, age, keep time.Duration, max int) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ended []*Transfer
	for _, t := range s.transfers {
		if t.Ended != nil {
			ended = append(ended, t)
		}
	}
	sort.Slice(ended, func(i, j int) bool { return seqBefore(ended[i], ended[j]) })
	var ids []string
	for k, t := range ended {
		over := count >= 0 && len(ended)-k > count
		old := age > 0 && now.Sub(*t.Ended) > age
		if !over && !old {
			continue
		}
		if now.Sub(*t.Ended) < keep || t.SourcesToDelete() || len(t.Unreconciled()) > 0 || t.EndUntold() {
			continue
		}
		ids = append(ids, t.ID)
		if len(ids) == max {
			break
		}
	}
	return ids
}

// SourcesToDelete reports whether an ended transfer still has sources to
// delete: an active that recorded the last completion may have died before
// deleting the source.
func (t *Transfer) SourcesToDelete() bool {
	if t.Request.Disposition != DispositionDelete {
		return false
	}
	if t.files != nil {
		return t.files.sourcesToDelete()
	}
	for _, f := range t.Files {
		if f.State == StateCompleted && !f.SourceDeleted {
			return true
		}
	}
	return false
}

// Counts is how many transfers the state holds in each state (ended ones
// included until they are pruned), and how many are still being created.
func (s *State) Counts() (byState map[string]int, creating int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	byState = map[string]int{}
	for _, t := range s.transfers {
		if t.Open {
			creating++
			continue
		}
		byState[t.State]++
	}
	return byState, creating
}

// Bytes sums the sizes of files indexes of transfer id, under one read of
// the lock and without building each File (the active's metrics read it
// for every entry of completions); indexes out of range count nothing.
func (s *State) Bytes(id string, indexes []int) (files int, bytes int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.transfers[id]
	if !ok {
		return 0, 0
	}
	for _, i := range indexes {
		if i < 0 || i >= t.FileCount() {
			continue
		}
		_, b, _ := t.progressAt(i)
		files++
		bytes += b
	}
	return files, bytes
}
