package ha

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// Roles of an instance.
const (
	RoleActive  = "active"
	RoleStandby = "standby"
	RoleWitness = "witness"
	RoleUnknown = "unknown"
)

// Status words, as IBM MQ MFT uses them.
const (
	StatusActive      = "ACTIVE"
	StatusReady       = "READY"
	StatusStarting    = "STARTING"
	StatusStopping    = "STOPPING"
	StatusStopped     = "STOPPED"
	StatusUnreachable = "UNREACHABLE"
	// StatusFailed: the instance refused an entry of its replicated log that
	// its build cannot read (see RefusalError) and stopped applying it.
	StatusFailed = "FAILED"
)

// InstanceStatus is what an instance says of itself: what a standby publishes
// to the active, and what any instance answers when asked directly.
type InstanceStatus struct {
	Agent         string    `json:"agent"`
	Name          string    `json:"name"`
	Address       string    `json:"address"`
	Version       string    `json:"version"`
	Role          string    `json:"role"`
	Status        string    `json:"status"`
	StartTime     time.Time `json:"startTime"`
	LastApplied   uint64    `json:"lastApplied"`
	CanTakeOver   bool      `json:"canTakeOver"`
	Leader        string    `json:"leader"`
	LeaderAddress string    `json:"leaderAddress"`
	Epoch         uint64    `json:"epoch"`
	LeaseHolder   string    `json:"leaseHolder"`
	RaftState     string    `json:"raftState"`
	// Format is the highest command format this build reads. Builds older
	// than the field leave it out: they read format 1.
	Format int `json:"format,omitempty"`
}

// Status reports this instance's own view.
func (n *Node) Status() InstanceStatus {
	r := n.r()
	addr, id := r.LeaderWithID()
	lease := n.Lease()
	n.mu.Lock()
	active, stopping := n.holdingLocked(), n.stopping
	n.mu.Unlock()
	failed := n.state.refusal() != nil

	s := InstanceStatus{
		Agent:         n.cfg.AgentName,
		Name:          n.cfg.Name,
		Address:       n.cfg.Address,
		Version:       n.cfg.Version,
		StartTime:     n.start.UTC(),
		LastApplied:   r.AppliedIndex(),
		Leader:        string(id),
		LeaderAddress: string(addr),
		Epoch:         lease.Epoch,
		LeaseHolder:   lease.Holder,
		RaftState:     r.State().String(),
		Format:        n.state.knows(),
	}
	switch {
	case n.cfg.Witness:
		s.Role = RoleWitness
	case active:
		s.Role = RoleActive
	default:
		s.Role = RoleStandby
	}
	switch {
	case failed:
		s.Status = StatusFailed
	case stopping:
		s.Status = StatusStopping
	case active:
		s.Status = StatusActive
	case id == "":
		s.Status = StatusStarting // not yet in touch with a leader
	case r.State() == raft.Leader:
		s.Status = StatusStarting // leader, lease not (yet) held
	case !isVoter(r, n.cfg.Name):
		s.Status = StatusStarting // joining the group: not a voter yet (join.go)
	default:
		s.Status = StatusReady
	}
	s.CanTakeOver = !n.cfg.Witness && !stopping && !failed && id != "" && r.State() == raft.Follower && isVoter(r, n.cfg.Name)
	return s
}

// standbyEntry is the active's record of a standby's last status.
type standbyEntry struct {
	status   InstanceStatus
	received time.Time
}

// ErrNotLeader means the request belongs to the active instance.
var ErrNotLeader = errors.New("this instance is not the active")

// ReportStandby records a standby's published status. Only the leader keeps
// the table.
func (n *Node) ReportStandby(s InstanceStatus) error {
	if n.r().State() != raft.Leader {
		return ErrNotLeader
	}
	known := false
	for _, p := range n.members() {
		if p.Name == s.Name {
			known = true
		}
	}
	if !known {
		return errors.New("unknown instance " + s.Name)
	}
	n.mu.Lock()
	prev, had := n.standbys[s.Name]
	n.standbys[s.Name] = standbyEntry{status: s, received: time.Now()}
	n.mu.Unlock()
	switch {
	case s.Status == StatusFailed && (!had || prev.status.Status != StatusFailed):
		n.log.Error().Str("standby", s.Name).Str("version", s.Version).Int("format", reportedFormat(s)).
			Msg("standby failed: it refused a replicated log entry its build cannot read; upgrade it")
	case !had || prev.status.Version != s.Version:
		n.log.Info().Str("standby", s.Name).Str("version", s.Version).Int("format", reportedFormat(s)).Msg("standby reported")
	}
	return nil
}

