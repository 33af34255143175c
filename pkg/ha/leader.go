package ha

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ErrNoStandby means no data instance can take the lease over.
var ErrNoStandby = errors.New("no standby instance can take over")

// monitorLeadership is the one place leadership changes are handled. It always
// drains raft's notification channel (raft blocks on it) and runs at most one
// leader loop at a time: a loop is started on gaining leadership and stopped,
// with everything it started, on losing it.
func (n *Node) monitorLeadership() {
	var (
		stop chan struct{}
		wg   sync.WaitGroup
	)
	revoke := func() {
		if stop != nil {
			close(stop)
			wg.Wait()
			stop = nil
		}
	}
	for {
		select {
		case leader := <-n.notifyCh:
			if leader && stop == nil {
				stop = make(chan struct{})
				wg.Add(1)
				go func(stop <-chan struct{}) {
					defer wg.Done()
					n.leaderLoop(stop)
				}(stop)
			} else if !leader {
				revoke()
			}
		case <-n.shutdownCh:
			revoke()
			return
		}
	}
}

// leaderLoop runs while this node is the raft leader. A data instance
// establishes the lease and runs the active's work until leadership is lost or
// it is told to hand over; a witness, or an instance that is stopping, hands
// leadership to a data instance instead.
func (n *Node) leaderLoop(stop <-chan struct{}) {
	// A leader forgets its standbys when it stops leading. It does not clear
	// the table on gaining leadership: standbys publish the moment they see
	// the new leader, which can be before this loop starts, and a report
	// wiped here would not come again for a whole publish interval.
	defer n.clearStandbys()
	// Without a lease there is no active: retry briskly, but never spin.
	bo := newBackoff(20*time.Millisecond, min(n.cfg.RetryMaxInterval, 5*time.Second))
	var wedgedSince time.Time
	wedged := func(err error) bool {
		if !errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			wedgedSince = time.Time{}
			return false
		}
		if wedgedSince.IsZero() {
			wedgedSince = time.Now()
		}
		// A genuine transfer ends within an election timeout; well past that,
		// the flag is stuck (hashicorp/raft#696).
		return time.Since(wedgedSince) > 4*n.cfg.ElectionTimeout+time.Second
	}
	for {
		var err error
		// A witness, a stopping instance and one that refused a log entry
		// it cannot read (it is about to exit) never take the lease.
		if n.cfg.Witness || n.isStopping() || n.Refusal() != nil {
			err = n.handOff()
			n.reportHandoff(err)
			if err == nil {
				// Leadership moves with the new leader's first message; if it
				// has not after a while, the transfer failed quietly: go again.
				select {
				case <-stop:
					return
				case <-time.After(2 * n.cfg.ElectionTimeout):
				}
				continue
			}
		} else {
			var lease Lease
			lease, err = n.establish()
			if err == nil {
				bo.Reset()
				if !n.runActive(stop, lease) {
					return // leadership lost
				}
				continue // told to hand over: the loop does it above
			}
		}
		if wedged(err) {
			go n.restartRaft()
			return
		}
		n.log.Warn().Err(err).Msg("leader could not establish the lease or hand it over; retrying")
		select {
		case <-stop:
			return
		case <-time.After(bo.Next()):
		}
	}
}

// establish makes this leader the active: Barrier so that every earlier entry
// is applied, then commit a lease entry with an epoch above every earlier one.
func (n *Node) establish() (Lease, error) {
	r := n.r()
	if err := r.Barrier(n.cfg.ElectionTimeout * 4).Error(); err != nil {
		return Lease{}, fmt.Errorf("barrier: %w", err)
	}
	lease := Lease{
		Epoch:   n.state.currentLease().Epoch + 1,
		Holder:  n.cfg.Name,
		Address: n.cfg.Address,
		Since:   time.Now().UTC(),
	}
	b, err := encodeCommand(KindLease, lease.Epoch, lease)
	if err != nil {
		return Lease{}, err
	}
	f := r.Apply(b, n.cfg.ElectionTimeout*4)
	if err := f.Error(); err != nil {
		return Lease{}, fmt.Errorf("commit lease: %w", err)
	}
	if err, ok := f.Response().(error); ok {
		return Lease{}, fmt.Errorf("commit lease: %w", err)
	}
	return lease, nil
}

