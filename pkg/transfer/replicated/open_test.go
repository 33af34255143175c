package replicated

import (
	"errors"
	"testing"
)

// openIn creates tr open through a KindCreateOpen entry and returns the
// index of that entry (the creation's Seq).
func openIn(t *testing.T, a *applier, tr Transfer) uint64 {
	t.Helper()
	v, ok := CompactCreateV3(CreateCmd{Transfer: tr, HistoryCount: -1})
	if !ok {
		t.Fatal("CompactCreateV3 refused the transfer")
	}
	if err := a.apply(KindCreateOpen, 1, v); err != nil {
		t.Fatal(err)
	}
	return a.index
}

func appendIn(a *applier, c AppendCmd) error {
	v, ok := CompactAppend(c)
	if !ok {
		a.t.Fatalf("CompactAppend refused %+v", c)
	}
	return a.apply(KindAppend, 1, v)
}

// TestCreateInSeveralEntries: a transfer created open takes the files of
// each append in order, does not count as pending work until sealed (the
// scheduler's Pending shows it open), and is then an ordinary queued
// transfer whose bytes are those of every chunk; it survives a snapshot
// open or sealed.
func TestCreateInSeveralEntries(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	whole := newTransfer("big", 1, 2, 3, 4, 5)
	whole.Dirs = []Dir{{Source: "/in/d1", Destination: "/out/d1"}, {Source: "/in/d2", Destination: "/out/d2"}}
	first := whole
	first.Files, first.Dirs = whole.Files[:2], whole.Dirs[:1]
	seq := openIn(t, a, first)
	if err := appendIn(a, AppendCmd{ID: "big", Seq: seq, Files: whole.Files[2:4], Dirs: whole.Dirs[1:]}); err != nil {
		t.Fatal(err)
	}
	tr, _ := a.s.Get("big")
	if !tr.Open || tr.State != StateQueued || len(tr.Files) != 4 || len(tr.Dirs) != 2 || tr.Bytes != 1+2+3+4 {
		t.Fatalf("open transfer after one append: open %v, %s, %d files, %d dirs, %d bytes", tr.Open, tr.State, len(tr.Files), len(tr.Dirs), tr.Bytes)
	}
	// Open, through a snapshot: still open, and the next append still
	// belongs to it.
	a.s = restored(t, a.s)
	if err := appendIn(a, AppendCmd{ID: "big", Seq: seq, Files: whole.Files[4:], Seal: true}); err != nil {
		t.Fatal(err)
	}
	tr, _ = a.s.Get("big")
	if tr.Open || tr.State != StateQueued || tr.Bytes != 15 {
		t.Fatalf("sealed: open %v, %s, %d bytes", tr.Open, tr.State, tr.Bytes)
	}
	for i, f := range tr.Files {
		if f.Source != whole.Files[i].Source || f.Destination != whole.Files[i].Destination || f.State != StateQueued {
			t.Fatalf("file %d: %+v, want %+v queued", i, f, whole.Files[i])
		}
	}
	for i, d := range tr.Dirs {
		if d.Source != whole.Dirs[i].Source || d.State != StateQueued {
			t.Fatalf("dir %d: %+v", i, d)
		}
	}
	// Sealed: no more appends.
	if err := appendIn(a, AppendCmd{ID: "big", Seq: seq, Files: whole.Files[:1]}); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("append after the seal: %v, want ErrNotOpen", err)
	}
	if s2 := restored(t, a.s); func() bool { tr, _ := s2.Get("big"); return tr.Open || len(tr.Files) != 5 }() {
		t.Fatal("the sealed transfer did not survive a snapshot")
	}
}

