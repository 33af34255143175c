package agentclient

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
)

// FuzzParseTransferBody reads arbitrary bodies as a transfer's view, as
// the client does (ParseTransferBody reads up to the files): no panic, the body is left as it is, and a view that decodes is
// read by ParseTransferBody, once the agent has written it, as the same view
// without its files and directories.
func FuzzParseTransferBody(f *testing.F) {
	ended := time.Date(2026, 11, 24, 13, 0, 0, 0, time.UTC)
	v := transfer.View{ID: "t1", State: transfer.StateFailed, Bytes: 10, BytesDone: 4, Failovers: 1, BytesResent: 2, Reason: "a\xff: gone",
		Priority: 3, Created: ended.Add(-time.Hour), Ended: &ended, CurrentFile: "in/a\xff", Directories: 1, DirectoriesDone: 1,
		FilesTotal: 3, NextOffset: 1,
		Files: []transfer.FileView{{Source: "in/a\xff", Destination: "out/a\xff", Bytes: 10, BytesDone: 4, State: transfer.StateFailed, Reason: "gone"}},
		Dirs:  []transfer.DirView{{Source: "in/d", Destination: "out/d", State: transfer.StateCompleted}}}
	for _, x := range []any{v.JSONValue(), transfer.View{ID: "t2"}.JSONValue()} {
		b, err := json.Marshal(x)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":"x","files":null,"id":"y"}`))
	f.Add([]byte(`[1]`))
	f.Add([]byte(`{"id":"x","files":[{"source":"\u0000%ZZ"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		orig := bytes.Clone(raw)
		if b, _ := ParseTransferBody(raw); !bytes.Equal(raw, orig) || !bytes.Equal(b.Raw, orig) {
			t.Fatalf("ParseTransferBody changed the body %q", orig)
		}
		full, ferr := transfer.DecodeView(raw)
		if ferr != nil {
			return
		}
		written, err := json.Marshal(full.JSONValue())
		if err != nil {
			t.Fatalf("encode %+v: %v", full, err)
		}
		head, err := ParseTransferBody(written)
		if err != nil {
			t.Fatalf("view %s: %v", written, err)
		}
		want := full
		want.Files, want.Dirs = nil, nil
		if !bytes.Equal(viewJSON(t, head.View), viewJSON(t, want)) {
			t.Fatalf("view %s read up to its files as %+v, want %+v", written, head.View, want)
		}
	})
}

// viewJSON is v as the agent writes it: views are compared so, as a time
// read from "+00:00" is in time.Local on a machine at UTC, the same
// instant written back as "Z" in time.UTC.
func viewJSON(t *testing.T, v transfer.View) []byte {
	t.Helper()
	b, err := json.Marshal(v.JSONValue())
	if err != nil {
		t.Fatalf("encode %+v: %v", v, err)
	}
	return b
}
