package copyloop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
)

// testSeed is logged by every randomised test; COPYLOOP_SEED replays one.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("COPYLOOP_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("COPYLOOP_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with COPYLOOP_SEED=%d)", seed, seed)
	return seed
}

func randomBytes(rng *rand.Rand, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// countingSource records every ReadAt, to check which source bytes a copy read.
type countingSource struct {
	endpoint.SourceFile
	reads []span
}

type span struct{ off, n int64 }

func (s *countingSource) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.SourceFile.ReadAt(p, off)
	s.reads = append(s.reads, span{off, int64(n)})
	return n, err
}

// checkContiguous fails unless the reads cover [from, to) once, in order.
func (s *countingSource) checkContiguous(t *testing.T, from, to int64) {
	t.Helper()
	at := from
	for _, r := range s.reads {
		if r.off != at {
			t.Fatalf("read at offset %d, want %d (reads %v)", r.off, at, s.reads)
		}
		at += r.n
	}
	if at != to {
		t.Fatalf("reads end at %d, want %d", at, to)
	}
}

// trackingPart records how many bytes were written and how many of them a
// Sync covered.
type trackingPart struct {
	endpoint.PartFile
	pos, synced int64
}

func (p *trackingPart) Write(b []byte) (int, error) {
	n, err := p.PartFile.Write(b)
	p.pos += int64(n)
	return n, err
}

func (p *trackingPart) Sync() error {
	err := p.PartFile.Sync()
	if err == nil {
		p.synced = p.pos
	}
	return err
}

// How a run of the property test ends.
const (
	crashAfterCheckpoint  = iota // the checkpoint committed, then the instance died
	crashBeforeCheckpoint        // it died while committing: the checkpoint is lost
	crashBetween                 // it died between checkpoints
	runToEnd
)

