package replicated

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// snapshotBytes is s's snapshot as raft writes it out.
func snapshotBytes(s *State) ([]byte, error) {
	snap, err := s.Snapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Release()
	var b bytes.Buffer
	if err := snap.WriteJSON(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// restoreBytes restores the snapshot b into s, refusing anything after it
// as json.Unmarshal did.
func restoreBytes(s *State, b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	commit, err := s.Restore(dec)
	if err != nil {
		return err
	}
	if t, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%v %v after the snapshot", t, err)
	}
	commit()
	return nil
}

// oldSnapshot and oldSnapshotJSON are the snapshot as builds before the
// streamed one wrote it, kept as they were: what the streamed snapshot must
// write byte for byte, for older builds of a rolling upgrade to read.
type oldSnapshot struct {
	Transfers []*transferJSON `json:"transfers"`
}

func oldSnapshotJSON(s *State) ([]byte, error) {
	s.mu.RLock()
	all := make([]*Transfer, 0, len(s.transfers))
	for _, t := range s.transfers {
		all = append(all, t.clone())
	}
	s.mu.RUnlock()
	snap := oldSnapshot{Transfers: make([]*transferJSON, 0, len(all))}
	for _, t := range all {
		snap.Transfers = append(snap.Transfers, t.escaped())
	}
	sort.Slice(snap.Transfers, func(i, j int) bool { return seqBefore((*Transfer)(snap.Transfers[i]), (*Transfer)(snap.Transfers[j])) })
	return json.Marshal(snap)
}

// oldRestore is the restore of builds before the streamed one.
func oldRestore(s *State, b []byte) error {
	var snap oldSnapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("decode transfer snapshot: %w", err)
	}
	m := make(map[string]*Transfer, len(snap.Transfers))
	for i, tj := range snap.Transfers {
		if tj == nil {
			return fmt.Errorf("decode transfer snapshot: transfer %d is null", i)
		}
		if err := tj.unescape(); err != nil {
			return fmt.Errorf("decode transfer snapshot: %w", err)
		}
		t := (*Transfer)(tj)
		t.recount()
		t.tabulate()
		m[t.ID] = t
	}
	s.mu.Lock()
	s.transfers = m
	s.mu.Unlock()
	return nil
}

// snapshotState is fuzzBase's state (live transfers, one with names that
// are not UTF-8 and directories; ended ones, packed) and more: an ended
// recursive transfer with directories and odd names, packed; an ended one
// that cannot be packed; transfers without files, with and without a
// directory whose name is escaped; names and reasons that JSON escapes;
// and two transfers of the same Seq.
func snapshotState(tb testing.TB) *State {
	s := fuzzBase(tb)
	ended := t0.Add(time.Hour)
	add := func(t *Transfer) {
		t.recount()
		t.tabulate()
		s.transfers[t.ID] = t
	}
	tree := fuzzTransfer("tree", "a\xff", "b%41", "sub/c", "<&>")
	tree.Seq, tree.State, tree.Ended = 200, StateCompleted, &ended
	tree.Dirs = []Dir{{Source: "/r/in/tree/sub", Destination: "/r/out/sub", State: StateCompleted},
		{Source: "/r/in/tree/e\x80", Destination: "/r/out/e\x80", State: StateCompleted}}
	for i := range tree.Files {
		tree.Files[i].State, tree.Files[i].SHA256, tree.Files[i].Started = StateCompleted, sha, true
	}
	tree.Files[3].SourceDeleted = true
	add(&tree)
	if tree.files == nil {
		tb.Fatal("tree not in a table")
	}
	failed := fuzzTransfer("failed", "x", "y")
	failed.Seq, failed.State, failed.Reason, failed.Ended = 201, StateFailed, "file x: disk <full> & gone", &ended
	failed.Files[0].State, failed.Files[0].Reason = StateFailed, "disk <full>"
	failed.Files[1].State, failed.Files[1].SHA256 = StateCompleted, strings.ToUpper(sha) // not packed: upper case
	add(&failed)
	if _, odd := failed.files.odd[1]; !odd {
		tb.Fatal("failed's upper-case digest packed")
	}
	emptyOdd := fuzzTransfer("emptyodd")
	emptyOdd.Seq, emptyOdd.Dirs = 202, []Dir{{Source: "/r/in/emptyodd/\xfe", Destination: "/r/out/\xfe"}}
	add(&emptyOdd)
	empty := fuzzTransfer("empty")
	empty.Seq, empty.Dirs = 203, []Dir{{Source: "/r/in/empty/d", Destination: "/r/out/d"}}
	add(&empty)
	for _, id := range []string{"seq-b", "seq-a"} {
		tr := fuzzTransfer(id, "f")
		tr.Seq = 204
		add(&tr)
	}
	return s
}

