package ha_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
)

// The compact transfer.create.v2 entry against an older build (one that reads
// format 1 only) and this one: the older build applies the plain create, and
// refuses the compact one loudly, applying nothing after it; this build
// applies both, and its snapshot stays readable by the older build until the
// compact entry is applied.
func TestOlderBuildRefusesCompactCreate(t *testing.T) {
	created := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	plainCreate := func(id string) any {
		return map[string]any{"transfer": transfer.Transfer{ID: id, Created: created,
			Request: transfer.Request{Sources: []string{"in/a"}, Destination: "out/"},
			Files:   []transfer.File{{Source: "/r/in/a", Destination: "/r/out/a", Bytes: 3}}}}
	}
	compactCreate := map[string]any{
		"transfer":   transfer.Transfer{ID: "v2", Created: created, Request: transfer.Request{Sources: []string{"in/b"}, Destination: "out/"}},
		"sourceRoot": "/r/in/b", "destinationRoot": "/r/out/b", "sources": []string{""}, "bytes": []int64{4},
	}
	encode := func(kind string, data any) []byte { return encodeEntry(t, kind, data) }
	entries := [][]byte{
		encode(ha.KindLease, ha.Lease{Epoch: 1, Holder: "ha1"}),
		encode(transfer.KindCreate, plainCreate("v1")),
		encode(transfer.KindCreateV2, compactCreate),
		encode(transfer.KindCreate, plainCreate("after")),
	}
	var c ha.Command
	if err := json.Unmarshal(entries[2], &c); err != nil || c.Format != 2 || c.Kind != transfer.KindCreateV2 {
		t.Fatalf("compact create stamped %+v (%v), want format 2", c, err)
	}

	var logs strings.Builder
	oldState := transfer.NewState()
	older := ha.NewBuild(1, oldState, zerolog.New(&logs))
	newState := transfer.NewState()
	newer := ha.NewBuild(0, newState, zerolog.Nop())
	for i, e := range entries[:2] {
		if res := older.Apply(uint64(i+1), e); isErr(res) {
			t.Fatalf("older build, entry %d: %v", i+1, res)
		}
		if res := newer.Apply(uint64(i+1), e); isErr(res) {
			t.Fatalf("this build, entry %d: %v", i+1, res)
		}
	}
	snap1, err := newer.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := ha.NewBuild(1, transfer.NewState(), zerolog.Nop()).Restore(snap1); err != nil {
		t.Fatalf("older build cannot restore a snapshot of plain creates: %v", err)
	}

	res := older.Apply(3, entries[2])
	var ref *ha.RefusalError
	if err, _ := res.(error); !errors.As(err, &ref) || !errors.Is(err, ha.ErrNewerFormat) ||
		ref.Index != 3 || ref.Kind != transfer.KindCreateV2 || ref.Format != 2 || ref.Knows != 1 {
		t.Fatalf("older build applying %s: %v, want a refusal of a newer format", transfer.KindCreateV2, res)
	}
	select {
	case <-older.Failed():
	default:
		t.Fatal("refusal not signalled")
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), `"kind":"transfer.create.v2"`) ||
		!strings.Contains(logs.String(), "upgrade this instance") {
		t.Errorf("refusal not logged as an error: %s", logs.String())
	}
	if res := older.Apply(4, entries[3]); res != error(ref) {
		t.Errorf("older build after the refusal: %v, want the refusal again", res)
	}
	if _, ok := oldState.Get("v2"); ok {
		t.Error("older build created the compact entry's transfer")
	}
	if _, ok := oldState.Get("after"); ok {
		t.Error("older build applied an entry after the refusal")
	}

	for i, e := range entries[2:] {
		if res := newer.Apply(uint64(i+3), e); isErr(res) {
			t.Fatalf("this build, entry %d: %v", i+3, res)
		}
	}
	v2, ok := newState.Get("v2")
	if !ok || len(v2.Files) != 1 || v2.Files[0].Source != "/r/in/b" || v2.Files[0].Destination != "/r/out/b" || v2.Bytes != 4 {
		t.Fatalf("this build applied the compact create as %+v", v2)
	}
	snap2, err := newer.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	err = ha.NewBuild(1, transfer.NewState(), zerolog.Nop()).Restore(snap2)
	if !errors.As(err, &ref) || !ref.Snapshot || ref.Format != 2 || !errors.Is(err, ha.ErrNewerFormat) {
		t.Fatalf("older build restoring a snapshot after a compact create: %v, want a refusal", err)
	}
}

func isErr(v any) bool { _, ok := v.(error); return ok }

