// Package devagent runs a whole agent on one machine for trying ftagent out:
// several instances as child processes on loopback ports, sharing one
// generated agent.properties. It is what `ftagent dev` does. With two
// agents, the first sends files to the second (agent.NAME.instances and
// acceptFrom), both with certificates from one CA.
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
	"slices"
	"strconv"
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
	// Agents is how many agents to run: 1 (0 means 1) or 2. The second
	// is named after the first with "2" appended (DEV2), lives in
	// Dir/<its name>/ with its own agent.properties, data and
	// transferRoot, and accepts files from the first, which may send to
	// it (ftagent transfer create --dest-agent).
	Agents int
	// Alternate (with Agents 2) runs a third agent, the second's name
	// with "_DR" appended (DEV2_DR), in Dir/<its name>/ with its own
	// instances and storage: the second's alternate group
	// (agent.DEV2.alternates), to which the first's transfers to the
	// second move once the second's whole group has been lost for
	// alternateAfter (10 s here).
	Alternate bool
	Out       io.Writer
	// Executable is the ftagent binary to run; "" means this process's own.
	Executable string
}

// maxAgentName is config's limit on agentName (IBM MQ MFT's).
const maxAgentName = 28

// child is one instance process.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// devAgent is one agent that dev runs: its directory (which holds its
// agent.properties and is its transferRoot), its configuration, and once
// started its instances and a client of it.
type devAgent struct {
	dir, props string
	cfg        *config.Config
	children   []*child
	cl         *client.Client
}

