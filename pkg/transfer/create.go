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
	n     int // files and directories
	size  int // bytes of their paths
}

// full reports whether the part has no room for one more file or
// directory whose paths are add bytes: a part holds at least one.
func (p *createPart) full(add int) bool {
	return p.n > 0 && (p.n+1 > createChunkEntries || p.size+add > createChunkBytes)
}

// creation commits a request's plan while it is produced (plan): the
// directories, then the files, each handed to it as it is found, so that
// the active holds one part of a large plan at a time, not the plan. A
// plan within one part is committed as one create entry (Manager.create),
// as any request; a larger one as an open create of its first part and an
// append for each next part, the last one sealing it (replicated/open.go).
// A part is committed once the next one begins, since the open create
// must come first and the seal last. If the creation cannot finish (a
// refusal met in a later part, the client went away, an entry was refused,
// the lease was lost), what was committed is discarded (end), so that
// nothing half-created is ever run; if the discard cannot be committed
// either, the next active discards it (discardOrphans).
type creation struct {
	m     *Manager
	ctx   context.Context
	lease ha.Lease
	c     replicated.CreateCmd // the transfer, without its files and directories
	// inParts: every instance reads the appends. Else (a rolling upgrade
	// from a build that reads none) the plan is one entry, however large,
	// and is held whole until it is committed.
	inParts bool
	cur     createPart
	entries int    // entries committed
	seq     uint64 // log index of the open create, once committed
	open    bool   // this creation's open transfer is in the log, not sealed
	counted bool   // m.creating counts this creation
	// existing is the transfer the open create met instead of creating
	// one: a retry of a creation sealed meanwhile.
	existing *Transfer
}

// errExisting stops the plan of a request whose transfer was created
// already (creation.existing).
var errExisting = errors.New("the transfer was created already")

func (m *Manager) newCreation(ctx context.Context, lease ha.Lease, c replicated.CreateCmd) *creation {
	return &creation{m: m, ctx: ctx, lease: lease, c: c, inParts: m.raft.FormatAgreed(replicated.FormatOpen)}
}

// addDir adds a directory to the plan, after any directory added before
// and before any file.
func (cr *creation) addDir(d Dir) error {
	add := len(d.Source) + len(d.Destination)
	if err := cr.room(add); err != nil {
		return err
	}
	cr.cur.dirs = append(cr.cur.dirs, d)
	cr.cur.n, cr.cur.size = cr.cur.n+1, cr.cur.size+add
	return nil
}

// addFile adds a file to the plan, after every file added before.
func (cr *creation) addFile(f File) error {
	add := len(f.Source) + len(f.Destination) + 8
	if err := cr.room(add); err != nil {
		return err
	}
	cr.cur.files = append(cr.cur.files, f)
	cr.cur.n, cr.cur.size = cr.cur.n+1, cr.cur.size+add
	return nil
}

// room commits the current part if it has no room for add bytes more:
// more follows it.
func (cr *creation) room(add int) error {
	if !cr.inParts || !cr.cur.full(add) {
		return nil
	}
	if err := cr.commit(false); err != nil {
		return err
	}
	cr.cur = createPart{}
	return nil
}

// finish commits the rest of the plan, and returns the kind of its first
// entry and the transfer.
func (cr *creation) finish() (string, any, error) {
	if cr.entries == 0 {
		// One part: one create entry, as for any request.
		if err := cr.check(); err != nil {
			return "", nil, err
		}
		cr.c.Transfer.Files, cr.c.Transfer.Dirs = cr.cur.files, cr.cur.dirs
		return cr.m.create(cr.lease, cr.c)
	}
	if err := cr.commit(true); err != nil {
		return "", nil, err
	}
	cr.open = false
	// Its files shared, not copied: the caller renders a page of them.
	t, ok := cr.m.state.Shared(cr.c.Transfer.ID)
	if !ok {
		return "", nil, fmt.Errorf("create transfer %s: %w", cr.c.Transfer.ID, ErrNotFound)
	}
	return KindCreateOpen, t, nil
}

// check refuses the current part's files whose destination exists, when
// the request may not overwrite.
func (cr *creation) check() error {
	// Another agent's destinations are checked there, when each file
	// begins.
	if cr.c.Transfer.Request.Overwrite == OverwriteError && cr.c.Transfer.Request.DestinationAgent == "" {
		return cr.m.checkNoDestination(cr.cur.files)
	}
	return nil
}

// commit commits the current part: the open create if it is the first,
// else an append, which seals the creation when it is the last.
func (cr *creation) commit(seal bool) error {
	if err := cr.ctx.Err(); err != nil {
		return fmt.Errorf("plan transfer: %w", err) // the client went away
	}
	if err := cr.check(); err != nil {
		return err
	}
	id := cr.c.Transfer.ID
	if cr.entries > 0 {
		a, ok := replicated.CompactAppend(replicated.AppendCmd{ID: id, Seq: cr.seq, Files: cr.cur.files, Dirs: cr.cur.dirs, Seal: seal})
		if !ok {
			return fmt.Errorf("create transfer %s: entry %d: its files cannot be written as %s", id, cr.entries+1, KindAppend)
		}
		if _, err := cr.m.raft.Apply(KindAppend, cr.lease.Epoch, a, applyTimeout); err != nil {
			if errors.Is(err, replicated.ErrEnded) {
				return &RequestError{Reason: fmt.Sprintf("transfer %s was cancelled while it was being created", id)}
			}
			return fmt.Errorf("create transfer %s: entry %d: %w", id, cr.entries+1, err)
		}
		cr.entries++
		return nil
	}
	cr.m.mu.Lock()
	cr.m.creating[id]++ // before the first entry: the scheduler must not take it for an orphan
	cr.m.mu.Unlock()
	cr.counted = true
	c := cr.c
	c.Transfer.Files, c.Transfer.Dirs = cr.cur.files, cr.cur.dirs
	v, ok := replicated.CompactCreateV3(c)
	if !ok {
		return fmt.Errorf("create transfer %s: its first files cannot be written as %s", id, KindCreateOpen)
	}
	res, err := cr.m.raft.Apply(KindCreateOpen, cr.lease.Epoch, v, applyTimeout)
	if err != nil {
		return err
	}
	created, ok := res.(*Transfer)
	if !ok {
		return fmt.Errorf("create transfer %s: unexpected result %T", id, res)
	}
	if !created.Open {
		cr.existing = created // a retry of a transfer already created
		return errExisting
	}
	cr.entries, cr.seq, cr.open = 1, created.Seq, true
	return nil
}

// end gives up the creation for the reason why, if this creation's open
// transfer is in the log, and lets the scheduler take an open transfer of
// this id for an orphan again. Called once the creation has ended,
// whether it finished or not.
func (cr *creation) end(why error) {
	id := cr.c.Transfer.ID
	if cr.open {
		cr.m.discard(cr.lease, id, cr.seq, why)
		cr.open = false
	}
	if cr.counted {
		cr.counted = false
		cr.m.mu.Lock()
		if cr.m.creating[id]--; cr.m.creating[id] <= 0 {
			delete(cr.m.creating, id)
		}
		cr.m.mu.Unlock()
	}
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
