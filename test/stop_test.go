package test

// Stops that would hang or take the agent down (issue 17, items 1 and 2):
// a normal stop waits for running transfers only until ftstop -i, a second
// signal or drainTimeout; a waiting ftstop says what it waits for; a stop
// that would leave the voters without a majority is refused unless forced;
// ftstop reports a new active only once it holds the lease; show's exit
// status says whether the agent has an active.

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// lockedBuffer collects a running command's output for reading meanwhile.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is a command started in the background.
type running struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	done           chan struct{}
	began          time.Time
	took           time.Duration
}

func startCommand(t *testing.T, bin string, args ...string) *running {
	t.Helper()
	r := &running{cmd: exec.Command(bin, args...), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, r.stderr
	r.began = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = r.cmd.Wait()
		r.took = time.Since(r.began)
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// end waits for the command to end, at most timeout, and returns its exit
// status.
func (r *running) end(t *testing.T, timeout time.Duration, what string) int {
	t.Helper()
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v; stdout %q stderr %q", what, timeout, r.stdout.String(), r.stderr.String())
		return -1
	}
}

// slowTransfer submits a transfer that runs far longer than the test: 1 MiB
// at 1 KiB/s; it waits until it runs and has written its first bytes.
func slowTransfer(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	xferRandomFile(t, c, "in/slow.bin", xferMiB, 11)
	id := xferCreate(t, c, "--bwlimit", "1K", "in/slow.bin", "out/slow.bin")
	xferMidway(t, c, id, 1)
	return id
}

// resumedElsewhere waits until the transfer runs on after a failover: one
// failover counted, still running, and copying on the new active.
func resumedElsewhere(t *testing.T, c *harness.Cluster, id string) transfer.View {
	t.Helper()
	return xferWait(t, c, 20*time.Second, id, "resumed by the new active", func(v transfer.View) bool {
		return v.Failovers == 1 && v.State == transfer.StateRunning
	})
}

// waitStopping waits until the active says it is stopping.
func waitStopping(t *testing.T, c *harness.Cluster, active string) {
	t.Helper()
	wait(t, c, 10*time.Second, active+" STOPPING", func(v ha.AgentView) bool {
		return v.Active == active && instance(v, active).Status == ha.StatusStopping
	})
}

// A normal ftstop waiting for a transfer that would take 17 minutes says
// what it waits for, and ftstop -i hands over at once: both return, the
// transfer resumes on the new active.
func TestStopWaitingForATransferIsHurriedByImmediate(t *testing.T) {
	c, active := xferCluster(t)
	id := slowTransfer(t, c)

	normal := startCommand(t, c.Bin.Ftstop, "--config", c.Props)
	waitStopping(t, c, active)
	// Within a few seconds it says which transfer it waits for, how far.
	if !waitUntil(10*time.Second, func() bool { return strings.Contains(normal.stderr.String(), id) }) {
		t.Fatalf("a waiting ftstop said nothing of transfer %s in 10s: stderr %q", id, normal.stderr.String())
	}
	line := strings.Split(strings.TrimSpace(normal.stderr.String()), "\n")[0]
	t.Logf("ftstop's progress line: %s", line)
	for _, want := range []string{"1 running transfer", active, "ftstop -i", "KiB of 1.0 MiB"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q does not say %q", line, want)
		}
	}
	select {
	case <-normal.done:
		t.Fatalf("ftstop returned while the transfer runs: stdout %q stderr %q", normal.stdout.String(), normal.stderr.String())
	default:
	}

	immediate := startCommand(t, c.Bin.Ftstop, "--config", c.Props, "-i")
	if code := immediate.end(t, 20*time.Second, "ftstop -i during a normal stop"); code != 0 {
		t.Fatalf("ftstop -i: exit %d, stdout %q stderr %q", code, immediate.stdout.String(), immediate.stderr.String())
	}
	t.Logf("ftstop -i took %v", immediate.took.Round(time.Millisecond))
	if code := normal.end(t, 10*time.Second, "the normal ftstop"); code != 0 {
		t.Fatalf("normal ftstop: exit %d, stdout %q stderr %q", code, normal.stdout.String(), normal.stderr.String())
	}
	for _, r := range []*running{normal, immediate} {
		if !strings.Contains(r.stdout.String(), active+" stopped; ") || !strings.Contains(r.stdout.String(), " is now active (epoch ") {
			t.Errorf("ftstop printed %q", r.stdout.String())
		}
	}
	if err := c.Proc(active).Err(); err != nil {
		t.Errorf("%s exited with %v", active, err)
	}
	v := resumedElsewhere(t, c, id)
	t.Logf("resumed: %s", harness.ViewText(v))
}

