// End-to-end tests of transfers: real ftagent processes (three instances)
// moving files under the cluster's directory (its transferRoot), with the
// active killed (-9) or stopped (ftstop -i) midway. Every test checks the
// destination's bytes with its own SHA-256 over the files, and that no .part
// file is left behind a completed transfer.
package test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

const (
	xferMiB = int64(1) << 20
	// xferCheckpoint is checkpointInterval in the clusters of these tests:
	// small, so that a failover midway has several checkpoints behind it.
	xferCheckpoint = 16 * xferMiB
	// xferBig is the size of the big-file failover tests.
	xferBig = 256 * xferMiB
)

// xferCluster starts three instances with 16 MiB / 1 s checkpoints (plus
// extra properties) and waits for an active with two standbys; it returns
// the cluster and the active's name.
func xferCluster(t *testing.T, extra ...string) (*harness.Cluster, string) {
	t.Helper()
	props := append([]string{"checkpointInterval=16M", "checkpointTimeInterval=1"}, extra...)
	c := newCluster(t, harness.Options{Extra: props})
	// These tests are about transfers, not stopping: end every instance with
	// SIGKILL (before newCluster's clean-up). A normal stop of all instances
	// at once can keep the active waiting up to 30 s for a hand-over to a
	// standby that is stopping too.
	t.Cleanup(func() {
		for _, n := range c.Names {
			if p := c.Proc(n); p != nil {
				_ = c.Kill(n)
			}
		}
	})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	return c, v.Active
}

// xferPath is a path under the cluster's transferRoot.
func xferPath(c *harness.Cluster, rel string) string {
	return filepath.Join(c.Root, filepath.FromSlash(rel))
}

// xferRandomFile writes a random file at rel and returns its SHA-256.
func xferRandomFile(t *testing.T, c *harness.Cluster, rel string, size int64, seed uint64) string {
	t.Helper()
	p := xferPath(c, rel)
	if err := harness.WriteRandomFile(p, size, seed); err != nil {
		t.Fatal(err)
	}
	return xferSum(t, p)
}

