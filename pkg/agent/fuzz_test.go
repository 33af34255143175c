package agent

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
)

// The fuzz targets of what the API reads from the network: request bodies
// (FuzzRequestBodies) and the transfer query (FuzzTransferQuery).

func post(body []byte) (*httptest.ResponseRecorder, *http.Request) {
	r := httptest.NewRequest(http.MethodPost, api.PathTransfers, bytes.NewReader(body))
	return httptest.NewRecorder(), r
}

// FuzzRequestBodies decodes arbitrary bodies as the API's handlers do: a
// transfer to create (decodeCreateTransfer), a stop request
// (decodeRequest), a standby's status and a join request (read leniently).
// Nothing panics, and each body accepted encodes to JSON that the handler
// reads back as the same value.
func FuzzRequestBodies(f *testing.F) {
	rt := transfer.Duration(time.Minute)
	for _, v := range []any{
		api.CreateTransferRequest{ID: "c1", Request: transfer.Request{Sources: []string{"in/a", "in/b\xff"}, Destination: "out/", Recursive: true,
			Overwrite: "overwrite", Disposition: "delete", Priority: 9, RecoveryTimeout: &rt, BandwidthLimit: 1000}},
		api.CreateTransferRequest{Request: transfer.Request{Sources: []string{"a"}, Destination: "b"}},
		api.StopRequest{Immediate: true, Force: true},
		ha.InstanceStatus{Name: "ha2", StartTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Format: ha.FormatVersion},
		ha.JoinRequest{Agent: "A", Name: "ha4", Address: "h:1", LastApplied: 3},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":"x","request":{"sources":["a"],"destination":"b","overwite":"overwrite"}}`))
	f.Add([]byte(`{"id":"x","request":{"sources":["a"],"destination":"b"}} {}`))
	f.Add([]byte(`{"request":{"sources":["\u0000%FF"],"destination":"\u0000%"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if req, err := decodeCreateTransfer(post(body)); err == nil {
			b, err := json.Marshal(req)
			if err != nil {
				t.Fatalf("encode %+v: %v", req, err)
			}
			req2, err := decodeCreateTransfer(post(b))
			if err != nil || !reflect.DeepEqual(req, req2) {
				t.Fatalf("request %+v encodes to %s, read back as %+v, %v", req, b, req2, err)
			}
		}
		var stop api.StopRequest
		if w, r := post(body); decodeRequest(w, r, &stop) == nil {
			var again api.StopRequest
			if w, r := post(mustMarshal(t, stop)); decodeRequest(w, r, &again) != nil || again != stop {
				t.Fatalf("stop request %+v read back as %+v", stop, again)
			}
		}
		lenient[ha.InstanceStatus](t, body)
		lenient[ha.JoinRequest](t, body)
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %+v: %v", v, err)
	}
	return b
}

// lenient reads body as the handlers of standby status and join requests
// do; what it accepts must read back the same once encoded.
func lenient[T any](t *testing.T, body []byte) {
	t.Helper()
	decode := func(b []byte) (T, error) {
		var v T
		w, r := post(b)
		err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&v)
		return v, err
	}
	v, err := decode(body)
	if err != nil {
		return
	}
	b := mustMarshal(t, v)
	// Compared as encoded: a time read from "+00:00" is in time.Local on
	// a machine at UTC, the same instant written back as "Z" in time.UTC.
	v2, err := decode(b)
	if err != nil {
		t.Fatalf("%T %+v encodes to %s, which is not read back: %v", v, v, b, err)
	}
	if b2 := mustMarshal(t, v2); !bytes.Equal(b, b2) {
		t.Fatalf("%T %+v encodes to %s, read back as %+v, encoded %s", v, v, b, v2, b2)
	}
}

// FuzzTransferQuery reads arbitrary query strings as the transfer
// handlers do: no panic; what is accepted is one of the files values, a
// window within bounds (offsets from 0, limits from 1 to api.MaxLimit) and
// a wait within [0, api.MaxTransferWait]; and the same values, written as
// a client writes them, read back the same.
func FuzzTransferQuery(f *testing.F) {
	for _, q := range []string{"", "files=all", "files=none&wait=30s", "files=ended&wait=1h", "wait=-1s", "wait=1.5m&wait=2s",
		"files=%41ll", "files=all;wait=1s", "wait=9223372036854775807ns", "files", "%zz",
		"offset=1000&limit=10000", "limit=0", "offset=-1", "dirOffset=3&dirLimit=10001", "limit=+5", "offset=9223372036854775808"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: api.PathTransfers + "/x", RawQuery: q}, Body: io.NopCloser(bytes.NewReader(nil))}
		tq, err := parseTransferQuery(r)
		if err != nil {
			return
		}
		switch tq.files {
		case transfer.FilesAll, transfer.FilesNone, transfer.FilesEnded:
		default:
			t.Fatalf("query %q: files %q", q, tq.files)
		}
		if w := tq.window; w.Offset < 0 || w.DirOffset < 0 || w.Limit < 1 || w.Limit > api.MaxLimit || w.DirLimit < 1 || w.DirLimit > api.MaxLimit {
			t.Fatalf("query %q: window %+v", q, w)
		}
		if tq.wait < 0 || tq.wait > api.MaxTransferWait {
			t.Fatalf("query %q: wait %v", q, tq.wait)
		}
		v := url.Values{api.QueryFiles: {tq.files}}
		for name, n := range map[string]int{api.QueryOffset: tq.window.Offset, api.QueryLimit: tq.window.Limit,
			api.QueryDirOffset: tq.window.DirOffset, api.QueryDirLimit: tq.window.DirLimit} {
			v.Set(name, strconv.Itoa(n))
		}
		if tq.wait > 0 {
			v.Set(api.QueryWait, tq.wait.String())
		}
		r.URL.RawQuery = v.Encode()
		tq2, err := parseTransferQuery(r)
		if err != nil || tq2 != tq {
			t.Fatalf("query %q: %+v; written as %q: %+v, %v", q, tq, r.URL.RawQuery, tq2, err)
		}
	})
}
