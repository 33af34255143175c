package endpoint

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// eachResolution runs f with openat2 (where the kernel has it) and with the
// walk one component at a time that stands in for it elsewhere.
func eachResolution(t *testing.T, f func(t *testing.T)) {
	for _, openat2 := range []bool{true, false} {
		name := "walk"
		if openat2 {
			name = "openat2"
			if !haveOpenat2 {
				t.Run(name, func(t *testing.T) { t.Skip("no openat2 here") })
				continue
			}
		}
		t.Run(name, func(t *testing.T) {
			was := useOpenat2
			useOpenat2 = openat2
			t.Cleanup(func() { useOpenat2 = was })
			f(t)
		})
	}
}

// outsideTree makes a directory beside the root that nothing may touch,
// holding one file, and returns both.
func outsideTree(t *testing.T) (dir, file string) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "secret.txt")
	writeFile(t, file, "keep me")
	return dir, file
}

func wantOutside(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrOutsideRoot) || !Permanent(err) {
		t.Fatalf("%s: %v, want ErrOutsideRoot (permanent)", what, err)
	}
}

func checkUntouched(t *testing.T, dir, file string) {
	t.Helper()
	if got := readFile(t, file); got != "keep me" {
		t.Fatalf("%s was changed: %q", file, got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("something was written outside the root: %v", names)
	}
}

// A destination folder replaced by a link to a folder outside the root,
// after the transfer was accepted: nothing is created, written, renamed or
// removed through it.
func TestDestinationFolderSwappedForALink(t *testing.T) {
	eachResolution(t, func(t *testing.T) {
		l, root := tempLocal(t)
		outDir, secret := outsideTree(t)
		out := filepath.Join(root, "out")
		if err := os.Symlink(outDir, out); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(out, "secret.txt")
		_, err := l.OpenPart(ctx, dst, 0)
		wantOutside(t, "OpenPart", err)
		_, err = l.OpenPart(ctx, filepath.Join(out, "new", "deeper.bin"), 0)
		wantOutside(t, "OpenPart making directories", err)
		wantOutside(t, "Commit", l.Commit(ctx, dst, true))
		for _, err := range l.RenameAll(ctx, []string{dst}, true) {
			wantOutside(t, "RenameAll", err)
		}
		wantOutside(t, "Remove", l.Remove(ctx, dst))
		wantOutside(t, "RemoveSource", l.RemoveSource(ctx, dst, checkpoint.Source{}))
		_, err = l.Exists(ctx, dst)
		wantOutside(t, "Exists", err)
		wantOutside(t, "SyncDirs", l.SyncDirs(ctx, []string{dst}))
		checkUntouched(t, outDir, secret)
	})
}

// A folder that is missing when the destination is written, with a link to
// outside put above it: the directories are not made through the link.
func TestMissingFoldersAreNotMadeThroughALink(t *testing.T) {
	eachResolution(t, func(t *testing.T) {
		l, root := tempLocal(t)
		outDir, secret := outsideTree(t)
		if err := os.MkdirAll(filepath.Join(root, "a"), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outDir, filepath.Join(root, "a", "b")); err != nil {
			t.Fatal(err)
		}
		_, err := l.OpenPart(ctx, filepath.Join(root, "a", "b", "c", "d", "f.bin"), 0)
		wantOutside(t, "OpenPart", err)
		checkUntouched(t, outDir, secret)
	})
}

// A source swapped for a link (to a file outside, or inside) is not read,
// described or deleted through it.
func TestSourceSwappedForALink(t *testing.T) {
	eachResolution(t, func(t *testing.T) {
		l, root := tempLocal(t)
		outDir, secret := outsideTree(t)
		src := filepath.Join(root, "in.csv")
		if err := os.Symlink(secret, src); err != nil {
			t.Fatal(err)
		}
		_, err := l.OpenSource(ctx, src)
		wantOutside(t, "OpenSource", err)
		_, err = l.Stat(ctx, src)
		wantOutside(t, "Stat", err)
		if err := l.RemoveSource(ctx, src, checkpoint.Source{}); err == nil {
			t.Fatal("RemoveSource of a link: no error")
		}
		if _, err := os.Lstat(src); err != nil {
			t.Fatalf("the link was removed: %v", err)
		}
		// A folder above the source swapped for a link.
		if err := os.Symlink(outDir, filepath.Join(root, "in")); err != nil {
			t.Fatal(err)
		}
		_, err = l.OpenSource(ctx, filepath.Join(root, "in", "secret.txt"))
		wantOutside(t, "OpenSource through a linked folder", err)
		checkUntouched(t, outDir, secret)
	})
}

func TestPathsOutsideEveryRoot(t *testing.T) {
	l, root := tempLocal(t)
	outDir, secret := outsideTree(t)
	for _, p := range []string{secret, filepath.Dir(root), root + "x/f", "relative/f", filepath.Join(root, "a") + "/../../x"} {
		_, err := l.OpenSource(ctx, p)
		wantOutside(t, "OpenSource "+p, err)
		_, err = l.OpenPart(ctx, p, 0)
		wantOutside(t, "OpenPart "+p, err)
	}
	checkUntouched(t, outDir, secret)
}

// Several roots: a path belongs to the innermost one that holds it.
func TestSeveralRoots(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(base, "in")
	other, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(inner, 0o750); err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(base, other, inner)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, p := range []string{filepath.Join(base, "x"), filepath.Join(inner, "y"), filepath.Join(other, "z", "w")} {
		part, err := l.OpenPart(ctx, p, 0)
		if err != nil {
			t.Fatalf("OpenPart(%s): %v", p, err)
		}
		write(t, part, "data")
		closePart(t, part)
		if err := l.Commit(ctx, p, false); err != nil {
			t.Fatalf("Commit(%s): %v", p, err)
		}
		if got := readFile(t, p); got != "data" {
			t.Fatalf("%s holds %q", p, got)
		}
	}
	if r, _, _ := l.find("x", filepath.Join(inner, "y")); r.path != inner {
		t.Fatalf("%s/y found beneath %s, want the innermost root", inner, r.path)
	}
}

// A source is deleted only while it is still the file transferred: after
// a failover, a producer may have written a new file under its name.
func TestRemoveSourceOnlyTheFileTransferred(t *testing.T) {
	eachResolution(t, func(t *testing.T) {
		l, root := tempLocal(t)
		src := filepath.Join(root, "in", "orders.csv")
		if err := os.MkdirAll(filepath.Dir(src), 0o750); err != nil {
			t.Fatal(err)
		}
		writeFile(t, src, "id,qty\n1,5\n")
		info, err := l.Stat(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		was := info.Source

		// Replaced by a new file of the same size under the same name.
		tmp := filepath.Join(root, "in", "tmp")
		writeFile(t, tmp, "id,qty\n2,6\n")
		if err := os.Rename(tmp, src); err != nil {
			t.Fatal(err)
		}
		err = l.RemoveSource(ctx, src, was)
		if !errors.Is(err, checkpoint.ErrSourceChanged) || !Permanent(err) {
			t.Fatalf("RemoveSource of a replaced file: %v, want ErrSourceChanged (permanent)", err)
		}
		if got := readFile(t, src); got != "id,qty\n2,6\n" {
			t.Fatalf("the new file was touched: %q", got)
		}

		// The file transferred, seen through another mount: deleted.
		now, err := l.Stat(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		elsewhere := now.Source
		elsewhere.Device++
		elsewhere.Inode += 1000
		if err := l.RemoveSource(ctx, src, elsewhere); err != nil {
			t.Fatalf("RemoveSource of the file transferred: %v", err)
		}
		if _, err := os.Lstat(src); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the source is still there: %v", err)
		}
		// Replayed after a failover: already gone.
		if err := l.RemoveSource(ctx, src, was); err != nil {
			t.Fatalf("RemoveSource replayed: %v", err)
		}
	})
}

// A file system mounted on a root after the endpoint opened it (the agent
// started before its share was mounted) is where the files go from then
// on, not the directory beneath the mount point.
func TestRootRemountedIsFollowed(t *testing.T) {
	l, root := subdirLocal(t, "share")
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=1m"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs on %s: %v", root, err)
		}
		t.Skipf("mount a tmpfs on %s: %v", root, err)
	}
	defer syscall.Unmount(root, syscall.MNT_DETACH)
	l.roots[0].checked.Store(0) // as if rootCheckEvery had passed
	dst := filepath.Join(root, "a.bin")
	p, err := l.OpenPart(ctx, dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p, "on the share")
	closePart(t, p)
	if err := l.Commit(ctx, dst, false); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dst); got != "on the share" {
		t.Fatalf("%s holds %q", dst, got)
	}
	l.Close() // it holds the share's root open
	if err := syscall.Unmount(root, 0); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("written beneath the mount point, not on the mounted file system: %v", entries)
	}
}

// A root replaced by a symbolic link after the endpoint opened it is not
// followed: the directory held stays the root.
func TestRootReplacedByALinkIsNotFollowed(t *testing.T) {
	l, root := subdirLocal(t, "root")
	outDir, secret := outsideTree(t)
	if err := os.Rename(root, root+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outDir, root); err != nil {
		t.Fatal(err)
	}
	l.roots[0].checked.Store(0)
	p, err := l.OpenPart(ctx, filepath.Join(root, "x.bin"), 0)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p, "x")
	closePart(t, p)
	checkUntouched(t, outDir, secret)
	if got := readFile(t, filepath.Join(root+".moved", "x.bin.part")); got != "x" {
		t.Fatalf("the held root holds %q", got)
	}
}

// subdirLocal returns a Local rooted at a new directory name in a
// temporary directory, and the root.
func subdirLocal(t *testing.T, name string) (*Local, string) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, name)
	if err := os.Mkdir(root, 0o750); err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, root
}
