package replicated

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// randomName is a byte string of up to 12 bytes, drawn so that invalid
// UTF-8, NUL, "%", backslashes, newlines and multi-byte runes all come up.
func randomName(rng *rand.Rand) string {
	alphabet := []string{"a", "/", "%", "\\", "\n", "\x00", "\xff", "\x80", "\xc3", "é", "€", "\U0001F600", "%4", "\"", "\x7f", "\u00ad"}
	var b strings.Builder
	for range rng.IntN(13) {
		if rng.IntN(3) == 0 {
			b.WriteByte(byte(rng.IntN(256)))
		} else {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
	}
	return b.String()
}

// EncodeName is reversible for every byte string, its result is valid
// UTF-8 (so JSON carries it unchanged), and it leaves plain UTF-8 as it
// is.
func TestNameEncodingRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 3))
	for range 20000 {
		s := randomName(rng)
		e := EncodeName(s)
		if !utf8.ValidString(e) {
			t.Fatalf("EncodeName(%q) = %q: not UTF-8", s, e)
		}
		if plain := utf8.ValidString(s) && !strings.HasPrefix(s, "\x00"); plain != (e == s) {
			t.Fatalf("EncodeName(%q) = %q: plain UTF-8 must be left as it is, nothing else", s, e)
		}
		back, err := DecodeName(e)
		if err != nil || back != s {
			t.Fatalf("DecodeName(EncodeName(%q)) = %q, %v", s, back, err)
		}
		// Through JSON, as every name travels.
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := json.Unmarshal(b, &got); err != nil || got != e {
			t.Fatalf("JSON changed %q into %q (%v)", e, got, err)
		}
	}
	for name, want := range map[string]string{
		"in/a\xffb":      "\x00in/a%FFb",
		"in/100%\x80":    "\x00in/100%25%80",
		"\x00x":          "\x00\x00x",
		"in/café.txt":    "in/café.txt",
		"in/50%.txt":     "in/50%.txt",
		"in/back\\slash": "in/back\\slash",
		"in/new\nline":   "in/new\nline",
	} {
		if got := EncodeName(name); got != want {
			t.Errorf("EncodeName(%q) = %q, want %q", name, got, want)
		}
	}
	for _, bad := range []string{"\x00%", "\x00%F", "\x00%GG", "\x00%ff", "\x00a%+1"} {
		if s, err := DecodeName(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("DecodeName(%q) = %q, %v; want ErrBadName", bad, s, err)
		}
	}
}

// oddTransfer is a transfer whose names hold bytes that are not UTF-8, a
// newline, a backslash and a "%", with directories.
func oddTransfer() Transfer {
	created := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	return Transfer{
		ID: "odd", Created: created,
		Request: Request{Sources: []string{"in/tree\xff", "in/x"}, Destination: "out/\x80", Recursive: true},
		Files: []File{
			{Source: "/r/in/tree\xff/a\xff.bin", Destination: "/r/out/\x80/tree\xff/a\xff.bin", Bytes: 3},
			{Source: "/r/in/tree\xff/new\nline", Destination: "/r/out/\x80/tree\xff/new\nline", Bytes: 4},
			{Source: "/r/in/tree\xff/back\\slash%41", Destination: "/r/out/\x80/tree\xff/back\\slash%41", Bytes: 5},
			{Source: "/r/in/x", Destination: "/r/out/\x80/x", Bytes: 6},
		},
		Dirs: []Dir{
			{Source: "/r/in/tree\xff", Destination: "/r/out/\x80/tree\xff"},
			{Source: "/r/in/tree\xff/empty\xfe", Destination: "/r/out/\x80/tree\xff/empty\xfe"},
		},
	}
}

