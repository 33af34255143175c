package chaos

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// PairOutcome is what the checker of a Pair found.
type PairOutcome struct {
	Outcome // the transfers and files; Leases and Writes are the receiver's
	// SenderLeases and SenderWrites are those of the sender's trail.
	SenderLeases, SenderWrites int
	// StaleRefusals: the receiver's refusals of a deposed active of the
	// sender; StaleChecked of them named both epochs, checked against the
	// sender's lease history.
	StaleRefusals, StaleChecked int
	// ExtraFiles: final files at the receiver of no completed transfer.
	ExtraFiles int
}

// CheckPair judges the end state of a Pair: every accepted transfer
// completed (the workload sets a recovery timeout every transfer should
// meet, so a failure is a violation, with its reason); every file at the
// receiver with its source's SHA-256, and exactly the files of the
// completed transfers under the receiver's out/ (nothing under the
// sender's); sources deleted where asked, kept elsewhere; no .part at
// either agent; each agent's audit trail judged as Check judges one
// (epochs grow, each storage change made under the lease it names and
// within it, each delivered file renamed into place once at the receiver,
// nothing renamed at the sender); and every refusal the receiver audited
// of an inbound call is of an instance of the sender, as a stale sender, at
// an epoch that instance held at the sender, older than one the sender had
// granted by then (checkStaleRefusals).
//
// killedSender and killedReceiver hold each agent's lease epochs whose
// holder was killed -9 (see checkAudit).
func CheckPair(p *Pair, jobs []*Job, views map[string]transfer.View, killedSender, killedReceiver map[uint64]bool) (*PairOutcome, error) {
	o := &PairOutcome{}
	sroot, err := filepath.EvalSymlinks(p.Sender.Root)
	if err != nil {
		return nil, err
	}
	rroot, err := filepath.EvalSymlinks(p.Receiver.Root)
	if err != nil {
		return nil, err
	}
	delivered := map[string]bool{} // absolute paths at the receiver
	for _, j := range jobs {
		v, known := views[j.ID]
		if !j.Accepted {
			o.Unsettled++
			if !known {
				continue // never created: its files must not appear (below)
			}
		}
		if !known {
			o.violate("%s (%s): accepted but the sender does not know it", j.ID, j.Shape)
			continue
		}
		o.Transfers++
		o.Failovers += v.Failovers
		o.Resent += v.BytesResent
		byDest := map[string]transfer.FileView{}
		for _, fv := range v.Files {
			byDest[filepath.Clean(fv.Destination)] = fv
		}
		if v.State != transfer.StateCompleted {
			o.violate("%s (%s): ended %s: %s", j.ID, j.Shape, v.State, v.Reason+fileReasons(v))
			// What it reports delivered may be in place; nothing else.
			for _, f := range j.Files {
				if fv, ok := byDest[filepath.Clean(f.Destination)]; ok && fv.State == transfer.StateCompleted {
					delivered[filepath.Join(rroot, f.Destination)] = true
				}
			}
			continue
		}
		o.Completed++
		if len(v.Files) != len(j.Files) {
			o.violate("%s (%s): the sender lists %d files, the workload made %d", j.ID, j.Shape, len(v.Files), len(j.Files))
		}
		for _, f := range j.Files {
			dst := filepath.Join(rroot, f.Destination)
			delivered[dst] = true
			o.Files++
			sum, err := harness.FileSHA256(dst)
			switch {
			case err != nil:
				o.violate("%s (%s): %s at %s: %v", j.ID, j.Shape, f.Destination, p.Receiver.Name(), err)
			case sum != f.SHA256:
				o.violate("%s (%s): %s at %s has SHA-256 %s, the source had %s", j.ID, j.Shape, f.Destination, p.Receiver.Name(), sum, f.SHA256)
			default:
				o.Bytes += f.Size
			}
			if fv, ok := byDest[filepath.Clean(f.Destination)]; !ok || fv.SHA256 != f.SHA256 || fv.State != transfer.StateCompleted {
				o.violate("%s (%s): the sender reports %s as %+v, want completed with SHA-256 %s", j.ID, j.Shape, f.Destination, fv, f.SHA256)
			}
			_, serr := os.Stat(filepath.Join(sroot, f.Source))
			switch {
			case j.DeleteSrc && !errors.Is(serr, fs.ErrNotExist):
				o.violate("%s (%s): source %s not deleted (%v)", j.ID, j.Shape, f.Source, serr)
			case !j.DeleteSrc && serr != nil:
				o.violate("%s (%s): source %s lost: %v", j.ID, j.Shape, f.Source, serr)
			}
		}
	}

	// Exactly the delivered files at the receiver; nothing written at the
	// sender's destination tree; no .part anywhere.
	err = filepath.WalkDir(filepath.Join(rroot, "out"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasSuffix(path, ".part") {
			return nil
		}
		if !delivered[path] {
			o.ExtraFiles++
			o.violate("%s at %s belongs to no completed transfer", path, p.Receiver.Name())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(sroot, "out")); err == nil {
		o.violate("%s/out exists at the sender %s: a transfer to %s wrote there", sroot, p.Sender.Name(), p.Receiver.Name())
	}
	for _, dir := range []string{filepath.Join(sroot, "in"), filepath.Join(sroot, "out"), filepath.Join(rroot, "out")} {
		parts, err := harness.PartFiles(dir)
		if err != nil {
			return nil, err
		}
		for _, part := range parts {
			o.violate("leftover %s", part)
		}
	}

	srecs, err := audit.ReadFile(p.Sender.Audit)
	if err != nil {
		return nil, err
	}
	rrecs, err := audit.ReadFile(p.Receiver.Audit)
	if err != nil {
		return nil, err
	}
	so := &Outcome{}
	checkAudit(so, srecs, map[string]bool{}, killedSender)
	for _, v := range so.Violations {
		o.violate("%s's audit trail: %s", p.Sender.Name(), v)
	}
	o.SenderLeases, o.SenderWrites = so.Leases, so.Writes
	ro := &Outcome{}
	checkAudit(ro, rrecs, delivered, killedReceiver)
	for _, v := range ro.Violations {
		o.violate("%s's audit trail: %s", p.Receiver.Name(), v)
	}
	o.Leases, o.Writes, o.LostRenames = ro.Leases, ro.Writes, ro.LostRenames
	checkStaleRefusals(o, p.Sender.Name(), p.Sender.Names, srecs, rrecs)
	return o, nil
}

// The receiver's reasons for refusing a stale sender (pkg/transfer's
// inbound.go and replicated/inbound.go) name the newer epoch and the stale
// one.
var (
	newerEpochRe = regexp.MustCompile(`\(epoch (\d+)\)|under epoch (\d+) now`)
	staleEpochRe = regexp.MustCompile(`epoch (\d+) is stale|now, not (\d+)`)
)

func epochIn(re *regexp.Regexp, s string) (uint64, bool) {
	m := re.FindStringSubmatch(s)
	for _, g := range m[min(1, len(m)):] {
		if g != "" {
			n, err := strconv.ParseUint(g, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// checkStaleRefusals judges the receiver's refusals of inbound calls (its
// audit trail, rrecs) against the sender's lease history (srecs): each must
// be of an instance of the sender (sender/instance/NAME) refused as a stale
// sender; where the reason names both epochs, the stale one must be older,
// held by that very instance at the sender, and the newer one granted by
// the sender before the refusal. A refused connection (a handshake cut by a
// fault) is no inbound call and is not judged.
//
// What this cannot judge: whether a write of a stale sender reached the
// receiver's storage after a newer epoch had been recorded there. The
// receiver audits each storage change under its own lease epoch, not the
// sender's, and the instance of the sender it wrote for is not recorded;
// only the end state (every file with its source's SHA-256) shows that no
// such write survived.
func checkStaleRefusals(o *PairOutcome, sender string, instances []string, srecs, rrecs []audit.Record) {
	held := map[uint64]audit.Record{} // the sender's leases by epoch
	for _, r := range srecs {
		if r.Op == audit.OpLease {
			held[r.Epoch] = r
		}
	}
	for _, r := range rrecs {
		if r.Op != audit.OpRefused || !strings.Contains(r.Action, "/v1/inbound/") && !strings.Contains(r.Result, "stale") {
			continue
		}
		inst, ok := strings.CutPrefix(r.Caller, sender+"/instance/")
		if !ok || !slices.Contains(instances, inst) {
			o.violate("the receiver refused %q (%s) of %q, not an instance of %s: %s", r.Action, r.Target, r.Caller, sender, r.Result)
			continue
		}
		if !strings.Contains(r.Result, "stale") {
			o.violate("the receiver refused %q (%s) of %s, not as a stale sender: %s", r.Action, r.Target, r.Caller, r.Result)
			continue
		}
		o.StaleRefusals++
		newer, ok1 := epochIn(newerEpochRe, r.Result)
		stale, ok2 := epochIn(staleEpochRe, r.Result)
		if !ok1 || !ok2 {
			continue
		}
		o.StaleChecked++
		l, took := held[stale]
		n, granted := held[newer]
		switch {
		case stale >= newer:
			o.violate("%s refused as stale at epoch %d, for a newer epoch %d that is not newer: %s", r.Caller, stale, newer, r.Result)
		case !took || l.Instance != inst:
			o.violate("%s refused as stale at epoch %d, which the sender's trail shows held by %q: %s", r.Caller, stale, l.Instance, r.Result)
		case !granted:
			o.violate("%s refused as stale for an epoch %d the sender never granted: %s", r.Caller, newer, r.Result)
		case n.Checked > r.Checked:
			o.violate("%s refused as stale for an epoch %d the sender granted only later (to %s): %s", r.Caller, newer, n.Instance, r.Result)
		}
	}
}
