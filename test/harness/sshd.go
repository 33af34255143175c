package harness

// A real OpenSSH sshd on a loopback port, for end-to-end tests of the SFTP
// endpoint: the tests talk to the server the agent will meet in production
// (its authentication, host key, permission and disconnection behaviour),
// not to a mock that agrees with the client by construction.

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDUser is the unprivileged local account the SFTP tests log in as (root
// would bypass permission bits, and the permission-denied test needs them).
const SSHDUser = "ftagent-sftp"

// sshdBinary is the server. sshd refuses to start unless run by its absolute
// path (it re-executes itself for every connection).
const sshdBinary = "/usr/sbin/sshd"

// SSHD is a running sshd, set up for SFTP as SSHDUser only.
type SSHD struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Dir holds the server's own files (config, host key, authorized
	// keys, pid, log). It is made under the system temporary directory,
	// not the caller's: sshd reads authorized_keys as SSHDUser, who must
	// be able to traverse every directory above it, and a t.TempDir() is
	// mode 0700.
	Dir string
	// Root is a folder owned by SSHDUser, mode 0755, that tests use as the
	// SFTP root; it is also the SFTP session's start directory, so
	// relative paths land in it. Tests read what was uploaded directly
	// from it.
	Root string
	// KnownHosts is a known_hosts file holding this server's host key for
	// [127.0.0.1]:PORT.
	KnownHosts string
	// IdentityFile is an authorised ed25519 private key (OpenSSH PEM, mode
	// 0600, no passphrase).
	IdentityFile string
	// PasswordFile holds SSHDUser's password: one line, no newline, mode
	// 0600.
	PasswordFile string

	port       int
	clientDir  string // the caller's: the files the client reads
	config     string
	logPath    string
	hostPub    ssh.PublicKey
	mu         sync.Mutex
	proc       *Proc
	stopped    bool
	stoppedLog string // the log as it was when Stop removed Dir
}

