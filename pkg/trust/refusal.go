package trust

import (
	"errors"
	"strings"
)

// PeerError is a peer's certificate that this side does not accept: not
// signed by the CA bundle, expired, or naming the wrong identity.
type PeerError struct{ Err error }

func (e *PeerError) Error() string { return e.Err.Error() }
func (e *PeerError) Unwrap() error { return e.Err }

// certificateAlerts are the TLS alerts (as Go words them) by which a server
// refuses the client's certificate.
var certificateAlerts = []string{
	"bad certificate", "unknown certificate authority", "certificate required", "expired certificate",
	"certificate revoked", "unsupported certificate", "certificate unknown", "access denied",
}

// Refusal tells whether err is a refusal of trust between a client and an
// instance, which retrying cannot mend: the client does not accept the
// instance's certificate (whose is "server"), or the instance refused the
// client's (whose is "client"). detail is the reason alone, without the
// address and the layers that wrapped it.
func Refusal(err error) (whose, detail string, ok bool) {
	var pe *PeerError
	if errors.As(err, &pe) {
		return "server", pe.Err.Error(), true
	}
	s := err.Error()
	i := strings.Index(s, "remote error: tls: ")
	if i < 0 {
		return "", "", false
	}
	alert := s[i+len("remote error: tls: "):]
	for _, a := range certificateAlerts {
		if strings.HasPrefix(alert, a) {
			return "client", a, true
		}
	}
	return "", "", false
}

// Reason words a refusal of trust (Refusal) for the user of a Dialer,
// naming the file at fault and where it was given (keys).
func (d *Dialer) Reason(err error) (string, bool) {
	whose, detail, ok := Refusal(err)
	if !ok {
		return "", false
	}
	if whose == "server" {
		return "TLS: this command does not accept the instances' certificates: " + detail +
			" (it trusts the CA bundle " + d.Files.CA + ", from " + d.Keys.CA + ")", true
	}
	return "TLS: the instances refuse this command's certificate " + d.Files.Certificate + " (from " + d.Keys.Certificate +
		"): " + detail, true
}
