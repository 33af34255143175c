package test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftagent/ftagent/test/chaos"
)

// TestChaosTwoAgents is the fault-injection suite's two-agent mode: agent
// ORDERS (instances ha1-3) sends every transfer of the workload to agent
// PAYMENTS (pay1-3), each instance in a network namespace of its own on
// one bench, each agent with its own directory and storage, certificates
// from one CA. A seeded schedule kills, pauses, stops, restarts and cuts
// off either agent's instances (chaos.ProcessKinds), and cuts the link
// between the two agents alone (chaos.LinkCut: blackhole routes between
// their hosts, for 2–5 s). The workload: single files (1 MiB + 1, and
// 2–8 MiB at 2 MiB/s, in flight across faults), small files and small
// recursive trees, a quarter with --delete-source, all --dest-agent
// PAYMENTS with --recovery-timeout 120 so that every one should complete.
// Then chaos.CheckPair judges what is observable: every transfer
// completed, every file at PAYMENTS with its source's SHA-256 and no other
// final file there, no .part left at either agent (the sender's end of a
// transfer is retried, so PAYMENTS is given some seconds), both audit
// trails (leases, and storage changes within them), and PAYMENTS'
// refusals of stale senders checked against ORDERS' lease history.
// docs/reliability.md describes it.
//
//	FTAGENT_CHAOS_AGENTS_SEED=N       replay a schedule (the seed is printed)
//	FTAGENT_CHAOS_AGENTS_FAULTS=N     number of faults (default 8: well under a minute)
//	FTAGENT_CHAOS_AGENTS_TRANSFERS=N  least number of transfers (default 12)
//	FTAGENT_CHAOS_AGENTS_KINDS=a,b    draw faults only of these kinds (chaos.PairKinds)
func TestChaosTwoAgents(t *testing.T) {
	const prefix = "FTAGENT_CHAOS_AGENTS_"
	kinds := chaos.PairKinds
	if v := os.Getenv(prefix + "KINDS"); v != "" {
		kinds = nil
		for _, k := range strings.Split(v, ",") {
			if !slices.Contains(chaos.PairKinds, k) {
				t.Fatalf("%sKINDS: unknown fault %q (known: %s)", prefix, k, strings.Join(chaos.PairKinds, ","))
			}
			kinds = append(kinds, k)
		}
	}
	if why := chaos.Capable(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the fault-injection suite cannot set up its network: %s", why)
		}
		t.Skipf("cannot set up the fault-injection network: %s", why)
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(prefix + "SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%sSEED=%q: %v", prefix, v, err)
		}
		seed = s
	}
	faults := envInt(t, prefix+"FAULTS", 8)
	minTransfers := envInt(t, prefix+"TRANSFERS", 12)
	t.Logf("seed %d: replay with %sSEED=%d %sFAULTS=%d go test -count=1 -run '%s$' -v ./test/", seed, prefix, seed, prefix, faults, t.Name())
	began := time.Now()

	dir, err := os.MkdirTemp("", "ftagent-chaos-agents-")
	if err != nil {
		t.Fatal(err)
	}
	ordersHosts, payHosts := []string{"ha1", "ha2", "ha3"}, []string{"pay1", "pay2", "pay3"}
	bench, err := chaos.NewBench(append(append([]string{}, ordersHosts...), payHosts...))
	if err != nil {
		_ = bench.Close()
		t.Fatalf("network set-up: %v", err)
	}
	// drainTimeout bounds a normal ftstop of ORDERS, whose running
	// transfers may be stalled by a cut link.
	common := []string{"checkpointInterval=1M", "checkpointTimeInterval=1", "transferHistoryCount=100000", "drainTimeout=5"}
	payments, err := chaos.NewNamedAgent(bench, bin, filepath.Join(dir, "payments"), chaos.AgentSpec{
		Name: "PAYMENTS", Hosts: payHosts, TLSDir: dir, Extra: append([]string{"acceptFrom=ORDERS"}, common...)})
	if err != nil {
		_ = bench.Close()
		t.Fatal(err)
	}
	var entries []string
	for _, n := range payments.Names {
		entries = append(entries, n+"@"+payments.Addr[n])
	}
	orders, err := chaos.NewNamedAgent(bench, bin, filepath.Join(dir, "orders"), chaos.AgentSpec{
		Name: "ORDERS", Hosts: ordersHosts, TLSDir: dir, Extra: append([]string{"agent.PAYMENTS.instances=" + strings.Join(entries, ",")}, common...)})
	if err != nil {
		_ = bench.Close()
		t.Fatal(err)
	}
	p := &chaos.Pair{Bench: bench, Sender: orders, Receiver: payments}
	t.Cleanup(func() {
		chaos.StopPair(p)
		if err := bench.Close(); err != nil {
			t.Errorf("network tear-down: %v", err)
		}
		if t.Failed() {
			for _, a := range []*chaos.Agent{orders, payments} {
				for _, n := range a.Names {
					t.Logf("--- last log lines of %s (%s):\n%s", n, a.Name(), a.LogTail(n, 30))
				}
			}
			t.Logf("seed %d; files, logs and audit trails kept in %s", seed, dir)
			return
		}
		os.RemoveAll(dir)
	})
	for _, a := range []*chaos.Agent{payments, orders} {
		for _, n := range a.Names {
			if err := a.Start(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, a := range []*chaos.Agent{payments, orders} {
		if _, _, err := a.WaitHealthy(30 * time.Second); err != nil {
			t.Fatalf("%s: %v", a.Name(), err)
		}
	}
	// Until ORDERS' active has heard from every instance that it reads
	// transfers to other agents, it refuses them (a 4xx the workload
	// would take as final).
	if err := orders.WaitSendsToAgents(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	setUp := time.Since(began)

	// The workload: transfers submitted one after another, with pauses,
	// while the faults happen, and until there are at least minTransfers.
	w := chaos.NewPairWorkload(p, seed)
	gaps := rand.New(rand.NewPCG(seed, 0x6a9))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var makeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				if len(w.Snapshot()) >= minTransfers {
					return
				}
			default:
			}
			j, err := w.Make()
			if err != nil {
				makeErr = err
				return
			}
			w.Submit(context.Background(), j, time.Minute)
			time.Sleep(time.Duration(300+gaps.IntN(1200)) * time.Millisecond)
		}
	}()

	sched := chaos.NewPairSchedule(p, seed, kinds)
	sched.Logf = t.Logf
	drawn := map[string]int{}
	killed := map[string]map[uint64]bool{orders.Name(): {}, payments.Name(): {}} // epochs whose holder was killed -9, by agent
	leaseFaults := map[string]int{}
	start := time.Now()
	for i := 1; i <= faults; i++ {
		ev, err := sched.Next(i)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("fault %s: the agents did not recover: %v", ev, err)
		}
		if ev.Agent == "" {
			drawn[ev.Kind]++
		} else {
			drawn[ev.Agent+" "+ev.Kind]++
			if ev.Kind == chaos.KillActive || ev.Kind == chaos.KillThenStart {
				killed[ev.Agent][ev.Epoch] = true
			}
			if chaos.NewLease(ev.Kind) {
				leaseFaults[ev.Agent]++
			}
		}
		t.Logf("recovered: %s", ev)
	}
	faultTime := time.Since(start)
	close(stop)
	wg.Wait()
	if makeErr != nil {
		t.Fatal(makeErr)
	}
	jobs := w.Snapshot()
	settleStart := time.Now()
	views, err := chaos.Settle(orders, jobs, 3*time.Minute)
	if err != nil {
		t.Fatalf("transfers did not settle: %v", err)
	}
	waitSourcesDeleted(t, orders.Root, jobs, views, 30*time.Second)
	// ORDERS tells PAYMENTS that each transfer ended, which removes what
	// was not committed; an End that failed (a fault) is retried every
	// few seconds.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	left, err := chaos.WaitNoParts(ctx, 20*time.Second, filepath.Join(payments.Root, "out"))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	settleTime := time.Since(settleStart)

	o, err := chaos.CheckPair(p, jobs, views, killed[orders.Name()], killed[payments.Name()])
	if err != nil {
		t.Fatal(err)
	}
	var kindsDrawn []string
	for k, n := range drawn {
		kindsDrawn = append(kindsDrawn, k+"×"+strconv.Itoa(n))
	}
	sort.Strings(kindsDrawn)
	t.Logf("chaos (two agents): seed %d; set up in %v; %d faults in %v (%s); settled in %v; %d transfers accepted (%d completed, %d submissions unanswered); %d files, %d bytes delivered; %d failovers of ORDERS, %d bytes resent; ORDERS: %d leases, %d storage changes audited; PAYMENTS: %d leases, %d storage changes audited, %d refusals of a stale sender (%d checked against ORDERS' leases); %d violations",
		seed, setUp.Round(time.Millisecond), faults, faultTime.Round(time.Millisecond), strings.Join(kindsDrawn, ", "), settleTime.Round(time.Millisecond),
		o.Transfers, o.Completed, o.Unsettled, o.Files, o.Bytes, o.Failovers, o.Resent,
		o.SenderLeases, o.SenderWrites, o.Leases, o.Writes, o.StaleRefusals, o.StaleChecked, len(o.Violations))
	if o.LostRenames > 0 {
		t.Logf("%d files delivered at PAYMENTS have no rename record: each was renamed by an active of PAYMENTS killed -9 before it wrote the record (excused)", o.LostRenames)
	}
	if len(left) > 0 {
		t.Logf(".part files still at PAYMENTS 20 s after every transfer ended: %v", left)
	}
	// Every request of the workload is valid, and each is retried for a
	// minute: each must have been accepted.
	for _, j := range jobs {
		if !j.Accepted {
			_, known := views[j.ID]
			t.Errorf("%s (%s): submission never answered with the transfer (known to ORDERS at the end: %v): %s", j.ID, j.Shape, known, j.SubmitErr)
		}
	}
	for _, v := range o.Violations {
		t.Error(v)
	}
	if o.Transfers < minTransfers {
		t.Errorf("only %d transfers were accepted, want at least %d", o.Transfers, minTransfers)
	}
	if o.Writes == 0 {
		t.Errorf("PAYMENTS' audit trail shows no storage change: the transfers did not reach it")
	}
	for _, a := range []*chaos.Agent{orders, payments} {
		leases := o.Leases
		if a == orders {
			leases = o.SenderLeases
		}
		if leases < leaseFaults[a.Name()]/2 {
			t.Errorf("%s's audit trail shows %d leases after %d faults that move its lease: the faults did not bite", a.Name(), leases, leaseFaults[a.Name()])
		}
	}
}
