// End-to-end test of adding an instance to a running agent and removing it
// again, following docs/operations.md ("Adding and removing instances"):
// real processes, driven through `ftagent start --join` and `ftagent
// members`.
package test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/test/harness"
)

// members runs `ftagent members list --json` against the cluster.
func members(c *harness.Cluster) (ha.Membership, harness.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := harness.Run(ctx, c.Bin.Ftagent, "members", "list", "--config", c.Props, "--json")
	var m ha.Membership
	if err == nil && r.Exit == 0 {
		err = json.Unmarshal([]byte(r.Stdout), &m)
	}
	return m, r, err
}

func memberOf(m ha.Membership, name string) (ha.Member, bool) {
	for _, mb := range m.Members {
		if mb.Name == name {
			return mb, true
		}
	}
	return ha.Member{}, false
}

func TestMembersAddAndRemoveAnInstance(t *testing.T) {
	c := newCluster(t, harness.Options{Names: []string{"ha1", "ha2", "ha3", "ha4"}})
	three, err := c.PropsFor("three.properties", "ha1", "ha2", "ha3")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ha1", "ha2", "ha3"} {
		if _, err := c.StartWith(three, n); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, c, 30*time.Second, "an active and two standbys", activeWithStandbys(2))

	// ha4 is started to join the running group: it becomes a voter (and its
	// own configuration says so: it asks nothing more).
	if _, err := c.Start("ha4", "--join"); err != nil {
		t.Fatal(err)
	}
	var m ha.Membership
	var r harness.Result
	if !waitUntil(30*time.Second, func() bool {
		m, r, err = members(c)
		mb, ok := memberOf(m, "ha4")
		return err == nil && r.Exit == 0 && ok && mb.Voter && m.Leader != ""
	}) {
		t.Fatalf("ha4 never became a voter: %+v (exit %d, %v, %s)", m, r.Exit, err, r.Stderr)
	}
	if !waitUntil(20*time.Second, func() bool {
		own, err := c.Membership(context.Background(), "ha4")
		mb, ok := memberOf(own, "ha4")
		return err == nil && ok && mb.Voter
	}) {
		t.Fatal("ha4's own configuration never listed it as a voter")
	}
	if len(m.Members) != 4 {
		t.Fatalf("members %+v, want four", m.Members)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The table names every member, and the leader.
	r, err = harness.Run(ctx, c.Bin.Ftagent, "members", "list", "--config", c.Props)
	if err != nil || r.Exit != 0 || !strings.Contains(r.Stdout, "MEMBER") || !strings.Contains(r.Stdout, "ha4") ||
		!strings.Contains(r.Stdout, "Leader:  "+m.Leader) {
		t.Fatalf("members list: exit %d %v\n%s%s", r.Exit, err, r.Stdout, r.Stderr)
	}
	// Refusals: no such member, and the leader itself.
	for _, tc := range []struct{ name, want string }{
		{"ha9", "not a member"},
		{m.Leader, "is the leader"},
	} {
		r, err = harness.Run(ctx, c.Bin.Ftagent, "members", "remove", "--config", c.Props, tc.name)
		if err != nil || r.Exit != 1 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("members remove %s: exit %d %v %q; want exit 1 with %q", tc.name, r.Exit, err, r.Stderr, tc.want)
		}
	}

	// As docs/operations.md says: stop it, then remove it.
	if r, err = c.Ftstop(ctx, "--instance", "ha4"); err != nil || r.Exit != 0 {
		t.Fatalf("ftstop --instance ha4: exit %d %v\n%s%s", r.Exit, err, r.Stdout, r.Stderr)
	}
	r, err = harness.Run(ctx, c.Bin.Ftagent, "members", "remove", "--config", c.Props, "ha4")
	if err != nil || r.Exit != 0 || !strings.Contains(r.Stdout, "ha4") {
		t.Fatalf("members remove ha4: exit %d %v\n%s%s", r.Exit, err, r.Stdout, r.Stderr)
	}
	m, r, err = members(c)
	if err != nil || r.Exit != 0 {
		t.Fatalf("members list after the removal: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	if _, ok := memberOf(m, "ha4"); ok || len(m.Members) != 3 {
		t.Fatalf("members after removing ha4: %+v", m.Members)
	}
	// The agent goes on with its three instances.
	wait(t, c, 30*time.Second, "an active and two standbys after the removal", func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && v.Active != "" && v.Active != "ha4"
	})
}
