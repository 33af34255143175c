// Command million measures one recursive transfer of a huge tree (by
// default 1,000,000 files of 1 KiB) on a cluster of three real instances on
// this machine, as bench/transfer runs them (TLS, default properties), with
// maxFilesPerTransfer raised above the tree's files:
//
//   - generating the tree (written by a few goroutines, two levels of
//     directories of -per-dir files each; kept in a cache directory and
//     reused by the next run with the same flags);
//   - how long the agent takes to accept it: `ftagent transfer create
//     --recursive --json` without --wait returns once the create entry is
//     committed (and its answer, the view with every file, printed); the
//     command gives each request clientRequestTimeout (2 s by default,
//     -client-timeout), and the agent stops planning a create whose
//     request the command gave up;
//   - how long the transfer then takes to complete, polling GET
//     /v1/transfers/{id}?files=none (a long poll: it answers at the end);
//   - the memory of the active and of the standbys (they hold the same
//     replicated state): VmRSS polled, and VmHWM reset through
//     /proc/<pid>/clear_refs before each phase; the peak while accepting,
//     the peak while transferring, and VmRSS once the cluster has settled;
//   - the raft entries written (the active's lastApplied) and, read back
//     from the active's raft.db once the cluster is stopped, their sizes:
//     the largest single entry is what every instance must write, send and
//     decode at once;
//   - the destination: every file there with its size, and the bytes of a
//     random sample;
//   - `rsync -r` of the same tree, once, for comparison.
//
// A transfer that is refused, fails or does not end within -timeout is a
// result, not an error: the report says so, with the error, and gives the
// memory figures gathered until then. It is a benchmark, not a test: it
// prints a markdown report and asserts no target. Run it with
// bench/million.sh.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/ftagent/ftagent/pkg/agentclient"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

var (
	flagRoot     = flag.String("root", ".", "a directory inside the ftagent module (its root is found with go env GOMOD)")
	flagFiles    = flag.Int("files", 1000000, "files in the tree")
	flagFileSize = flag.String("file-size", "1K", "bytes of each file (K, M suffixes: powers of 1024; 0 for empty files)")
	flagPerDir   = flag.Int("per-dir", 1000, "files in each directory; the directories are spread over two levels")
	flagWriters  = flag.Int("writers", 4, "goroutines writing the tree")
	flagCache    = flag.String("cache", "", "directory of the generated trees, reused between runs, on the file system of -workdir: a tree is moved into the run's transferRoot and back (default: ftagent-bench-million-cache in -workdir)")
	flagKeepTree = flag.Bool("keep-tree", true, "keep the generated tree in -cache for the next run with the same -files, -file-size and -per-dir (false: delete it at the end)")
	flagRsync    = flag.Bool("rsync", true, "also time rsync -r of the same tree, once")
	flagSample   = flag.Int("sample", 300, "random files of each copy whose bytes are checked")
	flagPoll     = flag.Duration("poll", 100*time.Millisecond, "interval of the instances' VmRSS polls")
	flagSettle   = flag.Duration("settle", 5*time.Second, "wait after the end before VmRSS is read again")
	flagTimeout  = flag.Duration("timeout", 60*time.Minute, "longest wait for the transfer, from the create to its end")
	flagKeep     = flag.Bool("keep", false, "keep the working directory (binaries, properties, data, instance logs, the copies)")
	flagWorkdir  = flag.String("workdir", "", "parent of the working directory and of the default -cache (default: the system's temporary directory); it is the disk measured")
	flagTLS      = flag.String("tls", "required", "tlsMode of the instances: required (certificates from a CA of the run's own) or disabled")
	flagClient   = flag.Duration("client-timeout", 0, "clientRequestTimeout, the command's time for one request (0: the property's default, 2s): a create whose planning takes longer is given up by the command, and the agent stops planning it")
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/million [flags]\n\n%s\n",
			"Measures one recursive ftagent transfer of a huge tree (accepted, completed, times, the instances' memory, the raft entries) against rsync -r.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || *flagFiles < 1 || *flagPerDir < 1 || *flagWriters < 1 || *flagSample < 0 || *flagPoll <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "million:", err)
		os.Exit(1)
	}
}

