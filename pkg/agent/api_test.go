package agent

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
)

// serve sends one request to h and returns the answer.
func serve(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
	}
	h.ServeHTTP(rec, r)
	return rec
}

// reason is the api.Error of an answer ("" when the body is not one).
func reason(rec *httptest.ResponseRecorder) string {
	var e api.Error
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return e.Error
}

// A request an instance cannot read is refused with 400 and the reason,
// before anything is done: none of these reaches the raft node, which the
// instance here does not have. A client's request with a field the API does
// not have is refused too: a misspelt option must not silently mean its
// default (issue 10, item 7).
func TestBadRequestsAreRefused(t *testing.T) {
	h := (&Instance{}).handler()
	const request = `"request":{"sources":["in/a"],"destination":"out/"}`
	for _, c := range []struct {
		name, method, path, body, want string
	}{
		{"misspelt transfer option", http.MethodPost, api.PathTransfers,
			`{"id":"00000000000000aa","request":{"sources":["in/a"],"destination":"out/","overwite":"overwrite"}}`, `unknown field "overwite"`},
		{"unknown top-level field", http.MethodPost, api.PathTransfers,
			`{"id":"00000000000000aa",` + request + `,"priority":9}`, `unknown field "priority"`},
		{"two objects", http.MethodPost, api.PathTransfers,
			`{"id":"00000000000000aa",` + request + `} {}`, "data after the JSON object"},
		{"recovery timeout not a duration", http.MethodPost, api.PathTransfers,
			`{"id":"00000000000000aa","request":{"sources":["in/a"],"destination":"out/","recoveryTimeout":"soon"}}`, "bad transfer request"},
		{"transfer request not JSON", http.MethodPost, api.PathTransfers, `{"id":`, "bad transfer request"},
		{"transfer request not an object", http.MethodPost, api.PathTransfers, `["in/a"]`, "bad transfer request"},
		{"files not a choice", http.MethodPost, api.PathTransfers + "?" + api.QueryFiles + "=some",
			`{"id":"00000000000000aa",` + request + `}`, `files="some" is not`},
		{"stop request not JSON", http.MethodPost, api.PathStop, `immediate`, "bad stop request"},
		{"stop option misspelt", http.MethodPost, api.PathStop, `{"imediate":true}`, `bad stop request: json: unknown field "imediate"`},
		{"stop option of the wrong type", http.MethodPost, api.PathStop + "?" + api.QueryTarget + "=" + api.TargetActive,
			`{"immediate":"yes"}`, "bad stop request"},
		{"standby status not JSON", http.MethodPost, api.PathStandby, `{`, "bad status"},
		{"join request not JSON", http.MethodPost, api.PathMembers, `[]`, "bad join request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(h, c.method, c.path, c.body)
			if rec.Code != http.StatusBadRequest || !strings.Contains(reason(rec), c.want) {
				t.Fatalf("%s %s %s: %d %q; want 400 with %q", c.method, c.path, c.body, rec.Code, rec.Body, c.want)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
		})
	}
}

// startInstances starts the named instances of an agent of all in this
// process, in a temporary directory, and shuts them down at the end of the
// test. The instances not started are configured, but never answer. They
// run without TLS: these tests call the handlers directly, about what the
// API answers; security_test.go has the instances with TLS and callers.
func startInstances(t *testing.T, all []string, start ...string) map[string]*Instance {
	return startInstancesWith(t, all, []string{"tlsMode=disabled"}, start...)
}

// startInstancesWith is startInstances with more properties lines.
func startInstancesWith(t *testing.T, all, lines []string, start ...string) map[string]*Instance {
	t.Helper()
	dir := t.TempDir()
	var entries []string
	for _, name := range all {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, fmt.Sprintf("%s@%s", name, l.Addr()))
		l.Close()
	}
	props := filepath.Join(dir, "agent.properties")
	body := "agentName=ORDERS\ninstances=" + strings.Join(entries, ",") + "\ndataDirectory=data\n" + strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(props, []byte(body), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(props)
	if err != nil {
		t.Fatal(err)
	}
	ins := map[string]*Instance{}
	for _, name := range start {
		self, err := cfg.Select(name)
		if err != nil {
			t.Fatal(err)
		}
		in, err := Start(Options{Config: cfg, Self: self, Version: "test", Logger: zerolog.Nop(), Join: ha.JoinAuto})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(in.shutdown)
		ins[name] = in
	}
	return ins
}

