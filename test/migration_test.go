// End-to-end tests of migrating a single-instance agent to a highly available
// one, following docs/operations.md ("Migrating a single instance to HA"),
// and of the guard against a second raft group: real processes, a watch over
// every instance's own lease report, and the destination bytes checked with
// SHA-256 computed here.
package test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// migrationCluster writes a cluster of ha1, ha2, ha3 whose own
// agent.properties lists all three, and a single.properties that lists ha1
// alone: the single-instance agent before its migration.
func migrationCluster(t *testing.T) (*harness.Cluster, string) {
	t.Helper()
	c := newCluster(t, harness.Options{Extra: []string{"checkpointInterval=4M", "checkpointTimeInterval=1"}})
	t.Cleanup(func() { // transfers may still run: end every instance at once
		for _, n := range c.Names {
			if c.Proc(n) != nil {
				_ = c.Kill(n)
			}
		}
	})
	single, err := c.PropsFor("single.properties", "ha1")
	if err != nil {
		t.Fatal(err)
	}
	return c, single
}

// watchLeases starts a lease watch and checks, at the end of the test, that
// it never saw two holders of one epoch or two actives at once.
func watchLeases(t *testing.T, c *harness.Cluster) {
	t.Helper()
	w := c.WatchLeases(50 * time.Millisecond)
	t.Cleanup(func() {
		problems, holders := w.Stop()
		t.Logf("lease holders seen: %v", holders)
		for _, p := range problems {
			t.Errorf("split brain: %s", p)
		}
	})
}

// transferIDs lists the ids `ftagent transfer list` shows.
func transferIDs(t *testing.T, c *harness.Cluster) []string {
	t.Helper()
	var ids []string
	ok := waitUntil(20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := c.Transfer(ctx, "list", "--json")
		if err != nil || r.Exit != 0 {
			return false
		}
		var vs []transfer.View
		if json.Unmarshal([]byte(r.Stdout), &vs) != nil {
			return false
		}
		ids = ids[:0]
		for _, v := range vs {
			ids = append(ids, v.ID)
		}
		return true
	})
	if !ok {
		t.Fatal("transfer list did not answer within 20s")
	}
	slices.Sort(ids)
	return ids
}

func TestMigrateSingleInstanceToHA(t *testing.T) {
	c, single := migrationCluster(t)
	watchLeases(t, c)

	// The single-instance agent, with some history.
	if _, err := c.StartWith(single, "ha1"); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 20*time.Second, "ha1 active alone", func(v ha.AgentView) bool { return v.Active == "ha1" })
	sums := map[string]string{}
	var history []string
	for i, name := range []string{"a.bin", "b.bin", "c.bin"} {
		sums["out/"+name] = xferRandomFile(t, c, "in/"+name, int64(i+1)*xferMiB, uint64(i+10))
		id := xferCreate(t, c, "--wait", "in/"+name, "out/")
		history = append(history, id)
	}
	// One transfer in flight while the agent becomes highly available.
	inflightSum := xferRandomFile(t, c, "in/inflight.bin", 40*xferMiB, 42)
	inflight := xferCreate(t, c, "--bwlimit", "10M", "in/inflight.bin", "out/inflight.bin")
	xferMidway(t, c, inflight, 4*xferMiB)

	// The migration, as docs/operations.md gives it: the file lists every
	// instance on every host (ha1's edit counts from its next start), and
	// the new instances are started. They join ha1's group as standbys.
	began := time.Now()
	b, err := os.ReadFile(c.Props)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(single, b, 0o640); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ha2", "ha3"} {
		if _, err := c.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	v := wait(t, c, 20*time.Second, "ha2 and ha3 standbys of ha1", func(v ha.AgentView) bool {
		return v.Active == "ha1" && instance(v, "ha2").Status == ha.StatusReady && instance(v, "ha3").Status == ha.StatusReady
	})
	t.Logf("ha2 and ha3 standbys %v after they were started", time.Since(began).Round(time.Millisecond))
	// ha1 still runs with its one-instance list, yet shows every member.
	var names []string
	for _, iv := range v.Instances {
		names = append(names, iv.Name)
	}
	if !slices.Equal(names, []string{"ha1", "ha2", "ha3"}) || v.Epoch != 1 {
		t.Errorf("ha1's view lists %v at epoch %d, want ha1, ha2, ha3 at epoch 1 (the lease did not move)", names, v.Epoch)
	}
	// A standby is READY only once it is a voting member of the group.
	for _, n := range []string{"ha1", "ha2", "ha3"} {
		m, err := c.Membership(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		var voters []string
		for _, mem := range m.Members {
			if mem.Voter {
				voters = append(voters, mem.Name)
			}
		}
		slices.Sort(voters)
		if !slices.Equal(voters, []string{"ha1", "ha2", "ha3"}) {
			t.Errorf("%s's raft group has voters %v, want ha1, ha2, ha3", n, voters)
		}
	}

	// The transfer that was in flight completes, intact.
	fv := xferEnded(t, c, 30*time.Second, inflight)
	xferCheckCompleted(t, c, fv, map[string]string{"out/inflight.bin": inflightSum})
	history = append(history, inflight)
	sums["out/inflight.bin"] = inflightSum
	slices.Sort(history)

	// Now highly available: kill -9 of the original instance, and a new
	// instance is active with the whole history.
	if err := c.Kill("ha1"); err != nil {
		t.Fatal(err)
	}
	active := xferNewActive(t, c, "ha1")
	if got := transferIDs(t, c); !slices.Equal(got, history) {
		t.Errorf("after the failover to %s, transfer list shows %v, want %v", active, got, history)
	}
	for _, id := range history {
		tv, _, err := c.TransferView(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if tv.State != transfer.StateCompleted {
			t.Errorf("transfer %s is %s on %s, want completed", id, tv.State, active)
		}
		for _, f := range tv.Files {
			if f.SHA256 != sums[f.Destination] {
				t.Errorf("transfer %s file %s: sha256 %s on %s, want %s", id, f.Destination, f.SHA256, active, sums[f.Destination])
			}
		}
	}
	for dest, sum := range sums {
		if got := xferSum(t, xferPath(c, dest)); got != sum {
			t.Errorf("%s: sha256 %s, want %s", dest, got, sum)
		}
	}
	xferNoParts(t, c)

	// ha1 restarts with its edited file: a standby, with no warning that
	// its instances differ from the group's.
	if _, err := c.StartWith(single, "ha1"); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 20*time.Second, "ha1 back as a standby", func(v ha.AgentView) bool {
		return v.Active == active && slices.Contains(v.Standbys, "ha1")
	})
	if log, _ := os.ReadFile(c.Proc("ha1").Log); strings.Contains(string(log), "differs from the agent's raft group") {
		t.Errorf("ha1 warned that its instances differ from the group's after its file was edited as documented")
	}
}

