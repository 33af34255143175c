//go:build unix

package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// Local is the Endpoint of the local file system: for an HA agent, the
// storage that all its instances share. Every path it is given must lie
// beneath one of its roots (the sandbox's allowed directories), and is
// resolved beneath that root again each time it is used (beneath.go): what
// was true when the transfer was accepted proves nothing later.
//
// Its operations do not block on the context (local system calls cannot be
// interrupted); they refuse to start once it is done.
type Local struct {
	roots []*mount // the longest path first: a path belongs to the innermost
}

var _ Endpoint = (*Local)(nil)

const (
	dirMode  = 0o750
	partMode = 0o640
)

// NewLocal returns the local endpoint confined beneath roots: absolute
// directories, their symbolic links resolved (sandbox.Sandbox's Roots). The
// roots are opened now and held until Close.
func NewLocal(roots ...string) (*Local, error) {
	l := &Local{}
	for _, p := range roots {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			l.Close()
			return nil, fmt.Errorf("endpoint root %q is not an absolute clean path", p)
		}
		r, err := openRoot(p)
		if err != nil {
			l.Close()
			return nil, err
		}
		m := &mount{path: p}
		m.cur.Store(r)
		m.checked.Store(time.Now().UnixNano())
		l.roots = append(l.roots, m)
	}
	if len(l.roots) == 0 {
		return nil, errors.New("endpoint: no root")
	}
	sort.SliceStable(l.roots, func(i, j int) bool { return len(l.roots[i].path) > len(l.roots[j].path) })
	return l, nil
}

// Close releases the roots.
func (l *Local) Close() error {
	for _, m := range l.roots {
		unix.Close(m.cur.Load().fd)
	}
	l.roots = nil
	return nil
}

// find returns the root path lies beneath and path relative to it.
func (l *Local) find(op, path string) (*root, string, error) {
	if filepath.IsAbs(path) && filepath.Clean(path) == path {
		for _, m := range l.roots {
			r := m.cur.Load()
			if rel, ok := r.rel(path); ok {
				return m.current(), rel, nil
			}
		}
	}
	return nil, "", &fs.PathError{Op: op, Path: path, Err: ErrOutsideRoot}
}

func infoOf(fi fs.FileInfo) Info {
	return Info{Size: fi.Size(), Source: checkpoint.Identify(fi), IsDir: fi.IsDir()}
}

// Stat describes path itself: a symbolic link is refused, not followed.
func (l *Local) Stat(ctx context.Context, path string) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	r, rel, err := l.find("stat", path)
	if err != nil {
		return Info{}, err
	}
	fd, err := r.open(rel, pathOnly, 0)
	if err != nil {
		return Info{}, pathErr("stat", path, err)
	}
	f := fileOf(fd, path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Info{}, err
	}
	return infoOf(fi), nil
}

