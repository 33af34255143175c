// End-to-end tests of the procedures of docs/security.md, with real
// processes and a transfer running throughout: rotating to a new CA in
// three rolls (re-read on SIGHUP, no restart), and moving a running agent
// from tlsMode=disabled to required in two rolls of restarts.
package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/trust"
	"github.com/ftagent/ftagent/test/harness"
)

// rotReadFile reads a file the test needs.
func rotReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rotInstall replaces path with data by a rename, so that a re-read never
// sees half a file.
func rotInstall(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// rotSetProps rewrites the cluster's agent.properties: each line key=…
// of set is replaced (or appended), and the lines of keys in drop removed.
func rotSetProps(t *testing.T, c *harness.Cluster, set map[string]string, drop ...string) {
	t.Helper()
	var out []string
	done := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(rotReadFile(t, c.Props))), "\n") {
		key, _, _ := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if slices.Contains(drop, key) {
			continue
		}
		if v, ok := set[key]; ok {
			if !done[key] {
				out = append(out, key+"="+v)
				done[key] = true
			}
			continue
		}
		out = append(out, line)
	}
	for _, key := range slices.Sorted(maps.Keys(set)) {
		if !done[key] {
			out = append(out, key+"="+set[key])
		}
	}
	if err := os.WriteFile(c.Props, []byte(strings.Join(out, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
}

// rotProbe is what one raw connection to an instance got.
type rotProbe struct {
	local  string            // the probe's own address, as the instance logs it
	leaf   *x509.Certificate // the instance's certificate (nil without TLS)
	status int               // of GET /v1/instance; 0 if none came
	err    error
}

// rotMine holds the local addresses of the test's own probes: the
// connections an instance may refuse on the test's account.
var rotMine = struct {
	sync.Mutex
	locals []string
}{}

func rotRecord(local string) {
	rotMine.Lock()
	defer rotMine.Unlock()
	rotMine.locals = append(rotMine.locals, local)
}

func rotIsMine(remote string) bool {
	rotMine.Lock()
	defer rotMine.Unlock()
	return slices.Contains(rotMine.locals, remote)
}

// rotProbeTLS dials addr with TLS 1.3 presenting cert (the instance's
// chain is returned, not verified) and asks GET /v1/instance: with TLS 1.3
// a refused client certificate shows only when the client reads.
func rotProbeTLS(addr string, cert tls.Certificate) rotProbe {
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return rotProbe{err: err}
	}
	p := rotProbe{local: raw.LocalAddr().String()}
	rotRecord(p.local)
	tc := tls.Client(raw, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if p.err = tc.Handshake(); p.err != nil {
		return p
	}
	if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
		p.leaf = pc[0]
	}
	p.status, p.err = rotGet(tc)
	return p
}

// rotProbePlain asks GET /v1/instance on a plaintext connection.
func rotProbePlain(addr string) rotProbe {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return rotProbe{err: err}
	}
	defer conn.Close()
	p := rotProbe{local: conn.LocalAddr().String()}
	rotRecord(p.local)
	p.status, p.err = rotGet(conn)
	return p
}

func rotGet(conn net.Conn) (int, error) {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: ftagent\r\nConnection: close\r\n\r\n", api.PathInstance); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// rotKeepAlive is an API connection kept open across requests.
type rotKeepAlive struct {
	conn *tls.Conn
	br   *bufio.Reader
}

// rotOpen opens a kept-alive connection to addr presenting cert; its
// first request must succeed.
func rotOpen(t *testing.T, addr string, cert tls.Certificate) *rotKeepAlive {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rotRecord(raw.LocalAddr().String())
	k := &rotKeepAlive{conn: tls.Client(raw, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})}
	k.br = bufio.NewReader(k.conn)
	t.Cleanup(func() { k.conn.Close() })
	_ = k.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(k.conn, "GET %s HTTP/1.1\r\nHost: ftagent\r\n\r\n", api.PathInstance); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		t.Fatalf("a kept-alive connection to %s: %v", addr, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("a kept-alive connection to %s: status %d, close %v", addr, resp.StatusCode, resp.Close)
	}
	return k
}

// closedWithin waits up to d for the server to close the connection; it
// returns what a read got.
func (k *rotKeepAlive) closedWithin(d time.Duration) error {
	_ = k.conn.SetReadDeadline(time.Now().Add(d))
	_, err := k.br.ReadByte()
	return err
}

