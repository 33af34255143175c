package replicated

import (
	"path/filepath"
	"strings"
	"time"
)

// View is a transfer as clients see it (`ftagent transfer show --json`).
type View struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	Bytes       int64  `json:"bytes"`
	BytesDone   int64  `json:"bytesDone"`
	Failovers   int    `json:"failovers"`
	BytesResent int64  `json:"bytesResent"`
	Reason      string `json:"reason"`
	Priority    int    `json:"priority"`
	Owner       string `json:"owner,omitempty"`
	// DestinationAgent is the agent the files go to, when not this one.
	DestinationAgent string `json:"destinationAgent,omitempty"`
	// Receiver is the destination agent's instance that last received
	// it; ReceiverFailovers the destination's failovers seen meanwhile.
	Receiver          string `json:"receiver,omitempty"`
	ReceiverFailovers int    `json:"receiverFailovers,omitempty"`
	// Group is the group of the destination agent the files go to now,
	// when the transfer moved to an alternate (Switched says when and
	// why); Doubts are the files that may also have been committed at a
	// group it left, and what asking that group again found.
	Group    string     `json:"group,omitempty"`
	Switched *Switch    `json:"switched,omitempty"`
	Doubts   []Doubt    `json:"doubts,omitempty"`
	Created  time.Time  `json:"created"`
	Ended    *time.Time `json:"ended,omitempty"`
	// CurrentFile is the source being copied, when one is.
	CurrentFile string `json:"currentFile,omitempty"`
	// Creating: the transfer is still being created in several entries
	// (open.go): its files so far are listed, and it does not run yet.
	Creating bool `json:"creating,omitempty"`
	// Directories counts the directories a recursive transfer makes
	// (empty or not), DirectoriesDone those made.
	Directories     int `json:"directories"`
	DirectoriesDone int `json:"directoriesDone"`
	// FilesTotal counts the transfer's files; Files lists a window of
	// them (Window). NextOffset, when more files follow the window, is
	// the offset of the next one; NextDirOffset likewise for Dirs. They
	// come before the lists, so that a client reading the view up to its
	// files (agentclient.ParseTransferBody) has them.
	FilesTotal    int        `json:"filesTotal"`
	NextOffset    int        `json:"nextOffset,omitempty"`
	NextDirOffset int        `json:"nextDirOffset,omitempty"`
	Files         []FileView `json:"files"`
	// Dirs lists the directories, with the files (after them: clients
	// that read a view up to its files do not read them either).
	Dirs []DirView `json:"dirs,omitempty"`
}

// Window is the part of a transfer's files a View lists: Limit files from
// Offset, in the transfer's order, and DirLimit directories from
// DirOffset. A window past the end lists none. A transfer of a million
// files is shown a page at a time: the view, and the answer that carries
// it, hold the window's files, not all of them.
type Window struct {
	Offset, Limit       int
	DirOffset, DirLimit int
}

// all is the window of every file and directory of t.
func all(t *Transfer) *Window { return &Window{Limit: t.FileCount(), DirLimit: len(t.Dirs)} }

// DirView is one directory of a View.
type DirView struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	State       string `json:"state"`
	Reason      string `json:"reason,omitempty"`
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

// ViewOf makes the client view of t, with every file and directory; paths
// under root are shown relative to it, as users give them.
func ViewOf(t *Transfer, root string) View { return viewOf(t, root, all(t), nil) }

// SummaryOf is ViewOf without the files (Files nil).
func SummaryOf(t *Transfer, root string) View { return viewOf(t, root, nil, nil) }

// PageOf is ViewOf with the files and directories of w only.
func PageOf(t *Transfer, root string, w Window) View { return viewOf(t, root, &w, nil) }

