package transfer

import "encoding/json"

// The JSON of the types that hold file names writes each name as
// EncodeName gives it and reads it back with DecodeName (names.go): a
// request, a transfer (its files and directories, in log entries and
// snapshots) and a view. Where every name is plain UTF-8, as almost always,
// the JSON is what it was before the escaping existed, byte for byte; the
// names of a File or FileView are encoded by the Transfer or View that
// holds them, so that the common case costs one check per name.

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

func (t Transfer) MarshalJSON() ([]byte, error) {
	type plain Transfer
	p := plain(t)
	if !plainNames(&t) {
		p.Files = make([]File, len(t.Files))
		for i, f := range t.Files {
			f.Source, f.Destination = EncodeName(f.Source), EncodeName(f.Destination)
			p.Files[i] = f
		}
		p.Dirs = make([]Dir, len(t.Dirs))
		for i, d := range t.Dirs {
			d.Source, d.Destination = EncodeName(d.Source), EncodeName(d.Destination)
			p.Dirs[i] = d
		}
	}
	return json.Marshal(p)
}

func (t *Transfer) UnmarshalJSON(b []byte) error {
	type plain Transfer
	if err := json.Unmarshal(b, (*plain)(t)); err != nil {
		return err
	}
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

func (v View) MarshalJSON() ([]byte, error) {
	type plain View
	p := plain(v)
	if !v.plainNames() {
		p.CurrentFile = EncodeName(v.CurrentFile)
		if v.Files != nil {
			p.Files = make([]FileView, len(v.Files))
			for i, f := range v.Files {
				f.Source, f.Destination = EncodeName(f.Source), EncodeName(f.Destination)
				p.Files[i] = f
			}
		}
		if v.Dirs != nil {
			p.Dirs = make([]DirView, len(v.Dirs))
			for i, d := range v.Dirs {
				d.Source, d.Destination = EncodeName(d.Source), EncodeName(d.Destination)
				p.Dirs[i] = d
			}
		}
	}
	return json.Marshal(p)
}

func (v *View) UnmarshalJSON(b []byte) error {
	type plain View
	if err := json.Unmarshal(b, (*plain)(v)); err != nil {
		return err
	}
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

// plainNames reports whether every name of t (its request's, its files'
// and directories') is written as it is (EncodeName).
func plainNames(t *Transfer) bool {
	return firstOddName(t) == "" && plainName(t.Request.Destination) && allPlain(t.Request.Sources)
}

// firstOddName is the first name of t's files and directories that is not
// written as it is, or "" (a name is never empty).
func firstOddName(t *Transfer) string {
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
