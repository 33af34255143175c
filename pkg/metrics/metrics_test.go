package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestMetricsTextFormat(t *testing.T) {
	smp := Sample{Active: true, Epoch: 7, RaftState: "Leader", CommitIndex: 42, AppliedIndex: 41,
		Standbys:  map[string]time.Duration{"ha2": 1500 * time.Millisecond, "ha3": 2 * time.Second},
		Transfers: map[string]int{"running": 2, "completed": 5}, Creating: 1,
		Refused: map[string]uint64{"plaintext": 3, "tls_handshake": 0}}
	m := New(Info{Agent: "ORDERS", Instance: "ha1", Version: "1.2.3"}, func() Sample { return smp })
	m.FilesDone(3, 3000, 100)
	m.FilesDone(1, 24, 0)
	m.CheckpointRecorded(3 * time.Millisecond)
	m.Applied("transfer.start", time.Millisecond)
	m.LeaseAcquired()

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("the output does not parse: %v\n%s", err, rec.Body.String())
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no family %s", name)
		}
	next:
		for _, mt := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, lp := range mt.GetLabel() {
					ok = ok || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !ok {
					continue next
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			case mt.Histogram != nil:
				return float64(mt.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no series %s %v", name, labels)
		return 0
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ftagent_build_info", []string{"agent", "ORDERS", "name", "ha1", "version", "1.2.3"}, 1},
		{"ftagent_active", nil, 1},
		{"ftagent_lease_epoch", nil, 7},
		{"ftagent_raft_state", []string{"state", "Leader"}, 1},
		{"ftagent_raft_state", []string{"state", "Follower"}, 0},
		{"ftagent_raft_commit_index", nil, 42},
		{"ftagent_raft_applied_index", nil, 41},
		{"ftagent_raft_last_contact_seconds", nil, 0},
		{"ftagent_standbys", nil, 2},
		{"ftagent_standby_status_age_seconds", []string{"standby", "ha2"}, 1.5},
		{"ftagent_transfers", []string{"state", "running"}, 2},
		{"ftagent_transfers", []string{"state", "queued"}, 0},
		{"ftagent_transfers", []string{"state", "completed"}, 5},
		{"ftagent_transfers_creating", nil, 1},
		{"ftagent_files_transferred_total", nil, 4},
		{"ftagent_transferred_bytes_total", nil, 3024},
		{"ftagent_resent_bytes_total", nil, 100},
		{"ftagent_checkpoint_commit_seconds", nil, 1},
		{"ftagent_raft_apply_seconds", []string{"kind", "transfer.start"}, 1},
		{"ftagent_lease_acquisitions_total", nil, 1},
		{"ftagent_connections_refused_total", []string{"reason", "plaintext"}, 3},
	} {
		if got := value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if fams["process_resident_memory_bytes"] == nil || fams["go_goroutines"] == nil {
		t.Error("the process and Go collectors are missing")
	}
}
