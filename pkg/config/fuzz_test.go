package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary properties files to Parse (Load's parser): it
// must never panic, every refusal must be an *Error naming the file, and
// every accepted configuration must have the invariants Load documents and
// checks (the relations between the raft timeouts, the minimums, the
// absolute paths, the enumerated values). Parsing is also deterministic.
func FuzzParse(f *testing.F) {
	base := "agentName = ORDERS\ninstances = ha1@host1:7101,ha2@host2:7101,ha3@host3:7101\ndataDirectory = data\n"
	f.Add([]byte(base))
	f.Add([]byte(base + "raftHeartbeatTimeout = 1s\nraftElectionTimeout = 2s\nraftLeaderLeaseTimeout = 500ms\nraftCommitTimeout = 10ms\n"))
	f.Add([]byte(base + "quorumLossAction = exit\nquorumLossTimeout = 5\n"))
	f.Add([]byte(base + "witnessInstances = ha3\nhighlyAvailable = true\ninstanceName = ha1\n"))
	f.Add([]byte(base + "transferRoot = /srv/ft\nsandboxRoot = in:out,!in/secret\ncheckpointInterval = 1MiB\nmaxBandwidth = 10M\n"))
	f.Add([]byte(base + "transferRecoveryTimeout = -1\ntransferHistoryCount = 0\ntransferHistoryAge = 1h\nlogLevel = DEBUG\nauditLog = audit.log\n"))
	f.Add([]byte(base + "maxQueuedTransfers = 18446744073709551615\nraftSnapshotThreshold = 1\n"))
	f.Add([]byte("agentName = A\ninstances = a@[::1]:1, b@127.0.0.1:2\ndataDirectory = /d\nstandbyStatusDiscardTime = ${x}\n"))
	f.Add([]byte(base + "raftHeartbeatTimeout = 2562047h\nraftElectionTimeout = 2562047h\nquorumLossAction = exit\nquorumLossTimeout = 1s\n"))
	f.Add([]byte("agentName = A\\u00e9\ninstances = a@h:1\n"))
	f.Add([]byte("# comment\n! another\nkey\\ with\\ spaces = v\\\n  continued\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "/etc/ftagent/agent.properties"
		c, err := Parse(data, path)
		c2, err2 := Parse(data, path)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("Parse is not deterministic: %v, then %v", err, err2)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if e.File != path {
				t.Fatalf("error %v names file %q, not %q", err, e.File, path)
			}
			if c != nil {
				t.Fatalf("a refused file gave a configuration: %+v", c)
			}
			return
		}
		_ = c2
		checkInvariants(t, c)
	})
}

