package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/ftagent/ftagent/pkg/audit"
	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/pkg/netmux"
	"github.com/ftagent/ftagent/pkg/trust"
)

// loadTrust reads the instance's TLS files as tlsMode asks: nil without
// TLS. A file missing, unreadable, or naming another identity than this
// instance is a *config.Error naming its key.
func loadTrust(cfg *config.Config, self config.Instance) (*trust.Store, error) {
	if cfg.TLSMode == config.TLSDisabled {
		return nil, nil
	}
	cert, key, ca := cfg.TLSFiles(self.Name)
	store, err := trust.Load(trust.Files{Certificate: cert, PrivateKey: key, CA: ca, PeerCA: cfg.TLSPeerCA},
		trust.Keys{Certificate: config.KeyTLSCertificate, PrivateKey: config.KeyTLSPrivateKey, CA: config.KeyTLSCA, PeerCA: config.KeyTLSPeerCA})
	if err != nil {
		return nil, config.FileError(cfg.Path, err)
	}
	if want := trust.Instance(cfg.AgentName, self.Name); store.Self() != want {
		return nil, &config.Error{File: cfg.Path, Key: config.KeyTLSCertificate,
			Msg: fmt.Sprintf("%s names %s, not this instance (%s)", cert, store.Self(), want)}
	}
	return store, nil
}

// connKey is the context key of a request's connection TLS state.
type connKey struct{}

// connContext puts the TLS state of the mux's connection into the
// context of its requests (the mux does the handshake, so http.Request's
// own TLS field stays nil).
func connContext(ctx context.Context, c net.Conn) context.Context {
	if mc, ok := c.(*netmux.Conn); ok && mc.TLS() != nil {
		return context.WithValue(ctx, connKey{}, mc.TLS())
	}
	return ctx
}

// caller is who sent a request.
type caller struct {
	id trust.Identity
	// open: no identity was shown and none is required (tlsMode disabled,
	// or optional during the roll): the caller may do anything, as
	// before TLS.
	open bool
}

func (c caller) String() string {
	if c.open {
		return "anonymous"
	}
	return c.id.String()
}

// callerOf says who sent r.
func (in *Instance) callerOf(r *http.Request) (caller, error) {
	state, _ := r.Context().Value(connKey{}).(*tls.ConnectionState)
	if state == nil || len(state.PeerCertificates) == 0 {
		if in.tlsMode == trust.Required {
			// Unreachable: the handshake demands a certificate.
			return caller{}, errors.New("no client certificate")
		}
		return caller{open: true}, nil
	}
	var id trust.Identity
	var err error
	if in.tls != nil {
		id, _, err = in.tls.PeerOf(*state)
	} else {
		id, _, err = trust.PeerIdentity(*state) // handler tests without a store
	}
	if err != nil {
		return caller{}, err
	}
	return caller{id: id}, nil
}

// need is what a route asks of its caller.
type need int

const (
	needMonitor need = iota
	needOperator
	needAdmin
	// needInstance: an instance of this agent (raft's companions: standby
	// status).
	needInstance
	// needAdminOrInstance: an admin, or an instance of this agent
	// (membership: a joining instance asks for itself).
	needAdminOrInstance
)

// check says why c may not do what n asks, "" when it may.
func (in *Instance) check(c caller, n need) string {
	if c.open {
		return ""
	}
	agent := in.cfg.AgentName
	if c.id.Agent != agent {
		return fmt.Sprintf("%s is an identity of agent %s, not of %s", c.id, c.id.Agent, agent)
	}
	isInstance := c.id.IsInstanceOf(agent)
	switch n {
	case needInstance:
		if !isInstance {
			return fmt.Sprintf("%s is not an instance of agent %s: only its instances may do this", c.id, agent)
		}
		return ""
	case needAdminOrInstance:
		if isInstance || c.id.Allows(trust.RoleAdmin) {
			return ""
		}
		return fmt.Sprintf("%s has role %s; this needs role admin", c.id, roleName(c.id.Role))
	}
	role := map[need]trust.Role{needMonitor: trust.RoleMonitor, needOperator: trust.RoleOperator, needAdmin: trust.RoleAdmin}[n]
	if c.id.Allows(role) {
		return ""
	}
	return fmt.Sprintf("%s has role %s; this needs role %s", c.id, roleName(c.id.Role), role)
}

func roleName(r trust.Role) string {
	if r == trust.RoleNone {
		return "none"
	}
	return string(r)
}

// callerKey is the context key of a request's caller, once guarded.
type callerKey struct{}

// guard serves h to callers that n admits; others get 403 with the
// reason, and the refusal is audited.
func (in *Instance) guard(n need, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := in.callerOf(r)
		why := ""
		if err != nil {
			why = "the client certificate: " + err.Error()
		} else {
			why = in.check(c, n)
		}
		if why != "" {
			in.refused(r, c, why)
			writeError(w, http.StatusForbidden, why)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	}
}

// forbid answers 403 for a refusal a handler decides itself (e.g. an
// operator cancelling another's transfer), audited as guard's are.
func (in *Instance) forbid(w http.ResponseWriter, r *http.Request, why string) {
	in.refused(r, callerFrom(r), why)
	writeError(w, http.StatusForbidden, why)
}

