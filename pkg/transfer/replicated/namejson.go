package replicated

import (
	"bytes"
	"encoding/json"
)

// The JSON of the types that hold file names writes each name as
// EncodeName gives it and reads it back with DecodeName (names.go): a
// request, a transfer (its files and directories, in log entries and
// snapshots) and a view. Where every name is plain UTF-8, as almost always,
// the JSON is what it was before the escaping existed, byte for byte; the
// names of a File or FileView are encoded by the Transfer or View that
// holds them, so that the common case costs one check per name.
//
// encoding/json runs what a MarshalJSON method returns through a second
// pass (it checks and compacts it), and what an UnmarshalJSON method gets
// it has scanned already: for a transfer or a view of 10,000 files that
// is several times the cost of the plain encoding. So the paths where
// size matters — snapshots (written under the log's lock), the API's views
// and the clients that read them — encode and decode the method-less twins
// transferJSON and viewJSON, with the names escaped beforehand and
// unescaped after (Snapshot, Restore, View.JSONValue, DecodeView).

// transferJSON and viewJSON are Transfer and View without their JSON
// methods.
type (
	transferJSON Transfer
	viewJSON     View
)

func (r Request) MarshalJSON() ([]byte, error) {
	type plain Request
	p := plain(r)
	if !plainName(r.Destination) || !allPlain(r.Sources) {
		p.Sources = encodeAll(r.Sources)
		p.Destination = EncodeName(r.Destination)
	}
	return json.Marshal(p)
}

func (r *Request) UnmarshalJSON(b []byte) error {
	type plain Request
	if err := json.Unmarshal(b, (*plain)(r)); err != nil {
		return err
	}
	return r.decodeNames()
}

// DecodeRequest reads a request as a client sent it, refusing a field the
// request does not have (a misspelt option must not silently mean its
// default). Log entries and snapshots decode leniently (UnmarshalJSON): an
// entry written by a newer build must not stop an older one.
func DecodeRequest(b []byte) (Request, error) {
	type plain Request
	var r Request
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode((*plain)(&r)); err != nil {
		return Request{}, err
	}
	return r, r.decodeNames()
}

func (r *Request) decodeNames() error {
	if err := decodeNames(&r.Destination); err != nil {
		return err
	}
	for i := range r.Sources {
		if err := decodeNames(&r.Sources[i]); err != nil {
			return err
		}
	}
	return nil
}

func (t Transfer) MarshalJSON() ([]byte, error) { return json.Marshal(t.escaped()) }

func (t *Transfer) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, (*transferJSON)(t)); err != nil {
		return err
	}
	return (*transferJSON)(t).unescape()
}

// escaped is t, or a copy of it with its files' and directories' names
// escaped when one is not plain (its request escapes its own).
func (t *Transfer) escaped() *transferJSON {
	if FirstOddName(t) == "" {
		return (*transferJSON)(t)
	}
	c := *t
	c.Files = make([]File, len(t.Files))
	for i, f := range t.Files {
		f.Source, f.Destination = EncodeName(f.Source), EncodeName(f.Destination)
		c.Files[i] = f
	}
	if t.Dirs != nil {
		c.Dirs = make([]Dir, len(t.Dirs))
		for i, d := range t.Dirs {
			d.Source, d.Destination = EncodeName(d.Source), EncodeName(d.Destination)
			c.Dirs[i] = d
		}
	}
	return (*transferJSON)(&c)
}

// unescape decodes, in place, the names escaped.
func (t *transferJSON) unescape() error {
	for i := range t.Files {
		if err := decodeNames(&t.Files[i].Source, &t.Files[i].Destination); err != nil {
			return err
		}
	}
	for i := range t.Dirs {
		if err := decodeNames(&t.Dirs[i].Source, &t.Dirs[i].Destination); err != nil {
			return err
		}
	}
	return nil
}

func (v View) MarshalJSON() ([]byte, error) { return json.Marshal(v.JSONValue()) }

func (v *View) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, (*viewJSON)(v)); err != nil {
		return err
	}
	return (*viewJSON)(v).unescape()
}

// JSONValue is what to hand a JSON encoder for v, cheaper than v itself
// (see above): v, or a copy with its names escaped, as a type without JSON
// methods.
func (v View) JSONValue() any {
	if v.plainNames() {
		return (*viewJSON)(&v)
	}
	v.CurrentFile = EncodeName(v.CurrentFile)
	if v.Files != nil {
		files := make([]FileView, len(v.Files))
		for i, f := range v.Files {
			f.Source, f.Destination = EncodeName(f.Source), EncodeName(f.Destination)
			files[i] = f
		}
		v.Files = files
	}
	if v.Dirs != nil {
		dirs := make([]DirView, len(v.Dirs))
		for i, d := range v.Dirs {
			d.Source, d.Destination = EncodeName(d.Source), EncodeName(d.Destination)
			dirs[i] = d
		}
		v.Dirs = dirs
	}
	return (*viewJSON)(&v)
}

// DecodeView decodes a view's JSON, cheaper than json.Unmarshal into a
// View (see above).
func DecodeView(b []byte) (View, error) {
	var v viewJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return View{}, err
	}
	err := v.unescape()
	return View(v), err
}

// unescape decodes, in place, the names escaped.
func (v *viewJSON) unescape() error {
	if err := decodeNames(&v.CurrentFile); err != nil {
		return err
	}
	for i := range v.Files {
		if err := decodeNames(&v.Files[i].Source, &v.Files[i].Destination); err != nil {
			return err
		}
	}
	for i := range v.Dirs {
		if err := decodeNames(&v.Dirs[i].Source, &v.Dirs[i].Destination); err != nil {
			return err
		}
	}
	return nil
}

func (v *View) plainNames() bool {
	if !plainName(v.CurrentFile) {
		return false
	}
	for _, f := range v.Files {
		if !plainName(f.Source) || !plainName(f.Destination) {
			return false
		}
	}
	for _, d := range v.Dirs {
		if !plainName(d.Source) || !plainName(d.Destination) {
			return false
		}
	}
	return true
}

// PlainNames reports whether every name of t (its request's, its files'
// and directories') is written as it is (EncodeName).
func PlainNames(t *Transfer) bool {
	return FirstOddName(t) == "" && plainName(t.Request.Destination) && allPlain(t.Request.Sources)
}

// FirstOddName is the first name of t's files and directories that is not
// written as it is, or "" (a name is never empty).
func FirstOddName(t *Transfer) string {
	for i := range t.Files {
		f := &t.Files[i]
		if !plainName(f.Source) {
			return f.Source
		}
		if !plainName(f.Destination) {
			return f.Destination
		}
	}
	for _, d := range t.Dirs {
		if !plainName(d.Source) {
			return d.Source
		}
		if !plainName(d.Destination) {
			return d.Destination
		}
	}
	return ""
}

func allPlain(names []string) bool {
	for _, s := range names {
		if !plainName(s) {
			return false
		}
	}
	return true
}

// encodeAll returns names encoded (nil stays nil).
func encodeAll(names []string) []string {
	if names == nil {
		return nil
	}
	out := make([]string, len(names))
	for i, s := range names {
		out[i] = EncodeName(s)
	}
	return out
}
