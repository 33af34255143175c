package transfer

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The Manager writes the compact entry only once every instance reads its
// format; the transfer it creates is the same either way.
func TestSubmitWritesCompactCreateOnlyWhenAgreed(t *testing.T) {
	cases := []struct {
		name            string
		formats, claims int
		want            string
	}{
		{"format 2 not agreed", 1, 0, KindCreate},
		{"format 2 agreed", 3, 0, KindCreateV2},
		// Format 4 carries the directories of the recursive request.
		{"format 4 agreed", 0, 0, KindCreateV3},
		// FormatAgreed said yes, then an instance of an older build joined:
		// Node.Apply refuses the compact entry and the plain one is written.
		{"an older instance joined meanwhile", 1, 2, KindCreate},
	}
	var files [][]File
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			smallTree(t, r.root, 30)
			if err := os.WriteFile(filepath.Join(r.root, "in", "-odd name é.txt"), []byte("x"), 0o640); err != nil {
				t.Fatal(err)
			}
			log := &fakeLog{formats: tc.formats, claims: tc.claims}
			m := r.manager(log, &tracingEndpoint{Local: r.local, tr: r.tr})
			id := r.submit(t, m, Request{Sources: []string{"in/batch", "in/-odd name é.txt"}, Destination: "out/", Recursive: true})
			if !slices.Equal(log.kinds, []string{tc.want}) {
				t.Errorf("committed %v, want [%s]", log.kinds, tc.want)
			}
			tr, ok := r.state.Get(id)
			if !ok || len(tr.Files) != 31 {
				t.Fatalf("transfer %v, %d files", ok, len(tr.Files))
			}
			for i := range tr.Files {
				tr.Files[i].Source = strings.TrimPrefix(tr.Files[i].Source, r.root)
				tr.Files[i].Destination = strings.TrimPrefix(tr.Files[i].Destination, r.root)
			}
			files = append(files, tr.Files)
		})
	}
	for i := 1; i < len(files); i++ {
		if !reflect.DeepEqual(files[i], files[0]) {
			t.Errorf("%s planned other files than %s", cases[i].name, cases[0].name)
		}
	}
}
