// Command agents measures transfers from one agent to another (issue 12)
// on this machine, side by side with what an operator would otherwise use
// between two hosts, OpenSSH:
//
//   - agent ORDERS (three instances) sends to agent PAYMENTS (three
//     instances, storage of its own), both with TLS (certificates from one
//     CA of the run's own), over loopback, at default properties;
//   - one large file (-size, 1 GiB) through `ftagent transfer create
//     --dest-agent PAYMENTS --wait` against `scp` to an sshd of the run's
//     own on 127.0.0.1, and against `scp` followed by `sync FILE` (the fair
//     comparison for durable delivery: ftagent's receiver fsyncs before the
//     file is committed);
//   - -files (10,000) files of -file-size (4 KiB) in one recursive transfer
//     against `rsync -r -e ssh`, and `rsync -r -e ssh` followed by `sync`;
//   - the peak RSS of both actives (VmHWM reset before each transfer
//     through /proc/<pid>/clear_refs, and VmRSS polled during it), and the
//     CPU time of every instance, of the ssh client and of sshd.
//
// The runs alternate: for each repetition ftagent, then scp (then sync);
// ftagent, then rsync (then sync). Sources and destinations are on one file
// system: ORDERS' transferRoot holds the sources (which scp and rsync read
// too), and every destination is under PAYMENTS' transferRoot.
//
// It is a benchmark, not a test: it prints a markdown report and asserts no
// target. Run it with bench/agents.sh (which installs openssh-server where
// /usr/sbin/sshd is missing), as root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/test/harness"
)

var (
	flagRoot     = flag.String("root", ".", "a directory inside the ftagent module (its root is found with go env GOMOD)")
	flagN        = flag.Int("n", 3, "repetitions of each measurement (ftagent, scp; ftagent, rsync), alternating")
	flagSize     = flag.String("size", "1G", "bytes of the large file (K, M, G suffixes: powers of 1024; \"0\" skips it)")
	flagFiles    = flag.Int("files", 10000, "files in the many-files transfer (0 skips it)")
	flagFileSize = flag.String("file-size", "4K", "bytes of each of those files")
	flagWorkdir  = flag.String("workdir", "", "parent of the working directory (default: the system's temporary directory); it is the disk measured")
	flagKeep     = flag.Bool("keep", false, "keep the working directory (binaries, properties, data, instance logs, sshd configuration)")
	flagCipher   = flag.String("ssh-cipher", "", "cipher for scp and rsync's ssh (-c); empty: OpenSSH's default")
	flagPrefault = flag.Bool("prefault", true, "touch and free anonymous memory (huge pages) before each timed run, as bench/transfer does: see the caveats in docs/performance.md")
	flagPoll     = flag.Duration("poll", 10*time.Millisecond, "interval of the actives' VmRSS polls during a transfer")
	flagTimeout  = flag.Duration("timeout", 10*time.Minute, "longest wait for one command")
	flagSSHD     = flag.String("sshd", "/usr/sbin/sshd", "the OpenSSH server to run")
	flagProps    = flag.String("props", "", "extra agent.properties lines for both agents, separated by ';' (e.g. \"checkpointInterval=1G\", to see what the checkpoints cost); default: none, every property at its default")
	flagQuiet    = flag.Duration("wait-quiet", time.Minute, "before each timed run, wait up to this long for a second in which the whole machine is at least 90% idle (0: do not wait); on a shared machine, other work during a run shows in the report as CPU time of \"the rest\"")
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/agents [flags]\n\n%s\n",
			"Measures agent-to-agent transfers (ORDERS → PAYMENTS, 3 + 3 instances, TLS) against scp and rsync -e ssh to an sshd on 127.0.0.1.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || *flagN < 1 || *flagFiles < 0 {
		flag.Usage()
		os.Exit(2)
	}
	err := run()
	cleanups.run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agents:", err)
		os.Exit(1)
	}
}

// cleanups are run at the end, on an error, and on SIGINT or SIGTERM:
// they stop every process the benchmark started and remove its data.
var cleanups cleanupList

type cleanupList struct {
	mu  sync.Mutex
	fns []func()
	ran bool
}

func (l *cleanupList) add(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fns = append(l.fns, f)
}

// run runs the cleanups once, the last added first.
func (l *cleanupList) run() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ran {
		return
	}
	l.ran = true
	for i := len(l.fns) - 1; i >= 0; i-- {
		l.fns[i]()
	}
}

// env is what every measurement needs.
type env struct {
	bin      harness.Binaries
	orders   *harness.Cluster
	payments *harness.Cluster
	ssh      *sshServer
	big      dataFile
	small    dataDir

	ordActive, payActive string // instance names
	ordPID, payPID       int
	canReset             bool // /proc/<pid>/clear_refs resets VmHWM

	revision  string
	loadStart string
	sshVer    string
	sshdVer   string
	rsyncVer  string
	cipher    string        // the cipher ssh negotiated
	login     time.Duration // one ssh login (ssh HOST true), median of 3
	reported0 int64         // reportedKiB when both agents were up
	notQuiet  int           // timed runs started without a quiet second (-wait-quiet)
}

