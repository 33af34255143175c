package netmux

import (
	"github.com/ftagent/ftagent/pkg/trust"

	"bufio"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestRoutesRaftAndAPIOnOneListener(t *testing.T) {
	m, err := Listen("127.0.0.1:0", Security{Mode: trust.Disabled})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	addr := m.Addr().String()

	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "api:"+r.URL.Path)
	})}
	go func() { _ = srv.Serve(m.API()) }()
	defer srv.Close()

	raftLayer := m.NewRaftLayer(addr)
	got := make(chan string, 1)
	go func() {
		c, err := raftLayer.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
	}()

	// An HTTP request reaches the API, with its first byte intact.
	resp, err := http.Get("http://" + addr + "/v1/instance")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "api:/v1/instance" {
		t.Fatalf("API got %q", body)
	}

	// A raft dial sends the header byte, which the raft side never sees.
	c, err := raftLayer.Dial(raft.ServerAddress(addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "raft hello\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case line := <-got:
		if line != "raft hello\n" {
			t.Fatalf("raft layer read %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("raft connection never accepted")
	}
	if raftLayer.Addr().String() != addr {
		t.Fatalf("advertised %s, want %s", raftLayer.Addr(), addr)
	}
}

func TestNewRaftLayerReplacesAClosedOne(t *testing.T) {
	m, err := Listen("127.0.0.1:0", Security{Mode: trust.Disabled})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	first := m.NewRaftLayer("")
	_ = first.Close() // raft closes its transport's layer at shutdown
	if _, err := first.Accept(); err == nil {
		t.Fatal("closed layer still accepts")
	}
	second := m.NewRaftLayer("")
	accepted := make(chan error, 1)
	go func() {
		c, err := second.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := second.Dial(raft.ServerAddress(m.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatalf("new layer: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("new raft layer never got the connection")
	}
}

func TestCloseEndsAccept(t *testing.T) {
	m, err := Listen("127.0.0.1:0", Security{Mode: trust.Disabled})
	if err != nil {
		t.Fatal(err)
	}
	l := m.NewRaftLayer("")
	errs := make(chan error, 2)
	go func() { _, err := m.API().Accept(); errs <- err }()
	go func() { _, err := l.Accept(); errs <- err }()
	m.Close()
	for i := 0; i < 2; i++ {
		select {
		case err := <-errs:
			if err == nil {
				t.Fatal("Accept returned a connection after Close")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Accept still blocked after Close")
		}
	}
}
