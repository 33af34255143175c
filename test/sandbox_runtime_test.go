package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// outsideDir is a directory outside the cluster's transferRoot holding one
// file, name, whose bytes must never change nor be copied.
func outsideDir(t *testing.T, name string, size int64) (dir, sum string) {
	t.Helper()
	dir = t.TempDir()
	p := filepath.Join(dir, name)
	if err := harness.WriteRandomFile(p, size, 99); err != nil {
		t.Fatal(err)
	}
	return dir, xferSum(t, p)
}

// swapForLink moves the directory rel aside and puts a symbolic link to
// target in its place, as someone with write access to the tree could after
// a transfer was accepted.
func swapForLink(t *testing.T, c *harness.Cluster, rel, target string) {
	t.Helper()
	p := xferPath(c, rel)
	if err := os.Rename(p, p+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func checkOutside(t *testing.T, dir, name, sum string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("outside the sandbox, %s holds %v; want only %s", dir, names, name)
	}
	if got := xferSum(t, filepath.Join(dir, name)); got != sum {
		t.Errorf("outside the sandbox, %s was changed", name)
	}
}

// The sandbox is checked at every operation, not only at submission
// (issue 10, item 2): folders swapped for links to outside the sandbox after
// a transfer was accepted, while its active is down, are not written, read
// or deleted through by the next active.
func TestSandboxHoldsAfterAcceptance(t *testing.T) {
	c, active := xferCluster(t)

	// Destination: out/d is replaced by a link to a folder outside while the
	// file is copied; the rename into place must not go through it.
	xferRandomFile(t, c, "in/a.bin", 24*xferMiB, 21)
	if err := os.MkdirAll(xferPath(c, "out/d"), 0o750); err != nil {
		t.Fatal(err)
	}
	dstOut, dstSum := outsideDir(t, "keep.bin", 1000)

	// Source: in/s (with --delete-source) is replaced by a link to a folder
	// outside holding a file of the source's name and size; it must be
	// neither copied nor deleted.
	xferRandomFile(t, c, "in/s/b.bin", 24*xferMiB, 22)
	srcOut, srcSum := outsideDir(t, "b.bin", 24*xferMiB)

	idDst := xferCreate(t, c, "--bwlimit", "8M", "in/a.bin", "out/d/")
	idSrc := xferCreate(t, c, "--bwlimit", "8M", "--delete-source", "in/s/b.bin", "out/b.bin")
	xferMidway(t, c, idDst, 2*xferMiB)
	xferMidway(t, c, idSrc, 2*xferMiB)
	// The active dies and the folders are swapped before the next one
	// resumes: it must check them again, not trust the submission.
	if err := c.Kill(active); err != nil {
		t.Fatal(err)
	}
	swapForLink(t, c, "out/d", dstOut)
	swapForLink(t, c, "in/s", srcOut)

	for _, c1 := range []struct{ id, what string }{{idDst, "destination folder"}, {idSrc, "source folder"}} {
		v := xferEnded(t, c, 90*time.Second, c1.id)
		if v.State != transfer.StateFailed || len(v.Files) != 1 || !strings.Contains(v.Files[0].Reason, "not beneath the transfer root") {
			t.Errorf("%s swapped for a link: %s; want failed with \"not beneath the transfer root\"", c1.what, harness.ViewText(v))
		}
	}
	checkOutside(t, dstOut, "keep.bin", dstSum)
	checkOutside(t, srcOut, "b.bin", srcSum)
	xferAbsent(t, c, "out/b.bin")
	if _, err := os.Lstat(filepath.Join(dstOut, "a.bin")); !os.IsNotExist(err) {
		t.Errorf("a.bin was written outside the sandbox (%v)", err)
	}
}
