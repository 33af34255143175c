package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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

// wantPlan is the plan of the recursive source root/src/ (with its final
// "/") to root/dst: its directories and files in walk order, as
// sandbox.Expand and treeDirs list them.
func wantPlan(t *testing.T, root, src, dst string) ([]plainFile, []Dir) {
	t.Helper()
	var files []plainFile
	var dirs []Dir
	from, to := filepath.Join(root, src), filepath.Join(root, dst)
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			dirs = append(dirs, Dir{Source: p, Destination: filepath.Join(to, rel)})
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, plainFile{p, filepath.Join(to, rel), fi.Size()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, dirs
}

// plainFile is a planned file, without its state.
type plainFile struct {
	source, destination string
	bytes               int64
}

func plainFiles(files []File) []plainFile {
	out := make([]plainFile, len(files))
	for i, f := range files {
		out[i] = plainFile{f.Source, f.Destination, f.Bytes}
	}
	return out
}

func plainDirs(dirs []Dir) []Dir {
	out := make([]Dir, len(dirs))
	for i, d := range dirs {
		out[i] = Dir{Source: d.Source, Destination: d.Destination}
	}
	return out
}

// TestPlanIsCommittedAsItIsWalked: a large tree's plan is committed part
// by part while the tree is walked — a file written into a directory not
// walked yet, once the first part is committed, is in the plan — with the
// files, their order and the directories of the whole plan, each entry
// within the bound. Two sources that share the destination's directories
// have them once.
func TestPlanIsCommittedAsItIsWalked(t *testing.T) {
	smallChunks(t, 5)
	r := newRig(t)
	bigTree(t, r.root, 40, 5)
	late := filepath.Join(r.root, "in", "big", "d04", "late")
	log := &fakeLog{afterEntry: func(n int) {
		if n == 1 {
			if err := os.WriteFile(late, []byte("late\n"), 0o640); err != nil {
				t.Error(err)
			}
		}
	}}
	m := r.manager(log, r.local)
	tr, err := submitAs(m, 1, context.Background(), "big", Request{Sources: []string{"in/big/"}, Destination: "out/big/", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	files, dirs := wantPlan(t, r.root, "in/big", "out/big")
	if !slices.Contains(files, plainFile{late, filepath.Join(r.root, "out", "big", "d04", "late"), 5}) {
		t.Fatalf("the file written after the first entry is not in the plan: the plan was listed before it was committed")
	}
	all, _ := r.state.Get(tr.ID)
	if got := plainFiles(all.Files); !slices.Equal(got, files) {
		t.Fatalf("files\n%v\nwant\n%v", got, files)
	}
	if got := plainDirs(tr.Dirs); !slices.Equal(got, dirs) {
		t.Fatalf("directories\n%v\nwant\n%v", got, dirs)
	}
	// 41 files and 6 directories in entries of at most 5: one create,
	// nine appends.
	if k := kindsOf(log); k[KindCreateOpen] != 1 || k[KindAppend] != 9 || len(log.kinds) != 10 || tr.Open {
		t.Fatalf("committed %v, open %v; want one %s and 9 %s", log.kinds, tr.Open, KindCreateOpen, KindAppend)
	}

	// Two sources into one destination: the directory both map to once,
	// then the files of one and of the other.
	for i := range 12 {
		p := filepath.Join(r.root, "more", fmt.Sprintf("e%02d", i%2), fmt.Sprintf("g%02d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("more\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	log2 := &fakeLog{index: 1000}
	m2 := r.manager(log2, r.local)
	tr2, err := submitAs(m2, 1, context.Background(), "two", Request{Sources: []string{"in/big/", "more/"}, Destination: "out/two/", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	f1, d1 := wantPlan(t, r.root, "in/big", "out/two")
	f2, d2 := wantPlan(t, r.root, "more", "out/two")
	all2, _ := r.state.Get(tr2.ID)
	if got := plainFiles(all2.Files); !slices.Equal(got, append(f1, f2...)) {
		t.Fatalf("files of two sources\n%v\nwant\n%v", got, append(f1, f2...))
	}
	if got, want := plainDirs(tr2.Dirs), append(d1, d2[1:]...); !slices.Equal(got, want) {
		t.Fatalf("directories of two sources\n%v\nwant\n%v", got, want)
	}
}

// discarded checks that the creation of transfer id was given up: its last
// entry a discard, and no transfer left, after at least one part was
// committed.
func discarded(t *testing.T, r *rig, log *fakeLog, id string) {
	t.Helper()
	if _, ok := r.state.Get(id); ok {
		t.Fatalf("transfer %s was kept; committed %v", id, log.kinds)
	}
	var last map[string]any
	_ = json.Unmarshal(log.lastData, &last)
	if kindsOf(log)[KindCreateOpen] != 1 || log.kinds[len(log.kinds)-1] != KindAppend || last["discard"] != true {
		t.Fatalf("committed %v, last %s; want an open create, and a discard last", log.kinds, log.lastData)
	}
}

// TestRefusalMidPlanDiscards: a refusal met by the plan after parts of it
// were committed — a destination that exists (overwrite error), more files
// than maxFilesPerTransfer, a file two sources write to one destination, a
// client that went away — gives up the creation, and the user is told the
// reason a plan listed whole gave.
func TestRefusalMidPlanDiscards(t *testing.T) {
	smallChunks(t, 4)
	r := newRig(t)
	bigTree(t, r.root, 40, 5)
	req := Request{Sources: []string{"in/big/"}, Destination: "out/big/", Recursive: true}
	refused := func(t *testing.T, m *Manager, id string, req Request, reason string) {
		t.Helper()
		_, err := submitAs(m, 1, context.Background(), id, req)
		var re *RequestError
		if !errors.As(err, &re) || re.Reason != reason {
			t.Fatalf("%v, want the refusal %q", err, reason)
		}
	}

	t.Run("destination exists", func(t *testing.T) {
		p := filepath.Join(r.root, "out", "big", "d04", "f0039") // the last file
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("there\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(filepath.Join(r.root, "out"))
		log := &fakeLog{}
		refused(t, r.manager(log, r.local), "exists", req, "destination exists: out/big/d04/f0039 (use --overwrite to replace it)")
		discarded(t, r, log, "exists")
		// 40 files and 6 directories in parts of 4: the last part
		// (f0038, f0039) is refused, after 11 were committed.
		if n := len(log.kinds); n != 12 {
			t.Fatalf("committed %v, want 11 parts and a discard", log.kinds)
		}
	})

	t.Run("maxFilesPerTransfer", func(t *testing.T) {
		log := &fakeLog{index: 100}
		m := r.manager(log, r.local)
		m.limits.MaxFilesPerTransfer = 30
		refused(t, m, "many", req, "the request names more than 30 files (maxFilesPerTransfer=30): split it, or raise maxFilesPerTransfer")
		discarded(t, r, log, "many")
	})

	t.Run("two sources to one destination", func(t *testing.T) {
		p := filepath.Join(r.root, "dup", "d04", "f0039")
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("dup\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		log := &fakeLog{index: 200}
		in, dup := filepath.Join(r.root, "in", "big", "d04", "f0039"), p
		refused(t, r.manager(log, r.local), "dup", Request{Sources: []string{"in/big/", "dup/"}, Destination: "out/big/", Recursive: true},
			fmt.Sprintf("sources %s and %s would both be written to %s", in, dup, filepath.Join(r.root, "out", "big", "d04", "f0039")))
		discarded(t, r, log, "dup")
	})

	t.Run("client gone", func(t *testing.T) {
		// The client goes away once the first part is committed: the
		// walk stops there.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		log := &fakeLog{index: 300, afterEntry: func(n int) {
			if n == 1 {
				cancel()
			}
		}}
		m := r.manager(log, r.local)
		if _, err := submitAs(m, 1, ctx, "gone", req); !errors.Is(err, context.Canceled) {
			t.Fatalf("%v, want context.Canceled", err)
		}
		discarded(t, r, log, "gone")
		if len(log.kinds) != 2 {
			t.Fatalf("committed %v, want the first part and its discard", log.kinds)
		}
	})
}

// TestPlanRefusesClashes: a file and a directory of two sources written to
// one place are refused whichever source comes first (the directories are
// planned before the files), as is a file that is its own destination.
func TestPlanRefusesClashes(t *testing.T) {
	r := newRig(t)
	r.files(t, "a/x", "b/x/y", "in/f")
	m, _ := r.activeManager(&fakeLog{})
	file, dir, to := filepath.Join(r.root, "a", "x"), filepath.Join(r.root, "b", "x"), filepath.Join(r.root, "out", "x")
	for _, c := range []struct {
		req    Request
		reason string
	}{
		{Request{Sources: []string{"a/", "b/"}, Destination: "out/", Recursive: true}, fmt.Sprintf("source %s and directory %s would both be written to %s", file, dir, to)},
		{Request{Sources: []string{"b/", "a/"}, Destination: "out/", Recursive: true}, fmt.Sprintf("source %s and directory %s would both be written to %s", file, dir, to)},
		{Request{Sources: []string{"in/f"}, Destination: "in/"}, fmt.Sprintf("source %s is its own destination", filepath.Join(r.root, "in", "f"))},
	} {
		_, err := m.Submit(context.Background(), "", c.req)
		var re *RequestError
		if !errors.As(err, &re) || re.Reason != c.reason {
			t.Errorf("%v: %v, want the refusal %q", c.req.Sources, err, c.reason)
		}
	}
}
