package endpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/audit"
)

// switchFence holds the lease at epoch unless err is set.
type switchFence struct {
	epoch uint64
	err   error
}

var errOtherEpoch = errors.New("the lease is at another epoch")

func (f *switchFence) CheckLeaseAt(epoch uint64) (time.Time, error) {
	if f.err != nil {
		return time.Time{}, f.err
	}
	if epoch != f.epoch {
		return time.Time{}, errOtherEpoch
	}
	return time.Now(), nil
}

// A Fenced endpoint changes nothing once its fence refuses, and records
// each change it made with the epoch it was checked under.
func TestFencedRefusesAndAudits(t *testing.T) {
	dir := t.TempDir()
	trail, err := audit.Open(filepath.Join(dir, "audit.jsonl"), "ha1")
	if err != nil {
		t.Fatal(err)
	}
	fence := &switchFence{epoch: 7}
	local, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	ep := Fenced{Endpoint: local, Fence: fence, Audit: trail}
	dst := filepath.Join(dir, "out", "a.bin")
	if _, err := ep.OpenPart(context.Background(), dst, 0); !errors.Is(err, ErrNoEpoch) {
		t.Fatalf("a change without an epoch: %v, want ErrNoEpoch", err)
	}
	ctx := WithEpoch(context.Background(), 7)

	p, err := ep.OpenPart(ctx, dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	lost := errors.New("lease lost")
	fence.err = lost
	if n, err := p.Write([]byte("world")); !errors.Is(err, lost) || n != 0 {
		t.Fatalf("write after the fence closed: n=%d err=%v", n, err)
	}
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := ep.Commit(ctx, dst, false); !errors.Is(err, lost) {
		t.Fatalf("commit after the fence closed: %v", err)
	}
	if errs := ep.RenameAll(ctx, []string{dst}, false); !errors.Is(errs[0], lost) {
		t.Fatalf("commit all after the fence closed: %v", errs)
	}
	if err := ep.Remove(ctx, PartName(dst)); !errors.Is(err, lost) {
		t.Fatalf("remove after the fence closed: %v", err)
	}
	if _, err := ep.OpenPart(ctx, dst, 3); !errors.Is(err, lost) {
		t.Fatalf("truncate after the fence closed: %v", err)
	}
	b, err := os.ReadFile(PartName(dst))
	if err != nil || string(b) != "hello " {
		t.Fatalf(".part holds %q (%v), want the bytes written before the fence closed", b, err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("destination exists after a refused commit: %v", err)
	}

	// The lease is back, at a later epoch (this instance again): the work
	// of epoch 7 is still refused, and that of epoch 8 is allowed.
	fence.err, fence.epoch = nil, 8
	if err := ep.Commit(ctx, dst, false); !errors.Is(err, errOtherEpoch) {
		t.Fatalf("commit of epoch 7's work under epoch 8: %v", err)
	}
	if err := ep.Commit(WithEpoch(ctx, 8), dst, false); err != nil {
		t.Fatal(err)
	}
	trail.Close()
	recs, err := audit.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		op    string
		epoch uint64
		off   int64
		n     int64
	}{{OpMkdir, 7, 0, 0}, {audit.OpTruncate, 7, 0, 0}, {audit.OpWrite, 7, 0, 6}, {audit.OpRename, 8, 0, 0}}
	if len(recs) != len(want) {
		t.Fatalf("audit has %d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		r := recs[i]
		if r.Op != w.op || r.Epoch != w.epoch || r.Offset != w.off || r.N != w.n || r.Instance != "ha1" || r.Checked == 0 {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
	}
}

// countingFence allows its first n checks, then refuses.
type countingFence struct{ n, calls int }

var errLate = errors.New("lease lost meanwhile")

func (f *countingFence) CheckLeaseAt(uint64) (time.Time, error) {
	f.calls++
	if f.calls > f.n {
		return time.Time{}, errLate
	}
	return time.Now(), nil
}

// Making a .part's missing directories can take long on slow storage: the
// lease is checked again after them, just before the .part is created, so
// an active deposed meanwhile creates (or truncates) nothing.
func TestFencedOpenPartChecksAgainAfterMakingDirectories(t *testing.T) {
	local, dir := tempLocal(t)
	fence := &countingFence{n: 2} // the first check, and MakeDir's
	ep := Fenced{Endpoint: local, Fence: fence}
	dst := filepath.Join(dir, "new", "deeper", "a.bin")
	if _, err := ep.OpenPart(WithEpoch(context.Background(), 1), dst, 0); !errors.Is(err, errLate) {
		t.Fatalf("OpenPart with the lease lost after the directories were made: %v", err)
	}
	if fence.calls != 3 {
		t.Fatalf("%d lease checks, want 3 (before, for the directories, before the create)", fence.calls)
	}
	if _, err := os.Lstat(PartName(dst)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a .part was created after the lease was lost: %v", err)
	}
	if fi, err := os.Stat(filepath.Dir(dst)); err != nil || !fi.IsDir() {
		t.Fatalf("the directories were not made under the lease: %v", err)
	}
}