type dataFile struct {
	rel    string // relative to ORDERS' transferRoot
	path   string
	size   int64
	sha256 string
}

type dataDir struct {
	rel   string
	path  string
	files int
	size  int64
	sums  map[string]string // base name -> sha256
}

func run() error {
	started := time.Now()
	size, err := harness.ParseSize(*flagSize)
	if err != nil {
		return fmt.Errorf("-size: %w", err)
	}
	fileSize, err := harness.ParseSize(*flagFileSize)
	if err != nil {
		return fmt.Errorf("-file-size: %w", err)
	}
	root, err := harness.ModuleRoot(*flagRoot)
	if err != nil {
		return err
	}
	for _, t := range []string{"scp", "ssh", "ssh-keygen", "rsync", "sync"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is not installed (bench/agents.sh installs openssh-server and rsync with apt-get)", t)
		}
	}
	if _, err := os.Stat(*flagSSHD); err != nil {
		return fmt.Errorf("no OpenSSH server: %w (bench/agents.sh installs openssh-server with apt-get)", err)
	}
	dir, err := os.MkdirTemp(*flagWorkdir, "ftagent-bench-agents-")
	if err != nil {
		return err
	}
	if *flagKeep {
		fmt.Fprintln(os.Stderr, "working directory:", dir)
	} else {
		cleanups.add(func() {
			progress("removing %s", dir)
			_ = os.RemoveAll(dir)
		})
	}
	// Ctrl-C or a kill: stop the instances and sshd (each in a process
	// group of its own, so the signal does not reach them) and exit.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "agents: %v: stopping\n", s)
		cleanups.run()
		os.Exit(1)
	}()

	progress("building ftagent and ftstop from %s", root)
	bin, err := harness.Build(root, filepath.Join(dir, "bin"), "0.0.0-bench")
	if err != nil {
		return err
	}
	e := &env{bin: bin}
	e.revision = harness.Revision(root)
	e.rsyncVer = firstLine("rsync", "--version")
	e.sshVer = sshVersion("ssh", "-V")
	e.sshdVer = sshVersion(*flagSSHD, "-V")

	// PAYMENTS first: ORDERS' properties name its instances.
	payDir, ordDir := filepath.Join(dir, "payments"), filepath.Join(dir, "orders")
	for _, d := range []string{payDir, ordDir, filepath.Join(payDir, "inbox"), filepath.Join(ordDir, "in")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	// Every property at its default but the two that make two agents:
	// checkpointInterval 64M, checkpointTimeInterval 5s, maxBandwidth
	// unlimited, TLS required.
	e.payments, err = harness.New(bin, payDir, harness.Options{AgentName: "PAYMENTS", Names: []string{"pay1", "pay2", "pay3"}, TLSDir: dir,
		Extra: append([]string{"acceptFrom=ORDERS"}, extraProps()...)})
	if err != nil {
		return err
	}
	var entries []string
	for _, n := range e.payments.Names {
		entries = append(entries, n+"@"+e.payments.Addr[n])
	}
	e.orders, err = harness.New(bin, ordDir, harness.Options{AgentName: "ORDERS", Names: []string{"ord1", "ord2", "ord3"}, TLSDir: dir,
		Extra: append([]string{"agent.PAYMENTS.instances=" + strings.Join(entries, ",")}, extraProps()...)})
	if err != nil {
		return err
	}

	progress("writing the test data under %s", filepath.Join(ordDir, "in"))
	if size > 0 {
		if e.big, err = writeDataFile(ordDir, "in/big.bin", size, 1); err != nil {
			return err
		}
	}
	if *flagFiles > 0 {
		if e.small, err = writeDataDir(ordDir, "in/small", *flagFiles, fileSize, 3); err != nil {
			return err
		}
	}
	syscall.Sync()

	progress("starting sshd on 127.0.0.1")
	if e.ssh, err = startSSHD(filepath.Join(dir, "ssh"), *flagSSHD); err != nil {
		return err
	}
	cleanups.add(e.ssh.stop)

	for _, c := range []*harness.Cluster{e.payments, e.orders} {
		cleanups.add(c.StopAll)
		if err := c.StartAll(); err != nil {
			return err
		}
	}
	pv, err := waitSteady(e.payments, 30*time.Second)
	if err != nil {
		return fmt.Errorf("PAYMENTS start: %w%s", err, logTails(e.payments))
	}
	ov, err := waitSteady(e.orders, 30*time.Second)
	if err != nil {
		return fmt.Errorf("ORDERS start: %w%s", err, logTails(e.orders))
	}
	e.ordActive, e.payActive = ov.Active, pv.Active
	e.ordPID = e.orders.Proc(e.ordActive).Cmd.Process.Pid
	e.payPID = e.payments.Proc(e.payActive).Cmd.Process.Pid
	e.canReset = harness.ResetHWM(e.ordPID) == nil && harness.ResetHWM(e.payPID) == nil
	progress("ORDERS up: %s active (pid %d); PAYMENTS up: %s active (pid %d)", e.ordActive, e.ordPID, e.payActive, e.payPID)

	if err := warmUp(e); err != nil {
		return err
	}

	e.loadStart = harness.LoadAvg()
	e.reported0 = reportedKiB()
	res := &results{}
	if size > 0 {
		if err := measureLarge(e, res); err != nil {
			return err
		}
	}
	if *flagFiles > 0 {
		if err := measureSmall(e, res); err != nil {
			return err
		}
	}
	// Still the same actives: nothing failed over under the measurements.
	for _, x := range []struct {
		c      *harness.Cluster
		active string
	}{{e.orders, e.ordActive}, {e.payments, e.payActive}} {
		if v, err := waitSteady(x.c, 10*time.Second); err != nil || v.Active != x.active {
			return fmt.Errorf("the active changed during the benchmark (%s, now %q): %v%s", x.active, v.Active, err, logTails(x.c))
		}
	}
	res.elapsed = time.Since(started)
	report(os.Stdout, e, res, started)
	return nil
}

