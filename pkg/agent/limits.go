package agent

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
)

// Limits of the client API's HTTP server. The listener bounds what comes
// before a request (netmux: the first byte, the TLS handshake, the
// connections of one address); these bound the requests.
const (
	// readHeaderTimeout bounds the request line and headers: a client
	// trickling a header is cut off after it.
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds a whole request, body included. (Go's server
	// also cancels a request's context when it passes while the handler
	// still runs: handlers that wait longer extend it, see extendDeadlines.)
	readTimeout = 30 * time.Second
	// writeTimeout bounds a request from the end of its header to the end
	// of its answer. The routes that wait on purpose (a transfer's GET with
	// ?wait=, POST /v1/stop) extend it by what they may wait.
	writeTimeout = 60 * time.Second
	// idleTimeout bounds how long a keep-alive connection waits for its
	// next request.
	idleTimeout = 90 * time.Second
	// maxHeaderBytes bounds the request line and headers (larger: 431).
	maxHeaderBytes = 64 << 10
	// maxBodyBytes bounds a request body on every route (larger: 413).
	maxBodyBytes = 1 << 20
)

// extendDeadlines gives the request w answers d more from now to be read
// and answered, for a handler that waits on purpose: without it the
// server's write timeout would cut the answer and its read timeout
// cancel the request's context.
func extendDeadlines(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	at := time.Now().Add(d)
	_ = rc.SetWriteDeadline(at)
	_ = rc.SetReadDeadline(at)
}

// stopBudget is how long POST /v1/stop may take: the drain (at most
// drainTimeout), the hand-over (pkg/ha bounds it by max(30s, 40 election
// timeouts)), and the time of an ordinary request on top.
func (in *Instance) stopBudget() time.Duration {
	var drain, election time.Duration
	if in.cfg != nil {
		drain, election = in.cfg.DrainTimeout, in.cfg.RaftElectionTimeout
	}
	return drain + max(30*time.Second, 40*election) + writeTimeout
}

// limitBodies bounds every request body to maxBodyBytes: a larger one
// announced by its Content-Length is refused with 413 before the handler
// runs, one sent without (chunked) fails to read past the bound (and the
// handler answers 413, see bodyError). GET and HEAD take no body: one
// with a body is refused with 400.
func limitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.ContentLength != 0:
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusBadRequest, r.Method+" takes no request body")
			return
		case (r.URL.Path == api.PathInboundData || r.URL.Path == api.PathInboundFiles) && r.Method == http.MethodPut:
			// A file's bytes, as many as the request announces (the
			// handler bounds them by the file's size).
			h.ServeHTTP(w, r)
			return
		case r.ContentLength > maxBodyBytes:
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body of %d bytes: at most %d are accepted", r.ContentLength, maxBodyBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

// bodyError answers a request whose body could not be read as what:
// 413 when it is too large, else 400.
func bodyError(w http.ResponseWriter, what string, err error) {
	status := http.StatusBadRequest
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		status = http.StatusRequestEntityTooLarge
	}
	writeError(w, status, what+": "+err.Error())
}
