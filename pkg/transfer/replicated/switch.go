package replicated

// A sender's move of a transfer to an alternate group of its destination
// agent (agent.NAME.alternates), when the group it sent to is lost. The
// groups share no state: what was durable at the old group is not at the
// new one, so every file that has not ended starts again from byte 0
// there (its bytes counted as resent). A file that had started may have
// been committed at the old group before it was lost, unbeknown to the
// sender: it is in doubt until the old group answers again
// (reconciliation: KindReconcile).

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// Kinds of the switch to an alternate group, of command format 7.
const (
	KindSwitch    = "transfer.switch"
	KindReconcile = "transfer.reconcile"
)

// SwitchCmd moves transfer ID from group From to group To.
type SwitchCmd struct {
	ID     string    `json:"id"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Doubt is a file that may have been committed at a group the transfer
// left: Group names it, Outcome says what asking it again found (empty
// until then): DoubtDuplicate (committed there too) or DoubtAbsent (not
// committed there; its .part removed).
type Doubt struct {
	Index   int    `json:"index"`
	Group   string `json:"group"`
	Outcome string `json:"outcome,omitempty"`
}

// Outcomes of a Doubt.
const (
	DoubtDuplicate = "duplicate"
	DoubtAbsent    = "absent"
)

// ReconcileCmd records what the group a transfer left said of its files
// in doubt.
type ReconcileCmd struct {
	ID      string         `json:"id"`
	Group   string         `json:"group"`
	Results map[int]string `json:"results"` // file index -> outcome
}

// Switch is the last move of a transfer to another group.
type Switch struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Group is the group of the destination agent the transfer is sent to
// now: DestinationAgent's, or the alternate it moved to.
func (t *Transfer) Group() string {
	if t.Switched != nil {
		return t.Switched.To
	}
	return t.Request.DestinationAgent
}

// switchGroup applies c; s.mu is held.
func (s *State) switchGroup(c SwitchCmd) any {
	t, ok := s.transfers[c.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, c.ID)
	}
	if Terminal(t.State) {
		return fmt.Errorf("%w: %s is %s", ErrEnded, t.ID, t.State)
	}
	if t.Request.DestinationAgent == "" || c.From != t.Group() || c.To == "" || c.To == c.From {
		return fmt.Errorf("%w: transfer %s is sent to %q, not moved from %q to %q", ErrBadFileEvent, t.ID, t.Group(), c.From, c.To)
	}
	// Copies that readers hold share the slices: they are replaced, never
	// changed in place.
	// A file in doubt at the group the transfer comes back to is no
	// longer in doubt: it is sent there again, and that group says
	// whether it has it (it stays started, so that a copy in place
	// there is recognised by its digest).
	var doubts []Doubt
	back := map[int]bool{}
	for _, d := range t.Doubts {
		if d.Group == c.To && d.Outcome == "" && !Terminal(t.FileAt(d.Index).State) {
			back[d.Index] = true
			continue
		}
		doubts = append(doubts, d)
	}
	for i := range t.FileCount() {
		f := t.FileAt(i)
		if Terminal(f.State) {
			continue
		}
		if f.Started {
			doubts = append(doubts, Doubt{Index: i, Group: c.From})
		}
		t.BytesResent += f.Checkpoint.Offset
		f.Checkpoint, f.Started = checkpoint.Checkpoint{}, back[i]
		if f.State == StateRunning {
			f.State = StateQueued
		}
		t.files.set(i, f)
	}
	// The directories are made again there (empty ones included).
	dirs := slices.Clone(t.Dirs)
	for i := range dirs {
		if dirs[i].State == StateCompleted {
			dirs[i].State = StateQueued
		}
	}
	t.Dirs, t.Doubts = dirs, doubts
	t.recount()
	t.Switched = &Switch{From: c.From, To: c.To, Reason: c.Reason, Time: c.Time}
	t.Receiver, t.ReceiverEpoch = "", 0
	return nil
}

// reconcile applies c; s.mu is held. An outcome for a file not in doubt
// at that group, or already resolved, changes nothing.
func (s *State) reconcile(c ReconcileCmd) any {
	t, ok := s.transfers[c.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, c.ID)
	}
	for _, o := range c.Results {
		if o != DoubtDuplicate && o != DoubtAbsent {
			return fmt.Errorf("%w: outcome %q", ErrBadFileEvent, o)
		}
	}
	doubts := slices.Clone(t.Doubts)
	for k := range doubts {
		d := &doubts[k]
		if o, ok := c.Results[d.Index]; ok && d.Group == c.Group && d.Outcome == "" {
			d.Outcome = o
		}
	}
	t.Doubts = doubts
	return nil
}

// Unreconciled lists the files of t in doubt at a group it left, not yet
// reconciled.
func (t *Transfer) Unreconciled() []Doubt {
	var out []Doubt
	for _, d := range t.Doubts {
		if d.Outcome == "" {
			out = append(out, d)
		}
	}
	return out
}

// WithDoubts lists the transfers (ended or not) that have files in doubt
// at a group they left, not yet reconciled.
func (s *State) WithDoubts() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for id, t := range s.transfers {
		for _, d := range t.Doubts {
			if d.Outcome == "" {
				ids = append(ids, id)
				break
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// Moved is where the transfers to one destination agent that have not
// ended and moved to an alternate group go now: per group, how many, and
// the latest move's time and reason.
type Moved struct {
	To        string    `json:"to"`
	Transfers int       `json:"transfers"`
	Since     time.Time `json:"since"`
	Reason    string    `json:"reason"`
}

// MovedFrom lists, for destination agent agent, the groups its transfers
// that have not ended moved to, sorted by group.
func (s *State) MovedFrom(agent string) []Moved {
	s.mu.RLock()
	defer s.mu.RUnlock()
	by := map[string]*Moved{}
	for _, t := range s.transfers {
		if t.Switched == nil || t.Request.DestinationAgent != agent || Terminal(t.State) || t.Group() == agent {
			continue
		}
		m := by[t.Group()]
		if m == nil {
			m = &Moved{To: t.Group()}
			by[t.Group()] = m
		}
		m.Transfers++
		if t.Switched.Time.After(m.Since) {
			m.Since, m.Reason = t.Switched.Time, t.Switched.Reason
		}
	}
	out := make([]Moved, 0, len(by))
	for _, m := range by {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Moved) int { return strings.Compare(a.To, b.To) })
	return out
}

// DoubtCounts counts the files in doubt that the state holds, over every
// transfer it keeps: open (not reconciled yet) and found duplicate (at
// both groups), for the metrics.
func (s *State) DoubtCounts() (open, duplicates int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, t := range s.transfers {
		for _, d := range t.Doubts {
			switch d.Outcome {
			case "":
				open++
			case DoubtDuplicate:
				duplicates++
			}
		}
	}
	return open, duplicates
}

// KindTold records that the destination agent of an ended transfer was
// told of its end (ToldCmd), of command format 7: until then, whichever
// instance is active tells it again, so that the .part files the
// transfer left there go even across failovers of the sender.
const KindTold = "transfer.told"

// ToldCmd is a KindTold entry.
type ToldCmd struct {
	ID string `json:"id"`
}

// told applies c; s.mu is held.
func (s *State) told(c ToldCmd) any {
	t, ok := s.transfers[c.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, c.ID)
	}
	if !Terminal(t.State) || t.Request.DestinationAgent == "" {
		return fmt.Errorf("%w: transfer %s has not ended at another agent", ErrBadFileEvent, c.ID)
	}
	t.EndTold = true
	return nil
}

// EndUntold reports whether t ended at another agent that has not been
// told so yet.
func (t *Transfer) EndUntold() bool {
	return Terminal(t.State) && t.Request.DestinationAgent != "" && !t.EndTold
}

// Untold lists the ended transfers whose destination agent has not been
// told of their end.
func (s *State) Untold() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for id, t := range s.transfers {
		if t.EndUntold() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
