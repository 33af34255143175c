//go:build unix

package checkpoint

import (
	"os"
	"syscall"
)

func inodeDevice(fi os.FileInfo) (inode, device uint64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st == nil {
		return 0, 0
	}
	return uint64(st.Ino), uint64(st.Dev)
}
