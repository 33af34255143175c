package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/ftagent/ftagent/pkg/sandbox"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/transfer/copyloop"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/test/harness"
)

// explained is where the time goes.
type explained struct {
	phases     []phaseRun // the large file
	phasesMany []phaseRun // the many files: accepted, done and server only

	// In this process, on the large file with a warm cache.
	sha, loopCk, loopNoCk []time.Duration
	loopCkCount           int

	// In this process: small files' local steps, per file: the group path
	// (copySmall) and the per-file path (copyFile).
	groupFiles                                   int
	groupCopy, groupSync, groupStat, groupCommit time.Duration
	localFiles                                   int
	localFull, localNoDir, localNo               time.Duration

	// transfer.State.Apply, by the transfer's number of files.
	applyN       []int
	applyPer     map[int]time.Duration // one "files" entry of applyEntries events
	applyCreate  map[int]time.Duration // the create entry
	applyEntries int
	createBytes  int // the largest create entry's command, in bytes

	// Three pkg/ha nodes in this process, on this disk.
	raftApply, raftVerify []time.Duration
	raftBatch             time.Duration   // per entry, 64 Applies at once
	raftBig               []time.Duration // Apply of a command as large as the many-files create entry
	fsync4k               []time.Duration
	raftErr               string

	// Manager.plan's work for the many-files request, in this process.
	planExpand, planResolve []time.Duration
}

// phaseRun is the large file through the HTTP API, polled every few ms.
type phaseRun struct {
	accepted  time.Duration // POST returned: the create entry committed
	firstByte time.Duration // the first poll that saw bytesDone > 0
	copied    time.Duration // the first poll that saw bytesDone == bytes
	done      time.Duration // the first poll that saw completed
	server    time.Duration // created → ended
}

const phasePoll = 5 * time.Millisecond

// explainLarge measures where a large file's time goes; it runs right after
// the large-file measurements, in the same conditions.
func explainLarge(e *env, res *results) error {
	x := &res.explain
	for i := range 3 {
		prefault(e.big.size + 256<<20)
		p, err := phases(e, fmt.Sprintf("out/phases-%d.bin", i+1))
		if err != nil {
			return fmt.Errorf("phases: %w", err)
		}
		x.phases = append(x.phases, p)
		progress("phases %d/3: accepted %s, first byte %s, all bytes written %s, completed seen %s (server %s)",
			i+1, ms(p.accepted), ms(p.firstByte), ms(p.copied), ms(p.done), ms(p.server))
	}
	return inProcessLarge(e, x)
}

// explainSmall measures where many small files' time goes.
func explainSmall(e *env, res *results) error {
	x := &res.explain
	for i := range 3 {
		prefault(256 << 20)
		p, err := phasesMany(e, fmt.Sprintf("out/phases-many-%d/", i+1))
		if err != nil {
			return fmt.Errorf("phases, many files: %w", err)
		}
		x.phasesMany = append(x.phasesMany, p)
		progress("phases, %d files %d/3: accepted %s, completed seen %s (server %s)", e.small.files, i+1, ms(p.accepted), ms(p.done), ms(p.server))
	}
	if err := planCost(e, x); err != nil {
		return err
	}
	if err := localSteps(e, x); err != nil {
		return err
	}
	if err := applyCost(e, x); err != nil {
		return err
	}
	x.fsync4k = fsyncLatency(filepath.Join(e.dir, "fsync-probe"), 300)
	progress("fsync of a 4 KiB write: median %s", ms(median(x.fsync4k)))
	if err := raftLatency(e, x); err != nil {
		// Not fatal: the rest of the report stands.
		x.raftErr = err.Error()
		progress("raft latency: %v", err)
	}
	return nil
}

