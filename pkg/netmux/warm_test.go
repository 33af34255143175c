package netmux

import (
	"bufio"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ftagent/ftagent/pkg/trust"
)

// tlsPair issues certificates for two instances of agent ORDERS and
// returns their security settings.
func tlsPair(t *testing.T) (ha1, ha2 Security) {
	t.Helper()
	res, err := trust.Init(trust.InitOptions{Dir: filepath.Join(t.TempDir(), "tls"), Agent: "ORDERS", Instances: []string{"ha1", "ha2"}})
	if err != nil {
		t.Fatal(err)
	}
	sec := func(n string) Security {
		s, err := trust.Load(trust.Files{Certificate: res.Instances[n][0], PrivateKey: res.Instances[n][1], CA: res.CA}, trust.Keys{Certificate: "c", PrivateKey: "k", CA: "ca"})
		if err != nil {
			t.Fatal(err)
		}
		return Security{Mode: trust.Required, Store: s, Agent: "ORDERS"}
	}
	return sec("ha1"), sec("ha2")
}

// raftPeer is the raft side of a mux: it accepts raft connections and
// reports each line read on any of them.
type raftPeer struct {
	m     *Mux
	layer *RaftLayer
	lines chan string

	mu    sync.Mutex
	conns []net.Conn
	ended int // connections whose reading ended (the dialler closed them)
}

func newRaftPeer(t *testing.T, addr string, sec Security) *raftPeer {
	t.Helper()
	m, err := Listen(addr, sec)
	if err != nil {
		t.Fatal(err)
	}
	p := &raftPeer{m: m, layer: m.NewRaftLayer(""), lines: make(chan string, 16)}
	go func() {
		for {
			c, err := p.layer.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			go func() {
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						p.mu.Lock()
						p.ended++
						p.mu.Unlock()
						return
					}
					p.lines <- line
				}
			}()
		}
	}()
	return p
}

func (p *raftPeer) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// stop closes the mux and every raft connection it accepted, as a
// stopped process would.
func (p *raftPeer) stop() {
	p.layer.Close()
	p.m.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *raftPeer) expectLine(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-p.lines:
		if got != want {
			t.Fatalf("peer read %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("peer did not read %q", want)
	}
}

// A raft layer keeps handshaken spare connections to the peers it is told
// of and hands them to raft's dials: the peer accepts no new connection
// when raft dials. A spare the peer has closed (the peer restarted) is
// never handed out; the dial opens a new connection to the new process.
func TestRaftLayerHandsOutSpares(t *testing.T) {
	sec1, sec2 := tlsPair(t)
	peer := newRaftPeer(t, "127.0.0.1:0", sec2)
	addr := peer.m.Addr().String()

	m1, err := Listen("127.0.0.1:0", sec1)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	layer := m1.NewRaftLayer("")
	defer layer.Close()
	layer.Warm(addr)
	waitFor(t, "the peer holds the spares", func() bool { return peer.accepted() == sparesPerPeer })

	for i := range sparesPerPeer {
		c, err := layer.Dial(raft.ServerAddress(addr), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "hello\n"); err != nil {
			t.Fatal(err)
		}
		peer.expectLine(t, "hello\n")
		if n := peer.accepted(); n != sparesPerPeer {
			t.Fatalf("dial %d: the peer accepted %d connections, want the %d spares only", i+1, n, sparesPerPeer)
		}
		c.Close()
	}
	// No spare left: a dial opens a connection (the refill waits).
	c, err := layer.Dial(raft.ServerAddress(addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, "the peer accepts the dialled connection", func() bool { return peer.accepted() == sparesPerPeer+1 })
	waitFor(t, "the spares are refilled", func() bool { return peer.accepted() == 2*sparesPerPeer+1 })

	// The peer restarts at the same address: its old spares are dead.
	peer.stop()
	peer2 := newRaftPeer(t, addr, sec2)
	defer peer2.stop()
	c, err = layer.Dial(raft.ServerAddress(addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "again\n"); err != nil {
		t.Fatal(err)
	}
	peer2.expectLine(t, "again\n")
	c.Close()
}

// Closing the layer closes its spares: the peer sees them end.
func TestRaftLayerCloseClosesSpares(t *testing.T) {
	sec1, sec2 := tlsPair(t)
	peer := newRaftPeer(t, "127.0.0.1:0", sec2)
	defer peer.stop()
	m1, err := Listen("127.0.0.1:0", sec1)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	layer := m1.NewRaftLayer("")
	layer.Warm(peer.m.Addr().String())
	waitFor(t, "the peer holds the spares", func() bool { return peer.accepted() == sparesPerPeer })
	layer.Close()
	waitFor(t, "the peer sees every spare end", func() bool {
		peer.mu.Lock()
		defer peer.mu.Unlock()
		return peer.ended == sparesPerPeer
	})
}

// alive tells an open connection from one its peer closed, in plain TCP
// and in TLS (where the peer's close sends a close_notify before the end
// of the stream).
func TestAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	if !alive(c) {
		t.Fatal("an open connection is reported dead")
	}
	s.Close()
	waitFor(t, "the close is seen", func() bool { return !alive(c) })

	// TLS: a spare whose peer closed it.
	_, sec2 := tlsPair(t)
	peer := newRaftPeer(t, "127.0.0.1:0", sec2)
	defer peer.stop()
	d := &trust.Dialer{Mode: trust.Required, Store: sec2.Store, Check: trust.ExpectInstanceOf("ORDERS")}
	layer := &RaftLayer{dialer: d}
	tc, err := layer.dial(peer.m.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	waitFor(t, "the peer accepts", func() bool { return peer.accepted() == 1 })
	if !alive(tc) {
		t.Fatal("an open TLS connection is reported dead")
	}
	if _, err := io.WriteString(tc, "still usable\n"); err != nil {
		t.Fatal(err)
	}
	peer.expectLine(t, "still usable\n")
	peer.stop()
	waitFor(t, "the TLS close is seen", func() bool { return !alive(tc) })
}

// Refusals counts each refused connection by class.
func TestRefusalsAreCounted(t *testing.T) {
	_, sec := tlsPair(t)
	m, err := Listen("127.0.0.1:0", sec)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.Contains(string(b), "400") {
		t.Fatalf("a plaintext request got %q", b)
	}
	got := m.Refusals()
	if got["plaintext"] != 1 || got["tls_handshake"] != 0 || got["raft_identity"] != 0 || got["peer_limit"] != 0 {
		t.Fatalf("refusals %v, want one plaintext", got)
	}
}
