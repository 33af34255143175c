package chaos

// The two-agent mode: a sending agent and a receiving agent, each of its
// own instances on hosts of one bench, each with its own directory and
// storage, certificates from one CA; faults on either agent's instances
// and on the link between the two agents (test/chaos_agents_test.go runs
// it; docs/reliability.md describes it).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
	"github.com/ftagent/ftagent/test/harness"
)

// AgentSpec shapes an agent of a bench that holds more than one.
type AgentSpec struct {
	Name  string   // agentName
	Hosts []string // bench hosts, one instance on each, named after it
	// TLSDir is the directory whose tls/ holds the CA ("" : the agent's
	// own directory); agents given the same one trust each other.
	TLSDir string
	Extra  []string // more properties
}

// NewNamedAgent is NewAgent for an agent named spec.Name, whose
// certificates come from the CA under spec.TLSDir. Its directory is its
// storage (Root).
func NewNamedAgent(b *Bench, bin harness.Binaries, dir string, spec AgentSpec) (*Agent, error) {
	a := &Agent{Bench: b, Bin: bin, Dir: dir, Root: dir, Names: spec.Hosts, Addr: map[string]string{}, procs: map[string]*harness.Proc{}}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	var entries, addrs []string
	for _, n := range spec.Hosts {
		h, ok := b.Hosts[n]
		if !ok {
			return nil, fmt.Errorf("agent %s: no host %s on the bench", spec.Name, n)
		}
		a.Addr[n] = fmt.Sprintf("%s:%d", h.IP, apiPort)
		entries = append(entries, n+"@"+a.Addr[n])
		addrs = append(addrs, a.Addr[n])
	}
	a.Audit = filepath.Join(dir, "audit.jsonl")
	tlsDir := spec.TLSDir
	if tlsDir == "" {
		tlsDir = dir
	}
	tls, err := harness.SetUpTLS(tlsDir, spec.Name, spec.Hosts)
	if err != nil {
		return nil, err
	}
	a.TLS = tls
	lines := append(append([]string{
		"agentName=" + spec.Name,
		"instances=" + strings.Join(entries, ","),
		"dataDirectory=data",
		"auditLog=audit.jsonl",
	}, tls.Lines(harness.ClientAdmin)...), spec.Extra...)
	a.Props = filepath.Join(dir, "agent.properties")
	if err := os.WriteFile(a.Props, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		return nil, err
	}
	d, err := tls.Dialer(harness.ClientAdmin)
	if err != nil {
		return nil, err
	}
	if a.Client, err = client.New(addrs, client.WithDialer(d.DialContext)); err != nil {
		return nil, err
	}
	if a.probe, err = tls.HTTPClient(harness.ClientAdmin, 500*time.Millisecond); err != nil {
		return nil, err
	}
	return a, nil
}

// Name is the agent's agentName.
func (a *Agent) Name() string { return a.TLS.Agent }