func (n *Node) clearStandbys() {
	n.mu.Lock()
	n.standbys = make(map[string]standbyEntry)
	n.mu.Unlock()
}

// publishFinal tells the active, best effort, that this instance has stopped,
// so that it leaves the standbys list at once (shown as STOPPED until the
// discard time) rather than only when its status grows too old.
func (n *Node) publishFinal() {
	r := n.r()
	if r == nil {
		return
	}
	addr, id := r.LeaderWithID()
	if id == "" || string(id) == n.cfg.Name {
		return
	}
	s := n.Status()
	if s.Status != StatusFailed {
		s.Status = StatusStopped
	}
	s.CanTakeOver = false
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := n.cfg.Peers.Publish(ctx, string(addr), s); err != nil {
		n.log.Debug().Err(err).Msg("could not tell the active this instance stopped")
	}
}

// leaderChangePublishDelay is how long after a change of leader a standby
// publishes its status to the new active (or the publish interval, if
// shorter).
const leaderChangePublishDelay = 200 * time.Millisecond

// publishLoop sends this instance's status to the active every publish
// interval, and soon (leaderChangePublishDelay) whenever the leader changes. While no leader is known
// it waits for one (raft tells it) rather than polling.
func (n *Node) publishLoop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	bo := newBackoff(100*time.Millisecond, n.cfg.RetryMaxInterval)
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-timer.C:
		case <-n.leaderSeen:
			bo.Reset()
			// Not at the very moment of the change: a new active's first
			// entries (its barrier, its lease) are what ends the fail-over,
			// and a new connection to it (with TLS, a handshake on both
			// ends) would compete with them for the CPU.
			select {
			case <-n.shutdownCh:
				return
			case <-time.After(min(leaderChangePublishDelay, n.cfg.PublishInterval)):
			}
		}
		next := n.cfg.PublishInterval
		r := n.r()
		if r == nil {
			timer.Reset(next)
			continue
		}
		addr, id := r.LeaderWithID()
		if id != "" && string(id) != n.cfg.Name {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := n.cfg.Peers.Publish(ctx, string(addr), n.Status())
			cancel()
			if err != nil {
				n.log.Debug().Err(err).Str("active", string(id)).Msg("publish status to the active failed")
				if d := bo.Next(); d < next {
					next = d
				}
			} else {
				bo.Reset()
			}
		}
		timer.Stop()
		select {
		case <-timer.C:
		default:
		}
		timer.Reset(next)
	}
}

// discardLoop forgets standbys whose last status is older than the discard
// time, logging each discard once.
func (n *Node) discardLoop() {
	every := n.cfg.DiscardTime / 10
	if every > time.Second {
		every = time.Second
	}
	if every < 10*time.Millisecond {
		every = 10 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		}
		n.mu.Lock()
		n.discardStaleLocked(time.Now())
		n.mu.Unlock()
	}
}

// discardStaleLocked removes the standbys whose last status is older than
// the discard time. The loop calls it, and so does View, so that what is
// shown and what is logged agree to the instant.
func (n *Node) discardStaleLocked(now time.Time) {
	for name, e := range n.standbys {
		if age := now.Sub(e.received); age > n.cfg.DiscardTime {
			delete(n.standbys, name)
			if e.status.Status == StatusStopped || e.status.Status == StatusFailed {
				n.log.Info().Str("standby", name).Str("status", e.status.Status).Msg("stopped instance forgotten after the discard time")
				continue
			}
			n.log.Warn().Str("standby", name).Str("statusAge", age.Round(time.Millisecond).String()).
				Str("discardTime", n.cfg.DiscardTime.String()).
				Msg("standby discarded: no status within the discard time")
		}
	}
}