// rotRefusedCert: the instance refused the probe's certificate (a TLS
// alert, which TLS 1.3 delivers after the handshake, on the first read).
func rotRefusedCert(p rotProbe) bool {
	return p.err != nil && strings.Contains(p.err.Error(), "remote error: tls:")
}

// rotKeyPair loads a certificate and its key.
func rotKeyPair(t *testing.T, files [2]string) tls.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(files[0], files[1])
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// rotCACert parses a CA certificate file.
func rotCACert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(rotReadFile(t, path))
	if b == nil {
		t.Fatalf("%s: no PEM", path)
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// rotUntil retries probe until ok accepts what it got, for up to timeout
// (a re-read on SIGHUP is immediate, the watch takes up to 2 s; a loaded
// machine takes longer); it fails the test with what came last otherwise.
func rotUntil(t *testing.T, timeout time.Duration, what string, probe func() rotProbe, ok func(rotProbe) bool) rotProbe {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p := probe()
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			issuer := ""
			if p.leaf != nil {
				issuer = p.leaf.Subject.String() + " serial " + p.leaf.SerialNumber.String()
			}
			t.Fatalf("timed out after %v waiting for %s: last probe status %d, err %v, peer %s", timeout, what, p.status, p.err, issuer)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rotWatch polls `ftagent show` until stop is called and reports every view
// without the active and epoch it started with, and every show that failed.
type rotWatch struct {
	c      *harness.Cluster
	cli    *sync.Mutex // held while the CLI's files are replaced
	active string
	epoch  uint64

	mu       sync.Mutex
	shows    int
	problems []string
	stop     chan struct{}
	done     chan struct{}
}

func rotWatchAgent(c *harness.Cluster, cli *sync.Mutex, v ha.AgentView) *rotWatch {
	w := &rotWatch{c: c, cli: cli, active: v.Active, epoch: v.Epoch, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			w.cli.Lock()
			v, r, err := c.Show(ctx)
			w.cli.Unlock()
			cancel()
			w.mu.Lock()
			w.shows++
			switch {
			case err != nil || r.Exit != 0:
				w.problems = append(w.problems, fmt.Sprintf("%s show failed: exit %d %v %s", time.Now().Format("15:04:05.000"), r.Exit, err, strings.TrimSpace(r.Stderr)))
			case v.Status != ha.StatusActive || v.Active != w.active || v.Epoch != w.epoch:
				b, _ := json.Marshal(v)
				w.problems = append(w.problems, fmt.Sprintf("%s view %s", time.Now().Format("15:04:05.000"), b))
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *rotWatch) finish() (shows int, problems []string) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.shows, w.problems
}

// rotRefusals lists the remote addresses of the connections an instance's
// log says it refused.
func rotRefusals(t *testing.T, c *harness.Cluster, name string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(string(rotReadFile(t, filepath.Join(c.Dir, name+".log"))), "\n") {
		if !strings.Contains(line, `"connection refused"`) {
			continue
		}
		var rec struct {
			Message string `json:"message"`
			Remote  string `json:"remote"`
			Reason  string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Remote == "" {
			out = append(out, line)
			continue
		}
		if rec.Message != "connection refused" {
			continue
		}
		out = append(out, rec.Remote+" ("+rec.Reason+")")
	}
	return out
}

// rotLeaseLines are the lines of the instances' logs about elections and
// the lease, for a failure's message.
func rotLeaseLines(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	var out []string
	for _, n := range c.Names {
		for _, line := range strings.Split(string(rotReadFile(t, filepath.Join(c.Dir, n+".log"))), "\n") {
			if strings.Contains(line, `"lease gained`) || strings.Contains(line, `"lease lost`) || strings.Contains(line, `"election won"`) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

// rotCluster is three instances with small checkpoints that the test
// ends with SIGKILL (see xferCluster), not started yet.
func rotCluster(t *testing.T, opts harness.Options) *harness.Cluster {
	t.Helper()
	opts.Extra = append([]string{"checkpointInterval=16M", "checkpointTimeInterval=1"}, opts.Extra...)
	c := newCluster(t, opts)
	t.Cleanup(func() {
		for _, n := range c.Names {
			if p := c.Proc(n); p != nil {
				_ = c.Kill(n)
			}
		}
	})
	return c
}

// The CA is replaced by a new one in three rolls, one instance at a time,
// each re-read on SIGHUP (docs/security.md, Rotation), while a transfer
// runs: the agent keeps its active and epoch, the transfer completes
// intact without a failover, and each roll is seen in effect on the wire.
func TestTLSRotationDuringTransfers(t *testing.T) {
	c := rotCluster(t, harness.Options{})
	agent := c.TLS.Agent
	old := c.TLS.Res
	agentDir := filepath.Dir(old.Instances[c.Names[0]][0])

	// Each instance gets a CA bundle file of its own, so that a roll
	// reaches one instance at a time (tlsCA takes {instance} too); the
	// commands, the admin client, get one of their own once the instances
	// have read theirs at start.
	caFile := func(n string) string { return filepath.Join(agentDir, n+"-ca.pem") }
	oldCA := rotReadFile(t, old.CA)
	for _, n := range c.Names {
		rotInstall(t, caFile(n), oldCA, 0o644)
	}
	rotSetProps(t, c, map[string]string{"tlsCA": caFile("{instance}")})
	startAll(t, c)
	oldAdmin := rotKeyPair(t, old.Clients[harness.ClientAdmin])
	for _, n := range c.Names {
		rotUntil(t, 30*time.Second, n+" answering", func() rotProbe { return rotProbeTLS(c.Addr[n], oldAdmin) },
			func(p rotProbe) bool { return p.err == nil && p.status == http.StatusOK })
	}
	// Every instance has read agent.properties: now it is the commands'.
	adminCA := filepath.Join(agentDir, "clients", "admin-ca.pem")
	rotInstall(t, adminCA, oldCA, 0o644)
	rotSetProps(t, c, map[string]string{"tlsCA": adminCA})
	v0 := wait(t, c, 30*time.Second, "one active and two standbys", activeWithStandbys(2))

	// The new CA and everyone's certificates from it, apart.
	fresh, err := trust.Init(trust.InitOptions{Dir: filepath.Join(c.Dir, "tls-new"), Agent: agent, Instances: c.Names,
		Clients: []trust.ClientSpec{{Name: harness.ClientAdmin, Role: trust.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	newCA := rotReadFile(t, fresh.CA)
	oldRoot, newRoot := rotCACert(t, old.CA), rotCACert(t, fresh.CA)
	newAdmin := rotKeyPair(t, fresh.Clients[harness.ClientAdmin])
	bundle := append(append([]byte{}, oldCA...), newCA...)

	// A transfer that outlasts the rotation.
	const size = 32 * xferMiB
	sum := xferRandomFile(t, c, "in/rot.bin", size, 11)
	began := time.Now()
	id := xferCreate(t, c, "--bwlimit", "1M", "in/rot.bin", "out/rot.bin")
	before := xferMidway(t, c, id, xferMiB)

	var cli sync.Mutex
	watch := rotWatchAgent(c, &cli, v0)
	// The active last in each roll.
	order := append(others(c.Names, v0.Active), v0.Active)
	// The first instance of each roll is left to notice the change by
	// itself (within 2 s); the others are sent SIGHUP.
	hup := func(n string) {
		t.Helper()
		if n == order[0] {
			return
		}
		if err := c.Signal(n, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	const reread = 20 * time.Second

	// Roll 1: tlsCA = old + new. A client of the new CA is let in.
	for _, n := range order {
		if p := rotProbeTLS(c.Addr[n], newAdmin); !rotRefusedCert(p) {
			t.Fatalf("%s before it trusted the new CA: a client of the new CA got status %d %v, want its certificate refused", n, p.status, p.err)
		}
		rotInstall(t, caFile(n), bundle, 0o644)
		hup(n)
		rotUntil(t, reread, n+" trusting the bundle (a new-CA client let in)", func() rotProbe { return rotProbeTLS(c.Addr[n], newAdmin) },
			func(p rotProbe) bool { return p.err == nil && p.status == http.StatusOK })
		if p := rotProbeTLS(c.Addr[n], oldAdmin); p.err != nil || p.status != http.StatusOK || p.leaf.CheckSignatureFrom(oldRoot) != nil {
			t.Fatalf("%s with the bundle: a client of the old CA got status %d %v, want 200 from the instance's certificate of the old CA", n, p.status, p.err)
		}
	}
	cli.Lock()
	rotInstall(t, adminCA, bundle, 0o644)
	cli.Unlock()
	t.Logf("roll 1 (bundle) done %v after create", time.Since(began).Round(time.Millisecond))

	// Roll 2: every certificate from the new CA, instances and the admin
	// client; new connections get the new certificate.
	for _, n := range order {
		files := fresh.Instances[n]
		rotInstall(t, old.Instances[n][1], rotReadFile(t, files[1]), 0o600)
		rotInstall(t, old.Instances[n][0], rotReadFile(t, files[0]), 0o644)
		hup(n)
		p := rotUntil(t, reread, n+" presenting its certificate from the new CA", func() rotProbe { return rotProbeTLS(c.Addr[n], newAdmin) },
			func(p rotProbe) bool {
				return p.err == nil && p.leaf != nil && p.leaf.CheckSignatureFrom(newRoot) == nil
			})
		if p.status != http.StatusOK {
			t.Fatalf("%s with its new certificate: status %d", n, p.status)
		}
		if id, err := trust.IdentityOf(p.leaf); err != nil || id != trust.Instance(agent, n) {
			t.Fatalf("%s presents %v (%v)", n, id, err)
		}
	}
	cli.Lock()
	rotInstall(t, old.Clients[harness.ClientAdmin][1], rotReadFile(t, fresh.Clients[harness.ClientAdmin][1]), 0o600)
	rotInstall(t, old.Clients[harness.ClientAdmin][0], rotReadFile(t, fresh.Clients[harness.ClientAdmin][0]), 0o644)
	cli.Unlock()
	t.Logf("roll 2 (certificates) done %v after create", time.Since(began).Round(time.Millisecond))

	// Roll 3: tlsCA = the new CA alone. A client of the old CA is refused,
	// one of the new CA let in; a connection of the old CA's client open
	// since before (HTTP keep-alive) is closed.
	kept := map[string]*rotKeepAlive{}
	for _, n := range order {
		kept[n] = rotOpen(t, c.Addr[n], oldAdmin)
	}
	for _, n := range order {
		rotInstall(t, caFile(n), newCA, 0o644)
		hup(n)
		rotUntil(t, reread, n+" refusing a client of the old CA", func() rotProbe { return rotProbeTLS(c.Addr[n], oldAdmin) },
			rotRefusedCert)
		if p := rotProbeTLS(c.Addr[n], newAdmin); p.err != nil || p.status != http.StatusOK || p.leaf.CheckSignatureFrom(newRoot) != nil {
			t.Fatalf("%s with the new CA alone: status %d %v", n, p.status, p.err)
		}
		if err := kept[n].closedWithin(10 * time.Second); !errors.Is(err, io.EOF) {
			t.Errorf("%s with the new CA alone: the kept-alive connection of a client of the old CA got %v, want it closed (EOF)", n, err)
		}
	}
	cli.Lock()
	rotInstall(t, adminCA, newCA, 0o644)
	cli.Unlock()
	t.Logf("roll 3 (new CA alone) done %v after create", time.Since(began).Round(time.Millisecond))

	// The commands now run on the new CA alone: they find the agent as it
	// was, the transfer still running and moving.
	v := wait(t, c, 30*time.Second, "the agent after the rotation", activeWithStandbys(2))
	if v.Active != v0.Active || v.Epoch != v0.Epoch {
		t.Errorf("after the rotation: active %s epoch %d, was %s %d", v.Active, v.Epoch, v0.Active, v0.Epoch)
	}
	mid, _, err := c.TransferView(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if transfer.Terminal(mid.State) {
		t.Fatalf("the transfer ended before the rotation did (lower --bwlimit?): %s", harness.ViewText(mid))
	}
	if mid.BytesDone <= before.BytesDone {
		t.Errorf("the transfer did not move during the rotation: bytesDone %d, was %d", mid.BytesDone, before.BytesDone)
	}

	// Raft on the new certificates alone: a standby restarted now has no
	// connection from before the rotation, and rejoins.
	standby := v0.Standbys[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	r, err := c.Ftstop(ctx, "--instance", standby)
	cancel()
	if err != nil || r.Exit != 0 {
		t.Fatalf("ftstop --instance %s: exit %d %v %s", standby, r.Exit, err, r.Stderr)
	}
	select {
	case <-c.Proc(standby).Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s still running after ftstop --instance", standby)
	}
	wait(t, c, 30*time.Second, standby+" gone from the standbys", func(v ha.AgentView) bool {
		return !slices.Contains(v.Standbys, standby)
	})
	if _, err := c.Start(standby); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 30*time.Second, standby+" back as a standby on the new certificates", func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && slices.Contains(v.Standbys, standby) && len(v.Standbys) == 2
	})

	end := xferEnded(t, c, 120*time.Second, id)
	shows, problems := watch.finish()
	t.Logf("transfer ended %v after create: %s, failovers %d; %d shows during the rotation", time.Since(began).Round(time.Millisecond), end.State, end.Failovers, shows)
	xferCheckCompleted(t, c, end, map[string]string{"out/rot.bin": sum})
	if end.Failovers != 0 {
		t.Errorf("the transfer failed over %d times during the rotation", end.Failovers)
	}
	if len(problems) > 0 {
		t.Errorf("the agent was not steadily active (%s, epoch %d) during the rotation, in %d of %d shows:\n%s",
			v0.Active, v0.Epoch, len(problems), shows, strings.Join(problems, "\n"))
	}
	if end.Failovers != 0 || len(problems) > 0 {
		t.Logf("the instances logged:\n%s", rotLeaseLines(t, c))
	}
	// No connection was refused but the test's own probes: no raft,
	// status or command connection, at any step.
	for _, n := range c.Names {
		for _, ref := range rotRefusals(t, c, n) {
			remote, _, _ := strings.Cut(ref, " ")
			if !rotIsMine(remote) {
				t.Errorf("%s refused a connection the test did not make on purpose: %s", n, ref)
			}
		}
	}
}

// A group running tlsMode=disabled moves to required in two rolls of
// restarts (docs/security.md, Moving a running agent to TLS) while a
// transfer runs: it resumes across the hand-overs and completes intact.
func TestPlaintextToRequiredRollDuringTransfers(t *testing.T) {
	c := rotCluster(t, harness.Options{TLSMode: "disabled"})
	startAll(t, c)
	wait(t, c, 30*time.Second, "one active and two standbys", activeWithStandbys(2))
	tl, err := harness.SetUpTLS(c.Dir, "ORDERS", c.Names)
	if err != nil {
		t.Fatal(err)
	}
	adminEnv := tl.Env(harness.ClientAdmin)
	plainEnv := []string{"FTAGENT_TLS_MODE=disabled"}

	const size = 32 * xferMiB
	sum := xferRandomFile(t, c, "in/roll.bin", size, 12)
	began := time.Now()
	id := xferCreate(t, c, "--bwlimit", "1M", "in/roll.bin", "out/roll.bin")
	xferMidway(t, c, id, xferMiB)

	// showAs runs `ftagent show` with env (and the agent.properties of the
	// moment) and requires an answer naming an active.
	showAs := func(what string, env []string) ha.AgentView {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := harness.RunEnv(ctx, env, c.Bin.Ftagent, "show", "--config", c.Props, "--json")
		var v ha.AgentView
		if err == nil && r.Exit == 0 {
			err = json.Unmarshal([]byte(r.Stdout), &v)
		}
		if err != nil || r.Exit != 0 || v.Active == "" {
			t.Fatalf("show as %s: exit %d %v %s %s", what, r.Exit, err, r.Stdout, r.Stderr)
		}
		return v
	}

	hand := 0 // hand-overs so far
	roll := func(mode string) {
		t.Helper()
		v := wait(t, c, 30*time.Second, "one active and two standbys before the roll to "+mode, activeWithStandbys(2))
		order := append(slices.Sorted(slices.Values(v.Standbys)), v.Active)
		for _, n := range order {
			// The next start reads agent.properties: the TLS lines and the
			// mode now. The instances still running keep what they read.
			set := map[string]string{"tlsMode": mode}
			for _, line := range tl.Lines(harness.ClientAdmin) {
				k, val, _ := strings.Cut(line, "=")
				set[k] = val
			}
			rotSetProps(t, c, set)
			if n == v.Active {
				ftstopImmediate(t, c, n)
				hand++
				na := xferNewActive(t, c, n)
				t.Logf("roll to %s: %s handed over to %s %v after create", mode, n, na, time.Since(began).Round(time.Millisecond))
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				r, err := c.Ftstop(ctx, "--instance", n)
				cancel()
				if err != nil || r.Exit != 0 {
					t.Fatalf("ftstop --instance %s: exit %d %v %s %s", n, r.Exit, err, r.Stdout, r.Stderr)
				}
				select {
				case <-c.Proc(n).Done():
				case <-time.After(20 * time.Second):
					t.Fatalf("%s still running after ftstop --instance", n)
				}
			}
			wait(t, c, 30*time.Second, n+" gone from the standbys", func(v ha.AgentView) bool {
				return v.Status == ha.StatusActive && !slices.Contains(v.Standbys, n)
			})
			if _, err := c.Start(n); err != nil {
				t.Fatal(err)
			}
			wait(t, c, 30*time.Second, n+" back with tlsMode="+mode, func(v ha.AgentView) bool {
				return v.Status == ha.StatusActive && slices.Contains(v.Standbys, n) && len(v.Standbys) == 2
			})
			if mode == "optional" {
				// Mid-roll, plaintext clients still get in.
				showAs("a plaintext client", plainEnv)
			}
			showAs("the admin client", adminEnv)
			xferWait(t, c, 30*time.Second, id, fmt.Sprintf("resumed after hand-over %d", hand), func(x transfer.View) bool {
				return x.Failovers >= hand && x.State == transfer.StateRunning || transfer.Terminal(x.State)
			})
		}
	}

	roll("optional")
	// Every instance runs optional: plaintext and TLS both get in.
	admin := rotKeyPair(t, tl.Res.Clients[harness.ClientAdmin])
	root := rotCACert(t, tl.Res.CA)
	for _, n := range c.Names {
		if p := rotProbePlain(c.Addr[n]); p.err != nil || p.status != http.StatusOK {
			t.Errorf("%s (optional) refused plaintext: status %d %v", n, p.status, p.err)
		}
		if p := rotProbeTLS(c.Addr[n], admin); p.err != nil || p.status != http.StatusOK || p.leaf.CheckSignatureFrom(root) != nil {
			t.Errorf("%s (optional) with the admin client's certificate: status %d %v", n, p.status, p.err)
		}
	}
	t.Logf("roll 1 (optional) done %v after create", time.Since(began).Round(time.Millisecond))
	roll("required")
	t.Logf("roll 2 (required) done %v after create", time.Since(began).Round(time.Millisecond))

	mid, _, err := c.TransferView(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if transfer.Terminal(mid.State) {
		t.Fatalf("the transfer ended before the rolls did (lower --bwlimit?): %s", harness.ViewText(mid))
	}

	// Required everywhere: plaintext refused (400), TLS with a client
	// certificate let in, by an instance's certificate of this agent.
	for _, n := range c.Names {
		if p := rotProbePlain(c.Addr[n]); p.status != http.StatusBadRequest {
			t.Errorf("%s (required) answered plaintext with status %d %v, want 400", n, p.status, p.err)
		}
		p := rotProbeTLS(c.Addr[n], admin)
		if p.err != nil || p.status != http.StatusOK || p.leaf.CheckSignatureFrom(root) != nil {
			t.Errorf("%s (required) with the admin client's certificate: status %d %v", n, p.status, p.err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	r, err := harness.RunEnv(ctx, plainEnv, c.Bin.Ftagent, "show", "--config", c.Props, "--connect-attempts", "1")
	cancel()
	if err != nil || r.Exit == 0 {
		t.Errorf("a plaintext show after the roll to required: exit %d %v, want it refused", r.Exit, err)
	}

	end := xferEnded(t, c, 120*time.Second, id)
	t.Logf("transfer ended %v after create: %s, failovers %d, bytesResent %d", time.Since(began).Round(time.Millisecond), end.State, end.Failovers, end.BytesResent)
	xferCheckCompleted(t, c, end, map[string]string{"out/roll.bin": sum})
	if end.Failovers != hand {
		// More than the hand-overs: the lease moved by itself during the
		// rolls (an election), which the rolls must not cause.
		t.Errorf("failovers %d, want the %d hand-overs; the instances logged:\n%s", end.Failovers, hand, rotLeaseLines(t, c))
	}
	if end.BytesResent > int64(hand)*xferCheckpoint {
		t.Errorf("bytesResent %d, want at most one checkpoint interval per hand-over", end.BytesResent)
	}
}
