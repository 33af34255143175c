// Package metrics is an instance's Prometheus metrics, served at /metrics
// (role monitor). Every instance serves its own: a standby's say what it
// sees (its raft progress, the lease it knows, the replicated transfers),
// the active's also what it does (files and bytes moved, checkpoints,
// commits, its standbys). docs/monitoring.md lists them.
//
// What the agent's state already holds (instance status, raft progress,
// transfers by state) is read when scraped, through Probe; what happens
// (files completed, commits, refused connections) is counted as it
// happens, by the parts that see it, through the methods below.
package metrics

import (
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "ftagent"

// Sample is what a scrape reads from the instance.
type Sample struct {
	Active bool   // this instance is the active (it holds the lease)
	Epoch  uint64 // the lease epoch it knows
	// Raft: this instance's state (Leader, Follower, Candidate, Shutdown),
	// commit and applied indexes, and its last contact with the leader
	// (zero on the leader and before any contact).
	RaftState                 string
	CommitIndex, AppliedIndex uint64
	LastContact               time.Time
	// Standbys is the age of each standby's last status (the active only).
	Standbys map[string]time.Duration
	// Transfers is how many transfers the replicated state holds in each
	// state; Creating, how many are still being created.
	Transfers map[string]int
	Creating  int
	// InDoubt counts the files of transfers moved to an alternate group
	// that were in doubt at the group left and are not reconciled yet;
	// Duplicates, those found committed at both.
	InDoubt, Duplicates int
	// Refused counts the connections the listener refused, by reason
	// (netmux.RefusalReasons).
	Refused map[string]uint64
}

// Info names the instance in ftagent_build_info.
type Info struct{ Agent, Instance, Version string }

// TransferStates are the states ftagent_transfers always reports (0 when
// none), so that a dashboard's series exist from the start.
var TransferStates = []string{"queued", "running", "recovering", "completed", "failed", "cancelled"}

// RaftStates are the values of ftagent_raft_state's state label.
var RaftStates = []string{"Leader", "Follower", "Candidate", "Shutdown"}

// Metrics holds an instance's registry and the counters its parts update.
type Metrics struct {
	reg *prometheus.Registry

	files      prometheus.Counter
	bytes      prometheus.Counter
	resent     prometheus.Counter
	leases     prometheus.Counter
	switches   prometheus.Counter
	checkpoint prometheus.Histogram
	apply      *prometheus.HistogramVec
}

// New registers the instance's metrics; probe is called at each scrape.
func New(info Info, probe func() Sample) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.files = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "files_transferred_total",
		Help: "Files this instance completed as the active (their completion committed)."})
	m.bytes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "transferred_bytes_total",
		Help: "Bytes of the files this instance completed as the active."})
	m.resent = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "resent_bytes_total",
		Help: "Bytes copied again by this instance as the active: a resumed file's bytes beyond its last checkpoint, or a file restarted from zero."})
	m.leases = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "lease_acquisitions_total",
		Help: "Times this instance took the agent's lease and became the active (the first start of an agent, and each fail-over to it)."})
	m.switches = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "alternate_switches_total",
		Help: "Transfers this instance, as the active, moved to an alternate group of their destination agent (agent.NAME.alternates) because the group they were sent to was lost."})
	m.checkpoint = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "checkpoint_commit_seconds",
		Help:    "Time to record a checkpoint of a large file through raft, after the destination was made durable.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.apply = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "raft_apply_seconds",
		Help:    "Time from the active's submission of a raft entry to its commit and apply, by command kind.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"kind"})
	for _, c := range []prometheus.Collector{m.files, m.bytes, m.resent, m.leases, m.switches, m.checkpoint, m.apply} {
		f(c)
	}
	f(&sampler{info: info, probe: probe})
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Gatherer is the registry, for tests.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// FilesDone counts completed files, their bytes, and bytes resent.
func (m *Metrics) FilesDone(files int, bytes, resent int64) {
	m.files.Add(float64(files))
	m.bytes.Add(float64(bytes))
	m.resent.Add(float64(resent))
}

// Switched counts a transfer moved to an alternate group.
func (m *Metrics) Switched() { m.switches.Inc() }

// CheckpointRecorded observes a checkpoint's commit.
func (m *Metrics) CheckpointRecorded(took time.Duration) { m.checkpoint.Observe(took.Seconds()) }

// Applied observes a raft entry's commit, by kind.
func (m *Metrics) Applied(kind string, took time.Duration) {
	m.apply.WithLabelValues(kind).Observe(took.Seconds())
}

