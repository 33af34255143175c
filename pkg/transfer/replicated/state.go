// Package replicated owns the replicated state of the transfers: every
// transfer with its request, files and directories, the command kinds of the
// log and their Apply, the snapshot and its restore, and the views built from
// the state. It is what every instance computes alike from the log, so it
// imports no endpoint and does no I/O (imports_test.go keeps its imports
// so): Apply has no side effect outside the state by construction. The work
// of the active instance (planning, copying, deleting sources) is
// pkg/transfer's Manager, which proposes the commands defined here.
package replicated

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/replog"
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
	// KindCreateV3 is transfer.create.v2 with the transfer's directories,
	// and the kind of every create whose file names are not all plain
	// UTF-8 (names.go), of command format 4 (createV3Cmd).
	KindCreateV3 = "transfer.create.v3"
	// KindPrune forgets ended transfers named by the active (PruneCmd),
	// of command format 5.
	KindPrune = "transfer.prune"
	// KindCreateOpen creates a transfer open for more files (a createV3Cmd
	// with its first chunk), and KindAppend adds the next chunks, seals
	// or discards it (open.go), of command format 6.
	KindCreateOpen = "transfer.create.open"
	KindAppend     = "transfer.append"
)

// Kinds lists the kinds of the first command format, for the log's
// dispatcher; KindCreateV2, KindFilesV2 and KindCreateV3 are registered
// apart, at formats 2, 3 and 4 (kinds.go).
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
	// DestinationAgent names the agent the files go to (agent.NAME.instances
	// of agent.properties); empty: this agent's own storage. The
	// destination is then a path of that agent's, resolved there. Only
	// from command format 7 (FormatInbound): earlier builds would copy
	// locally.
	DestinationAgent string `json:"destinationAgent,omitempty"`
}

// Duration is a time.Duration that writes as a Go duration string ("90s")
// and reads one, or a number of seconds as the properties file does (90,
// 1.5): never a count of nanoseconds, which a client writing 60 would not
// mean.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("a duration is a string such as \"90s\" or a number of seconds: %s", b)
		}
		// float64(math.MaxInt64) is 2⁶³, itself out of range: a number of
		// seconds that rounds to it must not wrap around to a negative
		// duration (which means "retry forever").
		ns := secs * float64(time.Second)
		if ns >= math.MaxInt64 || ns < math.MinInt64 {
			return fmt.Errorf("duration of %s seconds is out of range", b)
		}
		*d = Duration(ns)
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
	// Delivered is the identity of the source whose bytes were delivered,
	// recorded with the completion when the source is to be deleted and
	// kept until it is: the source is deleted only while it still has it
	// (a producer may have written a new file under its name since).
	// Zero in completions recorded by builds that did not keep it.
	Delivered checkpoint.Source `json:"delivered,omitzero"`
}

// Dir is a directory of a recursive transfer, made at the destination
// whether or not files go into it, so that the tree arrives whole (as
// cp -r and rsync -r make it), empty directories included. Its State is
// queued, then completed once made, or failed with a Reason.
type Dir struct {
	Source      string `json:"source"`      // absolute, inside the sandbox
	Destination string `json:"destination"` // absolute, inside the sandbox
	State       string `json:"state,omitempty"`
	Reason      string `json:"reason,omitempty"`
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
	// Dirs are the directories a recursive transfer makes (only from
	// format 4 on: left out when there are none, as before).
	Dirs []Dir `json:"dirs,omitempty"`
	// Owner is the identity that created it (trust.Identity's String), ""
	// without TLS or from builds before it: an operator may cancel the
	// transfers it owns, an admin any. Earlier builds ignore it.
	Owner string `json:"owner,omitempty"`
	// Open: the transfer is being created in several entries (open.go)
	// and does not run until the last one seals it.
	Open bool `json:"open,omitempty"`
	// Receiver is the instance of the destination agent that last
	// received it, under its lease epoch ReceiverEpoch; ReceiverFailovers
	// counts the destination's failovers seen (KindReceiver).
	Receiver          string `json:"receiver,omitempty"`
	ReceiverEpoch     uint64 `json:"receiverEpoch,omitempty"`
	ReceiverFailovers int    `json:"receiverFailovers,omitempty"`
	// Switched is the last move to another group of the destination agent
	// (KindSwitch); Doubts the files that may have been committed at a
	// group it left.
	Switched *Switch `json:"switched,omitempty"`
	Doubts   []Doubt `json:"doubts,omitempty"`
	// EndTold: its destination agent was told that it ended (KindTold).
	EndTold bool `json:"endTold,omitempty"`

	// Derived from Files (recount), so that applying file events costs
	// the events, not the transfer's size: how many files have ended, how
	// many failed, and the lowest index of a failed one (-1: none).
	ended, failed, firstFailed int
	// The same for Dirs.
	dirsEnded, dirsFailed, firstFailedDir int
	// files holds the files in the state instead of Files (files.go);
	// readers get them back from clone, or share them (State.Shared).
	files *fileTable
	// live, in a copy from State.Live, is the state its files are read
	// from, at each read.
	live *State
}

