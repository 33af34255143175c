package test

// TLS and roles with real processes (issue 11): what a caller without the
// right certificate meets on the API and on raft, what each role may do
// through the real CLI, and what `ftagent start` says of missing TLS files.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/netmux"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/trust"
	"github.com/ftagent/ftagent/test/harness"
)

// secCluster starts a cluster of three instances with TLS and an audit
// log, and waits for one active and two standbys.
func secCluster(t *testing.T) (*harness.Cluster, ha.AgentView) {
	t.Helper()
	c := newCluster(t, harness.Options{Extra: []string{"auditLog=audit.jsonl"}})
	startAll(t, c)
	v := wait(t, c, 60*time.Second, "one active and two standbys", activeWithStandbys(2))
	return c, v
}

// secRequest sends one HTTP request over conn (plaintext or TLS) and reads
// the answer: an error when the connection ends without one.
func secRequest(conn net.Conn, method, path, body string) (int, string, error) {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: ftagent\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		method, path, len(body), body)
	if _, err := io.WriteString(conn, req); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// secTLSConfig presents cert (none when nil) whatever CAs the server
// names, and does not check the server: these tests are about what the
// server lets in.
func secTLSConfig(cert *tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert == nil {
				return &tls.Certificate{}, nil
			}
			return cert, nil
		}}
}

func secKeyPair(t *testing.T, cert, key string) *tls.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return &kp
}

// secDial opens a TLS connection to addr with cfg; the handshake's error
// (which TLS 1.3 clients often see only on their first read) is returned
// with the connection, which is never nil.
func secDial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, cfg)
	t.Cleanup(func() { tc.Close() })
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	return tc, tc.Handshake()
}

// secLayer is a raft stream layer whose one connection is conn, already
// open: to speak real raft RPCs over a connection of the test's making.
type secLayer struct {
	conn   net.Conn
	once   sync.Once
	closed chan struct{}
}

func (l *secLayer) Accept() (net.Conn, error) { <-l.closed; return nil, net.ErrClosed }
func (l *secLayer) Close() error              { l.once.Do(func() { close(l.closed) }); return nil }
func (l *secLayer) Addr() net.Addr            { return l.conn.LocalAddr() }
func (l *secLayer) Dial(raft.ServerAddress, time.Duration) (net.Conn, error) {
	// The header byte, as netmux.RaftLayer.Dial sends it.
	if _, err := l.conn.Write([]byte{netmux.RaftHeader}); err != nil {
		return nil, err
	}
	return l.conn, nil
}