func checkInvariants(t *testing.T, c *Config) {
	t.Helper()
	if c.Path != "/etc/ftagent/agent.properties" || c.Dir != "/etc/ftagent" {
		t.Fatalf("Path %q, Dir %q", c.Path, c.Dir)
	}
	if c.AgentName == "" || len(c.AgentName) > maxAgentName || !nameRE.MatchString(c.AgentName) {
		t.Fatalf("agent name %q accepted", c.AgentName)
	}
	if len(c.Instances) == 0 {
		t.Fatal("no instances accepted")
	}
	names := map[string]bool{}
	for _, in := range c.Instances {
		if !validName(in.Name) || in.Address == "" {
			t.Fatalf("instance %+v accepted", in)
		}
		if names[strings.ToLower(in.Name)] {
			t.Fatalf("instance %q listed twice", in.Name)
		}
		names[strings.ToLower(in.Name)] = true
	}
	for _, p := range []string{c.DataDirectory, c.TransferRoot} {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			t.Fatalf("path %q is not absolute and clean", p)
		}
	}
	if c.AuditLog != "" && (!filepath.IsAbs(c.AuditLog) || filepath.Clean(c.AuditLog) != c.AuditLog) {
		t.Fatalf("audit log %q is not absolute and clean", c.AuditLog)
	}
	positive := map[string]time.Duration{
		KeyStandbyStatusPublishInterval: c.StandbyStatusPublishInterval,
		KeyStandbyStatusDiscardTime:     c.StandbyStatusDiscardTime,
		KeyConnectionRetryMaxInterval:   c.ConnectionRetryMaxInterval,
		KeyQuorumLossTimeout:            c.QuorumLossTimeout,
		KeyDrainTimeout:                 c.DrainTimeout,
		KeyClientRequestTimeout:         c.ClientRequestTimeout,
		KeyCheckpointTimeInterval:       c.CheckpointTime,
		KeyTransferHistoryAge:           c.TransferHistoryAge,
		KeyRaftHeartbeatTimeout:         c.RaftHeartbeatTimeout - 5*time.Millisecond + 1,
		KeyRaftElectionTimeout:          c.RaftElectionTimeout - 5*time.Millisecond + 1,
		KeyRaftLeaderLeaseTimeout:       c.RaftLeaderLeaseTimeout - 5*time.Millisecond + 1,
		KeyRaftCommitTimeout:            c.RaftCommitTimeout - time.Millisecond + 1,
		KeyRaftSnapshotInterval:         c.RaftSnapshotInterval - 5*time.Millisecond + 1,
	}
	for k, d := range positive {
		if d <= 0 {
			t.Fatalf("%s below its minimum accepted: %+v", k, c)
		}
	}
	for k, d := range map[string]time.Duration{KeyClientConnectDelay: c.ClientConnectDelay, KeyClientReconnectDelay: c.ClientReconnectDelay, KeyClientPrimaryRetryDelay: c.ClientPrimaryRetryDelay} {
		if d < 0 {
			t.Fatalf("%s negative accepted: %v", k, d)
		}
	}
	if c.RaftElectionTimeout < c.RaftHeartbeatTimeout {
		t.Fatalf("election timeout %v < heartbeat %v accepted", c.RaftElectionTimeout, c.RaftHeartbeatTimeout)
	}
	if c.RaftLeaderLeaseTimeout > c.RaftHeartbeatTimeout || c.RaftCommitTimeout > c.RaftHeartbeatTimeout {
		t.Fatalf("leader lease %v or commit %v above heartbeat %v accepted", c.RaftLeaderLeaseTimeout, c.RaftCommitTimeout, c.RaftHeartbeatTimeout)
	}
	if c.StandbyStatusDiscardTime <= c.StandbyStatusPublishInterval {
		t.Fatalf("discard time %v not above publish interval %v", c.StandbyStatusDiscardTime, c.StandbyStatusPublishInterval)
	}
	switch c.QuorumLossAction {
	case QuorumLossRetry:
	case QuorumLossExit:
		// 2 × (heartbeat + election), computed so that it cannot overflow.
		half := c.QuorumLossTimeout / 2
		if half < c.RaftHeartbeatTimeout || half-c.RaftHeartbeatTimeout < c.RaftElectionTimeout {
			t.Fatalf("quorum loss timeout %v below 2 × (%v + %v) accepted", c.QuorumLossTimeout, c.RaftHeartbeatTimeout, c.RaftElectionTimeout)
		}
	default:
		t.Fatalf("quorumLossAction %q accepted", c.QuorumLossAction)
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error":
	default:
		t.Fatalf("log level %q accepted", c.LogLevel)
	}
	if c.CheckpointBytes < minCheckpointBytes {
		t.Fatalf("checkpoint interval %d accepted", c.CheckpointBytes)
	}
	if c.MaxBandwidth < 0 || c.RaftSnapshotThreshold < 1 {
		t.Fatalf("max bandwidth %d, snapshot threshold %d accepted", c.MaxBandwidth, c.RaftSnapshotThreshold)
	}
	for _, n := range []int{c.MaxSourceTransfers, c.MaxDestinationTransfers, c.MaxQueuedTransfers, c.MaxFilesPerTransfer, c.TransferHistoryCount} {
		if n < 0 {
			t.Fatalf("negative count accepted: %+v", c)
		}
	}
}
