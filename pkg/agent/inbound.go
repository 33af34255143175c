package agent

// The inbound API (pkg/api/inbound.go): another agent's active sends files
// here. Only instances of the agents in acceptFrom reach it, and the
// sending agent is the one their certificate names.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ftagent/ftagent/pkg/agentlink"
	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/trust"
)

// SenderHeader names the sending agent when no certificate does (tlsMode
// disabled, where nobody is authenticated anyway).
const SenderHeader = "Ftagent-Sender"

// inboundIdle is how long a file's bytes may stop coming before the
// request is cut off (the server's read timeout is rolled forward while
// they come).
const inboundIdle = 30 * time.Second

// sender says which agent sends r, or why it may not send here.
func (in *Instance) sender(r *http.Request) (string, string) {
	c, err := in.callerOf(r)
	if err != nil {
		return "", "the client certificate: " + err.Error()
	}
	agent := r.Header.Get(SenderHeader)
	if !c.open {
		if c.id.Kind != "instance" || c.id.Name == "" {
			return "", fmt.Sprintf("%s is not an instance of an agent: only other agents' instances send files here", c.id)
		}
		if agent != "" && agent != c.id.Agent {
			return "", fmt.Sprintf("%s says it sends for agent %s", c.id, agent)
		}
		agent = c.id.Agent
	}
	switch {
	case agent == "":
		return "", "no sending agent named (header " + SenderHeader + ")"
	case agent == in.cfg.AgentName:
		return "", "agent " + agent + " does not send files to itself through the inbound API"
	case !in.cfg.Accepts(agent):
		return "", fmt.Sprintf("agent %s is not in acceptFrom of agent %s", agent, in.cfg.AgentName)
	}
	return agent, ""
}

// inbound serves an inbound route: the sender checked (refusals audited),
// then h with its agent.
func (in *Instance) inbound(h func(w http.ResponseWriter, r *http.Request, agent string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		agent, why := in.sender(r)
		if why != "" {
			c, _ := in.callerOf(r)
			in.refused(r, c, why)
			writeJSON(w, http.StatusForbidden, api.InboundError{Error: why, Code: api.InboundNotAllowed})
			return
		}
		if in.transfers == nil || !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		h(w, r, agent)
	}
}

// inboundFailed answers an inbound refusal or error. A stale sender is
// audited: it is a deposed active of the other agent still at work.
func (in *Instance) inboundFailed(w http.ResponseWriter, r *http.Request, agent string, ref transfer.InboundRef, err error) {
	if errors.Is(err, transfer.ErrNotActive) {
		in.misdirected(w)
		return
	}
	var ie *transfer.InboundError
	if !errors.As(err, &ie) {
		// Transient: the lease moved, the log timed out, the request was
		// cut. The sender retries.
		in.log.Warn().Err(err).Str("sender", agent).Str("transfer", ref.ID).Str("file", ref.Path).Msg("inbound request failed")
		writeJSON(w, http.StatusServiceUnavailable, api.InboundError{Error: err.Error(), Code: api.InboundBusy})
		return
	}
	status := http.StatusConflict
	switch ie.Code {
	case transfer.InboundBusy:
		// Final, not 503: the client would try the other instances,
		// which point back here. The sender retries later.
		status = http.StatusTooManyRequests
	case transfer.InboundRefused:
		status = http.StatusUnprocessableEntity
	case transfer.InboundStale:
		c, _ := in.callerOf(r)
		who := c.String()
		if c.open {
			who = agent
		}
		if werr := in.trail.Security(time.Now(), audit.Record{Op: audit.OpRefused, Caller: who, Remote: r.RemoteAddr,
			Action: r.Method + " " + r.URL.Path, Target: agent + "/" + ref.ID, Result: ie.Error()}); werr != nil {
			in.log.Error().Err(werr).Msg("cannot write the audit log")
		}
		in.log.Warn().Str("sender", agent).Uint64("senderEpoch", ref.Epoch).Str("transfer", ref.ID).Str("reason", ie.Error()).Msg("inbound write refused: stale sender")
	}
	writeJSON(w, status, api.InboundError{Error: ie.Error(), Code: ie.Code})
}

