package chaos

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
)

// PairWorkload makes the transfers of a Pair: each from the sender's
// storage (in/) to the receiver's (out/), through Workload's Submit (the
// sender's client, with its address list) and Snapshot.
type PairWorkload struct {
	*Workload
	p   *Pair
	rng *rand.Rand
	// RecoveryTimeout of every transfer: long enough that each should
	// complete whatever the faults.
	RecoveryTimeout time.Duration
}

// NewPairWorkload draws shapes from seed.
func NewPairWorkload(p *Pair, seed uint64) *PairWorkload {
	return &PairWorkload{Workload: NewWorkload(p.Sender, seed), p: p, rng: rand.New(rand.NewPCG(seed, 0xa9e7)), RecoveryTimeout: 2 * time.Minute}
}

// pairShapes and their weights.
var pairShapes = []struct {
	name   string
	weight int
}{
	{"small", 2}, {"checkpoint+1", 1}, {"mib", 4}, {"tree", 3},
}

// PairBandwidth is the --bwlimit of the "mib" shape: its 2–8 MiB take 1–4 s,
// in flight across faults.
const PairBandwidth = 2 << 20

func (w *PairWorkload) pick() string {
	total := 0
	for _, s := range pairShapes {
		total += s.weight
	}
	r := w.rng.IntN(total)
	for _, s := range pairShapes {
		if r < s.weight {
			return s.name
		}
		r -= s.weight
	}
	return pairShapes[0].name
}

// Make writes the source files of the next job at the sender and returns
// it, unsubmitted. Shapes: small (one file of 0–64 KiB), checkpoint+1 (one
// of 1 MiB + 1), mib (one of 2–8 MiB at PairBandwidth), tree (a recursive
// transfer of 2–16 files of 0–96 KiB, one level of subdirectory); a
// quarter with --delete-source.
func (w *PairWorkload) Make() (*Job, error) {
	w.mu.Lock()
	w.n++
	id := fmt.Sprintf("pair-%04d", w.n)
	shape := w.pick()
	seed := w.rng.Uint64()
	del := w.rng.IntN(4) == 0
	var bw int64
	var sizes []int64
	switch shape {
	case "small":
		sizes = []int64{int64(w.rng.IntN(64<<10 + 1))}
	case "checkpoint+1":
		sizes = []int64{CheckpointBytes + 1}
	case "mib":
		sizes = []int64{int64(2<<20 + w.rng.IntN(6<<20+1))}
		bw = PairBandwidth
	case "tree":
		n := 2 + w.rng.IntN(15)
		for range n {
			sizes = append(sizes, int64(w.rng.IntN(96<<10+1)))
		}
	}
	w.mu.Unlock()

	rt := transfer.Duration(w.RecoveryTimeout)
	req := transfer.Request{DestinationAgent: w.p.Receiver.Name(), BandwidthLimit: bw, RecoveryTimeout: &rt}
	if del {
		req.Disposition = "delete"
	}
	j := &Job{ID: id, Shape: shape, DeleteSrc: del}
	srcDir := filepath.Join("in", id)
	dstDir := filepath.Join("out", id)
	if shape == "tree" {
		for i, size := range sizes {
			rel := fmt.Sprintf("f%02d.bin", i)
			if i%3 == 2 {
				rel = filepath.Join("sub", rel)
			}
			f, err := w.writeSource(filepath.Join(srcDir, "tree", rel), filepath.Join(dstDir, "tree", rel), size, seed+uint64(i))
			if err != nil {
				return nil, err
			}
			j.Files = append(j.Files, f)
		}
		req.Recursive = true
		req.Sources = []string{filepath.Join(srcDir, "tree")}
		req.Destination = dstDir + "/" // the tree lands inside it, as tree/
	} else {
		f, err := w.writeSource(filepath.Join(srcDir, "data.bin"), filepath.Join(dstDir, "data.bin"), sizes[0], seed)
		if err != nil {
			return nil, err
		}
		req.Sources = []string{f.Source}
		req.Destination = f.Destination
		j.Files = []ExpectedFile{f}
	}
	j.Request = req
	return j, nil
}
