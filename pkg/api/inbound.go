package api

import "github.com/ftagent/ftagent/pkg/transfer"

// The inbound API: what another agent's active asks of this agent's active
// when it sends it files (agent-to-agent transfers). Only instances of the
// agents named in acceptFrom reach it; the sending agent is the one the
// caller's certificate names, never a field of the request.
const (
	// PathInboundStatus is POST (InboundRef): what this agent holds of a
	// file (InboundStatus). It also presents the sender's lease epoch: a
	// newer one is recorded before the answer, and from then on the
	// sender's older actives are refused.
	PathInboundStatus = "/v1/inbound/status"
	// PathInboundData is PUT: the file's bytes from QueryInboundOffset on,
	// as the body (application/octet-stream), the request named by the
	// query (QueryInbound*). Answered (InboundStatus) once they are
	// durable here and recorded in this agent's log.
	PathInboundData = "/v1/inbound/data"
	// PathInboundCommit is POST (InboundCommit): check the digest of what
	// was written against the sender's, and rename the file into place.
	PathInboundCommit = "/v1/inbound/commit"
	// PathInboundRemove is POST (InboundRef): remove a file's .part (a
	// file failed or cancelled at the sender) and forget it.
	PathInboundRemove = "/v1/inbound/remove"
	// PathInboundMkdir is POST (InboundRef): make a directory (and its
	// parents) of a recursive transfer.
	PathInboundMkdir = "/v1/inbound/mkdir"
	// PathInboundEnd is POST (InboundRef without a path): the sender's
	// transfer has ended; the .part files of what was not committed are
	// removed.
	PathInboundEnd = "/v1/inbound/end"
	// PathInboundFiles is PUT: small files whole, each a line of JSON
	// (transfer.FileFrame) and its bytes, the transfer named by the query
	// (QueryInboundID, QueryInboundEpoch, QueryInboundOverwrite).
	// Answered (InboundFiles) once those committed are durable, in place
	// and recorded.
	PathInboundFiles = "/v1/inbound/files"
	// PathInboundHello is POST (no body): an accepted sender asks who
	// receives (InboundStatus's Receiver and ReceiverEpoch); nothing is
	// recorded.
	PathInboundHello = "/v1/inbound/hello"
	// PathAgents is GET (role monitor): the other agents this one sends
	// to (agent.NAME.instances), each asked now by this agent's active
	// ([]RemoteAgentView).
	PathAgents = "/v1/agents"
	// PathAgentsPrefer is POST (role admin, PreferRequest): the transfers
	// to an agent that moved to one of its alternates go back to the
	// agent's own group, each at its next file boundary (PreferResult).
	PathAgentsPrefer = "/v1/agents/prefer"
)

// PreferRequest is the body of PathAgentsPrefer.
type PreferRequest struct {
	Agent string `json:"agent"`
}

// PreferResult says how many transfers will return.
type PreferResult struct {
	Agent     string `json:"agent"`
	Transfers int    `json:"transfers"`
}

// RemoteAgentView is another agent as this agent's active reaches it.
type RemoteAgentView struct {
	Agent     string   `json:"agent"`
	Addresses []string `json:"addresses"`
	Reachable bool     `json:"reachable"`
	// Receiver is its active instance, at Address, under ReceiverEpoch;
	// RoundTrip the time of the question, in seconds.
	Receiver      string  `json:"receiver,omitempty"`
	ReceiverEpoch uint64  `json:"receiverEpoch,omitempty"`
	Address       string  `json:"address,omitempty"`
	RoundTrip     float64 `json:"roundTrip,omitempty"`
	// Error says why it could not be reached, or refused this agent.
	Error string `json:"error,omitempty"`
	// From is the instance of this agent that asked.
	From string `json:"from"`
	// Alternates are the agent's alternate groups (agent.NAME.alternates);
	// Moved, the groups that this agent's transfers to it, not ended,
	// moved to (none: they all go to the agent itself).
	Alternates []string         `json:"alternates,omitempty"`
	Moved      []transfer.Moved `json:"moved,omitempty"`
}

// InboundFiles is the answer of PathInboundFiles: each file's outcome, in
// the order sent.
type InboundFiles struct {
	Files         []InboundFileResult `json:"files"`
	Receiver      string              `json:"receiver,omitempty"`
	ReceiverEpoch uint64              `json:"receiverEpoch,omitempty"`
}

// InboundFileResult is one file's outcome: Code empty when committed.
type InboundFileResult struct {
	Path  string `json:"path"`
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// Query parameters of PathInboundData.
const (
	QueryInboundID     = "id"
	QueryInboundEpoch  = "epoch"
	QueryInboundPath   = "path"
	QueryInboundSize   = "size"
	QueryInboundOffset = "offset"
	// QueryInboundOverwrite=true: the destination may replace a file.
	QueryInboundOverwrite = "overwrite"
)

// InboundRef names a file (or, without Path, the transfer) of a sending
// agent's transfer, under the sender's lease epoch.
type InboundRef struct {
	ID    string `json:"id"`    // the sender's transfer id
	Epoch uint64 `json:"epoch"` // the sender's lease epoch
	// Path is the destination as the sender's request names it: relative
	// to this agent's transferRoot, or absolute; resolved within this
	// agent's sandbox.
	Path string `json:"path,omitempty"`
	// Size is the file's size, known to the sender (PathInboundStatus).
	Size int64 `json:"size,omitempty"`
	// Digest (PathInboundStatus) is the source's SHA-256 of a file the
	// sender started and has not seen committed: a file in place with it
	// and without a record is this transfer's, and is recorded so.
	Digest string `json:"digest,omitempty"`
}

// InboundCommit is the body of PathInboundCommit.
type InboundCommit struct {
	InboundRef
	Digest    string `json:"digest"` // SHA-256, hex, of the source as read
	Overwrite bool   `json:"overwrite,omitempty"`
}

// InboundStatus is what this agent holds of a file being received.
type InboundStatus struct {
	// Durable is the last offset durable and recorded here; -1 when no
	// .part is recorded. Resumable lists the offsets a write may start
	// at (0 always).
	Durable   int64   `json:"durable"`
	Resumable []int64 `json:"resumable"`
	Committed bool    `json:"committed,omitempty"`
	Digest    string  `json:"digest,omitempty"`
	// Exists: a file (or anything) has the destination's name.
	Exists bool `json:"exists,omitempty"`
	// Receiver is the instance that answered (this agent's active), and
	// ReceiverEpoch its lease epoch.
	Receiver      string `json:"receiver,omitempty"`
	ReceiverEpoch uint64 `json:"receiverEpoch,omitempty"`
}

// Codes of the inbound API's refusals (InboundError.Code), so that the
// sender sorts them without reading the words.
const (
	InboundStale      = "stale-sender" // an older epoch of the sender: it is deposed
	InboundPartLost   = "part-lost"    // no durable point at the offset: start the file again
	InboundExists     = "exists"       // the destination exists (overwrite=error)
	InboundDigest     = "digest"       // the digest of what was written differs
	InboundRefused    = "refused"      // permanent: outside the sandbox, a bad name, a bad request
	InboundNotAllowed = "not-allowed"  // the sending agent is not in acceptFrom
	InboundBusy       = "busy"         // transient: maxDestinationTransfers reached, disk full, I/O
)

// InboundError is the body of an inbound refusal.
type InboundError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}