// waitFor polls cond until it holds, failing the test after 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An instance answers a request that belongs to the active with a pointer
// to it (421 and its address in client.ActiveHeader), so that the client
// follows; it carries out none of it (a stop meant for the active does not
// stop it). The active answers them itself: an unknown transfer is 404, a
// query it cannot read is 400.
func TestRequestsForTheActive(t *testing.T) {
	ins := startInstances(t, []string{"ha1", "ha2"}, "ha1", "ha2")
	var active, standby *Instance
	waitFor(t, "an active and a standby that knows it", func() bool {
		active, standby = nil, nil
		for _, in := range ins {
			if in.node.IsActive() {
				active = in
			} else {
				standby = in
			}
		}
		return active != nil && standby != nil && standby.node.Status().LeaderAddress == active.self.Address
	})
	create := `{"id":"00000000000000ab","request":{"sources":["in/a"],"destination":"out/"}}`
	toActive := "?" + api.QueryTarget + "=" + api.TargetActive

	t.Run("misdirected", func(t *testing.T) {
		h := standby.srv.Handler
		for _, c := range []struct{ method, path, body string }{
			{http.MethodGet, api.PathAgent, ""},
			{http.MethodGet, api.PathTransfers, ""},
			{http.MethodPost, api.PathTransfers, create},
			{http.MethodGet, api.TransferPath("00000000000000ab"), ""},
			{http.MethodPost, api.CancelPath("00000000000000ab"), ""},
			{http.MethodPost, api.PathStop + toActive, `{"immediate":true}`},
			{http.MethodGet, api.PathStop + toActive, ""},
		} {
			rec := serve(h, c.method, c.path, c.body)
			want := "not the active instance; the active is " + active.self.Name
			if rec.Code != http.StatusMisdirectedRequest || reason(rec) != want ||
				rec.Header().Get(client.ActiveHeader) != active.self.Address {
				t.Errorf("%s %s on the standby: %d %s %q; want 421 %s %q", c.method, c.path, rec.Code,
					client.ActiveHeader, rec.Header().Get(client.ActiveHeader), active.self.Address, want)
			}
		}
		select {
		case <-standby.stopped:
			t.Errorf("the standby stopped on a stop meant for the active")
		default:
		}
	})

	t.Run("answered by the active", func(t *testing.T) {
		h := active.srv.Handler
		for _, c := range []struct {
			method, path, body string
			status             int
			want               string
		}{
			{http.MethodGet, api.TransferPath("0000000000000fff"), "", http.StatusNotFound, "no transfer 0000000000000fff"},
			{http.MethodPost, api.CancelPath("0000000000000fff"), "", http.StatusNotFound, "0000000000000fff"},
			{http.MethodGet, api.TransferPath("0000000000000fff") + "?" + api.QueryFiles + "=some", "", http.StatusBadRequest, `files="some" is not`},
			{http.MethodGet, api.TransferPath("0000000000000fff") + "?" + api.QueryWait + "=soon", "", http.StatusBadRequest, `wait="soon" is not a duration`},
			{http.MethodPost, api.PathTransfers, `{"id":`, http.StatusBadRequest, "bad transfer request"},
			{http.MethodPost, api.PathTransfers, create, http.StatusBadRequest, "in/a"}, // no such source
		} {
			rec := serve(h, c.method, c.path, c.body)
			if rec.Code != c.status || !strings.Contains(reason(rec), c.want) {
				t.Errorf("%s %s %s on the active: %d %q; want %d with %q", c.method, c.path, c.body, rec.Code, rec.Body, c.status, c.want)
			}
		}

		var v ha.AgentView
		if rec := serve(h, http.MethodGet, api.PathAgent, ""); rec.Code != http.StatusOK ||
			json.Unmarshal(rec.Body.Bytes(), &v) != nil || v.Active != active.self.Name {
			t.Errorf("GET %s: %d %s; want 200 with active %s", api.PathAgent, rec.Code, rec.Body, active.self.Name)
		}
		var p api.StopProgress
		if rec := serve(h, http.MethodGet, api.PathStop+toActive, ""); rec.Code != http.StatusOK ||
			json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Instance != active.self.Name || p.Stopping {
			t.Errorf("GET %s: %d %s; want 200, %s not stopping", api.PathStop, rec.Code, rec.Body, active.self.Name)
		}
		var vs []transfer.View
		if rec := serve(h, http.MethodGet, api.PathTransfers, ""); rec.Code != http.StatusOK ||
			json.Unmarshal(rec.Body.Bytes(), &vs) != nil || len(vs) != 0 || strings.TrimSpace(rec.Body.String()) != "[]" {
			t.Errorf("GET %s: %d %s; want 200 []", api.PathTransfers, rec.Code, rec.Body)
		}
	})

	t.Run("any instance answers for itself", func(t *testing.T) {
		for _, in := range ins {
			var st ha.InstanceStatus
			if rec := serve(in.srv.Handler, http.MethodGet, api.PathInstance, ""); rec.Code != http.StatusOK ||
				json.Unmarshal(rec.Body.Bytes(), &st) != nil || st.Name != in.self.Name || st.Agent != "ORDERS" {
				t.Errorf("GET %s on %s: %d %s", api.PathInstance, in.self.Name, rec.Code, rec.Body)
			}
			var p api.StopProgress
			if rec := serve(in.srv.Handler, http.MethodGet, api.PathStop, ""); rec.Code != http.StatusOK ||
				json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Instance != in.self.Name || p.Stopping {
				t.Errorf("GET %s on %s: %d %s", api.PathStop, in.self.Name, rec.Code, rec.Body)
			}
		}
	})
}

