package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// prepare readies transfer id for its copies, before any byte is written:
// it fails each file and directory whose name the endpoint cannot hold
// (Endpoint.CheckName), then makes the directories not yet made, parents
// first, each recorded as made or failed. A directory that cannot be made
// for good (a file or a link in its place, permission) fails alone, as a
// file does; any other error is returned, and is transient.
func (m *Manager) prepare(ctx context.Context, lease ha.Lease, id string) error {
	t, ok := m.state.Live(id)
	if !ok || Terminal(t.State) {
		return nil
	}
	var refused []FileEvent
	for i := range t.FileCount() {
		f := t.FileAt(i)
		if f.Started || Terminal(f.State) {
			continue // checked before it started
		}
		err := m.nameError(f.Source, f.Destination)
		if err == nil && t.Request.DestinationAgent != "" {
			err = remoteName(f.Destination)
		}
		if err != nil {
			refused = append(refused, FileEvent{Index: i, Kind: EventFailed, Reason: Text(err.Error())})
		}
	}
	if len(refused) > 0 {
		if err := m.recordFiles(lease.Epoch, replicated.FilesCmd{ID: id, Time: time.Now().UTC(), Events: refused}); err != nil {
			return err
		}
	}
	if len(t.Dirs) == 0 {
		return nil
	}
	// Parents come before their children in t.Dirs (tree.go); a
	// directory's parent that failed fails it too, by the endpoint's
	// own error.
	recv, err := m.receiver(t)
	if err != nil {
		return err
	}
	var evs []DirEvent
	for i, d := range t.Dirs {
		if Terminal(d.State) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err := m.nameError(d.Source, d.Destination)
		if err == nil && recv != nil {
			err = remoteName(d.Destination)
		}
		refused := false // by the destination agent, for good
		switch {
		case err == nil && recv != nil:
			err = recv.Mkdir(ctx, InboundRef{ID: t.ID, Epoch: lease.Epoch, Path: d.Destination})
			var ie *InboundError
			if refused = errors.As(err, &ie) && (ie.Code == InboundRefused || ie.Code == InboundExists); refused {
				err = fmt.Errorf("agent %s refused: %w", t.Group(), err)
			}
		case err == nil:
			err = m.ep.MakeDir(ctx, d.Destination)
		}
		switch {
		case err == nil:
			evs = append(evs, DirEvent{Index: i, Kind: EventDone})
		case refused || endpoint.Permanent(err):
			evs = append(evs, DirEvent{Index: i, Kind: EventFailed, Reason: Text(err.Error())})
		default:
			if len(evs) > 0 {
				// What was made is recorded; the rest is retried.
				if rerr := m.recordDirs(lease.Epoch, id, evs); rerr != nil {
					return rerr
				}
			}
			return fmt.Errorf("make directory %s: %w", replicated.ReasonName(d.Destination), err)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	return m.recordDirs(lease.Epoch, id, evs)
}

// recordDirs commits directory events, in entries of at most 1,024.
func (m *Manager) recordDirs(epoch uint64, id string, evs []DirEvent) error {
	for len(evs) > 0 {
		n := min(len(evs), 1024)
		// The plain kind: see above for why, and the compact one does
		// not carry directories.
		if _, err := m.raft.Apply(KindFiles, epoch, replicated.FilesCmd{ID: id, Time: time.Now().UTC(), Dirs: evs[:n]}, applyTimeout); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

// nameError says why the endpoint cannot hold a source or destination
// name, if it cannot.
func (m *Manager) nameError(src, dst string) error {
	if err := m.ep.CheckName(src); err != nil {
		return fmt.Errorf("source name: %w", err)
	}
	if err := m.ep.CheckName(dst); err != nil {
		return fmt.Errorf("destination name: %w", err)
	}
	return nil
}

// remoteName says why a destination cannot be named at another agent:
// the inbound API carries names as UTF-8 text (JSON, URLs), so a name that
// is not fails before anything is sent.
func remoteName(dst string) error {
	if !utf8.ValidString(dst) {
		return fmt.Errorf("destination name: %w: a name that is not UTF-8 cannot be sent to another agent", endpoint.ErrNameNotRepresentable)
	}
	return nil
}
