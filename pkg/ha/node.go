// Package ha owns an instance's raft node and the agent's exclusive lease: who
// is active, under which epoch, leadership changes, standby status publishing
// and discarding, planned hand-over and witness instances. It knows nothing of
// transfers: it offers the lease, commands through the replicated log, and a
// callback that runs the active's work while the lease is held.
package ha

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"
)

// Peer is one instance of the agent as configured.
type Peer struct {
	Name    string
	Address string
	Witness bool
}

// Peers is how instances talk to each other outside raft: a standby publishes
// its status to the active, and the active probes a standby before handing it
// the lease. cmd wires it over the client API; tests call nodes directly.
type Peers interface {
	Publish(ctx context.Context, activeAddress string, s InstanceStatus) error
	Probe(ctx context.Context, address string) (InstanceStatus, error)
}

// Config is what a Node needs. Durations of zero take the LAN defaults.
type Config struct {
	AgentName string
	Name      string // this instance; raft server ID
	Address   string // this instance's address; raft server address
	Witness   bool
	Instances []Peer // every instance of the agent, this one included

	DataDir string // raft log, stable store and snapshots; "" keeps them in memory (tests)

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration

	PublishInterval  time.Duration // standbyStatusPublishInterval
	DiscardTime      time.Duration // standbyStatusDiscardTime
	RetryMaxInterval time.Duration // cap of the backoff while the others cannot be reached

	// Join says how an instance without raft state gets into the group (see
	// JoinMode); anything but JoinBootstrap needs Peers to implement
	// MembershipPeers.
	Join JoinMode
	// QuorumLossTimeout, when above zero, closes QuorumLost once this
	// instance has been without a leader (its own or another's) for that long
	// (quorumLossAction=exit). Zero: keep retrying for ever.
	QuorumLossTimeout time.Duration

	Version string
	Logger  zerolog.Logger

	// StateMachine receives every command kind pkg/ha does not own.
	StateMachine replog.StateMachine
	// OnActive runs the active's work while this instance holds the lease. It
	// starts after the lease entry committed and must return promptly once ctx
	// is cancelled (lease lost or handed over): the node waits for it.
	OnActive func(ctx context.Context, lease Lease)
	// Drain, if set, is called by a normal (not immediate) stop of the active
	// to let in-flight work finish before the lease is handed over. Its ctx
	// ends when DrainTimeout passes or Hurry is called: Drain then returns,
	// and the lease is handed over with the work stopped where it is.
	Drain func(ctx context.Context) error
	// DrainTimeout bounds Drain (drainTimeout); zero: no bound.
	DrainTimeout time.Duration

	// BeforeStart, if set, is called with the node before raft starts, so
	// that the work OnActive runs can be built on the node (its Apply and
	// VerifyLease) before the first leadership can call it.
	BeforeStart func(*Node)

	// NewTransport makes the raft transport; it is called again when the raft
	// node restarts (see restartRaft), so it must return a fresh one each time.
	NewTransport func() (raft.Transport, error)
	Peers        Peers
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 500*time.Millisecond)
	def(&c.ElectionTimeout, 500*time.Millisecond)
	def(&c.LeaderLeaseTimeout, 250*time.Millisecond)
	def(&c.CommitTimeout, 50*time.Millisecond)
	def(&c.PublishInterval, 300*time.Second)
	def(&c.DiscardTime, 600*time.Second)
	def(&c.RetryMaxInterval, 30*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
}

// Node is one instance's raft node and lease holder.
type Node struct {
	cfg   Config
	log   zerolog.Logger
	state *state
	start time.Time

	notifyCh   chan bool
	leaderSeen chan struct{} // raft observed a leader change
	shutdownCh chan struct{}
	quorumLost chan struct{} // closed by watchQuorum (quorumLossAction=exit)
	// repl is what this node saw of its replication as leader, through the
	// transport it wraps (replication.go).
	repl *replication
	wg   sync.WaitGroup

	mu       sync.Mutex
	raft     *raft.Raft
	stores   *raftboltdb.BoltStore // nil when in memory
	observer *raft.Observer
	// active is set while this instance holds the lease and its work runs.
	active     *activeTerm
	stopping   bool
	handoffErr chan error    // the leader loop's hand-over outcome, for HandOver
	hurry      chan struct{} // closed by Hurry: a drain ends now
	hurryOnce  sync.Once
	standbys   map[string]standbyEntry

	shutdownOnce sync.Once
	// lifeMu serialises a raft restart with Shutdown, so that neither closes
	// stores the other is using, and no raft node starts after Shutdown.
	lifeMu sync.Mutex
	closed bool
}

type activeTerm struct {
	lease  Lease
	ctx    context.Context // the work's context, cancelled when it must stop
	cancel context.CancelFunc
	fence  fence
	yield  chan struct{} // closed by HandOver: stop work and hand the lease on
}

