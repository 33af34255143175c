package chaos

import (
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/audit"
)

// The audit checker must catch each kind of violation it claims to.
func TestCheckAuditCatches(t *testing.T) {
	lease := func(inst string, epoch uint64, at int64) audit.Record {
		return audit.Record{Checked: at, Instance: inst, Epoch: epoch, Op: audit.OpLease}
	}
	op := func(inst, kind string, epoch uint64, at int64, path string) audit.Record {
		return audit.Record{Checked: at, Instance: inst, Epoch: epoch, Op: kind, Path: path, N: 1}
	}
	base := []audit.Record{
		lease("ha1", 1, 100),
		op("ha1", audit.OpWrite, 1, 110, "/o/a.part"),
		op("ha1", audit.OpRename, 1, 120, "/o/a"),
		lease("ha2", 2, 200),
		op("ha2", audit.OpWrite, 2, 210, "/o/b.part"),
		op("ha2", audit.OpRename, 2, 220, "/o/b"),
	}
	delivered := map[string]bool{"/o/a": true, "/o/b": true}
	cases := []struct {
		name  string
		extra []audit.Record
		want  string // "" = clean
	}{
		{"clean", nil, ""},
		{"write by a deposed active after the new lease", []audit.Record{op("ha1", audit.OpWrite, 1, 201, "/o/b.part")}, "after a later lease began"},
		{"write under an epoch never taken", []audit.Record{op("ha3", audit.OpWrite, 7, 150, "/o/c.part")}, "never took"},
		{"write under another's epoch", []audit.Record{op("ha3", audit.OpWrite, 2, 250, "/o/c.part")}, "which ha2 held"},
		{"write before the lease", []audit.Record{op("ha2", audit.OpWrite, 2, 150, "/o/c.part")}, "before taking it"},
		{"epoch taken twice", []audit.Record{lease("ha3", 2, 300)}, "taken twice"},
		{"epochs going back", []audit.Record{lease("ha3", 0, 300)}, "went back"},
		{"delivered twice", []audit.Record{op("ha2", audit.OpRename, 2, 230, "/o/a")}, "delivered 2 times"},
		{"rename of no completed transfer", []audit.Record{op("ha2", audit.OpRename, 2, 230, "/o/x")}, "belongs to no completed transfer"},
	}
	for _, c := range cases {
		o := &Outcome{}
		checkAudit(o, append(append([]audit.Record(nil), base...), c.extra...), delivered, nil)
		got := strings.Join(o.Violations, "\n")
		switch {
		case c.want == "" && got != "":
			t.Errorf("%s: violations %q on a clean trail", c.name, got)
		case c.want != "" && !strings.Contains(got, c.want):
			t.Errorf("%s: violations %q, want one mentioning %q", c.name, got, c.want)
		}
	}
	o := &Outcome{}
	checkAudit(o, base[:2], delivered, nil)
	if !strings.Contains(strings.Join(o.Violations, "\n"), "without a rename") {
		t.Errorf("a delivered file with no rename passed: %v", o.Violations)
	}
	// A rename record lost to a kill -9 of its writer is excused, and only
	// then: not when another epoch's holder was killed.
	o = &Outcome{}
	checkAudit(o, base[:5], delivered, map[uint64]bool{2: true})
	if len(o.Violations) != 0 || o.LostRenames != 1 {
		t.Errorf("a rename lost to the kill of its writer: violations %v, lost renames %d (want none, 1)", o.Violations, o.LostRenames)
	}
	o = &Outcome{}
	checkAudit(o, base[:5], delivered, map[uint64]bool{1: true})
	if !strings.Contains(strings.Join(o.Violations, "\n"), "/o/b was delivered without a rename") || o.LostRenames != 0 {
		t.Errorf("a rename missing under an epoch whose holder was not killed passed: %v", o.Violations)
	}
}
