package test

// `ftagent dev --agents 2`: two local agents from one CA, the first
// sending to the second, as the README's agent-to-agent step runs them.

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// devRun is a running `ftagent dev`, with what it printed so far.
type devRun struct {
	cmd   *exec.Cmd
	lines chan string
	out   []string
}

// startDevWith runs `ftagent dev args...` until it prints its ready line;
// it is killed at the end of the test if it still runs then.
func startDevWith(t *testing.T, args ...string) *devRun {
	t.Helper()
	d := &devRun{cmd: exec.Command(bin.Ftagent, append([]string{"dev"}, args...)...), lines: make(chan string, 100)}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = os.Stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stopped as a user would (dev stops every instance it started,
		// which run in process groups of their own); killed only if it
		// does not end.
		_ = d.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = d.cmd.Process.Kill()
			<-done
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
	}()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-d.lines:
			if !ok {
				t.Fatalf("dev ended early:\n%s", strings.Join(d.out, "\n"))
			}
			d.out = append(d.out, l)
			if strings.Contains(l, "Press Ctrl-C") {
				return d
			}
		case <-deadline:
			t.Fatalf("dev not ready after 60s:\n%s", strings.Join(d.out, "\n"))
		}
	}
}

// interrupt sends Ctrl-C to dev and waits until it has exited with status
// 0, and until no instance of the agents of propsFiles runs.
func (d *devRun) interrupt(t *testing.T, propsFiles ...string) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for l := range d.lines {
			d.out = append(d.out, l)
		}
		done <- d.cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev exited with %v after Ctrl-C:\n%s", err, strings.Join(d.out, "\n"))
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("dev still running 90s after Ctrl-C")
	}
	for _, p := range propsFiles {
		if pids := instancePIDs(t, p); len(pids) != 0 {
			t.Fatalf("instances of %s left running after dev stopped: %v", p, pids)
		}
	}
}

// dev --agents 2 runs DEV and DEV2 (in DIR/DEV2), three instances each;
// DEV sends the sample to DEV2, whose storage then holds it whole; Ctrl-C
// stops all six instances; dev again on the folder restarts both agents
// with their state.
func TestDevTwoAgentsSendsToTheSecond(t *testing.T) {
	dir := t.TempDir()
	props := filepath.Join(dir, "agent.properties")
	props2 := filepath.Join(dir, "DEV2", "agent.properties")
	d := startDevWith(t, "--agents", "2", "--dir", dir)
	out := strings.Join(d.out, "\n")
	for _, want := range []string{
		"agent DEV is running with 3 instances",
		"agent DEV2 is running with 3 instances",
		"it accepts files from DEV",
		"export FTAGENT_CONFIG=" + props,
		"ftagent transfer create --wait --dest-agent DEV2 in/sample.bin out/",
		props2,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dev output lacks %q:\n%s", want, out)
		}
	}
	for _, p := range []string{props, props2} {
		if n := len(instancePIDs(t, p)); n != 3 {
			t.Fatalf("%d instance processes of %s running, want 3", n, p)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	r, err := harness.Run(ctx, bin.Ftagent, "transfer", "create", "--config", props, "--wait", "--dest-agent", "DEV2", "in/sample.bin", "out/sample.bin")
	if err != nil || r.Exit != 0 || !strings.Contains(r.Stdout+r.Stderr, "completed") {
		t.Fatalf("transfer create --dest-agent DEV2: exit %d %v, stdout %q, stderr %q", r.Exit, err, r.Stdout, r.Stderr)
	}
	src := xferSum(t, filepath.Join(dir, "in", "sample.bin"))
	if got := xferSum(t, filepath.Join(dir, "DEV2", "out", "sample.bin")); got != src {
		t.Fatalf("SHA-256 at DEV2 %s, sample %s", got, src)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "sample.bin")); err == nil {
		t.Errorf("the file was written at DEV too")
	}
	d.interrupt(t, props, props2)
	if !strings.Contains(strings.Join(d.out, "\n"), "ftagent dev --agents 2 --dir "+dir) {
		t.Errorf("dev's last words do not say how to start both again:\n%s", strings.Join(d.out, "\n"))
	}

	// Again on the same folder: both agents, with their state.
	d = startDevWith(t, "--agents", "2", "--dir", dir)
	for _, p := range []string{props, props2} {
		s, err := harness.Run(ctx, bin.Ftagent, "show", "--config", p, "--json")
		if err != nil || s.Exit != 0 || !strings.Contains(s.Stdout, `"status":"ACTIVE"`) {
			t.Fatalf("show --config %s after the restart: exit %d %v %q %q", p, s.Exit, err, s.Stdout, s.Stderr)
		}
	}
	l, err := harness.Run(ctx, bin.Ftagent, "transfer", "list", "--config", props)
	if err != nil || l.Exit != 0 || !strings.Contains(l.Stdout, "completed") {
		t.Fatalf("transfer list after the restart: exit %d %v %q %q", l.Exit, err, l.Stdout, l.Stderr)
	}
	d.interrupt(t, props, props2)
}