// TestResumeFromAnyCutPoint is the property: resuming the copy loop
// from any cut point yields identical bytes and the same SHA-256 as an
// uninterrupted copy, and no source byte before the resume point is read
// again.
func TestResumeFromAnyCutPoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 3))
	const ckBytes = 64 << 10
	for trial := range 6 {
		dir, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ep, err := endpoint.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ep.Close()
		size := 1<<20 + rng.Int64N(3<<20) // 1–4 MiB, rarely a multiple of anything
		if trial == 0 {
			size = 2 << 20 // a multiple of the checkpoint interval: no checkpoint at the end
		}
		data := randomBytes(rng, size)
		want := sha256.Sum256(data)
		src := filepath.Join(dir, "in.bin")
		if err := os.WriteFile(src, data, 0o600); err != nil {
			t.Fatal(err)
		}

		// Uninterrupted.
		whole := filepath.Join(dir, "whole.bin")
		if digest := copyOnce(t, ep, src, whole, checkpoint.Checkpoint{}, ckBytes); !bytes.Equal(digest, want[:]) {
			t.Fatalf("trial %d: uninterrupted digest %x, want %x", trial, digest, want)
		}
		if got, _ := os.ReadFile(endpoint.PartName(whole)); !bytes.Equal(got, data) {
			t.Fatalf("trial %d: uninterrupted copy differs from the source", trial)
		}

		// Interrupted at random, several times in a row.
		dst := filepath.Join(dir, "out.bin")
		crashes := 1 + rng.IntN(5)
		var from checkpoint.Checkpoint
		var readTotal, resent int64
		for run := 0; ; run++ {
			how := runToEnd
			if run < crashes {
				how = rng.IntN(runToEnd)
			}
			cut := from.Offset + rng.Int64N(size-from.Offset) // where the crash comes
			sf, err := ep.OpenSource(context.Background(), src)
			if err != nil {
				t.Fatal(err)
			}
			cs := &countingSource{SourceFile: sf}
			pf, err := ep.OpenPart(context.Background(), dst, from.Offset)
			if err != nil {
				t.Fatal(err)
			}
			tp := &trackingPart{PartFile: pf, pos: from.Offset}
			ctx, cancel := context.WithCancel(context.Background())
			errCrash := errors.New("crash while committing the checkpoint")
			next := from
			lastCk := from.Offset
			digest, err := Copy(ctx, Params{
				Src: cs, Dst: tp, From: from,
				CheckpointBytes:    ckBytes,
				CheckpointInterval: time.Hour,
				BufferSize:         16 << 10,
				Checkpoint: func(_ context.Context, off int64, state []byte) error {
					checkCheckpoint(t, data, off, state, lastCk, ckBytes, tp)
					lastCk = off
					if how == crashBeforeCheckpoint && off >= cut {
						return errCrash
					}
					next = checkpoint.Checkpoint{Offset: off, Hash: state, Source: sf.Info().Source}
					if how == crashAfterCheckpoint && off >= cut {
						cancel()
					}
					return nil
				},
				Progress: func(off int64) {
					if how == crashBetween && off >= cut {
						cancel()
					}
				},
			})
			cancel()
			pf.Close()
			sf.Close()
			readEnd := from.Offset
			if len(cs.reads) > 0 {
				last := cs.reads[len(cs.reads)-1]
				readEnd = last.off + last.n
			}
			cs.checkContiguous(t, from.Offset, readEnd)
			readTotal += readEnd - from.Offset

			if how == runToEnd || (err == nil && readEnd == size) {
				// A cut in the last checkpoint interval may see the copy
				// finish first.
				if err != nil {
					t.Fatalf("trial %d run %d: %v", trial, run, err)
				}
				if readEnd != size {
					t.Fatalf("trial %d run %d: read up to %d of %d", trial, run, readEnd, size)
				}
				if !bytes.Equal(digest, want[:]) {
					t.Fatalf("trial %d run %d: digest %x, want %x", trial, run, digest, want)
				}
				break
			}
			switch how {
			case crashAfterCheckpoint:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("trial %d run %d: %v, want context.Canceled", trial, run, err)
				}
				if readEnd != next.Offset {
					t.Fatalf("trial %d run %d: read on to %d after the cancel at checkpoint %d", trial, run, readEnd, next.Offset)
				}
			case crashBeforeCheckpoint:
				if !errors.Is(err, errCrash) {
					t.Fatalf("trial %d run %d: %v, want the Checkpoint func's error", trial, run, err)
				}
			case crashBetween:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("trial %d run %d: %v, want context.Canceled", trial, run, err)
				}
			}
			// Unsynced writes that did reach the disk, and bytes that are
			// plain wrong: the resume must cut them off.
			appendGarbage(t, endpoint.PartName(dst), randomBytes(rng, rng.Int64N(100<<10)))
			resent += readEnd - next.Offset
			from = next
		}
		if readTotal != size+resent {
			t.Fatalf("trial %d: read %d source bytes, want the size %d plus %d read again after crashes", trial, readTotal, size, resent)
		}
		got, err := os.ReadFile(endpoint.PartName(dst))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("trial %d: resumed copy (%d bytes) differs from the source (%d bytes)", trial, len(got), len(data))
		}
		if err := ep.Commit(context.Background(), dst, false); err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(mustRead(t, dst)); sum != want {
			t.Fatalf("trial %d: committed file's SHA-256 %x, want %x", trial, sum, want)
		}
		t.Logf("trial %d: %d bytes, %d crashes, %d bytes read again", trial, size, crashes, resent)
	}
}

