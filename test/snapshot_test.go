package test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// An instance restarted from a raft snapshot has the same transfers: with a
// tiny snapshot threshold every instance snapshots while transfers run; a
// restarted instance then restores from its snapshot, becomes the active,
// and lists exactly the transfers the others had.
func TestRestartFromSnapshotKeepsTransfers(t *testing.T) {
	c := newCluster(t, harness.Options{Extra: []string{"raftSnapshotThreshold=8", "raftSnapshotInterval=200ms"}})
	startAll(t, c)
	wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	in := filepath.Join(c.Dir, "in")
	if err := os.MkdirAll(in, 0o750); err != nil {
		t.Fatal(err)
	}
	list := func() []transfer.View {
		t.Helper()
		r, err := harness.Run(context.Background(), c.Bin.Ftagent, "transfer", "list", "--json", "--config", c.Props)
		if err != nil || r.Exit != 0 {
			t.Fatalf("transfer list: exit %d %v %s", r.Exit, err, r.Stderr)
		}
		var vs []transfer.View
		if err := json.Unmarshal([]byte(r.Stdout), &vs); err != nil {
			t.Fatalf("transfer list --json printed %q: %v", r.Stdout, err)
		}
		return vs
	}
	for i := 0; i < 12; i++ {
		name := "f" + strconv.Itoa(i)
		if err := os.WriteFile(filepath.Join(in, name), []byte(name), 0o640); err != nil {
			t.Fatal(err)
		}
		r, err := harness.Run(context.Background(), c.Bin.Ftagent, "transfer", "create", "--wait", "--config", c.Props, "in/"+name, "out/")
		if err != nil || r.Exit != 0 {
			t.Fatalf("transfer %d: exit %d %v %s", i, r.Exit, err, r.Stderr)
		}
	}
	before := list()
	if len(before) != 12 {
		t.Fatalf("%d transfers listed, want 12", len(before))
	}
	v, _, err := c.Show(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	restarted := v.Standbys[0]
	// Each instance snapshots on its own timer: wait for the standby's.
	var snaps []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if snaps, _ = filepath.Glob(filepath.Join(c.Dir, "data", restarted, "snapshots", "*")); len(snaps) > 0 {
			break
		}
	}
	if len(snaps) == 0 {
		t.Fatalf("no raft snapshot was taken by %s", restarted)
	}
	if err := c.Kill(restarted); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(restarted); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 20*time.Second, restarted+" back as a standby", func(v ha.AgentView) bool {
		return slices.Contains(v.Standbys, restarted)
	})
	// Make the restarted instance the active: stop the others' active, then
	// if needed the next one, until it holds the lease. Each stopped
	// instance starts again before the next stop, or the next one would
	// leave too few for a majority (and be refused).
	for i := 0; i < 4; i++ {
		v, _, err := c.Show(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if v.Active == restarted {
			break
		}
		// The hand-over goes to the most caught-up standby: let the
		// restarted one catch up with the active first, or the other
		// standby, ahead of it, is chosen every time.
		caughtUp(t, c, restarted, v.Active)
		if r, err := c.Ftstop(context.Background(), "-i"); err != nil || r.Exit != 0 {
			t.Fatalf("ftstop -i: %v %s", err, r.Stderr)
		}
		<-c.Proc(v.Active).Done()
		if _, err := c.Start(v.Active); err != nil {
			t.Fatal(err)
		}
		wait(t, c, 20*time.Second, v.Active+" back as a standby", activeWithStandbys(2))
	}
	v = wait(t, c, 20*time.Second, restarted+" active", func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && v.Active == restarted
	})
	after := list()
	if len(after) != len(before) {
		t.Fatalf("after restoring from a snapshot: %d transfers, want %d", len(after), len(before))
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.ID != b.ID || a.State != b.State || a.Bytes != b.Bytes || len(a.Files) != len(b.Files) || a.Files[0].SHA256 != b.Files[0].SHA256 {
			t.Fatalf("transfer %d differs after restore:\n before %+v\n after  %+v", i, b, a)
		}
	}
}

// caughtUp waits until instance name has applied as much of the log as the
// active has.
func caughtUp(t *testing.T, c *harness.Cluster, name, active string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err1 := c.InstanceStatus(context.Background(), name)
		a, err2 := c.InstanceStatus(context.Background(), active)
		if err1 == nil && err2 == nil && s.LastApplied >= a.LastApplied {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not catch up with the active %s: applied %d of %d (%v, %v)", name, active, s.LastApplied, a.LastApplied, err1, err2)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
