// Package faultfs is a fault-injecting FUSE file system for tests: a
// loopback of a backing directory, served by the test process itself, in
// which a test makes chosen operations on chosen paths fail, at run time,
// with a chosen errno (EIO on write, on fsync, on rename; ENOSPC on write …),
// counts how often each fault fired, and clears them again.
//
// The mount is made so that the errors reach the program that uses it, as a
// failing disk's would:
//
//   - no writeback cache: each write(2) is sent to this process before it
//     returns, so an injected write error comes back from that write(2);
//   - no FUSE passthrough: the kernel would otherwise send reads and writes
//     straight to the backing file, past this code;
//   - fsync(2) and fdatasync(2) on a file reach Fsync here; close(2) reaches
//     Flush; rename(2) reaches Rename.
//
// A fault with LoseData also models what a real writeback error does to the
// data: the bytes written to the file since its last successful fsync are
// replaced by zeros in the backing file when the fsync fails, so a program
// that ignores the error keeps a file with the wrong bytes.
package faultfs

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Op is an operation a fault can be injected into.
type Op string

const (
	Write    Op = "write"    // write(2) to a file (the FUSE WRITE request)
	Fsync    Op = "fsync"    // fsync(2)/fdatasync(2) of a file
	Flush    Op = "flush"    // close(2) of a file descriptor (FUSE FLUSH)
	Rename   Op = "rename"   // rename(2); the pattern is matched against both names
	Create   Op = "create"   // open(2) with O_CREAT of a new file, mknod
	Mkdir    Op = "mkdir"    // mkdir(2)
	FsyncDir Op = "fsyncdir" // fsync(2) of a directory
)

// Ops lists every operation.
var Ops = []Op{Write, Fsync, Flush, Rename, Create, Mkdir, FsyncDir}

// Fault is one injected fault: operation Op on a path matching Pattern
// fails with Errno.
type Fault struct {
	Op Op
	// Pattern is matched (path.Match) against the path relative to the
	// mount's root, '/'-separated, without a leading '/' (e.g.
	// "out/a/x.bin.part"); a pattern without '/' is also matched against
	// the last element alone, so "*.part" matches every .part anywhere.
	// Empty matches every path.
	Pattern string
	Errno   syscall.Errno
	// Times: the fault fires this many times and then stops (0: until
	// cleared).
	Times int
	// Skip: the first Skip matching operations pass before the fault fires.
	Skip int
	// LoseData (Fsync only): when the fault fires, the bytes written to the
	// file since its last successful fsync are replaced by zeros in the
	// backing file, as a writeback error loses them.
	LoseData bool
}

// Injected is a fault in force; it counts how often it fired.
type Injected struct {
	Fault
	fs *FS

	seen  int // matching operations, including skipped ones
	fired int
}

// Fired is how many operations this fault has failed so far.
func (in *Injected) Fired() int {
	in.fs.mu.Lock()
	defer in.fs.mu.Unlock()
	return in.fired
}

// FS is a mounted fault-injecting loopback.
type FS struct {
	// Mountpoint is where the file system is mounted; Backing is the
	// directory it shows.
	Mountpoint, Backing string

	server *fuse.Server

	mu     sync.Mutex
	faults []*Injected
	calls  map[Op]int // operations that reached the file system
	fired  map[Op]int // operations failed by a fault (over all faults, also cleared ones)
	// zeroed counts bytes replaced by zeros after LoseData faults.
	zeroed int64

	unmountOnce sync.Once
	unmountErr  error
}

// Options shape a mount.
type Options struct {
	// Debug, if set, receives go-fuse's log of every request.
	Debug func(format string, args ...any)
}

// Capable reports why this process cannot mount a FUSE file system ("" if
// it can, as far as can be told without mounting).
func Capable() string {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Sprintf("cannot open /dev/fuse: %v", err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			if _, err := exec.LookPath("fusermount"); err != nil {
				return "not root and no fusermount3 or fusermount"
			}
		}
	}
	return ""
}

// Mount mounts a fault-injecting loopback of backing on mountpoint (both
// must be existing directories) and serves it from this process until
// Unmount.
func Mount(backing, mountpoint string, opts Options) (*FS, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("faultfs: backing directory: %w", err)
	}
	f := &FS{Mountpoint: mountpoint, Backing: backing, calls: map[Op]int{}, fired: map[Op]int{}}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	root.RootNode = &node{LoopbackNode: &fs.LoopbackNode{RootData: root}, fs: f}

	// No attribute or entry caching: several processes and the backing
	// directory itself look at the same files.
	zero := time.Duration(0)
	o := &fs.Options{
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	}
	o.MountOptions = fuse.MountOptions{
		FsName: "faultfs:" + backing,
		Name:   "faultfs",
		// Writes go through to this process (no CAP_WRITEBACK_CACHE is
		// asked for: go-fuse leaves it off unless ExtraCapabilities has
		// it), and never past it.
		DisabledCapabilities: fuse.CAP_PASSTHROUGH | fuse.CAP_WRITEBACK_CACHE,
		AllowOther:           os.Geteuid() == 0,
		MaxWrite:             1 << 20,
	}
	if opts.Debug != nil {
		o.MountOptions.Debug = true
		o.Logger = newLogger(opts.Debug)
		o.MountOptions.Logger = o.Logger
	}
	server, err := fs.Mount(mountpoint, root.RootNode, o)
	if err != nil {
		return nil, fmt.Errorf("faultfs: mount %s on %s: %w", backing, mountpoint, err)
	}
	f.server = server
	return f, nil
}

