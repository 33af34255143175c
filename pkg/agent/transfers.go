package agent

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/hashicorp/raft"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/transfer"
)

// Transfer API paths. They belong to the active: the other instances point
// to it (421), and a stopping active sends clients elsewhere (503).
const (
	PathTransfers = "/v1/transfers" // GET: list; POST: create
	// PathTransfers + "/{id}": GET one; + "/{id}/cancel": POST to cancel
)

// CreateTransferRequest is the body of POST /v1/transfers. ID is chosen by
// the client, so that a request retried after a failover is not doubled.
type CreateTransferRequest struct {
	ID      string           `json:"id"`
	Request transfer.Request `json:"request"`
}

func (in *Instance) transferRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+PathTransfers, func(w http.ResponseWriter, r *http.Request) {
		var req CreateTransferRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "bad transfer request: "+err.Error())
			return
		}
		t, err := in.transfers.Submit(r.Context(), req.ID, req.Request)
		if err != nil {
			in.transferError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, transfer.ViewOf(t, in.cfg.TransferRoot))
	})
	mux.HandleFunc("GET "+PathTransfers, func(w http.ResponseWriter, r *http.Request) {
		if !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		ts := in.transfers.List()
		out := make([]transfer.View, 0, len(ts))
		for _, t := range ts {
			out = append(out, transfer.ViewOf(t, in.cfg.TransferRoot))
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET "+PathTransfers+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		t, ok := in.transfers.Get(r.PathValue("id"))
		if !ok {
			writeError(w, http.StatusNotFound, "no transfer "+r.PathValue("id"))
			return
		}
		writeJSON(w, http.StatusOK, transfer.ViewOf(t, in.cfg.TransferRoot))
	})
	mux.HandleFunc("POST "+PathTransfers+"/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		t, err := in.transfers.Cancel(r.Context(), r.PathValue("id"))
		if err != nil {
			in.transferError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, transfer.ViewOf(t, in.cfg.TransferRoot))
	})
}

func (in *Instance) transferError(w http.ResponseWriter, err error) {
	var re *transfer.RequestError
	switch {
	case errors.As(err, &re):
		writeError(w, http.StatusBadRequest, re.Reason)
	case errors.Is(err, transfer.ErrNotActive), errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, ha.ErrStaleEpoch):
		// Leadership moved under the request: the client tries the active.
		in.misdirected(w)
	case errors.Is(err, transfer.ErrStopping):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, transfer.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
