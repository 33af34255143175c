package trust

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files are the PEM files of one side of a connection: its certificate
// (with any intermediates after it), its private key, and the CA bundle it
// trusts for the other side.
type Files struct {
	Certificate string
	PrivateKey  string
	CA          string
	// PeerCA, optional, holds the CAs of other agents (another
	// organisation's): a certificate they sign is trusted only for an
	// identity of another agent than the store's own, never for one of
	// its own instances or clients. CA's certificates may sign any.
	PeerCA string
}

// FileError is a file of Files that cannot be used, with the property (or
// variable) that names it.
type FileError struct {
	Key  string // the property that names the file, e.g. tlsCertificate
	Path string
	Msg  string
}

func (e *FileError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s: %s", e.Key, e.Msg)
	}
	return fmt.Sprintf("%s=%s: %s", e.Key, e.Path, e.Msg)
}

// FileKey is the property, the path and the reason, for pkg/config's
// FileError.
func (e *FileError) FileKey() (key, path, reason string) { return e.Key, e.Path, e.Msg }

// Keys name the properties of a Files, for errors.
type Keys struct {
	Certificate, PrivateKey, CA, PeerCA string
}

// material is one loaded generation of Files.
type material struct {
	cert tls.Certificate
	leaf *x509.Certificate
	self Identity
	pool *x509.CertPool
	// peers is the pool of Files.PeerCA (nil without it); all is pool
	// and peers together, for the handshake, which knows no identity.
	peers *x509.CertPool
	all   *x509.CertPool
	stamp string // the files' sizes and times, to notice a change
}

// Store holds the certificate, key and CA bundle of Files, and re-reads
// them on Reload: connections made afterwards use the new ones, those
// open keep theirs. A failed Reload keeps the last good generation.
type Store struct {
	files Files
	keys  Keys

	mu  sync.RWMutex
	cur *material
}

// Load reads files (all three are required); errors are *FileError naming
// the property of keys that names the file at fault.
func Load(files Files, keys Keys) (*Store, error) {
	s := &Store{files: files, keys: keys}
	m, err := s.read()
	if err != nil {
		return nil, err
	}
	s.cur = m
	return s, nil
}

// Self is the identity the store's certificate names.
func (s *Store) Self() Identity {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.self
}

// NotAfter is when the current certificate expires.
func (s *Store) NotAfter() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.leaf.NotAfter
}

// Reload re-reads the files; changed reports whether they differed from
// the generation in use. On error the store keeps what it had.
func (s *Store) Reload() (changed bool, err error) {
	m, err := s.read()
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.self != s.cur.self {
		return false, &FileError{Key: s.keys.Certificate, Path: s.files.Certificate,
			Msg: fmt.Sprintf("names %s, but this process is %s: a certificate may be renewed, not exchanged for another identity", m.self, s.cur.self)}
	}
	changed = !bytes.Equal(m.leaf.Raw, s.cur.leaf.Raw) || !m.pool.Equal(s.cur.pool) || !m.all.Equal(s.cur.all)
	s.cur = m
	return changed, nil
}

// Watch re-reads the files when their size or modification time changes,
// checking every interval until ctx ends, and calls report after each
// attempt that found a change (err nil when the new files are in use).
func (s *Store) Watch(ctx context.Context, interval time.Duration, report func(err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamp := s.stamp()
		s.mu.RLock()
		same := stamp == s.cur.stamp
		s.mu.RUnlock()
		if same {
			continue
		}
		_, err := s.Reload()
		if err != nil {
			// Remember the stamp that failed so that one bad edit is
			// reported once, not every interval.
			s.mu.Lock()
			s.cur.stamp = stamp
			s.mu.Unlock()
		}
		report(err)
	}
}

// stamp describes the files' sizes and modification times.
func (s *Store) stamp() string {
	var b bytes.Buffer
	for _, p := range []string{s.files.Certificate, s.files.PrivateKey, s.files.CA, s.files.PeerCA} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s:-;", p)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

func (s *Store) read() (*material, error) {
	stamp := s.stamp()
	certPEM, err := readFile(s.keys.Certificate, s.files.Certificate)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile(s.keys.PrivateKey, s.files.PrivateKey)
	if err != nil {
		return nil, err
	}
	caPEM, err := readFile(s.keys.CA, s.files.CA)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &FileError{Key: s.keys.Certificate, Path: s.files.Certificate,
			Msg: fmt.Sprintf("with %s=%s: %v", s.keys.PrivateKey, s.files.PrivateKey, err)}
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, &FileError{Key: s.keys.Certificate, Path: s.files.Certificate, Msg: err.Error()}
		}
	}
	self, err := IdentityOf(leaf)
	if err != nil {
		return nil, &FileError{Key: s.keys.Certificate, Path: s.files.Certificate, Msg: err.Error()}
	}
	pool, n, err := parseBundle(caPEM)
	if err != nil {
		return nil, &FileError{Key: s.keys.CA, Path: s.files.CA, Msg: err.Error()}
	}
	if n == 0 {
		return nil, &FileError{Key: s.keys.CA, Path: s.files.CA, Msg: "holds no certificate"}
	}
	m := &material{cert: cert, leaf: leaf, self: self, pool: pool, all: pool, stamp: stamp}
	if s.files.PeerCA != "" {
		peerPEM, err := readFile(s.keys.PeerCA, s.files.PeerCA)
		if err != nil {
			return nil, err
		}
		peers, n, err := parseBundle(peerPEM)
		if err != nil {
			return nil, &FileError{Key: s.keys.PeerCA, Path: s.files.PeerCA, Msg: err.Error()}
		}
		if n == 0 {
			return nil, &FileError{Key: s.keys.PeerCA, Path: s.files.PeerCA, Msg: "holds no certificate"}
		}
		all, _, _ := parseBundle(append(append([]byte{}, caPEM...), peerPEM...))
		m.peers, m.all = peers, all
	}
	return m, nil
}

