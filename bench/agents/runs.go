package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// sample is one timed run.
type sample struct {
	wall time.Duration // the command, as its caller sees it
	// scp and rsync: the sync run right after the command, timed on its
	// own (wall + sync is "then sync").
	sync time.Duration
	// ftagent only:
	server        time.Duration // the transfer's created → ended, on ORDERS' active's clock
	rssBefore     [2]int64      // VmRSS just before: ORDERS' active, PAYMENTS' active
	rssPeak       [2]int64      // max(VmHWM after, VmRSS polled during); VmHWM reset before
	cpu           map[string]time.Duration
	bytesResent   int64
	failovers     int
	recvFailovers int
	// clientCPU is the command's own CPU time (ftagent: the client; scp
	// and rsync: with their ssh), sshdCPU sshd's and its sessions'.
	clientCPU time.Duration
	sshdCPU   time.Duration
	// busy is the CPU time the whole machine spent during the run (all
	// CPUs, /proc/stat: everything but idle and iowait), the measured
	// processes, kernel threads (write-back) and anything else alike.
	busy time.Duration
	// ftagent: the actives' raft entries during the run (ORDERS,
	// PAYMENTS), from their /metrics.
	raft [2]raftUse
}

func (s sample) withSync() time.Duration { return s.wall + s.sync }

// series is the samples of one tool.
type series struct {
	command string // as run (the first repetition's)
	samples []sample
}

func (s *series) pick(f func(sample) time.Duration) []time.Duration {
	var out []time.Duration
	for _, x := range s.samples {
		out = append(out, f(x))
	}
	return out
}

func (s *series) walls() []time.Duration {
	return s.pick(func(x sample) time.Duration { return x.wall })
}
func (s *series) withSyncs() []time.Duration { return s.pick(sample.withSync) }
func (s *series) servers() []time.Duration {
	return s.pick(func(x sample) time.Duration { return x.server })
}

type results struct {
	bigFt, scp     series
	smallFt, rsync series
	elapsed        time.Duration
}

// measureLarge runs, for each repetition, ftagent then scp (then sync
// FILE), each after the previous output was deleted and synced.
func measureLarge(e *env, res *results) error {
	if err := warm(e); err != nil {
		return err
	}
	const slack = 256 << 20
	for i := 1; i <= *flagN; i++ {
		// ftagent.
		dstRel := fmt.Sprintf("inbox/big-%d.bin", i)
		dst := filepath.Join(e.payments.Root, dstRel)
		waitQuiet(e)
		prefault(e.big.size + slack)
		s, v, err := runFtagent(e, false, e.big.rel, dstRel)
		if err != nil {
			return fmt.Errorf("%s, ftagent, repetition %d: %w", harness.SizeText(e.big.size), i, err)
		}
		if len(v.Files) != 1 || v.Files[0].SHA256 != e.big.sha256 {
			return fmt.Errorf("ftagent, repetition %d: the view reports %s", i, harness.ViewText(v))
		}
		if err := checkFile(dst, e.big, true); err != nil {
			return fmt.Errorf("ftagent, repetition %d: %w", i, err)
		}
		if res.bigFt.command == "" {
			res.bigFt.command = fmt.Sprintf("ftagent transfer create --config agent.properties --dest-agent PAYMENTS --wait --json %s %s", e.big.rel, dstRel)
		}
		res.bigFt.samples = append(res.bigFt.samples, s)
		progress("%s %d/%d ftagent  %s  (%.0f MiB/s; machine busy %s; on ORDERS' active %s; peak RSS ORDERS %s, PAYMENTS %s; CPU %s; resent %d B; raft ORDERS: %s; PAYMENTS: %s)",
			harness.SizeText(e.big.size), i, *flagN, secs(s.wall), mibps(e.big.size, s.wall), secs(s.busy), secs(s.server),
			mib(s.rssPeak[0]), mib(s.rssPeak[1]), cpuText(e, s.cpu), s.bytesResent, s.raft[0].text(), s.raft[1].text())
		if err := remove(dst); err != nil {
			return err
		}

		// scp, then sync FILE.
		dst = filepath.Join(e.payments.Root, fmt.Sprintf("inbox/scp-%d.bin", i))
		waitQuiet(e)
		prefault(e.big.size + slack)
		s, err = runTool(e, e.ssh.scpArgv(e.big.path, dst), []string{"sync", dst})
		if err != nil {
			return fmt.Errorf("%s, scp, repetition %d: %w%s", harness.SizeText(e.big.size), i, err, e.ssh.logTail())
		}
		if err := checkFile(dst, e.big, true); err != nil {
			return fmt.Errorf("scp, repetition %d: %w", i, err)
		}
		if res.scp.command == "" {
			res.scp.command = e.ssh.scpText(e.big.path, dst)
		}
		res.scp.samples = append(res.scp.samples, s)
		progress("%s %d/%d scp      %s  (%.0f MiB/s; machine busy %s; + sync FILE %s: %.0f MiB/s; CPU scp+ssh %s, sshd %s)",
			harness.SizeText(e.big.size), i, *flagN, secs(s.wall), mibps(e.big.size, s.wall), secs(s.busy), secs(s.sync),
			mibps(e.big.size, s.withSync()), secs(s.clientCPU), secs(s.sshdCPU))
		if err := remove(dst); err != nil {
			return err
		}
	}
	return nil
}