// transfer.files.v2 is of format 3: a build that reads format 2 refuses it
// loudly; this build applies it.
func TestFormat2BuildRefusesCompactFiles(t *testing.T) {
	created := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	encode := func(kind string, data any) []byte { return encodeEntry(t, kind, data) }
	entries := [][]byte{
		encode(ha.KindLease, ha.Lease{Epoch: 1, Holder: "ha1"}),
		encode(transfer.KindCreate, map[string]any{"transfer": transfer.Transfer{ID: "t", Created: created,
			Request: transfer.Request{Sources: []string{"in/a"}, Destination: "out/"},
			Files:   []transfer.File{{Source: "/r/in/a", Destination: "/r/out/a", Bytes: 3}}}}),
		encode(transfer.KindFilesV2, map[string]any{"id": "t", "time": created, "start": []int{0}}),
	}
	var c ha.Command
	if err := json.Unmarshal(entries[2], &c); err != nil || c.Format != 3 {
		t.Fatalf("compact files entry stamped %+v (%v), want format 3", c, err)
	}
	var logs strings.Builder
	older := ha.NewBuild(2, transfer.NewState(), zerolog.New(&logs))
	newState := transfer.NewState()
	newer := ha.NewBuild(0, newState, zerolog.Nop())
	for i, e := range entries {
		if res := newer.Apply(uint64(i+1), e); isErr(res) {
			t.Fatalf("this build, entry %d: %v", i+1, res)
		}
	}
	if tr, _ := newState.Get("t"); tr == nil || !tr.Files[0].Started {
		t.Fatalf("this build did not apply the compact start: %+v", tr)
	}
	for i, e := range entries[:2] {
		if res := older.Apply(uint64(i+1), e); isErr(res) {
			t.Fatalf("format-2 build, entry %d: %v", i+1, res)
		}
	}
	res := older.Apply(3, entries[2])
	var ref *ha.RefusalError
	if err, _ := res.(error); !errors.As(err, &ref) || ref.Kind != transfer.KindFilesV2 || ref.Format != 3 || ref.Knows != 2 {
		t.Fatalf("format-2 build applying %s: %v, want a refusal of a newer format", transfer.KindFilesV2, res)
	}
	if !strings.Contains(logs.String(), `"level":"error"`) {
		t.Errorf("refusal not logged as an error: %s", logs.String())
	}
}

// encodeEntry is a log entry of kind, written under epoch 1.
func encodeEntry(t *testing.T, kind string, data any) []byte {
	t.Helper()
	b, err := ha.EncodeCommand(kind, 1, data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// transfer.create.v3 (directories, names that are not UTF-8) is of format
// 4: a build that reads format 3 refuses it loudly rather than create the
// transfer without its directories or with its escaped names taken for
// names; this build applies it, names byte for byte.
func TestFormat3BuildRefusesCreateV3(t *testing.T) {
	created := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	encode := func(kind string, data any) []byte { return encodeEntry(t, kind, data) }
	entries := [][]byte{
		encode(ha.KindLease, ha.Lease{Epoch: 1, Holder: "ha1"}),
		encode(transfer.KindCreateV3, map[string]any{
			"transfer":   transfer.Transfer{ID: "t", Created: created, Request: transfer.Request{Sources: []string{"in/d\xff"}, Destination: "out/", Recursive: true}},
			"sourceRoot": transfer.EncodeName("/r/in/d\xff"), "destinationRoot": transfer.EncodeName("/r/out/d\xff"),
			"sources": []string{"a"}, "bytes": []int64{3}, "dirSources": []string{"", "empty"},
		}),
	}
	var c ha.Command
	if err := json.Unmarshal(entries[1], &c); err != nil || c.Format != 4 {
		t.Fatalf("create.v3 stamped %+v (%v), want format 4", c, err)
	}
	newState := transfer.NewState()
	newer := ha.NewBuild(0, newState, zerolog.Nop())
	older := ha.NewBuild(3, transfer.NewState(), zerolog.Nop())
	for i, e := range entries {
		if res := newer.Apply(uint64(i+1), e); isErr(res) {
			t.Fatalf("this build, entry %d: %v", i+1, res)
		}
	}
	tr, ok := newState.Get("t")
	if !ok || len(tr.Files) != 1 || tr.Files[0].Source != "/r/in/d\xff/a" || len(tr.Dirs) != 2 || tr.Dirs[1].Destination != "/r/out/d\xff/empty" {
		t.Fatalf("this build applied create.v3 as %+v", tr)
	}
	if res := older.Apply(1, entries[0]); isErr(res) {
		t.Fatal(res)
	}
	res := older.Apply(2, entries[1])
	var ref *ha.RefusalError
	if err, _ := res.(error); !errors.As(err, &ref) || ref.Kind != transfer.KindCreateV3 || ref.Format != 4 || ref.Knows != 3 {
		t.Fatalf("format-3 build applying %s: %v, want a refusal of a newer format", transfer.KindCreateV3, res)
	}
	snap, err := newer.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := ha.NewBuild(3, transfer.NewState(), zerolog.Nop()).Restore(snap); !errors.As(err, &ref) || !ref.Snapshot || ref.Format != 4 {
		t.Fatalf("format-3 build restoring a snapshot that holds create.v3's transfer: %v, want a refusal", err)
	}
	// This build restores it with the names byte for byte.
	restored := transfer.NewState()
	if err := ha.NewBuild(0, restored, zerolog.Nop()).Restore(snap); err != nil {
		t.Fatal(err)
	}
	if got, _ := restored.Get("t"); got == nil || got.Files[0].Source != "/r/in/d\xff/a" || got.Dirs[1].Destination != "/r/out/d\xff/empty" {
		t.Fatalf("restored %+v", got)
	}
}
