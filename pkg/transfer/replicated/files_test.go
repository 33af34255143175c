package replicated

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// tableFiles makes n files across segments, some with what the table
// keeps apart (reasons, checkpoints, delivered identities) and some odd.
func tableFiles(from, n int) []File {
	out := make([]File, n)
	for k := range out {
		i := from + k
		f := File{Source: fmt.Sprintf("/r/in/d%d/f%d", i%7, i), Destination: fmt.Sprintf("/r/out/d%d/f%d", i%7, i), Bytes: int64(i), State: StateQueued}
		switch i % 11 {
		case 1:
			f.Destination = fmt.Sprintf("/r/out/d%d/renamed%d", i%5, i)
		case 2:
			f.State, f.SHA256, f.Started = StateCompleted, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", true
			f.Delivered = checkpoint.Source{Size: int64(i), ModTime: 3, Inode: 9}
		case 3:
			f.State, f.Reason = StateFailed, "disk on fire"
		case 4:
			f.State, f.Started = StateRunning, true
			f.Checkpoint = checkpoint.Checkpoint{Offset: 5, Hash: []byte{1, 2}, Epoch: 2, Source: checkpoint.Source{Size: 9, Inode: 1}}
		case 5:
			f.Source = "nodir" // odd: no directory
		case 6:
			f.SHA256 = "NOT HEX" // odd: a digest the table cannot pack
		case 7:
			f.State = "mystery" // odd: a state without a code
		}
		out[k] = f
	}
	return out
}

// TestFileTableKeepsFilesExactly: every file reads back as written, across
// segments and appends that continue a segment; a change of one file
// changes that file only.
func TestFileTableKeepsFilesExactly(t *testing.T) {
	want := tableFiles(0, 2*segmentSize+100)
	ft := newFileTable(want[:segmentSize+10])
	ft.append(want[segmentSize+10:])
	if ft.len() != len(want) {
		t.Fatalf("%d files, want %d", ft.len(), len(want))
	}
	if got := ft.all(); !reflect.DeepEqual(got, want) {
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("file %d: %+v, want %+v", i, got[i], want[i])
			}
		}
	}
	for _, i := range []int{0, 4, 5, 6, segmentSize - 1, segmentSize, 2*segmentSize + 99} {
		f := want[i]
		f.State, f.SHA256, f.Reason, f.Checkpoint = StateCompleted, "0000000000000000000000000000000000000000000000000000000000000000", "", checkpoint.Checkpoint{}
		ft.set(i, f)
		want[i] = f
	}
	if got := ft.all(); !reflect.DeepEqual(got, want) {
		t.Fatal("changed files do not read back as written")
	}
	// progress reads what file does.
	for i := range want {
		st, b, off := ft.progress(i)
		if st != want[i].State || b != want[i].Bytes || off != want[i].Checkpoint.Offset {
			t.Fatalf("progress of %d: %s %d %d, file says %+v", i, st, b, off, want[i])
		}
	}
}

// TestSharedFileTableNeverChanges: a reader's share sees the files as they
// were when it shared them, whatever the state changes or appends after,
// and the state sees its changes.
func TestSharedFileTableNeverChanges(t *testing.T) {
	orig := tableFiles(0, segmentSize+50)
	ft := newFileTable(orig)
	reader := ft.share()
	before := reader.all()
	for i := 0; i < ft.len(); i += 97 {
		f := ft.file(i)
		f.State, f.Reason, f.Checkpoint = StateFailed, "later", checkpoint.Checkpoint{Offset: 1, Hash: []byte{9}}
		ft.set(i, f)
	}
	ft.append(tableFiles(segmentSize+50, 30)) // continues the shared last segment
	if got := reader.all(); !reflect.DeepEqual(got, before) || reader.len() != len(orig) {
		t.Fatal("the shared table changed under its reader")
	}
	second := ft.share()
	ft.ended()
	if got := ft.file(97); got.State != StateFailed || got.Reason != "later" || got.Checkpoint.Hash != nil || got.Checkpoint.Offset != 1 {
		t.Fatalf("state's file 97 after its changes and the end: %+v", got)
	}
	if got := second.file(97); got.Checkpoint.Hash == nil {
		t.Fatal("the end of the transfer trimmed a checkpoint a reader shares")
	}
	if ft.len() != len(orig)+30 || ft.file(len(orig)+29).Source != tableFiles(segmentSize+79, 1)[0].Source {
		t.Fatal("the append is not in the state's table")
	}
}
