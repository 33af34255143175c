package ha

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// The fence must close on a cut-off active before any other instance starts
// work under a new lease: every write it allowed was checked before the new
// active began. The leader lease is as long as raft allows (the heartbeat
// timeout) so that raft's own step-down comes after the fence's expiry and
// the fence, not the step-down, is what is tested.
func TestFenceClosesBeforeANewActiveStarts(t *testing.T) {
	for round := 0; round < 3; round++ {
		c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
		c.tuneCfg = func(cfg *Config) { cfg.LeaderLeaseTimeout = cfg.HeartbeatTimeout }
		c.startAll()
		old := c.waitActive(10 * time.Second)
		n := c.node(old)
		epoch, _, err := n.CheckLease()
		if err != nil || epoch != n.Lease().Epoch {
			t.Fatalf("active %s: CheckLease = %d, %v; lease %+v", old, epoch, err, n.Lease())
		}

		var (
			mu      sync.Mutex
			lastOK  time.Time
			oks     int
			lastErr error
		)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, at, err := n.CheckLease()
				mu.Lock()
				if err == nil {
					lastOK, oks = at, oks+1
				} else {
					lastErr = err
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
		time.Sleep(50 * time.Millisecond) // let the checker run against a healthy lease
		cutAt := time.Now()
		c.partition(old)
		next := c.waitActiveAbove(10*time.Second, epoch, old)
		close(stop)
		<-done

		var started time.Time
		for _, ev := range c.events.snapshot() {
			if ev.node == next && ev.start && ev.epoch > epoch {
				started = ev.at
				break
			}
		}
		mu.Lock()
		if oks == 0 || started.IsZero() {
			t.Fatalf("no evidence: %d allowed checks, new active start %v", oks, started)
		}
		if !lastOK.Before(started) {
			t.Fatalf("cut-off %s allowed a write checked at %v, %v after %s started under a new lease",
				old, lastOK.Format(time.RFC3339Nano), lastOK.Sub(started), next)
		}
		if !errors.Is(lastErr, ErrLeaseNotHeld) {
			t.Fatalf("cut-off %s: last refusal %v, want ErrLeaseNotHeld", old, lastErr)
		}
		t.Logf("round %d: fence closed %v after the cut, %v before %s started", round,
			lastOK.Sub(cutAt), started.Sub(lastOK), next)
		mu.Unlock()
		if _, _, err := n.CheckLease(); err == nil {
			t.Fatalf("deposed %s still passes CheckLease", old)
		}
		c.shutdownAll()
	}
}
