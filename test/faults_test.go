// End-to-end tests of storage that fails: the destination on a
// fault-injecting FUSE mount (test/faultfs) that returns EIO on write, on
// fsync or on rename, or ENOSPC on write, and on a small tmpfs that really
// fills up. Each fault must end in a retry that succeeds once the fault is
// cleared (the transfer goes to recovering and resumes), or, when it is
// never cleared, in a failed file with the reason once the recovery timeout
// has passed; never in a completed file whose bytes differ from the
// source's. Both the large-file path (checkpoints, one file at a time) and
// the small-file path (many files copied, then synced and renamed as a
// group) are covered.
package test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/faultfs"
	"github.com/ftagent/ftagent/test/harness"
	"github.com/ftagent/ftagent/test/storage"
)

// faultsMount is where the fault mount sits under transferRoot.
const faultsMount = "faulty"

// faultsCluster starts three instances with 8 MiB / 1 s checkpoints whose
// transferRoot holds the fault-injecting mount at faulty/ (backed by a
// directory outside the cluster), and waits for an active.
func faultsCluster(t *testing.T) (*harness.Cluster, *faultfs.FS) {
	t.Helper()
	storage.Require(t, faultfs.Capable())
	c := newCluster(t, harness.Options{Extra: []string{"checkpointInterval=8M", "checkpointTimeInterval=1"}})
	f := storage.FaultFS(t, filepath.Join(t.TempDir(), "backing"), xferPath(c, faultsMount))
	killAtCleanup(t, c) // before the unmount: instances hold files on it
	startAll(t, c)
	wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	return c, f
}

// killAtCleanup ends every instance with SIGKILL in the test's clean-up,
// before the clean-ups registered earlier (unmounts) run.
func killAtCleanup(t *testing.T, c *harness.Cluster) {
	t.Cleanup(func() {
		for _, n := range c.Names {
			if c.Proc(n) != nil {
				_ = c.Kill(n)
			}
		}
	})
}

// smallTree writes n random files of 0–maxSize bytes under
// in/<name>/tree/ (in a few subdirectories) and returns the SHA-256 of
// each by its destination under dest/tree/.
func smallTree(t *testing.T, c *harness.Cluster, name, dest string, n int, maxSize int64) map[string]string {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(n)))
	dirs := []string{"", "a", "a/b", "c"}
	want := map[string]string{}
	for i := 0; i < n; i++ {
		rel := fmt.Sprintf("f%03d.bin", i)
		if d := dirs[i%len(dirs)]; d != "" {
			rel = d + "/" + rel
		}
		want[dest+"/tree/"+rel] = xferRandomFile(t, c, "in/"+name+"/tree/"+rel, rng.Int64N(maxSize+1), uint64(1000+i))
	}
	return want
}

// faultRun is one transfer against failing storage.
type faultRun struct {
	c    *harness.Cluster
	args []string          // transfer create arguments
	want map[string]string // destination (relative to transferRoot) → source SHA-256
	dest string            // the destination directory, relative to transferRoot
	// errText is what the reason must name (the errno's text).
	errText string
}

// recoversOnceCleared submits the transfer, puts the fault in force through
// inject (after at least `after` bytes are done, if after > 0), waits for
// the transfer to go to recovering because of it, takes the fault away,
// and requires the transfer to complete with the source's bytes.
func (r faultRun) recoversOnceCleared(t *testing.T, after int64, inject func() (fired func() int, clear func()), counts func() string) {
	t.Helper()
	c := r.c
	var fired func() int
	var clear func()
	if after <= 0 {
		fired, clear = inject()
	}
	id := xferCreate(t, c, r.args...)
	if after > 0 {
		xferMidway(t, c, id, after)
		fired, clear = inject()
	}
	defer clear()
	v := xferWait(t, c, 60*time.Second, id, "recovering, or its end", func(v transfer.View) bool {
		return v.State == transfer.StateRecovering || transfer.Terminal(v.State)
	})
	if transfer.Terminal(v.State) {
		t.Errorf("transfer ended %s while the fault was in force (fired %d times; %s): want recovering until the fault is cleared. Reason %q",
			v.State, fired(), counts(), v.Reason+fileReasonsOf(v))
		r.checkEnd(t, v)
		return
	}
	if fired() == 0 {
		t.Errorf("transfer recovering but the fault never fired: %q", v.Reason)
	}
	if !strings.Contains(v.Reason, r.errText) {
		t.Errorf("recovering with reason %q, want it to name %q", v.Reason, r.errText)
	}
	t.Logf("recovering after %d faults: %s", fired(), v.Reason)
	clear()
	v = xferEnded(t, c, 90*time.Second, id)
	if v.State != transfer.StateCompleted {
		t.Errorf("transfer %s once the fault was cleared, want completed: %s", v.State, harness.ViewText(v))
	}
	r.checkEnd(t, v)
}

