// Package netmux shares one TCP listener between raft traffic and the client
// API. Each instance has exactly one address: raft peers announce themselves
// with a one-byte header; anything else (an HTTP request line) goes to the API.
// Later, TLS can wrap the listener here without the two users noticing.
package netmux

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// RaftHeader is the first byte of every raft connection. HTTP requests start
// with an upper-case method name and TLS with 0x16, so 0x01 cannot be mistaken.
const RaftHeader byte = 0x01

// sniffTimeout bounds how long a new connection may take to send its first byte.
const sniffTimeout = 10 * time.Second

// ErrClosed is returned by Accept on a closed listener.
var ErrClosed = errors.New("listener closed")

// Mux accepts connections on one listener and hands each to the raft stream
// layer or to the API listener by its first byte.
type Mux struct {
	ln  net.Listener
	api *chanListener

	mu   sync.Mutex
	raft *RaftLayer // current raft layer; replaced when raft restarts

	closeOnce sync.Once
	done      chan struct{}
}

// Listen opens the instance's listener on address.
func Listen(address string) (*Mux, error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	m := &Mux{ln: ln, done: make(chan struct{})}
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
	l := &RaftLayer{chanListener: newChanListener(m.ln.Addr(), m.done), advertise: advertise}
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
		go m.route(conn)
	}
}

func (m *Mux) route(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(conn, 512)
	first, err := br.Peek(1)
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if first[0] == RaftHeader {
		_, _ = br.Discard(1)
		m.mu.Lock()
		l := m.raft
		m.mu.Unlock()
		if l == nil || !l.deliver(&peekedConn{Conn: conn, r: br}) {
			conn.Close()
		}
		return
	}
	if !m.api.deliver(&peekedConn{Conn: conn, r: br}) {
		conn.Close()
	}
}

// RaftLayer is a raft.StreamLayer over the mux.
type RaftLayer struct {
	*chanListener
	advertise string
}

var _ raft.StreamLayer = (*RaftLayer)(nil)

// Dial opens a raft connection to a peer and sends the header byte.
func (l *RaftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(address), timeout)
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