// recount derives t's counts from its files.
func (t *Transfer) recount() {
	t.ended, t.failed, t.firstFailed = 0, 0, -1
	for i := range t.FileCount() {
		state, _, _ := t.progressAt(i)
		t.count(i, "", state)
	}
	t.dirsEnded, t.dirsFailed, t.firstFailedDir = 0, 0, -1
	for i := range t.Dirs {
		t.countDir(i, "", t.Dirs[i].State)
	}
}

// countDir records directory i's change of state from was to now.
func (t *Transfer) countDir(i int, was, now string) {
	if !Terminal(was) && Terminal(now) {
		t.dirsEnded++
	}
	if was != StateFailed && now == StateFailed {
		t.dirsFailed++
		if t.firstFailedDir < 0 || i < t.firstFailedDir {
			t.firstFailedDir = i
		}
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
	for i := range t.FileCount() {
		state, bytes, offset := t.progressAt(i)
		if state == StateCompleted {
			n += bytes
		} else {
			n += offset
		}
	}
	return n
}

func (t *Transfer) clone() *Transfer {
	c := *t
	if t.files != nil {
		c.Files, c.files = t.files.all(), nil
	} else {
		c.Files = append([]File(nil), t.Files...)
	}
	c.Request.Sources = append([]string(nil), t.Request.Sources...)
	if t.Dirs != nil {
		c.Dirs = append([]Dir(nil), t.Dirs...)
	}
	return &c
}

// Errors of the replicated state.
var (
	ErrQueueFull     = errors.New("the transfer queue is full")
	ErrNotFound      = errors.New("no such transfer")
	ErrEnded         = errors.New("transfer has already ended")
	ErrBadFileEvent  = errors.New("bad file event")
	ErrAlreadyExists = errors.New("a different transfer with this id exists")
)

// CreateCmd creates a transfer. The proposer includes its limits so that
// every instance applies the same rules.
type CreateCmd struct {
	Transfer     Transfer      `json:"transfer"`
	MaxQueued    int           `json:"maxQueued"`
	HistoryCount int           `json:"historyCount"`
	HistoryAge   time.Duration `json:"historyAge"`
}

// PruneCmd forgets ended transfers of the history. The active chooses them
// (Manager.pruneHistory); Apply drops only those that have ended and have no
// source left to delete, so an entry that races a change drops nothing it
// should keep.
type PruneCmd struct {
	Time time.Time `json:"time"`
	IDs  []string  `json:"ids"`
}

// StartCmd begins or resumes a transfer (KindStart).
type StartCmd struct {
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
	// Source, with done, when the source is to be deleted: the identity
	// of the source whose bytes were delivered (File.Delivered).
	Source checkpoint.Source `json:"source,omitzero"`
}

// File event kinds.
const (
	EventStart         = "start"
	EventCheckpoint    = "checkpoint"
	EventDone          = "done"
	EventFailed        = "failed"
	EventSourceDeleted = "sourceDeleted"
)

// FilesCmd carries file and directory events of one transfer (KindFiles;
// KindFilesV2 in compact form, CompactFiles).
type FilesCmd struct {
	ID     string      `json:"id"`
	Time   time.Time   `json:"time"`
	Events []FileEvent `json:"events"`
	// Dirs are directory events (dirs.go), applied with the file events.
	Dirs []DirEvent `json:"dirs,omitempty"`
}

// ReasonCmd puts a transfer in recovering, failed or cancelled, with the
// reason (KindRecovering, KindFail, KindCancel).
type ReasonCmd struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

// State is the replicated state of the agent's transfers. Its Apply is
// deterministic and touches nothing outside it; it implements
// replog.StateMachine.
type State struct {
	mu        sync.RWMutex
	transfers map[string]*Transfer
	// inbound is what other agents send here, by InboundKey (inbound.go).
	inbound map[string]*InboundTransfer
	changed chan struct{} // closed by the next Apply (see Changed)
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
		var c CreateCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.create(c, index, false)
	case KindCreateV2:
		c, err := decodeCreateV2(data)
		if err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.create(c, index, false)
	case KindCreateV3, KindCreateOpen:
		c, err := decodeCreateV3(data)
		if err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.create(c, index, kind == KindCreateOpen)
	case KindAppend:
		c, err := DecodeAppend(data)
		if err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.appendTo(c)
	case KindStart:
		var c StartCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.start(c, epoch)
	case KindFiles:
		var c FilesCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.files(c, epoch)
	case KindFilesV2:
		c, err := DecodeFilesV2(data)
		if err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.files(c, epoch)
	case KindPrune:
		var c PruneCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.pruneIDs(c)
	case KindTold:
		var c ToldCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.told(c)
	case KindSwitch:
		var c SwitchCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.switchGroup(c)
	case KindReconcile:
		var c ReconcileCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.reconcile(c)
	case KindReceiver:
		var c ReceiverCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.receiver(c)
	case KindInbound:
		var c InboundCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.applyInbound(c)
	case KindRecovering, KindFail, KindCancel:
		var c ReasonCmd
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		return s.endOrRecover(kind, c)
	}
	return fmt.Errorf("%w: %q is not a transfer command", replog.ErrUnknownKind, kind)
}

