package endpoint

import (
	"context"
	"fmt"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// Mux is the Endpoint a transfer uses: each path goes to where it lives,
// the local file system or an SFTP partner (its resolved form, SFTPPath),
// so one transfer may read from one and write to the other. Fenced wraps
// the Mux, so every change to an SFTP server is fenced by the lease as a
// local one is.
type Mux struct {
	Local Endpoint
	SFTP  map[string]*SFTP // by partner name
}

var _ Endpoint = (*Mux)(nil)

// Partner returns the SFTP endpoint of a resolved SFTP path.
func (m *Mux) Partner(p string) (*SFTP, error) {
	name, _, _ := SplitSFTP(p)
	s, ok := m.SFTP[name]
	if !ok {
		return nil, fmt.Errorf("%s: SFTP partner %q is not configured (sftp.%s.address and the rest in agent.properties): %w", UserSFTP(p), name, name, ErrNoPartner)
	}
	return s, nil
}

func (m *Mux) route(p string) (Endpoint, error) {
	if !IsSFTP(p) {
		return m.Local, nil
	}
	return m.Partner(p)
}

// CloseSFTP closes every SFTP connection (the lease ended).
func (m *Mux) CloseSFTP() {
	for _, s := range m.SFTP {
		_ = s.Close()
	}
}

func (m *Mux) Stat(ctx context.Context, p string) (Info, error) {
	e, err := m.route(p)
	if err != nil {
		return Info{}, err
	}
	return e.Stat(ctx, p)
}

func (m *Mux) OpenSource(ctx context.Context, p string) (SourceFile, error) {
	e, err := m.route(p)
	if err != nil {
		return nil, err
	}
	return e.OpenSource(ctx, p)
}

func (m *Mux) OpenPart(ctx context.Context, p string, offset int64) (PartFile, error) {
	e, err := m.route(p)
	if err != nil {
		return nil, err
	}
	return e.OpenPart(ctx, p, offset)
}

func (m *Mux) Commit(ctx context.Context, p string, overwrite bool) error {
	e, err := m.route(p)
	if err != nil {
		return err
	}
	return e.Commit(ctx, p, overwrite)
}

func (m *Mux) Exists(ctx context.Context, p string) (bool, error) {
	e, err := m.route(p)
	if err != nil {
		return false, err
	}
	return e.Exists(ctx, p)
}

func (m *Mux) Remove(ctx context.Context, p string) error {
	e, err := m.route(p)
	if err != nil {
		return err
	}
	return e.Remove(ctx, p)
}

func (m *Mux) MakeDir(ctx context.Context, p string) error {
	e, err := m.route(p)
	if err != nil {
		return err
	}
	return e.MakeDir(ctx, p)
}

func (m *Mux) CheckName(p string) error {
	e, err := m.route(p)
	if err != nil {
		return err
	}
	return e.CheckName(p)
}

func (m *Mux) RemoveSource(ctx context.Context, p string, was checkpoint.Source) error {
	e, err := m.route(p)
	if err != nil {
		return err
	}
	return e.RemoveSource(ctx, p, was)
}

// split groups paths by the endpoint they go to, keeping their indexes;
// a path of no endpoint gets its error in errs.
func (m *Mux) split(paths []string, errs []error) map[Endpoint][]int {
	groups := map[Endpoint][]int{}
	for i, p := range paths {
		e, err := m.route(p)
		if err != nil {
			errs[i] = err
			continue
		}
		groups[e] = append(groups[e], i)
	}
	return groups
}

func pick(paths []string, idx []int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = paths[i]
	}
	return out
}

func (m *Mux) RenameAll(ctx context.Context, paths []string, overwrite bool) []error {
	errs := make([]error, len(paths))
	for e, idx := range m.split(paths, errs) {
		for k, err := range e.RenameAll(ctx, pick(paths, idx), overwrite) {
			errs[idx[k]] = err
		}
	}
	return errs
}

func (m *Mux) SyncDirs(ctx context.Context, paths []string) error {
	errs := make([]error, len(paths))
	for e, idx := range m.split(paths, errs) {
		if err := e.SyncDirs(ctx, pick(paths, idx)); err != nil {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// BeginParts begins a local batch at once (it must see every write made
// after it) and an SFTP one when its paths are synced.
func (m *Mux) BeginParts(ctx context.Context) (PartBatch, error) {
	b, err := m.Local.BeginParts(ctx)
	if err != nil {
		return nil, err
	}
	return &muxBatch{m: m, local: b}, nil
}

type muxBatch struct {
	m     *Mux
	local PartBatch
}

func (b *muxBatch) Sync(ctx context.Context, paths []string) error {
	errs := make([]error, len(paths))
	for e, idx := range b.m.split(paths, errs) {
		var err error
		if e == b.m.Local {
			err = b.local.Sync(ctx, pick(paths, idx))
		} else {
			// Each SFTP .part was synced when it was closed.
			err = ctx.Err()
		}
		if err != nil {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (b *muxBatch) Close() error { return b.local.Close() }
