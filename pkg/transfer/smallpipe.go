package transfer

// The small-file pipeline: groups of small files copied without a sync
// each, then made durable, renamed and recorded together.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/copyloop"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// Small files are copied in groups: each file's data is written without a
// sync of its own, the group's batch (Endpoint.BeginParts) makes it durable
// at once, the renames are made durable with one sync per directory, and
// the group's starts and completions are one log entry each. Per-file syncs
// and entries would cost more than copying such files.
//
// The files of a group are copied by smallWorkers goroutines, and the
// groups form a pipeline (smallPipe): while the run copies the next
// groups, the ones copied are finished in three overlapping stages — made
// durable, renamed, recorded — each on a goroutine of its own. A set is
// renamed only after the one before it and recorded in order, so the
// guarantees hold group by group as they did file by file: a completion is
// committed only after its rename, which comes after the group's sync and
// after the group's start entry has committed; a source is deleted only
// after its completion has committed.
const (
	smallFileMax   = 1 << 20  // bytes: a file this size or less is small
	smallGroupSize = 32 << 20 // bytes in a group
)

// smallGroupMax is how many files a group has at most (a variable for the
// benchmarks). Each group costs two log entries (its starts, then its
// completions with those of the groups finished with it), and each set
// finished a sync of the file system and of the directories: each of them
// a journal commit that every instance's log writes wait behind. Measured
// on 10,000 files of 4 KiB (docs/performance.md): 256 files a group and 4
// queued, 0.74-0.93 s; 1,024 and 2, 0.68-0.70 s; 2,048 and 2,
// 0.63-0.69 s; 4,096 and 1, 0.64-0.66 s. Larger groups also mean more
// files started and not completed when the active dies, which the next
// active resumes one by one.
var smallGroupMax = 2048

// smallWorkers is how many goroutines copy a group's files (a variable
// for the benchmarks).
var smallWorkers = 4

// smallGroupBytes is the most bytes a group of t holds: smallGroupSize,
// or under a bandwidth limit about a second of copying at that rate (at
// least smallGroupFloor), so that a transfer's progress, which counts the
// files completed, moves every second or so.
func (m *Manager) smallGroupBytes(t *Transfer) int64 {
	rate := t.Request.BandwidthLimit
	if agent := m.limits.MaxBandwidth; agent > 0 && (rate <= 0 || agent < rate) {
		rate = agent
	}
	if rate <= 0 {
		return smallGroupSize
	}
	return min(max(rate, smallGroupFloor), smallGroupSize)
}

const smallGroupFloor = 64 << 10

// smallGroup returns the indices of the small, not yet started files from i
// on that form one group of at most maxBytes (none when file i is not one).
func smallGroup(t *Transfer, i int, maxBytes int64) []int {
	var idx []int
	var size int64
	for k := i; k < t.FileCount() && len(idx) < smallGroupMax; k++ {
		f := t.FileAt(k)
		if f.State != StateQueued || f.Started || f.Bytes > smallFileMax || size+f.Bytes > maxBytes && len(idx) > 0 {
			break
		}
		idx = append(idx, k)
		size += f.Bytes
	}
	return idx
}

// copied is a small file copied to its .part, not yet synced.
type copied struct {
	i      int
	digest string
	source checkpoint.Source // of the source as read
}