// measureSmall runs, for each repetition, ftagent then rsync -r -e ssh
// (then sync). The outputs are kept until the end (see below).
func measureSmall(e *env, res *results) error {
	if err := warm(e); err != nil {
		return err
	}
	const prefaultBytes = 512 << 20
	for i := 1; i <= *flagN; i++ {
		dstRel := fmt.Sprintf("inbox/small-ftagent-%d/", i)
		waitQuiet(e)
		prefault(prefaultBytes)
		s, v, err := runFtagent(e, true, e.small.rel+"/", dstRel)
		if err != nil {
			return fmt.Errorf("%d files, ftagent, repetition %d: %w", e.small.files, i, err)
		}
		if v.FilesTotal != e.small.files {
			return fmt.Errorf("ftagent, repetition %d: %d files in the transfer, want %d", i, v.FilesTotal, e.small.files)
		}
		if err := checkDir(filepath.Join(e.payments.Root, dstRel), e.small); err != nil {
			return fmt.Errorf("ftagent, repetition %d: %w", i, err)
		}
		// Kept, not deleted: ext4 will not reuse an inode for some time
		// after its file was deleted, and creating 10,000 files right after
		// deleting 10,000 scans past them, which makes the next run
		// several times slower, whichever the tool (the caveats of the
		// transfer benchmark in docs/performance.md).
		syscall.Sync()
		if res.smallFt.command == "" {
			res.smallFt.command = fmt.Sprintf("ftagent transfer create --config agent.properties --dest-agent PAYMENTS --recursive --wait --json %s/ %s", e.small.rel, dstRel)
		}
		res.smallFt.samples = append(res.smallFt.samples, s)
		progress("%d files %d/%d ftagent  %s  (%.0f files/s; machine busy %s; on ORDERS' active %s; peak RSS ORDERS %s, PAYMENTS %s; CPU %s, client %s; raft ORDERS: %s; PAYMENTS: %s)",
			e.small.files, i, *flagN, secs(s.wall), float64(e.small.files)/s.wall.Seconds(), secs(s.busy), secs(s.server),
			mib(s.rssPeak[0]), mib(s.rssPeak[1]), cpuText(e, s.cpu), secs(s.clientCPU), s.raft[0].text(), s.raft[1].text())

		dst := filepath.Join(e.payments.Root, fmt.Sprintf("inbox/small-rsync-%d", i))
		waitQuiet(e)
		prefault(prefaultBytes)
		s, err = runTool(e, e.ssh.rsyncArgv(e.small.path, dst), []string{"sync"})
		if err != nil {
			return fmt.Errorf("%d files, rsync, repetition %d: %w%s", e.small.files, i, err, e.ssh.logTail())
		}
		if err := checkDir(dst, e.small); err != nil {
			return fmt.Errorf("rsync, repetition %d: %w", i, err)
		}
		syscall.Sync() // kept, as above
		if res.rsync.command == "" {
			res.rsync.command = e.ssh.rsyncText(e.small.path, dst)
		}
		res.rsync.samples = append(res.rsync.samples, s)
		progress("%d files %d/%d rsync    %s  (%.0f files/s; machine busy %s; + sync %s: %.0f files/s; CPU rsync+ssh %s, sshd %s)",
			e.small.files, i, *flagN, secs(s.wall), float64(e.small.files)/s.wall.Seconds(), secs(s.busy), secs(s.sync),
			float64(e.small.files)/s.withSync().Seconds(), secs(s.clientCPU), secs(s.sshdCPU))
	}
	return nil
}

