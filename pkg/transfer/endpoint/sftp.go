package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/ftagent/ftagent/pkg/checkpoint"
)

// An SFTP server is an endpoint of its own: a partner that runs no agent.
// Its files are named in a transfer as sftp://PARTNER/path (a user's
// path, relative to the partner's root) and kept, once resolved, as
// "sftp:/PARTNER/path" (SFTPPath): a form that filepath.Join, Dir and
// Clean keep intact, so the planner and the copy handle it as any
// resolved path and Mux sends it here.

// SFTPScheme begins a user's path on an SFTP partner.
const SFTPScheme = "sftp://"

// sftpPrefix begins a resolved path on an SFTP partner.
const sftpPrefix = "sftp:/"

var (
	// ErrHostKey: the server's host key is not the one known_hosts holds
	// for it (unknown or changed). Never retried into success: an operator
	// must check the key and add it.
	ErrHostKey = errors.New("SFTP host key not trusted")
	// ErrAuth: the server refused every credential offered.
	ErrAuth = errors.New("SFTP authentication failed")
	// ErrNoPartner: a path names an SFTP partner that is not configured.
	ErrNoPartner = errors.New("no such SFTP partner")
)

// ParseSFTP splits a user's path sftp://PARTNER/p into the partner's name
// and the resolved path (SFTPPath). ok is false for any other path; err
// says why an sftp:// path is malformed.
func ParseSFTP(user string) (partner, resolved string, ok bool, err error) {
	rest, ok := strings.CutPrefix(user, SFTPScheme)
	if !ok {
		return "", "", false, nil
	}
	partner, rel, _ := strings.Cut(rest, "/")
	if !ValidPartnerName(partner) {
		return "", "", true, fmt.Errorf("%q: the SFTP partner's name must be letters, digits, '.', '_' or '-'", user)
	}
	for _, e := range strings.Split(rel, "/") {
		if e == ".." {
			return "", "", true, fmt.Errorf("%q: \"..\" is not allowed in an SFTP path (paths resolve under the partner's root)", user)
		}
	}
	return partner, SFTPPath(partner, rel), true, nil
}

// SFTPPath is the resolved form of the path rel on partner, relative to
// its root.
func SFTPPath(partner, rel string) string {
	c := path.Clean("/" + rel)
	if c == "/" {
		return sftpPrefix + partner
	}
	return sftpPrefix + partner + c
}

// IsSFTP reports whether a resolved path is on an SFTP partner.
func IsSFTP(p string) bool {
	return strings.HasPrefix(p, sftpPrefix) && !strings.HasPrefix(p, SFTPScheme)
}

// SplitSFTP returns the partner of a resolved SFTP path and the path
// relative to its root ("" for the root itself).
func SplitSFTP(p string) (partner, rel string, ok bool) {
	if !IsSFTP(p) {
		return "", "", false
	}
	partner, rel, _ = strings.Cut(p[len(sftpPrefix):], "/")
	return partner, rel, true
}

// UserSFTP is the form a user wrote for a resolved SFTP path.
func UserSFTP(p string) string {
	partner, rel, ok := SplitSFTP(p)
	if !ok {
		return p
	}
	return SFTPScheme + partner + "/" + rel
}

// ValidPartnerName reports whether name can name an SFTP partner (in a
// property's key and in a path).
func ValidPartnerName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// SFTPConfig is one partner's settings (the sftp.NAME.* properties).
type SFTPConfig struct {
	Name    string
	Address string // host:port
	User    string
	// IdentityFile is a private key (ed25519, RSA, ECDSA) in OpenSSH or
	// PEM form; PassphraseFile, when set, holds its passphrase.
	IdentityFile, PassphraseFile string
	// PasswordFile holds a password (password authentication). Either or
	// both of IdentityFile and PasswordFile.
	PasswordFile string
	// KnownHostsFile holds the server's host key (OpenSSH known_hosts);
	// read at each connection, so a key added there is used at once.
	KnownHostsFile string
	// Root is the server's directory paths resolve under; "" is the
	// login directory.
	Root string
	// MaxConnections bounds the SSH connections to the partner, shared by
	// its transfers (several requests in flight on each).
	MaxConnections int
	// KeepAlive is the interval of keep-alive requests; a connection that
	// does not answer one within Timeout is closed, which fails its
	// requests in flight (pkg/sftp's requests take no deadline).
	KeepAlive time.Duration
	// Timeout bounds a connection's set-up (TCP, SSH handshake,
	// authentication, the SFTP session) and a keep-alive's answer.
	Timeout time.Duration
	// RequestsPerFile is how many reads or writes of one file are in
	// flight at once.
	RequestsPerFile int
}

