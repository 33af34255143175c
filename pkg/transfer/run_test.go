package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/ftagent/ftagent/pkg/sandbox"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// errCrashed is what the fake log answers once the instance has "died".
var errCrashed = errors.New("crashed")

// fakeLog applies commands to a State in this process, in order, as raft
// would; it records the sequence of what it committed in a shared trace and
// can "crash" after a number of entries (every later Apply fails).
type fakeLog struct {
	s     *State
	tr    *trace
	mu    sync.Mutex
	index uint64
	// crashAfter > 0: the Apply that would be entry crashAfter (counted
	// from the fake's creation) fails, as does every later one, and crash
	// is called (it cancels the run).
	crashAfter int
	entries    int
	crashed    bool
	crash      func()
	// formats is the highest command format every instance reads; 0 means
	// ha.FormatVersion.
	formats int
	// claims, when set, is what FormatAgreed answers instead: an instance
	// of an older build joined between FormatAgreed and Apply.
	claims int
	kinds  []string // the kinds committed, in order (see kindLabel)
	// lastData is the data of the last entry committed.
	lastData []byte
	// afterEntry, when set, is called (without the lock) after entry n
	// (counted from 1) committed.
	afterEntry func(n int)
}

func (l *fakeLog) Apply(kind string, epoch uint64, data any, _ time.Duration) (any, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	res, err := l.apply(kind, epoch, b)
	if l.afterEntry != nil && err == nil {
		l.afterEntry(len(l.kinds))
	}
	return res, err
}

func (l *fakeLog) apply(kind string, epoch uint64, b []byte) (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.crashed {
		return nil, errCrashed
	}
	// As ha.Node.Apply: a kind of a format not every instance reads is
	// refused before anything is proposed.
	if f, ok := replog.KindFormat(kind); ok && !l.agreedLocked(f) {
		return nil, fmt.Errorf("propose %s: %w", kind, ha.ErrFormatNotAgreed)
	}
	l.entries++
	if l.crashAfter > 0 && l.entries >= l.crashAfter {
		l.crashed = true
		if l.crash != nil {
			l.crash()
		}
		return nil, errCrashed
	}
	l.index++
	l.lastData = b
	l.kinds = append(l.kinds, kindLabel(kind, b))
	res := l.s.Apply(kind, epoch, b, l.index)
	if err, ok := res.(error); ok {
		return nil, err
	}
	if (kind == KindFiles || kind == KindFilesV2) && l.tr != nil {
		var c replicated.FilesCmd
		if kind == KindFilesV2 {
			c, _ = replicated.DecodeFilesV2(b)
		} else {
			_ = json.Unmarshal(b, &c)
		}
		for _, ev := range c.Events {
			l.tr.add(ev.Kind, fmt.Sprint(ev.Index))
		}
	}
	return res, nil
}

// kindLabel is kind, told apart for a files entry of directory events only
// (which is never compact): "transfer.files (directories)".
func kindLabel(kind string, data []byte) string {
	var c replicated.FilesCmd
	if kind == KindFiles && json.Unmarshal(data, &c) == nil && len(c.Events) == 0 && len(c.Dirs) > 0 {
		return kind + " (directories)"
	}
	return kind
}

// FormatAgreed plays an agent whose instances all read the formats up to
// l.formats (0: every format this build reads).
func (l *fakeLog) FormatAgreed(v int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.claims > 0 {
		return v <= l.claims
	}
	return l.agreedLocked(v)
}

func (l *fakeLog) agreedLocked(v int) bool {
	if l.formats == 0 {
		return v <= ha.FormatVersion
	}
	return v <= l.formats
}

func (l *fakeLog) VerifyLease(uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.crashed {
		return errCrashed
	}
	return nil
}

// trace is the order of durable steps: a .part written, synced, renamed, a
// completion committed, a source removed.
type trace struct {
	mu    sync.Mutex
	steps []string
}

func (t *trace) add(what, path string) {
	t.mu.Lock()
	t.steps = append(t.steps, what+" "+path)
	t.mu.Unlock()
}

