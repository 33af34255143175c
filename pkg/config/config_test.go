package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// unset removes a base key in props.
const unset = "\x00unset"

// baseKeys is the minimal valid file, in order.
var baseKeys = []string{"agentName", "instances", "dataDirectory"}

var baseValues = map[string]string{
	"agentName":     "ORDERS",
	"instances":     "ha1@127.0.0.1:7101, ha2@127.0.0.1:7102 ,ha3@127.0.0.1:7103",
	"dataDirectory": "data",
}

// props renders the minimal file with some keys replaced, removed (unset)
// or added (in sorted order after the base keys).
func props(over map[string]string) string {
	var b strings.Builder
	b.WriteString("# test file\n")
	for _, k := range baseKeys {
		v := baseValues[k]
		if o, ok := over[k]; ok {
			v = o
		}
		if v == unset {
			continue
		}
		b.WriteString(k + "=" + v + "\n")
	}
	var extra []string
	for k := range over {
		if _, base := baseValues[k]; !base {
			extra = append(extra, k)
		}
	}
	sortStrings(extra)
	for _, k := range extra {
		b.WriteString(k + "=" + over[k] + "\n")
	}
	return b.String()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// write creates dir/agent.properties with content and returns its path.
func write(t *testing.T, dir, content string) string {
	t.Helper()
	p := filepath.Join(dir, "agent.properties")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, content string) *Config {
	t.Helper()
	c, err := Load(write(t, t.TempDir(), content))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// asError asserts err is a *Error and returns it.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got nil")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	return e
}

func TestLoadMinimalDefaults(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, props(nil))
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	wantDir, _ := filepath.Abs(dir)
	if c.Path != filepath.Join(wantDir, "agent.properties") || c.Dir != wantDir {
		t.Errorf("Path, Dir = %q, %q", c.Path, c.Dir)
	}
	if c.DataDirectory != filepath.Join(wantDir, "data") {
		t.Errorf("DataDirectory = %q, want %q", c.DataDirectory, filepath.Join(wantDir, "data"))
	}
	if c.AgentName != "ORDERS" || !c.HighlyAvailable || c.InstanceName != "" {
		t.Errorf("AgentName, HighlyAvailable, InstanceName = %q, %v, %q", c.AgentName, c.HighlyAvailable, c.InstanceName)
	}
	wantInst := []Instance{
		{Name: "ha1", Address: "127.0.0.1:7101"},
		{Name: "ha2", Address: "127.0.0.1:7102"},
		{Name: "ha3", Address: "127.0.0.1:7103"},
	}
	if !reflect.DeepEqual(c.Instances, wantInst) {
		t.Errorf("Instances = %+v", c.Instances)
	}
	if got := c.Addresses(); !reflect.DeepEqual(got, []string{"127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"}) {
		t.Errorf("Addresses = %v", got)
	}
	durs := []struct {
		name      string
		got, want time.Duration
	}{
		{"StandbyStatusPublishInterval", c.StandbyStatusPublishInterval, 300 * time.Second},
		{"StandbyStatusDiscardTime", c.StandbyStatusDiscardTime, 600 * time.Second},
		{"RaftHeartbeatTimeout", c.RaftHeartbeatTimeout, 500 * time.Millisecond},
		{"RaftElectionTimeout", c.RaftElectionTimeout, 500 * time.Millisecond},
		{"RaftLeaderLeaseTimeout", c.RaftLeaderLeaseTimeout, 250 * time.Millisecond},
		{"RaftCommitTimeout", c.RaftCommitTimeout, 50 * time.Millisecond},
		{"RaftSnapshotInterval", c.RaftSnapshotInterval, 120 * time.Second},
		{"ConnectionRetryMaxInterval", c.ConnectionRetryMaxInterval, 30 * time.Second},
		{"QuorumLossTimeout", c.QuorumLossTimeout, 10 * time.Second},
		{"DrainTimeout", c.DrainTimeout, 5 * time.Minute},
		{"ClientConnectDelay", c.ClientConnectDelay, 500 * time.Millisecond},
		{"ClientReconnectDelay", c.ClientReconnectDelay, 500 * time.Millisecond},
		{"ClientPrimaryRetryDelay", c.ClientPrimaryRetryDelay, 500 * time.Millisecond},
		{"ClientRequestTimeout", c.ClientRequestTimeout, 2 * time.Second},
	}
	for _, d := range durs {
		if d.got != d.want {
			t.Errorf("%s = %v, want %v", d.name, d.got, d.want)
		}
	}
	if c.RaftSnapshotThreshold != 8192 {
		t.Errorf("RaftSnapshotThreshold = %d", c.RaftSnapshotThreshold)
	}
	if c.ClientConnectAttempts != 2 || c.ClientReconnectAttempts != 4 || c.ClientPrimaryRetries != 0 {
		t.Errorf("client ints = %d, %d, %d", c.ClientConnectAttempts, c.ClientReconnectAttempts, c.ClientPrimaryRetries)
	}
	if c.LogLevel != "info" {
		t.Errorf("LogLevel = %q", c.LogLevel)
	}
	if c.QuorumLossAction != QuorumLossRetry {
		t.Errorf("QuorumLossAction = %q, want retry", c.QuorumLossAction)
	}
	// Transfers
	if c.TransferRoot != wantDir {
		t.Errorf("TransferRoot = %q, want the file's directory %q", c.TransferRoot, wantDir)
	}
	if c.SandboxRoot != nil {
		t.Errorf("SandboxRoot = %q, want nil (transferRoot alone)", c.SandboxRoot)
	}
	ints := []struct {
		name      string
		got, want int64
	}{
		{"MaxSourceTransfers", int64(c.MaxSourceTransfers), 25},
		{"MaxDestinationTransfers", int64(c.MaxDestinationTransfers), 25},
		{"MaxQueuedTransfers", int64(c.MaxQueuedTransfers), 1000},
		{"MaxFilesPerTransfer", int64(c.MaxFilesPerTransfer), 1000000},
		{"CheckpointBytes", c.CheckpointBytes, 64 << 20},
		{"MaxBandwidth", c.MaxBandwidth, 0},
		{"TransferHistoryCount", int64(c.TransferHistoryCount), 1000},
	}
	for _, i := range ints {
		if i.got != i.want {
			t.Errorf("%s = %d, want %d", i.name, i.got, i.want)
		}
	}
	if c.TransferRecoveryTimeout != RecoverForever || c.TransferRecoveryTimeout >= 0 {
		t.Errorf("TransferRecoveryTimeout = %v, want RecoverForever (negative)", c.TransferRecoveryTimeout)
	}
	if c.CheckpointTime != 5*time.Second {
		t.Errorf("CheckpointTime = %v, want 5s", c.CheckpointTime)
	}
	if c.TransferHistoryAge != 7*24*time.Hour {
		t.Errorf("TransferHistoryAge = %v, want 168h", c.TransferHistoryAge)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("Warnings = %q", c.Warnings)
	}
	if got := c.InstanceDataDir("ha2"); got != filepath.Join(wantDir, "data", "ha2") {
		t.Errorf("InstanceDataDir = %q", got)
	}
}