// SFTP is the Endpoint of one SFTP partner. It holds up to MaxConnections
// SSH connections, opened when first needed (only the active instance
// transfers, so only it connects) and closed by Close (when the lease
// ends) or when they fail; each operation takes the connection least in
// use. Errors are sorted as Permanent expects: a host key not trusted
// (ErrHostKey), credentials refused (ErrAuth), a missing file
// (fs.ErrNotExist), permission denied (fs.ErrPermission) are permanent;
// a dropped connection, a timeout, a server failure (a full disk is
// reported so by SFTP version 3) are transient.
type SFTP struct {
	cfg  SFTPConfig
	auth []ssh.AuthMethod

	mu     sync.Mutex
	dial   sync.Mutex // one connection set up at a time
	conns  []*sftpConn
	closed bool
}

type sftpConn struct {
	ssh   *ssh.Client
	c     *sftp.Client
	root  string    // the partner's root, absolute on this connection's server
	users int       // operations and open files using it (SFTP.mu)
	idle  time.Time // when users last fell to 0 (SFTP.mu)
	dead  atomic.Bool
	stop  chan struct{}
}

// NewSFTP checks a partner's settings and reads its credentials, so that
// a mistake there is found when the agent starts, not at the first
// transfer.
func NewSFTP(cfg SFTPConfig) (*SFTP, error) {
	if !ValidPartnerName(cfg.Name) {
		return nil, fmt.Errorf("sftp partner %q: the name must be letters, digits, '.', '_' or '-'", cfg.Name)
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("sftp.%s.address %q: %v (host:port)", cfg.Name, cfg.Address, err)
	}
	if cfg.User == "" {
		return nil, fmt.Errorf("sftp.%s.user is not set", cfg.Name)
	}
	if cfg.KnownHostsFile == "" {
		return nil, fmt.Errorf("sftp.%s.knownHostsFile is not set: the server's host key must be known (there is no \"accept any key\")", cfg.Name)
	}
	if _, err := knownhosts.New(cfg.KnownHostsFile); err != nil {
		return nil, fmt.Errorf("sftp.%s.knownHostsFile: %v", cfg.Name, err)
	}
	if cfg.Root != "" && !strings.HasPrefix(cfg.Root, "/") {
		return nil, fmt.Errorf("sftp.%s.root %q is not an absolute path (leave it unset for the login directory)", cfg.Name, cfg.Root)
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 1
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.RequestsPerFile <= 0 {
		cfg.RequestsPerFile = 64
	}
	s := &SFTP{cfg: cfg}
	if cfg.IdentityFile != "" {
		signer, err := loadSigner(cfg)
		if err != nil {
			return nil, err
		}
		s.auth = append(s.auth, ssh.PublicKeys(signer))
	}
	if cfg.PasswordFile != "" {
		pw, err := readSecret(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("sftp.%s.passwordFile: %w", cfg.Name, err)
		}
		s.auth = append(s.auth, ssh.Password(pw))
	}
	if len(s.auth) == 0 {
		return nil, fmt.Errorf("sftp.%s: set identityFile or passwordFile (or both)", cfg.Name)
	}
	return s, nil
}

// Name is the partner's name.
func (s *SFTP) Name() string { return s.cfg.Name }

func loadSigner(cfg SFTPConfig) (ssh.Signer, error) {
	key, err := readSecretBytes(cfg.IdentityFile)
	if err != nil {
		return nil, fmt.Errorf("sftp.%s.identityFile: %w", cfg.Name, err)
	}
	if cfg.PassphraseFile != "" {
		pass, err := readSecret(cfg.PassphraseFile)
		if err != nil {
			return nil, fmt.Errorf("sftp.%s.passphraseFile: %w", cfg.Name, err)
		}
		signer, err := ssh.ParsePrivateKeyWithPassphrase(key, []byte(pass))
		if err != nil {
			return nil, fmt.Errorf("sftp.%s.identityFile %s: %v", cfg.Name, cfg.IdentityFile, err)
		}
		return signer, nil
	}
	signer, err := ssh.ParsePrivateKey(key)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("sftp.%s.identityFile %s is protected by a passphrase: set sftp.%s.passphraseFile", cfg.Name, cfg.IdentityFile, cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("sftp.%s.identityFile %s: %v", cfg.Name, cfg.IdentityFile, err)
	}
	return signer, nil
}

// readSecretBytes reads a file that holds a secret, refusing one that
// others than its owner may read (as ssh does for a private key).
func readSecretBytes(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others than its owner (mode %#o): chmod 600 it", name, fi.Mode().Perm())
	}
	return os.ReadFile(name)
}

func readSecret(name string) (string, error) {
	b, err := readSecretBytes(name)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// hostKeyCallback checks the server's key against the known-hosts file,
// read now, and says what was offered when it is refused.
func (s *SFTP) hostKeyCallback() (ssh.HostKeyCallback, error) {
	check, err := knownhosts.New(s.cfg.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("sftp.%s.knownHostsFile: %v: %w", s.cfg.Name, err, ErrHostKey)
	}
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := check(host, remote, key)
		if err == nil {
			return nil
		}
		offered := key.Type() + " " + ssh.FingerprintSHA256(key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return fmt.Errorf("host %s offered %s, which %s does not know (unknown host): %w", host, offered, s.cfg.KnownHostsFile, ErrHostKey)
		case errors.As(err, &ke):
			var want []string
			for _, k := range ke.Want {
				want = append(want, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
			}
			return fmt.Errorf("host %s offered %s, but %s holds %s (the host key changed): %w", host, offered, s.cfg.KnownHostsFile, strings.Join(want, ", "), ErrHostKey)
		case errors.As(err, &re):
			return fmt.Errorf("host %s offered %s, which is revoked in %s: %w", host, offered, s.cfg.KnownHostsFile, ErrHostKey)
		}
		return fmt.Errorf("host %s offered %s: %v: %w", host, offered, err, ErrHostKey)
	}, nil
}

// connect sets up one connection: TCP, SSH (host key, authentication),
// the SFTP session, and its root.
func (s *SFTP) connect(ctx context.Context) (*sftpConn, error) {
	hk, err := s.hostKeyCallback()
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: s.cfg.Timeout, KeepAlive: s.cfg.KeepAlive}
	nc, err := d.DialContext(ctx, "tcp", s.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("sftp %s: connect %s: %w", s.cfg.Name, s.cfg.Address, err)
	}
	// Closed abortively (a reset, the unsent bytes dropped): when the
	// lease ends the connections close (Close), and writes this instance
	// queued must not reach the server after that, behind the next
	// active's.
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.SetDeadline(time.Now().Add(s.cfg.Timeout))
	cc, chans, reqs, err := ssh.NewClientConn(nc, s.cfg.Address, &ssh.ClientConfig{
		User:            s.cfg.User,
		Auth:            s.auth,
		HostKeyCallback: hk,
		Timeout:         s.cfg.Timeout,
	})
	if err != nil {
		nc.Close()
		if errors.Is(err, ErrHostKey) {
			return nil, fmt.Errorf("sftp %s: %w", s.cfg.Name, err)
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("sftp %s: %s refused user %q: %v: %w", s.cfg.Name, s.cfg.Address, s.cfg.User, err, ErrAuth)
		}
		return nil, fmt.Errorf("sftp %s: %s: %w", s.cfg.Name, s.cfg.Address, err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	opts := []sftp.ClientOption{
		sftp.UseConcurrentWrites(true),
		sftp.UseConcurrentReads(true),
		sftp.MaxConcurrentRequestsPerFile(s.cfg.RequestsPerFile),
	}
	sc, err := sftp.NewClient(client, opts...)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("sftp %s: start the SFTP session: %w", s.cfg.Name, err)
	}
	root := s.cfg.Root
	if root == "" {
		if root, err = sc.Getwd(); err != nil {
			sc.Close()
			client.Close()
			return nil, fmt.Errorf("sftp %s: the login directory: %w", s.cfg.Name, err)
		}
	}
	_ = nc.SetDeadline(time.Time{})
	c := &sftpConn{ssh: client, c: sc, root: root, stop: make(chan struct{})}
	go s.watch(c)
	return c, nil
}

// watch marks c dead when its connection ends, and sends it keep-alives:
// one not answered within Timeout closes it, which fails the requests in
// flight on it instead of leaving them waiting on a server gone silent.
func (s *SFTP) watch(c *sftpConn) {
	ended := make(chan struct{})
	go func() {
		_ = c.ssh.Wait()
		c.dead.Store(true)
		close(ended)
	}()
	tick := time.NewTicker(s.cfg.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ended:
			return
		case <-c.stop:
			return
		case <-tick.C:
			if s.idleFor(c, sftpIdleClose) {
				c.close()
				return
			}
			answered := make(chan error, 1)
			go func() {
				_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
				answered <- err
			}()
			select {
			case err := <-answered:
				if err != nil {
					c.close()
				}
			case <-time.After(s.cfg.Timeout):
				c.close()
			case <-ended:
				return
			case <-c.stop:
				return
			}
		}
	}
}

func (c *sftpConn) close() {
	c.dead.Store(true)
	c.c.Close()
	c.ssh.Close()
}

// get returns the live connection least in use, opening one if there is
// none or every one is in use while fewer than MaxConnections are open.
// The caller calls put when done with it.
func (s *SFTP) get(ctx context.Context) (*sftpConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if best := s.pickLocked(); best != nil && (best.users == 0 || len(s.conns) >= s.cfg.MaxConnections) {
		best.users++
		s.mu.Unlock()
		return best, nil
	}
	s.mu.Unlock()
	s.dial.Lock()
	defer s.dial.Unlock()
	// Another caller may have opened one meanwhile.
	s.mu.Lock()
	if best := s.pickLocked(); best != nil && (best.users == 0 || len(s.conns) >= s.cfg.MaxConnections) {
		best.users++
		s.mu.Unlock()
		return best, nil
	}
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("sftp %s: the endpoint is closed (this instance is not active)", s.cfg.Name)
	}
	c, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.close()
		return nil, fmt.Errorf("sftp %s: the endpoint is closed (this instance is not active)", s.cfg.Name)
	}
	c.users = 1
	s.conns = append(s.conns, c)
	return c, nil
}

