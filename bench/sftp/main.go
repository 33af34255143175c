// Command sftp measures SFTP partners (issue 13) against OpenSSH's own
// clients: one sshd on 127.0.0.1 (harness.StartSSHD: internal-sftp only,
// key login as harness.SSHDUser) serves every tool; an agent of three
// instances (harness.New: default properties and the partner's) sends a
// large file (-size) and a tree of -files small files, and fetches the large
// file back, each time against `sftp -b` and `scp` for the same data. The
// runs alternate, the order rotated each repetition; the OpenSSH runs are
// also reported with a `sync -f` of what they wrote, as ftagent fsyncs every
// file. Progress goes to stderr, a markdown report to stdout. Run it as root
// through bench/sftp.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/test/harness"
)

var (
	flagRoot     = flag.String("root", ".", "a directory inside the ftagent module")
	flagN        = flag.Int("n", 3, "repetitions of each measurement, alternating between the tools")
	flagSize     = flag.String("size", "1G", "bytes of the large file, sent and fetched (K, M, G: powers of 1024; 0 skips it)")
	flagFiles    = flag.Int("files", 10000, "files in the tree sent (0 skips it)")
	flagFileSize = flag.String("file-size", "4K", "bytes of each of those files")
	flagWorkdir  = flag.String("workdir", "", "parent of the working directory (default: the system's temporary directory, which holds sshd's folder in any case)")
	flagKeep     = flag.Bool("keep", false, "keep the working directory (binaries, properties, sources, instance logs)")
	flagTimeout  = flag.Duration("timeout", 10*time.Minute, "longest wait for one command")
	flagCipher   = flag.String("ssh-cipher", "", "cipher for sftp and scp (-c); empty: OpenSSH's default")
	flagQuiet    = flag.Duration("wait-quiet", time.Minute, "before each timed run, wait up to this long for a second in which the machine is at least 90% idle (0: do not wait)")
	flagProps    []string
)

// sample is one timed run.
type sample struct {
	wall, sync   time.Duration // sync: `sync -f` after an OpenSSH command
	busy         time.Duration // the whole machine's CPU time during the command
	cpu, sshdCPU time.Duration // cpu: ftagent's active, or the OpenSSH client with its ssh
	rss          int64         // ftagent: the active's peak
}

// tools run each workload, in this order in the first repetition.
var tools = []string{"ftagent", "sftp", "scp"}

type workload struct {
	kind, title, target string // kind: send, tree or fetch; target "": none
	bytes               int64  // the large file (MiB/s), or
	files               int    // the tree (files/s)
	cmds                map[string]string
	samples             map[string][]sample
}

type env struct {
	c                      *harness.Cluster
	s                      *harness.SSHD
	active                 string
	pid, sshdPID, batches  int
	dir, big, small        string // big, small: absolute source paths
	bigSum                 string
	smallSums              map[string]string
	revision, sshVer, ciph string
	login, probe           time.Duration // probe: writing the tree's sources
	notQuiet               int           // timed runs started without a quiet second
	loadStart              string
}

func main() {
	flag.Func("props", "extra agent.properties lines (repeatable or comma-separated), e.g. sftp.PARTNER.maxConnections=2", func(s string) error {
		flagProps = append(flagProps, strings.FieldsFunc(s, func(r rune) bool { return r == ',' })...)
		return nil
	})
	flag.Parse()
	if flag.NArg() > 0 || *flagN < 1 || *flagFiles < 0 {
		flag.Usage()
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		fmt.Fprintf(os.Stderr, "sftp: %v: stopping\n", <-sigs)
		cleanup()
		os.Exit(1)
	}()
	err := run()
	cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sftp:", err)
		os.Exit(1)
	}
}

var (
	cleanMu  sync.Mutex
	cleanFns []func()
)

func atExit(f func()) { cleanMu.Lock(); cleanFns = append(cleanFns, f); cleanMu.Unlock() }

// cleanup runs the clean-ups once, the last added first.
func cleanup() {
	cleanMu.Lock()
	defer cleanMu.Unlock()
	for i := len(cleanFns) - 1; i >= 0; i-- {
		cleanFns[i]()
	}
	cleanFns = nil
}

