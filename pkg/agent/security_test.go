package agent

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/netmux"
	"github.com/ftagent/ftagent/pkg/trust"
)

// pki is the certificates of one test: agent ORDERS's instances and a
// client per role, agent PAYMENTS's instance from the same CA, and a
// client of another CA.
type pki struct {
	orders, payments, foreign *trust.InitResult
	dir                       string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	var err error
	p.orders, err = trust.Init(trust.InitOptions{Dir: filepath.Join(p.dir, "tls"), Agent: "ORDERS", Instances: []string{"ha1", "ha2"},
		Clients: []trust.ClientSpec{{Name: "ops", Role: trust.RoleAdmin}, {Name: "batch", Role: trust.RoleOperator},
			{Name: "batch2", Role: trust.RoleOperator}, {Name: "dash", Role: trust.RoleMonitor}, {Name: "nobody", Role: trust.RoleNone}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.payments, err = trust.Init(trust.InitOptions{Dir: filepath.Join(p.dir, "tls"), Agent: "PAYMENTS", Instances: []string{"ha1"}}); err != nil {
		t.Fatal(err)
	}
	if p.foreign, err = trust.Init(trust.InitOptions{Dir: filepath.Join(p.dir, "other-ca"), Agent: "ORDERS",
		Clients: []trust.ClientSpec{{Name: "ops", Role: trust.RoleAdmin}}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// expired issues an admin client of ORDERS that expired an hour ago.
func (p *pki) expired(t *testing.T) (cert, key string) {
	t.Helper()
	certPEM, _ := os.ReadFile(p.orders.CA)
	keyPEM, _ := os.ReadFile(p.orders.CAKey)
	ca, err := trust.ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := ca.Issue(trust.Client("ORDERS", "old", trust.RoleAdmin), trust.IssueOptions{
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(p.dir, "old.pem"), filepath.Join(p.dir, "old.key")
	if err := os.WriteFile(cert, c, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// as is an HTTPS client presenting cert (none when cert is ""), which
// does not check the server: these tests are about what the server lets
// in.
func as(t *testing.T, cert, key string) *http.Client {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func call(hc *http.Client, method, url, body string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// An instance with TLS lets in only certificates of its CA that name an
// identity of its agent, and each identity only to what its role allows;
// raft only from its own agent's instances. Every refusal is audited with
// who asked.
func TestTLSIdentitiesAndRoles(t *testing.T) {
	p := newPKI(t)
	auditLog := filepath.Join(p.dir, "audit.jsonl")
	lines := append([]string{}, p.orders.Properties...)
	lines = append(lines, "auditLog="+auditLog)
	ins := startInstancesWith(t, []string{"ha1"}, lines, "ha1")
	in := ins["ha1"]
	waitFor(t, "ha1 active", in.node.IsActive)
	base := "https://" + in.self.Address

	client := func(name string) *http.Client {
		c := p.orders.Clients[name]
		return as(t, c[0], c[1])
	}
	// Refused at the handshake: no certificate, another CA, expired.
	oldCert, oldKey := p.expired(t)
	foreign := p.foreign.Clients["ops"]
	for name, hc := range map[string]*http.Client{
		"no certificate": as(t, "", ""),
		"another CA":     as(t, foreign[0], foreign[1]),
		"expired":        as(t, oldCert, oldKey),
	} {
		if code, body, err := call(hc, http.MethodGet, base+api.PathInstance, ""); err == nil {
			t.Errorf("%s: GET %s answered %d %q; want the connection refused", name, api.PathInstance, code, body)
		}
	}
	// Plaintext: a 400 that says TLS is required, nothing served.
	code, body, err := call(&http.Client{Timeout: 5 * time.Second}, http.MethodPost, "http://"+in.self.Address+api.PathStop, `{"immediate":true}`)
	if err != nil || code != http.StatusBadRequest || !strings.Contains(body, "requires TLS") {
		t.Errorf("plaintext POST %s: %d %q %v; want 400 saying TLS is required", api.PathStop, code, body, err)
	}

	create := `{"id":"%s","request":{"sources":["in/none"],"destination":"out/"}}`
	pay := p.payments.Instances["ha1"]
	for _, c := range []struct {
		who                string
		hc                 *http.Client
		method, path, body string
		want               int    // 0: anything but 403
		reason             string // in the 403's reason
	}{
		{"PAYMENTS instance", as(t, pay[0], pay[1]), http.MethodGet, api.PathAgent, "", 403, "identity of agent PAYMENTS"},
		{"client without role", client("nobody"), http.MethodGet, api.PathAgent, "", 403, "role none"},
		{"monitor reads", client("dash"), http.MethodGet, api.PathAgent, "", 200, ""},
		{"monitor reads transfers", client("dash"), http.MethodGet, api.PathTransfers, "", 200, ""},
		{"monitor creates", client("dash"), http.MethodPost, api.PathTransfers, fmt.Sprintf(create, "00000000000000a1"), 403, "needs role operator"},
		{"monitor stops", client("dash"), http.MethodPost, api.PathStop, `{}`, 403, "needs role admin"},
		{"operator stops", client("batch"), http.MethodPost, api.PathStop, `{}`, 403, "needs role admin"},
		{"operator adds a member", client("batch"), http.MethodPost, api.PathMembers, `{"agent":"ORDERS","name":"evil","address":"127.0.0.1:1"}`, 403, "needs role admin"},
		{"operator removes a member", client("batch"), http.MethodDelete, api.PathMembers + "/ha2", "", 403, "needs role admin"},
		{"monitor lists members", client("dash"), http.MethodGet, api.PathMembers, "", 200, ""},
		{"operator publishes a standby status", client("batch"), http.MethodPost, api.PathStandby, `{"name":"ha2"}`, 403, "only its instances"},
		{"admin publishes a standby status", client("ops"), http.MethodPost, api.PathStandby, `{"name":"ha2"}`, 403, "only its instances"},
		{"instance speaks for another", as(t, p.orders.Instances["ha2"][0], p.orders.Instances["ha2"][1]), http.MethodPost, api.PathMembers,
			`{"agent":"ORDERS","name":"evil","address":"127.0.0.1:1"}`, 403, "only for itself"},
		{"operator creates", client("batch"), http.MethodPost, api.PathTransfers, fmt.Sprintf(create, "00000000000000a2"), 0, ""},
	} {
		code, body, err := call(c.hc, c.method, base+c.path, c.body)
		switch {
		case err != nil:
			t.Errorf("%s: %s %s: %v", c.who, c.method, c.path, err)
		case c.want == 0 && code == http.StatusForbidden:
			t.Errorf("%s: %s %s: 403 %s; want it let through", c.who, c.method, c.path, body)
		case c.want != 0 && (code != c.want || !strings.Contains(body, c.reason)):
			t.Errorf("%s: %s %s: %d %s; want %d with %q", c.who, c.method, c.path, code, body, c.want, c.reason)
		}
	}

	// Raft from another agent's instance: the connection is closed
	// without an answer.
	d := &trust.Dialer{Mode: trust.Required, Store: mustStore(t, pay[0], pay[1], p.orders.CA), Check: trust.ExpectInstanceOf("ORDERS")}
	conn, err := d.DialContext(t.Context(), "tcp", in.self.Address)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte{netmux.RaftHeader, 0, 1, 2, 3})
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 16)); err == nil || isTimeout(err) {
		t.Errorf("raft from PAYMENTS/instance/ha1: read %d bytes, %v; want the connection closed", n, err)
	}
	conn.Close()

	// The refusals are in the audit trail, with who asked.
	recs, err := audit.ReadFile(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	for _, r := range recs {
		if r.Op == audit.OpRefused {
			refused = append(refused, r.Caller+" "+r.Action+" "+r.Result)
		}
	}
	all := strings.Join(refused, "\n")
	for _, want := range []string{"ORDERS/client/dash POST /v1/stop", "ORDERS/client/batch POST /v1/members", "PAYMENTS/instance/ha1", "connect plaintext connection"} {
		if !strings.Contains(all, want) {
			t.Errorf("audit trail has no refusal %q:\n%s", want, all)
		}
	}
}

// An operator cancels its own transfers, not another's; an admin cancels
// any. Each cancel is audited with who asked.
func TestOperatorCancelsOnlyItsOwn(t *testing.T) {
	p := newPKI(t)
	auditLog := filepath.Join(p.dir, "audit.jsonl")
	ins := startInstancesWith(t, []string{"ha1"}, append(append([]string{}, p.orders.Properties...), "auditLog="+auditLog,
		"maxSourceTransfers=1"), "ha1")
	in := ins["ha1"]
	waitFor(t, "ha1 active", in.node.IsActive)
	root := in.cfg.TransferRoot
	if err := os.MkdirAll(filepath.Join(root, "in"), 0o750); err != nil {
		t.Fatal(err)
	}
	// A transfer that waits in the queue behind a slow one, so that it is
	// still there to cancel.
	if err := os.WriteFile(filepath.Join(root, "in", "a"), bytes.Repeat([]byte("x"), 1<<20), 0o640); err != nil {
		t.Fatal(err)
	}
	base := "https://" + in.self.Address
	client := func(name string) *http.Client {
		c := p.orders.Clients[name]
		return as(t, c[0], c[1])
	}
	create := func(hc *http.Client, id, dest string, bw int) {
		t.Helper()
		body := fmt.Sprintf(`{"id":"%s","request":{"sources":["in/a"],"destination":"%s","bandwidthLimit":%d}}`, id, dest, bw)
		if code, b, err := call(hc, http.MethodPost, base+api.PathTransfers, body); err != nil || code != http.StatusCreated {
			t.Fatalf("create %s: %d %s %v", id, code, b, err)
		}
	}
	create(client("batch"), "00000000000000b1", "out/1", 64<<10) // 16 s at 64 KiB/s
	create(client("batch"), "00000000000000b2", "out/2", 0)
	create(client("batch"), "00000000000000b3", "out/3", 0)

	var v struct {
		Owner string `json:"owner"`
	}
	_, b, err := call(client("dash"), http.MethodGet, base+api.TransferPath("00000000000000b2"), "")
	if err != nil || json.Unmarshal([]byte(b), &v) != nil || v.Owner != "ORDERS/client/batch" {
		t.Fatalf("transfer b2's owner: %q (%s, %v); want ORDERS/client/batch", v.Owner, b, err)
	}
	if code, b, _ := call(client("batch2"), http.MethodPost, base+api.CancelPath("00000000000000b2"), ""); code != http.StatusForbidden ||
		!strings.Contains(b, "may cancel only its own") || !strings.Contains(b, "ORDERS/client/batch") {
		t.Errorf("another operator cancels b2: %d %s; want 403 naming the owner", code, b)
	}
	if code, b, _ := call(client("batch"), http.MethodPost, base+api.CancelPath("00000000000000b2"), ""); code != http.StatusOK {
		t.Errorf("its owner cancels b2: %d %s; want 200", code, b)
	}
	if code, b, _ := call(client("ops"), http.MethodPost, base+api.CancelPath("00000000000000b3"), ""); code != http.StatusOK {
		t.Errorf("an admin cancels b3: %d %s; want 200", code, b)
	}
	recs, err := audit.ReadFile(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	var admin []string
	for _, r := range recs {
		if r.Op == audit.OpAdmin {
			admin = append(admin, r.Caller+" "+r.Action+" "+r.Target+" "+r.Result)
		}
	}
	all := strings.Join(admin, "\n")
	for _, want := range []string{"ORDERS/client/batch cancel 00000000000000b2 ok", "ORDERS/client/ops cancel 00000000000000b3 ok"} {
		if !strings.Contains(all, want) {
			t.Errorf("audit trail has no %q:\n%s", want, all)
		}
	}
}

func mustStore(t *testing.T, cert, key, ca string) *trust.Store {
	t.Helper()
	s, err := trust.Load(trust.Files{Certificate: cert, PrivateKey: key, CA: ca}, trust.Keys{Certificate: "c", PrivateKey: "k", CA: "ca"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// Refused connections are recorded at a bounded rate: a flood of them does
// not grow the audit log without bound, and the next record says how many
// were left out.
func TestRefusedConnectionsAreRateLimited(t *testing.T) {
	dir := t.TempDir()
	trail, err := audit.Open(filepath.Join(dir, "audit.jsonl"), "ha1")
	if err != nil {
		t.Fatal(err)
	}
	in := &Instance{trail: trail, refusedTokens: refusedBurst, refusedAt: time.Now(), log: zerolog.Nop()}
	for i := 0; i < 10*refusedBurst; i++ {
		in.refusedConn("127.0.0.2:1", "plaintext connection: TLS is required")
	}
	recs, err := audit.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(recs); n < refusedBurst || n > refusedBurst+refusedPerSecond {
		t.Fatalf("%d refusals recorded of %d at once; want about %d", n, 10*refusedBurst, refusedBurst)
	}
	time.Sleep(time.Second / refusedPerSecond * 2)
	in.refusedConn("127.0.0.2:1", "plaintext connection: TLS is required")
	recs, _ = audit.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if last := recs[len(recs)-1].Result; !strings.Contains(last, "more refused connections not recorded") {
		t.Fatalf("the record after the flood says %q; want the count left out", last)
	}
}

// A re-read CA bundle closes the kept-alive API connections whose client
// certificate it no longer trusts, and keeps those it still trusts.
func TestReloadClosesConnectionsItNoLongerTrusts(t *testing.T) {
	p := newPKI(t)
	ins := startInstancesWith(t, []string{"ha1"}, p.orders.Properties, "ha1")
	in := ins["ha1"]
	ops := p.orders.Clients["ops"]
	kp, err := tls.LoadX509KeyPair(ops[0], ops[1])
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", in.self.Address, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{kp}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func() (int, error) {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: ftagent\r\n\r\n", api.PathInstance); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(); err != nil || code != http.StatusOK {
		t.Fatalf("GET on a new connection: %d %v", code, err)
	}
	ourCA, _ := os.ReadFile(p.orders.CA)
	otherCA, _ := os.ReadFile(p.foreign.CA)
	reload := func(bundle []byte) {
		t.Helper()
		if err := os.WriteFile(p.orders.CA, bundle, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := in.tls.Reload(); err != nil {
			t.Fatal(err)
		}
		in.reloaded(nil)
	}

	// Still trusted (a bundle with another CA): the connection stays.
	reload(append(append([]byte{}, ourCA...), otherCA...))
	if code, err := get(); err != nil || code != http.StatusOK {
		t.Fatalf("GET on the kept connection after a re-read that still trusts it: %d %v", code, err)
	}
	// No longer trusted: closed, without another answer.
	reload(otherCA)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("the kept connection after a re-read that no longer trusts it: read %v, want it closed", err)
	}
}