// While no instance is active (here: one of two voters runs, so there is no
// election to win), a request for the active is answered with 503, which a
// client takes as "try another instance", and without a pointer.
func TestNoActive(t *testing.T) {
	in := startInstances(t, []string{"ha1", "ha2"}, "ha1")["ha1"]
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, api.PathAgent, ""},
		{http.MethodGet, api.PathTransfers, ""},
		{http.MethodGet, api.TransferPath("00000000000000ab"), ""},
		{http.MethodPost, api.PathStop + "?" + api.QueryTarget + "=" + api.TargetActive, `{}`},
	} {
		rec := serve(in.srv.Handler, c.method, c.path, c.body)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(reason(rec), "no active instance") ||
			rec.Header().Get(client.ActiveHeader) != "" {
			t.Errorf("%s %s: %d %s %q %s; want 503 without a pointer", c.method, c.path, rec.Code,
				client.ActiveHeader, rec.Header().Get(client.ActiveHeader), rec.Body)
		}
	}
}

// The raft leader lists the group and removes members; another instance
// points to it. The leader refuses to remove itself or a name that is no
// member (409 with the reason).
func TestMembersRoutes(t *testing.T) {
	ins := startInstances(t, []string{"ha1", "ha2", "ha3"}, "ha1", "ha2", "ha3")
	var leader *Instance
	var followers []*Instance
	waitFor(t, "an active leader with three voters that the others know", func() bool {
		leader, followers = nil, nil
		for _, in := range ins {
			if m := in.node.Membership(); m.Leader == in.self.Name {
				leader = in
			} else {
				followers = append(followers, in)
			}
		}
		if leader == nil || len(followers) != 2 || !leader.node.IsActive() {
			return false
		}
		voters := 0
		for _, m := range leader.node.Membership().Members {
			if m.Voter {
				voters++
			}
		}
		for _, f := range followers {
			if f.node.Status().LeaderAddress != leader.self.Address {
				return false
			}
		}
		return voters == 3
	})
	gone := followers[0].self.Name
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, api.PathMembers},
		{http.MethodDelete, api.MemberPath(gone)},
	} {
		rec := serve(followers[1].srv.Handler, c.method, c.path, "")
		if rec.Code != http.StatusMisdirectedRequest || rec.Header().Get(client.ActiveHeader) != leader.self.Address {
			t.Errorf("%s %s on a follower: %d %q; want 421 pointing to %s", c.method, c.path, rec.Code, rec.Body, leader.self.Address)
		}
	}
	h := leader.srv.Handler
	var m ha.Membership
	if rec := serve(h, http.MethodGet, api.PathMembers, ""); rec.Code != http.StatusOK ||
		json.Unmarshal(rec.Body.Bytes(), &m) != nil || len(m.Members) != 3 || m.Leader != leader.self.Name {
		t.Fatalf("GET %s on the leader: %d %s", api.PathMembers, rec.Code, rec.Body)
	}
	for _, c := range []struct{ name, want string }{
		{leader.self.Name, "is the leader"},
		{"ha9", "not a member"},
	} {
		rec := serve(h, http.MethodDelete, api.MemberPath(c.name), "")
		if rec.Code != http.StatusConflict || !strings.Contains(reason(rec), c.want) {
			t.Errorf("DELETE %s: %d %q; want 409 with %q", c.name, rec.Code, rec.Body, c.want)
		}
	}
	var res ha.RemoveResult
	rec := serve(h, http.MethodDelete, api.MemberPath(gone), "")
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &res) != nil {
		t.Fatalf("DELETE %s: %d %s", gone, rec.Code, rec.Body)
	}
	for _, mb := range res.Members {
		if mb.Name == gone {
			t.Fatalf("%s still a member after its removal: %+v", gone, res)
		}
	}
	if len(res.Members) != 2 {
		t.Fatalf("members after removing %s: %+v", gone, res.Members)
	}
}
