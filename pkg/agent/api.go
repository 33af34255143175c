package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/trust"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, api.Error{Error: msg})
}

// handler builds the client API of an instance.
func (in *Instance) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathInstance, in.guard(needMonitor, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, in.node.Status())
	}))
	if in.metrics != nil { // nil in handler tests that build an Instance by hand
		mux.HandleFunc("GET "+api.PathMetrics, in.guard(needMonitor, in.metrics.Handler().ServeHTTP))
	}
	mux.HandleFunc("GET "+api.PathAgent, in.guard(needMonitor, func(w http.ResponseWriter, r *http.Request) {
		v, err := in.node.View()
		if err != nil {
			in.misdirected(w)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}))
	in.inboundRoutes(mux)
	mux.HandleFunc("POST "+api.PathStandby, in.guard(needInstance, func(w http.ResponseWriter, r *http.Request) {
		var s ha.InstanceStatus
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			bodyError(w, "bad status", err)
			return
		}
		if why := speaksFor(callerFrom(r), s.Name); why != "" {
			in.forbid(w, r, why)
			return
		}
		if err := in.node.ReportStandby(s); err != nil {
			if errors.Is(err, ha.ErrNotLeader) {
				in.misdirected(w)
				return
			}
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST "+api.PathStop, in.guard(needAdmin, func(w http.ResponseWriter, r *http.Request) {
		var req api.StopRequest
		if err := decodeRequest(w, r, &req); err != nil {
			bodyError(w, "bad stop request", err)
			return
		}
		// A normal stop waits for the drain and the hand-over: answer
		// when it is done, however long that takes within its bounds.
		extendDeadlines(w, in.stopBudget())
		if r.URL.Query().Get(api.QueryTarget) == api.TargetActive && !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		res, err := in.stop(r.Context(), req)
		in.admin(r, "stop", in.self.Name, err)
		var qe *QuorumError
		switch {
		case errors.As(err, &qe):
			writeError(w, http.StatusConflict, err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
		default:
			writeJSON(w, http.StatusOK, res)
		}
	}))
	mux.HandleFunc("GET "+api.PathStop, in.guard(needMonitor, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get(api.QueryTarget) == api.TargetActive && !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		writeJSON(w, http.StatusOK, in.stopProgress())
	}))
	mux.HandleFunc("GET "+api.PathMembership, in.guard(needMonitor, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, in.node.Membership())
	}))
	mux.HandleFunc("POST "+api.PathMembers, in.guard(needAdminOrInstance, func(w http.ResponseWriter, r *http.Request) {
		var req ha.JoinRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			bodyError(w, "bad join request", err)
			return
		}
		if c := callerFrom(r); !c.id.Allows(trust.RoleAdmin) || c.id.Kind == trust.KindInstance {
			// An instance asks for itself only.
			if why := speaksFor(c, req.Name); why != "" {
				in.forbid(w, r, why)
				return
			}
		}
		// Adding a member waits for raft, up to 4 election timeouts
		// (pkg/ha), which may be configured longer than a request's
		// ordinary time.
		extendDeadlines(w, 4*in.electionTimeout()+writeTimeout)
		res, err := in.node.AddMember(r.Context(), req)
		if !errors.Is(err, ha.ErrNotLeader) {
			in.admin(r, "members.add", req.Name+"@"+req.Address, err)
		}
		switch {
		case errors.Is(err, ha.ErrNotLeader):
			in.misdirected(w)
		case errors.Is(err, ha.ErrJoinRefused):
			writeError(w, http.StatusConflict, err.Error())
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, err.Error())
		default:
			writeJSON(w, http.StatusOK, res)
		}
	}))
	mux.HandleFunc("GET "+api.PathMembers, in.guard(needMonitor, func(w http.ResponseWriter, r *http.Request) {
		m := in.node.Membership()
		if m.Leader == "" || m.Leader != m.Name {
			in.misdirected(w)
			return
		}
		writeJSON(w, http.StatusOK, m)
	}))
	mux.HandleFunc("DELETE "+api.PathMembers+"/{name}", in.guard(needAdmin, func(w http.ResponseWriter, r *http.Request) {
		// Like a join, a removal may wait for raft a few election timeouts.
		extendDeadlines(w, 4*in.electionTimeout()+writeTimeout)
		res, err := in.node.RemoveMember(r.Context(), r.PathValue("name"))
		if !errors.Is(err, ha.ErrNotLeader) {
			in.admin(r, "members.remove", r.PathValue("name"), err)
		}
		switch {
		case errors.Is(err, ha.ErrNotLeader):
			in.misdirected(w)
		case errors.Is(err, ha.ErrRemoveRefused):
			writeError(w, http.StatusConflict, err.Error())
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, err.Error())
		default:
			writeJSON(w, http.StatusOK, res)
		}
	}))
	in.transferRoutes(mux)
	return limitBodies(mux)
}