// AgentView is the active's view of the whole agent.
type AgentView struct {
	Agent         string         `json:"agent"`
	Status        string         `json:"status"`
	Active        string         `json:"active"`
	ActiveAddress string         `json:"activeAddress"`
	Epoch         uint64         `json:"epoch"`
	Standbys      []string       `json:"standbys"`
	Instances     []InstanceView `json:"instances"`
}

// InstanceView is one instance as the active sees it.
type InstanceView struct {
	Name        string     `json:"name"`
	Address     string     `json:"address"`
	Role        string     `json:"role"`
	Status      string     `json:"status"`
	Version     string     `json:"version"`
	StatusAge   *float64   `json:"statusAge"`
	StartTime   *time.Time `json:"startTime,omitempty"`
	LastApplied uint64     `json:"lastApplied"`
	CanTakeOver bool       `json:"canTakeOver"`
	// Format is the highest command format the instance reported it reads
	// (absent: not reported, or a build older than the field, which reads 1).
	Format int `json:"format,omitempty"`
}

// View returns the agent as this leader sees it; ErrNotLeader elsewhere.
func (n *Node) View() (AgentView, error) {
	r := n.r()
	if r.State() != raft.Leader {
		return AgentView{}, ErrNotLeader
	}
	self := n.Status()
	lease := n.Lease()
	v := AgentView{
		Agent:     n.cfg.AgentName,
		Status:    self.Status,
		Epoch:     lease.Epoch,
		Standbys:  []string{},
		Instances: []InstanceView{},
	}
	if self.Role == RoleActive {
		v.Active, v.ActiveAddress = n.cfg.Name, n.cfg.Address
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.discardStaleLocked(now)
	for _, p := range n.membersWith(r) {
		iv := InstanceView{Name: p.Name, Address: p.Address, Role: RoleUnknown, Status: StatusUnreachable}
		if p.Name == n.cfg.Name {
			st := self.StartTime
			iv.Role, iv.Status, iv.Version, iv.StartTime = self.Role, self.Status, self.Version, &st
			iv.LastApplied, iv.CanTakeOver, iv.Format = self.LastApplied, self.CanTakeOver, self.Format
			v.Instances = append(v.Instances, iv)
			continue
		}
		if p.Witness {
			iv.Role = RoleWitness
		}
		if e, ok := n.standbys[p.Name]; ok { // younger than the discard time
			// An instance started with --witness says so itself.
			witness := p.Witness || e.status.Role == RoleWitness
			secs := now.Sub(e.received).Seconds()
			st := e.status.StartTime
			iv.StatusAge, iv.Version, iv.Status, iv.StartTime = &secs, e.status.Version, e.status.Status, &st
			iv.LastApplied, iv.CanTakeOver, iv.Format = e.status.LastApplied, e.status.CanTakeOver, e.status.Format
			switch {
			case witness:
				iv.Role = RoleWitness
			case e.status.Status == StatusStopping || e.status.Status == StatusStopped || e.status.Status == StatusFailed:
				iv.Role = RoleStandby // said it is going away: not ready to take over
			default:
				iv.Role = RoleStandby
				// Ready to take over: a voter in touch with the leader, as it
				// said itself (a joining non-voter is not yet).
				if e.status.CanTakeOver {
					v.Standbys = append(v.Standbys, p.Name)
				}
			}
		}
		v.Instances = append(v.Instances, iv)
	}
	return v, nil
}

// RaftStats is this instance's raft progress: its commit and applied
// indexes, its raft state, and when it last heard from the leader (zero on
// the leader, and before any contact).
type RaftStats struct {
	CommitIndex, AppliedIndex uint64
	State                     string
	LastContact               time.Time
}

// RaftStats reports this instance's raft progress.
func (n *Node) RaftStats() RaftStats {
	r := n.r()
	if r == nil {
		return RaftStats{State: "Shutdown"}
	}
	return RaftStats{CommitIndex: r.CommitIndex(), AppliedIndex: r.AppliedIndex(), State: r.State().String(), LastContact: r.LastContact()}
}
