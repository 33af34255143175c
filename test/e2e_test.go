// End-to-end tests: real ftagent processes on loopback ports, driven through
// the real `ftagent show` and `ftstop` commands.
package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/test/harness"
)

const testVersion = "1.0.0-e2e"

var bin harness.Binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ftagent-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	bin, err = harness.Build(root, dir, testVersion)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newCluster writes a cluster's properties in a test directory and stops
// its processes at the end of the test (logs are printed on failure).
func newCluster(t *testing.T, opts harness.Options) *harness.Cluster {
	t.Helper()
	c, err := harness.New(bin, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.StopAll()
		if t.Failed() {
			for _, n := range c.Names {
				b, _ := os.ReadFile(filepath.Join(c.Dir, n+".log"))
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				t.Logf("--- last log lines of %s:\n%s", n, strings.Join(lines, "\n"))
			}
		}
	})
	return c
}

func startAll(t *testing.T, c *harness.Cluster) {
	t.Helper()
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
}

// activeWithStandbys is the condition "one active and n standbys reporting".
func activeWithStandbys(n int) func(ha.AgentView) bool {
	return func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && v.Active != "" && len(v.Standbys) == n
	}
}

func wait(t *testing.T, c *harness.Cluster, timeout time.Duration, what string, cond func(ha.AgentView) bool) ha.AgentView {
	t.Helper()
	v, err := c.WaitView(timeout, what, cond)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func others(names []string, not ...string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(not, n) {
			out = append(out, n)
		}
	}
	return out
}

func instance(v ha.AgentView, name string) ha.InstanceView {
	for _, iv := range v.Instances {
		if iv.Name == name {
			return iv
		}
	}
	return ha.InstanceView{}
}

func TestOneActiveTwoStandbys(t *testing.T) {
	c := newCluster(t, harness.Options{})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))

	if v.Agent != "ORDERS" || v.Epoch == 0 || v.ActiveAddress != c.Addr[v.Active] {
		t.Errorf("view %+v", v)
	}
	want := others(c.Names, v.Active)
	got := slices.Clone(v.Standbys)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("standbys %v, want %v", got, want)
	}
	for _, iv := range v.Instances {
		if iv.Version != testVersion {
			t.Errorf("%s reports version %q, want %q", iv.Name, iv.Version, testVersion)
		}
		switch {
		case iv.Name == v.Active:
			if iv.Role != ha.RoleActive || iv.Status != ha.StatusActive || iv.StatusAge != nil {
				t.Errorf("active shown as %+v", iv)
			}
		default:
			if iv.Role != ha.RoleStandby || iv.Status != ha.StatusReady || iv.StatusAge == nil || *iv.StatusAge < 0 {
				t.Errorf("standby shown as %+v", iv)
			}
		}
	}

	// Any instance answers, through -x, with the active's view; the human
	// form names the active and every instance.
	for _, n := range c.Names {
		r, err := c.Run(context.Background(), c.Bin.Ftagent, "show", "-x", c.Addr[n])
		if err != nil || r.Exit != 0 {
			t.Fatalf("show -x %s: exit %d %v %s", c.Addr[n], r.Exit, err, r.Stderr)
		}
		if !strings.Contains(r.Stdout, "Active:  "+v.Active) {
			t.Errorf("show via %s does not name the active %s:\n%s", n, v.Active, r.Stdout)
		}
		for _, m := range c.Names {
			if !strings.Contains(r.Stdout, m+" ") {
				t.Errorf("show via %s lacks instance %s:\n%s", n, m, r.Stdout)
			}
		}
	}

	// Only the active logged a lease gain.
	for _, n := range c.Names {
		b, _ := os.ReadFile(filepath.Join(c.Dir, n+".log"))
		gained := strings.Contains(string(b), "lease gained")
		if gained != (n == v.Active) {
			t.Errorf("%s logged lease gained: %v (active is %s)", n, gained, v.Active)
		}
	}
}

