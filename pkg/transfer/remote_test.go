package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// direct is a Receiver that calls the receiving Manager in this process
// (the HTTP API between them is tested end to end in test/agents_test.go),
// and can corrupt the bytes it carries, as a faulty link or memory would.
type direct struct {
	m     *Manager
	agent string
	mu    sync.Mutex
	// corrupt: how many more data requests have a byte flipped.
	corrupt int
}

func (d *direct) ref(r InboundRef) InboundRef { r.Agent = d.agent; return r }

func (d *direct) Status(ctx context.Context, r InboundRef) (InboundStatus, error) {
	return d.m.ReceiveStatus(ctx, d.ref(r))
}
func (d *direct) Commit(ctx context.Context, r InboundRef, digest string, overwrite bool) error {
	return d.m.ReceiveCommit(ctx, d.ref(r), digest, overwrite)
}
func (d *direct) Remove(ctx context.Context, r InboundRef) error {
	return d.m.ReceiveRemove(ctx, d.ref(r))
}
func (d *direct) Mkdir(ctx context.Context, r InboundRef) error {
	return d.m.ReceiveMkdir(ctx, d.ref(r))
}
func (d *direct) End(ctx context.Context, r InboundRef) error { return d.m.ReceiveEnd(ctx, d.ref(r)) }
func (d *direct) Silent() (time.Duration, time.Time)          { return 0, time.Time{} }

func (d *direct) SendFiles(ctx context.Context, r InboundRef, overwrite bool, files func(emit func(FileFrame, []byte) error) error) ([]FileResult, error) {
	var body bytes.Buffer
	if err := files(func(f FileFrame, data []byte) error { return WriteFrame(&body, f, d.maybeCorrupt(data)) }); err != nil {
		return nil, err
	}
	return d.m.ReceiveFiles(ctx, d.ref(r), overwrite, &body)
}

func (d *direct) maybeCorrupt(b []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.corrupt > 0 && len(b) > 0 {
		d.corrupt--
		c := append([]byte(nil), b...)
		c[len(c)/2] ^= 0x40
		return c
	}
	return b
}

func (d *direct) Send(ctx context.Context, r InboundRef, offset int64, overwrite bool) (endpoint.PartFile, error) {
	return &directPart{d: d, ctx: ctx, ref: d.ref(r), offset: offset, overwrite: overwrite}, nil
}

type directPart struct {
	d         *direct
	ctx       context.Context
	ref       InboundRef
	offset    int64
	overwrite bool
	buf       bytes.Buffer
	sent      bool
}

func (p *directPart) Write(b []byte) (int, error) { return p.buf.Write(b) }
func (p *directPart) Close() error                { return nil }
func (p *directPart) Sync() error {
	if p.buf.Len() == 0 && (p.sent || p.ref.Size != 0) {
		return nil
	}
	at, err := p.d.m.ReceiveData(p.ctx, p.ref, p.offset, p.overwrite, bytes.NewReader(p.d.maybeCorrupt(p.buf.Bytes())))
	if err != nil {
		return err
	}
	p.buf.Reset()
	p.offset, p.sent = at, true
	return nil
}

type directReceivers map[string]Receiver

func (r directReceivers) Receiver(agent string) (Receiver, bool) { x, ok := r[agent]; return x, ok }

// twoManagers is a sending Manager (agent ORDERS) and a receiving one
// (PAYMENTS, active under epoch 1), each over a rig of its own.
func twoManagers(t *testing.T) (send *Manager, sendRig *rig, recv *Manager, recvRig *rig, link *direct) {
	t.Helper()
	sendRig, recvRig = newRig(t), newRig(t)
	send = sendRig.manager(&fakeLog{}, sendRig.local)
	recv = recvRig.manager(&fakeLog{}, recvRig.local)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lease := ha.Lease{Epoch: 1}
	recv.mu.Lock()
	recv.lease, recv.runCtx = &lease, endpoint.WithEpoch(ctx, 1)
	recv.mu.Unlock()
	link = &direct{m: recv, agent: "ORDERS"}
	send.SetReceivers(directReceivers{"PAYMENTS": link})
	return send, sendRig, recv, recvRig, link
}

