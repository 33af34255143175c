package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// testCluster runs nodes in one process over raft's in-memory transport, with
// partitions that cut both raft traffic and the status/probe calls.
type testCluster struct {
	t       *testing.T
	mu      sync.Mutex
	trans   map[string]*raft.InmemTransport
	nodes   map[string]*Node
	cut     map[string]bool
	peers   []Peer
	events  *eventLog
	tuneCfg func(*Config)
	// wrap, if set, may replace a node's transport (fault injection).
	wrap     func(name string, t *raft.InmemTransport) raft.Transport
	dataDirs map[string]string
}

// eventLog records when each node's active work started and stopped.
type eventLog struct {
	mu     sync.Mutex
	events []workEvent
}

type workEvent struct {
	node  string
	epoch uint64
	start bool
	at    time.Time
}

func (e *eventLog) add(ev workEvent) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

func (e *eventLog) snapshot() []workEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]workEvent(nil), e.events...)
}

func newTestCluster(t *testing.T, names []string, witnesses ...string) *testCluster {
	t.Helper()
	c := &testCluster{
		t:        t,
		trans:    map[string]*raft.InmemTransport{},
		nodes:    map[string]*Node{},
		cut:      map[string]bool{},
		events:   &eventLog{},
		dataDirs: map[string]string{},
	}
	isWitness := map[string]bool{}
	for _, w := range witnesses {
		isWitness[w] = true
	}
	for _, n := range names {
		c.peers = append(c.peers, Peer{Name: n, Address: n, Witness: isWitness[n]})
	}
	t.Cleanup(c.shutdownAll)
	return c
}

func (c *testCluster) startAll() {
	for _, p := range c.peers {
		c.start(p.Name)
	}
}

func (c *testCluster) start(name string) *Node {
	c.t.Helper()
	var self Peer
	for _, p := range c.peers {
		if p.Name == name {
			self = p
		}
	}
	if c.dataDirs[name] == "" {
		c.dataDirs[name] = c.t.TempDir()
	}
	log := zerolog.New(zerolog.NewTestWriter(c.t)).Level(zerolog.WarnLevel)
	if os.Getenv("FTAGENT_TEST_VERBOSE") != "" {
		log = log.Level(zerolog.DebugLevel)
	}
	cfg := Config{
		AgentName:          "TEST",
		Name:               name,
		Address:            name,
		Witness:            self.Witness,
		Instances:          c.peers,
		DataDir:            c.dataDirs[name],
		HeartbeatTimeout:   200 * time.Millisecond,
		ElectionTimeout:    200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		PublishInterval:    50 * time.Millisecond,
		DiscardTime:        300 * time.Millisecond,
		RetryMaxInterval:   200 * time.Millisecond,
		Version:            "test",
		Logger:             log,
		NewTransport: func() (raft.Transport, error) {
			t := c.newTransport(name)
			if c.wrap != nil {
				return c.wrap(name, t), nil
			}
			return t, nil
		},
		Peers: testPeers{c: c, from: name},
		OnActive: func(ctx context.Context, l Lease) {
			c.events.add(workEvent{node: name, epoch: l.Epoch, start: true, at: time.Now()})
			<-ctx.Done()
			c.events.add(workEvent{node: name, epoch: l.Epoch, start: false, at: time.Now()})
		},
	}
	if c.tuneCfg != nil {
		c.tuneCfg(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	c.mu.Lock()
	c.nodes[name] = n
	c.mu.Unlock()
	return n
}

// newTransport makes a fresh in-memory transport for name and connects it
// with every other live transport, unless name or the other is cut off.
func (c *testCluster) newTransport(name string) *raft.InmemTransport {
	_, t := raft.NewInmemTransport(raft.ServerAddress(name))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trans[name] = t
	for other, ot := range c.trans {
		if other == name || c.cut[name] || c.cut[other] {
			continue
		}
		t.Connect(raft.ServerAddress(other), ot)
		ot.Connect(raft.ServerAddress(name), t)
	}
	return t
}

// partition cuts name off from every other node.
func (c *testCluster) partition(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut[name] = true
	c.trans[name].DisconnectAll()
	for other, ot := range c.trans {
		if other != name {
			ot.Disconnect(raft.ServerAddress(name))
		}
	}
}

// heal reconnects name with the nodes that are not cut off.
func (c *testCluster) heal(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut[name] = false
	t := c.trans[name]
	for other, ot := range c.trans {
		if other == name || c.cut[other] {
			continue
		}
		t.Connect(raft.ServerAddress(other), ot)
		ot.Connect(raft.ServerAddress(name), t)
	}
}

func (c *testCluster) stop(name string) {
	c.mu.Lock()
	n := c.nodes[name]
	delete(c.nodes, name)
	c.mu.Unlock()
	if n != nil {
		if err := n.Shutdown(); err != nil {
			c.t.Errorf("shutdown %s: %v", name, err)
		}
	}
	c.partition(name)
}

func (c *testCluster) shutdownAll() {
	c.mu.Lock()
	nodes := c.nodes
	c.nodes = map[string]*Node{}
	c.mu.Unlock()
	for _, n := range nodes {
		_ = n.Shutdown()
	}
}

func (c *testCluster) node(name string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name]
}

// reachable reports whether from can talk to to.
func (c *testCluster) reachable(from, to string) (*Node, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[to]
	return n, n != nil && !c.cut[from] && !c.cut[to]
}

// actives returns the nodes that currently run active work.
func (c *testCluster) actives() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for name, n := range c.nodes {
		if n.IsActive() {
			out = append(out, name)
		}
	}
	return out
}