// env is the run.
type env struct {
	bin      harness.Binaries
	c        *harness.Cluster
	cl       *client.Client
	dir      string // the cluster's directory: transferRoot
	runDir   string
	tree     tree
	active   string
	pids     map[string]int
	canReset bool
	resetErr string
	revision string
	load     string // /proc/loadavg when the cluster was up
	rsyncVer string
}

// result is what the report says.
type result struct {
	started time.Time
	elapsed time.Duration

	// The create.
	createCmd  string
	accepted   bool
	acceptTime time.Duration
	// toCreated is the create's start → the transfer's created time (both
	// on this machine's clock).
	toCreated time.Duration
	createOut int64  // bytes the create printed
	createErr string // the create's error, when it failed
	id        string
	// lateCreate: the create failed but the agent has the transfer.
	lateCreate bool

	// The transfer.
	completed    bool
	state        string
	reason       string
	transferTime time.Duration // the create's exit → the poll that saw the end
	server       time.Duration // created → ended, on the active's clock
	bytes        int64
	bytesDone    int64
	waitErr      string

	// Memory by instance.
	rssBefore, peakAccept, peakTransfer, rssAfter map[string]int64
	// anonAfter and fileAfter split rssAfter: anonymous memory (the Go
	// heap and stacks) and file pages mapped (the raft log's bolt file is
	// read through mmap: its pages count in VmRSS while they stay cached).
	anonAfter, fileAfter map[string]int64
	// CPU by instance, per phase.
	cpuAccept, cpuTransfer map[string]time.Duration

	// Raft.
	applied0, appliedAccept, appliedEnd uint64
	appliedErr                          string
	dbBefore, dbAfter, snapAfter        map[string]int64
	entries                             entryStats
	activeChanged                       string
	logFrom                             map[string]int64
	// events counts, by message and instance, the warnings and errors the
	// instances logged from the create on, and their elections and leases.
	events map[string]map[string]int

	// Verification.
	ftCheck, rsyncCheck checkResult
	rsyncTime           time.Duration
	rsyncErr            string
}

