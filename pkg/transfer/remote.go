package transfer

// The source side of agent-to-agent transfers: a transfer whose request
// names a destination agent is read here and pushed to that agent's active
// (a Receiver, pkg/agentlink), which writes, syncs and records each durable
// point in its own log. This active records its own checkpoint of a file
// only once the destination has acknowledged the same offset as durable,
// so its checkpoint is always one the destination can resume at (the
// destination keeps its last two: replicated/inbound.go).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/copyloop"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// Receiver is another agent as this agent's active sends to it. Its
// errors are *InboundError for the destination's refusals; any other error
// is transient (the destination unreachable, failing over, busy).
type Receiver interface {
	// Status presents this active's epoch for the transfer and returns
	// what the destination holds of the file (or, without a path, of
	// nothing: the epoch alone).
	Status(ctx context.Context, ref InboundRef) (InboundStatus, error)
	// Send starts the file's bytes from offset: Write sends, Sync ends the
	// request and returns once the destination has made them durable and
	// recorded them; a Write after a Sync starts the next request.
	Send(ctx context.Context, ref InboundRef, offset int64, overwrite bool) (endpoint.PartFile, error)
	// Commit asks the destination to check the digest and rename the
	// file into place.
	Commit(ctx context.Context, ref InboundRef, digest string, overwrite bool) error
	// SendFiles sends small files whole in one request: files calls
	// emit for each, in order; the results are in that order.
	SendFiles(ctx context.Context, ref InboundRef, overwrite bool, files func(emit func(FileFrame, []byte) error) error) ([]FileResult, error)
	// Silent is how long requests have failed to reach the agent in a row
	// (ErrAgentUnreachable; 0 while they reach it): its group is lost
	// once that passes alternateAfter. Last is when the last of them
	// failed.
	Silent() (failing time.Duration, last time.Time)
	Remove(ctx context.Context, ref InboundRef) error
	Mkdir(ctx context.Context, ref InboundRef) error
	End(ctx context.Context, ref InboundRef) error
}

// Receivers finds the Receiver of a destination agent (nil: no agent is
// configured, agent.NAME.instances).
type Receivers interface {
	Receiver(agent string) (Receiver, bool)
}

// SetReceivers gives the manager the agents it may send to.
func (m *Manager) SetReceivers(r Receivers) { m.receivers = r }

// ErrAgentUnreachable marks an error reaching another agent's group as
// the group's loss rather than a refusal: no instance answered through
// the client's whole connect and reconnect plan, or none was active.
var ErrAgentUnreachable = errors.New("agent unreachable")

// SetGroups gives the manager the groups of each destination agent: the
// agent, then its alternates in order (agent.NAME.alternates), and how
// long a group must stay unreachable before its transfers move to the
// next one.
func (m *Manager) SetGroups(groups func(agent string) []string, after time.Duration) {
	m.groups, m.alternateAfter = groups, after
}

// nextGroup is the first group after the one t is sent to now, in the
// order of its destination agent's groups (wrapping around), that is not
// known to be lost: one whose requests failed for alternateAfter in a
// row, the last of them less than alternateAfter ago, is skipped (a group
// not asked for longer may be back). "" when there is none: the transfer
// stays where it is, recovering.
func (m *Manager) nextGroup(t *Transfer) string {
	if m.groups == nil {
		return ""
	}
	g := m.groups(t.Request.DestinationAgent)
	at := slices.Index(g, t.Group())
	for k := 1; k < len(g); k++ {
		next := g[(at+k)%len(g)]
		r, ok := m.receivers.Receiver(next)
		if !ok {
			continue
		}
		if failing, last := r.Silent(); failing >= m.alternateAfter && time.Since(last) < m.alternateAfter {
			continue // lost too, as far as is known
		}
		return next
	}
	return ""
}