func (in *Instance) inboundRoutes(mux *http.ServeMux) {
	ref := func(agent string, b api.InboundRef) transfer.InboundRef {
		return transfer.InboundRef{Agent: agent, ID: b.ID, Epoch: b.Epoch, Path: b.Path, Size: b.Size, Digest: b.Digest}
	}
	decode := func(w http.ResponseWriter, r *http.Request, v any) bool {
		// Read leniently: a newer sender may add fields.
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			writeJSON(w, http.StatusBadRequest, api.InboundError{Error: "bad inbound request: " + err.Error(), Code: api.InboundRefused})
			return false
		}
		return true
	}
	mux.HandleFunc("POST "+api.PathInboundStatus, in.inbound(func(w http.ResponseWriter, r *http.Request, agent string) {
		var b api.InboundRef
		if !decode(w, r, &b) {
			return
		}
		st, err := in.transfers.ReceiveStatus(r.Context(), ref(agent, b))
		if err != nil {
			in.inboundFailed(w, r, agent, ref(agent, b), err)
			return
		}
		writeJSON(w, http.StatusOK, api.InboundStatus{Durable: st.Durable, Resumable: st.Resumable, Committed: st.Committed,
			Digest: st.Digest, Exists: st.Exists, Receiver: in.self.Name, ReceiverEpoch: st.ReceiverEpoch})
	}))
	mux.HandleFunc("PUT "+api.PathInboundData, in.inbound(func(w http.ResponseWriter, r *http.Request, agent string) {
		q := r.URL.Query()
		epoch, err1 := strconv.ParseUint(q.Get(api.QueryInboundEpoch), 10, 64)
		size, err2 := strconv.ParseInt(q.Get(api.QueryInboundSize), 10, 64)
		offset, err3 := strconv.ParseInt(q.Get(api.QueryInboundOffset), 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			writeJSON(w, http.StatusBadRequest, api.InboundError{Error: "bad inbound data request: " + err.Error(), Code: api.InboundRefused})
			return
		}
		rf := transfer.InboundRef{Agent: agent, ID: q.Get(api.QueryInboundID), Epoch: epoch, Path: q.Get(api.QueryInboundPath), Size: size}
		body := &rollingDeadline{r: r.Body, rc: http.NewResponseController(w)}
		body.extend()
		at, err := in.transfers.ReceiveData(r.Context(), rf, offset, q.Get(api.QueryInboundOverwrite) == "true", body)
		if err != nil {
			in.inboundFailed(w, r, agent, rf, err)
			return
		}
		writeJSON(w, http.StatusOK, api.InboundStatus{Durable: at, Resumable: []int64{0, at}, Receiver: in.self.Name})
	}))
	mux.HandleFunc("PUT "+api.PathInboundFiles, in.inbound(func(w http.ResponseWriter, r *http.Request, agent string) {
		q := r.URL.Query()
		epoch, err := strconv.ParseUint(q.Get(api.QueryInboundEpoch), 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, api.InboundError{Error: "bad inbound files request: " + err.Error(), Code: api.InboundRefused})
			return
		}
		rf := transfer.InboundRef{Agent: agent, ID: q.Get(api.QueryInboundID), Epoch: epoch}
		body := &rollingDeadline{r: r.Body, rc: http.NewResponseController(w)}
		body.extend()
		res, err := in.transfers.ReceiveFiles(r.Context(), rf, q.Get(api.QueryInboundOverwrite) == "true", body)
		if err != nil {
			in.inboundFailed(w, r, agent, rf, err)
			return
		}
		out := api.InboundFiles{Files: make([]api.InboundFileResult, len(res))}
		for i, f := range res {
			out.Files[i] = api.InboundFileResult{Path: f.Path, Code: f.Code, Error: f.Error}
		}
		writeJSON(w, http.StatusOK, out)
	}))
	mux.HandleFunc("POST "+api.PathInboundHello, in.inbound(func(w http.ResponseWriter, r *http.Request, agent string) {
		writeJSON(w, http.StatusOK, api.InboundStatus{Durable: -1, Receiver: in.self.Name, ReceiverEpoch: in.node.Status().Epoch})
	}))
	mux.HandleFunc("GET "+api.PathAgents, in.guard(needMonitor, func(w http.ResponseWriter, r *http.Request) {
		if !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		writeJSON(w, http.StatusOK, in.remoteAgents(r.Context()))
	}))
	mux.HandleFunc("POST "+api.PathAgentsPrefer, in.guard(needAdmin, func(w http.ResponseWriter, r *http.Request) {
		var req api.PreferRequest
		if err := decodeRequest(w, r, &req); err != nil {
			bodyError(w, "bad prefer request", err)
			return
		}
		if !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		n, err := in.transfers.Prefer(req.Agent)
		in.admin(r, "agents prefer", req.Agent, err)
		var re *transfer.RequestError
		switch {
		case errors.As(err, &re):
			writeError(w, http.StatusBadRequest, re.Reason)
		case errors.Is(err, transfer.ErrNotActive):
			in.misdirected(w)
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, err.Error())
		default:
			writeJSON(w, http.StatusOK, api.PreferResult{Agent: req.Agent, Transfers: n})
		}
	}))
	mux.HandleFunc("POST "+api.PathInboundCommit, in.inbound(func(w http.ResponseWriter, r *http.Request, agent string) {
		var b api.InboundCommit
		if !decode(w, r, &b) {
			return
		}
		if err := in.transfers.ReceiveCommit(r.Context(), ref(agent, b.InboundRef), b.Digest, b.Overwrite); err != nil {
			in.inboundFailed(w, r, agent, ref(agent, b.InboundRef), err)
			return
		}
		writeJSON(w, http.StatusOK, api.InboundStatus{Committed: true, Digest: b.Digest, Receiver: in.self.Name})
	}))
	simple := func(path string, do func(ctx context.Context, ref transfer.InboundRef) error) {
		mux.HandleFunc("POST "+path, in.inbound(func(w http.ResponseWriter, r *http.Request, agent string) {
			var b api.InboundRef
			if !decode(w, r, &b) {
				return
			}
			if err := do(r.Context(), ref(agent, b)); err != nil {
				in.inboundFailed(w, r, agent, ref(agent, b), err)
				return
			}
			writeJSON(w, http.StatusOK, api.InboundStatus{Receiver: in.self.Name})
		}))
	}
	simple(api.PathInboundRemove, func(ctx context.Context, ref transfer.InboundRef) error { return in.transfers.ReceiveRemove(ctx, ref) })
	simple(api.PathInboundMkdir, func(ctx context.Context, ref transfer.InboundRef) error { return in.transfers.ReceiveMkdir(ctx, ref) })
	simple(api.PathInboundEnd, func(ctx context.Context, ref transfer.InboundRef) error { return in.transfers.ReceiveEnd(ctx, ref) })
}

