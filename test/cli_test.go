package test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/test/harness"
)

func TestVersionIsStamped(t *testing.T) {
	for _, b := range []string{bin.Ftagent, bin.Ftstop} {
		r, err := harness.Run(context.Background(), b, "--version")
		if err != nil || r.Exit != 0 || !strings.Contains(r.Stdout, testVersion) {
			t.Errorf("%s --version: exit %d %v %q", filepath.Base(b), r.Exit, err, r.Stdout)
		}
	}
}

// writeProps writes an agent.properties with the given lines in a new
// directory, after the TLS lines of agent A's instances ha1, ha2 and ha9
// (certificates from harness.SetUpTLS).
func writeProps(t *testing.T, lines ...string) string {
	t.Helper()
	dir := t.TempDir()
	tls, err := harness.SetUpTLS(dir, "A", []string{"ha1", "ha2", "ha9"})
	if err != nil {
		t.Fatal(err)
	}
	lines = append(tls.Lines(harness.ClientAdmin), lines...)
	p := filepath.Join(dir, "agent.properties")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadConfigurationExitsTwoNamingTheKey(t *testing.T) {
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := func(off int) string { return "127.0.0.1:" + strconv.Itoa(port+off) }
	good := "instances=ha1@" + addr(0) + ",ha2@" + addr(1) + ",ha3@" + addr(2)
	// A regular file where the data directory should be: unwritable even for root.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		lines []string
		args  []string
		key   string
	}{
		{"missing agentName", []string{good, "dataDirectory=data"}, nil, "agentName"},
		{"instance not listed", []string{"agentName=A", good, "dataDirectory=data"}, []string{"--instance", "ha9"}, "instanceName"},
		{"duplicate names", []string{"agentName=A", "instances=ha1@" + addr(0) + ",ha1@" + addr(1), "dataDirectory=data"}, nil, "instances"},
		{"duplicate addresses", []string{"agentName=A", "instances=ha1@" + addr(0) + ",ha2@" + addr(0), "dataDirectory=data"}, nil, "instances"},
		{"malformed address", []string{"agentName=A", "instances=ha1@127.0.0.1,ha2@" + addr(1), "dataDirectory=data"}, nil, "instances"},
		{"discard not above publish", []string{"agentName=A", good, "dataDirectory=data", "standbyStatusPublishInterval=10", "standbyStatusDiscardTime=10"}, nil, "standbyStatusDiscardTime"},
		{"bad duration", []string{"agentName=A", good, "dataDirectory=data", "standbyStatusPublishInterval=soon"}, nil, "standbyStatusPublishInterval"},
		{"unwritable data directory", []string{"agentName=A", good, "dataDirectory=" + filepath.Join(blocker, "data")}, nil, "dataDirectory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			props := writeProps(t, tc.lines...)
			args := append([]string{"start", "--config", props}, tc.args...)
			if tc.args == nil {
				args = append(args, "--instance", "ha1")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r, err := harness.Run(ctx, bin.Ftagent, args...)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			if r.Exit != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.key) {
				t.Fatalf("exit %d, stderr %q: want exit 2 and one line naming %s", r.Exit, r.Stderr, tc.key)
			}
		})
	}
}

func TestPortInUseExitsTwo(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().String()
	props := writeProps(t, "agentName=A", "instances=ha1@"+busy, "dataDirectory=data")
	r, err := harness.Run(context.Background(), bin.Ftagent, "start", "--config", props, "--instance", "ha1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Exit != 2 || !strings.Contains(r.Stderr, "already in use") || !strings.Contains(r.Stderr, busy) {
		t.Fatalf("exit %d stderr %q: want exit 2 naming %s in use", r.Exit, r.Stderr, busy)
	}
}

