package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ftagent/ftagent/test/harness"
)

// sshServer is an OpenSSH server of the benchmark's own on 127.0.0.1, with
// a host key and one client key made for the run: scp and rsync -e ssh
// log in as the current user (root) with that key.
type sshServer struct {
	dir  string
	port int
	key  string // the client's private key
	user string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startSSHD writes a host key, a client key and an sshd_config in dir and
// runs sshd -D on a free loopback port until stop.
func startSSHD(dir, sshd string) (*sshServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &sshServer{dir: dir, key: filepath.Join(dir, "client"), log: filepath.Join(dir, "sshd.log"), user: "root"}
	if u := os.Getenv("USER"); u != "" && os.Geteuid() != 0 {
		s.user = u
	}
	for _, k := range []string{"hostkey", "client"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ftagent-bench", "-f", filepath.Join(dir, k)).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(s.key + ".pub")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		return nil, err
	}
	// The sessions' HOME: an empty directory. sshd runs rsync's remote
	// command through the user's shell, and bash reads ~/.bashrc when
	// sshd starts it; a developer's .bashrc (here root's: pyenv init, some
	// 170 processes, about 0.6 s a login) would be measured as rsync's.
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	if s.port, err = harness.FreePort(); err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "sshd_config")
	lines := []string{
		"Port " + strconv.Itoa(s.port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "hostkey"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"Subsystem sftp internal-sftp",
		"SetEnv HOME=" + home,
		"LogLevel ERROR",
	}
	if err := os.WriteFile(config, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(sshd, "-t", "-f", config).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s -t -f %s: %v: %s", sshd, config, err, out)
	}
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	// sshd re-executes itself and wants its absolute path.
	s.cmd = exec.Command(sshd, "-D", "-e", "-f", config)
	s.cmd.Stdout, s.cmd.Stderr = f, f
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	s.done = make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		f.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("sshd exited: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("sshd does not accept on %s after 10 s: %v%s", s.addr(), err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	progress("sshd (pid %d) listening on %s", s.cmd.Process.Pid, s.addr())
	return s, nil
}

func (s *sshServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// stop ends sshd and what is left in its process group: SIGTERM, then
// SIGKILL after 5 s.
func (s *sshServer) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pid := s.cmd.Process.Pid
	select {
	case <-s.done:
		return
	default:
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.done
	}
}

func (s *sshServer) logTail() string {
	b, _ := os.ReadFile(s.log)
	return "\n--- sshd's log:\n" + strings.TrimSpace(string(b))
}

// sshOptions are the options every ssh client of the benchmark takes.
func (s *sshServer) sshOptions() []string {
	o := []string{"-i", s.key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}
	if *flagCipher != "" {
		o = append(o, "-c", *flagCipher)
	}
	return o
}

// scpArgv copies the local file src to dst on the server.
func (s *sshServer) scpArgv(src, dst string) []string {
	argv := append([]string{"scp", "-q", "-P", strconv.Itoa(s.port)}, s.sshOptions()...)
	return append(argv, src, s.user+"@127.0.0.1:"+dst)
}

// scpText is scpArgv as a report shows it.
func (s *sshServer) scpText(src, dst string) string {
	c := ""
	if *flagCipher != "" {
		c = " -c " + *flagCipher
	}
	return fmt.Sprintf("scp -q -P PORT -i KEY -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null%s %s %s@127.0.0.1:%s", c, src, s.user, dst)
}

// rsyncE is rsync's -e: ssh with the benchmark's key and port.
func (s *sshServer) rsyncE() string {
	return strings.Join(append([]string{"ssh", "-p", strconv.Itoa(s.port)}, s.sshOptions()...), " ")
}

// rsyncArgv copies the contents of the local directory src into dst on the
// server.
func (s *sshServer) rsyncArgv(src, dst string) []string {
	return []string{"rsync", "-r", "-e", s.rsyncE(), strings.TrimSuffix(src, "/") + "/", s.user + "@127.0.0.1:" + strings.TrimSuffix(dst, "/") + "/"}
}

func (s *sshServer) rsyncText(src, dst string) string {
	c := ""
	if *flagCipher != "" {
		c = " -c " + *flagCipher
	}
	return fmt.Sprintf("rsync -r -e \"ssh -p PORT -i KEY -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null%s\" %s/ %s@127.0.0.1:%s/",
		c, strings.TrimSuffix(src, "/"), s.user, strings.TrimSuffix(dst, "/"))
}

// negotiatedCipher is the cipher ssh uses with this server, from ssh -v.
func (s *sshServer) negotiatedCipher(ctx context.Context) string {
	argv := append([]string{"-v", "-p", strconv.Itoa(s.port)}, s.sshOptions()...)
	argv = append(argv, s.user+"@127.0.0.1", "true")
	out, _ := exec.CommandContext(ctx, "ssh", argv...).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if _, c, ok := strings.Cut(line, "kex: client->server cipher: "); ok {
			f := strings.Fields(c)
			if len(f) > 0 {
				return f[0]
			}
		}
	}
	return "unknown"
}

// loginTime is the median of three `ssh HOST true`: what one login costs
// (key exchange, authentication, a session, the shell).
func (s *sshServer) loginTime(ctx context.Context) time.Duration {
	argv := append([]string{"ssh", "-p", strconv.Itoa(s.port)}, s.sshOptions()...)
	argv = append(argv, s.user+"@127.0.0.1", "true")
	var ds []time.Duration
	for range 3 {
		t0 := time.Now()
		if _, _, err := runCommand(ctx, s.dir, argv); err != nil {
			return 0
		}
		ds = append(ds, time.Since(t0))
	}
	return median(ds)
}

// cpu is the CPU time of sshd and of the connections it has served (its
// children, once they ended: cutime and cstime), user + system.
func (s *sshServer) cpu() time.Duration {
	d, err := cpuWithChildren(s.cmd.Process.Pid)
	if err != nil {
		return 0
	}
	return d
}

// cpuWithChildren is a process's utime + stime + cutime + cstime.
func cpuWithChildren(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime, stime, cutime, cstime are fields
	// 14 to 17.
	if len(f) < 15 {
		return 0, errors.New("short /proc stat")
	}
	var ticks int64
	for _, x := range f[11:15] {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