// planCost times, in this process, what Manager.plan does with the files
// of the many-files request before its entry goes to raft: list the
// sources through the sandbox (Expand), resolve every destination.
func planCost(e *env, x *explained) error {
	sb, err := sandbox.New(e.dir, nil)
	if err != nil {
		return err
	}
	for range 3 {
		t0 := time.Now()
		files, err := sb.Expand(e.small.rel+"/", true)
		if err != nil {
			return err
		}
		t1 := time.Now()
		for _, f := range files {
			if _, err := sb.Resolve(filepath.Join(e.out, "plan", filepath.FromSlash(f.Rel))); err != nil {
				return err
			}
		}
		x.planExpand = append(x.planExpand, t1.Sub(t0))
		x.planResolve = append(x.planResolve, time.Since(t1))
	}
	progress("plan of %d files: sandbox Expand %s, Resolve of each destination %s", e.small.files, ms(median(x.planExpand)), ms(median(x.planResolve)))
	return nil
}

// phases sends the large file through the API and polls its progress.
func phases(e *env, dst string) (phaseRun, error) {
	var p phaseRun
	addr := e.c.Addr[e.active]
	id := transfer.NewID()
	body, _ := json.Marshal(api.CreateTransferRequest{ID: id, Request: transfer.Request{
		Sources: []string{e.big.rel}, Destination: dst,
	}})
	t0 := time.Now()
	resp, err := httpc.Post("http://"+addr+api.PathTransfers, "application/json", bytes.NewReader(body))
	if err != nil {
		return p, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return p, fmt.Errorf("POST %s: %s: %s", api.PathTransfers, resp.Status, b)
	}
	p.accepted = time.Since(t0)
	deadline := t0.Add(*flagTimeout)
	for {
		var v transfer.View
		if err := harness.GetJSON(context.Background(), httpc, addr, api.TransferPath(id), &v); err != nil {
			return p, err
		}
		at := time.Since(t0)
		if p.firstByte == 0 && v.BytesDone > 0 {
			p.firstByte = at
		}
		if p.copied == 0 && v.BytesDone >= v.Bytes {
			p.copied = at
		}
		if transfer.Terminal(v.State) {
			if v.State != transfer.StateCompleted || v.Ended == nil {
				return p, fmt.Errorf("transfer %s %s: %s", id, v.State, v.Reason)
			}
			p.done = at
			p.server = v.Ended.Sub(v.Created)
			break
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("transfer %s not done after %v", id, *flagTimeout)
		}
		time.Sleep(phasePoll)
	}
	return p, cleanup(e, dst)
}

// phasesMany sends the many-files transfer through the API and polls it
// every 100 ms (a poll returns the first page of the files, 1,000 of the
// 10,000: about 200 KB; before pages, every file, about 2 MB).
func phasesMany(e *env, dst string) (phaseRun, error) {
	var p phaseRun
	addr := e.c.Addr[e.active]
	id := transfer.NewID()
	body, _ := json.Marshal(api.CreateTransferRequest{ID: id, Request: transfer.Request{
		Sources: []string{e.small.rel + "/"}, Destination: dst, Recursive: true,
	}})
	t0 := time.Now()
	resp, err := httpc.Post("http://"+addr+api.PathTransfers, "application/json", bytes.NewReader(body))
	if err != nil {
		return p, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return p, fmt.Errorf("POST %s: %s: %.300s", api.PathTransfers, resp.Status, b)
	}
	p.accepted = time.Since(t0)
	deadline := t0.Add(*flagTimeout)
	for {
		time.Sleep(100 * time.Millisecond)
		var v transfer.View
		if err := harness.GetJSON(context.Background(), httpc, addr, api.TransferPath(id), &v); err != nil {
			return p, err
		}
		if transfer.Terminal(v.State) {
			if v.State != transfer.StateCompleted || v.Ended == nil {
				return p, fmt.Errorf("transfer %s %s: %s", id, v.State, v.Reason)
			}
			p.done, p.server = time.Since(t0), v.Ended.Sub(v.Created)
			break
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("transfer %s not done after %v", id, *flagTimeout)
		}
	}
	syscall.Sync() // kept, not deleted: see measureSmall
	return p, nil
}

