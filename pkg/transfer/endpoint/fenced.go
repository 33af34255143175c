package endpoint

import (
	"context"
	"time"

	"github.com/ftagent/ftagent/pkg/audit"
)

// Fence answers, immediately before a change to storage, whether this
// instance holds the lease: the epoch to act under and when that was
// checked, or an error (ha.Node's CheckLease).
type Fence interface {
	CheckLease() (epoch uint64, checked time.Time, err error)
}

// Fenced wraps an Endpoint so that no change reaches storage unless the
// Fence allows it at that moment: every write to a .part, every truncation
// (OpenPart), rename (Commit, RenameAll), removal and directory made
// (MakeDir). Reads, syncs and name checks pass through. Each change allowed is recorded in Audit (when not nil) with the
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

func (e Fenced) record(op string, epoch uint64, checked time.Time, path string, off, n int64) {
	if e.Audit == nil {
		return
	}
	_ = e.Audit.Record(audit.Record{Checked: checked.UnixNano(), Epoch: epoch, Op: op, Path: path, Offset: off, N: n})
}

func (e Fenced) OpenPart(ctx context.Context, path string, offset int64) (PartFile, error) {
	epoch, checked, err := e.Fence.CheckLease()
	if err != nil {
		return nil, err
	}
	p, err := e.Endpoint.OpenPart(ctx, path, offset)
	if err != nil {
		return nil, err
	}
	e.record(audit.OpTruncate, epoch, checked, PartName(path), offset, 0)
	return &fencedPart{PartFile: p, e: e, path: PartName(path), pos: offset}, nil
}

type fencedPart struct {
	PartFile
	e    Fenced
	path string
	pos  int64
}

func (p *fencedPart) Write(b []byte) (int, error) {
	epoch, checked, err := p.e.Fence.CheckLease()
	if err != nil {
		return 0, err
	}
	n, err := p.PartFile.Write(b)
	if n > 0 {
		p.e.record(audit.OpWrite, epoch, checked, p.path, p.pos, int64(n))
		p.pos += int64(n)
	}
	return n, err
}

func (e Fenced) Commit(ctx context.Context, path string, overwrite bool) error {
	epoch, checked, err := e.Fence.CheckLease()
	if err != nil {
		return err
	}
	err = e.Endpoint.Commit(ctx, path, overwrite)
	if err == nil {
		e.record(audit.OpRename, epoch, checked, path, 0, 0)
	}
	return err
}

func (e Fenced) RenameAll(ctx context.Context, paths []string, overwrite bool) []error {
	epoch, checked, err := e.Fence.CheckLease()
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
	epoch, checked, err := e.Fence.CheckLease()
	if err != nil {
		return err
	}
	err = e.Endpoint.Remove(ctx, path)
	if err == nil {
		e.record(audit.OpRemove, epoch, checked, path, 0, 0)
	}
	return err
}

// OpMkdir is the audit record of a directory made (MakeDir).
const OpMkdir = "mkdir"

func (e Fenced) MakeDir(ctx context.Context, path string) error {
	epoch, checked, err := e.Fence.CheckLease()
	if err != nil {
		return err
	}
	err = e.Endpoint.MakeDir(ctx, path)
	if err == nil {
		e.record(OpMkdir, epoch, checked, path, 0, 0)
	}
	return err
}
