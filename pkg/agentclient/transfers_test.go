package agentclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
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

// GetTransferAll asks page after page, from nextOffset and nextDirOffset,
// until neither is given, and returns every file and directory in order;
// the files may end before the directories. An agent whose next page does
// not follow the last is an error, not a loop.
func TestGetTransferAll(t *testing.T) {
	const nfiles, ndirs = 25, 5
	var asked []string
	stuck := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		asked = append(asked, r.URL.RawQuery)
		num := func(name string) int { n, _ := strconv.Atoi(q.Get(name)); return n }
		// This agent's pages are smaller than asked: at most 10 files and
		// 2 directories.
		v := transfer.View{ID: "big", State: transfer.StateCompleted, FilesTotal: nfiles, Directories: ndirs, Files: []transfer.FileView{}}
		from, to := num(api.QueryOffset), min(num(api.QueryOffset)+min(num(api.QueryLimit), 10), nfiles)
		for i := from; i < to; i++ {
			v.Files = append(v.Files, transfer.FileView{Source: fmt.Sprintf("in/f%02d", i)})
		}
		if to < nfiles {
			v.NextOffset = to
		}
		if stuck {
			v.NextOffset = max(from, 1)
		}
		dfrom, dto := num(api.QueryDirOffset), min(num(api.QueryDirOffset)+min(num(api.QueryDirLimit), 2), ndirs)
		for i := dfrom; i < dto; i++ {
			v.Dirs = append(v.Dirs, transfer.DirView{Source: fmt.Sprintf("in/d%d", i)})
		}
		if dto < ndirs {
			v.NextDirOffset = dto
		}
		_ = json.NewEncoder(w).Encode(v.JSONValue())
	}))
	defer srv.Close()
	cl, err := client.New([]string{strings.TrimPrefix(srv.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	v, err := GetTransferAll(context.Background(), cl, "big")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Files) != nfiles || len(v.Dirs) != ndirs || v.NextOffset != 0 || v.NextDirOffset != 0 {
		t.Fatalf("%d files, %d dirs, next %d/%d; want %d, %d, none (asked %q)", len(v.Files), len(v.Dirs), v.NextOffset, v.NextDirOffset, nfiles, ndirs, asked)
	}
	for i, f := range v.Files {
		if f.Source != fmt.Sprintf("in/f%02d", i) {
			t.Fatalf("file %d is %s (asked %q)", i, f.Source, asked)
		}
	}
	for i, d := range v.Dirs {
		if d.Source != fmt.Sprintf("in/d%d", i) {
			t.Fatalf("directory %d is %s (asked %q)", i, d.Source, asked)
		}
	}
	if len(asked) != 3 || asked[0] != "dirLimit=10000&limit=10000" || asked[2] != "dirLimit=10000&dirOffset=4&limit=10000&offset=20" {
		t.Errorf("asked %q", asked)
	}

	stuck, asked = true, nil
	if _, err := GetTransferAll(context.Background(), cl, "big"); err == nil || !strings.Contains(err.Error(), "does not follow") || len(asked) > 3 {
		t.Errorf("an agent whose pages do not advance: %v after %d requests", err, len(asked))
	}
}