// runFtagent times `ftagent transfer create --dest-agent PAYMENTS --wait`
// from ORDERS' transferRoot, and records both actives' memory and every
// instance's CPU.
func runFtagent(e *env, recursive bool, src, dst string) (sample, transfer.View, error) {
	var s sample
	var v transfer.View
	argv := []string{e.bin.Ftagent, "transfer", "create", "--config", e.orders.Props, "--dest-agent", "PAYMENTS", "--wait", "--json"}
	if recursive {
		argv = append(argv, "--recursive")
	}
	argv = append(argv, src, dst)
	pids := [2]int{e.ordPID, e.payPID}
	var watches [2]*harness.RSSWatch
	for k, pid := range pids {
		if e.canReset {
			_ = harness.ResetHWM(pid)
		}
		s.rssBefore[k], _ = harness.RSS(pid)
	}
	var raft0 [2]raftUse
	for k, x := range e.actives() {
		raft0[k], _ = scrapeRaft(x.c, x.name)
	}
	cpu0 := cpuAll(e)
	for k, pid := range pids {
		watches[k] = harness.WatchRSS(pid, *flagPoll)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *flagTimeout)
	defer cancel()
	busy0 := machineBusy()
	t0 := time.Now()
	out, cpu, err := runCommand(ctx, e.orders.Root, argv)
	s.wall = time.Since(t0)
	s.busy = machineBusy() - busy0
	s.clientCPU = cpu
	for k, pid := range pids {
		polled := watches[k].Stop()
		hwm, _ := harness.ProcStatus(pid, "VmHWM:")
		s.rssPeak[k] = max(polled, hwm)
	}
	if err != nil {
		return s, v, fmt.Errorf("%w%s%s", err, logTails(e.orders), logTails(e.payments))
	}
	s.cpu = cpuAll(e)
	for n, d := range cpu0 {
		s.cpu[n] -= d
	}
	for k, x := range e.actives() {
		if u, err := scrapeRaft(x.c, x.name); err == nil && raft0[k] != nil {
			s.raft[k] = u.minus(raft0[k])
		}
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return s, v, fmt.Errorf("transfer create --json printed %q: %w", out, err)
	}
	if v.State != transfer.StateCompleted || v.Ended == nil {
		return s, v, fmt.Errorf("transfer %s %s: %s%s%s", v.ID, v.State, v.Reason, logTails(e.orders), logTails(e.payments))
	}
	s.server = v.Ended.Sub(v.Created)
	s.bytesResent, s.failovers, s.recvFailovers = v.BytesResent, v.Failovers, v.ReceiverFailovers
	return s, v, nil
}

