package replicated

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// The fuzz targets of the decoders of this package: the command kinds of
// the raft log (FuzzApply), the state's snapshot (FuzzRestore), the escape
// of file names (FuzzName), a client's request (FuzzDecodeRequest, with
// its durations, FuzzDuration) and the view clients decode
// (FuzzDecodeView). Their seeds are made with the package's own encoders.

// fuzzKinds are the kinds FuzzApply's kind argument picks from (modulo its
// length); the last is a kind the state does not own.
var fuzzKinds = []string{KindCreate, KindCreateV2, KindCreateV3, KindStart, KindFiles, KindFilesV2,
	KindRecovering, KindFail, KindCancel, KindPrune, KindCreateOpen, KindAppend, "transfer.bogus"}

func fuzzKind(k uint8) string { return fuzzKinds[int(k)%len(fuzzKinds)] }

func kindIndex(kind string) uint8 {
	for i, k := range fuzzKinds {
		if k == kind {
			return uint8(i)
		}
	}
	panic(kind)
}

// fuzzBaseIndex is the log index at which FuzzApply applies its entry,
// after those of fuzzBase.
const fuzzBaseIndex = 100

// fuzzBase returns a state with a transfer of each kind an entry may meet:
// "run", running, with files (one named by bytes that are not UTF-8) and
// directories, one file checkpointed; "queued"; "done", ended and packed,
// its source still to delete; "gone", ended with its sources deleted.
func fuzzBase(tb testing.TB) *State {
	s := NewState()
	for i, e := range baseEntries() {
		if r := s.Apply(e.kind, 2, e.data, uint64(i+1)); r != nil {
			if _, ok := r.(*Transfer); !ok {
				tb.Fatalf("base entry %d (%s): %v", i, e.kind, r)
			}
		}
	}
	return s
}

type fuzzEntry struct {
	kind string
	data []byte
}

func encodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func fuzzTransfer(id string, names ...string) Transfer {
	rt := Duration(90 * time.Second)
	t := Transfer{ID: id, Created: t0, Request: Request{Sources: []string{"in/" + id}, Destination: "out/", Recursive: true,
		Overwrite: OverwriteAlways, Disposition: DispositionDelete, Priority: 3, RecoveryTimeout: &rt, BandwidthLimit: 1 << 20}}
	for i, n := range names {
		t.Files = append(t.Files, File{Source: "/r/in/" + id + "/" + n, Destination: "/r/out/" + n, Bytes: int64(10 * (i + 1))})
	}
	return t
}

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// baseEntries are fuzzBaseEntries, encoded once.
var baseEntries = sync.OnceValue(fuzzBaseEntries)

func fuzzBaseEntries() []fuzzEntry {
	run := fuzzTransfer("run", "a", "b\xff", "c%d")
	run.Dirs = []Dir{{Source: "/r/in/run/sub", Destination: "/r/out/sub"}, {Source: "/r/in/run/e\x80", Destination: "/r/out/e\x80"}}
	cp := checkpoint.Checkpoint{Offset: 5, Hash: []byte{1, 2, 3}, Source: checkpoint.Source{Size: 10, ModTime: 1, Inode: 7}}
	return []fuzzEntry{
		{KindCreate, encodeJSON(CreateCmd{Transfer: run, MaxQueued: 10, HistoryCount: -1})},
		{KindStart, encodeJSON(StartCmd{ID: "run", Time: t0})},
		{KindFiles, encodeJSON(FilesCmd{ID: "run", Time: t0, Events: []FileEvent{{Index: 0, Kind: EventStart}, {Index: 0, Kind: EventCheckpoint, Checkpoint: cp}}})},
		{KindCreate, encodeJSON(CreateCmd{Transfer: fuzzTransfer("queued", "x", "y"), HistoryCount: -1})},
		{KindCreate, encodeJSON(CreateCmd{Transfer: fuzzTransfer("done", "z"), HistoryCount: -1})},
		{KindFiles, encodeJSON(FilesCmd{ID: "done", Time: t0, Events: []FileEvent{{Index: 0, Kind: EventStart},
			{Index: 0, Kind: EventDone, SHA256: sha, Source: checkpoint.Source{Size: 10, ModTime: 1}}}})},
		{KindCreate, encodeJSON(CreateCmd{Transfer: fuzzTransfer("gone", "g"), HistoryCount: -1})},
		{KindFiles, encodeJSON(FilesCmd{ID: "gone", Time: t0, Events: []FileEvent{{Index: 0, Kind: EventStart},
			{Index: 0, Kind: EventDone, SHA256: sha}, {Index: 0, Kind: EventSourceDeleted}}})},
		{KindCreateOpen, encodeJSON(fuzzOpen())}, // at index fuzzOpenSeq
	}
}