// A request, a transfer and a view keep their names byte for byte through
// JSON; with plain names, their JSON is what it was before names were
// escaped.
func TestNamesThroughJSON(t *testing.T) {
	tr := oddTransfer()
	roundTrip := func(in, out any) {
		t.Helper()
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "\ufffd") || !utf8.Valid(b) {
			t.Fatalf("%T: JSON %s replaced bytes", in, b)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
	var req Request
	roundTrip(tr.Request, &req)
	if !reflect.DeepEqual(req, tr.Request) {
		t.Errorf("request %+v came back as %+v", tr.Request, req)
	}
	var back Transfer
	roundTrip(tr, &back)
	if !reflect.DeepEqual(back.Files, tr.Files) || !reflect.DeepEqual(back.Dirs, tr.Dirs) || !reflect.DeepEqual(back.Request, tr.Request) {
		t.Errorf("transfer came back as %+v", back)
	}
	s := NewState()
	c := CreateCmd{Transfer: tr}
	if res := s.Apply(KindCreate, 1, mustJSON(t, c), 1); isError(res) {
		t.Fatal(res)
	}
	got, _ := s.Get("odd")
	got.Files[1].State = StateRunning // the current file
	s.mu.Lock()
	f := s.transfers["odd"].FileAt(1)
	f.State = StateRunning
	s.transfers["odd"].files.set(1, f)
	s.mu.Unlock()
	v := ViewOf(got, "/r")
	var vback View
	roundTrip(v, &vback)
	if !reflect.DeepEqual(vback, v) || vback.CurrentFile != "in/tree\xff/new\nline" || vback.Files[0].Destination != "out/\x80/tree\xff/a\xff.bin" {
		t.Errorf("view came back as %+v, want %+v", vback, v)
	}
	if vback.Directories != 2 || len(vback.Dirs) != 2 || vback.Dirs[1].Source != "in/tree\xff/empty\xfe" {
		t.Errorf("view's directories: %d, %+v", vback.Directories, vback.Dirs)
	}
	// The cheaper paths the API and the clients take give the same JSON
	// and the same view.
	if a, b := mustJSON(t, v.JSONValue()), mustJSON(t, v); string(a) != string(b) {
		t.Errorf("JSONValue's JSON\n%s\nView's\n%s", a, b)
	}
	if dv, err := DecodeView(mustJSON(t, v)); err != nil || !reflect.DeepEqual(dv, v) {
		t.Errorf("DecodeView: %+v (%v), want %+v", dv, err, v)
	}

	// Plain names: the JSON of before, byte for byte.
	type plainRequest Request
	type plainTransfer Transfer
	type plainView View
	plain := Transfer{ID: "p", Created: tr.Created, Request: Request{Sources: []string{"in/é\\%"}, Destination: "out/"},
		Files: []File{{Source: "/r/in/é\\%", Destination: "/r/out/é\\%", Bytes: 1, State: StateQueued}}}
	for _, pair := range [][2]any{
		{plain.Request, plainRequest(plain.Request)},
		{plain, plainTransfer(plain)},
		{ViewOf(&plain, "/r"), plainView(ViewOf(&plain, "/r"))},
	} {
		if a, b := mustJSON(t, pair[0]), mustJSON(t, pair[1]); string(a) != string(b) {
			t.Errorf("%T with plain names:\n%s\nwant\n%s", pair[0], a, b)
		}
	}
}

// A snapshot keeps names that are not UTF-8, and the directories.
func TestSnapshotKeepsNames(t *testing.T) {
	s := NewState()
	if res := s.Apply(KindCreate, 1, mustJSON(t, CreateCmd{Transfer: oddTransfer()}), 1); isError(res) {
		t.Fatal(res)
	}
	b, err := snapshotBytes(s)
	if err != nil {
		t.Fatal(err)
	}
	r := NewState()
	if err := restoreBytes(r, b); err != nil {
		t.Fatal(err)
	}
	want, _ := s.Get("odd")
	got, _ := r.Get("odd")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("restored %+v\nwant %+v", got, want)
	}
}

// QuoteName keeps a name on one line, and leaves the usual ones alone.
func TestQuoteName(t *testing.T) {
	for name, want := range map[string]string{
		"in/café.txt":  "in/café.txt",
		"in/a b":       "in/a b",
		"in/new\nline": `"in/new\nline"`,
		"in/a\xff":     `"in/a\xff"`,
		"in/tab\there": `"in/tab\there"`,
		`"quoted"`:     `"\"quoted\""`,
		`in/back\sl`:   `in/back\sl`,
	} {
		if got := QuoteName(name); got != want {
			t.Errorf("QuoteName(%q) = %s, want %s", name, got, want)
		}
	}
	if got := Text("in/a\xff: no\nsuch file"); got != `in/a\xff: no\nsuch file` {
		t.Errorf("Text: %s", got)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func isError(v any) bool { _, ok := v.(error); return ok }

// The plain entries and the compact create entry without directories carry
// names of any bytes too (the active writes such names only in
// transfer.create.v3, which older builds refuse, but the encoding does not
// depend on the kind).
func TestEntriesCarryNames(t *testing.T) {
	tr := oddTransfer()
	tr.Dirs = nil
	c := CreateCmd{Transfer: tr, MaxQueued: 3}
	v, ok := CompactCreate(c)
	if !ok {
		t.Fatal("not encoded")
	}
	back, err := decodeCreateV2(mustJSON(t, v))
	if err != nil || !reflect.DeepEqual(back.Transfer.Files, tr.Files) {
		t.Fatalf("create.v2 came back as %+v (%v)", back.Transfer.Files, err)
	}
	var plain CreateCmd
	if err := json.Unmarshal(mustJSON(t, c), &plain); err != nil || !reflect.DeepEqual(plain.Transfer.Files, tr.Files) || !reflect.DeepEqual(plain.Transfer.Request, tr.Request) {
		t.Fatalf("create came back as %+v (%v)", plain.Transfer, err)
	}
}
