package ha

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// joinLoop gets an instance that started without raft state (or as a
// non-voter) into the agent's raft group without ever making a second group.
//
// Raft already runs, with no configuration: such a node starts no election,
// and it grants its vote and accepts entries from a leader whose
// configuration lists it. Each round, until this node's own configuration
// lists it as a voter:
//
//   - when it already has a configuration (a leader reached it), it asks that
//     leader to make it a voter;
//   - else it asks every other configured instance for its membership. If any
//     is in a group, it asks that group's leader to add it (or, if the group
//     lists it already, waits for the leader). It never bootstraps then.
//   - it bootstraps the configured instances only if the mode allows it, no
//     instance that answered is in a group, all that answered list the same
//     instances and, in JoinAuto, every one of them answered.
//
// The rounds back off, capped well below a publish interval, so a waiting
// instance is cheap and still notices the others quickly.
func (n *Node) joinLoop() {
	mp, _ := n.cfg.Peers.(MembershipPeers)
	bo := newBackoff(100*time.Millisecond, min(n.cfg.RetryMaxInterval, 2*time.Second))
	// Questions in flight end with the node: Shutdown waits for this loop.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.shutdownCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	j := &joiner{n: n, mp: mp, ctx: ctx, logEvery: 30 * time.Second}
	n.log.Info().Str("mode", n.cfg.Join.String()).
		Msg("no raft state: asking the other instances whether the agent's group exists before forming one")
	for {
		if j.round() {
			return
		}
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(bo.Next()):
		}
	}
}

type joiner struct {
	n            *Node
	mp           MembershipPeers
	ctx          context.Context // cancelled when the node shuts down
	catchUpIndex uint64
	logEvery     time.Duration
	lastLog      map[string]time.Time // message -> when it was last logged
}

// logOnce reports whether a message with this key may be logged now: the
// first time, then at most every logEvery.
func (j *joiner) logOnce(key string) bool {
	if j.lastLog == nil {
		j.lastLog = map[string]time.Time{}
	}
	if t, ok := j.lastLog[key]; ok && time.Since(t) < j.logEvery {
		return false
	}
	j.lastLog[key] = time.Now()
	return true
}

