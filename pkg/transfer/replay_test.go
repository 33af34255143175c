package transfer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// A file that was started, whose .part is gone and whose destination holds
// a file of the right size, is a completion replayed after a failover only
// if those are the source's bytes. Otherwise the name held a file before
// (the rename into place was refused, then the active died before the
// failure was recorded): under "error" the file fails, and that file stays.
func TestReplayedCompletionMustBeTheSourcesBytes(t *testing.T) {
	for _, ours := range []bool{true, false} {
		r := newRig(t)
		src := []byte(strings.Repeat("source bytes ", 80))
		if err := os.MkdirAll(filepath.Join(r.root, "in"), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.root, "in", "a.bin"), src, 0o640); err != nil {
			t.Fatal(err)
		}
		log := &fakeLog{}
		m := r.manager(log, r.local)
		id := r.submit(t, m, Request{Sources: []string{"in/a.bin"}, Destination: "out/a.bin"})
		now := time.Now().UTC()
		if _, err := log.Apply(KindStart, 1, replicated.StartCmd{ID: id, Time: now}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := log.Apply(KindFiles, 1, replicated.FilesCmd{ID: id, Time: now, Events: []FileEvent{{Index: 0, Kind: EventStart}}}, 0); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(r.root, "out", "a.bin")
		there := bytes.Repeat([]byte{'x'}, len(src)) // same size, other bytes
		if ours {
			there = src
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, there, 0o640); err != nil {
			t.Fatal(err)
		}

		// The next active resumes it.
		m2 := r.manager(log, r.local)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		runOnce(ctx, m2, 2, id)
		cancel()
		tr, _ := r.state.Get(id)
		got, _ := os.ReadFile(dst)
		if !bytes.Equal(got, there) {
			t.Fatalf("ours=%v: the destination was changed", ours)
		}
		switch {
		case ours && tr.State != StateCompleted:
			t.Fatalf("our own renamed file: transfer %s %q, want completed", tr.State, tr.Reason)
		case !ours && (tr.State != StateFailed || !strings.Contains(tr.Files[0].Reason, "destination exists")):
			t.Fatalf("a foreign file at the destination: transfer %s, file %s %q; want failed, destination exists", tr.State, tr.Files[0].State, tr.Files[0].Reason)
		}
	}
}
