package ha_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// bigSnapshot is a snapshot of a lease and two transfers of n files each,
// in directories of 1,000: "history", ended (packed once restored), and
// "live", running, half of its files done.
func bigSnapshot(tb testing.TB, n int) []byte {
	const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	var transfers []transfer.Transfer
	for i, id := range []string{"history", "live"} {
		t := transfer.Transfer{ID: id, Seq: uint64(i + 1), Created: fuzzT0, State: transfer.StateRunning,
			Request: transfer.Request{Sources: []string{"in/" + id}, Destination: "out/", Recursive: true}, Files: make([]transfer.File, n)}
		for j := range t.Files {
			name := fmt.Sprintf("d%03d/file-%06d.dat", j/1000, j)
			f := transfer.File{Source: "/data/in/" + id + "/" + name, Destination: "/data/out/" + name, Bytes: int64(4096 + j), State: transfer.StateQueued}
			if id == "history" || j < n/2 {
				f.State, f.SHA256, f.Started = transfer.StateCompleted, sha, true
				f.Checkpoint = checkpoint.Checkpoint{Offset: f.Bytes}
			}
			t.Files[j] = f
		}
		if id == "history" {
			t.State, t.Ended = transfer.StateCompleted, &fuzzT0
		}
		transfers = append(transfers, t)
	}
	b, err := json.Marshal(struct {
		V     int      `json:"v"`
		Lease ha.Lease `json:"lease"`
		App   any      `json:"app"`
	}{1, ha.Lease{Epoch: 2, Holder: "ha1", Address: "h1:7101", Since: fuzzT0}, map[string]any{"transfers": transfers}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkFSMSnapshot100k persists the snapshot of bigSnapshot(100,000)'s
// state through the FSM into a sink that discards it, and restores it from
// a reader, as raft does: the bytes allocated include pkg/ha's envelope and
// raft's side, beyond BenchmarkSnapshot100k's (pkg/transfer/replicated).
func BenchmarkFSMSnapshot100k(b *testing.B) {
	snap := bigSnapshot(b, 100_000)
	build := ha.NewBuild(0, replicated.NewState(), zerolog.Nop())
	if err := build.RestoreFrom(bytes.NewReader(snap)); err != nil {
		b.Fatal(err)
	}
	b.Run("persist", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(snap)))
		for b.Loop() {
			if err := build.SnapshotTo(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("restore", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(snap)))
		for b.Loop() {
			if err := ha.NewBuild(0, replicated.NewState(), zerolog.Nop()).RestoreFrom(bytes.NewReader(snap)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
