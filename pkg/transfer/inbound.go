package transfer

// The destination side of agent-to-agent transfers: this agent's active
// receives the files another agent's active sends, writes each under its
// .part name through its own fenced endpoint, makes it durable, and records
// each durable point, with the hash state of what it wrote, in its own log
// (replicated.InboundCmd). A file is renamed into place only when the
// digest of what was written here equals the sender's.
//
// The sender's lease epoch is the fence at this end: once a newer epoch of
// the sender has been recorded for a transfer, an older one is refused, and
// a request of the newer one first stops whatever an older one still has
// in flight on the same file.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// InboundError is a refusal of the inbound API, with the code the sender
// sorts it by (api.Inbound*).
type InboundError struct {
	Code string
	Err  error
}

func (e *InboundError) Error() string { return e.Err.Error() }
func (e *InboundError) Unwrap() error { return e.Err }

// Codes of InboundError (the same words as pkg/api's).
const (
	InboundStale    = "stale-sender"
	InboundPartLost = "part-lost"
	InboundExists   = "exists"
	InboundDigest   = "digest"
	InboundRefused  = "refused"
	InboundBusy     = "busy"
)

func inboundErr(code string, format string, args ...any) error {
	return &InboundError{Code: code, Err: fmt.Errorf(format, args...)}
}

// InboundRef names a file of a sender's transfer (or, without Path, the
// transfer), under the sender's lease epoch.
type InboundRef struct {
	Agent string // the sending agent, from its certificate
	ID    string
	Epoch uint64
	Path  string // as the sender's request names it
	Size  int64
	// Digest, in a status request, is the source's SHA-256 of a file the
	// sender started but has not seen committed: a file of that digest
	// found in place without a record here is this transfer's, renamed by
	// an active of this agent that died before recording it.
	Digest string
}

// InboundStatus is what this agent holds of a file.
type InboundStatus struct {
	Durable   int64 // -1: nothing recorded
	Resumable []int64
	Committed bool
	Digest    string
	Exists    bool
	// Receiver and ReceiverEpoch: the destination's instance that answered
	// and its lease epoch.
	Receiver      string
	ReceiverEpoch uint64
}

// inboundIdleAfter is how long an inbound transfer that has not ended
// counts towards maxDestinationTransfers after its last change.
const inboundIdleAfter = 10 * time.Minute

// receiving holds the inbound writes in flight on this active, one per
// file: a newer sender epoch stops an older one's before it goes on.
type receiving struct {
	mu    sync.Mutex
	files map[string]*inflight // by agent/id/path
}