// tracingEndpoint is the local endpoint, recording in a trace when a .part
// is written and closed, synced, renamed, and when a source is removed.
type tracingEndpoint struct {
	*endpoint.Local
	tr *trace
	// failOpenPart, when set, may fail an OpenPart (to stop a group midway).
	failOpenPart func(path string) error
}

func (e *tracingEndpoint) OpenPart(ctx context.Context, path string, offset int64) (endpoint.PartFile, error) {
	if e.failOpenPart != nil {
		if err := e.failOpenPart(path); err != nil {
			return nil, err
		}
	}
	p, err := e.Local.OpenPart(ctx, path, offset)
	if err != nil {
		return nil, err
	}
	e.tr.add("opened", path)
	return &tracingPart{PartFile: p, tr: e.tr, path: path}, nil
}

func (p *tracingPart) Write(b []byte) (int, error) {
	n, err := p.PartFile.Write(b)
	p.tr.add("written", p.path)
	return n, err
}

type tracingPart struct {
	endpoint.PartFile
	tr   *trace
	path string
}

func (p *tracingPart) Sync() error {
	err := p.PartFile.Sync()
	if err == nil {
		p.tr.add("sync", p.path)
	}
	return err
}

func (p *tracingPart) Close() error {
	err := p.PartFile.Close()
	p.tr.add("closed", p.path)
	return err
}

func (e *tracingEndpoint) BeginParts(ctx context.Context) (endpoint.PartBatch, error) {
	b, err := e.Local.BeginParts(ctx)
	if err != nil {
		return nil, err
	}
	return &tracingBatch{PartBatch: b, tr: e.tr}, nil
}

type tracingBatch struct {
	endpoint.PartBatch
	tr *trace
}

func (b *tracingBatch) Sync(ctx context.Context, paths []string) error {
	err := b.PartBatch.Sync(ctx, paths)
	if err == nil {
		for _, p := range paths {
			b.tr.add("sync", p)
		}
	}
	return err
}

func (e *tracingEndpoint) Commit(ctx context.Context, path string, overwrite bool) error {
	err := e.Local.Commit(ctx, path, overwrite)
	if err == nil || errors.Is(err, endpoint.ErrAlreadyCommitted) {
		e.tr.add("renamed", path)
		e.tr.add("dirsynced", path)
	}
	return err
}

func (e *tracingEndpoint) RenameAll(ctx context.Context, paths []string, overwrite bool) []error {
	errs := e.Local.RenameAll(ctx, paths, overwrite)
	for i, err := range errs {
		if err == nil || errors.Is(err, endpoint.ErrAlreadyCommitted) {
			e.tr.add("renamed", paths[i])
		}
	}
	return errs
}

func (e *tracingEndpoint) SyncDirs(ctx context.Context, paths []string) error {
	err := e.Local.SyncDirs(ctx, paths)
	if err == nil {
		for _, p := range paths {
			e.tr.add("dirsynced", p)
		}
	}
	return err
}

func (e *tracingEndpoint) Remove(ctx context.Context, path string) error {
	err := e.Local.Remove(ctx, path)
	if err == nil && !strings.HasSuffix(path, ".part") {
		e.tr.add("removed", path)
	}
	return err
}

