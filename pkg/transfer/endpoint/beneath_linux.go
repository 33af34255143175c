package endpoint

import "golang.org/x/sys/unix"

// dirPathFlags open a directory only to resolve names beneath it.
const dirPathFlags = unix.O_PATH | unix.O_DIRECTORY

// openat2Beneath opens rel beneath dir following no symbolic link (not even
// a last element) and never leaving dir.
func openat2Beneath(dir int, rel string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags),
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	return unix.Openat2(dir, rel, &how)
}

// haveOpenat2 reports whether this kernel lets this process use openat2
// (Linux 5.6; a seccomp filter may refuse it with EPERM or ENOSYS).
var haveOpenat2 = func() bool {
	fd, err := openat2Beneath(unix.AT_FDCWD, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}()
