package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/trust"
)

// transferQuery reads api.QueryFiles and api.QueryWait.
func transferQuery(r *http.Request) (files string, wait time.Duration, err error) {
	q := r.URL.Query()
	files = q.Get(api.QueryFiles)
	switch files {
	case "":
		files = transfer.FilesAll
	case transfer.FilesAll, transfer.FilesNone, transfer.FilesEnded:
	default:
		return "", 0, fmt.Errorf("%s=%q is not %q, %q or %q", api.QueryFiles, files, transfer.FilesAll, transfer.FilesNone, transfer.FilesEnded)
	}
	if w := q.Get(api.QueryWait); w != "" {
		if wait, err = time.ParseDuration(w); err != nil || wait < 0 {
			return "", 0, fmt.Errorf("%s=%q is not a duration", api.QueryWait, w)
		}
		wait = min(wait, api.MaxTransferWait)
	}
	return files, wait, nil
}

// decodeCreateTransfer reads the body of POST api.PathTransfers, an
// api.CreateTransferRequest: its request is kept raw for
// transfer.DecodeRequest, which refuses unknown fields (transfer.Request's
// UnmarshalJSON is lenient, for log entries).
func decodeCreateTransfer(w http.ResponseWriter, r *http.Request) (api.CreateTransferRequest, error) {
	var body struct {
		ID      string          `json:"id"`
		Request json.RawMessage `json:"request"`
	}
	if err := decodeRequest(w, r, &body); err != nil {
		return api.CreateTransferRequest{}, err
	}
	req := api.CreateTransferRequest{ID: body.ID}
	var err error
	if req.Request, err = transfer.DecodeRequest(body.Request); err != nil {
		return api.CreateTransferRequest{}, err
	}
	return req, nil
}

func (in *Instance) transferRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+api.PathTransfers, in.guard(needOperator, func(w http.ResponseWriter, r *http.Request) {
		files, _, qerr := transferQuery(r)
		if qerr != nil {
			writeError(w, http.StatusBadRequest, qerr.Error())
			return
		}
		req, err := decodeCreateTransfer(w, r)
		if err != nil {
			bodyError(w, "bad transfer request", err)
			return
		}
		t, err := in.transfers.SubmitAs(r.Context(), owner(callerFrom(r)), req.ID, req.Request)
		if err != nil {
			in.transferError(w, err)
			return
		}
		if files == transfer.FilesNone || files == transfer.FilesEnded && !transfer.Terminal(t.State) {
			writeJSON(w, http.StatusCreated, transfer.SummaryOf(t, in.cfg.TransferRoot).JSONValue())
			return
		}
		writeJSON(w, http.StatusCreated, transfer.ViewOf(t, in.cfg.TransferRoot).JSONValue())
	}))
	mux.HandleFunc("GET "+api.PathTransfers, in.guard(needMonitor, func(w http.ResponseWriter, r *http.Request) {
		if !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		ts := in.transfers.List()
		out := make([]any, 0, len(ts))
		for _, t := range ts {
			out = append(out, transfer.ViewOf(t, in.cfg.TransferRoot).JSONValue())
		}
		writeJSON(w, http.StatusOK, out)
	}))
	mux.HandleFunc("GET "+api.PathTransfers+"/{id}", in.guard(needMonitor, func(w http.ResponseWriter, r *http.Request) {
		if !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		files, wait, err := transferQuery(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if wait > 0 {
			// The answer comes after up to wait: give it the time of an
			// ordinary request on top.
			extendDeadlines(w, wait+writeTimeout)
		}
		v, ok := in.transfers.WaitView(r.Context(), r.PathValue("id"), in.cfg.TransferRoot, files, wait)
		if !ok {
			writeError(w, http.StatusNotFound, "no transfer "+r.PathValue("id"))
			return
		}
		writeJSON(w, http.StatusOK, v.JSONValue())
	}))
	mux.HandleFunc("POST "+api.PathTransfers+"/{id}/cancel", in.guard(needOperator, func(w http.ResponseWriter, r *http.Request) {
		id, c := r.PathValue("id"), callerFrom(r)
		if t, ok := in.transfers.Get(id); ok && !c.open && !c.id.Allows(trust.RoleAdmin) && t.Owner != c.id.String() {
			owner := t.Owner
			if owner == "" {
				owner = "nobody known"
			}
			in.forbid(w, r, fmt.Sprintf("%s has role %s and may cancel only its own transfers; %s was created by %s (cancelling it needs role admin)",
				c.id, roleName(c.id.Role), id, owner))
			return
		}
		t, err := in.transfers.Cancel(r.Context(), id)
		in.admin(r, "cancel", id, err)
		if err != nil {
			in.transferError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, transfer.ViewOf(t, in.cfg.TransferRoot).JSONValue())
	}))
}

// owner is the Owner recorded for a transfer c creates: its identity, ""
// for an anonymous caller.
func owner(c caller) string {
	if c.open {
		return ""
	}
	return c.id.String()
}

func (in *Instance) transferError(w http.ResponseWriter, err error) {
	var re *transfer.RequestError
	switch {
	case errors.As(err, &re):
		writeError(w, http.StatusBadRequest, re.Reason)
	case errors.Is(err, transfer.ErrNotActive), errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, replog.ErrStaleEpoch):
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
