package transfer

import (
	"context"
	"slices"
	"testing"
)

// A run writes compact files entries only once every instance reads their
// format, and the transfer ends the same either way.
func TestRunWritesCompactFilesOnlyWhenAgreed(t *testing.T) {
	for _, tc := range []struct {
		name            string
		formats, claims int
		compact         bool
	}{
		{"format 3 not agreed", 2, 0, false},
		{"format 3 agreed", 0, 0, true},
		{"an older instance joined meanwhile", 2, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			sums := smallTree(t, r.root, 300)
			log := &fakeLog{formats: tc.formats, claims: tc.claims}
			m := r.manager(log, &tracingEndpoint{Local: r.local, tr: r.tr})
			id := r.submit(t, m, Request{Sources: []string{"in/batch"}, Destination: "out/", Recursive: true})
			runOnce(context.Background(), m, 1, id)
			tr, _ := r.state.Get(id)
			if tr.State != StateCompleted {
				t.Fatalf("transfer %s: %s", tr.State, tr.Reason)
			}
			plain, compact := slices.Contains(log.kinds, KindFiles), slices.Contains(log.kinds, KindFilesV2)
			if compact != tc.compact || plain == tc.compact {
				t.Fatalf("kinds committed %v, want the compact files entry: %v", log.kinds, tc.compact)
			}
			r.checkEnded(t, id, sums)
		})
	}
}
