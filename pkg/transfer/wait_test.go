package transfer

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// TestWaitView: a waiting reader is answered, without the files, as soon
// as the transfer ends, and after the wait when it does not end; the page
// rendered then lists the files once the transfer has ended only when
// asked so.
func TestWaitView(t *testing.T) {
	s := NewState()
	create, err := json.Marshal(replicated.CreateCmd{Transfer: Transfer{
		ID: "t", Created: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC),
		Request: Request{Sources: []string{"in/t"}, Destination: "out/"},
		Files:   []File{{Source: "/r/in/t/a", Destination: "/r/out/a", Bytes: 5}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err, ok := s.Apply(KindCreate, 1, create, 1).(error); ok {
		t.Fatal(err)
	}
	m := NewManager(Limits{}, s, nil, nil, nil, zerolog.Nop())
	t1 := time.Now()
	v, ok := m.WaitView(context.Background(), "t", "/r", 50*time.Millisecond)
	if !ok || v.State != StateQueued || v.Files != nil || time.Since(t1) < 50*time.Millisecond {
		t.Fatalf("not ended: %+v after %v", v, time.Since(t1))
	}
	if v, _ := m.ViewPage("t", "/r", FilesEnded, Window{Limit: 10, DirLimit: 1}); v.Files != nil {
		t.Fatalf("files of a transfer not ended listed: %+v", v)
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		_ = s.Apply(KindFiles, 1, []byte(`{"id":"t","time":"2026-11-24T12:00:00Z","events":[{"index":0,"kind":"done","sha256":"ab"}]}`), 9)
	}()
	t1 = time.Now()
	v, ok = m.WaitView(context.Background(), "t", "/r", 10*time.Second)
	if !ok || v.State != StateCompleted || v.Files != nil || v.BytesDone != 5 {
		t.Fatalf("ended: %+v", v)
	}
	if d := time.Since(t1); d > 5*time.Second {
		t.Fatalf("answered after %v, not at the end", d)
	}
	if v, _ := m.ViewPage("t", "/r", FilesEnded, Window{Limit: 10, DirLimit: 1}); len(v.Files) != 1 || v.Files[0].Destination != "out/a" {
		t.Fatalf("ended, files listed once ended: %+v", v)
	}
	if v, _ := m.ViewPage("t", "/r", FilesNone, Window{}); v.Files != nil || !strings.HasPrefix(v.ID, "t") {
		t.Fatalf("files none: %+v", v)
	}
	if _, ok := m.WaitView(context.Background(), "nope", "/r", time.Second); ok {
		t.Fatal("a missing transfer was found")
	}
}
