package ha

import (
	"context"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// QuorumLost is closed when this instance has been without a leader for
// longer than Config.QuorumLossTimeout (quorumLossAction=exit, IBM MQ MFT's
// "bindings mode"): the caller then stops the process so that a supervisor
// restarts it. It is never closed when QuorumLossTimeout is zero.
func (n *Node) QuorumLost() <-chan struct{} { return n.quorumLost }

// inTouch reports whether this instance is part of a working group now: it is
// the raft leader (which steps down within the leader lease timeout once it
// cannot reach a majority), or it follows a known leader (which a follower
// forgets after a heartbeat timeout without contact).
func (n *Node) inTouch() bool {
	r := n.r()
	if r == nil {
		return false
	}
	if r.State() == raft.Leader {
		return true
	}
	_, id := r.LeaderWithID()
	return id != ""
}

// watchQuorum closes quorumLost once the instance has been out of touch for
// longer than the timeout, counting from the start or from the last moment
// it was in touch. It only reads raft's state, a few times per timeout.
func (n *Node) watchQuorum() {
	timeout := n.cfg.QuorumLossTimeout
	every := min(max(timeout/20, 10*time.Millisecond), 500*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-n.shutdownCh:
			return
		case now := <-t.C:
			if n.inTouch() {
				last = now
				continue
			}
			if d := now.Sub(last); d > timeout {
				n.log.Error().Str("withoutLeader", d.Round(time.Millisecond).String()).
					Str("quorumLossTimeout", timeout.String()).Str("status", StatusStopping).
					Msg("quorum lost: no leader within quorumLossTimeout; quorumLossAction=exit, so this instance exits for its supervisor to restart it")
				close(n.quorumLost)
				return
			}
		}
	}
}

// StopQuorum says whether the group's voters keep a majority once this
// instance stops: the voters other than this one that answer a probe now
// and are not stopping, against the majority of all voters.
type StopQuorum struct {
	Voters  int      `json:"voters"`  // voting members of the group, this one included
	Running int      `json:"running"` // the others that answer and are not stopping
	Needed  int      `json:"needed"`  // a majority of Voters
	Silent  []string `json:"silent,omitempty"`
}

// Kept reports whether the agent can still have an active after the stop. A
// group of one voter, and an instance that is no voter, do not count: their
// stop takes no majority away from anyone else.
func (q StopQuorum) Kept() bool { return q.Voters <= 1 || q.Running >= q.Needed }

// CheckStopQuorum probes every other voter of the group, at once, to tell
// whether a majority stays up when this instance stops.
func (n *Node) CheckStopQuorum(ctx context.Context) StopQuorum {
	var voters []Member
	self := false
	for _, m := range raftMembers(n.r()) {
		if m.Voter {
			voters = append(voters, m)
			self = self || m.Name == n.cfg.Name
		}
	}
	q := StopQuorum{Voters: len(voters), Needed: len(voters)/2 + 1}
	if !self {
		// A non-voter's stop changes no majority.
		q.Voters, q.Running, q.Needed = 0, 0, 0
		return q
	}
	type answer struct {
		name string
		up   bool
	}
	answers := make(chan answer, len(voters))
	asked := 0
	for _, m := range voters {
		if m.Name == n.cfg.Name {
			continue
		}
		asked++
		go func(m Member) {
			pctx, cancel := context.WithTimeout(ctx, max(n.cfg.ElectionTimeout, time.Second))
			defer cancel()
			st, err := n.cfg.Peers.Probe(pctx, m.Address)
			up := err == nil && st.Name == m.Name &&
				st.Status != StatusStopping && st.Status != StatusStopped && st.Status != StatusFailed
			answers <- answer{m.Name, up}
		}(m)
	}
	for range asked {
		a := <-answers
		if a.up {
			q.Running++
		} else {
			q.Silent = append(q.Silent, a.name)
		}
	}
	slices.Sort(q.Silent)
	return q
}