func readFile(key, path string) ([]byte, error) {
	if path == "" {
		return nil, &FileError{Key: key, Msg: "required (the PEM file; or tlsMode=disabled for a throw-away trial)"}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &FileError{Key: key, Path: path, Msg: "cannot read: " + err.Error()}
	}
	return b, nil
}

// parseBundle reads every CERTIFICATE block of a PEM bundle.
func parseBundle(b []byte) (*x509.CertPool, int, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, 0, fmt.Errorf("certificate %d of the bundle: %v", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	return pool, n, nil
}

func (s *Store) material() *material {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// ServerConfig is the TLS configuration of an instance's listener: TLS 1.3
// only, the store's current certificate, and a client certificate signed by
// the current CA bundle, required (requireClient) or verified if given.
func (s *Store) ServerConfig(requireClient bool) *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if requireClient {
		auth = tls.RequireAndVerifyClientCert
	}
	base := &tls.Config{MinVersion: tls.VersionTLS13}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.material()
		return &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{m.cert},
			ClientAuth:   auth,
			// Which CA may sign which identity is checked once the
			// identity is known (Verify).
			ClientCAs: m.all,
			// No client resumes a session (instances and commands keep
			// no session cache, and a resumed session would outlive a
			// change of the CA bundle): a ticket after every handshake
			// would be work on each new connection's path for nothing.
			SessionTicketsDisabled: true,
		}, nil
	}
	return base
}

// ClientConfig is the TLS configuration of a connection to an instance:
// TLS 1.3 only, the store's certificate presented, and the server's
// certificate verified against the current CA bundle and accepted only if
// check accepts the identity it names. Host names are not checked: the
// identity is (instances are reached at whatever address the instances
// property gives, and only ftagent's CA signs their certificates).
func (s *Store) ClientConfig(check func(Identity) error) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			m := s.material()
			return &m.cert, nil
		},
		// Verified in VerifyConnection, against the identity rather than a
		// host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := s.Verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return &PeerError{Err: err}
			}
			if check != nil {
				if err := check(id); err != nil {
					return &PeerError{Err: err}
				}
			}
			return nil
		},
	}
}

// Verify checks a peer's chain against the current CA bundle, for usage,
// and returns the identity its certificate names. A chain that only the
// peer CAs (Files.PeerCA) sign is good for an identity of another agent
// only.
func (s *Store) Verify(chain []*x509.Certificate, usage x509.ExtKeyUsage) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, errors.New("the peer presented no certificate")
	}
	m := s.material()
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: m.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}
	_, err := chain[0].Verify(opts)
	if err == nil {
		return IdentityOf(chain[0])
	}
	if m.peers == nil {
		return Identity{}, fmt.Errorf("peer certificate: %w", err)
	}
	opts.Roots = m.peers
	if _, perr := chain[0].Verify(opts); perr != nil {
		return Identity{}, fmt.Errorf("peer certificate: %w", err)
	}
	id, err := IdentityOf(chain[0])
	if err != nil {
		return Identity{}, err
	}
	if id.Agent == m.self.Agent {
		return Identity{}, fmt.Errorf("peer certificate: %s is signed by a CA of the peer CAs (%s), which may sign only other agents' identities, not agent %s's own", id, s.keys.PeerCA, m.self.Agent)
	}
	return id, nil
}

// PeerIdentity is the identity of the verified client certificate of a
// server-side connection state (the listener verified its chain); ok is
// false when the client presented none.
func PeerIdentity(cs tls.ConnectionState) (Identity, bool, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, false, nil
	}
	id, err := IdentityOf(cs.PeerCertificates[0])
	return id, true, err
}

// PeerOf is the identity of the client certificate of a server-side
// connection state that the listener verified against every CA the store
// trusts: checked again for which CA may sign it (Verify). ok is false
// when the client presented none.
func (s *Store) PeerOf(cs tls.ConnectionState) (Identity, bool, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, false, nil
	}
	id, err := s.Verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth)
	return id, true, err
}

// ExpectInstanceOf is a check for ClientConfig: the server must be an
// instance of agent.
func ExpectInstanceOf(agent string) func(Identity) error {
	return func(id Identity) error {
		if !id.IsInstanceOf(agent) {
			return fmt.Errorf("the server is %s, not an instance of agent %s", id, agent)
		}
		return nil
	}
}
