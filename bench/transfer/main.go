// Command transfer measures ftagent's transfers on a cluster of three real
// instances on this machine at default properties, side by side with the
// tools an operator would otherwise use, on the same disk:
//
//   - one large file (-size, 1 GiB) through `ftagent transfer create --wait`
//     (submit → completed, as the client sees it: the copy, its SHA-256, the
//     checkpoints, the final sync, rename and commit) against `cp`, and
//     against `cp` followed by `sync FILE` (the fair comparison for durable
//     delivery: ftagent fsyncs before it reports a file done); with the
//     source in the page cache (warm) and, where /proc/sys/vm/drop_caches can
//     be written, after dropping the caches (cold);
//   - the same at -size2 (256 MiB), to show the active's peak memory does not
//     grow with the file;
//   - -files (10,000) files of -file-size (4 KiB) in one recursive transfer
//     against `rsync -r`, `rsync -r` + `sync`, and `rsync -r --fsync`;
//   - the active's peak RSS (VmHWM, reset before each transfer through
//     /proc/<pid>/clear_refs, and VmRSS polled during it).
//
// It then measures where the time goes: the raft entries and CPU each
// instance spends per file, a smaller (-files-small) recursive transfer to
// show how the cost per file grows with the number of files, phase
// timelines of both transfers through the HTTP API, and, in this process,
// the product's own pieces without the cluster: the copy loop, SHA-256
// alone, small files' local steps as pkg/transfer takes them (the group
// path and the per-file path), the replicated state's Apply, and a raft
// commit and lease check of three pkg/ha nodes on this disk.
//
// It is a benchmark, not a test: it prints a markdown report and asserts no
// target. Run it with bench/transfer.sh.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/test/harness"
)

var (
	flagRoot     = flag.String("root", ".", "a directory inside the ftagent module (its root is found with go env GOMOD)")
	flagSize     = flag.String("size", "1G", "bytes of the large file (K, M, G suffixes: powers of 1024)")
	flagSize2    = flag.String("size2", "256M", "bytes of the second large file, for RSS against file size (\"0\" skips it)")
	flagN        = flag.Int("n", 7, "repetitions of each large-file measurement with a warm cache (cp, cp+sync, ftagent)")
	flagNCold    = flag.Int("n-cold", 5, "repetitions of each large-file measurement after dropping the caches (0 skips them)")
	flagFiles    = flag.Int("files", 10000, "files in the many-files transfer")
	flagFileSize = flag.String("file-size", "4K", "bytes of each of those files")
	flagNSmall   = flag.Int("n-small", 5, "repetitions of the many-files transfer through ftagent, and of the smaller one")
	flagNRsync   = flag.Int("n-rsync", 5, "repetitions of rsync -r, rsync -r + sync and rsync -r --fsync")
	flagFilesS   = flag.Int("files-small", 1000, "files in the smaller transfer that shows the cost per file against the number of files (0 skips it)")
	flagPrefault = flag.Bool("prefault", true, "touch and free anonymous memory (huge pages) before each timed run: see the caveats in docs/performance.md")
	flagExplain  = flag.Bool("explain", true, "measure where the time goes (phases, in-process pieces)")
	flagLarge    = flag.Bool("large", true, "measure the large files (false: only the many-files part, for a quick before/after comparison)")
	flagPoll     = flag.Duration("poll", 10*time.Millisecond, "interval of the active's VmRSS polls during a transfer")
	flagKeep     = flag.Bool("keep", false, "keep the working directory (binaries, properties, data, instance logs)")
	flagWorkdir  = flag.String("workdir", "", "parent of the working directory (default: the system's temporary directory); it is the disk measured")
	flagTLS      = flag.String("tls", "required", "tlsMode of the instances: required (certificates from a CA of the run's own) or disabled, to measure what TLS costs")
	flagTimeout  = flag.Duration("timeout", 5*time.Minute, "longest wait for one transfer")
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/transfer [flags]\n\n%s\n",
			"Measures ftagent transfers (one large file, many small files, the active's RSS) against cp and rsync on this disk.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || *flagN < 1 || *flagNCold < 0 || *flagNSmall < 1 || *flagNRsync < 1 || *flagFiles < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "transfer:", err)
		os.Exit(1)
	}
}