// maybeSwitch moves transfer id to the next group of its destination
// agent when the group it is sent to is lost: requests have failed to
// reach it (no instance answered, or none was active) for alternateAfter
// in a row, whichever transfer made them. The decision is recorded before
// anything is sent to the new group. It reports whether the transfer
// moved.
func (m *Manager) maybeSwitch(lease ha.Lease, id string, err error) (bool, error) {
	if !errors.Is(err, ErrAgentUnreachable) || m.alternateAfter <= 0 {
		return false, nil
	}
	t, ok := m.state.Shared(id)
	if !ok || Terminal(t.State) {
		return false, nil
	}
	r, rerr := m.receiver(t)
	if rerr != nil || r == nil {
		return false, nil
	}
	silent, _ := r.Silent()
	if silent < m.alternateAfter {
		return false, nil
	}
	next := m.nextGroup(t)
	if next == "" {
		return false, nil
	}
	from := t.Group()
	reason := fmt.Sprintf("agent %s unreachable for %v: %v", from, silent.Round(time.Second), err)
	exitBeforeSwitch()
	if _, err := m.raft.Apply(replicated.KindSwitch, lease.Epoch, replicated.SwitchCmd{ID: id, From: from, To: next, Reason: reason, Time: time.Now().UTC()}, applyTimeout); err != nil {
		return false, err
	}
	m.log.Warn().Str("transfer", id).Str("from", from).Str("to", next).Str("reason", reason).Msg("transfer moved to an alternate group of its destination agent")
	if err := m.audit.Security(time.Now(), audit.Record{Epoch: lease.Epoch, Op: audit.OpSwitch, Target: id, Action: from + "->" + next, Result: reason}); err != nil {
		m.log.Error().Err(err).Str("transfer", id).Msg("audit log: the move not recorded")
	}
	if m.observer != nil {
		m.observer.Switched()
	}
	return true, nil
}

// MovedFrom says where the transfers to destination agent agent that moved
// to one of its alternate groups, and have not ended, go now.
func (m *Manager) MovedFrom(agent string) []Moved { return m.state.MovedFrom(agent) }

// exitBeforeSwitch is a fault for the end-to-end tests: when
// FTAGENT_TEST_EXIT_BEFORE_SWITCH names a file that exists, the process
// removes it and exits at once, after deciding to move a transfer and
// before recording the move, as if killed between the two (once: the
// file is gone for the next instance). Never set outside the tests.
func exitBeforeSwitch() {
	flag := os.Getenv("FTAGENT_TEST_EXIT_BEFORE_SWITCH")
	if flag == "" || os.Remove(flag) != nil {
		return
	}
	fmt.Fprintln(os.Stderr, "FTAGENT_TEST_EXIT_BEFORE_SWITCH: exiting between the decision to move a transfer and its record")
	os.Exit(137)
}

// receiver is the Receiver of t's destination agent; nil for a local
// transfer.
func (m *Manager) receiver(t *Transfer) (Receiver, error) {
	agent := t.Group()
	if agent == "" {
		return nil, nil
	}
	if m.receivers != nil {
		if r, ok := m.receivers.Receiver(agent); ok {
			return r, nil
		}
	}
	return nil, fmt.Errorf("agent %s is not configured here (agent.%s.instances)", agent, agent)
}

// formatWait bounds checkRemote's wait for the standbys' reports: after a
// failover the new active learns the formats the instances read from their
// next reports, and one that was stopped reports once it is back.
const formatWait = 5 * time.Second

// ErrFormatPending refuses, for now, a transfer to another agent while not
// every instance is known to read the command format of such transfers
// (an instance that has not reported since this active took over, or one
// of an older build). It is transient: the API answers 503, so a client
// tries again within its plan.
var ErrFormatPending = errors.New("not every instance of this agent is known to read transfers to other agents")

// checkRemote checks, before a request is accepted, that its destination
// agent can be sent to, and cleans its destination path (a path of the
// destination agent: resolved there, within its sandbox).
func (m *Manager) checkRemote(req Request) (Request, error) {
	if req.DestinationAgent == "" {
		return req, nil
	}
	if m.receivers == nil {
		return req, &RequestError{Reason: fmt.Sprintf("agent %s is not configured here: add agent.%s.instances to agent.properties", req.DestinationAgent, req.DestinationAgent)}
	}
	if _, ok := m.receivers.Receiver(req.DestinationAgent); !ok {
		return req, &RequestError{Reason: fmt.Sprintf("agent %s is not configured here: add agent.%s.instances to agent.properties", req.DestinationAgent, req.DestinationAgent)}
	}
	// Right after an election the standbys report within a moment (the
	// formats they read among it): a request that comes first waits for
	// them rather than being refused.
	for deadline := time.Now().Add(formatWait); !m.raft.FormatAgreed(replicated.FormatInbound) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if !m.raft.FormatAgreed(replicated.FormatInbound) {
		return req, fmt.Errorf("%w: not every instance has reported that it reads command format %d (transfers to other agents): an instance that just started, or came back, reports within a few seconds, so try again; one of an older build must be upgraded first (ftagent show lists each instance's version)", ErrFormatPending, replicated.FormatInbound)
	}
	d := req.Destination
	if strings.ContainsRune(d, 0) {
		return req, &RequestError{Reason: "destination holds a NUL byte"}
	}
	if slices.Contains(strings.Split(d, "/"), "..") {
		return req, &RequestError{Reason: fmt.Sprintf("destination %q: \"..\" is not allowed in a path of another agent", d)}
	}
	clean := path.Clean(d)
	if strings.HasSuffix(d, "/") && clean != "/" {
		clean += "/"
	}
	req.Destination = clean
	return req, nil
}

