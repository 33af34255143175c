package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// CheckpointBytes is the checkpoint interval the suite runs with; sizes of
// the workload sit around it.
const CheckpointBytes = 1 << 20

// ExpectedFile is one file a transfer should deliver.
type ExpectedFile struct {
	Source      string // relative to the agent's transferRoot (Agent.Root)
	Destination string
	Size        int64
	SHA256      string // of the source, computed when it was written
	Before      string // SHA-256 of what the destination held before, if anything
}

// Job is one transfer of the workload and what should become of it.
type Job struct {
	ID         string
	Shape      string
	Request    transfer.Request
	Files      []ExpectedFile
	DeleteSrc  bool
	ExpectFail string // non-empty: the transfer must fail with a reason containing this
	// ExpectRefused, non-empty: the agent must refuse the request, with a
	// reason containing this, and create nothing.
	ExpectRefused string

	Accepted  bool   // the agent answered the submission with the transfer
	SubmitErr string // the last error while submitting, if never accepted
	Submitted time.Time
}

// Workload makes and submits transfers.
type Workload struct {
	a   *Agent
	rng *rand.Rand
	mu  sync.Mutex
	n   int
	// Jobs in submission order.
	Jobs []*Job
}

// NewWorkload draws shapes from seed.
func NewWorkload(a *Agent, seed uint64) *Workload {
	return &Workload{a: a, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
}

// shapes and their weights.
var shapes = []struct {
	name   string
	weight int
}{
	{"empty", 2}, {"one-byte", 2}, {"small", 3},
	{"checkpoint-1", 2}, {"checkpoint", 2}, {"checkpoint+1", 2},
	{"medium", 3}, {"large", 2}, {"directory", 3},
	{"overwrite", 2}, {"exists", 1},
}

func (w *Workload) pick() string {
	total := 0
	for _, s := range shapes {
		total += s.weight
	}
	r := w.rng.IntN(total)
	for _, s := range shapes {
		if r < s.weight {
			return s.name
		}
		r -= s.weight
	}
	return shapes[0].name
}

// Make writes the source files of the next job and returns it, unsubmitted.
func (w *Workload) Make() (*Job, error) {
	w.mu.Lock()
	w.n++
	id := fmt.Sprintf("chaos-%04d", w.n)
	shape := w.pick()
	seed := w.rng.Uint64()
	del := w.rng.IntN(4) == 0
	bw := int64(0)
	var sizes []int64
	switch shape {
	case "empty":
		sizes = []int64{0}
	case "one-byte":
		sizes = []int64{1}
	case "small", "overwrite", "exists":
		sizes = []int64{int64(1 + w.rng.IntN(64<<10))}
	case "checkpoint-1":
		sizes = []int64{CheckpointBytes - 1}
	case "checkpoint":
		sizes = []int64{CheckpointBytes}
	case "checkpoint+1":
		sizes = []int64{CheckpointBytes + 1}
	case "medium":
		sizes = []int64{int64(2<<20 + w.rng.IntN(14<<20))}
		bw = 16 << 20
	case "large":
		sizes = []int64{int64(32<<20 + w.rng.IntN(32<<20+1))}
		bw = 32 << 20
	case "directory":
		n := 2 + w.rng.IntN(15)
		for i := 0; i < n; i++ {
			sizes = append(sizes, int64(w.rng.IntN(96<<10)))
		}
	}
	if shape == "exists" {
		del = false // a refused transfer deletes nothing
	}
	w.mu.Unlock()

	j := &Job{ID: id, Shape: shape, DeleteSrc: del}
	base := w.a.Root
	srcDir := filepath.Join("in", id)
	dstDir := filepath.Join("out", id)
	if err := os.MkdirAll(filepath.Join(base, srcDir), 0o750); err != nil {
		return nil, err
	}
	req := transfer.Request{BandwidthLimit: bw}
	if del {
		req.Disposition = "delete"
	}
	if shape == "directory" {
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
		req.Destination = dstDir // the directory tree lands inside it, as tree/
	} else {
		f, err := w.writeSource(filepath.Join(srcDir, "data.bin"), filepath.Join(dstDir, "data.bin"), sizes[0], seed)
		if err != nil {
			return nil, err
		}
		req.Sources = []string{f.Source}
		req.Destination = f.Destination
		if shape == "overwrite" || shape == "exists" {
			// Something is already at the destination.
			if err := os.MkdirAll(filepath.Join(base, dstDir), 0o750); err != nil {
				return nil, err
			}
			old := filepath.Join(base, f.Destination)
			if err := harness.WriteRandomFile(old, int64(100+w.rng.IntN(1000)), seed^0xdead); err != nil {
				return nil, err
			}
			if f.Before, err = harness.FileSHA256(old); err != nil {
				return nil, err
			}
			if shape == "overwrite" {
				req.Overwrite = "overwrite"
			} else {
				// Refused before it is accepted (the copy would fail it).
				j.ExpectRefused = "destination exists"
			}
		}
		j.Files = []ExpectedFile{f}
	}
	j.Request = req
	return j, nil
}

func (w *Workload) writeSource(src, dst string, size int64, seed uint64) (ExpectedFile, error) {
	abs := filepath.Join(w.a.Root, src)
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return ExpectedFile{}, err
	}
	if err := harness.WriteRandomFile(abs, size, seed); err != nil {
		return ExpectedFile{}, err
	}
	sum, err := harness.FileSHA256(abs)
	if err != nil {
		return ExpectedFile{}, err
	}
	return ExpectedFile{Source: src, Destination: dst, Size: size, SHA256: sum}, nil
}

// Submit sends j through the client with its address list, retrying (with
// the same id, so the agent creates it once) until it is accepted, refused
// for good, or patience runs out.
func (w *Workload) Submit(ctx context.Context, j *Job, patience time.Duration) {
	w.mu.Lock()
	w.Jobs = append(w.Jobs, j)
	w.mu.Unlock()
	j.Submitted = time.Now()
	deadline := time.Now().Add(patience)
	for {
		var v transfer.View
		err := w.a.Client.Do(ctx, http.MethodPost, api.PathTransfers, api.CreateTransferRequest{ID: j.ID, Request: j.Request}, &v)
		if err == nil && v.ID == j.ID {
			w.mu.Lock()
			j.Accepted, j.SubmitErr = true, ""
			w.mu.Unlock()
			return
		}
		if err == nil {
			err = fmt.Errorf("answer for %s names transfer %q", j.ID, v.ID)
		}
		w.mu.Lock()
		j.SubmitErr = err.Error()
		w.mu.Unlock()
		var se *client.APIError
		if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && se.Status != http.StatusMisdirectedRequest {
			return // refused: a request error is final
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Snapshot returns the jobs so far.
func (w *Workload) Snapshot() []*Job {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*Job(nil), w.Jobs...)
}
