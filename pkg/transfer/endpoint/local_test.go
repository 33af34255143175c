package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

var ctx = context.Background()

// tempLocal returns a Local rooted at a new temporary directory, and the
// directory (its links resolved, as the sandbox gives roots).
func tempLocal(t *testing.T) (*Local, string) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, p PartFile, s string) {
	t.Helper()
	if n, err := p.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

func closePart(t *testing.T, p PartFile) {
	t.Helper()
	if err := p.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestOpenPartAtZeroCreatesDirectoriesAndTruncatesStalePart(t *testing.T) {
	l, dir := tempLocal(t)
	dst := filepath.Join(dir, "a", "b", "out.bin")

	p, err := l.OpenPart(ctx, dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p, "stale bytes from an earlier attempt")
	closePart(t, p)
	fi, err := os.Stat(filepath.Dir(dst))
	if err != nil || fi.Mode().Perm()&^0o750 != 0 {
		t.Fatalf("parent directory: %v, %v (want at most 0o750)", fi, err)
	}

	p, err = l.OpenPart(ctx, dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p, "new")
	closePart(t, p)
	if got := readFile(t, PartName(dst)); got != "new" {
		t.Fatalf(".part holds %q, want %q", got, "new")
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the destination exists before Commit: %v", err)
	}
}

// A link put where a .part goes is not written through: it could lead out
// of the sandbox.
func TestOpenPartRefusesALinkInItsPlace(t *testing.T) {
	l, dir := tempLocal(t)
	outside := filepath.Join(dir, "outside.txt")
	if err := os.WriteFile(outside, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "out.bin")
	if err := os.Symlink(outside, PartName(dst)); err != nil {
		t.Fatal(err)
	}
	for _, offset := range []int64{0, 3} {
		if p, err := l.OpenPart(ctx, dst, offset); err == nil {
			p.Close()
			t.Fatalf("OpenPart at %d through a link: no error", offset)
		} else if !Permanent(err) {
			t.Fatalf("OpenPart at %d through a link: %v, want a permanent error", offset, err)
		}
	}
	if got := readFile(t, outside); got != "keep me" {
		t.Fatalf("the link's target was changed: %q", got)
	}
}

func TestOpenPartAtOffsetCutsToTheOffsetAndContinues(t *testing.T) {
	l, dir := tempLocal(t)
	dst := filepath.Join(dir, "out.bin")
	writeFile(t, PartName(dst), "0123456789garbage after the checkpoint")

	p, err := l.OpenPart(ctx, dst, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, PartName(dst)); got != "0123456789" {
		t.Fatalf("after OpenPart(10) the .part holds %q, want it cut to 10 bytes", got)
	}
	write(t, p, "abc")
	closePart(t, p)
	if got := readFile(t, PartName(dst)); got != "0123456789abc" {
		t.Fatalf(".part holds %q, want the write at offset 10", got)
	}

	// Exactly at its size: nothing to cut.
	p, err = l.OpenPart(ctx, dst, 13)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p, "d")
	closePart(t, p)
	if got := readFile(t, PartName(dst)); got != "0123456789abcd" {
		t.Fatalf(".part holds %q", got)
	}
}

func TestOpenPartRefusesALostPart(t *testing.T) {
	l, dir := tempLocal(t)
	missing := filepath.Join(dir, "missing.bin")
	if _, err := l.OpenPart(ctx, missing, 5); !errors.Is(err, ErrPartLost) || !errors.Is(err, fs.ErrNotExist) || !Permanent(err) {
		t.Fatalf("OpenPart on a missing .part: %v, want ErrPartLost and fs.ErrNotExist, permanent", err)
	}
	short := filepath.Join(dir, "short.bin")
	writeFile(t, PartName(short), "1234")
	_, err := l.OpenPart(ctx, short, 5)
	if !errors.Is(err, ErrPartLost) || !Permanent(err) {
		t.Fatalf("OpenPart past the end of the .part: %v, want ErrPartLost, permanent", err)
	}
	if got := readFile(t, PartName(short)); got != "1234" {
		t.Fatalf("a refused OpenPart changed the .part to %q", got)
	}
	if _, err := l.OpenPart(ctx, short, -1); !errors.Is(err, fs.ErrInvalid) || !Permanent(err) {
		t.Fatalf("OpenPart at -1: %v, want fs.ErrInvalid", err)
	}
}

func TestCommit(t *testing.T) {
	for _, exclusive := range []bool{true, false} {
		t.Run(fmt.Sprintf("exclusiveRename=%v", exclusive), func(t *testing.T) {
			if !exclusive {
				// The path of file systems (NFS) without renameat2's
				// RENAME_NOREPLACE.
				exclusiveRename = func(int, string, string) error { return errNoExclusiveRename }
				t.Cleanup(func() { exclusiveRename = renameExclusive })
			}
			testCommit(t)
		})
	}
}

func testCommit(t *testing.T) {
	l, dir := tempLocal(t)
	dst := filepath.Join(dir, "out.bin")
	part := PartName(dst)

	t.Run("new destination", func(t *testing.T) {
		writeFile(t, part, "new")
		if err := l.Commit(ctx, dst, false); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, dst); got != "new" {
			t.Fatalf("destination holds %q", got)
		}
		if _, err := os.Lstat(part); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf(".part left behind: %v", err)
		}
	})
	t.Run("replayed after a failover", func(t *testing.T) {
		for _, overwrite := range []bool{false, true} {
			err := l.Commit(ctx, dst, overwrite)
			if !errors.Is(err, ErrAlreadyCommitted) || Permanent(err) {
				t.Fatalf("Commit(overwrite=%v) again: %v, want ErrAlreadyCommitted, not permanent", overwrite, err)
			}
		}
		if got := readFile(t, dst); got != "new" {
			t.Fatalf("destination holds %q", got)
		}
	})
	t.Run("existing destination refused without overwrite", func(t *testing.T) {
		writeFile(t, part, "newer")
		err := l.Commit(ctx, dst, false)
		if !errors.Is(err, ErrExists) || !Permanent(err) {
			t.Fatalf("Commit over an existing file: %v, want ErrExists, permanent", err)
		}
		if got := readFile(t, dst); got != "new" {
			t.Fatalf("refused Commit changed the destination to %q", got)
		}
		if got := readFile(t, part); got != "newer" {
			t.Fatalf("refused Commit changed the .part to %q", got)
		}
	})
	t.Run("existing destination replaced with overwrite", func(t *testing.T) {
		if err := l.Commit(ctx, dst, true); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, dst); got != "newer" {
			t.Fatalf("destination holds %q, want the .part's bytes", got)
		}
		if _, err := os.Lstat(part); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf(".part left behind: %v", err)
		}
	})
	t.Run("neither .part nor destination", func(t *testing.T) {
		err := l.Commit(ctx, filepath.Join(dir, "never.bin"), false)
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrAlreadyCommitted) || !Permanent(err) {
			t.Fatalf("Commit without a .part: %v, want fs.ErrNotExist, permanent", err)
		}
	})
	t.Run("directory in the way", func(t *testing.T) {
		d := filepath.Join(dir, "adir")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "inside"), "x")
		writeFile(t, PartName(d), "data")
		if err := l.Commit(ctx, d, false); !errors.Is(err, ErrExists) {
			t.Fatalf("Commit over a directory without overwrite: %v, want ErrExists", err)
		}
		if err := l.Commit(ctx, d, true); err == nil || !Permanent(err) {
			t.Fatalf("Commit over a non-empty directory with overwrite: %v, want a permanent error", err)
		}
	})
}

