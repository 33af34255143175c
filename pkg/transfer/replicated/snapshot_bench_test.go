package replicated

import (
	"fmt"
	"io"
	"testing"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// bigState holds two transfers of n files each, in directories of 1,000:
// "history", ended and so packed, and "live", running, half of its files
// done and one checkpointed.
func bigState(tb testing.TB, n int) *State {
	s := NewState()
	for i, id := range []string{"history", "live"} {
		t := fuzzTransfer(id)
		t.Seq, t.State, t.Files = uint64(i+1), StateRunning, make([]File, n)
		for j := range t.Files {
			name := fmt.Sprintf("d%03d/file-%06d.dat", j/1000, j)
			f := File{Source: "/data/in/" + id + "/" + name, Destination: "/data/out/" + name, Bytes: int64(4096 + j), State: StateQueued}
			if id == "history" || j < n/2 {
				f.State, f.SHA256, f.Started = StateCompleted, sha, true
				f.Checkpoint = checkpoint.Checkpoint{Offset: f.Bytes}
			}
			t.Files[j] = f
		}
		if id == "history" {
			ended := t0
			t.State, t.Ended = StateCompleted, &ended
		} else {
			t.Files[n/2].State = StateRunning
			t.Files[n/2].Checkpoint = checkpoint.Checkpoint{Offset: 1 << 20, Hash: make([]byte, 100), Epoch: 2,
				Source: checkpoint.Source{Size: 1 << 30, ModTime: 1, Inode: 7}}
		}
		t.recount()
		t.tabulate()
		s.transfers[id] = &t
	}
	if s.transfers["history"].files == nil || s.transfers["live"].files == nil {
		tb.Fatal("files not in tables")
	}
	return s
}

// BenchmarkSnapshot100k writes the snapshot of bigState(100,000) to
// io.Discard (the capture under the lock included) and restores it: the
// bytes allocated are what a snapshot costs beyond the state.
func BenchmarkSnapshot100k(b *testing.B) {
	s := bigState(b, 100_000)
	snap, err := snapshotBytes(s)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(snap)))
		for b.Loop() {
			sn, err := s.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			if err := sn.WriteJSON(io.Discard); err != nil {
				b.Fatal(err)
			}
			sn.Release()
		}
	})
	b.Run("restore", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(snap)))
		for b.Loop() {
			if err := restoreBytes(NewState(), snap); err != nil {
				b.Fatal(err)
			}
		}
	})
}
