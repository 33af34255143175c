package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/trust"
)

// remoteFile is a valid file of agent ORDERS that sends to PAYMENTS and
// AUDIT and receives from PAYMENTS and BILLING. AUDIT comes first in the
// file, so that the test sees RemoteAgents sorted by name rather than in
// the order of the lines.
const remoteFile = `agentName=ORDERS
instances=ha1@127.0.0.1:7101, ha2@127.0.0.1:7102, ha3@127.0.0.1:7103
dataDirectory=data
agent.AUDIT.instances = ha1@audit.example.com:7301
agent.PAYMENTS.instances=pay1@10.0.2.1:7101, pay2@10.0.2.2:7101 ,pay3@10.0.2.3:7101
acceptFrom = PAYMENTS ,BILLING
`

func TestRemoteAgents(t *testing.T) {
	c := mustLoad(t, remoteFile)
	want := []RemoteAgent{
		{Name: "AUDIT", Instances: []Instance{{Name: "ha1", Address: "audit.example.com:7301"}}},
		{Name: "PAYMENTS", Instances: []Instance{
			{Name: "pay1", Address: "10.0.2.1:7101"},
			{Name: "pay2", Address: "10.0.2.2:7101"},
			{Name: "pay3", Address: "10.0.2.3:7101"},
		}},
	}
	if !reflect.DeepEqual(c.RemoteAgents, want) {
		t.Errorf("RemoteAgents = %+v, want %+v", c.RemoteAgents, want)
	}
	ra, ok := c.RemoteAgent("PAYMENTS")
	if !ok || ra.Name != "PAYMENTS" {
		t.Fatalf("RemoteAgent(PAYMENTS) = %+v, %v", ra, ok)
	}
	if got, want := ra.Addresses(), []string{"10.0.2.1:7101", "10.0.2.2:7101", "10.0.2.3:7101"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Addresses = %q, want %q", got, want)
	}
	// Agent names are case-sensitive, and this agent is not a remote one.
	for _, name := range []string{"payments", "ORDERS", "BILLING", ""} {
		if ra, ok := c.RemoteAgent(name); ok {
			t.Errorf("RemoteAgent(%q) = %+v, want none", name, ra)
		}
	}
	// This agent's own addresses are unchanged by the others'.
	if got := c.Addresses(); !reflect.DeepEqual(got, []string{"127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"}) {
		t.Errorf("own Addresses = %q", got)
	}

	if want := []string{"PAYMENTS", "BILLING"}; !reflect.DeepEqual(c.AcceptFrom, want) {
		t.Errorf("AcceptFrom = %q, want %q", c.AcceptFrom, want)
	}
	accepts := map[string]bool{"PAYMENTS": true, "BILLING": true, "payments": false, "AUDIT": false, "ORDERS": false, "": false}
	for name, want := range accepts {
		if got := c.Accepts(name); got != want {
			t.Errorf("Accepts(%q) = %v, want %v", name, got, want)
		}
	}
	if len(c.Warnings) != 0 {
		t.Errorf("Warnings = %q", c.Warnings)
	}
}

// A name of 64 characters is the longest pkg/trust accepts, longer than
// this agent's own name may be; instance names may repeat across agents,
// as each agent's names are its own.
func TestRemoteAgentLongNameAndSharedInstanceNames(t *testing.T) {
	long := strings.Repeat("P", 64)
	c := mustLoad(t, props(map[string]string{
		AgentInstancesKey(long):      "ha1@10.0.2.1:7101",
		AgentInstancesKey("a.b_c-1"): "ha1@10.0.3.1:7101,HA2@10.0.3.2:7101",
		KeyAcceptFrom:                long,
	}))
	if len(c.RemoteAgents) != 2 || c.RemoteAgents[0].Name != long || c.RemoteAgents[1].Name != "a.b_c-1" {
		t.Errorf("RemoteAgents = %+v", c.RemoteAgents)
	}
	if !c.Accepts(long) {
		t.Errorf("Accepts(%q) = false", long)
	}
}