// failsWithReason submits the transfer with a short recovery timeout while
// the fault stays in force, and requires it to fail with the reason,
// leaving no destination file.
func (r faultRun) failsWithReason(t *testing.T, inject func() (fired func() int, clear func()), counts func() string) {
	t.Helper()
	fired, clear := inject()
	defer clear()
	id := xferCreate(t, r.c, append([]string{"--recovery-timeout", "2s"}, r.args...)...)
	v := xferEnded(t, r.c, 60*time.Second, id)
	if v.State != transfer.StateFailed {
		t.Errorf("transfer %s with the fault never cleared, want failed after the recovery timeout: %s", v.State, harness.ViewText(v))
	}
	if fired() == 0 {
		t.Errorf("the fault never fired (%s)", counts())
	}
	if reason := v.Reason + fileReasonsOf(v); !strings.Contains(reason, r.errText) {
		t.Errorf("failed with reason %q, want it to name %q", reason, r.errText)
	}
	r.checkEnd(t, v)
	// A transfer failed by its recovery timeout leaves no .part behind:
	// the active removes them once the failure is recorded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		parts, err := harness.PartFiles(xferPath(r.c, r.dest))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if len(parts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d .part files left behind the failed transfer 10 s after it failed, e.g. %s", len(parts), parts[0])
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkEnd checks the destination against the end state: a completed
// file has the source's bytes, a file not completed has no file at its
// final name; no .part file was renamed into place (final names are only
// the expected ones). A failed transfer's .part files are looked for by
// failsWithReason, once the active has had time to remove them.
func (r faultRun) checkEnd(t *testing.T, v transfer.View) {
	t.Helper()
	states := map[string]string{}
	for _, f := range v.Files {
		states[f.Destination] = f.State
	}
	bad := 0
	for _, dest := range slices.Sorted(maps.Keys(r.want)) {
		p := xferPath(r.c, dest)
		got, err := harness.FileSHA256(p)
		switch {
		case states[dest] == transfer.StateCompleted || v.State == transfer.StateCompleted:
			if err != nil || got != r.want[dest] {
				if bad++; bad <= 5 {
					t.Errorf("%s reported completed, but holds sha256 %s (%v), the source %s", dest, got, err, r.want[dest])
				}
			}
		case !os.IsNotExist(err):
			if bad++; bad <= 5 {
				t.Errorf("%s is %s, but a file is at its final name (sha256 %s, %v)", dest, states[dest], got, err)
			}
		}
	}
	if bad > 5 {
		t.Errorf("… %d destination files wrong in all", bad)
	}
	final, err := harness.TreeSHA256(xferPath(r.c, r.dest))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for rel := range final {
		d := r.dest + "/" + rel
		if _, ok := r.want[d]; !ok && !strings.HasSuffix(rel, ".part") {
			t.Errorf("unexpected file at a final name: %s", d)
		}
	}
	parts, err := harness.PartFiles(xferPath(r.c, r.dest))
	if err != nil {
		t.Fatal(err)
	}
	if v.State == transfer.StateCompleted && len(parts) > 0 {
		t.Errorf(".part files left behind a completed transfer: %v", parts)
	} else if len(parts) > 0 {
		t.Logf("%d .part files left behind the %s transfer, e.g. %s", len(parts), v.State, parts[0])
	}
}

// faultOf returns an inject function for f on fs.
func faultOf(fs *faultfs.FS, f faultfs.Fault) func() (func() int, func()) {
	return func() (func() int, func()) {
		in := fs.Inject(f)
		return in.Fired, func() { fs.Remove(in) }
	}
}

// reachedSince describes how often each operation reached fs from now on,
// for messages.
func reachedSince(fs *faultfs.FS) func() string {
	before := map[faultfs.Op]int{}
	for _, op := range faultfs.Ops {
		before[op] = fs.Calls(op)
	}
	return func() string {
		var b strings.Builder
		b.WriteString("operations that reached the file system since the transfer began:")
		for _, op := range faultfs.Ops {
			fmt.Fprintf(&b, " %s %d", op, fs.Calls(op)-before[op])
		}
		return b.String()
	}
}

// errText is how an errno appears in reasons.
func errText(e syscall.Errno) string { return e.Error() }

// Faults on the destination of one large file (the checkpointed path): a
// 40 MiB file at 32 MiB/s with 8 MiB checkpoints, the fault put in force
// midway (rename: from the start, it fires at the end).
func TestStorageFaultsLargeFile(t *testing.T) {
	c, fs := faultsCluster(t)
	cases := []struct {
		name  string
		fault faultfs.Fault
		after int64
	}{
		{"write-EIO", faultfs.Fault{Op: faultfs.Write, Pattern: "*.part", Errno: syscall.EIO}, 12 * xferMiB},
		{"write-ENOSPC", faultfs.Fault{Op: faultfs.Write, Pattern: "*.part", Errno: syscall.ENOSPC}, 12 * xferMiB},
		// The bytes written since the last good fsync are lost, as a
		// writeback error loses them: a checkpoint recorded anyway would
		// leave zeros in the file.
		{"fsync-EIO", faultfs.Fault{Op: faultfs.Fsync, Pattern: "*.part", Errno: syscall.EIO, LoseData: true}, 12 * xferMiB},
		{"rename-EIO", faultfs.Fault{Op: faultfs.Rename, Pattern: "out/large-rename-EIO/big.bin", Errno: syscall.EIO}, 0},
		// The sync of the directory after the rename: the file is in
		// place, but not durably so.
		{"fsyncdir-EIO", faultfs.Fault{Op: faultfs.FsyncDir, Pattern: "out/large-fsyncdir-EIO", Errno: syscall.EIO}, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest := faultsMount + "/out/large-" + tc.name
			sum := xferRandomFile(t, c, "in/large-"+tc.name+".bin", 40*xferMiB, uint64(200+i))
			r := faultRun{c: c, dest: dest, errText: errText(tc.fault.Errno),
				args: []string{"--bwlimit", "32M", "in/large-" + tc.name + ".bin", dest + "/big.bin"},
				want: map[string]string{dest + "/big.bin": sum}}
			r.recoversOnceCleared(t, tc.after, faultOf(fs, tc.fault), reachedSince(fs))
		})
	}
	// The active dies while the transfer recovers from a write fault; the
	// new active takes the transfer over, recovering, and completes it
	// once the fault is cleared.
	t.Run("write-EIO-across-kill", func(t *testing.T) {
		dest := faultsMount + "/out/large-kill"
		sum := xferRandomFile(t, c, "in/large-kill.bin", 40*xferMiB, 298)
		id := xferCreate(t, c, "--bwlimit", "32M", "in/large-kill.bin", dest+"/big.bin")
		xferMidway(t, c, id, 12*xferMiB)
		in := fs.Inject(faultfs.Fault{Op: faultfs.Write, Pattern: "*.part", Errno: syscall.EIO})
		defer fs.Remove(in)
		xferWait(t, c, 30*time.Second, id, "recovering", func(v transfer.View) bool { return v.State == transfer.StateRecovering })
		active := xferActive(t, c)
		if err := c.Kill(active); err != nil {
			t.Fatal(err)
		}
		xferNewActive(t, c, active)
		fired := in.Fired()
		// The new active retries too: the fault fires again before it is
		// cleared.
		deadline := time.Now().Add(30 * time.Second)
		for in.Fired() == fired && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if in.Fired() == fired {
			t.Errorf("the new active never retried the write within 30 s")
		}
		fs.Remove(in)
		v := xferEnded(t, c, 90*time.Second, id)
		xferCheckCompleted(t, c, v, map[string]string{dest + "/big.bin": sum})
		if _, err := c.Start(active); err != nil {
			t.Fatal(err)
		}
		wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	})
	t.Run("write-EIO-never-cleared", func(t *testing.T) {
		dest := faultsMount + "/out/large-failed"
		sum := xferRandomFile(t, c, "in/large-failed.bin", 20*xferMiB, 299)
		r := faultRun{c: c, dest: dest, errText: errText(syscall.EIO),
			args: []string{"in/large-failed.bin", dest + "/big.bin"},
			want: map[string]string{dest + "/big.bin": sum}}
		r.failsWithReason(t, faultOf(fs, faultfs.Fault{Op: faultfs.Write, Pattern: "*.part", Errno: syscall.EIO, Skip: 4}), reachedSince(fs))
	})
}

