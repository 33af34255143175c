package transfer

// One file copied on its own, with checkpoints: the path of large files,
// and of any file a new active resumes from a checkpoint.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/copyloop"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
)

// copyFile copies file i of t, resuming from its checkpoint. A permanent
// failure is recorded for the file and returned as errFileFailed.
func (m *Manager) copyFile(ctx context.Context, lease ha.Lease, t *Transfer, i int, j *job, batch *eventBatch, limiters []*copyloop.Limiter) error {
	f := t.FileAt(i)
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
			sum, _, err := m.hashFrom(ctx, f.Destination, f.Checkpoint)
			if err != nil {
				return classify("finish replayed completion", err)
			}
			want, srcInfo, err := m.hashFrom(ctx, f.Source, checkpoint.Checkpoint{})
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
			batch.add(FileEvent{Index: i, Kind: EventDone, SHA256: sum, Source: delivered(t, srcInfo)})
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
	digest, err := m.copyWithCheckpoints(ctx, lease, i, j, batch, src, dst, from, limiters)
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
	batch.add(FileEvent{Index: i, Kind: EventDone, SHA256: hex.EncodeToString(digest), Source: delivered(t, info.Source)})
	if f.Bytes >= m.limits.CheckpointBytes {
		return batch.flush(ctx) // big files: record at once
	}
	return batch.maybeFlush(ctx)
}

// delivered is the source identity a completion records: only when the
// source is to be deleted (File.Delivered).
func delivered(t *Transfer, source checkpoint.Source) checkpoint.Source {
	if t.Request.Disposition != DispositionDelete {
		return checkpoint.Source{}
	}
	return source
}

// hashFrom continues a checkpoint's hash over path's bytes from its offset,
// and returns the identity of the file it read.
func (m *Manager) hashFrom(ctx context.Context, path string, cp checkpoint.Checkpoint) (string, checkpoint.Source, error) {
	h, err := checkpoint.Resume(cp)
	if err != nil {
		return "", checkpoint.Source{}, err
	}
	sf, err := m.ep.OpenSource(ctx, path)
	if err != nil {
		return "", checkpoint.Source{}, err
	}
	defer sf.Close()
	r := io.NewSectionReader(sf, cp.Offset, sf.Info().Size-cp.Offset)
	if _, err := io.CopyBuffer(h, r, make([]byte, 1<<20)); err != nil {
		return "", checkpoint.Source{}, err
	}
	return hex.EncodeToString(h.Sum(nil)), sf.Info().Source, nil
}

// copyWithCheckpoints copies file i from the checkpoint from (the copy
// loop), recording each checkpoint once dst has made it durable, and the
// job's live progress. It returns the digest of the whole file.
func (m *Manager) copyWithCheckpoints(ctx context.Context, lease ha.Lease, i int, j *job, batch *eventBatch,
	src endpoint.SourceFile, dst endpoint.PartFile, from checkpoint.Checkpoint, limiters []*copyloop.Limiter) ([]byte, error) {
	// A resumed file keeps the identity its first checkpoint recorded:
	// this instance found the source Same, but may see it through another
	// mount (another device, perhaps other inode numbers), and the
	// replicated state accepts only the recorded identity (Recorded).
	ident := src.Info().Source
	if from.Offset > 0 {
		ident = from.Source
	}
	return copyloop.Copy(ctx, copyloop.Params{
		Src:                src,
		Dst:                dst,
		From:               from,
		CheckpointBytes:    m.limits.CheckpointBytes,
		CheckpointInterval: m.limits.CheckpointTime,
		Limiters:           limiters,
		Checkpoint: func(ctx context.Context, offset int64, state []byte) error {
			batch.add(FileEvent{Index: i, Kind: EventCheckpoint, Checkpoint: checkpoint.Checkpoint{
				Offset: offset, Hash: state, Epoch: lease.Epoch, Source: ident,
			}})
			start := time.Now()
			err := batch.flush(ctx)
			if err == nil && m.observer != nil {
				m.observer.CheckpointRecorded(time.Since(start))
			}
			return err
		},
		Progress: func(offset int64) {
			j.mu.Lock()
			// sent: what a copy to another agent has sent of the file
			// (remote.go counts it as resent if the copy starts again).
			j.written, j.sentFile, j.sent = offset, i, offset
			j.mu.Unlock()
		},
	})
}
