package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
)

// TestMillionFileRequest: a recursive request of 1,000,000 files (empty
// ones, so that the test writes inodes, not data) is accepted, through the
// real command, in bounded raft entries (the active's metrics count the
// parts), and the transfer runs; it is then cancelled, and ends so. The
// memory and the time of transferring such a tree to the end are measured
// by bench/million.sh (docs/performance.md), not here.
func TestMillionFileRequest(t *testing.T) {
	start := time.Now()
	c, active := xferCluster(t)
	const dirs, perDir = 1000, 1000
	src := xferPath(c, "in/million")
	// The tree on a tmpfs of its own when the test may mount one (root,
	// as in CI): a million inodes are written and removed in seconds
	// there, against a minute on a disk. The instances see it as any
	// other directory of transferRoot.
	if err := os.MkdirAll(src, 0o750); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m,nr_inodes=1100000", "tmpfs", src).CombinedOutput(); err != nil {
			t.Logf("no tmpfs for the tree (%v: %s): writing it to the disk", err, out)
		} else {
			t.Cleanup(func() { _ = exec.Command("umount", "-l", src).Run() })
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for d := w; d < dirs; d += 8 {
				dir := filepath.Join(src, fmt.Sprintf("d%03d", d))
				if err := os.MkdirAll(dir, 0o750); err != nil {
					errs <- err
					return
				}
				for f := range perDir {
					fh, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%03d", f)))
					if err != nil {
						errs <- err
						return
					}
					fh.Close()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%v: %d files written", time.Since(start), dirs*perDir)

	hc, err := c.TLS.HTTPClient("monitor", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	before := scrape(t, c, hc, active)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, r, err := c.CreateTransfer(ctx, "--recursive", "in/million/", "out/million/")
	if err != nil || r.Exit != 0 || v.ID == "" {
		t.Fatalf("transfer create: exit %d %v\nstderr %s", r.Exit, err, r.Stderr)
	}
	t.Logf("%v: accepted as %s (%s, %d files)", time.Since(start), v.ID, v.State, v.FilesTotal)
	if v.FilesTotal != dirs*perDir || transfer.Terminal(v.State) {
		t.Fatalf("accepted with %d files, state %s; want %d, not ended", v.FilesTotal, v.State, dirs*perDir)
	}
	parts := diffFrom(before, scrape(t, c, hc, active), "ftagent_raft_apply_seconds", "kind", "transfer.append")
	// 1,000,000 files and 1,000 directories in parts of at most 8,192
	// entries: at least 122 parts after the opening one.
	if parts < 122 {
		t.Errorf("the request was committed with %v appended parts; want at least 122 (bounded entries)", parts)
	}
	xferWait(t, c, time.Minute, v.ID, "running", func(v transfer.View) bool { return v.State == transfer.StateRunning || transfer.Terminal(v.State) })
	if r, err := c.Transfer(ctx, "cancel", v.ID); err != nil || r.Exit != 0 {
		t.Fatalf("transfer cancel: exit %d %v: %s", r.Exit, err, r.Stderr)
	}
	end := xferEnded(t, c, 2*time.Minute, v.ID)
	if end.State != transfer.StateCancelled && end.State != transfer.StateCompleted {
		t.Fatalf("after the cancel: %s %s", end.State, end.Reason)
	}
	t.Logf("%v: %s (%d directories of %d made)", time.Since(start), end.State, end.DirectoriesDone, end.Directories)
}