// fuzzOpen is the first entry of a transfer created in several entries,
// open in fuzzBase at index fuzzOpenSeq.
func fuzzOpen() createV3Cmd {
	v, ok := CompactCreateV3(CreateCmd{Transfer: fuzzTransfer("open", "o1", "o2"), MaxQueued: 10, HistoryCount: -1})
	if !ok {
		panic("compact encoder refused the open transfer")
	}
	return v
}

const fuzzOpenSeq = 9

// fuzzApplySeeds are real entries of every kind, against fuzzBase's
// transfers.
func fuzzApplySeeds() []fuzzEntry {
	fresh := fuzzTransfer("new", "p", "q\xfe", "%")
	fresh.Created = t0.Add(time.Hour)
	c2, ok2 := CompactCreate(CreateCmd{Transfer: fuzzTransfer("new2", "p", "q"), HistoryCount: -1})
	withDirs := fresh
	withDirs.Dirs = []Dir{{Source: "/r/in/new/d", Destination: "/r/out/d"}}
	c3, ok3 := CompactCreateV3(CreateCmd{Transfer: withDirs, MaxQueued: 100, HistoryCount: 1, HistoryAge: time.Minute})
	f2, okf := CompactFiles(FilesCmd{ID: "run", Time: t0, Events: []FileEvent{{Index: 0, Kind: EventCheckpoint,
		Checkpoint: checkpoint.Checkpoint{Offset: 10, Source: checkpoint.Source{Size: 10, ModTime: 1, Inode: 7}}},
		{Index: 1, Kind: EventStart}, {Index: 2, Kind: EventStart}, {Index: 0, Kind: EventDone, SHA256: sha}, {Index: 1, Kind: EventDone, SHA256: sha}}})
	more := fuzzTransfer("open", "o3", "o\xfe4")
	more.Dirs = []Dir{{Source: "/r/in/open/d", Destination: "/r/out/d"}}
	ap, oka := CompactAppend(AppendCmd{ID: "open", Seq: fuzzOpenSeq, Files: more.Files, Dirs: more.Dirs})
	seal, oks := CompactAppend(AppendCmd{ID: "open", Seq: fuzzOpenSeq, Seal: true})
	discard, okd := CompactAppend(AppendCmd{ID: "open", Seq: fuzzOpenSeq, Discard: true})
	stale, okst := CompactAppend(AppendCmd{ID: "open", Seq: 1, Files: more.Files})
	if !ok2 || !ok3 || !okf || !oka || !oks || !okd || !okst {
		panic("compact encoders refused the seeds")
	}
	clash := fuzzTransfer("queued", "x", "y")
	clash.Request.Priority = 7
	return []fuzzEntry{
		{KindCreate, encodeJSON(CreateCmd{Transfer: fresh, MaxQueued: 10, HistoryCount: 2, HistoryAge: time.Hour})},
		{KindCreate, encodeJSON(CreateCmd{Transfer: fuzzTransfer("queued", "x", "y")})}, // a retry
		{KindCreate, encodeJSON(CreateCmd{Transfer: clash})},                            // a clash
		{KindCreate, encodeJSON(CreateCmd{Transfer: fuzzTransfer("full", "f"), MaxQueued: 2})},
		{KindCreate, encodeJSON(CreateCmd{Transfer: Transfer{ID: "empty", Created: t0}})},
		{KindCreateV2, encodeJSON(c2)},
		{KindCreateV3, encodeJSON(c3)},
		{KindCreateOpen, encodeJSON(fuzzOpen())}, // a retry: replaces the open one
		{KindAppend, encodeJSON(ap)},
		{KindAppend, encodeJSON(seal)},
		{KindAppend, encodeJSON(discard)},
		{KindAppend, encodeJSON(stale)},
		{KindStart, encodeJSON(StartCmd{ID: "queued", Time: t0})},
		{KindStart, encodeJSON(StartCmd{ID: "run", Time: t0})},
		{KindFiles, encodeJSON(FilesCmd{ID: "run", Time: t0.Add(time.Minute), Events: []FileEvent{
			{Index: 1, Kind: EventStart, Resent: 4, Restart: true}, {Index: 1, Kind: EventFailed, Reason: "disk \xff full"},
			{Index: 2, Kind: EventStart}, {Index: 2, Kind: EventDone, SHA256: sha},
			{Index: 0, Kind: EventCheckpoint, Checkpoint: checkpoint.Checkpoint{Offset: 10, Source: checkpoint.Source{Size: 10, ModTime: 1, Inode: 7}}},
			{Index: 0, Kind: EventDone, SHA256: sha}, {Index: 0, Kind: EventSourceDeleted}},
			Dirs: []DirEvent{{Index: 0, Kind: EventDone}, {Index: 1, Kind: EventFailed, Reason: "denied"}}})},
		{KindFiles, encodeJSON(FilesCmd{ID: "done", Time: t0, Events: []FileEvent{{Index: 0, Kind: EventSourceDeleted}}})},
		{KindFiles, encodeJSON(FilesCmd{ID: "queued", Time: t0, Events: []FileEvent{{Index: 5, Kind: EventStart}}})},
		{KindFilesV2, encodeJSON(f2)},
		{KindRecovering, encodeJSON(ReasonCmd{ID: "run", Time: t0, Reason: "storage gone"})},
		{KindFail, encodeJSON(ReasonCmd{ID: "run", Time: t0, Reason: "given up"})},
		{KindCancel, encodeJSON(ReasonCmd{ID: "queued", Time: t0, Reason: "cancelled by user"})},
		{KindPrune, encodeJSON(PruneCmd{Time: t0, IDs: []string{"done", "gone", "run", "nosuch"}})},
		{"transfer.bogus", []byte(`{}`)},
	}
}

