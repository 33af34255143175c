package ha_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// The fuzz targets of what pkg/ha decodes: raft log entries (the command
// envelope, the dispatch by kind and format, the lease, and the transfer
// kinds behind it: FuzzFSMApply), snapshots (FuzzFSMRestore), and the
// messages instances send one another (FuzzPeerMessages).

var fuzzT0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func fuzzEntry(tb testing.TB, kind string, epoch uint64, data any) []byte {
	tb.Helper()
	b, err := ha.EncodeCommand(kind, epoch, data)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// fuzzBaseEntries hold a lease at epoch 2 and a running transfer "t" of
// two files, one of them named by bytes that are not UTF-8.
func fuzzBaseEntries(tb testing.TB) [][]byte {
	tr := transfer.Transfer{ID: "t", Created: fuzzT0, Request: transfer.Request{Sources: []string{"in/t"}, Destination: "out/"},
		Files: []transfer.File{{Source: "/r/in/t/a", Destination: "/r/out/a", Bytes: 3}, {Source: "/r/in/t/b\xff", Destination: "/r/out/b\xff", Bytes: 4}}}
	return [][]byte{
		fuzzEntry(tb, ha.KindLease, 1, ha.Lease{Epoch: 2, Holder: "ha1", Address: "h1:7101", Since: fuzzT0}),
		fuzzEntry(tb, transfer.KindCreateV3, 2, mustCompactV3(tb, replicated.CreateCmd{Transfer: tr, HistoryCount: -1})),
		fuzzEntry(tb, transfer.KindStart, 2, replicated.StartCmd{ID: "t", Time: fuzzT0}),
	}
}

var (
	baseOnce    sync.Once
	baseEncoded [][]byte
)

// baseEntries are fuzzBaseEntries, encoded once.
func baseEntries(tb testing.TB) [][]byte {
	baseOnce.Do(func() { baseEncoded = fuzzBaseEntries(tb) })
	return baseEncoded
}

func mustCompactV3(tb testing.TB, c replicated.CreateCmd) any {
	v, ok := replicated.CompactCreateV3(c)
	if !ok {
		tb.Fatal("CompactCreateV3 refused the seed")
	}
	return v
}

// fuzzBuild returns this build's replicated state, over the transfers'
// state, with the base entries applied.
func fuzzBuild(tb testing.TB) *ha.Build {
	b := ha.NewBuild(0, replicated.NewState(), zerolog.Nop())
	for i, e := range baseEntries(tb) {
		if r := b.Apply(uint64(i+1), e); r != nil {
			if _, ok := r.(*transfer.Transfer); !ok {
				tb.Fatalf("base entry %d: %v", i, r)
			}
		}
	}
	return b
}

const fuzzIndex = 10

func result(r any) string {
	switch v := r.(type) {
	case nil:
		return "nil"
	case error:
		return fmt.Sprintf("error %T: %v", v, v)
	default:
		b, err := json.Marshal(v)
		return fmt.Sprintf("%T %s %v", v, b, err)
	}
}

func snapshotOf(tb testing.TB, b *ha.Build) []byte {
	tb.Helper()
	s, err := b.Snapshot()
	if err != nil {
		tb.Fatalf("snapshot: %v", err)
	}
	return s
}

// withoutFormat is a snapshot without its format: what the entries have
// changed of the lease and the transfers.
func withoutFormat(tb testing.TB, snap []byte) string {
	tb.Helper()
	var d map[string]json.RawMessage
	if err := json.Unmarshal(snap, &d); err != nil {
		tb.Fatalf("snapshot %s: %v", snap, err)
	}
	delete(d, "v")
	b, _ := json.Marshal(d)
	return string(b)
}

func isFailed(b *ha.Build) bool {
	select {
	case <-b.Failed():
		return true
	default:
		return false
	}
}

// FuzzFSMApply applies an arbitrary raft log entry after a lease and a
// transfer, and checks that
//   - the FSM does not panic, and is deterministic: two fresh states give the
//     same result and the same snapshot;
//   - an entry it cannot apply (not an envelope, an unknown kind, a newer
//     format) is refused: the instance fails, takes no snapshot and applies
//     nothing after it;
//   - an entry refused with an error changes neither the lease nor the
//     transfers (a create refused for a full queue excepted: it prunes the
//     history first, as it always did);
//   - a snapshot of the state restores to the same snapshot;
//   - the envelope, decoded and encoded again, applies alike.
func FuzzFSMApply(f *testing.F) {
	cp := transfer.FileEvent{Index: 0, Kind: replicated.EventStart}
	tr := transfer.Transfer{ID: "n", Created: fuzzT0, Request: transfer.Request{Sources: []string{"in/n"}, Destination: "out/"},
		Files: []transfer.File{{Source: "/r/in/n/x", Destination: "/r/out/x", Bytes: 1}}}
	compact2, _ := replicated.CompactCreate(replicated.CreateCmd{Transfer: tr})
	files2, _ := replicated.CompactFiles(replicated.FilesCmd{ID: "t", Events: []transfer.FileEvent{{Index: 1, Kind: replicated.EventStart}}})
	for _, e := range [][]byte{
		fuzzEntry(f, ha.KindLease, 2, ha.Lease{Epoch: 3, Holder: "ha2", Address: "h2:7101", Since: fuzzT0}),
		fuzzEntry(f, ha.KindLease, 2, ha.Lease{Epoch: 2, Holder: "ha2"}),
		fuzzEntry(f, transfer.KindCreate, 2, replicated.CreateCmd{Transfer: tr, MaxQueued: 1}),
		fuzzEntry(f, transfer.KindCreate, 2, replicated.CreateCmd{Transfer: tr, MaxQueued: 5}),
		fuzzEntry(f, transfer.KindCreateV2, 2, compact2),
		fuzzEntry(f, transfer.KindStart, 1, replicated.StartCmd{ID: "t"}),
		fuzzEntry(f, transfer.KindFiles, 2, replicated.FilesCmd{ID: "t", Time: fuzzT0, Events: []transfer.FileEvent{cp, {Index: 0, Kind: replicated.EventDone, SHA256: "ab"}}}),
		fuzzEntry(f, transfer.KindFilesV2, 2, files2),
		fuzzEntry(f, transfer.KindRecovering, 2, replicated.ReasonCmd{ID: "t", Time: fuzzT0, Reason: "r"}),
		fuzzEntry(f, transfer.KindFail, 3, replicated.ReasonCmd{ID: "t", Time: fuzzT0, Reason: "r"}),
		fuzzEntry(f, transfer.KindCancel, 2, replicated.ReasonCmd{ID: "t", Time: fuzzT0, Reason: "r"}),
		fuzzEntry(f, replicated.KindPrune, 2, replicated.PruneCmd{Time: fuzzT0, IDs: []string{"t"}}),
		[]byte(`{"v":6,"kind":"transfer.create.v9","epoch":2,"data":{}}`),
		[]byte(`{"v":1,"kind":"ha.unknown","epoch":2}`),
		[]byte(`{"v":0,"kind":"ha.lease"}`),
		[]byte(`{"v":1,"kind":"ha.lease","epoch":2,"data":null}`),
		[]byte(`not json`),
	} {
		f.Add(e)
	}
	before := withoutFormat(f, snapshotOf(f, fuzzBuild(f)))
	f.Fuzz(func(t *testing.T, entry []byte) {
		b1, b2 := fuzzBuild(t), fuzzBuild(t)
		r1, r2 := b1.Apply(fuzzIndex, entry), b2.Apply(fuzzIndex, entry)
		if a, b := result(r1), result(r2); a != b {
			t.Fatalf("Apply is not deterministic: %s, then %s", a, b)
		}
		var refusal *ha.RefusalError
		if errors.As(asError(r1), &refusal) {
			if !isFailed(b1) {
				t.Fatalf("entry refused (%v), the instance does not fail", refusal)
			}
			if _, err := b1.Snapshot(); err == nil {
				t.Fatalf("entry refused (%v), a snapshot is taken", refusal)
			}
			if r := b1.Apply(fuzzIndex+1, fuzzEntry(t, transfer.KindStart, 2, replicated.StartCmd{ID: "t"})); !errors.As(asError(r), &refusal) {
				t.Fatalf("entry refused, the next is applied: %v", r)
			}
			return
		}
		if isFailed(b1) {
			t.Fatalf("the instance failed, Apply returned %v", r1)
		}
		snap := snapshotOf(t, b1)
		if s := snapshotOf(t, b2); !bytes.Equal(snap, s) {
			t.Fatalf("Apply is not deterministic:\n%s\n%s", snap, s)
		}
		if err := asError(r1); err != nil && !errors.Is(err, replicated.ErrQueueFull) {
			if after := withoutFormat(t, snap); after != before {
				t.Fatalf("entry refused (%v) changed the state:\n%s\n%s", err, before, after)
			}
		}
		r := ha.NewBuild(0, replicated.NewState(), zerolog.Nop())
		if err := r.Restore(snap); err != nil {
			t.Fatalf("restore of a snapshot: %v\n%s", err, snap)
		}
		if s := snapshotOf(t, r); !bytes.Equal(snap, s) {
			t.Fatalf("snapshot restored differs:\n%s\n%s", snap, s)
		}
		var c ha.Command
		if err := json.Unmarshal(entry, &c); err != nil {
			t.Fatalf("entry applied (%v) is not an envelope: %v", r1, err)
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		b3 := fuzzBuild(t)
		// Errors may be worded apart: json.Marshal writes "<", ">" and "&"
		// as \u escapes, which time.Time's UnmarshalJSON does not read as
		// the characters (a time that holds them is refused either way).
		r3 := b3.Apply(fuzzIndex, again)
		if e1, e3 := asError(r1), asError(r3); (e1 != nil) != (e3 != nil) || e1 == nil && result(r3) != result(r1) {
			t.Fatalf("entry re-encoded as %s: %s, not %s", again, result(r3), result(r1))
		}
		if s := snapshotOf(t, b3); !bytes.Equal(snap, s) {
			t.Fatalf("entry re-encoded as %s gives another state:\n%s\n%s", again, snap, s)
		}
	})
}

func asError(r any) error {
	err, _ := r.(error)
	return err
}

// FuzzFSMRestore restores arbitrary snapshots: no panic; a snapshot of a
// newer format is refused and the instance fails; another refused leaves
// the state as it was; one accepted gives a state whose snapshot restores
// to itself; and restoring is deterministic.
func FuzzFSMRestore(f *testing.F) {
	f.Add(snapshotOf(f, fuzzBuild(f)))
	f.Add(snapshotOf(f, ha.NewBuild(0, replicated.NewState(), zerolog.Nop())))
	f.Add([]byte(`{"v":99,"lease":{"epoch":1}}`))
	f.Add([]byte(`{"v":1,"lease":{"epoch":7,"holder":"x","since":"2026-01-01T00:00:00+01:00"},"app":null}`))
	f.Add([]byte(`{"v":1,"app":{"transfers":[null]}}`))
	f.Add([]byte(`{"v":1,"app":"x"}`))
	f.Add([]byte(`{"app":{"transfers":[]},"lease":{"epoch":3},"v":99}`))
	f.Add([]byte(`{"x":[1,{"v":9}],"V":1,"app":{"transfers":[]},"LEASE":{"epoch":3}} `))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := fuzzBuild(t)
		before := snapshotOf(t, b)
		err := b.Restore(data)
		var refusal *ha.RefusalError
		if errors.As(err, &refusal) {
			if !isFailed(b) || !refusal.Snapshot {
				t.Fatalf("snapshot refused (%v), failed %v", err, isFailed(b))
			}
			return
		}
		if err != nil {
			if after := snapshotOf(t, b); !bytes.Equal(before, after) {
				t.Fatalf("snapshot refused (%v) changed the state:\n%s\n%s", err, before, after)
			}
			return
		}
		snap := snapshotOf(t, b)
		b2 := ha.NewBuild(0, replicated.NewState(), zerolog.Nop())
		if err := b2.Restore(data); err != nil {
			t.Fatalf("second restore: %v", err)
		}
		if s := snapshotOf(t, b2); !bytes.Equal(snap, s) {
			t.Fatalf("restore is not deterministic:\n%s\n%s", snap, s)
		}
		b3 := ha.NewBuild(0, replicated.NewState(), zerolog.Nop())
		if err := b3.Restore(snap); err != nil {
			t.Fatalf("restore of a snapshot: %v\n%s", err, snap)
		}
		if s := snapshotOf(t, b3); !bytes.Equal(snap, s) {
			t.Fatalf("snapshot restored differs:\n%s\n%s", snap, s)
		}
	})
}

