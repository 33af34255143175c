package ha

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// FormatVersion is the version of the replicated command and snapshot format
// this build writes. A build reads every version up to its own and refuses
// newer ones loudly rather than guess at them.
const FormatVersion = 1

// KindLease is the command kind of a lease entry. Kinds that pkg/ha does not
// own are handed to the StateMachine.
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
	// ErrStaleEpoch is the result of a command written under an older lease.
	ErrStaleEpoch = errors.New("stale lease epoch")
	// ErrUnknownKind is the result of a command kind no one registered.
	ErrUnknownKind = errors.New("unknown command kind")
	// ErrNewerFormat is the result of a command from a newer build.
	ErrNewerFormat = errors.New("command format newer than this build understands")
)

// encodeCommand builds a log entry.
func encodeCommand(kind string, epoch uint64, data any) ([]byte, error) {
	var raw json.RawMessage
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", kind, err)
		}
		raw = b
	}
	return json.Marshal(Command{Format: FormatVersion, Kind: kind, Epoch: epoch, Data: raw})
}

// decodeCommand is the one place that decodes log entries.
func decodeCommand(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode command: %w", err)
	}
	if c.Format > FormatVersion {
		return c, fmt.Errorf("%w: %q has format %d, this build knows up to %d", ErrNewerFormat, c.Kind, c.Format, FormatVersion)
	}
	return c, nil
}