// resultString is an Apply result in a form to compare.
func resultString(r any) string {
	switch v := r.(type) {
	case nil:
		return "nil"
	case error:
		return "error: " + v.Error()
	default:
		return fmt.Sprintf("%T %s", v, encodeJSON(v))
	}
}

func mustSnapshot(tb testing.TB, s *State) []byte {
	tb.Helper()
	b, err := snapshotBytes(s)
	if err != nil {
		tb.Fatalf("snapshot: %v", err)
	}
	return b
}

// checkCounts checks that every transfer's derived counts follow its files
// and directories.
func checkCounts(tb testing.TB, s *State) {
	tb.Helper()
	for id, t := range s.transfers {
		c := t.clone()
		c.recount()
		if c.ended != t.ended || c.failed != t.failed || c.firstFailed != t.firstFailed ||
			c.dirsEnded != t.dirsEnded || c.dirsFailed != t.dirsFailed || c.firstFailedDir != t.firstFailedDir {
			tb.Fatalf("transfer %q: counts %d/%d/%d %d/%d/%d, files say %d/%d/%d %d/%d/%d", id,
				t.ended, t.failed, t.firstFailed, t.dirsEnded, t.dirsFailed, t.firstFailedDir,
				c.ended, c.failed, c.firstFailed, c.dirsEnded, c.dirsFailed, c.firstFailedDir)
		}
	}
}

// reencoded decodes data as Apply does for kind and encodes the command
// again with encoding/json, as the plain kind (the compact kinds expand to
// the plain commands they stand for). False if data does not decode.
func reencoded(kind string, data []byte) (string, []byte, bool) {
	var v any
	var ok bool
	switch kind {
	case KindCreate:
		var c CreateCmd
		if json.Unmarshal(data, &c) != nil {
			return "", nil, false
		}
		v = c
	case KindCreateV2, KindCreateV3:
		dec := decodeCreateV2
		if kind == KindCreateV3 {
			dec = decodeCreateV3
		}
		c, err := dec(data)
		if err != nil {
			return "", nil, false
		}
		kind, v = KindCreate, c
	case KindCreateOpen: // no plain kind: the compact one, encoded anew
		c, err := decodeCreateV3(data)
		if err != nil {
			return "", nil, false
		}
		if v, ok = CompactCreateV3(c); !ok {
			return "", nil, false
		}
	case KindAppend:
		c, err := DecodeAppend(data)
		if err != nil {
			return "", nil, false
		}
		if v, ok = CompactAppend(c); !ok {
			return "", nil, false
		}
	case KindStart:
		var c StartCmd
		if json.Unmarshal(data, &c) != nil {
			return "", nil, false
		}
		v = c
	case KindFiles:
		var c FilesCmd
		if json.Unmarshal(data, &c) != nil {
			return "", nil, false
		}
		v = c
	case KindFilesV2:
		c, err := DecodeFilesV2(data)
		if err != nil {
			return "", nil, false
		}
		kind, v = KindFiles, c
	case KindRecovering, KindFail, KindCancel:
		var c ReasonCmd
		if json.Unmarshal(data, &c) != nil {
			return "", nil, false
		}
		v = c
	case KindPrune:
		var c PruneCmd
		if json.Unmarshal(data, &c) != nil {
			return "", nil, false
		}
		v = c
	default:
		return "", nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", nil, false // a time beyond year 9999, say: json refuses it
	}
	return kind, b, true
}

