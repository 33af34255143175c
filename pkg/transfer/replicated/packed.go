package replicated

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// An ended transfer keeps its files in a packed form: every instance holds
// the transfers of the history, and a recursive transfer's files as File
// values (two absolute paths, a hex digest and a checkpoint each) take
// several hundred bytes apiece. Packed, a file is its two directories (as
// indices into a table of the transfer's distinct directories), its two
// base names (in one string), its size, its state, its digest as bytes and
// what is left of its checkpoint: the offset, which is all an ended file's
// bytesDone needs. An ended transfer is never resumed, so its checkpoints'
// hash states and source identities are not kept, but for the identities
// of sources still to be deleted (Delivered). What readers get back
// (Get, List, views, snapshots) is the same File values, but for those
// checkpoint fields.

// packedFiles is an ended transfer's files.
type packedFiles struct {
	dirs    []string // distinct directories of sources and destinations
	names   string   // every base name, one after the other
	files   []packedFile
	reasons map[int]string // of the files that have one
	// delivered: the identities of sources still to be deleted
	delivered map[int]checkpoint.Source
}

type packedFile struct {
	srcDir, dstDir   uint32
	srcName, dstName uint32 // ends of the names in packedFiles.names; each starts where the one before ends
	state            uint8
	hasSHA           bool
	started          bool
	sourceDeleted    bool
	bytes            int64
	offset           int64 // of the last checkpoint
	sha              [32]byte
}

var packedStates = []string{StateQueued, StateRunning, StateRecovering, StateCompleted, StateFailed, StateCancelled, ""}

func stateCode(s string) (uint8, bool) {
	for i, x := range packedStates {
		if x == s {
			return uint8(i), true
		}
	}
	return 0, false
}

// pack packs t's files if t has ended and every file can be packed
// exactly (else t is left as it is).
func (t *Transfer) pack() {
	if !Terminal(t.State) || t.packed != nil || len(t.Files) == 0 {
		return
	}
	p := &packedFiles{files: make([]packedFile, len(t.Files))}
	dirIndex := map[string]uint32{}
	var names strings.Builder
	split := func(path string) (uint32, bool) {
		k := strings.LastIndexByte(path, '/')
		if k < 0 {
			return 0, false
		}
		dir := path[:k]
		d, ok := dirIndex[dir]
		if !ok {
			d = uint32(len(p.dirs))
			dirIndex[dir] = d
			p.dirs = append(p.dirs, dir)
		}
		names.WriteString(path[k+1:])
		return d, true
	}
	for i := range t.Files {
		f := &t.Files[i]
		pf := &p.files[i]
		var ok1, ok2, ok3 bool
		pf.srcDir, ok1 = split(f.Source)
		pf.srcName = uint32(names.Len())
		pf.dstDir, ok2 = split(f.Destination)
		pf.dstName = uint32(names.Len())
		pf.state, ok3 = stateCode(f.State)
		if !ok1 || !ok2 || !ok3 || names.Len() > 1<<31 {
			return
		}
		if f.SHA256 != "" {
			if len(f.SHA256) != 64 || strings.ToLower(f.SHA256) != f.SHA256 {
				return
			}
			if _, err := hex.Decode(pf.sha[:], []byte(f.SHA256)); err != nil {
				return
			}
			pf.hasSHA = true
		}
		if f.Reason != "" {
			if p.reasons == nil {
				p.reasons = map[int]string{}
			}
			p.reasons[i] = f.Reason
		}
		if f.Delivered != (checkpoint.Source{}) {
			if p.delivered == nil {
				p.delivered = map[int]checkpoint.Source{}
			}
			p.delivered[i] = f.Delivered
		}
		pf.bytes, pf.offset = f.Bytes, f.Checkpoint.Offset
		pf.started, pf.sourceDeleted = f.Started, f.SourceDeleted
	}
	p.names = names.String()
	t.packed, t.Files = p, nil
}

// FileCount is how many files t has.
func (t *Transfer) FileCount() int {
	if t.packed != nil {
		return len(t.packed.files)
	}
	return len(t.Files)
}

// FileAt returns file i of t.
func (t *Transfer) FileAt(i int) File {
	if t.packed != nil {
		return t.packed.file(i)
	}
	return t.Files[i]
}

// progressAt is what a view counts of file i of t (its state, size and
// checkpointed offset), read in place: counting a million files' progress
// copies no File and builds no path.
func (t *Transfer) progressAt(i int) (state string, bytes, offset int64) {
	if t.packed != nil {
		pf := &t.packed.files[i]
		return packedStates[pf.state], pf.bytes, pf.offset
	}
	f := &t.Files[i]
	return f.State, f.Bytes, f.Checkpoint.Offset
}

func (p *packedFiles) file(i int) File {
	pf := &p.files[i]
	start := uint32(0)
	if i > 0 {
		start = p.files[i-1].dstName
	}
	f := File{
		Source:        p.dirs[pf.srcDir] + "/" + p.names[start:pf.srcName],
		Destination:   p.dirs[pf.dstDir] + "/" + p.names[pf.srcName:pf.dstName],
		Bytes:         pf.bytes,
		State:         packedStates[pf.state],
		Reason:        p.reasons[i],
		Checkpoint:    checkpoint.Checkpoint{Offset: pf.offset},
		Started:       pf.started,
		SourceDeleted: pf.sourceDeleted,
		Delivered:     p.delivered[i],
	}
	if pf.hasSHA {
		f.SHA256 = hex.EncodeToString(pf.sha[:])
	}
	return f
}

// unpacked returns t's files as File values.
func (p *packedFiles) unpacked() []File {
	out := make([]File, len(p.files))
	for i := range out {
		out[i] = p.file(i)
	}
	return out
}

var completedCode, _ = stateCode(StateCompleted)

// sourcesToDelete reports whether a completed file's source is not yet
// deleted.
func (p *packedFiles) sourcesToDelete() bool {
	for i := range p.files {
		if p.files[i].state == completedCode && !p.files[i].sourceDeleted {
			return true
		}
	}
	return false
}

// sourcesDeleted applies sourceDeleted events, all or none, to a copy of
// p, which it returns: a packed form is never changed once made, so that a
// snapshot can encode it outside the state's lock (State.Snapshot).
func (p *packedFiles) sourcesDeleted(evs []FileEvent) (*packedFiles, error) {
	for _, ev := range evs {
		if ev.Index < 0 || ev.Index >= len(p.files) {
			return nil, fmt.Errorf("%w: file %d of %d", ErrBadFileEvent, ev.Index, len(p.files))
		}
		if p.files[ev.Index].state != completedCode {
			return nil, fmt.Errorf("%w: source of file %d deleted before its completion", ErrBadFileEvent, ev.Index)
		}
	}
	n := *p
	n.files = slices.Clone(p.files)
	n.delivered = maps.Clone(p.delivered)
	for _, ev := range evs {
		n.files[ev.Index].sourceDeleted = true
		delete(n.delivered, ev.Index)
	}
	return &n, nil
}
