package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// instance is a fake agent instance: an HTTP server whose behaviour a test can
// switch while it runs.
type instance struct {
	name    string
	srv     *httptest.Server
	addr    string
	hits    atomic.Int32
	handler atomic.Value // http.HandlerFunc
}

func newInstance(t *testing.T, name string) *instance {
	t.Helper()
	in := &instance{name: name}
	in.answerOK()
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.hits.Add(1)
		in.handler.Load().(http.HandlerFunc)(w, r)
	}))
	in.addr = in.srv.Listener.Addr().String()
	t.Cleanup(in.srv.Close)
	return in
}

type echo struct {
	Instance    string          `json:"instance"`
	Method      string          `json:"method"`
	Path        string          `json:"path"`
	ContentType string          `json:"content_type"`
	Body        json.RawMessage `json:"body"`
}

// answerOK makes the instance answer 200 with an echo of the request.
func (in *instance) answerOK() {
	in.set(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if len(b) == 0 {
			b = []byte("null")
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echo{
			Instance:    in.name,
			Method:      r.Method,
			Path:        r.URL.RequestURI(),
			ContentType: r.Header.Get("Content-Type"),
			Body:        b,
		})
	})
}

func (in *instance) answerError(status int, msg string) {
	in.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
	})
}

func (in *instance) pointTo(active string) {
	in.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ActiveHeader, active)
		w.WriteHeader(http.StatusMisdirectedRequest)
		fmt.Fprintf(w, `{"error":"not the active instance; the active is %s"}`, active)
	})
}

func (in *instance) set(f http.HandlerFunc) { in.handler.Store(f) }

// kill stops the instance: its port refuses connections afterwards.
func (in *instance) kill() { in.srv.Close() }

// deadAddr returns a local address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// recorder is an http.RoundTripper that records the address of every attempt.
type recorder struct {
	mu    sync.Mutex
	hosts []string
	onRT  func(host string)
	rt    *http.Transport
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Host)
	f := r.onRT
	r.mu.Unlock()
	if f != nil {
		f(req.URL.Host)
	}
	return r.rt.RoundTrip(req)
}

func (r *recorder) CloseIdleConnections() { r.rt.CloseIdleConnections() }

// take returns the hosts recorded so far and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hosts
	r.hosts = nil
	return h
}