// inProcessLarge times, in this process on the large file: SHA-256 alone,
// and the product's copy loop (then a sync, as the transfer does before its
// rename) with checkpoints at the default interval (their raft commit left
// out) and with none.
func inProcessLarge(e *env, x *explained) error {
	ctx := context.Background()
	ep, err := endpoint.NewLocal("/") // the bench's paths have no links
	if err != nil {
		return err
	}
	defer ep.Close()
	dst := filepath.Join(e.out, "loop.bin")
	loop := func(ckBytes int64) (time.Duration, int, error) {
		checkpoints := 0
		t0 := time.Now()
		sf, err := ep.OpenSource(ctx, e.big.path)
		if err != nil {
			return 0, 0, err
		}
		defer sf.Close()
		pf, err := ep.OpenPart(ctx, dst, 0)
		if err != nil {
			return 0, 0, err
		}
		defer pf.Close()
		sum, err := copyloop.Copy(ctx, copyloop.Params{Src: sf, Dst: pf, CheckpointBytes: ckBytes, CheckpointInterval: time.Hour,
			Checkpoint: func(context.Context, int64, []byte) error { checkpoints++; return nil }})
		if err == nil {
			err = pf.Sync()
		}
		d := time.Since(t0)
		if err == nil && fmt.Sprintf("%x", sum) != e.big.sha256 {
			err = errors.New("copy loop: wrong SHA-256")
		}
		return d, checkpoints, err
	}
	for i := range 3 {
		t0 := time.Now()
		sum, err := harness.FileSHA256(e.big.path)
		if err != nil {
			return err
		}
		if sum != e.big.sha256 {
			return errors.New("sha256: wrong digest")
		}
		x.sha = append(x.sha, time.Since(t0))

		prefault(e.big.size + 256<<20)
		d, n, err := loop(copyloop.DefaultCheckpointBytes)
		if err != nil {
			return err
		}
		x.loopCk, x.loopCkCount = append(x.loopCk, d), n
		if err := cleanup(e, "out/loop.bin.part"); err != nil {
			return err
		}

		prefault(e.big.size + 256<<20)
		d2, _, err := loop(e.big.size + 1)
		if err != nil {
			return err
		}
		x.loopNoCk = append(x.loopNoCk, d2)
		if err := cleanup(e, "out/loop.bin.part"); err != nil {
			return err
		}
		progress("in process %d/3: sha256 %s, copy loop + sync %s (%d checkpoints), without checkpoints %s", i+1, secs(x.sha[i]), secs(d), n, secs(d2))
	}
	return nil
}

