//go:build unix

package endpoint

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MakeDir makes path and its missing parents (mode 0o750), each beneath
// the root path lies under (beneath.go), and makes the new entry durable
// with a sync of its parent directory. A directory already at path is no
// error (a replay after a failover); a symbolic link at path, or in the
// path above it, is refused even if it leads to a directory, as is
// anything else that is not a directory.
func (l *Local) MakeDir(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, rel, err := l.find("mkdir", path)
	if err != nil {
		return err
	}
	if rel == "." {
		return nil // the root itself
	}
	if err := r.mkdirAll(rel, dirMode); err != nil {
		if err == unix.ENOTDIR || err == unix.EEXIST {
			return &fs.PathError{Op: "mkdir", Path: path, Err: fmt.Errorf("exists and is not a directory: %w", unix.ENOTDIR)}
		}
		if err == unix.ELOOP {
			return &fs.PathError{Op: "mkdir", Path: path, Err: outsideError{unix.ELOOP}}
		}
		return pathErr("mkdir", path, err)
	}
	// Made now, or by an earlier active that may have died before its
	// sync: the entry is made durable either way.
	fd, err := r.open(filepath.Dir(rel), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return pathErr("mkdir", path, err)
	}
	defer unix.Close(fd)
	if err := syncFD(fd); err != nil {
		return &fs.PathError{Op: "sync directory", Path: filepath.Dir(path), Err: err}
	}
	return nil
}

// CheckName refuses a name with a NUL byte, the one byte (with "/", which
// separates names) that a local file name cannot hold. Any other byte
// string is a name, UTF-8 or not.
func (*Local) CheckName(path string) error {
	if strings.IndexByte(path, 0) >= 0 {
		return fmt.Errorf("%q: a local file name cannot hold a NUL byte: %w", path, ErrNameNotRepresentable)
	}
	return nil
}
