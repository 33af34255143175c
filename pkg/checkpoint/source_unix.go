//go:build unix

package checkpoint

import (
	"os"
	"syscall"
)

func statIdentity(fi os.FileInfo) (change int64, inode, device uint64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st == nil {
		return 0, 0, 0
	}
	return changeTime(st), uint64(st.Ino), uint64(st.Dev)
}
