package ha

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/replog"
)

// snapshotState is a state with a lease, a format above 1 and a state
// machine that applied kinds JSON escapes.
func snapshotState(t *testing.T) (*state, *recordingSM) {
	sm := &recordingSM{}
	s := &state{app: sm, reads: 2}
	since := time.Date(2026, 11, 24, 12, 0, 0, 0, time.FixedZone("", 3600))
	for i, b := range [][]byte{
		mustEncode(t, KindLease, 4, Lease{Epoch: 4, Holder: "ha<2>", Address: "h2:7101", Since: since}),
		mustEncode(t, "test.write", 4, nil),
		mustEncode(t, "test.v2", 4, nil),
	} {
		if res := s.apply(uint64(i+1), b); res != nil {
			t.Fatalf("entry %d: %v", i+1, res)
		}
	}
	sm.applied = append(sm.applied, "a & <b>", "\u2028é")
	return s, sm
}

// The streamed envelope is the bytes json.Marshal wrote of a snapshotData
// holding the state machine's JSON, without "app" when there is no state
// machine.
func TestSnapshotEnvelopeAsBefore(t *testing.T) {
	s, sm := snapshotState(t)
	app, err := json.Marshal(sm.applied)
	if err != nil {
		t.Fatal(err)
	}
	noApp := &state{lease: s.lease, format: 2}
	for _, tc := range []struct {
		s    *state
		want snapshotData
	}{
		{s, snapshotData{Format: 2, Lease: s.lease, App: app}},
		{noApp, snapshotData{Format: 2, Lease: s.lease}},
		{&state{}, snapshotData{Format: 1}},
	} {
		want, err := json.Marshal(tc.want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tc.s.snapshotBytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("snapshot\n%s\nwant\n%s", got, want)
		}
	}
}

// oldRestore is the restore of builds before the streamed one, kept as it
// was, to compare.
func (s *state) oldRestore(b []byte) error {
	var d snapshotData
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused != nil {
		return s.refused
	}
	if d.Format > s.knows() {
		return s.refuseLocked(&RefusalError{Snapshot: true, Format: d.Format, Knows: s.knows(), Err: ErrNewerFormat})
	}
	if s.app != nil {
		app := d.App
		if len(app) == 0 {
			app = json.RawMessage("null")
		}
		commit, err := s.app.Restore(json.NewDecoder(bytes.NewReader(app)))
		if err != nil {
			return fmt.Errorf("restore state machine: %w", err)
		}
		commit()
	}
	s.lease = d.Lease
	s.format = max(d.Format, 1)
	return nil
}

// The streamed restore accepts and refuses what json.Unmarshal of the whole
// snapshot did, and restores the same state: keys in any order and matched
// case aside, unknown ones skipped, a key given twice as json.Unmarshal
// takes it, null for the empty state, nothing after the envelope; and a
// snapshot refused leaves the lease, the format and the state machine's
// state as they were.
func TestRestoreReadsAsBefore(t *testing.T) {
	written, _ := snapshotState(t)
	snap, err := written.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		string(snap),
		`null`,
		`{}`,
		`{"v":1}`,
		`{"app":["x"],"x":{"app":[1,{"v":9}]},"LEASE":{"epoch":3,"holder":"h"},"V":2}`,
		`{"v":1,"lease":{"epoch":3,"holder":"h"},"lease":{"address":"a:1"}}`,
		`{"v":1,"app":["x"],"app":["y"]}`,
		`{"v":1,"app":null}`,
		`{"v":null,"lease":null}`,
		` {"v":1} ` + "\n",
		`{"v":1,"app":{"not":"a list"}}`,
		`{"v":1,"app":["x"],"lease":"not a lease"}`,
		`{"v":1,"app":["x"],"lease":{"epoch":-1}}`,
		`{"v":1.5}`,
		`{"v":1,"app":["x"]`,
		`{"v":1,"app":["x"],}`,
		`{"v":1,"x":[}`,
		`{"v":1}{}`,
		`{"v":1} x`,
		`{"v":1}]`,
		`[]`,
		`"v"`,
		``,
	} {
		old, _ := snapshotState(t)
		streamed, _ := snapshotState(t)
		errOld, errStreamed := old.oldRestore([]byte(in)), streamed.restoreBytes([]byte(in))
		if (errOld != nil) != (errStreamed != nil) {
			t.Errorf("%s: restore %v, before %v", in, errStreamed, errOld)
			continue
		}
		a, _ := old.snapshotBytes()
		b, _ := streamed.snapshotBytes()
		if !bytes.Equal(a, b) {
			t.Errorf("%s: restored\n%s\nbefore\n%s", in, b, a)
		}
		if errStreamed != nil && !bytes.Equal(b, snap) {
			t.Errorf("%s: refused (%v), the state changed:\n%s", in, errStreamed, b)
		}
	}
}

// A snapshot of a newer format is refused, whatever follows its format, and
// wherever the format comes; the instance fails and its state is as it was.
func TestRestoreRefusesNewerFormat(t *testing.T) {
	for _, in := range []string{
		`{"v":3,"lease":{"epoch":9},"app":["x"]}`,
		`{"v":3,"app":{"a format":"this build cannot read"}}`, // refused before the app reads it
		`{"v":3,"lease":`,
		`{"app":["x"],"lease":{"epoch":9},"v":3}`, // read, then refused
	} {
		s, sm := snapshotState(t)
		before, _ := s.snapshotBytes()
		lease, applied := s.currentLease(), slices.Clone(sm.applied)
		err := s.restoreBytes([]byte(in))
		var ref *RefusalError
		if !errors.As(err, &ref) || !ref.Snapshot || ref.Format != 3 || ref.Knows != 2 || !errors.Is(err, ErrNewerFormat) {
			t.Errorf("%s: %v, want a refusal of format 3", in, err)
			continue
		}
		if s.currentLease() != lease || s.applied() != 2 || !slices.Equal(sm.applied, applied) {
			t.Errorf("%s: refused, the state changed: %+v %d %v", in, s.currentLease(), s.applied(), sm.applied)
		}
		select {
		case <-s.failedCh():
		default:
			t.Errorf("%s: refusal not signalled", in)
		}
		if err := s.restoreBytes(before); !errors.Is(err, ref) {
			t.Errorf("%s: a restore after the refusal: %v", in, err)
		}
	}
}

// failingSM's snapshot fails to write after some bytes.
type failingSM struct {
	recordingSM
	released bool
}

func (f *failingSM) Snapshot() (replog.Snapshot, error) { return f, nil }
func (f *failingSM) WriteJSON(w io.Writer) error {
	if _, err := io.WriteString(w, `["half`); err != nil {
		return err
	}
	return errors.New("disk full")
}
func (f *failingSM) Release() { f.released = true }

// A snapshot that fails to be written cancels raft's sink, and is released.
func TestPersistCancelsOnError(t *testing.T) {
	sm := &failingSM{}
	s := &state{app: sm}
	snap, err := fsm{s}.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &sink{Writer: io.Discard}
	if err := snap.Persist(sink); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("persist: %v", err)
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink cancelled %v, closed %v", sink.cancelled, sink.closed)
	}
	snap.Release()
	if !sm.released {
		t.Fatal("state machine's snapshot not released")
	}
}
