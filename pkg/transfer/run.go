package transfer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
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
	t, ok := m.state.Get(id)
	if !ok {
		return nil
	}
	batch := &eventBatch{m: m, id: id, epoch: lease.Epoch}
	limiters := []*copyloop.Limiter{m.agent}
	if t.Request.BandwidthLimit > 0 {
		limiters = append(limiters, copyloop.NewLimiter(t.Request.BandwidthLimit))
	}
	for i := 0; i < len(t.Files); i++ {
		f := t.Files[i]
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if group := smallGroup(t, i); len(group) > 1 {
			done, err := m.copySmall(ctx, lease, t, group, batch, limiters)
			if err != nil {
				if ferr := batch.flush(ctx); ferr != nil {
					return ferr
				}
				return err
			}
			if t.Request.Disposition == DispositionDelete && len(done) > 0 {
				if err := batch.flush(ctx); err != nil { // completions first
					return err
				}
				for _, k := range done {
					if err := m.deleteSource(ctx, batch, k, t.Files[k]); err != nil {
						return err
					}
				}
			}
			i += len(group) - 1
			continue
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
	// failover: finish the hash over the destination's remaining bytes (never
	// re-reading the source) and record it. Under "error" the destination
	// cannot have been there before (it was checked when the copy began);
	// under "overwrite" it may be the old file, so the copy starts again.
	if f.Started && !partExists && t.Request.Overwrite == OverwriteError {
		if info, err := m.ep.Stat(ctx, f.Destination); err == nil && info.Size == f.Bytes && f.Checkpoint.Offset <= f.Bytes {
			sum, err := m.hashFrom(ctx, f.Destination, f.Checkpoint)
			if err != nil {
				return classify("finish replayed completion", err)
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
	_, err := b.m.raft.Apply(KindFiles, b.epoch, filesCmd{ID: b.id, Time: time.Now().UTC(), Events: evs}, applyTimeout)
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
const (
	smallFileMax   = 1 << 20  // bytes: a file this size or less is small
	smallGroupMax  = 256      // files in a group
	smallGroupSize = 32 << 20 // bytes in a group
)

// smallGroup returns the indices of the small, not yet started files from i
// on that form one group (none when file i is not one).
func smallGroup(t *Transfer, i int) []int {
	var idx []int
	var size int64
	for k := i; k < len(t.Files) && len(idx) < smallGroupMax; k++ {
		f := t.Files[k]
		if f.State != StateQueued || f.Started || f.Bytes > smallFileMax || size+f.Bytes > smallGroupSize && len(idx) > 0 {
			break
		}
		idx = append(idx, k)
		size += f.Bytes
	}
	return idx
}

// copySmall copies a group of small files and returns those completed.
// Permanent failures are recorded per file; an error is transient: the
// group's files that were started are resumed one by one on the next try.
func (m *Manager) copySmall(ctx context.Context, lease ha.Lease, t *Transfer, group []int, batch *eventBatch, limiters []*copyloop.Limiter) ([]int, error) {
	for _, i := range group {
		batch.add(FileEvent{Index: i, Kind: EventStart})
	}
	// Started is recorded before any rename: a new active must know that a
	// destination found in place may be this transfer's own.
	if err := batch.flush(ctx); err != nil {
		return nil, err
	}
	type copied struct {
		i      int
		digest string
		source checkpoint.Source
	}
	var ok []copied
	fail := func(i int, reason string) {
		f := t.Files[i]
		if err := m.ep.Remove(ctx, endpoint.PartName(f.Destination)); err != nil {
			m.log.Warn().Err(err).Str("file", f.Destination).Msg("remove .part of a failed file")
		}
		batch.add(FileEvent{Index: i, Kind: EventFailed, Reason: reason})
		m.log.Warn().Str("transfer", t.ID).Str("file", f.Source).Str("reason", reason).Msg("file failed")
	}
	for _, i := range group {
		f := t.Files[i]
		digest, source, err := m.copyWhole(ctx, t, f, limiters)
		switch {
		case err == nil:
			ok = append(ok, copied{i: i, digest: digest, source: source})
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, endpoint.ErrExists):
			fail(i, "destination exists: "+f.Destination)
		case errors.Is(err, checkpoint.ErrSourceChanged):
			fail(i, "source changed: "+err.Error())
		case endpoint.Permanent(err):
			fail(i, err.Error())
		default:
			return nil, err
		}
	}
	if len(ok) == 0 {
		return nil, batch.flush(ctx)
	}
	paths := make([]string, len(ok))
	for k, c := range ok {
		paths[k] = t.Files[c.i].Destination
	}
	if err := m.ep.SyncParts(ctx, paths); err != nil {
		return nil, fmt.Errorf("sync destinations: %w", err)
	}
	// Sources must not have changed under the copy.
	kept := ok[:0]
	for _, c := range ok {
		f := t.Files[c.i]
		now, err := m.ep.Stat(ctx, f.Source)
		switch {
		case err != nil && endpoint.Permanent(err):
			fail(c.i, "stat source: "+err.Error())
		case err != nil:
			return nil, fmt.Errorf("stat source: %w", err)
		case !now.Source.Same(c.source):
			fail(c.i, fmt.Sprintf("source changed during the copy: was %s, now %s", c.source, now.Source))
		default:
			kept = append(kept, c)
		}
	}
	ok = kept
	// The renames are irreversible: only while this instance holds the lease.
	if err := m.raft.VerifyLease(lease.Epoch); err != nil {
		return nil, fmt.Errorf("lease check before rename: %w", err)
	}
	paths = paths[:0]
	for _, c := range ok {
		paths = append(paths, t.Files[c.i].Destination)
	}
	errs := m.ep.CommitAll(ctx, paths, t.Request.Overwrite == OverwriteAlways)
	var done []int
	var transient error
	for k, c := range ok {
		err := errs[k]
		switch {
		case err == nil, errors.Is(err, endpoint.ErrAlreadyCommitted):
			batch.add(FileEvent{Index: c.i, Kind: EventDone, SHA256: c.digest})
			done = append(done, c.i)
		case errors.Is(err, endpoint.ErrExists):
			fail(c.i, "destination exists: "+t.Files[c.i].Destination)
		case endpoint.Permanent(err):
			fail(c.i, "rename into place: "+err.Error())
		default:
			transient = fmt.Errorf("rename into place: %w", err)
		}
	}
	if err := batch.flush(ctx); err != nil {
		return nil, err
	}
	return done, transient
}

// copyWhole copies one small file to its .part without syncing it, and
// returns its digest and the identity of the source it read.
func (m *Manager) copyWhole(ctx context.Context, t *Transfer, f File, limiters []*copyloop.Limiter) (string, checkpoint.Source, error) {
	if t.Request.Overwrite == OverwriteError {
		if exists, err := m.ep.Exists(ctx, f.Destination); err != nil {
			return "", checkpoint.Source{}, err
		} else if exists {
			return "", checkpoint.Source{}, endpoint.ErrExists
		}
	}
	src, err := m.ep.OpenSource(ctx, f.Source)
	if err != nil {
		return "", checkpoint.Source{}, err
	}
	defer src.Close()
	dst, err := m.ep.OpenPart(ctx, f.Destination, 0)
	if err != nil {
		return "", checkpoint.Source{}, err
	}
	digest, err := copyloop.Copy(ctx, copyloop.Params{
		Src:             src,
		Dst:             dst,
		CheckpointBytes: smallFileMax + 1, // never: the group's sync stands for it
		Limiters:        limiters,
		BufferSize:      64 << 10,
		Checkpoint:      func(context.Context, int64, []byte) error { return nil },
	})
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", checkpoint.Source{}, err
	}
	return hex.EncodeToString(digest), src.Info().Source, nil
}
