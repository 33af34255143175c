package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
)

// The bodies keep their names and shapes on the wire: agents and clients
// of other builds read them.
func TestWireFormat(t *testing.T) {
	since := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		v    any
		want string
	}{
		{"error", Error{Error: "no transfer x"}, `{"error":"no transfer x"}`},
		{"stop request", StopRequest{}, `{"immediate":false}`},
		{"forced stop request", StopRequest{Immediate: true, Force: true}, `{"immediate":true,"force":true}`},
		{"stop result", StopResult{Agent: "ORDERS", Instance: "ha1", Address: "h:1", WasActive: true, NewActive: "ha2",
			NewActiveAddress: "h:2", Epoch: 3, Message: "ha1 stopped; ha2 is now active (epoch 3)"},
			`{"agent":"ORDERS","instance":"ha1","address":"h:1","wasActive":true,"newActive":"ha2","newActiveAddress":"h:2","epoch":3,"message":"ha1 stopped; ha2 is now active (epoch 3)"}`},
		{"last instance", StopResult{Instance: "ha1", LastInstance: true},
			`{"agent":"","instance":"ha1","address":"","wasActive":false,"lastInstance":true,"message":""}`},
		{"not stopping", StopProgress{Instance: "ha1", DrainTimeout: 300},
			`{"instance":"ha1","stopping":false,"drainTimeout":300,"waiting":null}`},
		{"stopping", StopProgress{Instance: "ha1", Stopping: true, Since: since, DrainTimeout: 300, Waiting: []transfer.View{}},
			`{"instance":"ha1","stopping":true,"since":"2026-12-06T11:00:00Z","drainTimeout":300,"waiting":[]}`},
	} {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("%s: %s, %v; want %s", c.name, b, err, c.want)
		}
	}
	for _, c := range []struct{ got, want string }{
		{PathInstance, "/v1/instance"}, {PathAgent, "/v1/agent"}, {PathStandby, "/v1/standby"},
		{PathStop, "/v1/stop"}, {PathMembership, "/v1/membership"}, {PathMembers, "/v1/members"},
		{PathTransfers, "/v1/transfers"}, {TransferPath("0a1b"), "/v1/transfers/0a1b"},
		{TransferPath("a/b c"), "/v1/transfers/a%2Fb%20c"}, {CancelPath("0a1b"), "/v1/transfers/0a1b/cancel"},
	} {
		if c.got != c.want {
			t.Errorf("path %s, want %s", c.got, c.want)
		}
	}
}
