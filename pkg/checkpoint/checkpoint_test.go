package checkpoint

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/replog"
)

func TestCheck(t *testing.T) {
	src := Source{Size: 1000, ModTime: 1_700_000_000_000_000_000, Inode: 42, Device: 7}
	at := func(off int64, epoch uint64, s Source) Checkpoint {
		return Checkpoint{Offset: off, Epoch: epoch, Source: s}
	}
	bigger := src
	bigger.Size = 2000
	touched := src
	touched.ModTime++
	replaced := src
	replaced.Inode = 43
	otherDev := src
	otherDev.Device = 8
	errNegative := errors.New("negative") // matched by message, there is no sentinel

	tests := []struct {
		name       string
		prev, next Checkpoint
		want       error  // nil: accepted
		mention    string // the error's text must contain this
	}{
		{"first checkpoint from zero", Checkpoint{}, at(100, 1, src), nil, ""},
		{"first checkpoint at offset 0", Checkpoint{}, at(0, 1, src), nil, ""},
		{"first checkpoint at the end", Checkpoint{}, at(1000, 1, src), nil, ""},
		{"first checkpoint of an empty file", Checkpoint{}, at(0, 3, Source{ModTime: 5}), nil, ""},
		{"forward, same epoch", at(100, 1, src), at(200, 1, src), nil, ""},
		{"forward, newer epoch", at(100, 1, src), at(200, 2, src), nil, ""},
		{"equal offset, same epoch (replay)", at(100, 1, src), at(100, 1, src), nil, ""},
		{"equal offset, newer epoch (resume re-records its start)", at(100, 1, src), at(100, 2, src), nil, ""},
		{"to the end of the file", at(100, 1, src), at(1000, 1, src), nil, ""},

		{"stale epoch", at(100, 2, src), at(200, 1, src), replog.ErrStaleEpoch, "epoch 1, last checkpoint has epoch 2"},
		{"stale epoch, equal offset", at(100, 5, src), at(100, 4, src), replog.ErrStaleEpoch, "epoch 4"},
		{"stale epoch wins over backwards", at(100, 2, src), at(50, 1, src), replog.ErrStaleEpoch, ""},
		{"stale epoch against a fresh prev with epoch", Checkpoint{Epoch: 3}, at(0, 2, src), replog.ErrStaleEpoch, ""},

		{"backwards, same epoch", at(200, 1, src), at(100, 1, src), ErrBackwards, "offset 100, last checkpoint is at 200"},
		{"backwards, newer epoch", at(200, 1, src), at(199, 2, src), ErrBackwards, "offset 199"},
		{"backwards to zero", at(1, 1, src), at(0, 1, src), ErrBackwards, ""},

		{"source size changed", at(100, 1, src), at(200, 1, bigger), ErrSourceChanged, "size 2000"},
		{"source mtime changed", at(100, 1, src), at(200, 2, touched), ErrSourceChanged, ""},
		{"source replaced (inode)", at(100, 1, src), at(100, 2, replaced), ErrSourceChanged, "inode 43"},
		{"source on another device", at(100, 1, src), at(200, 1, otherDev), ErrSourceChanged, "dev 8"},
		{"source changed with prev at offset 0", at(0, 1, src), at(0, 2, touched), ErrSourceChanged, ""},
		{"source changed, prev offset > 0 but zero source", at(10, 1, Source{}), at(20, 1, src), ErrSourceChanged, ""},

		{"beyond size, first checkpoint", Checkpoint{}, at(1001, 1, src), ErrBeyondSize, "offset 1001, source size 1000"},
		{"beyond size, later", at(100, 1, src), at(1500, 1, src), ErrBeyondSize, ""},
		{"beyond size of an empty source", Checkpoint{}, at(1, 1, Source{}), ErrBeyondSize, ""},

		{"negative offset", Checkpoint{}, at(-1, 1, src), errNegative, "-1"},
		{"negative offset after a checkpoint", at(100, 1, src), at(-5, 1, src), errNegative, "-5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.prev, tt.next)
			switch {
			case tt.want == nil:
				if err != nil {
					t.Fatalf("Check refused: %v", err)
				}
				return
			case err == nil:
				t.Fatalf("Check accepted; want an error (%v)", tt.want)
			case tt.want == errNegative:
				for _, s := range []error{replog.ErrStaleEpoch, ErrBackwards, ErrSourceChanged, ErrBeyondSize} {
					if errors.Is(err, s) {
						t.Fatalf("Check = %v; a negative offset is not %v", err, s)
					}
				}
				if !strings.Contains(err.Error(), "negative") {
					t.Fatalf("Check = %v; want it to say negative", err)
				}
			case !errors.Is(err, tt.want):
				t.Fatalf("Check = %v; want errors.Is %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("Check = %q; want it to mention %q", err, tt.mention)
			}
		})
	}
}

// The JSON field names are part of the replicated log's format: changing them
// breaks replay of existing logs and snapshots.
func TestCheckpointJSON(t *testing.T) {
	c := Checkpoint{Offset: 5, Hash: []byte{1, 2, 3}, Epoch: 9, Source: Source{Size: 10, ModTime: 11, Inode: 12, Device: 13}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"offset":5,"hash":"AQID","epoch":9,"source":{"size":10,"mtime":11,"inode":12,"dev":13}}`
	if string(b) != want {
		t.Fatalf("json = %s\nwant   %s", b, want)
	}
	var back Checkpoint
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Offset != c.Offset || string(back.Hash) != string(c.Hash) || back.Epoch != c.Epoch || !back.Source.Same(c.Source) {
		t.Fatalf("round trip = %+v, want %+v", back, c)
	}
	b, err = json.Marshal(Source{Size: 1, ModTime: 2})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"size":1,"mtime":2}` {
		t.Fatalf("json of a source without inode = %s", b)
	}
}
