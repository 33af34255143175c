package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// Local is the Endpoint of the local file system: for an HA agent, the
// storage that all its instances share. Its operations do not block on the
// context (local system calls cannot be interrupted); they refuse to start
// once it is done.
type Local struct{}

var _ Endpoint = Local{}

const (
	dirMode  = 0o750
	partMode = 0o640
)

func infoOf(fi fs.FileInfo) Info {
	return Info{Size: fi.Size(), Source: checkpoint.Identify(fi), IsDir: fi.IsDir()}
}

func (Local) Stat(ctx context.Context, path string) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Info{}, err
	}
	return infoOf(fi), nil
}

func (Local) OpenSource(ctx context.Context, path string) (SourceFile, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Non-blocking, so that a FIFO put in a source's place does not block
	// the open until a writer comes; what is not a regular file is refused
	// below. (For a regular file the flag changes nothing.)
	f, err := openFile(path, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	// The identity is that of the file opened, not of whatever the name
	// pointed at a moment before.
	fi, err := f.Stat()
	if err == nil {
		err = regular(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &localSource{f: f, info: infoOf(fi)}, nil
}

func regular(path string, fi fs.FileInfo) error {
	switch {
	case fi.IsDir():
		return &fs.PathError{Op: "open source", Path: path, Err: syscall.EISDIR}
	case !fi.Mode().IsRegular():
		return fmt.Errorf("open source %s: not a regular file (%s): %w", path, fi.Mode().Type(), fs.ErrInvalid)
	}
	return nil
}

type localSource struct {
	f    *os.File
	info Info
}

func (s *localSource) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }
func (s *localSource) Close() error                            { return s.f.Close() }
func (s *localSource) Info() Info                              { return s.info }

func (s *localSource) Stat() (Info, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return Info{}, err
	}
	return infoOf(fi), nil
}

func (Local) OpenPart(ctx context.Context, path string, offset int64) (PartFile, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	part := PartName(path)
	if offset < 0 {
		return nil, fmt.Errorf("open %s at offset %d: %w", part, offset, fs.ErrInvalid)
	}
	if offset == 0 {
		// The directories are made only when missing: most files go to a
		// directory that exists, and a lookup of it per file costs.
		const flags = syscall.O_WRONLY | syscall.O_CREAT | syscall.O_TRUNC | syscall.O_NOFOLLOW
		f, err := openFile(part, flags, partMode)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
				return nil, err
			}
			f, err = openFile(part, flags, partMode)
		}
		if err != nil {
			return nil, err
		}
		return newLocalPart(f, 0), nil
	}
	f, err := openFile(part, syscall.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("resume %s at offset %d: %w: %w", part, offset, ErrPartLost, err)
	}
	if err != nil {
		return nil, err
	}
	fail := func(err error) (PartFile, error) {
		f.Close()
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if fi.Size() < offset {
		return fail(fmt.Errorf("resume %s at offset %d: it holds only %d bytes: %w", part, offset, fi.Size(), ErrPartLost))
	}
	// Bytes after the checkpoint may be any mix of old writes that reached
	// the disk and ones that did not: they are written again. The cut needs
	// no sync of its own; the next checkpoint's sync covers it.
	if fi.Size() > offset {
		if err := f.Truncate(offset); err != nil {
			return fail(err)
		}
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fail(err)
	}
	return newLocalPart(f, offset), nil
}

// writebackChunk is how much a .part accumulates before its writeback to
// disk is started (where the platform allows it): the disk then works while
// the copy goes on, and the sync at a checkpoint finds little left to do.
const writebackChunk = 8 << 20

type localPart struct {
	f      *os.File
	pos    int64 // offset after the last byte written
	queued int64 // writeback has been started for the bytes before this
}

func newLocalPart(f *os.File, offset int64) *localPart {
	return &localPart{f: f, pos: offset, queued: offset}
}

func (p *localPart) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	p.pos += int64(n)
	if p.pos-p.queued >= writebackChunk {
		startWriteback(p.f, p.queued, p.pos-p.queued)
		p.queued = p.pos
	}
	return n, err
}

func (p *localPart) Sync() error  { return datasync(p.f) }
func (p *localPart) Close() error { return p.f.Close() }

func (Local) Commit(ctx context.Context, path string, overwrite bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done, err := rename(path, overwrite)
	if serr := syncDir(filepath.Dir(path)); serr != nil && (err == nil || done) {
		return fmt.Errorf("commit %s: %w", path, serr)
	}
	return err
}

