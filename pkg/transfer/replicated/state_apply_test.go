package replicated

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestFilesEntryAppliesWholeInPlace: an entry whose last event is refused
// changes nothing, though its first events were fine; the transfer's
// counts follow the files, also after a snapshot is restored; the reason of
// a failed transfer names the failed file of lowest index, whatever the
// order the failures came in.
func TestFilesEntryAppliesWholeInPlace(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	if err := a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t", 1, 2, 3, 4)}); err != nil {
		t.Fatal(err)
	}
	bad := FilesCmd{ID: "t", Time: t0, Events: []FileEvent{
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
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Time: t0, Events: evs}); err != nil {
		t.Fatal(err)
	}
	// Through a snapshot: the counts are derived again.
	s2 := restored(t, a.s)
	a.s = s2
	evs = []FileEvent{{Index: 1, Kind: EventFailed, Reason: "early"}, {Index: 2, Kind: EventStart}}
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Time: t0, Events: evs}); err != nil {
		t.Fatal(err)
	}
	if tr, _ := a.s.Get("t"); tr.State != StateRunning {
		t.Fatalf("one file left, transfer %s", tr.State)
	}
	end := t0.Add(time.Minute)
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Time: end, Events: []FileEvent{{Index: 2, Kind: EventDone, SHA256: "cc"}}}); err != nil {
		t.Fatal(err)
	}
	tr, _ = a.s.Get("t")
	want := "2 of 4 files failed; first: " + tr.Files[1].Source + ": early"
	if tr.State != StateFailed || tr.Reason != want || tr.Ended == nil || !tr.Ended.Equal(end) {
		t.Fatalf("transfer %s %q (ended %v), want failed %q", tr.State, tr.Reason, tr.Ended, want)
	}
}

// TestEndedTransferPacked: an ended transfer's files are packed, and read
// back the same (but for the checkpoints' hash states), through Get, a
// view, a snapshot restored, and sourceDeleted events applied later.
func TestEndedTransferPacked(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	tr := newTransfer("t", 3, 4, 5)
	tr.Request.Disposition = DispositionDelete
	if err := a.apply(KindCreate, 1, CreateCmd{Transfer: tr}); err != nil {
		t.Fatal(err)
	}
	const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	evs := []FileEvent{
		{Index: 0, Kind: EventStart}, {Index: 0, Kind: EventDone, SHA256: sum},
		{Index: 1, Kind: EventStart}, {Index: 1, Kind: EventFailed, Reason: "disk on fire"},
		{Index: 2, Kind: EventStart}, {Index: 2, Kind: EventDone, SHA256: sum},
	}
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Time: t0, Events: evs}); err != nil {
		t.Fatal(err)
	}
	a.s.mu.RLock()
	packed := a.s.transfers["t"].files != nil && a.s.transfers["t"].Files == nil
	a.s.mu.RUnlock()
	if !packed {
		t.Fatal("the ended transfer's files are not packed")
	}
	got, _ := a.s.Get("t")
	want := []File{
		{Source: "/r/in/t/a", Destination: "/r/out/a", Bytes: 3, State: StateCompleted, SHA256: sum, Started: true},
		{Source: "/r/in/t/b", Destination: "/r/out/b", Bytes: 4, State: StateFailed, Reason: "disk on fire", Started: true},
		{Source: "/r/in/t/c", Destination: "/r/out/c", Bytes: 5, State: StateCompleted, SHA256: sum, Started: true},
	}
	for i := range want {
		if !reflect.DeepEqual(got.Files[i], want[i]) {
			t.Fatalf("file %d: %+v, want %+v", i, got.Files[i], want[i])
		}
	}
	if !got.SourcesToDelete() {
		t.Fatal("no sources to delete")
	}
	if v, _ := a.s.ViewPage("t", "/r", &Window{Limit: 3, DirLimit: 1}, false, nil); len(v.Files) != 3 || v.Files[2].Destination != "out/c" || v.BytesDone != 8 || v.Files[0].SHA256 != sum {
		t.Fatalf("view %+v", v)
	}
	// Only sourceDeleted events, and only of completed files.
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Time: t0, Events: []FileEvent{{Index: 0, Kind: EventSourceDeleted}, {Index: 1, Kind: EventSourceDeleted}}}); !errors.Is(err, ErrBadFileEvent) {
		t.Fatalf("source of a failed file deleted: %v", err)
	}
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Time: t0, Events: []FileEvent{{Index: 0, Kind: EventSourceDeleted}}}); err != nil {
		t.Fatal(err)
	}
	s2 := restored(t, a.s)
	a.s = s2
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Time: t0, Events: []FileEvent{{Index: 2, Kind: EventSourceDeleted}}}); err != nil {
		t.Fatal(err)
	}
	got, _ = a.s.Get("t")
	want[0].SourceDeleted, want[2].SourceDeleted = true, true
	if !reflect.DeepEqual(got.Files, want) || got.SourcesToDelete() || got.State != StateFailed {
		t.Fatalf("after restore: %s %+v", got.State, got.Files)
	}
}

// A recovery timeout in a request is a Go duration string or a number of
// seconds, as in the properties file; never nanoseconds.
func TestRequestDurationInSecondsOrGoForm(t *testing.T) {
	for _, c := range []struct {
		json string
		want time.Duration
		ok   bool
	}{
		{`"90s"`, 90 * time.Second, true},
		{`"-1s"`, -time.Second, true},
		{`60`, time.Minute, true},
		{`1.5`, 1500 * time.Millisecond, true},
		{`-1`, -time.Second, true},
		{`0`, 0, true},
		{`"soon"`, 0, false},
		{`true`, 0, false},
		{`1e300`, 0, false},
	} {
		var d Duration
		err := json.Unmarshal([]byte(c.json), &d)
		if (err == nil) != c.ok || (c.ok && time.Duration(d) != c.want) {
			t.Errorf("%s: %v, %v; want %v (ok %v)", c.json, time.Duration(d), err, c.want, c.ok)
		}
	}
}