// StartSSHD makes SSHDUser (if missing), the keys and the folders, starts
// sshd and waits until it answers with its SSH banner. dir is a directory
// the caller owns: the files the client reads (identity, password, known
// hosts) are written there; the server's files go to a directory of their
// own (see Dir), removed by Stop.
func StartSSHD(dir string) (*SSHD, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("sshd: StartSSHD needs root, to make the %s account and run sshd", SSHDUser)
	}
	if _, err := os.Stat(sshdBinary); err != nil {
		return nil, fmt.Errorf("sshd: %w (install openssh-server)", err)
	}
	password, err := sshdAccount()
	if err != nil {
		return nil, err
	}
	u, err := user.Lookup(SSHDUser)
	if err != nil {
		return nil, fmt.Errorf("sshd: look up %s: %w", SSHDUser, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("sshd: %s has uid %q gid %q", SSHDUser, u.Uid, u.Gid)
	}
	// The privilege separation directory: sshd will not start without it
	// (it is made by the package's service unit, which no test runs).
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("sshd: privilege separation directory: %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &SSHD{Addr: fmt.Sprintf("127.0.0.1:%d", port), port: port}

	s.Dir, err = os.MkdirTemp("", "ftagent-sshd-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(s.Dir)
		}
	}()
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		return nil, err
	}
	// The path goes into sshd_config and internal-sftp's arguments
	// unquoted.
	if strings.ContainsAny(s.Dir, " \t\"'\\#") {
		return nil, fmt.Errorf("sshd: the temporary directory %q has characters sshd_config would need quoted", s.Dir)
	}
	if err := traversable(s.Dir); err != nil {
		return nil, fmt.Errorf("sshd: %s must reach %s: %w", SSHDUser, s.Dir, err)
	}
	s.Root = filepath.Join(s.Dir, "root")
	if err := os.Mkdir(s.Root, 0o755); err != nil {
		return nil, err
	}
	// Mkdir's mode is filtered by the umask.
	if err := os.Chmod(s.Root, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(s.Root, uid, gid); err != nil {
		return nil, err
	}

	s.clientDir = filepath.Join(dir, fmt.Sprintf("sshd-%d", port))
	if err := os.Mkdir(s.clientDir, 0o700); err != nil {
		return nil, err
	}

	// The host key: root's, mode 0600, as sshd demands of a host key.
	hostKey, hostPub, err := newKeyPEM("ftagent-sshd host key")
	if err != nil {
		return nil, err
	}
	s.hostPub = hostPub
	hostKeyPath := filepath.Join(s.Dir, "host_ed25519")
	if err := os.WriteFile(hostKeyPath, hostKey, 0o600); err != nil {
		return nil, err
	}
	s.KnownHosts = filepath.Join(s.clientDir, "known_hosts")
	if err := writeKnownHosts(s.KnownHosts, s.Addr, hostPub); err != nil {
		return nil, err
	}

	// The client's key, and authorized_keys naming it: readable by
	// SSHDUser, as sshd opens it with the user's uid.
	clientKey, clientPub, err := newKeyPEM(SSHDUser + "@ftagent-test")
	if err != nil {
		return nil, err
	}
	s.IdentityFile = filepath.Join(s.clientDir, "id_ed25519")
	if err := os.WriteFile(s.IdentityFile, clientKey, 0o600); err != nil {
		return nil, err
	}
	authorized := filepath.Join(s.Dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientPub), 0o644); err != nil {
		return nil, err
	}
	if err := os.Chmod(authorized, 0o644); err != nil {
		return nil, err
	}

	s.PasswordFile = filepath.Join(s.clientDir, "password")
	if err := os.WriteFile(s.PasswordFile, []byte(password), 0o600); err != nil {
		return nil, err
	}

	s.config = filepath.Join(s.Dir, "sshd_config")
	s.logPath = filepath.Join(s.Dir, "sshd.log")
	lines := []string{
		fmt.Sprintf("Port %d", port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKeyPath,
		"PidFile " + filepath.Join(s.Dir, "sshd.pid"),
		"AuthorizedKeysFile " + authorized,
		// The files are the harness's, not the user's: no ownership
		// checks on them or their directories.
		"StrictModes no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication yes",
		"KbdInteractiveAuthentication no",
		// Without PAM sshd checks the password against /etc/shadow
		// itself, and needs no PAM configuration for its service.
		"UsePAM no",
		"PermitRootLogin no",
		"AllowUsers " + SSHDUser,
		// SFTP only, served inside sshd: the account's shell is nologin,
		// and the session starts in Root.
		"Subsystem sftp internal-sftp -d " + s.Root,
		"ForceCommand internal-sftp -d " + s.Root,
		"AllowTcpForwarding no",
		"X11Forwarding no",
		// Tests open many connections at once; the default (10:30:100)
		// would drop some of them before authentication.
		"MaxStartups 100:30:200",
		"MaxSessions 64",
		"LogLevel VERBOSE",
		"UseDNS no",
		"PermitUserEnvironment no",
		"Banner none",
	}
	if sshdVersionAtLeast(9, 8) {
		// From 9.8 sshd refuses, for a while, connections from an address
		// that failed to authenticate or whose session crashed: the
		// negative tests and Kill do both, from 127.0.0.1, and the next
		// test must still get in.
		lines = append(lines, "PerSourcePenalties no")
	}
	if err := os.WriteFile(s.config, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command(sshdBinary, "-t", "-f", s.config).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sshd -t -f %s: %v\n%s", s.config, err, out)
	}
	if err := s.start(0); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// start runs sshd and waits until it serves. A listener that cannot bind
// the port (in TIME_WAIT after Kill, or briefly held by another process) is
// started again for up to retryBind.
func (s *SSHD) start(retryBind time.Duration) error {
	deadline := time.Now().Add(retryBind)
	for {
		var offset int64
		if st, err := os.Stat(s.logPath); err == nil {
			offset = st.Size()
		}
		cmd := exec.Command(sshdBinary, "-D", "-e", "-f", s.config)
		p, err := StartProcess("sshd", cmd, s.logPath)
		if err != nil {
			return fmt.Errorf("sshd: %w", err)
		}
		s.proc = p
		err = s.waitReady(p, offset, 10*time.Second)
		if err == nil {
			return nil
		}
		s.killTree()
		log := s.logSince(offset)
		if time.Now().Before(deadline) && (strings.Contains(log, "Address already in use") || strings.Contains(log, "Cannot bind any address")) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return err
	}
}

// waitReady waits until sshd p has said it listens on its port and the port
// answers with an SSH banner. The first tells that the listener is this
// process and not another that took the port; the second that it accepts
// connections.
func (s *SSHD) waitReady(p *Proc, offset int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	listening := fmt.Sprintf("Server listening on 127.0.0.1 port %d.", s.port)
	var lastErr error
	for {
		select {
		case <-p.Done():
			return fmt.Errorf("sshd on %s exited before serving (%v); its log:\n%s", s.Addr, p.Err(), tail(s.logSince(offset), 20))
		default:
		}
		if !strings.Contains(s.logSince(offset), listening) {
			lastErr = errors.New("it has not logged " + strconv.Quote(listening))
		} else if lastErr = sshBanner(s.Addr); lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd on %s not serving after %v: %v; its log:\n%s", s.Addr, timeout, lastErr, tail(s.logSince(offset), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sshBanner connects to addr and reads the server's identification line.
func sshBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the banner: %w", err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("banner %q is not SSH-2.0", line)
	}
	return nil
}

// Kill sends SIGKILL to sshd and to every process it forked. sshd forks a
// process per connection (which calls setsid, so it leaves the listener's
// process group) and that one forks again (the unprivileged pre-auth
// child, then the user's session process): killing the listener alone would
// leave the established sessions serving. After Kill, open connections are
// dropped and new ones refused.
func (s *SSHD) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.killTree()
}

