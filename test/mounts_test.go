// End-to-end tests of instances that see the shared storage through mounts
// of their own, as instances on different hosts see a network file system:
// each instance runs in a private mount namespace with a bindfs view of the
// storage mounted on the transferRoot path (harness.Options.MountPerInstance).
package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
	"github.com/ftagent/ftagent/test/storage"
)

// mountsCluster starts three instances, each with its own bindfs view of
// the storage, plus extra properties, and waits for an active with two
// standbys.
func mountsCluster(t *testing.T, extra ...string) (*harness.Cluster, string) {
	t.Helper()
	storage.Require(t, harness.InstanceMountCapable())
	c := newCluster(t, harness.Options{MountPerInstance: true, Extra: extra})
	t.Cleanup(func() {
		for _, n := range c.Names {
			if c.Proc(n) != nil {
				_ = c.Kill(n)
			}
		}
	})
	startAll(t, c)
	v := wait(t, c, 30*time.Second, "one active and two standbys", activeWithStandbys(2))
	return c, v.Active
}

// Each instance sees the same file, at the same path, with its own device
// number; the inode number and the modification time (to the nanosecond)
// come through bindfs unchanged.
func TestInstanceMountsSeeDifferentDevices(t *testing.T) {
	c, _ := mountsCluster(t)
	host := xferPath(c, "in/probe.bin")
	if err := harness.WriteRandomFile(host, 4096, 7); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	if err := os.Chtimes(host, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	var hst syscall.Stat_t
	if err := syscall.Stat(host, &hst); err != nil {
		t.Fatal(err)
	}
	devs := map[uint64]string{uint64(hst.Dev): "the test process"}
	for _, n := range c.Names {
		p, err := c.InstancePath(n, host)
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatalf("%s's view: %v", n, err)
		}
		t.Logf("%s sees %s as dev %d:%d ino %d mtime %s (the test process: dev %d:%d ino %d mtime %s)", n, host,
			unixMajor(st.Dev), unixMinor(st.Dev), st.Ino, time.Unix(st.Mtim.Unix()).UTC().Format(time.RFC3339Nano),
			unixMajor(hst.Dev), unixMinor(hst.Dev), hst.Ino, time.Unix(hst.Mtim.Unix()).UTC().Format(time.RFC3339Nano))
		if other, dup := devs[uint64(st.Dev)]; dup {
			t.Errorf("%s sees the storage on device %d, as %s does: want a device of its own", n, st.Dev, other)
		}
		devs[uint64(st.Dev)] = n
		if st.Ino != hst.Ino {
			t.Errorf("%s sees inode %d, the backing directory %d (bindfs passed inodes through when this test was written)", n, st.Ino, hst.Ino)
		}
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
			t.Errorf("%s sees mtime %v, want %v", n, got, mtime)
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s reads other bytes (%v)", n, err)
		}
		// A FUSE (bindfs) mount sits on the transferRoot in the
		// instance's namespace, and in no other.
		mi, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(c.Proc(n).Cmd.Process.Pid), "mountinfo"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(mi, []byte(" "+c.Root+" ")) {
			t.Errorf("no mount on %s in %s's mount namespace", c.Root, n)
		}
	}
	if mps, err := storage.MountsUnder(c.Root); err != nil || len(mps) > 0 {
		t.Errorf("mounts under %s in the test's own namespace: %v %v (want none)", c.Root, mps, err)
	}

	// Killing an instance takes its bindfs (and so its mount) with it:
	// they share a PID namespace, whose process 1 is the instance.
	n := c.Names[0]
	pid := c.Proc(n).Cmd.Process.Pid
	ns, err := os.Readlink(filepath.Join("/proc", fmt.Sprint(pid), "ns", "pid"))
	if err != nil {
		t.Fatal(err)
	}
	if others := inPIDNamespace(ns, pid); len(others) == 0 {
		t.Fatalf("no other process (bindfs) in %s's PID namespace %s", n, ns)
	}
	if err := c.Kill(n); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for left := inPIDNamespace(ns, 0); len(left) > 0; left = inPIDNamespace(ns, 0) {
		if time.Now().After(deadline) {
			t.Fatalf("processes %v of %s's PID namespace still running 10 s after kill -9 of the instance", left, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inPIDNamespace lists the processes in PID namespace ns (a readlink of
// /proc/PID/ns/pid), except process not.
func inPIDNamespace(ns string, not int) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name() == fmt.Sprint(not) {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "pid")); err == nil && l == ns {
			comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			out = append(out, e.Name()+" ("+strings.TrimSpace(string(comm))+")")
		}
	}
	return out
}

func unixMajor(dev uint64) uint64 { return (dev >> 8) & 0xfff }
func unixMinor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xfff00) }