// Without the keys, or with empty values, the agent sends to and receives
// from no other agent.
func TestRemoteAgentsDefault(t *testing.T) {
	for _, over := range []map[string]string{
		nil,
		{AgentInstancesKey("PAYMENTS"): "", KeyAcceptFrom: "  "},
	} {
		c := mustLoad(t, props(over))
		if c.RemoteAgents != nil || c.AcceptFrom != nil {
			t.Errorf("%v: RemoteAgents = %+v, AcceptFrom = %q, want nil, nil", over, c.RemoteAgents, c.AcceptFrom)
		}
		if ra, ok := c.RemoteAgent("PAYMENTS"); ok {
			t.Errorf("%v: RemoteAgent(PAYMENTS) = %+v", over, ra)
		}
		if c.Accepts("PAYMENTS") {
			t.Errorf("%v: Accepts(PAYMENTS) = true", over)
		}
		if len(c.Warnings) != 0 {
			t.Errorf("%v: Warnings = %q", over, c.Warnings)
		}
	}
	if d := defaultOf(KeyAcceptFrom); d != "" {
		t.Errorf("acceptFrom default %q, want empty", d)
	}
}

func TestRemoteAgentErrors(t *testing.T) {
	const pay = "agent.PAYMENTS.instances"
	cases := []struct {
		name    string
		over    map[string]string
		key     string
		contain string
	}{
		{"bad agent name", map[string]string{"agent.PAY*.instances": "pay1@h1:1"}, "agent.PAY*.instances", `agent name "PAY*" may contain only letters, digits`},
		{"agent name too long", map[string]string{AgentInstancesKey(strings.Repeat("P", 65)): "pay1@h1:1"}, AgentInstancesKey(strings.Repeat("P", 65)), "65 characters long; at most 64"},
		{"no agent name", map[string]string{"agent..instances": "pay1@h1:1"}, "agent..instances", `no agent name between "agent." and ".instances"`},
		{"bad agent name, empty value", map[string]string{"agent.PAY*.instances": ""}, "agent.PAY*.instances", "may contain only"},
		{"own name", map[string]string{"agent.ORDERS.instances": "pay1@h1:1"}, "agent.ORDERS.instances", `names this agent itself; its instances are in "instances"`},
		{"first bad key in name order", map[string]string{"agent.B*.instances": "x", "agent.A*.instances": "y"}, "agent.A*.instances", `"A*"`},

		{"missing @", map[string]string{pay: "pay1@h1:1,pay2h2:2"}, pay, `entry 2 "pay2h2:2": missing '@'`},
		{"stray comma", map[string]string{pay: "pay1@h1:1,,pay2@h2:2"}, pay, "entry 2 is empty"},
		{"empty instance name", map[string]string{pay: "@h1:1"}, pay, `entry 1 "@h1:1": empty instance name`},
		{"bad instance name", map[string]string{pay: "pay1@h1:1,p!2@h2:2"}, pay, `entry 2 "p!2@h2:2": instance name "p!2"`},
		{"bad port", map[string]string{pay: "pay1@h1:1,pay2@h2:1,pay3@h3:0"}, pay, `entry 3 "pay3@h3:0": port 0 is out of range`},
		{"bad host", map[string]string{pay: "pay1@bad!host:7101"}, pay, "neither an IP address nor a valid host name"},
		{"duplicate instance names", map[string]string{pay: "pay1@h1:1,PAY1@h2:2"}, pay, `"PAY1" is listed twice (entries 1 and 2`},
		{"duplicate addresses", map[string]string{pay: "pay1@Host1:7101,pay2@host1:07101"}, pay, `address "host1:07101" of "pay2" is also the address of "pay1"; each instance`},
		{"address of an own instance", map[string]string{pay: "pay1@10.0.2.1:7101,pay2@127.0.0.1:7102"}, pay, `address "127.0.0.1:7102" of "pay2" is also the address of "ha2" in instances`},
		{"address of another agent", map[string]string{"agent.AUDIT.instances": "a1@h1:1", pay: "pay1@H1:1"}, pay, `also the address of "a1" in agent.AUDIT.instances`},

		{"acceptFrom stray comma", map[string]string{KeyAcceptFrom: "PAYMENTS,,BILLING"}, KeyAcceptFrom, "entry 2 is empty (check for a stray comma)"},
		{"acceptFrom trailing comma", map[string]string{KeyAcceptFrom: "PAYMENTS,"}, KeyAcceptFrom, "entry 2 is empty"},
		{"acceptFrom leading comma", map[string]string{KeyAcceptFrom: " ,PAYMENTS"}, KeyAcceptFrom, "entry 1 is empty"},
		{"acceptFrom bad name", map[string]string{KeyAcceptFrom: "PAYMENTS,BILL ING"}, KeyAcceptFrom, `entry 2: agent name "BILL ING" may contain only`},
		{"acceptFrom name too long", map[string]string{KeyAcceptFrom: strings.Repeat("B", 65)}, KeyAcceptFrom, "entry 1: agent name"},
		{"acceptFrom own name", map[string]string{KeyAcceptFrom: "PAYMENTS,ORDERS"}, KeyAcceptFrom, `entry 2 "ORDERS" is this agent itself`},
		{"acceptFrom duplicate", map[string]string{KeyAcceptFrom: "PAYMENTS, BILLING ,PAYMENTS"}, KeyAcceptFrom, `"PAYMENTS" is listed twice (entries 1 and 3)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, t.TempDir(), props(tc.over))
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want an error naming %s", c, tc.key)
			}
			e := asError(t, err)
			if e.Key != tc.key {
				t.Errorf("Key = %q, want %q (error: %v)", e.Key, tc.key, err)
			}
			if !strings.Contains(e.Msg, tc.contain) {
				t.Errorf("Msg = %q, want it to contain %q", e.Msg, tc.contain)
			}
			if !strings.HasPrefix(err.Error(), path+": "+tc.key+": ") {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), path+": "+tc.key+": ")
			}
		})
	}
}

func TestRemoteAgentWarnings(t *testing.T) {
	cases := []struct {
		key  string
		want string
	}{
		{"agent.PAYMENTS.instancez", `unknown key "agent.PAYMENTS.instancez" (ignored; did you mean "agent.PAYMENTS.instances"?)`},
		{"agent.PAYMENTS.instance", `unknown key "agent.PAYMENTS.instance" (ignored; did you mean "agent.PAYMENTS.instances"?)`},
		{"agents.PAYMENTS.instances", `(ignored; did you mean "agent.PAYMENTS.instances"?)`},
		{"Agent.PAYMENTS.Instances", `(ignored; did you mean "agent.PAYMENTS.instances"?)`},
		{"agent.PAYMENTS.hosts", `unknown key "agent.PAYMENTS.hosts" (ignored)`},
		{"agent.PAYMENTS", `unknown key "agent.PAYMENTS" (ignored)`},
		{"acceptfrom", `unknown key "acceptfrom" (ignored; did you mean "acceptFrom"?)`},
	}
	for _, tc := range cases {
		c := mustLoad(t, props(map[string]string{tc.key: "pay1@h1:1"}))
		if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], tc.want) {
			t.Errorf("%s: Warnings = %q, want one containing %q", tc.key, c.Warnings, tc.want)
		}
		if c.RemoteAgents != nil {
			t.Errorf("%s: RemoteAgents = %+v, want nil", tc.key, c.RemoteAgents)
		}
	}
}

func TestLookupPatternKey(t *testing.T) {
	for _, key := range []string{"agent.PAYMENTS.instances", "agent.a.b.instances", "agent..instances", "agent.P*.instances"} {
		if k, ok := LookupKey(key); !ok || k.Name != KeyAgentInstances {
			t.Errorf("LookupKey(%q) = %+v, %v; want the pattern key", key, k, ok)
		}
	}
	for _, key := range []string{"agent.instances", "agent.PAYMENTS.instancesx", "xagent.PAYMENTS.instances", "agent.PAYMENTS", KeyAgentInstances + "x"} {
		if k, ok := LookupKey(key); ok {
			t.Errorf("LookupKey(%q) = %+v, want unknown", key, k)
		}
	}
	if got := AgentInstancesKey("PAYMENTS"); got != "agent.PAYMENTS.instances" {
		t.Errorf("AgentInstancesKey = %q", got)
	}
}

// checkAgentName restates pkg/trust's CheckName (which config does not
// import); the two must accept the same names, or a name Load accepts
// could never match a certificate.
func TestAgentNameRule(t *testing.T) {
	names := []string{
		"PAYMENTS", "a", "a.b_c-d", "0", ".", "..", "-",
		strings.Repeat("x", 63), strings.Repeat("x", 64), strings.Repeat("x", 65),
		"", " ", "PAY MENTS", "PAY*", "PAY/1", "PAY:1", "ÄGENT", "agent\n",
	}
	for _, name := range names {
		local, trusted := checkAgentName(name) == nil, trust.CheckName("agent", name) == nil
		if local != trusted {
			t.Errorf("%q: config accepts it: %v, trust.CheckName: %v", name, local, trusted)
		}
	}
}
