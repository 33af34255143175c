package transfer

import (
	"time"

	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// Observer is told of the work the active commits, for its metrics. Its
// methods are called on the copy loops' path and must return at once.
type Observer interface {
	// FilesDone: files whose completion committed, their bytes, and the
	// bytes copied again (a resumed file's bytes beyond its last
	// checkpoint, or a file restarted from zero).
	FilesDone(files int, bytes, resent int64)
	// CheckpointRecorded: how long a large file's checkpoint took to
	// commit.
	CheckpointRecorded(took time.Duration)
	// Switched: a transfer moved to an alternate group of its destination
	// agent.
	Switched()
}

// SetAudit sets the audit trail the manager records its moves to
// alternate groups in (nil: none); call it before Run.
func (m *Manager) SetAudit(l *audit.Log) { m.audit = l }

// SetObserver sets the manager's observer; call it before Run.
func (m *Manager) SetObserver(o Observer) { m.observer = o }

// observeFiles tells the observer what a committed entry of file events
// did.
func (m *Manager) observeFiles(c replicated.FilesCmd) {
	if m.observer == nil {
		return
	}
	var done []int
	var resent int64
	for _, ev := range c.Events {
		switch ev.Kind {
		case EventDone:
			done = append(done, ev.Index)
		case EventStart:
			resent += ev.Resent
		}
	}
	files, bytes := m.state.Bytes(c.ID, done)
	if files > 0 || resent > 0 {
		m.observer.FilesDone(files, bytes, resent)
	}
}