func TestKill9ActiveFailsOverAndRejoins(t *testing.T) {
	c := newCluster(t, harness.Options{})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	old, oldEpoch := v.Active, v.Epoch

	killedAt := time.Now()
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	v = wait(t, c, 20*time.Second, "a new active after kill -9", func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && v.Active != "" && v.Active != old
	})
	t.Logf("kill -9 of %s: %s active after %v", old, v.Active, time.Since(killedAt).Round(time.Millisecond))
	if v.Epoch <= oldEpoch {
		t.Fatalf("new active %s at epoch %d, not above %d", v.Active, v.Epoch, oldEpoch)
	}
	if slices.Contains(v.Standbys, old) {
		t.Fatalf("killed %s still listed as standby: %v", old, v.Standbys)
	}

	// The killed instance restarts with its state and rejoins as a standby.
	if _, err := c.Start(old); err != nil {
		t.Fatal(err)
	}
	newActive, newEpoch := v.Active, v.Epoch
	v = wait(t, c, 20*time.Second, old+" back as a standby", func(v ha.AgentView) bool {
		return slices.Contains(v.Standbys, old)
	})
	if v.Active != newActive || v.Epoch != newEpoch {
		t.Fatalf("restarting %s moved the lease: active %s epoch %d, was %s %d", old, v.Active, v.Epoch, newActive, newEpoch)
	}
	if iv := instance(v, old); iv.Role != ha.RoleStandby || iv.Status != ha.StatusReady {
		t.Fatalf("restarted %s shown as %+v", old, iv)
	}
}

