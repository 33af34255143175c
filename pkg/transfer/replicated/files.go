package replicated

import (
	"encoding/hex"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// A transfer's files, in the replicated state, are a fileTable rather than
// File values: every instance holds every transfer's files, and a File (two
// absolute paths, a hex digest, a checkpoint with its hash state and source
// identity) takes some 350 bytes; a tree of a million files would hold
// hundreds of megabytes on each instance. In the table a file is 56 bytes
// (its pair of directories, source and destination, as an index into the
// transfer's table of distinct pairs, the ends of its base names in its
// segment's names string, its size, its state and flags, its digest as
// bytes) plus its names, once when the destination's equals the source's. What only some files have is
// kept apart, by index: reasons (failed files), checkpoints (files copied
// in part), delivered source identities (sources still to delete), and the
// odd files that cannot be packed exactly (a path without a directory, a
// digest that is not lower-case hex, a state the table has no code for),
// kept whole. Reading file i gives back exactly the File that was written.
//
// The files are in segments of segmentSize. Readers that keep a transfer
// beyond the state's lock (the active's copy loop, a snapshot being
// written) share the table (share): from then on the state copies a segment
// before it changes it, and its segment list and side maps before the first
// change, so a shared table never changes under its reader. Sharing costs
// a counter; a change costs at most a segment's copy.
//
// An ended transfer is never resumed: its checkpoints keep only their
// offsets (what its bytesDone counts), as they always did once it ended.

const segmentShift = 10

// segmentSize is how many files a segment holds.
const segmentSize = 1 << segmentShift

type fileTable struct {
	n      int
	dirs   []string          // distinct directories; only appended to
	dirIx  map[string]uint32 // the index of each in dirs (used by changes only)
	pairs  []dirPair         // distinct pairs of directories; only appended to
	pairIx map[dirPair]uint32
	segs   []*segment
	// gen is bumped by share: a segment of an older gen may be shared and
	// is copied before a change.
	gen uint64
	// shared: segs and the maps below may be shared with a reader.
	shared    bool
	reasons   map[int]string
	delivered map[int]checkpoint.Source
	cps       map[int]checkpoint.Checkpoint // every checkpoint other than the zero one
	odd       map[int]File
}

type segment struct {
	gen   uint64
	files []packedFile
	names string // the base names of its files, one after the other
}

// dirPair is a file's source and destination directories, as indices
// into fileTable.dirs: a tree's files share a few pairs.
type dirPair struct{ src, dst uint32 }

type packedFile struct {
	dirs uint32 // index into fileTable.pairs
	// srcEnd and dstEnd are the ends of the names in the segment's names:
	// the source's starts where the file before ends (its dstEnd), the
	// destination's at srcEnd; dstEnd == srcEnd means the same name.
	srcEnd, dstEnd uint32
	state, flags   uint8 // here, not after sha: 56 bytes, not 64
	bytes          int64
	sha            [32]byte
}

const (
	flagSHA = 1 << iota
	flagStarted
	flagSourceDeleted
)

var packedStates = []string{StateQueued, StateRunning, StateRecovering, StateCompleted, StateFailed, StateCancelled, ""}

func stateCode(s string) (uint8, bool) {
	for i, x := range packedStates {
		if x == s {
			return uint8(i), true
		}
	}
	return 0, false
}

var completedCode, _ = stateCode(StateCompleted)

// newFileTable makes the table of files.
func newFileTable(files []File) *fileTable {
	ft := &fileTable{dirIx: map[string]uint32{}, pairIx: map[dirPair]uint32{}}
	ft.append(files)
	return ft
}

// len is how many files the table holds.
func (ft *fileTable) len() int { return ft.n }

// own makes the table's segment list and side maps its own before a
// change, if a reader may share them.
func (ft *fileTable) own() {
	if !ft.shared {
		return
	}
	ft.segs = slices.Clone(ft.segs)
	ft.reasons, ft.delivered = maps.Clone(ft.reasons), maps.Clone(ft.delivered)
	ft.cps, ft.odd = maps.Clone(ft.cps), maps.Clone(ft.odd)
	ft.shared = false
}

// segmentFor returns segment k, copied first if it may be shared.
func (ft *fileTable) segmentFor(k int) *segment {
	s := ft.segs[k]
	if s.gen != ft.gen {
		s = &segment{gen: ft.gen, files: slices.Clone(s.files), names: s.names}
		ft.segs[k] = s
	}
	return s
}

// share returns a copy of the table for a reader: neither changes what the
// other sees.
func (ft *fileTable) share() *fileTable {
	ft.gen++
	ft.shared = true
	c := *ft
	c.dirIx, c.pairIx = nil, nil // a reader does not change the table
	return &c
}

// pair returns the index of the pair of directories src and dst.
func (ft *fileTable) pair(src, dst string) uint32 {
	p := dirPair{ft.dir(src), ft.dir(dst)}
	i, ok := ft.pairIx[p]
	if !ok {
		i = uint32(len(ft.pairs))
		ft.pairIx[p] = i
		ft.pairs = append(ft.pairs, p)
	}
	return i
}

func (ft *fileTable) dir(d string) uint32 {
	i, ok := ft.dirIx[d]
	if !ok {
		i = uint32(len(ft.dirs))
		ft.dirIx[d] = i
		ft.dirs = append(ft.dirs, d)
	}
	return i
}

// splitPath cuts an absolute path into its directory and base name; false
// for a path that has no "/" or ends with one.
func splitPath(p string) (dir, name string, ok bool) {
	k := strings.LastIndexByte(p, '/')
	if k < 0 || k == len(p)-1 {
		return "", "", false
	}
	return p[:k], p[k+1:], true
}

// append adds files at the end.
func (ft *fileTable) append(files []File) {
	if len(files) == 0 {
		return
	}
	ft.own()
	var names strings.Builder
	var seg *segment
	flush := func() {
		if seg != nil {
			seg.names = names.String()
		}
	}
	for _, f := range files {
		i := ft.n
		if i%segmentSize == 0 {
			flush()
			seg = &segment{gen: ft.gen, files: make([]packedFile, 0, min(segmentSize, len(files)))}
			ft.segs = append(ft.segs, seg)
			names.Reset()
		} else if seg == nil {
			seg = ft.segmentFor(len(ft.segs) - 1)
			names.Reset()
			names.WriteString(seg.names)
		}
		end := uint32(names.Len())
		pf := packedFile{srcEnd: end, dstEnd: end}
		srcDir, srcName, ok1 := splitPath(f.Source)
		dstDir, dstName, ok2 := splitPath(f.Destination)
		odd := !ok1 || !ok2 || names.Len()+len(srcName)+len(dstName) >= 1<<32
		if !odd {
			pf.dirs = ft.pair(srcDir, dstDir)
			names.WriteString(srcName)
			pf.srcEnd = uint32(names.Len())
			if dstName != srcName {
				names.WriteString(dstName)
			}
			pf.dstEnd = uint32(names.Len())
		}
		seg.files = append(seg.files, pf)
		ft.n++
		if odd {
			ft.setOdd(i, f)
			continue
		}
		ft.set(i, f)
	}
	flush()
}

func (ft *fileTable) setOdd(i int, f File) {
	if ft.odd == nil {
		ft.odd = map[int]File{}
	}
	ft.odd[i] = f
}

// file returns file i.
func (ft *fileTable) file(i int) File {
	if f, ok := ft.odd[i]; ok {
		return f
	}
	s := ft.segs[i>>segmentShift]
	k := i & (segmentSize - 1)
	pf := &s.files[k]
	start := uint32(0)
	if k > 0 {
		start = s.files[k-1].dstEnd
	}
	src := s.names[start:pf.srcEnd]
	dst := src
	if pf.dstEnd != pf.srcEnd {
		dst = s.names[pf.srcEnd:pf.dstEnd]
	}
	dirs := ft.pairs[pf.dirs]
	f := File{
		Source:        ft.dirs[dirs.src] + "/" + src,
		Destination:   ft.dirs[dirs.dst] + "/" + dst,
		Bytes:         pf.bytes,
		State:         packedStates[pf.state],
		Reason:        ft.reasons[i],
		Checkpoint:    ft.cps[i],
		Started:       pf.flags&flagStarted != 0,
		SourceDeleted: pf.flags&flagSourceDeleted != 0,
		Delivered:     ft.delivered[i],
	}
	if pf.flags&flagSHA != 0 {
		f.SHA256 = hex.EncodeToString(pf.sha[:])
	}
	return f
}

// progress is what a view counts of file i (its state, size and
// checkpointed offset), read in place.
func (ft *fileTable) progress(i int) (state string, bytes, offset int64) {
	if f, ok := ft.odd[i]; ok {
		return f.State, f.Bytes, f.Checkpoint.Offset
	}
	pf := &ft.segs[i>>segmentShift].files[i&(segmentSize-1)]
	return packedStates[pf.state], pf.bytes, ft.cps[i].Offset
}

// set writes file i, whose paths are those it has: every field but the
// paths is taken from f.
func (ft *fileTable) set(i int, f File) {
	ft.own()
	if _, ok := ft.odd[i]; ok {
		ft.odd[i] = f
		return
	}
	state, ok := stateCode(f.State)
	var sha [32]byte
	if f.SHA256 != "" {
		ok = ok && len(f.SHA256) == 64 && f.SHA256 == lowerHex(f.SHA256)
		if ok {
			_, err := hex.Decode(sha[:], []byte(f.SHA256))
			ok = err == nil
		}
	}
	if !ok {
		// Not packable exactly: kept whole. The packed fields stay as
		// they were; file and progress read the odd one.
		ft.setOdd(i, f)
		return
	}
	pf := &ft.segmentFor(i >> segmentShift).files[i&(segmentSize-1)]
	pf.bytes, pf.state, pf.sha, pf.flags = f.Bytes, state, sha, 0
	if f.SHA256 != "" {
		pf.flags |= flagSHA
	}
	if f.Started {
		pf.flags |= flagStarted
	}
	if f.SourceDeleted {
		pf.flags |= flagSourceDeleted
	}
	setSparse(&ft.reasons, i, f.Reason, f.Reason != "")
	setSparse(&ft.delivered, i, f.Delivered, f.Delivered != (checkpoint.Source{}))
	setSparse(&ft.cps, i, f.Checkpoint, !reflect.ValueOf(f.Checkpoint).IsZero())
}

// setSparse sets m[i] to v if keep, else deletes it.
func setSparse[V any](m *map[int]V, i int, v V, keep bool) {
	switch {
	case keep && *m == nil:
		*m = map[int]V{i: v}
	case keep:
		(*m)[i] = v
	default:
		delete(*m, i)
	}
}

// all returns every file (nil for none).
func (ft *fileTable) all() []File {
	if ft.n == 0 {
		return nil
	}
	out := make([]File, ft.n)
	for i := range out {
		out[i] = ft.file(i)
	}
	return out
}

// ended drops what an ended transfer's files no longer need: the hash
// states, epochs and source identities of their checkpoints (their offsets
// are what bytesDone counts).
func (ft *fileTable) ended() {
	ft.own()
	for i, cp := range ft.cps {
		if cp.Offset == 0 {
			delete(ft.cps, i)
		} else {
			ft.cps[i] = checkpoint.Checkpoint{Offset: cp.Offset}
		}
	}
	for i, f := range ft.odd {
		f.Checkpoint = checkpoint.Checkpoint{Offset: f.Checkpoint.Offset}
		ft.odd[i] = f
	}
}

// sourcesToDelete reports whether a completed file's source is not yet
// deleted.
func (ft *fileTable) sourcesToDelete() bool {
	for i := range ft.n {
		if f, ok := ft.odd[i]; ok {
			if f.State == StateCompleted && !f.SourceDeleted {
				return true
			}
			continue
		}
		pf := &ft.segs[i>>segmentShift].files[i&(segmentSize-1)]
		if pf.state == completedCode && pf.flags&flagSourceDeleted == 0 {
			return true
		}
	}
	return false
}

// FileCount is how many files t has.
func (t *Transfer) FileCount() int {
	if t.live != nil {
		return t.live.fileCount(t.ID)
	}
	if t.files != nil {
		return t.files.len()
	}
	return len(t.Files)
}

// FileAt returns file i of t.
func (t *Transfer) FileAt(i int) File {
	if t.live != nil {
		f, _ := t.live.File(t.ID, i)
		return f
	}
	if t.files != nil {
		return t.files.file(i)
	}
	return t.Files[i]
}

// progressAt is what a view counts of file i of t (its state, size and
// checkpointed offset), read in place: counting a million files' progress
// copies no File and builds no path.
func (t *Transfer) progressAt(i int) (state string, bytes, offset int64) {
	if t.live != nil {
		f, _ := t.live.File(t.ID, i)
		return f.State, f.Bytes, f.Checkpoint.Offset
	}
	if t.files != nil {
		return t.files.progress(i)
	}
	f := &t.Files[i]
	return f.State, f.Bytes, f.Checkpoint.Offset
}

// tabulate moves t's files into a table (the form the state keeps them
// in), trimmed if t has ended.
func (t *Transfer) tabulate() {
	t.files, t.Files = newFileTable(t.Files), nil
	if Terminal(t.State) {
		t.files.ended()
	}
}

// shared returns a copy of t that shares its files with the state: they
// never change under it (files.go); its Dirs are its own. The state's lock
// is held for writing.
func (t *Transfer) shared() *Transfer {
	c := *t
	if t.files != nil {
		c.files = t.files.share()
	}
	c.Request.Sources = slices.Clone(t.Request.Sources)
	c.Dirs = slices.Clone(t.Dirs)
	return &c
}

// Shared returns a copy of transfer id that shares its files with the
// state rather than copying them (what Get does): the active's copy loop
// keeps one for a whole run, which for a million files would otherwise be
// a copy of hundreds of megabytes. Read its files with FileAt.
func (s *State) Shared(id string) (*Transfer, bool) {
	s.mu.Lock() // share changes the table's generation
	defer s.mu.Unlock()
	t, ok := s.transfers[id]
	if !ok {
		return nil, false
	}
	return t.shared(), true
}

// Live returns a copy of transfer id without its files, whose FileAt and
// FileCount read them from the state as it is at each call: the active's
// copy loop, which reads each file when it comes to it, holds no copy of
// the files and no share of the table, which the state would have to copy
// segment by segment as the loop's own events change it (a second table,
// for a million files, for the whole run).
func (s *State) Live(id string) (*Transfer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.transfers[id]
	if !ok {
		return nil, false
	}
	c := *t
	c.Files, c.files, c.live = nil, nil, s
	c.Request.Sources = slices.Clone(t.Request.Sources)
	c.Dirs = slices.Clone(t.Dirs)
	return &c, true
}

// fileCount is how many files transfer id has now (0 if it is gone).
func (s *State) fileCount(id string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t, ok := s.transfers[id]; ok {
		return t.FileCount()
	}
	return 0
}
