package ha

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// joinPeers adds the membership calls to the test cluster's peers.
type joinPeers struct{ testPeers }

func (p joinPeers) Membership(_ context.Context, addr string) (Membership, error) {
	n, ok := p.c.reachable(p.from, addr)
	if !ok {
		return Membership{}, fmt.Errorf("%s unreachable", addr)
	}
	return n.Membership(), nil
}

func (p joinPeers) Join(ctx context.Context, addr string, req JoinRequest) (JoinResult, error) {
	n, ok := p.c.reachable(p.from, addr)
	if !ok {
		return JoinResult{}, fmt.Errorf("%s unreachable", addr)
	}
	return n.AddMember(ctx, req)
}

// newJoinCluster is a test cluster whose nodes join in mode, each with the
// instances that lists gives it (default: every node).
func newJoinCluster(t *testing.T, names []string, mode func(name string) JoinMode, lists map[string][]string) *testCluster {
	c := newTestCluster(t, names)
	c.tuneCfg = func(cfg *Config) {
		cfg.Join = mode(cfg.Name)
		cfg.Peers = joinPeers{testPeers{c: c, from: cfg.Name}}
		if l, ok := lists[cfg.Name]; ok {
			var inst []Peer
			for _, p := range c.peers {
				if slices.Contains(l, p.Name) {
					inst = append(inst, p)
				}
			}
			cfg.Instances = inst
		}
	}
	return c
}

func auto(string) JoinMode { return JoinAuto }

