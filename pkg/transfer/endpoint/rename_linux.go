//go:build linux && (amd64 || arm64)

package endpoint

import (
	"os"
	"syscall"
	"unsafe"
)

const renameNoReplaceFlag = 1 // RENAME_NOREPLACE

var atFDCWD = -100 // AT_FDCWD

// renameExclusive is renameat2(RENAME_NOREPLACE): the rename fails with
// EEXIST instead of replacing newpath. File systems that cannot do it (NFS
// among them) give errNoExclusiveRename.
func renameExclusive(oldpath, newpath string) error {
	oldp, err := syscall.BytePtrFromString(oldpath)
	if err != nil {
		return err
	}
	newp, err := syscall.BytePtrFromString(newpath)
	if err != nil {
		return err
	}
	for {
		_, _, errno := syscall.Syscall6(sysRenameat2,
			uintptr(atFDCWD), uintptr(unsafe.Pointer(oldp)),
			uintptr(atFDCWD), uintptr(unsafe.Pointer(newp)),
			renameNoReplaceFlag, 0)
		switch errno {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		case syscall.EINVAL, syscall.ENOSYS, syscall.ENOTSUP, syscall.EPERM:
			// EPERM: a seccomp filter that does not know the call; the
			// plain rename that follows reports a real permission error.
			return errNoExclusiveRename
		}
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: errno}
	}
}