// Faults on the destination of many small files in one recursive transfer
// (the small-file path: the files of a group are written, then made
// durable together, then renamed). The fault is in force from the start.
func TestStorageFaultsSmallFiles(t *testing.T) {
	c, fs := faultsCluster(t)
	cases := []struct {
		name  string
		fault faultfs.Fault
	}{
		{"write-EIO", faultfs.Fault{Op: faultfs.Write, Pattern: "*.part", Errno: syscall.EIO, Skip: 10}},
		{"write-ENOSPC", faultfs.Fault{Op: faultfs.Write, Pattern: "*.part", Errno: syscall.ENOSPC, Skip: 10}},
		// The group's durability step must reach the file system and
		// report its error: a completion recorded without it would
		// stand for bytes that are zeros on disk.
		{"fsync-EIO", faultfs.Fault{Op: faultfs.Fsync, Pattern: "*.part", Errno: syscall.EIO, LoseData: true}},
		{"rename-EIO", faultfs.Fault{Op: faultfs.Rename, Pattern: "f01*.bin", Errno: syscall.EIO}},
		// close(2) of a written .part fails (FUSE FLUSH): its error
		// counts as the write's.
		{"close-EIO", faultfs.Fault{Op: faultfs.Flush, Pattern: "*.part", Errno: syscall.EIO, Skip: 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest := faultsMount + "/out/small-" + tc.name
			want := smallTree(t, c, "small-"+tc.name, dest, 30, 24<<10)
			r := faultRun{c: c, dest: dest, errText: errText(tc.fault.Errno), want: want,
				args: []string{"--recursive", "in/small-" + tc.name + "/tree", dest + "/"}}
			r.recoversOnceCleared(t, 0, faultOf(fs, tc.fault), reachedSince(fs))
		})
	}
	t.Run("fsync-EIO-never-cleared", func(t *testing.T) {
		dest := faultsMount + "/out/small-failed"
		want := smallTree(t, c, "small-failed", dest, 30, 24<<10)
		r := faultRun{c: c, dest: dest, errText: errText(syscall.EIO), want: want,
			args: []string{"--recursive", "in/small-failed/tree", dest + "/"}}
		r.failsWithReason(t, faultOf(fs, faultfs.Fault{Op: faultfs.Fsync, Pattern: "*.part", Errno: syscall.EIO, LoseData: true}), reachedSince(fs))
	})
}