// smallTree writes n small files of varying sizes (some empty) under
// root/in/batch, in a few directories, and returns their SHA-256 by path
// relative to root/in.
func smallTree(t testing.TB, root string, n int) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for i := range n {
		rel := filepath.Join("batch", fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%05d", i))
		p := filepath.Join(root, "in", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, (i*97)%9000)
		for k := range b {
			b[k] = byte(i + k*7)
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		sums[rel] = hex.EncodeToString(s[:])
	}
	return sums
}

type rig struct {
	root  string
	state *State
	tr    *trace
	sb    *sandbox.Sandbox
	local *endpoint.Local // beneath the sandbox's roots
}

func newRig(t testing.TB) *rig {
	root := t.TempDir()
	sb, err := sandbox.New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	local, err := endpoint.NewLocal(sb.Roots()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	return &rig{root: sb.Root(), state: NewState(), tr: &trace{}, sb: sb, local: local}
}

// manager makes a Manager (one "instance") over the rig's state.
func (r *rig) manager(log *fakeLog, ep endpoint.Endpoint) *Manager {
	log.s, log.tr = r.state, r.tr
	return NewManager(Limits{CheckpointBytes: 64 << 20, CheckpointTime: 5 * time.Second, RecoveryTimeout: -1}, r.state, log, ep, r.sb, zerolog.Nop())
}

// submit plans and commits a request through m.
func (r *rig) submit(t testing.TB, m *Manager, req Request) string {
	t.Helper()
	lease := ha.Lease{Epoch: 1}
	m.mu.Lock()
	m.lease = &lease
	m.mu.Unlock()
	tr, err := m.Submit(context.Background(), "", req)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.lease = nil
	m.mu.Unlock()
	return tr.ID
}

// runOnce runs transfer id as an active of epoch would, until it ends or
// ctx is done.
func runOnce(ctx context.Context, m *Manager, epoch uint64, id string) {
	j := &job{file: -1}
	if t, ok := m.state.Get(id); ok && Terminal(t.State) {
		// Ended, perhaps with sources still to delete: as schedule does.
		if t.SourcesToDelete() {
			m.finishSources(ctx, ha.Lease{Epoch: epoch}, id, j)
		}
		return
	}
	m.runTransfer(ctx, ha.Lease{Epoch: epoch}, id, j)
}

// checkInvariants checks the trace and the state against the guarantees:
// a completion is committed only after its file was synced and renamed,
// and the rename made durable;
// a source is removed only after its completion was committed; every
// completed file has its bytes in place and no .part.
func (r *rig) checkInvariants(t *testing.T, id string, sums map[string]string) {
	t.Helper()
	tr, _ := r.state.Get(id)
	r.tr.mu.Lock()
	steps := append([]string(nil), r.tr.steps...)
	r.tr.mu.Unlock()
	// The last time each step happened to each file (a file copied again
	// after a crash repeats them).
	pos := func(what, path string, before int) int {
		for k := before - 1; k >= 0; k-- {
			if steps[k] == what+" "+path {
				return k
			}
		}
		return -1
	}
	for k, st := range steps {
		what, arg, _ := strings.Cut(st, " ")
		switch what {
		case EventDone:
			var i int
			fmt.Sscan(arg, &i)
			f := tr.Files[i]
			ren := pos("renamed", f.Destination, k)
			if ren < 0 {
				t.Fatalf("file %d: completion committed (step %d) before any rename", i, k)
			}
			// The rename made durable before the completion.
			if ds := pos("dirsynced", f.Destination, k); ds < ren {
				t.Fatalf("file %d: completion committed (step %d) without its rename (step %d) made durable", i, k, ren)
			}
			// Synced after its last write (or its creation, when empty).
			syn := pos("sync", f.Destination, ren)
			last := max(pos("written", f.Destination, ren), pos("opened", f.Destination, ren))
			if last < 0 || syn < last {
				t.Fatalf("file %d: renamed (step %d) without a sync of its written .part before it", i, ren)
			}
		case "removed":
			var i = -1
			for x, f := range tr.Files {
				if f.Source == arg {
					i = x
				}
			}
			if i < 0 || pos(EventDone, fmt.Sprint(i), k) < 0 {
				t.Fatalf("source %s removed (step %d) before its completion was committed", arg, k)
			}
		}
	}
	for i, f := range tr.Files {
		if f.State != StateCompleted {
			continue
		}
		rel, _ := filepath.Rel(filepath.Join(r.root, "in"), f.Source)
		b, err := os.ReadFile(f.Destination)
		if err != nil {
			t.Fatalf("file %d completed, destination: %v", i, err)
		}
		s := sha256.Sum256(b)
		if got := hex.EncodeToString(s[:]); got != sums[rel] || f.SHA256 != got {
			t.Fatalf("file %d (%s): bytes %s, recorded %s, want %s", i, rel, got, f.SHA256, sums[rel])
		}
		if _, err := os.Lstat(endpoint.PartName(f.Destination)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("file %d completed with a .part behind: %v", i, err)
		}
	}
}

// checkEnded is checkInvariants for a transfer that has ended, which
// leaves no .part anywhere under out/.
func (r *rig) checkEnded(t *testing.T, id string, sums map[string]string) {
	t.Helper()
	r.checkInvariants(t, id, sums)
	r.checkNoParts(t)
}

// checkNoParts fails t if a .part is left anywhere under out/.
func (r *rig) checkNoParts(t *testing.T) {
	t.Helper()
	if n := countParts(t, filepath.Join(r.root, "out")); n != 0 {
		t.Fatalf("%d .part files left", n)
	}
}

func countParts(t *testing.T, dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".part") {
			n++
		}
		return nil
	})
	return n
}

