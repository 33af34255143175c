package replicated

import (
	"encoding/json"
	"errors"
	"fmt"
)

// A request of many files is created in several entries, each of a bounded
// size, rather than one entry holding every path: a raft entry is held in
// memory whole, on every instance, and replicated in one message, so one of
// a million paths would cost each instance hundreds of megabytes at once and
// stall the log behind it.
//
// The first entry (KindCreateOpen) creates the transfer open: it holds the
// first chunk of files and directories, and the transfer is not run while it
// stays open. Each KindAppend entry adds the next chunk to the creation it
// names (the transfer's id and the log index of its KindCreateOpen entry,
// its Seq); the last one seals it (Seal), and from then on it is an ordinary
// queued transfer. Nothing about an open transfer has been promised to
// anyone: the client that asked for it has not been answered yet. So a
// creation that cannot finish is given up by a KindAppend with Discard,
// which removes the transfer as if it had never been asked for: the active
// that was creating it does that when it fails (the client went away, an
// entry was refused), and a new active does it for every open transfer it
// finds that it is not creating itself (its creator lost the lease, and with
// it the right to append). A client that retries its request then creates
// it afresh; a retry that meets the open transfer first replaces it (see
// State.create).

// ErrNotOpen is the result of an append to a transfer that is not being
// created by the entry it names: sealed, discarded, replaced by a retry, or
// never there.
var ErrNotOpen = errors.New("transfer is not open for more files")

// AppendCmd adds files and directories to an open transfer (KindAppend), or
// seals or discards it.
type AppendCmd struct {
	ID string
	// Seq is the log index of the KindCreateOpen entry of the creation
	// this continues: an append of an earlier, replaced creation of the
	// same id is refused rather than mixed into the new one.
	Seq   uint64
	Files []File
	Dirs  []Dir
	// Seal ends the creation: the transfer may run.
	Seal bool
	// Discard gives the creation up: the transfer is removed. Files and
	// Dirs are then empty.
	Discard bool
}

// appendCmd is AppendCmd as a KindAppend entry carries it: the files and
// directories in the columns of a createV3Cmd (relative to two roots).
type appendCmd struct {
	ID      string `json:"id"`
	Seq     uint64 `json:"seq"`
	Seal    bool   `json:"seal,omitempty"`
	Discard bool   `json:"discard,omitempty"`
	chunkColumns
}

// chunkColumns are the file and directory columns of createV3Cmd.
type chunkColumns struct {
	SourceRoot      nameOf   `json:"sourceRoot"`
	DestinationRoot nameOf   `json:"destinationRoot"`
	Sources         nameList `json:"sources,omitempty"`
	Destinations    nameList `json:"destinations,omitempty"`
	Bytes           []int64  `json:"bytes,omitempty"`
	DirSources      nameList `json:"dirSources,omitempty"`
	DirDestinations nameList `json:"dirDestinations,omitempty"`
}

// CompactAppend encodes a for a KindAppend entry, and checks that it
// decodes to a again (CompactCreateV3 does the columns and that proof).
// False if it cannot be written so: planned files and directories always
// can.
func CompactAppend(a AppendCmd) (appendCmd, bool) {
	v, ok := CompactCreateV3(CreateCmd{Transfer: Transfer{Files: a.Files, Dirs: a.Dirs}})
	if !ok || a.Discard && (len(a.Files) > 0 || len(a.Dirs) > 0) {
		return appendCmd{}, false
	}
	return appendCmd{ID: a.ID, Seq: a.Seq, Seal: a.Seal, Discard: a.Discard, chunkColumns: chunkColumns{
		SourceRoot: v.SourceRoot, DestinationRoot: v.DestinationRoot,
		Sources: v.Sources, Destinations: v.Destinations, Bytes: v.Bytes,
		DirSources: v.DirSources, DirDestinations: v.DirDestinations,
	}}, true
}

// DecodeAppend decodes a KindAppend entry's data.
func DecodeAppend(data []byte) (AppendCmd, error) {
	var v appendCmd
	if err := json.Unmarshal(data, &v); err != nil {
		return AppendCmd{}, err
	}
	c, err := createV3Cmd{
		createV2Cmd: createV2Cmd{
			SourceRoot: v.SourceRoot, DestinationRoot: v.DestinationRoot,
			Sources: v.Sources, Destinations: v.Destinations, Bytes: v.Bytes,
		},
		DirSources: v.DirSources, DirDestinations: v.DirDestinations,
	}.expand()
	if err != nil {
		return AppendCmd{}, err
	}
	if v.ID == "" {
		return AppendCmd{}, errors.New("no transfer id")
	}
	if v.Discard && (len(c.Transfer.Files) > 0 || len(c.Transfer.Dirs) > 0) {
		return AppendCmd{}, errors.New("a discard that adds files")
	}
	return AppendCmd{ID: v.ID, Seq: v.Seq, Files: c.Transfer.Files, Dirs: c.Transfer.Dirs, Seal: v.Seal, Discard: v.Discard}, nil
}

// appendTo applies an AppendCmd. It returns the transfer's copy without
// its files and directories (a seal's caller learns its counts), or an
// error for an append to a transfer that is not this creation's.
func (s *State) appendTo(a AppendCmd) any {
	t, ok := s.transfers[a.ID]
	switch {
	case !ok:
		return fmt.Errorf("%w: %s does not exist", ErrNotOpen, a.ID)
	case !t.Open:
		return fmt.Errorf("%w: %s is not being created", ErrNotOpen, a.ID)
	case t.Seq != a.Seq:
		return fmt.Errorf("%w: %s is being created by the entry at %d, not %d", ErrNotOpen, a.ID, t.Seq, a.Seq)
	case Terminal(t.State):
		return fmt.Errorf("%w: %s is %s", ErrEnded, t.ID, t.State)
	}
	if a.Discard {
		delete(s.transfers, a.ID)
		return nil
	}
	files := make([]File, len(a.Files))
	for i, f := range a.Files {
		f.State = StateQueued
		t.Bytes += f.Bytes
		files[i] = f
	}
	t.files.append(files)
	for _, d := range a.Dirs {
		d.State = StateQueued
		t.Dirs = append(t.Dirs, d)
	}
	if a.Seal {
		t.Open = false
		if t.FileCount() == 0 && len(t.Dirs) == 0 {
			t.State = StateCompleted
			ended := t.Created
			t.Ended = &ended
		}
	}
	c := *t
	c.Files, c.Dirs, c.files = nil, nil, nil
	return &c
}
