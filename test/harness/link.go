package harness

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Link is a network link between two agents that a test can cut: a TCP
// relay per instance of the far agent, on a loopback port of its own. The
// near agent is configured with the relays' addresses (agent.NAME.instances)
// and reaches the far agent only through them. Cut closes every relayed
// connection and refuses new ones (as a partition that resets them), until
// Heal.
type Link struct {
	// Addr maps each far instance to its relay's address.
	Addr map[string]string

	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	lns    []net.Listener
	closed bool
	wg     sync.WaitGroup
}

// NewLink starts a relay for each far instance (name to address).
func NewLink(far map[string]string) (*Link, error) {
	l := &Link{Addr: map[string]string{}, conns: map[net.Conn]struct{}{}}
	for name, target := range far {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			l.Close()
			return nil, err
		}
		l.lns = append(l.lns, ln)
		l.Addr[name] = ln.Addr().String()
		l.wg.Add(1)
		go l.accept(ln, target)
	}
	return l, nil
}

func (l *Link) accept(ln net.Listener, target string) {
	defer l.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.cut || l.closed {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.mu.Unlock()
		go l.relay(c, target)
	}
}

func (l *Link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut || l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Link) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	c.Close()
}

func (l *Link) relay(c net.Conn, target string) {
	if !l.track(c) {
		c.Close()
		return
	}
	defer l.untrack(c)
	d, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	if !l.track(d) {
		d.Close()
		return
	}
	defer l.untrack(d)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if err == nil || errors.Is(err, net.ErrClosed) {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
		}
		done <- struct{}{}
	}
	go pipe(d, c)
	go pipe(c, d)
	<-done
	<-done
}

// Cut closes every relayed connection and refuses new ones.
func (l *Link) Cut() {
	l.mu.Lock()
	l.cut = true
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// Heal lets connections through again.
func (l *Link) Heal() {
	l.mu.Lock()
	l.cut = false
	l.mu.Unlock()
}

// Close stops the relays.
func (l *Link) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	for _, ln := range l.lns {
		ln.Close()
	}
	l.Cut()
	l.wg.Wait()
}
