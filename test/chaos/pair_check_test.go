package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// The checker of the receiver's refusals must catch each kind of violation
// it claims to, and read each of the receiver's reasons for a stale sender.
func TestCheckStaleRefusalsCatches(t *testing.T) {
	lease := func(inst string, epoch uint64, at int64) audit.Record {
		return audit.Record{Checked: at, Instance: inst, Epoch: epoch, Op: audit.OpLease}
	}
	refused := func(caller string, at int64, result string) audit.Record {
		return audit.Record{Checked: at, Instance: "pay1", Epoch: 4, Op: audit.OpRefused, Caller: caller,
			Action: "PUT /v1/inbound/data", Target: "ORDERS/pair-0001", Result: result}
	}
	sender := []audit.Record{lease("ha1", 1, 100), lease("ha2", 2, 200), lease("ha3", 3, 300)}
	instances := []string{"ha1", "ha2", "ha3"}
	// The receiver's reasons (pkg/transfer/inbound.go, replicated/inbound.go).
	reasons := []string{
		"a newer active of the sender (epoch 2) is writing this file; epoch 1 is stale",
		"a newer active of the sender (epoch 2) took over this file; epoch 1 is stale",
		"transfer pair-0001 of agent ORDERS is sent under epoch 2 now; epoch 1 is stale",
		"stale sender epoch: transfer pair-0001 of agent ORDERS is sent under epoch 2 now, not 1",
	}
	for _, r := range reasons {
		o := &PairOutcome{}
		checkStaleRefusals(o, "ORDERS", instances, sender, []audit.Record{refused("ORDERS/instance/ha1", 250, r)})
		if len(o.Violations) != 0 || o.StaleRefusals != 1 || o.StaleChecked != 1 {
			t.Errorf("%q: violations %v, %d refusals, %d checked; want none, 1, 1", r, o.Violations, o.StaleRefusals, o.StaleChecked)
		}
	}
	cases := []struct {
		name string
		rec  audit.Record
		want string
	}{
		{"a refusal of another agent's instance", refused("BILLING/instance/ha1", 250, reasons[0]), "not an instance of ORDERS"},
		{"a refusal of a client of the sender", refused("ORDERS/client/admin", 250, reasons[0]), "not an instance of ORDERS"},
		{"a refusal of an instance for another reason", refused("ORDERS/instance/ha1", 250, "agent ORDERS is not in acceptFrom"), "not as a stale sender"},
		{"a stale epoch another instance held", refused("ORDERS/instance/ha3", 250, reasons[2]), `held by "ha1"`},
		{"a newer epoch never granted", refused("ORDERS/instance/ha1", 250, "a newer active of the sender (epoch 7) is writing this file; epoch 1 is stale"), "never granted"},
		{"a newer epoch granted only later", refused("ORDERS/instance/ha2", 250, "stale sender epoch: transfer pair-0001 of agent ORDERS is sent under epoch 3 now, not 2"), "granted only later"},
		{"a 'newer' epoch that is older", refused("ORDERS/instance/ha2", 350, "transfer pair-0001 of agent ORDERS is sent under epoch 1 now; epoch 2 is stale"), "not newer"},
	}
	for _, c := range cases {
		o := &PairOutcome{}
		checkStaleRefusals(o, "ORDERS", instances, sender, []audit.Record{c.rec})
		if got := strings.Join(o.Violations, "\n"); !strings.Contains(got, c.want) {
			t.Errorf("%s: violations %q, want one mentioning %q", c.name, got, c.want)
		}
	}
	// A refused connection (a handshake a fault cut) is no inbound call.
	o := &PairOutcome{}
	checkStaleRefusals(o, "ORDERS", instances, sender, []audit.Record{{Checked: 250, Op: audit.OpRefused, Remote: "198.18.1.1:4000", Action: "connect", Result: "TLS handshake: EOF"}})
	if len(o.Violations) != 0 || o.StaleRefusals != 0 {
		t.Errorf("a refused connection: violations %v, %d refusals; want none", o.Violations, o.StaleRefusals)
	}
}

