package replicated

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestRelAgreesWithFilepathRel: rel's short cut gives what filepath.Rel
// gives (or the path itself outside the root).
func TestRelAgreesWithFilepathRel(t *testing.T) {
	slow := func(root, p string) string {
		r, err := filepath.Rel(root, p)
		if err != nil || r == ".." || strings.HasPrefix(r, "../") {
			return p
		}
		return r
	}
	roots := []string{"/srv/ft", "/srv/ft/", "/srv/./ft", "/", "/srv"}
	paths := []string{"/srv/ft/in/a.csv", "/srv/ft", "/srv/ftx/a", "/srv/ft/", "/srv/ft/../x", "/srv/ft//a", "/other/a", "/srv/ft/a/./b", "/srv/ft/.hidden"}
	for _, root := range roots {
		for _, p := range paths {
			if got, want := rel(cleanRoot(root), p), slow(root, p); got != want {
				t.Errorf("rel(%q, %q) = %q, want %q", root, p, got, want)
			}
		}
	}
	if got := rel("", "/a/b"); got != "/a/b" {
		t.Errorf("no root: %q", got)
	}
}

// bigTransfer is a transfer of n files under /r, 10 bytes each, in 100
// directories: the first half completed, file n/2 running with a checkpoint
// at 4 bytes, the rest queued; and 3 directories, the first made.
func bigTransfer(n int) *Transfer {
	t := &Transfer{ID: "big", State: StateRunning, Files: make([]File, n), Bytes: int64(n) * 10}
	for i := range t.Files {
		f := &t.Files[i]
		f.Source, f.Destination = fmt.Sprintf("/r/in/d%d/f%d", i%100, i), fmt.Sprintf("/r/out/d%d/f%d", i%100, i)
		f.Bytes, f.State = 10, StateQueued
		switch {
		case i < n/2:
			f.State, f.Checkpoint.Offset, f.SHA256 = StateCompleted, 10, strings.Repeat("ab", 32)
		case i == n/2:
			f.State, f.Checkpoint.Offset = StateRunning, 4
		}
	}
	for i := range 3 {
		t.Dirs = append(t.Dirs, Dir{Source: fmt.Sprintf("/r/in/d%d", i), Destination: fmt.Sprintf("/r/out/d%d", i), State: StateQueued})
	}
	t.Dirs[0].State = StateCompleted
	return t
}