// smallShape sets the group path's shape for one test: the tests below
// were written for groups of 256 files and 4 queued, so that a few hundred
// files make several groups and sets.
func smallShape(t *testing.T, groupMax, queued int) {
	g, q := smallGroupMax, smallQueued
	smallGroupMax, smallQueued = groupMax, queued
	t.Cleanup(func() { smallGroupMax, smallQueued = g, q })
}

func TestSmallFilesInGroups(t *testing.T) {
	smallShape(t, 256, 4)
	for _, del := range []bool{false, true} {
		t.Run(fmt.Sprintf("deleteSource=%v", del), func(t *testing.T) {
			r := newRig(t)
			sums := smallTree(t, r.root, 1100)
			m := r.manager(&fakeLog{}, &tracingEndpoint{Local: r.local, tr: r.tr})
			req := Request{Sources: []string{"in/batch/"}, Destination: "out/", Recursive: true}
			if del {
				req.Disposition = DispositionDelete
			}
			id := r.submit(t, m, req)
			runOnce(context.Background(), m, 1, id)
			tr, _ := r.state.Get(id)
			if tr.State != StateCompleted {
				t.Fatalf("transfer %s: %s", tr.State, tr.Reason)
			}
			r.checkInvariants(t, id, sums)
			for i, f := range tr.Files {
				if f.State != StateCompleted || f.SourceDeleted != del {
					t.Fatalf("file %d: %s, source deleted %v", i, f.State, f.SourceDeleted)
				}
				if _, err := os.Stat(f.Source); del == (err == nil) {
					t.Fatalf("file %d: source after the transfer: %v", i, err)
				}
			}
			r.checkNoParts(t)
		})
	}
}

// TestSmallFilesCrashMidGroup "kills" the active after each number of log
// entries in turn, while groups are copied by several workers and finished
// while the next one is copied: what was recorded complete must be durable,
// renamed and whole, no source may be gone before its completion, and a new
// active must finish the transfer with every file right.
func TestSmallFilesCrashMidGroup(t *testing.T) {
	smallShape(t, 256, 4)
	for _, crashAfter := range []int{2, 3, 4, 5, 6, 7, 8, 9, 11} {
		t.Run(fmt.Sprintf("entry%d", crashAfter), func(t *testing.T) {
			r := newRig(t)
			sums := smallTree(t, r.root, 1100) // 5 groups
			req := Request{Sources: []string{"in/batch/"}, Destination: "out/", Recursive: true, Disposition: DispositionDelete}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := &fakeLog{crashAfter: crashAfter, crash: cancel}
			m := r.manager(log, &tracingEndpoint{Local: r.local, tr: r.tr})
			log.crashAfter = 0
			id := r.submit(t, m, req)
			log.crashAfter = log.entries + crashAfter
			runOnce(ctx, m, 1, id)
			r.checkInvariants(t, id, sums)

			// A new active resumes.
			m2 := r.manager(&fakeLog{index: log.index}, &tracingEndpoint{Local: r.local, tr: r.tr})
			runOnce(context.Background(), m2, 2, id)
			tr, _ := r.state.Get(id)
			if tr.State != StateCompleted {
				t.Fatalf("after the resume: %s: %s", tr.State, tr.Reason)
			}
			r.checkInvariants(t, id, sums)
			for i, f := range tr.Files {
				if !f.SourceDeleted {
					t.Fatalf("file %d: source not deleted", i)
				}
			}
			r.checkNoParts(t)
		})
	}
}

