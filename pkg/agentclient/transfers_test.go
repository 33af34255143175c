package agentclient

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
)

// ParseTransferBody reads a view's head without its files, but with their
// count and where the next page starts.
func TestParseTransferBody(t *testing.T) {
	ended := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	v := transfer.View{
		ID: "abc", State: transfer.StateFailed, Bytes: 10, BytesDone: 4, Failovers: 2, BytesResent: 3,
		Reason: "source changed", Priority: 7, Created: ended.Add(-time.Minute), Ended: &ended, FilesTotal: 3, NextOffset: 2,
		Files: []transfer.FileView{
			{Source: "in/a", Destination: "out/a", Bytes: 4, BytesDone: 4, SHA256: strings.Repeat("0", 64), State: transfer.StateCompleted},
			{Source: "in/b", Destination: "out/b", Bytes: 6, State: transfer.StateFailed, Reason: "source changed"},
		},
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseTransferBody(raw)
	if err != nil {
		t.Fatal(err)
	}
	head := v
	head.Files = nil
	if !reflect.DeepEqual(b.View, head) {
		t.Fatalf("head: %+v, want %+v", b.View, head)
	}

	// The files are not read: a body cut inside them still gives its head.
	cut := raw[:strings.Index(string(raw), `"in/b"`)]
	if b, err := ParseTransferBody(cut); err != nil || b.State != transfer.StateFailed || b.Reason != "source changed" {
		t.Fatalf("cut inside the files: %+v, %v", b.View, err)
	}
	// A view without files (an agent that left them out) is read whole.
	if b, err := ParseTransferBody([]byte(`{"id":"x","state":"running","bytes":5}`)); err != nil || b.ID != "x" || b.State != transfer.StateRunning || b.Bytes != 5 {
		t.Fatalf("a view without files: %+v, %v", b.View, err)
	}
	// A body that is not a view is an error.
	for _, bad := range []string{"", "[]", `"x"`, `{"id":`} {
		if _, err := ParseTransferBody([]byte(bad)); err == nil {
			t.Errorf("ParseTransferBody(%q): no error", bad)
		}
	}
}