// xferSum is the SHA-256 of a file, computed here.
func xferSum(t *testing.T, path string) string {
	t.Helper()
	sum, err := harness.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// xferCreate submits a transfer (args as to `transfer create`) and returns
// its id; the request must be accepted.
func xferCreate(t *testing.T, c *harness.Cluster, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, r, err := c.CreateTransfer(ctx, args...)
	if err != nil || r.Exit != 0 || v.ID == "" {
		t.Fatalf("transfer create %v: exit %d %v\nstdout %s\nstderr %s", args, r.Exit, err, r.Stdout, r.Stderr)
	}
	return v.ID
}

func xferWait(t *testing.T, c *harness.Cluster, timeout time.Duration, id, what string, cond func(transfer.View) bool) transfer.View {
	t.Helper()
	v, err := c.WaitTransfer(timeout, id, what, cond)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// xferEnded waits for a transfer to end.
func xferEnded(t *testing.T, c *harness.Cluster, timeout time.Duration, id string) transfer.View {
	t.Helper()
	return xferWait(t, c, timeout, id, "its end", func(v transfer.View) bool { return transfer.Terminal(v.State) })
}

// xferMidway waits until a transfer has done at least min bytes; it must
// not have ended by then (the test means to disrupt it midway).
func xferMidway(t *testing.T, c *harness.Cluster, id string, min int64) transfer.View {
	t.Helper()
	v := xferWait(t, c, 60*time.Second, id, fmt.Sprintf("bytesDone >= %d", min), func(v transfer.View) bool {
		return v.BytesDone >= min || transfer.Terminal(v.State)
	})
	if transfer.Terminal(v.State) {
		t.Fatalf("transfer %s ended before it could be disrupted midway (lower --bwlimit?): %s", id, harness.ViewText(v))
	}
	return v
}

// xferNoParts fails the test if a .part file is left under the cluster's
// directory.
func xferNoParts(t *testing.T, c *harness.Cluster) {
	t.Helper()
	parts, err := harness.PartFiles(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) > 0 {
		if len(parts) > 10 {
			parts = append(parts[:10], fmt.Sprintf("… %d in all", len(parts)))
		}
		t.Errorf(".part files left behind: %v", parts)
	}
}

// xferCheckCompleted checks a completed transfer: every file completed with
// the digest the test computed from its source (sums maps destination paths
// relative to transferRoot to the source's SHA-256), the destination's bytes
// have that digest, and no .part is left.
func xferCheckCompleted(t *testing.T, c *harness.Cluster, v transfer.View, sums map[string]string) {
	t.Helper()
	if v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s %s (reason %q), want completed: %s", v.ID, v.State, v.Reason, harness.ViewText(v))
	}
	if len(v.Files) != len(sums) {
		t.Errorf("transfer %s has %d files, want %d", v.ID, len(v.Files), len(sums))
	}
	var total int64
	wrong := 0
	for _, f := range v.Files {
		total += f.Bytes
		want, ok := sums[f.Destination]
		switch {
		case !ok:
			if wrong++; wrong <= 5 {
				t.Errorf("file %s → %s: not the expected destination", f.Source, f.Destination)
			}
		case f.State != transfer.StateCompleted || f.SHA256 != want:
			if wrong++; wrong <= 5 {
				t.Errorf("file %s → %s: state %s sha256 %s, want completed %s", f.Source, f.Destination, f.State, f.SHA256, want)
			}
		}
	}
	if wrong > 5 {
		t.Errorf("… %d of %d files wrong in the view", wrong, len(v.Files))
	}
	if v.Bytes != total || v.BytesDone != v.Bytes {
		t.Errorf("transfer %s: bytes %d, bytesDone %d; its files hold %d", v.ID, v.Bytes, v.BytesDone, total)
	}
	bad := 0
	for _, dest := range slices.Sorted(maps.Keys(sums)) {
		got, err := harness.FileSHA256(xferPath(c, dest))
		if err != nil || got != sums[dest] {
			if bad++; bad <= 5 {
				t.Errorf("destination %s: sha256 %s %v, want %s", dest, got, err, sums[dest])
			}
		}
	}
	if bad > 5 {
		t.Errorf("… %d destination files wrong in all", bad)
	}
	xferNoParts(t, c)
}

// xferAbsent fails the test if rel exists under transferRoot.
func xferAbsent(t *testing.T, c *harness.Cluster, rel string) {
	t.Helper()
	if _, err := os.Lstat(xferPath(c, rel)); !os.IsNotExist(err) {
		t.Errorf("%s exists (or cannot be checked: %v), want absent", rel, err)
	}
}

// xferActive returns the current active's name.
func xferActive(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	return wait(t, c, 20*time.Second, "an active", func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && v.Active != ""
	}).Active
}

// xferNewActive waits for an active other than old and returns its name.
func xferNewActive(t *testing.T, c *harness.Cluster, old string) string {
	t.Helper()
	return wait(t, c, 20*time.Second, "an active other than "+old, func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && v.Active != "" && v.Active != old
	}).Active
}

