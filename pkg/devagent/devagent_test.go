package devagent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/config"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkPair checks that first sends to second and second accepts from
// first: the addresses agree, both are distinct, each has its own
// storage, and one CA signs both.
func checkPair(t *testing.T, dir string, agents []*devAgent, name, name2 string) {
	t.Helper()
	if len(agents) != 2 {
		t.Fatalf("%d agents, want 2", len(agents))
	}
	first, second := agents[0].cfg, agents[1].cfg
	if first.AgentName != name || second.AgentName != name2 {
		t.Fatalf("agents %s and %s, want %s and %s", first.AgentName, second.AgentName, name, name2)
	}
	if agents[1].dir != filepath.Join(dir, name2) || agents[1].props != filepath.Join(dir, name2, "agent.properties") {
		t.Errorf("second agent in %s (%s)", agents[1].dir, agents[1].props)
	}
	ra, ok := first.RemoteAgent(name2)
	if !ok {
		t.Fatalf("%s does not send to %s", name, name2)
	}
	if got, want := instanceList(ra.Instances), instanceList(second.Instances); got != want {
		t.Errorf("agent.%s.instances=%s, but its instances are %s", name2, got, want)
	}
	if !second.Accepts(name) || len(second.AcceptFrom) != 1 {
		t.Errorf("%s's acceptFrom is %v, want [%s]", name2, second.AcceptFrom, name)
	}
	if len(first.RemoteAgents) != 1 || len(second.RemoteAgents) != 0 || len(first.AcceptFrom) != 0 {
		t.Errorf("remote agents %v and %v, acceptFrom of %s %v", first.RemoteAgents, second.RemoteAgents, name, first.AcceptFrom)
	}
	seen := map[string]bool{}
	for _, in := range append(append([]config.Instance{}, first.Instances...), second.Instances...) {
		if seen[in.Address] {
			t.Errorf("address %s used twice", in.Address)
		}
		seen[in.Address] = true
	}
	if first.TransferRoot != dir || second.TransferRoot != filepath.Join(dir, name2) {
		t.Errorf("transferRoots %s and %s", first.TransferRoot, second.TransferRoot)
	}
	if first.DataDirectory != filepath.Join(dir, "data") || second.DataDirectory != filepath.Join(dir, name2, "data") {
		t.Errorf("dataDirectories %s and %s", first.DataDirectory, second.DataDirectory)
	}
	ca := filepath.Join(dir, "tls", "ca.pem")
	if first.TLSCA != ca || second.TLSCA != ca {
		t.Errorf("tlsCA %s and %s, want both %s", first.TLSCA, second.TLSCA, ca)
	}
	if !strings.HasPrefix(second.ClientCertificate, filepath.Join(dir, "tls", name2)+string(filepath.Separator)) {
		t.Errorf("%s's client certificate %s", name2, second.ClientCertificate)
	}
	if _, err := os.Stat(filepath.Join(dir, "in", "sample.bin")); err != nil {
		t.Errorf("sample of the sender: %v", err)
	}
}