// env is what every measurement needs.
type env struct {
	bin   harness.Binaries
	c     *harness.Cluster
	dir   string // the cluster's directory: transferRoot
	in    string // dir/in
	out   string // dir/out
	big   dataFile
	mid   dataFile
	small dataDir
	few   dataDir // -files-small of the same files

	active    string // instance name
	activePID int
	canDrop   bool   // /proc/sys/vm/drop_caches is writable
	canReset  bool   // /proc/<pid>/clear_refs resets VmHWM
	dropErr   string // why not
	revision  string // the commit measured
	loadStart string // /proc/loadavg before the measurements
	// createProbe is how long writing the many-files sources took (no
	// sync): slow when the file system has just deleted many files (see
	// the caveats in docs/performance.md).
	createProbe time.Duration
	rsyncVer    string
	cpVer       string
	reported    int64 // KiB of guest memory reported to the host during timed runs
	reportedN   int
}

type dataFile struct {
	rel    string // relative to transferRoot, as a user writes it
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
	size2, err := harness.ParseSize(*flagSize2)
	if err != nil {
		return fmt.Errorf("-size2: %w", err)
	}
	fileSize, err := harness.ParseSize(*flagFileSize)
	if err != nil {
		return fmt.Errorf("-file-size: %w", err)
	}
	root, err := harness.ModuleRoot(*flagRoot)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("rsync"); err != nil {
		return errors.New("rsync is not installed (bench/transfer.sh installs it with apt-get)")
	}
	dir, err := os.MkdirTemp(*flagWorkdir, "ftagent-bench-transfer-")
	if err != nil {
		return err
	}
	if *flagKeep {
		fmt.Fprintln(os.Stderr, "working directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	progress("building ftagent and ftstop from %s", root)
	bin, err := harness.Build(root, filepath.Join(dir, "bin"), "0.0.0-bench")
	if err != nil {
		return err
	}
	e := &env{bin: bin, dir: filepath.Join(dir, "cluster")}
	e.in, e.out = filepath.Join(e.dir, "in"), filepath.Join(e.dir, "out")
	for _, d := range []string{e.dir, e.in, e.out} {
		if err := os.Mkdir(d, 0o750); err != nil {
			return err
		}
	}
	e.revision = harness.Revision(root)
	e.rsyncVer = firstLine("rsync", "--version")
	e.cpVer = firstLine("cp", "--version")

	progress("writing the test data under %s", e.in)
	if !*flagLarge {
		size, size2 = 0, 0
	}
	if e.big, err = writeDataFile(e.in, "big.bin", size, 1); err != nil {
		return err
	}
	if size2 > 0 {
		if e.mid, err = writeDataFile(e.in, "mid.bin", size2, 2); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if e.small, err = writeDataDir(e.in, fmt.Sprintf("files-%d", *flagFiles), *flagFiles, fileSize, 3); err != nil {
		return err
	}
	e.createProbe = time.Since(t0)
	if *flagFilesS > 0 {
		if e.few, err = writeDataDir(e.in, fmt.Sprintf("files-%d", *flagFilesS), *flagFilesS, fileSize, 4); err != nil {
			return err
		}
	}
	syscall.Sync()
	e.canDrop, e.dropErr = tryDropCaches()
	progress("test data written")

	// No Extra lines: every property at its default (checkpointInterval 64M,
	// checkpointTimeInterval 5s, transferRoot the directory of the
	// properties, maxBandwidth unlimited).
	c, err := harness.New(bin, e.dir, harness.Options{TLSMode: harness.TLSModeOption(*flagTLS)})
	if err != nil {
		return err
	}
	if err := c.DialAsAdmin(httpc.Transport.(*http.Transport)); err != nil {
		return err
	}
	e.c = c
	defer c.StopAll()
	if err := c.StartAll(); err != nil {
		return err
	}
	v, err := waitSteady(c, 30*time.Second)
	if err != nil {
		return fmt.Errorf("cluster start: %w", err)
	}
	e.active = v.Active
	e.activePID = c.Proc(e.active).Cmd.Process.Pid
	e.canReset = harness.ResetHWM(e.activePID) == nil
	progress("cluster up: %s active (pid %d), standbys %s", e.active, e.activePID, strings.Join(v.Standbys, ", "))

	e.loadStart = harness.LoadAvg()
	res := &results{}
	if *flagLarge {
		if err := measureLarge(e, res); err != nil {
			return err
		}
		if *flagExplain {
			if err := explainLarge(e, res); err != nil {
				return err
			}
		}
	}
	if err := measureSmall(e, res); err != nil {
		return err
	}
	if *flagExplain {
		if err := explainSmall(e, res); err != nil {
			return err
		}
	}
	// Still the same active: nothing failed over under the measurements.
	if v, err := waitSteady(c, 10*time.Second); err != nil || v.Active != e.active {
		return fmt.Errorf("the active changed during the benchmark (%s, now %q): %v%s", e.active, v.Active, err, logTails(c))
	}
	res.elapsed = time.Since(started)
	report(os.Stdout, e, res, started)
	return nil
}

// writeDataFile writes size random bytes to dir/name and returns its SHA-256.
func writeDataFile(dir, name string, size int64, seed uint64) (dataFile, error) {
	path := filepath.Join(dir, name)
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
	// On disk before any timing starts.
	if err := f.Sync(); err != nil {
		return dataFile{}, err
	}
	return dataFile{rel: "in/" + name, path: path, size: size, sha256: hex.EncodeToString(h.Sum(nil))}, f.Close()
}

// writeDataDir writes n files of size random bytes each in dir/name.
func writeDataDir(dir, name string, n int, size int64, seed uint64) (dataDir, error) {
	d := dataDir{rel: "in/" + name, path: filepath.Join(dir, name), files: n, size: size, sums: map[string]string{}}
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

// tryDropCaches checks, without dropping them, that the caches can be
// dropped.
func tryDropCaches() (bool, string) {
	f, err := os.OpenFile("/proc/sys/vm/drop_caches", os.O_WRONLY, 0)
	if err != nil {
		return false, err.Error()
	}
	f.Close()
	return true, ""
}

// warm reads every source into the page cache (and their inodes into the
// inode cache): "warm" runs find them there whatever ran before.
func warm(e *env) error {
	for _, f := range []dataFile{e.big, e.mid} {
		if f.path == "" {
			continue
		}
		if sum, err := harness.FileSHA256(f.path); err != nil || sum != f.sha256 {
			return fmt.Errorf("reading %s back: %v (SHA-256 %s)", f.path, err, sum)
		}
	}
	for _, d := range []dataDir{e.small, e.few} {
		if d.path == "" {
			continue
		}
		if err := checkDir(d.path, d); err != nil {
			return fmt.Errorf("reading the sources back: %w", err)
		}
	}
	return nil
}

func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

// waitSteady waits until the agent has an active and two standbys, asking
// the instances' GET /v1/agent directly.
func waitSteady(c *harness.Cluster, timeout time.Duration) (ha.AgentView, error) {
	deadline := time.Now().Add(timeout)
	var last ha.AgentView
	for {
		for _, n := range c.Names {
			var v ha.AgentView
			if err := harness.GetJSON(context.Background(), httpc, c.Addr[n], api.PathAgent, &v); err != nil {
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

// lastApplied is the raft index the instance has applied.
func lastApplied(c *harness.Cluster, name string) (uint64, error) {
	var st ha.InstanceStatus
	if err := harness.GetJSON(context.Background(), httpc, c.Addr[name], api.PathInstance, &st); err != nil {
		return 0, err
	}
	return st.LastApplied, nil
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

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
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

// runCommand runs a command in dir and returns its standard output and the
// CPU time it used (user + system, its children included).
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
		return out.Bytes(), cpu, fmt.Errorf("%s: %w: %s%s", strings.Join(argv, " "), err, out.String(), errb.String())
	}
	return out.Bytes(), cpu, nil
}