// extraProps are -props' lines.
func extraProps() []string {
	var out []string
	for _, l := range strings.Split(*flagProps, ";") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// warmUp sends one small file each way before the timed runs: ORDERS'
// active then holds its connections to PAYMENTS' active, and ssh has
// proved it can log in; it also records the cipher ssh negotiates.
func warmUp(e *env) error {
	p := filepath.Join(e.orders.Root, "in", "warmup.bin")
	if err := harness.WriteRandomFile(p, 4096, 99); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, r, err := e.orders.CreateTransfer(ctx, "--dest-agent", "PAYMENTS", "--wait", "in/warmup.bin", "inbox/warmup.bin")
	if err != nil || r.Exit != 0 || v.State != "completed" {
		return fmt.Errorf("warm-up transfer: %v, exit %d, %s: %s %s%s%s", err, r.Exit, v.State, v.Reason, r.Stderr, logTails(e.orders), logTails(e.payments))
	}
	dst := filepath.Join(e.payments.Root, "inbox", "warmup-scp.bin")
	if _, _, err := runCommand(ctx, e.orders.Root, e.ssh.scpArgv(p, dst)); err != nil {
		return fmt.Errorf("warm-up scp: %w%s", err, e.ssh.logTail())
	}
	e.cipher = e.ssh.negotiatedCipher(ctx)
	e.login = e.ssh.loginTime(ctx)
	for _, f := range []string{"warmup.bin", "warmup-scp.bin"} {
		if sum, err := harness.FileSHA256(filepath.Join(e.payments.Root, "inbox", f)); err != nil || sum == "" {
			return fmt.Errorf("warm-up: %s did not arrive: %v", f, err)
		}
		_ = os.Remove(filepath.Join(e.payments.Root, "inbox", f))
	}
	syscall.Sync()
	progress("warm-up done: ftagent and scp delivered a file each; ssh cipher %s; an ssh login takes %s", e.cipher, secs(e.login))
	return nil
}

// waitSteady waits until the agent has an active and two standbys, asking
// the instances' GET /v1/agent directly.
func waitSteady(c *harness.Cluster, timeout time.Duration) (ha.AgentView, error) {
	deadline := time.Now().Add(timeout)
	var last ha.AgentView
	for {
		for _, n := range c.Names {
			var v ha.AgentView
			if err := harness.GetJSON(context.Background(), c.HTTP, c.Addr[n], api.PathAgent, &v); err != nil {
				continue // a follower answers 421; a stopped instance not at all
			}
			last = v
			if v.Status == ha.StatusActive && v.Active != "" && len(v.Standbys) == len(c.Names)-1 {
				return v, nil
			}
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("timed out after %v waiting for an active with %d standbys", timeout, len(c.Names)-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logTails is the end of each instance's log, for an error.
func logTails(c *harness.Cluster) string {
	var b strings.Builder
	for _, n := range c.Names {
		data, _ := os.ReadFile(filepath.Join(c.Dir, n+".log"))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "\n--- last log lines of %s:\n%s", n, strings.Join(lines, "\n"))
	}
	return b.String()
}

func goVersion() string {
	out, err := exec.Command("go", "version").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return name + " (version unknown)"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// sshVersion is what `ssh -V` or `sshd -V` prints (on stderr).
func sshVersion(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" || strings.Contains(line, "illegal option") || strings.Contains(line, "unknown option") {
		return filepath.Base(name) + " (version unknown)"
	}
	return line
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