// localSteps times, in this process, the local steps pkg/transfer takes
// for small files, without raft. The group path (files of 1 MiB or less that
// start from scratch, as copySmall takes them, 256 files a group): per file,
// check the destination, open the source, create the .part, copy and hash,
// close; per group, one syncfs (SyncParts); per file, stat the source again;
// per group, the renames and one directory fsync (RenameAll, SyncDirs). Then the
// per-file path (copyFile: larger or resumed files) over 1,000 of the same
// files, with its fdatasync and directory fsync per file, without them.
func localSteps(e *env, x *explained) error {
	names := make([]string, 0, e.small.files)
	for n := range e.small.sums {
		names = append(names, n)
	}
	slices.Sort(names)
	ctx := context.Background()
	ep, err := endpoint.NewLocal("/") // the bench's paths have no links
	if err != nil {
		return err
	}
	defer ep.Close()

	// The group path.
	prefault(256 << 20)
	dir := filepath.Join(e.out, "local-group")
	var tCopy, tSync, tStat, tCommit time.Duration
	const group = 256
	for lo := 0; lo < len(names); lo += group {
		hi := min(lo+group, len(names))
		paths := make([]string, 0, hi-lo)
		t0 := time.Now()
		batch, err := ep.BeginParts(ctx)
		if err != nil {
			return err
		}
		for _, n := range names[lo:hi] {
			src, dst := filepath.Join(e.small.path, n), filepath.Join(dir, n)
			if ok, err := ep.Exists(ctx, dst); err != nil || ok {
				return fmt.Errorf("destination %s: exists %v, %v", dst, ok, err)
			}
			sf, err := ep.OpenSource(ctx, src)
			if err != nil {
				return err
			}
			pf, err := ep.OpenPart(ctx, dst, 0)
			if err != nil {
				sf.Close()
				return err
			}
			_, err = copyloop.Copy(ctx, copyloop.Params{Src: sf, Dst: pf, CheckpointBytes: 1<<20 + 1, BufferSize: 64 << 10,
				Checkpoint: func(context.Context, int64, []byte) error { return nil }})
			if cerr := pf.Close(); err == nil {
				err = cerr
			}
			sf.Close()
			if err != nil {
				return err
			}
			paths = append(paths, dst)
		}
		t1 := time.Now()
		err = batch.Sync(ctx, paths)
		batch.Close()
		if err != nil {
			return err
		}
		t2 := time.Now()
		for _, n := range names[lo:hi] {
			if _, err := ep.Stat(ctx, filepath.Join(e.small.path, n)); err != nil {
				return err
			}
		}
		t3 := time.Now()
		for _, err := range ep.RenameAll(ctx, paths, false) {
			if err != nil {
				return err
			}
		}
		if err := ep.SyncDirs(ctx, paths); err != nil {
			return err
		}
		t4 := time.Now()
		tCopy, tSync, tStat, tCommit = tCopy+t1.Sub(t0), tSync+t2.Sub(t1), tStat+t3.Sub(t2), tCommit+t4.Sub(t3)
	}
	n := time.Duration(len(names))
	x.groupFiles = len(names)
	x.groupCopy, x.groupSync, x.groupStat, x.groupCommit = tCopy/n, tSync/n, tStat/n, tCommit/n
	syscall.Sync() // kept, not deleted: see measureSmall
	progress("group path per file (%d files): copy %s, syncfs %s, stat %s, renames + directory fsync %s",
		len(names), us(x.groupCopy), us(x.groupSync), us(x.groupStat), us(x.groupCommit))

	// The per-file path.
	names = names[:min(len(names), 1000)]
	x.localFiles = len(names)
	one := func(srcPath, dst string, fsyncFile, fsyncDir bool) error {
		part := endpoint.PartName(dst)
		_, _ = ep.Stat(ctx, part)
		sf, err := ep.OpenSource(ctx, srcPath)
		if err != nil {
			return err
		}
		defer sf.Close()
		if ok, err := ep.Exists(ctx, dst); err != nil || ok {
			return fmt.Errorf("destination %s: exists %v, %v", dst, ok, err)
		}
		pf, err := ep.OpenPart(ctx, dst, 0)
		if err != nil {
			return err
		}
		if _, err := copyloop.Copy(ctx, copyloop.Params{Src: sf, Dst: pf}); err != nil {
			pf.Close()
			return err
		}
		if fsyncFile {
			if err := pf.Sync(); err != nil {
				pf.Close()
				return err
			}
		}
		if err := pf.Close(); err != nil {
			return err
		}
		if _, err := ep.Stat(ctx, srcPath); err != nil {
			return err
		}
		if fsyncDir {
			return ep.Commit(ctx, dst, false)
		}
		return os.Rename(part, dst)
	}
	variant := func(label string, fsyncFile, fsyncDir bool) (time.Duration, error) {
		prefault(256 << 20)
		dir := filepath.Join(e.out, "local-"+label)
		t0 := time.Now()
		for _, n := range names {
			if err := one(filepath.Join(e.small.path, n), filepath.Join(dir, n), fsyncFile, fsyncDir); err != nil {
				return 0, err
			}
		}
		d := time.Since(t0) / time.Duration(len(names))
		syscall.Sync() // kept, not deleted: see measureSmall
		return d, nil
	}
	if x.localFull, err = variant("full", true, true); err != nil {
		return err
	}
	if x.localNoDir, err = variant("nodir", true, false); err != nil {
		return err
	}
	if x.localNo, err = variant("nosync", false, false); err != nil {
		return err
	}
	progress("per-file path per file (%d files): %s; without the directory fsync %s; without either sync %s",
		len(names), ms(x.localFull), ms(x.localNoDir), ms(x.localNo))
	return nil
}