// A window of a transfer of 100,000 files lists its files only, in the
// transfer's order, while the counts (bytesDone with the live progress,
// the current file, the directories made) still cover every file; the
// window says where the next page starts, and a window at or past the end
// lists none. The same holds once the transfer has ended and its files are
// packed, and rendering a window then builds the window's files only.
func TestViewWindowOfLargeTransfer(t *testing.T) {
	const n = 100_000
	tr := bigTransfer(n)
	live := func(*Transfer) (int, int64) { return n / 2, 7 }
	v := viewOf(tr, "/r", &Window{Offset: n/2 - 1, Limit: 3, DirOffset: 1, DirLimit: 1}, live)
	if v.FilesTotal != n || len(v.Files) != 3 || v.NextOffset != n/2+2 {
		t.Fatalf("window of 3 from %d: filesTotal %d, %d files, nextOffset %d; want %d, 3, %d", n/2-1, v.FilesTotal, len(v.Files), v.NextOffset, n, n/2+2)
	}
	if v.Files[0].Source != fmt.Sprintf("in/d%d/f%d", (n/2-1)%100, n/2-1) || v.Files[0].BytesDone != 10 ||
		v.Files[1].State != StateRunning || v.Files[1].BytesDone != 7 || v.Files[2].State != StateQueued {
		t.Errorf("window's files: %+v", v.Files)
	}
	if want := int64(n/2)*10 + 7; v.BytesDone != want || v.CurrentFile != fmt.Sprintf("in/d%d/f%d", (n/2)%100, n/2) {
		t.Errorf("bytesDone %d, currentFile %q; want %d, the running file", v.BytesDone, v.CurrentFile, want)
	}
	if v.Directories != 3 || v.DirectoriesDone != 1 || len(v.Dirs) != 1 || v.Dirs[0].Source != "in/d1" || v.NextDirOffset != 2 {
		t.Errorf("directories %d (%d made), dirs %+v, nextDirOffset %d; want 3 (1 made), in/d1, 2", v.Directories, v.DirectoriesDone, v.Dirs, v.NextDirOffset)
	}
	for _, w := range []Window{{Offset: n - 2, Limit: 1000, DirLimit: 3}, {Offset: n, Limit: 10, DirOffset: 3, DirLimit: 1}, {Offset: 2 * n, Limit: 10, DirOffset: 9, DirLimit: 1}} {
		v := PageOf(tr, "/r", w)
		if want := min(max(n-w.Offset, 0), w.Limit); len(v.Files) != want || v.Files == nil || v.NextOffset != 0 || v.NextDirOffset != 0 || v.FilesTotal != n {
			t.Errorf("window %+v: %d files (nil %v), nextOffset %d, nextDirOffset %d, filesTotal %d; want %d files, no next page",
				w, len(v.Files), v.Files == nil, v.NextOffset, v.NextDirOffset, v.FilesTotal, want)
		}
	}
	if v := SummaryOf(tr, "/r"); v.Files != nil || v.Dirs != nil || v.FilesTotal != n || v.NextOffset != 0 {
		t.Errorf("summary: files %v, dirs %v, filesTotal %d, nextOffset %d", v.Files != nil, v.Dirs != nil, v.FilesTotal, v.NextOffset)
	}

	tr.State = StateFailed
	tr.Files[n/2].State = StateFailed
	tr.tabulate()
	if tr.files == nil {
		t.Fatal("the ended transfer was not packed")
	}
	w := &Window{Offset: n - 10, Limit: 10, DirLimit: 1}
	v = viewOf(tr, "/r", w, nil)
	if len(v.Files) != 10 || v.Files[9].Destination != fmt.Sprintf("out/d%d/f%d", (n-1)%100, n-1) || v.NextOffset != 0 ||
		v.BytesDone != int64(n/2)*10+4 || v.CurrentFile != "" {
		t.Fatalf("packed: %d files, last %+v, nextOffset %d, bytesDone %d, currentFile %q", len(v.Files), v.Files[len(v.Files)-1], v.NextOffset, v.BytesDone, v.CurrentFile)
	}
	// Each file of the window costs a few allocations (its two paths, its
	// digest); the 99,990 others none.
	if allocs := testing.AllocsPerRun(5, func() { viewOf(tr, "/r", w, nil) }); allocs > 100 {
		t.Errorf("a window of 10 of %d packed files: %.0f allocations a view", n, allocs)
	}
}

// ViewPage with whenEnded lists the window only once the transfer has
// ended; ViewPages gives every transfer in creation order, each with the
// window.
func TestViewPageWhenEnded(t *testing.T) {
	s := NewState()
	a, b := bigTransfer(20), bigTransfer(5)
	a.ID, a.Seq, b.ID, b.Seq, b.State = "a", 2, "b", 1, StateCompleted
	s.transfers[a.ID], s.transfers[b.ID] = a, b
	w := &Window{Limit: 2, DirLimit: 1}
	if v, ok := s.ViewPage("a", "/r", w, true, nil); !ok || v.Files != nil || v.Dirs != nil || v.FilesTotal != 20 {
		t.Errorf("running, files when ended: %v %+v", ok, v)
	}
	if v, ok := s.ViewPage("a", "/r", w, false, nil); !ok || len(v.Files) != 2 || v.NextOffset != 2 || len(v.Dirs) != 1 || v.NextDirOffset != 1 {
		t.Errorf("running, files always: %v %+v", ok, v)
	}
	if v, ok := s.ViewPage("b", "/r", w, true, nil); !ok || len(v.Files) != 2 || v.NextOffset != 2 {
		t.Errorf("ended, files when ended: %v %+v", ok, v)
	}
	if _, ok := s.ViewPage("c", "/r", w, false, nil); ok {
		t.Error("an unknown transfer has a view")
	}
	vs, _, _ := s.ListViews("/r", w, true, nil, ListFilter{})
	if len(vs) != 2 || vs[0].ID != "b" || len(vs[0].Files) != 2 || vs[1].ID != "a" || vs[1].Files != nil || vs[1].FilesTotal != 20 {
		t.Errorf("ViewPages: %+v", vs)
	}
}