// A second SIGTERM to an instance that drains hands over at once, and the
// process exits cleanly.
func TestStopSecondSignalHandsOverAtOnce(t *testing.T) {
	c, active := xferCluster(t)
	id := slowTransfer(t, c)

	if err := c.Signal(active, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitStopping(t, c, active)
	select {
	case <-c.Proc(active).Done():
		t.Fatalf("%s exited on the first SIGTERM while a transfer runs", active)
	default:
	}
	began := time.Now()
	if err := c.Signal(active, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Proc(active).Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s still running 20s after a second SIGTERM", active)
	}
	t.Logf("exited %v after the second SIGTERM", time.Since(began).Round(time.Millisecond))
	if err := c.Proc(active).Err(); err != nil {
		t.Errorf("%s exited with %v", active, err)
	}
	xferNewActive(t, c, active)
	resumedElsewhere(t, c, id)
}

// With drainTimeout=2, a normal stop hands over after 2 seconds; the
// transfer resumes from its checkpoint on the new active and completes.
func TestStopDrainTimeoutHandsOver(t *testing.T) {
	c, active := xferCluster(t, "drainTimeout=2")
	// 8 KiB at 2 KiB/s: two chunks of 4 KiB, about 4 s.
	sum := xferRandomFile(t, c, "in/eight.bin", 8<<10, 12)
	id := xferCreate(t, c, "--bwlimit", "2K", "in/eight.bin", "out/eight.bin")
	xferWait(t, c, 10*time.Second, id, "running", func(v transfer.View) bool { return v.State == transfer.StateRunning })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	r, err := c.Ftstop(ctx)
	took := time.Since(began)
	if err != nil || r.Exit != 0 {
		t.Fatalf("ftstop: exit %d %v: %s %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	t.Logf("ftstop took %v: %s", took.Round(time.Millisecond), strings.TrimSpace(r.Stdout))
	if took < 2*time.Second || took > 15*time.Second {
		t.Errorf("ftstop took %v; want the 2 s drainTimeout and then the hand-over", took)
	}
	if !strings.Contains(r.Stdout, active+" stopped; ") {
		t.Errorf("ftstop printed %q", r.Stdout)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel2()
	w, err := c.Transfer(ctx2, "wait", id)
	if err != nil || w.Exit != 0 {
		t.Fatalf("transfer wait: exit %d %v: %s %s", w.Exit, err, w.Stdout, w.Stderr)
	}
	// One failover, said in the singular.
	if !strings.Contains(w.Stdout, "completed: 1 file, 8.0 KiB, 1 failover, ") {
		t.Errorf("transfer wait printed %q", w.Stdout)
	}
	v := xferEnded(t, c, 10*time.Second, id)
	if v.Failovers != 1 {
		t.Errorf("failovers %d, want 1", v.Failovers)
	}
	xferCheckCompleted(t, c, v, map[string]string{"out/eight.bin": sum})
}

// Stopping a standby, then another, would leave one of three voters: the
// second stop is refused with the numbers, unless --force. show then exits
// 3: no active.
func TestStopThatWouldLoseQuorumIsRefused(t *testing.T) {
	c := newCluster(t, harness.Options{})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	first, second := v.Standbys[0], v.Standbys[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if r, err := c.Ftstop(ctx, "--instance", first); err != nil || r.Exit != 0 {
		t.Fatalf("ftstop --instance %s: exit %d %v %s", first, r.Exit, err, r.Stderr)
	}
	<-c.Proc(first).Done()

	for _, args := range [][]string{{"--instance", second}, {}, {"-i"}} {
		r, err := c.Ftstop(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Exit != 1 || len(lines) != 1 || !strings.Contains(lines[0], "leave 1 of the 3 voting instances running") ||
			!strings.Contains(lines[0], "needs 2") || !strings.Contains(lines[0], "--force") {
			t.Fatalf("ftstop %v with %s stopped: exit %d, stderr %q; want one line refusing it, with the numbers", args, first, r.Exit, r.Stderr)
		}
	}
	after := wait(t, c, 10*time.Second, "the agent still active", func(x ha.AgentView) bool {
		return x.Status == ha.StatusActive && x.Active == v.Active
	})
	if after.Epoch != v.Epoch {
		t.Errorf("epoch moved from %d to %d by refused stops", v.Epoch, after.Epoch)
	}
	if _, r, err := c.Show(ctx); err != nil || r.Exit != 0 {
		t.Fatalf("show with an active: exit %d %v", r.Exit, err)
	}

	r, err := c.Ftstop(ctx, "--instance", second, "--force")
	if err != nil || r.Exit != 0 {
		t.Fatalf("ftstop --instance %s --force: exit %d %v %s", second, r.Exit, err, r.Stderr)
	}
	// The active steps down without a majority; show says so with status 3.
	if !waitUntil(10*time.Second, func() bool {
		r, err := harness.Run(ctx, c.Bin.Ftagent, "show", "--config", c.Props)
		return err == nil && r.Exit == 3 && strings.Contains(r.Stdout, "Active:  none") &&
			strings.Contains(r.Stderr, "no active instance")
	}) {
		r, _ := harness.Run(ctx, c.Bin.Ftagent, "show", "--config", c.Props)
		t.Fatalf("show without a majority: exit %d, stdout %q stderr %q; want exit 3", r.Exit, r.Stdout, r.Stderr)
	}
}

// A forced stop of the active with one standby left: the standby takes the
// lease, and loses it as soon as the old active has gone (one of three
// voters). ftstop must not report it as the new active.
func TestStopReportsOnlyALeaseThatHolds(t *testing.T) {
	c := newCluster(t, harness.Options{})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	gone := v.Standbys[0]
	if err := c.Kill(gone); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := c.Ftstop(ctx, "--force")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ftstop --force: exit %d, stdout %q, stderr %q", r.Exit, r.Stdout, r.Stderr)
	if r.Exit != 1 || strings.Contains(r.Stdout, "is now active") || !strings.Contains(r.Stderr, "took the lease at epoch") || !strings.Contains(r.Stderr, "but lost it") {
		t.Fatalf("ftstop --force reported exit %d, stdout %q, stderr %q; want exit 1 saying the new active lost the lease", r.Exit, r.Stdout, r.Stderr)
	}

	// With every instance up, a plain stop reports the new active only when
	// it answers for itself as ACTIVE at the new epoch.
	for _, n := range []string{gone, v.Active} {
		if _, err := c.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	v = wait(t, c, 30*time.Second, "one active and two standbys again", activeWithStandbys(2))
	r, err = c.Ftstop(ctx)
	if err != nil || r.Exit != 0 {
		t.Fatalf("ftstop: exit %d %v %s %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	var newActive string
	var epoch uint64
	if _, err := fmt.Sscanf(strings.TrimPrefix(strings.TrimSpace(r.Stdout), v.Active+" stopped; "), "%s is now active (epoch %d)", &newActive, &epoch); err != nil {
		t.Fatalf("ftstop printed %q: %v", r.Stdout, err)
	}
	st, err := c.InstanceStatus(ctx, newActive)
	if err != nil || st.Status != ha.StatusActive || st.Epoch != epoch || st.LeaseHolder != newActive {
		t.Fatalf("%s right after ftstop: %+v %v; want ACTIVE holding epoch %d", newActive, st, err, epoch)
	}
}

// A SIGTERM to an active whose normal ftstop waits hurries that stop: the
// instance hands over and ftstop reports it.
func TestStopWaitingForATransferIsHurriedBySignal(t *testing.T) {
	c, active := xferCluster(t)
	id := slowTransfer(t, c)
	normal := startCommand(t, c.Bin.Ftstop, "--config", c.Props)
	waitStopping(t, c, active)
	if err := c.Signal(active, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := normal.end(t, 20*time.Second, "ftstop after a SIGTERM to the instance"); code != 0 {
		t.Fatalf("ftstop: exit %d, stdout %q stderr %q", code, normal.stdout.String(), normal.stderr.String())
	}
	if err := c.Proc(active).Err(); err != nil {
		t.Errorf("%s exited with %v", active, err)
	}
	resumedElsewhere(t, c, id)
}
