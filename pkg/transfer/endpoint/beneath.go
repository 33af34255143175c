//go:build unix

package endpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// This file is the one place where the local endpoint turns a path into a
// file descriptor (DESIGN.md, invariant 7). A path was checked against the
// sandbox when the transfer was accepted, but the tree may change after:
// a destination folder replaced by a symbolic link to a folder outside,
// a source swapped for a link. So every operation resolves its path again,
// at the moment it runs, beneath the descriptor of the root it lies under,
// following no symbolic link and never leaving the root: openat2(2) with
// RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS where the kernel has it (Linux
// 5.6), else one component at a time with openat(2) and O_NOFOLLOW from the
// root's descriptor, which refuses the same paths (docs/operations.md).
//
// The sandbox resolved every link of an accepted path, and its roots were
// resolved when the endpoint was made: a link met now was put there since,
// and is refused (ErrOutsideRoot). The roots are held open, so a root
// renamed or replaced by a link later still means the directory it was;
// a file system mounted on a root's path is taken up within a second
// (mount.current).

// outsideError is ErrOutsideRoot with the system's own error.
type outsideError struct{ errno unix.Errno }

func (e outsideError) Error() string {
	return fmt.Sprintf("a symbolic link, or a way out of the root, is in the path (%v): %v", e.errno, ErrOutsideRoot)
}

func (e outsideError) Is(target error) bool { return target == ErrOutsideRoot }
func (e outsideError) Unwrap() error        { return e.errno }

// root is a directory that paths are resolved beneath.
type root struct {
	path   string // absolute, clean, links resolved
	fd     int    // the directory, held open for the endpoint's life
	dev    uint64 // its device
	ino    uint64 // and inode: what the path named when it was opened
	syncfs bool   // its file system is one that syncfs serves (trustSyncFS)
}

// useOpenat2 is false where openat2 is missing (ENOSYS) or refused (a
// seccomp filter: EPERM); then paths are walked component by component.
// Tests set it to run the walk.
var useOpenat2 = haveOpenat2

// rel returns path relative to r, or false if path is not r or beneath it.
func (r *root) rel(path string) (string, bool) {
	if path == r.path {
		return ".", true
	}
	if r.path == "/" {
		return strings.TrimPrefix(path, "/"), strings.HasPrefix(path, "/")
	}
	if strings.HasPrefix(path, r.path) && path[len(r.path)] == '/' {
		return path[len(r.path)+1:], true
	}
	return "", false
}

