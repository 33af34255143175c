package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/ha"
)

// smallChunks bounds a create entry to n files and directories for one test.
func smallChunks(t *testing.T, n int) {
	e, b := createChunkEntries, createChunkBytes
	createChunkEntries = n
	t.Cleanup(func() { createChunkEntries, createChunkBytes = e, b })
}

// bigTree writes files files of a few bytes under root/in/big, spread over
// dirs directories, and returns their contents by relative path.
func bigTree(t *testing.T, root string, files, dirs int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := range files {
		rel := fmt.Sprintf("d%02d/f%04d", i%dirs, i)
		p := filepath.Join(root, "in", "big", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		data := fmt.Sprintf("file %d\n", i)
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		out[rel] = data
	}
	return out
}

// kindsOf counts l's entries by kind.
func kindsOf(l *fakeLog) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := map[string]int{}
	for _, k := range l.kinds {
		n[k]++
	}
	return n
}

func submitAs(m *Manager, epoch uint64, ctx context.Context, id string, req Request) (*Transfer, error) {
	lease := ha.Lease{Epoch: epoch}
	m.mu.Lock()
	m.lease = &lease
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.lease = nil
		m.mu.Unlock()
	}()
	return m.Submit(ctx, id, req)
}

func checkTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	for rel, data := range want {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil || string(b) != data {
			t.Fatalf("%s: %q, %v; want %q", rel, b, err, data)
		}
	}
}

// TestLargeRequestIsCreatedInBoundedEntries: a request of more files than
// one entry may carry is committed as an open create, appends and a seal,
// none above the bound, in the plan's order; it is not run before it is
// sealed, and then runs like any other.
func TestLargeRequestIsCreatedInBoundedEntries(t *testing.T) {
	smallChunks(t, 7)
	r := newRig(t)
	want := bigTree(t, r.root, 40, 5)
	log := &fakeLog{}
	m := r.manager(log, r.local)
	req := Request{Sources: []string{"in/big/"}, Destination: "out/big/", Recursive: true}
	tr, err := submitAs(m, 1, context.Background(), "big", req)
	if err != nil {
		t.Fatal(err)
	}
	// 40 files and 6 directories (the tree's top and its 5) in entries
	// of at most 7: one create, six appends.
	if k := kindsOf(log); k[KindCreateOpen] != 1 || k[KindAppend] != 6 || len(log.kinds) != 7 {
		t.Fatalf("committed %v, want one %s and 6 %s", log.kinds, KindCreateOpen, KindAppend)
	}
	if tr.Open || tr.FileCount() != 40 || len(tr.Dirs) != 6 || tr.State != StateQueued {
		t.Fatalf("accepted: open %v, %d files, %d dirs, %s", tr.Open, tr.FileCount(), len(tr.Dirs), tr.State)
	}
	// The plan's order: sources sorted as the walk lists them.
	var srcs []string
	for i := range tr.FileCount() {
		srcs = append(srcs, tr.FileAt(i).Source)
	}
	if !slices.IsSorted(srcs) {
		t.Fatalf("files out of order: %q", srcs)
	}
	runOnce(context.Background(), m, 1, "big")
	got, _ := r.state.Get("big")
	if got.State != StateCompleted {
		t.Fatalf("transfer %s (%s)", got.State, got.Reason)
	}
	checkTree(t, filepath.Join(r.root, "out", "big"), want)
	// A retry of the sealed request is the transfer, not a second one.
	again, err := submitAs(m, 1, context.Background(), "big", req)
	if err != nil || again.Seq != tr.Seq {
		t.Fatalf("retry: %v, seq %v; want the transfer of seq %d", err, again, tr.Seq)
	}
}

