// The rolling maintenance upgrade of docs/operations.md, end to end: a
// three-instance agent on the previous release is moved to the current code
// one instance at a time while transfers run, and every transfer completes
// with the right digest.
package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

const (
	// previousRelease is the build TestUpgradeRollingFromPreviousRelease
	// upgrades from. ftagent has no release tag yet, so it is a fixed commit
	// of main: 7c5283c ("bench: share module-root, ..."), from before
	// instances reported the command format they read and refused log
	// entries they cannot read. Replace it with the previous release's tag
	// once there is one.
	previousRelease = "7c5283c5dc4a68ccce1eccfa58a133edc647bc67"
	// previousVersion is stamped into the previous release's build; the
	// current code is built as testVersion, so show tells them apart.
	previousVersion = "0.9.0-7c5283c"
)

// upgradeStep is what `ftagent show --json` must report after a step of the
// upgrade: the active, and each instance's version and status.
type upgradeStep struct {
	active   string            // "" for any active
	versions map[string]string // instance -> version
	statuses map[string]string // instance -> status; READY for standbys not listed
}

// waitStep polls show until it reports step, then checks the formats the
// instances reported: a current active shows FormatVersion for the current
// builds and none for the previous release, which reads format 1 and does not
// report it; an active of the previous release shows none at all.
func waitStep(t *testing.T, c *harness.Cluster, what string, step upgradeStep) ha.AgentView {
	t.Helper()
	v := wait(t, c, 30*time.Second, what, func(v ha.AgentView) bool {
		if v.Status != ha.StatusActive || v.Active == "" || (step.active != "" && v.Active != step.active) {
			return false
		}
		for _, n := range c.Names {
			iv := instance(v, n)
			want := step.statuses[n]
			if want == "" {
				want = ha.StatusReady
				if n == v.Active {
					want = ha.StatusActive
				}
			}
			if iv.Version != step.versions[n] || iv.Status != want {
				return false
			}
		}
		return true
	})
	activeIsNew := step.versions[v.Active] == testVersion
	for _, iv := range v.Instances {
		want := 0
		if activeIsNew && iv.Version == testVersion {
			want = ha.FormatVersion
		}
		if iv.Format != want {
			t.Errorf("%s: %s (version %s) shown reading format %d, want %d", what, iv.Name, iv.Version, iv.Format, want)
		}
	}
	t.Logf("%s: active %s (epoch %d); %s", what, v.Active, v.Epoch, versionsText(v))
	return v
}

func versionsText(v ha.AgentView) string {
	var parts []string
	for _, iv := range v.Instances {
		parts = append(parts, fmt.Sprintf("%s %s %s", iv.Name, iv.Version, iv.Status))
	}
	return strings.Join(parts, ", ")
}

// logSize is the current size of instance name's log.
func logSize(t *testing.T, c *harness.Cluster, name string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(c.Dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// checkRestoredSnapshot checks that the process of name that started after
// its log had size from restored a raft snapshot.
func checkRestoredSnapshot(t *testing.T, c *harness.Cluster, name string, from int64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b[from:]), `"message":"restored from snapshot"`) {
		t.Errorf("upgraded %s did not start from the previous release's snapshot", name)
	}
}

// waitSnapshot waits until instance name has written a raft snapshot, so
// that the build that replaces it starts from a snapshot of the old build.
func waitSnapshot(t *testing.T, c *harness.Cluster, name string) {
	t.Helper()
	pattern := filepath.Join(c.Dir, "data", name, "snapshots", "*", "state.bin")
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s wrote no raft snapshot (%s) within 15s", name, pattern)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// acceptedKinds reads instance name's log: the kind of create entry each
// transfer it accepted was committed with ("" for builds that do not say).
func acceptedKinds(t *testing.T, c *harness.Cluster, name string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		var m struct {
			Message  string `json:"message"`
			Transfer string `json:"transfer"`
			Kind     string `json:"kind"`
		}
		if json.Unmarshal([]byte(l), &m) == nil && m.Message == "transfer accepted" {
			kinds[m.Transfer] = m.Kind
		}
	}
	return kinds
}