// round makes one attempt; true means this node is a voting member.
func (j *joiner) round() bool {
	n := j.n
	r := n.r()
	own := raftMembers(r)
	if i := slices.IndexFunc(own, func(m Member) bool { return m.Name == n.cfg.Name }); i >= 0 && own[i].Voter {
		n.log.Info().Int("members", len(own)).Msg("joined the agent's raft group")
		// Tell the active at once that this instance is READY now, rather
		// than at the next publish interval.
		select {
		case n.leaderSeen <- struct{}{}:
		default:
		}
		return true
	}
	if len(own) > 0 {
		// A leader has reached this node: its configuration is the group's.
		addr, id := r.LeaderWithID()
		if id != "" && string(id) != n.cfg.Name {
			j.join(string(addr))
		}
		return false
	}

	answers, unanswered := j.ask()
	var group *Membership
	var others, differ []string
	for i := range answers {
		a := &answers[i]
		switch {
		case a.Agent != n.cfg.AgentName:
			// Not an answer from this agent's instance: it counts as silent.
			others = append(others, a.Name+" ("+a.Agent+")")
			unanswered = append(unanswered, a.Name+" (agent "+a.Agent+")")
		case len(a.Members) > 0:
			if group == nil || (group.LeaderAddress == "" && a.LeaderAddress != "") {
				group = a
			}
		case !sameInstances(a.Configured, n.configuredMembers()):
			differ = append(differ, a.Name)
		}
	}
	if len(others) > 0 && j.logOnce("others") {
		n.log.Error().Strs("instances", others).
			Msg("configured instances answer as instances of another agent; check the instances property")
	}
	if group != nil {
		i := slices.IndexFunc(group.Members, func(m Member) bool { return m.Name == n.cfg.Name })
		if i >= 0 && group.Members[i].Voter {
			if j.logOnce("listed") {
				n.log.Info().Str("member", group.Name).
					Msg("the agent's group exists and lists this instance: waiting for its leader to reach it")
			}
			return false
		}
		if group.LeaderAddress == "" {
			if j.logOnce("noleader") {
				n.log.Info().Str("member", group.Name).
					Msg("the agent's group exists but has no leader at the moment: waiting to ask it to add this instance")
			}
			return false
		}
		j.join(group.LeaderAddress)
		return false
	}
	if len(differ) > 0 {
		if j.logOnce("differ") {
			n.log.Error().Strs("instances", differ).
				Msg("not forming the agent's group: these instances list other instances than this one does; make the instances property identical everywhere")
		}
		return false
	}
	switch n.cfg.Join {
	case JoinOnly:
		if j.logOnce("joinonly") {
			n.log.Info().Strs("unanswered", unanswered).
				Msg("waiting for an instance of the agent's group to answer (started to join, never to form a group)")
		}
		return false
	case JoinAuto:
		if len(unanswered) > 0 {
			if j.logOnce("unanswered") {
				n.log.Warn().Strs("unanswered", unanswered).
					Msg("not forming the agent's group until every configured instance answers " +
						"(one of them may already run the agent); start them, or use --join or --bootstrap")
			}
			return false
		}
	}
	var servers []raft.Server
	for _, p := range n.cfg.Instances {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.Name), Address: raft.ServerAddress(p.Address)})
	}
	err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	switch {
	case err == nil:
		n.log.Info().Int("instances", len(servers)).Strs("unanswered", unanswered).
			Msg("bootstrapped the agent's raft group: no other instance is in one")
	case errors.Is(err, raft.ErrCantBootstrap):
		// A leader reached this node in the meantime: it is in a group.
	default:
		n.log.Error().Err(err).Msg("bootstrap the agent's raft group")
	}
	return false
}

// ask asks every other configured instance for its membership, at once.
func (j *joiner) ask() (answers []Membership, unanswered []string) {
	n := j.n
	ctx, cancel := context.WithTimeout(j.ctx, 2*time.Second)
	defer cancel()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, p := range n.cfg.Instances {
		if p.Name == n.cfg.Name {
			continue
		}
		wg.Add(1)
		go func(p Peer) {
			defer wg.Done()
			m, err := j.mp.Membership(ctx, p.Address)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				n.log.Debug().Err(err).Str("peer", p.Name).Msg("membership question unanswered")
				unanswered = append(unanswered, p.Name)
				return
			}
			answers = append(answers, m)
		}(p)
	}
	wg.Wait()
	slices.Sort(unanswered)
	return answers, unanswered
}

// join asks the leader at address to add this node, or to make it a voter.
func (j *joiner) join(address string) {
	n := j.n
	req := JoinRequest{
		Agent:        n.cfg.AgentName,
		Name:         n.cfg.Name,
		Address:      n.cfg.Address,
		Witness:      n.cfg.Witness,
		LastApplied:  n.r().AppliedIndex(),
		CatchUpIndex: j.catchUpIndex,
	}
	ctx, cancel := context.WithTimeout(j.ctx, 8*n.cfg.ElectionTimeout+2*time.Second)
	defer cancel()
	res, err := j.mp.Join(ctx, address, req)
	if err != nil {
		key := "joinerr"
		if strings.Contains(err.Error(), ErrJoinRefused.Error()) {
			key = "refused"
		}
		if j.logOnce(key) {
			n.log.Warn().Err(err).Str("leader", address).Msg("asking the agent's group to add this instance failed; retrying")
		}
		return
	}
	if res.CatchUpIndex > 0 {
		j.catchUpIndex = res.CatchUpIndex
	}
	if j.logOnce("asked:" + res.Message) {
		n.log.Info().Str("leader", address).Msg("join: " + res.Message)
	}
}