func (s *State) create(c CreateCmd, index uint64, open bool) any {
	t := c.Transfer
	if old, ok := s.transfers[t.ID]; ok {
		// A client retrying a submission after a failover: the same
		// request is the same transfer, anything else is a clash. But a
		// creation in several entries that has not been sealed was never
		// answered: the retry creates it anew (open.go).
		switch {
		case !SameRequest(old.Request, t.Request):
			return fmt.Errorf("%w: %s", ErrAlreadyExists, t.ID)
		case !old.Open || Terminal(old.State):
			return old.clone()
		}
		delete(s.transfers, t.ID)
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
	t.Open = open
	t.Bytes = 0
	for i := range t.Files {
		t.Files[i].State = StateQueued
		t.Bytes += t.Files[i].Bytes
	}
	for i := range t.Dirs {
		t.Dirs[i].State = StateQueued
	}
	t.recount()
	t.tabulate()
	if t.FileCount() == 0 && len(t.Dirs) == 0 && !open {
		// Nothing to copy or make: done at once.
		t.State = StateCompleted
		ended := t.Created
		t.Ended = &ended
	}
	s.transfers[t.ID] = &t
	return t.clone()
}

// SameRequest reports whether a and b are the same request, as their JSON
// is: a create with an existing id and the same request is a client's
// retry, which returns the existing transfer.
func SameRequest(a, b Request) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return string(ab) == string(bb)
}

// pruneIDs applies a PruneCmd; it returns how many transfers it dropped.
func (s *State) pruneIDs(c PruneCmd) any {
	n := 0
	for _, id := range c.IDs {
		t, ok := s.transfers[id]
		// Kept while sources are left to delete, or files are in doubt
		// at a group it left (switch.go).
		if !ok || t.Ended == nil || t.SourcesToDelete() || len(t.Unreconciled()) > 0 || t.EndUntold() {
			continue
		}
		delete(s.transfers, id)
		n++
	}
	return n
}

// prune drops ended transfers older than age, then the oldest beyond count:
// the rule of creates proposed before every instance read format 4, kept
// as it was so that every build applies those entries alike. Since format
// 4 the active proposes creates that prune nothing (count -1, age 0) and
// prunes by KindPrune (Manager.pruneHistory), which keeps pending work and
// recent ids.
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
	sort.Slice(ended, func(i, j int) bool { return seqBefore(ended[i], ended[j]) })
	for _, t := range ended[:len(ended)-count] {
		delete(s.transfers, t.ID)
	}
}

