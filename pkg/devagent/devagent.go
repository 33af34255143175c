// Package devagent runs a whole agent on one machine for trying ftagent out:
// several instances as child processes on loopback ports, sharing one
// generated agent.properties. It is what `ftagent dev` does.
package devagent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ftagent/ftagent/pkg/agentclient"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/trust"
)

// Options of a dev agent.
type Options struct {
	Dir       string // working directory; "" makes a temporary one
	Instances int
	AgentName string
	Out       io.Writer
	// Executable is the ftagent binary to run; "" means this process's own.
	Executable string
}

// child is one instance process.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Run starts the agent, waits until one instance is active, reports, and
// stops every instance when ctx is cancelled or on SIGINT/SIGTERM.
func Run(ctx context.Context, opts Options) error {
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	dir := opts.Dir
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "ftagent-dev-")
	} else {
		err = os.MkdirAll(dir, 0o750)
	}
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	// One dev per directory: a second one would find the ports taken and
	// describe the first one's agent as its own.
	lock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	props := filepath.Join(dir, "agent.properties")
	if _, err := os.Stat(props); errors.Is(err, os.ErrNotExist) {
		if err := writeProperties(props, opts.AgentName, opts.Instances); err != nil {
			return err
		}
	}
	cfg, err := config.Load(props)
	if err != nil {
		return err
	}
	if cfg.TLSMode != config.TLSDisabled && cfg.TLSCertificate == "" {
		// Its own throw-away CA, so that the tour runs with TLS as a
		// deployment does (also for a directory of a build before TLS).
		if err := setUpTLS(dir, props, cfg); err != nil {
			return err
		}
		if cfg, err = config.Load(props); err != nil {
			return err
		}
	}
	if err := writeSample(filepath.Join(cfg.TransferRoot, "in", "sample.bin")); err != nil {
		return err
	}
	// An instance of this agent may still run without a dev (one started
	// by hand, or left by a dev that was killed): its port is taken.
	for _, inst := range cfg.Instances {
		l, err := net.Listen("tcp", inst.Address)
		if err != nil {
			return fmt.Errorf("%s: instance %s's address %s is in use (is an instance of this agent still running? %s)",
				dir, inst.Name, inst.Address, pidHint(cfg, inst.Name))
		}
		l.Close()
	}
	exe := opts.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("find the ftagent binary: %w", err)
		}
	}

	var children []*child
	for _, inst := range cfg.Instances {
		c, err := startChild(exe, props, dir, inst.Name)
		if err != nil {
			stopAll(children, "")
			return err
		}
		children = append(children, c)
	}

	d, err := agentclient.Dialer(cfg)
	if err != nil {
		stopAll(children, "")
		return err
	}
	cl, err := client.New(cfg.Addresses(), client.WithDialer(d.DialContext))
	if err != nil {
		stopAll(children, "")
		return err
	}
	view, err := waitActive(ctx, cl, children, dir)
	if err != nil {
		stopAll(children, "")
		return err
	}

	fmt.Fprintf(opts.Out, "ftagent dev: agent %s is running with %s; %s is active (lease epoch %d)\n\n",
		cfg.AgentName, instancesText(len(children)), view.Active, view.Epoch)
	fmt.Fprintf(opts.Out, "  properties:  %s\n", props)
	fmt.Fprintf(opts.Out, "  logs:        %s\n\n", filepath.Join(dir, "<instance>.log"))
	fmt.Fprintf(opts.Out, "Try, in another terminal:\n\n")
	fmt.Fprintf(opts.Out, "  export FTAGENT_CONFIG=%s\n", props)
	fmt.Fprintf(opts.Out, "  ftagent show             # who is active, which standbys report\n")
	fmt.Fprintf(opts.Out, "  ftstop -i                # planned failover: the active hands over at once\n")
	fmt.Fprintf(opts.Out, "  ftagent show             # a standby is active now, with a higher epoch\n")
	fmt.Fprintf(opts.Out, "  ftagent start --instance %s   # restart the stopped instance: it rejoins as a standby\n", view.Active)
	fmt.Fprintf(opts.Out, "  ftagent transfer create --wait in/sample.bin out/   # paths are relative to %s\n\n", dir)
	fmt.Fprintf(opts.Out, "(with `go run`, use `go run ./cmd/ftagent` and `go run ./cmd/ftstop`)\n")
	fmt.Fprintf(opts.Out, "Press Ctrl-C to stop every instance.\n")

	// Report instances that end while the agent runs (ftstop, a crash).
	var wg sync.WaitGroup
	for _, c := range children {
		wg.Add(1)
		go func(c *child) {
			defer wg.Done()
			select {
			case <-c.done:
				fmt.Fprintf(opts.Out, "ftagent dev: instance %s ended (%s); restart it with: ftagent start --config %s --instance %s\n",
					c.name, exitText(c.err), props, c.name)
			case <-ctx.Done():
			}
		}(c)
	}
	<-ctx.Done()
	fmt.Fprintf(opts.Out, "\nftagent dev: stopping the instances (standbys first)\n")
	active := ""
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	if v, err := agentclient.FetchView(sctx, cl, cfg); err == nil {
		active = v.Active
	}
	cancel()
	stopAll(children, active)
	wg.Wait()
	fmt.Fprintf(opts.Out, "ftagent dev: stopped; state kept in %s (run `ftagent dev --dir %s` to start it again)\n", dir, dir)
	return nil
}