type inflight struct {
	epoch  uint64
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// errSuperseded stops a request whose sender sent the next one on the
// same file (it lost the connection and retried).
var errSuperseded = errors.New("the sender retried: this request was superseded")

// inboundWork is the context of one inbound request: this active's lease
// (its epoch fences every change to storage), ended when the request ends
// or the lease is lost.
func (m *Manager) inboundWork(ctx context.Context) (context.Context, context.CancelFunc, ha.Lease, error) {
	m.mu.Lock()
	lease, run := m.lease, m.runCtx
	m.mu.Unlock()
	if lease == nil || run == nil {
		return nil, nil, ha.Lease{}, ErrNotActive
	}
	wctx, cancel := context.WithCancel(run)
	stop := context.AfterFunc(ctx, cancel)
	return wctx, func() { stop(); cancel() }, *lease, nil
}

// claim makes this request the only one at work on file key, once it has
// checked the sender's epoch: an older epoch's request in flight is
// cancelled and waited for; a newer one's refuses this one.
func (m *Manager) claim(ctx context.Context, key string, epoch uint64) (cctx context.Context, release func(), err error) {
	r := &m.receiving
	for {
		r.mu.Lock()
		if r.files == nil {
			r.files = map[string]*inflight{}
		}
		cur := r.files[key]
		if cur == nil {
			cctx, cancel := context.WithCancelCause(ctx)
			f := &inflight{epoch: epoch, cancel: cancel, done: make(chan struct{})}
			r.files[key] = f
			r.mu.Unlock()
			return cctx, func() {
				r.mu.Lock()
				if r.files[key] == f {
					delete(r.files, key)
				}
				r.mu.Unlock()
				cancel(nil)
				close(f.done)
			}, nil
		}
		if cur.epoch > epoch {
			r.mu.Unlock()
			return nil, nil, inboundErr(InboundStale, "a newer active of the sender (epoch %d) is writing this file; epoch %d is stale", cur.epoch, epoch)
		}
		// The same epoch or an older one: the sender retried after
		// losing its connection, or a new active took over. Either way the
		// request in flight is dead to its sender; an older epoch's is
		// refused as stale (and audited).
		if cur.epoch < epoch {
			cur.cancel(inboundErr(InboundStale, "a newer active of the sender (epoch %d) took over this file; epoch %d is stale", epoch, cur.epoch))
		} else {
			cur.cancel(errSuperseded)
		}
		r.mu.Unlock()
		select {
		case <-cur.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// fenceSender checks ref's epoch against the newest recorded for its
// transfer, and records ref's when it is newer, so that the sender's older
// actives are refused from then on.
func (m *Manager) fenceSender(lease ha.Lease, ref InboundRef) error {
	_, seen, _ := m.state.InboundFileAt(ref.Agent, ref.ID, "")
	switch {
	case ref.Epoch < seen:
		return inboundErr(InboundStale, "transfer %s of agent %s is sent under epoch %d now; epoch %d is stale", ref.ID, ref.Agent, seen, ref.Epoch)
	case ref.Epoch == seen:
		return nil
	}
	if limit := m.limits.MaxDestinationTransfers; seen == 0 && limit > 0 {
		// A transfer this agent has not received from before: within
		// maxDestinationTransfers of those at work (changed lately; one
		// whose sender went silent stops counting).
		if n := m.state.InboundActive(time.Now().Add(-inboundIdleAfter)); n >= limit {
			return inboundErr(InboundBusy, "agent receives %d transfers already (maxDestinationTransfers=%d): try again later", n, limit)
		}
	}
	return m.applyInbound(lease, replicated.InboundCmd{Op: replicated.InboundEpoch, Agent: ref.Agent, ID: ref.ID, SenderEpoch: ref.Epoch, Time: time.Now().UTC()})
}

// applyInbound records c, sorting its refusals.
func (m *Manager) applyInbound(lease ha.Lease, c replicated.InboundCmd) error {
	res, err := m.raft.Apply(replicated.KindInbound, lease.Epoch, c, applyTimeout)
	if err == nil {
		err, _ = res.(error)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, replicated.ErrStaleSender):
		return &InboundError{Code: InboundStale, Err: err}
	case errors.Is(err, replicated.ErrInboundState):
		return &InboundError{Code: InboundRefused, Err: err}
	}
	return fmt.Errorf("record inbound %s: %w", c.Op, err)
}

// resolveInbound resolves a destination within this agent's sandbox.
func (m *Manager) resolveInbound(p string) (string, error) {
	if p == "" {
		return "", inboundErr(InboundRefused, "no destination path")
	}
	abs, err := m.sb.Resolve(p)
	if err != nil {
		return "", &InboundError{Code: InboundRefused, Err: err}
	}
	if err := m.ep.CheckName(abs); err != nil {
		return "", &InboundError{Code: InboundRefused, Err: err}
	}
	return abs, nil
}

// begin is the start of every inbound request on a file: the lease, the
// path, the sender's epoch fenced, and the file claimed.
func (m *Manager) begin(ctx context.Context, ref InboundRef) (wctx context.Context, lease ha.Lease, abs string, done func(), err error) {
	wctx, cancel, lease, err := m.inboundWork(ctx)
	if err != nil {
		return nil, ha.Lease{}, "", nil, err
	}
	fail := func(err error) (context.Context, ha.Lease, string, func(), error) {
		cancel()
		return nil, ha.Lease{}, "", nil, err
	}
	if ref.Agent == "" || ref.ID == "" {
		return fail(inboundErr(InboundRefused, "no sending agent or transfer id"))
	}
	if ref.Path != "" {
		if abs, err = m.resolveInbound(ref.Path); err != nil {
			return fail(err)
		}
	}
	wctx, release, err := m.claim(wctx, ref.Agent+"/"+ref.ID+"/"+abs, ref.Epoch)
	if err != nil {
		return fail(err)
	}
	if err := m.fenceSender(lease, ref); err != nil {
		release()
		return fail(err)
	}
	return wctx, lease, abs, func() { release(); cancel() }, nil
}

// ReceiveStatus answers what this agent holds of ref's file, after
// recording the sender's epoch when it is newer.
func (m *Manager) ReceiveStatus(ctx context.Context, ref InboundRef) (InboundStatus, error) {
	wctx, lease, abs, done, err := m.begin(ctx, ref)
	if err != nil {
		return InboundStatus{}, err
	}
	defer done()
	st := InboundStatus{Durable: -1, Resumable: []int64{0}, ReceiverEpoch: lease.Epoch}
	if abs == "" {
		return st, nil
	}
	f, _, ok := m.state.InboundFileAt(ref.Agent, ref.ID, abs)
	if ok {
		st.Committed, st.Digest = f.Committed, f.Digest
		st.Durable = f.Last.Offset
		if !f.Committed {
			// A durable point counts only while the .part holds it.
			if info, err := m.ep.Stat(wctx, endpoint.PartName(abs)); err != nil || info.Size < f.Last.Offset {
				st.Durable = -1
			} else {
				for _, o := range []int64{f.Prev.Offset, f.Last.Offset} {
					if o > 0 {
						st.Resumable = append(st.Resumable, o)
					}
				}
			}
		}
	}
	exists, err := m.ep.Exists(wctx, abs)
	if err != nil {
		return InboundStatus{}, fmt.Errorf("check %s: %w", abs, err)
	}
	st.Exists = exists
	if exists && !st.Committed && st.Durable < 0 && ref.Digest != "" {
		return m.replayedRename(wctx, ref, abs, st)
	}
	return st, nil
}

// replayedRename records a file found in place whose bytes are those the
// sender read (ref.Digest): renamed here by an active that died before it
// recorded the rename. Any other file there stays what it is.
func (m *Manager) replayedRename(ctx context.Context, ref InboundRef, abs string, st InboundStatus) (InboundStatus, error) {
	sf, err := m.ep.OpenSource(ctx, abs)
	if err != nil {
		return st, nil // not a regular file: the sender sees it exists
	}
	defer sf.Close()
	if sf.Info().Size != ref.Size {
		return st, nil
	}
	h := checkpoint.NewHash()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(sf, 0, ref.Size), make([]byte, 1<<20)); err != nil {
		return InboundStatus{}, classifyInbound("read "+abs, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != ref.Digest {
		return st, nil
	}
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	if lease == nil {
		return InboundStatus{}, ErrNotActive
	}
	// The instance that renamed it may have died before its directory
	// sync: the rename is made durable before it is recorded.
	if err := m.ep.SyncDirs(ctx, []string{abs}); err != nil {
		return InboundStatus{}, classifyInbound("sync the directory of "+abs, err)
	}
	if err := m.applyInbound(*lease, replicated.InboundCmd{Op: replicated.InboundFiles, Agent: ref.Agent, ID: ref.ID, SenderEpoch: ref.Epoch,
		Time: time.Now().UTC(), Files: []replicated.InboundDone{{Path: abs, Size: ref.Size, Digest: ref.Digest}}}); err != nil {
		return InboundStatus{}, err
	}
	m.log.Info().Str("sender", ref.Agent).Str("transfer", ref.ID).Str("file", abs).Msg("a rename into place found done but not recorded: recorded now")
	st.Committed, st.Digest, st.Durable, st.Resumable = true, ref.Digest, ref.Size, []int64{0}
	return st, nil
}

// ReceiveData writes body to ref's .part from offset on, makes it durable,
// and records the point reached. It returns the offset recorded.
func (m *Manager) ReceiveData(ctx context.Context, ref InboundRef, offset int64, overwrite bool, body io.Reader) (int64, error) {
	wctx, lease, abs, done, err := m.begin(ctx, ref)
	if err != nil {
		return 0, err
	}
	defer done()
	if abs == "" {
		return 0, inboundErr(InboundRefused, "no destination path")
	}
	if ref.Size < 0 || offset < 0 || offset > ref.Size {
		return 0, inboundErr(InboundRefused, "offset %d of a file of %d bytes", offset, ref.Size)
	}
	f, _, known := m.state.InboundFileAt(ref.Agent, ref.ID, abs)
	if known && f.Committed {
		return 0, inboundErr(InboundRefused, "%s was committed already", abs)
	}
	if known && f.Size != ref.Size {
		return 0, inboundErr(InboundRefused, "%s: the sender said %d bytes before, %d now", abs, f.Size, ref.Size)
	}
	base, ok := f.At(offset)
	if !known && offset > 0 || !ok {
		return 0, inboundErr(InboundPartLost, "%s: no durable point at offset %d here", abs, offset)
	}
	if offset == 0 && !overwrite {
		if exists, err := m.ep.Exists(wctx, abs); err != nil {
			return 0, fmt.Errorf("check %s: %w", abs, err)
		} else if exists {
			return 0, inboundErr(InboundExists, "destination exists: %s", abs)
		}
	}
	h, err := checkpoint.Resume(base)
	if err != nil {
		return 0, inboundErr(InboundPartLost, "%s: the hash state at %d: %v", abs, offset, err)
	}
	part, err := m.ep.OpenPart(wctx, abs, offset)
	if err != nil {
		if errors.Is(err, endpoint.ErrPartLost) {
			return 0, &InboundError{Code: InboundPartLost, Err: err}
		}
		return 0, classifyInbound("open "+endpoint.PartName(abs), err)
	}
	defer part.Close()
	// A body read blocks until bytes come, whatever the context says: a
	// request stopped (lease lost, a newer sender) stops its read too.
	if a, ok := body.(interface{ Abort() }); ok {
		stop := context.AfterFunc(wctx, a.Abort)
		defer stop()
	}
	limit := ref.Size - offset
	n, err := copyFull(io.MultiWriter(part, h), io.LimitReader(body, limit+1), make([]byte, 1<<20))
	if err != nil {
		if wctx.Err() != nil {
			cause := context.Cause(wctx)
			var ie *InboundError
			if errors.As(cause, &ie) {
				return 0, cause
			}
			return 0, fmt.Errorf("write %s: stopped: %w", endpoint.PartName(abs), cause)
		}
		return 0, classifyInbound("write "+endpoint.PartName(abs), err)
	}
	if n > limit {
		return 0, inboundErr(InboundRefused, "%s: more than the %d bytes announced", abs, ref.Size)
	}
	if n == 0 && ref.Size > 0 {
		return 0, inboundErr(InboundRefused, "%s: no bytes sent", abs)
	}
	if err := part.Sync(); err != nil {
		return 0, classifyInbound("sync "+endpoint.PartName(abs), err)
	}
	if err := part.Close(); err != nil {
		return 0, classifyInbound("close "+endpoint.PartName(abs), err)
	}
	state, err := checkpoint.SaveHash(h)
	if err != nil {
		return 0, err
	}
	at := offset + n
	if err := m.applyInbound(lease, replicated.InboundCmd{
		Op: replicated.InboundCheckpoint, Agent: ref.Agent, ID: ref.ID, SenderEpoch: ref.Epoch, Time: time.Now().UTC(),
		Path: abs, Size: ref.Size, Base: offset,
		Checkpoint: checkpoint.Checkpoint{Offset: at, Hash: state, Epoch: lease.Epoch},
	}); err != nil {
		return 0, err
	}
	return at, nil
}

// ReceiveCommit renames ref's file into place once all of it is durable
// here and the digest of what was written equals the sender's.
func (m *Manager) ReceiveCommit(ctx context.Context, ref InboundRef, digest string, overwrite bool) error {
	wctx, lease, abs, done, err := m.begin(ctx, ref)
	if err != nil {
		return err
	}
	defer done()
	f, _, ok := m.state.InboundFileAt(ref.Agent, ref.ID, abs)
	switch {
	case !ok:
		return inboundErr(InboundPartLost, "%s was not received here", abs)
	case f.Committed && f.Digest == digest:
		return nil // a commit replayed after the sender's failover
	case f.Committed:
		return inboundErr(InboundRefused, "%s was committed with digest %s, not %s", abs, f.Digest, digest)
	case f.Last.Offset != f.Size:
		return inboundErr(InboundPartLost, "%s: %d of %d bytes durable here", abs, f.Last.Offset, f.Size)
	}
	h, err := checkpoint.Resume(f.Last)
	if err != nil {
		return inboundErr(InboundPartLost, "%s: the hash state: %v", abs, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		// What was written is not what was read: never renamed into
		// place. The sender starts the file again.
		if err := m.ep.Remove(wctx, endpoint.PartName(abs)); err != nil {
			m.log.Warn().Err(err).Str("file", abs).Msg("remove the .part of a file whose digest differs")
		}
		if err := m.applyInbound(lease, replicated.InboundCmd{Op: replicated.InboundRemove, Agent: ref.Agent, ID: ref.ID, SenderEpoch: ref.Epoch, Time: time.Now().UTC(), Path: abs}); err != nil {
			return err
		}
		return inboundErr(InboundDigest, "%s: SHA-256 of what was written here is %s, the sender read %s", abs, got, digest)
	}
	if err := m.raft.VerifyLease(lease.Epoch); err != nil {
		return fmt.Errorf("lease check before rename: %w", err)
	}
	err = m.ep.Commit(wctx, abs, overwrite)
	switch {
	case err == nil, errors.Is(err, endpoint.ErrAlreadyCommitted):
	case errors.Is(err, endpoint.ErrExists):
		return inboundErr(InboundExists, "destination exists: %s", abs)
	default:
		return classifyInbound("rename into place", err)
	}
	if err := m.applyInbound(lease, replicated.InboundCmd{Op: replicated.InboundCommit, Agent: ref.Agent, ID: ref.ID, SenderEpoch: ref.Epoch, Time: time.Now().UTC(), Path: abs, Digest: digest}); err != nil {
		return err
	}
	inboundCommitted()
	return nil
}

// exitAfterInboundCommit is a fault for the end-to-end tests, set by
// FTAGENT_TEST_EXIT_AFTER_INBOUND_COMMIT=1 in a receiving instance's
// environment: the process exits at once after a commit of received files
// is recorded and before it answers, as if it were killed between the
// two. The sender is then left with files whose commit it asked for and
// never heard of (in doubt, if the group is lost and the transfer moves).
// Nothing else reads it; it is never set outside the tests.
var exitAfterInboundCommit = os.Getenv("FTAGENT_TEST_EXIT_AFTER_INBOUND_COMMIT") == "1"

func inboundCommitted() {
	if exitAfterInboundCommit {
		fmt.Fprintln(os.Stderr, "FTAGENT_TEST_EXIT_AFTER_INBOUND_COMMIT: exiting after a commit, before its answer")
		os.Exit(137)
	}
}

// ReceiveRemove removes ref's .part (a file that failed or was cancelled
// at the sender, or that starts again) and forgets it. A committed file
// stays.
func (m *Manager) ReceiveRemove(ctx context.Context, ref InboundRef) error {
	wctx, lease, abs, done, err := m.begin(ctx, ref)
	if err != nil {
		return err
	}
	defer done()
	f, _, ok := m.state.InboundFileAt(ref.Agent, ref.ID, abs)
	if ok && f.Committed {
		return nil
	}
	if err := m.ep.Remove(wctx, endpoint.PartName(abs)); err != nil {
		return classifyInbound("remove "+endpoint.PartName(abs), err)
	}
	if !ok {
		return nil
	}
	return m.applyInbound(lease, replicated.InboundCmd{Op: replicated.InboundRemove, Agent: ref.Agent, ID: ref.ID, SenderEpoch: ref.Epoch, Time: time.Now().UTC(), Path: abs})
}

// ReceiveMkdir makes a directory of a recursive transfer.
func (m *Manager) ReceiveMkdir(ctx context.Context, ref InboundRef) error {
	wctx, _, abs, done, err := m.begin(ctx, ref)
	if err != nil {
		return err
	}
	defer done()
	if abs == "" {
		return inboundErr(InboundRefused, "no directory path")
	}
	if err := m.ep.MakeDir(wctx, abs); err != nil {
		return classifyInbound("make directory "+abs, err)
	}
	return nil
}

// ReceiveEnd: the sender's transfer ended. The .part files of what was
// not committed are removed, and the transfer's files forgotten; its
// epoch stays, so that a stale active of the sender is still refused.
func (m *Manager) ReceiveEnd(ctx context.Context, ref InboundRef) error {
	ref.Path = ""
	wctx, lease, _, done, err := m.begin(ctx, ref)
	if err != nil {
		return err
	}
	defer done()
	t, ok := m.state.Inbound(ref.Agent, ref.ID)
	if !ok || t.Ended {
		return nil
	}
	for p, f := range t.Files {
		if f.Committed {
			continue
		}
		if err := m.ep.Remove(wctx, endpoint.PartName(p)); err != nil {
			return classifyInbound("remove "+endpoint.PartName(p), err)
		}
	}
	return m.applyInbound(lease, replicated.InboundCmd{Op: replicated.InboundEnd, Agent: ref.Agent, ID: ref.ID, SenderEpoch: ref.Epoch, Time: time.Now().UTC()})
}

// classifyInbound sorts a storage error: permanent ones are refusals the
// sender fails the file for, the rest transient (InboundBusy).
func classifyInbound(what string, err error) error {
	code := InboundBusy
	if endpoint.Permanent(err) {
		code = InboundRefused
	}
	return &InboundError{Code: code, Err: fmt.Errorf("%s: %w", what, err)}
}

// InboundRetention is how long this agent keeps what it received of
// another agent's transfer after the sender said it ended: the record of
// the sender's newest epoch, which refuses a stale active of the sender
// that wakes up meanwhile. Its files were forgotten at the end already.
const InboundRetention = 24 * time.Hour

// pruneInbound forgets the inbound transfers that ended more than
// InboundRetention ago, at most pruneMax at a time.
func (m *Manager) pruneInbound(lease ha.Lease, now time.Time) {
	keys := m.state.InboundEnded(now.Add(-InboundRetention), pruneMax)
	if len(keys) == 0 {
		return
	}
	if _, err := m.raft.Apply(replicated.KindInbound, lease.Epoch, replicated.InboundCmd{Op: replicated.InboundPrune, Time: now, Keys: keys}, applyTimeout); err != nil {
		m.log.Warn().Err(err).Int("transfers", len(keys)).Msg("forget ended inbound transfers")
	}
}

// copyFull copies src to dst in writes of len(buf) (the last one
// shorter): a request body comes a TLS record at a time, and a write and
// its fence check per record would cost more than the bytes.
func copyFull(dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		k, err := io.ReadFull(src, buf)
		if k > 0 {
			w, werr := dst.Write(buf[:k])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
			if w < k {
				return n, io.ErrShortWrite
			}
		}
		switch {
		case err == io.EOF, err == io.ErrUnexpectedEOF:
			return n, nil
		case err != nil:
			return n, err
		}
	}
}