// electionTimeout is raftElectionTimeout (0 for an instance without a
// configuration, in handler tests).
func (in *Instance) electionTimeout() time.Duration {
	if in.cfg == nil {
		return 0
	}
	return in.cfg.RaftElectionTimeout
}

// speaksFor says why c may not act for instance name ("" when it may): an
// instance identity speaks only for itself.
func speaksFor(c caller, name string) string {
	if c.open || c.id.Kind != trust.KindInstance || c.id.Name == name {
		return ""
	}
	return fmt.Sprintf("%s may speak only for itself, not for instance %q", c.id, name)
}

// misdirected answers a request that belongs to the active: 421 with a
// pointer when the active is known, else 503 so that clients try elsewhere.
func (in *Instance) misdirected(w http.ResponseWriter) {
	st := in.node.Status()
	if st.LeaderAddress != "" && st.Leader != st.Name {
		w.Header().Set(client.ActiveHeader, st.LeaderAddress)
		writeError(w, http.StatusMisdirectedRequest, "not the active instance; the active is "+st.Leader)
		return
	}
	writeError(w, http.StatusServiceUnavailable, "no active instance at the moment (election in progress)")
}

// clientPeers implements ha.Peers over the client API.
type clientPeers struct {
	c *client.Client
}

func (p clientPeers) Publish(ctx context.Context, address string, s ha.InstanceStatus) error {
	return p.c.DoAt(ctx, address, http.MethodPost, api.PathStandby, s, nil)
}

func (p clientPeers) Probe(ctx context.Context, address string) (ha.InstanceStatus, error) {
	var s ha.InstanceStatus
	err := p.c.DoAt(ctx, address, http.MethodGet, api.PathInstance, nil, &s)
	return s, err
}

func (p clientPeers) Membership(ctx context.Context, address string) (ha.Membership, error) {
	var m ha.Membership
	err := p.c.DoAt(ctx, address, http.MethodGet, api.PathMembership, nil, &m)
	return m, err
}

func (p clientPeers) Join(ctx context.Context, leaderAddress string, req ha.JoinRequest) (ha.JoinResult, error) {
	var res ha.JoinResult
	err := p.c.DoAt(ctx, leaderAddress, http.MethodPost, api.PathMembers, req, &res)
	return res, err
}

// peerPolicy is the client policy between instances: one quick try, since
// the callers have their own schedules.
func peerPolicy() client.Policy {
	p := client.DefaultPolicy()
	p.RequestTimeout = 5 * time.Second
	return p
}

// decodeRequest reads a client's JSON request body into v, refusing a field
// v does not have: a misspelt option ("overwite") must not silently mean
// its default, and an option this build does not know must not be ignored.
// (Bodies that other instances send, such as standby status, may carry
// fields of a newer build and are read leniently.) The body is bounded
// (limitBodies bounds it too, on every route).
func decodeRequest(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}
