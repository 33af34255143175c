package ha

import (
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// replication is what this node has seen of its own replication as a
// leader: for each server it sent entries to, the highest log index that
// server acknowledged, in which term, and when it last answered with
// success. hashicorp/raft keeps its followers' match indexes private, so
// the node observes the answers on the way through its transport
// (trackingTransport). AddMember judges a joiner's catch-up by this, never by
// what the joiner says of itself; RemoveMember asks it which voters are in
// touch.
//
// It also keeps, in leader memory only, the catch-up index each non-voter
// must reach before it becomes a voter.
type replication struct {
	mu      sync.Mutex
	acks    map[raft.ServerID]ack
	catchUp map[string]catchUp
}

// ack is one server's highest acknowledged index within one term.
type ack struct {
	term  uint64
	index uint64
	at    time.Time // the last successful answer, of any index
}

// catchUp is the index a non-voter must have acknowledged to become a voter,
// set by the leader of term.
type catchUp struct {
	term  uint64
	index uint64
}

func newReplication() *replication {
	return &replication{acks: map[raft.ServerID]ack{}, catchUp: map[string]catchUp{}}
}

// record notes that id acknowledged every entry up to index, in an
// AppendEntries or InstallSnapshot of term. An answer of an older term than
// the one recorded is ignored; a newer term starts the server afresh, since
// entries a follower matched under an earlier leader may since have been
// replaced.
func (rp *replication) record(id raft.ServerID, term, index uint64) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	a := rp.acks[id]
	switch {
	case term < a.term:
		return
	case term > a.term:
		a = ack{term: term}
	}
	a.index = max(a.index, index)
	a.at = time.Now()
	rp.acks[id] = a
}

// acked returns the highest index id acknowledged to this node as leader of
// term, and when it last answered; 0 when it has not answered in that term.
func (rp *replication) acked(id raft.ServerID, term uint64) (uint64, time.Time) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	a, ok := rp.acks[id]
	if !ok || a.term != term {
		return 0, time.Time{}
	}
	return a.index, a.at
}

// target returns the catch-up index a non-voter must reach, as the leader of
// term set it; ok is false when this leader set none (the non-voter was
// added by an earlier leader, or before this node restarted).
func (rp *replication) target(name string, term uint64) (uint64, bool) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	c, ok := rp.catchUp[name]
	if !ok || c.term != term {
		return 0, false
	}
	return c.index, true
}

func (rp *replication) setTarget(name string, term, index uint64) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.catchUp[name] = catchUp{term: term, index: index}
}

// forget drops what is known of a server that left the group.
func (rp *replication) forget(name string) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	delete(rp.catchUp, name)
	delete(rp.acks, raft.ServerID(name))
}

// trackTransport wraps t so that rp sees every successful AppendEntries
// (plain and pipelined) and InstallSnapshot this node sends. The wrapper
// offers the optional interfaces raft looks for (WithPreVote, WithClose,
// WithPeers) exactly when t does, so raft keeps pre-vote and closes the
// transport on shutdown as it would without the wrapper.
func trackTransport(t raft.Transport, rp *replication) raft.Transport {
	tt := &trackingTransport{Transport: t, rp: rp}
	if _, ok := t.(raft.WithPreVote); ok {
		return &trackingPreVoteTransport{tt}
	}
	return tt
}

// trackingTransport passes everything through to Transport, and records the
// acknowledgements it sees.
type trackingTransport struct {
	raft.Transport
	rp *replication
}

func (t *trackingTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.Transport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.recordAppend(id, args, resp)
	}
	return err
}

// recordAppend records a successful AppendEntries answer: the follower's log
// now matches this node's up to the last entry sent.
func (t *trackingTransport) recordAppend(id raft.ServerID, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) {
	if args == nil || resp == nil || !resp.Success || resp.Term > args.Term {
		return
	}
	t.rp.record(id, args.Term, args.PrevLogEntry+uint64(len(args.Entries)))
}

func (t *trackingTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	err := t.Transport.InstallSnapshot(id, target, args, resp, data)
	if err == nil && resp.Success && resp.Term <= args.Term {
		t.rp.record(id, args.Term, args.LastLogIndex)
	}
	return err
}

func (t *trackingTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.Transport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	tp := &trackingPipeline{AppendPipeline: p, t: t, id: id, out: make(chan raft.AppendFuture, 128), done: make(chan struct{})}
	go tp.forward()
	return tp, nil
}

// Close closes the wrapped transport if it can be closed.
func (t *trackingTransport) Close() error {
	if c, ok := t.Transport.(raft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// Connect, Disconnect and DisconnectAll pass through to a transport that
// offers them (the in-memory transport of tests); raft itself never calls
// them.
func (t *trackingTransport) Connect(peer raft.ServerAddress, other raft.Transport) {
	if p, ok := t.Transport.(raft.WithPeers); ok {
		p.Connect(peer, other)
	}
}

func (t *trackingTransport) Disconnect(peer raft.ServerAddress) {
	if p, ok := t.Transport.(raft.WithPeers); ok {
		p.Disconnect(peer)
	}
}

func (t *trackingTransport) DisconnectAll() {
	if p, ok := t.Transport.(raft.WithPeers); ok {
		p.DisconnectAll()
	}
}

// trackingPreVoteTransport is a trackingTransport over a transport that
// offers pre-vote.
type trackingPreVoteTransport struct{ *trackingTransport }

func (t *trackingPreVoteTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.Transport.(raft.WithPreVote).RequestPreVote(id, target, args, resp)
}

// trackingPipeline hands raft the wrapped pipeline's answers, recording each
// successful one on the way.
type trackingPipeline struct {
	raft.AppendPipeline
	t         *trackingTransport
	id        raft.ServerID
	out       chan raft.AppendFuture
	done      chan struct{}
	closeOnce sync.Once
}

func (p *trackingPipeline) forward() {
	in := p.AppendPipeline.Consumer()
	for {
		select {
		case f, ok := <-in:
			if !ok {
				return
			}
			// A future on the consumer channel has its answer.
			if f.Error() == nil {
				p.t.recordAppend(p.id, f.Request(), f.Response())
			}
			select {
			case p.out <- f:
			case <-p.done:
				return
			}
		case <-p.done:
			return
		}
	}
}

func (p *trackingPipeline) Consumer() <-chan raft.AppendFuture { return p.out }

func (p *trackingPipeline) Close() error {
	err := p.AppendPipeline.Close()
	p.closeOnce.Do(func() { close(p.done) })
	return err
}

// Compile-time checks: the wrappers are transports with the optional
// interfaces.
var (
	_ raft.WithClose   = (*trackingTransport)(nil)
	_ raft.WithPeers   = (*trackingTransport)(nil)
	_ raft.WithPreVote = (*trackingPreVoteTransport)(nil)
	_ raft.Transport   = (*trackingPreVoteTransport)(nil)
)
