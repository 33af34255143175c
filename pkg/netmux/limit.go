package netmux

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// DefaultMaxConnsPerPeer bounds the connections one remote IP address may
// hold open at once (Security.MaxConnsPerPeer), counted from accept to
// close, whatever they carry: raft, the API, or nothing yet (a handshake
// under way, a client sending slowly). A connection over the bound is
// closed at once, before any TLS work is done for it.
//
// The bound is per address, not per identity, and must leave room for
// everything that legitimately shares one address: on a test machine or
// under `ftagent dev` every instance and every client is 127.0.0.1, so the
// raft pools of the other instances (3 each, plus pipelines and
// snapshots), standby status publishing and probes, the commands and
// benchmarks with dozens of concurrent clients, and idle keep-alive
// connections all count against it. 256 leaves a wide margin over that
// while keeping what one address can hold (descriptors, goroutines,
// handshakes) small.
const DefaultMaxConnsPerPeer = 256

// refusalReportEvery is how often, at most, the refusals of one address
// over the bound are reported (a flood of connections must not become a
// flood of audit records): the others are counted and reported with the
// next one.
const refusalReportEvery = time.Second

// peerLimit counts the open connections of each remote address.
type peerLimit struct {
	max int

	mu   sync.Mutex
	open map[string]int
	// reported: when each address's refusals were last reported, and how
	// many were not reported since.
	reported map[string]time.Time
	held     map[string]int
}

func newPeerLimit(max int) *peerLimit {
	if max == 0 {
		max = DefaultMaxConnsPerPeer
	}
	return &peerLimit{max: max, open: map[string]int{}, reported: map[string]time.Time{}, held: map[string]int{}}
}

// peerOf is the address a connection is counted under: the remote IP.
func peerOf(c net.Conn) string {
	a := c.RemoteAddr()
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// admit counts conn against its peer's bound: the counted connection (it
// is released when closed), or nil and the reason to report when the peer
// is at its bound ("" when the refusal is not to be reported now).
func (l *peerLimit) admit(conn net.Conn) (net.Conn, string) {
	peer := peerOf(conn)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max < 0 || l.open[peer] < l.max {
		l.open[peer]++
		return &countedConn{Conn: conn, release: func() { l.release(peer) }}, ""
	}
	now := time.Now()
	if last, ok := l.reported[peer]; ok && now.Sub(last) < refusalReportEvery {
		l.held[peer]++
		return nil, ""
	}
	why := fmt.Sprintf("%s already has %d connections open, the most one address may have: closed", peer, l.max)
	if n := l.held[peer]; n > 0 {
		why += fmt.Sprintf(" (and %d more refused since the last report)", n)
	}
	l.reported[peer] = now
	delete(l.held, peer)
	return nil, why
}

func (l *peerLimit) release(peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[peer]--; l.open[peer] <= 0 {
		delete(l.open, peer)
		delete(l.reported, peer)
		delete(l.held, peer)
	}
}

// count is the number of open connections of peer.
func (l *peerLimit) count(peer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[peer]
}

// countedConn gives its place back to the peer's count when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
