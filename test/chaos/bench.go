// Package chaos is the fault-injection suite's machinery: a test bench of
// network namespaces, real ftagent processes in them, a seeded schedule of
// faults, a workload of transfers, and a checker that judges only what is
// observable at the end (files, the agent's answers, the instances' audit
// trail). test/chaos_test.go runs it; docs/reliability.md describes it.
package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Bench is a small network of its own: one network namespace per host, each
// joined by a veth pair to a bridge in the initial namespace, addresses from
// 198.18.0.0/15 (reserved for network test benches). The test process, on
// the bridge, reaches every host; a host is cut off by taking its link down,
// which drops its traffic with every other host and the test alike. Storage
// is not namespaced: every host sees the same files.
type Bench struct {
	prefix string
	bridge string
	// Subnet is 198.18.N.0/24, N drawn from the process id so that benches
	// of concurrent test runs do not share addresses.
	Subnet string
	// BridgeIP is the test process's address on the bench (.254).
	BridgeIP string
	Hosts    map[string]*Host
	order    []string
}

// Host is one namespace.
type Host struct {
	Name string
	NS   string // namespace name
	Link string // the veth end on the bridge
	IP   string
}

// Capable reports why this machine cannot build a bench ("" if it can).
func Capable() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command (iproute2) is missing"
	}
	ns := fmt.Sprintf("ftchk%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	_ = exec.Command("ip", "netns", "del", ns).Run()
	return ""
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NewBench creates a namespace per name, with addresses 198.18.N.1, .2, …
// in the order given. Tear it down with Close, also after an error.
func NewBench(names []string) (*Bench, error) {
	id := os.Getpid() % 100000
	b := &Bench{prefix: fmt.Sprintf("ftc%d", id), Hosts: map[string]*Host{}}
	b.bridge = b.prefix + "br"
	net := 1 + os.Getpid()%254
	b.Subnet = fmt.Sprintf("198.18.%d.0/24", net)
	b.BridgeIP = fmt.Sprintf("198.18.%d.254", net)
	if err := ip("link", "add", b.bridge, "type", "bridge"); err != nil {
		return b, err
	}
	if err := ip("addr", "add", b.BridgeIP+"/24", "dev", b.bridge); err != nil {
		return b, err
	}
	if err := ip("link", "set", b.bridge, "up"); err != nil {
		return b, err
	}
	for i, name := range names {
		h := &Host{
			Name: name,
			NS:   fmt.Sprintf("%s-%s", b.prefix, name),
			Link: fmt.Sprintf("%sh%d", b.prefix, i+1),
			IP:   fmt.Sprintf("198.18.%d.%d", net, i+1),
		}
		peer := fmt.Sprintf("%sn%d", b.prefix, i+1)
		b.Hosts[name] = h
		b.order = append(b.order, name)
		steps := [][]string{
			{"netns", "add", h.NS},
			{"link", "add", h.Link, "type", "veth", "peer", "name", peer},
			{"link", "set", peer, "netns", h.NS},
			{"link", "set", h.Link, "master", b.bridge},
			{"link", "set", h.Link, "up"},
			{"-n", h.NS, "link", "set", "lo", "up"},
			{"-n", h.NS, "addr", "add", h.IP + "/24", "dev", peer},
			{"-n", h.NS, "link", "set", peer, "up"},
		}
		for _, s := range steps {
			if err := ip(s...); err != nil {
				return b, err
			}
		}
	}
	return b, nil
}

// Cut takes host name off the network.
func (b *Bench) Cut(name string) error { return ip("link", "set", b.Hosts[name].Link, "down") }

// Heal puts host name back on the network.
func (b *Bench) Heal(name string) error { return ip("link", "set", b.Hosts[name].Link, "up") }

// Command returns cmd to be run inside host name's namespace.
func (b *Bench) Command(name string, bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", b.Hosts[name].NS, bin}, args...)...)
}

// Close deletes the namespaces, links and bridge. Processes inside must have
// been ended first.
func (b *Bench) Close() error {
	var first error
	for _, name := range b.order {
		h := b.Hosts[name]
		_ = ip("link", "del", h.Link) // deletes the peer too
		if err := ip("netns", "del", h.NS); err != nil && first == nil {
			first = err
		}
	}
	if b.bridge != "" {
		if err := ip("link", "del", b.bridge); err != nil && first == nil && !strings.Contains(err.Error(), "Cannot find") {
			first = err
		}
	}
	return first
}
