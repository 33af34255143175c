package endpoint

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// pathOnly opens a name only to look at it (fstat), not to read it.
const pathOnly = unix.O_PATH

// startWriteback asks the kernel to start writing [off, off+n) of f to disk.
// It is advice: an error only means the later sync does all the work.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// datasync makes f's data, and the metadata needed to read it back (its
// size), durable; unlike fsync it skips timestamps.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// syncfs flushes the whole file system holding the open directory fd
// (syncfs(2)) and reports the write errors of that file system since fd was
// opened (Linux 5.8 and later).
func syncfs(fd int) error {
	for {
		err := unix.Syncfs(fd)
		if err != unix.EINTR {
			if err != nil {
				return &os.SyscallError{Syscall: "syncfs", Err: err}
			}
			return nil
		}
	}
}

// trustSyncFS reports whether the file system holding fd is one where a
// syncfs writes back and reports every file's data: the local block file
// systems. On network and FUSE file systems syncfs may flush the client's
// pages without asking the server to make them stable (FUSE passes it on
// only when the server implements it, NFS and SMB commit per file), so
// there each file is synced by itself.
func trustSyncFS(fd int) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC, unix.TMPFS_MAGIC:
		return true
	}
	return false
}

// renameExclusive is renameat2(RENAME_NOREPLACE) in dir: the rename fails
// with EEXIST instead of replacing to. File systems that cannot do it (NFS
// among them) give errNoExclusiveRename.
func renameExclusive(dir int, from, to string) error {
	for {
		err := unix.Renameat2(dir, from, dir, to, unix.RENAME_NOREPLACE)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EINVAL, unix.ENOSYS, unix.ENOTSUP, unix.EPERM:
			// EPERM: a seccomp filter that does not know the call; the
			// plain rename that follows reports a real permission error.
			return errNoExclusiveRename
		}
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
}