// runTool times argv (scp or rsync), then, timed on its own, syncArgv.
func runTool(e *env, argv, syncArgv []string) (sample, error) {
	var s sample
	ctx, cancel := context.WithTimeout(context.Background(), *flagTimeout)
	defer cancel()
	sshd0 := e.ssh.cpu()
	busy0 := machineBusy()
	t0 := time.Now()
	_, cpu, err := runCommand(ctx, e.orders.Root, argv)
	s.wall = time.Since(t0)
	s.busy = machineBusy() - busy0
	s.clientCPU = cpu
	if err != nil {
		return s, err
	}
	t1 := time.Now()
	if _, _, err := runCommand(ctx, e.orders.Root, syncArgv); err != nil {
		return s, err
	}
	s.sync = time.Since(t1)
	// sshd has reaped the session by now, or within moments.
	for range 50 {
		if d := e.ssh.cpu() - sshd0; d > 0 {
			s.sshdCPU = d
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s, nil
}

// writeDataFile writes size random bytes to root/rel, syncs it and returns
// its SHA-256.
func writeDataFile(root, rel string, size int64, seed uint64) (dataFile, error) {
	path := filepath.Join(root, filepath.FromSlash(rel))
	f, err := os.Create(path)
	if err != nil {
		return dataFile{}, err
	}
	defer f.Close()
	rng := rand.NewChaCha8(seedBytes(seed))
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		_, _ = rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return dataFile{}, err
		}
		left -= n
	}
	if err := f.Sync(); err != nil {
		return dataFile{}, err
	}
	return dataFile{rel: rel, path: path, size: size, sha256: hex.EncodeToString(h.Sum(nil))}, f.Close()
}

// writeDataDir writes n files of size random bytes each in root/rel.
func writeDataDir(root, rel string, n int, size int64, seed uint64) (dataDir, error) {
	d := dataDir{rel: rel, path: filepath.Join(root, filepath.FromSlash(rel)), files: n, size: size, sums: map[string]string{}}
	if err := os.Mkdir(d.path, 0o750); err != nil {
		return d, err
	}
	rng := rand.NewChaCha8(seedBytes(seed))
	buf := make([]byte, size)
	for i := range n {
		_, _ = rng.Read(buf)
		base := fmt.Sprintf("f%05d.bin", i)
		if err := os.WriteFile(filepath.Join(d.path, base), buf, 0o640); err != nil {
			return d, err
		}
		s := sha256.Sum256(buf)
		d.sums[base] = hex.EncodeToString(s[:])
	}
	return d, nil
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return s
}

// warm reads every source into the page cache (and their inodes into the
// inode cache).
func warm(e *env) error {
	if e.big.path != "" {
		if sum, err := harness.FileSHA256(e.big.path); err != nil || sum != e.big.sha256 {
			return fmt.Errorf("reading %s back: %v (SHA-256 %s)", e.big.path, err, sum)
		}
	}
	if e.small.path != "" {
		if err := checkDir(e.small.path, e.small); err != nil {
			return fmt.Errorf("reading the sources back: %w", err)
		}
	}
	return nil
}

// checkFile checks a copied large file: its size, no .part beside it, and
// (full) its SHA-256.
func checkFile(path string, src dataFile, full bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() != src.size {
		return fmt.Errorf("%s has %d bytes, want %d", path, fi.Size(), src.size)
	}
	if parts, _ := harness.PartFiles(filepath.Dir(path)); len(parts) > 0 {
		return fmt.Errorf(".part files left behind: %v", parts)
	}
	if full {
		sum, err := harness.FileSHA256(path)
		if err != nil {
			return err
		}
		if sum != src.sha256 {
			return fmt.Errorf("%s: SHA-256 %s, want %s", path, sum, src.sha256)
		}
	}
	return nil
}

// checkDir checks that dir holds exactly the files of d with their bytes,
// and nothing else (no .part).
func checkDir(dir string, d dataDir) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) != d.files {
		return fmt.Errorf("%s holds %d entries, want %d", dir, len(ents), d.files)
	}
	for _, en := range ents {
		want, ok := d.sums[en.Name()]
		if !ok {
			return fmt.Errorf("%s: unexpected %s", dir, en.Name())
		}
		b, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			return err
		}
		if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != want {
			return fmt.Errorf("%s: wrong bytes", filepath.Join(dir, en.Name()))
		}
	}
	return nil
}

