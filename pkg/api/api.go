// Package api is the client API of an agent as it travels on the wire: its
// paths, its query parameters, and the JSON bodies of requests and answers
// that both sides read. The server (pkg/agent) decodes and encodes these;
// the clients (pkg/agentclient, the tests and the benchmarks) send and read
// them. It holds no behaviour, so that neither side needs the other.
//
// Every instance serves every path. A request that belongs to the raft
// leader or to the active (the leader that holds the lease) is answered by
// another instance with 421 Misdirected Request and the leader's address in
// the Ftagent-Active header (client.ActiveHeader), or with 503 while there
// is none; a stopping active answers transfer requests with 503 too. Any
// other refusal is an Error body with a 4xx or 5xx status.
//
// A transfer's view lists a page of its files (QueryOffset, QueryLimit),
// the first DefaultLimit unless the client asks for another: no answer,
// and no view the agent builds for one, holds every file of a large
// transfer.
package api

import (
	"net/url"
	"time"
)

// Paths any instance answers itself.
const (
	PathInstance = "/v1/instance" // GET: this instance's own status (ha.InstanceStatus)
	// PathMetrics is GET: this instance's Prometheus metrics, in the text
	// format (role monitor; see docs/monitoring.md).
	PathMetrics = "/metrics"
	// PathStop is POST: stop this instance (StopRequest, answered with
	// StopResult), and GET: what its stop waits for (StopProgress). With
	// QueryTarget=TargetActive the request is for the active.
	PathStop = "/v1/stop"
	// PathMembership is GET: this instance's raft group (ha.Membership,
	// empty without raft state), asked by an instance that starts without
	// state before it forms a group.
	PathMembership = "/v1/membership"
)

// Paths the raft leader answers.
const (
	PathAgent   = "/v1/agent"   // GET: the agent as the leader sees it (ha.AgentView)
	PathStandby = "/v1/standby" // POST: a standby publishes its status (ha.InstanceStatus); 204
	// PathMembers is POST: add the instance of an ha.JoinRequest to the
	// group (ha.JoinResult); and GET: the group as the leader has it
	// (ha.Membership). MemberPath names one member.
	PathMembers = "/v1/members"
)

// MemberPath is DELETE: remove the named instance from the agent's raft
// group (ha.RemoveResult); the leader answers. A refusal (the leader itself,
// no such member, the group could not go on) is 409.
func MemberPath(name string) string { return PathMembers + "/" + url.PathEscape(name) }

// Paths the active answers.
const (
	// PathTransfers is GET: every transfer the agent keeps ([]transfer.View,
	// each with a window of its files: QueryOffset), and POST: create one
	// (CreateTransferRequest, answered with 201 and the transfer.View).
	// TransferPath and CancelPath name one transfer.
	PathTransfers = "/v1/transfers"
)

// TransferPath is GET: one transfer (transfer.View, with a window of its
// files: QueryOffset), as the active sees it.
func TransferPath(id string) string { return PathTransfers + "/" + url.PathEscape(id) }

// CancelPath is POST: cancel a transfer that has not ended (transfer.View,
// with the first DefaultLimit files).
func CancelPath(id string) string { return TransferPath(id) + "/cancel" }

// QueryTarget=TargetActive sends a PathStop request to the active: another
// instance answers 421 with a pointer.
const (
	QueryTarget  = "target"
	TargetActive = "active"
)

// Query parameters of GET TransferPath (and, but for QueryWait, of POST
// PathTransfers and of GET PathTransfers, where they apply to each
// transfer): what clients that follow a transfer need, cheaply. An agent
// that does not know them answers with the whole transfer at once.
const (
	// QueryFiles: transfer.FilesAll (the default), transfer.FilesNone
	// (files null), or transfer.FilesEnded (the files only once the
	// transfer has ended).
	QueryFiles = "files"
	// QueryOffset and QueryLimit select the files listed (a window, by
	// index in the transfer's order): QueryLimit of them (DefaultLimit
	// when absent, at most MaxLimit) from QueryOffset (0 when absent). The
	// view's filesTotal counts them all, and its nextOffset, when more
	// follow, is the QueryOffset of the next page. QueryDirOffset and
	// QueryDirLimit do the same for the directories (directories,
	// nextDirOffset).
	QueryOffset    = "offset"
	QueryLimit     = "limit"
	QueryDirOffset = "dirOffset"
	QueryDirLimit  = "dirLimit"
	// DefaultLimit keeps the transfers of a few files whole in one
	// answer, and a client that knows no window (an older one) gets the
	// first page of a large transfer; MaxLimit bounds one answer (about
	// 2 MB of JSON for 10,000 files).
	DefaultLimit = 1000
	MaxLimit     = 10000
	// QueryWait: a duration (Go syntax, at most MaxTransferWait); the
	// answer comes once the transfer has ended or the duration has passed.
	QueryWait = "wait"
	// MaxTransferWait bounds QueryWait.
	MaxTransferWait = 30 * time.Second
)

// Query parameters of GET PathTransfers that choose the transfers listed.
// With QueryCount or QueryAfter the answer is a TransferList (a page);
// without both, the array of every transfer that matches, as agents
// answered before the parameters existed.
const (
	// QueryState: the states listed, comma-separated (queued, running,
	// recovering, completed, failed, cancelled); all when absent.
	QueryState = "state"
	// QuerySince: transfers created at or after a time (RFC 3339) or
	// within a duration before now (Go syntax, e.g. 24h).
	QuerySince = "since"
	// QueryCount: at most this many transfers (1 to MaxLimit).
	QueryCount = "count"
	// QueryAfter: the transfers after the page whose TransferList.Next
	// this is, in creation order.
	QueryAfter = "after"
	// QueryDestAgent: only the transfers to this other agent; "-" only
	// those to the agent's own storage.
	QueryDestAgent = "destAgent"
)