func run() error {
	r := &result{started: time.Now()}
	size, err := harness.ParseSize(*flagFileSize)
	if err != nil {
		return fmt.Errorf("-file-size: %w", err)
	}
	root, err := harness.ModuleRoot(*flagRoot)
	if err != nil {
		return err
	}
	if *flagRsync {
		if _, err := exec.LookPath("rsync"); err != nil {
			return errors.New("rsync is not installed (bench/million.sh installs it with apt-get; or use -rsync=false)")
		}
	}
	runDir, err := os.MkdirTemp(*flagWorkdir, "ftagent-bench-million-")
	if err != nil {
		return err
	}
	e := &env{runDir: runDir, dir: filepath.Join(runDir, "cluster"), revision: harness.Revision(root)}
	var done cleanups
	defer done.run()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		progress("interrupted: cleaning up")
		done.run()
		os.Exit(130)
	}()
	if *flagKeep {
		fmt.Fprintln(os.Stderr, "working directory:", runDir)
	} else {
		done.add(func() { _ = os.RemoveAll(runDir) })
	}
	if *flagRsync {
		e.rsyncVer = firstLine("rsync", "--version")
	}
	for _, d := range []string{e.dir, filepath.Join(e.dir, "in"), filepath.Join(e.dir, "out")} {
		if err := os.Mkdir(d, 0o750); err != nil {
			return err
		}
	}

	cache := *flagCache
	if cache == "" {
		base := *flagWorkdir
		if base == "" {
			base = os.TempDir()
		}
		cache = filepath.Join(base, "ftagent-bench-million-cache")
	}
	if e.tree, err = prepareTree(cache, *flagFiles, size, *flagPerDir); err != nil {
		return err
	}
	// The tree moves into transferRoot for the run (a rename: the cache is
	// on the same file system as the working directory by default), and
	// back to the cache at the end, after the cluster has stopped.
	cached := e.tree.path
	e.tree.path = filepath.Join(e.dir, "in", "tree")
	if err := os.Rename(cached, e.tree.path); err != nil {
		return fmt.Errorf("moving the tree into transferRoot (is -cache on the file system of -workdir?): %w", err)
	}
	done.add(func() {
		if *flagKeepTree {
			if err := os.Rename(e.tree.path, cached); err != nil {
				progress("moving the tree back to the cache: %v", err)
			}
			return
		}
		progress("deleting the tree")
		_ = os.RemoveAll(filepath.Dir(cached))
	})

	progress("building ftagent and ftstop from %s", root)
	if e.bin, err = harness.Build(root, filepath.Join(runDir, "bin"), "0.0.0-bench"); err != nil {
		return err
	}
	// Default properties but for maxFilesPerTransfer, which must let the
	// tree in (transferRoot is the cluster's directory), and, when asked
	// for, the command's clientRequestTimeout.
	limit := max(*flagFiles+1, 100000)
	extra := []string{"maxFilesPerTransfer=" + strconv.Itoa(limit)}
	if *flagClient > 0 {
		extra = append(extra, "clientRequestTimeout="+flagClient.String())
	}
	c, err := harness.New(e.bin, e.dir, harness.Options{TLSMode: harness.TLSModeOption(*flagTLS), Extra: extra})
	if err != nil {
		return err
	}
	var opts []client.Option
	if c.TLS != nil {
		d, err := c.TLS.Dialer(harness.ClientAdmin)
		if err != nil {
			return err
		}
		opts = append(opts, client.WithDialer(d.DialContext))
	}
	var addrs []string
	for _, n := range c.Names {
		addrs = append(addrs, c.Addr[n])
	}
	if e.cl, err = client.New(addrs, opts...); err != nil {
		return err
	}
	e.c = c
	done.add(c.StopAll)
	if err := c.StartAll(); err != nil {
		return err
	}
	v, err := waitSteady(e, 30*time.Second)
	if err != nil {
		return fmt.Errorf("cluster start: %w", err)
	}
	e.active = v.Active
	e.pids = map[string]int{}
	for _, n := range c.Names {
		e.pids[n] = c.Proc(n).Cmd.Process.Pid
	}
	if err := harness.ResetHWM(e.pids[e.active]); err != nil {
		e.resetErr = err.Error()
	} else {
		e.canReset = true
	}
	e.load = harness.LoadAvg()
	progress("cluster up: %s active (pid %d), standbys %s; maxFilesPerTransfer=%d", e.active, e.pids[e.active], strings.Join(v.Standbys, ", "), limit)

	measureTransfer(e, r)

	// Still the same active with its two standbys: no fail-over under the
	// measurements.
	if v, err := waitSteady(e, 10*time.Second); err != nil || v.Active != e.active {
		r.activeChanged = fmt.Sprintf("after the run, the agent did not show %s active with two standbys (active %q): %v", e.active, v.Active, err)
	}
	// The raft log is read back with the instances stopped: bbolt's lock
	// keeps it from being opened while they run.
	r.events = logEvents(c, r.logFrom)
	progress("stopping the cluster")
	c.StopAll()
	r.snapAfter = map[string]int64{}
	for _, n := range c.Names {
		r.snapAfter[n] = dirBytes(filepath.Join(c.Dir, "data", n, "snapshots"))
	}
	r.dbAfter = dbSizes(c)
	if r.appliedEnd > r.applied0 {
		progress("reading the raft entries %d..%d back from %s's raft.db", r.applied0+1, r.appliedEnd, e.active)
		r.entries = readEntries(filepath.Join(c.Dir, "data", e.active, "raft.db"), r.applied0+1, r.appliedAccept, r.appliedEnd)
	}

	if r.id != "" {
		progress("checking the %d files ftagent wrote", e.tree.files)
		r.ftCheck = checkCopy(e.tree, filepath.Join(e.dir, "out", "ftagent"))
		progress("%s", r.ftCheck.text())
	}
	if *flagRsync {
		// After ftagent's copy, which is kept: creating many files right
		// after deleting as many is slower on ext4 (see the caveats in
		// docs/performance.md).
		dst := filepath.Join(e.dir, "out", "rsync")
		progress("rsync -r of the %d files", e.tree.files)
		syscall.Sync()
		t0 := time.Now()
		cmd := exec.Command("rsync", "-r", "in/tree/", "out/rsync/")
		cmd.Dir = e.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			r.rsyncErr = fmt.Sprintf("%v: %s", err, lastLine(string(out)))
		}
		r.rsyncTime = time.Since(t0)
		progress("rsync -r: %s (%.0f files/s)", secs(r.rsyncTime), float64(e.tree.files)/r.rsyncTime.Seconds())
		r.rsyncCheck = checkCopy(e.tree, dst)
		progress("%s", r.rsyncCheck.text())
	}
	r.elapsed = time.Since(r.started)
	report(os.Stdout, e, r)
	return nil
}