// pickLocked drops dead connections and returns the live one least in use.
func (s *SFTP) pickLocked() *sftpConn {
	live := s.conns[:0]
	for _, c := range s.conns {
		if c.dead.Load() {
			close(c.stop)
			c.close()
			continue
		}
		live = append(live, c)
	}
	clear(s.conns[len(live):])
	s.conns = live
	var best *sftpConn
	for _, c := range s.conns {
		if best == nil || c.users < best.users {
			best = c
		}
	}
	return best
}

func (s *SFTP) put(c *sftpConn) {
	s.mu.Lock()
	if c.users--; c.users == 0 {
		c.idle = time.Now()
	}
	s.mu.Unlock()
}

// sftpIdleClose is how long a connection may go unused before it is
// closed: a partner's server should not hold sessions for an agent that
// has nothing to send, nor an instance that planned a request just as it
// lost its lease keep one.
const sftpIdleClose = 5 * time.Minute

// idleFor reports whether c has been unused for at least d, and if so
// marks it dead, under the lock get takes, so that no caller picks it
// before it is closed.
func (s *SFTP) idleFor(c *sftpConn, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.users == 0 && !c.idle.IsZero() && time.Since(c.idle) >= d {
		c.dead.Store(true)
		return true
	}
	return false
}

// Close closes every connection (the lease ended: only the active holds
// connections). The endpoint opens new ones when used again.
func (s *SFTP) Close() error {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		close(c.stop)
		c.close()
	}
	return nil
}

