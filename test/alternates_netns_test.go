package test

// Alternate groups with each instance of the three agents in a network
// namespace of its own (the fault-injection bench): the group lost by a
// partition that drops its packets silently, not by a refusal.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/agentclient"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/chaos"
	"github.com/ftagent/ftagent/test/harness"
)

// ORDERS (ha1-3), PAYMENTS (pay1-3) and PAYMENTS_DR (dr1-3), nine hosts
// of one bench, each agent with its own directory and storage. An 8 MiB
// file at 2 MiB/s goes to PAYMENTS; midway, blackhole routes cut every
// host of ORDERS off from every host of PAYMENTS (packets dropped, PAYMENTS
// running and healthy on its side). The transfer moves to PAYMENTS_DR and
// completes there with the source's SHA-256. Healed, the file in doubt is
// reconciled absent: no .part and no final file left at PAYMENTS.
func TestAlternateInNamespaces(t *testing.T) {
	// Beside the other parallel tests, mostly waiting: no other test
	// that runs in parallel sets up a bench (the chaos tests, which do,
	// run alone, before the parallel ones).
	t.Parallel()
	if why := chaos.Capable(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot set up the network namespaces: %s", why)
		}
		t.Skipf("cannot set up the network namespaces: %s", why)
	}
	dir, err := os.MkdirTemp("", "ftagent-alt-netns-")
	if err != nil {
		t.Fatal(err)
	}
	ordHosts, payHosts, drHosts := []string{"ha1", "ha2", "ha3"}, []string{"pay1", "pay2", "pay3"}, []string{"dr1", "dr2", "dr3"}
	bench, err := chaos.NewBench(append(append(append([]string{}, ordHosts...), payHosts...), drHosts...))
	if err != nil {
		_ = bench.Close()
		t.Fatalf("network set-up: %v", err)
	}
	common := []string{"checkpointInterval=1M", "checkpointTimeInterval=1"}
	var agents []*chaos.Agent
	newAgent := func(name string, hosts []string, extra ...string) *chaos.Agent {
		a, err := chaos.NewNamedAgent(bench, bin, filepath.Join(dir, strings.ToLower(name)), chaos.AgentSpec{
			Name: name, Hosts: hosts, TLSDir: dir, Extra: append(extra, common...)})
		if err != nil {
			_ = bench.Close()
			t.Fatal(err)
		}
		agents = append(agents, a)
		return a
	}
	list := func(a *chaos.Agent) string {
		var entries []string
		for _, n := range a.Names {
			entries = append(entries, n+"@"+a.Addr[n])
		}
		return strings.Join(entries, ",")
	}
	payments := newAgent("PAYMENTS", payHosts, "acceptFrom=ORDERS")
	dr := newAgent("PAYMENTS_DR", drHosts, "acceptFrom=ORDERS")
	orders := newAgent("ORDERS", ordHosts,
		"agent.PAYMENTS.instances="+list(payments),
		"agent.PAYMENTS_DR.instances="+list(dr),
		"agent.PAYMENTS.alternates=PAYMENTS_DR",
		"alternateAfter=6s")
	t.Cleanup(func() {
		for _, a := range agents {
			a.StopAll()
		}
		if err := bench.Close(); err != nil {
			t.Errorf("network tear-down: %v", err)
		}
		if t.Failed() {
			for _, a := range agents {
				for _, n := range a.Names {
					t.Logf("--- last log lines of %s (%s):\n%s", n, a.Name(), a.LogTail(n, 30))
				}
			}
			t.Logf("files and logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	for _, a := range agents {
		for _, n := range a.Names {
			if err := a.Start(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, a := range agents {
		if _, _, err := a.WaitHealthy(30 * time.Second); err != nil {
			t.Fatalf("%s: %v", a.Name(), err)
		}
	}
	if err := orders.WaitSendsToAgents(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	src := filepath.Join(orders.Root, "in", "big.bin")
	if err := harness.WriteRandomFile(src, 8<<20, 66); err != nil {
		t.Fatal(err)
	}
	sum := xferSum(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	v, err := agentclient.CreateTransfer(ctx, orders.Client, transfer.Request{
		Sources: []string{"in/big.bin"}, Destination: "inbox/big.bin", DestinationAgent: "PAYMENTS", BandwidthLimit: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	follow := func(what string, timeout time.Duration, cond func(transfer.View) bool) transfer.View {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			got, err := agentclient.GetTransfer(ctx, orders.Client, v.ID)
			if err == nil && cond(got) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("transfer %s: not %s within %v: %s (%v)", v.ID, what, timeout, harness.ViewText(got), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	follow("2 MiB done", 60*time.Second, func(v transfer.View) bool { return v.BytesDone >= 2<<20 })
	if err := bench.CutBetween(ordHosts, payHosts); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	moved := follow("moved to PAYMENTS_DR", 3*time.Minute, func(v transfer.View) bool { return v.Group == "PAYMENTS_DR" || transfer.Terminal(v.State) })
	t.Logf("moved %v after the cut: %s", time.Since(cut).Round(time.Second), moved.Switched.Reason)
	end := follow("ended", 2*time.Minute, func(v transfer.View) bool { return transfer.Terminal(v.State) })
	if end.State != transfer.StateCompleted || end.Group != "PAYMENTS_DR" || len(end.Doubts) != 1 {
		t.Fatalf("transfer %s at %q with doubts %+v: %s", end.State, end.Group, end.Doubts, harness.ViewText(end))
	}
	if got := xferSum(t, filepath.Join(dr.Root, "inbox", "big.bin")); got != sum {
		t.Fatalf("SHA-256 at PAYMENTS_DR %s, source %s", got, sum)
	}
	if _, _, err := payments.WaitHealthy(10 * time.Second); err != nil {
		t.Errorf("PAYMENTS not healthy on its side of the partition: %v", err)
	}
	if err := bench.HealBetween(ordHosts, payHosts); err != nil {
		t.Fatal(err)
	}
	rec := follow("reconciled", 2*time.Minute, func(v transfer.View) bool { return len(v.Doubts) == 1 && v.Doubts[0].Outcome != "" })
	if rec.Doubts[0].Outcome != "absent" {
		t.Fatalf("doubt %+v, want absent", rec.Doubts[0])
	}
	left, err := chaos.WaitNoParts(ctx, 30*time.Second, payments.Root, dr.Root)
	if err != nil || len(left) > 0 {
		t.Errorf(".part files left: %v %v", left, err)
	}
	if _, err := os.Stat(filepath.Join(payments.Root, "inbox", "big.bin")); err == nil {
		t.Error("a final file at PAYMENTS, which never committed it")
	}
}