// Run starts the agent (or both agents), waits until one instance of each
// is active, reports, and stops every instance when ctx is cancelled or on
// SIGINT/SIGTERM.
func Run(ctx context.Context, opts Options) error {
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.Agents == 0 {
		opts.Agents = 1
	}
	if opts.Agents != 1 && opts.Agents != 2 {
		return fmt.Errorf("dev runs 1 or 2 agents, not %d", opts.Agents)
	}
	if opts.Alternate && opts.Agents != 2 {
		return fmt.Errorf("an alternate group is the second agent's: use it with 2 agents")
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
	// describe the first one's agent as its own. The lock covers the
	// second agent's directory inside it too.
	lock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	agents, err := prepare(dir, opts)
	if err != nil {
		return err
	}
	// An instance of an agent may still run without a dev (one started
	// by hand, or left by a dev that was killed): its port is taken.
	for _, a := range agents {
		for _, inst := range a.cfg.Instances {
			l, err := net.Listen("tcp", inst.Address)
			if err != nil {
				return fmt.Errorf("%s: instance %s's address %s is in use (is an instance of this agent still running? %s)",
					a.dir, inst.Name, inst.Address, pidHint(a.cfg, inst.Name))
			}
			l.Close()
		}
	}
	exe := opts.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("find the ftagent binary: %w", err)
		}
	}

	stopEvery := func() {
		for _, a := range agents {
			stopAll(a.children, "")
		}
	}
	for _, a := range agents {
		for _, inst := range a.cfg.Instances {
			c, err := startChild(exe, a.props, a.dir, inst.Name)
			if err != nil {
				stopEvery()
				return err
			}
			a.children = append(a.children, c)
		}
	}
	views := make([]ha.AgentView, len(agents))
	for i, a := range agents {
		d, err := agentclient.Dialer(a.cfg)
		if err != nil {
			stopEvery()
			return err
		}
		if a.cl, err = client.New(a.cfg.Addresses(), client.WithDialer(d.DialContext)); err != nil {
			stopEvery()
			return err
		}
		if views[i], err = waitActive(ctx, a.cl, a.children, a.dir); err != nil {
			stopEvery()
			return err
		}
	}

	first, props := agents[0], agents[0].props
	for i, a := range agents {
		fmt.Fprintf(opts.Out, "ftagent dev: agent %s is running with %s; %s is active (lease epoch %d)",
			a.cfg.AgentName, instancesText(len(a.children)), views[i].Active, views[i].Epoch)
		switch {
		case i == 2:
			fmt.Fprintf(opts.Out, "; it is the alternate group of %s, and accepts files from %s", agents[1].cfg.AgentName, first.cfg.AgentName)
		case i > 0:
			fmt.Fprintf(opts.Out, "; it accepts files from %s", first.cfg.AgentName)
		}
		fmt.Fprintln(opts.Out)
	}
	fmt.Fprintln(opts.Out)
	fmt.Fprintf(opts.Out, "  properties:  %s\n", props)
	fmt.Fprintf(opts.Out, "  logs:        %s\n", filepath.Join(dir, "<instance>.log"))
	for _, a := range agents[1:] {
		fmt.Fprintf(opts.Out, "  %-12s %s, logs %s\n", a.cfg.AgentName+":", a.props, filepath.Join(a.dir, "<instance>.log"))
	}
	fmt.Fprintln(opts.Out)
	fmt.Fprintf(opts.Out, "Try, in another terminal:\n\n")
	fmt.Fprintf(opts.Out, "  export FTAGENT_CONFIG=%s\n", props)
	fmt.Fprintf(opts.Out, "  ftagent show             # who is active, which standbys report\n")
	fmt.Fprintf(opts.Out, "  ftstop -i                # planned failover: the active hands over at once\n")
	fmt.Fprintf(opts.Out, "  ftagent show             # a standby is active now, with a higher epoch\n")
	fmt.Fprintf(opts.Out, "  ftagent start --instance %s   # restart the stopped instance: it rejoins as a standby\n", views[0].Active)
	fmt.Fprintf(opts.Out, "  ftagent transfer create --wait in/sample.bin out/   # paths are relative to %s\n", dir)
	for _, a := range agents[1:min(len(agents), 2)] {
		name := a.cfg.AgentName
		fmt.Fprintf(opts.Out, "  ftagent transfer create --wait --dest-agent %s in/sample.bin out/   # out/ of agent %s: %s\n",
			name, name, filepath.Join(a.dir, "out"))
		fmt.Fprintf(opts.Out, "  ftagent show --config %s   # agent %s (or FTAGENT_CONFIG=that file)\n", a.props, name)
	}
	if len(agents) == 3 {
		second, dr := agents[1], agents[2]
		fmt.Fprintf(opts.Out, "\nTo see a transfer move to the alternate group %s when %s's whole group is lost:\n\n", dr.cfg.AgentName, second.cfg.AgentName)
		fmt.Fprintf(opts.Out, "  ftagent transfer create --dest-agent %s --bwlimit 1M in/sample.bin moved.bin\n", second.cfg.AgentName)
		for _, inst := range second.cfg.Instances {
			fmt.Fprintf(opts.Out, "  kill -9 $(cat %s)   # the site of %s lost\n", second.cfg.PIDFile(inst.Name), second.cfg.AgentName)
		}
		fmt.Fprintf(opts.Out, "  ftagent transfer wait ID       # after 10 s (alternateAfter) it goes on at %s: %s\n", dr.cfg.AgentName, filepath.Join(dr.dir, "moved.bin"))
		fmt.Fprintf(opts.Out, "  ftagent transfer show ID       # \"Moved:\" says from where, when and why\n")
	}
	fmt.Fprintln(opts.Out)
	fmt.Fprintf(opts.Out, "(with `go run`, use `go run ./cmd/ftagent` and `go run ./cmd/ftstop`)\n")
	if len(agents) == 1 {
		fmt.Fprintf(opts.Out, "Press Ctrl-C to stop every instance.\n")
	} else {
		fmt.Fprintf(opts.Out, "Press Ctrl-C to stop every instance of both agents.\n")
	}

	// Report instances that end while the agents run (ftstop, a crash).
	var wg sync.WaitGroup
	for _, a := range agents {
		for _, c := range a.children {
			what := "instance " + c.name
			if len(agents) > 1 {
				what += " of agent " + a.cfg.AgentName
			}
			wg.Add(1)
			go func(c *child, props string) {
				defer wg.Done()
				select {
				case <-c.done:
					fmt.Fprintf(opts.Out, "ftagent dev: %s ended (%s); restart it with: ftagent start --config %s --instance %s\n",
						what, exitText(c.err), props, c.name)
				case <-ctx.Done():
				}
			}(c, a.props)
		}
	}
	<-ctx.Done()
	if len(agents) == 1 {
		fmt.Fprintf(opts.Out, "\nftagent dev: stopping the instances (standbys first)\n")
	} else {
		// The sender first: the receiver stays until nothing sends to it.
		fmt.Fprintf(opts.Out, "\nftagent dev: stopping the instances of %s, then of %s (standbys first)\n",
			first.cfg.AgentName, agents[1].cfg.AgentName)
	}
	for _, a := range agents {
		active := ""
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if v, err := agentclient.FetchView(sctx, a.cl, a.cfg); err == nil {
			active = v.Active
		}
		cancel()
		stopAll(a.children, active)
	}
	wg.Wait()
	if len(agents) == 1 {
		fmt.Fprintf(opts.Out, "ftagent dev: stopped; state kept in %s (run `ftagent dev --dir %s` to start it again)\n", dir, dir)
	} else {
		fmt.Fprintf(opts.Out, "ftagent dev: stopped; state kept in %s (run `ftagent dev --agents 2 --dir %s` to start them again)\n", dir, dir)
	}
	return nil
}

