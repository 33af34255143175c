package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// alternatesFile is a valid file of agent ORDERS that sends to PAYMENTS,
// with two alternates, to BILLING, which shares PAYMENTS_DR with it, and
// to AUDIT, with none. The alternates are written out of order and before
// the agents they stand in for, so that the test sees the order of the
// value and not of the lines.
const alternatesFile = `agentName=ORDERS
instances=ha1@127.0.0.1:7101, ha2@127.0.0.1:7102, ha3@127.0.0.1:7103
dataDirectory=data
agent.PAYMENTS.alternates = PAYMENTS_DR2 , PAYMENTS_DR
agent.BILLING.alternates=PAYMENTS_DR
agent.PAYMENTS_DR2.instances=dr2@10.0.8.1:7101
agent.PAYMENTS_DR.instances=dr1@10.0.9.1:7101, dr2@10.0.9.2:7101, dr3@10.0.9.3:7101
agent.PAYMENTS.instances=pay1@10.0.2.1:7101, pay2@10.0.2.2:7101, pay3@10.0.2.3:7101
agent.BILLING.instances=bill1@10.0.4.1:7101
agent.AUDIT.instances=ha1@audit.example.com:7301
alternateAfter=90
`

func TestAlternates(t *testing.T) {
	c := mustLoad(t, alternatesFile)
	alternates := map[string][]string{}
	var names []string
	for _, ra := range c.RemoteAgents {
		names = append(names, ra.Name)
		alternates[ra.Name] = ra.Alternates
	}
	if want := []string{"AUDIT", "BILLING", "PAYMENTS", "PAYMENTS_DR", "PAYMENTS_DR2"}; !reflect.DeepEqual(names, want) {
		t.Errorf("RemoteAgents names = %q, want %q", names, want)
	}
	wantAlts := map[string][]string{
		"AUDIT":        nil,
		"BILLING":      {"PAYMENTS_DR"},
		"PAYMENTS":     {"PAYMENTS_DR2", "PAYMENTS_DR"},
		"PAYMENTS_DR":  nil,
		"PAYMENTS_DR2": nil,
	}
	if !reflect.DeepEqual(alternates, wantAlts) {
		t.Errorf("Alternates = %q, want %q", alternates, wantAlts)
	}
	ra, ok := c.RemoteAgent("PAYMENTS")
	if !ok || !reflect.DeepEqual(ra.Alternates, []string{"PAYMENTS_DR2", "PAYMENTS_DR"}) {
		t.Errorf("RemoteAgent(PAYMENTS) = %+v, %v", ra, ok)
	}

	groups := map[string][]string{
		"PAYMENTS":     {"PAYMENTS", "PAYMENTS_DR2", "PAYMENTS_DR"},
		"BILLING":      {"BILLING", "PAYMENTS_DR"},
		"AUDIT":        {"AUDIT"},
		"PAYMENTS_DR":  {"PAYMENTS_DR"},
		"PAYMENTS_DR2": {"PAYMENTS_DR2"},
		// Not configured: names are case-sensitive, and this agent is
		// not one it sends to.
		"payments": nil,
		"ORDERS":   nil,
		"OTHER":    nil,
		"":         nil,
	}
	for name, want := range groups {
		if got := c.Group(name); !reflect.DeepEqual(got, want) {
			t.Errorf("Group(%q) = %q, want %q", name, got, want)
		}
	}
	// The slice is the caller's own.
	g := c.Group("PAYMENTS")
	g[0], g[1] = "X", "Y"
	if got := c.Group("PAYMENTS"); !reflect.DeepEqual(got, groups["PAYMENTS"]) {
		t.Errorf("Group(PAYMENTS) after changing a returned slice = %q", got)
	}
	if ra, _ := c.RemoteAgent("PAYMENTS"); ra.Alternates[0] != "PAYMENTS_DR2" {
		t.Errorf("Alternates changed through Group: %q", ra.Alternates)
	}

	if c.AlternateAfter != 90*time.Second {
		t.Errorf("AlternateAfter = %v, want 90s", c.AlternateAfter)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("Warnings = %q", c.Warnings)
	}
}

