package test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/netmux"
	"github.com/ftagent/ftagent/pkg/trust"
	"github.com/ftagent/ftagent/test/harness"
)

// attackFrom is the attacker's address: Linux routes all of 127.0.0.0/8
// to loopback, and the cluster and its clients are 127.0.0.1.
const attackFrom = "127.0.0.2"

// slowCut is one attacker connection's end.
type slowCut struct {
	kind  string
	after time.Duration // from its connect to the server closing it
	err   error         // the attack could not even start
}

// slowLoris opens one connection from attackFrom to addr and keeps it as
// slow as kind says until the server closes it or ctx ends:
//   - "silent": plaintext that never sends its first byte;
//   - "hello": a TLS ClientHello sent one byte a second, never complete;
//   - "quiet": TLS completed with a valid client certificate (cfg), then
//     nothing;
//   - "header": TLS completed with a valid client certificate (cfg), then
//     an HTTP request header sent one byte a second, never complete.
//
// connected is told once the connection is up (with TLS, once TLS is).
func slowLoris(ctx context.Context, kind, addr string, cfg *tls.Config, connected func(), out chan<- slowCut) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attackFrom)}, Timeout: 10 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		out <- slowCut{kind: kind, err: err}
		return
	}
	start := time.Now()
	conn := raw
	var trickle []byte
	switch kind {
	case "hello":
		// A handshake record announcing 512 bytes, of which a ClientHello's
		// type and length come at once and the rest never.
		_, _ = raw.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc})
		trickle = make([]byte, 500)
	case "quiet", "header":
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			out <- slowCut{kind: kind, after: time.Since(start), err: fmt.Errorf("TLS: %w", err)}
			return
		}
		conn = tc
		if kind == "quiet" {
			break
		}
		trickle = []byte("GET " + api.PathAgent + " HTTP/1.1\r\nHost: ftagent\r\nX-Slow: " + strings.Repeat("s", 200) + "\r\n\r\n")
	}
	connected()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	go func() {
		for _, b := range trickle {
			if _, err := conn.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
	}()
	// The read ends when the server closes the connection (or answers
	// with an error and closes it).
	_, _ = io.Copy(io.Discard, conn)
	after := time.Since(start)
	conn.Close()
	if ctx.Err() != nil {
		return // the test gave up on it: not a cut
	}
	out <- slowCut{kind: kind, after: after}
}