func TestUnknownKeyWarnsAndStarts(t *testing.T) {
	c := newCluster(t, harness.Options{Names: []string{"solo"}, Extra: []string{"standbyStatusPublishIntervall=5"}})
	p, err := c.Start("solo")
	if err != nil {
		t.Fatal(err)
	}
	// A single instance is its own majority: it becomes active.
	wait(t, c, 20*time.Second, "the single instance active", func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && v.Active == "solo"
	})
	b, _ := os.ReadFile(p.Log)
	if !strings.Contains(string(b), "standbyStatusPublishIntervall") || !strings.Contains(string(b), "warning") {
		t.Fatalf("no warning about the misspelt key in the log:\n%s", b)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	cases := [][]string{
		{bin.Ftagent, "show", "--no-such-flag"},
		{bin.Ftagent, "show"}, // no --config and no -x
		{bin.Ftagent, "show", "-x", "not-an-address"},
		{bin.Ftstop},
		{bin.Ftagent, "start"},
		{bin.Ftagent, "nosuch"},
	}
	for _, args := range cases {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "FTAGENT_CONFIG=", "FTAGENT_ADDRESSES=")
		out, _ := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if cmd.ProcessState.ExitCode() != 2 || len(lines) != 1 {
			t.Errorf("%s: exit %d, output %q; want exit 2 and one error line", strings.Join(args[1:], " "), cmd.ProcessState.ExitCode(), out)
		}
	}
}

func TestFlagsAfterSubcommandAndEnvironment(t *testing.T) {
	c := newCluster(t, harness.Options{})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))

	check := func(name string, env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin.Ftagent, args...)
		cmd.Env = append(append(os.Environ(), c.ClientEnv()...), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(string(out), `"active":"`+v.Active+`"`) {
			t.Fatalf("%s printed %q", name, out)
		}
	}
	check("FTAGENT_CONFIG", []string{"FTAGENT_CONFIG=" + c.Props, "FTAGENT_ADDRESSES="}, "show", "--json")
	check("FTAGENT_ADDRESSES", []string{"FTAGENT_CONFIG=", "FTAGENT_ADDRESSES=" + c.Addr["ha3"] + "," + c.Addr["ha1"]}, "show", "--json")
	check("-x comma list", []string{"FTAGENT_CONFIG=", "FTAGENT_ADDRESSES="}, "show", "-x", c.Addr["ha2"]+","+c.Addr["ha3"], "--json")
	check("-x repeated", []string{"FTAGENT_CONFIG=", "FTAGENT_ADDRESSES="}, "show", "--json", "-x", c.Addr["ha2"], "-x", c.Addr["ha1"])
	// A dead first address is passed over.
	dead, _ := harness.FreePort()
	check("-x dead first", []string{"FTAGENT_CONFIG=", "FTAGENT_ADDRESSES="}, "show", "--json", "-x", "127.0.0.1:"+strconv.Itoa(dead)+","+c.Addr["ha2"])
}

func TestDevRunsAnAgentAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(bin.Ftagent, "dev", "--dir", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	var out []string
ready:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev ended early:\n%s", strings.Join(out, "\n"))
			}
			out = append(out, l)
			if strings.Contains(l, "Press Ctrl-C") {
				break ready
			}
		case <-deadline:
			t.Fatalf("dev not ready after 60s:\n%s", strings.Join(out, "\n"))
		}
	}
	props := filepath.Join(dir, "agent.properties")
	if !strings.Contains(strings.Join(out, "\n"), props) {
		t.Errorf("dev output does not name %s:\n%s", props, strings.Join(out, "\n"))
	}
	r, err := harness.Run(context.Background(), bin.Ftagent, "show", "--config", props, "--json")
	if err != nil || r.Exit != 0 || !strings.Contains(r.Stdout, `"status":"ACTIVE"`) {
		t.Fatalf("show against the dev agent: exit %d %v %q %q", r.Exit, err, r.Stdout, r.Stderr)
	}
	if n := len(instancePIDs(t, props)); n != 3 {
		t.Fatalf("%d instance processes running, want 3", n)
	}

	// Ctrl-C stops every instance and dev itself, cleanly.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev exited with %v after Ctrl-C", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("dev still running 60s after Ctrl-C")
	}
	if pids := instancePIDs(t, props); len(pids) != 0 {
		t.Fatalf("instances left running after dev stopped: %v", pids)
	}
}

// instancePIDs lists the processes whose command line names props.
func instancePIDs(t *testing.T, props string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cl, " start ") && strings.Contains(cl, props) {
			// A zombie has an empty cmdline, so anything here is alive.
			pids = append(pids, e.Name())
		}
	}
	return pids
}
