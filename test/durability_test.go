package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/test/faultfs"
	"github.com/ftagent/ftagent/test/storage"
)

// loopExt4 makes an ext4 file system in an image file that lives on the
// fault mount, attaches it to a loop device and mounts it on dir: writes
// to the ext4 reach the image through the fault mount, so an injected
// write fault there is a write-back error of the ext4 below dir, reported
// the way a failing disk reports it.
func loopExt4(t *testing.T, image, dir string) {
	t.Helper()
	for _, tool := range []string{"losetup", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			storage.Require(t, tool+" not found")
		}
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			storage.Require(t, fmt.Sprintf("%s %s: %v: %s", name, strings.Join(args, " "), err, out))
		}
		return strings.TrimSpace(string(out))
	}
	f, err := os.Create(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run("mkfs.ext4", "-q", "-F", image)
	dev := run("losetup", "--find", "--show", image)
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(dev, dir, "ext4", 0, ""); err != nil {
		storage.Require(t, fmt.Sprintf("mount %s on %s: %v", dev, dir, err))
	}
	t.Cleanup(func() {
		for range 50 {
			if err := syscall.Unmount(dir, 0); err == nil || err == syscall.EINVAL {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("could not unmount %s", dir)
	})
}

// A batch of small files made durable with one syncfs (ext4) reports the
// write-back errors of its own writes even when another program's sync
// (sync -f, a concurrent transfer's batch) saw them first: its syncfs
// descriptor was opened before the writes (issue 10, item 4). A descriptor
// opened only after the writes, as the batch's was before, is told
// nothing once another sync has seen the error.
func TestBatchSyncReportsItsWriteErrorsAfterAnotherSync(t *testing.T) {
	if os.Geteuid() != 0 {
		storage.Require(t, "a loop device needs root")
	}
	base := t.TempDir()
	fsys := storage.FaultFS(t, filepath.Join(base, "backing"), filepath.Join(base, "faulty"))
	root := filepath.Join(base, "ext4")
	loopExt4(t, filepath.Join(base, "faulty", "disk.img"), root)

	l, err := endpoint.NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	batch, err := l.BeginParts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Close()
	var paths []string
	for i := range 16 {
		p := filepath.Join(root, "out", fmt.Sprintf("f%02d.bin", i))
		part, err := l.OpenPart(ctx, p, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := part.Write(make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		if err := part.Close(); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}

	// The disk fails while the data is written back.
	in := fsys.Inject(faultfs.Fault{Op: faultfs.Write, Pattern: "disk.img", Errno: syscall.EIO})
	defer fsys.Clear()
	other, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	serr := unix.Syncfs(int(other.Fd())) // another program's sync, first
	if in.Fired() == 0 {
		storage.Require(t, "the loop device wrote nothing through the fault mount; the fault cannot be seen here")
	}
	t.Logf("another program's syncfs: %v (%d write faults fired)", serr, in.Fired())

	late, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	t.Logf("a syncfs descriptor opened after the writes (the batch's, before the fix): %v", unix.Syncfs(int(late.Fd())))

	if err := batch.Sync(ctx, paths); err == nil {
		t.Fatal("the batch's sync reported no error for writes that failed to reach the disk: their completions would be recorded")
	} else {
		t.Logf("the batch's sync: %v", err)
	}
}