// runActive runs the active's work under lease until leadership is lost
// (returns false) or HandOver asks it to yield (returns true). Either way the
// work has stopped when it returns.
func (n *Node) runActive(stop <-chan struct{}, lease Lease) bool {
	ctx, cancel := context.WithCancel(context.Background())
	term := &activeTerm{lease: lease, ctx: ctx, cancel: cancel, yield: make(chan struct{})}
	n.mu.Lock()
	if n.stopping {
		n.mu.Unlock()
		cancel()
		return true
	}
	n.active = term
	n.mu.Unlock()
	n.log.Info().Uint64("epoch", lease.Epoch).Str("status", "ACTIVE").Msg("lease gained: this instance is active")

	done := make(chan struct{})
	go func() {
		defer close(done)
		if n.cfg.OnActive != nil {
			n.cfg.OnActive(ctx, lease)
		}
	}()

	yielded := false
	select {
	case <-stop:
	case <-term.yield:
		yielded = true
	}
	cancel()
	<-done
	n.mu.Lock()
	n.active = nil
	n.mu.Unlock()
	if yielded {
		n.log.Info().Uint64("epoch", lease.Epoch).Msg("work stopped: handing the lease over")
	} else {
		n.log.Warn().Uint64("epoch", lease.Epoch).Msg("lease lost: work stopped")
	}
	return yielded
}

// handOff transfers raft leadership to the best data instance that answers.
func (n *Node) handOff() error {
	cands := n.takeoverCandidates()
	if len(cands) == 0 {
		return ErrNoStandby
	}
	var errs []error
	for _, c := range cands {
		n.log.Info().Str("to", c.Name).Msg("transferring leadership")
		err := n.r().LeadershipTransferToServer(raft.ServerID(c.Name), raft.ServerAddress(c.Address)).Error()
		if err == nil {
			return nil
		}
		if errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrNotLeader) {
			return err
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
	}
	return errors.Join(errs...)
}

// takeoverCandidates lists the data instances that can take the lease, best
// first: those that answer a probe now and say they can take over, most
// caught-up first.
func (n *Node) takeoverCandidates() []InstanceStatus {
	var out []InstanceStatus
	for _, p := range n.members() {
		if p.Name == n.cfg.Name || p.Witness {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ElectionTimeout)
		st, err := n.cfg.Peers.Probe(ctx, p.Address)
		cancel()
		if err != nil {
			n.log.Debug().Err(err).Str("peer", p.Name).Msg("probe before hand-over failed")
			continue
		}
		if st.Name != p.Name || !st.CanTakeOver {
			continue
		}
		out = append(out, st)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastApplied > out[j].LastApplied })
	return out
}

func (n *Node) isStopping() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopping
}

func (n *Node) reportHandoff(err error) {
	select {
	case <-n.handoffErr:
	default:
	}
	n.handoffErr <- err
}

