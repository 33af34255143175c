package transfer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestFilesEntryAppliesWholeInPlace: an entry whose last event is refused
// changes nothing, though its first events were fine; the transfer's
// counts follow the files, also after a snapshot is restored; the reason of
// a failed transfer names the failed file of lowest index, whatever the
// order the failures came in.
func TestFilesEntryAppliesWholeInPlace(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	if err := a.apply(KindCreate, 1, createCmd{Transfer: newTransfer("t", 1, 2, 3, 4)}); err != nil {
		t.Fatal(err)
	}
	bad := filesCmd{ID: "t", Time: t0, Events: []FileEvent{
		{Index: 0, Kind: EventStart}, {Index: 0, Kind: EventDone, SHA256: "aa"},
		{Index: 3, Kind: EventSourceDeleted}, // not completed: refused
	}}
	if err := a.apply(KindFiles, 1, bad); !errors.Is(err, ErrBadFileEvent) {
		t.Fatalf("entry with a bad last event: %v", err)
	}
	tr, _ := a.s.Get("t")
	if tr.State != StateQueued || tr.Files[0].State != StateQueued || tr.Files[0].Started || tr.ended != 0 {
		t.Fatalf("a refused entry changed the transfer: %+v", tr)
	}
	evs := []FileEvent{
		{Index: 3, Kind: EventStart}, {Index: 3, Kind: EventFailed, Reason: "late"},
		{Index: 0, Kind: EventStart}, {Index: 0, Kind: EventDone, SHA256: "aa"},
	}
	if err := a.apply(KindFiles, 1, filesCmd{ID: "t", Time: t0, Events: evs}); err != nil {
		t.Fatal(err)
	}
	// Through a snapshot: the counts are derived again.
	b, err := a.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	s2 := NewState()
	if err := s2.Restore(b); err != nil {
		t.Fatal(err)
	}
	a.s = s2
	evs = []FileEvent{{Index: 1, Kind: EventFailed, Reason: "early"}, {Index: 2, Kind: EventStart}}
	if err := a.apply(KindFiles, 1, filesCmd{ID: "t", Time: t0, Events: evs}); err != nil {
		t.Fatal(err)
	}
	if tr, _ := a.s.Get("t"); tr.State != StateRunning {
		t.Fatalf("one file left, transfer %s", tr.State)
	}
	end := t0.Add(time.Minute)
	if err := a.apply(KindFiles, 1, filesCmd{ID: "t", Time: end, Events: []FileEvent{{Index: 2, Kind: EventDone, SHA256: "cc"}}}); err != nil {
		t.Fatal(err)
	}
	tr, _ = a.s.Get("t")
	want := "2 of 4 files failed; first: " + tr.Files[1].Source + ": early"
	if tr.State != StateFailed || tr.Reason != want || tr.Ended == nil || !tr.Ended.Equal(end) {
		t.Fatalf("transfer %s %q (ended %v), want failed %q", tr.State, tr.Reason, tr.Ended, want)
	}
}

// TestWaitView: a waiting reader is answered as soon as the transfer ends,
// with its files once ended only when asked so, and after the wait when
// it does not end.
func TestWaitView(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	if err := a.apply(KindCreate, 1, createCmd{Transfer: newTransfer("t", 5)}); err != nil {
		t.Fatal(err)
	}
	m := NewManager(Limits{}, a.s, nil, nil, nil, zerolog.Nop())
	t1 := time.Now()
	v, ok := m.WaitView(context.Background(), "t", "/r", FilesEnded, 50*time.Millisecond)
	if !ok || v.State != StateQueued || v.Files != nil || time.Since(t1) < 50*time.Millisecond {
		t.Fatalf("not ended: %+v after %v", v, time.Since(t1))
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		_ = a.s.Apply(KindFiles, 1, []byte(`{"id":"t","time":"2026-11-24T12:00:00Z","events":[{"index":0,"kind":"done","sha256":"ab"}]}`), 9)
	}()
	t1 = time.Now()
	v, ok = m.WaitView(context.Background(), "t", "/r", FilesEnded, 10*time.Second)
	if !ok || v.State != StateCompleted || len(v.Files) != 1 || v.Files[0].Destination != "out/a" || v.BytesDone != 5 {
		t.Fatalf("ended: %+v", v)
	}
	if d := time.Since(t1); d > 5*time.Second {
		t.Fatalf("answered after %v, not at the end", d)
	}
	if v, _ := m.WaitView(context.Background(), "t", "/r", FilesNone, 0); v.Files != nil || !strings.HasPrefix(v.ID, "t") {
		t.Fatalf("files none: %+v", v)
	}
	if _, ok := m.WaitView(context.Background(), "nope", "/r", FilesAll, time.Second); ok {
		t.Fatal("a missing transfer was found")
	}
}
