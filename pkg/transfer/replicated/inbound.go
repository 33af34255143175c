package replicated

// What this agent receives from other agents: for each transfer of a
// sending agent that writes here, the newest lease epoch of that agent seen
// for it (the fence at the destination: a sender's active of an older
// epoch is refused), and for each of its files the durable points of the
// .part here, with the hash state of what was written, and whether it was
// committed (renamed into place) with which digest.
//
// The sender resumes a file from its own last checkpoint, which it records
// only after this agent recorded the same offset: so the sender's is this
// agent's last one or the one before it (the sender may have died between
// the two records). Both are kept, and a resume at either carries on with
// this agent's own hash state at that offset.

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// KindInbound is a change to what this agent receives from another agent
// (InboundCmd), of command format 7.
const KindInbound = "inbound"

// FormatInbound is the command format that introduced KindInbound and a
// request's DestinationAgent: once every instance reads it, this agent
// sends to and receives from other agents.
const FormatInbound = 7

// Operations of an InboundCmd.
const (
	// InboundEpoch records the sender's epoch alone (a sender that
	// presents itself before it writes).
	InboundEpoch = "epoch"
	// InboundCheckpoint records a durable point of a file's .part.
	InboundCheckpoint = "checkpoint"
	// InboundCommit records a file renamed into place with its digest.
	InboundCommit = "commit"
	// InboundRemove forgets a file whose .part was removed (cancelled,
	// failed, or restarted from its beginning).
	InboundRemove = "remove"
	// InboundEnd: the sender's transfer has ended. Its files are
	// forgotten; its epoch is kept, so that a stale active of the sender
	// still meets the fence.
	InboundEnd = "end"
	// InboundPrune forgets ended inbound transfers (Keys).
	InboundPrune = "prune"
	// InboundFiles records small files received whole and renamed into
	// place together (Files), without checkpoints.
	InboundFiles = "files"
)

// InboundDone is a file received whole and committed (InboundFiles).
type InboundDone struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Digest string `json:"digest"`
}

// ErrStaleSender refuses what a sending agent's active asks under an older
// lease epoch than one this agent has seen for the same transfer.
var ErrStaleSender = errors.New("stale sender epoch")

// ErrInboundState refuses an inbound change that does not follow from the
// recorded state (a checkpoint that does not continue a recorded one, a
// commit before the whole file is durable, a write to a committed file).
var ErrInboundState = errors.New("inbound state")

// InboundCmd changes what this agent receives.
type InboundCmd struct {
	Op    string `json:"op"`
	Agent string `json:"agent"` // the sending agent
	ID    string `json:"id"`    // its transfer's id
	// SenderEpoch is the lease epoch of the sending agent's active that
	// asked for this change.
	SenderEpoch uint64    `json:"senderEpoch"`
	Time        time.Time `json:"time"`
	Path        string    `json:"path,omitempty"` // the destination, absolute
	Size        int64     `json:"size,omitempty"` // the file's size, as the sender says
	// Base is the offset the write began at (a recorded checkpoint's, or
	// 0); Checkpoint the durable point reached (Op checkpoint).
	Base       int64                 `json:"base,omitempty"`
	Checkpoint checkpoint.Checkpoint `json:"checkpoint,omitzero"`
	Digest     string                `json:"digest,omitempty"` // Op commit
	Keys       []string              `json:"keys,omitempty"`   // Op prune: InboundKey values
	Files      []InboundDone         `json:"files,omitempty"`  // Op files
}

// inboundCmdJSON is InboundCmd as JSON carries it: its Path and its
// Files' escaped (EncodeName), so that a name that is not UTF-8 is
// recorded as itself (names.go). A UTF-8 name is written as it is: the
// same bytes as InboundCmd without these methods.
type inboundCmdJSON InboundCmd

func (c InboundCmd) MarshalJSON() ([]byte, error) {
	j := inboundCmdJSON(c)
	j.Path = EncodeName(c.Path)
	for _, d := range c.Files {
		if !plainName(d.Path) {
			j.Files = make([]InboundDone, len(c.Files))
			for i, d := range c.Files {
				d.Path = EncodeName(d.Path)
				j.Files[i] = d
			}
			break
		}
	}
	return json.Marshal(j)
}

func (c *InboundCmd) UnmarshalJSON(b []byte) error {
	var j inboundCmdJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if err := decodeNames(&j.Path); err != nil {
		return err
	}
	for i := range j.Files {
		if err := decodeNames(&j.Files[i].Path); err != nil {
			return err
		}
	}
	*c = InboundCmd(j)
	return nil
}

// InboundTransfer is what this agent keeps of a transfer another agent
// sends here.
type InboundTransfer struct {
	Agent       string                  `json:"agent"`
	ID          string                  `json:"id"`
	SenderEpoch uint64                  `json:"senderEpoch"`
	Updated     time.Time               `json:"updated"`
	Ended       bool                    `json:"ended,omitempty"`
	Files       map[string]*InboundFile `json:"files,omitempty"` // by destination path
}