// killTree freezes the listener and its descendants with SIGSTOP, walking
// /proc again until no new descendant appears (a stopped process forks no
// more, and the listener accepts no more), then sends SIGKILL to them all and
// waits until they are gone: a killed process's sockets are closed when it
// exits, which is what the client sees.
func (s *SSHD) killTree() error {
	p := s.proc
	if p == nil {
		return nil
	}
	select {
	case <-p.Done():
		return nil // the listener is gone; its orphans cannot be found
	default:
	}
	root := p.Cmd.Process.Pid
	stopped := map[int]bool{}
	_ = syscall.Kill(root, syscall.SIGSTOP)
	stopped[root] = true
	for range 100 {
		grew := false
		for _, pid := range descendants(root) {
			if !stopped[pid] {
				_ = syscall.Kill(pid, syscall.SIGSTOP)
				stopped[pid] = true
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	var firstErr error
	for pid := range stopped {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) && firstErr == nil {
			firstErr = fmt.Errorf("sshd: kill %d: %w", pid, err)
		}
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		return fmt.Errorf("sshd (pid %d) still running 10s after SIGKILL", root)
	}
	// The descendants are reaped by whoever inherited them; they are gone
	// for the client once they are zombies.
	deadline := time.Now().Add(5 * time.Second)
	for pid := range stopped {
		for alive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("sshd's process %d still running 5s after SIGKILL", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return firstErr
}

// Restart starts sshd again on the same port, with the same host key,
// authorised key and password, after Kill.
func (s *SSHD) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("sshd: Restart after Stop")
	}
	if p := s.proc; p != nil {
		select {
		case <-p.Done():
		default:
			return fmt.Errorf("sshd on %s is still running: Kill it first", s.Addr)
		}
	}
	// sshd binds with SO_REUSEADDR, so a port with connections in
	// TIME_WAIT binds at once; the retry covers a port still held by a
	// process on its way out.
	return s.start(5 * time.Second)
}

// Stop kills sshd and removes its directory (Root with it). It ignores
// errors, and may be called more than once: it is made for t.Cleanup.
func (s *SSHD) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	_ = s.killTree()
	s.stoppedLog = s.logSince(0)
	s.stopped = true
	_ = os.RemoveAll(s.Dir)
}

// Log returns what sshd has logged so far (its connections' processes
// included), for failure messages.
func (s *SSHD) Log() string {
	s.mu.Lock()
	stopped, log := s.stopped, s.stoppedLog
	s.mu.Unlock()
	if stopped {
		return log
	}
	return s.logSince(0)
}

// WrongIdentity writes a freshly generated ed25519 private key that the
// server does not authorise, and returns its path.
func (s *SSHD) WrongIdentity() (string, error) {
	key, _, err := newKeyPEM("not authorised")
	if err != nil {
		return "", err
	}
	return s.clientFile("wrong_id_ed25519-", key)
}

// OtherKnownHosts writes a known_hosts file that names [127.0.0.1]:PORT
// with another host key than the server's, as after a host key change, and
// returns its path.
func (s *SSHD) OtherKnownHosts() (string, error) {
	_, pub, err := newKeyPEM("")
	if err != nil {
		return "", err
	}
	return s.clientFile("other_known_hosts-", []byte(knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, pub)+"\n"))
}

