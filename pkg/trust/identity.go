// Package trust is who may talk to an instance and how it proves it: the
// identities that ftagent certificates carry, the roles they grant, the TLS
// configurations of the instance's one listener and of every client, and the
// certificate files, re-read while the instance runs.
//
// Every certificate that ftagent accepts is signed by the CA bundle of
// tlsCA and names exactly one identity in a URI subject alternative name:
//
//	ftagent://ORDERS/instance/ha1   instance ha1 of agent ORDERS
//	ftagent://ORDERS/client/ops     client ops of agent ORDERS
//
// An instance identity is the agent itself: it may speak raft to the other
// instances of its agent, publish its standby status, join the group, and
// do everything an admin may. A client identity has the role written in the
// certificate's subject organizational unit (admin, operator or monitor);
// a client certificate without one of these has no role and reaches
// nothing. An identity of another agent reaches nothing but a refusal.
package trust

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Scheme is the URI scheme of identities.
const Scheme = "ftagent"

// Kinds of identity.
const (
	KindInstance = "instance"
	KindClient   = "client"
)

// Role is what a client identity may do.
type Role string

// Roles, from the least to the most allowed.
const (
	RoleNone     Role = ""
	RoleMonitor  Role = "monitor"  // read: show, transfer show/list, status
	RoleOperator Role = "operator" // create transfers, cancel its own, read
	RoleAdmin    Role = "admin"    // stop instances, change members, cancel any transfer
)

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleMonitor, RoleOperator, RoleAdmin:
		return r, nil
	}
	return RoleNone, fmt.Errorf("role %q is not admin, operator or monitor", s)
}

func (r Role) rank() int {
	switch r {
	case RoleMonitor:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Identity is who is at the other end of a connection.
type Identity struct {
	Agent string `json:"agent"`
	Kind  string `json:"kind"` // KindInstance or KindClient
	Name  string `json:"name"`
	Role  Role   `json:"role,omitempty"`
}

// nameRE is the alphabet of agent, instance and client names (that of
// agent.properties' names).
var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// CheckName reports whether s may be an agent, instance or client name.
func CheckName(what, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%s name %q: use 1-64 letters, digits, '.', '_' or '-'", what, s)
	}
	return nil
}

// Instance is the identity of instance name of agent.
func Instance(agent, name string) Identity {
	return Identity{Agent: agent, Kind: KindInstance, Name: name, Role: RoleAdmin}
}

// Client is the identity of client name of agent, with role.
func Client(agent, name string, role Role) Identity {
	return Identity{Agent: agent, Kind: KindClient, Name: name, Role: role}
}

// URI is the identity as written in a certificate.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: Scheme, Host: id.Agent, Path: "/" + id.Kind + "/" + id.Name}
}

// String is agent/kind/name, as logs and the audit trail show it.
func (id Identity) String() string {
	if id.Agent == "" && id.Name == "" {
		return "anonymous"
	}
	return id.Agent + "/" + id.Kind + "/" + id.Name
}

// IsInstanceOf reports whether id is an instance of agent.
func (id Identity) IsInstanceOf(agent string) bool {
	return id.Kind == KindInstance && id.Agent == agent && id.Name != ""
}

// Allows reports whether id's role includes role: admin includes operator,
// which includes monitor.
func (id Identity) Allows(role Role) bool {
	return id.Role.rank() >= role.rank() && id.Role.rank() > 0
}

// ErrNoIdentity means a certificate names no ftagent identity.
var ErrNoIdentity = errors.New("the certificate names no ftagent identity (a URI such as ftagent://AGENT/instance/NAME)")

// IdentityOf reads the identity a certificate names: exactly one ftagent
// URI, and for a client the role of its organizational unit.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == Scheme {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, ErrNoIdentity
	case 1:
	default:
		return Identity{}, fmt.Errorf("the certificate names %d ftagent identities; it must name one", len(found))
	}
	id, err := parseURI(found[0])
	if err != nil {
		return Identity{}, err
	}
	if id.Kind == KindClient {
		for _, ou := range cert.Subject.OrganizationalUnit {
			if r, err := ParseRole(ou); err == nil && r.rank() > id.Role.rank() {
				id.Role = r
			}
		}
	}
	return id, nil
}

func parseURI(u *url.URL) (Identity, error) {
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(parts) != 2 {
		return Identity{}, fmt.Errorf("identity %q is not ftagent://AGENT/instance/NAME or ftagent://AGENT/client/NAME", u)
	}
	kind, name := parts[0], parts[1]
	if kind != KindInstance && kind != KindClient {
		return Identity{}, fmt.Errorf("identity %q: kind %q is not instance or client", u, kind)
	}
	if err := CheckName("agent", u.Host); err != nil {
		return Identity{}, fmt.Errorf("identity %q: %v", u, err)
	}
	if err := CheckName(kind, name); err != nil {
		return Identity{}, fmt.Errorf("identity %q: %v", u, err)
	}
	if kind == KindInstance {
		return Instance(u.Host, name), nil
	}
	return Client(u.Host, name, RoleNone), nil
}
