// Package transfer owns transfers: requests and their checks, the queue and
// its limits, and the active's work of copying files with checkpoints. It
// builds on pkg/ha's lease and log: the active instance's Manager runs the
// copies, records every step through the log, and a new active resumes every
// transfer from its last checkpoint. The replicated state of every transfer,
// which the log's entries change, is pkg/transfer/replicated's.
package transfer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/ftagent/ftagent/pkg/sandbox"
	"github.com/ftagent/ftagent/pkg/transfer/copyloop"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// Log is what the Manager needs of pkg/ha: commit a command under an epoch,
// confirm the lease before an irreversible step, and tell whether every
// instance reads a command format (see ha.Node.FormatAgreed).
type Log interface {
	Apply(kind string, epoch uint64, data any, timeout time.Duration) (any, error)
	VerifyLease(epoch uint64) error
	FormatAgreed(format int) bool
}

// Limits are the agent's transfer settings.
type Limits struct {
	MaxSourceTransfers      int
	MaxDestinationTransfers int
	MaxQueuedTransfers      int
	MaxFilesPerTransfer     int           // 0: no limit
	RecoveryTimeout         time.Duration // negative: retry forever
	CheckpointBytes         int64
	CheckpointTime          time.Duration
	MaxBandwidth            int64 // bytes/s, 0 unlimited
	HistoryCount            int
	HistoryAge              time.Duration
}

// ErrNotActive refuses work on an instance that does not hold the lease.
var ErrNotActive = errors.New("this instance is not the active")

// ErrStopping refuses new transfers while the active stops.
var ErrStopping = errors.New("the active instance is stopping and takes no new transfers")

// RequestError is a refused request: the reason, in words, for the user.
type RequestError struct{ Reason string }

func (e *RequestError) Error() string { return e.Reason }

const applyTimeout = 10 * time.Second

// Manager runs the agent's transfers on the active instance.
type Manager struct {
	limits Limits
	log    zerolog.Logger
	state  *State
	raft   Log
	ep     endpoint.Endpoint
	mux    *endpoint.Mux // SFTP partners (SetSFTP); nil when there are none
	audit  *audit.Log    // moves to alternate groups (SetAudit); nil records nothing
	sb     *sandbox.Sandbox
	agent  *copyloop.Limiter

	mu    sync.Mutex
	lease *ha.Lease // set while active
	// runCtx is Run's context while active (its epoch set): inbound
	// requests work under it.
	runCtx context.Context
	// receiving: the inbound writes in flight (inbound.go).
	receiving receiving
	draining  bool
	// drainSkips holds the transfers seen recovering during a drain: it
	// does not wait for them.
	drainSkips map[string]bool
	jobs       map[string]*job
	// noCleanup holds ended transfers whose sources could not be deleted
	// for good (e.g. permission denied): not retried by this active.
	noCleanup map[string]bool
	// cancelling holds transfers whose run Cancel is stopping: the
	// scheduler does not start them meanwhile.
	cancelling map[string]int
	// creating counts the requests this manager is creating in several
	// entries, by transfer id (create.go): open transfers it is not
	// creating are orphans.
	creating map[string]int
	wake     chan struct{}
	idle     *sync.Cond // signalled when a job ends
	observer Observer   // nil: no metrics
	// receivers are the agents this one may send to (remote.go).
	receivers Receivers
	// groups and alternateAfter: the destination agents' groups and when
	// to move to the next (remote.go: SetGroups).
	groups         func(agent string) []string
	alternateAfter time.Duration
	retrying       atomic.Bool // a retryEnds runs
	// prefer holds the destination agents an operator asked to return to
	// (Prefer).
	prefer map[string]bool
}

type job struct {
	cancel context.CancelFunc
	done   chan struct{}
	// live progress: bytes written of the file being copied, beyond what the
	// replicated state records.
	mu      sync.Mutex
	file    int
	written int64
	// sent is how far a copy to another agent got in the file sentFile
	// before it stopped: what it sends again is counted as resent.
	sentFile int
	sent     int64
}

