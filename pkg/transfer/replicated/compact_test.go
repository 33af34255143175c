package replicated

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/replog"
)

func TestCreateV2IsRegisteredAtFormat2(t *testing.T) {
	if f, ok := replog.KindFormat(KindCreateV2); !ok || f != 2 {
		t.Fatalf("%s registered at format %d (%v), want 2", KindCreateV2, f, ok)
	}
	for _, k := range Kinds {
		if f, _ := replog.KindFormat(k); f != 1 {
			t.Errorf("%s registered at format %d, want 1", k, f)
		}
	}
}

// files builds the files of a plan from source -> destination pairs.
func planned(pairs ...string) []File {
	var fs []File
	for i := 0; i < len(pairs); i += 2 {
		fs = append(fs, File{Source: pairs[i], Destination: pairs[i+1], Bytes: int64(i * 1000)})
	}
	return fs
}

// Applying the compact entry gives the transfer that applying the plain one
// gives, byte for byte, whatever the shape of the paths.
func TestCreateV2ExpandsToTheSameTransfer(t *testing.T) {
	var tree []string // a recursive tree with subdirectories
	for i := range 40 {
		rel := fmt.Sprintf("d%d/sub%d/f%03d", i%3, i%2, i)
		tree = append(tree, "/srv/ft/in/batch/"+rel, "/srv/ft/out/batch/batch/"+rel)
	}
	cases := []struct {
		name  string
		files []File
		src   string // the roots chosen
		dst   string
		same  bool // destinations left out: each relative destination is the relative source
	}{
		{"recursive tree", planned(tree...), "/srv/ft/in/batch", "/srv/ft/out/batch/batch", true},
		{"one file, renamed", planned("/r/in/orders.csv", "/r/out/o.csv"), "/r/in/orders.csv", "/r/out/o.csv", true},
		{"one file into a directory", planned("/r/in/orders.csv", "/r/out/orders.csv"), "/r/in/orders.csv", "/r/out/orders.csv", true},
		{"several sources", planned("/r/in/x/a", "/r/out/a", "/r/other/y/b", "/r/out/b", "/r/in/c", "/r/out/c"), "/r", "/r/out", false},
		{"names that share a prefix", planned("/r/in/ab", "/r/out/ab", "/r/in/abc", "/r/out/abc", "/r/in/ab c", "/r/out/ab c"), "/r/in", "/r/out", true},
		{"spaces and unicode", planned("/r/in/my dir/é 文件.txt", "/r/out/my dir/é 文件.txt", "/r/in/my dir/ü", "/r/out/my dir/ü"), "/r/in/my dir", "/r/out/my dir", true},
		{"names starting with -", planned("/r/in/-rf", "/r/out/-rf", "/r/in/--x/-", "/r/out/--x/-"), "/r/in", "/r/out", true},
		{"dot-dot and doubled slashes", planned("/r/in/../in/a", "/r/out/a/..", "/r/in//b", "/r/out//b", "/r/in/./c", "/r/out/./c"), "/r/in", "/r/out", false},
		{"a path equal to the root", planned("/r/in/d", "/r/out/d", "/r/in/d/x", "/r/out/d/x"), "/r/in/d", "/r/out/d", true},
		{"a root with a trailing slash", planned("/r/in/", "/r/out/", "/r/in/a", "/r/out/a"), "/r/in/", "/r/out/", true},
		{"the file system's root", planned("/a", "/x/a", "/b", "/y/b"), "/", "/", false},
		{"no files", nil, "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTransfer("t")
			tr.Request.Recursive = true
			tr.Files = tc.files
			c := CreateCmd{Transfer: tr, MaxQueued: 5, HistoryCount: 3, HistoryAge: 7}
			v, ok := CompactCreate(c)
			if !ok {
				t.Fatal("not encoded")
			}
			if string(v.SourceRoot) != tc.src || string(v.DestinationRoot) != tc.dst || (v.Destinations == nil) != tc.same {
				t.Errorf("roots %q %q, destinations %q; want %q %q, left out %v", v.SourceRoot, v.DestinationRoot, v.Destinations, tc.src, tc.dst, tc.same)
			}
			plain, compact := &applier{t: t, s: NewState()}, &applier{t: t, s: NewState()}
			if err := plain.apply(KindCreate, 1, c); err != nil {
				t.Fatal(err)
			}
			if err := compact.apply(KindCreateV2, 1, v); err != nil {
				t.Fatal(err)
			}
			want, _ := plain.s.Get("t")
			got, _ := compact.s.Get("t")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("compact entry applied:\n%+v\nplain entry applied:\n%+v", got, want)
			}
			for i, f := range got.Files {
				if f.Source != tc.files[i].Source || f.Destination != tc.files[i].Destination {
					t.Errorf("file %d: %q -> %q, planned %q -> %q", i, f.Source, f.Destination, tc.files[i].Source, tc.files[i].Destination)
				}
			}
			ws, _ := snapshotBytes(plain.s)
			gs, _ := snapshotBytes(compact.s)
			if string(ws) != string(gs) {
				t.Errorf("snapshots differ:\n%s\n%s", gs, ws)
			}
		})
	}
}

// What the compact form cannot say, it does not encode: the proposer then
// writes the plain entry.
func TestCreateV2RefusesWhatItCannotCarry(t *testing.T) {
	for name, files := range map[string][]File{
		"relative paths":    planned("a/x", "/r/out/x", "b/y", "/r/out/y"),
		"a started file":    {{Source: "/r/in/a", Destination: "/r/out/a", Started: true}},
		"a file with state": {{Source: "/r/in/a", Destination: "/r/out/a", State: StateQueued}},
		"a checkpoint":      {{Source: "/r/in/a", Destination: "/r/out/a", Checkpoint: checkpoint.Checkpoint{Offset: 1}}},
	} {
		tr := newTransfer("t")
		tr.Files = files
		if v, ok := CompactCreate(CreateCmd{Transfer: tr}); ok {
			t.Errorf("%s: encoded as %+v", name, v)
		}
	}
	// A malformed entry is an error every instance reaches alike.
	a := &applier{t: t, s: NewState()}
	bad := createV2Cmd{Transfer: newTransfer("t"), Sources: []string{"a", "b"}, Bytes: []int64{1}}
	if err := a.apply(KindCreateV2, 1, bad); err == nil || !strings.Contains(err.Error(), "2 sources, 1 sizes") {
		t.Errorf("columns of different lengths: %v", err)
	}
	if _, ok := a.s.Get("t"); ok {
		t.Error("malformed entry created a transfer")
	}
}

// The compact entry of the benchmark's transfer is a small part of the
// plain one's size.
func TestCreateV2IsCompact(t *testing.T) {
	tr := newTransfer("t")
	for i := range 10000 {
		rel := fmt.Sprintf("f%05d", i)
		tr.Files = append(tr.Files, File{Source: "/tmp/ftbench-123456/root/in/batch/" + rel, Destination: "/tmp/ftbench-123456/root/out/batch/" + rel, Bytes: 4096})
	}
	c := CreateCmd{Transfer: tr}
	v, ok := CompactCreate(c)
	if !ok {
		t.Fatal("not encoded")
	}
	plain, _ := json.Marshal(c)
	compact, _ := json.Marshal(v)
	t.Logf("10,000 files: plain %d bytes, compact %d bytes", len(plain), len(compact))
	if len(compact)*5 > len(plain) {
		t.Errorf("compact entry %d bytes, plain %d", len(compact), len(plain))
	}
}