func TestUpgradeRollingFromPreviousRelease(t *testing.T) {
	began := time.Now()
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Dir(filepath.Dir(file))
	old, err := harness.BuildCommit(repo, previousRelease, t.TempDir(), previousVersion)
	if err != nil {
		t.Fatalf("build the previous release: %v", err)
	}
	t.Logf("previous release %.12s built in %v", previousRelease, time.Since(began).Round(time.Millisecond))
	if r, err := harness.Run(context.Background(), old.Ftagent, "--version"); err != nil || !strings.Contains(r.Stdout, previousVersion) {
		t.Fatalf("previous release's ftagent --version: %q %v", r.Stdout, err)
	}

	// Snapshots every few entries: each upgraded instance starts from a
	// snapshot that the previous release wrote.
	// The previous release has no TLS: the upgrade of the build runs
	// without it (tlsMode=disabled, which the current build honours and
	// the previous one ignores as an unknown key); moving the upgraded
	// group to TLS is its own roll (TestPlaintextToRequiredRollDuringTransfers).
	c := newCluster(t, harness.Options{TLSMode: "disabled", Extra: []string{
		"checkpointInterval=16M", "checkpointTimeInterval=1",
		"raftSnapshotThreshold=8", "raftSnapshotInterval=200ms",
	}})
	t.Cleanup(func() {
		for _, n := range c.Names {
			if c.Proc(n) != nil {
				_ = c.Kill(n)
			}
		}
	})
	versions := map[string]string{}
	for _, n := range c.Names {
		c.UseBinaries(n, old)
		versions[n] = previousVersion
	}
	startAll(t, c)
	v := waitStep(t, c, "all on the previous release", upgradeStep{versions: versions})
	oldActive := v.Active
	standbys := others(c.Names, oldActive)

	// Transfers: one done before the upgrade, two large ones held back by
	// --bwlimit so that they run through the whole upgrade, and more
	// submitted between its steps.
	sums := map[string]map[string]string{} // transfer id -> destination -> SHA-256
	submit := func(src string, size int64, seed uint64, args ...string) string {
		sum := xferRandomFile(t, c, src, size, seed)
		dest := "out/" + strings.TrimPrefix(src, "in/")
		id := xferCreate(t, c, append(args, src, dest)...)
		sums[id] = map[string]string{dest: sum}
		return id
	}
	first := submit("in/before.bin", 3*xferMiB, 1)
	if v := xferEnded(t, c, 30*time.Second, first); v.State != transfer.StateCompleted {
		t.Fatalf("transfer before the upgrade: %s", harness.ViewText(v))
	}
	long := []string{
		submit("in/long1.bin", 64*xferMiB, 2, "--bwlimit", "4M"),
		submit("in/long2.bin", 40*xferMiB, 3, "--bwlimit", "3M"),
	}
	xferMidway(t, c, long[0], 1)

	// 1 and 2: each standby in turn is stopped, gets the new build, and
	// comes back as a standby. The previous release's active keeps running
	// the transfers and takes new ones meanwhile.
	var mid []string
	for i, s := range standbys {
		waitSnapshot(t, c, s)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		r, err := c.Ftstop(ctx, "--instance", s)
		cancel()
		if err != nil || r.Exit != 0 || !strings.Contains(r.Stdout, s+" stopped") {
			t.Fatalf("ftstop --instance %s: exit %d %v\n%s%s", s, r.Exit, err, r.Stdout, r.Stderr)
		}
		if err := c.Proc(s).Err(); err != nil {
			t.Fatalf("%s (previous release) ended with %v", s, err)
		}
		waitStep(t, c, fmt.Sprintf("standby %s stopped", s), upgradeStep{
			active: oldActive, versions: versions, statuses: map[string]string{s: ha.StatusStopped},
		})
		c.UseBinaries(s, bin)
		from := logSize(t, c, s)
		if _, err := c.Start(s); err != nil {
			t.Fatal(err)
		}
		versions[s] = testVersion
		waitStep(t, c, fmt.Sprintf("standby %s upgraded", s), upgradeStep{active: oldActive, versions: versions})
		checkRestoredSnapshot(t, c, s, from)

		mid = append(mid, submit(fmt.Sprintf("in/mid%d.bin", i), 5*xferMiB, uint64(10+i)))
	}
	// Held back so that it too is running when the active is stopped.
	long = append(long, submit("in/long3.bin", 24*xferMiB, 4, "--bwlimit", "4M"))
	xferMidway(t, c, long[2], 1)

	// 3: ftstop -i hands the lease from the previous release's active to an
	// upgraded standby; the running transfers stop at their checkpoints and
	// the new active resumes them.
	for _, id := range long {
		v, _, err := c.TransferView(context.Background(), id)
		if err != nil || transfer.Terminal(v.State) {
			t.Fatalf("transfer %s is not running before the active is stopped (%v): %s; lower its --bwlimit", id, err, harness.ViewText(v))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	r, err := c.Ftstop(ctx, "-i")
	cancel()
	if err != nil || r.Exit != 0 || !strings.Contains(r.Stdout, oldActive+" stopped; ") {
		t.Fatalf("ftstop -i: exit %d %v\n%s%s", r.Exit, err, r.Stdout, r.Stderr)
	}
	if err := c.Proc(oldActive).Err(); err != nil {
		t.Fatalf("%s (previous release) ended with %v", oldActive, err)
	}
	v = waitStep(t, c, "the previous release's active stopped", upgradeStep{
		versions: versions, statuses: map[string]string{oldActive: ha.StatusStopped},
	})
	newActive := v.Active
	if !slices.Contains(standbys, newActive) {
		t.Fatalf("%s took over, want an upgraded standby (%v)", newActive, standbys)
	}
	mid = append(mid, submit("in/mid-after-handover.bin", 5*xferMiB, 20))

	// 4: the old active gets the new build and rejoins as a standby.
	waitSnapshot(t, c, oldActive)
	c.UseBinaries(oldActive, bin)
	from := logSize(t, c, oldActive)
	if _, err := c.Start(oldActive); err != nil {
		t.Fatal(err)
	}
	versions[oldActive] = testVersion
	waitStep(t, c, "every instance upgraded", upgradeStep{active: newActive, versions: versions})
	checkRestoredSnapshot(t, c, oldActive, from)
	last := submit("in/after.bin", 2*xferMiB, 30)
	// A recursive transfer of a small tree with odd names: now that every
	// instance reads this build's formats, it is committed as a compact
	// transfer.create.v3 entry, which carries its directories (format 4).
	tree := map[string]string{}
	for i, rel := range []string{"a.bin", "sub/b c.bin", "sub/deeper/-d é.bin"} {
		tree["out/tree/"+rel] = xferRandomFile(t, c, "in/tree/"+rel, int64(1000*(i+1)), uint64(40+i))
	}
	treeID := xferCreate(t, c, "--recursive", "in/tree/", "out/tree/")
	sums[treeID] = tree

	// The kind of create entry the new active wrote: the plain one while an
	// instance was stopped or on the previous release, the compact one once
	// every instance reads format 2 (and 4, for one with directories).
	kinds := acceptedKinds(t, c, newActive)
	for id, want := range map[string]string{
		mid[len(mid)-1]: transfer.KindCreate,
		last:            transfer.KindCreateV2,
		treeID:          transfer.KindCreateV3,
	} {
		if kinds[id] != want {
			t.Errorf("transfer %s was committed as %q, want %q", id, kinds[id], want)
		}
	}

	// Every transfer completed, with the digest of its source computed
	// here, and without a .part left behind.
	all := append(append(append([]string{first}, long...), mid...), last, treeID)
	ended := map[string]transfer.View{}
	for _, id := range all {
		ended[id] = xferEnded(t, c, 60*time.Second, id)
	}
	for _, id := range all {
		v := ended[id]
		xferCheckCompleted(t, c, v, sums[id])
		if slices.Contains(long, id) && v.Failovers < 1 {
			t.Errorf("transfer %s ran through ftstop -i but counts %d failovers", id, v.Failovers)
		}
	}
	xferNoParts(t, c)

	// No instance refused its log at any point.
	for _, n := range c.Names {
		b, err := os.ReadFile(filepath.Join(c.Dir, n+".log"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "upgrade this instance") || strings.Contains(string(b), ha.StatusFailed) {
			t.Errorf("%s's log shows a refused log entry", n)
		}
	}
	t.Logf("upgrade test took %v", time.Since(began).Round(time.Millisecond))
}