// copyToAgent copies file i of t to the destination agent r, resuming from
// its checkpoint where the destination holds it. A permanent failure is
// recorded for the file and returned as errFileFailed.
func (m *Manager) copyToAgent(ctx context.Context, lease ha.Lease, r Receiver, t *Transfer, i int, j *job, batch *eventBatch, limiters []*copyloop.Limiter, retried bool) error {
	f := t.FileAt(i)
	ref := InboundRef{ID: t.ID, Epoch: lease.Epoch, Path: f.Destination, Size: f.Bytes}
	fail := func(reason string) error {
		if err := r.Remove(ctx, ref); err != nil {
			m.log.Warn().Err(err).Str("file", f.Destination).Msg("remove the destination's .part of a failed file")
		}
		batch.add(FileEvent{Index: i, Kind: EventFailed, Reason: reason})
		m.log.Warn().Str("transfer", t.ID).Str("file", f.Source).Str("reason", reason).Msg("file failed")
		return errFileFailed
	}
	classify := func(what string, err error) error {
		var ie *InboundError
		if errors.As(err, &ie) {
			switch ie.Code {
			case InboundRefused, InboundExists:
				return fail(fmt.Sprintf("%s: agent %s refused: %v", what, t.Group(), err))
			case InboundStale:
				// This active has been deposed (the destination has seen
				// a newer one): it stops; the new one carries on.
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if endpoint.Permanent(err) {
			return fail(fmt.Sprintf("%s: %v", what, err))
		}
		return fmt.Errorf("%s: %w", what, err)
	}

	st, err := r.Status(ctx, ref)
	if err != nil {
		return classify("ask the destination", err)
	}
	if err := m.noteReceiver(lease, t.ID, st); err != nil {
		return err
	}
	if f.Started && st.Exists && !st.Committed && st.Durable < 0 && t.Request.Overwrite == OverwriteError {
		// The file is in place there without a record: renamed by an
		// active of the destination that died before recording it, if its
		// bytes are the source's. The destination compares them with the
		// source's digest.
		sum, _, err := m.hashFrom(ctx, f.Source, checkpoint.Checkpoint{})
		if err != nil {
			return classify("hash the source", err)
		}
		ref.Digest = sum
		st, err = r.Status(ctx, ref)
		ref.Digest = ""
		if err != nil {
			return classify("ask the destination", err)
		}
	}
	if st.Committed {
		// Renamed into place there (after the destination checked the
		// digest this active's predecessor sent), but not recorded here
		// before a failover: the completion is recorded with that digest.
		// The source is deleted later only if it still holds those bytes
		// (a producer may have written a new file under its name since).
		var was checkpoint.Source
		if t.Request.Disposition == DispositionDelete {
			// No file has a size of -1: a source that is not the one
			// delivered is then never deleted (RemoveSource deletes
			// without a check only for the zero identity of old builds).
			was = checkpoint.Source{Size: -1}
			sum, src, err := m.hashFrom(ctx, f.Source, checkpoint.Checkpoint{})
			switch {
			case err == nil && sum == st.Digest:
				was = src
			case err != nil && !endpoint.Permanent(err):
				return classify("hash the source", err)
			default:
				m.log.Warn().Str("transfer", t.ID).Str("file", f.Source).Msg("the source changed after it was delivered: it is not deleted")
			}
		}
		batch.add(FileEvent{Index: i, Kind: EventDone, SHA256: st.Digest, Source: was})
		return batch.flush(ctx)
	}

	src, err := m.ep.OpenSource(ctx, f.Source)
	if err != nil {
		return classify("open source", err)
	}
	defer src.Close()
	info := src.Info()
	from := f.Checkpoint
	if from.Offset > 0 && !slices.Contains(st.Resumable, from.Offset) {
		// The destination lost the point this active had recorded (its
		// .part is gone): start again.
		batch.add(FileEvent{Index: i, Kind: EventStart, Resent: from.Offset, Restart: true})
		from = checkpoint.Checkpoint{}
	}
	if from.Offset > 0 && !from.Source.Same(info.Source) {
		return fail(fmt.Sprintf("source changed: was %s, now %s", from.Source, info.Source))
	}
	if from.Offset == 0 && t.Request.Overwrite == OverwriteError && st.Exists {
		return fail("destination exists: " + f.Destination + " at agent " + t.Group())
	}
	// What is sent again: what the destination holds beyond the point
	// resumed from, or what this job had sent of the file before it
	// stopped (lost in flight when the destination failed over).
	j.mu.Lock()
	reached := st.Durable
	if j.sentFile == i {
		reached = max(reached, j.sent)
	}
	j.mu.Unlock()
	var resent int64
	if reached > from.Offset {
		resent = reached - from.Offset
	}
	if !f.Started || resent > 0 || f.State != StateRunning {
		batch.add(FileEvent{Index: i, Kind: EventStart, Resent: resent})
	}
	if err := batch.flush(ctx); err != nil {
		return err
	}
	overwrite := t.Request.Overwrite == OverwriteAlways
	dst, err := r.Send(ctx, ref, from.Offset, overwrite)
	if err != nil {
		return classify("send", err)
	}
	defer dst.Close()
	digest, err := m.copyWithCheckpoints(ctx, lease, i, j, batch, src, dst, from, limiters)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, checkpoint.ErrSourceChanged) {
			return fail("source changed: " + err.Error())
		}
		return classify("send", err)
	}
	// The last bytes durable there (a file that ends between checkpoints,
	// or an empty one).
	if err := dst.Sync(); err != nil {
		return classify("send", err)
	}
	_ = dst.Close()
	now, err := m.ep.Stat(ctx, f.Source)
	if err != nil {
		return classify("stat source", err)
	}
	if !now.Source.Same(info.Source) {
		return fail(fmt.Sprintf("source changed during the copy: was %s, now %s", info.Source, now.Source))
	}
	sum := hex.EncodeToString(digest)
	err = r.Commit(ctx, ref, sum, overwrite)
	var ie *InboundError
	switch {
	case err == nil:
	case errors.As(err, &ie) && ie.Code == InboundDigest && !retried:
		// What the destination wrote is not what was read here: the
		// destination removed its .part; the file starts again, once.
		m.log.Warn().Str("transfer", t.ID).Str("file", f.Source).Err(err).Msg("digest differs at the destination: sending the file again")
		batch.add(FileEvent{Index: i, Kind: EventStart, Resent: f.Bytes, Restart: true})
		if err := batch.flush(ctx); err != nil {
			return err
		}
		nt, ok := m.state.Shared(t.ID)
		if !ok {
			return nil
		}
		return m.copyToAgent(ctx, lease, r, nt, i, j, batch, limiters, true)
	case errors.As(err, &ie) && ie.Code == InboundDigest:
		return fail(fmt.Sprintf("SHA-256 differs at agent %s twice: %v", t.Group(), err))
	case errors.As(err, &ie) && ie.Code == InboundPartLost:
		return fmt.Errorf("commit: %w", err) // resumed from what the destination holds
	default:
		return classify("commit", err)
	}
	batch.add(FileEvent{Index: i, Kind: EventDone, SHA256: sum, Source: delivered(t, info.Source)})
	return batch.flush(ctx)
}

