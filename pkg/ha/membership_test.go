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

func TestForgedJoinRequestIsNeverPromoted(t *testing.T) {
	c := newJoinCluster(t, []string{"n1", "n2", "n3"}, auto, nil)
	c.startAll()
	a := c.waitActive(10 * time.Second)
	leader := c.node(a)
	ctx := context.Background()
	// "ghost" claims to have applied far beyond anything the group has, and
	// to have reached whatever catch-up index it was given. Nothing answers
	// raft at its address.
	req := JoinRequest{Agent: "TEST", Name: "ghost", Address: "ghost:1", LastApplied: 1 << 40}
	for i := 0; i < 20; i++ {
		res, err := leader.AddMember(ctx, req)
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
	// The real members' acknowledgements are what the leader sees.
	term := leader.r().CurrentTerm()
	for _, n := range []string{"n1", "n2", "n3"} {
		if n == a {
			continue
		}
		if idx, _ := leader.repl.acked(raft.ServerID(n), term); idx == 0 {
			t.Errorf("the leader saw no acknowledgement from %s", n)
		}
	}
	if idx, _ := leader.repl.acked("ghost", term); idx != 0 {
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
	a := c.waitActive(10 * time.Second)
	// n4 is a non-voter that this leader holds no catch-up index for (as if
	// an earlier leader had added it): it is judged against the end of the
	// log when it asks.
	if err := c.node(a).r().AddNonvoter("n4", "n4", 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.node(a).repl.target("n4", c.node(a).r().CurrentTerm()); ok {
		t.Fatal("a catch-up index recorded for a non-voter AddMember did not add")
	}
	c.start("n4")
	if !waitFor(10*time.Second, func() bool {
		return slices.Equal(voters(c.node(a)), []string{"n1", "n2", "n3", "n4"})
	}) {
		t.Fatalf("n4 never became a voter: %v", raftMembers(c.node(a).r()))
	}
	checkOneWriter(t, c.events.snapshot())
}

func TestRemoveMember(t *testing.T) {
	c := newJoinCluster(t, []string{"n1", "n2", "n3", "n4"}, auto,
		map[string][]string{"n1": {"n1", "n2", "n3"}, "n2": {"n1", "n2", "n3"}, "n3": {"n1", "n2", "n3"}})
	for _, n := range []string{"n1", "n2", "n3"} {
		c.start(n)
	}
	a := c.waitActive(10 * time.Second)
	leader := c.node(a)
	ctx := context.Background()
	c.start("n4")
	if !waitFor(10*time.Second, func() bool { return slices.Contains(voters(leader), "n4") }) {
		t.Fatalf("n4 never became a voter: %v", raftMembers(leader.r()))
	}
	if _, err := leader.AddMember(ctx, JoinRequest{Agent: "TEST", Name: "ghost", Address: "ghost:1"}); err != nil {
		t.Fatal(err)
	}

	refused := func(name, want string) {
		t.Helper()
		_, err := leader.RemoveMember(ctx, name)
		if !errors.Is(err, ErrRemoveRefused) || !strings.Contains(err.Error(), want) {
			t.Fatalf("RemoveMember(%s) = %v, want a refusal containing %q", name, err, want)
		}
	}
	refused(a, "is the leader")
	refused("nobody", "not a member")
	for _, n := range []string{"n1", "n2", "n3"} {
		if n != a {
			if _, err := c.node(n).RemoveMember(ctx, "ghost"); err != ErrNotLeader {
				t.Errorf("RemoveMember on follower %s = %v, want ErrNotLeader", n, err)
			}
		}
	}

	// A non-voter.
	res, err := leader.RemoveMember(ctx, "ghost")
	if err != nil {
		t.Fatalf("remove the non-voter: %v", err)
	}
	if slices.ContainsFunc(res.Members, func(m Member) bool { return m.Name == "ghost" }) {
		t.Fatalf("ghost still a member: %+v", res)
	}
	// A voter.
	if _, err := leader.RemoveMember(ctx, "n4"); err != nil {
		t.Fatalf("remove the voter n4: %v", err)
	}
	c.stop("n4")
	if v := voters(leader); !slices.Equal(v, []string{"n1", "n2", "n3"}) {
		t.Fatalf("voters after removing n4: %v", v)
	}
	if _, ok := member(leader, "n4"); ok {
		t.Fatalf("n4 still a member: %v", raftMembers(leader.r()))
	}
	// With one of the three down, removing the other would leave two voters
	// of which only the leader is in touch.
	var down, other string
	for _, n := range []string{"n1", "n2", "n3"} {
		switch {
		case n == a:
		case down == "":
			down = n
		default:
			other = n
		}
	}
	c.stop(down)
	time.Sleep(500 * time.Millisecond) // longer than two heartbeat timeouts
	if c.node(a).r().State() != raft.Leader {
		t.Skip("leadership moved while a member was down")
	}
	refused(other, "in touch")
	if a2 := c.actives(); !slices.Equal(a2, []string{a}) {
		t.Fatalf("actives %v, want %s", a2, a)
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
