package client

import (
	"fmt"
	"net/http"
	"strings"
)

// APIError is a final answer from an instance: a non-2xx response other than the
// ones that move a request on to another instance (503, and 421 with a pointer).
type APIError struct {
	Address string // the instance that answered
	Status  int    // the HTTP status code
	Message string // the "error" field of the JSON body, or the body text
	Code    string // the "code" field of the JSON body, when it has one
}

// Error is the agent's reason as it gave it, for the user: the instance
// that answered and the HTTP status are details of the transport (they stay
// in the fields). Only an answer without a reason says where it came from.
func (e *APIError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	status := fmt.Sprintf("%d", e.Status)
	if text := http.StatusText(e.Status); text != "" {
		status += " " + text
	}
	return fmt.Sprintf("%s answered %s", e.Address, status)
}

// TriedAddress is one address a request was sent to, and the last error it gave.
type TriedAddress struct {
	Address string
	Err     string
}

// UnreachableError says that every planned attempt failed. Tried lists each
// address tried, in the order first tried, with its last error; Passes is the
// number of passes made over the list.
type UnreachableError struct {
	Tried  []TriedAddress
	Passes int
}

func (e *UnreachableError) Error() string {
	unit := "passes"
	if e.Passes == 1 {
		unit = "pass"
	}
	return fmt.Sprintf("no instance of the agent could serve the request: %s after %d %s", e.triedList(), e.Passes, unit)
}

func (e *UnreachableError) triedList() string {
	parts := make([]string, len(e.Tried))
	for i, t := range e.Tried {
		parts[i] = fmt.Sprintf("%s (%s)", t.Address, t.Err)
	}
	return strings.Join(parts, ", ")
}

// triedSet collects TriedAddress entries: first-try order, last error.
type triedSet struct {
	list []TriedAddress
}

func (s *triedSet) add(address, err string) {
	for i := range s.list {
		if s.list[i].Address == address {
			s.list[i].Err = err
			return
		}
	}
	s.list = append(s.list, TriedAddress{Address: address, Err: err})
}

// RefusedError says that every instance refused the connection for a
// reason that retrying cannot mend (see WithRefusal): Reason, the last
// one, as the user should read it; Tried, each address with its error.
type RefusedError struct {
	Tried  []TriedAddress
	Reason string
}

func (e *RefusedError) Error() string {
	addrs := make([]string, len(e.Tried))
	for i, t := range e.Tried {
		addrs[i] = t.Address
	}
	return fmt.Sprintf("%s (every instance: %s)", e.Reason, strings.Join(addrs, ", "))
}
