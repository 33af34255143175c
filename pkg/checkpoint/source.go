package checkpoint

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Source identifies a source file's content version: a change in any field
// between checkpoints means the file changed.
type Source struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime"` // UnixNano
	Inode   uint64 `json:"inode,omitempty"`
	Device  uint64 `json:"dev,omitempty"`
}

// Identify returns the identity of the file fi describes: its size and
// modification time and, where the platform offers them (syscall.Stat_t on Unix
// systems such as Linux), its inode and device numbers. Elsewhere Inode and
// Device are zero.
func Identify(fi os.FileInfo) Source {
	s := Source{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	s.Inode, s.Device = inodeDevice(fi)
	return s
}

// Same reports whether s and o are the same content version: all fields equal.
func (s Source) Same(o Source) bool { return s == o }

// String describes s for messages, e.g.
// "size 123, mtime 2026-03-01T10:00:00.123456789Z, inode 42, dev 2049";
// inode and dev are left out when zero (unknown).
func (s Source) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "size %d, mtime %s", s.Size, time.Unix(0, s.ModTime).UTC().Format(time.RFC3339Nano))
	if s.Inode != 0 {
		fmt.Fprintf(&b, ", inode %d", s.Inode)
	}
	if s.Device != 0 {
		fmt.Fprintf(&b, ", dev %d", s.Device)
	}
	return b.String()
}
