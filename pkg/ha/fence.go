package ha

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrLeaseNotHeld refuses a write to transfer storage by an instance that
// does not hold the lease, or cannot show that it still does.
var ErrLeaseNotHeld = errors.New("this instance does not hold the lease")

// The fence. Raft commits are fenced by epochs (the state refuses a command
// written under an older lease), but writes to shared storage are not: a
// deposed active that was paused (SIGSTOP, a long GC, a VM stall) or cut off
// wakes up still believing it leads, and its copy loop would write into a
// .part the new active is writing. So every change to transfer storage first
// asks CheckLease, which answers from a time-bounded proof of leadership.
//
// The proof: VerifyLeader, started at t0, returns once a quorum acknowledged
// this leader's current term, so each of those followers heard from it at or
// after t0. A hashicorp/raft follower refuses to vote for anyone while it
// knows a leader, and forgets the leader only after a heartbeat timeout (at
// least HeartbeatTimeout) without contact. Every quorum that could elect
// another leader contains one of those followers, so no other leader can be
// elected before t0 + HeartbeatTimeout. The fence trusts the proof until
// t0 + HeartbeatTimeout/2, leaving half a heartbeat timeout of margin, and
// reads time from the monotonic clock, which keeps running while the process
// is stopped: a process that wakes after a pause finds its proof expired and
// must prove leadership again — which a deposed leader cannot.
//
// Limits, also in docs/reliability.md: a pause that falls between the check
// and the system call it guards (nanoseconds) is not caught — only the storage
// itself could fence that; and a follower that restarts forgets its leader,
// so a follower killed and restarted within half a heartbeat timeout of
// acknowledging could vote early. A leadership transfer (hand-over) skips the
// vote rule, but the active stops its work before it hands over.

// leaseSpan is how long one proof of leadership is trusted.
func (n *Node) leaseSpan() time.Duration { return n.cfg.HeartbeatTimeout / 2 }

// fence is an active term's proof of leadership.
type fence struct {
	mu       sync.Mutex
	until    time.Time // monotonic: writes are allowed before it
	renewing bool      // an asynchronous renewal is under way
	renew    sync.Mutex
}

// CheckLease confirms that this instance holds the lease and that no other
// instance can hold it yet, renewing the proof of leadership with a quorum
// round trip when it is expired or about to be. It returns the epoch to
// record the write under and the time of the check. Call it immediately
// before every write, truncation, rename or removal in transfer storage.
func (n *Node) CheckLease() (uint64, time.Time, error) {
	n.mu.Lock()
	term := n.active
	n.mu.Unlock()
	if term == nil {
		return 0, time.Time{}, ErrLeaseNotHeld
	}
	epoch := term.lease.Epoch
	for try := 0; ; try++ {
		if term.ctx.Err() != nil {
			return 0, time.Time{}, fmt.Errorf("%w: epoch %d has ended", ErrLeaseNotHeld, epoch)
		}
		now := time.Now()
		term.fence.mu.Lock()
		until := term.fence.until
		left := until.Sub(now)
		if left > 0 && left < n.leaseSpan()/2 && !term.fence.renewing {
			term.fence.renewing = true
			go func() {
				_ = n.renewLease(term)
				term.fence.mu.Lock()
				term.fence.renewing = false
				term.fence.mu.Unlock()
			}()
		}
		term.fence.mu.Unlock()
		if left > 0 {
			return epoch, now, nil
		}
		if try > 0 {
			// Proved and already expired again: the process is being
			// starved or paused; refuse rather than loop.
			return 0, time.Time{}, fmt.Errorf("%w: proof of leadership for epoch %d expired as soon as it was made", ErrLeaseNotHeld, epoch)
		}
		if err := n.renewLease(term); err != nil {
			return 0, time.Time{}, err
		}
	}
}

// CheckLeaseAt is CheckLease for work begun under the lease of epoch: it
// refuses once the lease has moved on, even to this instance again at a
// later epoch, so that the work of an ended term neither passes nor is
// audited under the next one. It returns the time of the check.
func (n *Node) CheckLeaseAt(epoch uint64) (time.Time, error) {
	got, at, err := n.CheckLease()
	if err != nil {
		return time.Time{}, err
	}
	if got != epoch {
		return time.Time{}, fmt.Errorf("%w: the work is of epoch %d, the lease is at epoch %d", ErrLeaseNotHeld, epoch, got)
	}
	return at, nil
}

// renewLease proves leadership with VerifyLeader and extends the term's
// fence from the moment the proof started.
func (n *Node) renewLease(term *activeTerm) error {
	term.fence.renew.Lock()
	defer term.fence.renew.Unlock()
	start := time.Now()
	term.fence.mu.Lock()
	fresh := term.fence.until.Sub(start) >= n.leaseSpan()/2
	term.fence.mu.Unlock()
	if fresh {
		return nil // renewed by another caller while this one waited
	}
	if err := n.r().VerifyLeader().Error(); err != nil {
		return fmt.Errorf("%w: epoch %d: %v", ErrLeaseNotHeld, term.lease.Epoch, err)
	}
	if l := n.Lease(); l.Epoch != term.lease.Epoch || l.Holder != n.cfg.Name {
		return fmt.Errorf("%w: lease is at epoch %d held by %s, not %d", ErrLeaseNotHeld, l.Epoch, l.Holder, term.lease.Epoch)
	}
	term.fence.mu.Lock()
	if u := start.Add(n.leaseSpan()); u.After(term.fence.until) {
		term.fence.until = u
	}
	term.fence.mu.Unlock()
	return nil
}