func TestFtstopImmediateHandsOver(t *testing.T) {
	c := newCluster(t, harness.Options{})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	old, oldEpoch := v.Active, v.Epoch

	r, err := c.Ftstop(context.Background(), "-i")
	if err != nil || r.Exit != 0 {
		t.Fatalf("ftstop -i: exit %d %v: %s %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	// ftstop returns once the new active holds the lease: no waiting here.
	v2, res, err := c.Show(context.Background())
	if err != nil || res.Exit != 0 {
		t.Fatalf("show after ftstop: %v %s", err, res.Stderr)
	}
	if v2.Status != ha.StatusActive || v2.Active == old || v2.Epoch <= oldEpoch {
		t.Fatalf("after ftstop -i: %+v (old %s epoch %d)", v2, old, oldEpoch)
	}
	if !strings.Contains(r.Stdout, v2.Active+" is now active") {
		t.Errorf("ftstop output %q does not name the new active %s", r.Stdout, v2.Active)
	}
	// The stopped instance's process exited cleanly.
	select {
	case <-c.Proc(old).Done():
		if err := c.Proc(old).Err(); err != nil {
			t.Errorf("stopped instance %s exited with %v", old, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("stopped instance %s still running", old)
	}
	if slices.Contains(v2.Standbys, old) {
		t.Errorf("stopped %s still listed as a standby", old)
	}
}

func TestFtstopNormalStandbyAndJSON(t *testing.T) {
	c := newCluster(t, harness.Options{})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))

	// Stopping a standby just stops it; the lease stays.
	standby := v.Standbys[0]
	r, err := c.Ftstop(context.Background(), "--instance", standby, "--json")
	if err != nil || r.Exit != 0 {
		t.Fatalf("ftstop --instance %s: exit %d %v %s", standby, r.Exit, err, r.Stderr)
	}
	if !strings.Contains(r.Stdout, `"instance":"`+standby+`"`) || !strings.Contains(r.Stdout, `"wasActive":false`) {
		t.Errorf("ftstop --json output %q", r.Stdout)
	}
	v2 := wait(t, c, 10*time.Second, standby+" gone from the standbys", func(x ha.AgentView) bool {
		return !slices.Contains(x.Standbys, standby)
	})
	if v2.Active != v.Active || v2.Epoch != v.Epoch {
		t.Fatalf("stopping standby %s moved the lease: %+v", standby, v2)
	}

	// Stopping the active now would leave one of three voters: refused.
	r, err = c.Ftstop(context.Background())
	if err != nil || r.Exit != 1 || !strings.Contains(r.Stderr, "refused") {
		t.Fatalf("ftstop with one standby left: exit %d %v %s; want it refused", r.Exit, err, r.Stderr)
	}
	// With the standby back, a normal stop of the active hands the lease
	// to a standby.
	if _, err := c.Start(standby); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 20*time.Second, standby+" back as a standby", activeWithStandbys(2))
	r, err = c.Ftstop(context.Background())
	if err != nil || r.Exit != 0 {
		t.Fatalf("ftstop: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	v3 := wait(t, c, 10*time.Second, "a new active", func(x ha.AgentView) bool {
		return x.Status == ha.StatusActive && x.Active != v.Active
	})
	if !strings.Contains(r.Stdout, v3.Active+" is now active") {
		t.Fatalf("ftstop output %q; want %s to be active", r.Stdout, v3.Active)
	}
}

func TestStandbyFrozenIsDiscardedAndReturns(t *testing.T) {
	c := newCluster(t, harness.Options{Extra: []string{
		"standbyStatusPublishInterval=1",
		"standbyStatusDiscardTime=3",
	}})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	frozen := v.Standbys[0]

	if err := c.Signal(frozen, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	v = wait(t, c, 15*time.Second, frozen+" discarded", func(v ha.AgentView) bool {
		return !slices.Contains(v.Standbys, frozen)
	})
	gone := time.Since(stoppedAt)
	// Its last status was at most one publish interval old when it froze, so
	// the discard cannot come before discard time minus that interval.
	if gone < 2*time.Second {
		t.Fatalf("%s discarded after %v, before the 3s discard time", frozen, gone)
	}
	// Nor much after: discard time + one publish interval, plus the polling
	// (a show may spend the 2s request timeout on the frozen instance).
	if gone > 9*time.Second {
		t.Fatalf("%s discarded only after %v", frozen, gone)
	}
	if iv := instance(v, frozen); iv.Role != ha.RoleUnknown || iv.StatusAge != nil {
		t.Errorf("discarded %s shown as %+v", frozen, iv)
	}
	if v.Status != ha.StatusActive {
		t.Errorf("agent status %s while a standby is frozen", v.Status)
	}
	t.Logf("frozen standby left the standbys after %v", gone.Round(time.Millisecond))

	if err := c.Signal(frozen, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 10*time.Second, frozen+" back after SIGCONT", func(v ha.AgentView) bool {
		return slices.Contains(v.Standbys, frozen)
	})
	b, _ := os.ReadFile(filepath.Join(c.Dir, v.Active+".log"))
	if n := strings.Count(string(b), "standby discarded"); n != 1 {
		t.Errorf("active logged %d discards, want exactly 1", n)
	}
}

func TestWitnessSurvivesLossOfEitherDataInstance(t *testing.T) {
	c := newCluster(t, harness.Options{Names: []string{"d1", "d2", "w"}, Witnesses: []string{"w"}})
	startAll(t, c)
	noWitness := func(v ha.AgentView) {
		t.Helper()
		if v.Active == "w" {
			t.Fatalf("the witness is active: %+v", v)
		}
		if iv := instance(v, "w"); iv.Role != ha.RoleWitness {
			t.Fatalf("witness shown with role %q", iv.Role)
		}
		if slices.Contains(v.Standbys, "w") {
			t.Fatalf("witness listed as a standby")
		}
	}
	v := wait(t, c, 20*time.Second, "a data instance active with the other as standby", activeWithStandbys(1))
	noWitness(v)

	for round := 0; round < 2; round++ {
		lost := v.Active
		epoch := v.Epoch
		if err := c.Kill(lost); err != nil {
			t.Fatal(err)
		}
		survivor := others([]string{"d1", "d2"}, lost)[0]
		v = wait(t, c, 20*time.Second, survivor+" active after losing "+lost, func(v ha.AgentView) bool {
			return v.Status == ha.StatusActive && v.Active == survivor && v.Epoch > epoch
		})
		noWitness(v)
		if _, err := c.Start(lost); err != nil {
			t.Fatal(err)
		}
		v = wait(t, c, 20*time.Second, lost+" back as a standby", activeWithStandbys(1))
		noWitness(v)
	}
	b, _ := os.ReadFile(filepath.Join(c.Dir, "w.log"))
	if strings.Contains(string(b), "lease gained") {
		t.Fatalf("the witness gained the lease at some point")
	}
}

func TestLastDataInstanceStopSaysSo(t *testing.T) {
	c := newCluster(t, harness.Options{Names: []string{"d1", "d2", "w"}, Witnesses: []string{"w"}})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "a data instance active", activeWithStandbys(1))
	standby := v.Standbys[0]
	if r, err := c.Ftstop(context.Background(), "--instance", standby); err != nil || r.Exit != 0 {
		t.Fatalf("ftstop --instance %s: exit %d %v %s", standby, r.Exit, err, r.Stderr)
	}
	// Only the witness would be left of three voters: refused, unless forced.
	r, err := c.Ftstop(context.Background(), "-i")
	if err != nil || r.Exit != 1 || !strings.Contains(r.Stderr, "leave 1 of the 3 voting instances running") {
		t.Fatalf("ftstop -i of the last data instance: exit %d %v %s; want it refused", r.Exit, err, r.Stderr)
	}
	r, err = c.Ftstop(context.Background(), "-i", "--force")
	if err != nil || r.Exit != 0 {
		t.Fatalf("ftstop -i --force of the last data instance: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "last data instance") {
		t.Fatalf("ftstop output %q does not say it stopped the last data instance", r.Stdout)
	}
	select {
	case <-c.Proc(v.Active).Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("last data instance %s still running", v.Active)
	}
}

func TestIdleWhileOthersAreDown(t *testing.T) {
	c := newCluster(t, harness.Options{})
	p, err := c.Start("ha1")
	if err != nil {
		t.Fatal(err)
	}
	// It answers, says it has no active, and waits.
	v := wait(t, c, 10*time.Second, "ha1 answering", func(v ha.AgentView) bool {
		return instance(v, "ha1").Status == ha.StatusStarting
	})
	if v.Active != "" {
		t.Fatalf("an instance alone became active: %+v", v)
	}
	pid := p.Cmd.Process.Pid
	before, err := harness.CPUTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	const window = 5 * time.Second
	time.Sleep(window) // measuring CPU use over a fixed window: nothing to wait for
	after, err := harness.CPUTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	used := after - before
	t.Logf("CPU used by a lone instance over %v: %v (%.2f%% of a core)", window, used, 100*used.Seconds()/window.Seconds())
	// Near zero: well under 3% of one core (a spinning reconnect loop uses 100%).
	if used > window*3/100 {
		t.Fatalf("lone instance used %v CPU in %v", used, window)
	}
	// The others come up: it joins the group and one instance becomes active.
	for _, n := range []string{"ha2", "ha3"} {
		if _, err := c.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, c, 30*time.Second, "an active once the others are up", activeWithStandbys(2))
}

func TestShowWhenNothingAnswers(t *testing.T) {
	c := newCluster(t, harness.Options{})
	r, err := harness.Run(context.Background(), c.Bin.Ftagent, "show", "--config", c.Props, "--connect-attempts", "1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Exit != 1 {
		t.Fatalf("show with no instance running: exit %d, want 1", r.Exit)
	}
	if !strings.Contains(r.Stdout, "UNREACHABLE") || !strings.Contains(r.Stdout, "ha2 ") {
		t.Errorf("show printed %q, want status UNREACHABLE and the instances named from --config", r.Stdout)
	}
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], c.Addr["ha1"]) || !strings.Contains(lines[0], c.Addr["ha3"]) {
		t.Errorf("error should be one line naming what was tried, got %q", r.Stderr)
	}
}

func TestWitnessFlagOnTheCommandLine(t *testing.T) {
	// No witnessInstances property: the third instance is a witness because
	// it is started with --witness.
	c := newCluster(t, harness.Options{Names: []string{"d1", "d2", "w"}})
	for _, n := range []string{"d1", "d2"} {
		if _, err := c.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Start("w", "--witness"); err != nil {
		t.Fatal(err)
	}
	v := wait(t, c, 20*time.Second, "a data instance active, the witness reporting", func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && len(v.Standbys) == 1 && instance(v, "w").Role == ha.RoleWitness
	})
	if v.Active == "w" || slices.Contains(v.Standbys, "w") {
		t.Fatalf("witness active or listed as standby: %+v", v)
	}
	lost := v.Active
	if err := c.Kill(lost); err != nil {
		t.Fatal(err)
	}
	survivor := others([]string{"d1", "d2"}, lost)[0]
	wait(t, c, 20*time.Second, survivor+" active after losing "+lost, func(v ha.AgentView) bool {
		return v.Status == ha.StatusActive && v.Active == survivor
	})
}