func TestLoadRelativePathAndMessages(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, props(map[string]string{"dataDirectory": "../state/./x"}))
	t.Chdir(dir)
	c, err := Load("agent.properties")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	if c.Path != filepath.Join(abs, "agent.properties") {
		t.Errorf("Path = %q, want absolute", c.Path)
	}
	if want := filepath.Join(filepath.Dir(abs), "state", "x"); c.DataDirectory != want {
		t.Errorf("DataDirectory = %q, want %q", c.DataDirectory, want)
	}
	if c.TransferRoot != abs {
		t.Errorf("TransferRoot = %q, want %q", c.TransferRoot, abs)
	}

	// Messages name the file as the user gave it.
	_, err = c.Select("nope")
	if got := err.Error(); !strings.HasPrefix(got, "agent.properties: instanceName: ") {
		t.Errorf("Select error = %q", got)
	}

	write(t, dir, props(map[string]string{"standbyStatusDiscardTime": "300"}))
	_, err = Load("agent.properties")
	want := "agent.properties: standbyStatusDiscardTime: must be larger than standbyStatusPublishInterval (300s)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v, want prefix %q", err, want)
	}

	// A relative transferRoot resolves against the file's directory, not
	// the current one, and is cleaned; it need not exist.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, sub, props(map[string]string{"transferRoot": "./../files//in/", "sandboxRoot": "in:../out"}))
	c, err = Load(filepath.Join("sub", "agent.properties"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(abs, "files", "in"); c.TransferRoot != want {
		t.Errorf("TransferRoot = %q, want %q", c.TransferRoot, want)
	}
	if want := []string{"in", "../out"}; !reflect.DeepEqual(c.SandboxRoot, want) {
		t.Errorf("SandboxRoot = %q, want %q (kept as written)", c.SandboxRoot, want)
	}
}

func TestLoadFull(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "abs-data")
	content := `# every key, non-default values
agentName = ORDERS_2.x-1
highlyAvailable = TRUE
instances = ha1@host1.example.com:7101,  ha2@[::1]:7102 , w3@10.0.0.3:7103  
witnessInstances = w3
instanceName = ha2
dataDirectory = ` + dataDir + `
standbyStatusPublishInterval = 1.5
standbyStatusDiscardTime = 1m30s
raftHeartbeatTimeout = 1s
raftElectionTimeout = 2
raftLeaderLeaseTimeout : 400ms
raftCommitTimeout   20ms
raftSnapshotThreshold = 100
raftSnapshotInterval = 30s
connectionRetryMaxInterval = 0.25
quorumLossAction = EXIT
quorumLossTimeout = 30
drainTimeout = 90
clientConnectAttempts = 3
clientConnectDelay = 0
clientReconnectAttempts = 7
clientReconnectDelay = 250ms
clientPrimaryRetries = 2
clientPrimaryRetryDelay = 2s
clientRequestTimeout = 45
logLevel = DEBUG
transferRoot = /srv/mft/../mft/root/
sandboxRoot = /srv/mft/root : ! /srv/mft/root/private ,shared,!shared/tmp
maxSourceTransfers = 5
maxDestinationTransfers = 6
maxQueuedTransfers = 7
transferRecoveryTimeout = 1m
checkpointInterval = 512k
checkpointTimeInterval = 1.5
maxBandwidth = 10MiB
transferHistoryCount = 0
transferHistoryAge = 24h
`
	c := mustLoad(t, content)
	want := &Config{
		Path:            c.Path,
		Dir:             c.Dir,
		AgentName:       "ORDERS_2.x-1",
		HighlyAvailable: true,
		Instances: []Instance{
			{Name: "ha1", Address: "host1.example.com:7101"},
			{Name: "ha2", Address: "[::1]:7102"},
			{Name: "w3", Address: "10.0.0.3:7103", Witness: true},
		},
		InstanceName:                 "ha2",
		DataDirectory:                dataDir,
		StandbyStatusPublishInterval: 1500 * time.Millisecond,
		StandbyStatusDiscardTime:     90 * time.Second,
		RaftHeartbeatTimeout:         time.Second,
		RaftElectionTimeout:          2 * time.Second,
		RaftLeaderLeaseTimeout:       400 * time.Millisecond,
		RaftCommitTimeout:            20 * time.Millisecond,
		RaftSnapshotThreshold:        100,
		RaftSnapshotInterval:         30 * time.Second,
		ConnectionRetryMaxInterval:   250 * time.Millisecond,
		QuorumLossAction:             "exit",
		QuorumLossTimeout:            30 * time.Second,
		DrainTimeout:                 90 * time.Second,
		ClientConnectAttempts:        3,
		ClientConnectDelay:           0,
		ClientReconnectAttempts:      7,
		ClientReconnectDelay:         250 * time.Millisecond,
		ClientPrimaryRetries:         2,
		ClientPrimaryRetryDelay:      2 * time.Second,
		ClientRequestTimeout:         45 * time.Second,
		LogLevel:                     "debug",
		TransferRoot:                 "/srv/mft/root",
		SandboxRoot:                  []string{"/srv/mft/root", "!/srv/mft/root/private", "shared", "!shared/tmp"},
		MaxSourceTransfers:           5,
		MaxDestinationTransfers:      6,
		MaxQueuedTransfers:           7,
		MaxFilesPerTransfer:          1000000,
		TransferRecoveryTimeout:      time.Minute,
		CheckpointBytes:              512 << 10,
		CheckpointTime:               1500 * time.Millisecond,
		MaxBandwidth:                 10 << 20,
		TransferHistoryCount:         0,
		TransferHistoryAge:           24 * time.Hour,
		TLSMode:                      TLSRequired,
		AlternateAfter:               60 * time.Second,
		file:                         c.file,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	in, err := c.Select("")
	if err != nil || in.Name != "ha2" {
		t.Errorf("Select(\"\") = %+v, %v; want ha2 from the instanceName property", in, err)
	}
	in, err = c.Select("w3")
	if err != nil || !in.Witness {
		t.Errorf("Select(w3) = %+v, %v; want the witness", in, err)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name    string
		over    map[string]string
		key     string
		contain string
	}{
		{"missing agentName", map[string]string{"agentName": unset}, "agentName", "required"},
		{"empty agentName", map[string]string{"agentName": "  "}, "agentName", "required"},
		{"agentName too long", map[string]string{"agentName": strings.Repeat("A", 29)}, "agentName", "at most 28"},
		{"agentName bad char", map[string]string{"agentName": "ORD ERS"}, "agentName", "letters, digits"},
		{"agentName 28 ok but bad char", map[string]string{"agentName": "ORDERS/1"}, "agentName", "letters, digits"},

		{"missing instances", map[string]string{"instances": unset}, "instances", "required"},
		{"empty instances", map[string]string{"instances": ""}, "instances", "required"},
		{"duplicate names", map[string]string{"instances": "ha1@h1:1,ha2@h2:2,ha1@h3:3"}, "instances", `"ha1" is listed twice (entries 1 and 3`},
		{"duplicate names ignoring case", map[string]string{"instances": "ha1@h1:1,HA1@h2:2"}, "instances", "listed twice"},
		{"duplicate addresses", map[string]string{"instances": "ha1@127.0.0.1:7101,ha2@127.0.0.1:7101"}, "instances", `also the address of "ha1"`},
		{"duplicate addresses, other spelling", map[string]string{"instances": "ha1@Host1:7101,ha2@host1:07101"}, "instances", "also the address"},
		{"duplicate IPv6 addresses", map[string]string{"instances": "ha1@[::1]:7101,ha2@[0:0::1]:7101"}, "instances", "also the address"},
		{"missing @", map[string]string{"instances": "ha1@h1:1,ha2h2:2"}, "instances", `entry 2 "ha2h2:2": missing '@'`},
		{"empty name", map[string]string{"instances": "@h1:1"}, "instances", "empty instance name"},
		{"bad name", map[string]string{"instances": "h!1@h1:1"}, "instances", `instance name "h!1"`},
		{"dotdot name", map[string]string{"instances": "..@h1:1"}, "instances", `instance name ".."`},
		{"empty address", map[string]string{"instances": "ha1@"}, "instances", "empty address"},
		{"no port", map[string]string{"instances": "ha1@host1"}, "instances", "not host:port"},
		{"empty port", map[string]string{"instances": "ha1@host1:"}, "instances", "no port"},
		{"empty host", map[string]string{"instances": "ha1@:7101"}, "instances", "no host"},
		{"port not a number", map[string]string{"instances": "ha1@host1:http"}, "instances", `port "http" is not a number`},
		{"port negative", map[string]string{"instances": "ha1@host1:-1"}, "instances", "not a number"},
		{"port zero", map[string]string{"instances": "ha1@host1:0"}, "instances", "out of range"},
		{"port too large", map[string]string{"instances": "ha1@host1:65536"}, "instances", "out of range"},
		{"port huge", map[string]string{"instances": "ha1@host1:99999999999999999999"}, "instances", "out of range"},
		{"bad host", map[string]string{"instances": "ha1@bad!host:7101"}, "instances", "neither an IP address nor a valid host name"},
		{"unbracketed IPv6", map[string]string{"instances": "ha1@::1:7101"}, "instances", "not host:port"},
		{"stray comma", map[string]string{"instances": "ha1@h1:1,,ha2@h2:2"}, "instances", "entry 2 is empty"},

		{"witness not in instances", map[string]string{"witnessInstances": "ha4"}, "witnessInstances", `"ha4" is not one of the instances (ha1, ha2, ha3)`},
		{"all witnesses", map[string]string{"witnessInstances": "ha1, ha2,ha3"}, "witnessInstances", "every instance is a witness"},
		{"witness stray comma", map[string]string{"witnessInstances": "ha1,"}, "witnessInstances", "entry 2 is empty"},

		{"highlyAvailable false with 3", map[string]string{"highlyAvailable": "false"}, "highlyAvailable", "3 instances"},
		{"highlyAvailable not bool", map[string]string{"highlyAvailable": "yes please"}, "highlyAvailable", "not true or false"},

		{"bad instanceName", map[string]string{"instanceName": "ha/1"}, "instanceName", "letters, digits"},

		{"missing dataDirectory", map[string]string{"dataDirectory": unset}, "dataDirectory", "required"},

		{"bad duration", map[string]string{"standbyStatusPublishInterval": "5 minutes"}, "standbyStatusPublishInterval", "invalid duration"},
		{"negative duration", map[string]string{"clientConnectDelay": "-1"}, "clientConnectDelay", "negative"},
		{"zero publish interval", map[string]string{"standbyStatusPublishInterval": "0"}, "standbyStatusPublishInterval", "larger than 0"},
		{"discard equals publish", map[string]string{"standbyStatusDiscardTime": "300"}, "standbyStatusDiscardTime", "must be larger than standbyStatusPublishInterval (300s)"},
		{"discard below publish", map[string]string{"standbyStatusPublishInterval": "10s", "standbyStatusDiscardTime": "5"}, "standbyStatusDiscardTime", "(10s)"},
		{"heartbeat zero", map[string]string{"raftHeartbeatTimeout": "0"}, "raftHeartbeatTimeout", "too short"},
		{"heartbeat below raft minimum", map[string]string{"raftHeartbeatTimeout": "1ms", "raftLeaderLeaseTimeout": "1ms", "raftCommitTimeout": "1ms"}, "raftHeartbeatTimeout", "minimum is 5ms"},
		{"commit zero", map[string]string{"raftCommitTimeout": "0"}, "raftCommitTimeout", "too short"},
		{"lease above heartbeat", map[string]string{"raftLeaderLeaseTimeout": "600ms"}, "raftLeaderLeaseTimeout", "must not be larger than raftHeartbeatTimeout (500ms)"},
		{"commit above heartbeat", map[string]string{"raftCommitTimeout": "1"}, "raftCommitTimeout", "must not be larger than raftHeartbeatTimeout"},
		{"election below heartbeat", map[string]string{"raftElectionTimeout": "400ms"}, "raftElectionTimeout", "must not be smaller than raftHeartbeatTimeout"},
		{"snapshot threshold not a number", map[string]string{"raftSnapshotThreshold": "many"}, "raftSnapshotThreshold", "not a whole number"},
		{"snapshot threshold zero", map[string]string{"raftSnapshotThreshold": "0"}, "raftSnapshotThreshold", "at least 1"},
		{"retry interval zero", map[string]string{"connectionRetryMaxInterval": "0s"}, "connectionRetryMaxInterval", "larger than 0"},
		{"quorumLossAction unknown", map[string]string{"quorumLossAction": "restart"}, "quorumLossAction", `"restart" is not retry or exit`},
		{"quorumLossTimeout zero", map[string]string{"quorumLossTimeout": "0"}, "quorumLossTimeout", "larger than 0"},
		{"quorumLossTimeout below elections", map[string]string{"quorumLossAction": "exit", "quorumLossTimeout": "1s"}, "quorumLossTimeout", "at least 2 × (raftHeartbeatTimeout + raftElectionTimeout) = 2s"},
		{"quorumLossTimeout below slower elections", map[string]string{"quorumLossAction": "exit", "raftHeartbeatTimeout": "3s", "raftElectionTimeout": "3s"}, "quorumLossTimeout", "10s is too short; it must be at least 2 × (raftHeartbeatTimeout + raftElectionTimeout) = 12s"},
		{"connect attempts zero", map[string]string{"clientConnectAttempts": "0"}, "clientConnectAttempts", "at least 1"},
		{"reconnect attempts fraction", map[string]string{"clientReconnectAttempts": "1.5"}, "clientReconnectAttempts", "not a whole number"},
		{"primary retries negative", map[string]string{"clientPrimaryRetries": "-1"}, "clientPrimaryRetries", "negative"},
		{"primary retries too large", map[string]string{"clientPrimaryRetries": "99999999999999999999999"}, "clientPrimaryRetries", "too large"},
		{"request timeout zero", map[string]string{"clientRequestTimeout": "0"}, "clientRequestTimeout", "larger than 0"},
		{"bad logLevel", map[string]string{"logLevel": "verbose"}, "logLevel", `"verbose" is not one of`},

		{"sandboxRoot stray colon", map[string]string{"sandboxRoot": "/a::/b"}, "sandboxRoot", "entry 2 is empty"},
		{"sandboxRoot trailing comma", map[string]string{"sandboxRoot": "/a,"}, "sandboxRoot", "entry 2 is empty"},
		{"sandboxRoot lone bang", map[string]string{"sandboxRoot": "/a:!"}, "sandboxRoot", `entry 2 "!": no path after '!'`},
		{"sandboxRoot double bang", map[string]string{"sandboxRoot": "/a:!!/a/b"}, "sandboxRoot", "more than one '!'"},
		{"sandboxRoot only denies", map[string]string{"sandboxRoot": "!/a/private"}, "sandboxRoot", "only denied"},

		{"maxSourceTransfers zero", map[string]string{"maxSourceTransfers": "0"}, "maxSourceTransfers", "at least 1"},
		{"maxSourceTransfers negative", map[string]string{"maxSourceTransfers": "-5"}, "maxSourceTransfers", "negative"},
		{"maxSourceTransfers not a number", map[string]string{"maxSourceTransfers": "many"}, "maxSourceTransfers", "not a whole number"},
		{"maxDestinationTransfers zero", map[string]string{"maxDestinationTransfers": "0"}, "maxDestinationTransfers", "at least 1"},
		{"maxDestinationTransfers fraction", map[string]string{"maxDestinationTransfers": "2.5"}, "maxDestinationTransfers", "not a whole number"},
		{"maxQueuedTransfers zero", map[string]string{"maxQueuedTransfers": "0"}, "maxQueuedTransfers", "at least 1"},
		{"maxQueuedTransfers too large", map[string]string{"maxQueuedTransfers": "99999999999999999999999"}, "maxQueuedTransfers", "too large"},

		{"transferRecoveryTimeout -2", map[string]string{"transferRecoveryTimeout": "-2"}, "transferRecoveryTimeout", "only negative value allowed is -1"},
		{"transferRecoveryTimeout -1s", map[string]string{"transferRecoveryTimeout": "-1s"}, "transferRecoveryTimeout", "only negative value allowed is -1"},
		{"transferRecoveryTimeout -1.0", map[string]string{"transferRecoveryTimeout": "-1.0"}, "transferRecoveryTimeout", "only negative value allowed is -1"},
		{"transferRecoveryTimeout words", map[string]string{"transferRecoveryTimeout": "forever"}, "transferRecoveryTimeout", "invalid duration"},

		{"checkpointInterval below 64K", map[string]string{"checkpointInterval": "32K"}, "checkpointInterval", "32K is too small; the minimum is 64K"},
		{"checkpointInterval 64K-1", map[string]string{"checkpointInterval": "65535"}, "checkpointInterval", "65535 is too small"},
		{"checkpointInterval zero", map[string]string{"checkpointInterval": "0"}, "checkpointInterval", "too small"},
		{"checkpointInterval negative", map[string]string{"checkpointInterval": "-64M"}, "checkpointInterval", `"-64M": must not be negative`},
		{"checkpointInterval bad unit", map[string]string{"checkpointInterval": "64X"}, "checkpointInterval", `invalid size "64X"`},
		{"checkpointInterval fraction", map[string]string{"checkpointInterval": "1.5M"}, "checkpointInterval", `invalid size "1.5M"`},
		{"checkpointInterval overflow", map[string]string{"checkpointInterval": "9999999999G"}, "checkpointInterval", "too large"},

		{"checkpointTimeInterval zero", map[string]string{"checkpointTimeInterval": "0"}, "checkpointTimeInterval", "larger than 0"},
		{"checkpointTimeInterval negative", map[string]string{"checkpointTimeInterval": "-1"}, "checkpointTimeInterval", "negative"},
		{"checkpointTimeInterval bad", map[string]string{"checkpointTimeInterval": "soon"}, "checkpointTimeInterval", "invalid duration"},

		{"maxBandwidth negative", map[string]string{"maxBandwidth": "-1"}, "maxBandwidth", "must not be negative"},
		{"maxBandwidth bad", map[string]string{"maxBandwidth": "fast"}, "maxBandwidth", `invalid size "fast"`},
		{"maxBandwidth bits", map[string]string{"maxBandwidth": "10Mbit"}, "maxBandwidth", `invalid size "10Mbit"`},

		{"transferHistoryCount negative", map[string]string{"transferHistoryCount": "-1"}, "transferHistoryCount", "negative"},
		{"transferHistoryCount not a number", map[string]string{"transferHistoryCount": "lots"}, "transferHistoryCount", "not a whole number"},
		{"transferHistoryAge zero", map[string]string{"transferHistoryAge": "0"}, "transferHistoryAge", "larger than 0"},
		{"transferHistoryAge days", map[string]string{"transferHistoryAge": "7d"}, "transferHistoryAge", "invalid duration"},
		{"transferHistoryAge negative", map[string]string{"transferHistoryAge": "-1"}, "transferHistoryAge", "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := write(t, dir, props(tc.over))
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want an error naming %s", c, tc.key)
			}
			e := asError(t, err)
			if e.Key != tc.key {
				t.Errorf("Key = %q, want %q (error: %v)", e.Key, tc.key, err)
			}
			if e.File != path {
				t.Errorf("File = %q, want %q", e.File, path)
			}
			if !strings.Contains(e.Msg, tc.contain) {
				t.Errorf("Msg = %q, want it to contain %q", e.Msg, tc.contain)
			}
			if !strings.HasPrefix(err.Error(), path+": "+tc.key+": ") {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), path+": "+tc.key+": ")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Error() spans lines: %q", err.Error())
			}
		})
	}
}