// Without the keys, or with empty values, no agent has alternates, and
// alternateAfter is 60s.
func TestAlternatesDefault(t *testing.T) {
	for _, over := range []map[string]string{
		{AgentInstancesKey("PAYMENTS"): "pay1@10.0.2.1:7101"},
		{AgentInstancesKey("PAYMENTS"): "pay1@10.0.2.1:7101", AgentAlternatesKey("PAYMENTS"): " ", KeyAlternateAfter: ""},
		// An empty value is as if the key were absent, so it needs no
		// agent.NAME.instances, and an alternate may have one.
		{AgentInstancesKey("PAYMENTS"): "pay1@10.0.2.1:7101", AgentAlternatesKey("AUDIT"): ""},
	} {
		c := mustLoad(t, props(over))
		if len(c.RemoteAgents) != 1 || c.RemoteAgents[0].Alternates != nil {
			t.Errorf("%v: RemoteAgents = %+v, want PAYMENTS without alternates", over, c.RemoteAgents)
		}
		if got := c.Group("PAYMENTS"); !reflect.DeepEqual(got, []string{"PAYMENTS"}) {
			t.Errorf("%v: Group(PAYMENTS) = %q, want [PAYMENTS]", over, got)
		}
		if c.AlternateAfter != 60*time.Second {
			t.Errorf("%v: AlternateAfter = %v, want 60s", over, c.AlternateAfter)
		}
		if len(c.Warnings) != 0 {
			t.Errorf("%v: Warnings = %q", over, c.Warnings)
		}
	}
	c := mustLoad(t, props(nil))
	if c.Group("PAYMENTS") != nil || c.AlternateAfter != 60*time.Second {
		t.Errorf("no other agents: Group(PAYMENTS) = %q, AlternateAfter = %v", c.Group("PAYMENTS"), c.AlternateAfter)
	}
	if d := defaultOf(KeyAlternateAfter); d != "60s" {
		t.Errorf("alternateAfter default %q, want 60s", d)
	}
	if d := defaultOf(KeyAgentAlternates); d != "" {
		t.Errorf("agent.<NAME>.alternates default %q, want empty", d)
	}
	// The chain rule concerns alternates with a value: an alternate whose
	// own alternates key is empty is fine.
	c = mustLoad(t, props(map[string]string{
		AgentInstancesKey("PAYMENTS"):     "pay1@10.0.2.1:7101",
		AgentInstancesKey("PAYMENTS_DR"):  "dr1@10.0.9.1:7101",
		AgentAlternatesKey("PAYMENTS"):    "PAYMENTS_DR",
		AgentAlternatesKey("PAYMENTS_DR"): "",
	}))
	if got := c.Group("PAYMENTS"); !reflect.DeepEqual(got, []string{"PAYMENTS", "PAYMENTS_DR"}) {
		t.Errorf("Group(PAYMENTS) = %q", got)
	}
}

// alternateAfter is a duration as any other: plain seconds or Go form.
func TestAlternateAfter(t *testing.T) {
	cases := map[string]time.Duration{
		"5":      5 * time.Second,
		"5s":     5 * time.Second,
		"5000ms": 5 * time.Second,
		"7.5":    7500 * time.Millisecond,
		" 120 ":  2 * time.Minute,
		"1.5m":   90 * time.Second,
		"2m30s":  150 * time.Second,
		"1h":     time.Hour,
	}
	for v, want := range cases {
		c := mustLoad(t, props(map[string]string{KeyAlternateAfter: v}))
		if c.AlternateAfter != want {
			t.Errorf("alternateAfter=%s: AlternateAfter = %v, want %v", v, c.AlternateAfter, want)
		}
	}
}