func run() error {
	started := time.Now()
	size, err1 := harness.ParseSize(*flagSize)
	fileSize, err2 := harness.ParseSize(*flagFileSize)
	root, err3 := harness.ModuleRoot(*flagRoot)
	if err := firstErr(err1, err2, err3); err != nil {
		return err
	}
	e := &env{}
	var err error
	if e.dir, err = os.MkdirTemp(*flagWorkdir, "ftagent-bench-sftp-"); err != nil {
		return err
	}
	if progress("working directory %s; building ftagent from %s", e.dir, root); !*flagKeep {
		atExit(func() { _ = os.RemoveAll(e.dir) })
	}
	bin, err := harness.Build(root, filepath.Join(e.dir, "bin"), "0.0.0-bench")
	if err != nil {
		return err
	}
	out, _ := exec.Command("ssh", "-V").CombinedOutput()
	e.revision, e.sshVer = harness.Revision(root), strings.TrimSpace(string(out))
	if e.s, err = harness.StartSSHD(e.dir); err != nil {
		return err
	}
	atExit(e.s.Stop)
	b, _ := os.ReadFile(filepath.Join(e.s.Dir, "sshd.pid"))
	e.sshdPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	p := "sftp.PARTNER."
	props := append([]string{p + "address=" + e.s.Addr, p + "user=" + harness.SSHDUser, p + "identityFile=" + e.s.IdentityFile,
		p + "knownHostsFile=" + e.s.KnownHosts, p + "root=" + e.s.Root}, flagProps...)
	if err := os.Mkdir(filepath.Join(e.dir, "agent"), 0o750); err != nil {
		return err
	}
	if e.c, err = harness.New(bin, filepath.Join(e.dir, "agent"), harness.Options{Extra: props}); err != nil {
		return err
	}

	progress("writing the data under %s", e.c.Root)
	e.big, e.small = filepath.Join(e.c.Root, "in", "big.bin"), filepath.Join(e.c.Root, "in", "small")
	if size > 0 {
		src := filepath.Join(e.s.Root, "src", "big.bin") // the fetch's: the same bytes, the login's
		err1, err2 = harness.WriteRandomFile(e.big, size, 1), harness.WriteRandomFile(src, size, 1)
		e.bigSum, err3 = harness.FileSHA256(e.big)
		u, err := user.Lookup(harness.SSHDUser)
		if err := firstErr(err1, err2, err3, err); err != nil {
			return err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := firstErr(os.Chown(filepath.Dir(src), uid, gid), os.Chown(src, uid, gid)); err != nil {
			return err
		}
	}
	t0 := time.Now()
	for i := range *flagFiles {
		if err := harness.WriteRandomFile(filepath.Join(e.small, fmt.Sprintf("f%05d.bin", i)), fileSize, uint64(1000+i)); err != nil {
			return err
		}
	}
	e.probe = time.Since(t0)
	if e.smallSums, err = harness.TreeSHA256(e.small); err != nil && *flagFiles > 0 {
		return err
	}
	syscall.Sync()

	atExit(e.c.StopAll)
	if err := e.c.StartAll(); err != nil {
		return err
	}
	v, err := e.c.WaitView(time.Minute, "an active and two standbys", func(v ha.AgentView) bool { return v.Active != "" && len(v.Standbys) == 2 })
	if err != nil {
		return err
	}
	e.active, e.pid = v.Active, e.c.Proc(v.Active).Cmd.Process.Pid
	progress("agent up: %s active (pid %d); sshd on %s (pid %d)", e.active, e.pid, e.s.Addr, e.sshdPID)
	if err := e.warmUp(); err != nil {
		return err
	}
	e.loadStart = harness.LoadAvg()

	var works []*workload
	if size > 0 {
		works = append(works, &workload{kind: "send", title: "Send one " + harness.SizeText(size) + " file", target: "≥ 1.0× `sftp -b`'s throughput", bytes: size,
			cmds: map[string]string{"ftagent": "ftagent transfer create --wait in/big.bin sftp://PARTNER/send-ftagent-I/big.bin",
				"sftp": "sftp -b BATCH: mkdir send-sftp-I; put /abs/in/big.bin send-sftp-I/big.bin",
				"scp":  "scp /abs/in/big.bin ftagent-sftp@127.0.0.1:send-scp-I/big.bin (the directory made by sftp beforehand, untimed)"}})
	}
	if *flagFiles > 0 {
		works = append(works, &workload{kind: "tree", title: fmt.Sprintf("Send %d files of %s (one recursive transfer)", *flagFiles, harness.SizeText(fileSize)),
			target: "≥ 1.0× `sftp -b`'s files per second", files: *flagFiles,
			cmds: map[string]string{"ftagent": "ftagent transfer create --wait --recursive in/small/ sftp://PARTNER/tree-ftagent-I/",
				"sftp": "sftp -b BATCH: put -r /abs/in/small tree-sftp-I", "scp": "scp -r /abs/in/small ftagent-sftp@127.0.0.1:tree-scp-I"}})
	}
	if size > 0 {
		works = append(works, &workload{kind: "fetch", title: "Fetch one " + harness.SizeText(size) + " file", bytes: size,
			cmds: map[string]string{"ftagent": "ftagent transfer create --wait sftp://PARTNER/src/big.bin fetch-ftagent-I/big.bin",
				"sftp": "sftp -b BATCH: get src/big.bin /abs/fetch-sftp-I/big.bin", "scp": "scp ftagent-sftp@127.0.0.1:src/big.bin /abs/fetch-scp-I/big.bin"}})
	}
	for _, w := range works {
		if err := e.measure(w); err != nil {
			return err
		}
	}
	if v, err := e.c.WaitView(10*time.Second, "the same active", func(v ha.AgentView) bool { return v.Active == e.active }); err != nil {
		return fmt.Errorf("the active changed during the benchmark (now %q): %w", v.Active, err)
	}
	report(os.Stdout, e, works, started, time.Since(started))
	return nil
}

// job prepares repetition i of tool in workload kind, and returns what to
// run (for ftagent, the arguments of `transfer create --wait`) and the path
// it writes.
func (e *env) job(kind, tool string, i int) (argv []string, out string, err error) {
	d := fmt.Sprintf("%s-%s-%d", kind, tool, i)
	srv, loc := filepath.Join(e.s.Root, d), filepath.Join(e.c.Root, d, "big.bin")
	switch kind + "/" + tool {
	case "send/ftagent":
		return []string{"in/big.bin", "sftp://PARTNER/" + d + "/big.bin"}, srv + "/big.bin", nil
	case "send/sftp":
		return e.sftp("mkdir "+d, "put "+e.big+" "+d+"/big.bin"), srv + "/big.bin", nil
	case "send/scp":
		_, err = e.runTool(e.sftp("mkdir "+d), "")
		return e.scp(e.big, e.remote(d+"/big.bin")), srv + "/big.bin", err
	case "tree/ftagent":
		return []string{"--recursive", "in/small/", "sftp://PARTNER/" + d + "/"}, srv, nil
	case "tree/sftp":
		return e.sftp("put -r " + e.small + " " + d), srv, nil
	case "tree/scp":
		return e.scp("-r", e.small, e.remote(d)), srv, nil
	case "fetch/ftagent":
		return []string{"sftp://PARTNER/src/big.bin", d + "/big.bin"}, loc, nil
	case "fetch/sftp":
		return e.sftp("get src/big.bin " + loc), loc, os.Mkdir(filepath.Dir(loc), 0o750)
	default: // fetch/scp
		return e.scp(e.remote("src/big.bin"), loc), loc, os.Mkdir(filepath.Dir(loc), 0o750)
	}
}

// measure runs each tool -n times, alternating, the order rotated by one
// each repetition, and checks every output (SHA-256): the large file's are
// then removed, the trees' kept (ext4 is slow to create many files right
// after many were deleted: see docs/performance.md).
func (e *env) measure(w *workload) error {
	w.samples = map[string][]sample{}
	for i := 1; i <= *flagN; i++ {
		for k := range tools {
			t := tools[(k+i-1)%len(tools)]
			var s sample
			argv, out, err := e.job(w.kind, t, i)
			if !waitQuiet() {
				e.notQuiet++
				progress("the machine was not quiet within %v: running anyway", *flagQuiet)
			}
			if err == nil && t == "ftagent" {
				s, err = e.runFt(argv...)
			} else if err == nil {
				s, err = e.runTool(argv, out)
			}
			if err == nil && w.files > 0 {
				var sums map[string]string
				if sums, err = harness.TreeSHA256(out); err == nil && !maps.Equal(sums, e.smallSums) {
					err = fmt.Errorf("%s holds %d files, not the %d sent (or other bytes)", out, len(sums), len(e.smallSums))
				}
			} else if err == nil {
				var sum string
				if sum, err = harness.FileSHA256(out); err == nil && sum != e.bigSum {
					err = fmt.Errorf("%s: SHA-256 %s, want %s", out, sum, e.bigSum)
				}
				err = firstErr(err, os.RemoveAll(filepath.Dir(out)))
			}
			if err != nil {
				return fmt.Errorf("%s, %s, repetition %d: %w", w.title, t, i, err)
			}
			w.samples[t] = append(w.samples[t], s)
			syscall.Sync() // nothing left to write back for the next run
			progress("%s %d/%d %-7s %s (+ sync %s; CPU %s, sshd %s, machine busy %s; peak RSS %s)", w.title, i, *flagN, t, secs(s.wall), secs(s.sync), secs(s.cpu), secs(s.sshdCPU), secs(s.busy), mib(s.rss))
		}
	}
	return nil
}

// runFt times `ftagent transfer create --wait ARGS` (exit 0 only if the
// transfer completed), with the active's CPU time and peak RSS.
func (e *env) runFt(args ...string) (sample, error) {
	var s sample
	_ = harness.ResetHWM(e.pid)
	cpu0, _ := harness.CPUTime(e.pid)
	rss, sshd := harness.WatchRSS(e.pid, 10*time.Millisecond), watchCPU(e.sshdPID)
	ctx, cancel := context.WithTimeout(context.Background(), *flagTimeout)
	defer cancel()
	t0, busy0 := time.Now(), machineBusy()
	r, err := e.c.Transfer(ctx, "create", append([]string{"--wait"}, args...)...)
	s.wall, s.busy = time.Since(t0), machineBusy()-busy0
	s.rss, s.sshdCPU = rss.Stop(), sshd.Stop()
	if hwm, err := harness.ProcStatus(e.pid, "VmHWM:"); err == nil {
		s.rss = max(s.rss, hwm)
	}
	cpu1, _ := harness.CPUTime(e.pid)
	if s.cpu = cpu1 - cpu0; err == nil && r.Exit != 0 {
		log, _ := os.ReadFile(filepath.Join(e.c.Dir, e.active+".log"))
		err = fmt.Errorf("ftagent transfer create exited %d: %s\n--- %s's log:\n%s", r.Exit, strings.TrimSpace(r.Stderr+r.Stdout), e.active, log[max(0, len(log)-3000):])
	}
	return s, err
}

// runTool times an OpenSSH command (its CPU with its children's), then, on
// its own, `sync -f syncPath` (unless "").
func (e *env) runTool(argv []string, syncPath string) (sample, error) {
	var s sample
	ctx, cancel := context.WithTimeout(context.Background(), *flagTimeout)
	defer cancel()
	sshd := watchCPU(e.sshdPID)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = e.c.Root
	t0, busy0 := time.Now(), machineBusy()
	out, err := cmd.CombinedOutput()
	if s.wall, s.busy = time.Since(t0), machineBusy()-busy0; err != nil {
		sshd.Stop()
		return s, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	s.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if syncPath != "" {
		t1 := time.Now()
		if out, err := exec.Command("sync", "-f", syncPath).CombinedOutput(); err != nil {
			return s, fmt.Errorf("sync -f %s: %v: %s", syncPath, err, out)
		}
		s.sync = time.Since(t1)
	}
	s.sshdCPU = sshd.Stop()
	return s, nil
}

func (e *env) sshOpts() []string {
	o := []string{"-F", "/dev/null", "-i", e.s.IdentityFile, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + e.s.KnownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-P", e.s.Addr[strings.LastIndexByte(e.s.Addr, ':')+1:]}
	if *flagCipher != "" {
		o = append(o, "-c", *flagCipher)
	}
	return o
}

// sftp is the argv of `sftp -b` running lines as its batch.
func (e *env) sftp(lines ...string) []string {
	e.batches++
	batch := filepath.Join(e.dir, fmt.Sprintf("batch-%d", e.batches))
	if err := os.WriteFile(batch, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		panic(err)
	}
	return append(append([]string{"sftp", "-b", batch}, e.sshOpts()...), harness.SSHDUser+"@127.0.0.1")
}

func (e *env) scp(args ...string) []string {
	return append(append([]string{"scp", "-q"}, e.sshOpts()...), args...)
}

func (e *env) remote(path string) string { return harness.SSHDUser + "@127.0.0.1:" + path }

// warmUp opens ftagent's connection to the partner with a small file, times
// an OpenSSH login (`sftp -b` running pwd; median of 3) and reads the cipher
// OpenSSH negotiates.
func (e *env) warmUp() error {
	if err := harness.WriteRandomFile(filepath.Join(e.c.Root, "in", "warmup.bin"), 4096, 9); err != nil {
		return err
	}
	if _, err := e.runFt("in/warmup.bin", "sftp://PARTNER/warmup/warmup.bin"); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	var logins []time.Duration
	for range 3 {
		s, err := e.runTool(e.sftp("pwd"), "")
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		logins = append(logins, s.wall)
	}
	e.login = median(logins)
	argv := e.sftp("pwd")
	out, _ := exec.Command(argv[0], append([]string{"-v"}, argv[1:]...)...).CombinedOutput()
	if m := regexp.MustCompile(`client->server cipher: (\S+)`).FindSubmatch(out); m != nil {
		e.ciph = string(m[1])
	}
	progress("warm-up done; an OpenSSH login takes %s; OpenSSH's cipher %s", secs(e.login), e.ciph)
	return os.RemoveAll(filepath.Join(e.s.Root, "warmup"))
}

// cpuWatch sums the CPU time (user + system) of a process and its
// descendants, polled every 50 ms from /proc: sshd does not collect its
// sessions' times, so what a session uses after the last poll before its
// exit is not counted.
type cpuWatch struct {
	stop chan struct{}
	sum  chan time.Duration
}

func watchCPU(root int) *cpuWatch {
	w := &cpuWatch{make(chan struct{}), make(chan time.Duration)}
	first, last := map[int]int64{}, map[int]int64{} // clock ticks by pid
	poll := func(initial bool) {
		ents, _ := os.ReadDir("/proc")
		kids, ticks := map[int][]int{}, map[int]int64{}
		for _, en := range ents {
			b, err := os.ReadFile("/proc/" + en.Name() + "/stat")
			i := strings.LastIndexByte(string(b), ')')
			if f := strings.Fields(string(b[i+1:])); err == nil && i > 0 && len(f) > 13 {
				pid, _ := strconv.Atoi(en.Name())
				ppid, _ := strconv.Atoi(f[1])
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				kids[ppid], ticks[pid] = append(kids[ppid], pid), ut+st
			}
		}
		for queue := []int{root}; len(queue) > 0; queue = queue[1:] {
			p := queue[0]
			if _, seen := first[p]; !seen && initial {
				first[p] = ticks[p] // a process new since the start counts all its time
			}
			last[p], queue = ticks[p], append(queue, kids[p]...)
		}
	}
	poll(true)
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				poll(false)
				var sum int64
				for p, v := range last {
					sum += v - first[p]
				}
				w.sum <- time.Duration(sum) * time.Second / 100 // USER_HZ
				return
			case <-t.C:
				poll(false)
			}
		}
	}()
	return w
}

// Stop ends the polls and returns the CPU time used since watchCPU.
func (w *cpuWatch) Stop() time.Duration { close(w.stop); return <-w.sum }

// machineBusy is the CPU time all CPUs have spent neither idle nor waiting
// for I/O since boot (/proc/stat).
func machineBusy() time.Duration {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	var ticks int64
	for i, x := range strings.Fields(line) {
		if n, err := strconv.ParseInt(x, 10, 64); err == nil && i != 4 && i != 5 && i <= 8 {
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// waitQuiet waits up to -wait-quiet for a second in which the machine is at
// least 90% idle, and tells whether there was one.
func waitQuiet() bool {
	for deadline := time.Now().Add(*flagQuiet); time.Now().Before(deadline); {
		b0 := machineBusy()
		if time.Sleep(time.Second); machineBusy()-b0 <= time.Duration(runtime.NumCPU())*time.Second/10 {
			return true
		}
	}
	return *flagQuiet <= 0
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func progress(format string, args ...any) bool {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	return true
}
