package transfer

import (
	"context"
	"errors"
	"fmt"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// A request of many files is committed in several entries of bounded size
// (replicated/open.go): an open create with the first chunk, appends with
// the next, the last one sealing it. These bound one entry: its files and
// directories, and the bytes of their paths (the entry carries them
// relative to two roots, so this overestimates it).
var (
	createChunkEntries = 8192
	createChunkBytes   = 1 << 20
)

// createPart is one entry's share of a plan.
type createPart struct {
	files []File
	dirs  []Dir
}

// splitCreate cuts a plan into parts within the bounds, directories first
// (the copy makes them first too), in the plan's order.
func splitCreate(files []File, dirs []Dir) []createPart {
	var parts []createPart
	cur, n, size := createPart{}, 0, 0
	full := func(add int) bool {
		return n > 0 && (n+1 > createChunkEntries || size+add > createChunkBytes)
	}
	cut := func() {
		parts = append(parts, cur)
		cur, n, size = createPart{}, 0, 0
	}
	for _, d := range dirs {
		add := len(d.Source) + len(d.Destination)
		if full(add) {
			cut()
		}
		cur.dirs = append(cur.dirs, d)
		n, size = n+1, size+add
	}
	for _, f := range files {
		add := len(f.Source) + len(f.Destination) + 8
		if full(add) {
			cut()
		}
		cur.files = append(cur.files, f)
		n, size = n+1, size+add
	}
	return append(parts, cur)
}

// createInParts commits c, whose plan is cut into parts, as an open create
// and appends. If it cannot finish (the client went away, an entry was
// refused, the lease was lost), it discards what it committed, so that
// nothing half-created is ever run; if the discard cannot be committed
// either, the next active discards it (discardOrphans). It returns the
// transfer, or the existing one when c is the retry of a creation that was
// sealed already.
func (m *Manager) createInParts(ctx context.Context, lease ha.Lease, c replicated.CreateCmd, parts []createPart) (*Transfer, error) {
	id := c.Transfer.ID
	m.mu.Lock()
	m.creating[id]++ // before the first entry: the scheduler must not take it for an orphan
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.creating[id]--; m.creating[id] <= 0 {
			delete(m.creating, id)
		}
		m.mu.Unlock()
	}()
	c.Transfer.Files, c.Transfer.Dirs = parts[0].files, parts[0].dirs
	v, ok := replicated.CompactCreateV3(c)
	if !ok {
		return nil, fmt.Errorf("create transfer %s: its first files cannot be written as %s", id, KindCreateOpen)
	}
	res, err := m.raft.Apply(KindCreateOpen, lease.Epoch, v, applyTimeout)
	if err != nil {
		return nil, err
	}
	created, ok := res.(*Transfer)
	if !ok {
		return nil, fmt.Errorf("create transfer %s: unexpected result %T", id, res)
	}
	if !created.Open {
		return created, nil // a retry of a transfer already created
	}
	seq := created.Seq
	for i, p := range parts[1:] {
		err := ctx.Err()
		if err == nil {
			a, ok := replicated.CompactAppend(replicated.AppendCmd{ID: id, Seq: seq, Files: p.files, Dirs: p.dirs, Seal: i == len(parts)-2})
			if !ok {
				err = fmt.Errorf("its files cannot be written as %s", KindAppend)
			} else {
				_, err = m.raft.Apply(KindAppend, lease.Epoch, a, applyTimeout)
			}
		}
		if err != nil {
			m.discard(lease, id, seq, err)
			if errors.Is(err, replicated.ErrEnded) {
				// Cancelled while it was being created.
				return nil, &RequestError{Reason: fmt.Sprintf("transfer %s was cancelled while it was being created", id)}
			}
			return nil, fmt.Errorf("create transfer %s: entry %d of %d: %w", id, i+2, len(parts), err)
		}
	}
	// Its files shared, not copied: the caller renders a page of them.
	t, ok := m.state.Shared(id)
	if !ok {
		return nil, fmt.Errorf("create transfer %s: %w", id, ErrNotFound)
	}
	return t, nil
}

// discard gives up the creation of transfer id at seq, for the reason why.
func (m *Manager) discard(lease ha.Lease, id string, seq uint64, why error) {
	a, _ := replicated.CompactAppend(replicated.AppendCmd{ID: id, Seq: seq, Discard: true})
	_, err := m.raft.Apply(KindAppend, lease.Epoch, a, applyTimeout)
	ev := m.log.Warn().Str("transfer", id).Uint64("seq", seq).AnErr("why", why)
	if err != nil && !errors.Is(err, replicated.ErrNotOpen) && !errors.Is(err, replicated.ErrEnded) {
		ev.Err(err).Msg("creation of a transfer not finished and not discarded: the next active discards it")
		return
	}
	ev.Msg("creation of a transfer not finished: discarded")
}

// discardOrphans discards the open transfers of pending that this manager
// is not creating: their creator lost the lease (or stopped) before it
// sealed them, and may no longer append. Their clients were never answered;
// a retry creates them again.
func (m *Manager) discardOrphans(lease ha.Lease, pending []*Transfer) {
	for _, t := range pending {
		if !t.Open || Terminal(t.State) {
			continue
		}
		m.mu.Lock()
		mine := m.creating[t.ID] > 0
		m.mu.Unlock()
		if !mine {
			m.discard(lease, t.ID, t.Seq, errors.New("its creator is no longer the active"))
		}
	}
}