// pathErr builds the error of op on path: a link met or a way out becomes
// ErrOutsideRoot.
func pathErr(op, path string, err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) && (errno == unix.ELOOP || errno == unix.EXDEV) {
		err = outsideError{errno}
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// open opens rel (relative to r, cleaned, no "..") with flags, following no
// link, O_CLOEXEC added. A link as the last element is refused too.
func (r *root) open(rel string, flags int, mode uint32) (int, error) {
	flags |= unix.O_CLOEXEC
	if useOpenat2 {
		for {
			fd, err := openat2Beneath(r.fd, rel, flags, mode)
			switch err {
			case nil:
				return fd, nil
			case unix.EINTR, unix.EAGAIN: // EAGAIN: a rename or mount raced the lookup
				continue
			}
			return -1, err
		}
	}
	return r.walk(rel, flags, mode)
}

// walk is open without openat2: each directory is opened beneath the one
// before with O_NOFOLLOW, and the last element opened with O_NOFOLLOW.
func (r *root) walk(rel string, flags int, mode uint32) (int, error) {
	if rel == "." {
		return openatRetry(r.fd, ".", flags, mode)
	}
	parts := strings.Split(rel, "/")
	dir := r.fd
	for _, p := range parts[:len(parts)-1] {
		if p == ".." {
			closeUnlessRoot(r, dir)
			return -1, unix.EXDEV
		}
		fd, err := openatRetry(dir, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOTDIR {
			// O_DIRECTORY speaks first of a link: say what openat2 says.
			if st, lerr := lstatAt(dir, p); lerr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		closeUnlessRoot(r, dir)
		if err != nil {
			return -1, err
		}
		dir = fd
	}
	last := parts[len(parts)-1]
	if last == ".." {
		closeUnlessRoot(r, dir)
		return -1, unix.EXDEV
	}
	if flags&unix.O_PATH != 0 {
		// O_PATH with O_NOFOLLOW would open a link itself: look first.
		var st unix.Stat_t
		if err := unix.Fstatat(dir, last, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			closeUnlessRoot(r, dir)
			return -1, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			closeUnlessRoot(r, dir)
			return -1, unix.ELOOP
		}
	} else {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := openatRetry(dir, last, flags, mode)
	if err == unix.ENOTDIR {
		if st, lerr := lstatAt(dir, last); lerr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			err = unix.ELOOP
		}
	}
	closeUnlessRoot(r, dir)
	return fd, err
}

func closeUnlessRoot(r *root, fd int) {
	if fd != r.fd {
		unix.Close(fd)
	}
}

func openatRetry(dir int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dir, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// parent opens the directory holding rel (O_PATH where there is one) and
// returns it with rel's last element; done releases it. The root's own
// descriptor serves for elements directly under the root.
func (r *root) parent(rel string) (dir int, name string, done func(), err error) {
	d, name := filepath.Split(rel)
	if d == "" {
		return r.fd, name, func() {}, nil
	}
	fd, err := r.open(strings.TrimSuffix(d, "/"), dirPathFlags, 0)
	if err != nil {
		return -1, "", nil, err
	}
	return fd, name, func() { unix.Close(fd) }, nil
}

// lstat describes rel's last element itself (a link is not followed).
func (r *root) lstat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if rel == "." {
		return st, fstat(r.fd, &st)
	}
	dir, name, done, err := r.parent(rel)
	if err != nil {
		return st, err
	}
	defer done()
	for {
		err = unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return st, err
		}
	}
}

// mkdirAll makes the directory rel and the missing ones above it, each
// beneath the one before; an existing directory is fine, anything else in
// the way (a link among them) is an error.
func (r *root) mkdirAll(rel string, mode uint32) error {
	fd, err := r.open(rel, dirPathFlags, 0)
	if err == nil {
		unix.Close(fd)
		return nil
	}
	if err != unix.ENOENT || rel == "." {
		return err
	}
	if d := filepath.Dir(rel); d != "." {
		if err := r.mkdirAll(d, mode); err != nil {
			return err
		}
	}
	dir, name, done, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer done()
	if err := unix.Mkdirat(dir, name, mode); err != nil && err != unix.EEXIST {
		return err
	}
	// What is there now must be a directory, not a link put in its place.
	fd, err = r.open(rel, dirPathFlags, 0)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

func fstat(fd int, st *unix.Stat_t) error {
	for {
		err := unix.Fstat(fd, st)
		if err != unix.EINTR {
			return err
		}
	}
}

// fileOf wraps a descriptor as an *os.File without offering it to the
// poller (os.OpenFile's epoll registration costs, for each of many small
// files, as much as a lookup and buys nothing for a regular file).
func fileOf(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }

// openRoot opens a root directory given by its absolute path (its last
// element not a link), and notes what it is.
func openRoot(path string) (*root, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open root", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat root", Path: path, Err: err}
	}
	return &root{path: path, fd: fd, dev: uint64(st.Dev), ino: uint64(st.Ino), syncfs: trustSyncFS(fd)}, nil
}

// rootCheckEvery is how often a root's path is looked at again: a file
// system mounted on it after the instance started (the agent started
// before its NFS share, say) must be written to, not the directory
// beneath the mount point.
const rootCheckEvery = time.Second

// mount is a root as its path names it over time: the directory open now
// (cur), replaced when the path comes to name another directory (a file
// system mounted on it, or unmounted from it). A replaced descriptor is
// left open: an operation in flight may still use it, and a descriptor
// closed under it could be reused for another file.
type mount struct {
	path    string
	cur     atomic.Pointer[root]
	checked atomic.Int64 // UnixNano of the last look at path
}

// current returns the root to resolve paths beneath now.
func (m *mount) current() *root {
	r := m.cur.Load()
	now := time.Now().UnixNano()
	last := m.checked.Load()
	if now-last < int64(rootCheckEvery) || !m.checked.CompareAndSwap(last, now) {
		return r
	}
	var st unix.Stat_t
	if err := unix.Lstat(m.path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		// Gone, or a link or a file now: nothing this endpoint follows.
		// The directory held stays the root.
		return r
	}
	if uint64(st.Dev) == r.dev && uint64(st.Ino) == r.ino {
		return r
	}
	n, err := openRoot(m.path)
	if err != nil || n.dev != uint64(st.Dev) || n.ino != uint64(st.Ino) {
		if err == nil {
			unix.Close(n.fd) // changed again meanwhile: the next look decides
		}
		return r
	}
	m.cur.Store(n)
	return n
}
