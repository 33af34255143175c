package harness

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/ftagent/ftagent/pkg/trust"
)

// Clients the harness issues certificates for, one per role.
const (
	ClientAdmin    = "admin"
	ClientOperator = "operator"
	ClientMonitor  = "monitor"
)

// TLS is an agent's certificates, from a CA of the test's own
// (`ftagent tls init` does the same).
type TLS struct {
	Dir   string
	Agent string
	Res   *trust.InitResult
}

// SetUpTLS issues, under dir/tls, a CA (or reuses the one there), a
// certificate per instance and one client per role (ClientAdmin,
// ClientOperator, ClientMonitor).
func SetUpTLS(dir, agent string, instances []string) (*TLS, error) {
	tdir := filepath.Join(dir, "tls")
	res, err := trust.Init(trust.InitOptions{Dir: tdir, Agent: agent, Instances: instances, Clients: []trust.ClientSpec{
		{Name: ClientAdmin, Role: trust.RoleAdmin}, {Name: ClientOperator, Role: trust.RoleOperator}, {Name: ClientMonitor, Role: trust.RoleMonitor},
	}})
	if err != nil {
		return nil, fmt.Errorf("set up TLS: %w", err)
	}
	return &TLS{Dir: tdir, Agent: agent, Res: res}, nil
}

// Lines are the agent.properties lines of the instances' TLS, with the
// commands presenting client's certificate.
func (t *TLS) Lines(client string) []string {
	c := t.Res.Clients[client]
	// No tlsMode line: required is the default, and a test may set another.
	return append(append([]string{}, t.Res.Files...), "clientCertificate="+c[0], "clientPrivateKey="+c[1])
}

// ClientFiles are client's certificate and key.
func (t *TLS) ClientFiles(client string) (cert, key string) {
	c := t.Res.Clients[client]
	return c[0], c[1]
}

// Env is the environment that makes a command present client's
// certificate and trust the agent's CA, with or without agent.properties
// (-x).
func (t *TLS) Env(client string) []string {
	cert, key := t.ClientFiles(client)
	return []string{"FTAGENT_CLIENT_CERTIFICATE=" + cert, "FTAGENT_CLIENT_PRIVATE_KEY=" + key, "FTAGENT_TLS_CA=" + t.Res.CA}
}

// ClientEnv is the environment of a command run as the admin client of
// the cluster (nothing without TLS).
func (c *Cluster) ClientEnv() []string {
	if c.TLS == nil {
		return nil
	}
	return c.TLS.Env(ClientAdmin)
}

// Run runs a command as the cluster's admin client (see ClientEnv): for
// commands given -x rather than the cluster's agent.properties.
func (c *Cluster) Run(ctx context.Context, bin string, args ...string) (Result, error) {
	return RunEnv(ctx, c.ClientEnv(), bin, args...)
}

// Dialer connects as client to the agent's instances.
func (t *TLS) Dialer(client string) (*trust.Dialer, error) {
	cert, key := t.ClientFiles(client)
	store, err := trust.Load(trust.Files{Certificate: cert, PrivateKey: key, CA: t.Res.CA}, trust.Keys{Certificate: "cert", PrivateKey: "key", CA: "ca"})
	if err != nil {
		return nil, err
	}
	return &trust.Dialer{Mode: trust.Required, Store: store, Check: trust.ExpectInstanceOf(t.Agent)}, nil
}

// HTTPClient is an HTTP client that connects as client (http:// URLs:
// the connections are TLS).
func (t *TLS) HTTPClient(client string, timeout time.Duration) (*http.Client, error) {
	d, err := t.Dialer(client)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, IdleConnTimeout: 10 * time.Second}}, nil
}

// TLSModeOption is a tlsMode value as Options.TLSMode: required, the
// default, is "".
func TLSModeOption(mode string) string {
	if mode == "required" {
		return ""
	}
	return mode
}

// DialAsAdmin makes t connect to the instances as the cluster's admin
// client (it leaves t as it is without TLS).
func (c *Cluster) DialAsAdmin(t *http.Transport) error {
	if c.TLS == nil {
		return nil
	}
	d, err := c.TLS.Dialer(ClientAdmin)
	if err != nil {
		return err
	}
	t.DialContext = d.DialContext
	return nil
}
