package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The preferred address (the instance that answered last time) is asked
// first, and its answer is final: no 421 hop through the primary.
func TestDoAsksThePreferredFirst(t *testing.T) {
	a, b, c := newInstance(t, "a"), newInstance(t, "b"), newInstance(t, "c")
	a.pointTo(c.addr)
	b.pointTo(c.addr)
	var told []string
	h := newHarness(t, []string{a.addr, b.addr, c.addr}, nil,
		WithPreferred(c.addr), WithAnswered(func(addr string) { told = append(told, addr) }))

	var got echo
	if err := h.c.Do(context.Background(), http.MethodGet, "/v1/agent", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "c")
	equal(t, "tried", h.rec.take(), []string{c.addr})
	equal(t, "told", told, []string{c.addr})

	// A preferred address that is no longer the active points on, as the
	// primary would have.
	c.pointTo(b.addr)
	b.answerOK()
	h2 := newHarness(t, []string{a.addr, b.addr, c.addr}, nil, WithPreferred(c.addr))
	if err := h2.c.Do(context.Background(), http.MethodGet, "/v1/agent", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "b")
	equal(t, "tried", h2.rec.take(), []string{c.addr, b.addr})
}

// A preferred address that cannot be reached costs one failed attempt;
// then the first-connect plan runs as if it had not been named.
func TestDoPreferredDeadFallsBackToThePlan(t *testing.T) {
	dead := deadAddr(t)
	a := newInstance(t, "a")
	h := newHarness(t, []string{a.addr, dead}, nil, WithPreferred(dead))
	var got echo
	if err := h.c.Do(context.Background(), http.MethodGet, "/v1/agent", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "a")
	equal(t, "tried", h.rec.take(), []string{dead, a.addr})
	equal(t, "sleeps", len(h.sl.take()), 0)

	// The primary as the preferred address changes nothing.
	h2 := newHarness(t, []string{a.addr, dead}, nil, WithPreferred(a.addr))
	if err := h2.c.Do(context.Background(), http.MethodGet, "/v1/agent", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "tried", h2.rec.take(), []string{a.addr})
}

// Connecting to the preferred address is bounded by
// PreferredConnectTimeout, however long the request may take: a host that
// has gone (its packets dropped) does not hold a command for the request
// timeout. The hung peer is a listener that never accepts, and the dialer
// waits on it as a TLS handshake with a silent peer would.
func TestPreferredConnectIsBounded(t *testing.T) {
	a := newInstance(t, "a")
	hung := hungAddr(t)
	p := DefaultPolicy()
	p.RequestTimeout = 30 * time.Second
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		if address == hung {
			<-ctx.Done()
			c.Close()
			return nil, ctx.Err()
		}
		return c, nil
	}
	cl, err := New([]string{a.addr}, WithPolicy(p), WithDialer(dial), WithPreferred(hung))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var got echo
	if err := cl.Do(context.Background(), http.MethodGet, "/v1/agent", nil, &got); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	equal(t, "answered by", got.Instance, "a")
	if took < PreferredConnectTimeout || took > 10*time.Second {
		t.Fatalf("the request took %v: the preferred address's connect should have been given up after %v", took, PreferredConnectTimeout)
	}
}

// hungAddr is a listening address that never accepts.
func hungAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// Moved makes the next request start at the new active.
func TestMovedStartsTheNextRequestThere(t *testing.T) {
	a, b := newInstance(t, "a"), newInstance(t, "b")
	var told []string
	h := newHarness(t, []string{a.addr, b.addr}, nil, WithAnswered(func(addr string) { told = append(told, addr) }))
	var got echo
	if err := h.c.Do(context.Background(), http.MethodGet, "/v1/agent", nil, &got); err != nil {
		t.Fatal(err)
	}
	h.c.Moved(b.addr)
	h.c.Moved("not an address")
	if err := h.c.Do(context.Background(), http.MethodGet, "/v1/agent", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "b")
	equal(t, "tried", h.rec.take(), []string{a.addr, b.addr})
	equal(t, "told", told, []string{a.addr, b.addr})
}

// Once every address has refused for a reason retrying cannot mend, Do
// stops with that reason; an address that is merely down keeps the plan
// going.
func TestDoStopsWhenEveryInstanceRefuses(t *testing.T) {
	a, b := newInstance(t, "a"), newInstance(t, "b")
	refusing := map[string]bool{a.addr: true, b.addr: true}
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		if refusing[address] {
			return nil, errors.New("remote error: tls: certificate required")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	refusal := func(err error) (string, bool) {
		if strings.Contains(err.Error(), "certificate required") {
			return "the instances refuse this certificate", true
		}
		return "", false
	}
	var slept []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	cl, err := New([]string{a.addr, b.addr}, WithDialer(dial), WithRefusal(refusal), WithSleep(sleep))
	if err != nil {
		t.Fatal(err)
	}
	err = cl.Do(context.Background(), http.MethodGet, "/v1/agent", nil, nil)
	var re *RefusedError
	if !errors.As(err, &re) || len(re.Tried) != 2 || len(slept) != 0 || !strings.HasPrefix(err.Error(), "the instances refuse this certificate (every instance: ") {
		t.Fatalf("err %v (%T), slept %v: want a RefusedError after one pass", err, err, slept)
	}

	// One instance down, the other refusing: the whole plan, then
	// unreachable.
	dead := deadAddr(t)
	cl, err = New([]string{dead, b.addr}, WithDialer(dial), WithRefusal(refusal), WithSleep(sleep))
	if err != nil {
		t.Fatal(err)
	}
	err = cl.Do(context.Background(), http.MethodGet, "/v1/agent", nil, nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) || len(slept) == 0 {
		t.Fatalf("err %v (%T), slept %v: want the plan's passes and an UnreachableError", err, err, slept)
	}
}
