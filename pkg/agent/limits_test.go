package agent

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
)

// Every route's body is bounded: a larger one is refused with 413 (by its
// Content-Length, or when reading it passes the bound), and a GET with a
// body with 400, before anything is done.
func TestBodiesAreBounded(t *testing.T) {
	h := (&Instance{}).handler()
	big := `{"id":"00000000000000aa","request":{"sources":["in/a"],"destination":"out/"}` + strings.Repeat(" ", maxBodyBytes) + `}`
	for _, c := range []struct {
		name, method, path string
		body               io.Reader
		length             int64 // -1: chunked
		want               int
	}{
		{"transfer larger than the bound", http.MethodPost, api.PathTransfers, strings.NewReader(big), int64(len(big)), http.StatusRequestEntityTooLarge},
		{"transfer chunked past the bound", http.MethodPost, api.PathTransfers, strings.NewReader(big), -1, http.StatusRequestEntityTooLarge},
		{"stop chunked past the bound", http.MethodPost, api.PathStop, strings.NewReader(big), -1, http.StatusRequestEntityTooLarge},
		{"standby status chunked past the bound", http.MethodPost, api.PathStandby, strings.NewReader(big), -1, http.StatusRequestEntityTooLarge},
		{"join chunked past the bound", http.MethodPost, api.PathMembers, strings.NewReader(big), -1, http.StatusRequestEntityTooLarge},
		{"cancel larger than the bound", http.MethodPost, api.PathTransfers + "/00000000000000aa/cancel", strings.NewReader(big), int64(len(big)), http.StatusRequestEntityTooLarge},
		{"GET with a body", http.MethodGet, api.PathAgent, strings.NewReader("{}"), 2, http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, c.path, c.body)
			r.ContentLength = c.length
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != c.want {
				t.Fatalf("%s %s: %d %q, want %d", c.method, c.path, rec.Code, rec.Body, c.want)
			}
		})
	}
}

// A handler that waits longer than the server's read and write timeouts
// answers, with its context alive, once it has extended its deadlines;
// without, the answer is cut (which is what the timeouts are for).
func TestExtendDeadlines(t *testing.T) {
	const timeout, work = 300 * time.Millisecond, time.Second
	serveOnce := func(extend bool) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{ReadTimeout: timeout, WriteTimeout: timeout, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if extend {
				extendDeadlines(w, work+5*time.Second)
			}
			select {
			case <-time.After(work):
				_, _ = io.WriteString(w, "done")
			case <-r.Context().Done():
				_, _ = io.WriteString(w, "cancelled")
			}
		})}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		hc := &http.Client{Timeout: 10 * time.Second}
		resp, err := hc.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := serveOnce(true); err != nil || got != "done" {
		t.Fatalf("extended: %q %v, want done", got, err)
	}
	if got, err := serveOnce(false); err == nil && got == "done" {
		t.Fatalf("not extended: answered %q past the timeouts", got)
	}
}