// TestSmallFilesTransientErrorMidGroup stops a group's copies with a
// transient error while the group before it is being finished: the run
// retries, and ends with every file right.
func TestSmallFilesTransientErrorMidGroup(t *testing.T) {
	smallShape(t, 256, 4)
	r := newRig(t)
	sums := smallTree(t, r.root, 900)
	var mu sync.Mutex
	opened := 0
	ep := &tracingEndpoint{Local: r.local, tr: r.tr, failOpenPart: func(string) error {
		mu.Lock()
		defer mu.Unlock()
		opened++
		if opened == 400 || opened == 401 || opened == 650 {
			return fmt.Errorf("disk hiccup: %w", errors.New("EIO"))
		}
		return nil
	}}
	m := r.manager(&fakeLog{}, ep)
	id := r.submit(t, m, Request{Sources: []string{"in/batch/"}, Destination: "out/", Recursive: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runOnce(ctx, m, 1, id)
	tr, _ := r.state.Get(id)
	if tr.State != StateCompleted {
		t.Fatalf("transfer %s: %s", tr.State, tr.Reason)
	}
	r.checkEnded(t, id, sums)
}

// TestSmallFilesPermanentFailures: files whose destination exists fail
// alone, with no .part behind, while the others complete.
func TestSmallFilesPermanentFailures(t *testing.T) {
	smallShape(t, 256, 4)
	r := newRig(t)
	sums := smallTree(t, r.root, 600)
	m := r.manager(&fakeLog{}, &tracingEndpoint{Local: r.local, tr: r.tr})
	id := r.submit(t, m, Request{Sources: []string{"in/batch"}, Destination: "out/", Recursive: true})
	// They appear after the request was accepted (one that names an
	// existing destination is refused): the copy finds them.
	for _, k := range []int{3, 300, 599} {
		p := filepath.Join(r.root, "out", "batch", fmt.Sprintf("d%d", k%3), fmt.Sprintf("f%05d", k))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("old"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	runOnce(context.Background(), m, 1, id)
	tr, _ := r.state.Get(id)
	if tr.State != StateFailed || !strings.Contains(tr.Reason, "3 of 600 files failed; first: ") || !strings.Contains(tr.Reason, "destination exists") {
		t.Fatalf("transfer %s: %q", tr.State, tr.Reason)
	}
	failed := 0
	for _, f := range tr.Files {
		if f.State == StateFailed {
			failed++
		}
	}
	if failed != 3 {
		t.Fatalf("%d files failed, want 3", failed)
	}
	r.checkEnded(t, id, sums)
}

// writingEndpoint appends to some sources just after they are read, as a
// writer that is not done with them would.
type writingEndpoint struct {
	tracingEndpoint
	written map[string]bool // source paths to write to
}

func (e *writingEndpoint) OpenSource(ctx context.Context, path string) (endpoint.SourceFile, error) {
	src, err := e.tracingEndpoint.OpenSource(ctx, path)
	if err != nil || !e.written[path] {
		return src, err
	}
	return &writtenSource{SourceFile: src, path: path}, nil
}

type writtenSource struct {
	endpoint.SourceFile
	path string
}

func (s *writtenSource) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.SourceFile.ReadAt(p, off)
	f, ferr := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if ferr == nil {
		_, ferr = f.Write([]byte("more"))
		f.Close()
	}
	if ferr != nil {
		panic(ferr)
	}
	return n, err
}

// TestSmallFilesSourceWrittenDuringTheCopy: a small file written to while
// it is copied fails with "source changed", is not put in place, and is not
// deleted; the other files complete.
func TestSmallFilesSourceWrittenDuringTheCopy(t *testing.T) {
	for _, del := range []bool{false, true} {
		t.Run(fmt.Sprintf("deleteSource=%v", del), func(t *testing.T) {
			smallShape(t, 256, 4)
			r := newRig(t)
			sums := smallTree(t, r.root, 600)
			ep := &writingEndpoint{tracingEndpoint: tracingEndpoint{Local: r.local, tr: r.tr}, written: map[string]bool{}}
			for _, k := range []int{5, 400} {
				ep.written[filepath.Join(r.root, "in", "batch", fmt.Sprintf("d%d", k%3), fmt.Sprintf("f%05d", k))] = true
			}
			m := r.manager(&fakeLog{}, ep)
			req := Request{Sources: []string{"in/batch"}, Destination: "out/", Recursive: true}
			if del {
				req.Disposition = DispositionDelete
			}
			id := r.submit(t, m, req)
			runOnce(context.Background(), m, 1, id)
			tr, _ := r.state.Get(id)
			if tr.State != StateFailed || !strings.Contains(tr.Reason, "2 of 600 files failed") {
				t.Fatalf("transfer %s: %q", tr.State, tr.Reason)
			}
			for _, f := range tr.Files {
				if !ep.written[f.Source] {
					if f.State != StateCompleted {
						t.Fatalf("%s: %s (%s)", f.Source, f.State, f.Reason)
					}
					continue
				}
				if f.State != StateFailed || !strings.Contains(f.Reason, "source changed") {
					t.Fatalf("%s, written to while copied: %s (%q), want failed: source changed", f.Source, f.State, f.Reason)
				}
				if _, err := os.Lstat(f.Destination); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s was put in place: %v", f.Destination, err)
				}
				if _, err := os.Stat(f.Source); err != nil {
					t.Fatalf("the changed source %s is gone: %v", f.Source, err)
				}
			}
			r.checkEnded(t, id, sums)
		})
	}
}

func BenchmarkSmallFilesWorkers(b *testing.B) {
	for _, w := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprint(w), func(b *testing.B) {
			defer func(old int) { smallWorkers = old }(smallWorkers)
			smallWorkers = w
			BenchmarkSmallFiles(b)
		})
	}
}

