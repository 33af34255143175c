package netmux

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
)

// A raft follower never dials its peers: only a candidate and a leader do.
// So when a standby becomes the active (a planned fail-over, or an election
// after a crash), its vote requests and then its replication would each
// wait for a new connection, and with TLS for a handshake, on the path that
// decides how long the agent has no active. The layer therefore keeps a few
// connections to each peer open and handshaken ahead of need ("spares"),
// and hands one to raft when raft dials. A spare is refilled only a while
// after one was taken, so that a fail-over's handshakes are not simply
// moved into the fail-over itself; a spare that the peer closed (a peer
// restarted) is noticed before it is handed out, and a spare is replaced
// after spareMaxAge, so that a rotated certificate reaches every
// connection within that time.

const (
	// sparesPerPeer is how many spare connections the layer keeps to each
	// peer: a new leader dials each peer up to three times at once (its
	// vote request, whose connection raft keeps for the heartbeats, then
	// its first replication request and its replication pipeline).
	sparesPerPeer = 3
	// spareRefillDelay is how long after a spare was taken (or a
	// connection dialled) the layer waits before it dials a replacement.
	spareRefillDelay = 2 * time.Second
	// spareMaxAge is how long a spare is kept before it is replaced.
	spareMaxAge = 5 * time.Minute
	// spareTick is how often the layer looks at its spares.
	spareTick = 250 * time.Millisecond
	// spareQuickRetries is how many failed dials in a row are retried at
	// the next tick (a peer being restarted is back within seconds) before
	// the layer tries only every spareRetryMax.
	spareQuickRetries = 40
	spareRetryMax     = 5 * time.Second
)

type spare struct {
	conn net.Conn
	at   time.Time
}

type sparePeer struct {
	spares   []spare
	inflight int // refills being dialled
	// quietUntil: no dial before this (after a take, or after failures).
	quietUntil time.Time
	failures   int
}

// spares keeps the spare connections of a raft layer.
type spares struct {
	dial func(address string, timeout time.Duration) (net.Conn, error)
	now  func() time.Time

	mu     sync.Mutex
	peers  map[string]*sparePeer
	closed bool
	kick   chan struct{} // a peer was added: dial without waiting for the tick
	stop   chan struct{}
	done   chan struct{}
}

func newSpares(dial func(string, time.Duration) (net.Conn, error)) *spares {
	s := &spares{dial: dial, now: time.Now, peers: map[string]*sparePeer{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

// want adds peers to keep spares for (an address raft dialled, or a peer
// of the agent's configuration).
func (s *spares) want(addresses ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for _, a := range addresses {
		if _, ok := s.peers[a]; !ok && a != "" {
			s.peers[a] = &sparePeer{}
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	}
}

// dialled records that raft dialled address itself: the peer is wanted
// from now on, and not refilled for a while (a fail-over is under way).
func (s *spares) dialled(address string) {
	s.want(address)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.peers[address]; p != nil {
		p.quietUntil = s.now().Add(spareRefillDelay)
	}
}

// take hands out a live spare to address, or nil. Taking one delays the
// refill (see spareRefillDelay).
func (s *spares) take(address string) net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[address]
	if p == nil {
		return nil
	}
	p.quietUntil = s.now().Add(spareRefillDelay)
	for len(p.spares) > 0 {
		sp := p.spares[len(p.spares)-1]
		p.spares = p.spares[:len(p.spares)-1]
		if s.now().Sub(sp.at) < spareMaxAge && alive(sp.conn) {
			return sp.conn
		}
		sp.conn.Close()
	}
	return nil
}

// close stops the refills and closes every spare.
func (s *spares) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.peers {
		for _, sp := range p.spares {
			sp.conn.Close()
		}
		p.spares = nil
	}
}

func (s *spares) loop() {
	defer close(s.done)
	t := time.NewTicker(spareTick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
			// At once: an instance just started may be made the active
			// within moments (a rolling upgrade's ftstop -i).
		}
		// Every missing spare at once, in parallel, without waiting for
		// one peer's dials before another's: a peer that has just
		// restarted (its old spares are dead) must have spares again
		// before the next fail-over, whatever another peer's dial does.
		for addr, missing := range s.due() {
			for range missing {
				// Not waited for at close: keep closes what comes late.
				go func() {
					conn, err := s.dial(addr, 2*time.Second)
					s.keep(addr, conn, err)
				}()
			}
		}
	}
}

// due drops stale and dead spares and returns, for each peer that may be
// dialled now, how many spares it lacks.
func (s *spares) due() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := map[string]int{}
	for addr, p := range s.peers {
		p.spares = slices.DeleteFunc(p.spares, func(sp spare) bool {
			if now.Sub(sp.at) >= spareMaxAge || !alive(sp.conn) {
				sp.conn.Close()
				return true
			}
			return false
		})
		if n := sparesPerPeer - len(p.spares) - p.inflight; n > 0 && !now.Before(p.quietUntil) {
			out[addr] = n
			p.inflight += n
		}
	}
	return out
}

// keep records the result of a refill's dial.
func (s *spares) keep(addr string, conn net.Conn, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[addr]
	p.inflight--
	if err != nil {
		// A peer that is restarting is tried again at every tick for a
		// while, then less often.
		p.failures++
		backoff := spareTick
		if p.failures > spareQuickRetries {
			backoff = spareRetryMax
		}
		p.quietUntil = s.now().Add(backoff)
		return
	}
	if s.closed || len(p.spares) >= sparesPerPeer {
		conn.Close()
		return
	}
	p.failures = 0
	p.spares = append(p.spares, spare{conn: conn, at: s.now()})
}

// alive reports whether the peer has not closed conn. An idle raft
// connection receives nothing, so a peek that would block means open and
// an end of stream means closed. Something waiting on a TLS connection is
// read through TLS, briefly: a session ticket (from a build that still
// sends them) is taken in and the connection stays; the peer's
// close_notify, an alert or an end of stream mean closed.
func alive(conn net.Conn) bool {
	tc, isTLS := conn.(*tls.Conn)
	raw := conn
	if isTLS {
		raw = tc.NetConn()
	}
	switch peek(raw) {
	case peekNothing:
		return true
	case peekClosed:
		return false
	}
	if !isTLS {
		return true
	}
	_ = tc.SetReadDeadline(time.Now().Add(aliveReadWait))
	var b [1]byte
	n, err := tc.Read(b[:])
	_ = tc.SetReadDeadline(time.Time{})
	var ne net.Error
	// Data on an idle raft connection would be lost to the next reader:
	// such a connection is not handed out.
	return n == 0 && errors.As(err, &ne) && ne.Timeout()
}

// aliveReadWait bounds the read of what waits on a spare TLS connection.
const aliveReadWait = 2 * time.Millisecond

type peekResult int

const (
	peekNothing peekResult = iota // nothing to read: open
	peekData                      // bytes wait to be read
	peekClosed                    // end of stream or an error
)

// peek looks, without reading or waiting, at what waits on conn.
func peek(conn net.Conn) peekResult {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return peekNothing
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return peekClosed
	}
	res := peekClosed
	var buf [1]byte
	cerr := rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
			res = peekData
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
			res = peekNothing
		}
		return true // never wait for readiness
	})
	if cerr != nil {
		return peekClosed
	}
	return res
}