// applyCost times transfer.State.Apply on a transfer of n files: the
// create entry (the whole file list), and "files" entries like those a
// recursive transfer of small files writes: a group's 256 starts, then its
// 256 completions.
func applyCost(e *env, x *explained) error {
	x.applyPer, x.applyCreate = map[int]time.Duration{}, map[int]time.Duration{}
	ns := []int{e.small.files}
	if e.few.files > 0 {
		ns = []int{e.few.files, e.small.files}
	}
	x.applyN = ns
	const group = 256
	for _, n := range ns {
		s := transfer.NewState()
		tr := transfer.Transfer{ID: "bench", Created: time.Now().UTC(),
			Request: transfer.Request{Sources: []string{e.small.path + "/"}, Destination: e.out + "/x/", Recursive: true}}
		for i := range n {
			name := fmt.Sprintf("f%05d.bin", i)
			tr.Files = append(tr.Files, transfer.File{Source: filepath.Join(e.small.path, name), Destination: filepath.Join(e.out, "x", name), Bytes: e.small.size})
		}
		create, _ := json.Marshal(map[string]any{"transfer": tr, "maxQueued": 1000, "historyCount": 1000, "historyAge": int64(168 * time.Hour)})
		t0 := time.Now()
		if r := s.Apply(transfer.KindCreate, 1, create, 1); isErr(r) {
			return fmt.Errorf("apply create: %v", r)
		}
		x.applyCreate[n] = time.Since(t0)
		x.createBytes = max(x.createBytes, len(create))
		start, _ := json.Marshal(map[string]any{"id": "bench", "time": time.Now().UTC()})
		if r := s.Apply(transfer.KindStart, 1, start, 2); isErr(r) {
			return fmt.Errorf("apply start: %v", r)
		}
		sum := fmt.Sprintf("%x", sha256.Sum256(nil))
		var entries [][]byte
		for lo := 0; lo < n; lo += group {
			var starts, dones []transfer.FileEvent
			for i := lo; i < min(lo+group, n); i++ {
				starts = append(starts, transfer.FileEvent{Index: i, Kind: transfer.EventStart})
				dones = append(dones, transfer.FileEvent{Index: i, Kind: transfer.EventDone, SHA256: sum})
			}
			for _, evs := range [][]transfer.FileEvent{starts, dones} {
				b, _ := json.Marshal(map[string]any{"id": "bench", "time": time.Now().UTC(), "events": evs})
				entries = append(entries, b)
			}
		}
		t0 = time.Now()
		for i, b := range entries {
			if r := s.Apply(transfer.KindFiles, 1, b, uint64(3+i)); isErr(r) {
				return fmt.Errorf("apply files: %v", r)
			}
		}
		x.applyPer[n] = time.Since(t0) / time.Duration(len(entries))
		x.applyEntries = group
		progress("transfer.State.Apply, transfer of %d files: create %s, one entry of %d file events %s",
			n, ms(x.applyCreate[n]), group, ms(x.applyPer[n]))
	}
	return nil
}

func isErr(r any) bool { _, ok := r.(error); return ok }

// fsyncLatency times n 4 KiB writes each followed by fdatasync.
func fsyncLatency(path string, n int) []time.Duration {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return nil
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, 4096)
	var out []time.Duration
	for i := range n {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*4096); err != nil {
			return out
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return out
		}
		out = append(out, time.Since(t0))
	}
	return out
}