// inboundTransferJSON is InboundTransfer as a snapshot carries it: the
// names of its files escaped (EncodeName), as every name of a snapshot.
type inboundTransferJSON InboundTransfer

func (t InboundTransfer) MarshalJSON() ([]byte, error) {
	j := inboundTransferJSON(t)
	for p := range t.Files {
		if !plainName(p) {
			j.Files = make(map[string]*InboundFile, len(t.Files))
			for p, f := range t.Files {
				j.Files[EncodeName(p)] = f
			}
			break
		}
	}
	return json.Marshal(j)
}

func (t *InboundTransfer) UnmarshalJSON(b []byte) error {
	var j inboundTransferJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	for e := range j.Files {
		if plainName(e) {
			continue
		}
		files := make(map[string]*InboundFile, len(j.Files))
		for e, f := range j.Files {
			p, err := DecodeName(e)
			if err != nil {
				return err
			}
			if _, dup := files[p]; dup {
				return fmt.Errorf("inbound transfer %s of agent %s: file %q given twice", j.ID, j.Agent, p)
			}
			files[p] = f
		}
		j.Files = files
		break
	}
	*t = InboundTransfer(j)
	return nil
}

// InboundFile is one file being received, or received.
type InboundFile struct {
	Size int64 `json:"size"`
	// Last is the last durable point of the .part; Prev the one before
	// (zero when there is none): the sender resumes at one of them.
	Last      checkpoint.Checkpoint `json:"last,omitzero"`
	Prev      checkpoint.Checkpoint `json:"prev,omitzero"`
	Committed bool                  `json:"committed,omitempty"`
	Digest    string                `json:"digest,omitempty"`
}

// At returns the durable point of f at offset: 0 (the empty hash), Last
// or Prev.
func (f *InboundFile) At(offset int64) (checkpoint.Checkpoint, bool) {
	switch {
	case offset == 0:
		return checkpoint.Checkpoint{}, true
	case f.Last.Offset == offset:
		return f.Last, true
	case f.Prev.Offset == offset:
		return f.Prev, true
	}
	return checkpoint.Checkpoint{}, false
}

// InboundKey names an inbound transfer: the sending agent and its id.
func InboundKey(agent, id string) string { return agent + "/" + id }

func (t *InboundTransfer) clone() *InboundTransfer {
	c := *t
	c.Files = make(map[string]*InboundFile, len(t.Files))
	for p, f := range t.Files {
		fc := *f
		c.Files[p] = &fc
	}
	return &c
}

// Inbound returns a copy of what this agent keeps of transfer id of agent.
func (s *State) Inbound(agent, id string) (*InboundTransfer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.inbound[InboundKey(agent, id)]
	if !ok {
		return nil, false
	}
	return t.clone(), true
}

// InboundFileAt returns a copy of file path of inbound transfer id of
// agent, and the transfer's newest sender epoch (0 when it is unknown).
func (s *State) InboundFileAt(agent, id, path string) (f InboundFile, epoch uint64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, tok := s.inbound[InboundKey(agent, id)]
	if !tok {
		return InboundFile{}, 0, false
	}
	if p, fok := t.Files[path]; fok {
		return *p, t.SenderEpoch, true
	}
	return InboundFile{}, t.SenderEpoch, false
}

// InboundEnded lists the keys of inbound transfers that ended before
// before, at most max.
func (s *State) InboundEnded(before time.Time, max int) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var keys []string
	for k, t := range s.inbound {
		if t.Ended && t.Updated.Before(before) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) > max {
		keys = keys[:max]
	}
	return keys
}

// InboundCount is how many inbound transfers the state keeps, and how many
// of them have not ended.
func (s *State) InboundCount() (all, open int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, t := range s.inbound {
		all++
		if !t.Ended {
			open++
		}
	}
	return all, open
}

