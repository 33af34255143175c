package config

import "strings"

// Property names of agent.properties. Names are case-sensitive, as in Java
// properties files and IBM MQ MFT.
const (
	KeyAgentName        = "agentName"
	KeyHighlyAvailable  = "highlyAvailable"
	KeyInstances        = "instances"
	KeyWitnessInstances = "witnessInstances"
	KeyInstanceName     = "instanceName"
	KeyDataDirectory    = "dataDirectory"

	KeyStandbyStatusPublishInterval = "standbyStatusPublishInterval"
	KeyStandbyStatusDiscardTime     = "standbyStatusDiscardTime"

	KeyRaftHeartbeatTimeout   = "raftHeartbeatTimeout"
	KeyRaftElectionTimeout    = "raftElectionTimeout"
	KeyRaftLeaderLeaseTimeout = "raftLeaderLeaseTimeout"
	KeyRaftCommitTimeout      = "raftCommitTimeout"
	KeyRaftSnapshotThreshold  = "raftSnapshotThreshold"
	KeyRaftSnapshotInterval   = "raftSnapshotInterval"

	KeyConnectionRetryMaxInterval = "connectionRetryMaxInterval"
	KeyQuorumLossAction           = "quorumLossAction"
	KeyQuorumLossTimeout          = "quorumLossTimeout"
	KeyDrainTimeout               = "drainTimeout"

	KeyTransferRoot            = "transferRoot"
	KeySandboxRoot             = "sandboxRoot"
	KeyMaxSourceTransfers      = "maxSourceTransfers"
	KeyMaxDestinationTransfers = "maxDestinationTransfers"
	KeyMaxQueuedTransfers      = "maxQueuedTransfers"
	KeyMaxFilesPerTransfer     = "maxFilesPerTransfer"
	KeyTransferRecoveryTimeout = "transferRecoveryTimeout"
	KeyCheckpointInterval      = "checkpointInterval"
	KeyCheckpointTimeInterval  = "checkpointTimeInterval"
	KeyMaxBandwidth            = "maxBandwidth"
	KeyTransferHistoryCount    = "transferHistoryCount"
	KeyTransferHistoryAge      = "transferHistoryAge"

	KeyClientConnectAttempts   = "clientConnectAttempts"
	KeyClientConnectDelay      = "clientConnectDelay"
	KeyClientReconnectAttempts = "clientReconnectAttempts"
	KeyClientReconnectDelay    = "clientReconnectDelay"
	KeyClientPrimaryRetries    = "clientPrimaryRetries"
	KeyClientPrimaryRetryDelay = "clientPrimaryRetryDelay"
	KeyClientRequestTimeout    = "clientRequestTimeout"

	KeyLogLevel = "logLevel"
	KeyAuditLog = "auditLog"

	KeyTLSMode           = "tlsMode"
	KeyTLSCertificate    = "tlsCertificate"
	KeyTLSPrivateKey     = "tlsPrivateKey"
	KeyTLSCA             = "tlsCA"
	KeyTLSPeerCA         = "tlsPeerCA"
	KeyClientCertificate = "clientCertificate"
	KeyClientPrivateKey  = "clientPrivateKey"

	// KeyAgentInstances is a pattern key: the file writes one
	// agent.NAME.instances for each other agent NAME that this agent may
	// send files to (see AgentInstancesKey).
	KeyAgentInstances = agentKeyPrefix + NamePlaceholder + agentKeySuffix
	// KeyAgentAlternates is a pattern key: agent.NAME.alternates lists, in
	// order, the agents to which transfers to agent NAME move when NAME's
	// whole group is lost (see AgentAlternatesKey).
	KeyAgentAlternates = agentKeyPrefix + NamePlaceholder + agentAlternatesSuffix
	KeyAlternateAfter  = "alternateAfter"
	KeyAcceptFrom      = "acceptFrom"
	// KeyAlternates lists the alternate groups of this agent that the
	// commands turn to when none of its own instances answers (each an
	// agent with agent.NAME.instances).
	KeyAlternates = "alternates"
	// KeyAgentClientCertificate and KeyAgentClientPrivateKey are pattern
	// keys: the certificate the commands present to agent NAME, an
	// alternate of this agent (KeyAlternates).
	KeyAgentClientCertificate = agentKeyPrefix + NamePlaceholder + ".clientCertificate"
	KeyAgentClientPrivateKey  = agentKeyPrefix + NamePlaceholder + ".clientPrivateKey"

	// The sftp.NAME.* pattern keys describe SFTP partner NAME, a server
	// that transfers name as sftp://NAME/path (see SFTPKey).
	KeySFTPAddress        = sftpKeyPrefix + NamePlaceholder + ".address"
	KeySFTPUser           = sftpKeyPrefix + NamePlaceholder + ".user"
	KeySFTPIdentityFile   = sftpKeyPrefix + NamePlaceholder + ".identityFile"
	KeySFTPPassphraseFile = sftpKeyPrefix + NamePlaceholder + ".passphraseFile"
	KeySFTPPasswordFile   = sftpKeyPrefix + NamePlaceholder + ".passwordFile"
	KeySFTPKnownHostsFile = sftpKeyPrefix + NamePlaceholder + ".knownHostsFile"
	KeySFTPRoot           = sftpKeyPrefix + NamePlaceholder + ".root"
	KeySFTPMaxConnections = sftpKeyPrefix + NamePlaceholder + ".maxConnections"
	KeySFTPTimeout        = sftpKeyPrefix + NamePlaceholder + ".timeout"
	KeySFTPKeepAlive      = sftpKeyPrefix + NamePlaceholder + ".keepAlive"
)