// TestOpenCreationReplacedDiscardedOrStale: a client's retry of a request
// whose creation was interrupted creates it anew (the old creation's
// appends are then refused), a discard removes an open transfer and
// nothing else, and a retry of a sealed transfer is the transfer.
func TestOpenCreationReplacedDiscardedOrStale(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	tr := newTransfer("x", 1, 2)
	old := openIn(t, a, tr)
	again := openIn(t, a, tr) // the retry of the same request
	if again == old {
		t.Fatal("same index")
	}
	if err := appendIn(a, AppendCmd{ID: "x", Seq: old, Files: tr.Files}); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("append of the replaced creation: %v, want ErrNotOpen", err)
	}
	got, _ := a.s.Get("x")
	if got.Seq != again || len(got.Files) != 2 {
		t.Fatalf("after the retry: seq %d, %d files; want seq %d, 2 files", got.Seq, len(got.Files), again)
	}
	// A different request under the same id is refused, open or not.
	other := newTransfer("x", 7)
	other.Request.Destination = "elsewhere"
	v, _ := CompactCreateV3(CreateCmd{Transfer: other, HistoryCount: -1})
	if err := a.apply(KindCreateOpen, 1, v); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("another request under the open id: %v", err)
	}
	// A discard that does not name this creation changes nothing; one
	// that does removes the transfer.
	if err := appendIn(a, AppendCmd{ID: "x", Seq: old, Discard: true}); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("discard of the replaced creation: %v", err)
	}
	if err := appendIn(a, AppendCmd{ID: "x", Seq: again, Discard: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.s.Get("x"); ok {
		t.Fatal("discarded transfer still there")
	}
	// A sealed creation is the transfer: a retry gets it back.
	seq := openIn(t, a, tr)
	if err := appendIn(a, AppendCmd{ID: "x", Seq: seq, Seal: true}); err != nil {
		t.Fatal(err)
	}
	v, _ = CompactCreateV3(CreateCmd{Transfer: tr, HistoryCount: -1})
	a.index++
	res := a.s.Apply(KindCreateOpen, 1, mustJSON(t, v), a.index)
	if got, ok := res.(*Transfer); !ok || got.Seq != seq || got.Open {
		t.Fatalf("retry of a sealed transfer: %v, want the transfer of seq %d", res, seq)
	}
	// A discard of a sealed transfer is refused.
	if err := appendIn(a, AppendCmd{ID: "x", Seq: seq, Discard: true}); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("discard of a sealed transfer: %v", err)
	}
	// An open transfer that was cancelled meanwhile takes no more files,
	// and a retry gets the cancelled transfer, not a new one.
	c := openIn(t, a, newTransfer("y", 3))
	if err := a.apply(KindCancel, 1, ReasonCmd{ID: "y", Time: t0, Reason: "cancelled by user"}); err != nil {
		t.Fatal(err)
	}
	if err := appendIn(a, AppendCmd{ID: "y", Seq: c, Files: tr.Files}); !errors.Is(err, ErrEnded) {
		t.Fatalf("append to a cancelled open transfer: %v, want ErrEnded", err)
	}
	v, _ = CompactCreateV3(CreateCmd{Transfer: newTransfer("y", 3), HistoryCount: -1})
	a.index++
	if got, ok := a.s.Apply(KindCreateOpen, 1, mustJSON(t, v), a.index).(*Transfer); !ok || got.State != StateCancelled {
		t.Fatalf("retry of a cancelled open transfer: %+v", got)
	}
}

// TestDecodeAppendRefusesNonsense: an entry that is not an append's is
// refused whole.
func TestDecodeAppendRefusesNonsense(t *testing.T) {
	for _, data := range []string{
		`{"seq":1}`, // no id
		`{"id":"x","seq":1,"discard":true,"sourceRoot":"/a","destinationRoot":"/b","sources":["f"],"bytes":[1]}`,
		`{"id":"x","seq":1,"sourceRoot":"/a","destinationRoot":"/b","sources":["f","g"],"bytes":[1]}`,
		`[]`,
	} {
		if c, err := DecodeAppend([]byte(data)); err == nil {
			t.Errorf("%s decoded to %+v", data, c)
		}
	}
}
