package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/transfer"
)

// The transfer views page their files: a request that names no window gets
// the first api.DefaultLimit files, offset and limit select others (in the
// transfer's order), filesTotal counts them all and nextOffset says where
// the next page starts (left out after the last); directories likewise.
// The list, the submission and a wait answer with the window too. A window
// out of bounds is refused with 400 and one line.
func TestTransferPages(t *testing.T) {
	in := startInstances(t, []string{"ha1"}, "ha1")["ha1"]
	waitFor(t, "an active", in.node.IsActive)
	h := in.srv.Handler
	const n = api.DefaultLimit + 5
	for i := range n {
		p := filepath.Join(in.cfg.TransferRoot, "in", "tree", fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%04d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	create := func(id, query, source string) (*http.Response, []byte) {
		body := fmt.Sprintf(`{"id":%q,"request":{"sources":[%q],"destination":"out/%s/","recursive":true}}`, id, source, id)
		rec := serve(h, http.MethodPost, api.PathTransfers+query, body)
		return rec.Result(), rec.Body.Bytes()
	}
	if res, body := create("00000000000000a1", "?"+api.QueryLimit+"=3", "in/tree"); res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", res.StatusCode, body)
	} else if v := decodeView(t, body); len(v.Files) != 3 || v.FilesTotal != n || v.NextOffset != 3 {
		t.Errorf("create with limit 3: %d files of %d, nextOffset %d; want 3 of %d, 3", len(v.Files), v.FilesTotal, v.NextOffset, n)
	}
	id := "00000000000000a1"
	get := func(query string) (transfer.View, string) {
		t.Helper()
		rec := serve(h, http.MethodGet, api.TransferPath(id)+query, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", query, rec.Code, rec.Body)
		}
		return decodeView(t, rec.Body.Bytes()), rec.Body.String()
	}

	v, raw := get("")
	if len(v.Files) != api.DefaultLimit || v.FilesTotal != n || v.NextOffset != api.DefaultLimit {
		t.Errorf("no window: %d files of %d, nextOffset %d; want %d of %d, %d", len(v.Files), v.FilesTotal, v.NextOffset, api.DefaultLimit, n, api.DefaultLimit)
	}
	if v.Directories != 4 || len(v.Dirs) != 4 || v.NextDirOffset != 0 || strings.Contains(raw, `"nextDirOffset"`) {
		t.Errorf("no window: %d directories, %d listed, nextDirOffset %d: %.200s", v.Directories, len(v.Dirs), v.NextDirOffset, raw)
	}
	v, raw = get(fmt.Sprintf("?%s=%d&%s=10", api.QueryOffset, api.DefaultLimit, api.QueryLimit))
	if len(v.Files) != 5 || v.FilesTotal != n || strings.Contains(raw, `"nextOffset"`) {
		t.Errorf("the last page: %d files of %d; want 5, without nextOffset: %.300s", len(v.Files), v.FilesTotal, raw)
	}
	if v, _ = get("?" + api.QueryOffset + "=5000"); v.Files == nil || len(v.Files) != 0 || v.NextOffset != 0 || v.FilesTotal != n {
		t.Errorf("past the end: %+v files, nextOffset %d, filesTotal %d; want [], none, %d", v.Files, v.NextOffset, v.FilesTotal, n)
	}
	// The directories: the tree and its three.
	if v, _ = get("?" + api.QueryDirOffset + "=2&" + api.QueryDirLimit + "=1"); len(v.Dirs) != 1 || v.Dirs[0].Source != "in/tree/d1" || v.NextDirOffset != 3 {
		t.Errorf("directory window 2+1: %+v, nextDirOffset %d; want in/tree/d1, 3", v.Dirs, v.NextDirOffset)
	}
	if v, _ = get("?" + api.QueryFiles + "=" + transfer.FilesNone + "&" + api.QueryLimit + "=2"); v.Files != nil || v.Dirs != nil || v.FilesTotal != n || v.NextOffset != 0 {
		t.Errorf("files=none: %d files (nil %v), %d dirs, filesTotal %d, nextOffset %d", len(v.Files), v.Files == nil, len(v.Dirs), v.FilesTotal, v.NextOffset)
	}

	// Page after page, from nextOffset: every file once, in the transfer's
	// order.
	tr, ok := in.transfers.Get(id)
	if !ok {
		t.Fatal("transfer gone")
	}
	var paged []string
	for offset, pages := 0, 0; ; pages++ {
		v, _ := get(fmt.Sprintf("?%s=%d&%s=300", api.QueryOffset, offset, api.QueryLimit))
		for _, f := range v.Files {
			paged = append(paged, f.Source)
		}
		if v.NextOffset == 0 {
			if pages != 3 {
				t.Errorf("%d pages of 300 for %d files", pages+1, n)
			}
			break
		}
		offset = v.NextOffset
	}
	if len(paged) != n {
		t.Fatalf("paged %d files, want %d", len(paged), n)
	}
	for i, src := range paged {
		if want := strings.TrimPrefix(tr.FileAt(i).Source, in.cfg.TransferRoot+"/"); src != want {
			t.Fatalf("file %d of the pages is %s, the transfer's is %s", i, src, want)
		}
	}

	// A wait answers at the end, with the window of files=ended.
	if res, body := create("00000000000000a2", "?"+api.QueryFiles+"="+transfer.FilesNone, "in/tree/d0"); res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", res.StatusCode, body)
	} else if v := decodeView(t, body); v.Files != nil || v.FilesTotal != (n+2)/3 {
		t.Errorf("create with files=none: %d files (nil %v), filesTotal %d", len(v.Files), v.Files == nil, v.FilesTotal)
	}
	id = "00000000000000a2"
	waitFor(t, "the transfer's end", func() bool {
		v, _ := get("?" + api.QueryWait + "=10s&" + api.QueryFiles + "=" + transfer.FilesEnded + "&" + api.QueryLimit + "=2")
		if !transfer.Terminal(v.State) {
			return v.Files == nil
		}
		if len(v.Files) != 2 || v.NextOffset != 2 || v.State != transfer.StateCompleted {
			t.Fatalf("ended: %s, %d files, nextOffset %d; want completed, 2, 2", v.State, len(v.Files), v.NextOffset)
		}
		return true
	})

	// The list: each transfer with the window.
	rec := serve(h, http.MethodGet, api.PathTransfers+"?"+api.QueryLimit+"=1", "")
	var vs []transfer.View
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &vs) != nil || len(vs) != 2 {
		t.Fatalf("GET %s?limit=1: %d %.300s", api.PathTransfers, rec.Code, rec.Body)
	}
	for _, v := range vs {
		if len(v.Files) != 1 || v.NextOffset != 1 || v.FilesTotal < 2 {
			t.Errorf("list with limit 1: %s has %d files of %d, nextOffset %d", v.ID, len(v.Files), v.FilesTotal, v.NextOffset)
		}
	}
	rec = serve(h, http.MethodGet, api.PathTransfers+"?"+api.QueryFiles+"="+transfer.FilesNone, "")
	if vs = nil; rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &vs) != nil || len(vs) != 2 || vs[0].Files != nil || vs[0].FilesTotal != n {
		t.Errorf("GET %s?files=none: %d %.300s", api.PathTransfers, rec.Code, rec.Body)
	}

	// Windows out of bounds.
	for _, c := range []struct{ method, path, want string }{
		{http.MethodGet, api.TransferPath(id) + "?" + api.QueryLimit + "=10001", `limit="10001" is not a number from 1 to 10000`},
		{http.MethodGet, api.TransferPath(id) + "?" + api.QueryLimit + "=0", `limit="0" is not a number from 1 to 10000`},
		{http.MethodGet, api.TransferPath(id) + "?" + api.QueryOffset + "=-1", `offset="-1" is not a number, 0 or more`},
		{http.MethodGet, api.TransferPath(id) + "?" + api.QueryOffset + "=ten", `offset="ten" is not a number, 0 or more`},
		{http.MethodGet, api.TransferPath(id) + "?" + api.QueryDirLimit + "=1e3", `dirLimit="1e3" is not a number from 1 to 10000`},
		{http.MethodGet, api.TransferPath(id) + "?" + api.QueryDirOffset + "=-5", `dirOffset="-5" is not a number, 0 or more`},
		{http.MethodGet, api.PathTransfers + "?" + api.QueryLimit + "=20000", `limit="20000" is not a number from 1 to 10000`},
		{http.MethodPost, api.PathTransfers + "?" + api.QueryOffset + "=x", `offset="x" is not a number, 0 or more`},
	} {
		body := ""
		if c.method == http.MethodPost {
			body = `{"id":"00000000000000a3","request":{"sources":["in/tree"],"destination":"out/a3/","recursive":true}}`
		}
		rec := serve(h, c.method, c.path, body)
		if rec.Code != http.StatusBadRequest || reason(rec) != c.want || strings.Count(rec.Body.String(), "\n") != 1 {
			t.Errorf("%s %s: %d %q; want 400 %q", c.method, c.path, rec.Code, rec.Body, c.want)
		}
	}
	if _, ok := in.transfers.Get("00000000000000a3"); ok {
		t.Error("a submission with a bad window was created")
	}
}

func decodeView(t *testing.T, body []byte) transfer.View {
	t.Helper()
	v, err := transfer.DecodeView(body)
	if err != nil {
		t.Fatalf("%v: %.300s", err, body)
	}
	return v
}
