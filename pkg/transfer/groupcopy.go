package transfer

// The copy of one group of small files, on several goroutines, each file
// read whole, written and hashed at once.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/transfer/copyloop"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
)

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
				digest, source, err := m.copyWhole(gctx, t, t.FileAt(group[k]), limiters, &buf)
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
		f := t.FileAt(i)
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