const sftpKeyPrefix = "sftp."

// PatternKey is the pattern key pattern (a Pattern key's Name, such as
// KeySFTPAddress or KeyAgentClientCertificate) written for name, e.g.
// "sftp.PARTNER.address".
func PatternKey(pattern, name string) string {
	return strings.Replace(pattern, NamePlaceholder, name, 1)
}

// NamePlaceholder in the Name of a pattern key (KeyDoc.Pattern) stands for
// the name that the file writes in its place.
const NamePlaceholder = "<NAME>"

// The parts of KeyAgentInstances and KeyAgentAlternates around
// NamePlaceholder.
const (
	agentKeyPrefix        = "agent."
	agentKeySuffix        = ".instances"
	agentAlternatesSuffix = ".alternates"
)

// AgentInstancesKey is the key that lists the instances of agent name,
// e.g. "agent.PAYMENTS.instances", for messages that tell the user what to
// add to the file.
func AgentInstancesKey(name string) string {
	return agentKeyPrefix + name + agentKeySuffix
}

// AgentAlternatesKey is the key that lists the alternates of agent name,
// e.g. "agent.PAYMENTS.alternates", for messages that tell the user what
// to change in the file.
func AgentAlternatesKey(name string) string {
	return agentKeyPrefix + name + agentAlternatesSuffix
}

// TLS modes (tlsMode).
const (
	TLSRequired = "required"
	TLSOptional = "optional"
	TLSDisabled = "disabled"
)

// InstancePlaceholder in a TLS file path stands for the instance's name,
// so that one properties file names each instance's own certificate.
const InstancePlaceholder = "{instance}"

// KeyDoc describes one property of agent.properties.
type KeyDoc struct {
	Name     string // property name, e.g. "standbyStatusPublishInterval"
	Default  string // default as it would be written in the file; "" when required or computed (see Doc)
	Form     string // accepted forms, e.g. "duration > 0"
	Required bool
	Doc      string // one or two sentences

	// Pattern marks a key that the file may write any number of times,
	// each with its own name in place of the NamePlaceholder in Name
	// (KeyAgentInstances, KeyAgentAlternates).
	Pattern bool
}

