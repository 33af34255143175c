package replicated

import (
	"slices"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

func ids(s *State) []string {
	var out []string
	for _, t := range s.List() {
		out = append(out, t.ID)
	}
	return out
}

// The history is pruned by name, and never of work still to do: an ended
// transfer whose sources are still to be deleted stays, whatever the count
// or age (issue 10, item 6).
func TestPruneKeepsPendingDeletions(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	for i, id := range []string{"a", "b", "c"} {
		tr := newTransfer(id, 1)
		tr.Created = t0.Add(time.Duration(i) * time.Hour)
		tr.Request.Disposition = DispositionDelete
		_ = a.apply(KindCreate, 1, CreateCmd{Transfer: tr, HistoryCount: -1})
		_ = a.apply(KindFiles, 1, FilesCmd{ID: id, Time: tr.Created, Events: []FileEvent{{Index: 0, Kind: EventDone, SHA256: "x", Source: src(1)}}})
	}
	// b's source was deleted; a's and c's are still to be.
	_ = a.apply(KindFiles, 1, FilesCmd{ID: "b", Events: []FileEvent{{Index: 0, Kind: EventSourceDeleted}}})
	if tr, _ := a.s.Get("a"); tr.Files[0].Delivered != src(1) {
		t.Fatalf("a's completion did not record the source's identity: %+v", tr.Files[0])
	}
	if tr, _ := a.s.Get("b"); tr.Files[0].Delivered != (checkpoint.Source{}) {
		t.Fatalf("b's identity kept after its deletion: %+v", tr.Files[0])
	}

	now := t0.Add(10 * time.Hour)
	if got := a.s.PruneCandidates(now, 0, 0, time.Minute, 100); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("candidates with count 0: %v, want [b] (a and c have sources to delete)", got)
	}
	// An entry naming them all (a racing proposer) drops only b.
	if err := a.apply(KindPrune, 1, PruneCmd{Time: now, IDs: []string{"a", "b", "c", "nope"}}); err != nil {
		t.Fatal(err)
	}
	if got := ids(a.s); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("after pruning: %v, want [a c]", got)
	}
	// Packed (ended), the identities of the sources still to delete stay.
	tr, _ := a.s.Get("c")
	if tr.Files[0].Delivered != src(1) {
		t.Fatalf("c's identity lost once packed: %+v", tr.Files[0])
	}
	r := restored(t, a.s)
	if tr, _ := r.Get("c"); tr.Files[0].Delivered != src(1) {
		t.Fatalf("c's identity lost through a snapshot: %+v", tr.Files[0])
	}
}

// Recently ended transfers are kept whatever the count (even 0), so that a
// client's retry after a failover finds its transfer; older ones go.
func TestPruneKeepsRecentIDs(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	for i, id := range []string{"a", "b", "c"} {
		tr := newTransfer(id, 1)
		tr.Created = t0.Add(time.Duration(i) * 10 * time.Minute)
		_ = a.apply(KindCreate, 1, CreateCmd{Transfer: tr, HistoryCount: -1})
		_ = a.apply(KindFiles, 1, FilesCmd{ID: id, Time: tr.Created, Events: []FileEvent{{Index: 0, Kind: EventDone, SHA256: "x"}}})
	}
	now := t0.Add(25 * time.Minute) // a ended 25, b 15, c 5 minutes ago
	if got := a.s.PruneCandidates(now, 0, 0, 15*time.Minute, 100); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("count 0, keep 15m: %v, want [a b]", got)
	}
	if got := a.s.PruneCandidates(now, 2, 0, 0, 100); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("count 2: %v, want [a]", got)
	}
	if got := a.s.PruneCandidates(now, -1, 20*time.Minute, 0, 100); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("age 20m: %v, want [a]", got)
	}
	if got := a.s.PruneCandidates(now, 0, 0, 0, 1); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("at most 1: %v, want [a]", got)
	}
}

// A snapshot encodes the ended transfers outside the lock Apply waits for,
// while Apply records deleted sources of those same transfers (run with
// -race: a packed form must never be changed in place).
func TestSnapshotWhileSourcesDeleted(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	const n = 40
	for i := range n {
		id := string(rune('A' + i))
		tr := newTransfer(id, 1, 2, 3)
		tr.Request.Disposition = DispositionDelete
		_ = a.apply(KindCreate, 1, CreateCmd{Transfer: tr, HistoryCount: -1})
		var evs []FileEvent
		for f := range 3 {
			evs = append(evs, FileEvent{Index: f, Kind: EventDone, SHA256: "x", Source: src(int64(f + 1))})
		}
		if err := a.apply(KindFiles, 1, FilesCmd{ID: id, Time: t0, Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			for f := range 3 {
				_ = a.apply(KindFiles, 1, FilesCmd{ID: string(rune('A' + i)), Events: []FileEvent{{Index: f, Kind: EventSourceDeleted}}})
			}
		}
	}()
	for range 20 {
		if _, err := snapshotBytes(a.s); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	r := restored(t, a.s)
	for _, tr := range r.List() {
		for i, f := range tr.Files {
			if !f.SourceDeleted || f.Delivered != (checkpoint.Source{}) {
				t.Fatalf("%s file %d after the deletions: deleted=%v identity %v", tr.ID, i, f.SourceDeleted, f.Delivered)
			}
		}
	}
}