// A destination file system that is really full: a 16 MiB tmpfs. A
// ballast file fills it; the transfer goes to recovering with ENOSPC, and
// completes once the ballast is removed; a file larger than the whole file
// system fails after the recovery timeout with the reason.
func TestStorageFullTmpfs(t *testing.T) {
	storage.Require(t, storage.TmpfsCapable())
	c := newCluster(t, harness.Options{Extra: []string{"checkpointInterval=8M", "checkpointTimeInterval=1"}})
	const mnt = "full"
	storage.Tmpfs(t, xferPath(c, mnt), 16*xferMiB)
	killAtCleanup(t, c)
	startAll(t, c)
	wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))

	ballast := func(size int64) func() (func() int, func()) {
		return func() (func() int, func()) {
			p := xferPath(c, mnt+"/ballast")
			if err := harness.WriteRandomFile(p, size, 1); err != nil {
				t.Fatal(err)
			}
			return func() int { return 1 }, func() { _ = os.Remove(p) }
		}
	}
	noCounts := func() string { return "tmpfs" }
	t.Run("large", func(t *testing.T) {
		dest := mnt + "/out/large"
		sum := xferRandomFile(t, c, "in/full-large.bin", 12*xferMiB, 401)
		r := faultRun{c: c, dest: dest, errText: errText(syscall.ENOSPC),
			args: []string{"--bwlimit", "32M", "in/full-large.bin", dest + "/big.bin"},
			want: map[string]string{dest + "/big.bin": sum}}
		r.recoversOnceCleared(t, 0, ballast(10*xferMiB), noCounts)
		if err := os.RemoveAll(xferPath(c, dest)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("small", func(t *testing.T) {
		dest := mnt + "/out/small"
		want := smallTree(t, c, "full-small", dest, 120, 48<<10)
		r := faultRun{c: c, dest: dest, errText: errText(syscall.ENOSPC), want: want,
			args: []string{"--recursive", "in/full-small/tree", dest + "/"}}
		r.recoversOnceCleared(t, 0, ballast(14*xferMiB), noCounts)
		if err := os.RemoveAll(xferPath(c, dest)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("larger-than-the-file-system", func(t *testing.T) {
		dest := mnt + "/out/huge"
		sum := xferRandomFile(t, c, "in/full-huge.bin", 20*xferMiB, 402)
		r := faultRun{c: c, dest: dest, errText: errText(syscall.ENOSPC),
			args: []string{"in/full-huge.bin", dest + "/big.bin"},
			want: map[string]string{dest + "/big.bin": sum}}
		r.failsWithReason(t, func() (func() int, func()) { return func() int { return 1 }, func() {} }, noCounts)
	})
}