// cleanups are what a run leaves to undo: run once, in reverse order, at
// the end or on SIGINT or SIGTERM (the instances run in process groups of
// their own, and would outlive this process).
type cleanups struct {
	mu   sync.Mutex
	fns  []func()
	done bool
}

func (c *cleanups) add(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

func (c *cleanups) run() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	c.done = true
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
}

// measureTransfer submits the tree and follows it to its end, or to
// -timeout; what goes wrong is recorded in r, for the report.
func measureTransfer(e *env, r *result) {
	ctx, cancel := context.WithTimeout(context.Background(), *flagTimeout)
	defer cancel()
	submitAndFollow(ctx, e, r)
	progress("settling %v before reading VmRSS", *flagSettle)
	time.Sleep(*flagSettle)
	r.rssAfter, r.anonAfter, r.fileAfter = map[string]int64{}, map[string]int64{}, map[string]int64{}
	for n, pid := range e.pids {
		r.rssAfter[n], _ = harness.RSS(pid)
		r.anonAfter[n], _ = harness.ProcStatus(pid, "RssAnon:")
		r.fileAfter[n], _ = harness.ProcStatus(pid, "RssFile:")
	}
}

func submitAndFollow(ctx context.Context, e *env, r *result) {
	r.rssBefore = map[string]int64{}
	for n, pid := range e.pids {
		r.rssBefore[n], _ = harness.RSS(pid)
	}
	r.dbBefore = dbSizes(e.c)
	r.logFrom = logOffsets(e.c)
	var err error
	if r.applied0, err = lastApplied(e); err != nil {
		r.appliedErr = err.Error()
	}

	// Accepting.
	argv := []string{e.bin.Ftagent, "transfer", "create", "--config", e.c.Props, "--recursive", "--json", "in/tree/", "out/ftagent/"}
	r.createCmd = "ftagent transfer create --config agent.properties --recursive --json in/tree/ out/ftagent/"
	outPath := filepath.Join(e.runDir, "create.json")
	out, err := os.Create(outPath)
	if err != nil {
		r.createErr = err.Error()
		return
	}
	defer out.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = e.dir, out, &stderr
	progress("accepting: %s", r.createCmd)
	mem := watchAll(e)
	cpu0 := cpuAll(e)
	t0 := time.Now()
	err = cmd.Start()
	if err == nil {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		err = waitProgress(e, done, t0, "accepting", nil)
	}
	r.acceptTime = time.Since(t0)
	r.peakAccept = mem.stop()
	r.cpuAccept = cpuSince(e, cpu0)
	if a, aerr := lastApplied(e); aerr == nil {
		r.appliedAccept = a
	}
	r.appliedEnd = r.appliedAccept
	if fi, serr := out.Stat(); serr == nil {
		r.createOut = fi.Size()
	}
	if err != nil {
		r.createErr = fmt.Sprintf("%v: %s", err, lastLine(stderr.String()))
		progress("the create failed after %s: %s", secs(r.acceptTime), r.createErr)
		// The agent may have created it all the same (a client
		// timeout, and the retry found it or failed too).
		if r.id = findTransfer(ctx, e); r.id == "" {
			return
		}
		r.lateCreate = true
		progress("the agent accepted it all the same: transfer %s (its log says)", r.id)
	} else {
		raw, err := os.ReadFile(outPath)
		if err != nil {
			r.createErr = err.Error()
			return
		}
		body, err := agentclient.ParseTransferBody(raw)
		if err != nil {
			r.createErr = err.Error()
			return
		}
		r.id, r.state, r.bytes = body.ID, body.State, body.Bytes
		r.accepted = true
		progress("accepted in %s: transfer %s, %s (%s printed)", secs(r.acceptTime), r.id, r.state, mib(r.createOut))
	}

	// Transferring.
	mem = watchAll(e)
	cpu0 = cpuAll(e)
	t1 := time.Now()
	done := make(chan error, 1)
	var last atomic.Pointer[transfer.View]
	go func() { done <- follow(ctx, e, r.id, &last) }()
	err = waitProgress(e, done, t1, "transferring", &last)
	r.transferTime = time.Since(t1)
	r.peakTransfer = mem.stop()
	r.cpuTransfer = cpuSince(e, cpu0)
	if a, aerr := lastApplied(e); aerr == nil {
		r.appliedEnd = a
	} else if r.appliedErr == "" {
		r.appliedErr = aerr.Error()
	}
	if v := last.Load(); v != nil {
		r.toCreated = v.Created.Sub(t0)
		r.state, r.reason, r.bytes, r.bytesDone = v.State, v.Reason, v.Bytes, v.BytesDone
		if v.Ended != nil {
			r.server = v.Ended.Sub(v.Created)
		}
	}
	switch {
	case err != nil:
		r.waitErr = err.Error()
		progress("not completed after %s: %s (last seen %s)", secs(r.transferTime), r.waitErr, r.state)
	case r.state != transfer.StateCompleted:
		progress("the transfer ended %s after %s: %s", r.state, secs(r.transferTime), r.reason)
	default:
		r.completed = true
		progress("completed %s after the create (%.0f files/s; on the active: created → ended %s)", secs(r.transferTime),
			float64(e.tree.files)/r.transferTime.Seconds(), secs(r.server))
	}
}