// The streamed snapshot is the bytes json.Marshal wrote, byte for byte.
func TestSnapshotWritesAsBefore(t *testing.T) {
	for name, s := range map[string]*State{"empty": NewState(), "full": snapshotState(t)} {
		want, err := oldSnapshotJSON(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := snapshotBytes(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: streamed snapshot\n%s\nwant\n%s", name, got, want)
		}
	}
}

// A snapshot written by the earlier encoder restores to the same state.
func TestRestoreOfSnapshotWrittenBefore(t *testing.T) {
	s := snapshotState(t)
	old, err := oldSnapshotJSON(s)
	if err != nil {
		t.Fatal(err)
	}
	r := NewState()
	if err := restoreBytes(r, old); err != nil {
		t.Fatal(err)
	}
	if got, want := r.List(), s.List(); !reflect.DeepEqual(got, want) {
		t.Errorf("restored %+v\nwant %+v", got, want)
	}
	checkCounts(t, r)
	for id, tr := range s.transfers {
		if tr.files == nil || r.transfers[id].files == nil {
			t.Errorf("%s: files not in a table (state %v, restored %v)", id, tr.files != nil, r.transfers[id].files != nil)
		}
	}
	if b, _ := snapshotBytes(r); !bytes.Equal(b, old) {
		t.Errorf("restored snapshot\n%s\nwant\n%s", b, old)
	}
}

// The streamed restore accepts and refuses what json.Unmarshal did, and
// gives the same state: keys matched case aside, in any order, unknown ones
// skipped, a key given twice inside a transfer, null for no state.
func TestRestoreReadsAsBefore(t *testing.T) {
	for _, snap := range []string{
		`null`,
		`{}`,
		`{"transfers":null}`,
		`{"transfers":[]}`,
		`{"x":{"transfers":[{"id":"no"}]},"transfers":[{"id":"a","seq":1,"state":"queued","files":[{"source":"/a","destination":"/b"}]}],"y":[1,"]",{}]}`,
		`{"Transfers":[{"id":"a","seq":2}],"TRANSFERS":[{"id":"b","seq":1},{"id":"c","seq":1}]}`,
		`{"transfers":[{"id":"a","seq":2}],"transfers":null}`,
		`{"transfers":[{"id":"a","seq":1},{"id":"a","seq":3,"state":"completed","files":[{"source":"/a","destination":"/b","state":"completed"}]}]}`,
		`{"transfers":[{"ID":"a","Seq":1,"unknown":[{"x":null}],"files":[{"source":"\u0000%FF","destination":"/d"}]}]}`,
		`{"transfers":[{"id":"a","seq":"1"}]}`,
		`{"transfers":[{"files":[{"source":"/a","destination":"/b"}],"id":"a","seq":1,"x":{"files":[1]}}]}`,
		`{"transfers":[{"id":"a","files":[]}]}`,
		`{"transfers":[{"id":"a\u003c","request":{"sources":["\u0000%FF"],"destination":"d"},"dirs":[{"source":"\u0000%FE","destination":"/d"}],"seq":1}]}`,
		`{"transfers":[{"id":"a","files":{}}]}`,
		`{"transfers":[{"id":"a","files":[1]}]}`,
		`{"transfers":[{"id":"a","files":[{"bytes":"1"}]}]}`,
		`{"transfers":[{"id":"a","files":[{"source":"/a"}}]}`,
		`{"transfers":[{"id":"a","seq":-1}]}`,
		`{"transfers":[{"id":"a",}]}`,
		`{"transfers":["a"]}`,
		`{"transfers":[null]}`,
		`{"transfers":{}}`,
		`{"transfers":[{"id":"a","files":[{"source":"\u0000%G0","destination":"/d"}]}]}`,
		`{"transfers":[}`,
		`{"transfers":[],}`,
		`{"transfers":[]`,
		`{"x":[}`,
		`[]`,
		`"transfers"`,
		``,
	} {
		old, streamed := fuzzBase(t), fuzzBase(t)
		errOld, errStreamed := oldRestore(old, []byte(snap)), restoreBytes(streamed, []byte(snap))
		if (errOld != nil) != (errStreamed != nil) {
			t.Errorf("%s: restore %v, before %v", snap, errStreamed, errOld)
			continue
		}
		a, _ := oldSnapshotJSON(old)
		b, _ := snapshotBytes(streamed)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: restored\n%s\nbefore\n%s", snap, b, a)
		}
	}
}