// CheckPair must catch each kind of violation of the end state it claims
// to: a transfer not completed, a file with other bytes or missing at the
// receiver, a final file of no completed transfer there, a .part left, a
// file written at the sender's own destination tree, a source lost or one
// kept that was to be deleted, a change at the receiver under an epoch it
// never took, a rename into place at the sender.
func TestCheckPairCatches(t *testing.T) {
	type world struct {
		p    *Pair
		jobs []*Job
		view map[string]transfer.View
	}
	build := func(t *testing.T) world {
		base := t.TempDir()
		agent := func(name, dir string, hosts ...string) *Agent {
			root := filepath.Join(base, dir)
			if err := os.MkdirAll(root, 0o750); err != nil {
				t.Fatal(err)
			}
			return &Agent{Dir: root, Root: root, Names: hosts, Audit: filepath.Join(root, "audit.jsonl"), TLS: &harness.TLS{Agent: name}}
		}
		p := &Pair{Sender: agent("ORDERS", "orders", "ha1", "ha2"), Receiver: agent("PAYMENTS", "payments", "pay1", "pay2")}
		w := world{p: p, view: map[string]transfer.View{}}
		for i, shape := range []string{"mib", "tree"} {
			id := fmt.Sprintf("pair-%04d", i+1)
			j := &Job{ID: id, Shape: shape, Accepted: true}
			v := transfer.View{ID: id, State: transfer.StateCompleted}
			for k := range 2 {
				rel := fmt.Sprintf("%s/f%d.bin", id, k)
				src, dst := filepath.Join(p.Sender.Root, "in", rel), filepath.Join(p.Receiver.Root, "out", rel)
				for _, path := range []string{src, dst} {
					if err := harness.WriteRandomFile(path, int64(1000+k), uint64(i*10+k)); err != nil {
						t.Fatal(err)
					}
				}
				sum, err := harness.FileSHA256(src)
				if err != nil {
					t.Fatal(err)
				}
				j.Files = append(j.Files, ExpectedFile{Source: "in/" + rel, Destination: "out/" + rel, Size: int64(1000 + k), SHA256: sum})
				v.Files = append(v.Files, transfer.FileView{Source: "in/" + rel, Destination: "out/" + rel, SHA256: sum, State: transfer.StateCompleted})
			}
			w.jobs = append(w.jobs, j)
			w.view[id] = v
		}
		rroot, err := filepath.EvalSymlinks(p.Receiver.Root)
		if err != nil {
			t.Fatal(err)
		}
		var srecs, rrecs []string
		srecs = append(srecs, `{"t":100,"inst":"ha1","epoch":1,"op":"lease"}`)
		rrecs = append(rrecs, `{"t":100,"inst":"pay1","epoch":1,"op":"lease"}`)
		for _, j := range w.jobs {
			for _, f := range j.Files {
				dst := filepath.Join(rroot, f.Destination)
				rrecs = append(rrecs, fmt.Sprintf(`{"t":110,"inst":"pay1","epoch":1,"op":"write","path":%q,"n":%d}`, dst+".part", f.Size),
					fmt.Sprintf(`{"t":120,"inst":"pay1","epoch":1,"op":"rename","path":%q}`, dst))
			}
		}
		for path, lines := range map[string][]string{p.Sender.Audit: srecs, p.Receiver.Audit: rrecs} {
			if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		return w
	}
	appendAudit := func(t *testing.T, path, line string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		spoil func(t *testing.T, w world)
		want  string // "" = clean
	}{
		{"clean", func(*testing.T, world) {}, ""},
		{"a transfer failed", func(_ *testing.T, w world) {
			v := w.view["pair-0001"]
			v.State, v.Reason = transfer.StateFailed, "recovery timeout"
			w.view["pair-0001"] = v
		}, "ended failed: recovery timeout"},
		{"other bytes at the receiver", func(t *testing.T, w world) {
			if err := harness.WriteRandomFile(filepath.Join(w.p.Receiver.Root, "out/pair-0002/f1.bin"), 1001, 99); err != nil {
				t.Fatal(err)
			}
		}, "the source had"},
		{"a file missing at the receiver", func(t *testing.T, w world) {
			if err := os.Remove(filepath.Join(w.p.Receiver.Root, "out/pair-0001/f0.bin")); err != nil {
				t.Fatal(err)
			}
		}, "no such file"},
		{"a final file of no transfer", func(t *testing.T, w world) {
			if err := harness.WriteRandomFile(filepath.Join(w.p.Receiver.Root, "out/pair-0003/x.bin"), 10, 1); err != nil {
				t.Fatal(err)
			}
		}, "belongs to no completed transfer"},
		{"a .part left at the receiver", func(t *testing.T, w world) {
			if err := harness.WriteRandomFile(filepath.Join(w.p.Receiver.Root, "out/pair-0001/f0.bin.part"), 10, 1); err != nil {
				t.Fatal(err)
			}
		}, "leftover"},
		{"a file written at the sender's out/", func(t *testing.T, w world) {
			if err := harness.WriteRandomFile(filepath.Join(w.p.Sender.Root, "out/pair-0001/f0.bin"), 10, 1); err != nil {
				t.Fatal(err)
			}
		}, "wrote there"},
		{"a source lost", func(t *testing.T, w world) {
			if err := os.Remove(filepath.Join(w.p.Sender.Root, "in/pair-0001/f1.bin")); err != nil {
				t.Fatal(err)
			}
		}, "lost"},
		{"a source kept that was to be deleted", func(_ *testing.T, w world) { w.jobs[1].DeleteSrc = true }, "not deleted"},
		{"a change at the receiver under an epoch it never took", func(t *testing.T, w world) {
			appendAudit(t, w.p.Receiver.Audit, `{"t":130,"inst":"pay2","epoch":7,"op":"remove","path":"/x"}`)
		}, "PAYMENTS's audit trail: pay2 remove /x under epoch 7, which it never took"},
		{"a rename at the sender", func(t *testing.T, w world) {
			appendAudit(t, w.p.Sender.Audit, `{"t":130,"inst":"ha1","epoch":1,"op":"rename","path":"/y"}`)
		}, "ORDERS's audit trail: /y was renamed into place 1 times but belongs to no completed transfer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := build(t)
			c.spoil(t, w)
			o, err := CheckPair(w.p, w.jobs, w.view, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(o.Violations, "\n")
			switch {
			case c.want == "" && got != "":
				t.Errorf("violations %q on a clean end state", got)
			case c.want != "" && !strings.Contains(got, c.want):
				t.Errorf("violations %q, want one mentioning %q", got, c.want)
			}
		})
	}
}