// xferBigAcrossFailovers copies a 256 MiB file at bwlimit and disrupts the
// active `times` times once bytesDone has grown by at least step since the
// previous disruption (or the start); the killed instance is restarted
// between disruptions. It checks the completed copy, its failovers and
// bytesResent.
func xferBigAcrossFailovers(t *testing.T, bwlimit string, step int64, times int, disrupt func(c *harness.Cluster, active string)) {
	c, active := xferCluster(t)
	began := time.Now()
	sum := xferRandomFile(t, c, "in/big.bin", xferBig, 1)
	t.Logf("256 MiB source written in %v", time.Since(began).Round(time.Millisecond))

	began = time.Now()
	id := xferCreate(t, c, "--bwlimit", bwlimit, "in/big.bin", "out/big.bin")
	var done int64
	for i := 0; i < times; i++ {
		if i > 0 {
			// Quorum for the next failover: the stopped instance is back
			// as a standby, and the transfer runs on the new active.
			if _, err := c.Start(active); err != nil {
				t.Fatal(err)
			}
			prev := active
			wait(t, c, 20*time.Second, prev+" back as a standby", func(v ha.AgentView) bool {
				return slices.Contains(v.Standbys, prev)
			})
			active = xferActive(t, c)
			xferWait(t, c, 20*time.Second, id, fmt.Sprintf("resumed after failover %d", i), func(v transfer.View) bool {
				return v.Failovers >= i || transfer.Terminal(v.State)
			})
		}
		v := xferMidway(t, c, id, done+step)
		done = v.BytesDone
		t.Logf("disruption %d of %s at bytesDone %d MiB (%v after create)", i+1, active, done/xferMiB, time.Since(began).Round(time.Millisecond))
		disrupt(c, active)
		newActive := xferNewActive(t, c, active)
		t.Logf("%s active %v after create", newActive, time.Since(began).Round(time.Millisecond))
	}

	v := xferEnded(t, c, 90*time.Second, id)
	t.Logf("transfer ended %v after create: state %s, failovers %d, bytesResent %d (%.1f MiB)",
		time.Since(began).Round(time.Millisecond), v.State, v.Failovers, v.BytesResent, float64(v.BytesResent)/float64(xferMiB))
	xferCheckCompleted(t, c, v, map[string]string{"out/big.bin": sum})
	if v.Failovers < times {
		t.Errorf("failovers %d, want at least %d", v.Failovers, times)
	}
	// Each failover sends again at most what followed the last checkpoint.
	if v.BytesResent < 0 || v.BytesResent > int64(times)*xferCheckpoint {
		t.Errorf("bytesResent %d, want at most %d (one checkpoint interval per failover)", v.BytesResent, int64(times)*xferCheckpoint)
	}
}

// A 256 MiB file whose active is killed (-9) midway completes on a standby,
// resent no more than one checkpoint interval.
func TestTransferKill9MidwayResumesOnStandby(t *testing.T) {
	xferBigAcrossFailovers(t, "64M", 64*xferMiB, 1, func(c *harness.Cluster, active string) {
		if err := c.Kill(active); err != nil {
			t.Fatal(err)
		}
	})
}

// The same with a planned failover: ftstop -i leaves the transfer at its
// checkpoint and a standby resumes it.
func TestTransferFtstopImmediateMidwayResumesOnStandby(t *testing.T) {
	xferBigAcrossFailovers(t, "64M", 64*xferMiB, 1, func(c *harness.Cluster, active string) {
		ftstopImmediate(t, c, active)
	})
}

// Two failovers in one transfer: kill -9 of the active, the killed instance
// restarted and back as a standby, then kill -9 of the new active.
func TestTransferTwoFailoversInOneTransfer(t *testing.T) {
	xferBigAcrossFailovers(t, "32M", 48*xferMiB, 2, func(c *harness.Cluster, active string) {
		if err := c.Kill(active); err != nil {
			t.Fatal(err)
		}
	})
}

