// Package copyloop owns the copy loop: it moves one file's bytes from a source
// endpoint to a destination .part, hashing them as they pass, and checkpoints
// at intervals — sync the destination, then hand the offset and the saved
// SHA-256 state to the caller, who commits them through raft (DESIGN.md,
// invariant 3). It knows nothing of local files, raft or transfers; it also
// owns the bandwidth limiter and the parsing of rates.
package copyloop

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
)

// Defaults for the zero values of Params. 64 MiB between checkpoints keeps
// the raft log at a few entries per second at disk speed, and bounds what a
// failover sends again; 5 s bounds it in time on slow links.
const (
	DefaultCheckpointBytes    = 64 << 20
	DefaultCheckpointInterval = 5 * time.Second
	DefaultBufferSize         = 1 << 20
)

// buffers is how many buffers circulate between the reader-writer and the
// hasher: enough for neither to wait on the other while both keep up.
const buffers = 4

// Params describe one copy.
type Params struct {
	Src endpoint.SourceFile
	Dst endpoint.PartFile // already positioned at From.Offset

	// From is the resume point; the zero Checkpoint starts at offset 0. Its
	// Hash state is restored with checkpoint.Resume. A From at an offset > 0
	// with a non-zero Source must match Src.Info().Source.
	From checkpoint.Checkpoint

	CheckpointBytes    int64         // checkpoint every this many bytes (DefaultCheckpointBytes if 0)
	CheckpointInterval time.Duration // and at least this often while data flows (DefaultCheckpointInterval if 0)

	// Limiters all have to let each chunk through (e.g. the agent's
	// maxBandwidth and the transfer's --bwlimit); nil entries are unlimited.
	Limiters []*Limiter

	BufferSize int // bytes per read and write (DefaultBufferSize if 0)

	// Checkpoint is called after Dst.Sync() with the new offset and the saved
	// hash state; it must commit the checkpoint through raft before
	// returning. An error stops the copy with that error.
	Checkpoint func(ctx context.Context, offset int64, hashState []byte) error

	// Progress, if set, is called after each write with the offset reached.
	// It runs on the copy's goroutine: keep it cheap.
	Progress func(offset int64)
}

// Copy copies Src from From.Offset to Src.Info().Size (re-statting the source
// is the caller's job), hashing as it goes, and returns the SHA-256 digest of
// the whole file. It reads each source byte once and none before From.Offset.
//
// Whenever CheckpointBytes have been written since the last checkpoint, or
// CheckpointInterval has passed, it syncs Dst and calls Checkpoint — never at
// offset 0 and not at the end: the caller syncs Dst and records the
// completion. It stops promptly when ctx is done, returning ctx.Err(). A
// source shorter than its size gives an error wrapping
// checkpoint.ErrSourceChanged.
//
// Reading and writing run on the calling goroutine while the hash runs on
// another, over the same buffers: on a machine with two cores the copy goes
// at the speed of the slower of the two, not of their sum.
func Copy(ctx context.Context, p Params) (digest []byte, err error) {
	size := p.Src.Info().Size
	off := p.From.Offset
	switch {
	case off < 0:
		return nil, fmt.Errorf("resume offset %d is negative", off)
	case off > size:
		return nil, fmt.Errorf("resume offset %d is beyond the source's %d bytes: %w", off, size, checkpoint.ErrSourceChanged)
	case off > 0 && p.From.Source != (checkpoint.Source{}) && !p.From.Source.Same(p.Src.Info().Source):
		return nil, fmt.Errorf("%w: was %s, now %s", checkpoint.ErrSourceChanged, p.From.Source, p.Src.Info().Source)
	}
	h, err := checkpoint.Resume(p.From)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	ckBytes := p.CheckpointBytes
	if ckBytes <= 0 {
		ckBytes = DefaultCheckpointBytes
	}
	ckEvery := p.CheckpointInterval
	if ckEvery <= 0 {
		ckEvery = DefaultCheckpointInterval
	}
	chunk := p.BufferSize
	if chunk <= 0 {
		chunk = DefaultBufferSize
	}
	// A limited copy moves smaller chunks, so that it waits often and
	// briefly rather than seldom and long.
	for _, l := range p.Limiters {
		chunk = min(chunk, l.chunk())
	}

	hs := startHasher(h, int(min(int64(chunk), size-off)))
	defer hs.stop()

	lastCk, lastCkTime := off, time.Now()
	for off < size {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := int(min(int64(chunk), size-off))
		if err := waitAll(ctx, p.Limiters, n); err != nil {
			return nil, err
		}
		buf := hs.buffer()[:n]
		if err := readFull(p.Src, buf, off); err != nil {
			return nil, err
		}
		if err := writeFull(p.Dst, buf); err != nil {
			return nil, fmt.Errorf("write destination at offset %d: %w", off, err)
		}
		hs.hash(buf)
		off += int64(n)
		if p.Progress != nil {
			p.Progress(off)
		}
		if off == size || (off-lastCk < ckBytes && time.Since(lastCkTime) < ckEvery) {
			continue
		}
		// The sync runs while the hasher catches up.
		hs.requestState()
		if err := p.Dst.Sync(); err != nil {
			return nil, fmt.Errorf("sync destination at offset %d: %w", off, err)
		}
		state, err := checkpoint.SaveHash(hs.state())
		if err != nil {
			return nil, err
		}
		if p.Checkpoint != nil {
			if err := p.Checkpoint(ctx, off, state); err != nil {
				return nil, err
			}
		}
		lastCk, lastCkTime = off, time.Now()
	}
	hs.requestState()
	return hs.state().Sum(nil), nil
}