// sleeps records the delays a Client asks for, without sleeping.
type sleeps struct {
	mu sync.Mutex
	ds []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.ds = append(s.ds, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.ds
	s.ds = nil
	return d
}

type harness struct {
	c   *Client
	rec *recorder
	sl  *sleeps
}

// newHarness builds a Client over addrs that records attempts and delays. The
// policy has no jitter unless changed by mod.
func newHarness(t *testing.T, addrs []string, mod func(*Policy), opts ...Option) *harness {
	t.Helper()
	p := DefaultPolicy()
	p.Jitter = 0
	p.RequestTimeout = 5 * time.Second
	if mod != nil {
		mod(&p)
	}
	h := &harness{rec: &recorder{rt: &http.Transport{}}, sl: &sleeps{}}
	t.Cleanup(h.rec.rt.CloseIdleConnections)
	all := append([]Option{
		WithPolicy(p),
		WithSleep(h.sl.sleep),
		WithHTTPClient(&http.Client{Transport: h.rec}),
	}, opts...)
	c, err := New(addrs, all...)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

func plannedAddresses(plan []Attempt) []string {
	var out []string
	for _, a := range plan {
		out = append(out, a.Address)
	}
	return out
}

func plannedDelays(plan []Attempt) []time.Duration {
	var out []time.Duration
	for _, a := range plan {
		if a.Delay > 0 {
			out = append(out, a.Delay)
		}
	}
	return out
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func TestDoFirstDeadSecondAnswers(t *testing.T) {
	dead := deadAddr(t)
	a := newInstance(t, "a")
	h := newHarness(t, []string{dead, a.addr}, nil)

	var got echo
	err := h.c.Do(context.Background(), http.MethodPost, "/v1/transfers?x=1", map[string]int{"n": 7}, &got)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "a")
	equal(t, "method", got.Method, "POST")
	equal(t, "path", got.Path, "/v1/transfers?x=1")
	equal(t, "content type", got.ContentType, "application/json")
	equal(t, "body", string(got.Body), `{"n":7}`)
	equal(t, "tried", h.rec.take(), []string{dead, a.addr})
	equal(t, "sleeps", len(h.sl.take()), 0)
	equal(t, "current", h.c.Current(), a.addr)

	// The next request goes straight to the instance that answered.
	if err := h.c.Do(context.Background(), http.MethodGet, "/v1/status", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "tried", h.rec.take(), []string{a.addr})
	equal(t, "GET content type", got.ContentType, "")
	equal(t, "GET body", string(got.Body), "null")
}

func TestDoAllDeadFollowsPlan(t *testing.T) {
	addrs := []string{deadAddr(t), deadAddr(t), deadAddr(t)}
	mod := func(p *Policy) {
		p.ConnectAttempts = 2
		p.ConnectDelay = 700 * ms
		p.PrimaryRetries = 1
		p.PrimaryRetryDelay = 300 * ms
	}
	h := newHarness(t, addrs, mod)
	err := h.c.Do(context.Background(), http.MethodGet, "/v1/status", nil, nil)

	p := DefaultPolicy()
	p.Jitter = 0
	mod(&p)
	plan := p.Plan(addrs, 0, false, nil)
	equal(t, "tried", h.rec.take(), plannedAddresses(plan))
	equal(t, "sleeps", h.sl.take(), []time.Duration{300 * ms, 700 * ms, 300 * ms})
	equal(t, "sleeps vs plan", plannedDelays(plan), []time.Duration{300 * ms, 700 * ms, 300 * ms})

	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v (%T), want *UnreachableError", err, err)
	}
	equal(t, "passes", ue.Passes, 2)
	want := []TriedAddress{{addrs[0], "connection refused"}, {addrs[1], "connection refused"}, {addrs[2], "connection refused"}}
	equal(t, "Tried", ue.Tried, want)
	wantMsg := fmt.Sprintf("no instance of the agent could serve the request: %s (connection refused), %s (connection refused), %s (connection refused) after 2 passes",
		addrs[0], addrs[1], addrs[2])
	equal(t, "message", err.Error(), wantMsg)
	equal(t, "current", h.c.Current(), "")
}

func TestDoJitteredDelays(t *testing.T) {
	addrs := []string{deadAddr(t), deadAddr(t)}
	h := newHarness(t, addrs, func(p *Policy) {
		p.Jitter = 0.5
		p.ConnectAttempts = 3
		p.ConnectDelay = time.Second
	}, WithRand(func() float64 { return 0 }))
	if err := h.c.Do(context.Background(), "GET", "/", nil, nil); err == nil {
		t.Fatal("want an error")
	}
	equal(t, "sleeps", h.sl.take(), []time.Duration{500 * ms, 500 * ms})
}

func TestDoFollowsActivePointer(t *testing.T) {
	a := newInstance(t, "a")
	b := newInstance(t, "b")
	active := newInstance(t, "active") // not in the list
	a.pointTo(active.addr)
	h := newHarness(t, []string{a.addr, b.addr}, nil)

	var got echo
	if err := h.c.Do(context.Background(), "POST", "/v1/stop", map[string]bool{"immediate": true}, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "active")
	equal(t, "body at the active", string(got.Body), `{"immediate":true}`)
	equal(t, "tried", h.rec.take(), []string{a.addr, active.addr})
	equal(t, "hits of b", b.hits.Load(), int32(0))
	equal(t, "sleeps", len(h.sl.take()), 0)
	equal(t, "current", h.c.Current(), active.addr)

	// Later requests go to the active directly.
	if err := h.c.Do(context.Background(), "GET", "/v1/status", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "tried", h.rec.take(), []string{active.addr})

	// The active dies and a becomes active: the reconnect starts at the
	// address that last worked and wraps to the start of the list.
	active.kill()
	a.answerOK()
	if err := h.c.Do(context.Background(), "GET", "/v1/status", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "a")
	equal(t, "tried", h.rec.take(), []string{active.addr, a.addr})
	equal(t, "current", h.c.Current(), a.addr)
}

func TestDoPointerHopLimit(t *testing.T) {
	loop := newInstance(t, "loop")
	loop.pointTo(loop.addr) // points at itself forever
	noPtr := newInstance(t, "noptr")
	noPtr.set(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusMisdirectedRequest)
		io.WriteString(w, `{"error":"electing"}`)
	})
	ok := newInstance(t, "ok")
	h := newHarness(t, []string{loop.addr, noPtr.addr, ok.addr}, nil)

	var got echo
	if err := h.c.Do(context.Background(), "GET", "/v1/status", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "ok")
	// The first try plus 3 hops on loop, then noPtr once, then ok; no passes
	// were spent on pointers.
	equal(t, "tried", h.rec.take(), []string{loop.addr, loop.addr, loop.addr, loop.addr, noPtr.addr, ok.addr})
	equal(t, "sleeps", len(h.sl.take()), 0)

	// With nothing else answering, the error says why each failed.
	ok.kill()
	h2 := newHarness(t, []string{loop.addr, noPtr.addr, ok.addr}, func(p *Policy) { p.ConnectAttempts = 1 })
	err := h2.c.Do(context.Background(), "GET", "/v1/status", nil, nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnreachableError", err)
	}
	want := []TriedAddress{
		{loop.addr, "not the active; gave up after 3 pointers in a row"},
		{noPtr.addr, "not the active, and no Ftagent-Active pointer: electing"},
		{ok.addr, "connection refused"},
	}
	equal(t, "Tried", ue.Tried, want)
	equal(t, "passes", ue.Passes, 1)
	if !strings.HasSuffix(err.Error(), "after 1 pass") {
		t.Fatalf("message %q", err)
	}
}