// viewOf is ViewOf, with the files and directories of w, or none (Files
// and Dirs nil) when w is nil, and with live progress: live, if set,
// names a file and the bytes the active has written of it, counted when
// beyond its checkpoint. The counts (bytesDone, the current file, the
// directories made) cover every file; only the window's are rendered, and
// a file outside it is read without being copied or built (progressAt).
func viewOf(t *Transfer, root string, w *Window, live func(*Transfer) (int, int64)) View {
	v := View{
		ID: t.ID, State: t.State, Bytes: t.Bytes,
		Failovers: t.Failovers, BytesResent: t.BytesResent, Reason: t.Reason,
		Priority: t.Request.Priority, Owner: t.Owner, Created: t.Created, Ended: t.Ended,
		DestinationAgent: t.Request.DestinationAgent,
		Receiver:         t.Receiver, ReceiverFailovers: t.ReceiverFailovers,
		Switched: t.Switched, Doubts: t.Doubts,
		Creating:   t.Open && !Terminal(t.State),
		FilesTotal: t.FileCount(), Directories: len(t.Dirs),
	}
	if t.Switched != nil {
		v.Group = t.Switched.To
	}
	root = cleanRoot(root)
	liveFile, liveBytes := -1, int64(0)
	if live != nil {
		liveFile, liveBytes = live(t)
	}
	current := -1
	for i := range v.FilesTotal {
		state, bytes, done := t.progressAt(i)
		switch {
		case state == StateCompleted:
			done = bytes
		case i == liveFile && !Terminal(state) && liveBytes > done:
			done = liveBytes
		}
		v.BytesDone += done
		if state == StateRunning && current < 0 {
			current = i
		}
	}
	if current >= 0 {
		v.CurrentFile = rel(root, t.FileAt(current).Source)
	}
	for _, d := range t.Dirs {
		if d.State == StateCompleted {
			v.DirectoriesDone++
		}
	}
	if w == nil {
		return v
	}
	from, to := span(w.Offset, w.Limit, v.FilesTotal)
	v.Files = make([]FileView, 0, to-from)
	for i := from; i < to; i++ {
		f := t.FileAt(i)
		done := f.Checkpoint.Offset
		switch {
		case f.State == StateCompleted:
			done = f.Bytes
		case i == liveFile && !Terminal(f.State) && liveBytes > done:
			done = liveBytes
		}
		v.Files = append(v.Files, FileView{
			Source: rel(root, f.Source), Destination: rel(root, f.Destination),
			Bytes: f.Bytes, BytesDone: done, SHA256: f.SHA256, State: f.State, Reason: f.Reason,
		})
	}
	if to < v.FilesTotal {
		v.NextOffset = to
	}
	from, to = span(w.DirOffset, w.DirLimit, len(t.Dirs))
	for _, d := range t.Dirs[from:to] {
		v.Dirs = append(v.Dirs, DirView{Source: rel(root, d.Source), Destination: rel(root, d.Destination), State: d.State, Reason: d.Reason})
	}
	if to < len(t.Dirs) {
		v.NextDirOffset = to
	}
	return v
}

// span is the indices [from, to) of limit items from offset among n.
func span(offset, limit, n int) (from, to int) {
	from = min(max(offset, 0), n)
	return from, from + min(max(limit, 0), n-from)
}

// cleanRoot makes root ready for rel: cleaned, and "" when empty.
func cleanRoot(root string) string {
	if root == "" {
		return ""
	}
	return filepath.Clean(root)
}

// rel shows p relative to root (cleaned) when it lies under it. The
// state's paths are clean and absolute, so a path under root is root, a
// separator and the rest: what filepath.Rel gives, without its work.
func rel(root, p string) string {
	// A path on an SFTP partner, kept as "sftp:/NAME/path" (a form
	// filepath keeps intact: endpoint.SFTPPath), is shown as the user
	// wrote it.
	if rest, ok := strings.CutPrefix(p, "sftp:/"); ok {
		return "sftp://" + rest
	}
	if root == "" {
		return p
	}
	if len(p) > len(root)+1 && p[len(root)] == filepath.Separator && strings.HasPrefix(p, root) &&
		root != string(filepath.Separator) && filepath.Clean(p) == p {
		return p[len(root)+1:]
	}
	r, err := filepath.Rel(root, p)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") {
		return p
	}
	return r
}
