package ha

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// JoinMode says how an instance that starts without raft state gets into the
// agent's raft group.
type JoinMode int

const (
	// JoinBootstrap bootstraps the configured instances at once, as every
	// instance did before joining existed. In-process tests and benchmarks
	// use it; it is unsafe when another group of the agent may already exist.
	JoinBootstrap JoinMode = iota
	// JoinAuto asks the other configured instances first. If any of them
	// belongs to a group of the agent, this instance asks that group's leader
	// to add it and never bootstraps. It bootstraps the configured instances
	// only when every other configured instance answered, none is in a group,
	// and all list the same instances.
	JoinAuto
	// JoinForceBootstrap is JoinAuto that does not wait for instances that do
	// not answer: it bootstraps unless an instance that answers is in a group
	// (`ftagent start --bootstrap`, for a first start with a host down).
	JoinForceBootstrap
	// JoinOnly never bootstraps: the instance waits until a group's leader
	// adds it (`ftagent start --join`).
	JoinOnly
)

func (m JoinMode) String() string {
	switch m {
	case JoinBootstrap:
		return "bootstrap"
	case JoinAuto:
		return "auto"
	case JoinForceBootstrap:
		return "force-bootstrap"
	case JoinOnly:
		return "join"
	}
	return fmt.Sprintf("JoinMode(%d)", int(m))
}

// MembershipPeers is what Peers must also offer for any JoinMode other than
// JoinBootstrap: asking an instance about its group, and asking a group's
// leader to add this instance.
type MembershipPeers interface {
	Membership(ctx context.Context, address string) (Membership, error)
	Join(ctx context.Context, leaderAddress string, req JoinRequest) (JoinResult, error)
}

// Member is one server of a raft configuration, or one configured instance.
type Member struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Voter   bool   `json:"voter,omitempty"`   // in Members: it votes
	Witness bool   `json:"witness,omitempty"` // in Configured: listed in witnessInstances
}

// Membership is what an instance says of the group it belongs to, so that an
// instance without raft state can tell whether a group already exists.
type Membership struct {
	Agent   string `json:"agent"`
	Name    string `json:"name"`
	Address string `json:"address"`
	// Members is this instance's latest raft configuration. Empty means it is
	// in no group (yet): it has no raft state and waits, as a fresh instance.
	Members []Member `json:"members"`
	// Configured is the instances property this instance was started with.
	Configured    []Member `json:"configured"`
	Leader        string   `json:"leader,omitempty"`
	LeaderAddress string   `json:"leaderAddress,omitempty"`
}

// JoinRequest asks the leader to add an instance to the agent's group.
type JoinRequest struct {
	Agent   string `json:"agent"`
	Name    string `json:"name"`
	Address string `json:"address"`
	Witness bool   `json:"witness,omitempty"`
	// LastApplied is the joiner's last applied log index, and CatchUpIndex
	// the index the leader gave it when it was added as a non-voter (0 at
	// first). Joiners still send both, and older builds' leaders decided by
	// them; a leader of this build ignores them: it makes a non-voter a
	// voter once the non-voter has acknowledged, to this leader's own
	// transport, every entry up to the catch-up index the leader recorded
	// (see replication). What a joiner says of itself proves nothing.
	LastApplied  uint64 `json:"lastApplied"`
	CatchUpIndex uint64 `json:"catchUpIndex"`
}

// JoinResult is the leader's answer to a JoinRequest.
type JoinResult struct {
	Voter        bool     `json:"voter"`
	CatchUpIndex uint64   `json:"catchUpIndex,omitempty"`
	Members      []Member `json:"members"`
	Message      string   `json:"message"`
}

// ErrJoinRefused means the leader will not add the instance (another agent,
// an address already used by another member, ...). Retrying does not help.
var ErrJoinRefused = errors.New("join refused")

// configuredMembers is the instances property as Members.
func (n *Node) configuredMembers() []Member {
	out := make([]Member, 0, len(n.cfg.Instances))
	for _, p := range n.cfg.Instances {
		out = append(out, Member{Name: p.Name, Address: p.Address, Witness: p.Witness})
	}
	return out
}

