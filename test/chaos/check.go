package chaos

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ftagent/ftagent/pkg/agentclient"
	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// Outcome is what the checker found.
type Outcome struct {
	Violations []string
	Transfers  int // accepted
	Completed  int
	Failed     int // failed as expected
	Refused    int // refused at submission as expected
	Unsettled  int // submissions never answered (outcome looked up at the end)
	Files      int
	Bytes      int64 // delivered
	Failovers  int   // sum over transfers
	Resent     int64
	Leases     int
	Writes     int
	// LostRenames: delivered files without a rename record whose writer
	// was killed (kill -9) under the lease it wrote them with; the record
	// is written after the change, so the kill can take it (excused).
	LostRenames int
}

func (o *Outcome) violate(format string, args ...any) {
	o.Violations = append(o.Violations, fmt.Sprintf(format, args...))
}

// Settle waits until every accepted transfer (and every submission whose
// answer was lost) has ended, as the agent reports it, and returns the
// views by id.
func Settle(a *Agent, jobs []*Job, timeout time.Duration) (map[string]transfer.View, error) {
	views := map[string]transfer.View{}
	deadline := time.Now().Add(timeout)
	for _, j := range jobs {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			b, err := agentclient.GetTransferWait(ctx, a.Client, j.ID, transfer.FilesNone, 0)
			v := b.View
			if err == nil && transfer.Terminal(v.State) {
				// Check judges every file: all of them, a page at a time.
				v, err = agentclient.GetTransferAll(ctx, a.Client, j.ID)
			}
			cancel()
			if err == nil && transfer.Terminal(v.State) {
				views[j.ID] = v
				break
			}
			var apiErr *client.APIError
			if err != nil && !j.Accepted && errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
				break // never created: the submission did not get through, or was refused
			}
			if time.Now().After(deadline) {
				if err != nil {
					return views, fmt.Errorf("transfer %s (%s): %v", j.ID, j.Shape, err)
				}
				return views, fmt.Errorf("transfer %s (%s) still %s after %v: %s", j.ID, j.Shape, v.State, timeout, harness.ViewText(v))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return views, nil
}

// Check judges the end state: every transfer, every file, the audit trail.
// killed holds the lease epochs whose holder was killed with SIGKILL (a
// record of a change it made may be missing: see checkAudit).
func Check(a *Agent, jobs []*Job, views map[string]transfer.View, killed map[uint64]bool) (*Outcome, error) {
	o := &Outcome{}
	root, err := filepath.EvalSymlinks(a.Root)
	if err != nil {
		return nil, err
	}
	delivered := map[string]bool{} // absolute destination paths that must have been renamed once
	for _, j := range jobs {
		v, known := views[j.ID]
		if j.ExpectRefused != "" {
			switch {
			case j.Accepted || known:
				o.violate("%s (%s): want it refused with %q, but the agent created it", j.ID, j.Shape, j.ExpectRefused)
			case !strings.Contains(j.SubmitErr, j.ExpectRefused):
				o.Unsettled++ // no answer to the submission, or not this one
				continue
			default:
				o.Refused++
			}
			for _, f := range j.Files {
				sum, err := harness.FileSHA256(filepath.Join(root, f.Destination))
				if err != nil || sum != f.Before {
					o.violate("%s (%s): destination %s changed by a refused transfer (%v)", j.ID, j.Shape, f.Destination, err)
				}
				if _, err := os.Stat(filepath.Join(root, f.Source)); err != nil {
					o.violate("%s (%s): source %s gone after a refused transfer: %v", j.ID, j.Shape, f.Source, err)
				}
			}
			continue
		}
		if !j.Accepted {
			o.Unsettled++
			if !known {
				continue // never created; its files must not appear
			}
		}
		if !known {
			o.violate("%s (%s): accepted but the agent does not know it", j.ID, j.Shape)
			continue
		}
		o.Transfers++
		o.Failovers += v.Failovers
		o.Resent += v.BytesResent
		if j.ExpectFail != "" {
			if v.State != transfer.StateFailed || !strings.Contains(v.Reason+fileReasons(v), j.ExpectFail) {
				o.violate("%s (%s): want failed with %q, got %s %q", j.ID, j.Shape, j.ExpectFail, v.State, v.Reason+fileReasons(v))
				continue
			}
			o.Failed++
			for _, f := range j.Files {
				sum, err := harness.FileSHA256(filepath.Join(root, f.Destination))
				if err != nil || sum != f.Before {
					o.violate("%s (%s): destination %s changed by a failed transfer (%v)", j.ID, j.Shape, f.Destination, err)
				}
				if _, err := os.Stat(filepath.Join(root, f.Source)); err != nil {
					o.violate("%s (%s): source %s gone after a failed transfer: %v", j.ID, j.Shape, f.Source, err)
				}
			}
			continue
		}
		if v.State != transfer.StateCompleted {
			o.violate("%s (%s): ended %s: %s", j.ID, j.Shape, v.State, v.Reason+fileReasons(v))
			continue
		}
		o.Completed++
		byDest := map[string]transfer.FileView{}
		for _, fv := range v.Files {
			byDest[filepath.Clean(fv.Destination)] = fv
		}
		if len(v.Files) != len(j.Files) {
			o.violate("%s (%s): agent lists %d files, workload made %d", j.ID, j.Shape, len(v.Files), len(j.Files))
		}
		for _, f := range j.Files {
			dst := filepath.Join(root, f.Destination)
			delivered[dst] = true
			o.Files++
			sum, err := harness.FileSHA256(dst)
			switch {
			case err != nil:
				o.violate("%s (%s): %s: %v", j.ID, j.Shape, f.Destination, err)
			case sum != f.SHA256:
				o.violate("%s (%s): %s has SHA-256 %s, source had %s", j.ID, j.Shape, f.Destination, sum, f.SHA256)
			default:
				o.Bytes += f.Size
			}
			if fv, ok := byDest[filepath.Clean(f.Destination)]; !ok || fv.SHA256 != f.SHA256 || fv.State != transfer.StateCompleted {
				o.violate("%s (%s): agent reports %s as %+v, want completed with SHA-256 %s", j.ID, j.Shape, f.Destination, fv, f.SHA256)
			}
			_, serr := os.Stat(filepath.Join(root, f.Source))
			switch {
			case j.DeleteSrc && !errors.Is(serr, fs.ErrNotExist):
				o.violate("%s (%s): source %s not deleted (%v)", j.ID, j.Shape, f.Source, serr)
			case !j.DeleteSrc && serr != nil:
				o.violate("%s (%s): source %s lost: %v", j.ID, j.Shape, f.Source, serr)
			}
		}
	}

	// No .part survives anywhere once every transfer has ended.
	for _, top := range []string{"in", "out"} {
		parts, err := harness.PartFiles(filepath.Join(root, top))
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			o.violate("leftover %s", p)
		}
	}

	recs, err := audit.ReadFile(a.Audit)
	if err != nil {
		return nil, err
	}
	checkAudit(o, recs, delivered, killed)
	return o, nil
}

