// Package harness runs real ftagent processes for end-to-end tests and
// benchmarks: it builds the binaries, writes an agent.properties for
// instances on loopback ports, starts, kills, freezes and stops instances, and
// reads the agent through the real `ftagent show --json` and `ftstop`.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
)

// Binaries are the built commands.
type Binaries struct {
	Ftagent string
	Ftstop  string
	Version string // stamped into both
}

// Build compiles ftagent and ftstop from the module at root into dir, with
// version stamped through -ldflags.
func Build(root, dir, version string) (Binaries, error) {
	b := Binaries{
		Ftagent: filepath.Join(dir, "ftagent"),
		Ftstop:  filepath.Join(dir, "ftstop"),
		Version: version,
	}
	ldflags := "-X github.com/ftagent/ftagent/pkg/version.Version=" + version
	cmd := exec.Command("go", "build", "-ldflags", ldflags, "-o", dir+string(os.PathSeparator), "./cmd/ftagent", "./cmd/ftstop")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return b, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return b, nil
}

// Options shape a cluster's agent.properties.
type Options struct {
	AgentName string
	Names     []string // default ha1, ha2, ha3
	Witnesses []string
	// Extra lines appended to agent.properties (e.g. publish interval).
	Extra []string
	// MountPerInstance makes each instance see the shared storage through
	// a mount of its own, as instances on different hosts see a network
	// file system: transferRoot is set to Dir/storage, and each instance
	// runs in a private mount (and PID) namespace in which a bindfs
	// mount of that directory is mounted on the same path. All instances
	// use the same agent.properties and the same paths, but see the files
	// with their own device number. The test process sees the directory
	// itself. See InstanceMount.
	MountPerInstance bool
	// TLSMode is the tlsMode property: "" (required, with certificates
	// from a CA of the test's own: see SetUpTLS), or "disabled" (no
	// certificates), or "optional".
	TLSMode string
	// TLSDir, when set, is the directory whose tls/ holds the CA (made
	// there if missing): agents set up with the same one trust each other,
	// as `ftagent tls init` run again with another --agent makes them.
	TLSDir string
}

// Cluster is one agent's instances on this machine.
type Cluster struct {
	Bin   Binaries
	Dir   string
	Props string
	Names []string
	Addr  map[string]string
	// Root is the agent's transferRoot: Dir, or Dir/storage with
	// MountPerInstance.
	Root string
	// MountPerInstance: each instance sees Root through its own bindfs
	// mount (Options.MountPerInstance).
	MountPerInstance bool
	// Env is added to the environment of the instances started from now
	// on (a test's fault switch, such as
	// FTAGENT_TEST_EXIT_AFTER_INBOUND_COMMIT); nil adds nothing.
	Env []string
	// TLS holds the agent's certificates (nil with TLSMode disabled); the
	// commands present the admin client's certificate.
	TLS *TLS
	// HTTP asks the instances directly, as the admin client.
	HTTP *http.Client

	mu    sync.Mutex
	procs map[string]*Proc
	// binFor holds the instances that run another build than Bin (see
	// UseBinaries).
	binFor map[string]Binaries
}

// Proc is one running instance.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	err  error
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, once Done.
func (p *Proc) Err() error { <-p.done; return p.err }

// New writes the properties file for a cluster in dir.
func New(bin Binaries, dir string, opts Options) (*Cluster, error) {
	if opts.AgentName == "" {
		opts.AgentName = "ORDERS"
	}
	if len(opts.Names) == 0 {
		opts.Names = []string{"ha1", "ha2", "ha3"}
	}
	c := &Cluster{Bin: bin, Dir: dir, Root: dir, Names: opts.Names, Addr: map[string]string{}, procs: map[string]*Proc{}}
	var entries []string
	for _, n := range opts.Names {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		c.Addr[n] = fmt.Sprintf("127.0.0.1:%d", port)
		entries = append(entries, n+"@"+c.Addr[n])
	}
	lines := []string{
		"agentName=" + opts.AgentName,
		"instances=" + strings.Join(entries, ","),
		"dataDirectory=data",
	}
	if len(opts.Witnesses) > 0 {
		lines = append(lines, "witnessInstances="+strings.Join(opts.Witnesses, ","))
	}
	if opts.MountPerInstance {
		if why := InstanceMountCapable(); why != "" {
			return nil, fmt.Errorf("a mount per instance: %s", why)
		}
		c.MountPerInstance = true
		c.Root = filepath.Join(dir, "storage")
		if err := os.MkdirAll(c.Root, 0o750); err != nil {
			return nil, err
		}
		lines = append(lines, "transferRoot="+c.Root)
	}
	c.HTTP = &http.Client{Timeout: 5 * time.Second}
	if opts.TLSMode != "disabled" {
		tlsDir := dir
		if opts.TLSDir != "" {
			tlsDir = opts.TLSDir
		}
		t, err := SetUpTLS(tlsDir, opts.AgentName, opts.Names)
		if err != nil {
			return nil, err
		}
		c.TLS = t
		lines = append(lines, t.Lines(ClientAdmin)...)
		if opts.TLSMode != "" {
			lines = append(lines, "tlsMode="+opts.TLSMode)
		}
		if c.HTTP, err = t.HTTPClient(ClientAdmin, 5*time.Second); err != nil {
			return nil, err
		}
	} else {
		lines = append(lines, "tlsMode=disabled")
	}
	lines = append(lines, opts.Extra...)
	c.Props = filepath.Join(dir, "agent.properties")
	if err := os.WriteFile(c.Props, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		return nil, err
	}
	return c, nil
}