// raftMembers returns the servers of r's latest configuration.
func raftMembers(r *raft.Raft) []Member {
	if r == nil {
		return nil
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{Name: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out
}

// isVoter reports whether name votes in r's latest configuration.
func isVoter(r *raft.Raft, name string) bool {
	return slices.ContainsFunc(raftMembers(r), func(m Member) bool { return m.Name == name && m.Voter })
}

// Membership reports this instance's group, for instances that start
// without raft state.
func (n *Node) Membership() Membership {
	r := n.r()
	m := Membership{
		Agent:      n.cfg.AgentName,
		Name:       n.cfg.Name,
		Address:    n.cfg.Address,
		Members:    raftMembers(r),
		Configured: n.configuredMembers(),
	}
	if m.Members == nil {
		m.Members = []Member{}
	}
	if r != nil {
		addr, id := r.LeaderWithID()
		m.Leader, m.LeaderAddress = string(id), string(addr)
	}
	return m
}

// members is every instance this node knows of: the configured instances, in
// their order, then the members of the raft configuration that the
// properties do not list (an instance that joined while this one ran with an
// older instances property), by name. A member's address is the raft
// configuration's.
func (n *Node) members() []Peer { return n.membersWith(n.r()) }

// membersWith is members for a raft node the caller already holds (View
// calls it with the node mutex held, so it must not call n.r()).
func (n *Node) membersWith(r *raft.Raft) []Peer {
	inRaft := raftMembers(r)
	out := make([]Peer, 0, len(n.cfg.Instances)+len(inRaft))
	for _, p := range n.cfg.Instances {
		for _, m := range inRaft {
			if m.Name == p.Name {
				p.Address = m.Address
			}
		}
		out = append(out, p)
	}
	listed := len(out)
	for _, m := range inRaft {
		if !slices.ContainsFunc(out, func(p Peer) bool { return p.Name == m.Name }) {
			out = append(out, Peer{Name: m.Name, Address: m.Address})
		}
	}
	slices.SortFunc(out[listed:], func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// AddMember carries out a JoinRequest on the leader: a new instance is added
// as a non-voter, and made a voter once it has caught up. Requests are
// idempotent; the joiner repeats them until its own configuration lists it
// as a voter.
//
// Catching up is judged from this leader's own replication, never from the
// request: the leader records the index of the configuration entry that
// added the non-voter (or, for a non-voter an earlier leader added, the end
// of its log when first asked), and promotes the non-voter only once the
// non-voter has acknowledged every entry up to that index to this leader.
// A request for a made-up instance at an address where nothing answers
// raft therefore never makes a voter, however often it is repeated.
func (n *Node) AddMember(ctx context.Context, req JoinRequest) (JoinResult, error) {
	r := n.r()
	if r == nil || r.State() != raft.Leader {
		return JoinResult{}, ErrNotLeader
	}
	switch {
	case req.Agent != n.cfg.AgentName:
		return JoinResult{}, fmt.Errorf("%w: instance %s belongs to agent %q, this is agent %q", ErrJoinRefused, req.Name, req.Agent, n.cfg.AgentName)
	case req.Name == "" || req.Address == "":
		return JoinResult{}, fmt.Errorf("%w: a join request needs the instance's name and address", ErrJoinRefused)
	}
	term := r.CurrentTerm()
	timeout := n.changeTimeout(ctx)
	var self *Member
	members := raftMembers(r)
	for i, m := range members {
		switch {
		case m.Name == req.Name && m.Address != req.Address:
			return JoinResult{}, fmt.Errorf("%w: instance %s is already a member of agent %s's group at %s, not %s",
				ErrJoinRefused, req.Name, n.cfg.AgentName, m.Address, req.Address)
		case m.Name != req.Name && m.Address == req.Address:
			return JoinResult{}, fmt.Errorf("%w: address %s belongs to member %s of agent %s's group, not to %s",
				ErrJoinRefused, req.Address, m.Name, n.cfg.AgentName, req.Name)
		case m.Name == req.Name:
			self = &members[i]
		}
	}
	res := JoinResult{}
	log := n.log.With().Str("member", req.Name).Str("address", req.Address).Logger()
	if self == nil {
		if !slices.ContainsFunc(n.cfg.Instances, func(p Peer) bool { return p.Name == req.Name }) {
			log.Warn().Msg("adding an instance that this instance's instances property does not list; add it there for the next start")
		}
		f := r.AddNonvoter(raft.ServerID(req.Name), raft.ServerAddress(req.Address), 0, timeout)
		if err := f.Error(); err != nil {
			return JoinResult{}, fmt.Errorf("add %s as a non-voter: %w", req.Name, err)
		}
		n.repl.setTarget(req.Name, term, f.Index())
		log.Info().Uint64("catchUpIndex", f.Index()).Msg("instance added to the group as a non-voter; it becomes a voter once it has caught up")
		res.CatchUpIndex = f.Index()
		res.Message = fmt.Sprintf("%s added as a non-voter; it becomes a voter once it has replicated entry %d", req.Name, f.Index())
		res.Members = raftMembers(r)
		return res, nil
	}
	if self.Voter {
		res.Voter = true
		res.Message = fmt.Sprintf("%s is a voting member", req.Name)
		res.Members = raftMembers(r)
		return res, nil
	}
	target, ok := n.repl.target(req.Name, term)
	if !ok {
		// Added by an earlier leader, or before this one restarted: the
		// end of this leader's log is what it must reach now.
		target = r.LastIndex()
		n.repl.setTarget(req.Name, term, target)
	}
	res.CatchUpIndex = target
	acked, _ := n.repl.acked(raft.ServerID(req.Name), term)
	if acked < target {
		res.Message = fmt.Sprintf("%s is catching up: it has replicated %d of %d entries", req.Name, acked, target)
		res.Members = raftMembers(r)
		return res, nil
	}
	f := r.AddVoter(raft.ServerID(req.Name), raft.ServerAddress(req.Address), 0, timeout)
	if err := f.Error(); err != nil {
		return JoinResult{}, fmt.Errorf("make %s a voter: %w", req.Name, err)
	}
	log.Info().Uint64("replicated", acked).Msg("instance caught up: it is now a voting member of the group")
	res.Voter = true
	res.Message = fmt.Sprintf("%s is now a voting member", req.Name)
	res.Members = raftMembers(r)
	return res, nil
}

// changeTimeout bounds a configuration change: 4 election timeouts, or less
// if ctx ends sooner.
func (n *Node) changeTimeout(ctx context.Context) time.Duration {
	timeout := 4 * n.cfg.ElectionTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	return timeout
}

// checkRemoveVoter refuses the removal of voter name when the voters left
// would be only witnesses, or when fewer than a majority of them are in
// touch with this leader: itself, and those that acknowledged its
// replication within the last heartbeat timeout (raft heartbeats ten times
// as often). A leader elected a moment ago has not heard from everyone yet,
// so it waits up to two heartbeat timeouts for enough of them before it
// refuses. A voter that stopped less than a heartbeat timeout ago still
// counts: stop instances, then wait a moment before removing others.
func (n *Node) checkRemoveVoter(ctx context.Context, r *raft.Raft, term uint64, members []Member, name string) error {
	isWitness := func(m string) bool {
		return slices.ContainsFunc(n.cfg.Instances, func(p Peer) bool { return p.Name == m && p.Witness })
	}
	var left []string
	data := 0
	for _, m := range members {
		if m.Voter && m.Name != name {
			left = append(left, m.Name)
			if !isWitness(m.Name) {
				data++
			}
		}
	}
	if data == 0 {
		return fmt.Errorf("%w: removing %s would leave only witnesses as voters, and a witness never holds the lease",
			ErrRemoveRefused, name)
	}
	needed := len(left)/2 + 1
	inTouch := func() int {
		count := 0
		recent := time.Now().Add(-n.cfg.HeartbeatTimeout)
		for _, m := range left {
			if _, at := n.repl.acked(raft.ServerID(m), term); m == n.cfg.Name || at.After(recent) {
				count++
			}
		}
		return count
	}
	deadline := time.Now().Add(2 * n.cfg.HeartbeatTimeout)
	for {
		c := inTouch()
		switch {
		case c >= needed:
			return nil
		case time.Now().After(deadline) || ctx.Err() != nil || r.State() != raft.Leader:
			return fmt.Errorf("%w: removing %s would leave %d voters of which only %d are in touch with the leader, "+
				"fewer than the majority of %d the agent needs; start the others first", ErrRemoveRefused, name, len(left), c, needed)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ErrRemoveRefused means the leader will not remove the member: it is the
// leader itself, it is no member, or the group could not go on without it.
var ErrRemoveRefused = errors.New("remove refused")

// RemoveResult is the leader's answer to a removal.
type RemoveResult struct {
	Members []Member `json:"members"`
	Message string   `json:"message"`
}

// RemoveMember takes an instance out of the agent's raft group, on the
// leader. The rules, kept simple:
//
//   - the leader does not remove itself: stop it first (ftstop --instance,
//     which hands the lease over when it is the active), or otherwise move
//     the leadership, and ask the new leader;
//   - the name must be a member of the group;
//   - removing a voter must leave at least one voter that is not a witness
//     (as this leader's instances property lists them), and a majority of
//     the voters left must be in touch: the leader itself and those that
//     acknowledged its replication within the last heartbeat timeout.
//
// A non-voter can always be removed. The removed instance is not stopped.
func (n *Node) RemoveMember(ctx context.Context, name string) (RemoveResult, error) {
	r := n.r()
	if r == nil || r.State() != raft.Leader {
		return RemoveResult{}, ErrNotLeader
	}
	if name == n.cfg.Name {
		return RemoveResult{}, fmt.Errorf("%w: %s is the leader of agent %s's group; stop it first (ftstop --instance %s) "+
			"or transfer the leadership, then remove it through another instance", ErrRemoveRefused, name, n.cfg.AgentName, name)
	}
	term := r.CurrentTerm()
	members := raftMembers(r)
	i := slices.IndexFunc(members, func(m Member) bool { return m.Name == name })
	if i < 0 {
		var names []string
		for _, m := range members {
			names = append(names, m.Name)
		}
		return RemoveResult{}, fmt.Errorf("%w: %s is not a member of agent %s's group (members: %s)",
			ErrRemoveRefused, name, n.cfg.AgentName, strings.Join(names, ", "))
	}
	if members[i].Voter {
		if err := n.checkRemoveVoter(ctx, r, term, members, name); err != nil {
			return RemoveResult{}, err
		}
	}
	f := r.RemoveServer(raft.ServerID(name), 0, n.changeTimeout(ctx))
	if err := f.Error(); err != nil {
		return RemoveResult{}, fmt.Errorf("remove %s: %w", name, err)
	}
	n.repl.forget(name)
	kind := "non-voter"
	if members[i].Voter {
		kind = "voter"
	}
	n.log.Info().Str("member", name).Str("address", members[i].Address).Bool("voter", members[i].Voter).
		Msg("instance removed from the agent's raft group")
	return RemoveResult{
		Members: raftMembers(r),
		Message: fmt.Sprintf("%s (%s, %s) removed from agent %s's group", name, members[i].Address, kind, n.cfg.AgentName),
	}, nil
}

// warnConfigurationDiffers logs, once at start, how the instances property
// differs from the raft configuration this instance's state holds. The raft
// configuration is what counts: editing the property does not change it.
func (n *Node) warnConfigurationDiffers() {
	diff := membershipDiff(n.configuredMembers(), raftMembers(n.r()))
	if diff == "" {
		return
	}
	n.log.Warn().Str("differences", diff).
		Msg("the instances property differs from the agent's raft group, which is what counts: " +
			"instances listed but not members join when they are started; members that are not listed stay members " +
			"until they are removed (ftagent members remove NAME)")
}

// membershipDiff describes how configured instances differ from raft
// members; "" when they name the same instances at the same addresses.
func membershipDiff(configured, members []Member) string {
	var notMembers, notListed, moved []string
	for _, c := range configured {
		i := slices.IndexFunc(members, func(m Member) bool { return m.Name == c.Name })
		switch {
		case i < 0:
			notMembers = append(notMembers, c.Name)
		case members[i].Address != c.Address:
			moved = append(moved, fmt.Sprintf("%s at %s in the property, %s in the group", c.Name, c.Address, members[i].Address))
		}
	}
	for _, m := range members {
		if !slices.ContainsFunc(configured, func(c Member) bool { return c.Name == m.Name }) {
			notListed = append(notListed, m.Name+"@"+m.Address)
		}
	}
	slices.Sort(notListed)
	var parts []string
	if len(notMembers) > 0 {
		parts = append(parts, "listed but not members of the group: "+strings.Join(notMembers, ", "))
	}
	if len(notListed) > 0 {
		parts = append(parts, "members of the group not listed: "+strings.Join(notListed, ", "))
	}
	if len(moved) > 0 {
		parts = append(parts, "addresses differ: "+strings.Join(moved, "; "))
	}
	return strings.Join(parts, "; ")
}

// sameInstances reports whether two configured lists name the same
// instances at the same addresses, in any order.
func sameInstances(a, b []Member) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y Member) bool { return y.Name == x.Name && y.Address == x.Address }) {
			return false
		}
	}
	return true
}