// smallPipe runs the groups of one transfer's run. The caller copies
// groups (run) and queues them; one goroutine finishes what is queued,
// everything queued at once: one sync, one lease check, the renames and one
// completion entry for all of it. When finishing is slower than copying
// (a sync that has other writers' data to flush, a slow log), groups
// queue up and are finished together, so the copies do not wait for each
// sync; at most smallQueued groups wait.
type smallPipe struct {
	m       *Manager
	ctx     context.Context // the run's
	copyCtx context.Context // the copies': cancelled when a finishing fails
	cancel  context.CancelFunc
	lease   ha.Lease
	// t is the transfer, its files shared with the state; the run
	// replaces it with a fresh share as it goes (runFiles), so that the
	// segments the state copied since the last one are let go.
	t        atomic.Pointer[Transfer]
	limiters []*copyloop.Limiter

	mu       sync.Mutex
	cond     *sync.Cond // signals queue, closed, err and the finisher's end
	queue    []*copiedGroup
	closed   bool  // drain: the finisher ends once the queue is empty
	running  bool  // a finisher goroutine runs
	err      error // the first finishing that failed: the run ends
	finished chan struct{}
	// deleted holds sourceDeleted events not yet recorded: they go with
	// the next completion entry. Only the finisher touches it while it
	// runs, the caller once it has drained the pipe.
	deleted []FileEvent
}

// smallQueued is how many copied groups may wait to be finished (a
// variable for the benchmarks).
var smallQueued = 2

// copiedGroup is a group copied and waiting to be finished.
type copiedGroup struct {
	ok      []copied
	failed  []FileEvent  // permanent failures while copying (.part removed)
	started <-chan error // the commit of the group's start entry
	// parts makes the group's .part files durable: begun before its
	// first write, so that its sync reports every error of those writes.
	parts endpoint.PartBatch
}

// release waits for the group's start entry and closes its batch: a group
// given up (the run ends) stays started, to be resumed file by file.
func (g *copiedGroup) release() {
	<-g.started
	g.parts.Close()
}

func (m *Manager) newSmallPipe(ctx context.Context, lease ha.Lease, t *Transfer, limiters []*copyloop.Limiter) *smallPipe {
	cctx, cancel := context.WithCancel(ctx)
	p := &smallPipe{m: m, ctx: ctx, copyCtx: cctx, cancel: cancel, lease: lease, limiters: limiters}
	p.t.Store(t)
	p.cond = sync.NewCond(&p.mu)
	return p
}

// failure returns the error of a finishing that failed, if any.
func (p *smallPipe) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// push queues a copied group, waiting while the queue is full; it starts
// the finisher if none runs.
func (p *smallPipe) push(g *copiedGroup) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.queue) >= smallQueued && p.err == nil {
		p.cond.Wait()
	}
	if p.err != nil {
		return p.err
	}
	p.queue = append(p.queue, g)
	if !p.running {
		p.running, p.closed = true, false
		p.finished = make(chan struct{})
		go p.finisher()
	}
	p.cond.Broadcast()
	return nil
}

// finisher finishes what is queued until the pipe is drained, in three
// stages that overlap, each on a goroutine of its own: this one makes a
// taken set of groups durable (prepare: the sync, the sources checked
// again, the lease check started); the next renames the set before it into
// place (rename); the last makes those renames durable and records them
// (record). The sync mostly waits for the disk, the renames for the
// directory's lock, the record for the directory sync and the log: together
// they take about the time of the longest.
func (p *smallPipe) finisher() {
	defer close(p.finished)
	renaming := make(chan *preparedSet, 1)
	recording := make(chan *renamedSet, 1)
	recorded := make(chan struct{})
	fail := func(err error) {
		p.mu.Lock()
		if p.err == nil {
			p.err = err
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		p.cancel() // stop the copies: the run ends
	}
	go func() {
		defer close(recording)
		for ps := range renaming {
			if p.failure() != nil {
				_ = ps.waitStarted() // the run ends
				continue
			}
			rs, err := p.rename(ps)
			if err != nil {
				fail(err)
				continue
			}
			recording <- rs
		}
	}()
	go func() {
		defer close(recorded)
		for rs := range recording {
			if err := p.recordSet(rs); err != nil {
				fail(err)
			}
		}
	}()
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.closed {
			p.cond.Wait()
		}
		gs := p.queue
		p.queue = nil
		failedBefore := p.err != nil
		if len(gs) == 0 {
			// Drained: the last set is completed before the pipe
			// says it is idle. (Nothing is pushed while it drains:
			// the run pushes and drains from one goroutine.)
			p.mu.Unlock()
			close(renaming)
			<-recorded
			p.mu.Lock()
			p.running = false
			p.cond.Broadcast()
			p.mu.Unlock()
			return
		}
		p.cond.Broadcast() // room in the queue
		p.mu.Unlock()
		if failedBefore {
			// The run ends: what is queued stays started, with its
			// .part files, and is resumed file by file on the next try.
			for _, g := range gs {
				g.release()
			}
			continue
		}
		renaming <- p.prepare(gs)
	}
}

