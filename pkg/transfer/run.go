package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/copyloop"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
)

// errFileFailed marks a permanent failure already recorded for one file: the
// transfer goes on with its other files.
var errFileFailed = errors.New("file failed")

// runTransfer runs (or resumes) one transfer under lease until it ends, ctx
// is cancelled, or a transient error sends it to recovering; in that case it
// retries with backoff until the recovery timeout.
func (m *Manager) runTransfer(ctx context.Context, lease ha.Lease, id string, j *job) {
	log := m.log.With().Str("transfer", id).Logger()
	if _, err := m.raft.Apply(KindStart, lease.Epoch, startCmd{ID: id, Time: time.Now().UTC()}, applyTimeout); err != nil {
		if ctx.Err() == nil {
			log.Warn().Err(err).Msg("could not start transfer")
			// The job stays registered while it waits, so the scheduler
			// does not start it again at once: without the wait, an
			// active whose raft has stepped down but whose work is not
			// yet cancelled retried in a tight loop.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		return
	}
	backoff := time.Second
	for {
		err := m.runFiles(ctx, lease, id, j)
		if err == nil || ctx.Err() != nil {
			return
		}
		t, ok := m.state.Get(id)
		if !ok || Terminal(t.State) {
			return
		}
		timeout := m.limits.RecoveryTimeout
		if t.Request.RecoveryTimeout != nil {
			timeout = time.Duration(*t.Request.RecoveryTimeout)
		}
		since := time.Now()
		if t.RecoveringSince != nil {
			since = *t.RecoveringSince
		}
		reason := err.Error()
		if timeout >= 0 && time.Since(since) >= timeout {
			log.Warn().Err(err).Dur("recoveryTimeout", timeout).Msg("transfer failed: recovery timeout")
			msg := fmt.Sprintf("recovery timeout (%v) expired: %s", timeout, reason)
			if _, aerr := m.raft.Apply(KindFail, lease.Epoch, reasonCmd{ID: id, Time: time.Now().UTC(), Reason: msg}, applyTimeout); aerr != nil {
				log.Warn().Err(aerr).Msg("record failure")
			}
			return
		}
		log.Warn().Err(err).Msg("transfer recovering: transient error, retrying")
		if t.State != StateRecovering {
			if _, aerr := m.raft.Apply(KindRecovering, lease.Epoch, reasonCmd{ID: id, Time: time.Now().UTC(), Reason: reason}, applyTimeout); aerr != nil {
				log.Warn().Err(aerr).Msg("record recovering")
				return
			}
		}
		wait := time.Duration(float64(backoff) * (0.75 + 0.5*rand.Float64()))
		if timeout >= 0 {
			if left := timeout - time.Since(since); left < wait {
				wait = max(left, 0)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// sourcesToDelete reports whether an ended transfer still has sources to
// delete: an active that recorded the last completion may have died before
// deleting the source.
func sourcesToDelete(t *Transfer) bool {
	if t.Request.Disposition != DispositionDelete {
		return false
	}
	if t.packed != nil {
		return t.packed.sourcesToDelete()
	}
	for _, f := range t.Files {
		if f.State == StateCompleted && !f.SourceDeleted {
			return true
		}
	}
	return false
}

// finishSources deletes the sources an ended transfer still has to delete.
func (m *Manager) finishSources(ctx context.Context, lease ha.Lease, id string, j *job) {
	t, ok := m.state.Get(id)
	if !ok {
		return
	}
	batch := &eventBatch{m: m, id: id, epoch: lease.Epoch}
	for i, f := range t.Files {
		if f.State == StateCompleted && !f.SourceDeleted {
			if err := m.deleteSource(ctx, batch, i, f); err != nil {
				m.log.Warn().Err(err).Str("transfer", id).Msg("delete sources of an ended transfer")
				return
			}
		}
	}
	if err := batch.flush(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn().Err(err).Str("transfer", id).Msg("record deleted sources")
		return
	}
	if t, ok := m.state.Get(id); ok && sourcesToDelete(t) && ctx.Err() == nil {
		m.mu.Lock()
		m.noCleanup[id] = true // what is left could not be deleted: logged above
		m.mu.Unlock()
	}
}

// runFiles copies every file of the transfer that has not ended, and
// applies the source disposition of completed ones. A returned error is
// transient.
func (m *Manager) runFiles(ctx context.Context, lease ha.Lease, id string, j *job) error {
	if err := m.prepare(ctx, lease, id); err != nil { // names and directories (dirs.go)
		return err
	}
	t, ok := m.state.Get(id)
	if !ok {
		return nil
	}
	batch := &eventBatch{m: m, id: id, epoch: lease.Epoch}
	limiters := []*copyloop.Limiter{m.agent}
	if t.Request.BandwidthLimit > 0 {
		limiters = append(limiters, copyloop.NewLimiter(t.Request.BandwidthLimit))
	}
	p := m.newSmallPipe(ctx, lease, t, limiters)
	defer p.stop() // normally done already: waits for what is in flight
	groupBytes := m.smallGroupBytes(t)
	for i := 0; i < len(t.Files); i++ {
		f := t.Files[i]
		if ctx.Err() != nil {
			if err := p.drain(batch); err != nil {
				return err
			}
			return ctx.Err()
		}
		if group := smallGroup(t, i, groupBytes); len(group) > 1 {
			if err := p.run(group); err != nil {
				_ = p.drain(batch) // the groups queued before are finished
				if ferr := batch.flush(ctx); ferr != nil {
					return ferr
				}
				return err
			}
			i += len(group) - 1
			continue
		}
		// Files one by one: after the groups before them have ended.
		if err := p.drain(batch); err != nil {
			return err
		}
		if f.State == StateCompleted {
			if t.Request.Disposition == DispositionDelete && !f.SourceDeleted {
				if err := m.deleteSource(ctx, batch, i, f); err != nil {
					return err
				}
			}
			continue
		}
		if Terminal(f.State) {
			continue
		}
		j.mu.Lock()
		j.file, j.written = i, f.Checkpoint.Offset
		j.mu.Unlock()
		err := m.copyFile(ctx, lease, t, i, j, batch, limiters)
		switch {
		case err == nil:
			if t.Request.Disposition == DispositionDelete {
				// Only after the completion has committed.
				if err := batch.flush(ctx); err != nil {
					return err
				}
				if err := m.deleteSource(ctx, batch, i, f); err != nil {
					return err
				}
			}
		case errors.Is(err, errFileFailed):
		default:
			if ferr := batch.flush(ctx); ferr != nil {
				return ferr
			}
			return err
		}
	}
	if err := p.drain(batch); err != nil {
		return err
	}
	return batch.flush(ctx)
}

func (m *Manager) deleteSource(ctx context.Context, batch *eventBatch, i int, f File) error {
	if err := m.ep.Remove(ctx, f.Source); err != nil && !errors.Is(err, fs.ErrNotExist) {
		if endpoint.Permanent(err) {
			m.log.Warn().Err(err).Str("file", f.Source).Msg("could not delete the source after its transfer")
			return nil
		}
		return fmt.Errorf("delete source %s: %w", f.Source, err)
	}
	batch.add(FileEvent{Index: i, Kind: EventSourceDeleted})
	return nil
}

// copyFile copies file i of t, resuming from its checkpoint. A permanent
// failure is recorded for the file and returned as errFileFailed.
func (m *Manager) copyFile(ctx context.Context, lease ha.Lease, t *Transfer, i int, j *job, batch *eventBatch, limiters []*copyloop.Limiter) error {
	f := t.Files[i]
	fail := func(reason string) error {
		// A failed file leaves no partial data behind.
		if err := m.ep.Remove(ctx, endpoint.PartName(f.Destination)); err != nil {
			m.log.Warn().Err(err).Str("file", f.Destination).Msg("remove .part of a failed file")
		}
		batch.add(FileEvent{Index: i, Kind: EventFailed, Reason: reason})
		m.log.Warn().Str("transfer", t.ID).Str("file", f.Source).Str("reason", reason).Msg("file failed")
		return errFileFailed
	}
	classify := func(what string, err error) error {
		if endpoint.Permanent(err) {
			return fail(fmt.Sprintf("%s: %v", what, err))
		}
		return fmt.Errorf("%s: %w", what, err)
	}

	part := endpoint.PartName(f.Destination)
	partInfo, partErr := m.ep.Stat(ctx, part)
	partExists := partErr == nil

	// A completion that was renamed into place but not recorded before a
	// failover: finish the hash over the destination's remaining bytes and
	// record it. Under "overwrite" the name may hold the old file, so the
	// copy starts again. Under "error" it may hold a file that was there
	// before, too: a rename into place refused because the destination
	// exists (small files are not checked before), then a failover before
	// the failure was recorded. So the digest must also be the source's:
	// only then are these the bytes this transfer delivered.
	if f.Started && !partExists && t.Request.Overwrite == OverwriteError {
		if info, err := m.ep.Stat(ctx, f.Destination); err == nil && info.Size == f.Bytes && f.Checkpoint.Offset <= f.Bytes {
			sum, err := m.hashFrom(ctx, f.Destination, f.Checkpoint)
			if err != nil {
				return classify("finish replayed completion", err)
			}
			want, err := m.hashFrom(ctx, f.Source, checkpoint.Checkpoint{})
			if err != nil {
				return classify("confirm replayed completion against the source", err)
			}
			if sum != want {
				return fail("destination exists: " + f.Destination + " (and does not hold the source's bytes)")
			}
			// The instance that renamed it may have died before its
			// directory sync: the rename is made durable before the
			// completion is recorded.
			if err := m.ep.SyncDirs(ctx, []string{f.Destination}); err != nil {
				return classify("sync the replayed rename", err)
			}
			batch.add(FileEvent{Index: i, Kind: EventDone, SHA256: sum})
			return batch.flush(ctx)
		}
	}

	src, err := m.ep.OpenSource(ctx, f.Source)
	if err != nil {
		return classify("open source", err)
	}
	defer src.Close()
	info := src.Info()
	from := f.Checkpoint
	if from.Offset > 0 && (!partExists || partInfo.Size < from.Offset) {
		// The .part vanished or lost checkpointed bytes: start again.
		batch.add(FileEvent{Index: i, Kind: EventStart, Resent: from.Offset, Restart: true})
		from = checkpoint.Checkpoint{}
		partExists, partInfo.Size = false, 0
	}
	if from.Offset > 0 && !from.Source.Same(info.Source) {
		return fail(fmt.Sprintf("source changed: was %s, now %s", from.Source, info.Source))
	}
	if from.Offset == 0 && t.Request.Overwrite == OverwriteError {
		if exists, err := m.ep.Exists(ctx, f.Destination); err != nil {
			return classify("check destination", err)
		} else if exists {
			return fail("destination exists: " + f.Destination)
		}
	}
	var resent int64
	if partExists && partInfo.Size > from.Offset {
		resent = partInfo.Size - from.Offset // written before, to be written again
	}
	if !f.Started || resent > 0 || f.State != StateRunning {
		batch.add(FileEvent{Index: i, Kind: EventStart, Resent: resent})
	}
	if err := batch.flush(ctx); err != nil {
		return err
	}
	dst, err := m.ep.OpenPart(ctx, f.Destination, from.Offset)
	if err != nil {
		return classify("open destination", err)
	}
	defer dst.Close()

	digest, err := copyloop.Copy(ctx, copyloop.Params{
		Src:                src,
		Dst:                dst,
		From:               from,
		CheckpointBytes:    m.limits.CheckpointBytes,
		CheckpointInterval: m.limits.CheckpointTime,
		Limiters:           limiters,
		Checkpoint: func(ctx context.Context, offset int64, state []byte) error {
			batch.add(FileEvent{Index: i, Kind: EventCheckpoint, Checkpoint: checkpoint.Checkpoint{
				Offset: offset, Hash: state, Epoch: lease.Epoch, Source: info.Source,
			}})
			return batch.flush(ctx)
		},
		Progress: func(offset int64) {
			j.mu.Lock()
			j.written = offset
			j.mu.Unlock()
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, checkpoint.ErrSourceChanged) {
			return fail("source changed: " + err.Error())
		}
		return classify("copy", err)
	}
	if err := dst.Sync(); err != nil {
		return classify("sync destination", err)
	}
	if err := dst.Close(); err != nil {
		return classify("close destination", err)
	}
	// The source must not have changed under the copy.
	now, err := m.ep.Stat(ctx, f.Source)
	if err != nil {
		return classify("stat source", err)
	}
	if !now.Source.Same(info.Source) {
		return fail(fmt.Sprintf("source changed during the copy: was %s, now %s", info.Source, now.Source))
	}
	// Irreversible step: only while this instance still holds the lease.
	if err := m.raft.VerifyLease(lease.Epoch); err != nil {
		return fmt.Errorf("lease check before rename: %w", err)
	}
	err = m.ep.Commit(ctx, f.Destination, t.Request.Overwrite == OverwriteAlways)
	switch {
	case errors.Is(err, endpoint.ErrAlreadyCommitted):
	case errors.Is(err, endpoint.ErrExists):
		return fail("destination exists: " + f.Destination)
	case err != nil:
		return classify("rename into place", err)
	}
	batch.add(FileEvent{Index: i, Kind: EventDone, SHA256: hex.EncodeToString(digest)})
	if f.Bytes >= m.limits.CheckpointBytes {
		return batch.flush(ctx) // big files: record at once
	}
	return batch.maybeFlush(ctx)
}

// hashFrom continues a checkpoint's hash over path's bytes from its offset.
func (m *Manager) hashFrom(ctx context.Context, path string, cp checkpoint.Checkpoint) (string, error) {
	h, err := checkpoint.Resume(cp)
	if err != nil {
		return "", err
	}
	sf, err := m.ep.OpenSource(ctx, path)
	if err != nil {
		return "", err
	}
	defer sf.Close()
	r := io.NewSectionReader(sf, cp.Offset, sf.Info().Size-cp.Offset)
	if _, err := io.CopyBuffer(h, r, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// eventBatch gathers file events into few log entries: a small file's start
// and completion need not be an entry each.
type eventBatch struct {
	m      *Manager
	id     string
	epoch  uint64
	events []FileEvent
	since  time.Time
}

const (
	batchMax  = 256
	batchWait = 20 * time.Millisecond
)

func (b *eventBatch) add(ev FileEvent) {
	if len(b.events) == 0 {
		b.since = time.Now()
	}
	b.events = append(b.events, ev)
}

func (b *eventBatch) maybeFlush(ctx context.Context) error {
	if len(b.events) >= batchMax || (len(b.events) > 0 && time.Since(b.since) >= batchWait) {
		return b.flush(ctx)
	}
	return nil
}

func (b *eventBatch) flush(ctx context.Context) error {
	if len(b.events) == 0 {
		return nil
	}
	evs := b.events
	b.events = nil
	err := b.m.recordFiles(b.epoch, filesCmd{ID: b.id, Time: time.Now().UTC(), Events: evs})
	if err != nil {
		return fmt.Errorf("record progress: %w", err)
	}
	return nil
}

// Small files are copied in groups: each file's data is written without a
// sync of its own, one file-system sync makes the group durable, the renames
// are made durable with one sync per directory, and the group's starts and
// completions are one log entry each. Per-file syncs and entries would cost
// more than copying such files.
//
// The files of a group are copied by smallWorkers goroutines, and the
// groups form a pipeline of two stages: while one group is finished (the
// sync, the sources checked again, the lease checked, the renames, the
// completion entry, the sources deleted) on a goroutine of its own, the
// next group is copied. One group at most is being finished, and a group
// is finished only after the one before it, so the guarantees hold group
// by group as they did file by file: a completion is committed only after
// its rename, which comes after the group's sync and after the group's
// start entry has committed; a source is deleted only after its
// completion has committed.
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
	for k := i; k < len(t.Files) && len(idx) < smallGroupMax; k++ {
		f := t.Files[k]
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
	m        *Manager
	ctx      context.Context // the run's
	copyCtx  context.Context // the copies': cancelled when a finishing fails
	cancel   context.CancelFunc
	lease    ha.Lease
	t        *Transfer
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
}

func (m *Manager) newSmallPipe(ctx context.Context, lease ha.Lease, t *Transfer, limiters []*copyloop.Limiter) *smallPipe {
	cctx, cancel := context.WithCancel(ctx)
	p := &smallPipe{m: m, ctx: ctx, copyCtx: cctx, cancel: cancel, lease: lease, t: t, limiters: limiters}
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
				<-g.started
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
	m, t := p.m, p.t
	if err := p.failure(); err != nil {
		return err
	}
	// Started is recorded before any rename (the finishing waits for it):
	// a new active must know that a destination found in place may be this
	// transfer's own. The copies need not wait: a .part of a file not yet
	// started is truncated by whoever copies it next, and removed with the
	// others if the transfer is cancelled.
	starts := make([]FileEvent, len(group))
	for k, i := range group {
		starts[k] = FileEvent{Index: i, Kind: EventStart}
	}
	started := make(chan error, 1)
	go func() { started <- p.record(starts) }()

	ok, failed, err := m.copyGroup(p.copyCtx, t, group, p.limiters)
	if err != nil {
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
	return p.push(&copiedGroup{ok: ok, failed: failed, started: started})
}

// record commits file events in one entry.
func (p *smallPipe) record(evs []FileEvent) error {
	if len(evs) == 0 {
		return nil
	}
	err := p.m.recordFiles(p.lease.Epoch, filesCmd{ID: p.t.ID, Time: time.Now().UTC(), Events: evs})
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
	m, t, ctx := p.m, p.t, p.ctx
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
		paths[k] = t.Files[c.i].Destination
	}
	if err := m.ep.SyncParts(ctx, paths); err != nil {
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
		f := t.Files[c.i]
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
	done    []int       // the files completed
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
	m, t, ctx := p.m, p.t, p.ctx
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
	if m.state.ended(t.ID) {
		rs.err = fmt.Errorf("transfer %s has ended", t.ID)
		return rs, nil
	}
	paths := make([]string, len(ps.ok))
	for k, c := range ps.ok {
		paths[k] = t.Files[c.i].Destination
	}
	errs := m.ep.RenameAll(ctx, paths, t.Request.Overwrite == OverwriteAlways)
	for k, c := range ps.ok {
		err := errs[k]
		switch {
		case err == nil, errors.Is(err, endpoint.ErrAlreadyCommitted):
			rs.evs = append(rs.evs, FileEvent{Index: c.i, Kind: EventDone, SHA256: c.digest})
			rs.renamed = append(rs.renamed, paths[k])
			rs.done = append(rs.done, c.i)
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
	m, t, ctx := p.m, p.t, p.ctx
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
		for _, i := range rs.done {
			f := t.Files[i]
			if err := m.ep.Remove(ctx, f.Source); err != nil && !errors.Is(err, fs.ErrNotExist) {
				if endpoint.Permanent(err) {
					m.log.Warn().Err(err).Str("file", f.Source).Msg("could not delete the source after its transfer")
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
	f := t.Files[i]
	if err := m.ep.Remove(ctx, endpoint.PartName(f.Destination)); err != nil {
		m.log.Warn().Err(err).Str("file", f.Destination).Msg("remove .part of a failed file")
	}
	m.log.Warn().Str("transfer", t.ID).Str("file", f.Source).Str("reason", reason).Msg("file failed")
	return FileEvent{Index: i, Kind: EventFailed, Reason: reason}
}

// copyGroup copies a group's files to their .part files on smallWorkers
// goroutines, without syncing them. It returns those copied and the
// permanent failures (their .part removed), in the group's order; an error
// is transient or the context's, and stops the copies.
func (m *Manager) copyGroup(ctx context.Context, t *Transfer, group []int, limiters []*copyloop.Limiter) ([]copied, []FileEvent, error) {
	type result struct {
		tried  bool
		digest string
		source checkpoint.Source
		err    error
	}
	results := make([]result, len(group))
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var stopOnce sync.Once
	var stopErr error // the transient error that stopped the group (not the cancellations it caused)
	for range min(smallWorkers, len(group)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for {
				k := int(next.Add(1)) - 1
				if k >= len(group) || gctx.Err() != nil {
					return
				}
				digest, source, err := m.copyWhole(gctx, t, t.Files[group[k]], limiters, &buf)
				results[k] = result{tried: true, digest: digest, source: source, err: err}
				if err != nil && !endpoint.Permanent(err) {
					stopOnce.Do(func() { stopErr = err })
					cancel() // transient: the group stops here
					return
				}
			}
		}()
	}
	wg.Wait()
	var ok []copied
	var failed []FileEvent
	var transient error
	for k, i := range group {
		r := results[k]
		f := t.Files[i]
		switch {
		case !r.tried:
		case r.err == nil:
			ok = append(ok, copied{i: i, digest: r.digest, source: r.source})
		case errors.Is(r.err, endpoint.ErrExists):
			failed = append(failed, m.failSmall(ctx, t, i, "destination exists: "+f.Destination))
		case errors.Is(r.err, checkpoint.ErrSourceChanged):
			failed = append(failed, m.failSmall(ctx, t, i, "source changed: "+r.err.Error()))
		case endpoint.Permanent(r.err):
			failed = append(failed, m.failSmall(ctx, t, i, r.err.Error()))
		case transient == nil:
			transient = r.err
		}
	}
	if err := ctx.Err(); err != nil {
		return ok, failed, err
	}
	if stopErr != nil {
		return ok, failed, stopErr
	}
	return ok, failed, transient
}

// copyWhole copies one small file to its .part without syncing it, and
// returns its digest and the identity of the source it read. A file that
// fits in one buffer (*buf, grown as needed and kept by the caller) is read
// at once, written at once and hashed here: no goroutine and no buffer of
// its own.
//
// Under the "error" policy it does not look for the destination first, as
// copyFile does: the group's rename (Endpoint.RenameAll without overwrite)
// refuses an existing destination by itself, and the file then fails with
// "destination exists" and its .part removed, as it would have here. That
// rare case costs a copy of at most smallFileMax bytes; every file saves a
// lookup in its destination directory. (A new active resuming a started
// file takes copyFile, which does look first.)
func (m *Manager) copyWhole(ctx context.Context, t *Transfer, f File, limiters []*copyloop.Limiter, buf *[]byte) (string, checkpoint.Source, error) {
	src, err := m.ep.OpenSource(ctx, f.Source)
	if err != nil {
		return "", checkpoint.Source{}, err
	}
	defer src.Close()
	info := src.Info()
	if info.Size > smallFileMax {
		// It grew since it was listed: the copy loop takes it.
		return m.copyWholeLoop(ctx, f, src, limiters)
	}
	n := int(info.Size)
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	for _, l := range limiters {
		if err := l.Wait(ctx, n); err != nil {
			return "", checkpoint.Source{}, err
		}
	}
	if n > 0 {
		got, err := src.ReadAt(b, 0)
		if got < n {
			if err == nil || errors.Is(err, io.EOF) {
				return "", checkpoint.Source{}, fmt.Errorf("source ended at offset %d, before its size: %w", got, checkpoint.ErrSourceChanged)
			}
			return "", checkpoint.Source{}, fmt.Errorf("read source at offset %d: %w", got, err)
		}
	}
	if err := unchanged(src, info.Source); err != nil {
		return "", checkpoint.Source{}, err
	}
	dst, err := m.ep.OpenPart(ctx, f.Destination, 0)
	if err != nil {
		return "", checkpoint.Source{}, err
	}
	w, err := dst.Write(b)
	if err == nil && w < n {
		err = io.ErrShortWrite
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", checkpoint.Source{}, fmt.Errorf("write destination: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), info.Source, nil
}

// copyWholeLoop is copyWhole through the copy loop, for a source that is no
// longer small.
func (m *Manager) copyWholeLoop(ctx context.Context, f File, src endpoint.SourceFile, limiters []*copyloop.Limiter) (string, checkpoint.Source, error) {
	dst, err := m.ep.OpenPart(ctx, f.Destination, 0)
	if err != nil {
		return "", checkpoint.Source{}, err
	}
	digest, err := copyloop.Copy(ctx, copyloop.Params{
		Src:             src,
		Dst:             dst,
		CheckpointBytes: 1 << 62, // never: the group's sync stands for it
		Limiters:        limiters,
		Checkpoint:      func(context.Context, int64, []byte) error { return nil },
	})
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unchanged(src, src.Info().Source)
	}
	if err != nil {
		return "", checkpoint.Source{}, err
	}
	return hex.EncodeToString(digest), src.Info().Source, nil
}

// unchanged checks that the open source still has the identity it had when
// it was opened, once it has been read: a file written to while it was
// read gives a copy that is neither its old content nor its new one.
func unchanged(src endpoint.SourceFile, was checkpoint.Source) error {
	now, err := src.Stat()
	if err != nil {
		return fmt.Errorf("stat source: %w", err)
	}
	if !now.Source.Same(was) {
		return fmt.Errorf("written to during the copy (was %s, now %s): %w", was, now.Source, checkpoint.ErrSourceChanged)
	}
	return nil
}
