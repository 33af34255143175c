package replicated

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

func applyOK(t *testing.T, s *State, kind string, epoch uint64, v any) {
	t.Helper()
	if res := s.Apply(kind, epoch, encodeJSON(v), 1); res != nil {
		if err, ok := res.(error); ok {
			t.Fatalf("%s: %v", kind, err)
		}
	}
}

// A move to another group: files that have not ended start again from 0
// (their checkpointed bytes counted as resent), those that had started are
// in doubt at the group left, completed ones stay, directories are made
// again; a reconciliation records the outcome once, and the state writes
// and restores it.
func TestSwitchAndReconcile(t *testing.T) {
	s := NewState()
	tr := fuzzTransfer("x", "a", "b", "c", "d")
	tr.Request.DestinationAgent = "PAYMENTS"
	tr.Dirs = []Dir{{Source: "/r/in/x/sub", Destination: "/r/out/sub"}}
	applyOK(t, s, KindCreate, 1, CreateCmd{Transfer: tr, MaxQueued: 10, HistoryCount: -1})
	applyOK(t, s, KindStart, 1, StartCmd{ID: "x", Time: t0})
	cp := checkpoint.Checkpoint{Offset: 5, Hash: []byte{1, 2, 3}, Source: checkpoint.Source{Size: 10, ModTime: 1, Inode: 7}}
	applyOK(t, s, KindFiles, 1, FilesCmd{ID: "x", Time: t0, Dirs: []DirEvent{{Index: 0, Kind: EventDone}}, Events: []FileEvent{
		{Index: 0, Kind: EventStart}, {Index: 0, Kind: EventDone, SHA256: sha},
		{Index: 1, Kind: EventStart}, {Index: 1, Kind: EventCheckpoint, Checkpoint: cp},
		{Index: 2, Kind: EventStart},
	}})
	for _, bad := range []SwitchCmd{
		{ID: "x", From: "OTHER", To: "PAYMENTS_DR"},
		{ID: "x", From: "PAYMENTS", To: "PAYMENTS"},
		{ID: "x", From: "PAYMENTS", To: ""},
		{ID: "nope", From: "PAYMENTS", To: "PAYMENTS_DR"},
	} {
		if err, _ := s.Apply(KindSwitch, 1, encodeJSON(bad), 1).(error); err == nil {
			t.Errorf("switch %+v accepted", bad)
		}
	}
	applyOK(t, s, KindSwitch, 1, SwitchCmd{ID: "x", From: "PAYMENTS", To: "PAYMENTS_DR", Reason: "lost", Time: t0})
	got, _ := s.Get("x")
	if got.Group() != "PAYMENTS_DR" || got.Switched == nil || got.Switched.Reason != "lost" {
		t.Fatalf("group %q switched %+v", got.Group(), got.Switched)
	}
	if got.Files[0].State != StateCompleted {
		t.Errorf("a completed file changed: %+v", got.Files[0])
	}
	for _, i := range []int{1, 2, 3} {
		if f := got.Files[i]; f.Started || f.Checkpoint.Offset != 0 || f.State != StateQueued {
			t.Errorf("file %d after the move: %+v; want queued, not started, no checkpoint", i, f)
		}
	}
	if got.BytesResent != 5 {
		t.Errorf("bytesResent %d, want the 5 checkpointed bytes", got.BytesResent)
	}
	if want := []Doubt{{Index: 1, Group: "PAYMENTS"}, {Index: 2, Group: "PAYMENTS"}}; !reflect.DeepEqual(got.Doubts, want) {
		t.Errorf("doubts %+v, want %+v", got.Doubts, want)
	}
	if got.Dirs[0].State != StateQueued {
		t.Errorf("directory %+v, want queued to be made again", got.Dirs[0])
	}
	if ids := s.WithDoubts(); !reflect.DeepEqual(ids, []string{"x"}) {
		t.Errorf("WithDoubts %v", ids)
	}

	// Reconciliation: an unknown outcome is refused whole; the group's
	// answers are recorded once.
	if err, _ := s.Apply(KindReconcile, 1, encodeJSON(ReconcileCmd{ID: "x", Group: "PAYMENTS", Results: map[int]string{1: "maybe"}}), 1).(error); !errors.Is(err, ErrBadFileEvent) {
		t.Errorf("an unknown outcome: %v", err)
	}
	applyOK(t, s, KindReconcile, 1, ReconcileCmd{ID: "x", Group: "OTHER", Results: map[int]string{1: DoubtAbsent}})
	applyOK(t, s, KindReconcile, 1, ReconcileCmd{ID: "x", Group: "PAYMENTS", Results: map[int]string{1: DoubtDuplicate}})
	applyOK(t, s, KindReconcile, 1, ReconcileCmd{ID: "x", Group: "PAYMENTS", Results: map[int]string{1: DoubtAbsent, 2: DoubtAbsent}})
	got, _ = s.Get("x")
	if want := []Doubt{{Index: 1, Group: "PAYMENTS", Outcome: DoubtDuplicate}, {Index: 2, Group: "PAYMENTS", Outcome: DoubtAbsent}}; !reflect.DeepEqual(got.Doubts, want) {
		t.Errorf("doubts %+v, want %+v", got.Doubts, want)
	}
	if ids := s.WithDoubts(); len(ids) != 0 {
		t.Errorf("WithDoubts %v after reconciliation", ids)
	}

	// The snapshot keeps the move and the doubts.
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := snap.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	r := NewState()
	commit, err := r.Restore(json.NewDecoder(&b))
	if err != nil {
		t.Fatal(err)
	}
	commit()
	back, _ := r.Get("x")
	if !reflect.DeepEqual(back.Switched, got.Switched) || !reflect.DeepEqual(back.Doubts, got.Doubts) || back.Group() != "PAYMENTS_DR" {
		t.Fatalf("restored: switched %+v doubts %+v", back.Switched, back.Doubts)
	}
}

