package trust

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Mode is how an instance or a client uses TLS (the tlsMode property).
type Mode string

const (
	// Required: TLS on every connection, certificates on both ends.
	Required Mode = "required"
	// Optional accepts TLS and plaintext and dials TLS, falling back to
	// plaintext to a peer that does not speak TLS: only for the roll of a
	// running group from Disabled to Required.
	Optional Mode = "optional"
	// Disabled: plaintext, no authentication.
	Disabled Mode = "disabled"
)

// HandshakeTimeout bounds a TLS handshake, on both sides.
const HandshakeTimeout = 10 * time.Second

// Dialer opens connections to instances: TLS with the store's certificate
// (the server checked by Check), or plaintext when Mode is Disabled, or
// when Mode is Optional and the server does not speak TLS.
type Dialer struct {
	Mode  Mode
	Store *Store // nil when Mode is Disabled
	// Check accepts the server's identity (e.g. ExpectInstanceOf).
	Check   func(Identity) error
	Timeout time.Duration // connect and handshake; default HandshakeTimeout
	// Files and Keys, if known, say which files the store was loaded
	// from and where they were named, for the user (Reason).
	Files Files
	Keys  Keys
}

// DialContext connects to address (host:port).
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = HandshakeTimeout
	}
	nd := net.Dialer{Timeout: timeout}
	conn, err := nd.DialContext(ctx, network, address)
	if err != nil || d.Mode == Disabled || d.Store == nil {
		return conn, err
	}
	tc := tls.Client(conn, d.Store.ClientConfig(d.Check))
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	herr := tc.HandshakeContext(hctx)
	if herr == nil {
		return tc, nil
	}
	conn.Close()
	if d.Mode == Optional && notTLS(herr) {
		// A peer not yet moved to TLS (the roll from Disabled): plaintext.
		return nd.DialContext(ctx, network, address)
	}
	return nil, fmt.Errorf("TLS with %s: %w", address, herr)
}

// notTLS reports whether a handshake failed because the server does not
// speak TLS: it answered with something else, or hung up on the hello.
func notTLS(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}
