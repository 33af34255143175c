// Package config loads and checks an ftagent agent.properties file.
//
// The file is a Java properties file (parsed by
// github.com/magiconair/properties, UTF-8). Every instance of an agent reads
// one identical file; which instance a process is comes from --instance, the
// instanceName property or the host name (see Config.Select).
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/magiconair/properties"
)

// Instance is one entry of the `instances` property.
type Instance struct {
	Name    string // e.g. "ha1"
	Address string // host:port, as written (host may be a name or an IP; port 1-65535)
	Witness bool   // listed in witnessInstances
}

// RemoteAgent is another agent that this agent may send files to: one
// agent.NAME.instances property, and its agent.NAME.alternates.
type RemoteAgent struct {
	Name      string     // the NAME of the key, that agent's agentName
	Instances []Instance // as written, in order; never witnesses (the other agent's witnessInstances are its own business)

	// Alternates are the agents of agent.NAME.alternates, as written,
	// trimmed, in order: where transfers to this agent move when its whole
	// group is lost. Each is another RemoteAgent, with no alternates of its
	// own. nil when the key is absent or empty.
	Alternates []string

	// ClientCertificate and ClientPrivateKey are what the commands present
	// to this agent when it is one of this agent's own alternates
	// (KeyAlternates): agent.NAME.clientCertificate and
	// agent.NAME.clientPrivateKey, absolute; "" when not set.
	ClientCertificate, ClientPrivateKey string
}

// Addresses returns the host:port of every instance of the agent in the
// listed order, the order in which a sender tries them.
func (ra RemoteAgent) Addresses() []string {
	out := make([]string, len(ra.Instances))
	for i, in := range ra.Instances {
		out[i] = in.Address
	}
	return out
}

// Config is a loaded, validated agent.properties.
type Config struct {
	Path string // absolute path of the file
	Dir  string // its directory; relative paths resolve against it

	AgentName       string
	HighlyAvailable bool
	Instances       []Instance
	InstanceName    string // value of `instanceName` property, "" if unset (the default, host name, is applied by Select)
	DataDirectory   string // absolute

	StandbyStatusPublishInterval time.Duration // default 300s
	StandbyStatusDiscardTime     time.Duration // default 600s

	RaftHeartbeatTimeout   time.Duration // default 500ms
	RaftElectionTimeout    time.Duration // default 500ms
	RaftLeaderLeaseTimeout time.Duration // default 250ms
	RaftCommitTimeout      time.Duration // default 50ms
	RaftSnapshotThreshold  uint64        // default 8192 (log entries between snapshots)
	RaftSnapshotInterval   time.Duration // default 120s (how often to check the threshold)

	ConnectionRetryMaxInterval time.Duration // default 30s: cap of the jittered backoff an instance uses while it cannot reach the others
	QuorumLossAction           string        // QuorumLossRetry (default) or QuorumLossExit
	QuorumLossTimeout          time.Duration // default 10s: with QuorumLossExit, how long without a leader before the instance exits
	DrainTimeout               time.Duration // default 5m: longest a normal stop waits for running transfers before it hands over

	// Transfers
	TransferRoot            string        // absolute and cleaned; default Dir. Relative transfer paths resolve against it. Existence is checked when an instance starts, not by Load.
	SandboxRoot             []string      // entries as written, trimmed ("!" + path for a denied subtree; each path absolute or relative to TransferRoot); nil means TransferRoot alone. Resolution is pkg/sandbox's job.
	MaxSourceTransfers      int           // default 25
	MaxDestinationTransfers int           // default 25
	MaxQueuedTransfers      int           // default 1000
	MaxFilesPerTransfer     int           // default 1000000
	TransferRecoveryTimeout time.Duration // default RecoverForever (< 0: retry forever); 0: fail at once
	CheckpointBytes         int64         // key checkpointInterval; default 64 MiB, at least 64 KiB
	CheckpointTime          time.Duration // key checkpointTimeInterval; default 5s
	MaxBandwidth            int64         // bytes per second over all transfers; default 0 = unlimited
	TransferHistoryCount    int           // default 1000 finished transfers kept
	TransferHistoryAge      time.Duration // default 168h

	// Client defaults (commands such as `ftagent show` and `ftstop` use these unless flags override)
	ClientConnectAttempts   int           // default 2  (passes over the whole list on first connect)
	ClientConnectDelay      time.Duration // default 500ms
	ClientReconnectAttempts int           // default 4
	ClientReconnectDelay    time.Duration // default 500ms
	ClientPrimaryRetries    int           // default 0 (-fr)
	ClientPrimaryRetryDelay time.Duration // default 500ms (-fd)
	ClientRequestTimeout    time.Duration // default 2s

	LogLevel string // default "info"; one of trace, debug, info, warn, error
	AuditLog string // absolute; "" when off

	// TLS
	TLSMode           string // TLSRequired (default), TLSOptional or TLSDisabled
	TLSCertificate    string // absolute, may hold InstancePlaceholder; "" when unset
	TLSPrivateKey     string // as TLSCertificate
	TLSCA             string // as TLSCertificate
	TLSPeerCA         string // absolute, or ""; optional: other agents' CAs (see trust.Files.PeerCA)
	ClientCertificate string // absolute; "" when unset
	ClientPrivateKey  string // absolute; "" when unset

	// Other agents
	RemoteAgents   []RemoteAgent // one per agent.NAME.instances key with a value, sorted by Name (byte order); nil when there are none
	AcceptFrom     []string      // agent names as written, trimmed, in order; nil (the default) when this agent receives from no other agent
	Alternates     []string      // the commands' alternate groups of this agent (alternates), in order; each in RemoteAgents
	SFTPPartners   []SFTPPartner // one per partner NAME of the sftp.NAME.* keys, sorted by Name; nil when there are none
	AlternateAfter time.Duration // default 60s, at least 5s: how long a destination agent's group must stay unreachable before its transfers move to its next alternate (RemoteAgent.Alternates)

	Warnings []string // e.g. unknown keys: `agent.properties: unknown key "standbyStatusPublishIntervall" (ignored; did you mean "standbyStatusPublishInterval"?)`

	file string // the path as given to Load, used in messages
}

// Error is a configuration error: one clear line naming the file, the key and, where known, the line.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // "" for file-level errors
	Msg  string

	err error // underlying cause, if any (see Unwrap)
}

// Error formats the error as `file:line: key: msg`, leaving out the parts
// that are unknown, e.g. `agent.properties: agentName: required`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause (for example an *fs.PathError), if any.
func (e *Error) Unwrap() error { return e.err }