// Fresh instances whose configured peer already runs the agent, alone, never
// form a second group: not while it runs (they join it), and not while it is
// down (they wait for it).
func TestMigrationNeverFormsASecondGroup(t *testing.T) {
	c, single := migrationCluster(t)
	watchLeases(t, c)
	if _, err := c.StartWith(single, "ha1"); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 20*time.Second, "ha1 active alone", func(v ha.AgentView) bool { return v.Active == "ha1" })
	sum := xferRandomFile(t, c, "in/x.bin", xferMiB, 7)
	id := xferCreate(t, c, "--wait", "in/x.bin", "out/")

	// ha1 stops (it is the last data instance: nothing takes over).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r, err := c.Ftstop(ctx, "--instance", "ha1"); err != nil || r.Exit != 0 {
		t.Fatalf("ftstop --instance ha1: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	<-c.Proc("ha1").Done()

	// ha2 and ha3 start, listing all three; ha3 with --join. They answer
	// each other, but ha1 does not: neither forms a group.
	if _, err := c.Start("ha2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start("ha3", "--join"); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(10*time.Second, func() bool {
		b, _ := os.ReadFile(c.Proc("ha2").Log)
		return strings.Contains(string(b), "not forming the agent's group until every configured instance answers")
	}) {
		t.Fatal("ha2 never said it waits for every instance to answer")
	}
	deadline := time.Now().Add(2 * time.Second) // several of their rounds
	for time.Now().Before(deadline) {
		for _, n := range []string{"ha2", "ha3"} {
			m, err := c.Membership(context.Background(), n)
			if err == nil && len(m.Members) > 0 {
				t.Fatalf("%s formed or joined a group while ha1 was down: %+v", n, m.Members)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	// ha1 comes back with its one-instance file: its group is the agent's,
	// and the others join it.
	if _, err := c.StartWith(single, "ha1"); err != nil {
		t.Fatal(err)
	}
	v := wait(t, c, 20*time.Second, "ha1 active with ha2 and ha3 as standbys", func(v ha.AgentView) bool {
		return v.Active == "ha1" && slices.Contains(v.Standbys, "ha2") && slices.Contains(v.Standbys, "ha3")
	})
	if v.Epoch != 2 {
		t.Errorf("epoch %d, want 2: ha1's second lease in its one group", v.Epoch)
	}
	tv, _, err := c.TransferView(context.Background(), id)
	if err != nil || tv.State != transfer.StateCompleted || tv.Files[0].SHA256 != sum {
		t.Errorf("transfer %s after the join: %+v %v, want completed with %s", id, tv, err, sum)
	}
	if !waitUntil(5*time.Second, func() bool {
		b, _ := os.ReadFile(c.Proc("ha1").Log)
		return strings.Contains(string(b), "instance added to the group")
	}) {
		t.Error("ha1 did not log that it added the new instances")
	}

	// Restarted with its old one-instance file, ha1 warns that the file
	// differs from the group, naming the members it leaves out; the group
	// is what counts, and ha1 is back in it.
	if err := c.Kill("ha1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartWith(single, "ha1"); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 20*time.Second, "ha1 back, in the group of three", func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && v.Epoch > 2 && len(v.Standbys) == 2 &&
			(v.Active == "ha1" || slices.Contains(v.Standbys, "ha1"))
	})
	b, _ := os.ReadFile(c.Proc("ha1").Log)
	want := "members of the group not listed: ha2@" + c.Addr["ha2"] + ", ha3@" + c.Addr["ha3"]
	if !strings.Contains(string(b), "differs from the agent's raft group") || !strings.Contains(string(b), want) {
		t.Errorf("ha1, restarted with a file that lists only itself, did not warn %q", want)
	}
}

// waitUntil polls cond every 50ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
