package netmux

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/trust"
)

// dialFrom connects to addr from local IP from (Linux routes all of
// 127.0.0.0/8 to loopback).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	return c
}

// getFrom makes one HTTP request to addr from local IP from, on a
// connection of its own.
func getFrom(from, addr string) (string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + addr + "/v1/instance")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// closedWithin reports whether the server closes c (a read ends with EOF
// or a reset, sending nothing) within d.
func closedWithin(c net.Conn, d time.Duration) (bool, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case n > 0:
		return false, errors.New("the server sent data")
	case errors.As(err, &ne) && ne.Timeout():
		return false, nil
	case err != nil:
		return true, nil
	}
	return false, nil
}

// The connections of one address are bounded from accept to close: one
// over the bound is closed at once and reported, before it sends a byte;
// other addresses are served as before; a connection closed gives its
// place back.
func TestConnectionsPerPeerAreBounded(t *testing.T) {
	const bound = 4
	var mu sync.Mutex
	var refusals []string
	m, err := Listen("127.0.0.1:0", Security{Mode: trust.Disabled, MaxConnsPerPeer: bound, Refused: func(remote, reason string) {
		mu.Lock()
		defer mu.Unlock()
		refusals = append(refusals, remote+": "+reason)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	addr := m.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(m.API()) }()
	defer srv.Close()

	// The bound's worth of silent connections (a slow-loris waiting to
	// send its first byte) from 127.0.0.2.
	var held []net.Conn
	for i := 0; i < bound; i++ {
		held = append(held, dialFrom(t, "127.0.0.2", addr))
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	waitCount(t, m, "127.0.0.2", bound)

	// One more from 127.0.0.2 is closed at once, and said why.
	over := dialFrom(t, "127.0.0.2", addr)
	defer over.Close()
	if closed, err := closedWithin(over, 3*time.Second); err != nil || !closed {
		t.Fatalf("connection over the bound: closed %v (%v), want closed at once", closed, err)
	}
	mu.Lock()
	got := strings.Join(refusals, "\n")
	mu.Unlock()
	if !strings.Contains(got, "127.0.0.2") || !strings.Contains(got, "already has 4 connections open") {
		t.Errorf("refusals reported: %q", got)
	}
	// A request from 127.0.0.2 fails too...
	if body, err := getFrom("127.0.0.2", addr); err == nil {
		t.Errorf("request from the address at its bound answered %q", body)
	}
	// ...but other addresses are served, and their connections, closed,
	// are no longer counted.
	for _, from := range []string{"127.0.0.1", "127.0.0.3"} {
		for i := 0; i < 2*bound; i++ {
			if body, err := getFrom(from, addr); err != nil || body != "ok" {
				t.Fatalf("request %d from %s: %q %v", i, from, body, err)
			}
		}
		waitCount(t, m, from, 0)
	}
	if n := m.limit.count("127.0.0.2"); n != bound {
		t.Errorf("127.0.0.2 counted with %d connections, want %d", n, bound)
	}

	// A held connection closed gives its place back: 127.0.0.2 is served
	// again.
	held[0].Close()
	waitCount(t, m, "127.0.0.2", bound-1)
	if body, err := getFrom("127.0.0.2", addr); err != nil || body != "ok" {
		t.Fatalf("request from 127.0.0.2 after one connection closed: %q %v", body, err)
	}
	waitCount(t, m, "127.0.0.2", bound-1)
}

// Refusals of one address are reported at most once a second, with the
// count of those not reported.
func TestRefusalsAreReportedSparingly(t *testing.T) {
	l := newPeerLimit(1)
	a, b := net.Pipe()
	defer b.Close()
	conn := tcpAddrConn{Conn: a, remote: &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}}
	first, why := l.admit(conn)
	if first == nil || why != "" {
		t.Fatalf("first connection: %v %q", first, why)
	}
	if c, why := l.admit(conn); c != nil || !strings.Contains(why, "192.0.2.1 already has 1 connections open") {
		t.Fatalf("second connection: %v %q, want refused and reported", c, why)
	}
	for i := 0; i < 3; i++ {
		if c, why := l.admit(conn); c != nil || why != "" {
			t.Fatalf("refusal %d within a second: %v %q, want refused silently", i, c, why)
		}
	}
	l.mu.Lock()
	l.reported["192.0.2.1"] = time.Now().Add(-2 * refusalReportEvery)
	l.mu.Unlock()
	if c, why := l.admit(conn); c != nil || !strings.Contains(why, "and 3 more refused") {
		t.Fatalf("refusal a second later: %v %q, want reported with the 3 held", c, why)
	}
	first.Close()
	first.Close() // released once only
	if n := l.count("192.0.2.1"); n != 0 {
		t.Fatalf("count after close: %d", n)
	}
	if c, why := l.admit(conn); c == nil || why != "" {
		t.Fatalf("after the close: %v %q, want admitted", c, why)
	}
}

type tcpAddrConn struct {
	net.Conn
	remote net.Addr
}

func (c tcpAddrConn) RemoteAddr() net.Addr { return c.remote }

func waitCount(t *testing.T, m *Mux, peer string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.limit.count(peer) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s counted with %d connections, want %d", peer, m.limit.count(peer), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
