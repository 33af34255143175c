package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/trust"
)

// transferQuery is what a request asks of a transfer's view: which files
// (api.QueryFiles), which window of them (api.QueryOffset and the rest) and
// how long to wait for its end (api.QueryWait).
type transferQuery struct {
	files  string
	window transfer.Window
	wait   time.Duration
}

// firstPage is the window of a request that names none.
var firstPage = transfer.Window{Limit: api.DefaultLimit, DirLimit: api.DefaultLimit}

// parseTransferQuery reads a transferQuery; a value it cannot take is an
// error that says so, for a 400.
// parseListFilter reads the transfers a list asks for (api.QueryState,
// QuerySince, QueryCount, QueryAfter); paged is whether it asks for a
// page (api.TransferList) rather than the array of every match.
func parseListFilter(q url.Values, now time.Time) (f transfer.ListFilter, paged bool, err error) {
	if v := q.Get(api.QueryState); v != "" {
		f.States = map[string]bool{}
		for _, st := range strings.Split(v, ",") {
			st = strings.TrimSpace(st)
			if !slices.Contains(listStates, st) {
				return f, false, fmt.Errorf("%s=%q: %q is not one of %s", api.QueryState, v, st, strings.Join(listStates, ", "))
			}
			f.States[st] = true
		}
	}
	if v := q.Get(api.QuerySince); v != "" {
		if t, terr := time.Parse(time.RFC3339, v); terr == nil {
			f.Since = t
		} else if d, derr := time.ParseDuration(v); derr == nil && d >= 0 {
			f.Since = now.Add(-d)
		} else {
			return f, false, fmt.Errorf("%s=%q is neither a time (RFC 3339, e.g. 2026-12-06T02:00:00Z) nor a duration (e.g. 24h)", api.QuerySince, v)
		}
	}
	if v := q.Get(api.QueryDestAgent); v == "-" {
		f.LocalOnly, paged = true, true
	} else if v != "" {
		f.DestinationAgent, paged = v, true
	}
	if v := q.Get(api.QueryCount); v != "" {
		n, cerr := strconv.Atoi(v)
		if cerr != nil || n < 1 || n > api.MaxLimit {
			return f, false, fmt.Errorf("%s=%q is not a number from 1 to %d", api.QueryCount, v, api.MaxLimit)
		}
		f.Count, paged = n, true
	}
	if v := q.Get(api.QueryAfter); v != "" {
		f.After, paged = v, true
	}
	if paged && f.Count == 0 {
		f.Count = api.DefaultLimit
	}
	return f, paged, nil
}

// listStates are the states a list may ask for.
var listStates = []string{transfer.StateQueued, transfer.StateRunning, transfer.StateRecovering,
	transfer.StateCompleted, transfer.StateFailed, transfer.StateCancelled}

func parseTransferQuery(r *http.Request) (transferQuery, error) {
	q := r.URL.Query()
	tq := transferQuery{files: q.Get(api.QueryFiles), window: firstPage}
	switch tq.files {
	case "":
		tq.files = transfer.FilesAll
	case transfer.FilesAll, transfer.FilesNone, transfer.FilesEnded:
	default:
		return tq, fmt.Errorf("%s=%q is not %q, %q or %q", api.QueryFiles, tq.files, transfer.FilesAll, transfer.FilesNone, transfer.FilesEnded)
	}
	for _, p := range []struct {
		name   string
		to     *int
		least  int
		limits bool
	}{
		{api.QueryOffset, &tq.window.Offset, 0, false},
		{api.QueryLimit, &tq.window.Limit, 1, true},
		{api.QueryDirOffset, &tq.window.DirOffset, 0, false},
		{api.QueryDirLimit, &tq.window.DirLimit, 1, true},
	} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		switch {
		case p.limits && (err != nil || n < p.least || n > api.MaxLimit):
			return tq, fmt.Errorf("%s=%q is not a number from %d to %d", p.name, v, p.least, api.MaxLimit)
		case err != nil || n < p.least:
			return tq, fmt.Errorf("%s=%q is not a number, %d or more", p.name, v, p.least)
		}
		*p.to = n
	}
	if w := q.Get(api.QueryWait); w != "" {
		var err error
		if tq.wait, err = time.ParseDuration(w); err != nil || tq.wait < 0 {
			return tq, fmt.Errorf("%s=%q is not a duration", api.QueryWait, w)
		}
		tq.wait = min(tq.wait, api.MaxTransferWait)
	}
	return tq, nil
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
		tq, qerr := parseTransferQuery(r)
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
		if tq.files == transfer.FilesNone || tq.files == transfer.FilesEnded && !transfer.Terminal(t.State) {
			writeJSON(w, http.StatusCreated, transfer.SummaryOf(t, in.cfg.TransferRoot).JSONValue())
			return
		}
		writeJSON(w, http.StatusCreated, transfer.PageOf(t, in.cfg.TransferRoot, tq.window).JSONValue())
	}))
	mux.HandleFunc("GET "+api.PathTransfers, in.guard(needMonitor, func(w http.ResponseWriter, r *http.Request) {
		if !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		tq, err := parseTransferQuery(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		f, paged, err := parseListFilter(r.URL.Query(), time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		vs, next, err := in.transfers.ListPage(in.cfg.TransferRoot, tq.files, tq.window, f)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s=%q: %v", api.QueryAfter, f.After, err))
			return
		}
		if !paged {
			out := make([]any, len(vs))
			for i, v := range vs {
				out[i] = v.JSONValue()
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		page := api.TransferList{Transfers: make([]json.RawMessage, len(vs)), Next: next}
		for i, v := range vs {
			b, err := json.Marshal(v.JSONValue())
			if err != nil {
				writeError(w, http.StatusInternalServerError, err.Error())
				return
			}
			page.Transfers[i] = b
		}
		writeJSON(w, http.StatusOK, page)
	}))
	mux.HandleFunc("GET "+api.PathTransfers+"/{id}", in.guard(needMonitor, func(w http.ResponseWriter, r *http.Request) {
		if !in.node.IsActive() {
			in.misdirected(w)
			return
		}
		tq, err := parseTransferQuery(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		id := r.PathValue("id")
		ok := true
		if tq.wait > 0 {
			// The answer comes after up to wait: give it the time of an
			// ordinary request on top. The wait reads the transfer
			// without its files, however often it changes; the answer
			// is rendered once, with the window, when the wait is over.
			extendDeadlines(w, tq.wait+writeTimeout)
			_, ok = in.transfers.WaitView(r.Context(), id, in.cfg.TransferRoot, tq.wait)
		}
		var v transfer.View
		if ok {
			v, ok = in.transfers.ViewPage(id, in.cfg.TransferRoot, tq.files, tq.window)
		}
		if !ok {
			writeError(w, http.StatusNotFound, "no transfer "+id)
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
		writeJSON(w, http.StatusOK, transfer.PageOf(t, in.cfg.TransferRoot, firstPage).JSONValue())
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
	case errors.Is(err, transfer.ErrStopping), errors.Is(err, transfer.ErrFormatPending):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, transfer.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