// applyInbound applies c; s.mu is held.
func (s *State) applyInbound(c InboundCmd) any {
	if c.Op == InboundPrune {
		for _, k := range c.Keys {
			if t, ok := s.inbound[k]; ok && t.Ended {
				delete(s.inbound, k)
			}
		}
		return nil
	}
	if c.Agent == "" || c.ID == "" {
		return fmt.Errorf("%w: an inbound change names no sending agent or transfer", ErrInboundState)
	}
	key := InboundKey(c.Agent, c.ID)
	t, ok := s.inbound[key]
	if !ok {
		if c.Op != InboundEpoch && c.Op != InboundCheckpoint && c.Op != InboundFiles {
			return fmt.Errorf("%w: transfer %s of agent %s is not being received here", ErrInboundState, c.ID, c.Agent)
		}
		t = &InboundTransfer{Agent: c.Agent, ID: c.ID, Files: map[string]*InboundFile{}}
	}
	if c.SenderEpoch < t.SenderEpoch {
		return fmt.Errorf("%w: transfer %s of agent %s is sent under epoch %d now, not %d", ErrStaleSender, c.ID, c.Agent, t.SenderEpoch, c.SenderEpoch)
	}
	if t.Ended && c.Op != InboundEnd {
		return fmt.Errorf("%w: transfer %s of agent %s has ended", ErrInboundState, c.ID, c.Agent)
	}
	switch c.Op {
	case InboundEpoch, InboundEnd:
	case InboundCheckpoint:
		f := t.Files[c.Path]
		if f == nil {
			f = &InboundFile{Size: c.Size}
		}
		if f.Committed {
			return fmt.Errorf("%w: %s was committed already", ErrInboundState, c.Path)
		}
		base, ok := f.At(c.Base)
		if !ok {
			return fmt.Errorf("%w: %s: a write from offset %d, which is not a recorded point (%d, %d)", ErrInboundState, c.Path, c.Base, f.Prev.Offset, f.Last.Offset)
		}
		// A write moves the offset on; only an empty file's ends where it
		// began.
		if c.Checkpoint.Offset < c.Base || c.Checkpoint.Offset == c.Base && c.Size != 0 ||
			c.Checkpoint.Offset > c.Size || len(c.Checkpoint.Hash) == 0 {
			return fmt.Errorf("%w: %s: checkpoint at %d after a write from %d of a file of %d bytes", ErrInboundState, c.Path, c.Checkpoint.Offset, c.Base, c.Size)
		}
		f.Size, f.Prev, f.Last = c.Size, base, c.Checkpoint
		t.Files[c.Path] = f
	case InboundCommit:
		f := t.Files[c.Path]
		switch {
		case f == nil:
			return fmt.Errorf("%w: %s was never written", ErrInboundState, c.Path)
		case f.Committed:
			if f.Digest != c.Digest {
				return fmt.Errorf("%w: %s was committed with another digest", ErrInboundState, c.Path)
			}
			return nil // replayed
		case f.Last.Offset != f.Size:
			return fmt.Errorf("%w: %s: %d of %d bytes durable", ErrInboundState, c.Path, f.Last.Offset, f.Size)
		}
		f.Committed, f.Digest = true, c.Digest
		f.Prev, f.Last = checkpoint.Checkpoint{}, checkpoint.Checkpoint{Offset: f.Size}
	case InboundFiles:
		// Checked whole before any is recorded: the entry applies whole
		// or not at all.
		for _, d := range c.Files {
			if f := t.Files[d.Path]; f != nil && f.Committed && f.Digest != d.Digest {
				return fmt.Errorf("%w: %s was committed with another digest", ErrInboundState, d.Path)
			}
			if d.Path == "" || d.Size < 0 || d.Digest == "" {
				return fmt.Errorf("%w: a file received whole needs a path, a size and a digest", ErrInboundState)
			}
		}
		for _, d := range c.Files {
			t.Files[d.Path] = &InboundFile{Size: d.Size, Last: checkpoint.Checkpoint{Offset: d.Size}, Committed: true, Digest: d.Digest}
		}
	case InboundRemove:
		if f := t.Files[c.Path]; f != nil && f.Committed {
			return fmt.Errorf("%w: %s was committed", ErrInboundState, c.Path)
		}
		delete(t.Files, c.Path)
	default:
		return fmt.Errorf("%w: unknown inbound operation %q", ErrInboundState, c.Op)
	}
	t.SenderEpoch, t.Updated = c.SenderEpoch, c.Time
	if c.Op == InboundEnd {
		t.Ended, t.Files = true, nil
	}
	if s.inbound == nil {
		s.inbound = map[string]*InboundTransfer{}
	}
	s.inbound[key] = t
	return nil
}

// KindReceiver records, at the sender, which instance of the destination
// agent receives a transfer and under which of its lease epochs
// (ReceiverCmd), of command format 7: written when either changes, so that
// a transfer's view says who receives it and how often the destination
// failed over.
const KindReceiver = "transfer.receiver"

// ReceiverCmd is a KindReceiver entry.
type ReceiverCmd struct {
	ID       string `json:"id"`
	Instance string `json:"instance"`
	Epoch    uint64 `json:"epoch"` // the destination's lease epoch
}

// receiver applies c; s.mu is held.
func (s *State) receiver(c ReceiverCmd) any {
	t, ok := s.transfers[c.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, c.ID)
	}
	if t.ReceiverEpoch != 0 && c.Epoch > t.ReceiverEpoch {
		t.ReceiverFailovers++
	}
	if c.Epoch >= t.ReceiverEpoch {
		t.Receiver, t.ReceiverEpoch = c.Instance, c.Epoch
	}
	return nil
}

// ReceiverOf returns the destination agent's instance recorded for
// transfer id, and its epoch.
func (s *State) ReceiverOf(id string) (instance string, epoch uint64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.transfers[id]
	if !ok {
		return "", 0, false
	}
	return t.Receiver, t.ReceiverEpoch, true
}

// InboundActive counts the inbound transfers that have not ended and
// changed at or after since: those a sender is still at work on.
func (s *State) InboundActive(since time.Time) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, t := range s.inbound {
		if !t.Ended && !t.Updated.Before(since) {
			n++
		}
	}
	return n
}
