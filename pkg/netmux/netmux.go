// Package netmux shares one TCP listener between raft traffic and the client
// API. Each instance has exactly one address: raft peers announce themselves
// with a one-byte header; anything else (an HTTP request line) goes to the API.
//
// With TLS (trust.Required or trust.Optional) the mux does the handshake
// itself and sniffs the header inside the TLS stream, so raft and the API
// share the listener as before. Raft connections are accepted only from a
// certificate that names an instance of this agent; API connections carry
// their TLS state to the server (see Conn), which decides what the caller
// may do. In trust.Required a plaintext connection gets a 400 (if it looks
// like HTTP) and is closed.
//
// Every stage before a connection reaches raft or the API is bounded in
// time: its first byte (sniffTimeout), the TLS handshake
// (trust.HandshakeTimeout), and the first byte inside TLS (sniffTimeout);
// the API server bounds the rest (its ReadHeaderTimeout and others). The
// connections of one remote address are bounded in number (see
// DefaultMaxConnsPerPeer), so that a slow or hostile client cannot take
// the listener from the others.
package netmux

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ftagent/ftagent/pkg/trust"
)

// RaftHeader is the first byte of every raft connection. HTTP requests start
// with an upper-case method name and TLS with 0x16, so 0x01 cannot be mistaken.
const RaftHeader byte = 0x01

// sniffTimeout bounds how long a new connection may take to send its first byte.
const sniffTimeout = 10 * time.Second

// tlsHandshake is the first byte of a TLS connection (a handshake record).
const tlsHandshake byte = 0x16

// Security says how the mux's connections are secured.
type Security struct {
	Mode  trust.Mode
	Store *trust.Store // required unless Mode is trust.Disabled
	// Agent is the agent whose instances may speak raft here.
	Agent string
	// Refused, if set, is told of every connection refused before it
	// reached raft or the API: its remote address and why.
	Refused func(remote, reason string)
	// MaxConnsPerPeer bounds the connections one remote IP address may
	// have open (see DefaultMaxConnsPerPeer, the default when 0); negative:
	// no bound.
	MaxConnsPerPeer int
}

// ErrClosed is returned by Accept on a closed listener.
var ErrClosed = errors.New("listener closed")

// Mux accepts connections on one listener and hands each to the raft stream
// layer or to the API listener by its first byte.
type Mux struct {
	ln        net.Listener
	api       *chanListener
	sec       Security
	serverTLS *tls.Config
	dialer    *trust.Dialer
	limit     *peerLimit

	mu   sync.Mutex
	raft *RaftLayer // current raft layer; replaced when raft restarts

	closeOnce sync.Once
	done      chan struct{}

	refusals [numRefusals]atomic.Uint64 // by RefusalReasons' index
}

// RefusalReasons name the classes of connections refused before they
// reached raft or the API (see Refusals).
var RefusalReasons = [numRefusals]string{"tls_handshake", "plaintext", "raft_identity", "peer_limit"}

const (
	refusedHandshake = iota
	refusedPlaintext
	refusedRaftIdentity
	refusedPeerLimit
	numRefusals
)

// Refusals counts the connections refused since the listener opened, by
// class (RefusalReasons): every one, also those whose report was held back.
func (m *Mux) Refusals() map[string]uint64 {
	out := make(map[string]uint64, numRefusals)
	for i, r := range RefusalReasons {
		out[r] = m.refusals[i].Load()
	}
	return out
}

// Listen opens the instance's listener on address.
func Listen(address string, sec Security) (*Mux, error) {
	if sec.Mode == "" {
		sec.Mode = trust.Required
	}
	if sec.Mode != trust.Disabled && sec.Store == nil {
		return nil, errors.New("netmux: TLS needs a certificate store")
	}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	m := &Mux{ln: ln, sec: sec, done: make(chan struct{}), limit: newPeerLimit(sec.MaxConnsPerPeer)}
	m.dialer = &trust.Dialer{Mode: sec.Mode, Store: sec.Store, Check: trust.ExpectInstanceOf(sec.Agent)}
	if sec.Mode != trust.Disabled {
		// Optional: a client certificate is verified if given; plaintext
		// and certificate-less callers are let through, for the roll.
		m.serverTLS = sec.Store.ServerConfig(sec.Mode == trust.Required)
	}
	m.api = newChanListener(ln.Addr(), m.done)
	go m.serve()
	return m, nil
}

// Addr is the listener's address.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// API is the listener the client API server serves on.
func (m *Mux) API() net.Listener { return m.api }

// NewRaftLayer returns a fresh raft stream layer that receives raft
// connections from now on. Closing a layer (raft does so at shutdown) does not
// close the mux, so a restarted raft node can take a new one.
func (m *Mux) NewRaftLayer(advertise string) *RaftLayer {
	l := &RaftLayer{chanListener: newChanListener(m.ln.Addr(), m.done), advertise: advertise, dialer: m.dialer}
	l.spares = newSpares(l.dial)
	m.mu.Lock()
	m.raft = l
	m.mu.Unlock()
	return l
}

// Close stops accepting connections; raft and API listeners see ErrClosed.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
	})
	return err
}

