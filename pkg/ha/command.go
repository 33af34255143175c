package ha

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ftagent/ftagent/pkg/replog"
)

// FormatVersion is the highest format of replicated commands and snapshots
// this build reads. A build reads every format up to its own and refuses a
// newer one loudly rather than guess at it (see RefusalError).
//
// An entry's envelope carries the format of its kind (see replog.RegisterKind), not
// this build's: a newer build writes the kinds an older one knows in their old
// format, so that the older build keeps reading them during a rolling upgrade.
// A change to a kind's data that an older build would misread is a new kind,
// or the same kind registered at a new format.
//
// Format 2 added transfer.create.v2 (pkg/transfer), a compact create entry;
// format 3 transfer.files.v2, a compact entry of file events; format 4
// transfer.create.v3, a create with directories, or with file names that are
// not UTF-8 (escaped); format 5 transfer.prune, which forgets ended
// transfers by name; format 6 transfer.create.open and transfer.append, which
// create a transfer of many files in several bounded entries; format 7
// inbound (what other agents send here) and a request's destination agent.
const FormatVersion = 7

// KindLease is the command kind of a lease entry. Kinds that pkg/ha does not
// own are handed to the replog.StateMachine.
const KindLease = "ha.lease"

// Command is the envelope of every raft log entry ftagent writes. Epoch is the
// lease epoch of the instance that wrote it: the replicated state refuses a
// command whose epoch is older than the current lease, so a deposed active can
// never change the state after a new one took over.
type Command struct {
	Format int             `json:"v"`
	Kind   string          `json:"kind"`
	Epoch  uint64          `json:"epoch"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Lease is the record of who holds the agent's exclusive lease.
type Lease struct {
	Epoch   uint64    `json:"epoch"`
	Holder  string    `json:"holder"`
	Address string    `json:"address"`
	Since   time.Time `json:"since"`
}

var (
	// ErrNewerFormat is the result of a command from a newer build.
	ErrNewerFormat = errors.New("command format newer than this build understands")
	// ErrMalformedCommand is the result of a log entry that is not a command
	// envelope at all.
	ErrMalformedCommand = errors.New("malformed command")
)

// encodeCommand builds a log entry, stamped with its kind's format.
func encodeCommand(kind string, epoch uint64, data any) ([]byte, error) {
	var raw json.RawMessage
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", kind, err)
		}
		raw = b
	}
	format, ok := replog.KindFormat(kind)
	if !ok {
		format = 1 // refused when applied: Node.Apply never proposes it
	}
	return json.Marshal(Command{Format: format, Kind: kind, Epoch: epoch, Data: raw})
}

// decodeCommand is the one place that decodes log entries. It only decodes:
// whether this build may apply the command is state.apply's decision.
func decodeCommand(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: %v", ErrMalformedCommand, err)
	}
	if c.Format < 1 || c.Kind == "" {
		return c, fmt.Errorf("%w: format %d, kind %q", ErrMalformedCommand, c.Format, c.Kind)
	}
	return c, nil
}