// Slow-loris connections and oversized requests from one address do not
// harm the other clients (issue 11): while an attacker holds more
// connections to the active than one address may (some silent, some in a
// TLS handshake that never ends, some silent or trickling an HTTP header
// after a complete handshake), `ftagent show` answers every time as quickly as
// usual and a transfer completes; the attacker's connections over the
// bound are closed at once, the others when their stage's timeout passes;
// requests with a header or a body over the bounds are refused and create
// nothing.
func TestSlowLorisDoesNotDelayOthers(t *testing.T) {
	c, active := xferCluster(t)
	addr := c.Addr[active]
	d, err := c.TLS.Dialer(harness.ClientAdmin)
	if err != nil {
		t.Fatal(err)
	}
	cfg := d.Store.ClientConfig(trust.ExpectInstanceOf(c.TLS.Agent))
	src := xferRandomFile(t, c, "in/h.bin", 4*xferMiB, 11)

	// The attack: more connections than the bound, the TLS ones first (so
	// that those over the bound are silent ones).
	const perKind = 70
	kinds := []string{"header", "quiet", "hello", "silent"}
	total := perKind * len(kinds)
	if total <= netmux.DefaultMaxConnsPerPeer {
		t.Fatalf("%d attacker connections do not exceed the bound %d", total, netmux.DefaultMaxConnsPerPeer)
	}
	actx, stopAttack := context.WithCancel(context.Background())
	defer stopAttack()
	cuts := make(chan slowCut, total)
	var open atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopAttack()
	attackStart := time.Now()
	for _, kind := range kinds {
		var ready sync.WaitGroup
		for i := 0; i < perKind; i++ {
			ready.Add(1)
			wg.Add(1)
			var once sync.Once
			done := func() { once.Do(ready.Done) }
			go func() {
				defer wg.Done()
				defer done()
				slowLoris(actx, kind, addr, cfg, func() { open.Add(1); done() }, cuts)
			}()
			handshake := kind == "header" || kind == "quiet"
			if !handshake || i%8 == 7 {
				// Keep the order of the accepts, and the handshakes
				// (this process's as well as the active's) from taking
				// both cores of a small machine at once: the raft
				// heartbeats need some.
				time.Sleep(2 * time.Millisecond)
				if handshake {
					ready.Wait()
				}
			}
		}
		ready.Wait()
	}
	t.Logf("attack: %d connections opened from %s in %v, %d of them up", total, attackFrom, time.Since(attackStart).Round(time.Millisecond), open.Load())

	// Meanwhile, `ftagent show` from 127.0.0.1 answers at once, every time.
	const showLimit = 5 * time.Second // the client's timeout is 2 s an attempt
	var cut []slowCut
	drain := func() {
		for {
			select {
			case k := <-cuts:
				cut = append(cut, k)
			default:
				return
			}
		}
	}
	underAttack := 0
	for i := 0; i < 5; i++ {
		drain()
		held := total - len(cut)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		began := time.Now()
		v, r, err := c.Show(ctx)
		took := time.Since(began)
		cancel()
		if err != nil || r.Exit != 0 || v.Active == "" {
			t.Fatalf("show %d during the attack: exit %d %v, active %q: %s", i, r.Exit, err, v.Active, r.Stderr)
		}
		if v.Active != active {
			// Not the attack's doing (it reaches no raft connection),
			// but the machine's: 2 busy cores can delay a heartbeat.
			t.Logf("show %d: %s is active now, not %s", i, v.Active, active)
		}
		if took > showLimit {
			t.Errorf("show %d during the attack took %v, more than %v", i, took.Round(time.Millisecond), showLimit)
		}
		t.Logf("show %d: %v, with %d attacker connections not yet cut", i, took.Round(time.Millisecond), held)
		if held >= netmux.DefaultMaxConnsPerPeer-20 {
			underAttack++
		}
		time.Sleep(300 * time.Millisecond)
	}
	if underAttack < 3 {
		t.Errorf("only %d of the shows ran while the attacker held its connections: the test proves nothing", underAttack)
	}

	// Oversized requests (from 127.0.0.1, the attacker's address being at
	// its bound) are refused and create nothing.
	oversized := func(what string, req *http.Request, want int) {
		t.Helper()
		resp, err := c.HTTP.Do(req)
		var ne net.Error
		switch {
		case err != nil && errors.As(err, &ne) && ne.Timeout():
			t.Errorf("%s: timed out (%v), want it refused", what, err)
		case err != nil:
			t.Logf("%s: connection closed (%v)", what, err)
		default:
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s: %s %s, want %d", what, resp.Status, b, want)
			}
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+api.PathAgent, nil)
	req.Header.Set("X-Pad", strings.Repeat("p", 100<<10))
	oversized("a 100 KiB header", req, http.StatusRequestHeaderFieldsTooLarge)
	// Valid transfer requests but for their size (JSON allows the
	// padding), which without the bound would be created.
	bigBody := func(id string) string {
		return `{"id":"` + id + `","request":{"sources":["in/h.bin"],"destination":"out/` + id + `.bin"}` + strings.Repeat(" ", 2<<20) + `}`
	}
	ids := []string{"00000000000000bb", "00000000000000cc"}
	req, _ = http.NewRequest(http.MethodPost, "http://"+addr+api.PathTransfers, strings.NewReader(bigBody(ids[0])))
	oversized("a 2 MiB body", req, http.StatusRequestEntityTooLarge)
	req, _ = http.NewRequest(http.MethodPost, "http://"+addr+api.PathTransfers, io.MultiReader(strings.NewReader(bigBody(ids[1]))))
	req.ContentLength = -1 // chunked: no length to refuse it by
	oversized("a 2 MiB chunked body", req, http.StatusRequestEntityTooLarge)

	// And a transfer goes through.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, r, err := c.CreateTransfer(ctx, "--wait", "in/h.bin", "out/h.bin")
	if err != nil || r.Exit != 0 {
		t.Fatalf("transfer during the attack: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	xferCheckCompleted(t, c, v, map[string]string{"out/h.bin": src})
	for _, id := range ids {
		if v, r, err := c.TransferView(ctx, id); err == nil || !strings.Contains(r.Stderr, "no transfer "+id) {
			t.Errorf("transfer %s of an oversized request: %v, %s; want none", id, err, harness.ViewText(v))
		}
		if _, err := os.Stat(xferPath(c, "out/"+id+".bin")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("out/%s.bin of an oversized request: %v, want none", id, err)
		}
	}

	// Every attacker connection is cut: those over the bound at once, the
	// others when the timeout of the stage they dawdle in passes (10 s
	// each: the first byte, the TLS handshake, the first byte inside TLS,
	// the HTTP header).
	const (
		atOnce = 3 * time.Second
		cutBy  = 30 * time.Second
		giveUp = 45 * time.Second
	)
	deadline := time.After(time.Until(attackStart.Add(giveUp)))
collect:
	for len(cut) < total {
		select {
		case k := <-cuts:
			cut = append(cut, k)
		case <-deadline:
			break collect
		}
	}
	stopAttack()
	refused, late, slowest := 0, map[string]int{}, map[string]time.Duration{}
	for _, k := range cut {
		if k.err == nil && k.after >= atOnce {
			slowest[k.kind] = max(slowest[k.kind], k.after.Round(100*time.Millisecond))
		}
		switch {
		case k.err != nil:
			t.Errorf("%s connection: %v", k.kind, k.err)
		case k.after < atOnce:
			refused++
			if k.kind != "silent" {
				t.Errorf("a %s connection, opened before the bound was reached, was closed after %v", k.kind, k.after.Round(time.Millisecond))
			}
		case k.after > cutBy:
			late[k.kind]++
		}
	}
	t.Logf("attack: %d connections closed at once, %d cut later (the last of each kind after %v), %d not cut after %v",
		refused, len(cut)-refused, slowest, total-len(cut), giveUp)
	if len(cut) < total || len(late) > 0 {
		t.Errorf("%d attacker connections still open after %v, cut after more than %v: %v", total-len(cut), giveUp, cutBy, late)
	}
	if over := total - netmux.DefaultMaxConnsPerPeer; refused < over {
		t.Errorf("%d attacker connections closed at once, want at least the %d over the bound", refused, over)
	}
	b, _ := os.ReadFile(filepath.Join(c.Dir, active+".log"))
	if !strings.Contains(string(b), fmt.Sprintf("already has %d connections open", netmux.DefaultMaxConnsPerPeer)) {
		t.Errorf("%s did not log the connections refused over the bound", active)
	}
}