// rollingDeadline reads a request's body and moves the server's read
// deadline forward while bytes come: a file's bytes may take longer than
// the read timeout, but may not stop for longer than inboundIdle.
type rollingDeadline struct {
	r       io.Reader
	rc      *http.ResponseController
	last    time.Time
	aborted atomic.Bool
}

func (d *rollingDeadline) extend() {
	if d.aborted.Load() {
		return // stopped: the deadline stays in the past
	}
	d.last = time.Now()
	_ = d.rc.SetReadDeadline(d.last.Add(inboundIdle))
	_ = d.rc.SetWriteDeadline(d.last.Add(inboundIdle + writeTimeout))
}

// Abort ends a read in progress (the request was stopped).
func (d *rollingDeadline) Abort() {
	d.aborted.Store(true)
	_ = d.rc.SetReadDeadline(time.Now())
}

func (d *rollingDeadline) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if n > 0 && time.Since(d.last) > time.Second {
		d.extend()
	}
	return n, err
}

// linkRequestTimeout is the least time one request to another agent may
// take: its active syncs and records in its own log before it answers.
const linkRequestTimeout = 10 * time.Second

// linkConnectTimeout is the least time a connection to another agent's
// instance (TCP and the TLS handshake, a few round trips) may take: a host
// that drops packets is given up after it, not after linkRequestTimeout,
// so that a whole plan over a group cut off silently ends within seconds.
const linkConnectTimeout = 3 * time.Second

// agentLinks are the agents of agent.NAME.instances, each reached through
// its instances in order with the client properties' connect and reconnect
// policy, this instance's certificate presented and theirs checked to be
// instances of that agent.
func agentLinks(cfg *config.Config, mode trust.Mode, store *trust.Store) (agentlink.Links, error) {
	links := agentlink.Links{}
	for _, ra := range cfg.RemoteAgents {
		p := client.DefaultPolicy()
		p.ConnectAttempts, p.ConnectDelay = cfg.ClientConnectAttempts, cfg.ClientConnectDelay
		p.ReconnectAttempts, p.ReconnectDelay = cfg.ClientReconnectAttempts, cfg.ClientReconnectDelay
		p.PrimaryRetries, p.PrimaryRetryDelay = cfg.ClientPrimaryRetries, cfg.ClientPrimaryRetryDelay
		p.RequestTimeout = max(cfg.ClientRequestTimeout, linkRequestTimeout)
		d := &trust.Dialer{Mode: mode, Store: store, Check: trust.ExpectInstanceOf(ra.Name)}
		c, err := client.New(ra.Addresses(), client.WithPolicy(p), client.WithDialer(d.DialContext),
			client.WithHeader(SenderHeader, cfg.AgentName), client.WithOnlyListed(),
			client.WithConnectTimeout(max(cfg.ClientRequestTimeout, linkConnectTimeout)))
		if err != nil {
			return nil, &config.Error{File: cfg.Path, Key: config.AgentInstancesKey(ra.Name), Msg: err.Error()}
		}
		l := agentlink.New(ra.Name, c)
		l.StallAfter = p.RequestTimeout
		links[ra.Name] = l
	}
	return links, nil
}

// remoteAgentTimeout bounds the question to each other agent of GET
// /v1/agents.
const remoteAgentTimeout = 5 * time.Second

// remoteAgents asks each agent of agent.NAME.instances, at once, who
// receives there.
func (in *Instance) remoteAgents(ctx context.Context) []api.RemoteAgentView {
	names := make([]string, 0, len(in.links))
	for n := range in.links {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]api.RemoteAgentView, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := in.links[n]
			v := api.RemoteAgentView{Agent: n, Addresses: l.Addresses(), From: in.self.Name}
			if ra, ok := in.cfg.RemoteAgent(n); ok {
				v.Alternates = ra.Alternates
			}
			if in.transfers != nil {
				v.Moved = in.transfers.MovedFrom(n)
			}
			hctx, cancel := context.WithTimeout(ctx, remoteAgentTimeout)
			defer cancel()
			st, addr, rtt, err := l.Hello(hctx)
			if err != nil {
				v.Error = err.Error()
			} else {
				v.Reachable, v.Receiver, v.ReceiverEpoch, v.Address, v.RoundTrip = true, st.Receiver, st.ReceiverEpoch, addr, rtt.Seconds()
			}
			out[i] = v
		}()
	}
	wg.Wait()
	return out
}
