package agent

import (
	"time"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/metrics"
	"github.com/ftagent/ftagent/pkg/netmux"
	"github.com/ftagent/ftagent/pkg/transfer"
)

// sample is what a scrape of /metrics reads from the instance.
func sample(node *ha.Node, state *transfer.State, mux *netmux.Mux) metrics.Sample {
	var s metrics.Sample
	s.Transfers, s.Creating = state.Counts()
	s.InDoubt, s.Duplicates = state.DoubtCounts()
	s.Refused = mux.Refusals()
	if node == nil {
		s.RaftState = "Shutdown"
		return s
	}
	s.Active = node.IsActive()
	s.Epoch = node.Lease().Epoch
	rs := node.RaftStats()
	s.RaftState, s.CommitIndex, s.AppliedIndex, s.LastContact = rs.State, rs.CommitIndex, rs.AppliedIndex, rs.LastContact
	if s.Active {
		if v, err := node.View(); err == nil {
			s.Standbys = map[string]time.Duration{}
			for _, in := range v.Instances {
				if in.Name != v.Active && in.StatusAge != nil {
					s.Standbys[in.Name] = time.Duration(*in.StatusAge * float64(time.Second))
				}
			}
		}
	}
	return s
}

// timedLog is the transfer manager's raft log, timing each entry's
// commit for the metrics.
type timedLog struct {
	transfer.Log
	m *metrics.Metrics
}

func (t timedLog) Apply(kind string, epoch uint64, data any, timeout time.Duration) (any, error) {
	start := time.Now()
	res, err := t.Log.Apply(kind, epoch, data, timeout)
	if err == nil {
		t.m.Applied(kind, time.Since(start))
	}
	return res, err
}