func writeSource(t *testing.T, r *rig, rel string, size int) string {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*31 + size)
	}
	p := filepath.Join(r.root, "in", rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Bytes that arrive other than they were read are never renamed into
// place: the file is sent again once, and fails when that happens twice.
func TestToAgentDigestMismatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		corrupt  int
		complete bool
	}{
		{"large, once", 3 << 20, 1, true},
		{"large, always", 3 << 20, 1000, false},
		{"small group, once", 2000, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			send, sr, _, rr, link := twoManagers(t)
			send.limits.CheckpointBytes = 1 << 20
			var srcs []string
			sum := writeSource(t, sr, "a.bin", tc.size)
			srcs = append(srcs, "in/a.bin")
			if tc.size < 1<<20 {
				// A group needs more than one small file.
				writeSource(t, sr, "b.bin", tc.size+1)
				srcs = append(srcs, "in/b.bin")
			}
			link.corrupt = tc.corrupt
			id := sr.submit(t, send, Request{Sources: srcs, Destination: "inbox/", DestinationAgent: "PAYMENTS"})
			runOnce(context.Background(), send, 1, id)
			tr, _ := sr.state.Get(id)
			dst := filepath.Join(rr.root, "inbox", "a.bin")
			if tc.complete {
				if tr.State != StateCompleted {
					t.Fatalf("transfer %s (%s), want completed after one resend", tr.State, tr.Reason)
				}
				if got := fileSum(t, dst); got != sum {
					t.Fatalf("destination SHA-256 %s, want %s", got, sum)
				}
				return
			}
			if tr.State != StateFailed || !strings.Contains(tr.Files[0].Reason, "SHA-256 differs") {
				t.Fatalf("transfer %s, file %s (%q); want failed: SHA-256 differs", tr.State, tr.Files[0].State, tr.Files[0].Reason)
			}
			if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a final file after two digest mismatches: %v", err)
			}
			if _, err := os.Stat(endpoint.PartName(dst)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a .part left after the file failed: %v", err)
			}
		})
	}
}

// Once a newer epoch of the sender has been seen for a transfer, the
// older one is refused on every request; another transfer is not fenced
// by it.
func TestToAgentStaleSender(t *testing.T) {
	_, _, recv, rr, _ := twoManagers(t)
	ctx := context.Background()
	ref := InboundRef{Agent: "ORDERS", ID: "t1", Epoch: 2, Path: "inbox/x", Size: 4}
	if _, err := recv.ReceiveStatus(ctx, ref); err != nil {
		t.Fatal(err)
	}
	old := ref
	old.Epoch = 1
	var ie *InboundError
	if _, err := recv.ReceiveData(ctx, old, 0, false, strings.NewReader("abcd")); !errors.As(err, &ie) || ie.Code != InboundStale {
		t.Fatalf("a write of epoch 1 after epoch 2: %v, want stale", err)
	}
	if _, err := os.Stat(filepath.Join(rr.root, "inbox", "x.part")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stale write reached storage: %v", err)
	}
	if err := recv.ReceiveCommit(ctx, old, "00", false); !errors.As(err, &ie) || ie.Code != InboundStale {
		t.Fatalf("a commit of epoch 1 after epoch 2: %v, want stale", err)
	}
	other := old
	other.ID = "t2"
	if _, err := recv.ReceiveData(ctx, other, 0, false, strings.NewReader("abcd")); err != nil {
		t.Fatalf("another transfer under epoch 1: %v", err)
	}
	// The newer epoch writes and commits.
	if _, err := recv.ReceiveData(ctx, ref, 0, false, strings.NewReader("abcd")); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256([]byte("abcd"))
	if err := recv.ReceiveCommit(ctx, ref, hex.EncodeToString(s[:]), false); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(rr.root, "inbox", "x")); err != nil || string(b) != "abcd" {
		t.Fatalf("destination %q %v", b, err)
	}
}