// secVote sends a vote request of term 0 (which no instance grants, and
// which changes nothing) over conn, and returns the answer's term; an
// error when the connection ends without an answer.
func secVote(conn net.Conn) (uint64, error) {
	l := &secLayer{conn: conn, closed: make(chan struct{})}
	tr := raft.NewNetworkTransport(l, 1, 10*time.Second, io.Discard)
	defer tr.Close()
	var resp raft.RequestVoteResponse
	err := tr.RequestVote("intruder", "target", &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("127.0.0.1:1")},
	}, &resp)
	return resp.Term, err
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// secAudit reads the cluster's audit trail (auditLog=audit.jsonl, shared
// by its instances).
func secAudit(t *testing.T, c *harness.Cluster) []audit.Record {
	t.Helper()
	recs, err := audit.ReadFile(filepath.Join(c.Dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// Callers without the right certificate get nothing from the API and
// nothing from raft; every refusal is audited with who or where from.
func TestSecurityRefusalsRealProcesses(t *testing.T) {
	c, v := secCluster(t)
	active := v.Active
	addr := c.Addr[active]
	if err := harness.WriteRandomFile(filepath.Join(c.Root, "in", "a.bin"), 4096, 1); err != nil {
		t.Fatal(err)
	}
	createBody := `{"id":"00000000000000c1","request":{"sources":["in/a.bin"],"destination":"out/a.bin"}}`
	stopBody := `{"immediate":true}`

	// The certificates of the refused callers.
	orders := c.TLS.Res
	pay, err := trust.Init(trust.InitOptions{Dir: c.TLS.Dir, Agent: "PAYMENTS", Instances: []string{"ha1"}})
	if err != nil {
		t.Fatal(err)
	}
	if pay.NewCA {
		t.Fatal("PAYMENTS got a CA of its own; want ORDERS's CA reused")
	}
	foreign, err := trust.Init(trust.InitOptions{Dir: filepath.Join(c.Dir, "other-ca"), Agent: "ORDERS",
		Clients: []trust.ClientSpec{{Name: "admin", Role: trust.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(orders.CA)
	caKey, _ := os.ReadFile(orders.CAKey)
	ca, err := trust.ParseCA(caPEM, caKey)
	if err != nil {
		t.Fatal(err)
	}
	oldCert, oldKey, err := ca.Issue(trust.Client("ORDERS", "old", trust.RoleAdmin), trust.IssueOptions{
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := tls.X509KeyPair(oldCert, oldKey)
	if err != nil {
		t.Fatal(err)
	}

	// remotes maps the local address of each refused connection to what
	// it was, to find its refusal in the audit trail; at is the instance
	// it went to.
	remotes := map[string]string{}
	at := map[string]string{}

	// Plaintext: a 400 that says TLS is required, nothing done.
	for _, req := range [][2]string{{api.PathTransfers, createBody}, {api.PathStop, stopBody}} {
		for _, n := range c.Names {
			conn, err := net.DialTimeout("tcp", c.Addr[n], 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			remotes[conn.LocalAddr().String()] = "plaintext POST " + req[0] + " to " + n
			at[conn.LocalAddr().String()] = n
			code, body, err := secRequest(conn, http.MethodPost, req[0], req[1])
			conn.Close()
			if err == nil && code/100 == 2 {
				t.Errorf("plaintext POST %s to %s: %d %q; want it refused", req[0], n, code, body)
			}
			if err == nil && (code != http.StatusBadRequest || !strings.Contains(body, "requires TLS")) {
				t.Errorf("plaintext POST %s to %s: %d %q; want 400 saying TLS is required", req[0], n, code, body)
			}
		}
	}

	// Plaintext raft: closed without an answer.
	{
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		remotes[conn.LocalAddr().String()] = "plaintext raft"
		at[conn.LocalAddr().String()] = active
		term, rerr := secVote(conn)
		conn.Close()
		if rerr == nil || isTimeoutErr(rerr) {
			t.Errorf("plaintext raft: answered (term %d) or left open (%v); want the connection closed without an answer", term, rerr)
		}
	}

	// TLS without the right certificate: refused on the API and on raft.
	type refusedCaller struct {
		name string
		cert *tls.Certificate
		// atHandshake: the handshake itself fails (else the certificate
		// is good and the identity is refused).
		atHandshake bool
		raftOnly    bool // the API would let it in
	}
	callers := []refusedCaller{
		{"no certificate", nil, true, false},
		{"another CA", secKeyPair(t, foreign.Clients["admin"][0], foreign.Clients["admin"][1]), true, false},
		{"expired", &expired, true, false},
		{"PAYMENTS instance", secKeyPair(t, pay.Instances["ha1"][0], pay.Instances["ha1"][1]), false, false},
		// The agent's own admin: the API lets it in, raft does not.
		{"ORDERS admin", secKeyPair(t, orders.Clients[harness.ClientAdmin][0], orders.Clients[harness.ClientAdmin][1]), false, true},
	}
	for _, rc := range callers {
		reqs := [][2]string{{api.PathTransfers, createBody}, {api.PathStop, stopBody}}
		if rc.raftOnly {
			reqs = nil
		}
		for _, req := range reqs {
			conn, herr := secDial(t, addr, secTLSConfig(rc.cert))
			remotes[conn.LocalAddr().String()] = rc.name + " POST " + req[0]
			at[conn.LocalAddr().String()] = active
			if herr != nil {
				if !rc.atHandshake {
					t.Errorf("%s: TLS handshake failed: %v; want it to succeed (the identity is refused, not the certificate)", rc.name, herr)
				}
				continue
			}
			code, body, err := secRequest(conn, http.MethodPost, req[0], req[1])
			t.Logf("%s: POST %s: %d %q %v", rc.name, req[0], code, strings.TrimSpace(body), err)
			switch {
			case err == nil && code/100 == 2:
				t.Errorf("%s: POST %s answered %d %q; want it refused", rc.name, req[0], code, body)
			case rc.atHandshake && err == nil:
				t.Errorf("%s: POST %s answered %d %q; want the connection refused at the handshake", rc.name, req[0], code, body)
			case rc.atHandshake && !strings.Contains(err.Error(), "remote error: tls"):
				t.Errorf("%s: POST %s: %v; want a TLS alert (the handshake refused)", rc.name, req[0], err)
			case !rc.atHandshake && (err != nil || code != http.StatusForbidden || !strings.Contains(body, "identity of agent PAYMENTS")):
				t.Errorf("%s: POST %s: %d %q %v; want 403 naming agent PAYMENTS", rc.name, req[0], code, body, err)
			}
		}

		// Raft: the header byte and some bytes, and the connection is
		// closed without an answer.
		conn, herr := secDial(t, addr, secTLSConfig(rc.cert))
		remotes[conn.LocalAddr().String()] = rc.name + " raft"
		at[conn.LocalAddr().String()] = active
		if herr != nil {
			if !rc.atHandshake {
				t.Errorf("%s raft: TLS handshake failed: %v; want it to succeed", rc.name, herr)
			}
			continue
		}
		term, rerr := secVote(conn)
		t.Logf("%s raft: term %d, %v", rc.name, term, rerr)
		switch {
		case rerr == nil:
			t.Errorf("%s raft: a vote request was answered (term %d); want the connection closed without an answer", rc.name, term)
		case isTimeoutErr(rerr) || strings.Contains(rerr.Error(), "timeout"):
			t.Errorf("%s raft: the connection stayed open (%v); want it closed", rc.name, rerr)
		case rc.atHandshake && !strings.Contains(rerr.Error(), "remote error: tls") && !errors.Is(rerr, syscall.EPIPE) && !errors.Is(rerr, syscall.ECONNRESET):
			// The alert, or the connection already closed after it (the
			// audit trail below says the handshake failed).
			t.Errorf("%s raft: %v; want a TLS alert (the handshake refused)", rc.name, rerr)
		case !rc.atHandshake && !errors.Is(rerr, io.EOF):
			t.Errorf("%s raft: %v; want the connection closed (EOF)", rc.name, rerr)
		}
	}
	// The same vote request from an instance of the agent is answered: the
	// refusals above are the certificates', not the request's.
	{
		self := c.TLS.Res.Instances[others(c.Names, active)[0]]
		conn, herr := secDial(t, addr, secTLSConfig(secKeyPair(t, self[0], self[1])))
		if herr != nil {
			t.Fatalf("instance certificate: TLS handshake: %v", herr)
		}
		if term, err := secVote(conn); err != nil || term == 0 {
			t.Errorf("a vote request from an instance of the agent: term %d, %v; want it answered", term, err)
		}
	}

	// Nothing was created or stopped: the same active, both standbys, no
	// transfer.
	for _, n := range c.Names {
		select {
		case <-c.Proc(n).Done():
			t.Fatalf("%s exited after the refused calls: %v", n, c.Proc(n).Err())
		default:
		}
	}
	// (The active may have changed on a loaded machine; a stop would have
	// ended its process, and would be audited.)
	wait(t, c, 60*time.Second, "one active and two standbys", activeWithStandbys(2))
	for _, rec := range secAudit(t, c) {
		if rec.Op == audit.OpAdmin {
			t.Errorf("an admin action after the refused calls: %+v", rec)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.Run(ctx, c.Bin.Ftagent, "transfer", "list", "--config", c.Props, "--json")
	if err != nil || r.Exit != 0 {
		t.Fatalf("transfer list: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	var list []transfer.View
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil || len(list) != 0 {
		t.Errorf("transfers after the refused calls: %s (%v); want none", r.Stdout, err)
	}
	if _, err := os.Stat(filepath.Join(c.Root, "out")); !os.IsNotExist(err) {
		t.Errorf("out/ exists after the refused calls (%v)", err)
	}
	// The refused body was a valid request: the admin's is accepted.
	adminConn, herr := secDial(t, addr, secTLSConfig(secKeyPair(t, orders.Clients[harness.ClientAdmin][0], orders.Clients[harness.ClientAdmin][1])))
	if herr != nil {
		t.Fatalf("admin: TLS handshake: %v", herr)
	}
	if code, body, err := secRequest(adminConn, http.MethodPost, api.PathTransfers, createBody); err != nil || code != http.StatusCreated {
		t.Errorf("admin POST %s with the refused body: %d %q %v; want 201", api.PathTransfers, code, body, err)
	}

	// Every refused connection is in the audit trail, by its address; the
	// PAYMENTS instance's refusals name it.
	var missing []string
	byRemote := map[string][]audit.Record{}
	if !waitUntil(10*time.Second, func() bool {
		byRemote = map[string][]audit.Record{}
		for _, rec := range secAudit(t, c) {
			if rec.Op == audit.OpRefused {
				byRemote[rec.Remote] = append(byRemote[rec.Remote], rec)
			}
		}
		missing = nil
		for remote, what := range remotes {
			if len(byRemote[remote]) == 0 {
				missing = append(missing, what+" from "+remote)
			}
		}
		return len(missing) == 0
	}) {
		t.Errorf("no refusal audited for: %s", strings.Join(missing, "; "))
	}
	for remote, what := range remotes {
		for _, rec := range byRemote[remote] {
			var ok bool
			switch {
			case strings.HasPrefix(what, "plaintext"):
				ok = rec.Action == "connect" && strings.Contains(rec.Result, "plaintext")
			case strings.HasPrefix(what, "PAYMENTS") && strings.HasSuffix(what, "raft"):
				ok = rec.Action == "connect" && strings.Contains(rec.Result, "raft from PAYMENTS/instance/ha1")
			case strings.HasPrefix(what, "ORDERS admin"):
				ok = rec.Action == "connect" && strings.Contains(rec.Result, "raft from ORDERS/client/admin")
			case strings.HasPrefix(what, "PAYMENTS"):
				ok = rec.Caller == "PAYMENTS/instance/ha1" && strings.HasPrefix(rec.Action, "POST /v1/")
			default:
				ok = rec.Action == "connect" && strings.Contains(rec.Result, "TLS handshake")
			}
			if !ok || rec.Instance != at[remote] {
				t.Errorf("%s from %s audited as %+v", what, remote, rec)
			}
		}
	}
}

// secOneLine checks a refused command: exit 1 and one line on stderr with
// every want.
func secOneLine(t *testing.T, what string, r harness.Result, wants ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	ok := r.Exit == 1 && len(lines) == 1
	for _, w := range wants {
		ok = ok && strings.Contains(lines[0], w)
	}
	t.Logf("%s: %s", what, strings.TrimSpace(r.Stderr))
	if !ok {
		t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", what, r.Exit, r.Stdout, r.Stderr, wants)
	}
}

// Each role through the real CLI: a monitor reads, an operator creates
// and cancels its own transfers, an admin stops the active.
func TestSecurityRolesThroughTheCLI(t *testing.T) {
	c, v := secCluster(t)
	if err := harness.WriteRandomFile(filepath.Join(c.Root, "in", "a.bin"), 1<<20, 2); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	as := func(client string, bin string, args ...string) harness.Result {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
		defer ccancel()
		r, err := harness.RunEnv(cctx, c.TLS.Env(client), bin, args...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	idRE := regexp.MustCompile(`^[0-9a-f]{16}$`)
	create := func(client, dest string) harness.Result {
		t.Helper()
		return as(client, c.Bin.Ftagent, "transfer", "create", "--config", c.Props, "--json", "--bwlimit", "1K", "in/a.bin", dest)
	}
	created := func(what string, r harness.Result) string {
		t.Helper()
		var tv transfer.View
		if r.Exit != 0 || json.Unmarshal([]byte(r.Stdout), &tv) != nil || !idRE.MatchString(tv.ID) {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q; want the transfer created", what, r.Exit, r.Stdout, r.Stderr)
		}
		return tv.ID
	}

	// Monitor: show works; ftstop and transfer create need more.
	if r := as(harness.ClientMonitor, c.Bin.Ftagent, "show", "--config", c.Props); r.Exit != 0 || !strings.Contains(r.Stdout, "Active:") {
		t.Errorf("show as monitor: exit %d, stdout %q, stderr %q", r.Exit, r.Stdout, r.Stderr)
	}
	secOneLine(t, "ftstop as monitor", as(harness.ClientMonitor, c.Bin.Ftstop, "--config", c.Props), "needs role admin")
	secOneLine(t, "transfer create as monitor", create(harness.ClientMonitor, "out/mon.bin"), "needs role operator")

	// The admin's transfer, and the operator's.
	adminID := created("transfer create as admin", create(harness.ClientAdmin, "out/admin.bin"))
	opID := created("transfer create as operator", create(harness.ClientOperator, "out/op.bin"))
	secOneLine(t, "ftstop as operator", as(harness.ClientOperator, c.Bin.Ftstop, "--config", c.Props), "needs role admin")

	// transfer show --json names the owners (read as the monitor).
	for id, want := range map[string]string{adminID: "ORDERS/client/admin", opID: "ORDERS/client/operator"} {
		r := as(harness.ClientMonitor, c.Bin.Ftagent, "transfer", "show", "--config", c.Props, "--json", id)
		var owner struct {
			Owner string `json:"owner"`
		}
		if r.Exit != 0 || json.Unmarshal([]byte(r.Stdout), &owner) != nil || owner.Owner != want {
			t.Errorf("transfer show --json %s: exit %d, stdout %q, stderr %q; want owner %s", id, r.Exit, r.Stdout, r.Stderr, want)
		}
	}

	// The operator cancels its own transfer, not the admin's.
	secOneLine(t, "operator cancels the admin's transfer",
		as(harness.ClientOperator, c.Bin.Ftagent, "transfer", "cancel", "--config", c.Props, adminID), "may cancel only its own", "ORDERS/client/admin")
	if r := as(harness.ClientOperator, c.Bin.Ftagent, "transfer", "cancel", "--config", c.Props, opID); r.Exit != 0 {
		t.Errorf("operator cancels its own transfer: exit %d, stdout %q, stderr %q", r.Exit, r.Stdout, r.Stderr)
	}
	if tv, err := c.WaitTransfer(60*time.Second, opID, "cancelled", func(tv transfer.View) bool { return tv.State == transfer.StateCancelled }); err != nil {
		t.Error(err)
	} else if tv.Owner != "ORDERS/client/operator" {
		t.Errorf("cancelled transfer %s: owner %q", opID, tv.Owner)
	}
	if tv, _, err := c.TransferView(ctx, adminID); err != nil || transfer.Terminal(tv.State) {
		t.Errorf("the admin's transfer after the operator's refused cancel: %s %v; want it running", harness.ViewText(tv), err)
	}
	// The admin cancels any.
	if r := as(harness.ClientAdmin, c.Bin.Ftagent, "transfer", "cancel", "--config", c.Props, adminID); r.Exit != 0 {
		t.Errorf("admin cancels its transfer: exit %d, stdout %q, stderr %q", r.Exit, r.Stdout, r.Stderr)
	}

	// Nothing the refused commands asked for happened.
	// (The active may have changed on a loaded machine; a stop would have
	// ended its process, and would be audited.)
	for _, n := range c.Names {
		select {
		case <-c.Proc(n).Done():
			t.Fatalf("%s exited after the refused ftstops: %v", n, c.Proc(n).Err())
		default:
		}
	}
	for _, rec := range secAudit(t, c) {
		if rec.Op == audit.OpAdmin && rec.Action == "stop" {
			t.Errorf("a stop after the refused ftstops: %+v", rec)
		}
	}
	v = wait(t, c, 60*time.Second, "one active and two standbys", activeWithStandbys(2))

	// The admin stops the active, which hands over.
	r := as(harness.ClientAdmin, c.Bin.Ftstop, "--config", c.Props, "-i")
	if r.Exit != 0 {
		t.Fatalf("ftstop -i as admin: exit %d, stdout %q, stderr %q", r.Exit, r.Stdout, r.Stderr)
	}
	select {
	case <-c.Proc(v.Active).Done():
		if err := c.Proc(v.Active).Err(); err != nil {
			t.Errorf("%s exited with %v after ftstop -i", v.Active, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running after ftstop -i", v.Active)
	}
	v3 := wait(t, c, 60*time.Second, "a new active", func(nv ha.AgentView) bool {
		return nv.Status == ha.StatusActive && nv.Active != "" && nv.Active != v.Active
	})
	if v3.Epoch <= v.Epoch || !strings.Contains(r.Stdout, v3.Active+" is now active") {
		t.Errorf("after ftstop -i: active %s at epoch %d (was %s at %d); ftstop said %q", v3.Active, v3.Epoch, v.Active, v.Epoch, r.Stdout)
	}

	// The admin actions and the refusals are audited with who asked.
	var got []string
	for _, rec := range secAudit(t, c) {
		if rec.Op == audit.OpAdmin || rec.Op == audit.OpRefused {
			got = append(got, rec.Op+" "+rec.Caller+" "+rec.Action+" "+rec.Target)
		}
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"refused ORDERS/client/monitor POST /v1/stop",
		"refused ORDERS/client/monitor POST /v1/transfers",
		"refused ORDERS/client/operator POST /v1/stop",
		"refused ORDERS/client/operator POST /v1/transfers/" + adminID + "/cancel",
		"admin ORDERS/client/operator cancel " + opID,
		"admin ORDERS/client/admin cancel " + adminID,
		"admin ORDERS/client/admin stop",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("audit trail has no %q:\n%s", want, all)
		}
	}
}

// secProps writes a copy of the cluster's agent.properties with the given
// properties replaced (or added), and returns its path.
func secProps(t *testing.T, c *harness.Cluster, file string, set map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(c.Props)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	done := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, _, _ := strings.Cut(l, "=")
		if v, ok := set[k]; ok {
			l = k + "=" + v
			done[k] = true
		}
		out = append(out, l)
	}
	for k, v := range set {
		if !done[k] {
			out = append(out, k+"="+v)
		}
	}
	path := filepath.Join(c.Dir, file)
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

// `ftagent start` with a TLS file missing or unusable exits 2 in one line
// naming the property; tlsMode=disabled starts, with a warning.
func TestSecurityStartWithMissingTLSFiles(t *testing.T) {
	c := newCluster(t, harness.Options{Names: []string{"solo"}})
	notPEM := filepath.Join(c.Dir, "not-a-ca.pem")
	if err := os.WriteFile(notPEM, []byte("not PEM\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(c.Dir, "missing.pem")
	for _, tc := range []struct {
		name string
		set  map[string]string
		key  string
	}{
		{"missing certificate", map[string]string{"tlsMode": "required", "tlsCertificate": missing}, "tlsCertificate"},
		{"missing CA", map[string]string{"tlsMode": "required", "tlsCA": missing}, "tlsCA"},
		{"bad CA", map[string]string{"tlsMode": "required", "tlsCA": notPEM}, "tlsCA"},
	} {
		props := secProps(t, c, "bad.properties", tc.set)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		r, err := harness.Run(ctx, c.Bin.Ftagent, "start", "--config", props, "--instance", "solo")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("start with a %s: exit %d: %s", tc.name, r.Exit, strings.TrimSpace(r.Stderr))
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Exit != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.key) {
			t.Errorf("start with a %s: exit %d, stdout %q, stderr %q; want exit 2 and one line naming %s", tc.name, r.Exit, r.Stdout, r.Stderr, tc.key)
		}
		if tc.key == "tlsCertificate" && !strings.Contains(r.Stderr, missing) {
			t.Errorf("start with a %s: stderr %q does not name %s", tc.name, r.Stderr, missing)
		}
	}

	// A command given a client certificate in the environment but not its
	// key (which agent.properties' clientPrivateKey, another client's,
	// cannot match), or a missing file there, says so in one line naming
	// the variable, as exit 2.
	monitorCert, monitorKey := c.TLS.ClientFiles(harness.ClientMonitor)
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"FTAGENT_CLIENT_CERTIFICATE=" + monitorCert, "FTAGENT_TLS_CA=" + c.TLS.Res.CA}, []string{"show", "--config", c.Props},
			"environment: FTAGENT_CLIENT_PRIVATE_KEY: not set"},
		{[]string{"FTAGENT_CLIENT_CERTIFICATE=" + monitorCert, "FTAGENT_TLS_CA=" + c.TLS.Res.CA}, []string{"show", "-x", c.Addr["solo"]},
			"environment: FTAGENT_CLIENT_PRIVATE_KEY: not set"},
		{[]string{"FTAGENT_CLIENT_CERTIFICATE=" + missing, "FTAGENT_CLIENT_PRIVATE_KEY=" + monitorKey}, []string{"show", "--config", c.Props},
			"environment: FTAGENT_CLIENT_CERTIFICATE: " + missing + ": cannot read"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		r, err := harness.RunEnv(ctx, tc.env, c.Bin.Ftagent, tc.args...)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v with %v: exit %d: %s", tc.args, tc.env, r.Exit, strings.TrimSpace(r.Stderr))
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Exit != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v with %v: exit %d, stderr %q; want exit 2 and one line with %q", tc.args, tc.env, r.Exit, r.Stderr, tc.want)
		}
	}

	// tlsMode=disabled: no certificate needed, and a warning.
	d := newCluster(t, harness.Options{Names: []string{"solo"}, TLSMode: "disabled"})
	if _, err := d.Start("solo"); err != nil {
		t.Fatal(err)
	}
	wait(t, d, 60*time.Second, "solo active", func(v ha.AgentView) bool { return v.Active == "solo" })
	b, err := os.ReadFile(filepath.Join(d.Dir, "solo.log"))
	if err != nil {
		t.Fatal(err)
	}
	warned := false
	for _, l := range strings.Split(string(b), "\n") {
		var e struct {
			Level   string `json:"level"`
			Message string `json:"message"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Level == "warn" && strings.Contains(e.Message, "tlsMode=disabled") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("tlsMode=disabled logged no warning:\n%s", b)
	}
}