// nameRE is the alphabet of agent and instance names.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// maxAgentName is the IBM MQ MFT limit on agent names.
const maxAgentName = 28

// parseErrorRE picks the line number out of a magiconair/properties syntax
// error ("properties: Line 3: invalid unicode literal").
var parseErrorRE = regexp.MustCompile(`^properties: Line ([0-9]+): (.*)$`)

// Load reads and validates the file. It does not require this host to be one of the instances.
// Errors are *Error (use errors.As).
func Load(path string) (*Config, error) {
	display := path
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{File: display, Msg: "cannot resolve path: " + err.Error(), err: err}
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		msg := err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, &Error{File: display, Msg: "cannot read: " + msg, err: err}
	}
	return parse(data, display, abs)
}

// Parse validates the contents of a properties file, data, as Load does the
// file's: path names the file in errors and warnings, and relative paths
// resolve against its directory (made absolute first). Load is Parse of the
// file it reads.
func Parse(data []byte, path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot resolve path: " + err.Error(), err: err}
	}
	return parse(data, path, abs)
}

// parse is Load once the file is read: display is the path as given, abs
// the absolute one.
func parse(data []byte, display, abs string) (*Config, error) {
	// Values are taken literally: ${...} is not expanded (see checkExpansion).
	loader := &properties.Loader{Encoding: properties.UTF8, DisableExpansion: true}
	props, err := loader.LoadBytes(data)
	if err != nil {
		e := &Error{File: display, Msg: err.Error(), err: err}
		if m := parseErrorRE.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = "syntax error: " + m[2]
		}
		return nil, e
	}

	c := &Config{Path: abs, Dir: filepath.Dir(abs), file: display}
	l := &checker{c: c, props: props}
	if err := l.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// checker carries the state of one Load.
type checker struct {
	c     *Config
	props *properties.Properties

	// addrs maps the canonical form of every address that instances and
	// the agent.NAME.instances keys list to the entry that listed it first:
	// one host:port is one listener, so it cannot be two instances.
	addrs map[string]addrOwner
}

// addrOwner is the instance that an address was first listed for.
type addrOwner struct {
	key  string // instances or agent.NAME.instances
	name string // instance name
}