// copyOnce copies src to dst's .part without interruption and returns the
// digest.
func copyOnce(t *testing.T, ep endpoint.Endpoint, src, dst string, from checkpoint.Checkpoint, ckBytes int64) []byte {
	t.Helper()
	sf, err := ep.OpenSource(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	pf, err := ep.OpenPart(context.Background(), dst, from.Offset)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	digest, err := Copy(context.Background(), Params{
		Src: sf, Dst: pf, From: from, CheckpointBytes: ckBytes,
		Checkpoint: func(context.Context, int64, []byte) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

// checkCheckpoint checks what the copy loop promises at a checkpoint: an
// offset strictly inside the file, one interval after the last, covered by a
// Sync, and a hash state that is the SHA-256 state of exactly those bytes.
func checkCheckpoint(t *testing.T, data []byte, off int64, state []byte, last, every int64, p *trackingPart) {
	t.Helper()
	if off <= 0 || off >= int64(len(data)) {
		t.Fatalf("checkpoint at %d of a %d-byte file", off, len(data))
	}
	if want := (last/every + 1) * every; off != want {
		t.Fatalf("checkpoint at %d after one at %d, want %d", off, last, want)
	}
	if p.synced < off {
		t.Fatalf("checkpoint at %d but only %d bytes synced", off, p.synced)
	}
	h, err := checkpoint.Resume(checkpoint.Checkpoint{Offset: off, Hash: state})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.Sum(nil), sha256.Sum256(data[:off]); !bytes.Equal(got, want[:]) {
		t.Fatalf("hash state at checkpoint %d is not the SHA-256 state of the first %d bytes", off, off)
	}
}

func appendGarbage(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// memSource is a SourceFile over bytes that may claim another size.
type memSource struct {
	*bytes.Reader
	info endpoint.Info
}

func newMemSource(data []byte) *memSource {
	return &memSource{Reader: bytes.NewReader(data), info: endpoint.Info{Size: int64(len(data)), Source: checkpoint.Source{Size: int64(len(data)), ModTime: 1}}}
}

func (s *memSource) Close() error        { return nil }
func (s *memSource) Info() endpoint.Info { return s.info }
func (s *memSource) Stat() (endpoint.Info, error) {
	return s.info, nil
}

// memPart is a PartFile in memory.
type memPart struct {
	bytes.Buffer
	syncs int
	err   error
}

func (p *memPart) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	return p.Buffer.Write(b)
}
func (p *memPart) Sync() error  { p.syncs++; return nil }
func (p *memPart) Close() error { return nil }

func TestCopyStopsPromptlyWhenCancelled(t *testing.T) {
	data := make([]byte, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	src := &countingSource{SourceFile: newMemSource(data)}
	dst := &memPart{}
	_, err := Copy(ctx, Params{Src: src, Dst: dst, BufferSize: 4096, Progress: func(off int64) {
		if off == 8192 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy: %v, want context.Canceled", err)
	}
	src.checkContiguous(t, 0, 8192)
	if dst.Len() != 8192 {
		t.Fatalf("wrote %d bytes after the cancel at 8192", dst.Len())
	}
}

func TestCopyShortSourceIsSourceChanged(t *testing.T) {
	src := newMemSource(make([]byte, 1000))
	src.info.Size = 1500 // the file shrank after it was opened
	_, err := Copy(context.Background(), Params{Src: src, Dst: &memPart{}, BufferSize: 512})
	if !errors.Is(err, checkpoint.ErrSourceChanged) || !endpoint.Permanent(err) {
		t.Fatalf("Copy of a short source: %v, want checkpoint.ErrSourceChanged", err)
	}
}

func TestCopyResumeChecks(t *testing.T) {
	data := randomBytes(rand.New(rand.NewPCG(1, 2)), 10000)
	h := checkpoint.NewHash()
	h.Write(data[:4000])
	state, err := checkpoint.SaveHash(h)
	if err != nil {
		t.Fatal(err)
	}
	src := newMemSource(data)
	for _, c := range []struct {
		name string
		from checkpoint.Checkpoint
		want error // nil: the copy succeeds
	}{
		{"same source", checkpoint.Checkpoint{Offset: 4000, Hash: state, Source: src.info.Source}, nil},
		{"source identity unknown", checkpoint.Checkpoint{Offset: 4000, Hash: state}, nil},
		{"other source", checkpoint.Checkpoint{Offset: 4000, Hash: state, Source: checkpoint.Source{Size: 10000, ModTime: 2}}, checkpoint.ErrSourceChanged},
		{"beyond the end", checkpoint.Checkpoint{Offset: 20000}, checkpoint.ErrSourceChanged},
		{"hash state for another offset", checkpoint.Checkpoint{Offset: 5000, Hash: state}, errAny},
		{"negative offset", checkpoint.Checkpoint{Offset: -1}, errAny},
	} {
		dst := &memPart{}
		digest, err := Copy(context.Background(), Params{Src: src, Dst: dst, From: c.from})
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want == nil:
			if want := sha256.Sum256(data); !bytes.Equal(digest, want[:]) || !bytes.Equal(dst.Bytes(), data[4000:]) {
				t.Errorf("%s: wrong digest or bytes", c.name)
			}
		case c.want == errAny && err == nil, c.want != errAny && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}

	// Resumed at the very end: nothing to copy, the whole file's digest.
	h.Write(data[4000:])
	state, _ = checkpoint.SaveHash(h)
	dst := &memPart{}
	digest, err := Copy(context.Background(), Params{Src: src, Dst: dst, From: checkpoint.Checkpoint{Offset: 10000, Hash: state}})
	if want := sha256.Sum256(data); err != nil || !bytes.Equal(digest, want[:]) || dst.Len() != 0 {
		t.Fatalf("resume at the end: %x, %v; wrote %d bytes", digest, err, dst.Len())
	}
}

var errAny = errors.New("any error")

func TestCopyErrors(t *testing.T) {
	data := make([]byte, 100000)
	t.Run("write error", func(t *testing.T) {
		_, err := Copy(context.Background(), Params{Src: newMemSource(data), Dst: &memPart{err: errDiskFull}})
		if !errors.Is(err, errDiskFull) {
			t.Fatalf("Copy: %v, want the write error", err)
		}
	})
	t.Run("read error", func(t *testing.T) {
		_, err := Copy(context.Background(), Params{Src: failingSource{newMemSource(data)}, Dst: &memPart{}})
		if !errors.Is(err, errDiskFull) || errors.Is(err, checkpoint.ErrSourceChanged) {
			t.Fatalf("Copy: %v, want the read error", err)
		}
	})
	t.Run("checkpoint error", func(t *testing.T) {
		errRaft := errors.New("no leader")
		calls := 0
		_, err := Copy(context.Background(), Params{Src: newMemSource(data), Dst: &memPart{}, CheckpointBytes: 10000, BufferSize: 5000,
			Checkpoint: func(context.Context, int64, []byte) error { calls++; return errRaft }})
		if !errors.Is(err, errRaft) || calls != 1 {
			t.Fatalf("Copy: %v after %d checkpoints, want the Checkpoint func's error after 1", err, calls)
		}
	})
}

var errDiskFull = errors.New("no space left on device")

type failingSource struct{ *memSource }

func (failingSource) ReadAt([]byte, int64) (int, error) { return 0, errDiskFull }

func TestCheckpointInterval(t *testing.T) {
	// Each write takes at least 2 ms (Progress sleeps), so a 1 ms interval
	// is due after every write but the last.
	data := make([]byte, 10*4096)
	var offs []int64
	dst := &memPart{}
	_, err := Copy(context.Background(), Params{
		Src: newMemSource(data), Dst: dst, BufferSize: 4096,
		CheckpointInterval: time.Millisecond,
		Checkpoint: func(_ context.Context, off int64, _ []byte) error {
			offs = append(offs, off)
			return nil
		},
		Progress: func(int64) { time.Sleep(2 * time.Millisecond) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[4096 8192 12288 16384 20480 24576 28672 32768 36864]"; fmt.Sprint(offs) != want {
		t.Fatalf("checkpoints at %v, want %s", offs, want)
	}
	if dst.syncs != len(offs) {
		t.Fatalf("%d syncs for %d checkpoints", dst.syncs, len(offs))
	}
}

func TestCopyAllocatesNothingPerChunk(t *testing.T) {
	allocs := func(chunks int) float64 {
		data := make([]byte, chunks*4096)
		src := newMemSource(data)
		return testing.AllocsPerRun(20, func() {
			src.Reset(data)
			if _, err := Copy(context.Background(), Params{Src: src, Dst: discardPart{}, BufferSize: 4096}); err != nil {
				t.Fatal(err)
			}
		})
	}
	few, many := allocs(4), allocs(256)
	if many > few {
		t.Fatalf("a copy of 256 chunks allocates %v times, of 4 chunks %v: something allocates per chunk", many, few)
	}
	t.Logf("%v allocations per copy", many)
}

type discardPart struct{}

func (discardPart) Write(b []byte) (int, error) { return len(b), nil }
func (discardPart) Sync() error                 { return nil }
func (discardPart) Close() error                { return nil }

func TestCopyHonoursLimiters(t *testing.T) {
	// Two limiters on one fake clock: the slower one sets the pace.
	clk := &fakeClock{now: time.Unix(1000, 0)}
	fast, slow := newLimiter(4<<20, clk), newLimiter(1<<20, clk)
	data := make([]byte, 4<<20)
	start := clk.now
	digest, err := Copy(context.Background(), Params{Src: newMemSource(data), Dst: discardPart{}, Limiters: []*Limiter{fast, nil, slow}})
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(digest, want[:]) {
		t.Fatal("wrong digest")
	}
	// 4 MiB at 1 MiB/s: 4 s, less what the burst lets through at once.
	if took := clk.now.Sub(start); took != 4*time.Second-limiterBurst {
		t.Fatalf("the copy waited %v, want %v", took, 4*time.Second-limiterBurst)
	}
	if clk.maxSleep > 100*time.Millisecond {
		t.Fatalf("a wait of %v: a limited copy should wait often and briefly", clk.maxSleep)
	}
}
