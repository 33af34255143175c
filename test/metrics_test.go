package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/test/harness"
)

// scrape reads an instance's /metrics as the monitor client (the role
// that is enough for it) and parses the text format.
func scrape(t *testing.T, c *harness.Cluster, hc *http.Client, name string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := hc.Get("http://" + c.Addr[name] + api.PathMetrics)
	if err != nil {
		t.Fatalf("scrape %s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", name, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: the output does not parse: %v", name, err)
	}
	return fams
}

// metricValue is the value of the series of family name whose labels
// include labels (name=value pairs); ok is false if there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func mustMetric(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metricValue(fams, name, labels...)
	if !ok {
		t.Fatalf("no series %s %v", name, labels)
	}
	return v
}

// Every instance serves Prometheus metrics to the monitor role: scraped
// before and after transfers and a planned fail-over, the counters and
// gauges move as the agent did.
func TestMetricsFollowTransfersAndFailover(t *testing.T) {
	c := newCluster(t, harness.Options{Extra: []string{"checkpointInterval=1M"}})
	startAll(t, c)
	v := wait(t, c, 20*time.Second, "one active and two standbys", activeWithStandbys(2))
	hc, err := c.TLS.HTTPClient(harness.ClientMonitor, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	before := map[string]map[string]*dto.MetricFamily{}
	for _, n := range c.Names {
		fams := scrape(t, c, hc, n)
		before[n] = fams
		wantActive := 0.0
		if n == v.Active {
			wantActive = 1
		}
		if got := mustMetric(t, fams, "ftagent_active"); got != wantActive {
			t.Errorf("%s: ftagent_active %v, want %v", n, got, wantActive)
		}
		if got := mustMetric(t, fams, "ftagent_lease_epoch"); got != float64(v.Epoch) {
			t.Errorf("%s: ftagent_lease_epoch %v, want %d", n, got, v.Epoch)
		}
		if _, ok := metricValue(fams, "ftagent_build_info", "agent", "ORDERS", "name", n, "version", testVersion); !ok {
			t.Errorf("%s: no ftagent_build_info naming it", n)
		}
		wantRaft := "Follower"
		if n == v.Active {
			wantRaft = "Leader"
		}
		if got := mustMetric(t, fams, "ftagent_raft_state", "state", wantRaft); got != 1 {
			t.Errorf("%s: ftagent_raft_state{state=%q} = %v", n, wantRaft, got)
		}
	}
	// The active holds its standbys' statuses (they publish soon after the
	// election; the view above already listed them).
	if got := mustMetric(t, before[v.Active], "ftagent_standbys"); got != 2 {
		t.Errorf("active: ftagent_standbys %v, want 2", got)
	}

	// A 4 MiB file (checkpointed every MiB) and a tree of 20 files.
	var want int64
	xferRandomFile(t, c, "in/big.bin", 4<<20, 1)
	want += 4 << 20
	for i := range 20 {
		xferRandomFile(t, c, fmt.Sprintf("in/tree/f%02d", i), int64(1000+i), uint64(i+2))
		want += int64(1000 + i)
	}
	id1 := xferCreate(t, c, "--wait", "in/big.bin", "out/big.bin")
	id2 := xferCreate(t, c, "--wait", "--recursive", "in/tree/", "out/tree/")
	for _, id := range []string{id1, id2} {
		if got := xferEnded(t, c, 30*time.Second, id); got.State != "completed" {
			t.Fatalf("transfer %s: %s %s", id, got.State, got.Reason)
		}
	}
	after := scrape(t, c, hc, v.Active)
	diff := func(name string, labels ...string) float64 {
		b, _ := metricValue(before[v.Active], name, labels...)
		return mustMetric(t, after, name, labels...) - b
	}
	if got := diff("ftagent_files_transferred_total"); got != 21 {
		t.Errorf("ftagent_files_transferred_total grew by %v, want 21", got)
	}
	if got := diff("ftagent_transferred_bytes_total"); got != float64(want) {
		t.Errorf("ftagent_transferred_bytes_total grew by %v, want %d", got, want)
	}
	if got := diff("ftagent_checkpoint_commit_seconds"); got < 1 {
		t.Errorf("no checkpoint commit observed (count grew by %v)", got)
	}
	if got := diff("ftagent_raft_apply_seconds", "kind", "transfer.start"); got < 2 {
		t.Errorf("ftagent_raft_apply_seconds{kind=transfer.start} count grew by %v, want 2 or more", got)
	}
	// Every instance holds the replicated transfers once it has applied
	// what the active had applied when the transfers ended (a standby
	// learns of the last commit on the next heartbeat).
	applied := mustMetric(t, after, "ftagent_raft_applied_index")
	for _, n := range c.Names {
		fams := scrape(t, c, hc, n)
		for deadline := time.Now().Add(10 * time.Second); mustMetric(t, fams, "ftagent_raft_applied_index") < applied; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: applied index %v, never reached the active's %v", n, mustMetric(t, fams, "ftagent_raft_applied_index"), applied)
			}
			time.Sleep(20 * time.Millisecond)
			fams = scrape(t, c, hc, n)
		}
		if got := mustMetric(t, fams, "ftagent_transfers", "state", "completed"); got != 2 {
			t.Errorf("%s: ftagent_transfers{state=completed} %v, want 2", n, got)
		}
		if got := mustMetric(t, fams, "ftagent_transfers", "state", "queued"); got != 0 {
			t.Errorf("%s: ftagent_transfers{state=queued} %v, want 0", n, got)
		}
	}

	// A plaintext connection is refused and counted.
	refusedBefore := mustMetric(t, after, "ftagent_connections_refused_total", "reason", "plaintext")
	if conn, err := net.DialTimeout("tcp", c.Addr[v.Active], 2*time.Second); err == nil {
		_, _ = conn.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = conn.Read(make([]byte, 512))
		conn.Close()
	}
	if got := mustMetric(t, scrape(t, c, hc, v.Active), "ftagent_connections_refused_total", "reason", "plaintext") - refusedBefore; got != 1 {
		t.Errorf("ftagent_connections_refused_total{reason=plaintext} grew by %v, want 1", got)
	}

	// A planned fail-over: the new active says so.
	r, err := c.Ftstop(context.Background(), "-i")
	if err != nil || r.Exit != 0 {
		t.Fatalf("ftstop -i: exit %d %v: %s %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	v2, res, err := c.Show(context.Background())
	if err != nil || res.Exit != 0 || v2.Status != ha.StatusActive {
		t.Fatalf("show after ftstop: %v %s %+v", err, res.Stderr, v2)
	}
	fams := scrape(t, c, hc, v2.Active)
	if got := mustMetric(t, fams, "ftagent_active"); got != 1 {
		t.Errorf("new active %s: ftagent_active %v", v2.Active, got)
	}
	if got := mustMetric(t, fams, "ftagent_lease_epoch"); got != float64(v2.Epoch) || v2.Epoch <= v.Epoch {
		t.Errorf("new active %s: ftagent_lease_epoch %v, view says %d (was %d)", v2.Active, got, v2.Epoch, v.Epoch)
	}
	if got := diffFrom(before[v2.Active], fams, "ftagent_lease_acquisitions_total"); got != 1 {
		t.Errorf("new active %s: ftagent_lease_acquisitions_total grew by %v, want 1", v2.Active, got)
	}
	if got := mustMetric(t, fams, "ftagent_raft_state", "state", "Leader"); got != 1 {
		t.Errorf("new active %s is not the raft leader by its metrics", v2.Active)
	}
	// The survivor that stayed a standby follows the new leader.
	for _, n := range c.Names {
		if n == v.Active || n == v2.Active {
			continue
		}
		f := scrape(t, c, hc, n)
		if got := mustMetric(t, f, "ftagent_active"); got != 0 {
			t.Errorf("standby %s: ftagent_active %v", n, got)
		}
		if got := mustMetric(t, f, "ftagent_raft_last_contact_seconds"); got > 5 {
			t.Errorf("standby %s: last contact with the leader %vs ago", n, got)
		}
	}
}

func diffFrom(before, after map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	b, _ := metricValue(before, name, labels...)
	a, _ := metricValue(after, name, labels...)
	return a - b
}
