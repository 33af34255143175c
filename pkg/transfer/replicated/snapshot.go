package replicated

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ftagent/ftagent/pkg/replog"
)

// The snapshot of the transfers is the JSON object {"transfers":[…]}: every
// transfer in creation order (seqBefore), each as json.Marshal writes its
// transferJSON (namejson.go), names escaped; no transfers is [], and null
// stands for the empty state. Earlier builds wrote it with one json.Marshal
// and read it with one json.Unmarshal, and builds of a rolling upgrade read
// one another's, so the bytes stay exactly those.
//
// But it is streamed both ways. With a transfer of a million files the JSON
// is hundreds of megabytes, and the files in the state's tables take a
// fifth of the memory their File values do (files.go): so the snapshot is
// written one file at a time, each unpacked as it is written, and restored
// one file at a time into a table. Beyond the state, writing holds one
// file's JSON (and the segments that Apply copies meanwhile); restoring
// holds the state being built and one file's JSON.

// Snapshot captures the state. It holds the lock that Apply waits for only
// to share the transfers' file tables, which Apply then copies a segment at
// a time before it changes them (files.go): the files are unpacked and
// encoded after the lock is let go (WriteJSON), so a large history does not
// stall the log.
func (s *State) Snapshot() (replog.Snapshot, error) {
	s.mu.Lock() // sharing a table changes its generation
	all := make([]*Transfer, 0, len(s.transfers))
	for _, t := range s.transfers {
		all = append(all, t.shared())
	}
	inbound := make([]*InboundTransfer, 0, len(s.inbound))
	for _, t := range s.inbound {
		inbound = append(inbound, t.clone())
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return seqBefore(all[i], all[j]) })
	sort.Slice(inbound, func(i, j int) bool {
		return InboundKey(inbound[i].Agent, inbound[i].ID) < InboundKey(inbound[j].Agent, inbound[j].ID)
	})
	return &snapshot{transfers: all, inbound: inbound}, nil
}

// seqBefore orders transfers by creation (Seq, the log index of their
// create), then by ID: a snapshot not written by this package may hold
// equal Seqs, and the order must still be the same on every instance (the
// snapshot's bytes, the history a create prunes).
func seqBefore(a, b *Transfer) bool {
	return a.Seq < b.Seq || a.Seq == b.Seq && a.ID < b.ID
}

// snapshot is the state as Snapshot captured it: the transfers in creation
// order, copies that Apply does not change (the file tables they share
// with the state, it copies before it changes).
type snapshot struct {
	transfers []*Transfer
	// inbound is what other agents send here (inbound.go), copied: it is
	// small, a record per file in flight. Written as "inbound" after the
	// transfers only when there is any, so that an agent that receives
	// nothing writes the bytes it always wrote.
	inbound []*InboundTransfer
}

func (snap *snapshot) Release() { snap.transfers, snap.inbound = nil, nil }

func (snap *snapshot) WriteJSON(w io.Writer) error {
	jw := &jsonWriter{w: w}
	jw.enc = json.NewEncoder(&jw.buf)
	jw.raw(`{"transfers":[`)
	for i, t := range snap.transfers {
		if i > 0 {
			jw.raw(",")
		}
		jw.transfer(t)
		if jw.err != nil {
			return fmt.Errorf("write transfer %s: %w", t.ID, jw.err)
		}
	}
	jw.raw("]")
	if len(snap.inbound) > 0 {
		jw.raw(`,"inbound":`)
		jw.value(snap.inbound)
	}
	jw.raw("}")
	return jw.err
}

// jsonWriter writes a snapshot's JSON to w, and keeps the first error.
type jsonWriter struct {
	w   io.Writer
	buf bytes.Buffer
	enc *json.Encoder // into buf
	err error
}

func (jw *jsonWriter) raw(s string) {
	if jw.err == nil {
		_, jw.err = io.WriteString(jw.w, s)
	}
}

