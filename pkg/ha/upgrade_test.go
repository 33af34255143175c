package ha

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// The kinds the tests of this package propose: test.write in the first
// format, test.v2 a kind that a newer build (one that reads format 2)
// introduced.
func init() {
	replog.RegisterKind("test.write", 1)
	replog.RegisterKind("test.v2", 2)
}

// syncBuffer is a log sink the test reads while nodes write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// errorLines are the error-level JSON log lines in buf.
func errorLines(buf *syncBuffer) []map[string]any {
	var out []map[string]any
	for _, l := range buf.lines() {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["level"] == "error" {
			out = append(out, m)
		}
	}
	return out
}

func TestEncodeStampsTheKindsFormat(t *testing.T) {
	for kind, want := range map[string]int{KindLease: 1, "test.write": 1, "test.v2": 2} {
		c, err := decodeCommand(mustEncode(t, kind, 3, nil))
		if err != nil || c.Format != want || c.Kind != kind || c.Epoch != 3 {
			t.Errorf("%s: decoded %+v, %v; want format %d", kind, c, err, want)
		}
	}
}

// An older build that meets an entry it cannot read refuses it loudly and
// applies nothing more: not that entry, not any later one.
func TestFSMRefusesUnreadableEntryAndAppliesNothingAfter(t *testing.T) {
	newer, _ := json.Marshal(Command{Format: FormatVersion + 1, Kind: "test.write", Epoch: 1})
	cases := []struct {
		name       string
		entry      []byte
		kind       string
		format     int
		wantErr    error
		wantReason string
	}{
		{"newer format", newer, "test.write", FormatVersion + 1, ErrNewerFormat, "newer than this build"},
		{"unknown kind", mustEncode(t, "no.such.kind", 1, nil), "no.such.kind", 1, replog.ErrUnknownKind, "unknown command kind"},
		{"not a command", []byte("not json"), "", 0, ErrMalformedCommand, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sm := &recordingSM{}
			var logs syncBuffer
			s := &state{app: sm, log: zerolog.New(&logs)}
			f := fsm{s}
			apply := func(index uint64, b []byte) any {
				return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b})
			}
			if res := apply(1, mustEncode(t, KindLease, 1, Lease{Epoch: 1, Holder: "ha1"})); res != nil {
				t.Fatalf("lease: %v", res)
			}
			if res := apply(2, mustEncode(t, "test.write", 1, nil)); res != nil {
				t.Fatalf("known command: %v", res)
			}
			select {
			case <-s.failedCh():
				t.Fatal("failed before any refusal")
			default:
			}
			before, err := s.snapshotBytes()
			if err != nil {
				t.Fatal(err)
			}

			res := apply(3, tc.entry)
			var ref *RefusalError
			if err, _ := res.(error); !errors.As(err, &ref) || !errors.Is(err, tc.wantErr) {
				t.Fatalf("entry 3: result %v, want a *RefusalError wrapping %v", res, tc.wantErr)
			}
			if ref.Index != 3 || ref.Kind != tc.kind || ref.Format != tc.format || ref.Knows != FormatVersion {
				t.Errorf("refusal %+v", ref)
			}
			msg := ref.Error()
			for _, want := range []string{"log entry 3", tc.wantReason, fmt.Sprintf("this build knows formats ≤ %d; upgrade this instance", FormatVersion)} {
				if !strings.Contains(msg, want) {
					t.Errorf("refusal %q does not say %q", msg, want)
				}
			}
			select {
			case <-s.failedCh():
			default:
				t.Fatal("refusal not signalled")
			}

			// Later entries, even ones this build knows, are not applied.
			for i, b := range [][]byte{
				mustEncode(t, KindLease, 2, Lease{Epoch: 2, Holder: "ha2"}),
				mustEncode(t, "test.write", 2, nil),
			} {
				if res := apply(uint64(4+i), b); res != error(ref) {
					t.Errorf("entry %d after the refusal: result %v, want the refusal again", 4+i, res)
				}
			}
			if l := s.currentLease(); l.Epoch != 1 || l.Holder != "ha1" {
				t.Errorf("lease changed after the refusal: %+v", l)
			}
			if len(sm.applied) != 1 {
				t.Errorf("state machine applied %v, want only the entry before the refusal", sm.applied)
			}
			// Raft must not record the refused entries as applied in a
			// snapshot, nor replace the state with one.
			if _, err := s.snapshotBytes(); err == nil {
				t.Error("snapshot taken after a refusal")
			}
			if err := s.restoreBytes(before); err == nil {
				t.Error("snapshot restored after a refusal")
			}

			lines := errorLines(&logs)
			if len(lines) != 1 {
				t.Fatalf("%d error lines, want exactly one: %v", len(lines), logs.lines())
			}
			l := lines[0]
			if l["index"] != float64(3) || l["kind"] != tc.kind || l["format"] != float64(tc.format) ||
				l["status"] != StatusFailed || !strings.Contains(l["message"].(string), "upgrade this instance") {
				t.Errorf("error line %v", l)
			}
		})
	}
}