// New opens the node's stores and starts raft. A node with raft state
// rejoins with it. One without bootstraps the configured group at once
// (JoinBootstrap), or starts raft without a configuration and finds or forms
// the group in the background (joinLoop).
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if cfg.NewTransport == nil {
		return nil, errors.New("ha: NewTransport is required")
	}
	n := &Node{
		cfg:        cfg,
		log:        cfg.Logger.With().Str("instance", cfg.Name).Logger(),
		state:      &state{app: cfg.StateMachine},
		start:      time.Now(),
		notifyCh:   make(chan bool, 16),
		leaderSeen: make(chan struct{}, 1),
		shutdownCh: make(chan struct{}),
		quorumLost: make(chan struct{}),
		handoffErr: make(chan error, 1),
		hurry:      make(chan struct{}),
		standbys:   make(map[string]standbyEntry),
		repl:       newReplication(),
	}
	n.state.log = n.log // a refused log entry is logged where it happens
	if _, ok := cfg.Peers.(MembershipPeers); cfg.Join != JoinBootstrap && !ok {
		return nil, fmt.Errorf("ha: join mode %s needs Peers that implement MembershipPeers", cfg.Join)
	}
	if cfg.BeforeStart != nil {
		cfg.BeforeStart(n)
	}
	if err := n.startRaft(); err != nil {
		return nil, err
	}
	members := raftMembers(n.r())
	self := slices.IndexFunc(members, func(m Member) bool { return m.Name == cfg.Name })
	joining := cfg.Join != JoinBootstrap && (self < 0 || !members[self].Voter)
	if len(members) > 0 {
		n.warnConfigurationDiffers()
	}
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.monitorLeadership() }()
	go func() { defer n.wg.Done(); n.publishLoop() }()
	go func() { defer n.wg.Done(); n.discardLoop() }()
	if joining {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.joinLoop() }()
	}
	if cfg.QuorumLossTimeout > 0 {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.watchQuorum() }()
	}
	return n, nil
}

func (n *Node) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.Name)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	if n.cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = n.cfg.SnapshotInterval
	}
	rc.NotifyCh = n.notifyCh
	rc.Logger = RaftLogger(n.log)
	return rc
}

// logCacheEntries is how many of the newest raft entries each instance
// keeps in memory. Entries are bounded (a creation part or a batch of file
// events is at most some 150 KiB), so the cache holds a few MiB at most.
const logCacheEntries = 64

// startRaft opens the stores and transport and starts a raft node on them.
func (n *Node) startRaft() error {
	rc := n.raftConfig()
	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
		bolt   *raftboltdb.BoltStore
	)
	if n.cfg.DataDir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
			return fmt.Errorf("data directory %q: %w", n.cfg.DataDir, err)
		}
		var err error
		bolt, err = raftboltdb.New(raftboltdb.Options{
			Path: filepath.Join(n.cfg.DataDir, "raft.db"),
			// Never hang on a lock held by another process.
			BoltOptions: &bbolt.Options{Timeout: 5 * time.Second},
		})
		if err != nil {
			return fmt.Errorf("open raft log %q (is another instance using this data directory?): %w",
				filepath.Join(n.cfg.DataDir, "raft.db"), err)
		}
		fss, err := raft.NewFileSnapshotStoreWithLogger(n.cfg.DataDir, 2, rc.Logger)
		if err != nil {
			bolt.Close()
			return fmt.Errorf("open snapshot store: %w", err)
		}
		// The cache keeps the last entries in memory: the leader reads each
		// entry back to replicate it, and every instance to apply it, and
		// read through bolt's memory map those reads would keep the whole
		// recent log resident (a million-file transfer's log is 80 MB).
		cached, err := raft.NewLogCache(logCacheEntries, bolt)
		if err != nil {
			bolt.Close()
			return fmt.Errorf("raft log cache: %w", err)
		}
		logs, stable, snaps = cached, bolt, fss
	}
	closeStores := func() {
		if bolt != nil {
			bolt.Close()
		}
	}
	trans, err := n.cfg.NewTransport()
	if err != nil {
		closeStores()
		return fmt.Errorf("raft transport: %w", err)
	}
	trans = trackTransport(trans, n.repl)

	has, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		closeStores()
		return fmt.Errorf("read raft state: %w", err)
	}
	if !has && n.cfg.Join == JoinBootstrap {
		var servers []raft.Server
		for _, p := range n.cfg.Instances {
			servers = append(servers, raft.Server{
				Suffrage: raft.Voter,
				ID:       raft.ServerID(p.Name),
				Address:  raft.ServerAddress(p.Address),
			})
		}
		// Every instance bootstraps the same configuration on first start;
		// raft makes that safe, whichever starts first. The other modes
		// start raft without a configuration and let joinLoop decide.
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, trans, raft.Configuration{Servers: servers}); err != nil &&
			!errors.Is(err, raft.ErrCantBootstrap) {
			closeStores()
			return fmt.Errorf("bootstrap raft group: %w", err)
		}
		n.log.Info().Int("instances", len(servers)).Msg("bootstrapped the agent's raft group")
	}

	r, err := raft.NewRaft(rc, fsm{n.state}, logs, stable, snaps, trans)
	if err != nil {
		closeStores()
		return fmt.Errorf("start raft: %w", err)
	}
	obsCh := make(chan raft.Observation, 8)
	obs := raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(obs)
	go n.forwardObservations(obsCh)

	n.mu.Lock()
	n.raft, n.stores, n.observer = r, bolt, obs
	n.mu.Unlock()
	return nil
}

