package replicated

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

type applier struct {
	t     *testing.T
	s     *State
	index uint64
}

func (a *applier) apply(kind string, epoch uint64, v any) error {
	a.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		a.t.Fatal(err)
	}
	a.index++
	res := a.s.Apply(kind, epoch, b, a.index)
	if err, ok := res.(error); ok {
		return err
	}
	return nil
}

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func newTransfer(id string, sizes ...int64) Transfer {
	t := Transfer{ID: id, Created: t0, Request: Request{Sources: []string{"in/" + id}, Destination: "out/"}}
	for i, n := range sizes {
		t.Files = append(t.Files, File{Source: "/r/in/" + id + "/" + string(rune('a'+i)), Destination: "/r/out/" + string(rune('a'+i)), Bytes: n})
	}
	return t
}

func src(size int64) checkpoint.Source { return checkpoint.Source{Size: size, ModTime: 1, Inode: 7} }

func TestCreateQueueLimitAndIdempotence(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	if err := a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t1", 10), MaxQueued: 2}); err != nil {
		t.Fatal(err)
	}
	// The same request again (a retry after a failover) is the same transfer.
	if err := a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t1", 10), MaxQueued: 2}); err != nil {
		t.Fatalf("retried create: %v", err)
	}
	other := newTransfer("t1", 10)
	other.Request.Destination = "elsewhere/"
	if err := a.apply(KindCreate, 1, CreateCmd{Transfer: other, MaxQueued: 2}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("different request, same id: %v", err)
	}
	if err := a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t2", 10), MaxQueued: 2}); err != nil {
		t.Fatal(err)
	}
	if err := a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t3", 10), MaxQueued: 2}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third transfer with maxQueued 2: %v", err)
	}
	if n := len(a.s.List()); n != 2 {
		t.Fatalf("%d transfers, want 2", n)
	}
	tr, _ := a.s.Get("t1")
	if tr.State != StateQueued || tr.Bytes != 10 || tr.Files[0].State != StateQueued {
		t.Fatalf("created transfer %+v", tr)
	}
}

func TestCheckpointsFailoversAndCompletion(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	if err := a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t", 100, 5)}); err != nil {
		t.Fatal(err)
	}
	if err := a.apply(KindStart, 1, StartCmd{ID: "t"}); err != nil {
		t.Fatal(err)
	}
	cp := func(off int64) FileEvent {
		return FileEvent{Index: 0, Kind: EventCheckpoint, Checkpoint: checkpoint.Checkpoint{Offset: off, Source: src(100)}}
	}
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Events: []FileEvent{{Index: 0, Kind: EventStart}, cp(40)}}); err != nil {
		t.Fatal(err)
	}
	// A failover: the new active starts it under epoch 2, resending 10 bytes.
	if err := a.apply(KindStart, 2, StartCmd{ID: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := a.apply(KindFiles, 2, FilesCmd{ID: "t", Events: []FileEvent{{Index: 0, Kind: EventStart, Resent: 10}}}); err != nil {
		t.Fatal(err)
	}
	// Backwards is refused, and the whole entry with it.
	err := a.apply(KindFiles, 2, FilesCmd{ID: "t", Events: []FileEvent{{Index: 1, Kind: EventDone, SHA256: "x"}, cp(30)}})
	if !errors.Is(err, checkpoint.ErrBackwards) {
		t.Fatalf("backward checkpoint: %v", err)
	}
	if tr, _ := a.s.Get("t"); tr.Files[1].State == StateCompleted {
		t.Fatalf("a refused entry was partly applied")
	}
	if err := a.apply(KindFiles, 2, FilesCmd{ID: "t", Events: []FileEvent{cp(80)}}); err != nil {
		t.Fatal(err)
	}
	tr, _ := a.s.Get("t")
	if tr.Failovers != 1 || tr.BytesResent != 10 || tr.BytesDone() != 80 || tr.Files[0].Checkpoint.Epoch != 2 {
		t.Fatalf("after failover: failovers %d resent %d done %d epoch %d", tr.Failovers, tr.BytesResent, tr.BytesDone(), tr.Files[0].Checkpoint.Epoch)
	}
	done := FilesCmd{ID: "t", Time: t0.Add(time.Minute), Events: []FileEvent{
		{Index: 0, Kind: EventDone, SHA256: "aa"}, {Index: 1, Kind: EventDone, SHA256: "bb"},
	}}
	if err := a.apply(KindFiles, 2, done); err != nil {
		t.Fatal(err)
	}
	tr, _ = a.s.Get("t")
	if tr.State != StateCompleted || tr.Ended == nil || tr.BytesDone() != 105 {
		t.Fatalf("completed transfer %+v", tr)
	}
	// A completion replayed after a failover changes nothing and is no error.
	if err := a.apply(KindFiles, 3, FilesCmd{ID: "t", Events: []FileEvent{{Index: 0, Kind: EventDone, SHA256: "aa"}}}); !errors.Is(err, ErrEnded) {
		// the transfer has ended: the entry is refused as a whole, harmlessly
		t.Fatalf("replayed completion on an ended transfer: %v", err)
	}
	if tr2, _ := a.s.Get("t"); tr2.Files[0].SHA256 != "aa" || tr2.State != StateCompleted {
		t.Fatalf("replay changed the transfer: %+v", tr2)
	}
}

func TestReplayedFileCompletionIsHarmless(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	_ = a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t", 1, 1)})
	ev := FileEvent{Index: 0, Kind: EventDone, SHA256: "aa"}
	for i := 0; i < 2; i++ {
		if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Events: []FileEvent{ev}}); err != nil {
			t.Fatalf("completion %d: %v", i, err)
		}
	}
	tr, _ := a.s.Get("t")
	if tr.Files[0].State != StateCompleted || tr.State != StateRunning {
		t.Fatalf("after a replayed completion: %+v", tr)
	}
}