// A newer build reads an older one's entries and snapshots; a snapshot stays
// in the older format until a command of the newer format is applied, and an
// older build refuses the snapshot then.
func TestSnapshotFormatFollowsTheCommandsApplied(t *testing.T) {
	oldSM, newSM := &recordingSM{}, &recordingSM{}
	old := &state{app: oldSM, reads: 1}
	newer := &state{app: newSM, reads: 2}
	for i, b := range [][]byte{
		mustEncode(t, KindLease, 1, Lease{Epoch: 1, Holder: "ha1"}),
		mustEncode(t, "test.write", 1, nil),
	} {
		if res := old.apply(uint64(i+1), b); res != nil {
			t.Fatalf("old build, entry %d: %v", i+1, res)
		}
	}
	oldSnap, err := old.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := newer.restoreBytes(oldSnap); err != nil {
		t.Fatalf("newer build restoring an older snapshot: %v", err)
	}
	if newer.currentLease() != old.currentLease() || !slices.Equal(newSM.applied, []string{"test.write"}) {
		t.Fatalf("restored lease %+v and %v", newer.currentLease(), newSM.applied)
	}
	if res := newer.apply(3, mustEncode(t, "test.write", 1, nil)); res != nil {
		t.Fatalf("newer build, format-1 entry: %v", res)
	}
	snap1, _ := newer.snapshotBytes()
	if err := (&state{app: &recordingSM{}, reads: 1}).restoreBytes(snap1); err != nil {
		t.Fatalf("older build cannot restore a snapshot no newer command touched: %v", err)
	}

	if res := newer.apply(4, mustEncode(t, "test.v2", 1, nil)); res != nil {
		t.Fatalf("newer build, format-2 entry: %v", res)
	}
	snap2, _ := newer.snapshotBytes()
	var d snapshotData
	if err := json.Unmarshal(snap2, &d); err != nil || d.Format != 2 {
		t.Fatalf("snapshot after a format-2 command has format %d (%v), want 2", d.Format, err)
	}
	again := &state{app: &recordingSM{}, reads: 1}
	err = again.restoreBytes(snap2)
	var ref *RefusalError
	if !errors.As(err, &ref) || !ref.Snapshot || ref.Format != 2 || ref.Knows != 1 || !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("older build restoring a format-2 snapshot: %v", err)
	}
	select {
	case <-again.failedCh():
	default:
		t.Fatal("snapshot refusal not signalled")
	}
}

// kindsSM records the kinds it applied, with their log indexes.
type kindsSM struct {
	mu      sync.Mutex
	applied []string
}

func (s *kindsSM) Apply(kind string, epoch uint64, data []byte, index uint64) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = append(s.applied, fmt.Sprintf("%s@%d", kind, index))
	return nil
}
func (s *kindsSM) Snapshot() (replog.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return jsonSnapshot{slices.Clone(s.applied)}, nil
}
func (s *kindsSM) Restore(dec *json.Decoder) (func(), error) {
	var applied []string
	if err := dec.Decode(&applied); err != nil {
		return nil, err
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.applied = applied
	}, nil
}
func (s *kindsSM) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}