func TestDoPointerToDeadAddressMovesOn(t *testing.T) {
	dead := deadAddr(t)
	a := newInstance(t, "a")
	a.pointTo(dead)
	b := newInstance(t, "b")
	h := newHarness(t, []string{a.addr, b.addr}, nil)
	var got echo
	if err := h.c.Do(context.Background(), "GET", "/", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "b")
	equal(t, "tried", h.rec.take(), []string{a.addr, dead, b.addr})
}

func TestDo503MovesOn(t *testing.T) {
	a := newInstance(t, "a")
	a.answerError(http.StatusServiceUnavailable, "starting")
	b := newInstance(t, "b")
	h := newHarness(t, []string{a.addr, b.addr}, nil)

	var got echo
	if err := h.c.Do(context.Background(), "GET", "/", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "b")
	equal(t, "tried", h.rec.take(), []string{a.addr, b.addr})

	b.answerError(http.StatusServiceUnavailable, "stopping")
	err := h.c.Do(context.Background(), "GET", "/", nil, &got)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnreachableError", err)
	}
	equal(t, "Tried", ue.Tried, []TriedAddress{{b.addr, "unavailable (503): stopping"}, {a.addr, "unavailable (503): starting"}})
	equal(t, "passes", ue.Passes, 4) // the reconnect plan
	equal(t, "tried", h.rec.take(), []string{b.addr, a.addr, b.addr, a.addr, b.addr, a.addr, b.addr, a.addr})
	equal(t, "sleeps", h.sl.take(), []time.Duration{500 * ms, 500 * ms, 500 * ms})
}

func TestDoAPIErrorIsFinal(t *testing.T) {
	a := newInstance(t, "a")
	a.answerError(http.StatusNotFound, "no such transfer")
	b := newInstance(t, "b")
	h := newHarness(t, []string{a.addr, b.addr}, nil)

	err := h.c.Do(context.Background(), "GET", "/v1/transfers/42", nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *APIError", err, err)
	}
	equal(t, "APIError", *ae, APIError{Address: a.addr, Status: 404, Message: "no such transfer"})
	// The user reads the agent's reason, without the address and status.
	equal(t, "message", err.Error(), "no such transfer")
	equal(t, "hits of b", b.hits.Load(), int32(0))
	equal(t, "current", h.c.Current(), a.addr)

	// A body that is not JSON is the message as it is; 500 is final too.
	a.set(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "disk full", http.StatusInternalServerError)
	})
	err = h.c.Do(context.Background(), "POST", "/v1/transfers", struct{}{}, nil)
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *APIError", err, err)
	}
	equal(t, "APIError", *ae, APIError{Address: a.addr, Status: 500, Message: "disk full"})
	equal(t, "hits of b", b.hits.Load(), int32(0))
}

