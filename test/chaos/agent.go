package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/test/harness"
)

// Agent is one logical agent whose instances run on the bench's hosts, one
// instance per host, all sharing Dir as storage.
type Agent struct {
	Bench *Bench
	Bin   harness.Binaries
	Dir   string // holds agent.properties, data/, logs, audit; transferRoot unless Mounts
	// Root is the agent's transferRoot, where the workload's in/ and out/
	// are: Dir, or Dir/storage with Mounts.
	Root string
	// Mounts: each instance sees Root through a bindfs mount of its own
	// (harness.InstanceMount), as instances on different hosts see a
	// network file system: another device number on each.
	Mounts bool
	Props  string
	Names  []string
	Addr   map[string]string
	Audit  string

	Client *client.Client // the ordered address list, as users have it
	TLS    *harness.TLS
	probe  *http.Client

	mu    sync.Mutex
	procs map[string]*harness.Proc
}

const apiPort = 7101

// NewAgent writes agent.properties for one instance per bench host.
func NewAgent(b *Bench, bin harness.Binaries, dir string, names []string, extra ...string) (*Agent, error) {
	return NewAgentMounts(b, bin, dir, names, false, extra...)
}

// NewAgentMounts is NewAgent; with mounts, each instance sees the storage
// (Root, Dir/storage) through its own bindfs mount.
func NewAgentMounts(b *Bench, bin harness.Binaries, dir string, names []string, mounts bool, extra ...string) (*Agent, error) {
	a := &Agent{Bench: b, Bin: bin, Dir: dir, Root: dir, Mounts: mounts, Names: names, Addr: map[string]string{}, procs: map[string]*harness.Proc{}}
	if mounts {
		a.Root = filepath.Join(dir, "storage")
		if err := os.MkdirAll(a.Root, 0o750); err != nil {
			return nil, err
		}
		extra = append([]string{"transferRoot=" + a.Root}, extra...)
	}
	var entries, addrs []string
	for _, n := range names {
		a.Addr[n] = fmt.Sprintf("%s:%d", b.Hosts[n].IP, apiPort)
		entries = append(entries, n+"@"+a.Addr[n])
		addrs = append(addrs, a.Addr[n])
	}
	a.Audit = filepath.Join(dir, "audit.jsonl")
	tls, err := harness.SetUpTLS(dir, "CHAOS", names)
	if err != nil {
		return nil, err
	}
	a.TLS = tls
	lines := append(append([]string{
		"agentName=CHAOS",
		"instances=" + strings.Join(entries, ","),
		"dataDirectory=data",
		"auditLog=audit.jsonl",
	}, tls.Lines(harness.ClientAdmin)...), extra...)
	a.Props = filepath.Join(dir, "agent.properties")
	if err := os.WriteFile(a.Props, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		return nil, err
	}
	d, err := tls.Dialer(harness.ClientAdmin)
	if err != nil {
		return nil, err
	}
	cl, err := client.New(addrs, client.WithDialer(d.DialContext))
	if err != nil {
		return nil, err
	}
	a.Client = cl
	if a.probe, err = tls.HTTPClient(harness.ClientAdmin, 500*time.Millisecond); err != nil {
		return nil, err
	}
	return a, nil
}

// Start starts instance name in its namespace.
func (a *Agent) Start(name string) error {
	argv := []string{a.Bin.Ftagent, "start", "--config", a.Props, "--instance", name, "--log-format", "json"}
	cmd := a.Bench.Command(name, argv[0], argv[1:]...)
	if a.Mounts {
		// ip netns exec, then the bindfs mount, then ftagent: one
		// process (each execs the next), in a PID namespace of its own,
		// so that bindfs dies with the instance.
		args := harness.InstanceMountArgs(a.Root, argv)
		cmd = a.Bench.Command(name, args[0], args[1:]...)
		cmd.SysProcAttr = harness.InstanceMountAttr()
	}
	p, err := harness.StartProcess(name, cmd, filepath.Join(a.Dir, name+".log"))
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.procs[name] = p
	a.mu.Unlock()
	return nil
}

func (a *Agent) proc(name string) *harness.Proc {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.procs[name]
}

// Exited waits up to timeout for name's process to end.
func (a *Agent) Exited(name string, timeout time.Duration) error {
	p := a.proc(name)
	if p == nil {
		return nil
	}
	select {
	case <-p.Done():
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %v", name, timeout)
	}
}