func fileReasons(v transfer.View) string {
	var b strings.Builder
	for _, f := range v.Files {
		if f.Reason != "" {
			b.WriteString(" " + f.Source + ": " + f.Reason)
		}
	}
	return b.String()
}

// checkAudit compares every storage change with the lease history: each was
// made by the holder of the epoch it names, after that lease began and
// before any later lease began; epochs only grew; every delivered file was
// renamed into place exactly once and nothing else was.
//
// A record is written after its change, so an instance killed between the
// two loses it: a group of small files renamed together, then recorded, is
// such a window. A delivered file without a rename record is therefore
// excused (counted in LostRenames) when the last write to its .part was
// made under an epoch in killed, whose holder was killed; the next active
// then finds the file in place and records its completion without renaming
// it again.
func checkAudit(o *Outcome, recs []audit.Record, delivered map[string]bool, killed map[uint64]bool) {
	type lease struct {
		inst string
		at   int64
	}
	leases := map[uint64]lease{}
	var order []audit.Record
	for _, r := range recs {
		if r.Op != audit.OpLease {
			continue
		}
		if l, dup := leases[r.Epoch]; dup {
			o.violate("epoch %d taken twice: by %s and by %s", r.Epoch, l.inst, r.Instance)
		}
		leases[r.Epoch] = lease{r.Instance, r.Checked}
		order = append(order, r)
	}
	o.Leases = len(order)
	sort.SliceStable(order, func(i, k int) bool { return order[i].Checked < order[k].Checked })
	for i := 1; i < len(order); i++ {
		if order[i].Epoch <= order[i-1].Epoch {
			o.violate("lease epochs went back: %s took %d after %s took %d", order[i].Instance, order[i].Epoch, order[i-1].Instance, order[i-1].Epoch)
		}
	}
	// next[e] = when the first lease above e began.
	epochs := make([]uint64, 0, len(leases))
	for e := range leases {
		epochs = append(epochs, e)
	}
	sort.Slice(epochs, func(i, k int) bool { return epochs[i] < epochs[k] })
	endOf := func(e uint64) int64 {
		end := int64(1<<63 - 1)
		for _, later := range epochs {
			if later > e && leases[later].at < end {
				end = leases[later].at
			}
		}
		return end
	}
	renames := map[string]int{}
	lastPartEpoch := map[string]uint64{} // final path → epoch of the last change to its .part
	for _, r := range recs {
		if !r.Storage() {
			continue
		}
		if final, ok := strings.CutSuffix(r.Path, ".part"); ok && (r.Op == audit.OpWrite || r.Op == audit.OpTruncate) {
			if r.Epoch >= lastPartEpoch[final] {
				lastPartEpoch[final] = r.Epoch
			}
		}
		o.Writes++
		l, ok := leases[r.Epoch]
		switch {
		case !ok:
			o.violate("%s %s %s under epoch %d, which it never took", r.Instance, r.Op, r.Path, r.Epoch)
		case l.inst != r.Instance:
			o.violate("%s %s %s under epoch %d, which %s held", r.Instance, r.Op, r.Path, r.Epoch, l.inst)
		case r.Checked < l.at:
			o.violate("%s %s %s under epoch %d before taking it", r.Instance, r.Op, r.Path, r.Epoch)
		case r.Checked >= endOf(r.Epoch):
			o.violate("%s %s %s (offset %d, %d bytes) under epoch %d at %s, %v after a later lease began",
				r.Instance, r.Op, r.Path, r.Offset, r.N, r.Epoch, time.Unix(0, r.Checked).Format(time.RFC3339Nano),
				time.Duration(r.Checked-endOf(r.Epoch)))
		}
		if r.Op == audit.OpRename {
			renames[r.Path]++
		}
	}
	for p, n := range renames {
		if !delivered[p] {
			o.violate("%s was renamed into place %d times but belongs to no completed transfer", p, n)
		} else if n != 1 {
			o.violate("%s was delivered %d times", p, n)
		}
	}
	for p := range delivered {
		if renames[p] == 0 {
			if e, ok := lastPartEpoch[p]; ok && killed[e] {
				o.LostRenames++
				continue
			}
			o.violate("%s was delivered without a rename in the audit trail", p)
		}
	}
}