// raftLatency starts three pkg/ha nodes in this process (raft over TCP on
// loopback, bbolt logs in the cluster's directory, default timeouts) and
// times Apply of one small command and VerifyLease on the leader.
func raftLatency(e *env, x *explained) error {
	names := []string{"r1", "r2", "r3"}
	var peers []ha.Peer
	for _, n := range names {
		port, err := harness.FreePort()
		if err != nil {
			return err
		}
		peers = append(peers, ha.Peer{Name: n, Address: fmt.Sprintf("127.0.0.1:%d", port)})
	}
	leases := make(chan ha.Lease, 3)
	nodes := map[ha.Lease]*ha.Node{}
	var mu sync.Mutex
	var all []*ha.Node
	defer func() {
		for _, n := range all {
			_ = n.Shutdown()
		}
		_ = os.RemoveAll(filepath.Join(e.dir, "raftbench"))
	}()
	for _, p := range peers {
		var self *ha.Node
		cfg := ha.Config{
			AgentName: "BENCH", Name: p.Name, Address: p.Address, Instances: peers,
			DataDir: filepath.Join(e.dir, "raftbench", p.Name),
			Version: "bench", Logger: zerolog.Nop(),
			StateMachine: nopSM{},
			Peers:        nopPeers{},
			BeforeStart:  func(n *ha.Node) { self = n },
			OnActive: func(ctx context.Context, l ha.Lease) {
				mu.Lock()
				nodes[l] = self
				mu.Unlock()
				leases <- l
				<-ctx.Done()
			},
			NewTransport: func() (raft.Transport, error) {
				return raft.NewTCPTransport(p.Address, nil, 3, 10*time.Second, io.Discard)
			},
		}
		n, err := ha.New(cfg)
		if err != nil {
			return err
		}
		all = append(all, n)
	}
	var lease ha.Lease
	select {
	case lease = <-leases:
	case <-time.After(30 * time.Second):
		return errors.New("no pkg/ha node took the lease in 30s")
	}
	mu.Lock()
	leader := nodes[lease]
	mu.Unlock()
	payload := map[string]any{"id": "0123456789abcdef", "time": time.Now().UTC(), "events": []transfer.FileEvent{
		{Index: 1, Kind: transfer.EventDone, SHA256: fmt.Sprintf("%x", sha256.Sum256(nil))}, {Index: 2, Kind: transfer.EventStart}}}
	// Warm up, then measure.
	for range 20 {
		if _, err := leader.Apply(benchNoop, lease.Epoch, payload, 10*time.Second); err != nil {
			return err
		}
	}
	for range 300 {
		t0 := time.Now()
		if _, err := leader.Apply(benchNoop, lease.Epoch, payload, 10*time.Second); err != nil {
			return err
		}
		x.raftApply = append(x.raftApply, time.Since(t0))
	}
	for range 300 {
		t0 := time.Now()
		if err := leader.VerifyLease(lease.Epoch); err != nil {
			return err
		}
		x.raftVerify = append(x.raftVerify, time.Since(t0))
	}
	if x.createBytes > 0 {
		big := map[string]string{"pad": strings.Repeat("x", x.createBytes)}
		for range 5 {
			t0 := time.Now()
			if _, err := leader.Apply(benchNoop, lease.Epoch, big, 30*time.Second); err != nil {
				return err
			}
			x.raftBig = append(x.raftBig, time.Since(t0))
		}
	}
	const batch, rounds = 64, 20
	t0 := time.Now()
	for range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := leader.Apply(benchNoop, lease.Epoch, payload, 10*time.Second); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
	}
	x.raftBatch = time.Since(t0) / (batch * rounds)
	progress("pkg/ha in process: Apply median %s, VerifyLease median %s, %d Applies at once %s per entry",
		ms(median(x.raftApply)), ms(median(x.raftVerify)), batch, ms(x.raftBatch))
	return nil
}

type nopSM struct{}

// benchNoop is the command kind the raft latency measurement proposes; like
// every kind, it must be registered before a node proposes it.
const benchNoop = "bench.noop"

func init() { replog.RegisterKind(benchNoop, 1) }

func (nopSM) Apply(string, uint64, []byte, uint64) any { return nil }
func (nopSM) Snapshot() (replog.Snapshot, error)       { return nopSM{}, nil }
func (nopSM) WriteJSON(w io.Writer) error              { _, err := io.WriteString(w, "{}"); return err }
func (nopSM) Release()                                 {}

func (nopSM) Restore(dec *json.Decoder) (func(), error) {
	if err := replog.SkipValue(dec); err != nil {
		return nil, err
	}
	return func() {}, nil
}

// nopPeers: the bench's nodes neither publish status nor probe.
type nopPeers struct{}

func (nopPeers) Publish(context.Context, string, ha.InstanceStatus) error {
	return errors.New("not published")
}
func (nopPeers) Probe(context.Context, string) (ha.InstanceStatus, error) {
	return ha.InstanceStatus{}, errors.New("not probed")
}