// TestInterruptedCreationIsDiscardedAndRetried: an active that loses the
// lease in the middle of a creation leaves an open transfer; the next
// active does not run it but discards it, and the client's retry of the
// request then creates it whole and it completes. A creation whose client
// goes away is discarded by the active that was creating it.
func TestInterruptedCreationIsDiscardedAndRetried(t *testing.T) {
	smallChunks(t, 4)
	r := newRig(t)
	want := bigTree(t, r.root, 30, 3)
	req := Request{Sources: []string{"in/big/"}, Destination: "out/big/", Recursive: true}
	first := &fakeLog{crashAfter: 3} // the create, one append, then nothing
	m1 := r.manager(first, r.local)
	if _, err := submitAs(m1, 1, context.Background(), "big", req); err == nil {
		t.Fatal("the creation succeeded on a crashed log")
	}
	half, ok := r.state.Get("big")
	if !ok || !half.Open || half.FileCount() == 0 || half.FileCount() >= 30 {
		t.Fatalf("after the crash: %v open %v with %d files; want an open transfer with some of the files", ok, half != nil && half.Open, half.FileCount())
	}
	// The next active: its scheduler finds the open transfer, which it is
	// not creating, and discards it instead of running it.
	second := &fakeLog{index: 1000}
	m2 := r.manager(second, r.local)
	lease := ha.Lease{Epoch: 2}
	m2.mu.Lock()
	m2.lease = &lease
	m2.mu.Unlock()
	m2.schedule(context.Background(), lease)
	if _, ok := r.state.Get("big"); ok {
		t.Fatalf("the open transfer was not discarded; the new active committed %v", second.kinds)
	}
	m2.mu.Lock()
	jobs := len(m2.jobs)
	m2.lease = nil
	m2.mu.Unlock()
	if jobs != 0 {
		t.Fatalf("%d jobs started for a discarded transfer", jobs)
	}
	// The client retries with the same id.
	tr, err := submitAs(m2, 2, context.Background(), "big", req)
	if err != nil {
		t.Fatal(err)
	}
	if tr.FileCount() != 30 || tr.Open {
		t.Fatalf("retried: %d files, open %v", tr.FileCount(), tr.Open)
	}
	runOnce(context.Background(), m2, 2, "big")
	if got, _ := r.state.Get("big"); got.State != StateCompleted {
		t.Fatalf("transfer %s (%s)", got.State, got.Reason)
	}
	checkTree(t, filepath.Join(r.root, "out", "big"), want)

	// A client that goes away in the middle: the creation is discarded
	// by the active that was creating it.
	ctx, cancel := context.WithCancel(context.Background())
	third := &fakeLog{index: 2000, afterEntry: func(n int) {
		if n == 2 {
			cancel()
		}
	}}
	m3 := r.manager(third, r.local)
	req2 := Request{Sources: []string{"in/big/"}, Destination: "out/again/", Recursive: true}
	if _, err := submitAs(m3, 3, ctx, "gone", req2); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("creation for a client that went away: %v", err)
	}
	if _, ok := r.state.Get("gone"); ok {
		t.Fatalf("the creation of a client that went away was kept; committed %v", third.kinds)
	}
	var last map[string]any
	_ = json.Unmarshal(third.lastData, &last)
	if third.kinds[len(third.kinds)-1] != KindAppend || last["discard"] != true {
		t.Fatalf("last entry %s %s, want a discard", third.kinds[len(third.kinds)-1], third.lastData)
	}
}

// TestLargeRequestInOneEntryDuringUpgrade: while an instance does not read
// the appends' format, a large request is still one entry, as before.
func TestLargeRequestInOneEntryDuringUpgrade(t *testing.T) {
	smallChunks(t, 4)
	r := newRig(t)
	bigTree(t, r.root, 12, 2)
	log := &fakeLog{formats: 5}
	m := r.manager(log, r.local)
	tr, err := submitAs(m, 1, context.Background(), "big", Request{Sources: []string{"in/big/"}, Destination: "out/big/", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(log.kinds) != 1 || log.kinds[0] != KindCreateV3 || tr.FileCount() != 12 || tr.Open {
		t.Fatalf("committed %v; %d files, open %v", log.kinds, tr.FileCount(), tr.Open)
	}
}
