package test

// Transfers between two agents, each of three instances: ORDERS sends,
// PAYMENTS receives on storage of its own, and either side fails over.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/trust"
	"github.com/ftagent/ftagent/test/harness"
)

// twoAgents starts ORDERS (which may send to PAYMENTS) and PAYMENTS
// (which accepts from ORDERS), each with three instances, its own
// directory and storage, and certificates from one CA.
func twoAgents(t *testing.T, extraOrders, extraPayments []string) (orders, payments *harness.Cluster) {
	t.Helper()
	orders, payments, _ = twoAgentsLinked(t, false, extraOrders, extraPayments)
	return orders, payments
}

// agentsSetup shapes twoAgentsLinked beyond its defaults.
type agentsSetup struct {
	payNames   []string // PAYMENTS' instances: pay1, pay2, pay3
	acceptFrom string   // PAYMENTS' acceptFrom: ORDERS
	// twoCAs: each agent has a CA of its own (two organisations), and
	// each one names the other's in tlsPeerCA.
	twoCAs bool
}

// twoAgentsLinked is twoAgents, with ORDERS reaching PAYMENTS through a
// link the test can cut when linked.
func twoAgentsLinked(t *testing.T, linked bool, extraOrders, extraPayments []string) (orders, payments *harness.Cluster, link *harness.Link) {
	t.Helper()
	return twoAgentsWith(t, agentsSetup{}, linked, extraOrders, extraPayments)
}

func twoAgentsWith(t *testing.T, setup agentsSetup, linked bool, extraOrders, extraPayments []string) (orders, payments *harness.Cluster, link *harness.Link) {
	t.Helper()
	if setup.payNames == nil {
		setup.payNames = []string{"pay1", "pay2", "pay3"}
	}
	if setup.acceptFrom == "" {
		setup.acceptFrom = "ORDERS"
	}
	base := t.TempDir()
	kill := func(c *harness.Cluster) {
		t.Cleanup(func() {
			for _, n := range c.Names {
				if c.Proc(n) != nil {
					_ = c.Kill(n)
				}
			}
		})
	}
	ordersTLS, paymentsTLS := base, base
	if setup.twoCAs {
		ordersTLS, paymentsTLS = filepath.Join(base, "orders-org"), filepath.Join(base, "payments-org")
		var cas []string
		for _, dir := range []string{ordersTLS, paymentsTLS} {
			// A CA of the organisation's own (the agents' certificates
			// are issued from it when their clusters are set up).
			res, err := trust.Init(trust.InitOptions{Dir: filepath.Join(dir, "tls"), Agent: "SEED", Clients: []trust.ClientSpec{{Name: "seed", Role: trust.RoleMonitor}}})
			if err != nil {
				t.Fatal(err)
			}
			cas = append(cas, res.CA)
		}
		extraOrders = append([]string{"tlsPeerCA=" + cas[1]}, extraOrders...)
		extraPayments = append([]string{"tlsPeerCA=" + cas[0]}, extraPayments...)
	}
	payments = newCluster(t, harness.Options{AgentName: "PAYMENTS", Names: setup.payNames, TLSDir: paymentsTLS,
		Extra: append([]string{"acceptFrom=" + setup.acceptFrom, "checkpointTimeInterval=1"}, extraPayments...)})
	kill(payments)
	addrs := payments.Addr
	if linked {
		var err error
		if link, err = harness.NewLink(payments.Addr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(link.Close)
		addrs = link.Addr
	}
	var entries []string
	for _, n := range payments.Names {
		entries = append(entries, n+"@"+addrs[n])
	}
	orders = newCluster(t, harness.Options{AgentName: "ORDERS", TLSDir: ordersTLS,
		Extra: append([]string{"agent.PAYMENTS.instances=" + strings.Join(entries, ","), "checkpointTimeInterval=1"}, extraOrders...)})
	kill(orders)
	startAll(t, payments)
	startAll(t, orders)
	wait(t, payments, 20*time.Second, "PAYMENTS: an active and its standbys", activeWithStandbys(len(setup.payNames)-1))
	wait(t, orders, 20*time.Second, "ORDERS: one active and two standbys", activeWithStandbys(2))
	return orders, payments, link
}

// restartAsStandby starts name again and waits until it reports as a
// standby.
func restartAsStandby(t *testing.T, c *harness.Cluster, name string) {
	t.Helper()
	if _, err := c.Start(name); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 20*time.Second, name+" back as a standby", func(v ha.AgentView) bool {
		for _, s := range v.Standbys {
			if s == name {
				return true
			}
		}
		return false
	})
}

// A large file sent to another agent survives a kill -9 of the receiving
// agent's active, then of the sending agent's, then a planned failover on
// each side: it completes with the source's SHA-256, no .part is left on
// either side, and what was sent again stays within one checkpoint
// interval per failover.
func TestAgentToAgentAcrossFailoversOfBothSides(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments := twoAgents(t, []string{"checkpointInterval=1M"}, nil)
	const size = 24 << 20
	sum := xferRandomFile(t, orders, "in/big.bin", size, 7)
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "2M", "in/big.bin", "inbox/big.bin")

	step := int64(4 << 20)
	var done int64
	disrupt := []struct {
		what string
		c    *harness.Cluster
		do   func(c *harness.Cluster, active string) error
	}{
		{"kill -9 of the receiving active", payments, func(c *harness.Cluster, a string) error { return c.Kill(a) }},
		{"kill -9 of the sending active", orders, func(c *harness.Cluster, a string) error { return c.Kill(a) }},
		{"ftstop -i on the receiving agent", payments, func(c *harness.Cluster, a string) error { return ftstopI(c) }},
		{"ftstop -i on the sending agent", orders, func(c *harness.Cluster, a string) error { return ftstopI(c) }},
	}
	for i, d := range disrupt {
		v := xferMidway(t, orders, id, done+step)
		done = v.BytesDone
		active := xferActive(t, d.c)
		t.Logf("%s (%s) at %d MiB", d.what, active, done>>20)
		if err := d.do(d.c, active); err != nil {
			t.Fatalf("%s: %v", d.what, err)
		}
		xferNewActive(t, d.c, active)
		restartAsStandby(t, d.c, active)
		_ = i
	}
	v := xferEnded(t, orders, 120*time.Second, id)
	if v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s: %s", v.State, harness.ViewText(v))
	}
	if got := xferSum(t, xferPath(payments, "inbox/big.bin")); got != sum {
		t.Fatalf("SHA-256 at PAYMENTS %s, source %s", got, sum)
	}
	if v.DestinationAgent != "PAYMENTS" {
		t.Errorf("view's destinationAgent %q", v.DestinationAgent)
	}
	if _, err := os.Stat(xferPath(orders, "inbox/big.bin")); err == nil {
		t.Errorf("the file was written at ORDERS too")
	}
	if v.Failovers < 2 {
		t.Errorf("failovers of the sender %d, want at least 2", v.Failovers)
	}
	if v.ReceiverFailovers < 2 || v.Receiver == "" {
		t.Errorf("receiver %q, failovers there %d; want one named, and at least 2", v.Receiver, v.ReceiverFailovers)
	}
	if limit := int64(len(disrupt)) * (1 << 20); v.BytesResent > limit {
		t.Errorf("bytesResent %d, want at most %d (one checkpoint interval per failover)", v.BytesResent, limit)
	}
	t.Logf("completed: failovers %d, bytesResent %d", v.Failovers, v.BytesResent)
	xferNoParts(t, orders)
	xferNoParts(t, payments)
}