func (a *Agent) signal(name string, sig syscall.Signal) error {
	p := a.proc(name)
	if p == nil {
		return fmt.Errorf("%s not started", name)
	}
	return syscall.Kill(p.Cmd.Process.Pid, sig)
}

// Kill is kill -9 of name; it returns once the process is gone.
func (a *Agent) Kill(name string) error {
	if err := a.signal(name, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return a.Exited(name, 10*time.Second)
}

// Pause is SIGSTOP of name; Resume is SIGCONT.
func (a *Agent) Pause(name string) error  { return a.signal(name, syscall.SIGSTOP) }
func (a *Agent) Resume(name string) error { return a.signal(name, syscall.SIGCONT) }

// Ftstop runs ftstop with the agent's properties and args.
func (a *Agent) Ftstop(ctx context.Context, args ...string) (harness.Result, error) {
	return harness.Run(ctx, a.Bin.Ftstop, append([]string{"--config", a.Props}, args...)...)
}

// Status asks instance name for its own status, directly (no failover).
func (a *Agent) Status(ctx context.Context, name string) (ha.InstanceStatus, error) {
	var s ha.InstanceStatus
	err := harness.GetJSON(ctx, a.probe, a.Addr[name], api.PathInstance, &s)
	return s, err
}

// Statuses asks every instance; those that do not answer are left out.
func (a *Agent) Statuses(ctx context.Context) map[string]ha.InstanceStatus {
	out := map[string]ha.InstanceStatus{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range a.Names {
		wg.Add(1)
		go func(n string) {
			defer wg.Done()
			if s, err := a.Status(ctx, n); err == nil {
				mu.Lock()
				out[n] = s
				mu.Unlock()
			}
		}(n)
	}
	wg.Wait()
	return out
}

// Active returns the instance that says it is active, with its epoch, if
// exactly one of those answering does.
func (a *Agent) Active(ctx context.Context) (string, uint64, bool) {
	var name string
	var epoch uint64
	count := 0
	for n, s := range a.Statuses(ctx) {
		if s.Status == ha.StatusActive {
			name, epoch = n, s.Epoch
			count++
		}
	}
	return name, epoch, count == 1
}

// WaitHealthy waits until every instance answers, READY or ACTIVE, with
// exactly one ACTIVE, and returns the active.
func (a *Agent) WaitHealthy(timeout time.Duration) (string, uint64, error) {
	deadline := time.Now().Add(timeout)
	var last map[string]ha.InstanceStatus
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = a.Statuses(ctx)
		cancel()
		active, actives, ready := "", 0, 0
		var epoch uint64
		for n, s := range last {
			switch s.Status {
			case ha.StatusActive:
				active, epoch = n, s.Epoch
				actives++
			case ha.StatusReady:
				ready++
			}
		}
		if actives == 1 && actives+ready == len(a.Names) {
			return active, epoch, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	var parts []string
	for _, n := range a.Names {
		s, ok := last[n]
		if !ok {
			parts = append(parts, n+": no answer")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %s epoch %d", n, s.Status, s.Epoch))
	}
	return "", 0, fmt.Errorf("agent not healthy within %v: %s", timeout, strings.Join(parts, ", "))
}

// WaitNewActive waits until an instance other than old answers as active
// under an epoch above epoch.
func (a *Agent) WaitNewActive(old string, epoch uint64, timeout time.Duration) (string, uint64, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		for n, s := range a.Statuses(ctx) {
			if n != old && s.Status == ha.StatusActive && s.Epoch > epoch {
				cancel()
				return n, s.Epoch, nil
			}
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	return "", 0, fmt.Errorf("no new active (other than %s, epoch > %d) within %v", old, epoch, timeout)
}

// StopAll ends every instance: SIGCONT in case one is paused, SIGTERM, then
// SIGKILL after a grace period.
func (a *Agent) StopAll() {
	a.mu.Lock()
	procs := make([]*harness.Proc, 0, len(a.procs))
	for _, p := range a.procs {
		procs = append(procs, p)
	}
	a.mu.Unlock()
	for _, p := range procs {
		_ = syscall.Kill(p.Cmd.Process.Pid, syscall.SIGCONT)
		_ = syscall.Kill(p.Cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range procs {
		select {
		case <-p.Done():
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(p.Cmd.Process.Pid, syscall.SIGKILL)
			<-p.Done()
		}
	}
}

// LogTail returns the last n lines of instance name's log.
func (a *Agent) LogTail(name string, n int) string {
	b, err := os.ReadFile(filepath.Join(a.Dir, name+".log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