// NewManager builds the manager; it does nothing until Run.
func NewManager(limits Limits, state *State, raft Log, ep endpoint.Endpoint, sb *sandbox.Sandbox, log zerolog.Logger) *Manager {
	if limits.MaxSourceTransfers <= 0 {
		limits.MaxSourceTransfers = 25
	}
	m := &Manager{
		limits:     limits,
		log:        log.With().Str("component", "transfer").Logger(),
		state:      state,
		raft:       raft,
		ep:         ep,
		sb:         sb,
		agent:      copyloop.NewLimiter(limits.MaxBandwidth),
		jobs:       map[string]*job{},
		noCleanup:  map[string]bool{},
		cancelling: map[string]int{},
		creating:   map[string]int{},
		wake:       make(chan struct{}, 1),
	}
	m.idle = sync.NewCond(&m.mu)
	return m
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run is the active's work: it resumes every transfer that has not ended and
// runs new ones as they come, until ctx is cancelled (lease lost or handed
// over); it returns once every copy has stopped.
func (m *Manager) Run(ctx context.Context, lease ha.Lease) {
	// Every change to storage made for this term is fenced by its epoch.
	ctx = endpoint.WithEpoch(ctx, lease.Epoch)
	m.mu.Lock()
	m.lease, m.runCtx, m.draining, m.drainSkips = &lease, ctx, false, nil
	m.mu.Unlock()
	m.log.Info().Uint64("epoch", lease.Epoch).Msg("resuming transfers")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var pruned time.Time
	for {
		m.schedule(ctx, lease)
		if time.Since(pruned) >= pruneEvery {
			pruned = time.Now()
			m.pruneHistory(ctx, lease)
			if m.retrying.CompareAndSwap(false, true) {
				// Off the scheduler's loop: an unreachable agent costs
				// its client's whole connect plan.
				go func() {
					defer m.retrying.Store(false)
					m.retryEnds(ctx, lease)
					if m.receivers != nil {
						m.reconcile(ctx, lease)
					}
				}()
			}
		}
		select {
		case <-ctx.Done():
			// A request to an SFTP server takes no context: closing the
			// connections fails those in flight, so that the copies stop
			// now rather than when the server answers.
			if m.mux != nil {
				m.mux.CloseSFTP()
			}
			m.mu.Lock()
			m.lease, m.runCtx = nil, nil
			for _, j := range m.jobs {
				j.cancel()
			}
			for len(m.jobs) > 0 {
				m.idle.Wait()
			}
			m.mu.Unlock()
			// Only the active holds connections to SFTP partners (a
			// copy may have opened one after the first close).
			if m.mux != nil {
				m.mux.CloseSFTP()
			}
			return
		case <-m.wake:
		case <-tick.C:
		}
	}
}

// schedule starts jobs for transfers that have not ended, higher priority
// first, then oldest, up to the concurrency limit.
func (m *Manager) schedule(ctx context.Context, lease ha.Lease) {
	if ctx.Err() != nil {
		return
	}
	limit := m.limits.MaxSourceTransfers
	if d := m.limits.MaxDestinationTransfers; d > 0 && d < limit {
		limit = d // source and destination are the same agent here
	}
	var todo []*Transfer
	pending := m.state.Pending() // without their files
	m.discardOrphans(lease, pending)
	for _, t := range pending {
		if t.Open {
			continue // being created (or discarded just now)
		}
		if !Terminal(t.State) || !m.skipCleanup(t.ID) {
			todo = append(todo, t)
		}
	}
	sort.SliceStable(todo, func(i, j int) bool {
		if todo[i].Request.Priority != todo[j].Request.Priority {
			return todo[i].Request.Priority > todo[j].Request.Priority
		}
		return todo[i].Seq < todo[j].Seq
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lease == nil {
		return
	}
	for _, t := range todo {
		if len(m.jobs) >= limit {
			return
		}
		if m.cancelling[t.ID] > 0 {
			continue
		}
		if _, running := m.jobs[t.ID]; running {
			continue
		}
		if m.draining && t.State == StateQueued {
			continue // a stopping active finishes what runs and starts nothing
		}
		// Recovering transfers wait for their backoff inside their job; a
		// job ended by an error is retried here on the next tick.
		jctx, cancel := context.WithCancel(ctx)
		j := &job{cancel: cancel, done: make(chan struct{}), file: -1, sentFile: -1}
		m.jobs[t.ID] = j
		run := m.runTransfer
		if Terminal(t.State) {
			run = m.finishSources
		}
		go func(id string) {
			defer func() {
				cancel()
				m.mu.Lock()
				delete(m.jobs, id)
				m.idle.Broadcast()
				m.mu.Unlock()
				close(j.done)
				m.poke()
			}()
			run(jctx, lease, id, j)
		}(t.ID)
	}
}

const (
	// pruneEvery is how often the active looks for history to forget:
	// the history may exceed transferHistoryCount by what ends meanwhile.
	pruneEvery = 5 * time.Second
	// HistoryIDRetention is how long an ended transfer is kept whatever
	// transferHistoryCount and transferHistoryAge say: a client that
	// retries a submission after a failover (within its reconnect policy,
	// seconds to a few minutes) must find the transfer by its id rather
	// than create it again.
	HistoryIDRetention = 15 * time.Minute
	// pruneMax bounds the ids of one prune entry.
	pruneMax = 1000
)

// pruneHistory forgets ended transfers beyond transferHistoryCount or older
// than transferHistoryAge, once every instance reads KindPrune: never one
// with a source still to delete, nor one ended less than
// HistoryIDRetention ago.
func (m *Manager) pruneHistory(ctx context.Context, lease ha.Lease) {
	if ctx.Err() != nil {
		return
	}
	now := time.Now().UTC()
	m.pruneInbound(lease, now)
	ids := m.state.PruneCandidates(now, m.limits.HistoryCount, m.limits.HistoryAge, HistoryIDRetention, pruneMax)
	if len(ids) == 0 {
		return
	}
	if !m.raft.FormatAgreed(replicated.FormatPrune) {
		// An instance has not said it reads transfer.prune (an older
		// build in a rolling upgrade, or one that is down): the history
		// is kept until it does.
		m.log.Debug().Int("transfers", len(ids)).Msg("history not pruned: not every instance reads transfer.prune yet")
		return
	}
	res, err := m.raft.Apply(KindPrune, lease.Epoch, replicated.PruneCmd{Time: now, IDs: ids}, applyTimeout)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn().Err(err).Int("transfers", len(ids)).Msg("prune the transfer history")
		}
		return
	}
	m.log.Debug().Any("dropped", res).Int("proposed", len(ids)).Msg("transfer history pruned")
}

func (m *Manager) skipCleanup(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.noCleanup[id]
}

// Drain stops taking new transfers and waits until the running ones have
// ended (a normal stop), or ctx ends. Queued transfers stay queued for the
// next active. A transfer that is recovering, or goes to recovering during
// the drain, is not waited for: its error may last for ever
// (recoveryTimeout -1), and the next active retries it just as well.
func (m *Manager) Drain(ctx context.Context) error {
	m.mu.Lock()
	m.draining = true
	m.mu.Unlock()
	for {
		if len(m.drainWaitsFor()) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// drainWaitsFor lists the ids of the transfers a drain waits for: those
// running that have not been recovering since the drain began.
func (m *Manager) drainWaitsFor() []string {
	var ids []string
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.state.Pending() {
		switch t.State {
		case StateRecovering:
			if m.drainSkips == nil {
				m.drainSkips = map[string]bool{}
			}
			m.drainSkips[t.ID] = true
		case StateRunning:
			if !m.drainSkips[t.ID] {
				ids = append(ids, t.ID)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// Draining returns, without their files, the views of the transfers a
// drain waits for, with live progress; nil when no drain runs.
func (m *Manager) Draining(root string) []View {
	m.mu.Lock()
	draining := m.draining && m.lease != nil
	m.mu.Unlock()
	if !draining {
		return nil
	}
	out := []View{}
	for _, id := range m.drainWaitsFor() {
		if v, ok := m.View(id, root); ok {
			out = append(out, v)
		}
	}
	return out
}

func (m *Manager) activeLease() (ha.Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lease == nil {
		return ha.Lease{}, ErrNotActive
	}
	if m.draining {
		return ha.Lease{}, ErrStopping
	}
	return *m.lease, nil
}

// NewID returns a fresh transfer id. Clients make one and send it with the
// request, so that a submission retried after a failover is not doubled.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Submit checks a request, expands its sources, and commits it. The transfer
// is accepted once the create entry has committed.
func (m *Manager) Submit(ctx context.Context, id string, req Request) (*Transfer, error) {
	return m.SubmitAs(ctx, "", id, req)
}

// SubmitAs is Submit for the caller owner (recorded as the transfer's
// Owner): a retry with the id of another owner's transfer is refused.
func (m *Manager) SubmitAs(ctx context.Context, owner, id string, req Request) (*Transfer, error) {
	lease, err := m.activeLease()
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = NewID()
	}
	if req, err = normalize(req); err != nil {
		return nil, err
	}
	if req, err = m.checkRemote(req); err != nil {
		return nil, err
	}
	if t, ok := m.state.Shared(id); ok {
		same := replicated.SameRequest(t.Request, req) && t.Owner == owner
		switch {
		case !same:
			return nil, &RequestError{Reason: fmt.Sprintf("transfer id %s is already used by another request", id)}
		case !t.Open || Terminal(t.State):
			return t, nil
		}
		// A creation in several entries that was interrupted: this retry
		// creates it anew (replicated/open.go).
	}
	// A create prunes nothing (count -1, age 0, which every build applies
	// alike): the history is pruned by KindPrune entries (pruneHistory),
	// which keep pending work and recent ids.
	cr := m.newCreation(ctx, lease, replicated.CreateCmd{
		Transfer:     Transfer{ID: id, Request: req, Owner: owner, Created: time.Now().UTC()},
		MaxQueued:    m.limits.MaxQueuedTransfers,
		HistoryCount: -1,
		HistoryAge:   0,
	})
	err = m.plan(ctx, req, cr)
	var kind string
	var res any
	if err == nil {
		kind, res, err = cr.finish()
	}
	cr.end(err)
	if errors.Is(err, errExisting) {
		return cr.existing, nil
	}
	if err != nil {
		if errors.Is(err, ErrQueueFull) || errors.Is(err, ErrAlreadyExists) {
			return nil, &RequestError{Reason: err.Error()}
		}
		return nil, err
	}
	created, ok := res.(*Transfer)
	if !ok {
		return nil, fmt.Errorf("create transfer %s: unexpected result %T", id, res)
	}
	m.log.Info().Str("transfer", id).Str("kind", kind).Int("files", created.FileCount()).Int64("bytes", created.Bytes).Msg("transfer accepted")
	m.poke()
	return created, nil
}

// recordFiles commits file events: in compact form (KindFilesV2) when every
// instance reads its format and the events allow it, else as KindFiles.
func (m *Manager) recordFiles(epoch uint64, c replicated.FilesCmd) error {
	_, _, err := m.applyNewest(epoch, KindFilesV2, func() (any, bool) { return replicated.CompactFiles(c) }, KindFiles, c)
	if err == nil {
		m.observeFiles(c)
	}
	return err
}

// create commits c: in compact form (KindCreateV2) when every instance
// reads its format, else as KindCreate. It returns the kind committed. A
// transfer with directories, or with a name that is not plain UTF-8,
// needs KindCreateV3 (format 4): until every instance reads it, names that
// earlier builds would misread are refused, and directories are left out
// (only the empty ones are then missing, as with those builds).
func (m *Manager) create(lease ha.Lease, c replicated.CreateCmd) (string, any, error) {
	if len(c.Transfer.Dirs) > 0 || !replicated.PlainNames(&c.Transfer) {
		format, _ := replog.KindFormat(KindCreateV3)
		if m.raft.FormatAgreed(format) {
			v, ok := replicated.CompactCreateV3(c)
			if !ok {
				return "", nil, fmt.Errorf("create transfer %s: its files and directories cannot be written as %s", c.Transfer.ID, KindCreateV3)
			}
			res, err := m.raft.Apply(KindCreateV3, lease.Epoch, v, applyTimeout)
			if !errors.Is(err, ha.ErrFormatNotAgreed) {
				return KindCreateV3, res, err
			}
		}
		if !replicated.PlainNames(&c.Transfer) {
			return "", nil, &RequestError{Reason: fmt.Sprintf("file names that are not UTF-8 need every instance to read command format %d (upgrade the instances that do not): %s", format, replicated.ReasonName(replicated.FirstOddName(&c.Transfer)))}
		}
		m.log.Warn().Str("transfer", c.Transfer.ID).Int("directories", len(c.Transfer.Dirs)).Int("format", format).
			Msg("directories not recorded: not every instance reads the command format that carries them; empty ones will be missing")
		c.Transfer.Dirs = nil
	}
	return m.applyNewest(lease.Epoch, KindCreateV2, func() (any, bool) { return replicated.CompactCreate(c) }, KindCreate, c)
}

// applyNewest commits an entry as newKind once every instance reads its
// format (replicated/kinds.go) and compact gives the entry in that kind;
// else as kind, with data, which every build reads. It returns the kind committed.
func (m *Manager) applyNewest(epoch uint64, newKind string, compact func() (any, bool), kind string, data any) (string, any, error) {
	if format, _ := replog.KindFormat(newKind); m.raft.FormatAgreed(format) {
		if v, ok := compact(); ok {
			res, err := m.raft.Apply(newKind, epoch, v, applyTimeout)
			// An instance of an older build may have joined since
			// FormatAgreed: nothing was proposed, write the old kind.
			if !errors.Is(err, ha.ErrFormatNotAgreed) {
				return newKind, res, err
			}
		}
	}
	res, err := m.raft.Apply(kind, epoch, data, applyTimeout)
	return kind, res, err
}

// MinBandwidthLimit is the least bandwidth limit a transfer may ask for, in
// bytes per second: below it even a small file takes days (16 MiB at 1
// byte/s: 194 days), which is a typo rather than a wish.
const MinBandwidthLimit = 1024

// normalize checks a request's options and fills in their defaults, so
// that a request and its retry compare equal however they were written.
func normalize(req Request) (Request, error) {
	bad := func(format string, args ...any) error { return &RequestError{Reason: fmt.Sprintf(format, args...)} }
	if len(req.Sources) == 0 {
		return req, bad("no source given")
	}
	if req.Destination == "" {
		return req, bad("no destination given")
	}
	switch req.Overwrite {
	case "":
		req.Overwrite = OverwriteError
	case OverwriteError, OverwriteAlways:
	default:
		return req, bad("overwrite policy %q is not %q or %q", req.Overwrite, OverwriteError, OverwriteAlways)
	}
	switch req.Disposition {
	case "":
		req.Disposition = DispositionLeave
	case DispositionLeave, DispositionDelete:
	default:
		return req, bad("source disposition %q is not %q or %q", req.Disposition, DispositionLeave, DispositionDelete)
	}
	if req.Priority < 0 || req.Priority > 9 {
		return req, bad("priority %d is not between 0 and 9", req.Priority)
	}
	if req.BandwidthLimit < 0 {
		return req, bad("bandwidth limit must not be negative")
	}
	if req.BandwidthLimit > 0 && req.BandwidthLimit < MinBandwidthLimit {
		return req, bad("bandwidth limit %d bytes/s is below the least, 1K (1024 bytes/s); 0 means unlimited", req.BandwidthLimit)
	}
	return req, nil
}

// plan lists the directories and files of a normalized request, each with
// its destination, and hands each to cr as it is found (cr commits them
// part by part: creation), so that the plan of a large request is never
// held whole. A destination that names an existing directory, or ends
// with "/", or any request of more than one file, receives the files under
// it: a plain file by its name, a directory given with --recursive as a
// directory of its own name (its contents only when the source ends with
// "/"), wildcard matches by their names. Each file is checked as it is
// found; a refusal met after parts were committed ends the creation, which
// discards them (creation.end).
func (m *Manager) plan(ctx context.Context, req Request, cr *creation) error {
	bad := func(format string, args ...any) error { return &RequestError{Reason: fmt.Sprintf(format, args...)} }
	remote := req.DestinationAgent != ""
	dest := strings.TrimSuffix(req.Destination, "/") // another agent's path (checkRemote)
	if dest == "" {
		dest = "/"
	}
	_, sftpDest, toSFTP, err := endpoint.ParseSFTP(req.Destination)
	switch {
	case err != nil:
		return bad("destination %v", err)
	case toSFTP && remote:
		return bad("destination %s: an sftp:// destination is not sent through another agent (leave out --dest-agent)", req.Destination)
	case toSFTP:
		if _, err := m.partner(sftpDest); err != nil {
			return bad("destination %v", err)
		}
		dest = sftpDest
	case !remote:
		if dest, err = m.sb.Resolve(req.Destination); err != nil {
			return bad("destination %v", err)
		}
	}
	destIsDir := strings.HasSuffix(req.Destination, "/")
	if info, err := m.ep.Stat(context.Background(), dest); err == nil && info.IsDir && !remote {
		destIsDir = true
	}
	// One plain source file and a destination that is not an existing
	// directory (nor written as one): the destination is the file's name.
	// A plain source without --recursive names one regular file or is
	// refused (sandbox.Expand), so this is known before the walk.
	single := len(req.Sources) == 1 && !req.Recursive && !hasWildcard(req.Sources[0]) && !destIsDir
	// Only the sources of a request of several can write two files, or a
	// file and a directory, to one destination, or share a directory:
	// within one source the paths relative to it are distinct. Only then
	// are the destinations kept (by destination, the source), for the
	// whole request.
	var seen, seenDir map[string]string
	if len(req.Sources) > 1 {
		seen, seenDir = map[string]string{}, map[string]string{}
	}
	// prefixes[i] is the directory level source i adds under the
	// destination: a directory's name, unless written with a final "/".
	prefixes := make([]string, len(req.Sources))
	for i, s := range req.Sources {
		if _, p, ok, _ := endpoint.ParseSFTP(s); ok {
			if remote {
				return bad("source %s: a file on an SFTP partner is not sent to another agent (copy it here first)", s)
			}
			if req.Recursive && !hasWildcard(s) && !strings.HasSuffix(s, "/") {
				if info, err := m.ep.Stat(ctx, p); err == nil && info.IsDir {
					prefixes[i] = path.Base(p)
				}
			}
			continue
		}
		if req.Recursive && !hasWildcard(s) && !strings.HasSuffix(s, "/") {
			if p, err := m.sb.Resolve(s); err == nil {
				if info, err := m.ep.Stat(context.Background(), p); err == nil && info.IsDir {
					prefixes[i] = filepath.Base(p)
				}
			}
		}
	}
	// Each destination directory resolved once; another agent resolves
	// its own.
	var resolver *sandbox.Resolver
	if !remote && !toSFTP {
		resolver = m.sb.NewResolver()
	}
	// stop is an error of the plan's own (a refusal, an entry that could
	// not be committed), which ends a walk and is returned as it is.
	var stop error
	// The directories first, as the copy makes them. They are streamed as
	// the files are; only a request of several sources keeps them
	// (seenDir), to merge one that two sources share (as rsync does) and
	// to refuse a file written where a directory goes.
	if req.Recursive {
		for i, s := range req.Sources {
			if _, p, ok, err := endpoint.ParseSFTP(s); ok {
				if err != nil {
					return bad("source %v", err)
				}
				if err := m.planSFTP(ctx, req, true, p, prefixes[i], dest, false, resolver, seen, seenDir, cr, nil, &stop); err != nil {
					return err
				}
				continue
			}
			err := treeDirs(m.sb, resolver, s, prefixes[i], dest, func(d Dir) error {
				if seenDir != nil {
					if _, dup := seenDir[d.Destination]; dup {
						return nil
					}
					seenDir[d.Destination] = d.Source
				}
				stop = cr.addDir(d)
				return stop
			})
			switch {
			case stop != nil:
				return stop
			case err != nil:
				return bad("source %v", err)
			}
		}
	}
	files := 0
	for i, s := range req.Sources {
		if _, p, ok, err := endpoint.ParseSFTP(s); ok {
			if err != nil {
				return bad("source %v", err)
			}
			if err := m.planSFTP(ctx, req, false, p, prefixes[i], dest, single, resolver, seen, seenDir, cr, &files, &stop); err != nil {
				return err
			}
			continue
		}
		// Within the request's context (a client that has gone away
		// stops the walk) and maxFilesPerTransfer, counted over all the
		// sources.
		b := sandbox.Bounds{Ctx: ctx}
		if limit := m.limits.MaxFilesPerTransfer; limit > 0 {
			b.MaxFiles = max(limit-files, -1) // -1: not one more
		}
		err := m.sb.WalkWithin(b, s, req.Recursive, func(f sandbox.File) error {
			files++
			stop = m.planFile(f, dest, prefixes[i], single, resolver, seen, seenDir, cr)
			return stop
		})
		switch {
		case stop != nil:
			return stop
		case errors.Is(err, sandbox.ErrTooManyFiles):
			return bad("the request names more than %d files (maxFilesPerTransfer=%d): split it, or raise maxFilesPerTransfer", m.limits.MaxFilesPerTransfer, m.limits.MaxFilesPerTransfer)
		case ctx.Err() != nil:
			return fmt.Errorf("plan transfer: %w", ctx.Err())
		case err != nil:
			return bad("source %v", err)
		}
	}
	return nil
}

// planFile checks the source file f, found under dest joined with prefix
// (or written to dest itself when single), and adds it to cr. seen and
// seenDir hold the destinations planned so far, when the request has
// several sources.
func (m *Manager) planFile(f sandbox.File, dest, prefix string, single bool, resolver *sandbox.Resolver, seen, seenDir map[string]string, cr *creation) error {
	bad := func(format string, args ...any) error { return &RequestError{Reason: fmt.Sprintf(format, args...)} }
	target := dest
	if !single {
		target = filepath.Join(dest, prefix, filepath.FromSlash(f.Rel))
		if resolver != nil {
			if _, err := resolver.Resolve(target); err != nil {
				return bad("destination %v", err)
			}
		}
	}
	if seen != nil {
		if other, dup := seen[target]; dup {
			return bad("sources %s and %s would both be written to %s", other, f.Path, target)
		}
		seen[target] = f.Path
	}
	if target == f.Path {
		return bad("source %s is its own destination", f.Path)
	}
	if dir, dup := seenDir[target]; dup {
		return bad("source %s and directory %s would both be written to %s", f.Path, dir, target)
	}
	return cr.addFile(File{Source: f.Path, Destination: target, Bytes: f.Size})
}

// checkNoDestination refuses a request, before it is accepted, whose
// destination file is already there while the request may not overwrite:
// the copy would fail it anyway, after the user was told it was accepted.
// (The copy checks again: something may appear meanwhile.) It is given a
// part of the plan at a time (creation.check); a destination directory
// that does not exist is looked at once for the part's files.
func (m *Manager) checkNoDestination(files []File) error {
	dirExists := map[string]bool{}
	for _, f := range files {
		dir := filepath.Dir(f.Destination)
		exists, seen := dirExists[dir]
		if !seen {
			_, err := m.ep.Stat(context.Background(), dir)
			exists = err == nil
			dirExists[dir] = exists
		}
		if !exists {
			continue
		}
		if _, err := m.ep.Stat(context.Background(), f.Destination); err == nil {
			shown := f.Destination
			if endpoint.IsSFTP(shown) {
				shown = endpoint.UserSFTP(shown)
			} else if rel, err := filepath.Rel(m.sb.Root(), shown); err == nil && !strings.HasPrefix(rel, "..") {
				shown = filepath.ToSlash(rel)
			}
			return &RequestError{Reason: fmt.Sprintf("destination exists: %s (use --overwrite to replace it)", shown)}
		}
	}
	return nil
}

func hasWildcard(p string) bool { return strings.ContainsAny(filepath.Base(p), "*?[") }

// Cancel cancels a transfer that has not ended; its .part files are removed.
func (m *Manager) Cancel(ctx context.Context, id string) (*Transfer, error) {
	// A stopping active still cancels: the user asked for less work.
	m.mu.Lock()
	if m.lease == nil {
		m.mu.Unlock()
		return nil, ErrNotActive
	}
	lease := *m.lease
	m.mu.Unlock()
	t, ok := m.state.Shared(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if t.State == StateCancelled {
		// Already what was asked: a retried cancel (its first answer lost,
		// or slower than the client's patience) is answered as the first.
		return t, nil
	}
	if Terminal(t.State) {
		return nil, &RequestError{Reason: fmt.Sprintf("transfer %s has already ended (%s)", id, t.State)}
	}
	// Stop the run first, and record the cancel after: nothing is renamed
	// into place once the transfer is cancelled (a run stopped midway
	// records what it has renamed). The scheduler leaves the transfer
	// alone meanwhile; if the cancel cannot be recorded, it runs again.
	m.mu.Lock()
	m.cancelling[id]++
	j := m.jobs[id]
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.cancelling[id]--; m.cancelling[id] <= 0 {
			delete(m.cancelling, id)
		}
		m.mu.Unlock()
		m.poke()
	}()
	if j != nil {
		j.cancel()
		<-j.done
	}
	if _, err := m.raft.Apply(KindCancel, lease.Epoch, replicated.ReasonCmd{ID: id, Time: time.Now().UTC(), Reason: "cancelled by a user"}, applyTimeout); err != nil {
		if errors.Is(err, ErrEnded) {
			// It ended while its run was stopped.
			return nil, &RequestError{Reason: fmt.Sprintf("transfer %s has already ended", id)}
		}
		return nil, err
	}
	// The job has stopped; clean up what it left (removing a .part that is
	// not there is no error), under the lease the cancel was recorded in.
	m.removeParts(endpoint.WithEpoch(ctx, lease.Epoch), id)
	t, _ = m.state.Shared(id)
	m.log.Info().Str("transfer", id).Msg("transfer cancelled")
	return t, nil
}

// Get returns a transfer, its files shared with the state rather than
// copied (read them with FileAt): a view with the active's live progress is
// View's.
func (m *Manager) Get(id string) (*Transfer, bool) {
	return m.state.Shared(id)
}

// View returns the client view of one transfer without its files, with
// live progress, without copying the transfer first.
func (m *Manager) View(id, root string) (View, bool) {
	return m.state.ViewPage(id, root, nil, false, m.liveOf(id))
}

// What a view lists of a transfer's files (ViewPage).
const (
	FilesAll   = "all"   // always
	FilesNone  = "none"  // never (Files nil)
	FilesEnded = "ended" // once the transfer has ended
)

// WaitView returns the view of transfer id, without its files, once it
// has ended, or once wait has passed, or ctx is done, whichever comes
// first: a client following a transfer learns of its end at once, not at
// its next poll. Its files are ViewPage's to render, once, after the wait.
func (m *Manager) WaitView(ctx context.Context, id, root string, wait time.Duration) (View, bool) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		changed := m.state.Changed()
		v, ok := m.View(id, root)
		if !ok || wait <= 0 || Terminal(v.State) {
			return v, ok
		}
		select {
		case <-changed:
		case <-timeout:
			wait = 0
		case <-ctx.Done():
			wait = 0
		}
	}
}

func (m *Manager) liveOf(id string) func(*Transfer) (int, int64) {
	m.mu.Lock()
	j := m.jobs[id]
	m.mu.Unlock()
	if j == nil {
		return nil
	}
	return func(*Transfer) (int, int64) {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.file, j.written
	}
}
