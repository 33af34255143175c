package agent

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/api"
)

// A client's request with a field the API does not have is refused with
// the field named, before anything is done: a misspelt option must not
// silently mean its default (issue 10, item 7).
func TestClientRequestsRefuseUnknownFields(t *testing.T) {
	in := &Instance{}
	mux := http.NewServeMux()
	in.transferRoutes(mux)
	for _, c := range []struct {
		name, path, body, want string
	}{
		{"misspelt transfer option", api.PathTransfers,
			`{"id":"00000000000000aa","request":{"sources":["in/a"],"destination":"out/","overwite":"overwrite"}}`, `unknown field "overwite"`},
		{"unknown top-level field", api.PathTransfers,
			`{"id":"00000000000000aa","request":{"sources":["in/a"],"destination":"out/"},"priority":9}`, `unknown field "priority"`},
		{"two objects", api.PathTransfers,
			`{"id":"00000000000000aa","request":{"sources":["in/a"],"destination":"out/"}} {}`, "data after the JSON object"},
		{"recovery timeout not a duration", api.PathTransfers,
			`{"id":"00000000000000aa","request":{"sources":["in/a"],"destination":"out/","recoveryTimeout":"soon"}}`, "bad transfer request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body)))
			var e api.Error
			_ = json.Unmarshal(rec.Body.Bytes(), &e)
			if rec.Code != http.StatusBadRequest || !strings.Contains(e.Error, c.want) {
				t.Fatalf("POST %s %s: %d %q; want 400 with %q", c.path, c.body, rec.Code, e.Error, c.want)
			}
		})
	}
}
