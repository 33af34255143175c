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
	"github.com/ftagent/ftagent/test/faultfs"
	"github.com/ftagent/ftagent/test/harness"
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
// kills, pauses, stops, restarts and cuts them off, and makes the
// destination storage (out/, a fault-injecting FUSE mount) fail with EIO
// and ENOSPC for a while; then it checks what is observable: every
// transfer's end, every file's bytes, and the audit trail of leases and
// storage changes. docs/reliability.md describes it.
//
//	FTAGENT_CHAOS_SEED=N       replay a schedule (the seed is printed)
//	FTAGENT_CHAOS_FAULTS=N     number of faults (default 40: about 2 minutes)
//	FTAGENT_CHAOS_TRANSFERS=N  least number of transfers (default 60)
//	FTAGENT_CHAOS_KINDS=a,b    draw faults only of these kinds (chaos.FaultKinds)
func TestChaos(t *testing.T) {
	runChaos(t, chaosRun{kinds: chaos.FaultKinds, faults: 40, transfers: 60})
}

// TestChaosMounts is TestChaos with instances that see the storage through
// mounts of their own (a bindfs view per instance, in its own mount
// namespace: another device number on each, as on different hosts), in a
// shorter schedule of the process and network faults (TestChaos has the
// storage faults; FTAGENT_CHAOS_KINDS can add them here: the instances
// then see bindfs over the fault mount). The same variables apply, with
// FTAGENT_CHAOS_MOUNTS_FAULTS (default 8) and
// FTAGENT_CHAOS_MOUNTS_TRANSFERS (default 16) for its size.
func TestChaosMounts(t *testing.T) {
	runChaos(t, chaosRun{mounts: true, kinds: chaos.ProcessKinds, faults: 8, transfers: 16})
}

type chaosRun struct {
	mounts            bool
	kinds             []string // drawn from (FTAGENT_CHAOS_KINDS overrides)
	faults, transfers int      // defaults
}

func runChaos(t *testing.T, run chaosRun) {
	kindList := run.kinds
	if v := os.Getenv("FTAGENT_CHAOS_KINDS"); v != "" {
		kindList = nil
		for _, k := range strings.Split(v, ",") {
			if !slices.Contains(chaos.FaultKinds, k) {
				t.Fatalf("FTAGENT_CHAOS_KINDS: unknown fault %q (known: %s)", k, strings.Join(chaos.FaultKinds, ","))
			}
			kindList = append(kindList, k)
		}
	}
	storageFaults := slices.ContainsFunc(kindList, func(k string) bool { return slices.Contains(chaos.StorageKinds, k) })
	why := chaos.Capable()
	if why == "" && storageFaults {
		why = faultfs.Capable()
	}
	if why == "" && run.mounts {
		why = harness.InstanceMountCapable()
	}
	if why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the fault-injection suite cannot set up its network or storage: %s", why)
		}
		t.Skipf("cannot set up the fault-injection network or storage: %s", why)
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("FTAGENT_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FTAGENT_CHAOS_SEED=%q: %v", v, err)
		}
		seed = s
	}
	prefix := "FTAGENT_CHAOS_"
	if run.mounts {
		prefix = "FTAGENT_CHAOS_MOUNTS_"
	}
	faults := envInt(t, prefix+"FAULTS", run.faults)
	minTransfers := envInt(t, prefix+"TRANSFERS", run.transfers)
	t.Logf("seed %d: replay with FTAGENT_CHAOS_SEED=%d %sFAULTS=%d go test -count=1 -run '%s$' -v ./test/", seed, seed, prefix, faults, t.Name())

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
	a, err := chaos.NewAgentMounts(bench, bin, dir, names, run.mounts, "checkpointInterval=1M", "transferHistoryCount=100000")
	if err != nil {
		_ = bench.Close()
		t.Fatal(err)
	}
	// The destination tree is a fault-injecting mount (of out.backing),
	// for the storage faults; the instances' own mounts, if any, show it
	// too (bindfs → faultfs → the backing directory).
	var storageFS *faultfs.FS
	if storageFaults {
		for _, d := range []string{"out.backing", "out"} {
			if err := os.MkdirAll(filepath.Join(a.Root, d), 0o750); err != nil {
				_ = bench.Close()
				t.Fatal(err)
			}
		}
		storageFS, err = faultfs.Mount(filepath.Join(a.Root, "out.backing"), filepath.Join(a.Root, "out"), faultfs.Options{})
		if err != nil {
			_ = bench.Close()
			t.Fatalf("storage fault mount: %v", err)
		}
	}
	t.Cleanup(func() {
		a.StopAll()
		if storageFS != nil {
			if err := storageFS.Unmount(); err != nil {
				t.Errorf("storage fault mount: %v", err)
			}
		}
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
	sched.Storage = storageFS
	sched.Kinds = kindList
	kinds := map[string]int{}
	leaseFaults, storageEvents, storageFired := 0, 0, 0
	killed := map[uint64]bool{} // epochs whose holder was killed -9
	start := time.Now()
	for i := 1; i <= faults; i++ {
		ev, err := sched.Next(i)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("fault %s: the agent did not recover: %v", ev, err)
		}
		kinds[ev.Kind]++
		if ev.Kind == chaos.KillActive || ev.Kind == chaos.KillThenStart {
			killed[ev.Epoch] = true
		}
		if chaos.NewLease(ev.Kind) {
			leaseFaults++
		}
		if slices.Contains(chaos.StorageKinds, ev.Kind) {
			storageEvents++
			storageFired += ev.Fired
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
	views, err := chaos.Settle(a, jobs, 5*time.Minute)
	if err != nil {
		t.Fatalf("transfers did not settle: %v", err)
	}
	waitSourcesDeleted(t, a.Root, jobs, views, 30*time.Second)

	o, err := chaos.Check(a, jobs, views, killed)
	if err != nil {
		t.Fatal(err)
	}
	var drawn []string
	for k, n := range kinds {
		drawn = append(drawn, k+"×"+strconv.Itoa(n))
	}
	sort.Strings(drawn)
	t.Logf("chaos: seed %d; %d faults in %v (%s); %d transfers accepted (%d completed, %d failed as expected, %d refused as expected, %d submissions unanswered); %d files, %d bytes delivered; %d failovers, %d bytes resent; %d leases, %d storage changes audited; %d violations",
		seed, faults, faultTime.Round(time.Second), strings.Join(drawn, ", "), o.Transfers, o.Completed, o.Failed, o.Refused, o.Unsettled,
		o.Files, o.Bytes, o.Failovers, o.Resent, o.Leases, o.Writes, len(o.Violations))
	if o.LostRenames > 0 {
		t.Logf("%d delivered files have no rename record: each was renamed by an active killed -9 before it wrote the record (excused)", o.LostRenames)
	}
	for _, v := range o.Violations {
		t.Error(v)
	}
	if o.Transfers < minTransfers {
		t.Errorf("only %d transfers were accepted, want at least %d", o.Transfers, minTransfers)
	}
	if o.Writes == 0 || o.Leases < leaseFaults/2 {
		t.Errorf("the audit trail shows %d leases and %d storage changes after %d faults that move the lease: the faults did not bite", o.Leases, o.Writes, leaseFaults)
	}
	if storageFS != nil {
		t.Logf("storage faults: %d, which failed %d operations (%s)", storageEvents, storageFired, storageFS.Counts())
	}
	if storageEvents >= 3 && storageFired == 0 {
		t.Errorf("%d storage faults never failed an operation: the storage faults did not bite", storageEvents)
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
