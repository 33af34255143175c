package checkpoint

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Source identifies a source file's content version, as every instance of
// the agent can see it: instances on other hosts see shared storage (NFS,
// SMB, a clustered or FUSE file system) through mounts of their own, so what
// one host's mount alone sees must not decide (DESIGN.md, invariant 8).
//
// What the file server keeps, every host reads alike: the size, the
// modification time at the resolution the file system stores it, and the
// change time (ctime), which no user can set and which moves on every write
// and every change of metadata, so it also catches a rewrite that put the
// old mtime back. The device number is the mount's, different on each host;
// the inode number is the server's file id on NFS, on SMB with serverino and
// on local file systems, but is made up by the client on some FUSE and SMB
// mounts (noserverino). Device and inode are kept for the messages and are
// compared only between two looks through the same mount (equal devices).
type Source struct {
	Size    int64 `json:"size"`
	ModTime int64 `json:"mtime"` // UnixNano
	// Change is the change time (ctime), UnixNano; zero when unknown (the
	// platform has none, or a record written before it was kept).
	Change int64  `json:"ctime,omitempty"`
	Inode  uint64 `json:"inode,omitempty"`
	Device uint64 `json:"dev,omitempty"`
}

// Identify returns the identity of the file fi describes: its size and
// modification time and, where the platform offers them (syscall.Stat_t on Unix
// systems such as Linux), its change time, inode and device numbers.
// Elsewhere those are zero.
func Identify(fi os.FileInfo) Source {
	s := Source{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	s.Change, s.Inode, s.Device = statIdentity(fi)
	return s
}

// Same reports whether s and o are the same content version, seen from
// this host or another: size and mtime equal, the change times equal where
// both are known, and the inode numbers equal where both were read through
// the same mount (equal, non-zero devices). The device itself is not
// compared: another host's mount of the same storage has another.
func (s Source) Same(o Source) bool {
	if s.Size != o.Size || s.ModTime != o.ModTime {
		return false
	}
	if s.Change != 0 && o.Change != 0 && s.Change != o.Change {
		return false
	}
	if s.Device != 0 && s.Device == o.Device && s.Inode != o.Inode {
		return false
	}
	return true
}

// Recorded reports whether next may follow prev in the replicated state as
// the identity of the same source: every field equal, the change times
// where both are known. The active that records a checkpoint after a
// failover keeps the identity the first checkpoint recorded (having found
// the file Same), so this stricter rule holds across hosts, and it is the
// rule of earlier builds (which know no change time): instances of mixed
// builds decide an entry alike.
func (s Source) Recorded(next Source) bool {
	if s.Change != 0 && next.Change != 0 && s.Change != next.Change {
		return false
	}
	s.Change, next.Change = 0, 0
	return s == next
}

// String describes s for messages, e.g.
// "size 123, mtime 2026-03-01T10:00:00.123456789Z, ctime …, inode 42, dev 2049";
// ctime, inode and dev are left out when zero (unknown).
func (s Source) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "size %d, mtime %s", s.Size, time.Unix(0, s.ModTime).UTC().Format(time.RFC3339Nano))
	if s.Change != 0 {
		fmt.Fprintf(&b, ", ctime %s", time.Unix(0, s.Change).UTC().Format(time.RFC3339Nano))
	}
	if s.Inode != 0 {
		fmt.Fprintf(&b, ", inode %d", s.Inode)
	}
	if s.Device != 0 {
		fmt.Fprintf(&b, ", dev %d", s.Device)
	}
	return b.String()
}