func TestOpenSource(t *testing.T) {
	l, dir := tempLocal(t)
	src := filepath.Join(dir, "in.bin")
	writeFile(t, src, "hello, world")

	f, err := l.OpenSource(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Info(), (Info{Size: 12, Source: checkpoint.Identify(fi)}); got != want {
		t.Fatalf("Info() = %+v, want %+v", got, want)
	}
	buf := make([]byte, 5)
	if n, err := f.ReadAt(buf, 7); n != 5 || string(buf) != "world" {
		t.Fatalf("ReadAt(7) = %d %q, %v", n, buf, err)
	}
	st, err := l.Stat(ctx, src)
	if err != nil || st != f.Info() {
		t.Fatalf("Stat = %+v, %v; want %+v", st, err, f.Info())
	}

	if _, err := l.OpenSource(ctx, dir); !errors.Is(err, syscall.EISDIR) || !Permanent(err) {
		t.Fatalf("OpenSource(directory): %v, want EISDIR, permanent", err)
	}
	if st, err := l.Stat(ctx, dir); err != nil || !st.IsDir {
		t.Fatalf("Stat(directory) = %+v, %v", st, err)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := l.OpenSource(ctx, missing); !errors.Is(err, fs.ErrNotExist) || !Permanent(err) {
		t.Fatalf("OpenSource(missing): %v, want fs.ErrNotExist, permanent", err)
	}
	if _, err := l.Stat(ctx, missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat(missing): %v, want os.ErrNotExist", err)
	}
}

func TestExistsAndRemove(t *testing.T) {
	l, dir := tempLocal(t)
	p := filepath.Join(dir, "f")
	writeFile(t, p, "x")
	dangling := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want bool
	}{{p, true}, {dir, true}, {dangling, true}, {filepath.Join(dir, "none"), false}} {
		if got, err := l.Exists(ctx, c.path); err != nil || got != c.want {
			t.Errorf("Exists(%s) = %v, %v; want %v", c.path, got, err, c.want)
		}
	}
	if err := l.Remove(ctx, p); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.Exists(ctx, p); ok {
		t.Fatal("Remove left the file")
	}
	if err := l.Remove(ctx, p); err != nil {
		t.Fatalf("Remove of a removed file (replayed): %v, want nil", err)
	}
}

func TestCancelledContextRefusesToStart(t *testing.T) {
	l, dir := tempLocal(t)
	c, cancel := context.WithCancel(ctx)
	cancel()
	dst := filepath.Join(dir, "x")
	if _, err := l.OpenPart(c, dst, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("OpenPart: %v", err)
	}
	if err := l.Commit(c, dst, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit: %v", err)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestPermanent(t *testing.T) {
	pathErr := func(errno syscall.Errno) error {
		return fmt.Errorf("copy: %w", &fs.PathError{Op: "write", Path: "/x", Err: errno})
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not exist", pathErr(syscall.ENOENT), true},
		{"os.ErrNotExist", fmt.Errorf("stat: %w", os.ErrNotExist), true},
		{"permission denied", pathErr(syscall.EACCES), true},
		{"operation not permitted", pathErr(syscall.EPERM), true},
		{"destination exists", fmt.Errorf("commit x: %w", ErrExists), true},
		{"EEXIST", pathErr(syscall.EEXIST), true},
		{"is a directory", pathErr(syscall.EISDIR), true},
		{"not a directory", pathErr(syscall.ENOTDIR), true},
		{"name too long", pathErr(syscall.ENAMETOOLONG), true},
		{"source changed", fmt.Errorf("copy: %w", checkpoint.ErrSourceChanged), true},
		{"part lost", fmt.Errorf("resume: %w", ErrPartLost), true},
		{"invalid", fmt.Errorf("x: %w", fs.ErrInvalid), true},
		{"already committed", fmt.Errorf("commit: %w", ErrAlreadyCommitted), false},
		{"I/O error", pathErr(syscall.EIO), false},
		{"disk full", pathErr(syscall.ENOSPC), false},
		{"quota", pathErr(syscall.EDQUOT), false},
		{"timeout", fmt.Errorf("read: %w", timeoutErr{}), false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{"cancelled", context.Canceled, false},
		{"unknown", errors.New("something odd"), false},
	} {
		if got := Permanent(c.err); got != c.want {
			t.Errorf("Permanent(%s: %v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestPartName(t *testing.T) {
	if got := PartName("/d/out.csv"); got != "/d/out.csv.part" {
		t.Fatal(got)
	}
}

func TestRenameExclusive(t *testing.T) {
	l, dir := tempLocal(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, a, "a")
	writeFile(t, b, "b")
	fd := l.roots[0].cur.Load().fd
	err := renameExclusive(fd, "a", "b")
	if errors.Is(err, errNoExclusiveRename) {
		t.Skip("no exclusive rename here; Commit checks then renames")
	}
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("renameExclusive onto an existing file: %v, want fs.ErrExist", err)
	}
	if got := readFile(t, b); got != "b" {
		t.Fatalf("the existing file was replaced: %q", got)
	}
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	if err := renameExclusive(fd, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, b); got != "a" {
		t.Fatalf("renamed file holds %q", got)
	}
}

func TestRenameAllSyncDirsAndSyncParts(t *testing.T) {
	ep, dir := tempLocal(t)
	ctx := context.Background()
	batch, err := ep.BeginParts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Close()
	var paths []string
	for i, sub := range []string{"a/x", "a/y", "b/z"} {
		p := filepath.Join(dir, sub)
		w, err := ep.OpenPart(ctx, p, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if err := batch.Sync(ctx, paths); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	// b/z exists already: without overwrite it is refused, alone.
	if err := os.WriteFile(paths[2], []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	errs := ep.RenameAll(ctx, paths, false)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrExists) {
		t.Fatalf("RenameAll errors: %v", errs)
	}
	if err := ep.SyncDirs(ctx, paths[:2]); err != nil {
		t.Fatalf("SyncDirs: %v", err)
	}
	if err := ep.SyncDirs(ctx, []string{filepath.Join(dir, "missing", "x")}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("SyncDirs of a missing directory: %v, want an error wrapping ErrNotExist", err)
	}
	for i, p := range paths[:2] {
		b, err := os.ReadFile(p)
		if err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("%s: %v %v", p, b, err)
		}
		if _, err := os.Stat(PartName(p)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s.part still there", p)
		}
	}
	if b, _ := os.ReadFile(paths[2]); string(b) != "old" {
		t.Fatalf("existing destination replaced: %q", b)
	}
	// Replayed: the renamed ones report ErrAlreadyCommitted.
	errs = ep.RenameAll(ctx, paths[:2], false)
	for i, err := range errs {
		if !errors.Is(err, ErrAlreadyCommitted) {
			t.Fatalf("replayed commit %d: %v", i, err)
		}
	}
}