// prepare writes what is missing of the agents' properties, certificates
// and sample file in dir, and loads their configuration. A directory that
// holds them already (a dev that ran before) keeps its agents, names and
// ports; one of a single agent gains the second with --agents 2.
func prepare(dir string, opts Options) ([]*devAgent, error) {
	tlsDir := filepath.Join(dir, "tls")
	first := &devAgent{dir: dir, props: filepath.Join(dir, "agent.properties")}
	if opts.Agents < 2 {
		if err := first.setUp(opts.AgentName, opts.Instances, nil, nil, tlsDir); err != nil {
			return nil, err
		}
		if err := writeSample(filepath.Join(first.cfg.TransferRoot, "in", "sample.bin")); err != nil {
			return nil, err
		}
		return []*devAgent{first}, nil
	}

	// The second agent is named after the first, whose name is its
	// file's when there is one (as for one agent, --agent is then moot).
	name := opts.AgentName
	var firstCfg *config.Config
	if _, err := os.Stat(first.props); !errors.Is(err, os.ErrNotExist) {
		if firstCfg, err = config.Load(first.props); err != nil {
			return nil, err
		}
		name = firstCfg.AgentName
	}
	name2 := name + "2"
	if err := trust.CheckName("agent", name2); err != nil || len(name2) > maxAgentName {
		return nil, fmt.Errorf("agent %q: the second agent is named after it, %q, which is not a valid agent name (1-%d letters, digits, '.', '_' or '-')",
			name, name2, maxAgentName)
	}
	second := &devAgent{dir: filepath.Join(dir, name2)}
	second.props = filepath.Join(second.dir, "agent.properties")
	if err := os.MkdirAll(second.dir, 0o750); err != nil {
		return nil, fmt.Errorf("directory of agent %s: %w", name2, err)
	}
	var taken []config.Instance
	if firstCfg != nil {
		taken = firstCfg.Instances
	}
	if err := second.setUp(name2, opts.Instances, []string{
		"# Agent " + name + " (" + first.props + ") may send files here: ftagent transfer create --dest-agent " + name2 + ".",
		config.KeyAcceptFrom + "=" + name,
	}, taken, tlsDir); err != nil {
		return nil, err
	}
	if !second.cfg.Accepts(name) {
		return nil, fmt.Errorf("%s: %s does not list agent %s (of %s), which sends to it", second.props, config.KeyAcceptFrom, name, first.props)
	}

	agents := []*devAgent{first, second}
	others := second.cfg.Instances
	sends := []string{
		"# Agent " + name2 + " (" + second.props + ") accepts files from this agent: ftagent transfer create --dest-agent " + name2 + ".",
		config.AgentInstancesKey(name2) + "=" + instanceList(second.cfg.Instances),
	}
	if opts.Alternate {
		name3 := name2 + "_DR"
		if err := trust.CheckName("agent", name3); err != nil || len(name3) > maxAgentName {
			return nil, fmt.Errorf("agent %q: its alternate is named after it, %q, which is not a valid agent name (1-%d letters, digits, '.', '_' or '-')",
				name2, name3, maxAgentName)
		}
		third := &devAgent{dir: filepath.Join(dir, name3)}
		third.props = filepath.Join(third.dir, "agent.properties")
		if err := os.MkdirAll(third.dir, 0o750); err != nil {
			return nil, fmt.Errorf("directory of agent %s: %w", name3, err)
		}
		if err := third.setUp(name3, opts.Instances, []string{
			"# The alternate group of agent " + name2 + ": agent " + name + " (" + first.props + ") sends here once " + name2 + "'s whole group is lost.",
			config.KeyAcceptFrom + "=" + name,
		}, append(slices.Clone(taken), second.cfg.Instances...), tlsDir); err != nil {
			return nil, err
		}
		agents = append(agents, third)
		others = append(slices.Clone(others), third.cfg.Instances...)
		sends = append(sends,
			"# Agent "+name3+" ("+third.props+") is "+name2+"'s alternate group: transfers to "+name2+" move there when "+name2+" has been unreachable for alternateAfter.",
			config.AgentInstancesKey(name3)+"="+instanceList(third.cfg.Instances),
			config.AgentAlternatesKey(name2)+"="+name3,
			config.KeyAlternateAfter+"=10s",
		)
	}
	if firstCfg != nil {
		// A directory of fewer agents: the first now sends to the new
		// ones. The ones it knows must be where they are.
		var add []string
		for _, a := range agents[1:] {
			key, entries := config.AgentInstancesKey(a.cfg.AgentName), instanceList(a.cfg.Instances)
			if ra, ok := firstCfg.RemoteAgent(a.cfg.AgentName); !ok {
				add = append(add, sends...)
				break
			} else if got := instanceList(ra.Instances); got != entries {
				return nil, fmt.Errorf("%s: %s is %s, but agent %s's instances (%s) are %s: make them agree",
					first.props, key, got, a.cfg.AgentName, a.props, entries)
			}
		}
		if len(add) > 0 {
			if len(firstCfg.RemoteAgents) > 0 {
				// The second agent is listed already: only the alternate's lines.
				add = add[2:]
			}
			if err := appendLines(first.props, add); err != nil {
				return nil, err
			}
		}
	}
	if err := first.setUp(name, opts.Instances, sends, others, tlsDir); err != nil {
		return nil, err
	}
	if err := writeSample(filepath.Join(first.cfg.TransferRoot, "in", "sample.bin")); err != nil {
		return nil, err
	}
	return agents, nil
}

