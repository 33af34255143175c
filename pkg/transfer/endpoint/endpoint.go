// Package endpoint owns where a transfer's bytes are read and written: one
// interface, Endpoint, that the copy loop and the transfer manager use for
// every kind of storage. Local (the shared file system of an HA agent's
// instances) is the first implementation; another agent over the network and
// an SFTP server must fit the same interface, so it speaks of paths, offsets
// and small file handles, never of *os.File.
//
// Destinations are written as <path>.part and renamed into place only by
// Commit (DESIGN.md, invariant 5). A .part is reopened at a checkpoint's offset
// after a failover and cut back to it, so bytes written after the last
// checkpoint are written again rather than trusted (invariant 3).
package endpoint

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"syscall"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// Info describes a file as an Endpoint sees it.
type Info struct {
	Size   int64
	Source checkpoint.Source // identity of this version of the file
	IsDir  bool
}

// Endpoint reads sources and writes destinations. Paths are already resolved
// and sandbox-checked by the caller when a transfer is accepted; an
// implementation checks them again each time it uses them, since the tree
// may have changed since (Local: beneath.go). Errors can be sorted with
// Permanent.
type Endpoint interface {
	// Stat describes path; a missing path gives an error wrapping
	// fs.ErrNotExist (os.ErrNotExist).
	Stat(ctx context.Context, path string) (Info, error)

	// OpenSource opens a regular file for reading. The SourceFile's Info is
	// the identity of the file actually opened, so a file replaced between a
	// Stat and the open is noticed by comparing identities.
	OpenSource(ctx context.Context, path string) (SourceFile, error)

	// OpenPart opens PartName(path) for writing at offset. At offset 0 it
	// creates the file (and missing parent directories, mode 0o750),
	// truncating any stale one. At a larger offset it opens the existing
	// file, checks that it holds at least offset bytes (else an error
	// wrapping ErrPartLost), truncates it to exactly offset — bytes after the
	// last checkpoint are not trusted — and positions at offset.
	OpenPart(ctx context.Context, path string, offset int64) (PartFile, error)

	// Commit renames PartName(path) to path and makes the rename durable
	// (fsync of the parent directory). The caller syncs the PartFile first.
	// With overwrite false it refuses with ErrExists if path exists, without
	// a window in which an existing file could be replaced. When the .part
	// is gone but path exists, the rename was done by an earlier Commit (a
	// completion replayed after a failover): it reports ErrAlreadyCommitted,
	// which the caller treats as done.
	Commit(ctx context.Context, path string, overwrite bool) error

	// BeginParts starts a batch of .part files that are written and closed
	// without a sync of their own (many small files, where one fsync each
	// would cost more than copying them). It is called before the batch's
	// first write; the batch's Sync then makes them durable together and
	// reports the errors of every write made since, whoever else syncs
	// the same storage meanwhile. The caller closes the batch.
	BeginParts(ctx context.Context) (PartBatch, error)

	// RenameAll is Commit for many files without making the renames
	// durable: errs[i] is the outcome for paths[i], and SyncDirs, called
	// after it, makes the renames durable. Apart from that, each rename is
	// as Commit's (ErrExists, ErrAlreadyCommitted).
	RenameAll(ctx context.Context, paths []string, overwrite bool) (errs []error)

	// SyncDirs makes the renames into the paths' parent directories
	// durable, with one sync per directory.
	SyncDirs(ctx context.Context, paths []string) error

	// Exists reports whether something (a file, a directory, a link) has
	// the name path.
	Exists(ctx context.Context, path string) (bool, error)

	// Remove deletes a file (a cancelled or failed transfer's .part).
	// Removing a missing file is not an error, so a removal replayed
	// after a failover is harmless.
	Remove(ctx context.Context, path string) error
	// MakeDir makes the directory path, and its missing parents (a
	// recursive transfer's directories, empty ones included). A directory
	// already there is no error, so a replay after a failover is harmless;
	// anything else there, or a symbolic link as its last element, is
	// refused (a permanent error).
	MakeDir(ctx context.Context, path string) error

	// CheckName says why path cannot be named on this endpoint, if it
	// cannot: with an error wrapping ErrNameNotRepresentable. File names
	// are bytes; the local file system takes any but NUL, an SFTP server
	// may ask for UTF-8. The transfer fails such a file before anything
	// is written.
	CheckName(path string) error

	// RemoveSource deletes a transferred source, only if the file at path
	// is still the one that was transferred (its identity was, compared
	// with checkpoint.Source.Same); else it refuses with an error wrapping
	// checkpoint.ErrSourceChanged. A missing source is not an error.
	RemoveSource(ctx context.Context, path string, was checkpoint.Source) error
}

// PartBatch is a batch of .part files to be made durable together
// (Endpoint.BeginParts).
type PartBatch interface {
	// Sync makes the written data of the PartName(path) files durable.
	// Their PartFiles must have been closed.
	Sync(ctx context.Context, paths []string) error
	io.Closer
}

// SourceFile is an open source. ReadAt may be called with any offset, so a
// copy resumes without reading the bytes before its checkpoint.
type SourceFile interface {
	io.ReaderAt
	io.Closer
	Info() Info
	// Stat describes the open file as it is now: an identity other than
	// Info's means it was written to since it was opened.
	Stat() (Info, error)
}

// PartFile is an open .part being written sequentially from the offset
// OpenPart positioned it at. Sync returns once every byte written so far is
// on stable storage.
type PartFile interface {
	io.Writer
	Sync() error
	io.Closer
}

var (
	// ErrExists: Commit without overwrite found the destination there.
	ErrExists = errors.New("destination exists")
	// ErrAlreadyCommitted: Commit found the rename already done.
	ErrAlreadyCommitted = errors.New("already committed")
	// ErrPartLost: OpenPart at an offset > 0 found the .part missing or
	// shorter than the offset, so the checkpoint cannot be resumed; the
	// caller may start the file again from offset 0.
	ErrPartLost = errors.New("partial file lost")
	// ErrOutsideRoot: a path is not beneath a root of the endpoint, or
	// resolving it now meets a symbolic link or would leave the root.
	ErrOutsideRoot = errors.New("not beneath the transfer root")
	// ErrNameNotRepresentable: CheckName found a name the endpoint cannot
	// hold.
	ErrNameNotRepresentable = errors.New("name cannot be represented on this endpoint")
)

// PartName is the name a destination is written under until it is committed.
func PartName(path string) string { return path + ".part" }

// Permanent reports whether err will not go away by retrying, so the file
// fails at once with err as its reason: a missing file, permission denied, a
// destination that exists, a directory where a file is wanted, a changed
// source, a lost .part, an invalid argument, a name the endpoint cannot
// hold. Anything else — I/O errors, a
// full disk (ENOSPC) or quota (EDQUOT), timeouts, a cancelled context — is
// transient: the transfer goes to recovering and is retried. A nil error and
// ErrAlreadyCommitted (a success) are not permanent.
func Permanent(err error) bool {
	if err == nil || errors.Is(err, ErrAlreadyCommitted) {
		return false
	}
	for _, target := range []error{
		fs.ErrNotExist, fs.ErrPermission, fs.ErrExist, fs.ErrInvalid,
		ErrExists, ErrPartLost, checkpoint.ErrSourceChanged, ErrOutsideRoot, ErrNameNotRepresentable,
		ErrHostKey, ErrAuth, ErrNoPartner,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EISDIR, syscall.ENOTDIR, syscall.ENAMETOOLONG, syscall.ELOOP, syscall.EINVAL:
			return true
		}
	}
	return false
}
