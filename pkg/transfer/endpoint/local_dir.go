package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// MakeDir makes path and its missing parents (mode 0o750), and makes the
// new entry durable with a sync of its parent directory. A directory
// already at path is no error (a replay after a failover); a symbolic link
// at path is refused even if it leads to a directory, as is anything else
// that is not a directory.
func (Local) MakeDir(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := os.Mkdir(path, dirMode)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), dirMode); err == nil {
			err = os.Mkdir(path, dirMode)
		}
	}
	switch {
	case err == nil:
		return syncDir(filepath.Dir(path))
	case !errors.Is(err, fs.ErrExist):
		return err
	}
	fi, lerr := os.Lstat(path)
	switch {
	case lerr != nil:
		return lerr
	case fi.Mode()&fs.ModeSymlink != 0:
		return &fs.PathError{Op: "mkdir", Path: path, Err: fmt.Errorf("is a symbolic link: %w", syscall.ELOOP)}
	case !fi.IsDir():
		return &fs.PathError{Op: "mkdir", Path: path, Err: fmt.Errorf("exists and is not a directory: %w", syscall.ENOTDIR)}
	}
	// Made by an earlier active, which may have died before its sync.
	return syncDir(filepath.Dir(path))
}

// CheckName refuses a name with a NUL byte, the one byte (with "/", which
// separates names) that a local file name cannot hold. Any other byte
// string is a name, UTF-8 or not.
func (Local) CheckName(path string) error {
	if strings.IndexByte(path, 0) >= 0 {
		return fmt.Errorf("%q: a local file name cannot hold a NUL byte: %w", path, ErrNameNotRepresentable)
	}
	return nil
}