func (n *Node) forwardObservations(ch <-chan raft.Observation) {
	// The observer's channel is never closed; the node's shutdown ends this.
	for {
		select {
		case <-ch:
			select {
			case n.leaderSeen <- struct{}{}:
			default:
			}
		case <-n.shutdownCh:
			return
		}
	}
}

// stopRaft shuts the raft node down and closes its stores.
func (n *Node) stopRaft() error {
	n.mu.Lock()
	r, bolt, obs := n.raft, n.stores, n.observer
	n.mu.Unlock()
	if r == nil {
		return nil
	}
	r.DeregisterObserver(obs)
	err := r.Shutdown().Error()
	if bolt != nil {
		if cerr := bolt.Close(); err == nil {
			err = cerr
		}
	}
	// raft may drop its last leadership notification while it shuts down:
	// make sure the leader loop is revoked.
	select {
	case n.notifyCh <- false:
	case <-n.shutdownCh:
	}
	return err
}

// restartRaft replaces a wedged raft node with a fresh one on the same
// stores. It exists because of hashicorp/raft#696: a leadership transfer
// interrupted by a step-down can leave "leadership transfer in progress" set
// for good, and a node in that state refuses every write when re-elected.
func (n *Node) restartRaft() {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closed {
		return
	}
	n.log.Warn().Msg("raft node wedged in a leadership transfer (hashicorp/raft#696); restarting it")
	if err := n.stopRaft(); err != nil {
		n.log.Error().Err(err).Msg("stop wedged raft node")
	}
	select {
	case <-n.shutdownCh:
		return
	default:
	}
	bo := newBackoff(100*time.Millisecond, n.cfg.RetryMaxInterval)
	for {
		err := n.startRaft()
		if err == nil {
			n.log.Info().Msg("raft node restarted")
			return
		}
		n.log.Error().Err(err).Msg("restart raft node")
		select {
		case <-time.After(bo.Next()):
		case <-n.shutdownCh:
			return
		}
	}
}

// r returns the current raft node.
func (n *Node) r() *raft.Raft {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.raft
}

// Shutdown stops the node: work first, then raft. It does not hand the lease
// over; see HandOver.
func (n *Node) Shutdown() error {
	var err error
	n.shutdownOnce.Do(func() {
		n.mu.Lock()
		if n.active != nil {
			n.active.cancel()
		}
		n.mu.Unlock()
		close(n.shutdownCh)
		n.wg.Wait() // leader loop revoked: work has stopped
		n.publishFinal()
		n.lifeMu.Lock() // waits for a raft restart in progress to give up
		defer n.lifeMu.Unlock()
		n.closed = true
		r := n.r()
		if r == nil {
			return
		}
		err = r.Shutdown().Error()
		n.mu.Lock()
		bolt := n.stores
		n.mu.Unlock()
		if bolt != nil {
			if cerr := bolt.Close(); err == nil {
				err = cerr
			}
		}
		n.log.Debug().Msg("raft node stopped")
	})
	return err
}

// Lease returns the lease as the replicated state has it.
func (n *Node) Lease() Lease { return n.state.currentLease() }

// Name is this instance's name.
func (n *Node) Name() string { return n.cfg.Name }

// IsActive reports whether this instance holds the lease and runs work.
// A deposed active is not active from the moment its term ends, though its
// work may take a moment to stop: two instances never both say ACTIVE.
func (n *Node) IsActive() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.holdingLocked()
}

// holdingLocked reports whether this instance has an active term that has
// not ended and whose lease is still the replicated one. n.mu is held.
func (n *Node) holdingLocked() bool {
	t := n.active
	if t == nil || t.ctx.Err() != nil {
		return false
	}
	l := n.state.currentLease()
	return l.Epoch == t.lease.Epoch && l.Holder == n.cfg.Name
}

// VerifyLease confirms, with a round trip to a quorum, that this instance is
// still the leader under epoch. Call it before an irreversible step.
func (n *Node) VerifyLease(epoch uint64) error {
	if err := n.r().VerifyLeader().Error(); err != nil {
		return fmt.Errorf("verify lease: %w", err)
	}
	if l := n.Lease(); l.Epoch != epoch || l.Holder != n.cfg.Name {
		return fmt.Errorf("%w: lease is at epoch %d held by %s, not %d", replog.ErrStaleEpoch, l.Epoch, l.Holder, epoch)
	}
	return nil
}

// Apply commits a command of the plugged-in state machine under epoch and
// returns the state machine's result.
func (n *Node) Apply(kind string, epoch uint64, data any, timeout time.Duration) (any, error) {
	if err := n.mayPropose(kind); err != nil { // see upgrade.go
		return nil, err
	}
	b, err := encodeCommand(kind, epoch, data)
	if err != nil {
		return nil, err
	}
	f := n.r().Apply(b, timeout)
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("commit %s: %w", kind, err)
	}
	if err, ok := f.Response().(error); ok {
		return nil, err
	}
	return f.Response(), nil
}
