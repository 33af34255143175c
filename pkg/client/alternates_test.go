package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

// A client with an alternate group: while its own group answers, the
// alternate is never asked; when no instance of its own answers through
// the plan, the alternate is, and stays the one asked while it answers
// (an error answer included); when the alternate is lost too, the client
// goes back round to its own group; with both lost, the error lists
// every address of both.
func TestAlternatesStickyAndBack(t *testing.T) {
	a1, a2 := newInstance(t, "a1"), newInstance(t, "a2")
	b1 := newInstance(t, "b1")
	fast := func(p *Policy) { p.ConnectAttempts, p.ReconnectAttempts = 1, 1 }
	alt := newHarness(t, []string{b1.addr}, fast, WithGroup("B"))
	h := newHarness(t, []string{a1.addr, a2.addr}, fast, WithGroup("A"), WithAlternates(alt.c))
	ctx := context.Background()
	ask := func() string {
		t.Helper()
		var got echo
		if err := h.c.Do(ctx, http.MethodGet, "/v1/agent", nil, &got); err != nil {
			t.Fatal(err)
		}
		return got.Instance
	}
	group := func() string {
		name, alternate := h.c.Group()
		if alternate {
			return name + " (alternate)"
		}
		return name
	}

	equal(t, "answered by", ask(), "a1")
	equal(t, "group", group(), "A")
	equal(t, "alternate asked", b1.hits.Load(), int32(0))

	// Group A lost: B answers, and keeps answering once A is back.
	a1.kill()
	a2.kill()
	equal(t, "answered by", ask(), "b1")
	equal(t, "group", group(), "B (alternate)")
	equal(t, "current", h.c.Current(), b1.addr)
	a3 := newInstance(t, "a3") // A's group back, at another address: not asked
	_ = a3
	equal(t, "answered by", ask(), "b1")

	// An error answer from B is an answer: no move.
	b1.answerError(http.StatusBadRequest, "bad request")
	var apiErr *APIError
	if err := h.c.Do(ctx, http.MethodGet, "/v1/agent", nil, nil); !errors.As(err, &apiErr) {
		t.Fatalf("B's error answer: %v, want an *APIError", err)
	}
	equal(t, "group after an error answer", group(), "B (alternate)")

	// B lost too: back round to A's list, which now has no instance left
	// either: both lost, every address in the error.
	b1.kill()
	err := h.c.Do(ctx, http.MethodGet, "/v1/agent", nil, nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("both groups lost: %v, want an *UnreachableError", err)
	}
	tried := map[string]bool{}
	for _, x := range ue.Tried {
		tried[x.Address] = true
	}
	for _, a := range []string{a1.addr, a2.addr, b1.addr} {
		if !tried[a] {
			t.Errorf("the error does not list %s: %v", a, err)
		}
	}
	equal(t, "group when both are lost", group(), "B (alternate)")
}

// From the alternate, a lost alternate sends the client back to its own
// group when that answers again.
func TestAlternatesBackToOwnGroup(t *testing.T) {
	a := newInstance(t, "a")
	b := newInstance(t, "b")
	fast := func(p *Policy) { p.ConnectAttempts, p.ReconnectAttempts = 1, 1 }
	alt := newHarness(t, []string{b.addr}, fast, WithGroup("B"))
	dead := deadAddr(t)
	h := newHarness(t, []string{dead}, fast, WithGroup("A"), WithAlternates(alt.c))
	var got echo
	if err := h.c.Do(context.Background(), http.MethodGet, "/x", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "b")
	b.kill()
	// A's only address is still dead; give A a working one through a new
	// harness sharing the same alternate client.
	h2 := newHarness(t, []string{a.addr}, fast, WithGroup("A"), WithAlternates(alt.c))
	h2.c.at = 1 // as if B had answered last
	if err := h2.c.Do(context.Background(), http.MethodGet, "/x", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "a")
	name, alternate := h2.c.Group()
	equal(t, "group", name, "A")
	equal(t, "alternate", alternate, false)
}

// WithConnectTimeout gives up a connection that does not complete (a
// host that drops packets) after its own bound, not the request's.
func TestConnectTimeout(t *testing.T) {
	blocked := func(ctx context.Context, network, address string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	p := DefaultPolicy()
	p.ConnectAttempts, p.RequestTimeout, p.Jitter = 1, 5*time.Second, 0
	c, err := New([]string{"192.0.2.1:7101"}, WithPolicy(p), WithDialer(blocked), WithConnectTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err = c.Do(context.Background(), http.MethodGet, "/x", nil, nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("%v, want *UnreachableError", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("gave up after %v: the connect timeout (200ms) was not applied, the request timeout (5s) was", took)
	}
}