func instancesText(n int) string {
	if n == 1 {
		return "1 instance"
	}
	return fmt.Sprintf("%d instances", n)
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func writeProperties(path, agentName string, n int) error {
	var entries []string
	for i := 1; i <= n; i++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		entries = append(entries, fmt.Sprintf("ha%d@127.0.0.1:%d", i, port))
	}
	body := fmt.Sprintf(`# Written by ftagent dev: a local agent of %s on loopback ports.
# Every key is described in agent.properties.example.
agentName=%s
instances=%s
dataDirectory=data
# Shorter than the defaults (300 and 600 seconds), so that discards show quickly.
standbyStatusPublishInterval=5
standbyStatusDiscardTime=15
`, instancesText(n), agentName, strings.Join(entries, ","))
	if err := os.WriteFile(path, []byte(body), 0o640); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// setUpTLS issues dev's certificates in dir/tls from a CA of its own: one
// per instance, and the admin client "dev" that the commands of the tour
// present; and adds the properties that name them.
func setUpTLS(dir, props string, cfg *config.Config) error {
	var names []string
	for _, inst := range cfg.Instances {
		names = append(names, inst.Name)
	}
	// The instances listen on loopback: their certificates name it too,
	// so that tools that check host names (curl, Prometheus) accept them.
	res, err := trust.Init(trust.InitOptions{Dir: filepath.Join(dir, "tls"), Agent: cfg.AgentName, Instances: names, Hosts: []string{"127.0.0.1", "localhost"},
		Clients: []trust.ClientSpec{{Name: "dev", Role: trust.RoleAdmin}}})
	if err != nil {
		return fmt.Errorf("set up TLS: %w", err)
	}
	f, err := os.OpenFile(props, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	c := res.Clients["dev"]
	lines := append([]string{"", "# TLS from ftagent dev's own throw-away CA (" + res.CA + "); see ftagent tls init."},
		res.Files...)
	lines = append(lines, "# The commands of the tour present the admin client certificate dev.",
		"clientCertificate="+c[0], "clientPrivateKey="+c[1], "")
	if _, err := f.WriteString(strings.Join(lines, "\n")); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startChild(exe, props, dir, name string) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	cmd := exec.Command(exe, "start", "--config", props, "--instance", name, "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C on the terminal reaches dev only, which then
	// stops the instances in a sensible order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start instance %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

func waitActive(ctx context.Context, cl *client.Client, children []*child, dir string) (ha.AgentView, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, c := range children {
			select {
			case <-c.done:
				return ha.AgentView{}, fmt.Errorf("instance %s ended during start-up (%s); see %s",
					c.name, exitText(c.err), filepath.Join(dir, c.name+".log"))
			default:
			}
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := agentclient.FetchView(qctx, cl, nil)
		cancel()
		if err == nil && v.Status == ha.StatusActive {
			return v, nil
		}
		if ctx.Err() != nil {
			return ha.AgentView{}, ctx.Err()
		}
		if time.Now().After(deadline) {
			return ha.AgentView{}, fmt.Errorf("no instance became active within 60s; see the logs in %s", dir)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ha.AgentView{}, ctx.Err()
		}
	}
}

// stopAll stops the standbys first, then the active, so that no instance hands
// the lease to one that is about to stop.
func stopAll(children []*child, active string) {
	var last *child
	var wg sync.WaitGroup
	for _, c := range children {
		if c.name == active {
			last = c
			continue
		}
		wg.Add(1)
		go func(c *child) { defer wg.Done(); stopChild(c) }(c)
	}
	wg.Wait()
	if last != nil {
		stopChild(last)
	}
}

func stopChild(c *child) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// pidHint says how to find the process of an instance that may still run.
func pidHint(cfg *config.Config, name string) string {
	pidFile := cfg.PIDFile(name)
	if b, err := os.ReadFile(pidFile); err == nil {
		return fmt.Sprintf("%s says PID %s", pidFile, strings.TrimSpace(string(b)))
	}
	return "see fuser " + filepath.Join(cfg.InstanceDataDir(name), "raft.db")
}

// writeSample leaves a file to try transfers with, unless one is there.
func writeSample(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("sample file: %w", err)
	}
	b := make([]byte, 16<<20)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		return fmt.Errorf("sample file: %w", err)
	}
	return nil
}
