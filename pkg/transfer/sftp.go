package transfer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/ftagent/ftagent/pkg/sandbox"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
)

// SetSFTP gives the manager the SFTP partners its endpoint reaches (the
// Mux under its fenced endpoint): a request may name sftp://PARTNER/path
// as a source or its destination. Called before Run.
func (m *Manager) SetSFTP(mux *endpoint.Mux) { m.mux = mux }

// partner returns the SFTP endpoint of a resolved SFTP path.
func (m *Manager) partner(p string) (*endpoint.SFTP, error) {
	if m.mux == nil {
		return nil, fmt.Errorf("%s: no SFTP partner is configured: %w", endpoint.UserSFTP(p), endpoint.ErrNoPartner)
	}
	return m.mux.Partner(p)
}

// planSFTP plans one source argument on an SFTP partner, as plan does a
// local one: its directories (recursive), then its files, listed on the
// server by the active (endpoint.SFTP.Walk). A source that cannot be
// listed now (the server unreachable, its host key not trusted, a missing
// file) refuses the request with the reason: there is nothing to accept.
//
// As for a local source, the directories of every source are planned
// before any file: plan calls it for the directories (wantDirs), then
// again for the files.
func (m *Manager) planSFTP(ctx context.Context, req Request, wantDirs bool, src, prefix, dest string, single bool, resolver *sandbox.Resolver, seen, seenDir map[string]string, cr *creation, files *int, stop *error) error {
	bad := func(format string, args ...any) error { return &RequestError{Reason: fmt.Sprintf(format, args...)} }
	s, err := m.partner(src)
	if err != nil {
		return bad("source %v", err)
	}
	base := dest
	if prefix != "" && wantDirs {
		base = filepath.Join(dest, prefix)
		if err := m.sftpDir(src, base, resolver, seenDir, cr); err != nil {
			return err
		}
	}
	dirs := func(e endpoint.SFTPEntry) error {
		if !wantDirs || !req.Recursive {
			return nil
		}
		*stop = m.sftpDir(e.Path, filepath.Join(base, filepath.FromSlash(e.Rel)), resolver, seenDir, cr)
		return *stop
	}
	limit := m.limits.MaxFilesPerTransfer
	walkFiles := func(e endpoint.SFTPEntry) error {
		if wantDirs {
			return nil
		}
		if limit > 0 && *files >= limit {
			return sandbox.ErrTooManyFiles
		}
		*files++
		if !endpoint.CheckUTF8(e.Path) {
			return bad("source %q: an SFTP name must be UTF-8", endpoint.UserSFTP(e.Path))
		}
		*stop = m.planFile(sandbox.File{Path: e.Path, Rel: e.Rel, Size: e.Size}, dest, prefix, single, resolver, seen, seenDir, cr)
		return *stop
	}
	err = s.Walk(ctx, src, req.Recursive, dirs, walkFiles)
	switch {
	case *stop != nil:
		return *stop
	case err != nil && wantDirs && !errors.Is(err, sandbox.ErrTooManyFiles):
		var re *RequestError
		if errors.As(err, &re) {
			return err
		}
		return bad("source %v", err)
	case errors.Is(err, sandbox.ErrTooManyFiles):
		return bad("the request names more than %d files (maxFilesPerTransfer=%d): split it, or raise maxFilesPerTransfer", limit, limit)
	case ctx.Err() != nil:
		return fmt.Errorf("plan transfer: %w", ctx.Err())
	case err != nil:
		var re *RequestError
		if errors.As(err, &re) {
			return err
		}
		return bad("source %v", err)
	}
	return nil
}

// sftpDir adds one directory of an SFTP source's tree to the plan.
func (m *Manager) sftpDir(src, target string, resolver *sandbox.Resolver, seenDir map[string]string, cr *creation) error {
	if resolver != nil {
		if _, err := resolver.Resolve(target); err != nil {
			return &RequestError{Reason: fmt.Sprintf("destination %v", err)}
		}
	}
	if seenDir != nil {
		if _, dup := seenDir[target]; dup {
			return nil
		}
		seenDir[target] = src
	}
	return cr.addDir(Dir{Source: src, Destination: target})
}