// rename moves PartName(path) to path without syncing; done reports that the
// name path now holds the file (renamed now, or before: ErrAlreadyCommitted).
// The rename is tried first and the names looked at only when it fails: the
// .part was created by OpenPart, which refuses a link in its place.
func rename(path string, overwrite bool) (done bool, err error) {
	part := PartName(path)
	if overwrite {
		err = os.Rename(part, path)
	} else {
		err = renameNoReplace(part, path)
	}
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrExists) {
		return false, fmt.Errorf("commit %s: %w", path, err)
	}
	// A missing .part (or, where the rename without replacing is a check
	// and a rename, an existing destination) may be a replay.
	if _, perr := os.Lstat(part); perr == nil || !errors.Is(perr, fs.ErrNotExist) {
		// The .part is there: the rename's own error says what is wrong
		// (the destination exists, its directory is missing).
		return false, fmt.Errorf("commit %s: %w", path, err)
	}
	_, derr := os.Lstat(path)
	switch {
	case derr == nil:
		// The rename was done before a failover; it may not have
		// reached the disk yet: the caller syncs the directory.
		return true, fmt.Errorf("commit %s: %w", path, ErrAlreadyCommitted)
	case !errors.Is(derr, fs.ErrNotExist):
		return false, fmt.Errorf("commit %s: %w", path, derr)
	}
	return false, fmt.Errorf("commit %s: %s is missing: %w", path, part, err)
}

func (Local) RenameAll(ctx context.Context, paths []string, overwrite bool) []error {
	errs := make([]error, len(paths))
	for i, p := range paths {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		_, errs[i] = rename(p, overwrite)
	}
	return errs
}

func (Local) SyncDirs(ctx context.Context, paths []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, dir := range parentDirs(paths) {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("sync directory %s: %w", dir, err)
		}
	}
	return nil
}

func (Local) SyncParts(ctx context.Context, paths []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// One syncfs per file system holding them (told apart by device),
	// looking once at each directory.
	seen := map[uint64]bool{}
	for _, dir := range parentDirs(paths) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
		dev := checkpoint.Identify(fi).Device
		if seen[dev] {
			continue
		}
		seen[dev] = true
		err = syncFS(dir)
		if errors.Is(err, errNoSyncFS) {
			return syncEach(paths)
		}
		if err != nil {
			return fmt.Errorf("sync file system of %s: %w", dir, err)
		}
	}
	return nil
}

var errNoSyncFS = errors.New("no syncfs on this platform")

// parentDirs returns the distinct parent directories of paths, in the order
// they first appear.
func parentDirs(paths []string) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, p := range paths {
		if dir := filepath.Dir(p); !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

func syncEach(paths []string) error {
	for _, p := range paths {
		f, err := openFile(PartName(p), syscall.O_WRONLY, 0)
		if err != nil {
			return err
		}
		err = datasync(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// renameNoReplace renames oldpath to newpath unless newpath exists
// (ErrExists). Where the file system can do that in one step it does;
// elsewhere (NFS, non-Linux) it checks and then renames: only one instance
// writes at a time (invariant 1), so the window is open only to a writer
// from outside ftagent.
func renameNoReplace(oldpath, newpath string) error {
	err := exclusiveRename(oldpath, newpath)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return ErrExists
	case !errors.Is(err, errNoExclusiveRename):
		return err
	}
	_, err = os.Lstat(newpath)
	switch {
	case err == nil:
		return ErrExists
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return os.Rename(oldpath, newpath)
}

// exclusiveRename is renameExclusive; tests replace it to take the path of
// file systems without an exclusive rename.
var exclusiveRename = renameExclusive

// errNoExclusiveRename: the platform or file system cannot rename without
// replacing in one step.
var errNoExclusiveRename = errors.New("no exclusive rename")

func syncDir(dir string) error {
	d, err := openFile(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (Local) Exists(ctx context.Context, path string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

func (Local) Remove(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// openFile is os.OpenFile for the files of a transfer, without the poller:
// os.OpenFile offers every descriptor to epoll (four fcntl calls and one
// epoll_ctl, all for nothing on a regular file or a directory), which for
// many small files costs as much as a lookup.
func openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
		switch err {
		case nil:
			return os.NewFile(uintptr(fd), path), nil
		case syscall.EINTR:
			continue
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
}