// Shutdown closes every connection and refuses new ones.
func (s *SFTP) Shutdown() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	_ = s.Close()
}

// serverPath is the server's path of a resolved path on this partner.
func (s *SFTP) serverPath(c *sftpConn, p string) (string, error) {
	partner, rel, ok := SplitSFTP(p)
	if !ok || partner != s.cfg.Name {
		return "", fmt.Errorf("%s is not a path on SFTP partner %s: %w", p, s.cfg.Name, ErrOutsideRoot)
	}
	return path.Join(c.root, rel), nil
}

// do runs f with a connection and the server's path of p, and sorts its
// error (sftpError).
func (s *SFTP) do(ctx context.Context, op, p string, f func(c *sftpConn, sp string) error) error {
	c, err := s.get(ctx)
	if err != nil {
		return err
	}
	defer s.put(c)
	sp, err := s.serverPath(c, p)
	if err != nil {
		return err
	}
	return s.sftpError(c, op, p, f(c, sp))
}

// sftpError names the operation and path of an error, and makes a
// failure of the connection a transient one.
func (s *SFTP) sftpError(c *sftpConn, op, p string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrExists) || errors.Is(err, ErrAlreadyCommitted) ||
		errors.Is(err, ErrPartLost) || errors.Is(err, checkpoint.ErrSourceChanged) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return &fs.PathError{Op: op, Path: UserSFTP(p), Err: err}
	}
	if c != nil && (c.dead.Load() || errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)) {
		c.dead.Store(true)
		return fmt.Errorf("%s %s: the connection to SFTP partner %s was lost: %v", op, UserSFTP(p), s.cfg.Name, err)
	}
	var se *sftp.StatusError
	if errors.As(err, &se) {
		return fmt.Errorf("%s %s: the SFTP server answered %v", op, UserSFTP(p), err)
	}
	return fmt.Errorf("%s %s: %w", op, UserSFTP(p), err)
}