func TestLoadSyntaxError(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, props(nil)+"broken=\\uZZZZ\n")
	_, err := Load(path)
	e := asError(t, err)
	if e.Line != 5 || e.Key != "" || !strings.Contains(e.Msg, "invalid unicode literal") {
		t.Errorf("got %+v, want line 5, no key, the library's message", e)
	}
	if want := path + ":5: syntax error: invalid unicode literal"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.properties")
	_, err := Load(path)
	e := asError(t, err)
	if e.Key != "" || e.File != path || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %+v (%v), want a file-level error wrapping fs.ErrNotExist", e, err)
	}
}

func TestWarnings(t *testing.T) {
	cases := []struct {
		name    string
		over    map[string]string
		want    []string // each must appear in some warning
		wantLen int
	}{
		{"unknown key", map[string]string{"standbyStatusPublishIntervall": "300"},
			[]string{`unknown key "standbyStatusPublishIntervall" (ignored; did you mean "standbyStatusPublishInterval"?)`}, 1},
		{"unknown key in other case", map[string]string{"LOGLEVEL": "debug"},
			[]string{`unknown key "LOGLEVEL" (ignored; did you mean "logLevel"?)`}, 1},
		{"unrelated unknown key", map[string]string{"colour": "blue"},
			[]string{`unknown key "colour" (ignored)`}, 1},
		{"variable not expanded", map[string]string{"dataDirectory": "${HOME}/data"},
			[]string{`dataDirectory: value "${HOME}/data" contains "${"`}, 1},
		{"two instances", map[string]string{"instances": "ha1@h1:1,ha2@h2:2"},
			[]string{"a group of 2 instances stops when either one is lost"}, 1},
		{"two instances, one witness", map[string]string{"instances": "ha1@h1:1,w@h2:2", "witnessInstances": "w"},
			[]string{`only "ha1" can become active`, "group of 2 instances"}, 2},
		{"one instance, highly available", map[string]string{"instances": "ha1@h1:1", "highlyAvailable": "true"},
			[]string{`only "ha1" can become active`}, 1},
		{"one instance", map[string]string{"instances": "ha1@h1:1"}, nil, 0},
		{"duplicate witness", map[string]string{"witnessInstances": "ha3,ha3"},
			[]string{`witnessInstances: "ha3" is listed more than once`}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := write(t, dir, props(tc.over))
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(c.Warnings) != tc.wantLen {
				t.Errorf("Warnings = %q, want %d", c.Warnings, tc.wantLen)
			}
			for _, w := range tc.want {
				found := false
				for _, got := range c.Warnings {
					if strings.HasPrefix(got, path+": ") && strings.Contains(got, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no warning containing %q in %q", w, c.Warnings)
				}
			}
		})
	}
	// A single instance is not highly available unless it says so.
	c := mustLoad(t, props(map[string]string{"instances": "solo@h1:1"}))
	if c.HighlyAvailable {
		t.Error("one instance: HighlyAvailable = true, want false by default")
	}
	c = mustLoad(t, props(map[string]string{"instances": "solo@h1:1", "highlyAvailable": "false"}))
	if c.HighlyAvailable {
		t.Error("highlyAvailable=false: HighlyAvailable = true")
	}
}