func (jw *jsonWriter) write(b []byte) {
	if jw.err == nil {
		_, jw.err = jw.w.Write(b)
	}
}

// value writes v as json.Marshal does: the encoder writes the same bytes
// (HTML escaped alike), but for the newline it ends them with.
func (jw *jsonWriter) value(v any) {
	if jw.err != nil {
		return
	}
	jw.buf.Reset()
	if jw.err = jw.enc.Encode(v); jw.err == nil {
		jw.write(jw.buf.Bytes()[:jw.buf.Len()-1])
	}
}

// filesNull is how json.Marshal writes the files of a transfer whose
// Files is nil, and where they go: "files" follows the fields id, seq,
// request, state, reason, created and ended, none of which holds a key
// "files", and a string's quotes are escaped, so the first match is it.
var filesNull = []byte(`,"files":null,`)

// transfer writes t as json.Marshal writes its escaped transferJSON: the
// transfer without its files, with the files written one at a time in
// place of their null, each with its names escaped (EncodeName leaves a
// plain name as it is, so escaping each name is escaping all of a transfer
// that has one that is not plain, as escaped does).
func (jw *jsonWriter) transfer(t *Transfer) {
	head := *t
	head.Files, head.files = nil, nil
	hj := head.escaped()
	// escaped gives a transfer whose directories' names it escaped new,
	// empty files: json.Marshal of it wrote [] where a transfer without
	// files otherwise has null. So does this.
	emptyFiles := hj.Files != nil
	hj.Files = nil
	b, err := json.Marshal(hj)
	if err != nil {
		jw.err = err
		return
	}
	at := bytes.Index(b, filesNull)
	if at < 0 {
		jw.err = errors.New(`no "files" in the transfer's JSON`) // a field of Transfer moved before it
		return
	}
	at += len(`,"files":`)
	jw.write(b[:at])
	n := t.FileCount()
	if n == 0 && !emptyFiles {
		jw.raw("null")
	} else {
		jw.raw("[")
		var f File // reused: it escapes to the encoder once per transfer, not once per file
		for i := range n {
			if i > 0 {
				jw.raw(",")
			}
			f = t.FileAt(i) // unpacked one at a time
			f.Source, f.Destination = EncodeName(f.Source), EncodeName(f.Destination)
			jw.value(&f)
		}
		jw.raw("]")
	}
	jw.write(b[at+len("null"):])
}

// Restore decodes a snapshot from dec into a new state, one file at a time,
// and returns the commit that replaces the state with it. Keys are matched
// as json.Unmarshal matched them (case aside), one it does not know is
// skipped, and one given twice inside a transfer is taken as json.Unmarshal
// took it. A second "transfers" replaces the first: json.Unmarshal decoded
// it into the first one's transfers, which a stream no longer holds; no
// build writes a key twice.
func (s *State) Restore(dec *json.Decoder) (commit func(), err error) {
	m, err := decodeSnapshot(dec)
	if err != nil {
		return nil, fmt.Errorf("decode transfer snapshot: %w", err)
	}
	return func() {
		s.mu.Lock()
		s.transfers, s.inbound = m.transfers, m.inbound
		s.mu.Unlock()
	}, nil
}

// decoded is a snapshot's state, decoded.
type decoded struct {
	transfers map[string]*Transfer
	inbound   map[string]*InboundTransfer
}

