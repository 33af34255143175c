package test

// The commands' own alternate groups (alternates): a client configuration
// that lists the instances of ORDERS and then of ORDERS_DR, another group
// at another site sharing no state with it.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/test/harness"
)

// While ORDERS answers, the commands talk to it; with every ORDERS
// instance killed, ftagent show is answered by ORDERS_DR and says so,
// and a transfer is created (and completes) there, presenting ORDERS_DR's
// own client certificate; with ORDERS back, a new command talks to ORDERS
// again.
func TestClientAlternates(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	base := t.TempDir()
	orders := newCluster(t, harness.Options{AgentName: "ORDERS", TLSDir: base})
	dr := newCluster(t, harness.Options{AgentName: "ORDERS_DR", Names: []string{"dr1", "dr2", "dr3"}, TLSDir: base})
	for _, c := range []*harness.Cluster{orders, dr} {
		startAll(t, c)
	}
	for _, c := range []*harness.Cluster{orders, dr} {
		wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	}
	props, err := os.ReadFile(orders.Props)
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, n := range dr.Names {
		entries = append(entries, n+"@"+dr.Addr[n])
	}
	cert, key := dr.TLS.ClientFiles(harness.ClientAdmin)
	client := filepath.Join(t.TempDir(), "client.properties")
	lines := []string{string(props),
		"alternates=ORDERS_DR",
		"agent.ORDERS_DR.instances=" + strings.Join(entries, ","),
		"agent.ORDERS_DR.clientCertificate=" + cert,
		"agent.ORDERS_DR.clientPrivateKey=" + key,
		// A lost group is given up after one pass.
		"clientConnectAttempts=1", "clientReconnectAttempts=1", "clientConnectDelay=100ms",
	}
	if err := os.WriteFile(client, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	run := func(sub []string, args ...string) harness.Result {
		t.Helper()
		r, err := orders.Run(ctx, orders.Bin.Ftagent, append(append(sub, "--config", client), args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	r := run([]string{"show"})
	if r.Exit != 0 || !strings.Contains(r.Stdout, "Agent:   ORDERS\n") || strings.Contains(r.Stdout, "Answered by") {
		t.Fatalf("show with ORDERS up: exit %d\n%s%s", r.Exit, r.Stdout, r.Stderr)
	}

	for _, n := range orders.Names {
		if err := orders.Kill(n); err != nil {
			t.Fatal(err)
		}
	}
	r = run([]string{"show"})
	if r.Exit != 0 || !strings.Contains(r.Stdout, "Answered by the alternate group ORDERS_DR: no instance of ORDERS answered.") ||
		!strings.Contains(r.Stdout, "Agent:   ORDERS_DR\n") {
		t.Fatalf("show with ORDERS lost: exit %d\n%s%s", r.Exit, r.Stdout, r.Stderr)
	}
	sum := xferRandomFile(t, dr, "in/a.bin", 1<<20, 81)
	r = run([]string{"transfer", "create"}, "--wait", "in/a.bin", "out/a.bin")
	if r.Exit != 0 || !strings.Contains(r.Stderr, "no instance of agent ORDERS answered; its alternate group ORDERS_DR (alternates) did") {
		t.Fatalf("transfer create with ORDERS lost: exit %d\n%s%s", r.Exit, r.Stdout, r.Stderr)
	}
	if got := xferSum(t, xferPath(dr, "out/a.bin")); got != sum {
		t.Fatalf("SHA-256 at ORDERS_DR %s, source %s", got, sum)
	}

	// Without ORDERS_DR's own certificate, ORDERS_DR refuses the
	// commands: they name ORDERS' client.
	plain := filepath.Join(t.TempDir(), "plain.properties")
	if err := os.WriteFile(plain, []byte(strings.Join(lines[:3], "\n")+"\nclientConnectAttempts=1\nclientReconnectAttempts=1\nclientConnectDelay=100ms\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	r, err = orders.Run(ctx, orders.Bin.Ftagent, "show", "--config", plain)
	if err != nil || r.Exit == 0 {
		t.Fatalf("show at ORDERS_DR as ORDERS' client: exit %d %v, want refused\n%s%s", r.Exit, err, r.Stdout, r.Stderr)
	}

	for _, n := range orders.Names {
		if _, err := orders.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, orders, 20*time.Second, "ORDERS back", activeWithStandbys(2))
	r = run([]string{"show"})
	if r.Exit != 0 || !strings.Contains(r.Stdout, "Agent:   ORDERS\n") || strings.Contains(r.Stdout, "Answered by") {
		t.Fatalf("show with ORDERS back: exit %d\n%s%s", r.Exit, r.Stdout, r.Stderr)
	}
}