// endAtAgent tells the destination agent that t has ended, so that it
// removes what was not committed and keeps only the fence, and records
// that it was told (KindTold). One that cannot be told now (unreachable)
// is told again later (retryEnds), by whichever instance is active then.
func (m *Manager) endAtAgent(ctx context.Context, lease ha.Lease, t *Transfer) {
	r, err := m.receiver(t)
	if r == nil || err != nil {
		return
	}
	err = r.End(ctx, InboundRef{ID: t.ID, Epoch: lease.Epoch})
	var ie *InboundError
	switch {
	case errors.As(err, &ie) && (ie.Code == InboundRefused || ie.Code == InboundStale):
		// Refused for good (this agent is not accepted there, or a
		// newer active of it took over): telling it again changes
		// nothing.
		m.log.Warn().Err(err).Str("transfer", t.ID).Str("agent", t.Group()).Msg("the destination agent refused to hear that the transfer ended")
	case err != nil:
		if ctx.Err() == nil {
			m.log.Warn().Err(err).Str("transfer", t.ID).Str("agent", t.Group()).Msg("could not tell the destination agent that the transfer ended: telling it again every few seconds")
		}
		return
	}
	if _, err := m.raft.Apply(replicated.KindTold, lease.Epoch, replicated.ToldCmd{ID: t.ID}, applyTimeout); err != nil && ctx.Err() == nil {
		m.log.Warn().Err(err).Str("transfer", t.ID).Msg("record that the destination agent was told of the end")
	}
}

