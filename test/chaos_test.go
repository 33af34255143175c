package test

import (
	"context"
	"errors"
	"io/fs"
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

	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/chaos"
)

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}

// TestChaos runs a workload of transfers through a 3-instance agent whose
// instances live in their own network namespaces, while a seeded schedule
// kills, pauses, stops, restarts and cuts them off; then it checks what is
// observable: every transfer's end, every file's bytes, and the audit trail
// of leases and storage changes. docs/reliability.md describes it.
//
//	FTAGENT_CHAOS_SEED=N       replay a schedule (the seed is printed)
//	FTAGENT_CHAOS_FAULTS=N     number of faults (default 40: about 2 minutes)
//	FTAGENT_CHAOS_TRANSFERS=N  least number of transfers (default 60)
//	FTAGENT_CHAOS_KINDS=a,b    draw faults only of these kinds (chaos.FaultKinds)
func TestChaos(t *testing.T) {
	if why := chaos.Capable(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the fault-injection suite cannot set up its network: %s", why)
		}
		t.Skipf("cannot set up the fault-injection network: %s", why)
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("FTAGENT_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FTAGENT_CHAOS_SEED=%q: %v", v, err)
		}
		seed = s
	}
	faults := envInt(t, "FTAGENT_CHAOS_FAULTS", 40)
	minTransfers := envInt(t, "FTAGENT_CHAOS_TRANSFERS", 60)
	t.Logf("seed %d: replay with FTAGENT_CHAOS_SEED=%d FTAGENT_CHAOS_FAULTS=%d go test -count=1 -run TestChaos -v ./test/", seed, seed, faults)

	dir, err := os.MkdirTemp("", "ftagent-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"ha1", "ha2", "ha3"}
	bench, err := chaos.NewBench(names)
	if err != nil {
		_ = bench.Close()
		t.Fatalf("network set-up: %v", err)
	}
	a, err := chaos.NewAgent(bench, bin, dir, names, "checkpointInterval=1M", "transferHistoryCount=100000")
	if err != nil {
		_ = bench.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.StopAll()
		if err := bench.Close(); err != nil {
			t.Errorf("network tear-down: %v", err)
		}
		if t.Failed() {
			for _, n := range names {
				t.Logf("--- last log lines of %s:\n%s", n, a.LogTail(n, 30))
			}
			t.Logf("seed %d; files, logs and audit trail kept in %s", seed, dir)
			return
		}
		os.RemoveAll(dir)
	})
	for _, n := range names {
		if err := a.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := a.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// The workload: transfers submitted one after another, with pauses,
	// while the faults happen, and until there are at least minTransfers.
	w := chaos.NewWorkload(a, seed)
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
			time.Sleep(time.Duration(150+gaps.IntN(700)) * time.Millisecond)
		}
	}()

	sched := chaos.NewSchedule(a, seed)
	sched.Logf = t.Logf
	if v := os.Getenv("FTAGENT_CHAOS_KINDS"); v != "" {
		sched.Kinds = nil
		for _, k := range strings.Split(v, ",") {
			if !slices.Contains(chaos.FaultKinds, k) {
				t.Fatalf("FTAGENT_CHAOS_KINDS: unknown fault %q (known: %s)", k, strings.Join(chaos.FaultKinds, ","))
			}
			sched.Kinds = append(sched.Kinds, k)
		}
	}
	kinds := map[string]int{}
	start := time.Now()
	for i := 1; i <= faults; i++ {
		ev, err := sched.Next(i)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("fault %s: the agent did not recover: %v", ev, err)
		}
		kinds[ev.Kind]++
		t.Logf("recovered: %s", ev)
	}
	faultTime := time.Since(start)
	close(stop)
	wg.Wait()
	if makeErr != nil {
		t.Fatal(makeErr)
	}
	jobs := w.Snapshot()
	views, err := chaos.Settle(a, jobs, 5*time.Minute)
	if err != nil {
		t.Fatalf("transfers did not settle: %v", err)
	}
	waitSourcesDeleted(t, a.Dir, jobs, views, 30*time.Second)

	o, err := chaos.Check(a, jobs, views)
	if err != nil {
		t.Fatal(err)
	}
	var kindList []string
	for k, n := range kinds {
		kindList = append(kindList, k+"×"+strconv.Itoa(n))
	}
	sort.Strings(kindList)
	t.Logf("chaos: seed %d; %d faults in %v (%s); %d transfers accepted (%d completed, %d failed as expected, %d refused as expected, %d submissions unanswered); %d files, %d bytes delivered; %d failovers, %d bytes resent; %d leases, %d storage changes audited; %d violations",
		seed, faults, faultTime.Round(time.Second), strings.Join(kindList, ", "), o.Transfers, o.Completed, o.Failed, o.Refused, o.Unsettled,
		o.Files, o.Bytes, o.Failovers, o.Resent, o.Leases, o.Writes, len(o.Violations))
	for _, v := range o.Violations {
		t.Error(v)
	}
	if o.Transfers < minTransfers {
		t.Errorf("only %d transfers were accepted, want at least %d", o.Transfers, minTransfers)
	}
	if o.Writes == 0 || o.Leases < faults/2 {
		t.Errorf("the audit trail shows %d leases and %d storage changes: the faults did not bite", o.Leases, o.Writes)
	}
}

// waitSourcesDeleted gives the active time to delete the sources of
// completed --delete-source transfers: that happens after the completion is
// committed, so a little after the transfer reads as completed.
func waitSourcesDeleted(t *testing.T, dir string, jobs []*chaos.Job, views map[string]transfer.View, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, j := range jobs {
		if v, ok := views[j.ID]; !ok || !j.DeleteSrc || v.State != transfer.StateCompleted {
			continue
		}
		for _, f := range j.Files {
			for {
				_, err := os.Stat(filepath.Join(dir, f.Source))
				if errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
					break // the checker judges what is left
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}
