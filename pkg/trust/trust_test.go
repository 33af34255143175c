package trust

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parseCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInitIssuesIdentitiesAndNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	res, err := Init(InitOptions{Dir: dir, Agent: "ORDERS", Instances: []string{"ha1", "ha2"},
		Clients: []ClientSpec{{Name: "ops", Role: RoleAdmin}, {Name: "dash", Role: RoleMonitor}}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.NewCA {
		t.Error("first Init did not make a CA")
	}
	for path, want := range map[string]Identity{
		res.Instances["ha1"][0]: Instance("ORDERS", "ha1"),
		res.Clients["ops"][0]:   Client("ORDERS", "ops", RoleAdmin),
		res.Clients["dash"][0]:  Client("ORDERS", "dash", RoleMonitor),
	} {
		id, err := IdentityOf(parseCert(t, path))
		if err != nil || id != want {
			t.Errorf("%s names %+v (%v), want %+v", path, id, err, want)
		}
	}
	for _, p := range []string{res.CAKey, res.Instances["ha2"][1], res.Clients["ops"][1]} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key %s: mode %v (%v), want 0600", p, fi.Mode().Perm(), err)
		}
	}
	if fi, err := os.Stat(filepath.Dir(res.CAKey)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("CA key directory: %v %v, want 0700", fi.Mode().Perm(), err)
	}
	before, _ := os.ReadFile(res.Instances["ha1"][1])
	if _, err := Init(InitOptions{Dir: dir, Agent: "ORDERS", Instances: []string{"ha3", "ha1"}}); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Errorf("Init over an existing key: %v, want a refusal", err)
	}
	after, _ := os.ReadFile(res.Instances["ha1"][1])
	if string(before) != string(after) {
		t.Error("a refused Init changed an existing key")
	}
	if _, err := os.Stat(filepath.Join(dir, "ORDERS", "ha3.pem")); err == nil {
		t.Error("a refused Init wrote ha3's certificate")
	}
	// A second agent from the same CA: the same ca.pem verifies both.
	res2, err := Init(InitOptions{Dir: dir, Agent: "PAYMENTS", Instances: []string{"pay1"}})
	if err != nil || res2.NewCA || res2.CA != res.CA {
		t.Fatalf("second agent: %+v %v; want the CA reused", res2, err)
	}
	s, err := Load(Files{Certificate: res.Instances["ha1"][0], PrivateKey: res.Instances["ha1"][1], CA: res.CA}, Keys{Certificate: "c", PrivateKey: "k", CA: "ca"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Verify([]*x509.Certificate{parseCert(t, res2.Instances["pay1"][0])}, x509.ExtKeyUsageServerAuth)
	if err != nil || id != Instance("PAYMENTS", "pay1") {
		t.Errorf("PAYMENTS's instance verified against ORDERS's CA: %+v %v", id, err)
	}
	// A client certificate cannot serve.
	if _, err := s.Verify([]*x509.Certificate{parseCert(t, res.Clients["ops"][0])}, x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("a client certificate verified for server authentication")
	}
}

func TestIdentityURIs(t *testing.T) {
	for _, c := range []struct {
		uri  string
		want Identity
		err  string
	}{
		{"ftagent://ORDERS/instance/ha1", Instance("ORDERS", "ha1"), ""},
		{"ftagent://ORDERS_2.x-1/client/ops", Client("ORDERS_2.x-1", "ops", RoleNone), ""},
		{"ftagent://ORDERS/robot/x", Identity{}, "not instance or client"},
		{"ftagent://ORDERS/instance/a/b", Identity{}, "is not ftagent://"},
		{"ftagent://ORDERS/instance/", Identity{}, "instance name"},
		{"ftagent://ORDERS/instance/ha1?role=admin", Identity{}, "is not ftagent://"},
		{"ftagent:///instance/ha1", Identity{}, "agent name"},
	} {
		u, err := url.Parse(c.uri)
		if err != nil {
			t.Fatal(err)
		}
		id, err := parseURI(u)
		switch {
		case c.err == "" && (err != nil || id != c.want):
			t.Errorf("%s: %+v %v, want %+v", c.uri, id, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %+v %v, want an error with %q", c.uri, id, err, c.err)
		}
	}
	if !Client("A", "x", RoleAdmin).Allows(RoleOperator) || Client("A", "x", RoleMonitor).Allows(RoleOperator) ||
		Client("A", "x", RoleNone).Allows(RoleNone) || !Instance("A", "ha1").Allows(RoleAdmin) {
		t.Error("role order is wrong")
	}
}

// A renewed certificate is picked up by Watch; a certificate of another
// identity, or a broken file, is refused and the old one kept.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	res, err := Init(InitOptions{Dir: dir, Agent: "ORDERS", Instances: []string{"ha1", "ha2"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, key := res.Instances["ha1"][0], res.Instances["ha1"][1]
	s, err := Load(Files{Certificate: cert, PrivateKey: key, CA: res.CA}, Keys{Certificate: "tlsCertificate", PrivateKey: "tlsPrivateKey", CA: "tlsCA"})
	if err != nil {
		t.Fatal(err)
	}
	first := s.NotAfter()
	caPEM, _ := os.ReadFile(res.CA)
	caKey, _ := os.ReadFile(res.CAKey)
	ca, err := ParseCA(caPEM, caKey)
	if err != nil {
		t.Fatal(err)
	}
	// Another identity: refused.
	other := res.Instances["ha2"]
	swap := func(c, k string) {
		cb, _ := os.ReadFile(c)
		kb, _ := os.ReadFile(k)
		if err := os.WriteFile(cert, cb, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(key, kb, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	swap(other[0], other[1])
	if _, err := s.Reload(); err == nil || !strings.Contains(err.Error(), "names ORDERS/instance/ha2") {
		t.Errorf("reload with ha2's certificate: %v, want a refusal", err)
	}
	if s.Self() != Instance("ORDERS", "ha1") {
		t.Errorf("after a refused reload the store is %s", s.Self())
	}
	// Renewed: picked up by Watch.
	c, k, err := ca.Issue(Instance("ORDERS", "ha1"), IssueOptions{NotAfter: time.Now().Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports := make(chan error, 4)
	go s.Watch(ctx, 20*time.Millisecond, func(err error) { reports <- err })
	time.Sleep(30 * time.Millisecond) // a different modification time
	if err := os.WriteFile(key, k, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, c, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for s.NotAfter().Equal(first) {
		select {
		case err := <-reports:
			if err != nil {
				t.Logf("watch: %v (a half-written pair; retried)", err)
			}
		case <-deadline:
			t.Fatal("the renewed certificate was not picked up")
		}
	}
	if s.NotAfter().After(first) {
		t.Errorf("renewed certificate expires %v, after the first %v: want the shorter renewal in use", s.NotAfter(), first)
	}
	// A broken file: refused, the renewal kept.
	renewed := s.NotAfter()
	if err := os.WriteFile(res.CA, []byte("not PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(); err == nil || !strings.Contains(err.Error(), "tlsCA") {
		t.Errorf("reload with a broken CA bundle: %v, want an error naming tlsCA", err)
	}
	if !s.NotAfter().Equal(renewed) {
		t.Error("a failed reload changed the certificate in use")
	}
}

// A CA of PeerCA vouches for other agents' identities only: a certificate
// it signs that names the store's own agent is refused, one naming another
// agent is accepted; the store's own CA vouches for any.
func TestPeerCAOnlyForOtherAgents(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	a, err := Init(InitOptions{Dir: dirA, Agent: "ORDERS", Instances: []string{"ha1"}, Clients: []ClientSpec{{Name: "ops", Role: RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Init(InitOptions{Dir: dirB, Agent: "PAYMENTS", Instances: []string{"pay1"}})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := Init(InitOptions{Dir: dirB, Agent: "ORDERS", Clients: []ClientSpec{{Name: "evil", Role: RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(Files{Certificate: a.Instances["ha1"][0], PrivateKey: a.Instances["ha1"][1], CA: a.CA, PeerCA: b.CA},
		Keys{Certificate: "tlsCertificate", PrivateKey: "tlsPrivateKey", CA: "tlsCA", PeerCA: "tlsPeerCA"})
	if err != nil {
		t.Fatal(err)
	}
	chain := func(file string) []*x509.Certificate {
		t.Helper()
		pemBytes, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(pemBytes)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{c}
	}
	if id, err := s.Verify(chain(b.Instances["pay1"][0]), x509.ExtKeyUsageClientAuth); err != nil || id != Instance("PAYMENTS", "pay1") {
		t.Errorf("another agent's instance, signed by a peer CA: %v %v", id, err)
	}
	if id, err := s.Verify(chain(a.Clients["ops"][0]), x509.ExtKeyUsageClientAuth); err != nil || id.Agent != "ORDERS" {
		t.Errorf("its own client, signed by its own CA: %v %v", id, err)
	}
	if id, err := s.Verify(chain(forged.Clients["evil"][0]), x509.ExtKeyUsageClientAuth); err == nil || !strings.Contains(err.Error(), "tlsPeerCA") {
		t.Errorf("its own agent's identity signed by a peer CA: %v %v, want refused naming tlsPeerCA", id, err)
	}
	// Without PeerCA, a certificate of the other CA is not trusted at all.
	s2, err := Load(Files{Certificate: a.Instances["ha1"][0], PrivateKey: a.Instances["ha1"][1], CA: a.CA},
		Keys{Certificate: "tlsCertificate", PrivateKey: "tlsPrivateKey", CA: "tlsCA"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Verify(chain(b.Instances["pay1"][0]), x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("a certificate of an untrusted CA was accepted")
	}
}