// Unmount unmounts the file system and stops serving it. It is safe to call
// more than once.
func (f *FS) Unmount() error {
	f.unmountOnce.Do(func() {
		f.Clear()
		var err error
		// A process may still hold a file open for a moment (an instance
		// being killed): retry, then detach lazily.
		for i := 0; i < 50; i++ {
			if err = f.server.Unmount(); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			if lerr := syscall.Unmount(f.Mountpoint, syscall.MNT_DETACH); lerr != nil {
				f.unmountErr = fmt.Errorf("faultfs: unmount %s: %v; lazy unmount: %v", f.Mountpoint, err, lerr)
				return
			}
		}
		// Serving ends when the kernel drops the connection; after a
		// lazy unmount that waits for the last user.
		done := make(chan struct{})
		go func() { f.server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			f.unmountErr = fmt.Errorf("faultfs: %s unmounted, but still served 10 s later", f.Mountpoint)
		}
	})
	return f.unmountErr
}

// Inject puts fault into force and returns it, to read its counter.
func (f *FS) Inject(fault Fault) *Injected {
	in := &Injected{Fault: fault, fs: f}
	f.mu.Lock()
	f.faults = append(f.faults, in)
	f.mu.Unlock()
	return in
}

// Remove takes one fault out of force.
func (f *FS) Remove(in *Injected) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.faults {
		if x == in {
			f.faults = append(f.faults[:i], f.faults[i+1:]...)
			return
		}
	}
}

// Clear takes every fault out of force; the counters stay.
func (f *FS) Clear() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// Fired is how many operations op was failed by a fault, over all faults
// since the mount (cleared ones included).
func (f *FS) Fired(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired[op]
}

// Calls is how many operations op reached the file system (failed ones
// included): a test can tell whether fsync reached it at all.
func (f *FS) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Zeroed is how many bytes LoseData faults replaced by zeros.
func (f *FS) Zeroed() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.zeroed
}

// Counts describes the counters, for messages.
func (f *FS) Counts() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for i, op := range Ops {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d/%d", op, f.fired[op], f.calls[op])
	}
	b.WriteString(" (failed/reached)")
	return b.String()
}

// check counts op on the paths and returns the errno of the first fault in
// force that matches one of them (0: none), and whether that fault loses
// data.
func (f *FS) check(op Op, paths ...string) (syscall.Errno, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	for _, in := range f.faults {
		if in.Op != op || (in.Times > 0 && in.fired >= in.Times) {
			continue
		}
		if !anyMatch(in.Pattern, paths) {
			continue
		}
		in.seen++
		if in.seen <= in.Skip {
			continue
		}
		in.fired++
		f.fired[op]++
		return in.Errno, in.LoseData
	}
	return 0, false
}

func anyMatch(pattern string, paths []string) bool {
	if pattern == "" {
		return true
	}
	for _, p := range paths {
		if ok, _ := path.Match(pattern, p); ok {
			return true
		}
		if !strings.Contains(pattern, "/") {
			if ok, _ := path.Match(pattern, path.Base(p)); ok {
				return true
			}
		}
	}
	return false
}

// node is a loopback node whose operations pass through the faults.
type node struct {
	*fs.LoopbackNode
	fs *FS

	mu    sync.Mutex
	dirty []span // written since the last successful fsync
}

// WrapChild makes every node below the root one of the fault system's
// (fs.NodeWrapChilder), around the loopback node go-fuse made.
func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fs: n.fs}
}

type span struct{ off, end int64 }

func (n *node) rel() string { return n.Path(n.Root()) }

func (n *node) child(name string) string {
	if r := n.rel(); r != "" {
		return r + "/" + name
	}
	return name
}

var (
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
)

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &file{inner: fh, n: n, path: n.rel()}, fl, 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	p := n.child(name)
	if errno, _ := n.fs.check(Create, p); errno != 0 {
		return nil, nil, 0, errno
	}
	ch, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	cn, _ := ch.Operations().(*node)
	return ch, &file{inner: fh, n: cn, path: p}, fl, 0
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno, _ := n.fs.check(Create, n.child(name)); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno, _ := n.fs.check(Mkdir, n.child(name)); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	to := newName
	if np, ok := newParent.(*node); ok {
		to = np.child(newName)
	}
	if errno, _ := n.fs.check(Rename, n.child(name), to); errno != 0 {
		return errno
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dir{FileHandle: fh, n: n}, fl, 0
}

// dir is a directory handle whose fsync passes through the faults.
type dir struct {
	fs.FileHandle
	n *node
}

