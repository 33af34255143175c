package ha

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/hashicorp/raft"
)

// Rolling upgrades: instances of two builds run side by side, one replaced at
// a time. Two rules keep their replicated states equal:
//
//   - An instance that meets a log entry it cannot apply (a newer format, an
//     unknown kind) refuses it loudly and applies nothing more: Failed is
//     closed, its status says FAILED, and its owner (pkg/agent) ends the
//     process with the refusal. It refuses again at the same entry on every
//     start until it runs a build that reads it.
//   - The active proposes a kind of a format above 1 only once every instance
//     in the raft configuration has reported (in its standby status) that it
//     reads that format: Node.Apply refuses it before it is committed
//     otherwise.

// Failed is closed once this instance has refused an entry of its replicated
// log (or a snapshot); Refusal then says why. The node applies nothing after
// that entry. Its owner should end the process, which a supervisor may
// restart: it will refuse again at the same entry until it is upgraded.
func (n *Node) Failed() <-chan struct{} { return n.state.failedCh() }

// Refusal is the *RefusalError that failed this instance, or nil.
func (n *Node) Refusal() error {
	if r := n.state.refusal(); r != nil {
		return r
	}
	return nil
}

// Format is the highest command format this instance reads: what its status
// reports to the active.
func (n *Node) Format() int { return n.state.knows() }

// FormatAgreed reports whether every instance of the agent reads command
// format v: this instance and every server in the raft configuration (voters,
// witnesses included, since they apply the log too). Only the leader knows
// the others' formats, from their standby statuses; an instance that has not
// reported, whose status was discarded, or that said it stopped, counts as
// not reading v. Format 1 is read by every build.
func (n *Node) FormatAgreed(v int) bool { return n.formatAgreement(v) == nil }

// formatAgreement is nil if every instance reads format v, else an
// ErrFormatNotAgreed that names the instances that do not (yet).
func (n *Node) formatAgreement(v int) error {
	if v <= 1 {
		return nil
	}
	if k := n.state.knows(); k < v {
		return fmt.Errorf("%w: this instance reads formats ≤ %d, not %d", ErrFormatNotAgreed, k, v)
	}
	r := n.r()
	if r == nil || r.State() != raft.Leader {
		return fmt.Errorf("%w: only the active knows the formats the instances read", ErrFormatNotAgreed)
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("%w: raft configuration: %v", ErrFormatNotAgreed, err)
	}
	// Once the log holds an entry of format v, an instance that is down
	// or has not reported yet can only rejoin by reading it (a build that
	// cannot refuses that entry, whatever follows it): more entries of
	// format v make nothing worse, and a failover while an instance is
	// down does not take format v away. One that runs and says it reads
	// less, or failed, still holds it back.
	inLog := n.state.applied() >= v
	n.mu.Lock()
	defer n.mu.Unlock()
	n.discardStaleLocked(time.Now())
	var behind []string
	for _, srv := range f.Configuration().Servers {
		name := string(srv.ID)
		if name == n.cfg.Name {
			continue
		}
		e, ok := n.standbys[name]
		switch {
		case !ok && inLog:
		case !ok:
			behind = append(behind, name+" (no status)")
		case e.status.Status == StatusStopped && inLog:
		case e.status.Status == StatusStopped || e.status.Status == StatusFailed:
			// It may come back as another build: wait for its next status.
			behind = append(behind, fmt.Sprintf("%s (%s)", name, e.status.Status))
		case reportedFormat(e.status) < v:
			behind = append(behind, fmt.Sprintf("%s (reads formats ≤ %d)", name, reportedFormat(e.status)))
		}
	}
	if len(behind) > 0 {
		return fmt.Errorf("%w: format %d is not read by %s", ErrFormatNotAgreed, v, strings.Join(behind, ", "))
	}
	return nil
}

// mayPropose checks a command kind before Node.Apply commits it: the kind is
// registered, this instance has not failed, and every instance reads the
// kind's format.
func (n *Node) mayPropose(kind string) error {
	format, ok := replog.KindFormat(kind)
	if !ok {
		return fmt.Errorf("%w: %q is not registered", replog.ErrUnknownKind, kind)
	}
	if r := n.state.refusal(); r != nil {
		return fmt.Errorf("this instance has failed: %w", r)
	}
	if err := n.formatAgreement(format); err != nil {
		if errors.Is(err, ErrFormatNotAgreed) {
			return fmt.Errorf("propose %s: %w", kind, err)
		}
		return err
	}
	return nil
}
