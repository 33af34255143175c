//go:build unix && !linux

package endpoint

import "golang.org/x/sys/unix"

const dirPathFlags = unix.O_RDONLY | unix.O_DIRECTORY

// No openat2 here: paths are walked one component at a time.
func openat2Beneath(int, string, int, uint32) (int, error) { return -1, unix.ENOSYS }

const haveOpenat2 = false