// voters returns the voting members of a node's raft configuration, sorted.
func voters(n *Node) []string {
	var out []string
	for _, m := range raftMembers(n.r()) {
		if m.Voter {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out
}

// restart starts a stopped node again on its state and reconnects it.
func (c *testCluster) restart(name string) *Node {
	n := c.start(name)
	c.heal(name)
	return n
}

// neverActive fails the test if any node becomes active during d.
func neverActive(t *testing.T, c *testCluster, d time.Duration, why string) {
	t.Helper()
	if waitFor(d, func() bool { return len(c.actives()) > 0 }) {
		t.Fatalf("%s: %v became active", why, c.actives())
	}
}

func TestJoinFormsTheGroupOnlyOnceEveryInstanceAnswers(t *testing.T) {
	c := newJoinCluster(t, []string{"n1", "n2", "n3"}, auto, nil)
	c.start("n1")
	c.start("n2")
	// n3 does not answer: n1 and n2 may not know that it has no group.
	neverActive(t, c, time.Second, "with n3 silent")
	for _, n := range []string{"n1", "n2"} {
		if m := raftMembers(c.node(n).r()); len(m) != 0 {
			t.Fatalf("%s formed a group while n3 was silent: %v", n, m)
		}
	}
	c.start("n3")
	c.waitActive(10 * time.Second)
	for _, n := range []string{"n1", "n2", "n3"} {
		name := n
		if !waitFor(5*time.Second, func() bool { return slices.Equal(voters(c.node(name)), []string{"n1", "n2", "n3"}) }) {
			t.Fatalf("%s's configuration: %v", name, raftMembers(c.node(name).r()))
		}
	}
	checkOneWriter(t, c.events.snapshot())
}

func TestJoinSingleInstanceGroupGrowsWithoutASecondGroup(t *testing.T) {
	// n1 is a single-instance agent; n2 and n3 are started later with all
	// three listed, while n1 still runs with its old list.
	c := newJoinCluster(t, []string{"n1", "n2", "n3"}, auto, map[string][]string{"n1": {"n1"}})
	c.start("n1")
	if a := c.waitActive(5 * time.Second); a != "n1" {
		t.Fatalf("active %s, want n1", a)
	}
	epoch := c.node("n1").Lease().Epoch
	c.start("n2")
	c.start("n3")
	if !waitFor(10*time.Second, func() bool { return slices.Equal(voters(c.node("n1")), []string{"n1", "n2", "n3"}) }) {
		t.Fatalf("n1's configuration: %v", raftMembers(c.node("n1").r()))
	}
	if a := c.actives(); !slices.Equal(a, []string{"n1"}) || c.node("n1").Lease().Epoch != epoch {
		t.Fatalf("actives %v at epoch %d; want n1 alone, still at epoch %d", a, c.node("n1").Lease().Epoch, epoch)
	}
	// n1's view lists the members its properties do not.
	var names []string
	if !waitFor(5*time.Second, func() bool {
		v, err := c.node("n1").View()
		if err != nil {
			return false
		}
		names = nil
		for _, iv := range v.Instances {
			names = append(names, iv.Name)
		}
		return slices.Equal(names, []string{"n1", "n2", "n3"}) && len(v.Standbys) == 2
	}) {
		t.Fatalf("n1's view lists %v, want n1, n2, n3 with two standbys", names)
	}
	// The group survives the loss of n1: one of the new instances takes over.
	c.stop("n1")
	c.waitActiveAbove(10*time.Second, epoch, "n1")
	checkOneWriter(t, c.events.snapshot())
}

func TestJoinWaitsForAnUnreachableExistingGroup(t *testing.T) {
	c := newJoinCluster(t, []string{"n1", "n2", "n3"}, auto, map[string][]string{"n1": {"n1"}})
	c.start("n1")
	c.waitActive(5 * time.Second)
	c.stop("n1")
	// n2 and n3 answer each other as fresh, but n1 does not answer: they
	// must not form a group of their own.
	c.start("n2")
	c.start("n3")
	neverActive(t, c, 1500*time.Millisecond, "with n1 down")
	c.restart("n1")
	if !waitFor(10*time.Second, func() bool { return slices.Equal(voters(c.node("n1")), []string{"n1", "n2", "n3"}) }) {
		t.Fatalf("n1's configuration: %v", raftMembers(c.node("n1").r()))
	}
	if a := c.waitActive(5 * time.Second); a != "n1" {
		t.Fatalf("active %s, want n1 (its group is the agent's)", a)
	}
	checkOneWriter(t, c.events.snapshot())
}

func TestJoinOnlyNeverBootstraps(t *testing.T) {
	c := newJoinCluster(t, []string{"n1", "n2", "n3"}, func(string) JoinMode { return JoinOnly }, nil)
	c.startAll()
	neverActive(t, c, time.Second, "every instance started with --join")
	for _, n := range []string{"n1", "n2", "n3"} {
		if m := raftMembers(c.node(n).r()); len(m) != 0 {
			t.Fatalf("%s has a configuration %v", n, m)
		}
	}
}

func TestJoinForceBootstrapDoesNotWaitForSilentInstances(t *testing.T) {
	c := newJoinCluster(t, []string{"n1", "n2", "n3"}, func(string) JoinMode { return JoinForceBootstrap }, nil)
	c.start("n1")
	c.start("n2")
	c.waitActive(10 * time.Second)
	c.start("n3") // joins the group the others formed
	if !waitFor(10*time.Second, func() bool { return slices.Equal(voters(c.node("n3")), []string{"n1", "n2", "n3"}) }) {
		t.Fatalf("n3's configuration: %v", raftMembers(c.node("n3").r()))
	}
	checkOneWriter(t, c.events.snapshot())
}

func TestAddMemberRefusals(t *testing.T) {
	c := newJoinCluster(t, []string{"n1", "n2", "n3"}, auto, nil)
	c.startAll()
	a := c.waitActive(10 * time.Second)
	leader := c.node(a)
	ctx := context.Background()
	cases := []struct {
		req  JoinRequest
		want string
	}{
		{JoinRequest{Agent: "OTHER", Name: "x", Address: "x"}, `belongs to agent "OTHER"`},
		{JoinRequest{Agent: "TEST", Name: "n2", Address: "elsewhere"}, "already a member of agent TEST's group at n2"},
		{JoinRequest{Agent: "TEST", Name: "n9", Address: "n3"}, "address n3 belongs to member n3"},
		{JoinRequest{Agent: "TEST", Address: "x"}, "needs the instance's name"},
	}
	for _, tc := range cases {
		_, err := leader.AddMember(ctx, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddMember(%+v) = %v, want an error containing %q", tc.req, err, tc.want)
		}
	}
	// A member that asks again is told it is a voter.
	res, err := leader.AddMember(ctx, JoinRequest{Agent: "TEST", Name: "n2", Address: "n2"})
	if err != nil || !res.Voter {
		t.Errorf("AddMember of a voter = %+v, %v", res, err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if n != a {
			if _, err := c.node(n).AddMember(ctx, JoinRequest{Agent: "TEST", Name: "n9", Address: "n9"}); err != ErrNotLeader {
				t.Errorf("AddMember on follower %s = %v, want ErrNotLeader", n, err)
			}
		}
	}
}

func TestMembershipDiff(t *testing.T) {
	cfg := []Member{{Name: "a", Address: "h1:1"}, {Name: "b", Address: "h2:1"}, {Name: "c", Address: "h3:1"}}
	cases := []struct {
		members []Member
		want    string
	}{
		{[]Member{{Name: "c", Address: "h3:1"}, {Name: "a", Address: "h1:1"}, {Name: "b", Address: "h2:1"}}, ""},
		{[]Member{{Name: "a", Address: "h1:1"}}, "listed but not members of the group: b, c"},
		{[]Member{{Name: "a", Address: "h1:1"}, {Name: "e", Address: "h5:1"}, {Name: "b", Address: "h2:1"}, {Name: "c", Address: "h3:1"}, {Name: "d", Address: "h4:1"}},
			"members of the group not listed: d@h4:1, e@h5:1"},
		{[]Member{{Name: "a", Address: "h1:2"}, {Name: "b", Address: "h2:1"}, {Name: "c", Address: "h3:1"}},
			"addresses differ: a at h1:1 in the property, h1:2 in the group"},
	}
	for _, tc := range cases {
		if got := membershipDiff(cfg, tc.members); got != tc.want {
			t.Errorf("membershipDiff(%v) = %q, want %q", tc.members, got, tc.want)
		}
	}
}

func TestQuorumLossClosesQuorumLost(t *testing.T) {
	c := newTestCluster(t, []string{"n1", "n2", "n3"})
	c.tuneCfg = func(cfg *Config) { cfg.QuorumLossTimeout = 800 * time.Millisecond }
	c.startAll()
	a := c.waitActive(10 * time.Second)
	// A failover is shorter than the timeout: nobody gives up.
	c.stop(a)
	c.waitActive(10*time.Second, a)
	for _, n := range []string{"n1", "n2", "n3"} {
		if node := c.node(n); node != nil {
			select {
			case <-node.QuorumLost():
				t.Fatalf("%s gave up during an ordinary failover", n)
			default:
			}
		}
	}
	// Cut off, the one left gives up after the timeout.
	var lone string
	for _, n := range []string{"n1", "n2", "n3"} {
		if n != a && lone == "" {
			lone = n
		}
	}
	c.partition(lone)
	start := time.Now()
	select {
	case <-c.node(lone).QuorumLost():
		if d := time.Since(start); d < 800*time.Millisecond || d > 3*time.Second {
			t.Errorf("QuorumLost after %v, want between the timeout (800ms) and 3s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s, cut off, did not give up within 5s", lone)
	}
}

func TestJoinDoesNotCountAnotherAgentsInstanceAsAnAnswer(t *testing.T) {
	// n3's address is taken by an instance of another agent: n1 and n2 do
	// not know whether their own n3 has a group, so they form none.
	c := newJoinCluster(t, []string{"n1", "n2", "n3"}, auto, map[string][]string{"n3": {"n3"}})
	tune := c.tuneCfg
	c.tuneCfg = func(cfg *Config) {
		tune(cfg)
		if cfg.Name == "n3" {
			cfg.AgentName = "OTHER"
		}
	}
	c.start("n3")
	if a := c.waitActive(5 * time.Second); a != "n3" {
		t.Fatalf("active %s, want the other agent's n3", a)
	}
	c.start("n1")
	c.start("n2")
	// Several join rounds: neither may get a configuration.
	if waitFor(time.Second, func() bool {
		return len(raftMembers(c.node("n1").r())) > 0 || len(raftMembers(c.node("n2").r())) > 0
	}) {
		t.Fatalf("n1 or n2 formed or joined a group: %v, %v", raftMembers(c.node("n1").r()), raftMembers(c.node("n2").r()))
	}
}
