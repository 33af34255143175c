// End-to-end tests of an instance cut off from the others: by default it
// keeps running, idle, and rejoins; with quorumLossAction=exit (IBM MQ MFT's
// "bindings mode") it exits with status 3 for a supervisor to restart it.
package test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/test/harness"
)

const bindingsTimeout = 4 * time.Second

func TestQuorumLossExitEndsWithStatus3(t *testing.T) {
	c := newCluster(t, harness.Options{Extra: []string{"quorumLossAction=exit", "quorumLossTimeout=4s"}})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))

	// An ordinary failover is shorter than the timeout: nobody exits.
	first := v.Active
	killed := time.Now()
	if err := c.Kill(first); err != nil {
		t.Fatal(err)
	}
	second := xferNewActive(t, c, first)
	survivors := others(c.Names, first)
	for time.Since(killed) < bindingsTimeout+time.Second {
		for _, n := range survivors {
			select {
			case <-c.Proc(n).Done():
				t.Fatalf("%s exited (%v) during an ordinary failover", n, c.Proc(n).Err())
			default:
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The last one, alone, exits once it has been without a leader for
	// longer than the timeout: status 3, one log line saying why.
	last := others(survivors, second)[0]
	if err := c.Kill(second); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	p := c.Proc(last)
	select {
	case <-p.Done():
	case <-time.After(bindingsTimeout + 5*time.Second):
		t.Fatalf("%s still runs %v after it lost the others", last, time.Since(lost))
	}
	took := time.Since(lost)
	t.Logf("%s exited %v after the last other instance died (quorumLossTimeout %v)", last, took.Round(time.Millisecond), bindingsTimeout)
	if took < bindingsTimeout {
		t.Errorf("%s exited after %v, before quorumLossTimeout (%v)", last, took, bindingsTimeout)
	}
	if code := p.ExitCode(); code != command.ExitQuorumLost {
		t.Errorf("%s exit status %d, want %d", last, code, command.ExitQuorumLost)
	}
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	var said []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "quorum lost") || strings.HasPrefix(line, "ftagent:") {
			said = append(said, line)
		}
	}
	if len(said) != 1 || !strings.Contains(said[0], `"level":"error"`) || !strings.Contains(said[0], "quorumLossAction=exit") {
		t.Errorf("want one error line saying the quorum was lost, got %q", said)
	}

	// The supervisor restarts it; with the others back, the agent is whole.
	for _, n := range c.Names {
		if _, err := c.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, c, 20*time.Second, "one active and two standbys after the restarts", activeWithStandbys(2))
}

func TestQuorumLossRetryKeepsRunningAndRejoins(t *testing.T) {
	c := newCluster(t, harness.Options{})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))

	// The active and a standby die: the one left has no majority.
	lone := v.Standbys[0]
	dead := others(c.Names, lone)
	for _, n := range dead {
		if err := c.Kill(n); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, c, 10*time.Second, lone+" without a leader", func(v ha.AgentView) bool {
		return v.Active == "" && instance(v, lone).Status == ha.StatusStarting
	})
	// Well past the default quorumLossTimeout's order of magnitude, it
	// still runs, and it does not spin.
	p := c.Proc(lone)
	before, err := harness.CPUTime(p.Cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	const window = 5 * time.Second
	select {
	case <-p.Done():
		t.Fatalf("%s exited (%v) without a quorum, with quorumLossAction=retry", lone, p.Err())
	case <-time.After(window): // measuring over a fixed window: nothing to wait for
	}
	after, err := harness.CPUTime(p.Cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	used := after - before
	t.Logf("CPU used by %s without a quorum over %v: %v (%.2f%% of a core)", lone, window, used, 100*used.Seconds()/window.Seconds())
	if used > window*3/100 {
		t.Errorf("%s used %v CPU in %v without a quorum", lone, used, window)
	}

	// The others come back: it rejoins without any action.
	for _, n := range dead {
		if _, err := c.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	v = wait(t, c, 20*time.Second, "one active and two standbys once the others are back", activeWithStandbys(2))
	if v.Active != lone && !slices.Contains(v.Standbys, lone) {
		t.Errorf("%s is neither active nor a standby: %+v", lone, v)
	}
}