func BenchmarkSmallFilesQueue(b *testing.B) {
	for _, q := range []int{1, 4, 16} {
		for _, g := range []int{128, 256, 512} {
			b.Run(fmt.Sprintf("queued%d-group%d", q, g), func(b *testing.B) {
				defer func(q, g int) { smallQueued, smallGroupMax = q, g }(smallQueued, smallGroupMax)
				smallQueued, smallGroupMax = q, g
				BenchmarkSmallFiles(b)
			})
		}
	}
}

// noSync is the local endpoint without its syncs: to measure what they
// cost (never for real use).
type noSync struct{ *endpoint.Local }

func (noSync) BeginParts(context.Context) (endpoint.PartBatch, error) { return noSyncBatch{}, nil }

type noSyncBatch struct{}

func (noSyncBatch) Sync(context.Context, []string) error { return nil }
func (noSyncBatch) Close() error                         { return nil }

func (noSync) SyncDirs(context.Context, []string) error { return nil }

func (noSync) RenameAll(_ context.Context, paths []string, _ bool) []error {
	errs := make([]error, len(paths))
	for i, p := range paths {
		errs[i] = os.Rename(endpoint.PartName(p), p)
	}
	return errs
}

func BenchmarkSmallFilesNoSync(b *testing.B) {
	benchmarkSmallFiles(b, func(l *endpoint.Local) endpoint.Endpoint { return noSync{l} })
}

// BenchmarkSmallFiles runs a recursive transfer of 2,000 files of 4 KiB in
// this process (the log applies in place, no raft): the group path.
func BenchmarkSmallFiles(b *testing.B) {
	benchmarkSmallFiles(b, func(l *endpoint.Local) endpoint.Endpoint { return l })
}