// A resume at the receiver's previous point (the sender died after the
// receiver recorded the last one, before it recorded it itself) carries on
// with the receiver's hash state there; any other offset is refused as a
// lost part.
func TestToAgentResumeAtPrev(t *testing.T) {
	_, _, recv, rr, _ := twoManagers(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	ref := InboundRef{Agent: "ORDERS", ID: "t1", Epoch: 1, Path: "inbox/big", Size: int64(len(data))}
	for _, stretch := range [][2]int{{0, 1 << 20}, {1 << 20, 2 << 20}} {
		if _, err := recv.ReceiveData(ctx, ref, int64(stretch[0]), false, bytes.NewReader(data[stretch[0]:stretch[1]])); err != nil {
			t.Fatal(err)
		}
	}
	st, err := recv.ReceiveStatus(ctx, ref)
	if err != nil || st.Durable != 2<<20 || len(st.Resumable) != 3 {
		t.Fatalf("status %+v %v; want durable at 2 MiB, resumable at 0, 1 and 2 MiB", st, err)
	}
	var ie *InboundError
	if _, err := recv.ReceiveData(ctx, ref, 1<<19, false, bytes.NewReader(data[1<<19:])); !errors.As(err, &ie) || ie.Code != InboundPartLost {
		t.Fatalf("a write from an offset never recorded: %v, want part-lost", err)
	}
	// A new sender epoch resumes from the previous point (1 MiB).
	ref.Epoch = 2
	if _, err := recv.ReceiveData(ctx, ref, 1<<20, false, bytes.NewReader(data[1<<20:])); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	if err := recv.ReceiveCommit(ctx, ref, hex.EncodeToString(s[:]), false); err != nil {
		t.Fatal(err)
	}
	if got := fileSum(t, filepath.Join(rr.root, "inbox", "big")); got != hex.EncodeToString(s[:]) {
		t.Fatalf("destination %s", got)
	}
	// A commit replayed (the sender did not hear the answer) is no error.
	if err := recv.ReceiveCommit(ctx, ref, hex.EncodeToString(s[:]), false); err != nil {
		t.Fatalf("replayed commit: %v", err)
	}
}

// A file renamed into place whose record was lost (the receiver's active
// died between the rename and the log entry) is recognised by the source's
// digest, and only by it.
func TestToAgentReplayedRename(t *testing.T) {
	_, _, recv, rr, _ := twoManagers(t)
	ctx := context.Background()
	dst := filepath.Join(rr.root, "inbox", "y")
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	ref := InboundRef{Agent: "ORDERS", ID: "t1", Epoch: 1, Path: "inbox/y", Size: 5}
	other := sha256.Sum256([]byte("jello"))
	ref.Digest = hex.EncodeToString(other[:])
	st, err := recv.ReceiveStatus(ctx, ref)
	if err != nil || st.Committed || !st.Exists {
		t.Fatalf("another file in place: %+v %v; want it to exist, not committed", st, err)
	}
	same := sha256.Sum256([]byte("hello"))
	ref.Digest = hex.EncodeToString(same[:])
	st, err = recv.ReceiveStatus(ctx, ref)
	if err != nil || !st.Committed || st.Digest != ref.Digest {
		t.Fatalf("the transfer's own bytes in place: %+v %v; want committed", st, err)
	}
	if _, _, ok := recv.state.InboundFileAt("ORDERS", "t1", dst); !ok {
		t.Fatal("the replayed rename was not recorded")
	}
}

// A transfer moved to an alternate group reconciles its files in doubt
// with the group it left once that answers: one committed there too is a
// duplicate, one that was not has its .part there removed.
func TestToAgentSwitchAndReconcile(t *testing.T) {
	send, sr, primary, pr, _ := twoManagers(t)
	alt := twoManagersReceiver(t)
	send.SetReceivers(directReceivers{"PAYMENTS": &direct{m: primary, agent: "ORDERS"}, "PAYMENTS_DR": &direct{m: alt.m, agent: "ORDERS"}})
	send.SetGroups(func(a string) []string {
		if a == "PAYMENTS" {
			return []string{"PAYMENTS", "PAYMENTS_DR"}
		}
		return []string{a}
	}, time.Second)
	sumA := writeSource(t, sr, "a.bin", 5000)
	writeSource(t, sr, "b.bin", 6000)
	id := sr.submit(t, send, Request{Sources: []string{"in/a.bin", "in/b.bin"}, Destination: "inbox/", DestinationAgent: "PAYMENTS"})
	ctx := context.Background()
	log := send.raft.(*fakeLog)
	// Both files started at PAYMENTS; a.bin was even committed there, but
	// PAYMENTS was lost before the sender heard; b.bin has a .part there.
	if _, err := log.Apply(KindFiles, 1, replicated.FilesCmd{ID: id, Events: []FileEvent{{Index: 0, Kind: EventStart}, {Index: 1, Kind: EventStart}}}, 0); err != nil {
		t.Fatal(err)
	}
	a := []byte(nil)
	if b, err := os.ReadFile(filepath.Join(sr.root, "in", "a.bin")); err == nil {
		a = b
	}
	refA := InboundRef{Agent: "ORDERS", ID: id, Epoch: 1, Path: "inbox/a.bin", Size: int64(len(a))}
	if _, err := primary.ReceiveData(ctx, refA, 0, false, bytes.NewReader(a)); err != nil {
		t.Fatal(err)
	}
	if err := primary.ReceiveCommit(ctx, refA, sumA, false); err != nil {
		t.Fatal(err)
	}
	refB := InboundRef{Agent: "ORDERS", ID: id, Epoch: 1, Path: "inbox/b.bin", Size: 6000}
	if _, err := primary.ReceiveData(ctx, refB, 0, false, bytes.NewReader(make([]byte, 6000))); err != nil {
		t.Fatal(err)
	}
	if _, err := log.Apply(replicated.KindSwitch, 1, replicated.SwitchCmd{ID: id, From: "PAYMENTS", To: "PAYMENTS_DR", Reason: "test", Time: time.Now()}, 0); err != nil {
		t.Fatal(err)
	}
	runOnce(ctx, send, 1, id)
	tr, _ := sr.state.Get(id)
	if tr.State != StateCompleted || tr.Group() != "PAYMENTS_DR" || len(tr.Doubts) != 2 {
		t.Fatalf("transfer %s at %s, doubts %+v", tr.State, tr.Group(), tr.Doubts)
	}
	if got := fileSum(t, filepath.Join(alt.root, "inbox", "a.bin")); got != sumA {
		t.Fatalf("a.bin at the alternate %s, want %s", got, sumA)
	}
	send.reconcile(ctx, ha.Lease{Epoch: 1})
	tr, _ = sr.state.Get(id)
	outcomes := map[int]string{}
	for _, d := range tr.Doubts {
		outcomes[d.Index] = d.Outcome
	}
	if outcomes[0] != replicated.DoubtDuplicate || outcomes[1] != replicated.DoubtAbsent {
		t.Fatalf("outcomes %v, want a.bin duplicate, b.bin absent", outcomes)
	}
	if _, err := os.Stat(filepath.Join(pr.root, "inbox", "b.bin.part")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("b.bin's .part still at the group left: %v", err)
	}
	if got := fileSum(t, filepath.Join(pr.root, "inbox", "a.bin")); got != sumA {
		t.Fatalf("the duplicate at the group left: %s", got)
	}
}

type receiverRig struct {
	m    *Manager
	root string
}

// twoManagersReceiver is one more receiving Manager, active under epoch 1.
func twoManagersReceiver(t *testing.T) receiverRig {
	t.Helper()
	r := newRig(t)
	m := r.manager(&fakeLog{}, r.local)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lease := ha.Lease{Epoch: 1}
	m.mu.Lock()
	m.lease, m.runCtx = &lease, endpoint.WithEpoch(ctx, 1)
	m.mu.Unlock()
	return receiverRig{m: m, root: r.root}
}

// A transfer received and ended is forgotten at the receiver once
// InboundRetention has passed, and not before.
func TestInboundPrunedAfterRetention(t *testing.T) {
	_, _, recv, _, _ := twoManagers(t)
	ctx := context.Background()
	ref := InboundRef{Agent: "ORDERS", ID: "t1", Epoch: 1}
	if _, err := recv.ReceiveStatus(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := recv.ReceiveEnd(ctx, ref); err != nil {
		t.Fatal(err)
	}
	lease := ha.Lease{Epoch: 1}
	recv.pruneInbound(lease, time.Now().Add(InboundRetention/2))
	if _, ok := recv.state.Inbound("ORDERS", "t1"); !ok {
		t.Fatal("forgotten before InboundRetention")
	}
	recv.pruneInbound(lease, time.Now().Add(InboundRetention+time.Minute))
	if _, ok := recv.state.Inbound("ORDERS", "t1"); ok {
		t.Fatal("still kept after InboundRetention")
	}
}
