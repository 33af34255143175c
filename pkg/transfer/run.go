package transfer

// Running a transfer: its files in order, the recovery of a run that a
// transient error ended, and the deletion of sources delivered.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/copyloop"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// errFileFailed marks a permanent failure already recorded for one file: the
// transfer goes on with its other files.
var errFileFailed = errors.New("file failed")

// runTransfer runs (or resumes) one transfer under lease until it ends, ctx
// is cancelled, or a transient error sends it to recovering; in that case it
// retries with backoff until the recovery timeout.
func (m *Manager) runTransfer(ctx context.Context, lease ha.Lease, id string, j *job) {
	log := m.log.With().Str("transfer", id).Logger()
	if _, err := m.raft.Apply(KindStart, lease.Epoch, replicated.StartCmd{ID: id, Time: time.Now().UTC()}, applyTimeout); err != nil {
		if ctx.Err() == nil {
			log.Warn().Err(err).Msg("could not start transfer")
			// The job stays registered while it waits, so the scheduler
			// does not start it again at once: without the wait, an
			// active whose raft has stepped down but whose work is not
			// yet cancelled retried in a tight loop.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		return
	}
	backoff := time.Second
	for {
		err := m.runFiles(ctx, lease, id, j)
		if errors.Is(err, errReturn) {
			if rerr := m.returnHome(lease, id); rerr != nil {
				log.Warn().Err(rerr).Msg("record the return to the destination agent's own group")
				err = rerr
			} else {
				continue
			}
		}
		// The checkpoint of the file in flight, before a move forgets it.
		j.mu.Lock()
		inFlight := j.sentFile
		j.mu.Unlock()
		var cpBefore int64
		if f, ok := m.state.File(id, inFlight); ok && inFlight >= 0 {
			cpBefore = f.Checkpoint.Offset
		}
		moved, serr := m.maybeSwitch(lease, id, err)
		if serr != nil {
			log.Warn().Err(serr).Msg("record the move to an alternate group")
		}
		if err == nil {
			if t, ok := m.state.Live(id); ok && Terminal(t.State) {
				m.endAtAgent(ctx, lease, t)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		t, ok := m.state.Live(id)
		if !ok || Terminal(t.State) {
			return
		}
		timeout := m.limits.RecoveryTimeout
		if t.Request.RecoveryTimeout != nil {
			timeout = time.Duration(*t.Request.RecoveryTimeout)
		}
		since := time.Now()
		if t.RecoveringSince != nil {
			since = *t.RecoveringSince
		}
		reason := err.Error()
		if timeout >= 0 && time.Since(since) >= timeout {
			log.Warn().Err(err).Dur("recoveryTimeout", timeout).Msg("transfer failed: recovery timeout")
			msg := fmt.Sprintf("recovery timeout (%v) expired: %s", timeout, reason)
			if t.Switched != nil {
				// Every group it was sent to is named.
				msg += fmt.Sprintf(" (earlier: moved from %s to %s: %s)", t.Switched.From, t.Switched.To, t.Switched.Reason)
			}
			if _, aerr := m.raft.Apply(KindFail, lease.Epoch, replicated.ReasonCmd{ID: id, Time: time.Now().UTC(), Reason: msg}, applyTimeout); aerr != nil {
				log.Warn().Err(aerr).Msg("record failure")
				return
			}
			// A failed file leaves no partial data behind, when the
			// storage lets it be removed.
			m.removeParts(ctx, id)
			return
		}
		log.Warn().Err(err).Msg("transfer recovering: transient error, retrying")
		if t.State != StateRecovering {
			if _, aerr := m.raft.Apply(KindRecovering, lease.Epoch, replicated.ReasonCmd{ID: id, Time: time.Now().UTC(), Reason: reason}, applyTimeout); aerr != nil {
				log.Warn().Err(aerr).Msg("record recovering")
				return
			}
		}
		wait := time.Duration(float64(backoff) * (0.75 + 0.5*rand.Float64()))
		if moved {
			// On at once at the new group, within the same recovery
			// timeout. The move counted the file in flight as resent up
			// to its checkpoint; what this job had sent beyond it is
			// counted when the file starts again there.
			wait, backoff = 0, time.Second/2
			j.mu.Lock()
			if j.sentFile == inFlight {
				j.sent = max(j.sent-cpBefore, 0)
			}
			j.mu.Unlock()
		}
		if timeout >= 0 {
			if left := timeout - time.Since(since); left < wait {
				wait = max(left, 0)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// removeParts removes the .part files of an ended transfer's files that
// did not complete (removing a .part that is not there is no error): what
// a cancel or a failure leaves. A failure to remove one is logged; the
// transfer has ended either way.
func (m *Manager) removeParts(ctx context.Context, id string) {
	t, ok := m.state.Live(id)
	if !ok {
		return
	}
	if t.Request.DestinationAgent != "" {
		// The destination agent removes what it holds of it.
		if epoch, ok := endpoint.EpochOf(ctx); ok {
			m.endAtAgent(ctx, ha.Lease{Epoch: epoch}, t)
		}
		return
	}
	for i := range t.FileCount() {
		f := t.FileAt(i)
		if f.State == StateCompleted {
			continue
		}
		if err := m.ep.Remove(ctx, endpoint.PartName(f.Destination)); err != nil {
			m.log.Warn().Err(err).Str("transfer", id).Str("file", f.Destination).Msg("remove the .part of a file that did not complete")
		}
	}
}

// finishSources deletes the sources an ended transfer still has to delete.
func (m *Manager) finishSources(ctx context.Context, lease ha.Lease, id string, j *job) {
	t, ok := m.state.Live(id)
	if !ok {
		return
	}
	batch := &eventBatch{m: m, id: id, epoch: lease.Epoch}
	for i := range t.FileCount() {
		if f := t.FileAt(i); f.State == StateCompleted && !f.SourceDeleted {
			if err := m.deleteSource(ctx, batch, id, i); err != nil {
				m.log.Warn().Err(err).Str("transfer", id).Msg("delete sources of an ended transfer")
				return
			}
		}
	}
	if err := batch.flush(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn().Err(err).Str("transfer", id).Msg("record deleted sources")
		return
	}
	if t, ok := m.state.Shared(id); ok && t.SourcesToDelete() && ctx.Err() == nil {
		m.mu.Lock()
		m.noCleanup[id] = true // what is left could not be deleted: logged above
		m.mu.Unlock()
	}
}

// reshareEvery is how many files a run goes through between shares of its
// transfer (State.Shared): a share held for a whole run would keep a copy
// of every segment the run's own events change, a second table.
const reshareEvery = 1024

// runFiles copies every file of the transfer that has not ended, and
// applies the source disposition of completed ones. A returned error is
// transient.
func (m *Manager) runFiles(ctx context.Context, lease ha.Lease, id string, j *job) error {
	if err := m.presentTo(ctx, lease, id); err != nil {
		return err
	}
	if t, ok := m.state.Shared(id); !ok || Terminal(t.State) {
		return nil // failed by the destination's refusal
	}
	if err := m.prepare(ctx, lease, id); err != nil { // names and directories (dirs.go)
		return err
	}
	t, ok := m.state.Shared(id)
	if !ok {
		return nil
	}
	batch := &eventBatch{m: m, id: id, epoch: lease.Epoch}
	limiters := []*copyloop.Limiter{m.agent}
	if t.Request.BandwidthLimit > 0 {
		limiters = append(limiters, copyloop.NewLimiter(t.Request.BandwidthLimit))
	}
	recv, err := m.receiver(t)
	if err != nil {
		return err
	}
	p := m.newSmallPipe(ctx, lease, t, limiters)
	defer p.stop() // normally done already: waits for what is in flight
	groupBytes := m.smallGroupBytes(t)
	shared := 0 // the index at which t was shared
	for i := 0; i < t.FileCount(); i++ {
		if i-shared >= reshareEvery {
			// A fresh share: the state has copied the segments it
			// changed since the last one, which this lets go.
			if nt, ok := m.state.Shared(id); ok {
				t, shared = nt, i
				p.t.Store(nt)
			}
		}
		f := t.FileAt(i)
		if recv != nil && m.returnWanted(t) {
			// An operator asked for the agent's own group again: at
			// this file boundary, after what was sent has been recorded.
			if err := batch.flush(ctx); err != nil {
				return err
			}
			return errReturn
		}
		if ctx.Err() != nil {
			if err := p.drain(batch); err != nil {
				return err
			}
			return ctx.Err()
		}
		if group := smallGroup(t, i, groupBytes); len(group) > 1 && recv != nil {
			if err := m.sendGroup(ctx, lease, recv, t, group, j, batch, limiters); err != nil {
				return err
			}
			i += len(group) - 1
			continue
		} else if len(group) > 1 {
			if err := p.run(group); err != nil {
				_ = p.drain(batch) // the groups queued before are finished
				if ferr := batch.flush(ctx); ferr != nil {
					return ferr
				}
				return err
			}
			i += len(group) - 1
			continue
		}
		// Files one by one: after the groups before them have ended.
		if err := p.drain(batch); err != nil {
			return err
		}
		if f.State == StateCompleted {
			if t.Request.Disposition == DispositionDelete && !f.SourceDeleted {
				if err := m.deleteSource(ctx, batch, t.ID, i); err != nil {
					return err
				}
			}
			continue
		}
		if Terminal(f.State) {
			continue
		}
		j.mu.Lock()
		j.file, j.written = i, f.Checkpoint.Offset
		j.mu.Unlock()
		var err error
		if recv != nil {
			err = m.copyToAgent(ctx, lease, recv, t, i, j, batch, limiters, false)
		} else {
			err = m.copyFile(ctx, lease, t, i, j, batch, limiters)
		}
		switch {
		case err == nil:
			if t.Request.Disposition == DispositionDelete {
				// Only after the completion has committed.
				if err := batch.flush(ctx); err != nil {
					return err
				}
				if err := m.deleteSource(ctx, batch, t.ID, i); err != nil {
					return err
				}
			}
		case errors.Is(err, errFileFailed):
		default:
			if ferr := batch.flush(ctx); ferr != nil {
				return ferr
			}
			return err
		}
	}
	if err := p.drain(batch); err != nil {
		return err
	}
	return batch.flush(ctx)
}

// deleteSource deletes the source of completed file i, if it is still the
// file whose bytes were delivered (File.Delivered, as the state holds it
// now: recorded with the completion).
func (m *Manager) deleteSource(ctx context.Context, batch *eventBatch, id string, i int) error {
	f, ok := m.state.File(id, i)
	if !ok || f.State != StateCompleted || f.SourceDeleted {
		return nil
	}
	if err := m.ep.RemoveSource(ctx, f.Source, f.Delivered); err != nil {
		if endpoint.Permanent(err) {
			// Left in place, and not retried: a file that is not the one
			// transferred, or one that cannot be deleted, stays.
			m.log.Warn().Err(err).Str("transfer", id).Str("file", f.Source).Msg("source not deleted after its transfer")
			return nil
		}
		return fmt.Errorf("delete source %s: %w", f.Source, err)
	}
	batch.add(FileEvent{Index: i, Kind: EventSourceDeleted})
	return nil
}

// presentTo presents this active's epoch to the destination agent of
// transfer id, if it has one, before anything is sent (the destination
// refuses older ones from then on), and records who receives. A
// destination that will not take this agent's files at all (acceptFrom)
// fails the transfer at once: no retry mends that.
func (m *Manager) presentTo(ctx context.Context, lease ha.Lease, id string) error {
	t, ok := m.state.Shared(id)
	if !ok || Terminal(t.State) {
		return nil
	}
	recv, err := m.receiver(t)
	if err != nil || recv == nil {
		return err
	}
	st, err := recv.Status(ctx, InboundRef{ID: t.ID, Epoch: lease.Epoch})
	var ie *InboundError
	switch {
	case errors.As(err, &ie) && ie.Code == InboundRefused:
		msg := fmt.Sprintf("agent %s refused: %v", t.Group(), err)
		if _, aerr := m.raft.Apply(KindFail, lease.Epoch, replicated.ReasonCmd{ID: t.ID, Time: time.Now().UTC(), Reason: msg}, applyTimeout); aerr != nil {
			return aerr
		}
		return nil
	case err != nil:
		return fmt.Errorf("reach agent %s: %w", t.Group(), err)
	}
	return m.noteReceiver(lease, t.ID, st)
}