func (l *Local) OpenSource(ctx context.Context, path string) (SourceFile, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, rel, err := l.find("open source", path)
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that a FIFO put in a source's place does not block
	// the open until a writer comes; what is not a regular file is refused
	// below. (For a regular file the flag changes nothing.)
	fd, err := r.open(rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, pathErr("open source", path, err)
	}
	f := fileOf(fd, path)
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
		return &fs.PathError{Op: "open source", Path: path, Err: unix.EISDIR}
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

func (l *Local) OpenPart(ctx context.Context, path string, offset int64) (PartFile, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	part := PartName(path)
	if offset < 0 {
		return nil, fmt.Errorf("open %s at offset %d: %w", part, offset, fs.ErrInvalid)
	}
	r, rel, err := l.find("open", part)
	if err != nil {
		return nil, err
	}
	if offset == 0 {
		// The directories are made only when missing: most files go to a
		// directory that exists, and a lookup of it per file costs.
		const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC
		fd, err := r.open(rel, flags, partMode)
		if err == unix.ENOENT && !noMkdir(ctx) {
			if err := r.mkdirAll(filepath.Dir(rel), dirMode); err != nil {
				return nil, pathErr("mkdir", filepath.Dir(path), err)
			}
			fd, err = r.open(rel, flags, partMode)
		}
		if err != nil {
			return nil, pathErr("open", part, err)
		}
		return newLocalPart(fileOf(fd, part), 0), nil
	}
	fd, err := r.open(rel, unix.O_WRONLY, 0)
	if err == unix.ENOENT {
		return nil, fmt.Errorf("resume %s at offset %d: %w: %w", part, offset, ErrPartLost, pathErr("open", part, err))
	}
	if err != nil {
		return nil, pathErr("open", part, err)
	}
	f := fileOf(fd, part)
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

// Sync reports the errors of this descriptor's own writes: it is the one
// that wrote them (fdatasync's error tracking is per open file).
func (p *localPart) Sync() error  { return datasync(p.f) }
func (p *localPart) Close() error { return p.f.Close() }

func (l *Local) Commit(ctx context.Context, path string, overwrite bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, rel, err := l.find("commit", path)
	if err != nil {
		return err
	}
	d, err := openDirs(r, []string{rel})
	if err != nil {
		return fmt.Errorf("commit %s: %w", path, pathErr("open", filepath.Dir(path), err))
	}
	defer d.close()
	dir, name := d.of(rel)
	done, err := rename(dir, name, path, overwrite)
	if serr := syncFD(dir); serr != nil && (err == nil || done) {
		return fmt.Errorf("commit %s: sync directory: %w", path, serr)
	}
	return err
}

// rename moves name's .part to name in the directory dir without syncing;
// done reports that the name now holds the file (renamed now, or before:
// ErrAlreadyCommitted). path names it in errors. The rename is tried
// first and the names looked at only when it fails: the .part was created
// by OpenPart, which refuses a link in its place.
func rename(dir int, name, path string, overwrite bool) (done bool, err error) {
	part := PartName(name)
	if overwrite {
		err = renameat(dir, part, name)
	} else {
		err = renameNoReplace(dir, part, name)
	}
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrExists) {
		return false, fmt.Errorf("commit %s: %w", path, err)
	}
	// A missing .part (or, where the rename without replacing is a check
	// and a rename, an existing destination) may be a replay.
	if _, perr := lstatAt(dir, part); perr == nil || perr != unix.ENOENT {
		// The .part is there: the rename's own error says what is wrong
		// (the destination exists, its directory is missing).
		return false, fmt.Errorf("commit %s: %w", path, err)
	}
	_, derr := lstatAt(dir, name)
	switch {
	case derr == nil:
		// The rename was done before a failover; it may not have
		// reached the disk yet: the caller syncs the directory.
		return true, fmt.Errorf("commit %s: %w", path, ErrAlreadyCommitted)
	case derr != unix.ENOENT:
		return false, fmt.Errorf("commit %s: %w", path, &fs.PathError{Op: "lstat", Path: path, Err: derr})
	}
	return false, fmt.Errorf("commit %s: %s is missing: %w", path, PartName(path), err)
}

func renameat(dir int, from, to string) error {
	for {
		err := unix.Renameat(dir, from, dir, to)
		if err != unix.EINTR {
			if err != nil {
				return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
			}
			return nil
		}
	}
}

// renameNoReplace renames from to to in dir unless to exists (ErrExists).
// Where the file system can do that in one step it does; elsewhere (NFS,
// non-Linux) it checks and then renames: only one instance writes at a time
// (invariant 1), so the window is open only to a writer from outside
// ftagent.
func renameNoReplace(dir int, from, to string) error {
	err := exclusiveRename(dir, from, to)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return ErrExists
	case !errors.Is(err, errNoExclusiveRename):
		return err
	}
	_, err = lstatAt(dir, to)
	switch {
	case err == nil:
		return ErrExists
	case err != unix.ENOENT:
		return err
	}
	return renameat(dir, from, to)
}

// exclusiveRename is renameExclusive; tests replace it to take the path of
// file systems without an exclusive rename.
var exclusiveRename = renameExclusive

// errNoExclusiveRename: the platform or file system cannot rename without
// replacing in one step.
var errNoExclusiveRename = errors.New("no exclusive rename")

func lstatAt(dir int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return st, err
		}
	}
}

func syncFD(fd int) error {
	for {
		err := unix.Fsync(fd)
		if err != unix.EINTR {
			return err
		}
	}
}

// dirs holds the open parent directories of a set of paths of one root,
// each opened once (O_RDONLY, so that it can also be synced).
type dirs struct {
	r   *root
	fds map[string]int // by directory, relative to the root
}

