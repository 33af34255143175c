package transfer

// Event batching: a run's file events share few log entries.

import (
	"context"
	"fmt"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// eventBatch gathers file events into few log entries: a small file's start
// and completion need not be an entry each.
type eventBatch struct {
	m      *Manager
	id     string
	epoch  uint64
	events []FileEvent
	since  time.Time
}

const (
	batchMax  = 256
	batchWait = 20 * time.Millisecond
)

func (b *eventBatch) add(ev FileEvent) {
	if len(b.events) == 0 {
		b.since = time.Now()
	}
	b.events = append(b.events, ev)
}

func (b *eventBatch) maybeFlush(ctx context.Context) error {
	if len(b.events) >= batchMax || (len(b.events) > 0 && time.Since(b.since) >= batchWait) {
		return b.flush(ctx)
	}
	return nil
}

func (b *eventBatch) flush(ctx context.Context) error {
	if len(b.events) == 0 {
		return nil
	}
	evs := b.events
	b.events = nil
	err := b.m.recordFiles(b.epoch, replicated.FilesCmd{ID: b.id, Time: time.Now().UTC(), Events: evs})
	if err != nil {
		return fmt.Errorf("record progress: %w", err)
	}
	return nil
}