// Keys lists every property Load understands, in the order the example file
// and the reference documentation present them. Any other key in the file is
// reported in Config.Warnings and otherwise ignored. The Default strings are
// the values Load applies when a key is absent or empty. A Pattern key
// stands for every key that its Name matches (see LookupKey).
var Keys = []KeyDoc{
	{Name: KeyAgentName, Required: true,
		Form: "1-28 characters: letters, digits, '.', '_', '-'",
		Doc:  "Name of the logical agent. Every instance of the agent uses the same name."},
	{Name: KeyHighlyAvailable, Default: "", // computed
		Form: "true or false",
		Doc:  "Whether the agent runs as a highly available group. Default: true when more than one instance is listed, false otherwise. false with more than one instance is an error."},
	{Name: KeyInstances, Required: true,
		Form: "comma-separated name@host:port",
		Doc:  "Every instance of the agent, in the order clients try them. The name identifies the instance (and its data directory); host:port is where it listens for the other instances and for clients."},
	{Name: KeyWitnessInstances, Default: "",
		Form: "comma-separated instance names",
		Doc:  "Instances that vote in elections but never become active and run no transfers. Each must be listed in instances; at least one instance must not be a witness."},
	{Name: KeyInstanceName, Default: "",
		Form: "an instance name",
		Doc:  "Which instance this process is. Default: the host name. The --instance flag overrides it. Usually left unset so that one identical file serves every host."},
	{Name: KeyDataDirectory, Required: true,
		Form: "directory path; relative paths resolve against the directory of agent.properties",
		Doc:  "Directory under which each instance keeps its own state in <dataDirectory>/<instance name> (raft log, snapshots). Each instance's directory must be on storage local to its host."},

	{Name: KeyStandbyStatusPublishInterval, Default: "300",
		Form: "duration > 0",
		Doc:  "How often a standby publishes its status to the active instance."},
	{Name: KeyStandbyStatusDiscardTime, Default: "600",
		Form: "duration > standbyStatusPublishInterval",
		Doc:  "The active instance forgets a standby whose last status is older than this."},

	{Name: KeyRaftHeartbeatTimeout, Default: "500ms",
		Form: "duration >= 5ms",
		Doc:  "Raft: time without contact from the leader after which a follower starts an election."},
	{Name: KeyRaftElectionTimeout, Default: "500ms",
		Form: "duration >= 5ms and >= raftHeartbeatTimeout",
		Doc:  "Raft: time a candidate waits for votes before starting a new election."},
	{Name: KeyRaftLeaderLeaseTimeout, Default: "250ms",
		Form: "duration >= 5ms and <= raftHeartbeatTimeout",
		Doc:  "Raft: time the leader stays leader without contact from a majority; a deposed active stops after this."},
	{Name: KeyRaftCommitTimeout, Default: "50ms",
		Form: "duration >= 1ms and <= raftHeartbeatTimeout",
		Doc:  "Raft: longest the leader waits before sending an append without new entries, so followers learn the commit index."},
	{Name: KeyRaftSnapshotThreshold, Default: "8192",
		Form: "integer >= 1",
		Doc:  "Raft: log entries between snapshots."},
	{Name: KeyRaftSnapshotInterval, Default: "120s",
		Form: "duration > 0",
		Doc:  "Raft: how often each instance checks whether raftSnapshotThreshold entries have accumulated and takes a snapshot (with jitter)."},

	{Name: KeyConnectionRetryMaxInterval, Default: "30s",
		Form: "duration > 0",
		Doc:  "Cap of the jittered back-off an instance uses while it cannot reach the other instances."},
	{Name: KeyQuorumLossAction, Default: "retry",
		Form: "retry or exit",
		Doc:  "What an instance does when it has no leader (it cannot reach a majority of the instances) for longer than quorumLossTimeout. retry: keep running with status STARTING and rejoin by itself. exit: end the process with exit status 3, for a supervisor (systemd Restart=on-failure) to restart it, as IBM MQ MFT agents in bindings mode do."},
	{Name: KeyQuorumLossTimeout, Default: "10s",
		Form: "duration > 0; with exit, >= 2 × (raftHeartbeatTimeout + raftElectionTimeout)",
		Doc:  "With quorumLossAction=exit: how long an instance may be without a leader, counted from its start or from when it last had one, before it exits. Ignored with retry."},
	{Name: KeyDrainTimeout, Default: "5m",
		Form: "duration > 0",
		Doc:  "Longest a normal stop of the active (ftstop, SIGTERM, SIGINT) waits for its running transfers to finish. Then it hands the lease over anyway: the transfers stop at their last checkpoints and the new active resumes them. ftstop -i, or a second SIGTERM or SIGINT, hands over at once."},

	{Name: KeyTransferRoot, Default: "", // computed
		Form: "directory path; relative paths resolve against the directory of agent.properties",
		Doc:  "Directory against which relative transfer paths resolve. Default: the directory of agent.properties. Every instance must see the same storage here; its existence is checked when an instance starts, not by Load."},
	{Name: KeySandboxRoot, Default: "",
		Form: "list of paths separated by ':' (or ','); each absolute or relative to transferRoot; a leading '!' denies",
		Doc:  "Roots under which every transfer path must lie after cleaning and resolving symbolic links; '!' entries carve out denied subtrees. Default: transferRoot alone."},
	{Name: KeyMaxSourceTransfers, Default: "25",
		Form: "integer >= 1",
		Doc:  "Most transfers the active runs at once as their source agent; the others wait in the queue, higher priority first, then in order of arrival."},
	{Name: KeyMaxDestinationTransfers, Default: "25",
		Form: "integer >= 1",
		Doc:  "Most transfers the active runs at once as their destination agent. A transfer between paths of this agent counts against both limits."},
	{Name: KeyMaxQueuedTransfers, Default: "1000",
		Form: "integer >= 1",
		Doc:  "Most transfers waiting in the queue; a request beyond it is refused with an error."},
	{Name: KeyMaxFilesPerTransfer, Default: "1000000",
		Form: "integer >= 1",
		Doc:  "Most files one transfer request may name (a recursive one counts every file of its tree); a request beyond it is refused with the reason, and what was recorded of it is discarded. Every instance keeps a transfer's files in memory, about 60 bytes a file plus its names (a million files: some 70 MiB of state on each instance): raise it with that in mind."},
	{Name: KeyTransferRecoveryTimeout, Default: "-1",
		Form: "-1 (retry forever), 0 (fail at once) or a duration > 0",
		Doc:  "How long a transfer in recovery (after a transient error such as an I/O error or a full disk) is retried before it fails. A transfer may override it."},
	{Name: KeyCheckpointInterval, Default: "64M",
		Form: "size >= 64K (bytes, or with a K, M or G suffix, 1024-based)",
		Doc:  "Bytes copied between checkpoints: at most this much is copied again after a failover."},
	{Name: KeyCheckpointTimeInterval, Default: "5s",
		Form: "duration > 0",
		Doc:  "Longest time between checkpoints of a running file, however slowly it is copied."},
	{Name: KeyMaxBandwidth, Default: "0",
		Form: "size per second (512K, 64M, 1G); 0 = unlimited",
		Doc:  "Agent-wide cap on the bytes per second copied by all running transfers together."},
	{Name: KeyTransferHistoryCount, Default: "1000",
		Form: "integer >= 0",
		Doc:  "Most finished (completed, failed or cancelled) transfers kept in the replicated state; older ones are forgotten, but none within 15 minutes of its end nor while a source of it is still to be deleted."},
	{Name: KeyTransferHistoryAge, Default: "168h",
		Form: "duration > 0",
		Doc:  "Finished transfers older than this are forgotten, even within transferHistoryCount."},

	{Name: KeyClientConnectAttempts, Default: "2",
		Form: "integer >= 1",
		Doc:  "Clients (ftagent show, ftstop, ...): passes over the whole instance list on first connect."},
	{Name: KeyClientConnectDelay, Default: "500ms",
		Form: "duration >= 0",
		Doc:  "Clients: pause between passes over the address list on first connect (addresses within a pass are tried back to back)."},
	{Name: KeyClientReconnectAttempts, Default: "4",
		Form: "integer >= 1",
		Doc:  "Clients: passes over the instance list when an established connection is lost."},
	{Name: KeyClientReconnectDelay, Default: "500ms",
		Form: "duration >= 0",
		Doc:  "Clients: pause between passes over the address list when reconnecting."},
	{Name: KeyClientPrimaryRetries, Default: "0",
		Form: "integer >= 0",
		Doc:  "Clients: extra attempts on the first (primary) address before trying the others (flag -fr)."},
	{Name: KeyClientPrimaryRetryDelay, Default: "500ms",
		Form: "duration >= 0",
		Doc:  "Clients: delay between retries of the primary address (flag -fd)."},
	{Name: KeyClientRequestTimeout, Default: "2s",
		Form: "duration > 0",
		Doc:  "Clients: time allowed for one request to an instance."},

	{Name: KeyLogLevel, Default: "info",
		Form: "trace, debug, info, warn or error (any case)",
		Doc:  "Least severe level that the agent logs."},
	{Name: KeyAuditLog, Default: "",
		Form: "path (relative to the properties file's directory); empty: off",
		Doc:  "File to which the instance appends one JSON line for every lease it takes and every write, truncation, rename and removal it makes in transfer storage, with the lease epoch it acted under, and for every admin action (stop, membership change, cancel) and every refused call, with the caller's identity. For diagnosis and the fault-injection checker; costs one write per data chunk."},

	{Name: KeyTLSMode, Default: TLSRequired,
		Form: "required, optional or disabled",
		Doc:  "required: every connection (raft and API alike) is TLS 1.3 with a certificate signed by tlsCA on both ends; an instance without usable TLS files refuses to start. optional: accepts TLS and plaintext and dials TLS (falling back to plaintext to a peer that does not speak it), only for the roll from disabled to required. disabled: plaintext, no authentication, for throw-away local trials only (a warning at start)."},
	{Name: KeyTLSCertificate, Default: "",
		Form: "PEM file path, relative to the properties file's directory; " + InstancePlaceholder + " stands for the instance name",
		Doc:  "The instance's certificate (naming ftagent://AGENT/instance/NAME; `ftagent tls init` makes them), followed by any intermediates. Required unless tlsMode=disabled. Re-read on SIGHUP and when the file changes."},
	{Name: KeyTLSPrivateKey, Default: "",
		Form: "PEM file path, as tlsCertificate",
		Doc:  "The private key of tlsCertificate. Required unless tlsMode=disabled."},
	{Name: KeyTLSCA, Default: "",
		Form: "PEM file path, as tlsCertificate",
		Doc:  "The CA certificates trusted for peers and clients (a bundle may hold several, e.g. the old and the new CA during a rotation). Required unless tlsMode=disabled."},
	{Name: KeyTLSPeerCA, Default: "",
		Form: "PEM file path, as tlsCertificate (optional)",
		Doc:  "The CA certificates of other agents' organisations (a bundle): a certificate they sign is trusted only for an identity of another agent (ftagent://PAYMENTS/instance/pay1), never for this agent's own instances or clients. Put another organisation's CA here rather than in tlsCA, which trusts a CA for every identity."},
	{Name: KeyClientCertificate, Default: "",
		Form: "PEM file path, as tlsCertificate",
		Doc:  "The certificate that ftagent and ftstop commands present (naming ftagent://AGENT/client/NAME with its role, or an instance). Default: tlsCertificate of the instance this host runs. FTAGENT_CLIENT_CERTIFICATE overrides it."},
	{Name: KeyClientPrivateKey, Default: "",
		Form: "PEM file path, as tlsCertificate",
		Doc:  "The private key of clientCertificate. FTAGENT_CLIENT_PRIVATE_KEY overrides it."},

	{Name: KeyAgentInstances, Default: "", Pattern: true,
		Form: "NAME: 1-64 letters, digits, '.', '_', '-', not this agent's own name; value: comma-separated name@host:port, as instances",
		Doc:  "Every instance of agent NAME, another agent that this agent may send files to, in the order they are tried. One key per agent; NAME is case-sensitive and must match the agentName of that agent. Default: none (this agent sends to no other agent)."},
	{Name: KeyAgentAlternates, Default: "", Pattern: true,
		Form: "NAME: an agent with its own agent.<NAME>.instances; value: comma-separated agent names, each with its own agent.<NAME>.instances, not NAME, not this agent's own name, none twice, none with alternates of its own",
		Doc:  "The agents, in order, to which transfers to agent NAME move when NAME's whole group is lost (unreachable for alternateAfter). An alternate shares no state with NAME: a file left unfinished at NAME starts again from byte 0 at the alternate. Default: none (transfers to NAME wait for NAME)."},
	{Name: KeyAlternateAfter, Default: "60s",
		Form: "duration >= 5s",
		Doc:  "How long a destination agent's group must stay unreachable (no instance answers through the client connect and reconnect attempts, or none is active) before its transfers move to its next alternate. At least 5s, so that a failover inside the group never moves them."},
	{Name: KeyAcceptFrom, Default: "",
		Form: "comma-separated agent names (1-64 letters, digits, '.', '_', '-'), not this agent's own name",
		Doc:  "The other agents whose instances may send files to this agent; their instance certificates must be signed by a CA in tlsCA. Default: none (this agent receives from no other agent)."},
	{Name: KeyAlternates, Default: "", Form: "comma-separated agent names, each with its own agent.<NAME>.instances; not this agent's own name, none twice",
		Doc: "The commands' (ftagent, ftstop) alternate groups of this agent, in order: other agents, sharing no state with this one, at another site. When no instance of this agent answers through the connect and reconnect attempts, a command asks the next group, and stays with the group that answered while it answers; ftagent show says which group answered. Default: none."},
	{Name: KeyAgentClientCertificate, Default: "", Pattern: true,
		Form: "PEM file; relative to the properties file's directory",
		Doc:  "The certificate the commands present to agent NAME, one of alternates: a client identity of that agent (ftagent tls init --agent NAME --clients ...). Default: clientCertificate, which names this agent and so is refused there unless NAME accepts it."},
	{Name: KeyAgentClientPrivateKey, Default: "", Pattern: true,
		Form: "PEM file",
		Doc:  "The private key of agent.NAME.clientCertificate. Set both or neither."},

	{Name: KeySFTPAddress, Default: "", Pattern: true,
		Form: "NAME: 1-64 letters, digits, '.', '_', '-'; value: host:port",
		Doc:  "Where SFTP partner NAME's server listens. Transfers name its files sftp://NAME/path, as a source or a destination. Required for each partner, with user and knownHostsFile."},
	{Name: KeySFTPUser, Default: "", Pattern: true,
		Form: "a user name",
		Doc:  "The user this agent logs in as on SFTP partner NAME's server."},
	{Name: KeySFTPIdentityFile, Default: "", Pattern: true,
		Form: "file path (mode 0600 or stricter); relative paths resolve against the directory of agent.properties",
		Doc:  "Private key (ed25519, RSA or ECDSA; OpenSSH or PEM form) for public-key authentication at partner NAME. Set this, passwordFile, or both."},
	{Name: KeySFTPPassphraseFile, Default: "", Pattern: true,
		Form: "file path (mode 0600 or stricter)",
		Doc:  "File holding the passphrase of identityFile, when it has one."},
	{Name: KeySFTPPasswordFile, Default: "", Pattern: true,
		Form: "file path (mode 0600 or stricter)",
		Doc:  "File holding the password for password authentication at partner NAME (one line)."},
	{Name: KeySFTPKnownHostsFile, Default: "", Pattern: true,
		Form: "file path, OpenSSH known_hosts format",
		Doc:  "The server's host key, as ssh-keyscan or ~/.ssh/known_hosts writes it. Required: a key that is not there (unknown host) or differs (changed key) fails the transfer at once, with the key's fingerprint in the reason; it is read again at each connection."},
	{Name: KeySFTPRoot, Default: "", Pattern: true,
		Form: "absolute path on the server",
		Doc:  "The server's directory that sftp://NAME/ paths resolve under (\"..\" is refused). Default: the login directory."},
	{Name: KeySFTPMaxConnections, Default: "1", Pattern: true,
		Form: "integer from 1 to 64",
		Doc:  "Most SSH connections the active opens to partner NAME, shared by its transfers, each with many requests in flight."},
	{Name: KeySFTPTimeout, Default: "30s", Pattern: true,
		Form: "duration >= 1s",
		Doc:  "Longest a connection's set-up (TCP, SSH, authentication) or the answer to a keep-alive may take; a connection that misses it is closed and its transfers retried (transferRecoveryTimeout)."},
	{Name: KeySFTPKeepAlive, Default: "15s", Pattern: true,
		Form: "duration >= 1s",
		Doc:  "How often the active sends a keep-alive on each connection to partner NAME."},
}