// drain waits until everything queued has been finished (or given up after
// a failure), and hands the events not yet recorded to batch.
func (p *smallPipe) drain(batch *eventBatch) error {
	p.mu.Lock()
	running, finished := p.running, p.finished
	if running {
		p.closed = true
		p.cond.Broadcast()
	}
	p.mu.Unlock()
	if running {
		<-finished
	}
	for _, ev := range p.deleted {
		batch.add(ev)
	}
	p.deleted = nil
	return p.failure()
}

// stop waits for what is in flight and releases the pipe.
func (p *smallPipe) stop() {
	_ = p.drain(&eventBatch{})
	p.cancel()
}

// run copies a group and queues it to be finished. Permanent failures are
// recorded per file; an error is transient (or the context's): the files
// that were started are resumed one by one on the next try.
func (p *smallPipe) run(group []int) error {
	m, t := p.m, p.t.Load()
	if err := p.failure(); err != nil {
		return err
	}
	// Started is recorded before any rename (the finishing waits for it):
	// a new active must know that a destination found in place may be this
	// transfer's own. The copies need not wait: a .part of a file not yet
	// started is truncated by whoever copies it next, and removed with the
	// others if the transfer is cancelled.
	parts, err := m.ep.BeginParts(p.copyCtx)
	if err != nil {
		return fmt.Errorf("begin a batch of files: %w", err)
	}
	starts := make([]FileEvent, len(group))
	for k, i := range group {
		starts[k] = FileEvent{Index: i, Kind: EventStart}
	}
	started := make(chan error, 1)
	go func() { started <- p.record(starts) }()

	ok, failed, err := m.copyGroup(p.copyCtx, t, group, p.limiters)
	if err != nil {
		parts.Close()
		serr := <-started
		if len(failed) > 0 && serr == nil {
			if ferr := p.record(failed); ferr != nil && p.ctx.Err() == nil {
				m.log.Warn().Err(ferr).Str("transfer", t.ID).Msg("record failed files")
			}
		}
		if ferr := p.failure(); ferr != nil {
			return ferr // the finishing failed first, and stopped the copies
		}
		if p.ctx.Err() != nil {
			return p.ctx.Err()
		}
		return err
	}
	g := &copiedGroup{ok: ok, failed: failed, started: started, parts: parts}
	if err := p.push(g); err != nil {
		g.release()
		return err
	}
	return nil
}

// record commits file events in one entry.
func (p *smallPipe) record(evs []FileEvent) error {
	if len(evs) == 0 {
		return nil
	}
	err := p.m.recordFiles(p.lease.Epoch, replicated.FilesCmd{ID: p.t.Load().ID, Time: time.Now().UTC(), Events: evs})
	if err != nil {
		return fmt.Errorf("record progress: %w", err)
	}
	return nil
}

// preparedSet is a set of copied groups made durable, to be renamed into
// place (smallPipe.rename) and recorded (smallPipe.recordSet).
type preparedSet struct {
	gs  []*copiedGroup
	ok  []copied    // synced, their sources unchanged
	evs []FileEvent // permanent failures, to be recorded
	// err: a transient error while preparing; nothing is renamed, evs
	// are recorded and the run ends with it.
	err error
	// lease: the lease check, started while syncing; rename waits for it
	// before the first rename.
	lease <-chan error
}

