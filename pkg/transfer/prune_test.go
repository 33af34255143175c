package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// With transferHistoryCount=0, a transfer that ended is still found by its
// id when its client retries the submission: it is not created twice.
func TestRetriedSubmissionAfterEndWithHistoryCountZero(t *testing.T) {
	r := newRig(t)
	r.files(t, "in/a.bin", "in/b.bin")
	m, lease := r.activeManager(&fakeLog{})
	m.limits.HistoryCount = 0
	req := Request{Sources: []string{"in/a.bin"}, Destination: "out/a.bin"}
	first, err := m.Submit(context.Background(), "00000000000000aa", req)
	if err != nil {
		t.Fatal(err)
	}
	runOnce(context.Background(), m, 1, first.ID)
	if tr, _ := r.state.Get(first.ID); tr.State != StateCompleted {
		t.Fatalf("first transfer %s %q", tr.State, tr.Reason)
	}
	// Another transfer is created and the history is pruned, as the
	// active does every few seconds.
	if _, err := m.Submit(context.Background(), "00000000000000bb", Request{Sources: []string{"in/b.bin"}, Destination: "out/b.bin"}); err != nil {
		t.Fatal(err)
	}
	m.pruneHistory(context.Background(), lease)
	// The client of the first retries (its answer was lost in a failover).
	again, err := m.Submit(context.Background(), "00000000000000aa", req)
	if err != nil {
		t.Fatal(err)
	}
	if again.State != StateCompleted || again.Seq != first.Seq {
		t.Fatalf("the retried submission made a new transfer: %s seq %d, first was seq %d", again.State, again.Seq, first.Seq)
	}
	if n := len(r.state.List()); n != 2 {
		t.Fatalf("%d transfers, want 2", n)
	}
}

// Until every instance reads transfer.prune's format, no prune entry is
// proposed (an older build would refuse it), and creates prune nothing
// either: the history waits.
func TestPruneWaitsForItsFormat(t *testing.T) {
	r := newRig(t)
	r.files(t, "in/a.bin")
	log := &fakeLog{formats: replicated.FormatPrune - 1}
	m, lease := r.activeManager(log)
	if _, err := m.Submit(context.Background(), "", Request{Sources: []string{"in/a.bin"}, Destination: "out/a.bin"}); err != nil {
		t.Fatal(err)
	}
	m.pruneHistory(context.Background(), lease)
	if slices.Contains(log.kinds, KindPrune) {
		t.Fatalf("a prune entry before format %d was agreed: %v", replicated.FormatPrune, log.kinds)
	}
	var c replicated.CreateCmd
	if err := json.Unmarshal(log.lastData, &c); err != nil || c.HistoryCount != -1 || c.HistoryAge != 0 {
		t.Fatalf("a create that prunes: count %d, age %v", c.HistoryCount, c.HistoryAge)
	}
}

// A request that names more files than maxFilesPerTransfer, counted over
// all its sources, is refused with the reason, and nothing is recorded.
// (The sources' files have distinct names: two written to one destination
// would be refused first, as the plan meets them.)
func TestMaxFilesPerTransferRefused(t *testing.T) {
	r := newRig(t)
	r.files(t, "in/a/1", "in/a/2", "in/a/3", "in/b/4", "in/b/5", "in/b/6")
	log := &fakeLog{}
	m, _ := r.activeManager(log)
	m.limits.MaxFilesPerTransfer = 5
	for _, sources := range [][]string{{"in/"}, {"in/a/", "in/b/"}} {
		_, err := m.Submit(context.Background(), "", Request{Sources: sources, Destination: "out/", Recursive: true})
		var re *RequestError
		if !errors.As(err, &re) || !strings.Contains(re.Reason, "more than 5 files (maxFilesPerTransfer=5)") {
			t.Fatalf("%v: %v, want a refusal naming maxFilesPerTransfer", sources, err)
		}
	}
	if len(log.kinds) != 0 {
		t.Fatalf("entries committed for refused requests: %v", log.kinds)
	}
	if _, err := m.Submit(context.Background(), "", Request{Sources: []string{"in/a/"}, Destination: "out/", Recursive: true}); err != nil {
		t.Fatalf("3 files within the limit of 5: %v", err)
	}
}

// files writes a small file at each path under the rig's root (its bytes
// are its path).
func (r *rig) files(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(r.root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// activeManager makes a Manager over log that holds the lease at epoch 1,
// as the active between Run's start and its end.
func (r *rig) activeManager(log *fakeLog) (*Manager, ha.Lease) {
	m := r.manager(log, r.local)
	lease := ha.Lease{Epoch: 1}
	m.mu.Lock()
	m.lease = &lease
	m.mu.Unlock()
	return m, lease
}
