package replicated

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// filesV2Cmd is the compact form of FilesCmd (kind KindFilesV2, command
// format 3). A small-file group's entries are almost all plain starts (an
// index) and plain completions (an index and a digest); written as objects
// each, they cost more to decode on every instance than anything else the
// log carries. Here they are columns:
//
//   - Events: the events that come first and are neither, as in FilesCmd;
//   - Start: then the plain starts (EventStart, nothing else set), by index;
//   - Done: then the plain completions (EventDone with a SHA-256 and
//     nothing else), by index, their digests in SHA256, 32 bytes each, in
//     the same order.
//
// Applied, it is exactly the FilesCmd it was encoded from: Events, then
// the starts, then the completions (expand). An entry whose events are not
// in that order is not written this way (CompactFiles).
type filesV2Cmd struct {
	ID     string      `json:"id"`
	Time   time.Time   `json:"time"`
	Events []FileEvent `json:"events,omitempty"`
	Start  []int       `json:"start,omitempty"`
	Done   []int       `json:"done,omitempty"`
	SHA256 []byte      `json:"sha256,omitempty"`
}

// plainStart and plainDone tell the events filesV2Cmd keeps as columns.
func plainStart(ev FileEvent) bool {
	return ev.Kind == EventStart && bareEvent(ev)
}

func plainDone(ev FileEvent) bool {
	return ev.Kind == EventDone && len(ev.SHA256) == 64 && ev.SHA256 == lowerHex(ev.SHA256) && ev.Source == (checkpoint.Source{}) &&
		bareEvent(FileEvent{Index: ev.Index, Kind: ev.Kind, Checkpoint: ev.Checkpoint, Reason: ev.Reason, Resent: ev.Resent, Restart: ev.Restart})
}

// bareEvent reports whether ev has nothing but an index and a kind.
func bareEvent(ev FileEvent) bool {
	cp := ev.Checkpoint
	return cp.Offset == 0 && cp.Hash == nil && cp.Epoch == 0 && cp.Source == (checkpoint.Source{}) &&
		ev.SHA256 == "" && ev.Reason == "" && ev.Resent == 0 && !ev.Restart && ev.Source == (checkpoint.Source{})
}

// lowerHex returns s if it is lower-case hexadecimal, else "".
func lowerHex(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return s
}

// CompactFiles returns c in compact form, if its events are other events,
// then plain starts, then plain completions (any of the three may be
// empty), and there is at least one start or completion to gain from, and
// it has no directory events.
func CompactFiles(c FilesCmd) (filesV2Cmd, bool) {
	if len(c.Dirs) > 0 {
		return filesV2Cmd{}, false // it has no directory events
	}
	v := filesV2Cmd{ID: c.ID, Time: c.Time}
	const others, starts, dones = 0, 1, 2
	part := others
	for _, ev := range c.Events {
		switch {
		case plainDone(ev):
			part = dones
			sum, _ := hex.DecodeString(ev.SHA256)
			v.Done = append(v.Done, ev.Index)
			v.SHA256 = append(v.SHA256, sum...)
		case plainStart(ev) && part <= starts:
			part = starts
			v.Start = append(v.Start, ev.Index)
		case part == others:
			v.Events = append(v.Events, ev)
		default:
			return filesV2Cmd{}, false // out of order
		}
	}
	return v, len(v.Start)+len(v.Done) > 0
}

// expand returns the FilesCmd v was encoded from.
func (v filesV2Cmd) expand() (FilesCmd, error) {
	if len(v.SHA256) != 32*len(v.Done) {
		return FilesCmd{}, fmt.Errorf("%d digest bytes for %d completions", len(v.SHA256), len(v.Done))
	}
	c := FilesCmd{ID: v.ID, Time: v.Time, Events: make([]FileEvent, 0, len(v.Events)+len(v.Start)+len(v.Done))}
	c.Events = append(c.Events, v.Events...)
	for _, i := range v.Start {
		c.Events = append(c.Events, FileEvent{Index: i, Kind: EventStart})
	}
	for k, i := range v.Done {
		c.Events = append(c.Events, FileEvent{Index: i, Kind: EventDone, SHA256: hex.EncodeToString(v.SHA256[32*k : 32*k+32])})
	}
	return c, nil
}

// DecodeFilesV2 decodes a transfer.files.v2 entry and expands it to the
// plain entry it stands for.
func DecodeFilesV2(data []byte) (FilesCmd, error) {
	var v filesV2Cmd
	if err := json.Unmarshal(data, &v); err != nil {
		return FilesCmd{}, err
	}
	return v.expand()
}
