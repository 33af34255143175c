package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/test/harness"
)

// `ftagent tls init` as an operator runs it: the lines it prints, pasted
// into agent.properties, start an agent that the client it issued can
// reach; a second agent from the same CA reuses it; running it again over
// existing keys is refused in one line and changes nothing.
func TestTLSInitAsAnOperatorUsesIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	r, err := harness.Run(ctx, bin.Ftagent, "tls", "init", "--dir", tlsDir, "--agent", "ORDERS", "--instances", "ha1", "--clients", "ops:admin,dash:monitor")
	if err != nil || r.Exit != 0 {
		t.Fatalf("tls init: exit %d %v\n%s%s", r.Exit, err, r.Stdout, r.Stderr)
	}
	var props []string
	for _, l := range strings.Split(r.Stdout, "\n") {
		if strings.HasPrefix(l, "tls") {
			props = append(props, l)
		}
	}
	if len(props) != 4 || !strings.Contains(r.Stdout, "CA made") || !strings.Contains(r.Stdout, "client ops (role admin)") {
		t.Fatalf("tls init printed:\n%s\nwant the CA, the clients with their roles and four tls* lines", r.Stdout)
	}
	for _, key := range []string{filepath.Join(tlsDir, "ca-key", "ca.key"), filepath.Join(tlsDir, "ORDERS", "ha1.key"), filepath.Join(tlsDir, "ORDERS", "clients", "ops.key")} {
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v; want mode 0600", key, fi, err)
		}
	}

	// The printed lines, pasted, start the agent.
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	propsFile := filepath.Join(dir, "agent.properties")
	body := strings.Join(append([]string{"agentName=ORDERS", "instances=ha1@" + addr, "dataDirectory=data",
		"clientCertificate=" + filepath.Join(tlsDir, "ORDERS", "clients", "ops.pem"),
		"clientPrivateKey=" + filepath.Join(tlsDir, "ORDERS", "clients", "ops.key")}, props...), "\n") + "\n"
	if err := os.WriteFile(propsFile, []byte(body), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(propsFile); err != nil {
		t.Fatalf("the pasted lines do not load: %v", err)
	}
	cmd := exec.Command(bin.Ftagent, "start", "--config", propsFile, "--instance", "ha1", "--log-format", "json")
	p, err := harness.StartProcess("ha1", cmd, filepath.Join(dir, "ha1.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.Done()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err = harness.Run(ctx, bin.Ftagent, "show", "--config", propsFile, "--json")
		if err == nil && r.Exit == 0 && strings.Contains(r.Stdout, `"active":"ha1"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent started from the pasted lines never answered show: exit %d %v %s", r.Exit, err, r.Stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The monitor it issued reads but may not stop.
	monitor := []string{"FTAGENT_CLIENT_CERTIFICATE=" + filepath.Join(tlsDir, "ORDERS", "clients", "dash.pem"),
		"FTAGENT_CLIENT_PRIVATE_KEY=" + filepath.Join(tlsDir, "ORDERS", "clients", "dash.key")}
	if r, _ := harness.RunEnv(ctx, monitor, bin.Ftstop, "--config", propsFile, "--force"); r.Exit != 1 || !strings.Contains(r.Stderr, "needs role admin") {
		t.Errorf("ftstop as the monitor: exit %d %q; want exit 1 saying it needs role admin", r.Exit, r.Stderr)
	}

	// A second agent from the same CA.
	r, _ = harness.Run(ctx, bin.Ftagent, "tls", "init", "--dir", tlsDir, "--agent", "PAYMENTS", "--instances", "pay1")
	if r.Exit != 0 || !strings.Contains(r.Stdout, "CA reused") {
		t.Errorf("tls init of a second agent: exit %d\n%s%s; want the CA reused", r.Exit, r.Stdout, r.Stderr)
	}
	// Over existing keys: refused, nothing changed.
	before, _ := os.ReadFile(filepath.Join(tlsDir, "ORDERS", "ha1.key"))
	r, _ = harness.Run(ctx, bin.Ftagent, "tls", "init", "--dir", tlsDir, "--agent", "ORDERS", "--instances", "ha1,ha2")
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if r.Exit != 1 || len(lines) != 1 || !strings.Contains(lines[0], "not overwriting") {
		t.Errorf("tls init over existing keys: exit %d %q; want exit 1 and one line saying it does not overwrite", r.Exit, r.Stderr)
	}
	after, _ := os.ReadFile(filepath.Join(tlsDir, "ORDERS", "ha1.key"))
	if string(before) != string(after) {
		t.Error("a refused tls init changed ha1's key")
	}
	if _, err := os.Stat(filepath.Join(tlsDir, "ORDERS", "ha2.pem")); err == nil {
		t.Error("a refused tls init wrote ha2's certificate")
	}
}