// FreePort returns a loopback port that was free a moment ago.
// It never returns a port it returned before in this process: a cluster's
// ports are not listened on until its instances start, and the next
// cluster set up meanwhile must not be given one of them.
func FreePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no loopback port that was not handed out already")
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// Start starts instance name (extra arguments go to `ftagent start`).
func (c *Cluster) Start(name string, extra ...string) (*Proc, error) {
	return c.StartWith(c.Props, name, extra...)
}

// StartProcess starts cmd as instance name, in a process group of its own,
// appending its output to logPath; the Proc reports its end.
func StartProcess(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// UseBinaries makes the next starts of instance name run build b instead of
// the cluster's Bin, as a rolling upgrade replaces the build of one instance
// at a time. The commands the cluster runs itself (show, ftstop, transfer)
// keep using Bin.
func (c *Cluster) UseBinaries(name string, b Binaries) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.binFor == nil {
		c.binFor = map[string]Binaries{}
	}
	c.binFor[name] = b
}

// BinariesOf is the build that instance name starts with.
func (c *Cluster) BinariesOf(name string) Binaries {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.binFor[name]; ok {
		return b
	}
	return c.Bin
}

// StartAll starts every instance.
func (c *Cluster) StartAll() error {
	for _, n := range c.Names {
		if _, err := c.Start(n); err != nil {
			return err
		}
	}
	return nil
}

// Proc returns the last process started for name.
func (c *Cluster) Proc(name string) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[name]
}

// Kill sends SIGKILL to name and waits for it to die.
func (c *Cluster) Kill(name string) error {
	p := c.Proc(name)
	if p == nil {
		return fmt.Errorf("%s not started", name)
	}
	if err := p.Cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.done
	return nil
}

// Signal sends sig to name.
func (c *Cluster) Signal(name string, sig syscall.Signal) error {
	p := c.Proc(name)
	if p == nil {
		return fmt.Errorf("%s not started", name)
	}
	return p.Cmd.Process.Signal(sig)
}

// StopAll ends every process: SIGCONT (in case one is frozen), SIGTERM, then
// SIGKILL after a grace period.
func (c *Cluster) StopAll() {
	c.mu.Lock()
	procs := make([]*Proc, 0, len(c.procs))
	for _, p := range c.procs {
		procs = append(procs, p)
	}
	c.mu.Unlock()
	for _, p := range procs {
		select {
		case <-p.done:
			continue
		default:
		}
		_ = p.Cmd.Process.Signal(syscall.SIGCONT)
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	}
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Exit           int
}

// Run runs one of the binaries with args and returns its output and status.
func Run(ctx context.Context, bin string, args ...string) (Result, error) {
	return RunEnv(ctx, nil, bin, args...)
}

// RunEnv is Run with env added to the environment.
func RunEnv(ctx context.Context, env []string, bin string, args ...string) (Result, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode()
		err = nil
	}
	return r, err
}

// Show runs `ftagent show --json` against the cluster.
func (c *Cluster) Show(ctx context.Context) (ha.AgentView, Result, error) {
	r, err := Run(ctx, c.Bin.Ftagent, "show", "--config", c.Props, "--json")
	var v ha.AgentView
	if err != nil {
		return v, r, err
	}
	if r.Stdout == "" {
		return v, r, fmt.Errorf("show printed nothing (exit %d): %s", r.Exit, r.Stderr)
	}
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		return v, r, fmt.Errorf("show --json printed %q: %w", r.Stdout, err)
	}
	return v, r, nil
}

// WaitView polls `ftagent show --json` until cond holds, and returns that
// view; on timeout it returns the last view and an error describing it.
func (c *Cluster) WaitView(timeout time.Duration, what string, cond func(ha.AgentView) bool) (ha.AgentView, error) {
	deadline := time.Now().Add(timeout)
	var last ha.AgentView
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, r, err := c.Show(ctx)
		cancel()
		// Status 3 is a view too: the agent has no active (show's exit
		// statuses).
		if err == nil && (r.Exit == 0 || r.Exit == 3) {
			last = v
			if cond(v) {
				return v, nil
			}
		} else {
			lastErr = fmt.Errorf("%v (exit %d, stderr %q)", err, r.Exit, strings.TrimSpace(r.Stderr))
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(last)
			return last, fmt.Errorf("timed out after %v waiting for %s; last view %s; last error %v", timeout, what, b, lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ftstop runs ftstop against the cluster.
func (c *Cluster) Ftstop(ctx context.Context, args ...string) (Result, error) {
	return Run(ctx, c.Bin.Ftstop, append([]string{"--config", c.Props}, args...)...)
}

// CPUTime returns the user+system CPU time a process has used so far.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may contain spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat %q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat %q", s)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat %q", s)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// RSS returns a process's resident set size in bytes.
func RSS(pid int) (int64, error) { return ProcStatus(pid, "VmRSS:") }