// setUp writes a's agent.properties if it is missing (agent name, n
// instances on free ports other than taken's, then the extra lines), loads
// it, and issues its certificates from the CA in tlsDir unless it names
// its own or disables TLS.
func (a *devAgent) setUp(name string, n int, extra []string, taken []config.Instance, tlsDir string) error {
	if _, err := os.Stat(a.props); errors.Is(err, os.ErrNotExist) {
		if err := writeProperties(a.props, name, n, extra, taken); err != nil {
			return err
		}
	}
	cfg, err := config.Load(a.props)
	if err != nil {
		return err
	}
	if cfg.TLSMode != config.TLSDisabled && cfg.TLSCertificate == "" {
		// Its own throw-away CA, so that the tour runs with TLS as a
		// deployment does (also for a directory of a build before TLS).
		if err := setUpTLS(tlsDir, a.props, cfg); err != nil {
			return err
		}
		if cfg, err = config.Load(a.props); err != nil {
			return err
		}
	}
	a.cfg = cfg
	return nil
}

// instanceList writes instances as the instances key lists them.
func instanceList(instances []config.Instance) string {
	var entries []string
	for _, in := range instances {
		entries = append(entries, in.Name+"@"+in.Address)
	}
	return strings.Join(entries, ",")
}

// appendLines adds lines at the end of the properties file path, after an
// empty line.
func appendLines(path string, lines []string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("\n" + strings.Join(lines, "\n") + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
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

// writeProperties writes a dev agent's agent.properties: n instances on
// free loopback ports that taken's instances do not use, then the extra
// lines.
func writeProperties(path, agentName string, n int, extra []string, taken []config.Instance) error {
	ports, err := freePorts(n, taken)
	if err != nil {
		return err
	}
	var entries []string
	for i, port := range ports {
		entries = append(entries, fmt.Sprintf("ha%d@127.0.0.1:%d", i+1, port))
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
	if len(extra) > 0 {
		body += strings.Join(extra, "\n") + "\n"
	}
	if err := os.WriteFile(path, []byte(body), 0o640); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// setUpTLS issues dev's certificates in tlsDir from the CA there (made on
// the first call): one per instance, and the admin client "dev" that the
// commands of the tour present; and adds the properties that name them.
// Both agents of a dev share the CA, so that each trusts the other's
// instances.
func setUpTLS(tlsDir, props string, cfg *config.Config) error {
	var names []string
	for _, inst := range cfg.Instances {
		names = append(names, inst.Name)
	}
	// The instances listen on loopback: their certificates name it too,
	// so that tools that check host names (curl, Prometheus) accept them.
	res, err := trust.Init(trust.InitOptions{Dir: tlsDir, Agent: cfg.AgentName, Instances: names, Hosts: []string{"127.0.0.1", "localhost"},
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

// freePorts returns n distinct loopback ports that were free a moment ago
// and that no instance of taken listens on.
func freePorts(n int, taken []config.Instance) ([]int, error) {
	avoid := map[int]bool{}
	for _, in := range taken {
		if _, p, err := net.SplitHostPort(in.Address); err == nil {
			if port, err := strconv.Atoi(p); err == nil {
				avoid[port] = true
			}
		}
	}
	// Each listener stays open until all are chosen, so that no port is
	// handed out twice.
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		held = append(held, l)
		if port := l.Addr().(*net.TCPAddr).Port; !avoid[port] {
			ports = append(ports, port)
		}
	}
	return ports, nil
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
