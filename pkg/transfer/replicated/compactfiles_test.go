package replicated

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

func digestOf(i int) string {
	s := sha256.Sum256([]byte(fmt.Sprint(i)))
	return hex.EncodeToString(s[:])
}

// Every entry whose events are others, then plain starts, then plain
// completions is written compact and comes back the same; any other order,
// or nothing to gain, is not written compact.
func TestCompactFilesRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	others := []func(i int) FileEvent{
		func(i int) FileEvent { return FileEvent{Index: i, Kind: EventFailed, Reason: "disk on fire"} },
		func(i int) FileEvent { return FileEvent{Index: i, Kind: EventSourceDeleted} },
		func(i int) FileEvent {
			return FileEvent{Index: i, Kind: EventCheckpoint, Checkpoint: checkpoint.Checkpoint{Offset: 5, Hash: []byte{1, 2}, Epoch: 2, Source: checkpoint.Source{Size: 9, ModTime: 4}}}
		},
		func(i int) FileEvent { return FileEvent{Index: i, Kind: EventStart, Resent: 7} },
		func(i int) FileEvent { return FileEvent{Index: i, Kind: EventStart, Restart: true} },
		func(i int) FileEvent { return FileEvent{Index: i, Kind: EventDone, SHA256: "ABC"} }, // not a digest
	}
	at := time.Date(2026, 11, 24, 9, 0, 0, 123, time.UTC)
	for round := range 500 {
		var evs []FileEvent
		no, ns, nd := rng.IntN(4), rng.IntN(300), rng.IntN(300)
		for range no {
			evs = append(evs, others[rng.IntN(len(others))](rng.IntN(10000)))
		}
		for range ns {
			evs = append(evs, FileEvent{Index: rng.IntN(10000), Kind: EventStart})
		}
		for range nd {
			i := rng.IntN(10000)
			evs = append(evs, FileEvent{Index: i, Kind: EventDone, SHA256: digestOf(i)})
		}
		c := FilesCmd{ID: "t", Time: at, Events: evs}
		v, ok := CompactFiles(c)
		if ok != (ns+nd > 0) {
			t.Fatalf("round %d: %d others, %d starts, %d completions: compact %v", round, no, ns, nd, ok)
		}
		if !ok {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeFilesV2(b)
		if err != nil {
			t.Fatal(err)
		}
		if !back.Time.Equal(c.Time) || back.ID != c.ID || !reflect.DeepEqual(back.Events, c.Events) {
			t.Fatalf("round %d: came back as\n%+v\nwant\n%+v", round, back, c)
		}
	}
	for _, evs := range [][]FileEvent{
		{{Index: 1, Kind: EventStart}, {Index: 2, Kind: EventFailed, Reason: "x"}},                  // other after a start
		{{Index: 1, Kind: EventDone, SHA256: digestOf(1)}, {Index: 2, Kind: EventStart}},            // start after a completion
		{{Index: 1, Kind: EventDone, SHA256: digestOf(1)}, {Index: 1, Kind: EventSourceDeleted}},    // other after a completion
		{{Index: 1, Kind: EventFailed, Reason: "x"}, {Index: 2, Kind: EventSourceDeleted}},          // nothing to gain
		{{Index: 2, Kind: EventStart}, {Index: 1, Kind: EventDone, SHA256: digestOf(1)[:63] + "G"}}, // a start, then a digest that is not one
	} {
		if _, ok := CompactFiles(FilesCmd{ID: "t", Time: at, Events: evs}); ok {
			t.Errorf("written compact: %+v", evs)
		}
	}
	// A compact entry whose digests do not match its completions is refused.
	if _, err := DecodeFilesV2([]byte(`{"id":"t","time":"2026-11-24T09:00:00Z","done":[1,2],"sha256":"AAAA"}`)); err == nil {
		t.Error("digests of the wrong length accepted")
	}
}

// The state applies a compact entry as the plain one it stands for.
func TestFilesV2AppliesAsFiles(t *testing.T) {
	run := func(kind string, encode func(FilesCmd) any) *Transfer {
		a := &applier{t: t, s: NewState()}
		if err := a.apply(KindCreate, 1, CreateCmd{Transfer: newTransfer("t", 3, 4, 5)}); err != nil {
			t.Fatal(err)
		}
		for _, evs := range [][]FileEvent{
			{{Index: 0, Kind: EventStart}, {Index: 1, Kind: EventStart}, {Index: 2, Kind: EventStart}},
			{{Index: 1, Kind: EventFailed, Reason: "destination exists: x"}, {Index: 0, Kind: EventDone, SHA256: digestOf(0)}, {Index: 2, Kind: EventDone, SHA256: digestOf(2)}},
		} {
			if err := a.apply(kind, 1, encode(FilesCmd{ID: "t", Time: t0, Events: evs})); err != nil {
				t.Fatal(err)
			}
		}
		tr, _ := a.s.Get("t")
		return tr
	}
	plain := run(KindFiles, func(c FilesCmd) any { return c })
	compact := run(KindFilesV2, func(c FilesCmd) any {
		v, ok := CompactFiles(c)
		if !ok {
			t.Fatalf("not compact: %+v", c)
		}
		return v
	})
	if plain.State != StateFailed || !reflect.DeepEqual(plain, compact) {
		t.Fatalf("compact entries gave\n%+v\nplain ones\n%+v", compact, plain)
	}
}