// HandOver stops this instance being active and hands the lease to a standby:
// it takes no new work (STOPPING); unless immediate, it lets in-flight work
// finish (Drain), for at most DrainTimeout and only until Hurry is called;
// it stops the work, transfers leadership to the best standby, and returns
// the new active's lease once it has committed. ErrNoStandby means this is
// the last data instance: nothing took over. On a standby it only marks the
// instance stopping.
func (n *Node) HandOver(ctx context.Context, immediate bool) (Lease, error) {
	n.mu.Lock()
	n.stopping = true
	term := n.active
	n.mu.Unlock()
	if term == nil {
		return n.Lease(), nil
	}
	n.log.Info().Bool("immediate", immediate).Str("status", "STOPPING").Msg("stopping the active instance")
	if !immediate && n.cfg.Drain != nil {
		if err := n.drain(ctx); err != nil {
			return Lease{}, err
		}
	}
	select { // discard an outcome from before this hand-over
	case <-n.handoffErr:
	default:
	}
	close(term.yield)

	// In-flight work may take as long as it takes; the hand-over itself may
	// not: a standby that answers probes but never wins is given up on.
	limit := max(30*time.Second, 40*n.cfg.ElectionTimeout)
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		l, ok, err := n.leaseTakenOver(term.lease.Epoch)
		if ok {
			n.log.Info().Str("active", l.Holder).Uint64("epoch", l.Epoch).Msg("lease handed over")
			return l, nil
		}
		if err != nil {
			return Lease{}, err
		}
		select {
		case err := <-n.handoffErr:
			if errors.Is(err, ErrNoStandby) {
				return Lease{}, err
			}
			if err != nil {
				n.log.Warn().Err(err).Msg("hand-over attempt failed; retrying")
			}
		case <-tick.C:
		case <-deadline.C:
			return Lease{}, fmt.Errorf("no standby took the lease within %v", limit)
		case <-ctx.Done():
			return Lease{}, fmt.Errorf("waiting for a standby to take the lease: %w", ctx.Err())
		}
	}
}

// Hurry ends a normal stop's drain at once, or makes the next one end at
// once: the work stops at its last checkpoints and the lease is handed over
// (ftstop -i during a normal stop, a second signal).
func (n *Node) Hurry() {
	n.hurryOnce.Do(func() {
		n.log.Info().Msg("stop hurried: the lease is handed over without waiting for the work to finish")
		close(n.hurry)
	})
}

// drain runs Drain until the work has finished, DrainTimeout has passed or
// Hurry is called; only the end of ctx itself is an error.
func (n *Node) drain(ctx context.Context) error {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timeout <-chan time.Time
	if n.cfg.DrainTimeout > 0 {
		t := time.NewTimer(n.cfg.DrainTimeout)
		defer t.Stop()
		timeout = t.C
	}
	why := make(chan string, 1)
	go func() {
		select {
		case <-n.hurry:
			why <- "hurried"
		case <-timeout:
			why <- "timeout"
		case <-dctx.Done():
			return
		}
		cancel()
	}()
	err := n.cfg.Drain(dctx)
	cancel()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("drain: %w", err)
	}
	select {
	case w := <-why:
		if w == "timeout" {
			n.log.Warn().Dur("drainTimeout", n.cfg.DrainTimeout).
				Msg("drain timed out: handing the lease over with work unfinished; it resumes from its checkpoints on the new active")
		} else {
			n.log.Info().Msg("drain cut short: handing the lease over with work unfinished; it resumes from its checkpoints on the new active")
		}
		return nil
	default:
		return fmt.Errorf("drain: %w", err)
	}
}

// leaseTakenOver reports whether another instance holds a lease above epoch:
// as this instance's replicated state has it, or, sooner, as the new leader
// itself says (this follower learns that the lease entry committed only with
// the leader's next message, up to a commit timeout later).
// A new leader that is itself stopping will not take the lease (the whole
// agent is being stopped): that ends the wait with ErrNoStandby.
func (n *Node) leaseTakenOver(epoch uint64) (Lease, bool, error) {
	if l := n.Lease(); l.Epoch > epoch && l.Holder != n.cfg.Name {
		return l, true, nil
	}
	addr, id := n.r().LeaderWithID()
	if id == "" || string(id) == n.cfg.Name {
		return Lease{}, false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ElectionTimeout)
	defer cancel()
	st, err := n.cfg.Peers.Probe(ctx, string(addr))
	if err != nil || st.Name != string(id) {
		return Lease{}, false, nil
	}
	if st.Status == StatusStopping || st.Status == StatusStopped {
		return Lease{}, false, fmt.Errorf("%w: the new leader %s is stopping too", ErrNoStandby, st.Name)
	}
	if st.Role != RoleActive || st.Epoch <= epoch || st.LeaseHolder != st.Name {
		return Lease{}, false, nil
	}
	return Lease{Epoch: st.Epoch, Holder: st.Name, Address: st.Address}, true, nil
}