// 500 small files in nested directories, in one recursive transfer across a
// kill -9 of the active.
func TestTransferManySmallFilesAcrossFailover(t *testing.T) {
	c, active := xferCluster(t)
	rng := rand.New(rand.NewPCG(4, 4))
	dirs := []string{"", "a", "a/b", "a/b/c", "d", "d/e", "f"}
	want := map[string]string{} // destination (relative to transferRoot) → sha256
	var total int64
	for i := 0; i < 500; i++ {
		rel := fmt.Sprintf("f%03d.bin", i)
		if d := dirs[i%len(dirs)]; d != "" {
			rel = d + "/" + rel
		}
		size := rng.Int64N(64<<10 + 1)
		if i%50 == 0 {
			size = 0 // some empty files
		}
		total += size
		want["out/batch/"+rel] = xferRandomFile(t, c, "in/batch/"+rel, size, uint64(100+i))
	}
	// About 4 s of copying: the kill comes about a quarter of the way in.
	began := time.Now()
	id := xferCreate(t, c, "--recursive", "--bwlimit", "4M", "in/batch/", "out/batch/")
	v := xferMidway(t, c, id, total/4)
	t.Logf("kill -9 of %s at bytesDone %d of %d (%v after create)", active, v.BytesDone, total, time.Since(began).Round(time.Millisecond))
	if err := c.Kill(active); err != nil {
		t.Fatal(err)
	}
	xferNewActive(t, c, active)
	v = xferEnded(t, c, 60*time.Second, id)
	t.Logf("transfer ended %v after create: %s, failovers %d, bytesResent %d", time.Since(began).Round(time.Millisecond), v.State, v.Failovers, v.BytesResent)
	xferCheckCompleted(t, c, v, want)
	if v.Failovers < 1 {
		t.Errorf("failovers %d, want at least 1", v.Failovers)
	}
	// Exactly the source tree arrived, nested as it was, and nothing else.
	got, err := harness.TreeSHA256(xferPath(c, "out/batch"))
	if err != nil {
		t.Fatal(err)
	}
	missing, extra := 0, []string{}
	for rel, sum := range want {
		if got[strings.TrimPrefix(rel, "out/batch/")] != sum {
			missing++
		}
	}
	for rel := range got {
		if _, ok := want["out/batch/"+rel]; !ok {
			extra = append(extra, rel)
		}
	}
	if missing > 0 || len(extra) > 0 {
		slices.Sort(extra)
		if len(extra) > 5 {
			extra = append(extra[:5], "…")
		}
		t.Errorf("destination tree: %d of %d files missing or wrong; %d files not in the source tree, e.g. %v", missing, len(want), len(got)-(len(want)-missing), extra)
	}
}

