package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// Transfer states.
const (
	StateQueued     = "queued"
	StateRunning    = "running"
	StateRecovering = "recovering"
	StateCompleted  = "completed"
	StateFailed     = "failed"
	StateCancelled  = "cancelled"
)

// Terminal reports whether a transfer or file in state s has ended.
func Terminal(s string) bool {
	return s == StateCompleted || s == StateFailed || s == StateCancelled
}

// Command kinds this package owns in the replicated log.
const (
	KindCreate     = "transfer.create"
	KindStart      = "transfer.start"
	KindFiles      = "transfer.files"
	KindRecovering = "transfer.recovering"
	KindFail       = "transfer.fail"
	KindCancel     = "transfer.cancel"
	// KindCreateV2 is transfer.create in compact form (createV2Cmd), of
	// command format 2: proposed only once every instance reads format 2.
	KindCreateV2 = "transfer.create.v2"
	// KindFilesV2 is transfer.files in compact form (filesV2Cmd), of
	// command format 3: proposed only once every instance reads format 3.
	KindFilesV2 = "transfer.files.v2"
)

// Kinds lists the kinds of the first command format, for the log's
// dispatcher; KindCreateV2 and KindFilesV2 are registered apart, at formats
// 2 and 3 (kinds.go).
var Kinds = []string{KindCreate, KindStart, KindFiles, KindRecovering, KindFail, KindCancel}

// Overwrite and disposition policies.
const (
	OverwriteError    = "error"
	OverwriteAlways   = "overwrite"
	DispositionLeave  = "leave"
	DispositionDelete = "delete"
)

// Request is a transfer as a user asks for it.
type Request struct {
	Sources     []string `json:"sources"`
	Destination string   `json:"destination"`
	Recursive   bool     `json:"recursive,omitempty"`
	Overwrite   string   `json:"overwrite,omitempty"`   // error (default) or overwrite
	Disposition string   `json:"disposition,omitempty"` // leave (default) or delete
	Priority    int      `json:"priority"`              // 0-9, higher first
	// RecoveryTimeout overrides transferRecoveryTimeout when set: negative
	// retries forever, 0 fails at once.
	RecoveryTimeout *Duration `json:"recoveryTimeout,omitempty"`
	BandwidthLimit  int64     `json:"bandwidthLimit,omitempty"` // bytes/s, 0 unlimited
}

