package ha

import (
	"context"
	"testing"
	"time"
)

// drainForever is a Drain whose work never finishes: it returns only when
// its ctx ends.
func drainForever(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// A normal hand-over whose drain never ends hands over once DrainTimeout
// has passed.
func TestHandOverDrainTimeout(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.tuneCfg = func(cfg *Config) { cfg.Drain, cfg.DrainTimeout = drainForever, 300*time.Millisecond }
	c.startAll()
	old := c.waitActive(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	lease, err := c.node(old).HandOver(ctx, false)
	if err != nil {
		t.Fatalf("hand over: %v", err)
	}
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("handed over after %v, before the drain timeout", took)
	}
	if lease.Holder == old {
		t.Fatalf("lease %+v still held by %s", lease, old)
	}
	checkOneWriter(t, c.events.snapshot())
}

// Hurry ends a drain under way at once, and the lease is handed over.
func TestHandOverHurried(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.tuneCfg = func(cfg *Config) { cfg.Drain = drainForever } // no DrainTimeout: no bound
	c.startAll()
	old := c.waitActive(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		lease Lease
		err   error
	}
	done := make(chan result, 1)
	go func() {
		l, err := c.node(old).HandOver(ctx, false)
		done <- result{l, err}
	}()
	if !waitFor(5*time.Second, func() bool { return c.node(old).Status().Status == StatusStopping }) {
		t.Fatal("the active never said STOPPING")
	}
	select {
	case r := <-done:
		t.Fatalf("hand-over ended before Hurry: %+v %v", r.lease, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	c.node(old).Hurry()
	select {
	case r := <-done:
		if r.err != nil || r.lease.Holder == old {
			t.Fatalf("hurried hand-over: %+v %v", r.lease, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hand-over still waiting 5s after Hurry")
	}
	checkOneWriter(t, c.events.snapshot())
}

// CheckStopQuorum counts the other voters that answer: in a group of three,
// stopping one leaves a majority, stopping a second does not.
func TestCheckStopQuorum(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.startAll()
	active := c.waitActive(10 * time.Second)
	q := c.node(active).CheckStopQuorum(context.Background())
	if q.Voters != 3 || q.Running != 2 || q.Needed != 2 || !q.Kept() {
		t.Fatalf("all up: %+v, want 3 voters, 2 others running, 2 needed, kept", q)
	}
	var gone string
	for _, n := range []string{"ha1", "ha2", "ha3"} {
		if n != active {
			gone = n
			break
		}
	}
	c.stop(gone)
	q = c.node(active).CheckStopQuorum(context.Background())
	if q.Running != 1 || q.Kept() || len(q.Silent) != 1 || q.Silent[0] != gone {
		t.Fatalf("%s stopped: %+v, want 1 other running, not kept, %s silent", gone, q, gone)
	}
}
