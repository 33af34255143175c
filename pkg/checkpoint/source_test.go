package checkpoint

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func identify(t *testing.T, path string) Source {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return Identify(fi)
}

func TestIdentify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "orders.csv")
	if err := os.WriteFile(path, []byte("id,qty\n1,5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	orig := identify(t, path)
	if orig.Size != 11 {
		t.Fatalf("Size = %d, want 11", orig.Size)
	}
	if orig.ModTime != mtime.UnixNano() {
		t.Fatalf("ModTime = %d, want %d", orig.ModTime, mtime.UnixNano())
	}
	if runtime.GOOS == "linux" && orig.Inode == 0 {
		t.Fatal("no inode on Linux")
	}
	if again := identify(t, path); !again.Same(orig) {
		t.Fatalf("the unchanged file identifies as %v, was %v", again, orig)
	}
	s := orig.String()
	if !strings.Contains(s, "size 11") || !strings.Contains(s, "mtime 2026-03-01T10:00:00.123456789Z") {
		t.Fatalf("String = %q", s)
	}

	t.Run("size change", func(t *testing.T) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("2,7\n"); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		// Put the mtime back: only the size tells.
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		now := identify(t, path)
		if now.Same(orig) {
			t.Fatalf("appending went unnoticed: %v", now)
		}
		if now.Size != 15 || now.ModTime != orig.ModTime || now.Inode != orig.Inode || now.Device != orig.Device {
			t.Fatalf("after appending: %v, was %v; want only the size to differ", now, orig)
		}
		if err := os.Truncate(path, orig.Size); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		// Size and mtime restored: only the change time (when the clock
		// ticked in between) can tell; TestIdentifyReplacedWithSameTimes.
		if back := identify(t, path); back.Size != orig.Size || back.ModTime != orig.ModTime {
			t.Fatalf("restored file: %v, want the size and mtime of %v", back, orig)
		}
	})

	t.Run("mtime change", func(t *testing.T) {
		later := mtime.Add(time.Millisecond)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
		now := identify(t, path)
		if now.Same(orig) {
			t.Fatalf("a new mtime went unnoticed: %v", now)
		}
		if now.ModTime != later.UnixNano() || now.Size != orig.Size || now.Inode != orig.Inode {
			t.Fatalf("after touching: %v, was %v; want only the mtime to differ", now, orig)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("replaced file", func(t *testing.T) {
		if orig.Inode == 0 {
			t.Skipf("no inode numbers on %s", runtime.GOOS)
		}
		// Same size, same content, same mtime: only the inode tells.
		tmp := filepath.Join(dir, "orders.csv.new")
		if err := os.WriteFile(tmp, []byte("id,qty\n1,5\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		now := identify(t, path)
		if now.Same(orig) {
			t.Fatalf("replacing the file went unnoticed: %v", now)
		}
		if now.Inode == orig.Inode || now.Size != orig.Size || now.ModTime != orig.ModTime {
			t.Fatalf("after replacing: %v, was %v; want only the inode to differ", now, orig)
		}
		if !strings.Contains(now.String(), "inode ") {
			t.Fatalf("String = %q; want the inode", now.String())
		}
	})
}

func TestSourceSame(t *testing.T) {
	base := Source{Size: 1, ModTime: 2, Change: 5, Inode: 3, Device: 4}
	for _, c := range []struct {
		name string
		o    Source
		same bool
	}{
		{"itself", base, true},
		{"another size", Source{Size: 9, ModTime: 2, Change: 5, Inode: 3, Device: 4}, false},
		{"another mtime", Source{Size: 1, ModTime: 9, Change: 5, Inode: 3, Device: 4}, false},
		{"another ctime", Source{Size: 1, ModTime: 2, Change: 9, Inode: 3, Device: 4}, false},
		{"another inode, same mount", Source{Size: 1, ModTime: 2, Change: 5, Inode: 9, Device: 4}, false},
		{"nothing known", Source{}, false},
		// Another host's mount: its own device number, and on some
		// mounts (FUSE, SMB noserverino) inode numbers of its own.
		{"another mount", Source{Size: 1, ModTime: 2, Change: 5, Inode: 3, Device: 41}, true},
		{"another mount and inode", Source{Size: 1, ModTime: 2, Change: 5, Inode: 77, Device: 41}, true},
		{"another mount, rewritten with the old mtime", Source{Size: 1, ModTime: 2, Change: 6, Inode: 3, Device: 41}, false},
		// A record written before the change time was kept.
		{"ctime unknown", Source{Size: 1, ModTime: 2, Inode: 3, Device: 4}, true},
	} {
		if got := base.Same(c.o); got != c.same {
			t.Errorf("%s: Same(%v, %v) = %v, want %v", c.name, base, c.o, got, c.same)
		}
		if got := c.o.Same(base); got != c.same {
			t.Errorf("%s: Same(%v, %v) = %v, want %v", c.name, c.o, base, got, c.same)
		}
	}
	if got := (Source{Size: 123}).String(); got != "size 123, mtime 1970-01-01T00:00:00Z" {
		t.Errorf("String without inode = %q", got)
	}
}

// Recorded is the replicated state's rule, the one of builds that know no
// change time: every field but an unknown change time must be equal.
func TestSourceRecorded(t *testing.T) {
	base := Source{Size: 1, ModTime: 2, Change: 5, Inode: 3, Device: 4}
	for _, c := range []struct {
		o    Source
		want bool
	}{
		{base, true},
		{Source{Size: 1, ModTime: 2, Inode: 3, Device: 4}, true}, // written by an earlier build
		{Source{Size: 1, ModTime: 2, Change: 5, Inode: 3, Device: 41}, false},
		{Source{Size: 1, ModTime: 2, Change: 6, Inode: 3, Device: 4}, false},
		{Source{Size: 1, ModTime: 2, Change: 5, Inode: 9, Device: 4}, false},
	} {
		if got := base.Recorded(c.o); got != c.want {
			t.Errorf("Recorded(%v, %v) = %v, want %v", base, c.o, got, c.want)
		}
	}
}

// A file replaced by one with the same size and mtime is told apart by its
// change time, which a rename into its place sets, even when it is looked
// at through another mount (a device and inode numbers of its own).
func TestIdentifyReplacedWithSameTimes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the change time is read on Linux")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "orders.csv")
	mtime := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	write := func(p string) {
		if err := os.WriteFile(p, []byte("id,qty\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(path)
	orig := identify(t, path)
	if orig.Change == 0 {
		t.Fatal("no change time on Linux")
	}
	// The change time moves at the clock's tick: wait for it to move.
	deadline := time.Now().Add(5 * time.Second)
	for {
		tmp := filepath.Join(dir, "new")
		write(tmp)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		now := identify(t, path)
		now.Device, now.Inode = orig.Device+1, orig.Inode+1000 // as another host's mount shows it
		if !now.Same(orig) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a replaced file with the same size and mtime went unnoticed across mounts: %v, was %v", now, orig)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