// waitStarted waits for the commits of the set's start entries and
// returns the first that failed. Every way out of finishing a set waits
// for them: a rename only after its file's start committed, and an
// abandoned set's files stay started, to be resumed one by one.
func (ps *preparedSet) waitStarted() error {
	var first error
	for _, g := range ps.gs {
		if err := <-g.started; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// prepare makes copied groups' .part files durable and, when the sources
// are to be deleted, checks by name that they are still the files copied;
// the lease check runs meanwhile.
func (p *smallPipe) prepare(gs []*copiedGroup) *preparedSet {
	m, t, ctx := p.m, p.t.Load(), p.ctx
	defer func() {
		for _, g := range gs {
			g.parts.Close()
		}
	}()
	ps := &preparedSet{gs: gs}
	for _, g := range gs {
		ps.ok = append(ps.ok, g.ok...)
		ps.evs = append(ps.evs, g.failed...)
	}
	if len(ps.ok) == 0 {
		return ps
	}
	// VerifyLease proves the lease as of when it is called, by a round of
	// heartbeats: started now, before the sync, its proof still comes
	// before every rename of the set, which waits for it.
	lease := make(chan error, 1)
	ps.lease = lease
	go func() { lease <- m.raft.VerifyLease(p.lease.Epoch) }()

	paths := make([]string, len(ps.ok))
	for k, c := range ps.ok {
		paths[k] = t.FileAt(c.i).Destination
	}
	// The first group's batch was begun before any of the groups' writes:
	// its sync reports the errors of them all.
	if err := gs[0].parts.Sync(ctx, paths); err != nil {
		ps.ok, ps.err = nil, fmt.Errorf("sync destinations: %w", err)
		return ps
	}
	// Each source was checked on its open file once it was read
	// (copyWhole). Sources to be deleted are checked again by name: a
	// file put in a source's place since must not be deleted.
	if t.Request.Disposition != DispositionDelete {
		return ps
	}
	kept := ps.ok[:0]
	for _, c := range ps.ok {
		f := t.FileAt(c.i)
		now, err := m.ep.Stat(ctx, f.Source)
		switch {
		case err != nil && endpoint.Permanent(err):
			ps.evs = append(ps.evs, m.failSmall(ctx, t, c.i, "stat source: "+err.Error()))
		case err != nil:
			ps.ok, ps.err = nil, fmt.Errorf("stat source: %w", err)
			return ps
		case !now.Source.Same(c.source):
			ps.evs = append(ps.evs, m.failSmall(ctx, t, c.i, fmt.Sprintf("source changed during the copy: was %s, now %s", c.source, now.Source)))
		default:
			kept = append(kept, c)
		}
	}
	ps.ok = kept
	return ps
}

// renamedSet is a set whose files were renamed into place, the renames
// not yet durable (smallPipe.recordSet).
type renamedSet struct {
	evs     []FileEvent // completions and failures, to be recorded
	renamed []string    // destinations renamed into place
	done    []copied    // the files completed
	// err: a transient error while renaming; recordSet records the
	// failures but no completion, and ends the run with it.
	err error
}

// rename renames a prepared set's files into place, once their start
// entries have committed and the lease check has passed. A start entry that
// failed to commit is returned as the error (the run ends; the set's files
// stay started); any other failure comes back in the renamedSet, to be
// recorded with the events gathered before it.
func (p *smallPipe) rename(ps *preparedSet) (*renamedSet, error) {
	m, t, ctx := p.m, p.t.Load(), p.ctx
	if err := ps.waitStarted(); err != nil {
		return nil, err
	}
	rs := &renamedSet{evs: ps.evs, err: ps.err}
	if rs.err != nil || len(ps.ok) == 0 {
		return rs, nil
	}
	// The renames are irreversible: only while this instance holds the lease,
	// and not once the transfer was cancelled (its run is being stopped).
	if err := <-ps.lease; err != nil {
		rs.err = fmt.Errorf("lease check before rename: %w", err)
		return rs, nil
	}
	if m.state.Ended(t.ID) {
		rs.err = fmt.Errorf("transfer %s has ended", t.ID)
		return rs, nil
	}
	paths := make([]string, len(ps.ok))
	for k, c := range ps.ok {
		paths[k] = t.FileAt(c.i).Destination
	}
	errs := m.ep.RenameAll(ctx, paths, t.Request.Overwrite == OverwriteAlways)
	for k, c := range ps.ok {
		err := errs[k]
		switch {
		case err == nil, errors.Is(err, endpoint.ErrAlreadyCommitted):
			rs.evs = append(rs.evs, FileEvent{Index: c.i, Kind: EventDone, SHA256: c.digest, Source: delivered(t, c.source)})
			rs.renamed = append(rs.renamed, paths[k])
			rs.done = append(rs.done, c)
		case errors.Is(err, endpoint.ErrExists):
			rs.evs = append(rs.evs, m.failSmall(ctx, t, c.i, "destination exists: "+paths[k]))
		case endpoint.Permanent(err):
			rs.evs = append(rs.evs, m.failSmall(ctx, t, c.i, "rename into place: "+err.Error()))
		default:
			rs.err = fmt.Errorf("rename into place: %w", err)
		}
	}
	return rs, nil
}

// recordSet makes a renamed set's renames durable and records its
// completions (with its failures, and the sources deleted before), then
// deletes the sources.
func (p *smallPipe) recordSet(rs *renamedSet) error {
	m, t, ctx := p.m, p.t.Load(), p.ctx
	evs := append(p.deleted, rs.evs...)
	p.deleted = nil
	if len(rs.renamed) > 0 {
		// Even once the run is being stopped (a cancel, a stop): the
		// renames are done, and must be recorded as completions before
		// the run ends.
		if err := m.ep.SyncDirs(context.WithoutCancel(ctx), rs.renamed); err != nil {
			// Not durable: no completion is recorded. The files stay
			// started; the next try finds them renamed and finishes them.
			kept := evs[:0]
			for _, ev := range evs {
				if ev.Kind != EventDone {
					kept = append(kept, ev)
				}
			}
			if rerr := p.record(kept); rerr != nil {
				return rerr
			}
			return fmt.Errorf("sync renames: %w", err)
		}
	}
	if err := p.record(evs); err != nil {
		return err
	}
	if rs.err != nil {
		return rs.err
	}
	// Only after the completions have committed.
	if t.Request.Disposition == DispositionDelete {
		for _, c := range rs.done {
			i, f := c.i, t.FileAt(c.i)
			if err := m.ep.RemoveSource(ctx, f.Source, c.source); err != nil {
				if endpoint.Permanent(err) {
					m.log.Warn().Err(err).Str("transfer", t.ID).Str("file", f.Source).Msg("source not deleted after its transfer")
					continue
				}
				// The deletions done are recorded before the run ends.
				if rerr := p.record(p.deleted); rerr != nil {
					return rerr
				}
				p.deleted = nil
				return fmt.Errorf("delete source %s: %w", f.Source, err)
			}
			p.deleted = append(p.deleted, FileEvent{Index: i, Kind: EventSourceDeleted})
		}
	}
	return nil
}

// failSmall removes a failed small file's .part and returns its event.
func (m *Manager) failSmall(ctx context.Context, t *Transfer, i int, reason string) FileEvent {
	f := t.FileAt(i)
	if err := m.ep.Remove(ctx, endpoint.PartName(f.Destination)); err != nil {
		m.log.Warn().Err(err).Str("file", f.Destination).Msg("remove .part of a failed file")
	}
	m.log.Warn().Str("transfer", t.ID).Str("file", f.Source).Str("reason", reason).Msg("file failed")
	return FileEvent{Index: i, Kind: EventFailed, Reason: reason}
}