func ftstopI(c *harness.Cluster) error {
	r, err := c.Ftstop(context.Background(), "-i")
	if err != nil || r.Exit != 0 {
		return fmt.Errorf("ftstop -i: exit %d %v: %s %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	return nil
}

// A recursive transfer of many small files to another agent arrives whole,
// each file once, across a failover of each side.
func TestAgentToAgentRecursiveAcrossFailovers(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments := twoAgents(t, nil, nil)
	const n = 2000
	sums := map[string]string{}
	for i := range n {
		rel := fmt.Sprintf("batch/d%d/f%03d", i%5, i)
		sums["inbox/"+rel] = xferRandomFile(t, orders, "in/"+rel, int64(512+i), uint64(100+i))
	}
	if err := os.MkdirAll(xferPath(orders, "in/batch/empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--recursive", "--bwlimit", "512K", "in/batch", "inbox/")
	for k, c := range []*harness.Cluster{payments, orders} {
		v := xferWait(t, orders, 60*time.Second, id, fmt.Sprintf("%d files done", (k+1)*n/3), func(v transfer.View) bool {
			return v.BytesDone >= int64((k+1)*n/3)*512 || transfer.Terminal(v.State)
		})
		if transfer.Terminal(v.State) {
			t.Fatalf("the transfer ended before the failover it was to meet: %s", harness.ViewText(v))
		}
		active := xferActive(t, c)
		if err := c.Kill(active); err != nil {
			t.Fatal(err)
		}
		xferNewActive(t, c, active)
		restartAsStandby(t, c, active)
	}
	v := xferEnded(t, orders, 180*time.Second, id)
	if v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s: %s", v.State, harness.ViewText(v))
	}
	t.Logf("%d files in %v across two failovers", n, time.Since(began).Round(time.Millisecond))
	for rel, want := range sums {
		if got := xferSum(t, xferPath(payments, rel)); got != want {
			t.Errorf("%s: SHA-256 %s, want %s", rel, got, want)
		}
	}
	if v.Failovers < 1 {
		t.Errorf("failovers of the sender %d, want 1", v.Failovers)
	}
	if fi, err := os.Stat(xferPath(payments, "inbox/batch/empty")); err != nil || !fi.IsDir() {
		t.Errorf("the empty directory did not arrive: %v", err)
	}
	xferNoParts(t, payments)
}

// The receiving agent refuses what it must: a sender not in acceptFrom, a
// path outside its sandbox, a destination that exists. Each refusal is
// the file's reason at the sender, and nothing is written.
func TestAgentToAgentRefusals(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments := twoAgents(t, nil, []string{"auditLog=audit.jsonl"})
	xferRandomFile(t, orders, "in/a.txt", 1000, 1)
	xferRandomFile(t, payments, "inbox/exists.txt", 10, 2)

	cases := []struct {
		args   []string
		reason string
	}{
		{[]string{"in/a.txt", "../outside.txt"}, `".." is not allowed`},
		{[]string{"in/a.txt", "inbox/exists.txt"}, "destination exists"},
		{[]string{"in/a.txt", "/etc/ftagent-test.txt"}, "outside"},
	}
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		v, r, err := orders.CreateTransfer(ctx, append([]string{"--dest-agent", "PAYMENTS"}, tc.args...)...)
		cancel()
		if err == nil && r.Exit == 0 && v.ID != "" {
			v = xferEnded(t, orders, 60*time.Second, v.ID)
			text := harness.ViewText(v)
			if v.State != transfer.StateFailed || !strings.Contains(text, tc.reason) {
				t.Errorf("%v: %s, want failed with %q", tc.args, text, tc.reason)
			}
			continue
		}
		if !strings.Contains(r.Stderr, tc.reason) {
			t.Errorf("%v: refused with %q, want %q", tc.args, r.Stderr, tc.reason)
		}
	}
	if got := xferSum(t, xferPath(payments, "inbox/exists.txt")); got == "" {
		t.Errorf("the existing file is gone")
	}
	xferNoParts(t, payments)

	// An agent PAYMENTS does not accept from: its instances are refused,
	// and the refusal is audited at PAYMENTS.
	var st struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	d, err := orders.TLS.Dialer(harness.ClientAdmin)
	if err != nil {
		t.Fatal(err)
	}
	d.Check = trust.ExpectInstanceOf("PAYMENTS")
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	pv := xferActive(t, payments)
	resp, err := hc.Post("http://"+payments.Addr[pv]+"/v1/inbound/status", "application/json", strings.NewReader(`{"id":"x","epoch":1}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(st.Error, "not an instance") {
		t.Errorf("a client of ORDERS at PAYMENTS' inbound API: %d %+v, want 403", resp.StatusCode, st)
	}
	recs, err := audit.ReadFile(filepath.Join(payments.Dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, r := range recs {
		audited = audited || r.Op == audit.OpRefused && r.Caller == "ORDERS/client/admin" && strings.Contains(r.Result, "not an instance")
	}
	if !audited {
		t.Errorf("the refusal of ORDERS/client/admin is not in PAYMENTS' audit log")
	}
}

// A sending active that was paused (SIGSTOP) while a standby took over is
// refused by the receiving agent once it runs again: its lease epoch is
// older than the one the receiver has seen for the transfer. The refusal
// is in the receiver's audit log, and the file still completes.
func TestAgentToAgentPausedSenderIsRefused(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments := twoAgents(t, []string{"checkpointInterval=1M"},
		[]string{"auditLog=audit.jsonl"})
	sum := xferRandomFile(t, orders, "in/big.bin", 12<<20, 9)
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "2M", "in/big.bin", "inbox/big.bin")
	xferMidway(t, orders, id, 2<<20)
	active := xferActive(t, orders)
	if err := orders.Signal(active, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	newActive := xferNewActive(t, orders, active)
	xferWait(t, orders, 30*time.Second, id, "resumed by "+newActive, func(v transfer.View) bool {
		return v.Failovers >= 1 || transfer.Terminal(v.State)
	})
	// The new active has presented its epoch to PAYMENTS by now (it
	// resumes by asking it); then the old one runs again.
	if err := orders.Signal(active, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	v := xferEnded(t, orders, 120*time.Second, id)
	if v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s: %s", v.State, harness.ViewText(v))
	}
	if got := xferSum(t, xferPath(payments, "inbox/big.bin")); got != sum {
		t.Fatalf("SHA-256 at PAYMENTS %s, source %s", got, sum)
	}
	// The paused active had a write in flight when it was stopped: when
	// it ran again, PAYMENTS refused it as a stale sender.
	deadline := time.Now().Add(20 * time.Second)
	for {
		recs, _ := audit.ReadFile(filepath.Join(payments.Dir, "audit.jsonl"))
		var found bool
		for _, r := range recs {
			if r.Op == audit.OpRefused && r.Caller == "ORDERS/instance/"+active && strings.Contains(r.Result, "stale") {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refusal of the paused sender %s in PAYMENTS' audit logs", active)
		}
		time.Sleep(100 * time.Millisecond)
	}
	xferNoParts(t, payments)
}

// A partition between the agents during a transfer: healed within the
// transfer's recovery timeout, the transfer completes; healed after it,
// the transfer has failed with the reason, and the destination holds no
// final file (and, once it can be told, no .part either).
func TestAgentToAgentPartition(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments, link := twoAgentsLinked(t, true, []string{"checkpointInterval=1M"}, nil)
	pActive := xferActive(t, payments)
	if vs, exit := showAgents(t, orders); exit != 0 || len(vs) != 1 || !vs[0].Reachable || vs[0].Receiver != pActive {
		t.Fatalf("show --agents with the link up: exit %d, %+v; want PAYMENTS reachable, received by %s", exit, vs, pActive)
	}
	link.Cut()
	if vs, exit := showAgents(t, orders); exit != 1 || len(vs) != 1 || vs[0].Reachable || vs[0].Error == "" {
		t.Fatalf("show --agents with the link cut: exit %d, %+v; want PAYMENTS unreachable, with the reason", exit, vs)
	}
	link.Heal()
	const recovery = 8 * time.Second
	for _, tc := range []struct {
		name   string
		cut    time.Duration // how long the link stays cut after the transfer went recovering
		failed bool
	}{
		{"healed-in-time", recovery / 2, false},
		{"healed-too-late", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "in/" + tc.name + ".bin"
			sum := xferRandomFile(t, orders, src, 6<<20, 11)
			dst := "inbox/" + tc.name + ".bin"
			id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "1M", "--recovery-timeout", fmt.Sprint(recovery.Seconds()), src, dst)
			xferMidway(t, orders, id, 2<<20)
			link.Cut()
			xferWait(t, orders, 30*time.Second, id, "recovering", func(v transfer.View) bool {
				return v.State == transfer.StateRecovering || transfer.Terminal(v.State)
			})
			if !tc.failed {
				time.Sleep(tc.cut) // the partition's length: the fault itself
				link.Heal()
				v := xferEnded(t, orders, 60*time.Second, id)
				if v.State != transfer.StateCompleted {
					t.Fatalf("transfer %s: %s", v.State, harness.ViewText(v))
				}
				if got := xferSum(t, xferPath(payments, dst)); got != sum {
					t.Fatalf("SHA-256 at PAYMENTS %s, source %s", got, sum)
				}
				return
			}
			v := xferEnded(t, orders, 60*time.Second, id)
			// Cut off, PAYMENTS still holds what was durable there.
			if _, err := os.Stat(xferPath(payments, dst+".part")); err != nil {
				t.Fatalf("no .part at PAYMENTS while the link is cut: %v (%s)", err, harness.ViewText(v))
			}
			// The active that could not tell PAYMENTS fails over first:
			// the next one tells it (the end untold is in the log).
			active := xferActive(t, orders)
			if err := orders.Kill(active); err != nil {
				t.Fatal(err)
			}
			xferNewActive(t, orders, active)
			restartAsStandby(t, orders, active)
			link.Heal()
			if v.State != transfer.StateFailed || !strings.Contains(v.Reason, "recovery timeout") {
				t.Fatalf("transfer %s (%q), want failed for its recovery timeout", v.State, v.Reason)
			}
			if _, err := os.Stat(xferPath(payments, dst)); err == nil {
				t.Fatalf("a final file at PAYMENTS after a failed transfer")
			}
			// The sender's new active tells PAYMENTS once it can: the
			// .part goes.
			deadline := time.Now().Add(30 * time.Second)
			for {
				if _, err := os.Stat(xferPath(payments, dst+".part")); os.IsNotExist(err) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the .part of the failed transfer is still at PAYMENTS 30 s after the link healed")
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	xferNoParts(t, payments)
}

// A destination agent of one instance (no HA) receives as well; one that
// does not accept the sender fails the transfer at once with the reason.
func TestAgentToAgentSingleInstanceAndNotAccepted(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	t.Run("single-instance", func(t *testing.T) {
		orders, payments, _ := twoAgentsWith(t, agentsSetup{payNames: []string{"pay1"}}, false, nil, nil)
		sum := xferRandomFile(t, orders, "in/a.bin", 3<<20, 21)
		id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--wait", "in/a.bin", "inbox/a.bin")
		if v := xferEnded(t, orders, 60*time.Second, id); v.State != transfer.StateCompleted || v.Receiver != "pay1" {
			t.Fatalf("transfer %s, received by %q: %s", v.State, v.Receiver, harness.ViewText(v))
		}
		if got := xferSum(t, xferPath(payments, "inbox/a.bin")); got != sum {
			t.Fatalf("SHA-256 at PAYMENTS %s, source %s", got, sum)
		}
	})
	t.Run("not-accepted", func(t *testing.T) {
		orders, payments, _ := twoAgentsWith(t, agentsSetup{acceptFrom: "BILLING"}, false, nil, nil)
		xferRandomFile(t, orders, "in/a.bin", 1000, 22)
		id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "in/a.bin", "inbox/a.bin")
		v := xferEnded(t, orders, 30*time.Second, id)
		if v.State != transfer.StateFailed || !strings.Contains(v.Reason, "not in acceptFrom") {
			t.Fatalf("transfer %s (%q), want failed: not in acceptFrom", v.State, v.Reason)
		}
		if _, err := os.Stat(xferPath(payments, "inbox/a.bin")); err == nil {
			t.Fatal("the file arrived at an agent that does not accept the sender")
		}
	})
}

// Two organisations, each with a CA of its own: each agent names the
// other's CA in tlsPeerCA, and files go from one to the other. The other
// organisation's CA cannot make an identity of this agent: a certificate
// it signs for PAYMENTS' own admin is refused by PAYMENTS.
func TestAgentToAgentTwoCAs(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments, _ := twoAgentsWith(t, agentsSetup{twoCAs: true}, false, nil, nil)
	if orders.TLS.Res.CA == payments.TLS.Res.CA {
		t.Fatalf("both agents use the CA %s; want one each", orders.TLS.Res.CA)
	}
	sum := xferRandomFile(t, orders, "in/a.bin", 2<<20, 31)
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--wait", "in/a.bin", "inbox/a.bin")
	if v := xferEnded(t, orders, 60*time.Second, id); v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s: %s", v.State, harness.ViewText(v))
	}
	if got := xferSum(t, xferPath(payments, "inbox/a.bin")); got != sum {
		t.Fatalf("SHA-256 at PAYMENTS %s, source %s", got, sum)
	}

	// ORDERS' CA issues a certificate naming PAYMENTS' admin.
	forged, err := trust.Init(trust.InitOptions{Dir: orders.TLS.Dir, Agent: "PAYMENTS", Clients: []trust.ClientSpec{{Name: "admin", Role: trust.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	if forged.CA != orders.TLS.Res.CA {
		t.Fatalf("the forged certificate's CA %s is not ORDERS' %s", forged.CA, orders.TLS.Res.CA)
	}
	store, err := trust.Load(trust.Files{Certificate: forged.Clients["admin"][0], PrivateKey: forged.Clients["admin"][1], CA: payments.TLS.Res.CA},
		trust.Keys{Certificate: "cert", PrivateKey: "key", CA: "ca"})
	if err != nil {
		t.Fatal(err)
	}
	d := &trust.Dialer{Mode: trust.Required, Store: store, Check: trust.ExpectInstanceOf("PAYMENTS")}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	// The handshake passes (PAYMENTS trusts ORDERS' CA for ORDERS'
	// identities); the identity is refused.
	resp, err := hc.Get("http://" + payments.Addr[xferActive(t, payments)] + "/v1/agent")
	if err != nil {
		t.Fatalf("GET /v1/agent with the forged certificate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "peer CAs") {
		t.Fatalf("PAYMENTS answered a certificate of its own admin signed by ORDERS' CA: %d %s", resp.StatusCode, body)
	}
}

// A cancel at the sender reaches the destination: its .part goes, and no
// final file is left there.
func TestAgentToAgentCancel(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments := twoAgents(t, []string{"checkpointInterval=1M"}, nil)
	xferRandomFile(t, orders, "in/big.bin", 8<<20, 41)
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "1M", "in/big.bin", "inbox/big.bin")
	xferMidway(t, orders, id, 2<<20)
	if _, err := os.Stat(xferPath(payments, "inbox/big.bin.part")); err != nil {
		t.Fatalf("no .part at PAYMENTS midway: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := harness.RunEnv(ctx, orders.ClientEnv(), orders.Bin.Ftagent, "transfer", "cancel", "--config", orders.Props, id)
	if err != nil || r.Exit != 0 {
		t.Fatalf("transfer cancel: exit %d %v: %s %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	if v := xferEnded(t, orders, 30*time.Second, id); v.State != transfer.StateCancelled {
		t.Fatalf("transfer %s after cancel", v.State)
	}
	xferNoParts(t, payments)
	if _, err := os.Stat(xferPath(payments, "inbox/big.bin")); err == nil {
		t.Fatal("a final file at PAYMENTS after a cancel")
	}
}

// --delete-source deletes each source only after the destination agent
// committed it: large files one by one, small ones in groups.
func TestAgentToAgentDeleteSource(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments := twoAgents(t, nil, nil)
	sums := map[string]string{}
	for i := range 50 {
		rel := fmt.Sprintf("out/f%02d", i)
		sums["inbox/"+rel] = xferRandomFile(t, orders, "in/"+rel, int64(100+i), uint64(200+i))
	}
	sums["inbox/out/big.bin"] = xferRandomFile(t, orders, "in/out/big.bin", 3<<20, 250)
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--recursive", "--delete-source", "--wait", "in/out", "inbox/")
	if v := xferEnded(t, orders, 60*time.Second, id); v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s: %s", v.State, harness.ViewText(v))
	}
	for rel, want := range sums {
		if got := xferSum(t, xferPath(payments, rel)); got != want {
			t.Errorf("%s: SHA-256 %s, want %s", rel, got, want)
		}
		src := xferPath(orders, "in/"+strings.TrimPrefix(rel, "inbox/"))
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(src); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("source %s not deleted after its transfer completed", src)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// A destination at maxDestinationTransfers refuses a further transfer for
// the time being: the sender retries it (recovering, with the reason) and
// it completes once the first has ended.
func TestAgentToAgentMaxDestinationTransfers(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments := twoAgents(t, []string{"checkpointInterval=1M"}, []string{"maxDestinationTransfers=1"})
	xferRandomFile(t, orders, "in/a.bin", 4<<20, 51)
	sumB := xferRandomFile(t, orders, "in/b.bin", 1<<20, 52)
	a := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "1M", "in/a.bin", "inbox/a.bin")
	xferMidway(t, orders, a, 1<<20)
	b := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "in/b.bin", "inbox/b.bin")
	v := xferWait(t, orders, 30*time.Second, b, "refused for now", func(v transfer.View) bool {
		return v.State == transfer.StateRecovering || transfer.Terminal(v.State)
	})
	if v.State != transfer.StateRecovering || !strings.Contains(v.Reason, "maxDestinationTransfers") {
		t.Fatalf("second transfer %s (%q), want recovering: maxDestinationTransfers", v.State, v.Reason)
	}
	for _, id := range []string{a, b} {
		if v := xferEnded(t, orders, 90*time.Second, id); v.State != transfer.StateCompleted {
			t.Fatalf("transfer %s: %s", v.State, harness.ViewText(v))
		}
	}
	if got := xferSum(t, xferPath(payments, "inbox/b.bin")); got != sumB {
		t.Fatalf("SHA-256 of b at PAYMENTS %s, source %s", got, sumB)
	}
}

// showAgents runs `ftagent show --agents --json` for c.
func showAgents(t *testing.T, c *harness.Cluster) ([]api.RemoteAgentView, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := harness.RunEnv(ctx, c.ClientEnv(), c.Bin.Ftagent, "show", "--agents", "--json", "--config", c.Props)
	if err != nil {
		t.Fatal(err)
	}
	var vs []api.RemoteAgentView
	if err := json.Unmarshal([]byte(r.Stdout), &vs); err != nil {
		t.Fatalf("show --agents --json: exit %d, %v: %s %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	return vs, r.Exit
}

// threeAgents starts ORDERS (sender), PAYMENTS (its destination, three
// instances) and PAYMENTS_DR (PAYMENTS' alternate group, at another "site":
// its own instances and storage, sharing nothing with PAYMENTS), one CA.
func threeAgents(t *testing.T, extraOrders []string) (orders, payments, dr *harness.Cluster) {
	t.Helper()
	return threeAgentsEnv(t, extraOrders, nil)
}

// threeAgentsEnv is threeAgents with payEnv in the environment of
// PAYMENTS' instances.
func threeAgentsEnv(t *testing.T, extraOrders, payEnv []string) (orders, payments, dr *harness.Cluster) {
	t.Helper()
	orders, payments, dr, _ = threeAgentsLinked(t, false, extraOrders, payEnv, nil)
	return orders, payments, dr
}

// threeAgentsLinked is threeAgentsEnv, with ORDERS reaching PAYMENTS
// through a link the test can cut when linked, and ordEnv in the
// environment of ORDERS' instances.
func threeAgentsLinked(t *testing.T, linked bool, extraOrders, payEnv, ordEnv []string) (orders, payments, dr *harness.Cluster, link *harness.Link) {
	t.Helper()
	base := t.TempDir()
	kill := func(c *harness.Cluster) {
		t.Cleanup(func() {
			for _, n := range c.Names {
				if c.Proc(n) != nil {
					_ = c.Kill(n)
				}
			}
		})
	}
	payments = newCluster(t, harness.Options{AgentName: "PAYMENTS", Names: []string{"pay1", "pay2", "pay3"}, TLSDir: base,
		Extra: []string{"acceptFrom=ORDERS", "checkpointTimeInterval=1"}})
	payments.Env = payEnv
	kill(payments)
	dr = newCluster(t, harness.Options{AgentName: "PAYMENTS_DR", Names: []string{"dr1", "dr2", "dr3"}, TLSDir: base,
		Extra: []string{"acceptFrom=ORDERS", "checkpointTimeInterval=1"}})
	kill(dr)
	list := func(c *harness.Cluster, addrs map[string]string) string {
		var entries []string
		for _, n := range c.Names {
			entries = append(entries, n+"@"+addrs[n])
		}
		return strings.Join(entries, ",")
	}
	payAddrs := payments.Addr
	if linked {
		var err error
		if link, err = harness.NewLink(payments.Addr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(link.Close)
		payAddrs = link.Addr
	}
	orders = newCluster(t, harness.Options{AgentName: "ORDERS", TLSDir: base,
		Extra: append([]string{
			"agent.PAYMENTS.instances=" + list(payments, payAddrs),
			"agent.PAYMENTS_DR.instances=" + list(dr, dr.Addr),
			"agent.PAYMENTS.alternates=PAYMENTS_DR",
			"alternateAfter=6s",
			"checkpointTimeInterval=1",
		}, extraOrders...)})
	orders.Env = ordEnv
	kill(orders)
	for _, c := range []*harness.Cluster{payments, dr, orders} {
		startAll(t, c)
	}
	for _, c := range []*harness.Cluster{payments, dr, orders} {
		wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	}
	return orders, payments, dr, link
}

// Every instance of PAYMENTS killed midway: once its group has been
// unreachable for alternateAfter, the transfer moves to PAYMENTS_DR (the
// move recorded, with its reason), starts the file again there and
// completes with the source's SHA-256. The file that had started at
// PAYMENTS is in doubt (it might have been committed there).
func TestAlternateTakesOverWhenGroupLost(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments, dr := threeAgents(t, []string{"checkpointInterval=1M", "auditLog=audit.jsonl"})
	sum := xferRandomFile(t, orders, "in/big.bin", 12<<20, 61)
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "2M", "in/big.bin", "inbox/big.bin")
	v := xferMidway(t, orders, id, 3<<20)
	before := v.BytesDone
	for _, n := range payments.Names {
		if err := payments.Kill(n); err != nil {
			t.Fatal(err)
		}
	}
	v = xferEnded(t, orders, 90*time.Second, id)
	if v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s: %s", v.State, harness.ViewText(v))
	}
	if got := xferSum(t, xferPath(dr, "inbox/big.bin")); got != sum {
		t.Fatalf("SHA-256 at PAYMENTS_DR %s, source %s", got, sum)
	}
	if v.Group != "PAYMENTS_DR" || v.Switched == nil || v.Switched.From != "PAYMENTS" || !strings.Contains(v.Switched.Reason, "unreachable") {
		t.Fatalf("view: group %q, switched %+v; want moved from PAYMENTS to PAYMENTS_DR, unreachable", v.Group, v.Switched)
	}
	if v.BytesResent < before {
		t.Errorf("bytesResent %d, want at least the %d bytes done at PAYMENTS (the file starts again at the alternate)", v.BytesResent, before)
	}
	if len(v.Doubts) != 1 || v.Doubts[0].Group != "PAYMENTS" || v.Doubts[0].Index != 0 {
		t.Fatalf("doubts %+v, want file 0 in doubt at PAYMENTS", v.Doubts)
	}
	xferNoParts(t, dr)
	if _, err := os.Stat(xferPath(payments, "inbox/big.bin.part")); err != nil {
		t.Fatalf("PAYMENTS lost its .part while down: %v", err)
	}
	// The move is in the audit trail of the instance that made it, and
	// in its metrics, with the file in doubt.
	active := xferActive(t, orders)
	var moved []audit.Record
	for _, r := range secAudit(t, orders) {
		if r.Op == audit.OpSwitch {
			moved = append(moved, r)
		}
	}
	if len(moved) != 1 || moved[0].Target != id || moved[0].Action != "PAYMENTS->PAYMENTS_DR" || moved[0].Instance != active ||
		moved[0].Epoch == 0 || !strings.Contains(moved[0].Result, "unreachable") {
		t.Errorf("audit records of the move: %+v; want one, of %s, PAYMENTS->PAYMENTS_DR by %s, with the reason", moved, id, active)
	}
	hc, err := orders.TLS.HTTPClient(harness.ClientMonitor, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, orders, hc, active)
	if got := mustMetric(t, fams, "ftagent_alternate_switches_total"); got != 1 {
		t.Errorf("ftagent_alternate_switches_total %v, want 1", got)
	}
	if got := mustMetric(t, fams, "ftagent_files_in_doubt"); got != 1 {
		t.Errorf("ftagent_files_in_doubt %v, want 1 before PAYMENTS returns", got)
	}

	// PAYMENTS returns: the file in doubt was not committed there, so its
	// .part there is removed, and the doubt is recorded as resolved.
	for _, n := range payments.Names {
		if _, err := payments.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	v = xferWait(t, orders, 60*time.Second, id, "reconciled with PAYMENTS", func(v transfer.View) bool {
		return len(v.Doubts) == 1 && v.Doubts[0].Outcome != ""
	})
	if v.Doubts[0].Outcome != "absent" {
		t.Fatalf("doubt %+v, want absent (never committed at PAYMENTS)", v.Doubts[0])
	}
	fams = scrape(t, orders, hc, active)
	if got := mustMetric(t, fams, "ftagent_files_in_doubt"); got != 0 {
		t.Errorf("ftagent_files_in_doubt %v after the reconciliation, want 0", got)
	}
	if got := mustMetric(t, fams, "ftagent_files_duplicate"); got != 0 {
		t.Errorf("ftagent_files_duplicate %v, want 0 (the file was absent at PAYMENTS)", got)
	}
	xferNoParts(t, payments)
	if _, err := os.Stat(xferPath(payments, "inbox/big.bin")); err == nil {
		t.Fatal("a final file at PAYMENTS, which never committed it")
	}
}

// A failover inside PAYMENTS (kill -9 of its active, then ftstop -i) never
// moves the transfer to the alternate.
func TestAlternateNotOnFailoverInsideGroup(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments, dr := threeAgents(t, []string{"checkpointInterval=1M"})
	sum := xferRandomFile(t, orders, "in/big.bin", 10<<20, 62)
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "1M", "in/big.bin", "inbox/big.bin")
	xferMidway(t, orders, id, 2<<20)
	active := xferActive(t, payments)
	if err := payments.Kill(active); err != nil {
		t.Fatal(err)
	}
	xferNewActive(t, payments, active)
	restartAsStandby(t, payments, active)
	xferMidway(t, orders, id, 6<<20)
	if err := ftstopI(payments); err != nil {
		t.Fatal(err)
	}
	v := xferEnded(t, orders, 90*time.Second, id)
	if v.State != transfer.StateCompleted || v.Switched != nil || v.Group != "" {
		t.Fatalf("transfer %s, moved %+v: %s", v.State, v.Switched, harness.ViewText(v))
	}
	if got := xferSum(t, xferPath(payments, "inbox/big.bin")); got != sum {
		t.Fatalf("SHA-256 at PAYMENTS %s, source %s", got, sum)
	}
	if _, err := os.Stat(xferPath(dr, "inbox/big.bin")); err == nil {
		t.Fatal("the file went to the alternate too")
	}
}

// The move to the alternate is recorded through the sender's log: the
// sender's active killed right after it, and PAYMENTS back at once, the
// new active goes on at PAYMENTS_DR, and the file arrives at one group.
// Both groups lost: the transfer fails after its recovery timeout with a
// reason naming both, and no final file is written anywhere.
func TestAlternateSurvivesSenderFailoverAndBothLost(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments, dr := threeAgents(t, []string{"checkpointInterval=1M"})
	sum := xferRandomFile(t, orders, "in/a.bin", 8<<20, 63)
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "2M", "in/a.bin", "inbox/a.bin")
	xferMidway(t, orders, id, 2<<20)
	for _, n := range payments.Names {
		if err := payments.Kill(n); err != nil {
			t.Fatal(err)
		}
	}
	xferWait(t, orders, 60*time.Second, id, "moved to PAYMENTS_DR", func(v transfer.View) bool {
		return v.Switched != nil || transfer.Terminal(v.State)
	})
	active := xferActive(t, orders)
	if err := orders.Kill(active); err != nil {
		t.Fatal(err)
	}
	for _, n := range payments.Names {
		if _, err := payments.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	xferNewActive(t, orders, active)
	v := xferEnded(t, orders, 90*time.Second, id)
	if v.State != transfer.StateCompleted || v.Group != "PAYMENTS_DR" {
		t.Fatalf("transfer %s at %q: %s", v.State, v.Group, harness.ViewText(v))
	}
	if got := xferSum(t, xferPath(dr, "inbox/a.bin")); got != sum {
		t.Fatalf("SHA-256 at PAYMENTS_DR %s, source %s", got, sum)
	}
	if _, err := os.Stat(xferPath(payments, "inbox/a.bin")); err == nil {
		t.Fatal("the file arrived at both groups")
	}

	// Both groups lost.
	restartAsStandby(t, orders, active)
	xferRandomFile(t, orders, "in/b.bin", 8<<20, 64)
	id = xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "2M", "--recovery-timeout", "15", "in/b.bin", "inbox/b.bin")
	xferMidway(t, orders, id, 2<<20)
	for _, c := range []*harness.Cluster{payments, dr} {
		for _, n := range c.Names {
			if err := c.Kill(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	v = xferEnded(t, orders, 90*time.Second, id)
	if v.State != transfer.StateFailed || !strings.Contains(v.Reason, "PAYMENTS_DR") || !strings.Contains(v.Reason, "PAYMENTS ") && !strings.Contains(v.Reason, "from PAYMENTS") {
		t.Fatalf("transfer %s (%q), want failed naming PAYMENTS and PAYMENTS_DR", v.State, v.Reason)
	}
	for _, c := range []*harness.Cluster{payments, dr} {
		if _, err := os.Stat(xferPath(c, "inbox/b.bin")); err == nil {
			t.Fatalf("a final file at %s after the transfer failed", c.Names[0])
		}
	}
}

// Back to the primary when an operator says so: a recursive transfer
// moved to PAYMENTS_DR while PAYMENTS was lost returns to PAYMENTS at a
// file boundary after `ftagent agents prefer PAYMENTS`; every file arrives
// at exactly one of the two, with the source's SHA-256, and the file that
// was in doubt at PAYMENTS is reconciled (absent there).
func TestAlternatePreferReturnsAtFileBoundary(t *testing.T) {
	t.Parallel() // two agents of its own: runs beside the other agent tests
	orders, payments, dr := threeAgents(t, []string{"checkpointInterval=1M"})
	sums := map[string]string{}
	for i := range 6 {
		rel := fmt.Sprintf("batch/f%d.bin", i)
		sums[rel] = xferRandomFile(t, orders, "in/"+rel, 2<<20, uint64(70+i))
	}
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--recursive", "--bwlimit", "2M", "in/batch/", "inbox/batch/")
	xferMidway(t, orders, id, 1<<20)
	for _, n := range payments.Names {
		if err := payments.Kill(n); err != nil {
			t.Fatal(err)
		}
	}
	xferWait(t, orders, 60*time.Second, id, "moved to PAYMENTS_DR", func(v transfer.View) bool {
		return v.Group == "PAYMENTS_DR" || transfer.Terminal(v.State)
	})
	for _, n := range payments.Names {
		if _, err := payments.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, payments, 20*time.Second, "PAYMENTS back", activeWithStandbys(2))
	// show --agents says where PAYMENTS' transfers go now, and why.
	vs, _ := showAgents(t, orders)
	var pay *api.RemoteAgentView
	for i := range vs {
		if vs[i].Agent == "PAYMENTS" {
			pay = &vs[i]
		}
	}
	if pay == nil || !slices.Equal(pay.Alternates, []string{"PAYMENTS_DR"}) || len(pay.Moved) != 1 || pay.Moved[0].To != "PAYMENTS_DR" ||
		pay.Moved[0].Transfers != 1 || !strings.Contains(pay.Moved[0].Reason, "unreachable") {
		t.Errorf("show --agents, PAYMENTS: %+v; want alternates [PAYMENTS_DR] and one transfer moved there, unreachable", pay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	text, err := harness.RunEnv(ctx, orders.ClientEnv(), orders.Bin.Ftagent, "show", "--agents", "--config", orders.Props)
	if err != nil || !strings.Contains(text.Stdout, "PAYMENTS: alternates PAYMENTS_DR; 1 transfer(s) moved to PAYMENTS_DR") {
		t.Errorf("show --agents: %v\n%s%s", err, text.Stdout, text.Stderr)
	}
	r, err := harness.RunEnv(ctx, orders.ClientEnv(), orders.Bin.Ftagent, "agents", "prefer", "--json", "--config", orders.Props, "PAYMENTS")
	if err != nil || r.Exit != 0 || !strings.Contains(r.Stdout, `"transfers":1`) {
		t.Fatalf("agents prefer: exit %d %v: %s %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	v := xferEnded(t, orders, 120*time.Second, id)
	if v.State != transfer.StateCompleted || v.Group != "" && v.Group != "PAYMENTS" || v.Switched == nil || v.Switched.To != "PAYMENTS" {
		t.Fatalf("transfer %s at %q, last move %+v: %s", v.State, v.Group, v.Switched, harness.ViewText(v))
	}
	atP, atDR := 0, 0
	for rel, want := range sums {
		var found []string
		for _, c := range []*harness.Cluster{payments, dr} {
			p := xferPath(c, "inbox/"+rel)
			if _, err := os.Stat(p); err == nil {
				if got := xferSum(t, p); got != want {
					t.Errorf("%s at %s: SHA-256 %s, want %s", rel, c.Names[0], got, want)
				}
				found = append(found, c.Names[0])
			}
		}
		switch {
		case len(found) != 1:
			t.Errorf("%s is at %v: want exactly one group", rel, found)
		case found[0] == "pay1":
			atP++
		default:
			atDR++
		}
	}
	if atP == 0 || atDR == 0 {
		t.Errorf("%d files at PAYMENTS, %d at PAYMENTS_DR: want both, the move back at a file boundary", atP, atDR)
	}
	v = xferWait(t, orders, 60*time.Second, id, "doubts reconciled", func(v transfer.View) bool {
		for _, d := range v.Doubts {
			if d.Outcome == "" {
				return false
			}
		}
		return true
	})
	for _, d := range v.Doubts {
		if d.Outcome != "absent" {
			t.Errorf("doubt %+v: want absent", d)
		}
	}
	xferNoParts(t, payments)
	xferNoParts(t, dr)
}

// A recursive transfer of 500 files across the loss of PAYMENTS, with
// files forced in doubt: every PAYMENTS instance exits right after it has
// recorded a commit and before it answers
// (FTAGENT_TEST_EXIT_AFTER_INBOUND_COMMIT), so the group dies with files
// committed there that ORDERS never heard of. The transfer moves to
// PAYMENTS_DR and completes; when PAYMENTS returns (without the fault),
// each file in doubt is reconciled: those committed there are reported
// duplicates (at both sites, intact), the others' .part removed there.
// Every file not in doubt is at exactly one site.
func TestAlternateRecursiveAcrossLossWithDuplicates(t *testing.T) {
	t.Parallel() // three agents of its own: runs beside the other agent tests
	orders, payments, dr := threeAgentsEnv(t, []string{"checkpointInterval=1M"}, []string{"FTAGENT_TEST_EXIT_AFTER_INBOUND_COMMIT=1"})
	sums := map[string]string{}
	for i := range 500 {
		rel := fmt.Sprintf("d%d/f%03d.dat", i%4, i)
		sums[rel] = xferRandomFile(t, orders, "in/tree/"+rel, int64(1024+(i*131)%3072), uint64(900+i))
	}
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--recursive", "--bwlimit", "256K", "in/tree/", "inbox/tree/")
	// Each PAYMENTS active ends at its first commit (or a replay of it):
	// once two have, the group has no majority, and its site is lost
	// (the last one killed too).
	deadline := time.After(60 * time.Second)
	for exited := 0; exited < 2; {
		exited = 0
		for _, n := range payments.Names {
			select {
			case <-payments.Proc(n).Done():
				exited++
			default:
			}
		}
		select {
		case <-deadline:
			t.Fatalf("%d PAYMENTS instances exited 60 s after the transfer began, want 2", exited)
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, n := range payments.Names {
		if err := payments.Kill(n); err != nil {
			t.Fatal(err)
		}
	}
	v := xferEnded(t, orders, 120*time.Second, id)
	if v.State != transfer.StateCompleted || v.Group != "PAYMENTS_DR" {
		t.Fatalf("transfer %s at %q: %s", v.State, v.Group, harness.ViewText(v))
	}
	if len(v.Doubts) == 0 {
		t.Fatalf("no file in doubt, though PAYMENTS died between commits and their answers: %s", harness.ViewText(v))
	}
	// PAYMENTS back, without the fault: the doubts are reconciled.
	payments.Env = nil
	for _, n := range payments.Names {
		if _, err := payments.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	v = xferWait(t, orders, 90*time.Second, id, "every doubt reconciled", func(v transfer.View) bool {
		for _, d := range v.Doubts {
			if d.Outcome == "" {
				return false
			}
		}
		return true
	})
	inDoubt := map[string]string{} // destination relative to inbox/tree -> outcome
	dups := 0
	for _, d := range v.Doubts {
		if d.Group != "PAYMENTS" {
			t.Errorf("doubt %+v at %q, want PAYMENTS", d, d.Group)
		}
		dest := v.Files[d.Index].Destination
		rel := dest[strings.Index(dest, "inbox/tree/")+len("inbox/tree/"):]
		inDoubt[rel] = d.Outcome
		if d.Outcome == "duplicate" {
			dups++
		}
	}
	if dups == 0 {
		t.Errorf("no duplicate among %d doubts %v: the files PAYMENTS committed before it died should be", len(v.Doubts), inDoubt)
	}
	for rel, want := range sums {
		var at []string
		for _, c := range []*harness.Cluster{payments, dr} {
			p := xferPath(c, "inbox/tree/"+rel)
			if _, err := os.Stat(p); err == nil {
				if got := xferSum(t, p); got != want {
					t.Errorf("%s at %s: SHA-256 %s, want %s", rel, c.Names[0], got, want)
				}
				at = append(at, c.Names[0])
			}
		}
		switch outcome := inDoubt[rel]; {
		case outcome == "duplicate" && len(at) != 2:
			t.Errorf("%s reported a duplicate, but it is at %v", rel, at)
		case outcome == "absent" && (len(at) != 1 || at[0] != "dr1"):
			t.Errorf("%s reported absent at PAYMENTS, but it is at %v", rel, at)
		case outcome == "" && len(at) != 1:
			t.Errorf("%s (not in doubt) is at %v: want exactly one site", rel, at)
		}
	}
	t.Logf("%d files in doubt: %d duplicates", len(v.Doubts), dups)
	xferNoParts(t, payments)
	xferNoParts(t, dr)
}

// A 128 MiB transfer to PAYMENTS, bandwidth-limited; midway PAYMENTS is
// cut off by a partition (every connection to it refused and the open
// ones closed; its instances run on): once it has been unreachable for
// alternateAfter, the transfer moves to PAYMENTS_DR, starts the file
// again there and completes with the source's SHA-256; the view names
// PAYMENTS_DR and the reason. The partition healed, the file in doubt is
// reconciled as absent: its .part at PAYMENTS removed, no final file
// there.
func TestAlternateOnPartition(t *testing.T) {
	t.Parallel() // three agents of its own: runs beside the other agent tests
	orders, payments, dr, link := threeAgentsLinked(t, true, []string{"checkpointInterval=4M"}, nil, nil)
	sum := xferRandomFile(t, orders, "in/big.bin", 128<<20, 64)
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "16M", "in/big.bin", "inbox/big.bin")
	xferMidway(t, orders, id, 16<<20)
	link.Cut()
	v := xferEnded(t, orders, 120*time.Second, id)
	if v.State != transfer.StateCompleted || v.Group != "PAYMENTS_DR" || v.Switched == nil || !strings.Contains(v.Switched.Reason, "unreachable") {
		t.Fatalf("transfer %s at %q, moved %+v: %s", v.State, v.Group, v.Switched, harness.ViewText(v))
	}
	if got := xferSum(t, xferPath(dr, "inbox/big.bin")); got != sum {
		t.Fatalf("SHA-256 at PAYMENTS_DR %s, source %s", got, sum)
	}
	for _, n := range payments.Names {
		select {
		case <-payments.Proc(n).Done():
			t.Errorf("PAYMENTS instance %s ended: the test means a partition, not a crash", n)
		default:
		}
	}
	if len(v.Doubts) != 1 || v.Doubts[0].Group != "PAYMENTS" {
		t.Fatalf("doubts %+v, want the file in doubt at PAYMENTS", v.Doubts)
	}
	link.Heal()
	v = xferWait(t, orders, 60*time.Second, id, "reconciled with PAYMENTS", func(v transfer.View) bool {
		return len(v.Doubts) == 1 && v.Doubts[0].Outcome != ""
	})
	if v.Doubts[0].Outcome != "absent" {
		t.Fatalf("doubt %+v, want absent", v.Doubts[0])
	}
	xferNoParts(t, payments)
	xferNoParts(t, dr)
	if _, err := os.Stat(xferPath(payments, "inbox/big.bin")); err == nil {
		t.Fatal("a final file at PAYMENTS, which never committed it")
	}
}

// ORDERS' active dies between its decision to move a transfer and the
// record of the move (FTAGENT_TEST_EXIT_BEFORE_SWITCH, once): nothing was
// sent to PAYMENTS_DR; the next active measures the loss again, records
// the move itself, and the file goes to exactly one group.
func TestAlternateSenderDiesDuringSwitch(t *testing.T) {
	t.Parallel() // three agents of its own: runs beside the other agent tests
	flag := filepath.Join(t.TempDir(), "exit-before-switch")
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	orders, payments, dr, _ := threeAgentsLinked(t, false, []string{"checkpointInterval=1M"}, nil, []string{"FTAGENT_TEST_EXIT_BEFORE_SWITCH=" + flag})
	first := xferActive(t, orders)
	sum := xferRandomFile(t, orders, "in/a.bin", 8<<20, 65)
	id := xferCreate(t, orders, "--dest-agent", "PAYMENTS", "--bwlimit", "2M", "in/a.bin", "inbox/a.bin")
	xferMidway(t, orders, id, 2<<20)
	for _, n := range payments.Names {
		if err := payments.Kill(n); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-orders.Proc(first).Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("ORDERS' active %s did not reach its decision to move within 60 s", first)
	}
	if _, err := os.Stat(flag); !os.IsNotExist(err) {
		t.Fatalf("the fault's flag is still there (%v): the active ended for another reason", err)
	}
	next := xferNewActive(t, orders, first)
	v := xferEnded(t, orders, 120*time.Second, id)
	if v.State != transfer.StateCompleted || v.Group != "PAYMENTS_DR" || v.Switched == nil || v.Switched.From != "PAYMENTS" {
		t.Fatalf("transfer %s at %q, moved %+v: %s", v.State, v.Group, v.Switched, harness.ViewText(v))
	}
	if got := xferSum(t, xferPath(dr, "inbox/a.bin")); got != sum {
		t.Fatalf("SHA-256 at PAYMENTS_DR %s, source %s", got, sum)
	}
	if _, err := os.Stat(xferPath(payments, "inbox/a.bin")); err == nil {
		t.Fatal("the file is final at PAYMENTS too")
	}
	if v.Failovers < 1 {
		t.Errorf("failovers %d: the move was recorded by %s, after %s died", v.Failovers, next, first)
	}
}