func TestSelect(t *testing.T) {
	c := mustLoad(t, props(map[string]string{"instances": "ha1@h1:1,Host2@h2:2,ha3@h3:3"}))
	defer func(h func() (string, error)) { hostname = h }(hostname)

	cases := []struct {
		name     string
		property string
		override string
		host     string
		want     string // "" means an error
		contain  string
	}{
		{"override", "ha1", "ha3", "h", "ha3", ""},
		{"property", "ha1", "", "ha3", "ha1", ""},
		{"host name", "", "", "ha3", "ha3", ""},
		{"host name ignoring case", "", "", "HOST2", "Host2", ""},
		{"fully qualified host name", "", "", "ha1.example.com", "ha1", ""},
		{"override not listed", "", "ha9", "ha1", "", `"ha9" (from --instance) is not one of the instances (ha1, Host2, ha3)`},
		{"property not listed", "nope", "", "ha1", "", `"nope" (from the instanceName property) is not one of the instances (ha1, Host2, ha3)`},
		{"host not listed", "", "", "box7.example.com", "", `"box7.example.com" (the host name) is not one of the instances (ha1, Host2, ha3); use --instance`},
		{"override short name is not guessed", "", "ha1.example.com", "x", "", "is not one of the instances"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.InstanceName = tc.property
			hostname = func() (string, error) { return tc.host, nil }
			in, err := c.Select(tc.override)
			if tc.want != "" {
				if err != nil || in.Name != tc.want {
					t.Fatalf("Select = %+v, %v; want %s", in, err, tc.want)
				}
				return
			}
			e := asError(t, err)
			if e.Key != "instanceName" || !strings.Contains(e.Msg, tc.contain) {
				t.Errorf("error %v, want key instanceName containing %q", err, tc.contain)
			}
		})
	}
	t.Run("host name unknown", func(t *testing.T) {
		c.InstanceName = ""
		hostname = func() (string, error) { return "", errors.New("boom") }
		_, err := c.Select("")
		if e := asError(t, err); e.Key != "instanceName" || !strings.Contains(e.Msg, "boom") {
			t.Errorf("error %v", err)
		}
	})
}

