package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"time"

	"github.com/ftagent/ftagent/test/faultfs"
)

// Fault kinds.
const (
	KillActive    = "kill-active"  // kill -9 of the active, restarted after a while
	KillStandby   = "kill-standby" // kill -9 of a standby, restarted after a while
	PauseActive   = "pause-active" // SIGSTOP of the active until another holds the lease, then SIGCONT
	StopImmediate = "ftstop-i"     // ftstop -i: hand over at once, transfers left at their checkpoint
	StopNormal    = "ftstop"       // normal ftstop: the active drains its transfers and hands over
	Partition     = "partition"    // the active's link down until another holds the lease, then up
	KillThenStart = "kill-restart" // kill -9 of the active and an immediate restart

	// Storage faults, on the destination tree (out/, a faultfs mount),
	// held for 0.5–2.5 s and then cleared; the agent stays healthy, its
	// transfers go to recovering and resume.
	StorageEIO    = "storage-eio"    // EIO on write, fsync (losing the unsynced bytes), close or rename
	StorageENOSPC = "storage-enospc" // ENOSPC on write
)

// ProcessKinds are the faults of instances and their network.
var ProcessKinds = []string{KillActive, KillStandby, PauseActive, StopImmediate, StopNormal, Partition, KillThenStart}

// StorageKinds are the faults of the destination storage; they need
// Schedule.Storage.
var StorageKinds = []string{StorageEIO, StorageENOSPC}

// FaultKinds lists every kind of fault.
var FaultKinds = append(append([]string{}, ProcessKinds...), StorageKinds...)

// NewLease reports whether a fault of kind moves the lease to a new epoch.
func NewLease(kind string) bool {
	switch kind {
	case KillStandby, StorageEIO, StorageENOSPC:
		return false
	}
	return true
}

// Event is one fault as it happened.
type Event struct {
	N        int
	Kind     string
	Target   string
	Epoch    uint64 // the lease epoch when the fault began
	NewEpoch uint64 // the lease epoch once the agent was healthy again
	At       time.Time
	Took     time.Duration // from the fault to a healthy agent again
	// Storage faults: the operation failed, and how many times the
	// fault fired while it was in force.
	Op    faultfs.Op
	Fired int
	// Note: what a stop reported that the schedule lets pass (ftstop
	// telling that the new active lost the lease again).
	Note string
}

func (e Event) String() string {
	if e.Op != "" {
		return fmt.Sprintf("#%d %s on %s, fired %d times (epoch %d → %d, healthy again after %v)", e.N, e.Kind, e.Op, e.Fired, e.Epoch, e.NewEpoch, e.Took.Round(time.Millisecond))
	}
	s := fmt.Sprintf("#%d %s %s (epoch %d → %d, healthy again after %v)", e.N, e.Kind, e.Target, e.Epoch, e.NewEpoch, e.Took.Round(time.Millisecond))
	if e.Note != "" {
		s += "; " + e.Note
	}
	return s
}

// Schedule draws faults from a seed.
type Schedule struct {
	rng *rand.Rand
	a   *Agent
	// Kinds are the faults drawn from (default FaultKinds).
	Kinds []string
	// ElectionWait bounds how long a new active may take to appear.
	ElectionWait time.Duration
	// Storage is the fault mount on the destination tree, for the
	// storage kinds.
	Storage *faultfs.FS
	Logf    func(format string, args ...any)
}

// NewSchedule draws from seed.
func NewSchedule(a *Agent, seed uint64) *Schedule {
	return &Schedule{rng: rand.New(rand.NewPCG(seed, 0xfa17)), a: a, Kinds: FaultKinds, ElectionWait: 20 * time.Second, Logf: func(string, ...any) {}}
}

func (s *Schedule) hold(min, spread time.Duration) {
	time.Sleep(min + time.Duration(s.rng.Int64N(int64(spread))))
}

