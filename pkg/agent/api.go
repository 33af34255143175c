package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
)

// API paths. Every instance serves all of them; requests that belong to the
// active are answered by a follower with 421 and a pointer to the active.
const (
	PathInstance = "/v1/instance" // GET: this instance's own status
	PathAgent    = "/v1/agent"    // GET: the agent as the active sees it
	PathStandby  = "/v1/standby"  // POST: a standby publishes its status
	PathStop     = "/v1/stop"     // POST: stop this instance (?target=active: the active); GET: what its stop waits for
	// PathMembership is GET: this instance's raft group (empty without raft
	// state), asked by an instance that starts without state before it forms
	// a group. PathMembers is POST: the leader adds the instance of an
	// ha.JoinRequest to the group (others answer 421).
	PathMembership = "/v1/membership"
	PathMembers    = "/v1/members"
)

// StopRequest asks an instance to stop.
type StopRequest struct {
	Immediate bool `json:"immediate"`
	// Force stops the instance even when the voters left would have no
	// majority (the agent would have no active).
	Force bool `json:"force,omitempty"`
}

// StopProgress is what GET PathStop answers: whether the instance is
// stopping, and which transfers its stop waits for (without their files).
type StopProgress struct {
	Instance     string          `json:"instance"`
	Stopping     bool            `json:"stopping"`
	Since        time.Time       `json:"since,omitzero"`
	DrainTimeout float64         `json:"drainTimeout"` // seconds
	Waiting      []transfer.View `json:"waiting"`
}

// StopResult says what a stop did.
type StopResult struct {
	Agent     string `json:"agent"`
	Instance  string `json:"instance"`
	Address   string `json:"address"`
	WasActive bool   `json:"wasActive"`
	// NewActive and Epoch name the instance that took the lease over, when
	// the stopped instance was the active and a standby took over.
	NewActive        string `json:"newActive,omitempty"`
	NewActiveAddress string `json:"newActiveAddress,omitempty"`
	Epoch            uint64 `json:"epoch,omitempty"`
	// LastInstance is set when no data instance could take the lease over.
	LastInstance bool   `json:"lastInstance,omitempty"`
	Message      string `json:"message"`
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

// handler builds the client API of an instance.
func (in *Instance) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathInstance, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, in.node.Status())
	})
	mux.HandleFunc("GET "+PathAgent, func(w http.ResponseWriter, r *http.Request) {
		v, err := in.node.View()
		if err != nil {
			in.misdirected(w)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("POST "+PathStandby, func(w http.ResponseWriter, r *http.Request) {
		var s ha.InstanceStatus
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&s); err != nil {
			writeError(w, http.StatusBadRequest, "bad status: "+err.Error())
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
	})
	mux.HandleFunc("POST "+PathStop, func(w http.ResponseWriter, r *http.Request) {
		var req StopRequest
		if err := decodeRequest(w, r, &req); err != nil {
			writeError(w, http.StatusBadRequest, "bad stop request: "+err.Error())
			return
		}
		if r.URL.Query().Get("target") == "active" && !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		res, err := in.stop(r.Context(), req)
		var qe *QuorumError
		switch {
		case errors.As(err, &qe):
			writeError(w, http.StatusConflict, err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
		default:
			writeJSON(w, http.StatusOK, res)
		}
	})
	mux.HandleFunc("GET "+PathStop, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("target") == "active" && !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		writeJSON(w, http.StatusOK, in.stopProgress())
	})
	mux.HandleFunc("GET "+PathMembership, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, in.node.Membership())
	})
	mux.HandleFunc("POST "+PathMembers, func(w http.ResponseWriter, r *http.Request) {
		var req ha.JoinRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "bad join request: "+err.Error())
			return
		}
		res, err := in.node.AddMember(r.Context(), req)
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
	})
	in.transferRoutes(mux)
	return mux
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
	return p.c.DoAt(ctx, address, http.MethodPost, PathStandby, s, nil)
}

func (p clientPeers) Probe(ctx context.Context, address string) (ha.InstanceStatus, error) {
	var s ha.InstanceStatus
	err := p.c.DoAt(ctx, address, http.MethodGet, PathInstance, nil, &s)
	return s, err
}

func (p clientPeers) Membership(ctx context.Context, address string) (ha.Membership, error) {
	var m ha.Membership
	err := p.c.DoAt(ctx, address, http.MethodGet, PathMembership, nil, &m)
	return m, err
}

func (p clientPeers) Join(ctx context.Context, leaderAddress string, req ha.JoinRequest) (ha.JoinResult, error) {
	var res ha.JoinResult
	err := p.c.DoAt(ctx, leaderAddress, http.MethodPost, PathMembers, req, &res)
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
// fields of a newer build and are read leniently.)
func decodeRequest(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}