// UnknownKnownHosts writes a valid known_hosts file that does not mention
// this server (it holds a line for a documentation address), and returns
// its path.
func (s *SSHD) UnknownKnownHosts() (string, error) {
	_, pub, err := newKeyPEM("")
	if err != nil {
		return "", err
	}
	return s.clientFile("unknown_known_hosts-", []byte(knownhosts.Line([]string{knownhosts.Normalize("192.0.2.1:22")}, pub)+"\n"))
}

// clientFile writes data to a new file (mode 0600) in the client's
// directory.
func (s *SSHD) clientFile(prefix string, data []byte) (string, error) {
	f, err := os.CreateTemp(s.clientDir, prefix)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func (s *SSHD) logSince(offset int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}

// newKeyPEM generates an ed25519 key: the private key in OpenSSH PEM form,
// and the public key.
func newKeyPEM(comment string) ([]byte, ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(block), sshPub, nil
}

func writeKnownHosts(path, addr string, key ssh.PublicKey) error {
	return os.WriteFile(path, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)+"\n"), 0o600)
}

// sshdAccountDir holds, for the machine, the password every test process
// sets for SSHDUser, and the lock under which one sets it. Test binaries of
// several packages run at once: if each set a password of its own, each
// would undo the one before, and the other's logins would fail.
const sshdAccountDir = "/run/ftagent-sftp"

var (
	accountMu       sync.Mutex
	accountPassword string
)

// sshdAccount makes sure SSHDUser exists and has the machine's test
// password (which also unlocks the account: without PAM, sshd refuses a
// locked account even a key), and returns the password. It does so once
// per process.
func sshdAccount() (string, error) {
	accountMu.Lock()
	defer accountMu.Unlock()
	if accountPassword != "" {
		return accountPassword, nil
	}
	useradd, err := sbinTool("useradd")
	if err != nil {
		return "", err
	}
	chpasswd, err := sbinTool("chpasswd")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(sshdAccountDir, 0o700); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(sshdAccountDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if _, err := user.Lookup(SSHDUser); err != nil {
		out, err := exec.Command(useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", SSHDUser).CombinedOutput()
		// Status 9: the name is taken, by a process that does not use
		// the lock.
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 9) {
			return "", fmt.Errorf("useradd %s: %v\n%s", SSHDUser, err, out)
		}
	}

	passPath := filepath.Join(sshdAccountDir, "password")
	b, err := os.ReadFile(passPath)
	password := string(b)
	if errors.Is(err, os.ErrNotExist) || password == "" {
		raw := make([]byte, 18)
		if _, err := rand.Read(raw); err != nil {
			return "", err
		}
		password = base64.RawURLEncoding.EncodeToString(raw)
		if err := os.WriteFile(passPath, []byte(password), 0o600); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	// Set even when the password was there already: the account may have
	// been made again since. Setting the same password again does not
	// disturb another process's logins.
	cmd := exec.Command(chpasswd)
	cmd.Stdin = strings.NewReader(SSHDUser + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("chpasswd for %s: %v\n%s", SSHDUser, err, out)
	}
	accountPassword = password
	return password, nil
}

// sbinTool finds an administration command, which may be missing from the
// PATH of a test run.
func sbinTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (install the passwd package): the SFTP tests need it to make the %s account", name, SSHDUser)
}

var (
	sshdVersionOnce      sync.Once
	sshdMajor, sshdMinor int
	sshdVersionRE        = regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`)
)

// sshdVersionAtLeast tells whether the installed sshd is at least
// major.minor (false if its version cannot be read).
func sshdVersionAtLeast(major, minor int) bool {
	sshdVersionOnce.Do(func() {
		// -V is recent; older versions reject it, but print their
		// version in the usage message all the same.
		out, _ := exec.Command(sshdBinary, "-V").CombinedOutput()
		if m := sshdVersionRE.FindSubmatch(out); m != nil {
			sshdMajor, _ = strconv.Atoi(string(m[1]))
			sshdMinor, _ = strconv.Atoi(string(m[2]))
		}
	})
	return sshdMajor > major || sshdMajor == major && sshdMinor >= minor
}

// traversable checks that every directory from / down to dir may be
// searched by anyone.
func traversable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is mode %v, not searchable by others", d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// descendants lists the processes below pid, by the parent pids in
// /proc/*/stat.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(child); ok {
			children[ppid] = append(children[ppid], child)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// procStat reads a process's parent pid and state from /proc/PID/stat.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may contain anything.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, false
	}
	return ppid, f[0][0], true
}

// alive tells whether pid is a process that has not exited yet (a zombie has
// exited: its files, and so its sockets, are closed).
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