func (m *Mux) serve() {
	var delay time.Duration
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			// Anything but our own Close (e.g. too many open files) is
			// passing: back off and keep serving, never spin and never give
			// the instance up for it.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay < time.Second {
				delay *= 2
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		// Counted before any work is done for it (the TLS handshake is the
		// costly part): over its peer's bound it is closed at once.
		counted, why := m.limit.admit(conn)
		if counted == nil {
			m.refusals[refusedPeerLimit].Add(1)
			if why != "" {
				m.refuse(conn, why)
			}
			conn.Close()
			continue
		}
		go m.route(counted)
	}
}

func (m *Mux) route(raw net.Conn) {
	_ = raw.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(raw, 512)
	first, err := br.Peek(1)
	if err != nil {
		raw.Close()
		return
	}
	conn := &Conn{peekedConn: peekedConn{Conn: raw, r: br}}
	switch {
	case first[0] == tlsHandshake && m.sec.Mode != trust.Disabled:
		tc := tls.Server(&conn.peekedConn, m.serverTLS)
		_ = raw.SetDeadline(time.Now().Add(trust.HandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			m.refusals[refusedHandshake].Add(1)
			m.refuse(raw, "TLS handshake: "+err.Error())
			raw.Close()
			return
		}
		_ = raw.SetDeadline(time.Time{})
		_ = raw.SetReadDeadline(time.Now().Add(sniffTimeout))
		state := tc.ConnectionState()
		tbr := bufio.NewReaderSize(tc, 512)
		if first, err = tbr.Peek(1); err != nil {
			tc.Close()
			return
		}
		conn = &Conn{peekedConn: peekedConn{Conn: tc, r: tbr}, state: &state}
	case m.sec.Mode == trust.Required:
		m.refusals[refusedPlaintext].Add(1)
		m.refuse(raw, "plaintext connection: TLS is required")
		if first[0] != RaftHeader {
			_ = raw.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = raw.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" +
				"this ftagent instance requires TLS (tlsMode=required): use https and a client certificate\n"))
		}
		raw.Close()
		return
	}
	_ = raw.SetReadDeadline(time.Time{})
	if first[0] == RaftHeader {
		if conn.state != nil {
			id, ok, err := m.sec.Store.PeerOf(*conn.state)
			switch {
			case err != nil:
				m.refusals[refusedRaftIdentity].Add(1)
				m.refuse(raw, "raft: "+err.Error())
				conn.Close()
				return
			case !ok || !id.IsInstanceOf(m.sec.Agent):
				who := "a connection without a certificate"
				if ok {
					who = id.String()
				}
				m.refusals[refusedRaftIdentity].Add(1)
				m.refuse(raw, fmt.Sprintf("raft from %s: only instances of agent %s may speak raft here", who, m.sec.Agent))
				conn.Close()
				return
			}
		}
		_, _ = conn.r.Discard(1)
		m.mu.Lock()
		l := m.raft
		m.mu.Unlock()
		if l == nil || !l.deliver(conn) {
			conn.Close()
		}
		return
	}
	if !m.api.deliver(conn) {
		conn.Close()
	}
}

func (m *Mux) refuse(conn net.Conn, reason string) {
	if m.sec.Refused != nil {
		m.sec.Refused(conn.RemoteAddr().String(), reason)
	}
}

// Conn is a connection the mux delivers: its TLS state, nil for a
// plaintext one.
type Conn struct {
	peekedConn
	state *tls.ConnectionState
}

// TLS is the connection's TLS state, nil when it is plaintext.
func (c *Conn) TLS() *tls.ConnectionState { return c.state }

// RaftLayer is a raft.StreamLayer over the mux. It keeps spare connections
// to its peers (see spares).
type RaftLayer struct {
	*chanListener
	advertise string
	dialer    *trust.Dialer
	spares    *spares
}

var _ raft.StreamLayer = (*RaftLayer)(nil)

// Dial hands raft a spare connection to the peer, or opens one.
func (l *RaftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if c := l.spares.take(string(address)); c != nil {
		return c, nil
	}
	l.spares.dialled(string(address))
	return l.dial(string(address), timeout)
}

// Warm names peers to keep spare connections to before raft first dials
// them (a follower never does until it stands for election).
func (l *RaftLayer) Warm(addresses ...string) { l.spares.want(addresses...) }

// Close stops the layer: raft's listener sees ErrClosed, and the spare
// connections are closed.
func (l *RaftLayer) Close() error {
	l.chanListener.Close()
	l.spares.close()
	return nil
}

// dial opens a raft connection to a peer and sends the header byte.
func (l *RaftLayer) dial(address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := l.dialer.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte{RaftHeader}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raft header to %s: %w", address, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// Addr reports the advertised address, which raft sends to its peers.
func (l *RaftLayer) Addr() net.Addr {
	if l.advertise == "" {
		return l.chanListener.Addr()
	}
	return advertisedAddr(l.advertise)
}

type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	parent <-chan struct{} // closed when the mux closes

	mu     sync.Mutex
	closed chan struct{}
	err    error
}

func newChanListener(addr net.Addr, parent <-chan struct{}) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), parent: parent, closed: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	case <-l.parent:
		return false
	}
}

func (l *chanListener) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
		close(l.closed)
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	case <-l.parent:
		return nil, ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.fail(ErrClosed)
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// peekedConn replays the bytes the mux read while sniffing.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
