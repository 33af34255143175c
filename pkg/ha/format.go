package ha

import (
	"errors"
	"fmt"

	"github.com/ftagent/ftagent/pkg/replog"
)

// pkg/ha's own command kind, in the registry of pkg/replog with the kinds
// of the StateMachine's package.
func init() { replog.RegisterKind(KindLease, 1) }

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
	Err      error // ErrNewerFormat, replog.ErrUnknownKind or ErrMalformedCommand
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