// follow asks for the transfer without its files until it ends: a long
// poll, which the active answers at the end or after a second. Errors (an
// instance not answering for a while under load) are retried until ctx
// ends.
func follow(ctx context.Context, e *env, id string, last *atomic.Pointer[transfer.View]) error {
	var lastErr error
	for {
		body, err := agentclient.GetTransferWait(ctx, e.cl, id, transfer.FilesNone, time.Second)
		if err == nil {
			v := body.View
			last.Store(&v)
			if transfer.Terminal(v.State) {
				return nil
			}
		} else {
			lastErr = err
			var apiErr *client.APIError
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
				return err
			}
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("timed out after -timeout %v (last error of a poll: %v)", *flagTimeout, lastErr)
			}
			return fmt.Errorf("timed out after -timeout %v", *flagTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitProgress waits for done, saying every 10 s how far it is.
func waitProgress(e *env, done <-chan error, t0 time.Time, what string, last *atomic.Pointer[transfer.View]) error {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			rss, _ := harness.RSS(e.pids[e.active])
			detail := ""
			if last != nil {
				if v := last.Load(); v != nil && v.Bytes > 0 {
					detail = fmt.Sprintf("; %s, %.1f%% of the bytes", v.State, 100*float64(v.BytesDone)/float64(v.Bytes))
				}
			}
			progress("%s for %s; the active's VmRSS %s%s", what, time.Since(t0).Round(time.Second), mib(rss), detail)
		}
	}
}

// findTransfer looks for the transfer after a create that failed: the
// agent may have accepted it all the same (the client gave up waiting for
// the answer, or for all of it). The transfer's id is the one the command
// chose, so it is read from the active's log ("transfer accepted"; the only
// transfer of the run). The active may still be planning or committing it:
// the log is read until the active has been idle for 10 s, or ctx ends.
func findTransfer(ctx context.Context, e *env) string {
	log := e.c.Proc(e.active).Log
	cpu, _ := harness.CPUTime(e.pids[e.active])
	checked := time.Now()
	for {
		if id := acceptedInLog(log); id != "" {
			return id
		}
		if time.Since(checked) >= 10*time.Second {
			now, _ := harness.CPUTime(e.pids[e.active])
			if now-cpu < 500*time.Millisecond {
				return ""
			}
			cpu, checked = now, time.Now()
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(time.Second):
		}
	}
}

