package endpoint

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// Fence answers, immediately before a change to storage, whether this
// instance still holds the lease at the epoch the work began under, and
// when that was checked (ha.Node's CheckLeaseAt). Work begun under one
// lease is refused once the lease has moved on, even to this same
// instance at a later epoch.
type Fence interface {
	CheckLeaseAt(epoch uint64) (checked time.Time, err error)
}

type epochKey struct{}

// noMkdirKey marks a context whose OpenPart makes no directory: Fenced
// makes them itself, fenced (Local.OpenPart reads it with noMkdir).
type noMkdirKey struct{}

func noMkdir(ctx context.Context) bool {
	v, _ := ctx.Value(noMkdirKey{}).(bool)
	return v
}

// WithEpoch returns a context for work done under the lease of epoch: every
// change that Fenced makes for it is checked against that epoch and
// audited under it.
func WithEpoch(ctx context.Context, epoch uint64) context.Context {
	return context.WithValue(ctx, epochKey{}, epoch)
}

// EpochOf returns the lease epoch ctx's work was begun under (WithEpoch).
func EpochOf(ctx context.Context) (uint64, bool) {
	e, ok := ctx.Value(epochKey{}).(uint64)
	return e, ok
}

// ErrNoEpoch refuses a change to storage asked for without the lease epoch
// it is done under (a context without WithEpoch).
var ErrNoEpoch = errors.New("no lease epoch given for a change to storage")

// Fenced wraps an Endpoint so that no change reaches storage unless the
// Fence allows it at that moment, for the epoch of the caller's context:
// every write to a .part, every truncation (OpenPart), rename (Commit,
// RenameAll), removal (Remove, RemoveSource) and directory made (MakeDir).
// Reads, syncs and name checks pass through. Each change allowed is
// recorded in Audit (when not nil) with the
// epoch and the time of its check, after it was made.
//
// A refusal is an ordinary (transient) error: the lease has moved or cannot
// be confirmed, and the work stops when the instance's lease ends.
type Fenced struct {
	Endpoint
	Fence Fence
	Audit *audit.Log
}

var _ Endpoint = Fenced{}

// check asks the fence for ctx's epoch.
func (e Fenced) check(ctx context.Context) (uint64, time.Time, error) {
	epoch, ok := EpochOf(ctx)
	if !ok {
		return 0, time.Time{}, ErrNoEpoch
	}
	checked, err := e.Fence.CheckLeaseAt(epoch)
	return epoch, checked, err
}

func (e Fenced) record(op string, epoch uint64, checked time.Time, path string, off, n int64) {
	if e.Audit == nil {
		return
	}
	_ = e.Audit.Record(audit.Record{Checked: checked.UnixNano(), Epoch: epoch, Op: op, Path: path, Offset: off, N: n})
}

func (e Fenced) OpenPart(ctx context.Context, path string, offset int64) (PartFile, error) {
	epoch, checked, err := e.check(ctx)
	if err != nil {
		return nil, err
	}
	// The directories are made apart, each fenced, and the lease checked
	// again just before the .part is created: making them can take long
	// on slow storage, and an active paused in between must not create
	// (or truncate) a .part that the next active is writing.
	nctx := context.WithValue(ctx, noMkdirKey{}, true)
	p, err := e.Endpoint.OpenPart(nctx, path, offset)
	if offset == 0 && errors.Is(err, fs.ErrNotExist) {
		if err := e.MakeDir(ctx, filepath.Dir(path)); err != nil {
			return nil, err
		}
		if epoch, checked, err = e.check(ctx); err != nil {
			return nil, err
		}
		p, err = e.Endpoint.OpenPart(nctx, path, offset)
	}
	if err != nil {
		return nil, err
	}
	e.record(audit.OpTruncate, epoch, checked, PartName(path), offset, 0)
	return &fencedPart{PartFile: p, e: e, epoch: epoch, path: PartName(path), pos: offset}, nil
}

type fencedPart struct {
	PartFile
	e     Fenced
	epoch uint64 // the lease its writes are made under
	path  string
	pos   int64
}

func (p *fencedPart) Write(b []byte) (int, error) {
	checked, err := p.e.Fence.CheckLeaseAt(p.epoch)
	if err != nil {
		return 0, err
	}
	n, err := p.PartFile.Write(b)
	if n > 0 {
		p.e.record(audit.OpWrite, p.epoch, checked, p.path, p.pos, int64(n))
		p.pos += int64(n)
	}
	return n, err
}

// change makes one change to path, do, if the fence allows it now, and
// records it in the audit trail as op once made.
func (e Fenced) change(ctx context.Context, op, path string, do func() error) error {
	epoch, checked, err := e.check(ctx)
	if err != nil {
		return err
	}
	err = do()
	if err == nil {
		e.record(op, epoch, checked, path, 0, 0)
	}
	return err
}

func (e Fenced) Commit(ctx context.Context, path string, overwrite bool) error {
	return e.change(ctx, audit.OpRename, path, func() error { return e.Endpoint.Commit(ctx, path, overwrite) })
}

func (e Fenced) RenameAll(ctx context.Context, paths []string, overwrite bool) []error {
	epoch, checked, err := e.check(ctx)
	if err != nil {
		errs := make([]error, len(paths))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	errs := e.Endpoint.RenameAll(ctx, paths, overwrite)
	for i, p := range paths {
		if errs[i] == nil {
			e.record(audit.OpRename, epoch, checked, p, 0, 0)
		}
	}
	return errs
}

func (e Fenced) Remove(ctx context.Context, path string) error {
	return e.change(ctx, audit.OpRemove, path, func() error { return e.Endpoint.Remove(ctx, path) })
}

func (e Fenced) RemoveSource(ctx context.Context, path string, was checkpoint.Source) error {
	return e.change(ctx, audit.OpRemove, path, func() error { return e.Endpoint.RemoveSource(ctx, path, was) })
}

// OpMkdir is the audit record of a directory made (MakeDir).
const OpMkdir = "mkdir"

func (e Fenced) MakeDir(ctx context.Context, path string) error {
	return e.change(ctx, OpMkdir, path, func() error { return e.Endpoint.MakeDir(ctx, path) })
}