var (
	_ fs.FileFsyncdirer   = (*dir)(nil)
	_ fs.FileReaddirenter = (*dir)(nil)
	_ fs.FileReleasedirer = (*dir)(nil)
	_ fs.FileSeekdirer    = (*dir)(nil)
)

func (d *dir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if errno, _ := d.n.fs.check(FsyncDir, d.n.rel()); errno != 0 {
		return errno
	}
	if s, ok := d.FileHandle.(fs.FileFsyncdirer); ok {
		return s.Fsyncdir(ctx, flags)
	}
	return 0
}

func (d *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if r, ok := d.FileHandle.(fs.FileReaddirenter); ok {
		return r.Readdirent(ctx)
	}
	return nil, syscall.ENOTSUP
}

func (d *dir) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.FileHandle.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (d *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.FileHandle.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

// file wraps a loopback file handle. It does not embed it: the loopback
// handle offers its descriptor for FUSE passthrough, which would send the
// I/O past the faults.
type file struct {
	inner fs.FileHandle
	n     *node
	path  string // relative path when opened
}

var (
	_ fs.FileReader    = (*file)(nil)
	_ fs.FileWriter    = (*file)(nil)
	_ fs.FileFsyncer   = (*file)(nil)
	_ fs.FileFlusher   = (*file)(nil)
	_ fs.FileReleaser  = (*file)(nil)
	_ fs.FileGetattrer = (*file)(nil)
	_ fs.FileSetattrer = (*file)(nil)
	_ fs.FileLseeker   = (*file)(nil)
	_ fs.FileAllocater = (*file)(nil)
)

func (f *file) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return f.inner.(fs.FileReader).Read(ctx, dest, off)
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if errno, _ := f.n.fs.check(Write, f.path); errno != 0 {
		return 0, errno
	}
	w, errno := f.inner.(fs.FileWriter).Write(ctx, data, off)
	if w > 0 {
		f.n.mu.Lock()
		if k := len(f.n.dirty); k > 0 && f.n.dirty[k-1].end == off {
			f.n.dirty[k-1].end += int64(w) // sequential writes: one span
		} else {
			f.n.dirty = append(f.n.dirty, span{off, off + int64(w)})
		}
		f.n.mu.Unlock()
	}
	return w, errno
}

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	errno, lose := f.n.fs.check(Fsync, f.path)
	if errno != 0 {
		if lose {
			f.loseDirty()
		}
		return errno
	}
	errno = f.inner.(fs.FileFsyncer).Fsync(ctx, flags)
	if errno == 0 {
		f.n.mu.Lock()
		f.n.dirty = nil
		f.n.mu.Unlock()
	}
	return errno
}

// loseDirty replaces the bytes written since the last successful fsync by
// zeros in the backing file; they are then clean, as after a real writeback
// error.
func (f *file) loseDirty() {
	f.n.mu.Lock()
	spans := f.n.dirty
	f.n.dirty = nil
	f.n.mu.Unlock()
	pf, ok := f.inner.(fs.FilePassthroughFder)
	if !ok {
		return
	}
	fd, ok := pf.PassthroughFd()
	if !ok {
		return
	}
	var n int64
	for _, s := range spans {
		zeros := make([]byte, min(s.end-s.off, 1<<20))
		for off := s.off; off < s.end; {
			k := min(int64(len(zeros)), s.end-off)
			w, err := syscall.Pwrite(fd, zeros[:k], off)
			if err != nil || w <= 0 {
				break
			}
			off += int64(w)
			n += int64(w)
		}
	}
	f.n.fs.mu.Lock()
	f.n.fs.zeroed += n
	f.n.fs.mu.Unlock()
}

func (f *file) Flush(ctx context.Context) syscall.Errno {
	if errno, _ := f.n.fs.check(Flush, f.path); errno != 0 {
		// The descriptor is closed all the same (close(2) cannot be
		// retried); the handle is released later.
		return errno
	}
	return f.inner.(fs.FileFlusher).Flush(ctx)
}

func (f *file) Release(ctx context.Context) syscall.Errno {
	return f.inner.(fs.FileReleaser).Release(ctx)
}

func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return f.inner.(fs.FileGetattrer).Getattr(ctx, out)
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		// Bytes cut off are no longer dirty.
		f.n.mu.Lock()
		kept := f.n.dirty[:0]
		for _, s := range f.n.dirty {
			if s.off < int64(sz) {
				s.end = min(s.end, int64(sz))
				kept = append(kept, s)
			}
		}
		f.n.dirty = kept
		f.n.mu.Unlock()
	}
	return f.inner.(fs.FileSetattrer).Setattr(ctx, in, out)
}

func (f *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.inner.(fs.FileLseeker).Lseek(ctx, off, whence)
}

func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if errno, _ := f.n.fs.check(Write, f.path); errno != 0 {
		return errno
	}
	return f.inner.(fs.FileAllocater).Allocate(ctx, off, size, mode)
}

type logWriter func(format string, args ...any)

func (w logWriter) Write(p []byte) (int, error) {
	w("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newLogger(f func(format string, args ...any)) *log.Logger {
	return log.New(logWriter(f), "", 0)
}
