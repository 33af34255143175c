package ha

import (
	"errors"
	"fmt"
	"sync"
)

// The command-kind registry: every kind a build applies, with the format that
// introduced it. pkg/ha registers its own; a StateMachine's package registers
// the kinds it owns (pkg/transfer does it in an init function). The registry
// is what the replicated state trusts to tell a command it knows from one it
// does not, and what Node.Apply consults before it proposes anything.
var kindRegistry = struct {
	sync.RWMutex
	formats map[string]int
}{formats: map[string]int{KindLease: 1}}

// RegisterKind declares a command kind this build applies, introduced in
// format. Format 1 is the first format: every build reads it. A kind that a
// newer build adds (or whose data it changes in a way older builds would
// misread) is registered at a new format, and FormatVersion is raised to it.
// Call RegisterKind from an init function, before any node starts; it panics
// on a kind registered twice with different formats.
func RegisterKind(kind string, format int) {
	if kind == "" || format < 1 {
		panic(fmt.Sprintf("ha.RegisterKind(%q, %d): a kind needs a name and a format of at least 1", kind, format))
	}
	kindRegistry.Lock()
	defer kindRegistry.Unlock()
	if f, ok := kindRegistry.formats[kind]; ok && f != format {
		panic(fmt.Sprintf("ha.RegisterKind(%q, %d): already registered with format %d", kind, format, f))
	}
	kindRegistry.formats[kind] = format
}

// KindFormat returns the format that introduced kind, and whether this build
// knows kind at all.
func KindFormat(kind string) (int, bool) {
	kindRegistry.RLock()
	defer kindRegistry.RUnlock()
	f, ok := kindRegistry.formats[kind]
	return f, ok
}

// ErrFormatNotAgreed is Node.Apply's answer for a kind whose format not every
// instance of the agent has reported it reads: proposing it could make an
// instance of an older build refuse the log and stop.
var ErrFormatNotAgreed = errors.New("command format not yet read by every instance")

// RefusalError is why an instance stopped applying its replicated log: an
// entry (or a snapshot) of a format newer than the build reads, of a kind the
// build does not know, or not a command at all. Applying anything after it
// would make this instance's state diverge from the others', so the instance
// applies nothing more and fails; only a build that reads the entry can go
// past it.
type RefusalError struct {
	Index    uint64 // the log entry's index; 0 for a snapshot
	Snapshot bool   // a snapshot was refused, not a log entry
	Kind     string
	Format   int
	Knows    int   // the highest format this build reads
	Err      error // ErrNewerFormat, ErrUnknownKind or ErrMalformedCommand
}

func (e *RefusalError) Error() string {
	what := fmt.Sprintf("log entry %d (kind %q, format %d)", e.Index, e.Kind, e.Format)
	if e.Snapshot {
		what = fmt.Sprintf("snapshot (format %d)", e.Format)
	}
	return fmt.Sprintf("refused replicated %s: %v; this build knows formats ≤ %d; upgrade this instance", what, e.Err, e.Knows)
}

func (e *RefusalError) Unwrap() error { return e.Err }

// reportedFormat is the format an instance's status says it reads. Builds
// older than the field read format 1 only.
func reportedFormat(s InstanceStatus) int {
	if s.Format < 1 {
		return 1
	}
	return s.Format
}