// callerFrom is the caller guard admitted.
func callerFrom(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// refused audits a refused call.
func (in *Instance) refused(r *http.Request, c caller, why string) {
	who := c.String()
	if err := in.trail.Security(time.Now(), audit.Record{Op: audit.OpRefused, Caller: who, Remote: r.RemoteAddr,
		Action: r.Method + " " + r.URL.Path, Result: why}); err != nil {
		in.log.Error().Err(err).Msg("cannot write the audit log")
	}
	in.log.Warn().Str("caller", who).Str("remote", r.RemoteAddr).Str("action", r.Method+" "+r.URL.Path).
		Str("reason", why).Msg("call refused")
}

// refusedConn audits a connection the listener refused before any
// request (a failed handshake, plaintext where TLS is required, raft from
// another identity than an instance).
// Anyone who reaches the port can make refused connections, so their
// records are rate-limited: at most refusedBurst at once, refusedPerSecond
// a second on average; the next record written says how many were left
// out.
func (in *Instance) refusedConn(remote, why string) {
	now := time.Now()
	in.refusedMu.Lock()
	in.refusedTokens = min(refusedBurst, in.refusedTokens+now.Sub(in.refusedAt).Seconds()*refusedPerSecond)
	in.refusedAt = now
	if in.refusedTokens < 1 {
		in.refusedDropped++
		in.refusedMu.Unlock()
		return
	}
	in.refusedTokens--
	dropped := in.refusedDropped
	in.refusedDropped = 0
	in.refusedMu.Unlock()
	if dropped > 0 {
		why = fmt.Sprintf("%s (and %d more refused connections not recorded: over %d a second)", why, dropped, refusedPerSecond)
	}
	if err := in.trail.Security(now, audit.Record{Op: audit.OpRefused, Remote: remote, Action: "connect", Result: why}); err != nil {
		in.log.Error().Err(err).Msg("cannot write the audit log")
	}
	in.log.Warn().Str("remote", remote).Str("reason", why).Msg("connection refused")
}

// Rate of the records of refused connections.
const (
	refusedPerSecond = 20
	refusedBurst     = 100
)

// admin audits an admin action carried out (or attempted) for r's caller.
func (in *Instance) admin(r *http.Request, action, target string, err error) {
	c := callerFrom(r)
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	if werr := in.trail.Security(time.Now(), audit.Record{Op: audit.OpAdmin, Caller: c.String(), Remote: r.RemoteAddr,
		Action: action, Target: target, Result: result}); werr != nil {
		in.log.Error().Err(werr).Msg("cannot write the audit log")
	}
	in.log.Info().Str("caller", c.String()).Str("action", action).Str("target", target).Str("result", result).Msg("admin action")
}

// tlsWatchInterval is how often the TLS files are checked for a change.
const tlsWatchInterval = 2 * time.Second

// ReloadTLS re-reads the TLS files now (SIGHUP): connections made from now
// on use the new certificate and CA bundle; a failed reload keeps the old
// ones and says why.
func (in *Instance) ReloadTLS() {
	if in.tls == nil {
		in.log.Info().Msg("SIGHUP: tlsMode=disabled, no TLS files to re-read")
		return
	}
	_, err := in.tls.Reload()
	in.reloaded(err)
}

// reloaded logs the outcome of a re-read of the TLS files.
func (in *Instance) reloaded(err error) {
	if err != nil {
		in.log.Error().Err(config.FileError(in.cfg.Path, err)).Msg("TLS files changed but cannot be used: keeping the previous certificate and CA bundle")
		return
	}
	in.log.Info().Time("notAfter", in.tls.NotAfter()).Msg("TLS certificate and CA bundle re-read")
	// A kept-alive API connection outlives the handshake that let it in:
	// those whose certificate the new bundle does not trust are closed
	// now (between requests), so that a certificate withdrawn by rotating
	// the CA stops working on the connections already open too. Their
	// clients connect again, with the certificate they now have.
	in.idleMu.Lock()
	var untrusted []*netmux.Conn
	for c := range in.idle {
		if !in.trusted(c) {
			untrusted = append(untrusted, c)
		}
	}
	in.idleMu.Unlock()
	for _, c := range untrusted {
		in.closeUntrusted(c)
	}
}

// connState keeps track of the API connections with a client certificate
// that are idle, and closes one that goes idle with a certificate the CA
// bundle in use no longer trusts (it was re-read during its request).
func (in *Instance) connState(nc net.Conn, st http.ConnState) {
	c, ok := nc.(*netmux.Conn)
	if !ok || in.tls == nil || c.TLS() == nil || len(c.TLS().PeerCertificates) == 0 {
		return
	}
	in.idleMu.Lock()
	if st == http.StateIdle {
		if in.idle == nil {
			in.idle = map[*netmux.Conn]struct{}{}
		}
		in.idle[c] = struct{}{}
	} else {
		delete(in.idle, c)
	}
	in.idleMu.Unlock()
	if st == http.StateIdle && !in.trusted(c) {
		in.closeUntrusted(c)
	}
}

// trusted says whether the CA bundle in use trusts c's client certificate.
func (in *Instance) trusted(c *netmux.Conn) bool {
	_, err := in.tls.Verify(c.TLS().PeerCertificates, x509.ExtKeyUsageClientAuth)
	return err == nil
}

func (in *Instance) closeUntrusted(c *netmux.Conn) {
	who := "?"
	if id, _, err := trust.PeerIdentity(*c.TLS()); err == nil {
		who = id.String()
	}
	in.log.Info().Str("caller", who).Str("remote", c.RemoteAddr().String()).
		Msg("API connection closed: the CA bundle re-read no longer trusts its client certificate")
	_ = c.Close()
}
