package test

// What an operator meets in the first hour (issue 17, items 5 and 6): a
// second dev on a folder in use, the PID file of an instance, help and
// usage lines, bandwidth limits, and Ctrl-C while following a transfer.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// startDev runs `ftagent dev --dir dir` until it says the agent runs; it is
// stopped (SIGINT, then SIGKILL) at the end of the test.
func startDev(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin.Ftagent, "dev", "--dir", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Press Ctrl-C") {
				close(ready)
			}
		}
		_ = cmd.Wait()
		close(ended)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-ended:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-ended
		}
	})
	select {
	case <-ready:
	case <-ended:
		t.Fatal("dev ended before it was ready")
	case <-time.After(60 * time.Second):
		t.Fatal("dev not ready after 60s")
	}
	return cmd
}

// A second dev on a folder that a running dev uses refuses at once, in one
// line naming the first dev's PID, and leaves the first agent alone.
func TestDevRefusesAFolderInUse(t *testing.T) {
	dir := t.TempDir()
	first := startDev(t, dir)
	props := filepath.Join(dir, "agent.properties")
	before := instancePIDs(t, props)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	r, err := harness.Run(ctx, bin.Ftagent, "dev", "--dir", dir)
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("ftagent: %s is in use by ftagent dev PID %d", dir, first.Process.Pid)
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if r.Exit != 1 || len(lines) != 1 || lines[0] != want || strings.Contains(r.Stdout, "is running") {
		t.Fatalf("second dev: exit %d, stdout %q, stderr %q; want exit 1 and %q", r.Exit, r.Stdout, r.Stderr, want)
	}
	if took > 5*time.Second {
		t.Errorf("second dev took %v to refuse", took)
	}
	if after := instancePIDs(t, props); strings.Join(after, ",") != strings.Join(before, ",") || len(after) != 3 {
		t.Errorf("instances before the second dev %v, after %v", before, after)
	}
	s, err := harness.Run(ctx, bin.Ftagent, "show", "--config", props)
	if err != nil || s.Exit != 0 {
		t.Fatalf("show after the refused dev: exit %d %v %s", s.Exit, err, s.Stderr)
	}
}

// `ftagent start` writes its PID to <dataDirectory>/<instance>/ftagent.pid
// and removes it when it stops cleanly.
func TestStartWritesAPIDFile(t *testing.T) {
	c := newCluster(t, harness.Options{Names: []string{"solo"}})
	p, err := c.Start("solo")
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c, 20*time.Second, "solo active", func(v ha.AgentView) bool { return v.Active == "solo" })
	pidFile := filepath.Join(c.Dir, "data", "solo", "ftagent.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || pid != p.Cmd.Process.Pid {
		t.Fatalf("%s holds %q, want %d", pidFile, b, p.Cmd.Process.Pid)
	}
	if err := c.Signal("solo", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("solo exited with %v", err)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatalf("%s still there after a clean stop: %v", pidFile, err)
	}
}

// Help, usage lines and bandwidth limits, without an agent.
func TestCommandLineHelpAndLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A client certificate, so that a request gets as far as the agent.
	tls, err := harness.SetUpTLS(t.TempDir(), "ORDERS", []string{"ha1"})
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) harness.Result {
		t.Helper()
		r, err := harness.RunEnv(ctx, tls.Env(harness.ClientAdmin), bin.Ftagent, args...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := run("help"); r.Exit != 0 || !strings.Contains(r.Stdout, "transfer") {
		t.Errorf("ftagent help: exit %d, stdout %q", r.Exit, r.Stdout)
	}
	if r := run("help", "transfer"); r.Exit != 0 || !strings.Contains(r.Stdout, "create") {
		t.Errorf("ftagent help transfer: exit %d, stdout %q", r.Exit, r.Stdout)
	}
	if r := run("transfer", "create", "--help"); r.Exit != 0 || !strings.Contains(r.Stdout, "0 means unlimited") {
		t.Errorf("transfer create --help: exit %d; want --bwlimit 0 said to be unlimited in %q", r.Exit, r.Stdout)
	}
	if r := run("show", "--help"); r.Exit != 0 || !strings.Contains(r.Stdout, "3  no instance holds the lease") {
		t.Errorf("show --help: exit %d; want the exit statuses in %q", r.Exit, r.Stdout)
	}
	oneLine := func(r harness.Result, code int, wants ...string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		ok := r.Exit == code && len(lines) == 1
		for _, w := range wants {
			ok = ok && strings.Contains(lines[0], w)
		}
		if !ok {
			t.Errorf("exit %d, stderr %q; want exit %d and one line with %q", r.Exit, r.Stderr, code, wants)
		}
	}
	noAgent := "127.0.0.1:1"
	oneLine(run("transfer", "create", "-x", noAgent, "--priority", "abc", "in/a", "out/"), 2, "see ftagent transfer create --help")
	oneLine(run("transfer", "create", "-x", noAgent, "--bwlimit", "1", "in/sample.bin", "out/"), 2, "--bwlimit 1", "1K", "0 means unlimited")
	oneLine(run("transfer", "create", "-x", noAgent, "--bwlimit", "1023", "in/sample.bin", "out/"), 2, "--bwlimit 1023")
	// 1K itself is allowed: the request gets as far as the (absent) agent.
	oneLine(run("transfer", "create", "-x", noAgent, "--connect-attempts", "1", "--bwlimit", "1K", "in/sample.bin", "out/"), 1, "no instance of the agent could serve the request", noAgent)
}

// Ctrl-C on `transfer create --wait` stops following, not the transfer: it
// says so, with the commands to follow or cancel it, and exits 130.
func TestCreateWaitInterruptedSaysTheTransferRunsOn(t *testing.T) {
	c, _ := xferCluster(t)
	xferRandomFile(t, c, "in/slow.bin", xferMiB, 13)
	r := startCommand(t, c.Bin.Ftagent, "transfer", "create", "--config", c.Props, "--wait", "--bwlimit", "1K", "in/slow.bin", "out/slow.bin")
	started := regexp.MustCompile(`transfer ([0-9a-f]{16}): 1 file`)
	var id string
	if !waitUntil(20*time.Second, func() bool {
		m := started.FindStringSubmatch(r.stderr.String())
		if m != nil {
			id = m[1]
		}
		return m != nil
	}) {
		t.Fatalf("create --wait did not say it started: stderr %q", r.stderr.String())
	}
	xferMidway(t, c, id, 1)
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.end(t, 10*time.Second, "create --wait after Ctrl-C"); code != 130 {
		t.Fatalf("create --wait after Ctrl-C: exit %d, stderr %q; want 130", code, r.stderr.String())
	}
	last := strings.Split(strings.TrimSpace(r.stderr.String()), "\n")
	line := last[len(last)-1]
	for _, want := range []string{"runs on", "ftagent transfer wait " + id, "ftagent transfer cancel " + id} {
		if !strings.Contains(line, want) {
			t.Errorf("last line %q does not say %q", line, want)
		}
	}
	if v, _, err := c.TransferView(context.Background(), id); err != nil || v.State != transfer.StateRunning {
		t.Fatalf("transfer %s after Ctrl-C: %s %v; want it running", id, harness.ViewText(v), err)
	}
}
