package trust

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
)

func TestRefusal(t *testing.T) {
	d := &Dialer{Files: Files{Certificate: "/c.pem", CA: "/ca.pem"}, Keys: Keys{Certificate: "clientCertificate", CA: "tlsCA"}}
	ours := fmt.Errorf("TLS with h:1: %w", &PeerError{Err: errors.New("peer certificate: x509: certificate signed by unknown authority")})
	theirs := &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}
	for _, c := range []struct {
		err   error
		whose string
		want  string
	}{
		{ours, "server", "TLS: this command does not accept the instances' certificates: peer certificate: x509: certificate signed by unknown authority (it trusts the CA bundle /ca.pem, from tlsCA)"},
		{fmt.Errorf("Get x: %w", theirs), "client", "TLS: the instances refuse this command's certificate /c.pem (from clientCertificate): certificate required"},
		{errors.New("remote error: tls: unknown certificate authority"), "client", ""},
		{errors.New("remote error: tls: protocol version not supported"), "", ""},
		{errors.New("dial tcp h:1: connect: connection refused"), "", ""},
		{io.EOF, "", ""},
	} {
		whose, _, ok := Refusal(c.err)
		if whose != c.whose || ok != (c.whose != "") {
			t.Errorf("%v: %q %v, want %q", c.err, whose, ok, c.whose)
		}
		if reason, ok := d.Reason(c.err); c.want != "" && (!ok || reason != c.want) {
			t.Errorf("%v: reason %q, want %q", c.err, reason, c.want)
		}
	}
}