func (l *checker) errorf(key, format string, args ...any) *Error {
	return &Error{File: l.c.file, Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (l *checker) warnf(format string, args ...any) {
	l.c.Warnings = append(l.c.Warnings, l.c.file+": "+fmt.Sprintf(format, args...))
}

// value returns the trimmed value of key; ok is false when the key is
// absent or its value is empty (both mean "use the default").
func (l *checker) value(key string) (string, bool) {
	v, ok := l.props.Get(key)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (l *checker) load() error {
	c := l.c
	l.checkKeys()

	// agentName
	name, ok := l.value(KeyAgentName)
	switch {
	case !ok:
		return l.errorf(KeyAgentName, "required")
	case len(name) > maxAgentName:
		return l.errorf(KeyAgentName, "%q is %d characters long; at most %d are allowed", name, len(name), maxAgentName)
	case !nameRE.MatchString(name):
		return l.errorf(KeyAgentName, "%q may contain only letters, digits, '.', '_' and '-'", name)
	}
	c.AgentName = name

	// instances, witnessInstances, highlyAvailable, instanceName
	if err := l.loadInstances(); err != nil {
		return err
	}
	if err := l.loadWitnesses(); err != nil {
		return err
	}
	if err := l.loadHighlyAvailable(); err != nil {
		return err
	}
	if v, ok := l.value(KeyInstanceName); ok {
		if !validName(v) {
			return l.errorf(KeyInstanceName, "%q may contain only letters, digits, '.', '_' and '-'", v)
		}
		c.InstanceName = v
	}

	// dataDirectory
	dir, ok := l.value(KeyDataDirectory)
	if !ok {
		return l.errorf(KeyDataDirectory, "required")
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(c.Dir, dir)
	}
	c.DataDirectory = filepath.Clean(dir)

	// durations and integers
	var err error
	durations := []struct {
		key string
		dst *time.Duration
		min time.Duration // smallest allowed value
	}{
		{KeyStandbyStatusPublishInterval, &c.StandbyStatusPublishInterval, 1},
		{KeyStandbyStatusDiscardTime, &c.StandbyStatusDiscardTime, 1},
		{KeyRaftHeartbeatTimeout, &c.RaftHeartbeatTimeout, 5 * time.Millisecond},
		{KeyRaftElectionTimeout, &c.RaftElectionTimeout, 5 * time.Millisecond},
		{KeyRaftLeaderLeaseTimeout, &c.RaftLeaderLeaseTimeout, 5 * time.Millisecond},
		{KeyRaftCommitTimeout, &c.RaftCommitTimeout, time.Millisecond},
		{KeyRaftSnapshotInterval, &c.RaftSnapshotInterval, 5 * time.Millisecond},
		{KeyConnectionRetryMaxInterval, &c.ConnectionRetryMaxInterval, 1},
		{KeyQuorumLossTimeout, &c.QuorumLossTimeout, 1},
		{KeyDrainTimeout, &c.DrainTimeout, 1},
		{KeyClientConnectDelay, &c.ClientConnectDelay, 0},
		{KeyClientReconnectDelay, &c.ClientReconnectDelay, 0},
		{KeyClientPrimaryRetryDelay, &c.ClientPrimaryRetryDelay, 0},
		{KeyClientRequestTimeout, &c.ClientRequestTimeout, 1},
		{KeyCheckpointTimeInterval, &c.CheckpointTime, 1},
		{KeyTransferHistoryAge, &c.TransferHistoryAge, 1},
	}
	for _, d := range durations {
		if *d.dst, err = l.duration(d.key, d.min); err != nil {
			return err
		}
	}
	ints := []struct {
		key string
		dst *int
		min int
	}{
		{KeyClientConnectAttempts, &c.ClientConnectAttempts, 1},
		{KeyClientReconnectAttempts, &c.ClientReconnectAttempts, 1},
		{KeyClientPrimaryRetries, &c.ClientPrimaryRetries, 0},
		{KeyMaxSourceTransfers, &c.MaxSourceTransfers, 1},
		{KeyMaxDestinationTransfers, &c.MaxDestinationTransfers, 1},
		{KeyMaxQueuedTransfers, &c.MaxQueuedTransfers, 1},
		{KeyMaxFilesPerTransfer, &c.MaxFilesPerTransfer, 1},
		{KeyTransferHistoryCount, &c.TransferHistoryCount, 0},
	}
	for _, i := range ints {
		n, err := l.integer(i.key, uint64(i.min), uint64(maxInt))
		if err != nil {
			return err
		}
		*i.dst = int(n)
	}
	if c.RaftSnapshotThreshold, err = l.integer(KeyRaftSnapshotThreshold, 1, ^uint64(0)); err != nil {
		return err
	}

	if err := l.loadTransfers(); err != nil {
		return err
	}

	// relations between durations
	if c.StandbyStatusDiscardTime <= c.StandbyStatusPublishInterval {
		return l.errorf(KeyStandbyStatusDiscardTime, "must be larger than %s (%s), or a standby would be forgotten between two of its reports",
			KeyStandbyStatusPublishInterval, formatDuration(c.StandbyStatusPublishInterval))
	}
	if c.RaftElectionTimeout < c.RaftHeartbeatTimeout {
		return l.errorf(KeyRaftElectionTimeout, "must not be smaller than %s (%s)",
			KeyRaftHeartbeatTimeout, formatDuration(c.RaftHeartbeatTimeout))
	}
	if c.RaftLeaderLeaseTimeout > c.RaftHeartbeatTimeout {
		return l.errorf(KeyRaftLeaderLeaseTimeout, "must not be larger than %s (%s), so that a deposed active steps down before another can be elected",
			KeyRaftHeartbeatTimeout, formatDuration(c.RaftHeartbeatTimeout))
	}
	if c.RaftCommitTimeout > c.RaftHeartbeatTimeout {
		return l.errorf(KeyRaftCommitTimeout, "must not be larger than %s (%s)",
			KeyRaftHeartbeatTimeout, formatDuration(c.RaftHeartbeatTimeout))
	}

	// quorumLossAction, quorumLossTimeout
	c.QuorumLossAction = defaultOf(KeyQuorumLossAction)
	if v, ok := l.value(KeyQuorumLossAction); ok {
		switch lv := strings.ToLower(v); lv {
		case QuorumLossRetry, QuorumLossExit:
			c.QuorumLossAction = lv
		default:
			return l.errorf(KeyQuorumLossAction, "%q is not retry or exit", v)
		}
	}
	least := time.Duration(math.MaxInt64) // 2 × (heartbeat + election) if it does not overflow
	if c.RaftHeartbeatTimeout <= math.MaxInt64/2-c.RaftElectionTimeout {
		least = 2 * (c.RaftHeartbeatTimeout + c.RaftElectionTimeout)
	}
	if c.QuorumLossAction == QuorumLossExit && c.QuorumLossTimeout < least {
		return l.errorf(KeyQuorumLossTimeout, "%s is too short; it must be at least 2 × (%s + %s) = %s, or an ordinary election could end the instance",
			formatDuration(c.QuorumLossTimeout), KeyRaftHeartbeatTimeout, KeyRaftElectionTimeout, formatDuration(least))
	}

	// logLevel
	c.LogLevel = defaultOf(KeyLogLevel)
	if v, ok := l.value(KeyLogLevel); ok {
		lv := strings.ToLower(v)
		switch lv {
		case "trace", "debug", "info", "warn", "error":
			c.LogLevel = lv
		default:
			return l.errorf(KeyLogLevel, "%q is not one of trace, debug, info, warn, error", v)
		}
	}

	// auditLog
	if v, ok := l.value(KeyAuditLog); ok {
		if !filepath.IsAbs(v) {
			v = filepath.Join(c.Dir, v)
		}
		c.AuditLog = filepath.Clean(v)
	}

	if err := l.loadTLS(); err != nil {
		return err
	}

	// agent.NAME.instances, agent.NAME.alternates, alternateAfter, acceptFrom
	if err := l.loadRemoteAgents(); err != nil {
		return err
	}
	if err := l.loadAlternates(); err != nil {
		return err
	}
	if err := l.loadAlternateAfter(); err != nil {
		return err
	}
	if err := l.loadAcceptFrom(); err != nil {
		return err
	}
	if err := l.loadSFTP(); err != nil {
		return err
	}
	if err := l.loadClientAlternates(); err != nil {
		return err
	}

	l.groupWarnings()
	return nil
}

const maxInt = int(^uint(0) >> 1)

// checkKeys warns about keys Load does not know, and about values that look
// like ${...} expansions, which are not performed.
func (l *checker) checkKeys() {
	for _, k := range l.props.Keys() {
		if _, known := LookupKey(k); !known {
			if s := suggest(k); s != "" {
				l.warnf("unknown key %q (ignored; did you mean %q?)", k, s)
			} else {
				l.warnf("unknown key %q (ignored)", k)
			}
			continue
		}
		if v, _ := l.props.Get(k); strings.Contains(v, "${") {
			l.warnf("%s: value %q contains \"${\"; ftagent does not expand variables, the value is used as written", k, strings.TrimSpace(v))
		}
	}
}

// suggest returns the known key closest to an unknown one, or "".
//
// A Pattern key is compared with the unknown key in the form it would have
// with the unknown key's own name in it, taking the name to be what lies
// between the first and the last '.', so that "agent.PAYMENTS.instancez"
// suggests "agent.PAYMENTS.instances" rather than the pattern itself.
func suggest(unknown string) string {
	best, bestDist := "", 3 // suggest only within an edit distance of 2
	for _, k := range Keys {
		name := k.Name
		if k.Pattern {
			first, last := strings.Index(unknown, "."), strings.LastIndex(unknown, ".")
			if last-first < 2 {
				continue // no name to put in the pattern
			}
			name = k.withName(unknown[first+1 : last])
		}
		if strings.EqualFold(name, unknown) {
			return name
		}
		if d := editDistance(strings.ToLower(unknown), strings.ToLower(name)); d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// duration reads a duration key (or its default) and checks it is >= min.
func (l *checker) duration(key string, minimum time.Duration) (time.Duration, error) {
	v, ok := l.value(key)
	if !ok {
		v = defaultOf(key)
	}
	d, err := ParseDuration(v)
	if err != nil {
		return 0, l.errorf(key, "%v", err)
	}
	switch {
	case d < minimum && minimum == 1:
		return 0, l.errorf(key, "must be larger than 0")
	case d < minimum:
		return 0, l.errorf(key, "%s is too short; the minimum is %s", formatDuration(d), formatDuration(minimum))
	}
	return d, nil
}

// integer reads a non-negative decimal integer key (or its default) and
// checks it is within [minimum, maximum].
func (l *checker) integer(key string, minimum, maximum uint64) (uint64, error) {
	v, ok := l.value(key)
	if !ok {
		v = defaultOf(key)
	}
	if strings.HasPrefix(v, "-") {
		return 0, l.errorf(key, "%q: must not be negative", v)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, l.errorf(key, "%q is too large", v)
		}
		return 0, l.errorf(key, "%q is not a whole number", v)
	}
	if n < minimum {
		return 0, l.errorf(key, "must be at least %d", minimum)
	}
	if n > maximum {
		return 0, l.errorf(key, "%q is too large", v)
	}
	return n, nil
}

// Values of quorumLossAction.
const (
	QuorumLossRetry = "retry" // keep running and rejoin (the default)
	QuorumLossExit  = "exit"  // exit with its own status, for a supervisor to restart
)

// RecoverForever is the TransferRecoveryTimeout of `transferRecoveryTimeout=-1`:
// a recovering transfer is retried until it succeeds or is cancelled. Any
// negative timeout means the same; test with `< 0`.
const RecoverForever time.Duration = -1

// minCheckpointBytes is the smallest checkpointInterval: smaller intervals
// would spend more time in fsync and raft commits than in copying.
const minCheckpointBytes = 64 << 10

// loadTransfers reads the transfer keys that need more than the generic
// duration and integer checks.
func (l *checker) loadTransfers() error {
	c := l.c

	// transferRoot
	root, ok := l.value(KeyTransferRoot)
	switch {
	case !ok:
		root = c.Dir
	case !filepath.IsAbs(root):
		root = filepath.Join(c.Dir, root)
	}
	c.TransferRoot = filepath.Clean(root)

	// sandboxRoot
	if err := l.loadSandboxRoot(); err != nil {
		return err
	}

	// transferRecoveryTimeout
	v, ok := l.value(KeyTransferRecoveryTimeout)
	if !ok {
		v = defaultOf(KeyTransferRecoveryTimeout)
	}
	d, err := ParseRecoveryTimeout(v)
	if err != nil {
		return l.errorf(KeyTransferRecoveryTimeout, "%v", err)
	}
	c.TransferRecoveryTimeout = d

	// sizes
	if c.CheckpointBytes, err = l.size(KeyCheckpointInterval, minCheckpointBytes); err != nil {
		return err
	}
	if c.MaxBandwidth, err = l.size(KeyMaxBandwidth, 0); err != nil {
		return err
	}
	return nil
}

// loadSandboxRoot splits sandboxRoot on ':' (as IBM MQ MFT does on Unix)
// and on ','. Entries are kept as written apart from surrounding white
// space (and white space between a leading '!' and the path); resolving
// them is pkg/sandbox's job.
func (l *checker) loadSandboxRoot() error {
	v, ok := l.value(KeySandboxRoot)
	if !ok {
		return nil
	}
	var entries []string
	allowed := 0
	for i, raw := range splitAny(v, ":,") {
		n := i + 1
		entry := strings.TrimSpace(raw)
		path, deny := strings.CutPrefix(entry, "!")
		path = strings.TrimSpace(path)
		switch {
		case entry == "":
			return l.errorf(KeySandboxRoot, "entry %d is empty (check for a stray ':' or ',')", n)
		case path == "":
			return l.errorf(KeySandboxRoot, "entry %d %q: no path after '!'", n, entry)
		case strings.HasPrefix(path, "!"):
			return l.errorf(KeySandboxRoot, "entry %d %q: more than one '!'", n, entry)
		}
		if deny {
			entry = "!" + path
		} else {
			allowed++
		}
		entries = append(entries, entry)
	}
	if allowed == 0 {
		return l.errorf(KeySandboxRoot, "%q has only denied ('!') entries; list at least one root to allow (for example %s itself, \".\")", v, KeyTransferRoot)
	}
	l.c.SandboxRoot = entries
	return nil
}

// splitAny splits s at every occurrence of any byte of seps, keeping empty
// fields (so that a stray separator can be reported).
func splitAny(s, seps string) []string {
	var out []string
	for {
		i := strings.IndexAny(s, seps)
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
}

// size reads a size key (or its default) and checks it is >= minimum.
func (l *checker) size(key string, minimum int64) (int64, error) {
	v, ok := l.value(key)
	if !ok {
		v = defaultOf(key)
	}
	n, err := ParseSize(v)
	if err != nil {
		return 0, l.errorf(key, "%v", err)
	}
	if n < minimum {
		return 0, l.errorf(key, "%s is too small; the minimum is %s", formatSize(n), formatSize(minimum))
	}
	return n, nil
}

// validName reports whether s is a usable agent or instance name. "." and
// ".." are refused because instance names become directory names.
func validName(s string) bool {
	return nameRE.MatchString(s) && s != "." && s != ".."
}

// splitList splits a comma-separated list and trims each entry. It returns
// nil for an empty value.
func splitList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// loadInstances reads this agent's own instances.
func (l *checker) loadInstances() error {
	v, ok := l.value(KeyInstances)
	if !ok {
		return l.errorf(KeyInstances, "required: a comma-separated list of name@host:port, e.g. ha1@host1:7101,ha2@host2:7101,ha3@host3:7101")
	}
	instances, err := l.parseInstances(KeyInstances, v)
	if err != nil {
		return err
	}
	l.c.Instances = instances
	return nil
}

// parseInstances checks v, the non-empty value of key (instances or an
// agent.NAME.instances), as a comma-separated list of name@host:port and
// returns its entries in order. Both keys describe a group of instances in
// the same way, so they are held to the same rules, and errors name the
// key they are about. Each address is recorded in l.addrs, so that an
// address listed under two keys is refused as well as one listed twice
// under one key.
func (l *checker) parseInstances(key, v string) ([]Instance, error) {
	if l.addrs == nil {
		l.addrs = map[string]addrOwner{}
	}
	var instances []Instance
	byName := map[string]int{} // lower-case name -> entry number
	for i, entry := range splitList(v) {
		n := i + 1
		if entry == "" {
			return nil, l.errorf(key, "entry %d is empty (check for a stray comma)", n)
		}
		name, addr, found := strings.Cut(entry, "@")
		name, addr = strings.TrimSpace(name), strings.TrimSpace(addr)
		switch {
		case !found:
			return nil, l.errorf(key, "entry %d %q: missing '@' (want name@host:port)", n, entry)
		case name == "":
			return nil, l.errorf(key, "entry %d %q: empty instance name (want name@host:port)", n, entry)
		case !validName(name):
			return nil, l.errorf(key, "entry %d %q: instance name %q may contain only letters, digits, '.', '_' and '-'", n, entry, name)
		}
		canon, err := checkAddress(addr)
		if err != nil {
			return nil, l.errorf(key, "entry %d %q: %v", n, entry, err)
		}
		if prev, dup := byName[strings.ToLower(name)]; dup {
			return nil, l.errorf(key, "instance name %q is listed twice (entries %d and %d; names are compared ignoring case)", name, prev, n)
		}
		byName[strings.ToLower(name)] = n
		if prev, dup := l.addrs[canon]; dup {
			where := ""
			if prev.key != key {
				where = " in " + prev.key
			}
			return nil, l.errorf(key, "address %q of %q is also the address of %q%s; each instance needs its own host:port",
				addr, name, prev.name, where)
		}
		l.addrs[canon] = addrOwner{key: key, name: name}
		instances = append(instances, Instance{Name: name, Address: addr})
	}
	return instances, nil
}

// checkAddress checks a host:port and returns a canonical form used to
// detect duplicates (lower-case host or normalised IP, decimal port).
func checkAddress(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("empty address (want name@host:port)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q is not host:port", addr)
	}
	if host == "" {
		return "", fmt.Errorf("address %q has no host", addr)
	}
	if port == "" {
		return "", fmt.Errorf("address %q has no port", addr)
	}
	for _, r := range port {
		if r < '0' || r > '9' {
			return "", fmt.Errorf("port %q is not a number", port)
		}
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("port %s is out of range 1-65535", port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.Unmap().String(), strconv.FormatUint(p, 10)), nil
	}
	if !validHostName(host) {
		return "", fmt.Errorf("host %q is neither an IP address nor a valid host name", host)
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.FormatUint(p, 10)), nil
}

// validHostName accepts DNS-style names: dot-separated labels of 1-63
// letters, digits, '-' or '_', not starting or ending with '-'.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}

func (l *checker) loadWitnesses() error {
	v, _ := l.value(KeyWitnessInstances)
	seen := map[string]bool{}
	for i, w := range splitList(v) {
		if w == "" {
			return l.errorf(KeyWitnessInstances, "entry %d is empty (check for a stray comma)", i+1)
		}
		idx := -1
		for j := range l.c.Instances {
			if l.c.Instances[j].Name == w {
				idx = j
				break
			}
		}
		if idx < 0 {
			return l.errorf(KeyWitnessInstances, "%q is not one of the instances (%s)", w, strings.Join(l.c.names(), ", "))
		}
		if seen[w] {
			l.warnf("%s: %q is listed more than once", KeyWitnessInstances, w)
		}
		seen[w] = true
		l.c.Instances[idx].Witness = true
	}
	if len(l.c.Instances) > 0 && len(seen) == len(l.c.Instances) {
		return l.errorf(KeyWitnessInstances, "every instance is a witness; at least one instance must be able to become active")
	}
	return nil
}

func (l *checker) loadHighlyAvailable() error {
	n := len(l.c.Instances)
	v, ok := l.value(KeyHighlyAvailable)
	if !ok {
		l.c.HighlyAvailable = n > 1
		return nil
	}
	switch strings.ToLower(v) {
	case "true":
		l.c.HighlyAvailable = true
	case "false":
		if n > 1 {
			return l.errorf(KeyHighlyAvailable, "false, but %d instances are listed; an agent that is not highly available has exactly one instance", n)
		}
		l.c.HighlyAvailable = false
	default:
		return l.errorf(KeyHighlyAvailable, "%q is not true or false", v)
	}
	return nil
}

// groupWarnings points out groups that cannot fail over.
func (l *checker) groupWarnings() {
	c := l.c
	if !c.HighlyAvailable {
		return
	}
	var active []string
	for _, in := range c.Instances {
		if !in.Witness {
			active = append(active, in.Name)
		}
	}
	if len(active) == 1 {
		l.warnf("%s: only %q can become active; there is no standby to fail over to", KeyInstances, active[0])
	}
	if len(c.Instances) == 2 {
		l.warnf("%s: a group of 2 instances stops when either one is lost (raft needs a majority); add a third instance, which may be a witness, to survive the loss of one host", KeyInstances)
	}
}

// names returns the instance names in listed order.
func (c *Config) names() []string {
	out := make([]string, len(c.Instances))
	for i, in := range c.Instances {
		out[i] = in.Name
	}
	return out
}

// hostname is os.Hostname; tests replace it.
var hostname = os.Hostname

// displayFile is the file name used in messages.
func (c *Config) displayFile() string {
	if c.file != "" {
		return c.file
	}
	return c.Path
}

// Select resolves which instance this process is: override (from --instance)
// if non-empty, else the instanceName property, else os.Hostname(). It is an
// *Error (Key "instanceName") if that name is not in Instances; the message
// names the known names.
//
// Names are matched exactly first, then ignoring case. When the name comes
// from the host name and is a fully qualified name ("host1.example.com")
// that is not listed, its first label ("host1") is tried as well.
func (c *Config) Select(override string) (Instance, error) {
	var name, source string
	switch {
	case override != "":
		name, source = override, "from --instance"
	case c.InstanceName != "":
		name, source = c.InstanceName, "from the instanceName property"
	default:
		h, err := hostname()
		if err != nil || h == "" {
			msg := "not set, and the host name is unknown"
			if err != nil {
				msg += ": " + err.Error()
			}
			return Instance{}, &Error{File: c.displayFile(), Key: KeyInstanceName, Msg: msg + "; use --instance or set instanceName", err: err}
		}
		name, source = h, "the host name"
	}
	candidates := []string{name}
	if source == "the host name" {
		if short, _, found := strings.Cut(name, "."); found && short != "" {
			candidates = append(candidates, short)
		}
	}
	for _, cand := range candidates {
		for _, in := range c.Instances {
			if in.Name == cand {
				return in, nil
			}
		}
		for _, in := range c.Instances {
			if strings.EqualFold(in.Name, cand) {
				return in, nil
			}
		}
	}
	hint := ""
	if source == "the host name" {
		hint = "; use --instance or set instanceName"
	}
	return Instance{}, &Error{File: c.displayFile(), Key: KeyInstanceName,
		Msg: fmt.Sprintf("%q (%s) is not one of the instances (%s)%s", name, source, strings.Join(c.names(), ", "), hint)}
}

// Addresses returns every instance address in the listed order (for clients).
func (c *Config) Addresses() []string {
	out := make([]string, len(c.Instances))
	for i, in := range c.Instances {
		out[i] = in.Address
	}
	return out
}

// InstanceDataDir returns <DataDirectory>/<name>.
func (c *Config) InstanceDataDir(name string) string {
	return filepath.Join(c.DataDirectory, name)
}

// PIDFile is where the process running instance name writes its PID while
// it runs: <dataDirectory>/<name>/ftagent.pid, removed when it stops
// cleanly (a crash leaves it; the next start overwrites it).
func (c *Config) PIDFile(name string) string {
	return filepath.Join(c.InstanceDataDir(name), "ftagent.pid")
}

// CheckDataDirectory creates <DataDirectory>/<name> (0o750, parents
// included) if missing and proves it is writable by creating and removing a
// temporary file; on failure an *Error with Key "dataDirectory".
func (c *Config) CheckDataDirectory(name string) error {
	fail := func(err error, format string, args ...any) error {
		return &Error{File: c.displayFile(), Key: KeyDataDirectory, Msg: fmt.Sprintf(format, args...), err: err}
	}
	if !validName(name) {
		return fail(nil, "instance name %q cannot name a directory", name)
	}
	if c.DataDirectory == "" {
		return fail(nil, "not set")
	}
	dir := c.InstanceDataDir(name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fail(err, "cannot create %s: %v", dir, causeOf(err))
	}
	f, err := os.CreateTemp(dir, ".ftagent-write-check-*")
	if err != nil {
		return fail(err, "%s is not writable: %v", dir, causeOf(err))
	}
	tmp := f.Name()
	_, werr := f.Write([]byte("ftagent\n"))
	cerr := f.Close()
	rerr := os.Remove(tmp)
	for _, err := range []error{werr, cerr} {
		if err != nil {
			return fail(err, "%s is not writable: %v", dir, causeOf(err))
		}
	}
	if rerr != nil {
		return fail(rerr, "cannot remove test file %s: %v", tmp, causeOf(rerr))
	}
	return nil
}

// causeOf strips the operation and path from an *os.PathError so that
// messages do not repeat the path.
func causeOf(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadTLS reads tlsMode and the TLS file paths. Whether the files exist
// and hold what they must is checked when they are used (an instance's
// start, a command's first connection), not by Load.
func (l *checker) loadTLS() error {
	c := l.c
	c.TLSMode = defaultOf(KeyTLSMode)
	if v, ok := l.value(KeyTLSMode); ok {
		if err := CheckTLSMode(v); err != nil {
			return l.errorf(KeyTLSMode, "%v", err)
		}
		c.TLSMode = v
	}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{KeyTLSCertificate, &c.TLSCertificate}, {KeyTLSPrivateKey, &c.TLSPrivateKey}, {KeyTLSCA, &c.TLSCA}, {KeyTLSPeerCA, &c.TLSPeerCA},
		{KeyClientCertificate, &c.ClientCertificate}, {KeyClientPrivateKey, &c.ClientPrivateKey},
	} {
		if v, ok := l.value(f.key); ok {
			if !filepath.IsAbs(v) {
				v = filepath.Join(c.Dir, v)
			}
			*f.dst = filepath.Clean(v)
		}
	}
	if (c.ClientCertificate == "") != (c.ClientPrivateKey == "") {
		return l.errorf(KeyClientCertificate, "%s and %s go together: set both or neither", KeyClientCertificate, KeyClientPrivateKey)
	}
	return nil
}

// TLSFiles are the instance's TLS file paths, with InstancePlaceholder
// replaced by its name.
func (c *Config) TLSFiles(instance string) (cert, key, ca string) {
	sub := func(p string) string { return strings.ReplaceAll(p, InstancePlaceholder, instance) }
	return sub(c.TLSCertificate), sub(c.TLSPrivateKey), sub(c.TLSCA)
}

// CheckTLSMode says why v is not a tlsMode, nil when it is one.
func CheckTLSMode(v string) error {
	switch v {
	case TLSRequired, TLSOptional, TLSDisabled:
		return nil
	}
	return fmt.Errorf("%q is not required, optional or disabled", v)
}

// fileKeyError is an error about a file that a property (or an
// environment variable) names, such as pkg/trust's FileError.
type fileKeyError interface {
	error
	FileKey() (key, path, reason string)
}

// FileError is err, an error about a file that key names (a fileKeyError),
// as an *Error of file naming that key; other errors as an *Error of file.
// A key that is an environment variable (FTAGENT_...) is reported as of
// the environment rather than of file.
func FileError(file string, err error) error {
	var fe fileKeyError
	if !errors.As(err, &fe) {
		return &Error{File: file, Msg: err.Error(), err: err}
	}
	key, path, msg := fe.FileKey()
	if path != "" {
		msg = path + ": " + msg
	}
	if strings.HasPrefix(key, "FTAGENT_") {
		file = "environment"
	}
	return &Error{File: file, Key: key, Msg: msg, err: err}
}

// maxRemoteAgentName is the longest name of another agent: pkg/trust's
// limit on the names in certificates. It is looser than maxAgentName,
// which this agent's own name keeps for IBM MQ MFT's sake.
const maxRemoteAgentName = 64

// checkAgentName says why s cannot name another agent, nil when it can.
// It is pkg/trust's CheckName rule, restated here rather than imported so
// that config, which every command loads, stays free of the TLS code (as
// FileError does through fileKeyError): a name that rule refuses could
// never match the agent of a certificate, so it is refused when the file
// is loaded instead of when a transfer is refused. TestAgentNameRule keeps
// the two in step.
func checkAgentName(s string) error {
	switch {
	case s == "":
		return errors.New("empty agent name")
	case len(s) > maxRemoteAgentName:
		return fmt.Errorf("agent name %q is %d characters long; at most %d are allowed", s, len(s), maxRemoteAgentName)
	case !nameRE.MatchString(s):
		return fmt.Errorf("agent name %q may contain only letters, digits, '.', '_' and '-'", s)
	}
	return nil
}

// loadRemoteAgents reads every agent.NAME.instances key: the other agents
// that this agent may send files to, and where their instances listen. A
// key with an empty value is as if it were absent, as for any key, but its
// NAME is still checked.
func (l *checker) loadRemoteAgents() error {
	c := l.c
	pattern, _ := LookupKey(KeyAgentInstances)
	var names []string
	for _, k := range l.props.Keys() {
		if name, ok := pattern.nameIn(k); ok {
			names = append(names, name)
		}
	}
	// Sorted, so that RemoteAgents and the first error reported do not
	// depend on the order of the lines in the file.
	slices.Sort(names)
	for _, name := range names {
		key := AgentInstancesKey(name)
		if err := checkAgentName(name); err != nil {
			if name == "" {
				return l.errorf(key, "no agent name between %q and %q", agentKeyPrefix, agentKeySuffix)
			}
			return l.errorf(key, "%v", err)
		}
		if name == c.AgentName {
			return l.errorf(key, "names this agent itself; its instances are in %q", KeyInstances)
		}
		v, ok := l.value(key)
		if !ok {
			continue
		}
		instances, err := l.parseInstances(key, v)
		if err != nil {
			return err
		}
		c.RemoteAgents = append(c.RemoteAgents, RemoteAgent{Name: name, Instances: instances})
	}
	return nil
}

// loadAlternates reads every agent.NAME.alternates key, once
// RemoteAgents is loaded: NAME and each alternate must be agents that this
// agent sends to (with their own agent.NAME.instances), and an alternate
// may not have alternates of its own, so that a group and its alternates
// are one level deep and the order of moves is the order of one list. As
// for agent.NAME.instances, a key with an empty value is as if it were
// absent, but its NAME is still checked.
func (l *checker) loadAlternates() error {
	c := l.c
	pattern, _ := LookupKey(KeyAgentAlternates)
	var names []string
	for _, k := range l.props.Keys() {
		if name, ok := pattern.nameIn(k); ok {
			names = append(names, name)
		}
	}
	// Sorted, so that the first error reported does not depend on the
	// order of the lines in the file.
	slices.Sort(names)
	var primaries []string // the NAMEs with alternates, sorted
	for _, name := range names {
		key := AgentAlternatesKey(name)
		if err := checkAgentName(name); err != nil {
			if name == "" {
				return l.errorf(key, "no agent name between %q and %q", agentKeyPrefix, agentAlternatesSuffix)
			}
			return l.errorf(key, "%v", err)
		}
		if name == c.AgentName {
			return l.errorf(key, "names this agent itself; alternates are for the other agents that this agent sends to")
		}
		v, ok := l.value(key)
		if !ok {
			continue
		}
		ra := c.remoteAgent(name)
		if ra == nil {
			return l.errorf(key, "%q has no %s; alternates are only for an agent that this agent sends to", name, AgentInstancesKey(name))
		}
		alts, err := l.parseAlternates(key, name, v)
		if err != nil {
			return err
		}
		ra.Alternates = alts
		primaries = append(primaries, name)
	}
	// One level only: an alternate has no alternates of its own.
	for _, alt := range primaries {
		for _, name := range primaries {
			if slices.Contains(c.remoteAgent(name).Alternates, alt) {
				return l.errorf(AgentAlternatesKey(alt), "%q is itself an alternate of %q (in %s), and an alternate cannot have alternates of its own; list every alternate of %q, in order, in %s instead",
					alt, name, AgentAlternatesKey(name), name, AgentAlternatesKey(name))
			}
		}
	}
	return nil
}

// parseAlternates checks v, the non-empty value of key
// (agent.NAME.alternates), as a comma-separated list of agent names and
// returns them in order.
func (l *checker) parseAlternates(key, name, v string) ([]string, error) {
	c := l.c
	seen := map[string]int{} // alternate -> entry number
	alts := splitList(v)
	for i, alt := range alts {
		n := i + 1
		if alt == "" {
			return nil, l.errorf(key, "entry %d is empty (check for a stray comma)", n)
		}
		if err := checkAgentName(alt); err != nil {
			return nil, l.errorf(key, "entry %d: %v", n, err)
		}
		if alt == name {
			return nil, l.errorf(key, "entry %d %q is %q itself; an alternate must be another agent, one that shares no state with it", n, alt, name)
		}
		if alt == c.AgentName {
			return nil, l.errorf(key, "entry %d %q is this agent itself; transfers to %q cannot move to the agent that sends them", n, alt, name)
		}
		if prev, dup := seen[alt]; dup {
			return nil, l.errorf(key, "%q is listed twice (entries %d and %d)", alt, prev, n)
		}
		seen[alt] = n
		if c.remoteAgent(alt) == nil {
			return nil, l.errorf(key, "entry %d %q has no %s; an alternate is sent to as any other agent is, so its instances must be listed too", n, alt, AgentInstancesKey(alt))
		}
	}
	return alts, nil
}

// minAlternateAfter is the shortest alternateAfter: longer than a failover
// inside a group (an election, then the client's reconnect passes), which
// must never move transfers to an alternate.
const minAlternateAfter = 5 * time.Second

// loadAlternateAfter reads alternateAfter.
func (l *checker) loadAlternateAfter() error {
	d, err := l.duration(KeyAlternateAfter, 1)
	if err != nil {
		return err
	}
	if d < minAlternateAfter {
		return l.errorf(KeyAlternateAfter, "%s is too short; it must be at least %s, longer than a failover inside a group (an election, then the reconnect attempts), so that a failover never moves transfers to an alternate",
			formatDuration(d), formatDuration(minAlternateAfter))
	}
	l.c.AlternateAfter = d
	return nil
}

// loadAcceptFrom reads acceptFrom, the other agents that may send files to
// this agent. Names are compared exactly, as pkg/trust compares the agent
// of a certificate, so "ORDERS" and "orders" are two agents.
func (l *checker) loadAcceptFrom() error {
	c := l.c
	v, ok := l.value(KeyAcceptFrom)
	if !ok {
		return nil
	}
	seen := map[string]int{} // name -> entry number
	names := splitList(v)
	for i, name := range names {
		n := i + 1
		if name == "" {
			return l.errorf(KeyAcceptFrom, "entry %d is empty (check for a stray comma)", n)
		}
		if err := checkAgentName(name); err != nil {
			return l.errorf(KeyAcceptFrom, "entry %d: %v", n, err)
		}
		if name == c.AgentName {
			return l.errorf(KeyAcceptFrom, "entry %d %q is this agent itself; its own instances need no acceptFrom", n, name)
		}
		if prev, dup := seen[name]; dup {
			return l.errorf(KeyAcceptFrom, "%q is listed twice (entries %d and %d)", name, prev, n)
		}
		seen[name] = n
	}
	c.AcceptFrom = names
	return nil
}

// RemoteAgent returns the agent.NAME.instances entry whose NAME is exactly
// name (case-sensitive, as agent names in certificates are); ok is false
// when the file does not list that agent.
func (c *Config) RemoteAgent(name string) (RemoteAgent, bool) {
	for _, ra := range c.RemoteAgents {
		if ra.Name == name {
			return ra, true
		}
	}
	return RemoteAgent{}, false
}

// remoteAgent is RemoteAgent's entry itself, for Load to fill in; nil when
// there is none.
func (c *Config) remoteAgent(name string) *RemoteAgent {
	for i := range c.RemoteAgents {
		if c.RemoteAgents[i].Name == name {
			return &c.RemoteAgents[i]
		}
	}
	return nil
}

// Group returns the agents to which a transfer to agent name may go, in
// the order it moves through them: name itself, then its alternates
// (agent.NAME.alternates). It is just [name] when name has no alternates,
// and nil when the file does not list name (agent.NAME.instances); names
// are matched exactly (case-sensitive). The slice is the caller's own.
func (c *Config) Group(name string) []string {
	ra := c.remoteAgent(name)
	if ra == nil {
		return nil
	}
	return append([]string{name}, ra.Alternates...)
}

// Accepts reports whether acceptFrom lists agent, exactly
// (case-sensitive). It is false for every agent when acceptFrom is unset,
// and for this agent's own name, which acceptFrom cannot hold: whether a
// caller of this agent's own is let in is not acceptFrom's business.
func (c *Config) Accepts(agent string) bool {
	return slices.Contains(c.AcceptFrom, agent)
}

// SFTPPartner is an SFTP server that transfers may name as
// sftp://NAME/path (the sftp.NAME.* keys). File paths are absolute.
type SFTPPartner struct {
	Name, Address, User                        string
	IdentityFile, PassphraseFile, PasswordFile string
	KnownHostsFile                             string
	Root                                       string
	MaxConnections                             int
	Timeout, KeepAlive                         time.Duration
}

// loadSFTP reads the sftp.NAME.* keys: each partner needs an address, a
// user, a known-hosts file and a credential. The files are read when the
// instance starts (an unreadable one, or one others may read, stops it
// there), not here.
func (l *checker) loadSFTP() error {
	c := l.c
	names := map[string]bool{}
	for _, k := range l.props.Keys() {
		rest, ok := strings.CutPrefix(k, sftpKeyPrefix)
		if !ok {
			continue
		}
		if i := strings.LastIndex(rest, "."); i >= 0 {
			if _, known := LookupKey(k); known {
				names[rest[:i]] = true
			}
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	for _, name := range sorted {
		key := func(pattern string) string { return PatternKey(pattern, name) }
		if err := checkAgentName(name); err != nil {
			return l.errorf(key(KeySFTPAddress), "partner name: %v", err)
		}
		p := SFTPPartner{Name: name}
		var missing []string
		for _, f := range []struct {
			pattern string
			dst     *string
			file    bool
		}{
			{KeySFTPAddress, &p.Address, false}, {KeySFTPUser, &p.User, false},
			{KeySFTPIdentityFile, &p.IdentityFile, true}, {KeySFTPPassphraseFile, &p.PassphraseFile, true},
			{KeySFTPPasswordFile, &p.PasswordFile, true}, {KeySFTPKnownHostsFile, &p.KnownHostsFile, true},
			{KeySFTPRoot, &p.Root, false},
		} {
			v, ok := l.value(key(f.pattern))
			if !ok {
				continue
			}
			if f.file && !filepath.IsAbs(v) {
				v = filepath.Join(c.Dir, v)
			}
			*f.dst = v
		}
		for _, req := range []struct{ pattern, v string }{{KeySFTPAddress, p.Address}, {KeySFTPUser, p.User}, {KeySFTPKnownHostsFile, p.KnownHostsFile}} {
			if req.v == "" {
				missing = append(missing, key(req.pattern))
			}
		}
		if len(missing) > 0 {
			return l.errorf(missing[0], "SFTP partner %s needs %s", name, strings.Join(missing, ", "))
		}
		if _, port, err := net.SplitHostPort(p.Address); err != nil || port == "" {
			return l.errorf(key(KeySFTPAddress), "%q is not host:port", p.Address)
		}
		if p.IdentityFile == "" && p.PasswordFile == "" {
			return l.errorf(key(KeySFTPIdentityFile), "SFTP partner %s needs %s or %s (or both)", name, key(KeySFTPIdentityFile), key(KeySFTPPasswordFile))
		}
		if p.PassphraseFile != "" && p.IdentityFile == "" {
			return l.errorf(key(KeySFTPPassphraseFile), "is set without %s", key(KeySFTPIdentityFile))
		}
		if p.Root != "" && !strings.HasPrefix(p.Root, "/") {
			return l.errorf(key(KeySFTPRoot), "%q is not an absolute path on the server (leave it unset for the login directory)", p.Root)
		}
		n, err := l.integer(key(KeySFTPMaxConnections), 1, 64)
		if err != nil {
			return err
		}
		p.MaxConnections = int(n)
		if p.Timeout, err = l.duration(key(KeySFTPTimeout), time.Second); err != nil {
			return err
		}
		if p.KeepAlive, err = l.duration(key(KeySFTPKeepAlive), time.Second); err != nil {
			return err
		}
		c.SFTPPartners = append(c.SFTPPartners, p)
	}
	return nil
}

// loadClientAlternates reads alternates (the commands' alternate groups
// of this agent) and the agent.NAME.clientCertificate and
// agent.NAME.clientPrivateKey of the agents listed, once RemoteAgents is
// loaded.
func (l *checker) loadClientAlternates() error {
	c := l.c
	if v, ok := l.value(KeyAlternates); ok {
		alts, err := l.parseAlternates(KeyAlternates, c.AgentName, v)
		if err != nil {
			return err
		}
		c.Alternates = alts
	}
	for _, pattern := range []string{KeyAgentClientCertificate, KeyAgentClientPrivateKey} {
		doc, _ := LookupKey(pattern)
		for _, k := range l.props.Keys() {
			name, ok := doc.nameIn(k)
			if !ok {
				continue
			}
			if _, set := l.value(k); !set {
				continue
			}
			if c.remoteAgent(name) == nil {
				return l.errorf(k, "%q has no %s: the commands present this certificate to an alternate of this agent, whose instances must be listed", name, AgentInstancesKey(name))
			}
		}
	}
	for i := range c.RemoteAgents {
		ra := &c.RemoteAgents[i]
		certKey, keyKey := PatternKey(KeyAgentClientCertificate, ra.Name), PatternKey(KeyAgentClientPrivateKey, ra.Name)
		cert, certSet := l.value(certKey)
		key, keySet := l.value(keyKey)
		if certSet != keySet {
			missing := keyKey
			if keySet {
				missing = certKey
			}
			return l.errorf(missing, "not set, but %s is: set both (the certificate and its key), or neither", map[bool]string{true: certKey, false: keyKey}[certSet])
		}
		if !certSet {
			continue
		}
		if !filepath.IsAbs(cert) {
			cert = filepath.Join(c.Dir, cert)
		}
		if !filepath.IsAbs(key) {
			key = filepath.Join(c.Dir, key)
		}
		ra.ClientCertificate, ra.ClientPrivateKey = filepath.Clean(cert), filepath.Clean(key)
	}
	return nil
}