// acceptedInLog is the transfer of the first "transfer accepted" line of an
// instance's JSON log.
func acceptedInLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"transfer accepted"`)) {
			continue
		}
		var l struct {
			Transfer string `json:"transfer"`
			Message  string `json:"message"`
		}
		if json.Unmarshal(line, &l) == nil && l.Message == "transfer accepted" {
			return l.Transfer
		}
	}
	return ""
}

// memWatch is the peak memory of every instance over a phase.
type memWatch struct {
	e       *env
	watches map[string]*harness.RSSWatch
}

// watchAll resets every instance's VmHWM and polls their VmRSS.
func watchAll(e *env) *memWatch {
	m := &memWatch{e: e, watches: map[string]*harness.RSSWatch{}}
	for n, pid := range e.pids {
		if e.canReset {
			_ = harness.ResetHWM(pid)
		}
		m.watches[n] = harness.WatchRSS(pid, *flagPoll)
	}
	return m
}

// stop returns each instance's peak: the largest VmRSS polled, or VmHWM
// when it was reset before the phase and saw a higher peak between polls.
func (m *memWatch) stop() map[string]int64 {
	out := map[string]int64{}
	for n, w := range m.watches {
		out[n] = w.Stop()
		if m.e.canReset {
			if hwm, err := harness.ProcStatus(m.e.pids[n], "VmHWM:"); err == nil {
				out[n] = max(out[n], hwm)
			}
		}
	}
	return out
}

func cpuAll(e *env) map[string]time.Duration {
	out := map[string]time.Duration{}
	for n, pid := range e.pids {
		out[n], _ = harness.CPUTime(pid)
	}
	return out
}

func cpuSince(e *env, before map[string]time.Duration) map[string]time.Duration {
	out := cpuAll(e)
	for n, d := range before {
		out[n] -= d
	}
	return out
}

// waitSteady waits until the agent has an active and two standbys.
func waitSteady(e *env, timeout time.Duration) (ha.AgentView, error) {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err := agentclient.FetchView(ctx, e.cl, nil)
		cancel()
		if err == nil && v.Status == ha.StatusActive && v.Active != "" && len(v.Standbys) == len(e.c.Names)-1 {
			return v, nil
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("timed out after %v waiting for an active with %d standbys (%v)", timeout, len(e.c.Names)-1, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastApplied is the raft index the active has applied.
func lastApplied(e *env) (uint64, error) {
	var err error
	for range 10 { // a busy active may miss the one-second deadline
		var st ha.InstanceStatus
		if st, err = e.c.InstanceStatus(context.Background(), e.active); err == nil {
			return st.LastApplied, nil
		}
		time.Sleep(time.Second)
	}
	return 0, err
}

func dbSizes(c *harness.Cluster) map[string]int64 {
	out := map[string]int64{}
	for _, n := range c.Names {
		if fi, err := os.Stat(filepath.Join(c.Dir, "data", n, "raft.db")); err == nil {
			out[n] = fi.Size()
		}
	}
	return out
}

func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// logOffsets are the sizes of the instances' logs: where the run's lines
// start.
func logOffsets(c *harness.Cluster) map[string]int64 {
	out := map[string]int64{}
	for _, n := range c.Names {
		if fi, err := os.Stat(c.Proc(n).Log); err == nil {
			out[n] = fi.Size()
		}
	}
	return out
}

// Messages of the instances' logs that tell of a change of leader or of
// active, counted whatever their level.
var roleMessages = []string{"entering candidate state", "election won", "lease gained: this instance is active", "lease lost: work stopped"}

// logEvents counts the warnings and errors of each instance's JSON log
// after from, and the roleMessages, by message and instance: an instance
// that does not answer its peers in time under a large entry shows there.
func logEvents(c *harness.Cluster, from map[string]int64) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, n := range c.Names {
		b, err := os.ReadFile(c.Proc(n).Log)
		if err != nil || int64(len(b)) < from[n] {
			continue
		}
		for _, line := range bytes.Split(b[from[n]:], []byte("\n")) {
			var l struct {
				Level   string `json:"level"`
				Message string `json:"message"`
			}
			if json.Unmarshal(line, &l) != nil {
				continue
			}
			if l.Level != "warn" && l.Level != "error" && !slices.Contains(roleMessages, l.Message) {
				continue
			}
			key := l.Message
			if l.Level == "warn" || l.Level == "error" {
				key = l.Level + ": " + key
			}
			if out[key] == nil {
				out[key] = map[string]int{}
			}
			out[key][n]++
		}
	}
	return out
}

// entryStats are the raft entries of the run, as the log holds them.
type entryStats struct {
	err                   string
	first                 uint64 // the first index asked for
	missing               uint64 // compacted away by a snapshot before they could be read
	accept, transfer      uint64 // entries read, by phase
	acceptB, transferB    int64  // their bytes (the command, Data)
	largest               int64
	largestIdx            uint64
	largestKind           string
	largestInAccept       bool
	sizes                 []int64 // every entry's, for the distribution
	commands, nonCommands uint64
	kinds                 map[string]int // entries by command kind, or raft's type for the others
}

// readEntries reads entries from..to of a stopped instance's raft log.
func readEntries(path string, from, acceptEnd, to uint64) entryStats {
	s := entryStats{first: from, kinds: map[string]int{}}
	st, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second}})
	if err != nil {
		s.err = err.Error()
		return s
	}
	defer st.Close()
	firstIdx, err := st.FirstIndex()
	if err != nil {
		s.err = err.Error()
		return s
	}
	if firstIdx > from {
		s.missing = min(firstIdx, to+1) - from
		from = firstIdx
	}
	for i := from; i <= to; i++ {
		var l raft.Log
		if err := st.GetLog(i, &l); err != nil {
			s.err = fmt.Sprintf("entry %d: %v", i, err)
			return s
		}
		size := int64(len(l.Data))
		s.sizes = append(s.sizes, size)
		if l.Type == raft.LogCommand {
			s.commands++
			s.kinds[commandKind(l.Data)]++
		} else {
			s.nonCommands++
			s.kinds["raft "+l.Type.String()]++
		}
		if i <= acceptEnd {
			s.accept++
			s.acceptB += size
		} else {
			s.transfer++
			s.transferB += size
		}
		if size > s.largest {
			s.largest, s.largestIdx, s.largestInAccept = size, i, i <= acceptEnd
			s.largestKind = commandKind(l.Data)
		}
	}
	return s
}

// commandKind is the kind of an ftagent command (ha.Command), read from the
// start of the entry without decoding the rest.
func commandKind(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "?"
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "?"
		}
		if tok == "kind" {
			var k string
			if dec.Decode(&k) != nil {
				return "?"
			}
			return k
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return "?"
		}
	}
	return "?"
}

// tree is the generated source tree: file i is dT/dS/fI, with I in
// [0, files), its leaf directory I/perDir spread over fanout top
// directories; its bytes come from a PCG seeded with I, so that any file
// can be checked without a list of sums.
type tree struct {
	path      string
	files     int
	size      int64
	perDir    int
	fanout    int
	dirs      int // leaf directories
	generated time.Duration
	reused    bool
	writers   int
}

func newTree(path string, files int, size int64, perDir int) tree {
	dirs := (files + perDir - 1) / perDir
	return tree{path: path, files: files, size: size, perDir: perDir, dirs: dirs, fanout: int(math.Ceil(math.Sqrt(float64(dirs))))}
}

func (t tree) rel(i int) string {
	leaf := i / t.perDir
	return fmt.Sprintf("d%d/d%d/f%d", leaf/t.fanout, leaf%t.fanout, i)
}

// content fills buf with file i's bytes.
func content(buf []byte, i int) {
	g := rand.NewPCG(0x6d696c6c696f6e, uint64(i))
	for k := 0; k < len(buf); k += 8 {
		x := g.Uint64()
		for j := k; j < min(k+8, len(buf)); j++ {
			buf[j] = byte(x)
			x >>= 8
		}
	}
}

// marker says which tree a cache directory holds; it is written last.
func (t tree) marker() string {
	return fmt.Sprintf("files=%d fileSize=%d perDir=%d layout=dT/dS/fI pcg\n", t.files, t.size, t.perDir)
}

// prepareTree returns the tree of these flags, from the cache when its
// marker matches, else generated there.
func prepareTree(cache string, files int, size int64, perDir int) (tree, error) {
	dir := filepath.Join(cache, fmt.Sprintf("files-%d-size-%d-per-dir-%d", files, size, perDir))
	t := newTree(filepath.Join(dir, "tree"), files, size, perDir)
	markerPath := filepath.Join(dir, "marker")
	if b, err := os.ReadFile(markerPath); err == nil && string(b) == t.marker() {
		if _, err := os.Stat(t.path); err == nil {
			var gen time.Duration
			if b, err := os.ReadFile(filepath.Join(dir, "generated")); err == nil {
				gen, _ = time.ParseDuration(strings.TrimSpace(string(b)))
			}
			t.reused, t.generated = true, gen
			progress("reusing the tree in %s (generated in %s)", dir, secs(gen))
			return t, nil
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return t, err
	}
	if err := os.MkdirAll(t.path, 0o750); err != nil {
		return t, err
	}
	t.writers = *flagWriters
	progress("generating %d files of %s in %s (%d directories, %d writers)", files, harness.SizeText(size), t.path, t.dirs, t.writers)
	t0 := time.Now()
	leaves := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		written  atomic.Int64
	)
	for range t.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			for leaf := range leaves {
				if err := writeLeaf(t, leaf, buf, &written); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	tick := time.NewTicker(10 * time.Second)
	for leaf := range t.dirs {
		select {
		case <-tick.C:
			progress("generating: %d files", written.Load())
		default:
		}
		leaves <- leaf
	}
	tick.Stop()
	close(leaves)
	wg.Wait()
	if firstErr != nil {
		return t, firstErr
	}
	syscall.Sync()
	t.generated = time.Since(t0)
	progress("generated in %s (%.0f files/s, sync included)", secs(t.generated), float64(files)/t.generated.Seconds())
	if err := os.WriteFile(filepath.Join(dir, "generated"), []byte(t.generated.String()+"\n"), 0o640); err != nil {
		return t, err
	}
	return t, os.WriteFile(markerPath, []byte(t.marker()), 0o640)
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func writeLeaf(t tree, leaf int, buf []byte, written *atomic.Int64) error {
	lo, hi := leaf*t.perDir, min((leaf+1)*t.perDir, t.files)
	if err := os.MkdirAll(filepath.Dir(filepath.Join(t.path, t.rel(lo))), 0o750); err != nil {
		return err
	}
	for i := lo; i < hi; i++ {
		content(buf, i)
		if err := os.WriteFile(filepath.Join(t.path, t.rel(i)), buf, 0o640); err != nil {
			return err
		}
		written.Add(1)
	}
	return nil
}

// checkResult is what checkCopy found.
type checkResult struct {
	dir      string
	files    int // regular files where the tree's are expected
	sized    int // of which with the right size
	sampled  int
	problems []string // the first few
	took     time.Duration
}

func (c checkResult) ok(t tree) bool {
	return len(c.problems) == 0 && c.files == t.files && c.sized == t.files
}

func (c checkResult) text() string {
	if c.dir == "" {
		return "not checked"
	}
	s := fmt.Sprintf("%d files, %d of the right size, %d sampled with the right bytes (checked in %s)", c.files, c.sized, c.sampled, secs(c.took))
	if len(c.problems) > 0 {
		s += "; **problems**: " + strings.Join(c.problems, "; ")
	}
	return s
}

// checkCopy checks that dir holds exactly the tree's files (each where the
// tree has it, with its size, nothing else: no .part), and the bytes of
// -sample random ones.
func checkCopy(t tree, dir string) checkResult {
	c := checkResult{dir: dir}
	t0 := time.Now()
	problem := func(format string, args ...any) {
		if len(c.problems) < 5 {
			c.problems = append(c.problems, fmt.Sprintf(format, args...))
		}
	}
	seen := make([]bool, t.files)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		i, err := strconv.Atoi(strings.TrimPrefix(d.Name(), "f"))
		if err != nil || i < 0 || i >= t.files || t.rel(i) != filepath.ToSlash(rel) || seen[i] || !d.Type().IsRegular() {
			problem("unexpected %s", rel)
			return nil
		}
		seen[i] = true
		c.files++
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() == t.size {
			c.sized++
		} else {
			problem("%s has %d bytes, want %d", rel, fi.Size(), t.size)
		}
		return nil
	})
	if err != nil {
		problem("%v", err)
	}
	if c.files < t.files {
		for i, ok := range seen {
			if !ok {
				problem("%d files missing, the first %s", t.files-c.files, t.rel(i))
				break
			}
		}
	}
	want := make([]byte, t.size)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for range min(*flagSample, t.files) {
		i := rng.IntN(t.files)
		if !seen[i] {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, t.rel(i)))
		content(want, i)
		if err != nil || !bytes.Equal(got, want) {
			problem("%s: wrong bytes (%v)", t.rel(i), err)
			continue
		}
		c.sampled++
	}
	c.took = time.Since(t0)
	return c
}

func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return name + " (version unknown)"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// lastLine is the last line of a command's output: its error.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func goVersion() string {
	out, err := exec.Command("go", "version").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
func mib(b int64) string          { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