// Back at a group it left: its files in doubt there (not ended) are no
// longer in doubt but started (the group says whether it holds them);
// those started at the group left now are in doubt there.
func TestSwitchBack(t *testing.T) {
	s := NewState()
	tr := fuzzTransfer("x", "a", "b", "c")
	tr.Request.DestinationAgent = "PAYMENTS"
	applyOK(t, s, KindCreate, 1, CreateCmd{Transfer: tr, MaxQueued: 10, HistoryCount: -1})
	applyOK(t, s, KindStart, 1, StartCmd{ID: "x", Time: t0})
	applyOK(t, s, KindFiles, 1, FilesCmd{ID: "x", Time: t0, Events: []FileEvent{{Index: 0, Kind: EventStart}, {Index: 1, Kind: EventStart}}})
	applyOK(t, s, KindSwitch, 1, SwitchCmd{ID: "x", From: "PAYMENTS", To: "DR", Time: t0})
	applyOK(t, s, KindFiles, 1, FilesCmd{ID: "x", Time: t0, Events: []FileEvent{{Index: 0, Kind: EventStart}, {Index: 0, Kind: EventDone, SHA256: sha}, {Index: 2, Kind: EventStart}}})
	applyOK(t, s, KindSwitch, 1, SwitchCmd{ID: "x", From: "DR", To: "PAYMENTS", Time: t0})
	got, _ := s.Get("x")
	want := []Doubt{{Index: 0, Group: "PAYMENTS"}, {Index: 2, Group: "DR"}}
	if !reflect.DeepEqual(got.Doubts, want) {
		t.Fatalf("doubts %+v, want %+v (file 0 completed at DR stays in doubt at PAYMENTS; file 1 is back; file 2 started at DR)", got.Doubts, want)
	}
	if !got.Files[1].Started || got.Files[2].Started {
		t.Fatalf("started: file 1 %v (want true: back where it was in doubt), file 2 %v (want false)", got.Files[1].Started, got.Files[2].Started)
	}
}

// An ended transfer to another agent is untold until KindTold records its
// end was delivered; until then it is listed, and never pruned.
func TestTold(t *testing.T) {
	s := NewState()
	tr := fuzzTransfer("x", "a")
	tr.Request.DestinationAgent = "PAYMENTS"
	applyOK(t, s, KindCreate, 1, CreateCmd{Transfer: tr, MaxQueued: 10, HistoryCount: -1})
	if err, _ := s.Apply(KindTold, 1, encodeJSON(ToldCmd{ID: "x"}), 1).(error); err == nil {
		t.Fatal("told of the end of a transfer that has not ended")
	}
	applyOK(t, s, KindCancel, 1, ReasonCmd{ID: "x", Time: t0, Reason: "test"})
	if ids := s.Untold(); len(ids) != 1 || ids[0] != "x" {
		t.Fatalf("untold %v", ids)
	}
	if n := s.Apply(KindPrune, 1, encodeJSON(PruneCmd{Time: t0, IDs: []string{"x"}}), 1); n != 0 {
		t.Fatalf("pruned %v while its end was untold", n)
	}
	applyOK(t, s, KindTold, 1, ToldCmd{ID: "x"})
	if ids := s.Untold(); len(ids) != 0 {
		t.Fatalf("untold %v after told", ids)
	}
	if n := s.Apply(KindPrune, 1, encodeJSON(PruneCmd{Time: t0, IDs: []string{"x"}}), 1); n != 1 {
		t.Fatalf("pruned %v once told, want 1", n)
	}
}