func decodeSnapshot(dec *json.Decoder) (decoded, error) {
	d := decoded{transfers: map[string]*Transfer{}}
	if null, err := replog.OpenValue(dec, '{'); null || err != nil {
		return d, err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return decoded{}, err
		}
		k, _ := key.(string)
		switch {
		case strings.EqualFold(k, "transfers"):
			if d.transfers, err = decodeTransfers(dec); err != nil {
				return decoded{}, err
			}
		case k == "inbound":
			var list []*InboundTransfer
			if err := dec.Decode(&list); err != nil {
				return decoded{}, fmt.Errorf("inbound: %w", err)
			}
			d.inbound = make(map[string]*InboundTransfer, len(list))
			for i, t := range list {
				if t == nil || t.Agent == "" || t.ID == "" {
					return decoded{}, fmt.Errorf("inbound transfer %d names no agent or id", i)
				}
				if t.Files == nil && !t.Ended {
					t.Files = map[string]*InboundFile{}
				}
				for p, f := range t.Files {
					if f == nil {
						return decoded{}, fmt.Errorf("inbound transfer %d: file %q is null", i, p)
					}
				}
				d.inbound[InboundKey(t.Agent, t.ID)] = t
			}
		default:
			if err := replog.SkipValue(dec); err != nil {
				return decoded{}, err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return decoded{}, err
	}
	return d, nil
}

// decodeTransfers decodes the transfers' array, one transfer at a time,
// each recounted, and trimmed if it has ended.
func decodeTransfers(dec *json.Decoder) (map[string]*Transfer, error) {
	m := map[string]*Transfer{}
	if null, err := replog.OpenValue(dec, '['); null || err != nil {
		if err != nil {
			return nil, fmt.Errorf("transfers: %w", err)
		}
		return m, nil
	}
	for i := 0; dec.More(); i++ {
		tj, err := decodeTransfer(dec)
		if err != nil {
			return nil, fmt.Errorf("transfer %d: %w", i, err)
		}
		if tj == nil {
			return nil, fmt.Errorf("transfer %d is null", i)
		}
		if err := tj.unescape(); err != nil {
			return nil, fmt.Errorf("transfer %d: %w", i, err)
		}
		t := (*Transfer)(tj)
		if t.files == nil {
			t.files = newFileTable(nil)
		}
		t.recount()
		if Terminal(t.State) {
			t.files.ended()
		}
		m[t.ID] = t
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeTransfer decodes one transfer (nil for null), its files one at a
// time into a table (their names unescaped): the decoder holds one file's
// JSON at most, not the transfer's, which for a million files is hundreds
// of megabytes. Its other fields are gathered as they come and decoded by
// encoding/json, so that they are read as json.Unmarshal read them. A
// second "files" replaces the first (json.Unmarshal merged it into the
// first's files, which a stream no longer holds; no build writes a key
// twice).
func decodeTransfer(dec *json.Decoder) (*transferJSON, error) {
	if null, err := replog.OpenValue(dec, '{'); null || err != nil {
		return nil, err
	}
	var files *fileTable
	rest := []byte{'{'}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		if strings.EqualFold(key, "files") {
			if files, err = decodeFiles(dec); err != nil {
				return nil, err
			}
			continue
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		k, err := json.Marshal(key)
		if err != nil {
			return nil, err
		}
		if len(rest) > 1 {
			rest = append(rest, ',')
		}
		rest = append(append(append(rest, k...), ':'), v...)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var tj transferJSON
	if err := json.Unmarshal(append(rest, '}'), &tj); err != nil {
		return nil, err
	}
	tj.files = files
	return &tj, nil
}

// decodeFiles decodes a transfer's files, one at a time, into a table, a
// batch at a time.
func decodeFiles(dec *json.Decoder) (*fileTable, error) {
	ft := newFileTable(nil)
	if null, err := replog.OpenValue(dec, '['); null || err != nil {
		if err != nil {
			return nil, fmt.Errorf("files: %w", err)
		}
		return ft, nil
	}
	batch := make([]File, 0, segmentSize)
	for n := 0; dec.More(); n++ {
		var f File
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("file %d: %w", n, err)
		}
		if err := decodeNames(&f.Source, &f.Destination); err != nil {
			return nil, fmt.Errorf("file %d: %w", n, err)
		}
		if batch = append(batch, f); len(batch) == cap(batch) {
			ft.append(batch)
			batch = batch[:0]
		}
	}
	ft.append(batch)
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return ft, nil
}
