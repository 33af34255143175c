package faultfs_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ftagent/ftagent/test/faultfs"
	"github.com/ftagent/ftagent/test/storage"
)

// mount gives a test a fault mount of a fresh backing directory.
func mount(t *testing.T) (*faultfs.FS, string, string) {
	t.Helper()
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	f := storage.FaultFS(t, backing, mnt)
	return f, backing, mnt
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

// A write fault comes back from the write(2) itself (no writeback cache),
// only for the paths it matches, and stops when cleared.
func TestWriteFaults(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.ENOSPC} {
		t.Run(errno.Error(), func(t *testing.T) {
			f, backing, mnt := mount(t)
			in := f.Inject(faultfs.Fault{Op: faultfs.Write, Pattern: "out/*.part", Errno: errno})

			// Not matched: another directory, another name.
			mustWrite(t, filepath.Join(mnt, "in", "x.part"), []byte("in"))
			mustWrite(t, filepath.Join(mnt, "out", "x.bin"), []byte("final"))

			p := filepath.Join(mnt, "out", "x.part")
			w, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.Write([]byte("hello"))
			wantErrno(t, "write", err, errno)
			if in.Fired() != 1 || f.Fired(faultfs.Write) != 1 {
				t.Fatalf("fired %d (fs %d), want 1", in.Fired(), f.Fired(faultfs.Write))
			}
			f.Clear()
			if _, err := w.WriteAt([]byte("hello"), 0); err != nil {
				t.Fatalf("write after clear: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(backing, "out", "x.part"))
			if err != nil || string(got) != "hello" {
				t.Fatalf("backing holds %q %v, want hello", got, err)
			}
			if in.Fired() != 1 {
				t.Errorf("fired %d after clear, want 1", in.Fired())
			}
		})
	}
}

// fsync and fdatasync reach the file system and fail with the fault; with
// LoseData the unsynced bytes are gone from the backing file, the synced
// ones kept.
func TestFsyncFaults(t *testing.T) {
	f, backing, mnt := mount(t)
	p := filepath.Join(mnt, "a.part")
	w, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	before := f.Calls(faultfs.Fsync)
	if _, err := w.Write([]byte("synced ")); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if f.Calls(faultfs.Fsync) != before+1 {
		t.Fatalf("fsync did not reach the file system: calls %d → %d", before, f.Calls(faultfs.Fsync))
	}

	f.Inject(faultfs.Fault{Op: faultfs.Fsync, Pattern: "*.part", Errno: syscall.EIO, LoseData: true})
	if _, err := w.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "fsync", w.Sync(), syscall.EIO)
	wantErrno(t, "fdatasync", unix.Fdatasync(int(w.Fd())), syscall.EIO)
	if f.Fired(faultfs.Fsync) != 2 {
		t.Fatalf("fsync faults fired %d, want 2", f.Fired(faultfs.Fsync))
	}
	got, err := os.ReadFile(filepath.Join(backing, "a.part"))
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("synced "), 0, 0, 0, 0); !bytes.Equal(got, want) {
		t.Fatalf("backing holds %q, want %q (the unsynced bytes zeroed)", got, want)
	}
	if f.Zeroed() != 4 {
		t.Errorf("zeroed %d bytes, want 4", f.Zeroed())
	}
	f.Clear()
	if err := w.Sync(); err != nil {
		t.Fatalf("fsync after clear: %v", err)
	}
}