// WaitSendsToAgents waits until a's active knows that every instance reads
// the command format of transfers to other agents: until then (an agent
// just started, before its log holds such a transfer) it refuses them.
func (a *Agent) WaitSendsToAgents(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var v ha.AgentView
		err := a.Client.Do(ctx, http.MethodGet, api.PathAgent, nil, &v)
		cancel()
		if err != nil {
			last = err.Error()
		} else {
			var behind []string
			for _, iv := range v.Instances {
				if iv.Format < replicated.FormatInbound {
					behind = append(behind, fmt.Sprintf("%s (%s, format %d)", iv.Name, iv.Status, iv.Format))
				}
			}
			if len(v.Instances) == len(a.Names) && len(behind) == 0 {
				return nil
			}
			last = fmt.Sprintf("%d instances in the view, behind: %s", len(v.Instances), strings.Join(behind, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the active of %s does not know within %v that every instance reads format %d: %s", a.Name(), timeout, replicated.FormatInbound, last)
}

// Pair is two agents on one bench: Sender sends to Receiver
// (agent.RECEIVER.instances at the sender, acceptFrom at the receiver).
type Pair struct {
	Bench            *Bench
	Sender, Receiver *Agent
}

// Instance names the caller of a request an instance of the sender makes,
// as the receiver's audit trail writes it.
func (p *Pair) Instance(name string) string { return p.Sender.Name() + "/instance/" + name }

// CutBetween drops every packet between a host of as and a host of bs, and
// only those: in each host's namespace, a blackhole route to each host of
// the other side. Connections already open stall (their packets vanish);
// new ones fail. Hosts on the same side, and the test, still reach them.
func (b *Bench) CutBetween(as, bs []string) error {
	return b.routesBetween("add", as, bs)
}

// HealBetween removes the routes of CutBetween.
func (b *Bench) HealBetween(as, bs []string) error {
	return b.routesBetween("del", as, bs)
}

func (b *Bench) routesBetween(verb string, as, bs []string) error {
	var first error
	for _, pair := range [][2][]string{{as, bs}, {bs, as}} {
		for _, from := range pair[0] {
			for _, to := range pair[1] {
				err := ip("-n", b.Hosts[from].NS, "route", verb, "blackhole", b.Hosts[to].IP+"/32")
				if err != nil && first == nil {
					first = err // healing goes on: every route that can go, goes
				}
			}
		}
	}
	return first
}

// unusedPort is a port no instance listens on: a host that is reached
// answers a connection to it with a reset.
const unusedPort = 9

// Reach tells whether host to is reached from inside host from's
// namespace: nil if a TCP connection to a port of to where nothing
// listens is refused (reset) within timeout, as it is by a host that is
// reached. The instances see nothing of it.
func (b *Bench) Reach(from, to string, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		// The thread moves to the namespace and is never unlocked: it ends
		// with this goroutine, and no other goroutine runs on it.
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", b.Hosts[from].NS))
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("enter the namespace of %s: %w", from, err)
			return
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(b.Hosts[to].IP, fmt.Sprint(unusedPort)), timeout)
		if err == nil {
			c.Close()
			errc <- nil
			return
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			err = nil
		}
		errc <- err
	}()
	return <-errc
}

// checkCut checks that a cut between the hosts of two agents holds (cut)
// or was healed (!cut): from the sender's host from, the receiver's host
// to is reached only when healed, and the sender's host own whatever (its
// instances keep talking to each other); from to, own is reached only when
// healed.
func (b *Bench) checkCut(cut bool, from, own, to string) error {
	var errs []error
	for _, d := range []struct {
		from, to string
		want     bool
	}{{from, to, !cut}, {from, own, true}, {to, own, !cut}} {
		err := b.Reach(d.from, d.to, time.Second)
		// A link just set up or healed may take a moment (its carrier,
		// the first ARP on a loaded machine): what should be reached
		// gets a few more tries before it counts as not reached.
		for deadline := time.Now().Add(5 * time.Second); d.want && err != nil && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			err = b.Reach(d.from, d.to, time.Second)
		}
		switch {
		case d.want && err != nil:
			errs = append(errs, fmt.Errorf("from %s, %s is not reached: %w", d.from, d.to, err))
		case !d.want && err == nil:
			errs = append(errs, fmt.Errorf("from %s, %s is reached through the cut", d.from, d.to))
		}
	}
	return errors.Join(errs...)
}

// LinkCut is the fault of the link between the two agents of a Pair: their
// traffic dropped (Bench.CutBetween) for 2–5 s, then let through again;
// each agent's own instances keep talking to each other.
const LinkCut = "link-cut"

// PairKinds are the faults of a Pair: the process and network faults of
// either agent's instances, and LinkCut.
var PairKinds = append(append([]string{}, ProcessKinds...), LinkCut)

// PairEvent is one fault of a Pair as it happened: of Agent's instances,
// or (Agent "") of the link.
type PairEvent struct {
	Agent string
	Event
}

func (e PairEvent) String() string {
	if e.Agent == "" {
		return e.Event.String()
	}
	return e.Agent + ": " + e.Event.String()
}

// PairSchedule draws faults of a Pair from a seed: of the sender's
// instances, of the receiver's (each as Schedule does), or of the link
// between them, about 2 : 2 : 1.
type PairSchedule struct {
	rng              *rand.Rand
	p                *Pair
	sender, receiver *Schedule
	link             bool
	Logf             func(format string, args ...any)
}