// FuzzApply applies one arbitrary entry of any kind (the kind picked by the
// first argument) to a state holding transfers in every condition, and
// checks that
//   - Apply does not panic, and is deterministic: the entry applied to two
//     fresh states gives the same result and the same snapshot;
//   - an entry refused with an error changes nothing (but a create refused
//     because the queue is full, which prunes the history first, as it
//     always did);
//   - the derived counts follow the files;
//   - the snapshot restores to a state whose snapshot is the same;
//   - the entry, decoded as Apply decodes it and encoded again (the compact
//     kinds as the plain commands they expand to), applies alike.
func FuzzApply(f *testing.F) {
	for _, e := range fuzzApplySeeds() {
		f.Add(kindIndex(e.kind), uint64(2), e.data)
	}
	f.Add(kindIndex(KindFiles), uint64(1), encodeJSON(FilesCmd{ID: "run", Events: []FileEvent{{Index: 0, Kind: EventCheckpoint,
		Checkpoint: checkpoint.Checkpoint{Offset: 6, Source: checkpoint.Source{Size: 10, ModTime: 1, Inode: 7}}}}}))
	f.Add(kindIndex(KindStart), uint64(3), encodeJSON(StartCmd{ID: "run"}))
	f.Add(kindIndex(KindCreate), uint64(2), []byte(`{"transfer":{"id":"x","files":[{"source":"\u0000%FF","destination":"/a"}]}}`))
	f.Add(kindIndex(KindCreate), uint64(2), []byte(`{"transfer":{"id":"x","files":[{"source":"\u0000%G0","destination":"/a"}]}}`))
	f.Add(kindIndex(KindFilesV2), uint64(2), []byte(`{"id":"run","done":[0],"sha256":"AAAA"}`))
	f.Add(kindIndex(KindCreateV2), uint64(2), []byte(`{"transfer":{"id":"x"},"sources":["a","b"],"bytes":[1]}`))
	before := mustSnapshot(f, fuzzBase(f))
	f.Fuzz(func(t *testing.T, k uint8, epoch uint64, data []byte) {
		kind := fuzzKind(k)

		s1, s2 := fuzzBase(t), fuzzBase(t)
		r1 := s1.Apply(kind, epoch, data, fuzzBaseIndex)
		r2 := s2.Apply(kind, epoch, data, fuzzBaseIndex)
		after := mustSnapshot(t, s1)
		if a, b := resultString(r1), resultString(r2); a != b {
			t.Fatalf("Apply is not deterministic: %s, then %s", a, b)
		}
		if b := mustSnapshot(t, s2); !bytes.Equal(after, b) {
			t.Fatalf("Apply is not deterministic:\n%s\n%s", after, b)
		}
		if err, ok := r1.(error); ok && !errors.Is(err, ErrQueueFull) && !bytes.Equal(before, after) {
			t.Fatalf("entry refused (%v) changed the state:\n%s\n%s", err, before, after)
		}
		checkCounts(t, s1)

		r := NewState()
		if err := restoreBytes(r, after); err != nil {
			t.Fatalf("restore of a snapshot: %v\n%s", err, after)
		}
		checkCounts(t, r)
		if b := mustSnapshot(t, r); !bytes.Equal(after, b) {
			t.Fatalf("snapshot restored differs:\n%s\n%s", after, b)
		}

		if kind2, data2, ok := reencoded(kind, data); ok {
			s3 := fuzzBase(t)
			r3 := s3.Apply(kind2, epoch, data2, fuzzBaseIndex)
			if a, b := resultString(r1), resultString(r3); a != b {
				t.Fatalf("re-encoded entry %s %s: %s, not %s", kind2, data2, b, a)
			}
			if b := mustSnapshot(t, s3); !bytes.Equal(after, b) {
				t.Fatalf("re-encoded entry %s %s gives another state:\n%s\n%s", kind2, data2, after, b)
			}
		}
	})
}

