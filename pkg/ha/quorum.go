package ha

import (
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