// --agents takes 1 or 2, and says so in one line.
func TestDevAgentsRange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range []string{"0", "3", "-1"} {
		dir := t.TempDir()
		r, err := harness.Run(ctx, bin.Ftagent, "dev", "--agents", n, "--dir", dir)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Exit != 2 || len(lines) != 1 || !strings.Contains(lines[0], "--agents must be 1 or 2") || r.Stdout != "" {
			t.Errorf("dev --agents %s: exit %d, stdout %q, stderr %q; want exit 2 and one line", n, r.Exit, r.Stdout, r.Stderr)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("dev --agents %s left %v in its folder", n, entries)
		}
	}
}

// dev --agents 2 --alternate runs a third agent, DEV2_DR, as DEV2's
// alternate group; the steps it prints move a transfer there: every
// instance of DEV2 killed (-9) midway, the transfer goes on at DEV2_DR
// after alternateAfter and completes there with the sample's SHA-256.
func TestDevAlternateTakesOver(t *testing.T) {
	t.Parallel() // mostly waiting: alternateAfter and the bandwidth limit
	dir := t.TempDir()
	props := filepath.Join(dir, "agent.properties")
	props2 := filepath.Join(dir, "DEV2", "agent.properties")
	propsDR := filepath.Join(dir, "DEV2_DR", "agent.properties")
	d := startDevWith(t, "--agents", "2", "--alternate", "--instances", "1", "--dir", dir)
	out := strings.Join(d.out, "\n")
	for _, want := range []string{
		"agent DEV2_DR is running with 1 instance",
		"it is the alternate group of DEV2, and accepts files from DEV",
		"ftagent transfer create --dest-agent DEV2 --bwlimit 1M in/sample.bin moved.bin",
		"kill -9 $(cat ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dev output lacks %q:\n%s", want, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	r, err := harness.Run(ctx, bin.Ftagent, "transfer", "create", "--config", props, "--json", "--dest-agent", "DEV2", "--bwlimit", "1M", "in/sample.bin", "moved.bin")
	if err != nil || r.Exit != 0 {
		t.Fatalf("transfer create: exit %d %v %q %q", r.Exit, err, r.Stdout, r.Stderr)
	}
	var v transfer.View
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || v.ID == "" {
		t.Fatalf("transfer create --json: %v: %s", err, r.Stdout)
	}
	c := &harness.Cluster{Bin: bin, Props: props}
	xferMidway(t, c, v.ID, 1<<20)
	pids := instancePIDs(t, props2)
	if len(pids) != 1 {
		t.Fatalf("instances of DEV2: %v, want 1", pids)
	}
	for _, pid := range pids {
		if out, err := exec.Command("kill", "-9", pid).CombinedOutput(); err != nil {
			t.Fatalf("kill -9 %s: %v %s", pid, err, out)
		}
	}
	w, err := harness.Run(ctx, bin.Ftagent, "transfer", "wait", "--config", props, v.ID)
	if err != nil || w.Exit != 0 {
		t.Fatalf("transfer wait: exit %d %v %q %q", w.Exit, err, w.Stdout, w.Stderr)
	}
	s, err := harness.Run(ctx, bin.Ftagent, "transfer", "show", "--config", props, v.ID)
	if err != nil || s.Exit != 0 || !strings.Contains(s.Stdout, "DEV2_DR") {
		t.Fatalf("transfer show: exit %d %v; want the move to DEV2_DR named:\n%s%s", s.Exit, err, s.Stdout, s.Stderr)
	}
	src := xferSum(t, filepath.Join(dir, "in", "sample.bin"))
	if got := xferSum(t, filepath.Join(dir, "DEV2_DR", "moved.bin")); got != src {
		t.Fatalf("SHA-256 at DEV2_DR %s, sample %s", got, src)
	}
	if _, err := os.Stat(filepath.Join(dir, "DEV2", "moved.bin")); err == nil {
		t.Errorf("the file was committed at DEV2 too")
	}
	d.interrupt(t, props, propsDR)
}
