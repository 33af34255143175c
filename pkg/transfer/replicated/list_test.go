package replicated

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestListViewsFiltersAndPages(t *testing.T) {
	s := NewState()
	states := []string{StateCompleted, StateFailed, StateRunning, StateCompleted, StateQueued, StateCompleted, StateCancelled}
	for i, st := range states {
		tr := fuzzTransfer(fmt.Sprintf("t%d", i), "a")
		tr.Seq, tr.State, tr.Created = uint64(10+i), st, t0.Add(time.Duration(i)*time.Hour)
		if i%3 == 1 {
			tr.Request.DestinationAgent = "PAYMENTS"
		}
		tr.recount()
		tr.tabulate()
		s.transfers[tr.ID] = &tr
	}
	ids := func(vs []View) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.ID)
		}
		return out
	}
	check := func(what string, f ListFilter, want []string, wantNext bool) string {
		t.Helper()
		vs, next, err := s.ListViews("/r", nil, false, nil, f)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !slices.Equal(ids(vs), want) || (next != "") != wantNext {
			t.Fatalf("%s: %v next %q, want %v (next: %v)", what, ids(vs), next, want, wantNext)
		}
		return next
	}
	check("all", ListFilter{}, []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6"}, false)
	check("completed", ListFilter{States: map[string]bool{StateCompleted: true}}, []string{"t0", "t3", "t5"}, false)
	check("since", ListFilter{Since: t0.Add(4 * time.Hour)}, []string{"t4", "t5", "t6"}, false)
	check("to PAYMENTS", ListFilter{DestinationAgent: "PAYMENTS"}, []string{"t1", "t4"}, false)
	check("to another agent", ListFilter{DestinationAgent: "BILLING"}, nil, false)
	check("local only", ListFilter{LocalOnly: true}, []string{"t0", "t2", "t3", "t5", "t6"}, false)

	// Pages of two completed or failed transfers: every one once, in order.
	f := ListFilter{States: map[string]bool{StateCompleted: true, StateFailed: true}, Count: 2}
	next := check("page 1", f, []string{"t0", "t1"}, true)
	f.After = next
	next = check("page 2", f, []string{"t3", "t5"}, false)
	if next != "" {
		t.Fatalf("a last page with a next %q", next)
	}
	// A transfer created between two pages comes on a later page; one
	// pruned meanwhile does not break the cursor.
	f.After = ""
	next = check("again, page 1", f, []string{"t0", "t1"}, true)
	delete(s.transfers, "t1")
	late := fuzzTransfer("t9", "a")
	late.Seq, late.State, late.Created = 99, StateFailed, t0.Add(9*time.Hour)
	late.recount()
	late.tabulate()
	s.transfers[late.ID] = &late
	f.After = next
	check("page 2 after changes", f, []string{"t3", "t5"}, true)

	for _, bad := range []string{"t1", "x.", ".t1", "-1.t1"} {
		if _, _, err := s.ListViews("/r", nil, false, nil, ListFilter{After: bad}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("after %q: %v, want ErrBadCursor", bad, err)
		}
	}
}