// NewPairSchedule draws from seed among kinds (PairKinds, or some of them).
func NewPairSchedule(p *Pair, seed uint64, kinds []string) *PairSchedule {
	s := &PairSchedule{rng: rand.New(rand.NewPCG(seed, 0x2a6e)), p: p, Logf: func(string, ...any) {}}
	var process []string
	for _, k := range kinds {
		if k == LinkCut {
			s.link = true
		} else {
			process = append(process, k)
		}
	}
	if len(process) > 0 {
		s.sender = NewSchedule(p.Sender, seed)
		s.receiver = NewSchedule(p.Receiver, seed^0x9e3779b97f4a7c15)
		for _, sub := range []*Schedule{s.sender, s.receiver} {
			sub.Kinds = process
			name := sub.a.Name()
			sub.Logf = func(format string, args ...any) { s.Logf(name+": "+format, args...) }
		}
	}
	return s
}

// Next injects one fault and brings both agents back to health.
func (s *PairSchedule) Next(n int) (PairEvent, error) {
	var sides []*Schedule
	if s.sender != nil {
		sides = append(sides, s.sender, s.sender, s.receiver, s.receiver)
	}
	if s.link {
		sides = append(sides, nil)
	}
	if side := sides[s.rng.IntN(len(sides))]; side != nil {
		ev, err := side.Next(n)
		return PairEvent{Agent: side.a.Name(), Event: ev}, err
	}
	return s.cut(n)
}

// cut is a LinkCut.
func (s *PairSchedule) cut(n int) (PairEvent, error) {
	snd, rcv := s.p.Sender, s.p.Receiver
	ev := PairEvent{Event: Event{N: n, Kind: LinkCut, Target: snd.Name() + "↔" + rcv.Name()}}
	ractive, _, err := rcv.WaitHealthy(60 * time.Second)
	if err != nil {
		return ev, err
	}
	sactive, epoch, err := snd.WaitHealthy(60 * time.Second)
	if err != nil {
		return ev, err
	}
	ev.Epoch = epoch
	// The cut is checked from a standby of the sender: the receiver's
	// active is not reached, its own active is; and from the receiver's
	// active: the sender's is not reached.
	sfrom := snd.Names[0]
	if sfrom == sactive {
		sfrom = snd.Names[1]
	}
	check := func(cut bool) error { return s.p.Bench.checkCut(cut, sfrom, sactive, ractive) }
	time.Sleep(300*time.Millisecond + time.Duration(s.rng.Int64N(int64(1200*time.Millisecond))))
	hold := 2*time.Second + time.Duration(s.rng.Int64N(int64(3*time.Second)))
	s.Logf("fault #%d: %s for %v", n, ev.Target, hold.Round(time.Millisecond))
	ev.At = time.Now()
	if err := s.p.Bench.CutBetween(snd.Names, rcv.Names); err != nil {
		_ = s.p.Bench.HealBetween(snd.Names, rcv.Names)
		return ev, err
	}
	cerr := check(true)
	time.Sleep(hold - time.Since(ev.At))
	if err := s.p.Bench.HealBetween(snd.Names, rcv.Names); err != nil {
		return ev, err
	}
	if cerr != nil {
		return ev, fmt.Errorf("the cut between the agents: %w", cerr)
	}
	if err := check(false); err != nil {
		return ev, fmt.Errorf("the link between the agents, healed: %w", err)
	}
	ev.Note = fmt.Sprintf("cut for %v", hold.Round(time.Millisecond))
	if _, _, err := rcv.WaitHealthy(60 * time.Second); err != nil {
		return ev, err
	}
	_, ev.NewEpoch, err = snd.WaitHealthy(60 * time.Second)
	ev.Took = time.Since(ev.At)
	return ev, err
}

// StopPair ends both agents' instances, at once.
func StopPair(p *Pair) {
	done := make(chan struct{})
	go func() { p.Receiver.StopAll(); close(done) }()
	p.Sender.StopAll()
	<-done
}

// WaitNoParts waits up to timeout until no .part is left under any of
// dirs, and returns those left then.
func WaitNoParts(ctx context.Context, timeout time.Duration, dirs ...string) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		var left []string
		for _, d := range dirs {
			parts, err := harness.PartFiles(d)
			if err != nil {
				return nil, err
			}
			left = append(left, parts...)
		}
		if len(left) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return left, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}
