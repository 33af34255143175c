package api

import (
	"encoding/json"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
)

// Error is the body of every refusal: the agent's reason, for the user.
type Error struct {
	Error string `json:"error"`
}

// CreateTransferRequest is the body of POST PathTransfers. ID is chosen by
// the client, so that a request retried after a failover is not doubled.
type CreateTransferRequest struct {
	ID      string           `json:"id"`
	Request transfer.Request `json:"request"`
}

// StopRequest is the body of POST PathStop: it asks an instance to stop.
type StopRequest struct {
	// Immediate hands the lease over at once, without waiting for the
	// running transfers to finish.
	Immediate bool `json:"immediate"`
	// Force stops the instance even when the voters left would have no
	// majority (the agent would have no active).
	Force bool `json:"force,omitempty"`
}

// StopResult answers POST PathStop: what the stop did.
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

// StopProgress answers GET PathStop: whether the instance is stopping, and
// which transfers its stop waits for (without their files).
type StopProgress struct {
	Instance     string          `json:"instance"`
	Stopping     bool            `json:"stopping"`
	Since        time.Time       `json:"since,omitzero"`
	DrainTimeout float64         `json:"drainTimeout"` // seconds
	Waiting      []transfer.View `json:"waiting"`
}

// TransferList is the answer of GET PathTransfers with QueryCount or
// QueryAfter: a page of transfers (each a transfer view, as GET
// TransferPath answers) in creation order, and, when more match after
// them, Next: the QueryAfter of the next page.
type TransferList struct {
	Transfers []json.RawMessage `json:"transfers"`
	Next      string            `json:"next,omitempty"`
}