// LookupKey returns the description of a known key. A key that a Pattern
// key matches ("agent.PAYMENTS.instances") is known, whether or not the
// name in it is valid: Load reports a bad name as an error of that key
// rather than as an unknown key.
func LookupKey(name string) (KeyDoc, bool) {
	for _, k := range Keys {
		if k.Name == name {
			return k, true
		}
		if _, ok := k.nameIn(name); ok {
			return k, true
		}
	}
	return KeyDoc{}, false
}

// nameIn returns the part of key that stands in for NamePlaceholder when
// k is a Pattern key that key matches; ok is false otherwise. The name may
// be empty ("agent..instances"), for the caller to refuse.
func (k KeyDoc) nameIn(key string) (name string, ok bool) {
	if !k.Pattern {
		return "", false
	}
	prefix, suffix, _ := strings.Cut(k.Name, NamePlaceholder)
	if len(key) < len(prefix)+len(suffix) || !strings.HasPrefix(key, prefix) || !strings.HasSuffix(key, suffix) {
		return "", false
	}
	return key[len(prefix) : len(key)-len(suffix)], true
}

// withName is the Name of a Pattern key with name in place of
// NamePlaceholder.
func (k KeyDoc) withName(name string) string {
	return strings.Replace(k.Name, NamePlaceholder, name, 1)
}

// defaultOf returns the Default of a known key; it panics on an unknown
// name, which is a programming error caught by the tests.
func defaultOf(name string) string {
	k, ok := LookupKey(name)
	if !ok {
		panic("config: no such key " + name)
	}
	return k.Default
}
