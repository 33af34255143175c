package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"hash"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"
)

var seedFlag = flag.Int64("checkpoint.seed", 0, "seed for the randomised hash tests (0: from the clock)")

func testRand(t *testing.T) *rand.Rand {
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -checkpoint.seed=%d)", seed, seed)
	return rand.New(rand.NewSource(seed))
}

func write(t *testing.T, h hash.Hash, p []byte) {
	t.Helper()
	if n, err := h.Write(p); n != len(p) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
}

// Hashing a file in pieces, saving the state at every cut and continuing from the
// restored state each time (as a chain of failovers would), gives the digest of
// the whole file hashed in one go.
func TestHashResumeProperty(t *testing.T) {
	r := testRand(t)
	cases := 40
	if testing.Short() {
		cases = 10
	}
	for i := range cases {
		var n int
		switch i % 3 {
		case 0:
			n = r.Intn(3<<20 + 1) // 0..3 MiB
		case 1:
			n = r.Intn(64 * 4) // small: around the block boundaries
		default:
			n = r.Intn(64 << 10)
		}
		data := make([]byte, n)
		r.Read(data)
		want := sha256.Sum256(data)

		cuts := []int{0, n}
		for range 1 + r.Intn(6) {
			cuts = append(cuts, r.Intn(n+1))
		}
		if n >= 64 {
			b := 64 * r.Intn(n/64+1) // a cut on a block boundary
			cuts = append(cuts, b, min(b+1, n), max(b-1, 0))
		}
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)

		h := NewHash()
		pos := 0
		epoch := uint64(1)
		for _, cut := range cuts {
			write(t, h, data[pos:cut])
			pos = cut
			state, err := SaveHash(h)
			if err != nil {
				t.Fatalf("case %d (len %d): SaveHash at %d: %v", i, n, cut, err)
			}
			// Saving does not disturb the running hash.
			var partial [sha256.Size]byte
			h.Sum(partial[:0])
			if p := sha256.Sum256(data[:cut]); partial != p {
				t.Fatalf("case %d (len %d): digest at %d after SaveHash differs", i, n, cut)
			}

			c := Checkpoint{Offset: int64(cut), Hash: state, Epoch: epoch, Source: Source{Size: int64(n)}}
			if r.Intn(2) == 0 {
				h, err = Resume(c)
			} else {
				h, err = RestoreHash(state)
			}
			if err != nil {
				t.Fatalf("case %d (len %d): resuming at %d: %v", i, n, cut, err)
			}
			// A checkpoint whose offset disagrees with its state is refused.
			for _, off := range []int64{int64(cut) + 1, int64(cut) - 1, int64(cut) + 64, int64(r.Intn(n + 1))} {
				if off == int64(cut) || off < 0 {
					continue
				}
				bad := c
				bad.Offset = off
				if _, err := Resume(bad); err == nil {
					t.Fatalf("case %d (len %d): Resume accepted offset %d for a state of %d bytes", i, n, off, cut)
				}
			}
			epoch++
		}
		if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
			t.Fatalf("case %d (len %d, cuts %v): resumed digest %x, want %x", i, n, cuts, got, want)
		}
	}
}

func TestSaveHashState(t *testing.T) {
	h := NewHash()
	write(t, h, bytes.Repeat([]byte{'x'}, 1000))
	state, err := SaveHash(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(state) != stateSize || !strings.HasPrefix(string(state), stateMagic) {
		t.Fatalf("state is %d bytes starting %q; want %d bytes starting %q", len(state), state[:4], stateSize, stateMagic)
	}
	if n := binary.BigEndian.Uint64(state[len(state)-8:]); n != 1000 {
		t.Fatalf("state records %d bytes, want 1000", n)
	}
	if _, err := Resume(Checkpoint{Offset: 1000, Hash: state}); err != nil {
		t.Fatalf("Resume: %v", err)
	}

	// A SHA-224 (or any non-SHA-256) hash is refused rather than saved.
	if _, err := SaveHash(sha256.New224()); err == nil {
		t.Fatal("SaveHash accepted a SHA-224")
	}
	if _, err := SaveHash(fakeHash{}); err == nil {
		t.Fatal("SaveHash accepted a hash that cannot marshal its state")
	}
}

type fakeHash struct{ hash.Hash }

func TestRestoreHashFresh(t *testing.T) {
	for _, state := range [][]byte{nil, {}} {
		h, err := RestoreHash(state)
		if err != nil {
			t.Fatal(err)
		}
		write(t, h, []byte("abc"))
		if got, want := h.Sum(nil), sha256.Sum256([]byte("abc")); !bytes.Equal(got, want[:]) {
			t.Fatalf("digest %x, want %x", got, want)
		}
	}
	h, err := Resume(Checkpoint{})
	if err != nil {
		t.Fatalf("Resume of the zero checkpoint: %v", err)
	}
	if got, want := h.Sum(nil), sha256.Sum256(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("digest %x, want %x", got, want)
	}
}

func TestResumeRefuses(t *testing.T) {
	h := NewHash()
	write(t, h, []byte("hello, world"))
	good, err := SaveHash(h)
	if err != nil {
		t.Fatal(err)
	}
	h224 := sha256.New224()
	write(t, h224, []byte("hello, world"))
	state224, err := h224.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	badMagic := slices.Clone(good)
	badMagic[0] = 'S'

	tests := []struct {
		name    string
		c       Checkpoint
		mention string
	}{
		{"offset beyond the state", Checkpoint{Offset: 13, Hash: good}, "covers 12 bytes but the offset is 13"},
		{"offset before the state", Checkpoint{Offset: 11, Hash: good}, "covers 12 bytes but the offset is 11"},
		{"offset zero with a state", Checkpoint{Offset: 0, Hash: good}, "covers 12 bytes"},
		{"offset without a state", Checkpoint{Offset: 12}, "covers 0 bytes but the offset is 12"},
		{"negative offset", Checkpoint{Offset: -1}, "negative"},
		{"truncated state", Checkpoint{Offset: 12, Hash: good[:len(good)-1]}, "not a saved SHA-256 state"},
		{"padded state", Checkpoint{Offset: 12, Hash: append(slices.Clone(good), 0)}, "not a saved SHA-256 state"},
		{"bad magic", Checkpoint{Offset: 12, Hash: badMagic}, "not a saved SHA-256 state"},
		{"a SHA-224 state", Checkpoint{Offset: 12, Hash: state224}, "not a saved SHA-256 state"},
		{"garbage", Checkpoint{Offset: 3, Hash: []byte("abc")}, "not a saved SHA-256 state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Resume(tt.c)
			if err == nil {
				t.Fatalf("Resume accepted it (hash %v)", h)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("Resume = %q; want it to mention %q", err, tt.mention)
			}
		})
	}
	for _, state := range [][]byte{badMagic, state224, good[:50]} {
		if _, err := RestoreHash(state); err == nil {
			t.Errorf("RestoreHash accepted a bad state %q", state[:4])
		}
	}
}
