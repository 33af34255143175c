// Package storage gives end-to-end tests storage that misbehaves on
// purpose: a fault-injecting FUSE mount (package faultfs), a small tmpfs
// that really fills up, and per-instance bindfs views of one directory
// (harness.Options.MountPerInstance has those). Each fixture is unmounted
// in the test's clean-up.
//
// A fixture that cannot be set up (no /dev/fuse, no bindfs, not root) fails
// the test under CI=true and skips it elsewhere, with the reason.
package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ftagent/ftagent/test/faultfs"
)

// Require fails (CI=true) or skips the test when why is not empty.
func Require(t testing.TB, why string) {
	t.Helper()
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot set up the storage fixture: %s", why)
	}
	t.Skipf("cannot set up the storage fixture: %s", why)
}

// FaultFS mounts a fault-injecting loopback of backing on mountpoint
// (created if missing) for the test's duration.
func FaultFS(t testing.TB, backing, mountpoint string) *faultfs.FS {
	t.Helper()
	Require(t, faultfs.Capable())
	for _, d := range []string{backing, mountpoint} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	f, err := faultfs.Mount(backing, mountpoint, faultfs.Options{})
	if err != nil {
		Require(t, err.Error())
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return f
}

// TmpfsCapable reports why a tmpfs cannot be mounted here ("" if it can).
func TmpfsCapable() string {
	if os.Geteuid() != 0 {
		return "mounting a tmpfs needs root"
	}
	return ""
}

// Tmpfs mounts a tmpfs of size bytes on dir (created if missing) for the
// test's duration: a file system that fills up for real, with ENOSPC.
func Tmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	Require(t, TmpfsCapable())
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("size=%d,mode=0750", size)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		Require(t, fmt.Sprintf("mount -t tmpfs -o %s tmpfs %s: %v", opts, dir, err))
	}
	t.Cleanup(func() {
		if err := unmount(dir); err != nil {
			t.Errorf("%v", err)
		}
	})
}

// unmount unmounts dir, retrying while a process that is ending still
// holds it, then lazily.
func unmount(dir string) error {
	var err error
	for i := 0; i < 50; i++ {
		if err = syscall.Unmount(dir, 0); err == nil || err == syscall.EINVAL {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lerr := syscall.Unmount(dir, syscall.MNT_DETACH); lerr != nil {
		return fmt.Errorf("unmount %s: %v; lazy: %v", dir, err, lerr)
	}
	return nil
}

// MountsUnder lists the mount points at or under dir in this process's
// mount namespace.
func MountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}