func (s *State) start(c StartCmd, epoch uint64) any {
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

func (s *State) files(c FilesCmd, epoch uint64) any {
	t, ok := s.transfers[c.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, c.ID)
	}
	if Terminal(t.State) {
		// Only the clean-up of an ended transfer may still be recorded.
		if len(c.Dirs) > 0 {
			return fmt.Errorf("%w: %s is %s", ErrEnded, t.ID, t.State)
		}
		for _, ev := range c.Events {
			if ev.Kind != EventSourceDeleted {
				return fmt.Errorf("%w: %s is %s", ErrEnded, t.ID, t.State)
			}
		}
	}
	// Check every event before changing anything: an entry applies whole.
	// The events work on copies of the files they touch; the transfer is
	// changed only once all have passed, so an entry costs its events.
	touched := make(map[int]int, len(c.Events)) // file index -> position in next
	var next []File
	var resent int64
	for _, ev := range c.Events {
		if ev.Index < 0 || ev.Index >= t.FileCount() {
			return fmt.Errorf("%w: file %d of %d", ErrBadFileEvent, ev.Index, t.FileCount())
		}
		k, ok := touched[ev.Index]
		if !ok {
			k = len(next)
			touched[ev.Index] = k
			next = append(next, t.FileAt(ev.Index))
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
			f.State, f.SHA256, f.Reason, f.Delivered = StateCompleted, ev.SHA256, "", ev.Source
		case EventFailed:
			f.State, f.Reason = StateFailed, ev.Reason
		case EventSourceDeleted:
			if f.State != StateCompleted {
				return fmt.Errorf("%w: source of file %d deleted before its completion", ErrBadFileEvent, ev.Index)
			}
			f.SourceDeleted, f.Delivered = true, checkpoint.Source{}
		default:
			return fmt.Errorf("%w: kind %q", ErrBadFileEvent, ev.Kind)
		}
	}
	dirs, err := dirEvents(t, c.Dirs)
	if err != nil {
		return err
	}
	for i, k := range touched {
		was, _, _ := t.progressAt(i)
		t.count(i, was, next[k].State)
		t.files.set(i, next[k])
	}
	for i, d := range dirs {
		t.countDir(i, t.Dirs[i].State, d.State)
		t.Dirs[i] = d
	}
	t.BytesResent += resent
	if t.State == StateRecovering && (progressed(c.Events) || dirsMade(c.Dirs)) {
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
	if Terminal(t.State) || t.ended < t.FileCount() || t.dirsEnded < len(t.Dirs) {
		return
	}
	ended := now
	t.Ended = &ended
	t.RecoveringSince = nil
	defer t.files.ended()
	if t.failed == 0 && t.dirsFailed == 0 {
		t.State, t.Reason = StateCompleted, ""
		return
	}
	t.State = StateFailed
	if t.dirsFailed > 0 {
		// Only format-4 transfers have directories: the reasons of
		// earlier ones are worded as before.
		t.Reason = dirsReason(t)
		return
	}
	first := t.FileAt(t.firstFailed)
	firstReason := fmt.Sprintf("%s: %s", ReasonName(first.Source), first.Reason)
	if t.failed == 1 {
		t.Reason = firstReason
	} else {
		t.Reason = fmt.Sprintf("%d of %d files failed; first: %s", t.failed, t.FileCount(), firstReason)
	}
}

// dirsReason is the reason of a transfer that failed with directories
// among what failed: the first failed file's, else the first failed
// directory's, and how many of each failed.
func dirsReason(t *Transfer) string {
	var first string
	if t.failed > 0 {
		f := t.FileAt(t.firstFailed)
		first = fmt.Sprintf("%s: %s", ReasonName(f.Source), f.Reason)
	} else {
		d := t.Dirs[t.firstFailedDir]
		first = fmt.Sprintf("directory %s: %s", ReasonName(d.Source), d.Reason)
	}
	if t.failed+t.dirsFailed == 1 {
		return first
	}
	return fmt.Sprintf("%d of %d files and %d of %d directories failed; first: %s", t.failed, len(t.Files), t.dirsFailed, len(t.Dirs), first)
}

// ReasonName is a file name as a reason names it: as it is if it is UTF-8
// (as earlier builds wrote it, so that old entries apply as they did),
// else quoted, so that the reason is text that JSON carries unchanged and
// a snapshot restores the same reason.
func ReasonName(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strconv.Quote(s)
}

func (s *State) endOrRecover(kind string, c ReasonCmd) any {
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
	for i := range t.FileCount() {
		if state, _, _ := t.progressAt(i); !Terminal(state) {
			f := t.FileAt(i)
			f.State = t.State
			t.files.set(i, f)
		}
	}
	for i := range t.Dirs {
		if !Terminal(t.Dirs[i].State) {
			t.Dirs[i].State = t.State
		}
	}
	t.recount()
	ended := c.Time
	t.Ended, t.RecoveringSince = &ended, nil
	t.files.ended()
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
	sort.Slice(out, func(i, j int) bool { return seqBefore(out[i], out[j]) })
	return out
}