func benchmarkSmallFiles(b *testing.B, endpointOf func(*endpoint.Local) endpoint.Endpoint) {
	const n = 2000
	r := newRig(b)
	buf := make([]byte, 4096)
	for i := range n {
		p := filepath.Join(r.root, "in", "batch", fmt.Sprintf("f%05d", i))
		if i == 0 {
			_ = os.MkdirAll(filepath.Dir(p), 0o750)
		}
		buf[0] = byte(i)
		if err := os.WriteFile(p, buf, 0o640); err != nil {
			b.Fatal(err)
		}
	}
	m := r.manager(&fakeLog{}, endpointOf(r.local))
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for i := range b.N {
		id := r.submit(b, m, Request{Sources: []string{"in/batch/"}, Destination: fmt.Sprintf("out/%d/", i), Recursive: true})
		runOnce(context.Background(), m, 1, id)
		if tr, _ := r.state.Get(id); tr.State != StateCompleted {
			b.Fatalf("transfer %s: %s", tr.State, tr.Reason)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/file")
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-µs/file")
}

// TestSmallFilesCancelMidway cancels a transfer of small files while its
// groups are copied and finished (Manager.Run schedules it, as on the
// active): the transfer ends cancelled, what was recorded complete is
// durable and whole, and no .part is left anywhere.
func TestSmallFilesCancelMidway(t *testing.T) {
	smallShape(t, 256, 4)
	r := newRig(t)
	sums := smallTree(t, r.root, 3000)
	m := r.manager(&fakeLog{}, &tracingEndpoint{Local: r.local, tr: r.tr})
	id := r.submit(t, m, Request{Sources: []string{"in/batch/"}, Destination: "out/", Recursive: true})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		m.Run(ctx, ha.Lease{Epoch: 1})
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		tr, _ := r.state.Get(id)
		done := 0
		for _, f := range tr.Files {
			if f.State == StateCompleted {
				done++
			}
		}
		if done > 0 || Terminal(tr.State) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no file completed within a minute")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := m.Cancel(context.Background(), id); err != nil {
		var re *RequestError
		if !errors.As(err, &re) { // "already ended" would be a too-fast machine
			t.Fatal(err)
		}
	}
	stop()
	<-ran
	tr, _ := r.state.Get(id)
	if tr.State != StateCancelled && tr.State != StateCompleted {
		t.Fatalf("transfer %s", tr.State)
	}
	count := map[string]int{}
	for _, f := range tr.Files {
		count[f.State]++
	}
	// Cancel stops the run before it records the cancel: no cancelled
	// file's copy was renamed into place.
	stray := 0
	for _, f := range tr.Files {
		if f.State != StateCompleted {
			if _, err := os.Lstat(f.Destination); err == nil {
				stray++
			}
		}
	}
	t.Logf("transfer %s: files %v", tr.State, count)
	if stray > 0 {
		t.Fatalf("%d files not completed have their destination in place", stray)
	}
	r.checkEnded(t, id, sums)
}

// Under a bandwidth limit a group holds about a second of copying, so that
// progress (files completed) moves; without one, smallGroupSize.
func TestSmallGroupBytesFollowsTheBandwidthLimit(t *testing.T) {
	for _, c := range []struct {
		transfer, agent, want int64
	}{
		{0, 0, smallGroupSize},
		{4 << 20, 0, 4 << 20},
		{4 << 20, 1 << 20, 1 << 20},
		{1 << 20, 4 << 20, 1 << 20},
		{0, 2 << 20, 2 << 20},
		{1 << 10, 0, smallGroupFloor},
		{1 << 40, 0, smallGroupSize},
	} {
		m := &Manager{limits: Limits{MaxBandwidth: c.agent}}
		tr := &Transfer{Request: Request{BandwidthLimit: c.transfer}}
		if got := m.smallGroupBytes(tr); got != c.want {
			t.Errorf("transfer limit %d, agent limit %d: %d bytes a group, want %d", c.transfer, c.agent, got, c.want)
		}
	}
	// smallGroup keeps to the bound (one file at least).
	tr := &Transfer{}
	for range 10 {
		tr.Files = append(tr.Files, File{State: StateQueued, Bytes: 100 << 10})
	}
	if g := smallGroup(tr, 0, 350<<10); len(g) != 3 {
		t.Errorf("files of 100 KiB under 350 KiB: a group of %d, want 3", len(g))
	}
	if g := smallGroup(tr, 0, 10<<10); len(g) != 1 {
		t.Errorf("files of 100 KiB under 10 KiB: a group of %d, want 1", len(g))
	}
}