// waitActive waits until exactly one node is active, other than the excluded
// ones, and returns it.
func (c *testCluster) waitActive(timeout time.Duration, exclude ...string) string {
	c.t.Helper()
	var last []string
	ok := waitFor(timeout, func() bool {
		last = c.actives()
		if len(last) != 1 {
			return false
		}
		for _, e := range exclude {
			if last[0] == e {
				return false
			}
		}
		return true
	})
	if !ok {
		c.t.Fatalf("no single active within %v (actives: %v, excluded %v)", timeout, last, exclude)
	}
	return last[0]
}

// waitActiveAbove waits until exactly one node, not excluded, is active
// under a lease epoch above epoch.
func (c *testCluster) waitActiveAbove(timeout time.Duration, epoch uint64, exclude ...string) string {
	c.t.Helper()
	var next string
	if !waitFor(timeout, func() bool {
		a := c.actives()
		if len(a) != 1 {
			return false
		}
		for _, e := range exclude {
			if a[0] == e {
				return false
			}
		}
		next = a[0]
		n := c.node(next)
		return n != nil && n.Lease().Epoch > epoch
	}) {
		c.t.Fatalf("no single active above epoch %d within %v (actives %v, excluded %v)", epoch, timeout, c.actives(), exclude)
	}
	return next
}

func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type testPeers struct {
	c    *testCluster
	from string
}

func (p testPeers) Publish(_ context.Context, addr string, s InstanceStatus) error {
	n, ok := p.c.reachable(p.from, addr)
	if !ok {
		return fmt.Errorf("%s unreachable", addr)
	}
	return n.ReportStandby(s)
}

func (p testPeers) Probe(_ context.Context, addr string) (InstanceStatus, error) {
	n, ok := p.c.reachable(p.from, addr)
	if !ok {
		return InstanceStatus{}, fmt.Errorf("%s unreachable", addr)
	}
	return n.Status(), nil
}

// checkOneWriter asserts that active work periods never overlap: every start
// happens after the previous active's work stopped, with a larger epoch.
func checkOneWriter(t *testing.T, events []workEvent) {
	t.Helper()
	running := map[string]workEvent{}
	var lastEpoch uint64
	for _, ev := range events {
		if ev.start {
			for other, r := range running {
				if other != ev.node {
					t.Errorf("%s became active (epoch %d) while %s (epoch %d) still ran work", ev.node, ev.epoch, other, r.epoch)
				}
			}
			if ev.epoch <= lastEpoch {
				t.Errorf("epoch did not grow: %s started at %d after %d", ev.node, ev.epoch, lastEpoch)
			}
			lastEpoch = ev.epoch
			running[ev.node] = ev
		} else {
			delete(running, ev.node)
		}
	}
}