func readFull(src io.ReaderAt, buf []byte, off int64) error {
	n, err := src.ReadAt(buf, off)
	if n == len(buf) {
		return nil // io.ReaderAt may report io.EOF with the last bytes
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("source ended at offset %d, before its size: %w", off+int64(n), checkpoint.ErrSourceChanged)
	}
	return fmt.Errorf("read source at offset %d: %w", off+int64(n), err)
}

func writeFull(w io.Writer, buf []byte) error {
	n, err := w.Write(buf)
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	return err
}

// hasher feeds the bytes the loop has written to the hash on a goroutine of
// its own. Buffers circulate: the loop takes a free one, fills and writes it
// and passes it on; the hasher gives it back once hashed. Only the hasher
// touches the hash, except from state() to the next hash(), when it is known
// to be idle.
type hasher struct {
	h        hash.Hash
	free     chan []byte   // hashed buffers, to be filled again
	full     chan []byte   // buffers to hash; nil asks for a signal on idle
	idle     chan struct{} // the hasher has hashed everything before the nil
	done     chan struct{}
	stopping atomic.Bool
	made     int // buffers allocated so far, up to buffers
	size     int
}

func startHasher(h hash.Hash, size int) *hasher {
	hs := &hasher{
		h:    h,
		free: make(chan []byte, buffers),
		full: make(chan []byte, buffers+1),
		idle: make(chan struct{}, 1),
		done: make(chan struct{}),
		size: size,
	}
	go hs.run()
	return hs
}

func (hs *hasher) run() {
	defer close(hs.done)
	for b := range hs.full {
		switch {
		case b == nil:
			hs.idle <- struct{}{}
		case hs.stopping.Load():
		default:
			hs.h.Write(b)
			hs.free <- b[:cap(b)]
		}
	}
}

// buffer returns a buffer to fill: a hashed one, or a new one while fewer
// than buffers exist (so a small file costs one small buffer).
func (hs *hasher) buffer() []byte {
	if hs.made == buffers {
		return <-hs.free
	}
	select {
	case b := <-hs.free:
		return b
	default:
		hs.made++
		return make([]byte, hs.size)
	}
}

// hash hands b, filled and written, to the hasher.
func (hs *hasher) hash(b []byte) { hs.full <- b }

// requestState asks for the hash once every buffer handed over is hashed.
func (hs *hasher) requestState() { hs.full <- nil }

// state waits for the answer to requestState: the hash, which the caller may
// use until its next call to hash.
func (hs *hasher) state() hash.Hash {
	<-hs.idle
	return hs.h
}

// stop ends the hasher, dropping what it has not hashed yet.
func (hs *hasher) stop() {
	hs.stopping.Store(true)
	close(hs.full)
	<-hs.done
}