// A slow transfer cancelled midway: cancelled, its .part removed, no
// destination, the source untouched.
func TestTransferCancelMidway(t *testing.T) {
	c, _ := xferCluster(t)
	sum := xferRandomFile(t, c, "in/slow.bin", 32*xferMiB, 5)
	id := xferCreate(t, c, "--bwlimit", "2M", "in/slow.bin", "out/slow.bin")
	xferMidway(t, c, id, xferMiB)
	if _, err := os.Stat(xferPath(c, "out/slow.bin.part")); err != nil {
		t.Errorf("no .part while the copy runs: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.Transfer(ctx, "cancel", id)
	if err != nil || r.Exit != 0 {
		t.Fatalf("transfer cancel: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "cancelled") {
		t.Errorf("transfer cancel printed %q", r.Stdout)
	}
	v, _, err := c.TransferView(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != transfer.StateCancelled {
		t.Errorf("state %s after cancel, want cancelled: %s", v.State, harness.ViewText(v))
	}
	for _, f := range v.Files {
		if f.State != transfer.StateCancelled {
			t.Errorf("file %s %s after cancel, want cancelled", f.Source, f.State)
		}
	}
	xferNoParts(t, c)
	xferAbsent(t, c, "out/slow.bin")
	if got := xferSum(t, xferPath(c, "in/slow.bin")); got != sum {
		t.Errorf("source changed by the cancelled transfer: %s, want %s", got, sum)
	}
	// Cancelling again answers as the first did (a client retrying a
	// cancel whose answer it lost must not be told it failed).
	if r, err := c.Transfer(ctx, "cancel", id); err != nil || r.Exit != 0 || !strings.Contains(r.Stdout, "cancelled") {
		t.Errorf("second cancel: exit %d %v %q %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	// A completed transfer cannot be cancelled.
	xferRandomFile(t, c, "in/small.bin", 1000, 6)
	done := xferCreate(t, c, "--wait", "in/small.bin", "out/small.bin")
	if r, err := c.Transfer(ctx, "cancel", done); err != nil || r.Exit != 1 || !strings.Contains(r.Stderr, "has already ended (completed)") {
		t.Errorf("cancel of a completed transfer: exit %d %v %q", r.Exit, err, r.Stderr)
	}
}

// An existing destination: the default policy fails the file with the
// reason and leaves the destination alone; --overwrite replaces it.
func TestTransferOverwritePolicies(t *testing.T) {
	c, _ := xferCluster(t)
	src := xferRandomFile(t, c, "in/a.bin", 3*xferMiB, 6)
	old := xferRandomFile(t, c, "out/a.bin", 100<<10, 7)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The default policy refuses the request before accepting it, with
	// or without --wait.
	for _, args := range [][]string{{"--wait", "in/a.bin", "out/a.bin"}, {"in/a.bin", "out/a.bin"}} {
		v, r, err := c.CreateTransfer(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Exit != 1 || v.ID != "" || len(lines) != 1 || lines[0] != "ftagent: destination exists: out/a.bin (use --overwrite to replace it)" {
			t.Errorf("create %v onto an existing file: exit %d, view %s, stderr %q; want it refused in one line", args, r.Exit, harness.ViewText(v), r.Stderr)
		}
	}
	if r, err := c.Transfer(ctx, "list", "--json"); err != nil || strings.TrimSpace(r.Stdout) != "[]" {
		t.Errorf("transfers after refused requests: %v %q, want none", err, r.Stdout)
	}
	if got := xferSum(t, xferPath(c, "out/a.bin")); got != old {
		t.Errorf("destination changed by the failed transfer: %s, want %s", got, old)
	}
	xferNoParts(t, c)

	v, r, err := c.CreateTransfer(ctx, "--wait", "--overwrite", "in/a.bin", "out/a.bin")
	if err != nil || r.Exit != 0 {
		t.Fatalf("--overwrite: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	xferCheckCompleted(t, c, v, map[string]string{"out/a.bin": src})
}

// --delete-source deletes the source once its completion is committed, and
// never the source of a file that failed.
func TestTransferDeleteSourceOnlyAfterSuccess(t *testing.T) {
	c, _ := xferCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sum := xferRandomFile(t, c, "in/d.bin", 2*xferMiB, 8)
	v, r, err := c.CreateTransfer(ctx, "--wait", "--delete-source", "in/d.bin", "out/d.bin")
	if err != nil || r.Exit != 0 {
		t.Fatalf("--delete-source: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	xferCheckCompleted(t, c, v, map[string]string{"out/d.bin": sum})
	// The deletion follows the committed completion.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Lstat(xferPath(c, "in/d.bin"))
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("source in/d.bin still there (%v) 10s after the transfer completed", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if got := xferSum(t, xferPath(c, "out/d.bin")); got != sum {
		t.Errorf("destination %s after the source was deleted, want %s", got, sum)
	}

	// A file that fails keeps its source: its destination appears after the
	// request was accepted (one there before is refused at submission),
	// while the copy, held to 1 MiB/s, takes about a second.
	srcSum := xferRandomFile(t, c, "in/e.bin", xferMiB, 9)
	id := xferCreate(t, c, "--delete-source", "--bwlimit", "1M", "in/e.bin", "out/e.bin")
	destSum := xferRandomFile(t, c, "out/e.bin", 10<<10, 10)
	v = xferEnded(t, c, 30*time.Second, id)
	if v.State != transfer.StateFailed || !strings.Contains(v.Reason, "destination exists") {
		t.Errorf("--delete-source onto a file that appeared: %s; want failed with \"destination exists\"", harness.ViewText(v))
	}
	if got := xferSum(t, xferPath(c, "in/e.bin")); got != srcSum {
		t.Errorf("source of the failed transfer: %s, want it kept as %s", got, srcSum)
	}
	if got := xferSum(t, xferPath(c, "out/e.bin")); got != destSum {
		t.Errorf("destination of the failed transfer: %s, want it untouched %s", got, destSum)
	}
	xferNoParts(t, c)
}

// A source modified while the active is down: the new active refuses to
// resume from the checkpoint and fails the file with "source changed".
func TestTransferSourceChangedDuringFailoverFails(t *testing.T) {
	c, active := xferCluster(t)
	xferRandomFile(t, c, "in/s.bin", 64*xferMiB, 11)
	id := xferCreate(t, c, "--bwlimit", "32M", "in/s.bin", "out/s.bin")
	// Past the first checkpoint: the copy waits for a checkpoint to commit
	// before it writes on.
	v := xferMidway(t, c, id, xferCheckpoint+4*xferMiB)
	t.Logf("kill -9 of %s at bytesDone %d MiB", active, v.BytesDone/xferMiB)
	if err := c.Kill(active); err != nil {
		t.Fatal(err)
	}
	// Before a new active can be elected: append to the source.
	f, err := os.OpenFile(xferPath(c, "in/s.bin"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	changed := xferSum(t, xferPath(c, "in/s.bin"))

	v = xferEnded(t, c, 60*time.Second, id)
	if v.State != transfer.StateFailed || !strings.Contains(v.Reason, "source changed") {
		t.Errorf("transfer %s (reason %q), want failed with \"source changed\": %s", v.State, v.Reason, harness.ViewText(v))
	}
	if len(v.Files) != 1 || v.Files[0].State != transfer.StateFailed || !strings.Contains(v.Files[0].Reason, "source changed") {
		t.Errorf("files %+v, want one failed with \"source changed\"", v.Files)
	}
	if v.Failovers < 1 {
		t.Errorf("failovers %d, want at least 1", v.Failovers)
	}
	xferAbsent(t, c, "out/s.bin")
	if got := xferSum(t, xferPath(c, "in/s.bin")); got != changed {
		t.Errorf("source %s after the failed transfer, want %s (as modified)", got, changed)
	}
	// A failed file leaves no .part either.
	xferNoParts(t, c)
}

// A path out of the sandbox (here transferRoot) is refused at submission,
// with the agent's reason alone on one line; nothing is created.
func TestTransferPathEscapeRefused(t *testing.T) {
	c, _ := xferCluster(t)
	xferRandomFile(t, c, "in/ok.bin", 1000, 12)
	if err := os.Symlink("/etc", xferPath(c, "in/etc")); err != nil {
		t.Fatal(err)
	}
	deep := strings.Repeat("../", strings.Count(c.Dir, "/")) + "etc/passwd"
	cases := []struct {
		name   string
		args   []string
		reason string
	}{
		{"dot-dot source", []string{"../../etc/passwd", "out/"}, "outside transferRoot"},
		{"dot-dot to /etc/passwd", []string{deep, "out/"}, "outside transferRoot"},
		{"absolute source", []string{"/etc/passwd", "out/"}, "outside transferRoot"},
		{"link out of the sandbox", []string{"in/etc/passwd", "out/"}, "outside transferRoot"},
		{"dot-dot destination", []string{"in/ok.bin", "../../escaped/"}, "outside transferRoot"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range cases {
		r, err := c.Transfer(ctx, "create", tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		t.Logf("%s: exit %d: %s", tc.name, r.Exit, strings.TrimSpace(r.Stderr))
		// The agent's reason alone: no instance address, no HTTP status.
		if r.Exit == 0 || len(lines) != 1 || !strings.Contains(lines[0], tc.reason) ||
			strings.Contains(lines[0], "127.0.0.1") || strings.Contains(lines[0], "Bad Request") {
			t.Errorf("%s: create %v: exit %d, stdout %q, stderr %q; want non-zero and one line saying %q",
				tc.name, tc.args, r.Exit, r.Stdout, r.Stderr, tc.reason)
		}
	}
	xferAbsent(t, c, "out")
	xferAbsent(t, c, "../../escaped")
	r, err := c.Transfer(ctx, "list", "--json")
	if err != nil || r.Exit != 0 || strings.TrimSpace(r.Stdout) != "[]" {
		t.Errorf("transfer list after refusals: exit %d %v %q, want []", r.Exit, err, r.Stdout)
	}
	xferNoParts(t, c)
	// The sandbox refuses only what escapes: a good request still works.
	v, r, err := c.CreateTransfer(ctx, "--wait", "in/ok.bin", "out/")
	if err != nil || r.Exit != 0 {
		t.Fatalf("good request after refusals: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	xferCheckCompleted(t, c, v, map[string]string{"out/ok.bin": xferSum(t, xferPath(c, "in/ok.bin"))})
}

// With maxQueuedTransfers=2 and both running slowly, a third request is
// refused with an error that names the queue; once they are cancelled a
// request is accepted again.
func TestTransferFullQueueRefused(t *testing.T) {
	c, _ := xferCluster(t, "maxQueuedTransfers=2", "maxBandwidth=1M")
	xferRandomFile(t, c, "in/q1.bin", 8*xferMiB, 13)
	xferRandomFile(t, c, "in/q2.bin", 8*xferMiB, 14)
	third := xferRandomFile(t, c, "in/q3.bin", 64<<10, 15)
	ids := []string{
		xferCreate(t, c, "in/q1.bin", "out/"),
		xferCreate(t, c, "in/q2.bin", "out/"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := c.Transfer(ctx, "create", "in/q3.bin", "out/")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if r.Exit == 0 || len(lines) != 1 || !strings.Contains(lines[0], "queue") {
		t.Errorf("third create: exit %d, stdout %q, stderr %q; want non-zero and one line about the queue", r.Exit, r.Stdout, r.Stderr)
	}
	r, err = c.Transfer(ctx, "list", "--json")
	if err != nil || r.Exit != 0 || strings.Count(r.Stdout, `"id"`) != 2 {
		t.Errorf("transfer list: exit %d %v %s; want the 2 accepted transfers", r.Exit, err, r.Stdout)
	}
	for _, id := range ids {
		v, _, err := c.TransferView(ctx, id)
		if err != nil || transfer.Terminal(v.State) {
			t.Errorf("transfer %s %v: %s; want it still waiting or running", id, err, harness.ViewText(v))
		}
		if r, err := c.Transfer(ctx, "cancel", id); err != nil || r.Exit != 0 {
			t.Fatalf("cancel %s: exit %d %v %s", id, r.Exit, err, r.Stderr)
		}
	}
	xferNoParts(t, c)
	xferAbsent(t, c, "out/q1.bin")
	xferAbsent(t, c, "out/q2.bin")
	xferAbsent(t, c, "out/q3.bin")

	v, r, err := c.CreateTransfer(ctx, "--wait", "in/q3.bin", "out/")
	if err != nil || r.Exit != 0 {
		t.Fatalf("create after the queue emptied: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	xferCheckCompleted(t, c, v, map[string]string{"out/q3.bin": third})
}

// ftstopImmediate runs ftstop -i, which must succeed, and waits for the
// active's process to have exited cleanly.
func ftstopImmediate(t *testing.T, c *harness.Cluster, active string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.Ftstop(ctx, "-i")
	if err != nil || r.Exit != 0 {
		t.Fatalf("ftstop -i: exit %d %v: %s %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	select {
	case <-c.Proc(active).Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("%s still running after ftstop -i", active)
	}
	if err := c.Proc(active).Err(); err != nil {
		t.Errorf("%s exited with %v after ftstop -i", active, err)
	}
}