func TestThreeNodesElectOneActive(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.startAll()
	active := c.waitActive(10 * time.Second)

	// Every node learns the lease through the log.
	want := c.node(active).Lease()
	if want.Holder != active || want.Epoch == 0 {
		t.Fatalf("active %s has lease %+v", active, want)
	}
	for _, name := range []string{"ha1", "ha2", "ha3"} {
		n := c.node(name)
		if !waitFor(5*time.Second, func() bool { return n.Lease() == want }) {
			t.Errorf("%s has lease %+v, want %+v", name, n.Lease(), want)
		}
	}
	// It stays one active.
	for i := 0; i < 20; i++ {
		if a := c.actives(); len(a) != 1 || a[0] != active {
			t.Fatalf("actives changed to %v", a)
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkOneWriter(t, c.events.snapshot())
}

func TestEpochsStrictlyIncreaseAcrossReelections(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.startAll()
	active := c.waitActive(10 * time.Second)
	epochs := []uint64{c.node(active).Lease().Epoch}
	for i := 0; i < 4; i++ {
		c.partition(active)
		next := c.waitActive(10*time.Second, active)
		epoch := c.node(next).Lease().Epoch
		epochs = append(epochs, epoch)
		c.heal(active)
		// The old active rejoins and learns the new lease.
		old := c.node(active)
		if !waitFor(5*time.Second, func() bool { return old.Lease().Epoch >= epoch }) {
			t.Fatalf("%s did not learn epoch %d after healing", active, epoch)
		}
		active = next
	}
	for i := 1; i < len(epochs); i++ {
		if epochs[i] <= epochs[i-1] {
			t.Fatalf("epochs did not strictly increase: %v", epochs)
		}
	}
	checkOneWriter(t, c.events.snapshot())
}

func TestPartitionedLeaderStopsBeingActive(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.startAll()
	old := c.waitActive(10 * time.Second)
	cutAt := time.Now()
	c.partition(old)

	// The cut-off active must stop its work by itself (leader lease), without
	// hearing from anyone.
	if !waitFor(5*time.Second, func() bool { return !c.node(old).IsActive() }) {
		t.Fatalf("partitioned %s is still active", old)
	}
	stoppedAfter := time.Since(cutAt)
	next := c.waitActive(10*time.Second, old)
	if c.node(next).Lease().Epoch <= c.node(old).Lease().Epoch {
		t.Fatalf("new active %s epoch %d not above old %d", next, c.node(next).Lease().Epoch, c.node(old).Lease().Epoch)
	}
	// The old active's work stopped before the new one's started.
	checkOneWriter(t, c.events.snapshot())
	t.Logf("partitioned active stopped after %v", stoppedAfter)

	// After healing it is a standby again.
	c.heal(old)
	if !waitFor(5*time.Second, func() bool { return c.node(old).Status().Status == StatusReady }) {
		t.Fatalf("healed %s is %s, want READY", old, c.node(old).Status().Status)
	}
}

func TestHandOverImmediate(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.startAll()
	old := c.waitActive(10 * time.Second)
	oldEpoch := c.node(old).Lease().Epoch
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := c.node(old).HandOver(ctx, true)
	if err != nil {
		t.Fatalf("hand over: %v", err)
	}
	if lease.Holder == old || lease.Epoch <= oldEpoch {
		t.Fatalf("hand-over returned lease %+v (old %s epoch %d)", lease, old, oldEpoch)
	}
	next := c.waitActive(5*time.Second, old)
	if next != lease.Holder {
		t.Fatalf("active is %s, hand-over said %s", next, lease.Holder)
	}
	if st := c.node(old).Status().Status; st != StatusStopping {
		t.Errorf("old active status %s, want STOPPING", st)
	}
	checkOneWriter(t, c.events.snapshot())
}

func TestHandOverLastDataInstance(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.startAll()
	active := c.waitActive(10 * time.Second)
	// Stop both others: the active keeps no quorum, so give it a moment less
	// and stop just one; the other is cut off from probes.
	var others []string
	for _, n := range []string{"ha1", "ha2", "ha3"} {
		if n != active {
			others = append(others, n)
		}
	}
	c.stop(others[0])
	c.mu.Lock()
	c.cut[others[1]] = true // probes fail; raft still connected
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.node(active).HandOver(ctx, true)
	if !errors.Is(err, ErrNoStandby) {
		t.Fatalf("hand-over with no standby: got %v, want ErrNoStandby", err)
	}
}

func TestWitnessNeverActive(t *testing.T) {
	c := newTestCluster(t, []string{"d1", "d2", "w"}, "w")
	c.startAll()
	for round := 0; round < 3; round++ {
		active := c.waitActive(10*time.Second, "w")
		// Lose the active's host: the other data instance must take over even
		// if the witness wins the election.
		c.partition(active)
		next := c.waitActive(10*time.Second, active, "w")
		c.heal(active)
		_ = next
	}
	for _, ev := range c.events.snapshot() {
		if ev.node == "w" {
			t.Fatalf("witness ran active work: %+v", ev)
		}
	}
	checkOneWriter(t, c.events.snapshot())
}

func TestWitnessHandsLeadershipToDataInstance(t *testing.T) {
	c := newTestCluster(t, []string{"d1", "d2", "w"}, "w")
	c.startAll()
	active := c.waitActive(10*time.Second, "w")
	epoch := c.node(active).Lease().Epoch
	// Make the witness the raft leader: it must not take the lease, and must
	// pass leadership on to a data instance.
	if err := c.node(active).r().LeadershipTransferToServer("w", "w").Error(); err != nil {
		t.Fatalf("transfer to witness: %v", err)
	}
	if !waitFor(5*time.Second, func() bool { return c.node("w").r().State() == raft.Leader }) &&
		c.node("w").Lease().Epoch == epoch {
		t.Fatalf("witness never became raft leader")
	}
	next := c.waitActiveAbove(10*time.Second, epoch, "w")
	if l := c.node(next).Lease(); l.Epoch <= epoch || l.Holder != next {
		t.Fatalf("after the witness led: lease %+v, old epoch %d", l, epoch)
	}
	if c.node("w").Lease().Holder == "w" {
		t.Fatalf("witness holds the lease")
	}
	for _, ev := range c.events.snapshot() {
		if ev.node == "w" {
			t.Fatalf("witness ran active work: %+v", ev)
		}
	}
}

func TestStandbyDiscardedAndReturns(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.startAll()
	active := c.waitActive(10 * time.Second)
	var standby string
	for _, n := range []string{"ha1", "ha2", "ha3"} {
		if n != active {
			standby = n
			break
		}
	}
	has := func(name string) bool {
		v, err := c.node(active).View()
		if err != nil {
			return false
		}
		for _, s := range v.Standbys {
			if s == name {
				return true
			}
		}
		return false
	}
	if !waitFor(5*time.Second, func() bool { return has(standby) }) {
		t.Fatalf("%s never listed as standby", standby)
	}
	// Stop its publishing by cutting only the status path (raft stays up).
	c.mu.Lock()
	c.cut[standby] = true
	c.mu.Unlock()
	if !waitFor(5*time.Second, func() bool { return !has(standby) }) {
		t.Fatalf("%s still listed after the discard time", standby)
	}
	v, _ := c.node(active).View()
	for _, iv := range v.Instances {
		if iv.Name == standby && (iv.Role != RoleUnknown || iv.StatusAge != nil) {
			t.Errorf("discarded standby shown as %+v", iv)
		}
	}
	c.mu.Lock()
	c.cut[standby] = false
	c.mu.Unlock()
	if !waitFor(5*time.Second, func() bool { return has(standby) }) {
		t.Fatalf("%s did not return after publishing again", standby)
	}
}

func TestRestartedNodeRejoinsWithItsState(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.startAll()
	active := c.waitActive(10 * time.Second)
	epoch := c.node(active).Lease().Epoch
	c.stop(active)
	next := c.waitActive(10*time.Second, active)
	c.heal(active)
	n := c.start(active) // same data directory: rejoins, does not bootstrap anew
	if !waitFor(5*time.Second, func() bool { return n.Lease().Epoch > epoch && n.Status().Status == StatusReady }) {
		t.Fatalf("restarted %s: lease %+v status %s", active, n.Lease(), n.Status().Status)
	}
	if a := c.actives(); len(a) != 1 || a[0] != next {
		t.Fatalf("actives %v, want only %s", a, next)
	}
}

// hungTimeoutNow is a transport whose TimeoutNow, once armed, never returns:
// the leadership transfer goroutine inside raft never finishes, and raft's
// "leadership transfer in progress" flag stays set for good, the state
// hashicorp/raft#696 leaves a node in.
type hungTimeoutNow struct {
	*raft.InmemTransport
	armed   *atomic.Bool
	release chan struct{}
}

func (h *hungTimeoutNow) TimeoutNow(id raft.ServerID, addr raft.ServerAddress, req *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	if !h.armed.Load() {
		return h.InmemTransport.TimeoutNow(id, addr, req, resp)
	}
	<-h.release
	return errors.New("released")
}

func TestWedgedLeadershipTransferRestartsRaft(t *testing.T) {
	c := newTestCluster(t, []string{"d1", "d2", "w"}, "w")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var armed atomic.Bool
	var mu sync.Mutex
	wrapped := 0
	c.wrap = func(name string, tr *raft.InmemTransport) raft.Transport {
		mu.Lock()
		defer mu.Unlock()
		if name == "w" && wrapped == 0 {
			wrapped++ // only the witness's first raft node can hang; a restarted one is healthy
			return &hungTimeoutNow{InmemTransport: tr, armed: &armed, release: release}
		}
		return tr
	}
	c.startAll()
	active := c.waitActive(10*time.Second, "w")
	epoch := c.node(active).Lease().Epoch
	// Make the witness leader. Its hand-over to a data instance hangs in
	// TimeoutNow, wedging its raft node; the guard must restart that node so
	// that the agent gets an active again.
	first := c.node("w").r()
	armed.Store(true)
	if err := c.node(active).r().LeadershipTransferToServer("w", "w").Error(); err != nil {
		t.Fatalf("transfer to witness: %v", err)
	}
	if !waitFor(5*time.Second, func() bool { return c.node("w").r().State() == raft.Leader }) {
		t.Fatalf("witness never became leader")
	}
	c.waitActiveAbove(20*time.Second, epoch, "w")
	if c.node("w").r() == first {
		t.Fatalf("the witness's wedged raft node was not restarted")
	}
	checkOneWriter(t, c.events.snapshot())
}

// countingSM is a state machine that counts the commands it applied.
type countingSM struct {
	mu sync.Mutex
	n  int
}

func (s *countingSM) Apply(kind string, epoch uint64, data []byte, index uint64) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.n
}
func (s *countingSM) Snapshot() (replog.Snapshot, error) { return jsonSnapshot{struct{}{}}, nil }
func (s *countingSM) Restore(dec *json.Decoder) (func(), error) {
	if err := replog.SkipValue(dec); err != nil {
		return nil, err
	}
	return func() {}, nil
}

func TestDeposedActiveIsFenced(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	c.tuneCfg = func(cfg *Config) { cfg.StateMachine = &countingSM{} }
	c.startAll()
	old := c.waitActive(10 * time.Second)
	oldEpoch := c.node(old).Lease().Epoch
	if _, err := c.node(old).Apply("test.write", oldEpoch, nil, time.Second); err != nil {
		t.Fatalf("active's write under its own epoch: %v", err)
	}
	if err := c.node(old).VerifyLease(oldEpoch); err != nil {
		t.Fatalf("active's lease check: %v", err)
	}

	// Cut the active off; a new one takes over.
	c.partition(old)
	next := c.waitActiveAbove(10*time.Second, oldEpoch, old)
	// The deposed active can neither confirm its lease nor write.
	if err := c.node(old).VerifyLease(oldEpoch); err == nil {
		t.Fatalf("deposed %s still verifies its lease", old)
	}
	c.heal(old)
	newEpoch := c.node(next).Lease().Epoch
	if !waitFor(5*time.Second, func() bool { return c.node(old).Lease().Epoch == newEpoch }) {
		t.Fatalf("%s did not learn the new lease", old)
	}
	// A write proposed under the old epoch is refused by the replicated
	// state even when the current leader proposes it.
	if _, err := c.node(next).Apply("test.write", oldEpoch, nil, time.Second); !errors.Is(err, replog.ErrStaleEpoch) {
		t.Fatalf("write under stale epoch %d: got %v, want replog.ErrStaleEpoch", oldEpoch, err)
	}
	if _, err := c.node(next).Apply("test.write", newEpoch, nil, time.Second); err != nil {
		t.Fatalf("write under the current epoch: %v", err)
	}
}

// A deposed active says it is not active as soon as its term ends, while
// its work is still stopping: two instances never both report ACTIVE
// (issue 10, item 7).
func TestDeposedActiveNotActiveWhileItsWorkStops(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	ended := make(chan string, 8)
	release := make(chan struct{})
	var once sync.Once
	// A defer runs before the cluster's clean-up (t.Cleanup): the stopping
	// work is let go before the nodes are shut down, also on a failure.
	defer once.Do(func() { close(release) })
	c.tuneCfg = func(cfg *Config) {
		name := cfg.Name
		cfg.OnActive = func(ctx context.Context, l Lease) {
			<-ctx.Done()
			ended <- name
			<-release // the work takes its time to stop
		}
	}
	c.startAll()
	old := c.waitActive(10 * time.Second)
	c.partition(old)
	select {
	case name := <-ended:
		if name != old {
			t.Fatalf("%s's work was told to stop, want %s's", name, old)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the partitioned active %s's work was never told to stop", old)
	}
	n := c.node(old)
	if n.IsActive() || n.Status().Status == StatusActive {
		t.Fatalf("deposed %s still says it is active (%s) while its work stops", old, n.Status().Status)
	}
}