func TestAlternateErrors(t *testing.T) {
	const (
		pay   = "agent.PAYMENTS.alternates"
		payIn = "agent.PAYMENTS.instances"
		drIn  = "agent.PAYMENTS_DR.instances"
		dr2In = "agent.PAYMENTS_DR2.instances"
	)
	// with adds the instances of PAYMENTS, PAYMENTS_DR and PAYMENTS_DR2
	// to over.
	with := func(over map[string]string) map[string]string {
		m := map[string]string{payIn: "pay1@10.0.2.1:7101", drIn: "dr1@10.0.9.1:7101", dr2In: "dr2@10.0.8.1:7101"}
		for k, v := range over {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name    string
		over    map[string]string
		key     string
		contain string
	}{
		{"bad agent name", with(map[string]string{"agent.PAY*.alternates": "PAYMENTS_DR"}), "agent.PAY*.alternates", `agent name "PAY*" may contain only letters, digits`},
		{"agent name too long", with(map[string]string{AgentAlternatesKey(strings.Repeat("P", 65)): "PAYMENTS_DR"}), AgentAlternatesKey(strings.Repeat("P", 65)), "65 characters long; at most 64"},
		{"no agent name", with(map[string]string{"agent..alternates": "PAYMENTS_DR"}), "agent..alternates", `no agent name between "agent." and ".alternates"`},
		{"bad agent name, empty value", with(map[string]string{"agent.PAY*.alternates": ""}), "agent.PAY*.alternates", "may contain only"},
		{"own name", with(map[string]string{"agent.ORDERS.alternates": "PAYMENTS_DR"}), "agent.ORDERS.alternates", "names this agent itself; alternates are for the other agents"},
		{"own name, empty value", with(map[string]string{"agent.ORDERS.alternates": ""}), "agent.ORDERS.alternates", "names this agent itself"},
		{"no instances", map[string]string{pay: "PAYMENTS_DR", drIn: "dr1@10.0.9.1:7101"}, pay, `"PAYMENTS" has no agent.PAYMENTS.instances; alternates are only for an agent that this agent sends to`},
		{"empty instances", map[string]string{pay: "PAYMENTS_DR", payIn: " ", drIn: "dr1@10.0.9.1:7101"}, pay, `"PAYMENTS" has no agent.PAYMENTS.instances`},
		{"case of the name", with(map[string]string{"agent.payments.alternates": "PAYMENTS_DR"}), "agent.payments.alternates", `"payments" has no agent.payments.instances`},
		{"first bad key in name order", with(map[string]string{"agent.B*.alternates": "x", "agent.A*.alternates": "y"}), "agent.A*.alternates", `"A*"`},

		{"stray comma", with(map[string]string{pay: "PAYMENTS_DR,,PAYMENTS_DR2"}), pay, "entry 2 is empty (check for a stray comma)"},
		{"trailing comma", with(map[string]string{pay: "PAYMENTS_DR,"}), pay, "entry 2 is empty"},
		{"leading comma", with(map[string]string{pay: " ,PAYMENTS_DR"}), pay, "entry 1 is empty"},
		{"bad alternate name", with(map[string]string{pay: "PAYMENTS_DR,DR 2"}), pay, `entry 2: agent name "DR 2" may contain only`},
		{"alternate name too long", with(map[string]string{pay: strings.Repeat("D", 65)}), pay, "entry 1: agent name"},
		{"alternate is NAME", with(map[string]string{pay: "PAYMENTS_DR,PAYMENTS"}), pay, `entry 2 "PAYMENTS" is "PAYMENTS" itself; an alternate must be another agent`},
		{"alternate is this agent", with(map[string]string{pay: "ORDERS"}), pay, `entry 1 "ORDERS" is this agent itself`},
		{"duplicate", with(map[string]string{pay: "PAYMENTS_DR, PAYMENTS_DR2 ,PAYMENTS_DR"}), pay, `"PAYMENTS_DR" is listed twice (entries 1 and 3)`},
		{"alternate without instances", map[string]string{payIn: "pay1@10.0.2.1:7101", drIn: "dr1@10.0.9.1:7101", pay: "PAYMENTS_DR,PAYMENTS_DR3"}, pay, `entry 2 "PAYMENTS_DR3" has no agent.PAYMENTS_DR3.instances`},
		{"alternate with empty instances", with(map[string]string{pay: "PAYMENTS_DR2", dr2In: ""}), pay, `entry 1 "PAYMENTS_DR2" has no agent.PAYMENTS_DR2.instances`},
		{"case of an alternate", with(map[string]string{pay: "payments_dr"}), pay, `entry 1 "payments_dr" has no agent.payments_dr.instances`},

		{"chain", with(map[string]string{pay: "PAYMENTS_DR", "agent.PAYMENTS_DR.alternates": "PAYMENTS_DR2"}), "agent.PAYMENTS_DR.alternates",
			`"PAYMENTS_DR" is itself an alternate of "PAYMENTS" (in agent.PAYMENTS.alternates), and an alternate cannot have alternates of its own; list every alternate of "PAYMENTS", in order, in agent.PAYMENTS.alternates instead`},
		{"chain through the second alternate", with(map[string]string{pay: "PAYMENTS_DR,PAYMENTS_DR2", "agent.PAYMENTS_DR2.alternates": "PAYMENTS_DR"}), "agent.PAYMENTS_DR2.alternates",
			`"PAYMENTS_DR2" is itself an alternate of "PAYMENTS"`},
		{"each other's alternates", with(map[string]string{pay: "PAYMENTS_DR", "agent.PAYMENTS_DR.alternates": "PAYMENTS"}), pay,
			`"PAYMENTS" is itself an alternate of "PAYMENTS_DR" (in agent.PAYMENTS_DR.alternates)`},
		{"chain after a bad entry", with(map[string]string{pay: "PAYMENTS_DR", "agent.PAYMENTS_DR.alternates": "PAYMENTS_DR2,"}), "agent.PAYMENTS_DR.alternates", "entry 2 is empty"},

		{"alternateAfter zero", map[string]string{KeyAlternateAfter: "0"}, KeyAlternateAfter, "must be larger than 0"},
		{"alternateAfter negative", map[string]string{KeyAlternateAfter: "-60"}, KeyAlternateAfter, "must not be negative"},
		{"alternateAfter not a duration", map[string]string{KeyAlternateAfter: "1 minute"}, KeyAlternateAfter, `invalid duration "1 minute"`},
		{"alternateAfter too short", map[string]string{KeyAlternateAfter: "4"}, KeyAlternateAfter,
			"4s is too short; it must be at least 5s, longer than a failover inside a group (an election, then the reconnect attempts), so that a failover never moves transfers to an alternate"},
		{"alternateAfter just too short", map[string]string{KeyAlternateAfter: "4999ms"}, KeyAlternateAfter, "4.999s is too short; it must be at least 5s"},
		{"alternateAfter tiny", map[string]string{KeyAlternateAfter: "1ns"}, KeyAlternateAfter, "1ns is too short"},
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

func TestAlternateWarnings(t *testing.T) {
	cases := []struct {
		key  string
		want string
	}{
		{"agent.PAYMENTS.alternatez", `unknown key "agent.PAYMENTS.alternatez" (ignored; did you mean "agent.PAYMENTS.alternates"?)`},
		{"agent.PAYMENTS.alternate", `unknown key "agent.PAYMENTS.alternate" (ignored; did you mean "agent.PAYMENTS.alternates"?)`},
		{"agent.PAYMENTS.alternats", `(ignored; did you mean "agent.PAYMENTS.alternates"?)`},
		{"agents.PAYMENTS.alternates", `(ignored; did you mean "agent.PAYMENTS.alternates"?)`},
		{"Agent.PAYMENTS.Alternates", `(ignored; did you mean "agent.PAYMENTS.alternates"?)`},
		{"agent.PAYMENTS.alternatives", `(ignored; did you mean "agent.PAYMENTS.alternates"?)`},
		{"agent.PAYMENTS.standby", `unknown key "agent.PAYMENTS.standby" (ignored)`},
		{"alternateafter", `unknown key "alternateafter" (ignored; did you mean "alternateAfter"?)`},
		{"alternatesAfter", `unknown key "alternatesAfter" (ignored; did you mean "alternateAfter"?)`},
		{"alternateAftr", `(ignored; did you mean "alternateAfter"?)`},
	}
	for _, tc := range cases {
		c := mustLoad(t, props(map[string]string{tc.key: "PAYMENTS_DR", AgentInstancesKey("PAYMENTS"): "pay1@h1:1"}))
		if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], tc.want) {
			t.Errorf("%s: Warnings = %q, want one containing %q", tc.key, c.Warnings, tc.want)
		}
		if got := c.Group("PAYMENTS"); !reflect.DeepEqual(got, []string{"PAYMENTS"}) {
			t.Errorf("%s: Group(PAYMENTS) = %q, want [PAYMENTS]", tc.key, got)
		}
		if c.AlternateAfter != 60*time.Second {
			t.Errorf("%s: AlternateAfter = %v, want 60s", tc.key, c.AlternateAfter)
		}
	}
}

func TestLookupAlternatesKey(t *testing.T) {
	for _, key := range []string{"agent.PAYMENTS.alternates", "agent.a.b.alternates", "agent..alternates", "agent.P*.alternates"} {
		if k, ok := LookupKey(key); !ok || k.Name != KeyAgentAlternates {
			t.Errorf("LookupKey(%q) = %+v, %v; want the alternates pattern key", key, k, ok)
		}
	}
	// The two pattern keys do not take each other's keys.
	if k, ok := LookupKey("agent.PAYMENTS.instances"); !ok || k.Name != KeyAgentInstances {
		t.Errorf("LookupKey(agent.PAYMENTS.instances) = %+v, %v", k, ok)
	}
	for _, key := range []string{"agent.alternates", "agent.PAYMENTS.alternatesx", "xagent.PAYMENTS.alternates", KeyAgentAlternates + "x"} {
		if k, ok := LookupKey(key); ok {
			t.Errorf("LookupKey(%q) = %+v, want unknown", key, k)
		}
	}
	if got := AgentAlternatesKey("PAYMENTS"); got != "agent.PAYMENTS.alternates" {
		t.Errorf("AgentAlternatesKey = %q", got)
	}
}

// The commented example in agent.properties.example is coherent: with its
// other-agent lines uncommented, the file loads and PAYMENTS' group is
// PAYMENTS, then PAYMENTS_DR.
func TestExampleAlternates(t *testing.T) {
	path := filepath.Join("..", "..", "agent.properties.example")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(text), "\n")
	n := 0
	for i, line := range lines {
		for _, key := range []string{AgentInstancesKey("PAYMENTS"), AgentAlternatesKey("PAYMENTS"), AgentInstancesKey("PAYMENTS_DR"), KeyAlternateAfter} {
			if strings.HasPrefix(line, "#"+key+"=") {
				lines[i] = line[1:]
				n++
			}
		}
	}
	if n != 4 {
		t.Fatalf("found %d of the 4 commented lines to uncomment", n)
	}
	c, err := Parse([]byte(strings.Join(lines, "\n")), path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Group("PAYMENTS"), []string{"PAYMENTS", "PAYMENTS_DR"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Group(PAYMENTS) = %q, want %q", got, want)
	}
	if c.AlternateAfter != 60*time.Second || len(c.Warnings) != 0 {
		t.Errorf("AlternateAfter = %v, Warnings = %q", c.AlternateAfter, c.Warnings)
	}
}