func TestPrepareTwoAgentsAndAgain(t *testing.T) {
	dir := t.TempDir()
	agents, err := prepare(dir, Options{Instances: 3, AgentName: "DEV", Agents: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkPair(t, dir, agents, "DEV", "DEV2")
	props, props2 := readFile(t, agents[0].props), readFile(t, agents[1].props)

	// Again, as a restart with --dir: the same agents, files untouched,
	// whatever --agent says now.
	again, err := prepare(dir, Options{Instances: 5, AgentName: "OTHER", Agents: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkPair(t, dir, again, "DEV", "DEV2")
	if readFile(t, again[0].props) != props || readFile(t, again[1].props) != props2 {
		t.Errorf("a second prepare changed the properties")
	}
	if _, err := os.Stat(filepath.Join(dir, "OTHER2")); err == nil {
		t.Errorf("a second prepare made OTHER2")
	}

	// One agent of the two: the first alone, as it was.
	one, err := prepare(dir, Options{Instances: 3, AgentName: "DEV", Agents: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(one) != 1 || one[0].cfg.AgentName != "DEV" || readFile(t, one[0].props) != props {
		t.Errorf("--agents 1 on a directory of two agents: %d agents, properties changed %v", len(one), readFile(t, one[0].props) != props)
	}
}

// A directory of one agent gains the second: its properties gain the
// second's instances, and nothing else of it changes.
func TestPrepareAddsTheSecondAgent(t *testing.T) {
	dir := t.TempDir()
	one, err := prepare(dir, Options{Instances: 3, AgentName: "ORDERS", Agents: 1})
	if err != nil {
		t.Fatal(err)
	}
	before := readFile(t, one[0].props)
	if strings.Contains(before, "\nagent.") || strings.Contains(before, "acceptFrom") {
		t.Fatalf("one agent's properties name other agents:\n%s", before)
	}
	if _, err := os.Stat(filepath.Join(dir, "ORDERS2")); err == nil {
		t.Fatal("one agent made a second's directory")
	}
	// The name is the file's, not the flag's.
	agents, err := prepare(dir, Options{Instances: 3, AgentName: "DEV", Agents: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkPair(t, dir, agents, "ORDERS", "ORDERS2")
	after := readFile(t, agents[0].props)
	if !strings.HasPrefix(after, before) {
		t.Errorf("properties changed, not only appended to:\n%s\n---\n%s", before, after)
	}
	if instanceList(agents[0].cfg.Instances) != instanceList(one[0].cfg.Instances) {
		t.Errorf("instances %s, before %s", instanceList(agents[0].cfg.Instances), instanceList(one[0].cfg.Instances))
	}
	if _, err := prepare(dir, Options{Instances: 3, AgentName: "DEV", Agents: 2}); err != nil {
		t.Fatal(err)
	}
	if again := readFile(t, agents[0].props); again != after {
		t.Errorf("a third prepare changed the properties:\n%s", again)
	}
}

// The sender's list of the receiver's instances must be where they are.
func TestPrepareRefusesAddressesThatDisagree(t *testing.T) {
	dir := t.TempDir()
	agents, err := prepare(dir, Options{Instances: 3, AgentName: "DEV", Agents: 2})
	if err != nil {
		t.Fatal(err)
	}
	// The second agent made anew (its folder removed), on other ports.
	if err := os.RemoveAll(agents[1].dir); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "tls", "DEV2")); err != nil {
		t.Fatal(err)
	}
	_, err = prepare(dir, Options{Instances: 3, AgentName: "DEV", Agents: 2})
	if err == nil || !strings.Contains(err.Error(), "agent.DEV2.instances is") || !strings.Contains(err.Error(), "make them agree") {
		t.Fatalf("got %v, want the addresses that disagree", err)
	}
}

func TestPrepareRefusesASecondNameTooLong(t *testing.T) {
	dir := t.TempDir()
	name := strings.Repeat("A", maxAgentName)
	_, err := prepare(dir, Options{Instances: 1, AgentName: name, Agents: 2})
	if err == nil || !strings.Contains(err.Error(), name+"2") {
		t.Fatalf("got %v, want the second agent's name refused", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %v behind", entries)
	}
}

func TestRunRefusesThreeAgents(t *testing.T) {
	dir := t.TempDir()
	err := Run(context.Background(), Options{Dir: dir, Instances: 1, AgentName: "DEV", Agents: 3})
	if err == nil || !strings.Contains(err.Error(), "1 or 2 agents") {
		t.Fatalf("got %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %v behind", entries)
	}
}

// The properties of one agent are what dev always wrote.
func TestWritePropertiesOfOneAgent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.properties")
	if err := writeProperties(path, "DEV", 2, nil, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(readFile(t, path), "\n")
	want := []string{
		"# Written by ftagent dev: a local agent of 2 instances on loopback ports.",
		"# Every key is described in agent.properties.example.",
		"agentName=DEV",
		"instances=",
		"dataDirectory=data",
		"# Shorter than the defaults (300 and 600 seconds), so that discards show quickly.",
		"standbyStatusPublishInterval=5",
		"standbyStatusDiscardTime=15",
		"",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if lines[i] != w && !(w == "instances=" && strings.HasPrefix(lines[i], w)) {
			t.Errorf("line %d %q, want %q", i+1, lines[i], w)
		}
	}
}

func TestFreePortsAvoidsTaken(t *testing.T) {
	first, err := freePorts(20, nil)
	if err != nil {
		t.Fatal(err)
	}
	var taken []config.Instance
	seen := map[int]bool{}
	for _, p := range first {
		if seen[p] {
			t.Fatalf("port %d twice in %v", p, first)
		}
		seen[p] = true
		taken = append(taken, config.Instance{Name: "x", Address: "127.0.0.1:" + strconv.Itoa(p)})
	}
	second, err := freePorts(20, taken)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range second {
		if seen[p] {
			t.Fatalf("port %d taken or twice", p)
		}
		seen[p] = true
	}
}

// --alternate: a third agent, the second's alternate group, with
// instances and storage of its own; the first's properties name it as
// the second's alternate. On a directory of two agents it is added, the
// rest unchanged; a prepare again changes nothing.
func TestPrepareAlternate(t *testing.T) {
	dir := t.TempDir()
	two, err := prepare(dir, Options{Instances: 3, AgentName: "DEV", Agents: 2})
	if err != nil {
		t.Fatal(err)
	}
	before := readFile(t, two[0].props)
	agents, err := prepare(dir, Options{Instances: 3, AgentName: "DEV", Agents: 2, Alternate: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 3 {
		t.Fatalf("%d agents, want 3", len(agents))
	}
	first, dr := agents[0].cfg, agents[2].cfg
	if dr.AgentName != "DEV2_DR" || agents[2].dir != filepath.Join(dir, "DEV2_DR") || !dr.Accepts("DEV") {
		t.Errorf("third agent %s in %s, accepts DEV %v", dr.AgentName, agents[2].dir, dr.Accepts("DEV"))
	}
	if dr.TransferRoot == first.TransferRoot || dr.TransferRoot == agents[1].cfg.TransferRoot || dr.DataDirectory == agents[1].cfg.DataDirectory {
		t.Errorf("the alternate shares storage: transferRoot %s, dataDirectory %s", dr.TransferRoot, dr.DataDirectory)
	}
	ra, ok := first.RemoteAgent("DEV2")
	if !ok || !slices.Equal(ra.Alternates, []string{"DEV2_DR"}) {
		t.Errorf("DEV2 as DEV sees it: %+v, %v; want alternates [DEV2_DR]", ra, ok)
	}
	if ra, ok := first.RemoteAgent("DEV2_DR"); !ok || instanceList(ra.Instances) != instanceList(dr.Instances) {
		t.Errorf("DEV2_DR as DEV sees it: %+v, %v; want %s", ra, ok, instanceList(dr.Instances))
	}
	seen := map[string]bool{}
	for _, a := range agents {
		for _, in := range a.cfg.Instances {
			if seen[in.Address] {
				t.Errorf("address %s used twice", in.Address)
			}
			seen[in.Address] = true
		}
	}
	after := readFile(t, agents[0].props)
	if !strings.HasPrefix(after, before) {
		t.Errorf("properties changed, not only appended to:\n%s\n---\n%s", before, after)
	}
	if _, err := prepare(dir, Options{Instances: 3, AgentName: "DEV", Agents: 2, Alternate: true}); err != nil {
		t.Fatal(err)
	}
	if again := readFile(t, agents[0].props); again != after {
		t.Errorf("a prepare again changed the properties:\n%s", again)
	}
	if err := Run(context.Background(), Options{Dir: t.TempDir(), Instances: 3, Agents: 1, Alternate: true}); err == nil || !strings.Contains(err.Error(), "2 agents") {
		t.Errorf("an alternate without a second agent: %v", err)
	}
}