// remove deletes a run's output and syncs, so that its write-back does
// not weigh on the next run.
func remove(path string) error {
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// runCommand runs a command in dir and returns its standard output and the
// CPU time it used (user + system, the children it waited for included).
func runCommand(ctx context.Context, dir string, argv []string) (stdout []byte, cpu time.Duration, err error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		o := out.String()
		if len(o) > 2000 {
			o = o[:2000] + "…"
		}
		return out.Bytes(), cpu, fmt.Errorf("%s: %w: %s%s", strings.Join(argv, " "), err, o, errb.String())
	}
	return out.Bytes(), cpu, nil
}

// active is one agent's active instance.
type active struct {
	c    *harness.Cluster
	name string
}

// actives are ORDERS' and PAYMENTS' actives, in that order.
func (e *env) actives() [2]active {
	return [2]active{{e.orders, e.ordActive}, {e.payments, e.payActive}}
}

// cpuAll is the CPU time of every instance of both agents, by
// "AGENT/instance".
func cpuAll(e *env) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, c := range []*harness.Cluster{e.orders, e.payments} {
		for _, n := range c.Names {
			if d, err := harness.CPUTime(c.Proc(n).Cmd.Process.Pid); err == nil {
				out[n] = d
			}
		}
	}
	return out
}

// cpuText is the CPU of the actives and the standbys' sum.
func cpuText(e *env, cpu map[string]time.Duration) string {
	o, p, so, sp := cpuSplit(e, cpu)
	return fmt.Sprintf("ORDERS active %s, standbys %s; PAYMENTS active %s, standbys %s", secs(o), secs(so), secs(p), secs(sp))
}

// cpuSplit sums a run's CPU: ORDERS' active, PAYMENTS' active, ORDERS'
// standbys, PAYMENTS' standbys.
func cpuSplit(e *env, cpu map[string]time.Duration) (ordActive, payActive, ordStandbys, payStandbys time.Duration) {
	for _, n := range e.orders.Names {
		if n == e.ordActive {
			ordActive += cpu[n]
		} else {
			ordStandbys += cpu[n]
		}
	}
	for _, n := range e.payments.Names {
		if n == e.payActive {
			payActive += cpu[n]
		} else {
			payStandbys += cpu[n]
		}
	}
	return
}

// prefault touches n bytes of fresh anonymous memory (in huge pages) and
// frees it, as bench/transfer does: on a virtual machine that hands free
// guest memory back to its host (virtio balloon free page reporting), the
// first touch of such a page costs a fault in the host, and whichever tool
// runs next would pay it as it fills the page cache. See the caveats in
// docs/performance.md.
func prefault(n int64) {
	if !*flagPrefault || n <= 0 {
		return
	}
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return
	}
	_ = syscall.Madvise(b, madvHugepage)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	_ = syscall.Munmap(b)
}

const madvHugepage = 14 // MADV_HUGEPAGE

// waitQuiet waits, up to -wait-quiet, for a second in which the whole
// machine is at least 90% idle, and counts the runs that started
// without one.
func waitQuiet(e *env) {
	if *flagQuiet <= 0 {
		return
	}
	deadline := time.Now().Add(*flagQuiet)
	allowed := time.Duration(runtime.NumCPU()) * time.Second / 10
	for {
		b0 := machineBusy()
		time.Sleep(time.Second)
		if machineBusy()-b0 <= allowed {
			return
		}
		if time.Now().After(deadline) {
			e.notQuiet++
			progress("the machine was not quiet within %v: running anyway", *flagQuiet)
			return
		}
	}
}

// machineBusy is the CPU time all CPUs have spent not idle (nor waiting
// for I/O) since boot, from /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, x := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(x, 10, 64)
		ticks += n
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(ticks) * time.Second / clockTicks
}

// reportedKiB is how much free memory the guest has reported to the host
// (free page reporting), where the kernel exposes it; 0 otherwise.
func reportedKiB() int64 {
	b, err := os.ReadFile("/sys/module/page_reporting/parameters/reported_kib")
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