func openDirs(r *root, rels []string) (*dirs, error) {
	d := &dirs{r: r, fds: map[string]int{}}
	for _, rel := range rels {
		dir := filepath.Dir(rel)
		if _, ok := d.fds[dir]; ok {
			continue
		}
		fd, err := r.open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			d.close()
			return nil, err
		}
		d.fds[dir] = fd
	}
	return d, nil
}

func (d *dirs) of(rel string) (fd int, name string) {
	return d.fds[filepath.Dir(rel)], filepath.Base(rel)
}

func (d *dirs) close() {
	for _, fd := range d.fds {
		unix.Close(fd)
	}
}

// byRoot sorts paths by the root they lie beneath; a path beneath none
// gets its error in errs (when errs is not nil) or fails the whole call.
func (l *Local) byRoot(op string, paths []string, errs []error) (map[*root][]int, []string, error) {
	groups := map[*root][]int{}
	rels := make([]string, len(paths))
	for i, p := range paths {
		r, rel, err := l.find(op, p)
		if err != nil {
			if errs == nil {
				return nil, nil, err
			}
			errs[i] = err
			continue
		}
		rels[i] = rel
		groups[r] = append(groups[r], i)
	}
	return groups, rels, nil
}

func (l *Local) RenameAll(ctx context.Context, paths []string, overwrite bool) []error {
	errs := make([]error, len(paths))
	groups, rels, _ := l.byRoot("rename", paths, errs)
	for r, idx := range groups {
		// Each directory is opened once; one that cannot be opened fails
		// its files alone.
		dirFDs := map[string]int{}
		dirErrs := map[string]error{}
		for _, i := range idx {
			if err := ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			dir := filepath.Dir(rels[i])
			fd, ok := dirFDs[dir]
			if !ok {
				if err, failed := dirErrs[dir]; failed {
					errs[i] = err
					continue
				}
				var err error
				fd, err = r.open(dir, dirPathFlags, 0)
				if err != nil {
					dirErrs[dir] = fmt.Errorf("commit %s: %w", paths[i], pathErr("open", filepath.Dir(paths[i]), err))
					errs[i] = dirErrs[dir]
					continue
				}
				dirFDs[dir] = fd
			}
			_, errs[i] = rename(fd, filepath.Base(rels[i]), paths[i], overwrite)
		}
		for _, fd := range dirFDs {
			unix.Close(fd)
		}
	}
	return errs
}

func (l *Local) SyncDirs(ctx context.Context, paths []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	groups, rels, err := l.byRoot("sync", paths, nil)
	if err != nil {
		return err
	}
	for r, idx := range groups {
		seen := map[string]bool{}
		for _, i := range idx {
			dir := filepath.Dir(rels[i])
			if seen[dir] {
				continue
			}
			seen[dir] = true
			fd, err := r.open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				return fmt.Errorf("sync directory %s: %w", filepath.Dir(paths[i]), pathErr("open", filepath.Dir(paths[i]), err))
			}
			err = syncFD(fd)
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("sync directory %s: %w", filepath.Dir(paths[i]), err)
			}
		}
	}
	return nil
}

func (l *Local) Exists(ctx context.Context, path string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r, rel, err := l.find("lstat", path)
	if err != nil {
		return false, err
	}
	_, err = r.lstat(rel)
	switch {
	case err == nil:
		return true, nil
	case err == unix.ENOENT:
		return false, nil
	}
	return false, pathErr("lstat", path, err)
}

func (l *Local) Remove(ctx context.Context, path string) error {
	return l.inParent(ctx, "remove", path, func(dir int, name string) error {
		if err := unlinkat(dir, name); err != nil && err != unix.ENOENT {
			return &fs.PathError{Op: "remove", Path: path, Err: err}
		}
		return nil
	})
}

// inParent runs f on the directory holding path (resolved beneath its
// root) and path's last element, for a removal: a missing directory means
// there is nothing to remove, and is no error.
func (l *Local) inParent(ctx context.Context, op, path string, f func(dir int, name string) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, rel, err := l.find(op, path)
	if err != nil {
		return err
	}
	dir, name, done, err := r.parent(rel)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return pathErr(op, path, err)
	}
	defer done()
	return f(dir, name)
}