func sftpInfo(fi os.FileInfo) Info {
	return Info{Size: fi.Size(), IsDir: fi.IsDir(), Source: checkpoint.Source{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}}
}

func (s *SFTP) Stat(ctx context.Context, p string) (Info, error) {
	var info Info
	err := s.do(ctx, "stat", p, func(c *sftpConn, sp string) error {
		fi, err := c.c.Stat(sp)
		if err == nil {
			info = sftpInfo(fi)
		}
		return err
	})
	return info, err
}

func (s *SFTP) OpenSource(ctx context.Context, p string) (SourceFile, error) {
	c, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	sp, err := s.serverPath(c, p)
	if err != nil {
		s.put(c)
		return nil, err
	}
	f, err := c.c.OpenFile(sp, os.O_RDONLY)
	if err != nil {
		s.put(c)
		return nil, s.sftpError(c, "open source", p, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file: %w", syscall.EISDIR)
		if !fi.IsDir() {
			err = fmt.Errorf("not a regular file: %w", fs.ErrInvalid)
		}
	}
	if err != nil {
		f.Close()
		s.put(c)
		return nil, s.sftpError(c, "open source", p, err)
	}
	return &sftpSource{s: s, c: c, f: f, p: p, info: sftpInfo(fi)}, nil
}

type sftpSource struct {
	s    *SFTP
	c    *sftpConn
	f    *sftp.File
	p    string
	info Info
	once sync.Once
}

func (r *sftpSource) ReadAt(b []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(b, off)
	if err != nil && err != io.EOF {
		err = r.s.sftpError(r.c, "read", r.p, err)
	}
	return n, err
}

func (r *sftpSource) Info() Info { return r.info }

func (r *sftpSource) Stat() (Info, error) {
	fi, err := r.f.Stat()
	if err != nil {
		return Info{}, r.s.sftpError(r.c, "stat source", r.p, err)
	}
	return sftpInfo(fi), nil
}

func (r *sftpSource) Close() error {
	var err error
	r.once.Do(func() {
		err = r.f.Close()
		r.s.put(r.c)
	})
	return err
}

func (s *SFTP) OpenPart(ctx context.Context, p string, offset int64) (PartFile, error) {
	c, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	sp, err := s.serverPath(c, p)
	if err != nil {
		s.put(c)
		return nil, err
	}
	part := PartName(sp)
	f, err := s.openPart(ctx, c, part, offset)
	if err != nil {
		s.put(c)
		return nil, s.sftpError(c, "open", PartName(p), err)
	}
	return &sftpPart{s: s, c: c, f: f, p: PartName(p), sp: part, off: offset}, nil
}

func (s *SFTP) openPart(ctx context.Context, c *sftpConn, part string, offset int64) (*sftp.File, error) {
	if offset == 0 {
		f, err := c.c.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if errors.Is(err, fs.ErrNotExist) && !noMkdir(ctx) {
			if err := c.c.MkdirAll(path.Dir(part)); err != nil {
				return nil, err
			}
			f, err = c.c.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		}
		return f, err
	}
	f, err := c.c.OpenFile(part, os.O_WRONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("resume at offset %d: %w", offset, ErrPartLost)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < offset {
		err = fmt.Errorf("holds %d bytes, fewer than the checkpoint's %d: %w", fi.Size(), offset, ErrPartLost)
	}
	if err == nil {
		err = f.Truncate(offset)
	}
	if err == nil {
		_, err = f.Seek(offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sftpPart is a .part on the server. Sync asks the server to flush it
// (fsync@openssh.com) where the server offers that; elsewhere the
// server's acknowledgement of each write is all there is. Close syncs
// what was written since the last Sync first, so that a batch of parts
// (BeginParts) is durable once each is closed.
//
// Writes are handed to two writers behind the caller, each sending a
// buffer at its offset with many requests in flight (pkg/sftp's WriteAt
// may run concurrently), so that the server always has the next buffer
// to take while the copy loop reads the one after: written one at a time,
// the requests of each buffer drained before the next began. At most
// behindBuffers buffers are in flight; Write copies the caller's bytes
// into one (waiting for one to be free). A failed write is reported by the
// next Write, Sync or Close; Sync and Close return only once every write
// handed over has been answered, so a checkpoint still follows its bytes
// being acknowledged and flushed. Each write was checked against the lease
// when it was handed over (Fenced): up to behindBuffers buffers may reach
// the server after that check, as a write in progress may on local
// storage.
type sftpPart struct {
	s     *SFTP
	c     *sftpConn
	f     *sftp.File
	p     string
	sp    string // on the server
	off   int64  // where the next Write goes
	dirty bool
	once  sync.Once

	started bool
	free    chan []byte // buffers not in flight
	made    int
	jobs    chan behindWrite
	pending sync.WaitGroup // writes handed over, not answered
	writers sync.WaitGroup
	errMu   sync.Mutex
	err     error // the first failed write's
}

type behindWrite struct {
	b   []byte
	off int64
}

// behindBuffers is how many of a part's writes may be in flight at once;
// behindWriters how many are sent at once.
const (
	behindBuffers = 4
	behindWriters = 2
)

func (w *sftpPart) failed() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *sftpPart) writer() {
	defer w.writers.Done()
	for j := range w.jobs {
		if w.failed() == nil {
			if _, err := w.f.WriteAt(j.b, j.off); err != nil {
				err = w.s.sftpError(w.c, "write", w.p, fmt.Errorf("at offset %d: %w%s", j.off, err, w.s.full(w.c, w.sp, err)))
				w.errMu.Lock()
				if w.err == nil {
					w.err = err
				}
				w.errMu.Unlock()
			}
		}
		w.free <- j.b[:0]
		w.pending.Done()
	}
}

func (w *sftpPart) Write(b []byte) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	if !w.started {
		w.started = true
		w.free, w.jobs = make(chan []byte, behindBuffers), make(chan behindWrite)
		w.writers.Add(behindWriters)
		for range behindWriters {
			go w.writer()
		}
	}
	var buf []byte
	select {
	case buf = <-w.free:
	default:
		if w.made < behindBuffers {
			w.made++
		} else {
			buf = <-w.free
		}
	}
	buf = append(buf, b...)
	w.dirty = true
	w.pending.Add(1)
	w.jobs <- behindWrite{b: buf, off: w.off}
	w.off += int64(len(b))
	return len(b), nil
}

// drain waits until every write handed over has been answered, and
// returns the first that failed.
func (w *sftpPart) drain() error {
	w.pending.Wait()
	return w.failed()
}

// full says, for a write the server failed without a reason (SFTP
// version 3 has no code for a full disk: OpenSSH answers "Failure"), how
// much room the server's file system has left, where the server can tell
// (statvfs@openssh.com).
func (s *SFTP) full(c *sftpConn, sp string, err error) string {
	var se *sftp.StatusError
	if !errors.As(err, &se) || se.FxCode() != sftp.ErrSSHFxFailure {
		return ""
	}
	if _, ok := c.c.HasExtension("statvfs@openssh.com"); !ok {
		return ""
	}
	vfs, verr := c.c.StatVFS(path.Dir(sp))
	if verr != nil {
		return ""
	}
	free := vfs.Frsize * vfs.Bavail
	if free >= 1<<20 {
		return fmt.Sprintf(" (the server's file system has %d bytes free)", free)
	}
	return fmt.Sprintf(" (the server's file system is full: %d bytes free of %d)", free, vfs.TotalSpace())
}

func (w *sftpPart) Sync() error {
	if err := w.drain(); err != nil {
		return err
	}
	if _, ok := w.c.c.HasExtension("fsync@openssh.com"); ok {
		if err := w.f.Sync(); err != nil {
			return w.s.sftpError(w.c, "sync", w.p, err)
		}
	}
	w.dirty = false
	return nil
}

func (w *sftpPart) Close() error {
	err := os.ErrClosed
	w.once.Do(func() {
		err = w.drain()
		if w.started {
			close(w.jobs)
			w.writers.Wait()
		}
		if err == nil && w.dirty {
			err = w.Sync()
		}
		if cerr := w.f.Close(); err == nil && cerr != nil {
			err = w.s.sftpError(w.c, "close", w.p, cerr)
		}
		w.s.put(w.c)
	})
	return err
}

// Commit renames the .part into place. Without overwrite it is SFTP's own
// rename, which OpenSSH's server makes with link and unlink, so an
// existing destination is refused and never replaced; with overwrite it is
// posix-rename@openssh.com (atomic) where the server offers it, else the
// destination is removed and then renamed onto, which is not atomic: a
// reader may find no file for a moment, and a failure in between leaves
// none (the .part stays, and the retry renames it). SFTP cannot sync a
// directory: the rename is as durable as the server makes it.
func (s *SFTP) Commit(ctx context.Context, p string, overwrite bool) error {
	return s.do(ctx, "rename", p, func(c *sftpConn, sp string) error {
		return commitSFTP(c, sp, overwrite)
	})
}

func commitSFTP(c *sftpConn, sp string, overwrite bool) error {
	part := PartName(sp)
	var err error
	switch _, posix := c.c.HasExtension("posix-rename@openssh.com"); {
	case overwrite && posix:
		err = c.c.PosixRename(part, sp)
	case overwrite:
		if err = c.c.Remove(sp); err == nil || errors.Is(err, fs.ErrNotExist) {
			err = c.c.Rename(part, sp)
		}
	default:
		err = c.c.Rename(part, sp)
	}
	if err == nil {
		return nil
	}
	// Why: the .part gone and the destination there is a rename done
	// before (a completion replayed); the destination there is one that
	// exists.
	_, perr := c.c.Lstat(part)
	_, derr := c.c.Lstat(sp)
	switch {
	case errors.Is(perr, fs.ErrNotExist) && derr == nil:
		return ErrAlreadyCommitted
	case derr == nil && !overwrite:
		return ErrExists
	}
	return err
}

// BeginParts: each .part is synced when it is closed (sftpPart.Close),
// so the batch has nothing left to do.
func (s *SFTP) BeginParts(ctx context.Context) (PartBatch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return sftpBatch{}, nil
}

type sftpBatch struct{}

func (sftpBatch) Sync(ctx context.Context, paths []string) error { return ctx.Err() }
func (sftpBatch) Close() error                                   { return nil }

// RenameAll renames several files at once, each as Commit does, with up
// to 16 renames in flight.
func (s *SFTP) RenameAll(ctx context.Context, paths []string, overwrite bool) []error {
	errs := make([]error, len(paths))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = s.Commit(ctx, p, overwrite)
		}()
	}
	wg.Wait()
	return errs
}

// SyncDirs: SFTP has no way to sync a directory.
func (s *SFTP) SyncDirs(ctx context.Context, paths []string) error { return ctx.Err() }

func (s *SFTP) Exists(ctx context.Context, p string) (bool, error) {
	exists := false
	err := s.do(ctx, "stat", p, func(c *sftpConn, sp string) error {
		_, err := c.c.Lstat(sp)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		exists = err == nil
		return err
	})
	return exists, err
}

func (s *SFTP) Remove(ctx context.Context, p string) error {
	return s.do(ctx, "remove", p, func(c *sftpConn, sp string) error {
		if err := c.c.Remove(sp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

func (s *SFTP) MakeDir(ctx context.Context, p string) error {
	return s.do(ctx, "mkdir", p, func(c *sftpConn, sp string) error {
		fi, err := c.c.Lstat(sp)
		switch {
		case err == nil && fi.IsDir():
			return nil
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("a symbolic link is in the way: %w", syscall.ENOTDIR)
		case err == nil:
			return fmt.Errorf("a file is in the way: %w", syscall.ENOTDIR)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		return c.c.MkdirAll(sp)
	})
}

// CheckName refuses a name that is not UTF-8 (SFTP servers may translate
// names to and from UTF-8, so other bytes may not come back as they went)
// or that holds a NUL.
func (s *SFTP) CheckName(p string) error {
	if !CheckUTF8(p) {
		return fmt.Errorf("%q: an SFTP path must be UTF-8 without NUL: %w", UserSFTP(p), ErrNameNotRepresentable)
	}
	return nil
}

// RemoveSource removes a transferred source if it is still the version
// transferred (its size and modification time). SFTP cannot do both in
// one step: a file written to between the check and the removal is lost
// with it, as with any SFTP client's "get then rm".
func (s *SFTP) RemoveSource(ctx context.Context, p string, was checkpoint.Source) error {
	return s.do(ctx, "remove source", p, func(c *sftpConn, sp string) error {
		fi, err := c.c.Lstat(sp)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if now := sftpInfo(fi).Source; !fi.Mode().IsRegular() || !now.Same(was) {
			return fmt.Errorf("it changed since it was transferred (was %s, now %s): %w", was, now, checkpoint.ErrSourceChanged)
		}
		err = c.c.Remove(sp)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
}

// SFTPEntry is a file or directory found by Walk.
type SFTPEntry struct {
	Path  string // resolved (SFTPPath)
	Rel   string // relative to the walk's base, '/'-separated
	Size  int64
	IsDir bool
}

// Walk lists what a source argument names on the partner, as the planner
// needs it: p itself (a regular file, or with recursive a directory and
// everything below it), or, when p's last element holds wildcards
// (path.Match), the entries of its directory that match, each as p would
// be. Directories (dirs) are handed over before files, parents first, in
// sorted order; Rel is relative to p's directory for a file or wildcard
// match named, and to p itself for a directory walked (the caller adds the
// directory's own name). Symbolic links and special files inside a walked
// tree are skipped; a link named by p or matched is followed.
func (s *SFTP) Walk(ctx context.Context, p string, recursive bool, dirs func(SFTPEntry) error, files func(SFTPEntry) error) error {
	c, err := s.get(ctx)
	if err != nil {
		return err
	}
	defer s.put(c)
	sp, err := s.serverPath(c, p)
	if err != nil {
		return err
	}
	type named struct {
		res  string // resolved path
		base string
		fi   os.FileInfo
	}
	var tops []named
	if base := path.Base(sp); strings.ContainsAny(base, "*?[") {
		if _, err := path.Match(base, ""); err != nil {
			return fmt.Errorf("%s: bad pattern: %w", UserSFTP(p), fs.ErrInvalid)
		}
		dir := path.Dir(p)
		ents, err := c.c.ReadDir(path.Dir(sp))
		if err != nil {
			return s.sftpError(c, "read directory", dir, err)
		}
		for _, e := range ents {
			if ok, _ := path.Match(base, e.Name()); ok {
				fi, err := c.c.Stat(path.Join(path.Dir(sp), e.Name()))
				if err != nil {
					continue // a dangling link
				}
				tops = append(tops, named{res: dir + "/" + e.Name(), base: e.Name(), fi: fi})
			}
		}
		if len(tops) == 0 {
			return fmt.Errorf("%s matches no file: %w", UserSFTP(p), fs.ErrNotExist)
		}
	} else {
		fi, err := c.c.Stat(sp)
		if err != nil {
			return s.sftpError(c, "stat", p, err)
		}
		tops = append(tops, named{res: p, base: path.Base(sp), fi: fi})
	}
	sort.Slice(tops, func(i, j int) bool { return tops[i].base < tops[j].base })
	wild := len(tops) > 1 || tops[0].res != p
	// Directories first, then files.
	for pass := 0; pass < 2; pass++ {
		for _, t := range tops {
			switch {
			case t.fi.Mode().IsRegular():
				if pass == 1 {
					if err := files(SFTPEntry{Path: t.res, Rel: t.base, Size: t.fi.Size()}); err != nil {
						return err
					}
				}
			case t.fi.IsDir() && recursive:
				prefix := ""
				if wild {
					prefix = t.base
				}
				if err := s.walkDir(ctx, c, t.res, prefix, pass == 0, dirs, files); err != nil {
					return err
				}
			case t.fi.IsDir():
				if !wild {
					return fmt.Errorf("%s is a directory (use --recursive): %w", UserSFTP(p), syscall.EISDIR)
				}
			default:
				if !wild {
					return fmt.Errorf("%s is not a regular file: %w", UserSFTP(p), fs.ErrInvalid)
				}
			}
		}
	}
	return nil
}

// walkDir hands over what is below the directory res: its directories
// (wantDirs) or its files, relative names under prefix.
func (s *SFTP) walkDir(ctx context.Context, c *sftpConn, res, prefix string, wantDirs bool, dirs, files func(SFTPEntry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if wantDirs && prefix != "" {
		if err := dirs(SFTPEntry{Path: res, Rel: prefix, IsDir: true}); err != nil {
			return err
		}
	}
	sp, err := s.serverPath(c, res)
	if err != nil {
		return err
	}
	ents, err := c.c.ReadDirContext(ctx, sp)
	if err != nil {
		return s.sftpError(c, "read directory", res, err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		rel := e.Name()
		if prefix != "" {
			rel = prefix + "/" + e.Name()
		}
		child := res + "/" + e.Name()
		switch {
		case e.IsDir():
			if err := s.walkDir(ctx, c, child, rel, wantDirs, dirs, files); err != nil {
				return err
			}
		case e.Mode().IsRegular() && !wantDirs:
			if err := files(SFTPEntry{Path: child, Rel: rel, Size: e.Size()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckUTF8 reports whether p is UTF-8 without NUL, as an SFTP path must
// be.
func CheckUTF8(p string) bool { return utf8.ValidString(p) && !strings.ContainsRune(p, 0) }