// Duration is a time.Duration that reads and writes as a Go duration string.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return err
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// File is one file of a transfer.
type File struct {
	Source      string `json:"source"`      // absolute, inside the sandbox
	Destination string `json:"destination"` // absolute, inside the sandbox
	Bytes       int64  `json:"bytes"`
	// State is left out of the JSON while empty (a create entry's files:
	// the entry sets them queued), as Checkpoint while zero: a smaller
	// create entry, which earlier builds decode to the same values.
	State  string `json:"state,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Checkpoint is the last durable point of the copy: the destination's
	// .part holds Offset bytes whose hash state is saved.
	Checkpoint    checkpoint.Checkpoint `json:"checkpoint,omitzero"`
	Started       bool                  `json:"started,omitempty"` // a copy began: a .part may exist
	SourceDeleted bool                  `json:"sourceDeleted,omitempty"`
}

// Transfer is a transfer as the replicated state records it.
type Transfer struct {
	ID          string     `json:"id"`
	Seq         uint64     `json:"seq"` // log index of its creation: FIFO order
	Request     Request    `json:"request"`
	State       string     `json:"state"`
	Reason      string     `json:"reason"`
	Created     time.Time  `json:"created"`
	Ended       *time.Time `json:"ended,omitempty"`
	Files       []File     `json:"files"`
	Bytes       int64      `json:"bytes"`
	Failovers   int        `json:"failovers"`
	BytesResent int64      `json:"bytesResent"`
	// Epoch is the lease epoch under which it last started running.
	Epoch           uint64     `json:"epoch"`
	RecoveringSince *time.Time `json:"recoveringSince,omitempty"`

	// Derived from Files (recount), so that applying file events costs
	// the events, not the transfer's size: how many files have ended, how
	// many failed, and the lowest index of a failed one (-1: none).
	ended, failed, firstFailed int
	// packed holds the files of an ended transfer instead of Files (see
	// packed.go); readers get them back from clone.
	packed *packedFiles
}

// recount derives t's counts from its files.
func (t *Transfer) recount() {
	t.ended, t.failed, t.firstFailed = 0, 0, -1
	for i := range t.Files {
		t.count(i, "", t.Files[i].State)
	}
}

// count records file i's change of state from was to now.
func (t *Transfer) count(i int, was, now string) {
	if Terminal(was) == Terminal(now) && (was == StateFailed) == (now == StateFailed) {
		return
	}
	if Terminal(was) {
		t.ended--
	}
	if Terminal(now) {
		t.ended++
	}
	if was == StateFailed {
		t.failed-- // never happens (failed is final), kept for symmetry
	}
	if now == StateFailed {
		t.failed++
		if t.firstFailed < 0 || i < t.firstFailed {
			t.firstFailed = i
		}
	}
}

// BytesDone is what is durably done: whole completed files, and the
// checkpointed part of the others.
func (t *Transfer) BytesDone() int64 {
	var n int64
	for i := range t.fileCount() {
		f := t.fileAt(i)
		if f.State == StateCompleted {
			n += f.Bytes
		} else {
			n += f.Checkpoint.Offset
		}
	}
	return n
}

func (t *Transfer) clone() *Transfer {
	c := *t
	if t.packed != nil {
		c.Files, c.packed = t.packed.unpacked(), nil
	} else {
		c.Files = append([]File(nil), t.Files...)
	}
	c.Request.Sources = append([]string(nil), t.Request.Sources...)
	return &c
}

// Errors of the replicated state.
var (
	ErrQueueFull     = errors.New("the transfer queue is full")
	ErrNotFound      = errors.New("no such transfer")
	ErrEnded         = errors.New("transfer has already ended")
	ErrBadFileEvent  = errors.New("bad file event")
	ErrUnknownKind   = errors.New("unknown transfer command")
	ErrAlreadyExists = errors.New("a different transfer with this id exists")
)

// createCmd creates a transfer. The proposer includes its limits so that
// every instance applies the same rules.
type createCmd struct {
	Transfer     Transfer      `json:"transfer"`
	MaxQueued    int           `json:"maxQueued"`
	HistoryCount int           `json:"historyCount"`
	HistoryAge   time.Duration `json:"historyAge"`
}

type startCmd struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// FileEvent is one step of one file; many travel in one log entry.
type FileEvent struct {
	Index      int                   `json:"index"`
	Kind       string                `json:"kind"`                // start, checkpoint, done, failed, sourceDeleted
	Checkpoint checkpoint.Checkpoint `json:"checkpoint,omitzero"` // left out when zero (earlier builds decode that the same)
	SHA256     string                `json:"sha256,omitempty"`
	Reason     string                `json:"reason,omitempty"`
	Resent     int64                 `json:"resent,omitempty"` // with start: bytes to be copied again
	// Restart, with start: the .part is gone, the copy begins again at 0
	// (the only way a file's checkpoint may go back).
	Restart bool `json:"restart,omitempty"`
}

// File event kinds.
const (
	EventStart         = "start"
	EventCheckpoint    = "checkpoint"
	EventDone          = "done"
	EventFailed        = "failed"
	EventSourceDeleted = "sourceDeleted"
)

type filesCmd struct {
	ID     string      `json:"id"`
	Time   time.Time   `json:"time"`
	Events []FileEvent `json:"events"`
}

type reasonCmd struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

// State is the replicated state of the agent's transfers. Its Apply is
// deterministic and touches nothing outside it; it implements
// ha.StateMachine.
type State struct {
	mu        sync.RWMutex
	transfers map[string]*Transfer
	changed   chan struct{} // closed by the next Apply (see Changed)
}

// NewState returns an empty state.
func NewState() *State { return &State{transfers: map[string]*Transfer{}} }

// Apply applies one command.
func (s *State) Apply(kind string, epoch uint64, data []byte, index uint64) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	switch kind {
	case KindCreate:
		var c createCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.create(c, index)
	case KindCreateV2:
		c, err := decodeCreateV2(data)
		if err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.create(c, index)
	case KindStart:
		var c startCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.start(c, epoch)
	case KindFiles:
		var c filesCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.files(c, epoch)
	case KindFilesV2:
		c, err := decodeFilesV2(data)
		if err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.files(c, epoch)
	case KindRecovering, KindFail, KindCancel:
		var c reasonCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.endOrRecover(kind, c)
	}
	return fmt.Errorf("%w: %q", ErrUnknownKind, kind)
}

func (s *State) create(c createCmd, index uint64) any {
	t := c.Transfer
	if old, ok := s.transfers[t.ID]; ok {
		// A client retrying a submission after a failover: the same
		// request is the same transfer, anything else is a clash.
		if sameRequest(old.Request, t.Request) {
			return old.clone()
		}
		return fmt.Errorf("%w: %s", ErrAlreadyExists, t.ID)
	}
	s.prune(t.Created, c.HistoryCount, c.HistoryAge)
	active := 0
	for _, o := range s.transfers {
		if !Terminal(o.State) {
			active++
		}
	}
	if c.MaxQueued > 0 && active >= c.MaxQueued {
		if active == 1 {
			return fmt.Errorf("%w: 1 transfer waiting or running (maxQueuedTransfers=1)", ErrQueueFull)
		}
		return fmt.Errorf("%w: %d transfers waiting or running (maxQueuedTransfers=%d)", ErrQueueFull, active, c.MaxQueued)
	}
	t.Seq = index
	t.State = StateQueued
	t.Bytes = 0
	for i := range t.Files {
		t.Files[i].State = StateQueued
		t.Bytes += t.Files[i].Bytes
	}
	t.recount()
	if len(t.Files) == 0 {
		// Nothing to copy (e.g. an empty directory): done at once.
		t.State = StateCompleted
		ended := t.Created
		t.Ended = &ended
	}
	s.transfers[t.ID] = &t
	return t.clone()
}

func sameRequest(a, b Request) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return string(ab) == string(bb)
}

// prune drops ended transfers older than age, then the oldest beyond count.
func (s *State) prune(now time.Time, count int, age time.Duration) {
	var ended []*Transfer
	for id, t := range s.transfers {
		if t.Ended == nil {
			continue
		}
		if age > 0 && now.Sub(*t.Ended) > age {
			delete(s.transfers, id)
			continue
		}
		ended = append(ended, t)
	}
	if count < 0 || len(ended) <= count {
		return
	}
	sort.Slice(ended, func(i, j int) bool { return ended[i].Seq < ended[j].Seq })
	for _, t := range ended[:len(ended)-count] {
		delete(s.transfers, t.ID)
	}
}

func (s *State) start(c startCmd, epoch uint64) any {
	t, ok := s.transfers[c.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, c.ID)
	}
	if Terminal(t.State) {
		return fmt.Errorf("%w: %s is %s", ErrEnded, t.ID, t.State)
	}
	if t.Epoch != 0 && t.Epoch != epoch && (t.State == StateRunning || t.State == StateRecovering) {
		t.Failovers++ // resumed under another lease
	}
	t.Epoch = epoch
	if t.State == StateQueued {
		t.State = StateRunning
	}
	return nil
}

func (s *State) files(c filesCmd, epoch uint64) any {
	t, ok := s.transfers[c.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, c.ID)
	}
	if Terminal(t.State) {
		// Only the clean-up of an ended transfer may still be recorded.
		for _, ev := range c.Events {
			if ev.Kind != EventSourceDeleted {
				return fmt.Errorf("%w: %s is %s", ErrEnded, t.ID, t.State)
			}
		}
		if t.packed != nil {
			return t.packed.sourcesDeleted(c.Events)
		}
	}
	// Check every event before changing anything: an entry applies whole.
	// The events work on copies of the files they touch; the transfer is
	// changed only once all have passed, so an entry costs its events.
	touched := make(map[int]int, len(c.Events)) // file index -> position in next
	var next []File
	var resent int64
	for _, ev := range c.Events {
		if ev.Index < 0 || ev.Index >= len(t.Files) {
			return fmt.Errorf("%w: file %d of %d", ErrBadFileEvent, ev.Index, len(t.Files))
		}
		k, ok := touched[ev.Index]
		if !ok {
			k = len(next)
			touched[ev.Index] = k
			next = append(next, t.Files[ev.Index])
		}
		f := &next[k]
		if Terminal(f.State) && ev.Kind != EventSourceDeleted && !(ev.Kind == EventDone && f.State == StateCompleted) {
			return fmt.Errorf("%w: file %d is %s", ErrBadFileEvent, ev.Index, f.State)
		}
		switch ev.Kind {
		case EventStart:
			f.State, f.Started = StateRunning, true
			resent += ev.Resent
			if ev.Restart {
				f.Checkpoint = checkpoint.Checkpoint{}
			}
		case EventCheckpoint:
			cp := ev.Checkpoint
			cp.Epoch = epoch // the epoch is the writer's, as the log says
			if err := checkpoint.Check(f.Checkpoint, cp); err != nil {
				return fmt.Errorf("file %d: %w", ev.Index, err)
			}
			f.Checkpoint, f.State, f.Started = cp, StateRunning, true
		case EventDone:
			if f.State == StateCompleted {
				continue // a replayed completion: harmless
			}
			if ev.SHA256 == "" {
				return fmt.Errorf("%w: completion of file %d without a digest", ErrBadFileEvent, ev.Index)
			}
			f.State, f.SHA256, f.Reason = StateCompleted, ev.SHA256, ""
		case EventFailed:
			f.State, f.Reason = StateFailed, ev.Reason
		case EventSourceDeleted:
			if f.State != StateCompleted {
				return fmt.Errorf("%w: source of file %d deleted before its completion", ErrBadFileEvent, ev.Index)
			}
			f.SourceDeleted = true
		default:
			return fmt.Errorf("%w: kind %q", ErrBadFileEvent, ev.Kind)
		}
	}
	for i, k := range touched {
		t.count(i, t.Files[i].State, next[k].State)
		t.Files[i] = next[k]
	}
	t.BytesResent += resent
	if t.State == StateRecovering && progressed(c.Events) {
		t.State, t.RecoveringSince, t.Reason = StateRunning, nil, ""
	}
	if t.State == StateQueued {
		t.State = StateRunning
	}
	settle(t, c.Time)
	return nil
}

// progressed reports whether events record progress (not just a start):
// only that ends a transfer's recovery.
func progressed(evs []FileEvent) bool {
	for _, ev := range evs {
		if ev.Kind == EventCheckpoint || ev.Kind == EventDone {
			return true
		}
	}
	return false
}

// settle ends a transfer whose files have all ended.
func settle(t *Transfer, now time.Time) {
	if Terminal(t.State) || t.ended < len(t.Files) {
		return
	}
	ended := now
	t.Ended = &ended
	t.RecoveringSince = nil
	defer t.pack()
	if t.failed == 0 {
		t.State, t.Reason = StateCompleted, ""
		return
	}
	first := t.Files[t.firstFailed]
	firstReason := fmt.Sprintf("%s: %s", first.Source, first.Reason)
	t.State = StateFailed
	if t.failed == 1 {
		t.Reason = firstReason
	} else {
		t.Reason = fmt.Sprintf("%d of %d files failed; first: %s", t.failed, len(t.Files), firstReason)
	}
}

func (s *State) endOrRecover(kind string, c reasonCmd) any {
	t, ok := s.transfers[c.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, c.ID)
	}
	if Terminal(t.State) {
		return fmt.Errorf("%w: %s is %s", ErrEnded, t.ID, t.State)
	}
	switch kind {
	case KindRecovering:
		t.State, t.Reason = StateRecovering, c.Reason
		if t.RecoveringSince == nil {
			since := c.Time
			t.RecoveringSince = &since
		}
		return nil
	case KindFail:
		t.State, t.Reason = StateFailed, c.Reason
	case KindCancel:
		t.State, t.Reason = StateCancelled, c.Reason
	}
	for i := range t.Files {
		if !Terminal(t.Files[i].State) {
			t.Files[i].State = t.State
		}
	}
	t.recount()
	ended := c.Time
	t.Ended, t.RecoveringSince = &ended, nil
	t.pack()
	return nil
}

// Get returns a copy of one transfer.
func (s *State) Get(id string) (*Transfer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.transfers[id]
	if !ok {
		return nil, false
	}
	return t.clone(), true
}

// List returns copies of every transfer in creation order.
func (s *State) List() []*Transfer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Transfer, 0, len(s.transfers))
	for _, t := range s.transfers {
		out = append(out, t.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

type snapshot struct {
	Transfers []*Transfer `json:"transfers"`
}

// Snapshot serialises the state.
func (s *State) Snapshot() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap := snapshot{Transfers: make([]*Transfer, 0, len(s.transfers))}
	for _, t := range s.transfers {
		if t.packed != nil {
			t = t.clone() // its files, unpacked
		}
		snap.Transfers = append(snap.Transfers, t)
	}
	sort.Slice(snap.Transfers, func(i, j int) bool { return snap.Transfers[i].Seq < snap.Transfers[j].Seq })
	return json.Marshal(snap)
}

// Restore replaces the state with a snapshot's.
func (s *State) Restore(b []byte) error {
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("decode transfer snapshot: %w", err)
	}
	m := make(map[string]*Transfer, len(snap.Transfers))
	for _, t := range snap.Transfers {
		t.recount()
		t.pack() // if ended
		m[t.ID] = t
	}
	s.mu.Lock()
	s.transfers = m
	s.mu.Unlock()
	return nil
}