// A rolling upgrade in one process: ha1 and ha2 run a build that reads
// format 2, ha3 an older one. The active does not propose test.v2 until ha3
// reports format 2; an entry of format 2 that reaches ha3 anyway (proposed
// past the gate) makes it refuse and fail, again after a restart, until it
// runs the newer build, which applies the entry and all that follow.
func TestRollingUpgradeGateAndRefusal(t *testing.T) {
	c := newTestCluster(t, []string{"ha1", "ha2", "ha3"})
	reads := map[string]int{"ha1": 2, "ha2": 2, "ha3": 1}
	sms := map[string]*kindsSM{}
	logs := map[string]*syncBuffer{}
	c.tuneCfg = func(cfg *Config) {
		name, r := cfg.Name, reads[cfg.Name]
		sm := &kindsSM{}
		c.mu.Lock()
		sms[name] = sm
		logs[name] = &syncBuffer{}
		cfg.Logger = zerolog.New(io.MultiWriter(logs[name], zerolog.NewTestWriter(t))).Level(zerolog.WarnLevel)
		c.mu.Unlock()
		cfg.StateMachine = sm
		cfg.BeforeStart = func(n *Node) { n.state.reads = r }
	}
	smOf := func(name string) *kindsSM {
		c.mu.Lock()
		defer c.mu.Unlock()
		return sms[name]
	}
	restart := func(name string) *Node {
		c.stop(name)
		c.heal(name)
		return c.start(name)
	}
	// Start the newer builds first so that one of them is the active.
	c.start("ha1")
	c.start("ha2")
	active := c.waitActive(10 * time.Second)
	c.start("ha3")
	a := c.node(active)
	epoch := a.Lease().Epoch
	if !waitFor(5*time.Second, func() bool {
		v, err := a.View()
		return err == nil && len(v.Standbys) == 2
	}) {
		t.Fatal("the active never heard from both standbys")
	}
	v, _ := a.View()
	for _, iv := range v.Instances {
		if want := reads[iv.Name]; iv.Format != want {
			t.Errorf("view shows %s reading format %d, want %d", iv.Name, iv.Format, want)
		}
	}

	// The gate: format 1 is agreed, format 2 is not (ha3 reads 1), and a
	// follower never claims agreement.
	err := a.formatAgreement(2)
	if !a.FormatAgreed(1) || a.FormatAgreed(2) || !errors.Is(err, ErrFormatNotAgreed) ||
		!strings.Contains(err.Error(), "ha3 (reads formats ≤ 1)") || strings.Contains(err.Error(), "ha1") || strings.Contains(err.Error(), "ha2") {
		t.Fatalf("agreement: format 1 %v, format 2 %v", a.FormatAgreed(1), err)
	}
	for _, n := range []string{"ha1", "ha2", "ha3"} {
		if n != active && c.node(n).FormatAgreed(2) {
			t.Errorf("follower %s says format 2 is agreed", n)
		}
	}
	last := a.r().LastIndex()
	if _, err := a.Apply("test.v2", epoch, nil, time.Second); !errors.Is(err, ErrFormatNotAgreed) {
		t.Fatalf("test.v2 before every instance reads format 2: %v, want ErrFormatNotAgreed", err)
	}
	if _, err := a.Apply("no.such.kind", epoch, nil, time.Second); !errors.Is(err, replog.ErrUnknownKind) {
		t.Fatalf("unregistered kind: %v, want replog.ErrUnknownKind", err)
	}
	if got := a.r().LastIndex(); got != last {
		t.Fatalf("refused proposals reached the log: last index %d, was %d", got, last)
	}
	if _, err := a.Apply("test.write", epoch, nil, time.Second); err != nil {
		t.Fatalf("format-1 kind: %v", err)
	}

	// Past the gate (as a build without it would): a format-2 entry, then a
	// format-1 one. ha1 and ha2 apply both; ha3 refuses the first and applies
	// neither.
	b := mustEncode(t, "test.v2", epoch, nil)
	f := a.r().Apply(b, time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	refusedAt := f.Index()
	if _, err := a.Apply("test.write", epoch, nil, time.Second); err != nil {
		t.Fatal(err)
	}
	after := a.r().LastIndex()
	want := smOf(active).list()
	if !slices.Contains(want, fmt.Sprintf("test.v2@%d", refusedAt)) || !slices.Contains(want, fmt.Sprintf("test.write@%d", after)) {
		t.Fatalf("the active applied %v", want)
	}
	checkRefused := func(n *Node) {
		t.Helper()
		select {
		case <-n.Failed():
		case <-time.After(5 * time.Second):
			t.Fatal("ha3 did not refuse the format-2 entry")
		}
		var ref *RefusalError
		if err := n.Refusal(); !errors.As(err, &ref) || ref.Index != refusedAt || ref.Kind != "test.v2" || ref.Format != 2 || ref.Knows != 1 {
			t.Fatalf("ha3's refusal: %v", err)
		}
		if st := n.Status(); st.Status != StatusFailed || st.CanTakeOver || st.Format != 1 {
			t.Errorf("ha3's status %+v", st)
		}
		// Wait for the entry after it to reach ha3's log: still not applied.
		if !waitFor(5*time.Second, func() bool { return n.r().LastIndex() >= after }) {
			t.Fatalf("ha3 never received entry %d", after)
		}
		for _, k := range smOf("ha3").list() {
			var idx uint64
			fmt.Sscanf(k[strings.IndexByte(k, '@')+1:], "%d", &idx)
			if idx >= refusedAt {
				t.Errorf("ha3 applied %s at or after the refused entry %d", k, refusedAt)
			}
		}
		c.mu.Lock()
		lines := errorLines(logs["ha3"])
		c.mu.Unlock()
		var refusals int
		for _, l := range lines {
			if msg, _ := l["message"].(string); strings.Contains(msg, "upgrade this instance") {
				refusals++
				if l["index"] != float64(refusedAt) || l["kind"] != "test.v2" || l["format"] != float64(2) {
					t.Errorf("refusal line %v", l)
				}
			}
		}
		if refusals != 1 {
			t.Errorf("%d refusal lines in ha3's log, want 1: %v", refusals, lines)
		}
	}
	checkRefused(c.node("ha3"))
	// The active shows ha3 as failed, not as a standby ready to take over.
	if !waitFor(5*time.Second, func() bool {
		v, err := a.View()
		return err == nil && instanceIn(v, "ha3").Status == StatusFailed && !slices.Contains(v.Standbys, "ha3")
	}) {
		v, _ := a.View()
		t.Fatalf("the active's view of ha3: %+v", instanceIn(v, "ha3"))
	}
	if a.FormatAgreed(2) {
		t.Fatal("format 2 agreed while ha3 is failed")
	}

	// Restarted on the same build (as a supervisor would): it refuses again
	// at the same entry.
	checkRefused(restart("ha3"))

	// Upgraded: it applies the entry it refused and everything after, and
	// once it has reported its format, the active may propose test.v2.
	reads["ha3"] = 2
	n3 := restart("ha3")
	if !waitFor(5*time.Second, func() bool { return slices.Equal(smOf("ha3").list(), want) }) {
		t.Fatalf("upgraded ha3 applied %v, want %v", smOf("ha3").list(), want)
	}
	select {
	case <-n3.Failed():
		t.Fatalf("upgraded ha3 failed: %v", n3.Refusal())
	default:
	}
	if !waitFor(5*time.Second, func() bool { return a.FormatAgreed(2) }) {
		t.Fatalf("format 2 never agreed: %v", a.formatAgreement(2))
	}
	if _, err := a.Apply("test.v2", epoch, nil, time.Second); err != nil {
		t.Fatalf("test.v2 once every instance reads format 2: %v", err)
	}
	idx := a.r().LastIndex()
	for _, n := range []string{"ha1", "ha2", "ha3"} {
		if !waitFor(5*time.Second, func() bool { return slices.Contains(smOf(n).list(), fmt.Sprintf("test.v2@%d", idx)) }) {
			t.Errorf("%s did not apply test.v2 at %d: %v", n, idx, smOf(n).list())
		}
	}

	// Format 2 is in the log now: an instance that stops (or is down when
	// a new active takes over, with no status yet) can only come back by
	// reading it, so it does not take format 2 away.
	c.stop("ha3")
	if !waitFor(5*time.Second, func() bool {
		v, err := a.View()
		return err == nil && !slices.Contains(v.Standbys, "ha3")
	}) {
		t.Fatal("the active still counts ha3 as a standby")
	}
	if err := a.formatAgreement(2); err != nil {
		t.Fatalf("format 2, already in the log, not agreed with ha3 down: %v", err)
	}
	if err := a.formatAgreement(3); err == nil {
		t.Fatal("format 3, in no entry, agreed with ha3 down")
	}
}

func instanceIn(v AgentView, name string) InstanceView {
	for _, iv := range v.Instances {
		if iv.Name == name {
			return iv
		}
	}
	return InstanceView{}
}