func TestCheckDataDirectory(t *testing.T) {
	root := t.TempDir()
	c := &Config{DataDirectory: filepath.Join(root, "data")}
	if err := c.CheckDataDirectory("ha1"); err != nil {
		t.Fatalf("CheckDataDirectory: %v", err)
	}
	dir := filepath.Join(root, "data", "ha1")
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		t.Fatalf("instance directory not created: %v", err)
	}
	if st.Mode().Perm()&^0o750 != 0 {
		t.Errorf("mode %v, want at most 0750", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("test file left behind: %v", ents)
	}
	// A second call on the existing directory is fine.
	if err := c.CheckDataDirectory("ha1"); err != nil {
		t.Errorf("second call: %v", err)
	}

	// dataDirectory under a regular file cannot be created, even as root.
	file := filepath.Join(root, "plain")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := &Config{DataDirectory: filepath.Join(file, "data"), Path: "/etc/ftagent/agent.properties"}
	err = bad.CheckDataDirectory("ha1")
	e := asError(t, err)
	if e.Key != "dataDirectory" || !strings.Contains(e.Msg, filepath.Join(file, "data", "ha1")) {
		t.Errorf("error %v, want key dataDirectory naming the directory", err)
	}
	if !strings.HasPrefix(err.Error(), "/etc/ftagent/agent.properties: dataDirectory: ") {
		t.Errorf("Error() = %q", err.Error())
	}

	// The instance directory itself is a regular file.
	c2 := &Config{DataDirectory: root}
	if e := asError(t, c2.CheckDataDirectory("plain")); e.Key != "dataDirectory" {
		t.Errorf("key = %q", e.Key)
	}

	// Names that would leave the data directory are refused.
	for _, name := range []string{"", "..", "../x", "a/b"} {
		if e := asError(t, c.CheckDataDirectory(name)); e.Key != "dataDirectory" {
			t.Errorf("%q: key = %q", name, e.Key)
		}
	}
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"300", 300 * time.Second, false},
		{"0", 0, false},
		{"1.5", 1500 * time.Millisecond, false},
		{"0.001", time.Millisecond, false},
		{".5", 500 * time.Millisecond, false},
		{"2.", 2 * time.Second, false},
		{" 600 ", 600 * time.Second, false},
		{"0.1", 100 * time.Millisecond, false}, // exact, no float rounding
		{"500ms", 500 * time.Millisecond, false},
		{"2s", 2 * time.Second, false},
		{"1m30s", 90 * time.Second, false},
		{"1h", time.Hour, false},
		{"250us", 250 * time.Microsecond, false},
		{"0s", 0, false},
		{"", 0, true},
		{"   ", 0, true},
		{"-1", 0, true},
		{"-1s", 0, true},
		{"-0.5", 0, true},
		{"1e3", 0, true},
		{"0x10", 0, true},
		{"1_000", 0, true},
		{"5 s", 0, true},
		{"five", 0, true},
		{"1.2.3", 0, true},
		{"10d", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
		{"99999999999999999999", 0, true}, // overflows time.Duration
	}
	for _, tc := range cases {
		got, err := ParseDuration(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in      string
		want    int64
		contain string // non-empty: an error containing this is expected
	}{
		{"0", 0, ""},
		{"1", 1, ""},
		{"4096", 4096, ""},
		{"4096B", 4096, ""},
		{"4096b", 4096, ""},
		{" 64M ", 64 << 20, ""},
		{"512K", 512 << 10, ""},
		{"512k", 512 << 10, ""},
		{"512KB", 512 << 10, ""},
		{"512kb", 512 << 10, ""},
		{"512KiB", 512 << 10, ""},
		{"512kib", 512 << 10, ""},
		{"64M", 64 << 20, ""},
		{"64m", 64 << 20, ""},
		{"64MB", 64 << 20, ""},
		{"64MiB", 64 << 20, ""},
		{"64mIb", 64 << 20, ""},
		{"1G", 1 << 30, ""},
		{"1g", 1 << 30, ""},
		{"1GiB", 1 << 30, ""},
		{"007K", 7 << 10, ""},
		{"9223372036854775807", 9223372036854775807, ""},
		{"8589934591G", 8589934591 << 30, ""}, // largest whole number of G in an int64

		{"", 0, `invalid size "": empty`},
		{"   ", 0, `invalid size "": empty`},
		{"-1", 0, `invalid size "-1": must not be negative`},
		{"-64M", 0, `invalid size "-64M": must not be negative`},
		{"+1K", 0, `invalid size "+1K"`},
		{"K", 0, `invalid size "K"`},
		{"MiB", 0, `invalid size "MiB"`},
		{"1.5M", 0, `invalid size "1.5M"`},
		{"1e6", 0, `invalid size "1e6"`},
		{"0x10", 0, `invalid size "0x10"`},
		{"1_000", 0, `invalid size "1_000"`},
		{"64 M", 0, `invalid size "64 M"`},
		{"64X", 0, `invalid size "64X"`},
		{"1T", 0, `invalid size "1T"`},
		{"64iB", 0, `invalid size "64iB"`},
		{"64Mi", 0, `invalid size "64Mi"`},
		{"64MBB", 0, `invalid size "64MBB"`},
		{"64M/s", 0, `invalid size "64M/s"`},
		{"10Mbit", 0, `invalid size "10Mbit"`},
		{"9223372036854775808", 0, `invalid size "9223372036854775808": too large`},
		{"8589934592G", 0, `invalid size "8589934592G": too large`},
		{"9007199254740992M", 0, `invalid size "9007199254740992M": too large`},
	}
	for _, tc := range cases {
		got, err := ParseSize(tc.in)
		if tc.contain != "" {
			if err == nil || !strings.Contains(err.Error(), tc.contain) {
				t.Errorf("ParseSize(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.contain)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1: "1", 65535: "65535", 64 << 10: "64K", 1536 << 10: "1536K", 64 << 20: "64M", 3 << 30: "3G"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// transferRecoveryTimeout: -1 is retry forever, the only negative value.
func TestTransferRecoveryTimeout(t *testing.T) {
	cases := []struct {
		value string // "" leaves the key out
		want  time.Duration
	}{
		{"", RecoverForever},
		{"-1", RecoverForever},
		{" -1 ", RecoverForever},
		{"0", 0},
		{"0s", 0},
		{"21600", 6 * time.Hour},
		{"1.5", 1500 * time.Millisecond},
		{"90m", 90 * time.Minute},
	}
	for _, tc := range cases {
		over := map[string]string{}
		if tc.value != "" {
			over[KeyTransferRecoveryTimeout] = tc.value
		}
		c := mustLoad(t, props(over))
		if c.TransferRecoveryTimeout != tc.want {
			t.Errorf("transferRecoveryTimeout=%q: got %v, want %v", tc.value, c.TransferRecoveryTimeout, tc.want)
		}
	}
	if RecoverForever >= 0 {
		t.Errorf("RecoverForever = %v, want negative", RecoverForever)
	}
	// The parser the per-transfer override uses.
	for _, bad := range []string{"-2", "-1s", "-0.5", "-01", "-", "", "x"} {
		if d, err := ParseRecoveryTimeout(bad); err == nil {
			t.Errorf("ParseRecoveryTimeout(%q) = %v, want an error", bad, d)
		}
	}
	if _, err := ParseRecoveryTimeout("-2"); err == nil || !strings.Contains(err.Error(), `"-2"`) {
		t.Errorf("ParseRecoveryTimeout(-2) error %v does not name the value", err)
	}
	// Other durations still refuse -1.
	if _, err := ParseDuration("-1"); err == nil {
		t.Error("ParseDuration(-1) succeeded")
	}
}

func TestSandboxRoot(t *testing.T) {
	cases := []struct {
		value string
		want  []string
	}{
		{"", nil},
		{"   ", nil},
		{"/data", []string{"/data"}},
		{"/data/in:/data/out", []string{"/data/in", "/data/out"}},
		{"/data/in,/data/out", []string{"/data/in", "/data/out"}},
		{" /data : !/data/private , in ", []string{"/data", "!/data/private", "in"}},
		{"/data:! /data/private", []string{"/data", "!/data/private"}},
		{"in/../out:./x//y", []string{"in/../out", "./x//y"}}, // as written: resolution is pkg/sandbox's
		{"!/data/private:/data", []string{"!/data/private", "/data"}},
	}
	for _, tc := range cases {
		c := mustLoad(t, props(map[string]string{KeySandboxRoot: tc.value}))
		if !reflect.DeepEqual(c.SandboxRoot, tc.want) {
			t.Errorf("sandboxRoot=%q: got %q, want %q", tc.value, c.SandboxRoot, tc.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	cases := []struct {
		e    Error
		want string
	}{
		{Error{File: "agent.properties", Line: 12, Key: "standbyStatusDiscardTime", Msg: "must be larger"}, "agent.properties:12: standbyStatusDiscardTime: must be larger"},
		{Error{File: "agent.properties", Key: "agentName", Msg: "required"}, "agent.properties: agentName: required"},
		{Error{File: "agent.properties", Msg: "cannot read: x"}, "agent.properties: cannot read: x"},
		{Error{Key: "k", Msg: "m"}, "k: m"},
	}
	for _, tc := range cases {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestKeysTable(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Keys {
		if seen[k.Name] {
			t.Errorf("key %q listed twice", k.Name)
		}
		seen[k.Name] = true
		if k.Doc == "" || k.Form == "" {
			t.Errorf("key %q lacks Doc or Form", k.Name)
		}
		if k.Required && k.Default != "" {
			t.Errorf("required key %q has a default", k.Name)
		}
	}
	// Every field of Config that comes from the file has a key: the
	// table and the struct must not drift apart.
	skip := map[string]bool{"Path": true, "Dir": true, "Warnings": true, "file": true}
	// Fields whose name is not the key's.
	renamed := map[string]string{
		"CheckpointBytes": KeyCheckpointInterval,
		"CheckpointTime":  KeyCheckpointTimeInterval,
		"TLSMode":         KeyTLSMode,
		"TLSCertificate":  KeyTLSCertificate,
		"TLSPrivateKey":   KeyTLSPrivateKey,
		"TLSCA":           KeyTLSCA,
		"TLSPeerCA":       KeyTLSPeerCA,
		"RemoteAgents":    KeyAgentInstances,
		"SFTPPartners":    KeySFTPAddress,
	}
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i).Name
		if skip[f] {
			continue
		}
		key := strings.ToLower(f[:1]) + f[1:]
		if k, ok := renamed[f]; ok {
			key = k
		}
		if !seen[key] {
			t.Errorf("field %s has no key %q in Keys", f, key)
		}
	}
}

// The example file in the repository root must load cleanly and describe
// every key.
func TestExampleFile(t *testing.T) {
	path := filepath.Join("..", "..", "agent.properties.example")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	if c.AgentName != "ORDERS" || len(c.Instances) != 3 || !c.HighlyAvailable {
		t.Errorf("got agent %q with %d instances, HA %v", c.AgentName, len(c.Instances), c.HighlyAvailable)
	}
	if got := c.Addresses(); !reflect.DeepEqual(got, []string{"127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"}) {
		t.Errorf("Addresses = %v", got)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys {
		name := regexp.QuoteMeta(k.Name)
		if k.Pattern {
			// A pattern key is shown with an example name in its place.
			name = strings.Replace(name, regexp.QuoteMeta(NamePlaceholder), `[A-Za-z0-9._-]+`, 1)
		}
		re := regexp.MustCompile(`(?m)^#?` + name + `=`)
		if !re.Match(text) {
			t.Errorf("example file has no line %q or %q", k.Name+"=", "#"+k.Name+"=")
		}
		// A commented-out key shows the default.
		if k.Default != "" {
			re := regexp.MustCompile(`(?m)^#` + name + `=(.*)$`)
			if m := re.FindSubmatch(text); m != nil && strings.TrimSpace(string(m[1])) != k.Default {
				t.Errorf("example shows #%s=%s, but the default is %s", k.Name, m[1], k.Default)
			}
		}
	}
}

// docs/configuration.md must mention every key.
func TestConfigurationDoc(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys {
		if !strings.Contains(string(text), "`"+k.Name+"`") {
			t.Errorf("docs/configuration.md does not mention `%s`", k.Name)
		}
	}
}