// A second "files" of a transfer replaces the first (json.Unmarshal
// decoded it into the first one's files), as null or as a list.
func TestRestoreSecondFilesReplaces(t *testing.T) {
	s := NewState()
	if err := restoreBytes(s, []byte(`{"transfers":[{"id":"a","files":[{"source":"/a","destination":"/b"},{"source":"/c","destination":"/d"}],"FILES":[{"source":"/e","destination":"/f","bytes":3}]},`+
		`{"id":"b","seq":1,"files":[{"source":"/a","destination":"/b"}],"files":null}]}`)); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Get("a")
	b, _ := s.Get("b")
	if len(a.Files) != 1 || a.Files[0].Source != "/e" || a.Files[0].Bytes != 3 || len(b.Files) != 0 {
		t.Fatalf("restored a %+v, b %+v", a.Files, b.Files)
	}
}

// A second "transfers" replaces the first (json.Unmarshal decoded it into
// the first one's transfers).
func TestRestoreSecondTransfersReplaces(t *testing.T) {
	s := NewState()
	if err := restoreBytes(s, []byte(`{"transfers":[{"id":"a","seq":2}],"transfers":[{"seq":5}]}`)); err != nil {
		t.Fatal(err)
	}
	if got := s.List(); len(got) != 1 || got[0].ID != "" || got[0].Seq != 5 {
		t.Fatalf("restored %+v", got)
	}
}

// Restore reads one JSON value and no further, and changes nothing until
// its commit.
func TestRestoreReadsOneValueAndCommits(t *testing.T) {
	s := fuzzBase(t)
	before, _ := snapshotBytes(s)
	dec := json.NewDecoder(strings.NewReader(`{"transfers":[{"id":"a","seq":1}]} ,"next"`))
	commit, err := s.Restore(dec)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := snapshotBytes(s); !bytes.Equal(b, before) {
		t.Fatalf("the state changed before the commit:\n%s", b)
	}
	commit()
	if got := ids(s); len(got) != 1 || got[0] != "a" {
		t.Fatalf("committed %v, want [a]", got)
	}
	// What follows is the caller's to read (pkg/ha's envelope).
	if _, err := dec.Token(); err == nil {
		t.Fatal(`a "," at the top level is not a token`)
	}
}

// A snapshot's writer reads only what Snapshot captured: the state may
// change, or be replaced, between the two.
func TestSnapshotWrittenAfterChanges(t *testing.T) {
	s := snapshotState(t)
	want, _ := snapshotBytes(s)
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	a := &applier{t: t, s: s, index: 1000}
	if err := a.apply(KindFiles, 2, FilesCmd{ID: "run", Time: t0, Events: []FileEvent{{Index: 2, Kind: EventStart}}}); err != nil {
		t.Fatal(err)
	}
	if err := a.apply(KindFiles, 2, FilesCmd{ID: "done", Events: []FileEvent{{Index: 0, Kind: EventSourceDeleted}}}); err != nil {
		t.Fatal(err)
	}
	if err := restoreBytes(s, []byte(`null`)); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := snap.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("written after the state changed:\n%s\nwant\n%s", b.Bytes(), want)
	}
}

// A writer's error ends the snapshot with it.
func TestSnapshotWriteError(t *testing.T) {
	snap, err := snapshotState(t).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	for _, n := range []int{0, 1, 100, 1000} {
		w := &failAfter{n: n}
		if err := snap.WriteJSON(w); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("writer failing after %d bytes: %v", n, err)
		}
	}
}

type failAfter struct{ n, written int }

func (w *failAfter) Write(p []byte) (int, error) {
	if w.written+len(p) > w.n {
		return 0, fmt.Errorf("disk full")
	}
	w.written += len(p)
	return len(p), nil
}