func TestDoBadResponseIsFinal(t *testing.T) {
	a := newInstance(t, "a")
	a.set(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{not json") })
	b := newInstance(t, "b")
	h := newHarness(t, []string{a.addr, b.addr}, nil)
	var got echo
	err := h.c.Do(context.Background(), "POST", "/v1/transfers", nil, &got)
	if err == nil || !strings.Contains(err.Error(), "decoding response") {
		t.Fatalf("err = %v, want a decoding error", err)
	}
	equal(t, "hits of b", b.hits.Load(), int32(0))

	// An empty 2xx body leaves out alone.
	a.set(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	got = echo{Instance: "kept"}
	if err := h.c.Do(context.Background(), "DELETE", "/v1/transfers/1", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "out", got.Instance, "kept")
}

func TestDoTimeoutMovesOn(t *testing.T) {
	slow := newInstance(t, "slow")
	slow.set(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	b := newInstance(t, "b")
	h := newHarness(t, []string{slow.addr, b.addr}, func(p *Policy) { p.RequestTimeout = 100 * ms })

	var got echo
	if err := h.c.Do(context.Background(), "GET", "/", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "b")
	equal(t, "tried", h.rec.take(), []string{slow.addr, b.addr})

	b.kill()
	err := h.c.Do(context.Background(), "GET", "/", nil, &got)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnreachableError", err)
	}
	equal(t, "Tried", ue.Tried, []TriedAddress{{b.addr, "connection refused"}, {slow.addr, "no answer within 100ms"}})
}

func TestDoReconnectWrapsFromLastGood(t *testing.T) {
	a, b, c := newInstance(t, "a"), newInstance(t, "b"), newInstance(t, "c")
	a.answerError(503, "standby")
	h := newHarness(t, []string{a.addr, b.addr, c.addr}, nil)
	var got echo
	do := func() string {
		t.Helper()
		if err := h.c.Do(context.Background(), "GET", "/", nil, &got); err != nil {
			t.Fatal(err)
		}
		return got.Instance
	}

	equal(t, "first answer", do(), "b")
	equal(t, "tried", h.rec.take(), []string{a.addr, b.addr})

	b.kill() // b was good: the reconnect starts there and goes on to c
	equal(t, "answer after b died", do(), "c")
	equal(t, "tried", h.rec.take(), []string{b.addr, c.addr})

	c.kill() // c was good: the reconnect starts there and wraps to a
	a.answerOK()
	equal(t, "answer after c died", do(), "a")
	equal(t, "tried", h.rec.take(), []string{c.addr, a.addr})
	equal(t, "sleeps", len(h.sl.take()), 0)
}

func TestDoReconnectExhausted(t *testing.T) {
	a, b, c := newInstance(t, "a"), newInstance(t, "b"), newInstance(t, "c")
	a.kill()
	h := newHarness(t, []string{a.addr, b.addr, c.addr}, func(p *Policy) { p.ReconnectDelay = 250 * ms })
	ctx := context.Background()
	c.answerError(503, "standby")
	if err := h.c.Do(ctx, "GET", "/", nil, nil); err != nil {
		t.Fatal(err)
	}
	equal(t, "current", h.c.Current(), b.addr)
	h.rec.take()

	b.kill()
	c.kill()
	err := h.c.Do(ctx, "GET", "/", nil, nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnreachableError", err)
	}
	p := DefaultPolicy()
	p.Jitter = 0
	p.ReconnectDelay = 250 * ms
	plan := p.Plan([]string{a.addr, b.addr, c.addr}, 1, true, nil)
	equal(t, "tried", h.rec.take(), plannedAddresses(plan))
	equal(t, "first tried", plan[0].Address, b.addr)
	equal(t, "number tried", len(plan), 12)
	equal(t, "sleeps", h.sl.take(), []time.Duration{250 * ms, 250 * ms, 250 * ms})
	equal(t, "passes", ue.Passes, 4)
	for _, in := range []*instance{a, b, c} {
		if !strings.Contains(err.Error(), in.addr+" (connection refused)") {
			t.Errorf("message %q does not name %s", err, in.addr)
		}
	}
	equal(t, "current", h.c.Current(), b.addr) // still the last that answered
}

func TestDoStopsWhenContextDone(t *testing.T) {
	t.Run("already done", func(t *testing.T) {
		a := newInstance(t, "a")
		h := newHarness(t, []string{a.addr}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := h.c.Do(ctx, "GET", "/", nil, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		equal(t, "hits", a.hits.Load(), int32(0))
	})

	t.Run("during a delay", func(t *testing.T) {
		dead1, dead2 := deadAddr(t), deadAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rec := &recorder{rt: &http.Transport{}}
		// Cancel once the first pass is over; the client then sleeps for an
		// hour with the real sleep unless it notices.
		rec.onRT = func(host string) {
			if host == dead2 {
				cancel()
			}
		}
		p := DefaultPolicy()
		p.ConnectDelay = time.Hour
		c, err := New([]string{dead1, dead2}, WithPolicy(p), WithHTTPClient(&http.Client{Transport: rec}))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Do(ctx, "GET", "/", nil, nil) }()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if !strings.Contains(err.Error(), dead1+" (connection refused)") {
				t.Fatalf("err = %v, want the addresses tried so far", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Do did not stop when its context was cancelled")
		}
		equal(t, "tried", rec.take(), []string{dead1, dead2})
	})

	t.Run("during a request", func(t *testing.T) {
		entered := make(chan struct{})
		slow := newInstance(t, "slow")
		slow.set(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done()
		})
		b := newInstance(t, "b")
		h := newHarness(t, []string{slow.addr, b.addr}, func(p *Policy) { p.RequestTimeout = time.Hour })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-entered
			cancel()
		}()
		done := make(chan error, 1)
		go func() { done <- h.c.Do(ctx, "GET", "/", nil, nil) }()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Do did not stop when its context was cancelled")
		}
		equal(t, "hits of b", b.hits.Load(), int32(0))
	})
}

func TestDoAt(t *testing.T) {
	a, b := newInstance(t, "a"), newInstance(t, "b")
	h := newHarness(t, []string{a.addr, b.addr}, nil)
	ctx := context.Background()

	var got echo
	if err := h.c.DoAt(ctx, b.addr, "POST", "/v1/stop", map[string]bool{"immediate": true}, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "b")
	equal(t, "body", string(got.Body), `{"immediate":true}`)
	equal(t, "tried", h.rec.take(), []string{b.addr})
	equal(t, "current", h.c.Current(), "") // DoAt leaves failover state alone

	// No pointer following.
	b.pointTo(a.addr)
	err := h.c.DoAt(ctx, " "+b.addr+" ", "POST", "/v1/stop", nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusMisdirectedRequest || ae.Address != b.addr {
		t.Fatalf("err = %v, want a 421 *APIError from b", err)
	}
	equal(t, "hits of a", a.hits.Load(), int32(0))

	// No failover on 503.
	b.answerError(503, "stopping")
	err = h.c.DoAt(ctx, b.addr, "GET", "/", nil, nil)
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Message != "stopping" {
		t.Fatalf("err = %v, want a 503 *APIError", err)
	}

	// A dead address is reported alone.
	dead := deadAddr(t)
	err = h.c.DoAt(ctx, dead, "GET", "/", nil, nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnreachableError", err)
	}
	equal(t, "Tried", ue.Tried, []TriedAddress{{dead, "connection refused"}})
	equal(t, "tried", h.rec.take(), []string{b.addr, b.addr, dead})
	equal(t, "hits of a", a.hits.Load(), int32(0))

	if err := h.c.DoAt(ctx, "nope", "GET", "/", nil, nil); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("err = %v, want a bad-address error", err)
	}
}

func TestDoConcurrent(t *testing.T) {
	dead := deadAddr(t)
	a := newInstance(t, "a")
	h := newHarness(t, []string{dead, a.addr}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			var got echo
			if err := h.c.Do(context.Background(), "GET", "/", nil, &got); err != nil {
				errs <- err
			} else if got.Instance != "a" {
				errs <- fmt.Errorf("answered by %q", got.Instance)
			}
			_ = h.c.Current()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	equal(t, "current", h.c.Current(), a.addr)
}

func TestNew(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Fatal("New(nil): want an error")
	}
	if _, err := New([]string{" ", ""}); err == nil {
		t.Fatal("New(blank): want an error")
	}
	if _, err := New([]string{"h:1", "http://h:2"}); err == nil || !strings.Contains(err.Error(), "http://h:2") {
		t.Fatalf("New(bad): err = %v, want it to name the bad entry", err)
	}
	c, err := New([]string{" h1:7101 ", "", "h2:7102,h3:7103"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "addresses", c.Addresses(), []string{"h1:7101", "h2:7102", "h3:7103"})
	equal(t, "current", c.Current(), "")
}

func TestDefaultHTTPClient(t *testing.T) {
	dead := deadAddr(t)
	a := newInstance(t, "a")
	sl := &sleeps{}
	c, err := New([]string{dead, a.addr}, WithSleep(sl.sleep))
	if err != nil {
		t.Fatal(err)
	}
	var got echo
	if err := c.Do(context.Background(), "PUT", "v1/config", map[string]string{"k": "v"}, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "a")
	equal(t, "path", got.Path, "/v1/config")
	equal(t, "body", string(got.Body), `{"k":"v"}`)
	equal(t, "current", c.Current(), a.addr)
	equal(t, "sleeps", len(sl.take()), 0)
}

// With WithOnlyListed a pointer to an address not in the list is not
// followed: the next listed address is tried, and one in the list is
// followed as usual.
func TestDoOnlyListed(t *testing.T) {
	a := newInstance(t, "a")
	b := newInstance(t, "b")
	elsewhere := newInstance(t, "elsewhere") // the other side's own address for b
	a.pointTo(elsewhere.addr)
	h := newHarness(t, []string{a.addr, b.addr}, nil, WithOnlyListed(), WithHeader("Ftagent-Sender", "ORDERS"))

	var got echo
	if err := h.c.Do(context.Background(), "GET", "/v1/status", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "b")
	equal(t, "tried", h.rec.take(), []string{a.addr, b.addr})
	equal(t, "hits elsewhere", elsewhere.hits.Load(), int32(0))

	// A pointer to a listed address is followed.
	b.pointTo(a.addr)
	a.answerOK()
	if err := h.c.Do(context.Background(), "GET", "/v1/status", nil, &got); err != nil {
		t.Fatal(err)
	}
	equal(t, "answered by", got.Instance, "a")
	equal(t, "tried", h.rec.take(), []string{b.addr, a.addr})
}

// Stream sends its body to the address that last answered, with the
// client's headers, and returns a refusal with its code.
func TestStream(t *testing.T) {
	a := newInstance(t, "a")
	b := newInstance(t, "b")
	var header atomic.Value
	b.set(func(w http.ResponseWriter, r *http.Request) {
		header.Store(r.Header.Get("Ftagent-Sender"))
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"n":%d}`, n)
	})
	a.pointTo(b.addr)
	h := newHarness(t, []string{a.addr, b.addr}, nil, WithHeader("Ftagent-Sender", "ORDERS"))
	if err := h.c.Do(context.Background(), "GET", "/v1/status", nil, nil); err != nil {
		t.Fatal(err)
	}
	h.rec.take()
	var out struct{ N int }
	if err := h.c.Stream(context.Background(), "PUT", "/v1/inbound/data", nil, strings.NewReader(strings.Repeat("x", 100000)), &out); err != nil {
		t.Fatal(err)
	}
	equal(t, "bytes received", out.N, 100000)
	equal(t, "tried", h.rec.take(), []string{b.addr})
	equal(t, "sender header", header.Load(), any("ORDERS"))

	b.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"error":"stale","code":"stale-sender"}`)
	})
	err := h.c.Stream(context.Background(), "PUT", "/v1/inbound/data", nil, strings.NewReader("x"), nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "stale-sender" || ae.Message != "stale" || ae.Status != http.StatusConflict {
		t.Fatalf("Stream refused: %#v, want an APIError with its code", err)
	}
}