func TestFailedFileFailsTransferWithReason(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	_ = a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t", 1, 1)})
	err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Events: []FileEvent{
		{Index: 0, Kind: EventFailed, Reason: "source changed"},
		{Index: 1, Kind: EventDone, SHA256: "bb"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := a.s.Get("t")
	if tr.State != StateFailed || tr.Reason == "" || tr.Files[1].State != StateCompleted {
		t.Fatalf("transfer %+v", tr)
	}
}

func TestSourceDeletedOnlyAfterCompletion(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	_ = a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t", 1)})
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Events: []FileEvent{{Index: 0, Kind: EventSourceDeleted}}}); !errors.Is(err, ErrBadFileEvent) {
		t.Fatalf("source deleted before completion: %v", err)
	}
	_ = a.apply(KindFiles, 1, FilesCmd{ID: "t", Events: []FileEvent{{Index: 0, Kind: EventDone, SHA256: "a"}}})
	// The transfer has ended; recording the clean-up is still allowed.
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "t", Events: []FileEvent{{Index: 0, Kind: EventSourceDeleted}}}); err != nil {
		t.Fatalf("source deleted after completion: %v", err)
	}
}

func TestCancelAndRecovery(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	_ = a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t", 5, 5)})
	_ = a.apply(KindStart, 1, StartCmd{ID: "t"})
	if err := a.apply(KindRecovering, 1, ReasonCmd{ID: "t", Time: t0, Reason: "disk full"}); err != nil {
		t.Fatal(err)
	}
	tr, _ := a.s.Get("t")
	if tr.State != StateRecovering || tr.RecoveringSince == nil || !tr.RecoveringSince.Equal(t0) {
		t.Fatalf("recovering %+v", tr)
	}
	// Progress ends recovery.
	_ = a.apply(KindFiles, 1, FilesCmd{ID: "t", Events: []FileEvent{{Index: 0, Kind: EventDone, SHA256: "a"}}})
	if tr, _ = a.s.Get("t"); tr.State != StateRunning || tr.RecoveringSince != nil {
		t.Fatalf("after progress %+v", tr)
	}
	if err := a.apply(KindCancel, 1, ReasonCmd{ID: "t", Time: t0, Reason: "cancelled by a user"}); err != nil {
		t.Fatal(err)
	}
	tr, _ = a.s.Get("t")
	if tr.State != StateCancelled || tr.Files[0].State != StateCompleted || tr.Files[1].State != StateCancelled {
		t.Fatalf("cancelled %+v", tr)
	}
	if err := a.apply(KindCancel, 1, ReasonCmd{ID: "t"}); !errors.Is(err, ErrEnded) {
		t.Fatalf("second cancel: %v", err)
	}
}

func TestHistoryRetention(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	for i, id := range []string{"a", "b", "c", "d"} {
		tr := newTransfer(id, 1)
		tr.Created = t0.Add(time.Duration(i) * time.Hour)
		_ = a.apply(KindCreate, 1, CreateCmd{Transfer: tr, HistoryCount: 2, HistoryAge: 48 * time.Hour})
		_ = a.apply(KindFiles, 1, FilesCmd{ID: id, Time: tr.Created, Events: []FileEvent{{Index: 0, Kind: EventDone, SHA256: "x"}}})
	}
	// Creating e prunes to the 2 newest ended transfers.
	e := newTransfer("e", 1)
	e.Created = t0.Add(5 * time.Hour)
	_ = a.apply(KindCreate, 1, CreateCmd{Transfer: e, HistoryCount: 2, HistoryAge: 48 * time.Hour})
	var ids []string
	for _, tr := range a.s.List() {
		ids = append(ids, tr.ID)
	}
	if len(ids) != 3 || ids[0] != "c" || ids[1] != "d" || ids[2] != "e" {
		t.Fatalf("after pruning by count: %v", ids)
	}
	// And by age.
	f := newTransfer("f", 1)
	f.Created = t0.Add(100 * time.Hour)
	_ = a.apply(KindCreate, 1, CreateCmd{Transfer: f, HistoryCount: 10, HistoryAge: 48 * time.Hour})
	ids = nil
	for _, tr := range a.s.List() {
		ids = append(ids, tr.ID)
	}
	if len(ids) != 2 || ids[0] != "e" || ids[1] != "f" {
		t.Fatalf("after pruning by age: %v (e is not ended, so it stays)", ids)
	}
}

func TestSnapshotRestore(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	_ = a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t", 100)})
	_ = a.apply(KindFiles, 1, FilesCmd{ID: "t", Events: []FileEvent{{Index: 0, Kind: EventCheckpoint,
		Checkpoint: checkpoint.Checkpoint{Offset: 50, Hash: []byte{1, 2}, Source: src(100)}}}})
	s2 := restored(t, a.s)
	x, _ := a.s.Get("t")
	y, ok := s2.Get("t")
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	if !ok || string(xb) != string(yb) {
		t.Fatalf("restored %s, want %s", yb, xb)
	}
}

// restored returns a new State restored from a snapshot of s.
func restored(t *testing.T, s *State) *State {
	t.Helper()
	b, err := snapshotBytes(s)
	if err != nil {
		t.Fatal(err)
	}
	s2 := NewState()
	if err := restoreBytes(s2, b); err != nil {
		t.Fatal(err)
	}
	return s2
}
