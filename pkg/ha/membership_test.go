package ha

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// member returns name's entry in n's raft configuration.
func member(n *Node, name string) (Member, bool) {
	for _, m := range raftMembers(n.r()) {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// onLeader runs f on the leader, and again on the next leader while f
// answers that it is not, or no longer, the leader (under load, leadership
// may move in the middle of a test), for up to 10s. It returns the node f last ran on, and f's error.
func onLeader(t *testing.T, c *testCluster, f func(n *Node) error) (*Node, error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := c.node(c.waitActive(10 * time.Second))
		err := f(n)
		if !(errors.Is(err, ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrNotLeader)) ||
			time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestForgedJoinRequestIsNeverPromoted(t *testing.T) {
	c := newJoinCluster(t, []string{"n1", "n2", "n3"}, auto, nil)
	c.startAll()
	c.waitActive(10 * time.Second)
	ctx := context.Background()
	// "ghost" claims to have applied far beyond anything the group has, and
	// to have reached whatever catch-up index it was given. Nothing answers
	// raft at its address.
	req := JoinRequest{Agent: "TEST", Name: "ghost", Address: "ghost:1", LastApplied: 1 << 40}
	var leader *Node
	for i := 0; i < 20; i++ {
		var res JoinResult
		var err error
		leader, err = onLeader(t, c, func(n *Node) (err error) {
			res, err = n.AddMember(ctx, req)
			return err
		})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if res.Voter {
			t.Fatalf("request %d: a forged join request made a voter: %+v", i, res)
		}
		req.CatchUpIndex = res.CatchUpIndex
		time.Sleep(20 * time.Millisecond)
	}
	m, ok := member(leader, "ghost")
	if !ok || m.Voter {
		t.Fatalf("ghost in the configuration: %+v (present %v), want a non-voter", m, ok)
	}
	if v := voters(leader); !slices.Equal(v, []string{"n1", "n2", "n3"}) {
		t.Fatalf("voters %v", v)
	}
	// The real members' acknowledgements are what the leader sees; ghost
	// never acknowledged anything.
	if !waitFor(5*time.Second, func() bool {
		term := leader.r().CurrentTerm()
		for _, n := range []string{"n1", "n2", "n3"} {
			if idx, _ := leader.repl.acked(raft.ServerID(n), term); n != leader.cfg.Name && idx == 0 {
				return false
			}
		}
		return true
	}) {
		t.Errorf("the leader saw no acknowledgement from a follower")
	}
	if idx, _ := leader.repl.acked("ghost", leader.r().CurrentTerm()); idx != 0 {
		t.Errorf("the leader saw ghost acknowledge index %d", idx)
	}
	checkOneWriter(t, c.events.snapshot())
}

func TestJoinedInstanceBecomesVoterOnceItReplicates(t *testing.T) {
	c := newJoinCluster(t, []string{"n1", "n2", "n3", "n4"}, auto,
		map[string][]string{"n1": {"n1", "n2", "n3"}, "n2": {"n1", "n2", "n3"}, "n3": {"n1", "n2", "n3"}})
	for _, n := range []string{"n1", "n2", "n3"} {
		c.start(n)
	}
	c.waitActive(10 * time.Second)
	// n4 is a non-voter that this leader holds no catch-up index for (as if
	// an earlier leader had added it): it is judged against the end of the
	// log when it asks.
	leader, err := onLeader(t, c, func(n *Node) error { return n.r().AddNonvoter("n4", "n4", 0, time.Second).Error() })
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := leader.repl.target("n4", leader.r().CurrentTerm()); ok {
		t.Fatal("a catch-up index recorded for a non-voter AddMember did not add")
	}
	c.start("n4")
	if !waitFor(10*time.Second, func() bool {
		return slices.Equal(voters(c.node("n4")), []string{"n1", "n2", "n3", "n4"})
	}) {
		t.Fatalf("n4 never became a voter: %v", raftMembers(c.node("n4").r()))
	}
	checkOneWriter(t, c.events.snapshot())
}

func TestRemoveMember(t *testing.T) {
	c := newJoinCluster(t, []string{"n1", "n2", "n3", "n4"}, auto,
		map[string][]string{"n1": {"n1", "n2", "n3"}, "n2": {"n1", "n2", "n3"}, "n3": {"n1", "n2", "n3"}})
	for _, n := range []string{"n1", "n2", "n3"} {
		c.start(n)
	}
	c.waitActive(10 * time.Second)
	ctx := context.Background()
	c.start("n4")
	// n4's own configuration lists it as a voter: it asks nothing more.
	if !waitFor(10*time.Second, func() bool { return slices.Contains(voters(c.node("n4")), "n4") }) {
		t.Fatalf("n4 never became a voter: %v", raftMembers(c.node("n4").r()))
	}
	if _, err := onLeader(t, c, func(n *Node) error {
		_, err := n.AddMember(ctx, JoinRequest{Agent: "TEST", Name: "ghost", Address: "ghost:1"})
		return err
	}); err != nil {
		t.Fatal(err)
	}

	remove := func(name string) (*Node, RemoveResult, error) {
		t.Helper()
		var res RemoveResult
		n, err := onLeader(t, c, func(n *Node) (err error) {
			target := name
			if target == "" { // the leader itself
				target = n.cfg.Name
			}
			res, err = n.RemoveMember(ctx, target)
			return err
		})
		return n, res, err
	}
	refused := func(name, want string) {
		t.Helper()
		if _, _, err := remove(name); !errors.Is(err, ErrRemoveRefused) || !strings.Contains(err.Error(), want) {
			t.Fatalf("RemoveMember(%q) = %v, want a refusal containing %q", name, err, want)
		}
	}
	refused("", "is the leader")
	refused("nobody", "not a member")
	for _, n := range []string{"n1", "n2", "n3"} {
		// A follower points to the leader (unless it has become the leader
		// in the meantime, and then refuses a name that is no member).
		if _, err := c.node(n).RemoveMember(ctx, "nobody"); !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrRemoveRefused) {
			t.Errorf("RemoveMember on %s = %v, want ErrNotLeader", n, err)
		}
	}

	// A non-voter.
	_, res, err := remove("ghost")
	if err != nil {
		t.Fatalf("remove the non-voter: %v", err)
	}
	if slices.ContainsFunc(res.Members, func(m Member) bool { return m.Name == "ghost" }) {
		t.Fatalf("ghost still a member: %+v", res)
	}
	// A voter, stopped first as docs/operations.md says.
	c.stop("n4")
	leader, _, err := remove("n4")
	if err != nil {
		t.Fatalf("remove the voter n4: %v", err)
	}
	if v := voters(leader); !slices.Equal(v, []string{"n1", "n2", "n3"}) {
		t.Fatalf("voters after removing n4: %v", v)
	}
	if _, ok := member(leader, "n4"); ok {
		t.Fatalf("n4 still a member: %v", raftMembers(leader.r()))
	}
	// With one of the three down, removing the other that runs would leave
	// two voters of which only the leader is in touch.
	var down string
	for _, n := range []string{"n1", "n2", "n3"} {
		if n != leader.cfg.Name {
			down = n
			break
		}
	}
	c.stop(down)
	time.Sleep(400 * time.Millisecond) // longer than a heartbeat timeout
	var other string
	leader, err = onLeader(t, c, func(n *Node) error {
		for _, m := range []string{"n1", "n2", "n3"} {
			if m != down && m != n.cfg.Name {
				other = m
			}
		}
		_, err := n.RemoveMember(ctx, other)
		return err
	})
	if !errors.Is(err, ErrRemoveRefused) || !strings.Contains(err.Error(), "in touch") {
		t.Fatalf("RemoveMember(%s) with %s down = %v, want a refusal for too few in touch", other, down, err)
	}
	if v := voters(leader); !slices.Equal(v, []string{"n1", "n2", "n3"}) {
		t.Fatalf("voters after the refusal: %v", v)
	}
	checkOneWriter(t, c.events.snapshot())
}

// plainTransport hides every optional interface of the in-memory transport.
type plainTransport struct{ raft.Transport }

func TestTrackingTransportOffersWhatItWraps(t *testing.T) {
	_, inmem := raft.NewInmemTransport("a")
	tr := trackTransport(inmem, newReplication())
	if _, ok := tr.(raft.WithPreVote); !ok {
		t.Error("wrapping a transport with pre-vote lost pre-vote")
	}
	if _, ok := tr.(raft.WithClose); !ok {
		t.Error("wrapping a transport with Close lost Close")
	}
	if _, ok := tr.(raft.WithPeers); !ok {
		t.Error("wrapping a transport with peers lost Connect")
	}
	// The network transport pkg/agent uses offers pre-vote and Close.
	nt, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ntr := trackTransport(nt, newReplication())
	if _, ok := ntr.(raft.WithPreVote); !ok {
		t.Error("wrapping the network transport lost pre-vote")
	}
	if c, ok := ntr.(raft.WithClose); !ok || c.Close() != nil || !nt.IsShutdown() {
		t.Error("closing the wrapped network transport did not close it")
	}
	plain := trackTransport(plainTransport{inmem}, newReplication())
	if _, ok := plain.(raft.WithPreVote); ok {
		t.Error("wrapping a transport without pre-vote offers pre-vote")
	}
}

func TestReplicationRecordsByTerm(t *testing.T) {
	rp := newReplication()
	rp.record("x", 2, 10)
	rp.record("x", 2, 7) // an older answer arriving late
	if i, _ := rp.acked("x", 2); i != 10 {
		t.Fatalf("acked %d, want 10", i)
	}
	rp.record("x", 1, 50) // an answer of an earlier term
	if i, _ := rp.acked("x", 2); i != 10 {
		t.Fatalf("acked %d after an old term's answer, want 10", i)
	}
	rp.record("x", 3, 4) // a new term starts afresh
	if i, _ := rp.acked("x", 2); i != 0 {
		t.Fatalf("term 2 acked %d after term 3, want 0", i)
	}
	if i, _ := rp.acked("x", 3); i != 4 {
		t.Fatalf("term 3 acked %d, want 4", i)
	}
}