// LeaseAcquired counts this instance becoming the active.
func (m *Metrics) LeaseAcquired() { m.leases.Inc() }

// sampler reports what Probe reads, at each scrape.
type sampler struct {
	info  Info
	probe func() Sample
}

var (
	descInfo = prometheus.NewDesc(namespace+"_build_info", "The instance: its agent, its name (the instances entry; not the target label instance) and its build version (always 1).",
		[]string{"agent", "name", "version"}, nil)
	descActive = prometheus.NewDesc(namespace+"_active", "1 if this instance is the active (holds the agent's lease), else 0.", nil, nil)
	descEpoch  = prometheus.NewDesc(namespace+"_lease_epoch", "The lease epoch this instance knows; it grows by one at each change of active.", nil, nil)
	descRaft   = prometheus.NewDesc(namespace+"_raft_state", "This instance's raft state (1 for the current one).", []string{"state"}, nil)
	descCommit = prometheus.NewDesc(namespace+"_raft_commit_index", "The highest raft log index this instance knows to be committed.", nil, nil)
	descApply  = prometheus.NewDesc(namespace+"_raft_applied_index", "The highest raft log index this instance has applied.", nil, nil)
	descLast   = prometheus.NewDesc(namespace+"_raft_last_contact_seconds",
		"Seconds since this instance last heard from the raft leader (0 on the leader, and before any contact).", nil, nil)
	descStandbys = prometheus.NewDesc(namespace+"_standbys", "Standbys whose status the active holds (0 on a standby).", nil, nil)
	descAge      = prometheus.NewDesc(namespace+"_standby_status_age_seconds", "Age of each standby's last status (the active only).", []string{"standby"}, nil)
	descXfers    = prometheus.NewDesc(namespace+"_transfers",
		"Transfers the replicated state holds, by state (ended ones until history pruning removes them); queued is the queue's length.", []string{"state"}, nil)
	descCreating = prometheus.NewDesc(namespace+"_transfers_creating", "Transfers whose creation, in several raft entries, is under way.", nil, nil)
	descDoubt    = prometheus.NewDesc(namespace+"_files_in_doubt",
		"Files of transfers moved to an alternate group that were in doubt at the group left (sent, but their commit there not acknowledged) and are not reconciled yet.", nil, nil)
	descDup = prometheus.NewDesc(namespace+"_files_duplicate",
		"Files of transfers moved to an alternate group that reconciliation found committed at both groups (kept until the transfer leaves the history).", nil, nil)
	descRefused = prometheus.NewDesc(namespace+"_connections_refused_total",
		"Connections refused before they reached raft or the API, by reason: tls_handshake (a failed or refused handshake: no certificate, another CA, expired), plaintext (TLS is required), raft_identity (raft from a certificate that is not an instance of this agent), peer_limit (too many connections from one address).",
		[]string{"reason"}, nil)
)

func (s *sampler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descActive, descEpoch, descRaft, descCommit, descApply, descLast, descStandbys, descAge, descXfers, descCreating, descDoubt, descDup, descRefused} {
		ch <- d
	}
}

func (s *sampler) Collect(ch chan<- prometheus.Metric) {
	smp := s.probe()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descInfo, 1, s.info.Agent, s.info.Instance, s.info.Version)
	gauge(descActive, b2f(smp.Active))
	gauge(descEpoch, float64(smp.Epoch))
	for _, st := range RaftStates {
		gauge(descRaft, b2f(st == smp.RaftState), st)
	}
	gauge(descCommit, float64(smp.CommitIndex))
	gauge(descApply, float64(smp.AppliedIndex))
	last := 0.0
	if smp.RaftState != "Leader" && !smp.LastContact.IsZero() {
		last = time.Since(smp.LastContact).Seconds()
	}
	gauge(descLast, last)
	gauge(descStandbys, float64(len(smp.Standbys)))
	names := make([]string, 0, len(smp.Standbys))
	for n := range smp.Standbys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		gauge(descAge, smp.Standbys[n].Seconds(), n)
	}
	seen := map[string]bool{}
	for _, st := range TransferStates {
		seen[st] = true
		gauge(descXfers, float64(smp.Transfers[st]), st)
	}
	for st, n := range smp.Transfers {
		if !seen[st] && st != "" {
			gauge(descXfers, float64(n), st)
		}
	}
	gauge(descCreating, float64(smp.Creating))
	gauge(descDoubt, float64(smp.InDoubt))
	gauge(descDup, float64(smp.Duplicates))
	reasons := make([]string, 0, len(smp.Refused))
	for r := range smp.Refused {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(smp.Refused[r]), r)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
