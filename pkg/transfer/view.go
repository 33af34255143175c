package transfer

import (
	"path/filepath"
	"strings"
	"time"
)

// View is a transfer as clients see it (`ftagent transfer show --json`).
type View struct {
	ID          string     `json:"id"`
	State       string     `json:"state"`
	Bytes       int64      `json:"bytes"`
	BytesDone   int64      `json:"bytesDone"`
	Failovers   int        `json:"failovers"`
	BytesResent int64      `json:"bytesResent"`
	Reason      string     `json:"reason"`
	Priority    int        `json:"priority"`
	Created     time.Time  `json:"created"`
	Ended       *time.Time `json:"ended,omitempty"`
	// CurrentFile is the source being copied, when one is.
	CurrentFile string     `json:"currentFile,omitempty"`
	Files       []FileView `json:"files"`
}

// FileView is one file of a View.
type FileView struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Bytes       int64  `json:"bytes"`
	BytesDone   int64  `json:"bytesDone"`
	SHA256      string `json:"sha256,omitempty"`
	State       string `json:"state"`
	Reason      string `json:"reason,omitempty"`
}

// ViewOf makes the client view of t; paths under root are shown relative
// to it, as users give them.
func ViewOf(t *Transfer, root string) View {
	v := View{
		ID: t.ID, State: t.State, Bytes: t.Bytes, BytesDone: t.BytesDone(),
		Failovers: t.Failovers, BytesResent: t.BytesResent, Reason: t.Reason,
		Priority: t.Request.Priority, Created: t.Created, Ended: t.Ended,
		Files: make([]FileView, 0, len(t.Files)),
	}
	for _, f := range t.Files {
		done := f.Checkpoint.Offset
		if f.State == StateCompleted {
			done = f.Bytes
		}
		v.Files = append(v.Files, FileView{
			Source: rel(root, f.Source), Destination: rel(root, f.Destination),
			Bytes: f.Bytes, BytesDone: done, SHA256: f.SHA256, State: f.State, Reason: f.Reason,
		})
		if f.State == StateRunning && v.CurrentFile == "" {
			v.CurrentFile = rel(root, f.Source)
		}
	}
	return v
}

func rel(root, p string) string {
	if root == "" {
		return p
	}
	r, err := filepath.Rel(root, p)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") {
		return p
	}
	return r
}
