package replicated

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// The compact create entry with directories and names of any bytes
// expands, applied, to the transfer the plain entry makes, byte for byte;
// the entry's JSON is UTF-8 with nothing replaced.
func TestCreateV3ExpandsToTheSameTransfer(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 17))
	for round := range 200 {
		tr := newTransfer(fmt.Sprintf("t%d", round))
		tr.Request.Recursive = true
		srcRoot, dstRoot := "/r/in/"+randomName(rng), "/r/out/"+randomName(rng)
		tr.Dirs = []Dir{{Source: srcRoot, Destination: dstRoot}}
		for i := range rng.IntN(8) {
			rel := strings.ReplaceAll(randomName(rng), "\x00", "") + fmt.Sprint(i)
			if rng.IntN(2) == 0 {
				tr.Dirs = append(tr.Dirs, Dir{Source: srcRoot + "/" + rel, Destination: dstRoot + "/" + rel})
			} else {
				dst := rel
				if rng.IntN(4) == 0 {
					dst = "renamed\xfe" + rel
				}
				tr.Files = append(tr.Files, File{Source: srcRoot + "/" + rel, Destination: dstRoot + "/" + dst, Bytes: int64(i)})
			}
		}
		c := CreateCmd{Transfer: tr, MaxQueued: 5, HistoryCount: 3, HistoryAge: 7}
		v, ok := CompactCreateV3(c)
		if !ok {
			t.Fatalf("round %d: %+v not encoded", round, tr)
		}
		b := mustJSON(t, v)
		if !utf8.Valid(b) || bytes.Contains(b, []byte("\ufffd")) {
			t.Fatalf("round %d: entry %s", round, b)
		}
		viaPlain, viaCompact := &applier{t: t, s: NewState()}, &applier{t: t, s: NewState()}
		if err := viaPlain.apply(KindCreate, 1, c); err != nil {
			t.Fatal(err)
		}
		if err := viaCompact.apply(KindCreateV3, 1, v); err != nil {
			t.Fatal(err)
		}
		want, _ := viaPlain.s.Get(tr.ID)
		got, _ := viaCompact.s.Get(tr.ID)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: compact entry made\n%+v\nwant\n%+v", round, got, want)
		}
		if len(got.Dirs) != len(tr.Dirs) || got.State != StateQueued {
			t.Fatalf("round %d: %d directories, state %s", round, len(got.Dirs), got.State)
		}
		ws, _ := snapshotBytes(viaPlain.s)
		gs, _ := snapshotBytes(viaCompact.s)
		if !bytes.Equal(ws, gs) {
			t.Fatalf("round %d: snapshots differ:\n%s\n%s", round, gs, ws)
		}
	}
	// The v2 entry does not carry directories.
	if _, ok := CompactCreate(CreateCmd{Transfer: oddTransfer()}); ok {
		t.Error("CompactCreate encoded a transfer with directories")
	}
}

// Directory events travel in transfer.files: the transfer ends once its
// files and directories have; a replayed one is harmless; a bad one
// changes nothing; a failed directory fails the transfer with its reason.
func TestDirEvents(t *testing.T) {
	a := &applier{t: t, s: NewState()}
	tr := newTransfer("d", 3)
	tr.Dirs = []Dir{{Source: "/r/in/d", Destination: "/r/out/d"}, {Source: "/r/in/d/e", Destination: "/r/out/d/e"}}
	if err := a.apply(KindCreate, 1, CreateCmd{Transfer: tr}); err != nil {
		t.Fatal(err)
	}
	dirsOnly := newTransfer("only")
	dirsOnly.Dirs = []Dir{{Source: "/r/in/e", Destination: "/r/out/e"}}
	if err := a.apply(KindCreate, 1, CreateCmd{Transfer: dirsOnly}); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.s.Get("only"); got.State != StateQueued {
		t.Fatalf("a transfer of one empty directory is %s at creation, want queued (the directory is to be made)", got.State)
	}
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "d", Time: t0, Dirs: []DirEvent{{Index: 0, Kind: EventDone}, {Index: 2, Kind: EventDone}}}); err == nil {
		t.Fatal("an event of directory 2 of 2 applied")
	}
	if got, _ := a.s.Get("d"); got.Dirs[0].State != StateQueued {
		t.Fatalf("a refused entry changed directory 0: %s", got.Dirs[0].State)
	}
	for _, c := range []FilesCmd{
		{ID: "d", Time: t0, Dirs: []DirEvent{{Index: 0, Kind: EventDone}, {Index: 1, Kind: EventDone}}},
		{ID: "d", Time: t0, Dirs: []DirEvent{{Index: 1, Kind: EventDone}}}, // a replay
		{ID: "d", Time: t0, Events: []FileEvent{{Index: 0, Kind: EventStart}, {Index: 0, Kind: EventDone, SHA256: strings.Repeat("ab", 32)}}},
	} {
		if err := a.apply(KindFiles, 1, c); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := a.s.Get("d"); got.State != StateCompleted {
		t.Fatalf("transfer %s after its file and directories ended, want completed", got.State)
	}
	if err := a.apply(KindFiles, 1, FilesCmd{ID: "only", Time: t0, Dirs: []DirEvent{{Index: 0, Kind: EventFailed, Reason: "mkdir /r/out/e: not a directory"}}}); err != nil {
		t.Fatal(err)
	}
	got, _ := a.s.Get("only")
	if got.State != StateFailed || got.Reason != "directory /r/in/e: mkdir /r/out/e: not a directory" || got.Dirs[0].State != StateFailed {
		t.Fatalf("a failed directory: transfer %s %q, directory %+v", got.State, got.Reason, got.Dirs[0])
	}
	if v := ViewOf(got, "/r"); v.Directories != 1 || v.DirectoriesDone != 0 || v.Dirs[0].Destination != "out/e" {
		t.Errorf("view %+v", v)
	}
	// Such an entry stays plain: the compact one has no directories.
	if _, ok := CompactFiles(FilesCmd{ID: "d", Events: []FileEvent{{Index: 0, Kind: EventStart}}, Dirs: []DirEvent{{Index: 0, Kind: EventDone}}}); ok {
		t.Error("CompactFiles encoded directory events")
	}
}