// FuzzPeerMessages decodes arbitrary bodies as the messages instances send
// one another (a standby's status, a join request, and the answers: a
// membership, a join result, the agent's view), as the API and the peers'
// client read them: each accepted encodes to JSON that decodes to the same
// value.
func FuzzPeerMessages(f *testing.F) {
	for _, v := range []any{
		ha.InstanceStatus{Agent: "ORDERS", Name: "ha2", Address: "h2:7101", Version: "1.0", Role: "standby", Status: "ready",
			StartTime: fuzzT0, LastApplied: 42, CanTakeOver: true, Leader: "ha1", LeaderAddress: "h1:7101", Epoch: 3, LeaseHolder: "ha1", RaftState: "Follower", Format: ha.FormatVersion},
		ha.JoinRequest{Agent: "ORDERS", Name: "ha4", Address: "h4:7101", Witness: true, LastApplied: 7, CatchUpIndex: 9},
		ha.JoinResult{Voter: true, CatchUpIndex: 3, Members: []ha.Member{{Name: "ha1", Address: "h1:7101", Voter: true}}, Message: "added"},
		ha.Membership{Agent: "ORDERS", Name: "ha1", Address: "h1:7101", Members: []ha.Member{{Name: "ha1", Address: "h1:7101", Voter: true}},
			Configured: []ha.Member{{Name: "ha3", Address: "h3:7101", Witness: true}}, Leader: "ha1", LeaderAddress: "h1:7101"},
		ha.AgentView{Agent: "ORDERS", Status: "ready", Active: "ha1", ActiveAddress: "h1:7101", Epoch: 3, Standbys: []string{"ha2"},
			Instances: []ha.InstanceView{{Name: "ha1", Address: "h1:7101", Role: "active"}}},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"startTime":"2026-01-01T00:00:00.123456789-07:30","name":"\xff\u00e9"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip[ha.InstanceStatus](t, data)
		roundTrip[ha.JoinRequest](t, data)
		roundTrip[ha.JoinResult](t, data)
		roundTrip[ha.Membership](t, data)
		roundTrip[ha.AgentView](t, data)
	})
}

// roundTrip decodes data as a T as the API does (json.Decoder); if that
// succeeds, T's encoding must decode to the same value.
func roundTrip[T any](t *testing.T, data []byte) {
	t.Helper()
	var v T
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&v); err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%T %+v decoded from %q does not encode: %v", v, v, data, err)
	}
	// Compared as encoded: a time read from "+00:00" is in time.Local on
	// a machine at UTC, the same instant written back as "Z" in time.UTC.
	var v2 T
	if err := json.Unmarshal(b, &v2); err != nil {
		t.Fatalf("%T %+v encodes to %s, which does not decode: %v", v, v, b, err)
	}
	if b2, err := json.Marshal(v2); err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("%T %+v encodes to %s, which decodes to %+v, encoded %s, %v", v, v, b, v2, b2, err)
	}
}
