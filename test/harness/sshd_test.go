package harness

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestSSHD checks the harness's sshd: key and password logins as SSHDUser
// into Root, the refusals the negative tests rely on, and that Kill drops
// the open sessions and Restart brings the same server back.
func TestSSHD(t *testing.T) {
	if os.Getuid() != 0 && os.Getenv("CI") == "" {
		t.Skip("starting sshd and making its account needs root")
	}
	s, err := StartSSHD(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	defer func() {
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	}()

	key, err := os.ReadFile(s.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	byKey := ssh.PublicKeys(signer)

	conn, err := dialSSHD(s, byKey, s.KnownHosts)
	if err != nil {
		t.Fatalf("log in with IdentityFile: %v", err)
	}
	defer conn.Close()
	cl, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if wd, err := cl.Getwd(); err != nil || wd != s.Root {
		t.Errorf("SFTP start directory %q (%v), want Root %q", wd, err, s.Root)
	}
	want := []byte("uploaded through a real sshd\n")
	f, err := cl.Create(path.Join(s.Root, "hello.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(s.Root, "hello.txt"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Root/hello.txt = %q (%v), want %q", got, err, want)
	}
	// The session runs as SSHDUser, not root: permission bits apply.
	u, err := user.Lookup(SSHDUser)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(s.Root, "hello.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != u.Uid {
		t.Errorf("uploaded file owned by uid %d, want %s's %s", uid, SSHDUser, u.Uid)
	}

	password, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(string(password), "\r\n") || len(password) == 0 {
		t.Errorf("PasswordFile holds %q: want one line without newline", password)
	}
	if c, err := dialSSHD(s, ssh.Password(string(password)), s.KnownHosts); err != nil {
		t.Errorf("log in with the password: %v", err)
	} else {
		c.Close()
	}

	wrong, err := s.WrongIdentity()
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, err := os.ReadFile(wrong)
	if err != nil {
		t.Fatal(err)
	}
	wrongSigner, err := ssh.ParsePrivateKey(wrongKey)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := dialSSHD(s, ssh.PublicKeys(wrongSigner), s.KnownHosts); err == nil {
		c.Close()
		t.Error("logged in with WrongIdentity")
	} else if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("WrongIdentity: %v, want an authentication failure", err)
	}

	other, err := s.OtherKnownHosts()
	if err != nil {
		t.Fatal(err)
	}
	var ke *knownhosts.KeyError
	if c, err := dialSSHD(s, byKey, other); err == nil {
		c.Close()
		t.Error("OtherKnownHosts accepted the server")
	} else if !errors.As(err, &ke) || len(ke.Want) == 0 {
		t.Errorf("OtherKnownHosts: %v, want a KeyError naming the known key", err)
	}
	unknown, err := s.UnknownKnownHosts()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := dialSSHD(s, byKey, unknown); err == nil {
		c.Close()
		t.Error("UnknownKnownHosts accepted the server")
	} else if !errors.As(err, &ke) || len(ke.Want) != 0 {
		t.Errorf("UnknownKnownHosts: %v, want a KeyError with no known key", err)
	}

	// The open session is served by processes sshd forked for it.
	before := descendants(s.proc.Cmd.Process.Pid)
	if len(before) == 0 {
		t.Error("sshd has no process for the open connection")
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range before {
		if alive(pid) {
			t.Errorf("sshd's connection process %d survived Kill", pid)
		}
	}
	if _, err := cl.Stat("hello.txt"); err == nil {
		t.Error("the SFTP session still works after Kill")
	}
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		c.Close()
		t.Error("a connection was accepted after Kill")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after Kill: %v, want connection refused", err)
	}

	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	conn2, err := dialSSHD(s, byKey, s.KnownHosts)
	if err != nil {
		t.Fatalf("log in after Restart (same host key): %v", err)
	}
	defer conn2.Close()
	cl2, err := sftp.NewClient(conn2)
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	rf, err := cl2.Open("hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	var buf bytes.Buffer
	if _, err := rf.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("after Restart hello.txt = %q (%v), want %q", buf.Bytes(), err, want)
	}
}

// dialSSHD logs in to s as SSHDUser with auth, checking the host key
// against the known_hosts file knownHostsPath.
func dialSSHD(s *SSHD, auth ssh.AuthMethod, knownHostsPath string) (*ssh.Client, error) {
	hostKeys, err := knownhosts.New(knownHostsPath)
	if err != nil {
		return nil, err
	}
	return ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            SSHDUser,
		Auth:            []ssh.AuthMethod{auth},
		HostKeyCallback: hostKeys,
		Timeout:         5 * time.Second,
	})
}