// A flush fault is close(2)'s error.
func TestFlushFault(t *testing.T) {
	f, _, mnt := mount(t)
	f.Inject(faultfs.Fault{Op: faultfs.Flush, Pattern: "x", Errno: syscall.EIO, Times: 1})
	w, err := os.Create(filepath.Join(mnt, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "close", w.Close(), syscall.EIO)
	// Times: 1 — the next close passes.
	mustWrite(t, filepath.Join(mnt, "x"), []byte("y"))
}

// A rename fault matches either name and leaves both names as they were.
func TestRenameFault(t *testing.T) {
	f, backing, mnt := mount(t)
	mustWrite(t, filepath.Join(mnt, "out", "a.part"), []byte("a"))
	mustWrite(t, filepath.Join(mnt, "out", "b.part"), []byte("b"))
	f.Inject(faultfs.Fault{Op: faultfs.Rename, Pattern: "out/a", Errno: syscall.EIO})
	wantErrno(t, "rename onto a", os.Rename(filepath.Join(mnt, "out", "a.part"), filepath.Join(mnt, "out", "a")), syscall.EIO)
	wantErrno(t, "rename to a, other source", os.Rename(filepath.Join(mnt, "out", "b.part"), filepath.Join(mnt, "out", "a")), syscall.EIO)
	if _, err := os.Stat(filepath.Join(backing, "out", "a.part")); err != nil {
		t.Fatalf("the source of a failed rename: %v", err)
	}
	if err := os.Rename(filepath.Join(mnt, "out", "b.part"), filepath.Join(mnt, "out", "b")); err != nil {
		t.Fatalf("unmatched rename: %v", err)
	}
	f.Clear()
	if err := os.Rename(filepath.Join(mnt, "out", "a.part"), filepath.Join(mnt, "out", "a")); err != nil {
		t.Fatalf("rename after clear: %v", err)
	}
	if f.Fired(faultfs.Rename) != 2 {
		t.Errorf("rename faults fired %d, want 2", f.Fired(faultfs.Rename))
	}
}

// Create, mkdir and directory fsync faults; Skip and Times.
func TestOtherFaultsSkipTimes(t *testing.T) {
	f, _, mnt := mount(t)
	f.Inject(faultfs.Fault{Op: faultfs.Mkdir, Pattern: "d*", Errno: syscall.ENOSPC})
	wantErrno(t, "mkdir", os.Mkdir(filepath.Join(mnt, "d1"), 0o750), syscall.ENOSPC)
	f.Inject(faultfs.Fault{Op: faultfs.Create, Pattern: "*.part", Errno: syscall.ENOSPC, Skip: 1, Times: 1})
	mustWrite(t, filepath.Join(mnt, "1.part"), nil) // skipped
	_, err := os.Create(filepath.Join(mnt, "2.part"))
	wantErrno(t, "create", err, syscall.ENOSPC)
	mustWrite(t, filepath.Join(mnt, "3.part"), nil) // Times used up
	f.Inject(faultfs.Fault{Op: faultfs.FsyncDir, Errno: syscall.EIO})
	d, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	wantErrno(t, "fsync of a directory", d.Sync(), syscall.EIO)
	if got := f.Counts(); !strings.Contains(got, "fsyncdir 1/1") {
		t.Errorf("counts %s", got)
	}
}

// Faults fire under concurrent use (the race detector watches the
// counters).
func TestConcurrentWriters(t *testing.T) {
	f, _, mnt := mount(t)
	in := f.Inject(faultfs.Fault{Op: faultfs.Write, Pattern: "bad-*", Errno: syscall.EIO})
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := "good-"
			if i%2 == 0 {
				name = "bad-"
			}
			errs[i] = os.WriteFile(filepath.Join(mnt, name+string(rune('a'+i))), []byte("data"), 0o640)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if (i%2 == 0) != errors.Is(err, syscall.EIO) {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if in.Fired() != 8 {
		t.Errorf("fired %d, want 8", in.Fired())
	}
}

// What syncfs(2) does on a FUSE mount, which the small-file path of the
// local endpoint used to make a group of files durable: it returns success
// and sends the file system nothing — no FSYNC of the files written, no
// SYNCFS request (the kernel sends FUSE_SYNCFS only to virtiofs) — so an
// fsync fault is never seen, and neither is any durability request. A
// program that wants the bytes of a file on a FUSE (or network) file system
// durable must fsync that file.
func TestSyncfsDoesNotReachFUSE(t *testing.T) {
	var mu sync.Mutex
	var requests []string
	dir := t.TempDir()
	storage.Require(t, faultfs.Capable())
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	f, err := faultfs.Mount(backing, mnt, faultfs.Options{Debug: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		line := format
		if len(args) > 0 {
			line, _ = args[0].(string)
		}
		requests = append(requests, line)
	}})
	if err != nil {
		storage.Require(t, err.Error())
	}
	t.Cleanup(func() { _ = f.Unmount() })

	w, err := os.Create(filepath.Join(mnt, "x.part"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(bytes.Repeat([]byte("x"), 64<<10)); err != nil {
		t.Fatal(err)
	}
	f.Inject(faultfs.Fault{Op: faultfs.Fsync, Errno: syscall.EIO})
	mu.Lock()
	requests = nil
	mu.Unlock()
	calls := f.Calls(faultfs.Fsync)

	d, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	serr := unix.Syncfs(int(d.Fd()))
	ferr := unix.Syncfs(int(w.Fd()))

	mu.Lock()
	seen := strings.Join(requests, "\n")
	mu.Unlock()
	t.Logf("syncfs on the FUSE mount: through the directory %v, through the file %v; FSYNC requests reaching the file system: %d; requests seen during syncfs: %q",
		serr, ferr, f.Calls(faultfs.Fsync)-calls, seen)
	if serr != nil || ferr != nil || f.Calls(faultfs.Fsync) != calls || strings.Contains(seen, "SYNCFS") || strings.Contains(seen, "FSYNC") {
		t.Errorf("syncfs reached the FUSE file system (or failed): this test documents that it does not; revisit docs/reliability.md")
	}
	// The same file's own fsync does reach it.
	wantErrno(t, "fsync", w.Sync(), syscall.EIO)
}