// Next injects one fault and brings the agent back to health (every
// instance running and answering, one active). It fails if the agent does
// not recover.
func (s *Schedule) Next(n int) (Event, error) {
	a := s.a
	active, epoch, err := a.WaitHealthy(60 * time.Second)
	if err != nil {
		return Event{}, err
	}
	kind := s.Kinds[s.rng.IntN(len(s.Kinds))]
	ev := Event{N: n, Kind: kind, Target: active, Epoch: epoch, At: time.Now()}
	// Let the workload be in full flight before each fault.
	s.hold(300*time.Millisecond, 1200*time.Millisecond)
	if kind == KillStandby {
		var standbys []string
		for _, name := range a.Names {
			if name != active {
				standbys = append(standbys, name)
			}
		}
		ev.Target = standbys[s.rng.IntN(len(standbys))]
	}
	ev.At = time.Now()
	if kind == StorageEIO || kind == StorageENOSPC {
		if s.Storage == nil {
			return ev, fmt.Errorf("%s drawn, but the schedule has no storage fault mount", kind)
		}
		f := faultfs.Fault{Op: faultfs.Write, Pattern: "*.part", Errno: syscall.ENOSPC}
		if kind == StorageEIO {
			f.Errno = syscall.EIO
			switch ops := []faultfs.Op{faultfs.Write, faultfs.Fsync, faultfs.Flush, faultfs.Rename}; ops[s.rng.IntN(len(ops))] {
			case faultfs.Fsync:
				f.Op, f.LoseData = faultfs.Fsync, true
			case faultfs.Flush:
				f.Op = faultfs.Flush
			case faultfs.Rename:
				f.Op, f.Pattern = faultfs.Rename, "" // renames into place
			}
		}
		ev.Op = f.Op
		s.Logf("fault #%d: %s on %s", n, kind, f.Op)
		in := s.Storage.Inject(f)
		s.hold(500*time.Millisecond, 2*time.Second)
		s.Storage.Remove(in)
		ev.Fired = in.Fired()
		_, ev.NewEpoch, err = a.WaitHealthy(60 * time.Second)
		ev.Took = time.Since(ev.At)
		return ev, err
	}
	s.Logf("fault #%d: %s of %s at epoch %d", n, kind, ev.Target, epoch)
	switch kind {
	case KillActive, KillThenStart:
		if err := a.Kill(active); err != nil {
			return ev, err
		}
		if kind == KillActive {
			if _, _, err := a.WaitNewActive(active, epoch, s.ElectionWait); err != nil {
				return ev, err
			}
			s.hold(0, 1500*time.Millisecond)
		}
		if err := a.Start(active); err != nil {
			return ev, err
		}
	case KillStandby:
		if err := a.Kill(ev.Target); err != nil {
			return ev, err
		}
		s.hold(500*time.Millisecond, 2*time.Second)
		if err := a.Start(ev.Target); err != nil {
			return ev, err
		}
	case PauseActive:
		if err := a.Pause(active); err != nil {
			return ev, err
		}
		_, _, werr := a.WaitNewActive(active, epoch, s.ElectionWait)
		// Resume while the new active works, so that the old one wakes up
		// believing it leads, in the middle of whatever it was doing.
		s.hold(0, 1500*time.Millisecond)
		if err := a.Resume(active); err != nil {
			return ev, err
		}
		if werr != nil {
			return ev, werr
		}
	case StopImmediate, StopNormal:
		args := []string{}
		if kind == StopImmediate {
			args = append(args, "-i")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		r, err := a.Ftstop(ctx, args...)
		cancel()
		if err != nil {
			return ev, err
		}
		switch {
		case r.Exit != 0 && strings.Contains(r.Stderr, "took the lease") && strings.Contains(r.Stderr, "but lost it"):
			// The stop was done and handed over, and ftstop said truly
			// that the new active did not keep the lease (another fault's
			// instance was still coming back, say): the agent must
			// recover by itself, which WaitHealthy below checks.
			ev.Note = strings.TrimSpace(r.Stderr)
		case r.Exit != 0:
			return ev, fmt.Errorf("ftstop %v: exit %d: %s", args, r.Exit, r.Stderr)
		}
		if err := a.Exited(active, 30*time.Second); err != nil {
			return ev, err
		}
		s.hold(200*time.Millisecond, 1500*time.Millisecond)
		if err := a.Start(active); err != nil {
			return ev, err
		}
	case Partition:
		if err := a.Bench.Cut(active); err != nil {
			return ev, err
		}
		_, _, werr := a.WaitNewActive(active, epoch, s.ElectionWait)
		s.hold(0, 2*time.Second)
		if err := a.Bench.Heal(active); err != nil {
			return ev, err
		}
		if werr != nil {
			return ev, werr
		}
	}
	_, ev.NewEpoch, err = a.WaitHealthy(60 * time.Second)
	ev.Took = time.Since(ev.At)
	return ev, err
}