// FuzzRestore restores arbitrary snapshots: Restore does not panic, a
// refused snapshot leaves the state as it was, and an accepted one gives a
// state whose counts follow its files and whose snapshot restores to the
// same snapshot again; restoring is deterministic.
func FuzzRestore(f *testing.F) {
	f.Add(mustSnapshot(f, fuzzBase(f)))
	f.Add(mustSnapshot(f, NewState()))
	f.Add([]byte(`{"transfers":[{"id":"a","seq":1,"state":"completed","files":[{"source":"\u0000%FFx","destination":"/d/x","state":"completed","sha256":"` + sha + `"}]}]}`))
	f.Add([]byte(`{"transfers":[{"id":"a","seq":1},{"id":"b","seq":1},{"id":"a","seq":2}]}`))
	f.Add([]byte(`{"transfers":null}`))
	f.Add([]byte(`{"x":[{"transfers":1}],"Transfers":[{"id":"a","seq":1}],"y":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzBase(t)
		before := mustSnapshot(t, s)
		if err := restoreBytes(s, data); err != nil {
			if after := mustSnapshot(t, s); !bytes.Equal(before, after) {
				t.Fatalf("refused snapshot (%v) changed the state", err)
			}
			return
		}
		checkCounts(t, s)
		snap := mustSnapshot(t, s)
		s2 := NewState()
		if err := restoreBytes(s2, data); err != nil {
			t.Fatalf("second restore: %v", err)
		}
		if b := mustSnapshot(t, s2); !bytes.Equal(snap, b) {
			t.Fatalf("restore is not deterministic:\n%s\n%s", snap, b)
		}
		s3 := NewState()
		if err := restoreBytes(s3, snap); err != nil {
			t.Fatalf("restore of a snapshot: %v\n%s", err, snap)
		}
		if b := mustSnapshot(t, s3); !bytes.Equal(snap, b) {
			t.Fatalf("snapshot restored differs:\n%s\n%s", snap, b)
		}
	})
}

// FuzzName checks the escape of file names: every name, encoded, is valid
// UTF-8 that JSON carries unchanged and decodes to the name byte for byte;
// a plain name is its own encoding; and any string DecodeName accepts
// decodes to a name whose encoding decodes to it again.
func FuzzName(f *testing.F) {
	for _, s := range []string{"/r/in/a", "", "a\xffb", "%", "%41", "\x00", "\x00%FF", "\x00%ff", "\x00%4", "\x00%", "é\x80\xc3", "\xed\xa0\x80", "\"\\\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := EncodeName(s)
		if !utf8.ValidString(e) {
			t.Fatalf("EncodeName(%q) = %q, not UTF-8", s, e)
		}
		if plainName(s) != (e == s) {
			t.Fatalf("EncodeName(%q) = %q (plain: %v)", s, e, plainName(s))
		}
		d, err := DecodeName(e)
		if err != nil || d != s {
			t.Fatalf("DecodeName(EncodeName(%q)) = %q, %v", s, d, err)
		}
		var viaJSON nameOf
		if err := json.Unmarshal(encodeJSON(nameOf(s)), &viaJSON); err != nil || string(viaJSON) != s {
			t.Fatalf("name %q through JSON: %q, %v", s, viaJSON, err)
		}
		var list nameList
		if err := json.Unmarshal(encodeJSON(nameList{"/plain", s}), &list); err != nil || len(list) != 2 || list[1] != s || list[0] != "/plain" {
			t.Fatalf("name list with %q through JSON: %q, %v", s, list, err)
		}
		if d, err := DecodeName(s); err == nil {
			d2, err := DecodeName(EncodeName(d))
			if err != nil || d2 != d {
				t.Fatalf("DecodeName(%q) = %q, which encodes to %q, which decodes to %q, %v", s, d, EncodeName(d), d2, err)
			}
		}
	})
}

// FuzzDecodeRequest decodes arbitrary request bodies as the API does: a
// request accepted encodes to JSON that decodes to the same request, which
// the lenient decoding of log entries reads alike.
func FuzzDecodeRequest(f *testing.F) {
	rt := Duration(-1)
	for _, r := range []Request{
		fuzzTransfer("r", "a").Request,
		{Sources: []string{"in/a\xff", "\x00x", "b%"}, Destination: "out\x80/"},
		{Sources: []string{}, Destination: "", RecoveryTimeout: &rt},
	} {
		f.Add(encodeJSON(r))
	}
	f.Add([]byte(`{"sources":["a"],"destination":"b","recoveryTimeout":1.5}`))
	f.Add([]byte(`{"sources":["a"],"destination":"b","recoveryTimeout":9223372036.854775807}`))
	f.Add([]byte(`{"sources":["a"],"destination":"b","overwite":"overwrite"}`))
	f.Add([]byte(`{"sources":["\u0000%zz"],"destination":"b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRequest(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("encode %+v: %v", r, err)
		}
		r2, err := DecodeRequest(b)
		if err != nil {
			t.Fatalf("request %+v encodes to %s, which does not decode: %v", r, b, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("request %+v encodes to %s, which decodes to %+v", r, b, r2)
		}
		var r3 Request
		if err := json.Unmarshal(b, &r3); err != nil || !reflect.DeepEqual(r, r3) {
			t.Fatalf("request %s read leniently: %+v, %v", b, r3, err)
		}
		if !SameRequest(r, r2) {
			t.Fatalf("SameRequest(%+v, itself) is false", r)
		}
	})
}

// FuzzDuration decodes a request's duration from arbitrary JSON: a
// duration accepted encodes to JSON that decodes to the same duration, and
// a number of seconds keeps its sign (a huge timeout must not turn into a
// negative one, which means "retry forever").
func FuzzDuration(f *testing.F) {
	for _, s := range []string{`"90s"`, `90`, `1.5`, `-1`, `0`, `"-1ns"`, `9223372036`, `9223372036.854775807`, `-9223372036.854775808`, `1e-9`, `"2562047h47m16.854775807s"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Duration
		if err := json.Unmarshal(data, &d); err != nil {
			return
		}
		var secs float64
		if json.Unmarshal(data, &secs) == nil && (secs > 0 && d < 0 || secs < 0 && d > 0) {
			t.Fatalf("%s seconds decode to %v", data, time.Duration(d))
		}
		b := encodeJSON(d)
		var d2 Duration
		if err := json.Unmarshal(b, &d2); err != nil || d2 != d {
			t.Fatalf("duration %s: %v encodes to %s, which decodes to %v, %v", data, time.Duration(d), b, time.Duration(d2), err)
		}
	})
}

// FuzzDecodeView decodes arbitrary views as clients do: a view accepted
// encodes (JSONValue, as the API writes it) to JSON that decodes to the
// same view, and View's UnmarshalJSON reads it alike.
func FuzzDecodeView(f *testing.F) {
	s := fuzzBase(f)
	for _, tr := range s.List() {
		f.Add(encodeJSON(ViewOf(tr, "/r").JSONValue()))
		f.Add(encodeJSON(SummaryOf(tr, "/r")))
	}
	f.Add([]byte(`{"id":"x","currentFile":"\u0000%FF","files":[{"source":"\u0000a%25","destination":"b"}],"dirs":[{"source":"\u0000%C3","destination":"d"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeView(data)
		var u View
		uerr := json.Unmarshal(data, &u)
		if (err == nil) != (uerr == nil) {
			t.Fatalf("DecodeView: %v; json.Unmarshal: %v", err, uerr)
		}
		if err != nil {
			return
		}
		// Views are compared as encoded: a time read from "+00:00" is in
		// time.Local on a machine at UTC, the same instant written back as
		// "Z" in time.UTC.
		if a, b := encodeJSON(v.JSONValue()), encodeJSON(u.JSONValue()); !bytes.Equal(a, b) {
			t.Fatalf("DecodeView %s, json.Unmarshal %s", a, b)
		}
		if len(v.Dirs) == 0 {
			v.Dirs = nil // "dirs":[] means none, as a view leaves it out
		}
		b, err := json.Marshal(v.JSONValue())
		if err != nil {
			t.Fatalf("encode %+v: %v", v, err)
		}
		v2, err := DecodeView(b)
		if err != nil {
			t.Fatalf("view %+v encodes to %s, which does not decode: %v", v, b, err)
		}
		if b2 := encodeJSON(v2.JSONValue()); !bytes.Equal(b, b2) || len(v.Files) != len(v2.Files) || (v.Files == nil) != (v2.Files == nil) {
			t.Fatalf("view %+v encodes to %s, which decodes to %+v, encoded %s", v, b, v2, b2)
		}
	})
}