// RemoveSource deletes the source at path if it is still the file that
// was transferred: it opens the name without following a link, compares
// the identity of what it opened with was (Same), and unlinks the name in
// the directory it looked in. A file that has another identity is left and
// reported (checkpoint.ErrSourceChanged). What remains is the moment
// between the comparison and the unlink: a file renamed into the name just
// then is deleted; no system call unlinks a name only if it still holds a
// given file. A zero was (recorded by a build that kept no identity)
// deletes whatever regular file is there, as those builds did. A missing
// source is not an error: the deletion was done before.
func (l *Local) RemoveSource(ctx context.Context, path string, was checkpoint.Source) error {
	return l.inParent(ctx, "remove source", path, func(dir int, name string) error {
		fd, err := openatRetry(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT {
			return nil
		}
		if err != nil {
			return pathErr("remove source", path, err)
		}
		f := fileOf(fd, path)
		fi, err := f.Stat()
		f.Close()
		if err != nil {
			return &fs.PathError{Op: "remove source", Path: path, Err: err}
		}
		if err := regular(path, fi); err != nil {
			return err
		}
		if now := checkpoint.Identify(fi); was != (checkpoint.Source{}) && !was.Same(now) {
			return fmt.Errorf("remove source %s: not deleted, it is another file now (was %s, now %s): %w", path, was, now, checkpoint.ErrSourceChanged)
		}
		if err := unlinkat(dir, name); err != nil && err != unix.ENOENT {
			return &fs.PathError{Op: "remove source", Path: path, Err: err}
		}
		return nil
	})
}

func unlinkat(dir int, name string) error {
	for {
		err := unix.Unlinkat(dir, name, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

// BeginParts opens, for each root, the descriptor whose syncfs will make
// the batch durable: opened before the batch's first write, it reports
// every write error of the file system since (syncfs' error tracking is
// per open file), and not one that another syncfs reported first.
func (l *Local) BeginParts(ctx context.Context) (PartBatch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := &localBatch{l: l, fds: map[*root]int{}}
	for _, m := range l.roots {
		r := m.current()
		if !r.syncfs {
			continue
		}
		fd, err := openatRetry(r.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Close()
			return nil, &fs.PathError{Op: "open", Path: r.path, Err: err}
		}
		b.fds[r] = fd
	}
	return b, nil
}

type localBatch struct {
	l   *Local
	fds map[*root]int // per root whose file system syncfs serves
}

// Sync makes the .part files of paths durable: with one syncfs per root
// where the root's file system is one whose syncfs flushes and reports
// everything (trustSyncFS) and the files' directories are on it, else one
// fdatasync per file (NFS, FUSE, SMB, and a file system mounted inside a
// root). A .part is then reopened to be synced; its write errors are
// still reported, since nothing else syncs it.
func (b *localBatch) Sync(ctx context.Context, paths []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	groups, rels, err := b.l.byRoot("sync", paths, nil)
	if err != nil {
		return err
	}
	for r, idx := range groups {
		each := idx
		if fd, ok := b.fds[r]; ok {
			each = nil
			onRoot := map[string]bool{}
			for _, i := range idx {
				dir := filepath.Dir(rels[i])
				same, ok := onRoot[dir]
				if !ok {
					st, err := r.lstat(dir)
					if err != nil {
						return fmt.Errorf("sync %s: %w", filepath.Dir(paths[i]), pathErr("stat", filepath.Dir(paths[i]), err))
					}
					same = uint64(st.Dev) == r.dev
					onRoot[dir] = same
				}
				if !same {
					each = append(each, i)
				}
			}
			if len(each) < len(idx) {
				if err := syncfs(fd); err != nil {
					return fmt.Errorf("sync file system of %s: %w", r.path, err)
				}
			}
		}
		for _, i := range each {
			if err := syncPart(r, rels[i], paths[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func syncPart(r *root, rel, path string) error {
	fd, err := r.open(PartName(rel), unix.O_WRONLY, 0)
	if err != nil {
		return pathErr("sync", PartName(path), err)
	}
	f := fileOf(fd, PartName(path))
	err = datasync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", PartName(path), err)
	}
	return nil
}

func (b *localBatch) Close() error {
	for _, fd := range b.fds {
		unix.Close(fd)
	}
	b.fds = nil
	return nil
}