// mountsCheckpoint is the checkpoint interval of the different-mount
// failover tests.
const mountsCheckpoint = 8 * xferMiB

// mountsFailover copies a 128 MiB file at 32 MiB/s between instances that
// see the storage through different mounts, disrupts the active once at
// least 48 MiB are done, and requires the new active (on another mount) to
// complete it from the last checkpoint: the right SHA-256, bytesResent at
// most one checkpoint interval.
func mountsFailover(t *testing.T, disrupt func(c *harness.Cluster, active string)) {
	c, active := mountsCluster(t, "checkpointInterval=8M", "checkpointTimeInterval=1")
	sum := xferRandomFile(t, c, "in/big.bin", 128*xferMiB, 11)
	began := time.Now()
	id := xferCreate(t, c, "--bwlimit", "32M", "in/big.bin", "out/big.bin")
	v := xferMidway(t, c, id, 48*xferMiB)
	t.Logf("disrupting %s at bytesDone %d MiB (%v after create)", active, v.BytesDone/xferMiB, time.Since(began).Round(time.Millisecond))
	disrupt(c, active)
	newActive := xferNewActive(t, c, active)
	v = xferEnded(t, c, 90*time.Second, id)
	t.Logf("%s took over; transfer ended %v after create: %s, failovers %d, bytesResent %d (%.1f MiB), reason %q",
		newActive, time.Since(began).Round(time.Millisecond), v.State, v.Failovers, v.BytesResent, float64(v.BytesResent)/float64(xferMiB), v.Reason+fileReasonsOf(v))
	if v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s after a failover to another mount, want completed from the last checkpoint: %s", v.State, harness.ViewText(v))
	}
	xferCheckCompleted(t, c, v, map[string]string{"out/big.bin": sum})
	if v.Failovers < 1 {
		t.Errorf("failovers %d, want at least 1", v.Failovers)
	}
	if v.BytesResent < 0 || v.BytesResent > mountsCheckpoint {
		t.Errorf("bytesResent %d, want at most %d (one checkpoint interval): the new active did not resume from the last checkpoint", v.BytesResent, mountsCheckpoint)
	}
}

func fileReasonsOf(v transfer.View) string {
	var s string
	for _, f := range v.Files {
		if f.Reason != "" {
			s += "; " + f.Destination + ": " + f.Reason
		}
	}
	return s
}

// kill -9 of the active midway: the standby that takes over sees the
// storage through another mount (another device number).
func TestTransferDifferentMountsKill9(t *testing.T) {
	mountsFailover(t, func(c *harness.Cluster, active string) {
		if err := c.Kill(active); err != nil {
			t.Fatal(err)
		}
	})
}

// ftstop -i midway: the same across a planned failover.
func TestTransferDifferentMountsFtstopImmediate(t *testing.T) {
	mountsFailover(t, func(c *harness.Cluster, active string) {
		ftstopImmediate(t, c, active)
		wait(t, c, 20*time.Second, "a new active", func(v ha.AgentView) bool {
			return v.Status == ha.StatusActive && v.Active != "" && !slices.Contains([]string{active}, v.Active)
		})
	})
}