// retryEnds tells the destination agents of the ended transfers they
// were not told of yet (unreachable then, or the active that ended them
// failed over first), so that they remove the .part files those left
// there.
func (m *Manager) retryEnds(ctx context.Context, lease ha.Lease) {
	for _, id := range m.state.Untold() {
		if ctx.Err() != nil {
			return
		}
		if t, ok := m.state.Shared(id); ok {
			m.endAtAgent(ctx, lease, t)
		}
	}
}

// sendGroup sends a group of small files of t that have not started to
// the destination agent in one request (inbound_files.go): their starts are
// recorded first, so that a new active knows the destination may hold
// them, then each is read whole, its digest computed, and sent; the
// outcomes are recorded in one entry. A file the destination found with
// another digest is sent again on its own (copyToAgent), as is every file
// of a group whose request failed (they are started: the run resumes them
// one by one). A returned error is transient, or the lease's.
func (m *Manager) sendGroup(ctx context.Context, lease ha.Lease, r Receiver, t *Transfer, group []int, j *job, batch *eventBatch, limiters []*copyloop.Limiter) error {
	for _, i := range group {
		batch.add(FileEvent{Index: i, Kind: EventStart})
	}
	if err := batch.flush(ctx); err != nil {
		return err
	}
	type sent struct {
		i      int
		digest string
		source checkpoint.Source
	}
	var sents []sent
	var buf []byte
	var failed []FileEvent
	ref := InboundRef{ID: t.ID, Epoch: lease.Epoch}
	res, err := r.SendFiles(ctx, ref, t.Request.Overwrite == OverwriteAlways, func(emit func(FileFrame, []byte) error) error {
		for _, i := range group {
			f := t.FileAt(i)
			data, source, err := m.readWhole(ctx, f, limiters, &buf)
			if err != nil {
				if endpoint.Permanent(err) {
					reason := "read source: " + err.Error()
					if errors.Is(err, checkpoint.ErrSourceChanged) {
						reason = "source changed: " + err.Error()
					}
					failed = append(failed, FileEvent{Index: i, Kind: EventFailed, Reason: reason})
					continue
				}
				return err
			}
			sum := sha256Hex(data)
			if err := emit(FileFrame{Path: f.Destination, Size: int64(len(data)), Digest: sum}, data); err != nil {
				return err
			}
			sents = append(sents, sent{i: i, digest: sum, source: source})
			j.mu.Lock()
			j.file = i
			j.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		if len(failed) > 0 {
			for _, e := range failed {
				batch.add(e)
			}
			if ferr := batch.flush(ctx); ferr != nil {
				return ferr
			}
		}
		return fmt.Errorf("send %d files: %w", len(group), err)
	}
	if len(res) != len(sents) {
		return fmt.Errorf("send %d files: the destination answered for %d", len(sents), len(res))
	}
	var again []int
	for k, fr := range res {
		s := sents[k]
		switch fr.Code {
		case "":
			batch.add(FileEvent{Index: s.i, Kind: EventDone, SHA256: s.digest, Source: delivered(t, s.source)})
		case InboundDigest:
			again = append(again, s.i)
		default:
			batch.add(FileEvent{Index: s.i, Kind: EventFailed, Reason: fmt.Sprintf("agent %s refused: %s", t.Group(), fr.Error)})
		}
	}
	for _, e := range failed {
		batch.add(e)
	}
	if err := batch.flush(ctx); err != nil {
		return err
	}
	if t.Request.Disposition == DispositionDelete {
		// Only now that the completions have committed.
		for k, fr := range res {
			if fr.Code == "" {
				if err := m.deleteSource(ctx, batch, t.ID, sents[k].i); err != nil {
					return err
				}
			}
		}
	}
	for _, i := range again {
		nt, ok := m.state.Shared(t.ID)
		if !ok {
			return nil
		}
		if err := m.copyToAgent(ctx, lease, r, nt, i, j, batch, limiters, true); err != nil && !errors.Is(err, errFileFailed) {
			return err
		}
	}
	return nil
}

// readWhole reads a small source file whole into *buf, within the
// limiters, and checks that it did not change while it was read.
func (m *Manager) readWhole(ctx context.Context, f File, limiters []*copyloop.Limiter, buf *[]byte) ([]byte, checkpoint.Source, error) {
	src, err := m.ep.OpenSource(ctx, f.Source)
	if err != nil {
		return nil, checkpoint.Source{}, err
	}
	defer src.Close()
	info := src.Info()
	if info.Size != f.Bytes {
		return nil, checkpoint.Source{}, fmt.Errorf("%w: %d bytes when listed, %d now", checkpoint.ErrSourceChanged, f.Bytes, info.Size)
	}
	n := int(info.Size)
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	for _, l := range limiters {
		if err := l.Wait(ctx, n); err != nil {
			return nil, checkpoint.Source{}, err
		}
	}
	if n > 0 {
		got, err := src.ReadAt(b, 0)
		if got < n {
			if err == nil || errors.Is(err, io.EOF) {
				return nil, checkpoint.Source{}, fmt.Errorf("source ended at offset %d, before its size: %w", got, checkpoint.ErrSourceChanged)
			}
			return nil, checkpoint.Source{}, fmt.Errorf("read source at offset %d: %w", got, err)
		}
	}
	if err := unchanged(src, info.Source); err != nil {
		return nil, checkpoint.Source{}, err
	}
	return b, info.Source, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// noteReceiver records which instance of the destination agent receives
// transfer id, under which of its epochs, when that changed: the view
// shows who receives, and how often the destination failed over.
func (m *Manager) noteReceiver(lease ha.Lease, id string, st InboundStatus) error {
	if st.Receiver == "" || st.ReceiverEpoch == 0 {
		return nil // a destination that does not say
	}
	if who, epoch, ok := m.state.ReceiverOf(id); !ok || who == st.Receiver && epoch == st.ReceiverEpoch {
		return nil
	}
	_, err := m.raft.Apply(replicated.KindReceiver, lease.Epoch, replicated.ReceiverCmd{ID: id, Instance: st.Receiver, Epoch: st.ReceiverEpoch}, applyTimeout)
	return err
}

// reconcile asks the groups that transfers left about their files in
// doubt, once they answer again: a file committed there too is a
// duplicate (it is now at both sites); one that is not has its .part
// there removed. The outcomes are recorded; a group that does not answer
// is asked again at the next round.
func (m *Manager) reconcile(ctx context.Context, lease ha.Lease) {
	for _, id := range m.state.WithDoubts() {
		t, ok := m.state.Shared(id)
		if !ok {
			continue
		}
		byGroup := map[string][]replicated.Doubt{}
		for _, d := range t.Unreconciled() {
			byGroup[d.Group] = append(byGroup[d.Group], d)
		}
		for group, doubts := range byGroup {
			if ctx.Err() != nil {
				return
			}
			r, ok := m.receivers.Receiver(group)
			if !ok {
				continue
			}
			results := map[int]string{}
			for _, d := range doubts {
				f := t.FileAt(d.Index)
				if !Terminal(f.State) {
					continue // its outcome at the new group first
				}
				ref := InboundRef{ID: t.ID, Epoch: lease.Epoch, Path: f.Destination, Size: f.Bytes}
				if f.State == StateCompleted {
					ref.Digest = f.SHA256 // a rename there without its record is recognised too
				}
				st, err := r.Status(ctx, ref)
				if err != nil {
					m.log.Debug().Err(err).Str("transfer", id).Str("group", group).Msg("reconcile: the group left does not answer yet")
					break
				}
				if st.Committed {
					results[d.Index] = replicated.DoubtDuplicate
					continue
				}
				if err := r.Remove(ctx, InboundRef{ID: t.ID, Epoch: lease.Epoch, Path: f.Destination}); err != nil {
					m.log.Debug().Err(err).Str("transfer", id).Str("group", group).Msg("reconcile: remove the .part at the group left")
					break
				}
				results[d.Index] = replicated.DoubtAbsent
			}
			if len(results) == 0 {
				continue
			}
			if _, err := m.raft.Apply(replicated.KindReconcile, lease.Epoch, replicated.ReconcileCmd{ID: id, Group: group, Results: results}, applyTimeout); err != nil {
				m.log.Warn().Err(err).Str("transfer", id).Msg("record the reconciliation")
				return
			}
			for i, o := range results {
				f := t.FileAt(i)
				ev := m.log.Info()
				if o == replicated.DoubtDuplicate {
					ev = m.log.Warn()
				}
				ev.Str("transfer", id).Str("group", group).Str("file", f.Destination).Str("outcome", o).Msg("file in doubt reconciled with the group the transfer left")
			}
			if Terminal(t.State) && len(results) == len(doubts) {
				// Nothing of it is left to ask there: that group forgets it.
				if err := r.End(ctx, InboundRef{ID: t.ID, Epoch: lease.Epoch}); err != nil {
					m.log.Debug().Err(err).Str("transfer", id).Str("group", group).Msg("reconcile: end the transfer at the group left")
				}
			}
		}
	}
}

// errReturn stops a run at a file boundary so that its transfer returns
// to its destination agent's own group (Prefer).
var errReturn = errors.New("an operator asked for the destination agent's own group")

// Prefer asks, on the active, that the transfers to agent that were moved
// to one of its alternates go back to agent's own group, each at its next
// file boundary (its file in flight finishes where it is). It returns how
// many will. The request lives in this active's memory until each of them
// is back or has ended: after a failover it must be made again.
func (m *Manager) Prefer(agent string) (int, error) {
	if _, err := m.activeLease(); err != nil {
		return 0, err
	}
	if m.groups == nil || len(m.groups(agent)) < 2 {
		return 0, &RequestError{Reason: fmt.Sprintf("agent %s has no alternates here (agent.%s.alternates)", agent, agent)}
	}
	n := 0
	for _, t := range m.state.Pending() {
		if t.Request.DestinationAgent == agent && t.Group() != agent && !Terminal(t.State) {
			n++
		}
	}
	m.mu.Lock()
	if m.prefer == nil {
		m.prefer = map[string]bool{}
	}
	m.prefer[agent] = n > 0
	m.mu.Unlock()
	m.log.Info().Str("agent", agent).Int("transfers", n).Msg("an operator asked for the agent's own group: transfers return at their next file boundary")
	return n, nil
}

// returnWanted reports whether t should go back to its destination
// agent's own group now (Prefer).
func (m *Manager) returnWanted(t *Transfer) bool {
	if t.Switched == nil || t.Group() == t.Request.DestinationAgent {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.prefer[t.Request.DestinationAgent]
}

// returnHome records transfer id's move back to its destination agent's
// own group, and forgets the operator's request once no transfer to that
// agent is away.
func (m *Manager) returnHome(lease ha.Lease, id string) error {
	t, ok := m.state.Shared(id)
	if !ok || Terminal(t.State) || t.Group() == t.Request.DestinationAgent {
		return nil
	}
	agent := t.Request.DestinationAgent
	if _, err := m.raft.Apply(replicated.KindSwitch, lease.Epoch, replicated.SwitchCmd{ID: id, From: t.Group(), To: agent,
		Reason: "an operator asked for the agent's own group (ftagent agents prefer " + agent + ")", Time: time.Now().UTC()}, applyTimeout); err != nil {
		return err
	}
	m.log.Info().Str("transfer", id).Str("from", t.Group()).Str("to", agent).Msg("transfer returned to its destination agent's own group")
	away := false
	for _, p := range m.state.Pending() {
		if p.Request.DestinationAgent == agent && p.Group() != agent && !Terminal(p.State) {
			away = true
		}
	}
	if !away {
		m.mu.Lock()
		delete(m.prefer, agent)
		m.mu.Unlock()
	}
	return nil
}
