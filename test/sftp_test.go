// End-to-end tests of SFTP partners: real ftagent processes (three
// instances) sending to and fetching from a real OpenSSH sshd that the
// test starts on a loopback port (harness.StartSSHD), logged in as an
// unprivileged user. Copies are checked by reading the server's folder
// directly and hashing it here.
package test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// sftpServer starts an sshd for the test; with CI=true a server that
// cannot start fails the test (the SFTP endpoint's tests need a real one).
func sftpServer(t *testing.T) *harness.SSHD {
	t.Helper()
	if os.Getuid() != 0 && os.Getenv("CI") == "" {
		t.Skip("the SFTP tests start sshd and an account for it: run as root")
	}
	s, err := harness.StartSSHD(t.TempDir())
	if err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			log := s.Log()
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			t.Logf("sshd log (tail):\n%s", log)
		}
		s.Stop()
	})
	return s
}

// sftpPartner is the properties of partner name at s, with the given
// credential and known-hosts files (s's own when "").
func sftpPartner(s *harness.SSHD, name, identity, password, knownHosts string) []string {
	if knownHosts == "" {
		knownHosts = s.KnownHosts
	}
	props := []string{
		"sftp." + name + ".address=" + s.Addr,
		"sftp." + name + ".user=" + harness.SSHDUser,
		"sftp." + name + ".knownHostsFile=" + knownHosts,
		"sftp." + name + ".root=" + s.Root,
		"sftp." + name + ".timeout=5s",
		"sftp." + name + ".keepAlive=2s",
	}
	if identity != "" {
		props = append(props, "sftp."+name+".identityFile="+identity)
	}
	if password != "" {
		props = append(props, "sftp."+name+".passwordFile="+password)
	}
	return props
}

// sftpTree writes n small files of various sizes under rel and returns
// their SHA-256 by path relative to rel.
func sftpTree(t *testing.T, dir string, n int) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for i := 0; i < n; i++ {
		rel := fmt.Sprintf("d%d/sub%d/f%03d.dat", i%5, i%3, i)
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := harness.WriteRandomFile(p, int64(1+(i*997)%20000), uint64(100+i)); err != nil {
			t.Fatal(err)
		}
		sums[rel] = xferSum(t, p)
	}
	return sums
}

// sftpCheckTree checks that dir holds exactly the files of sums (by
// relative path) with those digests, and no .part.
func sftpCheckTree(t *testing.T, what, dir string, sums map[string]string) {
	t.Helper()
	got := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = true
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	bad := 0
	for _, rel := range slices.Sorted(maps.Keys(sums)) {
		sum, err := harness.FileSHA256(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil || sum != sums[rel] {
			if bad++; bad <= 5 {
				t.Errorf("%s: %s: sha256 %s %v, want %s", what, rel, sum, err, sums[rel])
			}
		}
	}
	for rel := range got {
		if _, ok := sums[rel]; !ok {
			if bad++; bad <= 5 {
				t.Errorf("%s: unexpected file %s", what, rel)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d files wrong of %d", what, bad, len(sums))
	}
}

// sftpOwn gives files the test wrote in the server's folder to the user
// the agent logs in as.
func sftpOwn(t *testing.T, paths ...string) {
	t.Helper()
	u, err := user.Lookup(harness.SSHDUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

// sftpCompleted waits for a transfer's end and requires it completed.
func sftpCompleted(t *testing.T, c *harness.Cluster, timeout time.Duration, id string) transfer.View {
	t.Helper()
	v := xferEnded(t, c, timeout, id)
	if v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s %s (reason %q), want completed: %s", id, v.State, v.Reason, harness.ViewText(v))
	}
	return v
}

// Send and fetch: a 64 MiB file and a 500-file tree each way, wildcards,
// the overwrite and delete-source policies; and each way a partner can
// refuse (changed or unknown host key, wrong key, wrong password,
// permission denied) fails its transfer with that reason, at once, and
// leaves nothing at the final name.
func TestSFTPSendAndFetch(t *testing.T) {
	t.Parallel() // a server and an agent of its own
	s := sftpServer(t)
	dir := t.TempDir()
	wrongKey, err := s.WrongIdentity()
	if err != nil {
		t.Fatal(err)
	}
	changed, err := s.OtherKnownHosts()
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := s.UnknownKnownHosts()
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword := filepath.Join(dir, "wrong.pw")
	if err := os.WriteFile(wrongPassword, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var props []string
	props = append(props, sftpPartner(s, "PARTNER", s.IdentityFile, "", "")...)
	props = append(props, sftpPartner(s, "BYPASSWORD", "", s.PasswordFile, "")...)
	props = append(props, sftpPartner(s, "CHANGED", s.IdentityFile, "", changed)...)
	props = append(props, sftpPartner(s, "UNKNOWN", s.IdentityFile, "", unknown)...)
	props = append(props, sftpPartner(s, "WRONGKEY", wrongKey, "", "")...)
	props = append(props, sftpPartner(s, "WRONGPASSWORD", "", wrongPassword, "")...)
	c, _ := xferCluster(t, props...)

	// Send: 64 MiB and a tree of 500 files.
	bigSum := xferRandomFile(t, c, "in/big.bin", 64*xferMiB, 7)
	treeSums := sftpTree(t, xferPath(c, "in/tree"), 500)
	big := xferCreate(t, c, "in/big.bin", "sftp://PARTNER/incoming/big.bin")
	tree := xferCreate(t, c, "--recursive", "in/tree/", "sftp://PARTNER/incoming/tree/")
	sftpCompleted(t, c, 60*time.Second, big)
	v := sftpCompleted(t, c, 60*time.Second, tree)
	if len(v.Files) != 500 {
		t.Errorf("tree transfer has %d files, want 500", len(v.Files))
	}
	if sum := xferSum(t, filepath.Join(s.Root, "incoming", "big.bin")); sum != bigSum {
		t.Errorf("sent big.bin: sha256 %s, want %s", sum, bigSum)
	}
	sentTree := filepath.Join(s.Root, "incoming", "tree")
	sftpCheckTree(t, "sent tree", sentTree, treeSums)

	// Fetch both back, the big file by a wildcard, with password auth.
	fetchBig := xferCreate(t, c, "sftp://BYPASSWORD/incoming/*.bin", "back/")
	fetchTree := xferCreate(t, c, "--recursive", "sftp://PARTNER/incoming/tree", "back/")
	sftpCompleted(t, c, 60*time.Second, fetchBig)
	sftpCompleted(t, c, 60*time.Second, fetchTree)
	if sum := xferSum(t, xferPath(c, "back/big.bin")); sum != bigSum {
		t.Errorf("fetched big.bin: sha256 %s, want %s", sum, bigSum)
	}
	sftpCheckTree(t, "fetched tree", xferPath(c, "back/tree"), treeSums)
	xferNoParts(t, c)

	// The destination exists: refused without --overwrite, replaced with.
	ctxRes, err := c.Transfer(t.Context(), "create", "--wait", "in/tree/d0/sub0/f000.dat", "sftp://PARTNER/incoming/big.bin")
	if err == nil && ctxRes.Exit == 0 {
		t.Errorf("a send onto an existing file without --overwrite was accepted: %s", ctxRes.Stdout)
	} else if !strings.Contains(ctxRes.Stdout+ctxRes.Stderr, "destination exists") {
		t.Errorf("a send onto an existing file: want \"destination exists\", got %s %s", ctxRes.Stdout, ctxRes.Stderr)
	}
	over := xferCreate(t, c, "--overwrite", "in/tree/d0/sub0/f000.dat", "sftp://PARTNER/incoming/big.bin")
	sftpCompleted(t, c, 30*time.Second, over)
	if sum := xferSum(t, filepath.Join(s.Root, "incoming", "big.bin")); sum != treeSums["d0/sub0/f000.dat"] {
		t.Errorf("overwritten big.bin: sha256 %s, want %s", sum, treeSums["d0/sub0/f000.dat"])
	}
	// A fetch with --delete-source removes the server's copy once it is here.
	del := xferCreate(t, c, "--delete-source", "sftp://PARTNER/incoming/tree/d1/sub1/f001.dat", "back/moved.dat")
	sftpCompleted(t, c, 30*time.Second, del)
	xferWait(t, c, 20*time.Second, del, "its source deleted", func(v transfer.View) bool {
		_, err := os.Lstat(filepath.Join(sentTree, "d1", "sub1", "f001.dat"))
		return os.IsNotExist(err)
	})
	if sum := xferSum(t, xferPath(c, "back/moved.dat")); sum != treeSums["d1/sub1/f001.dat"] {
		t.Errorf("moved file: sha256 %s, want %s", sum, treeSums["d1/sub1/f001.dat"])
	}

	// Refusals. A folder the user may not write to: made by root.
	locked := filepath.Join(s.Root, "locked")
	if err := os.Mkdir(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	refusals := []struct {
		dest, want string
	}{
		{"sftp://CHANGED/x/a.bin", "the host key changed"},
		{"sftp://UNKNOWN/x/a.bin", "unknown host"},
		{"sftp://WRONGKEY/x/a.bin", "authentication failed"},
		{"sftp://WRONGPASSWORD/x/a.bin", "authentication failed"},
		{"sftp://PARTNER/locked/a.bin", "permission denied"},
	}
	began := time.Now()
	ids := map[string]string{}
	for _, r := range refusals {
		ids[r.dest] = xferCreate(t, c, "in/tree/d2/sub2/f002.dat", r.dest)
	}
	for _, r := range refusals {
		v := xferEnded(t, c, 30*time.Second, ids[r.dest])
		t.Logf("send to %s: %s: %s", r.dest, v.State, v.Reason)
		if v.State != transfer.StateFailed || !strings.Contains(v.Reason, r.want) {
			t.Errorf("send to %s: %s (reason %q), want failed with %q", r.dest, v.State, v.Reason, r.want)
		}
		if strings.Contains(r.want, "host") && !strings.Contains(v.Reason, "SHA256:") {
			t.Errorf("send to %s: the reason %q does not give the key's fingerprint", r.dest, v.Reason)
		}
	}
	// At once: not after the recovery timeout.
	if took := time.Since(began); took > 20*time.Second {
		t.Errorf("the refusals took %v to fail", took)
	}
	for _, p := range []string{filepath.Join(s.Root, "x"), filepath.Join(locked, "a.bin"), filepath.Join(locked, "a.bin.part")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a refused send (%v)", p, err)
		}
	}
	// A full disk on the server: retried (the transfer recovers) until
	// its recovery timeout, then failed with the server's free space in
	// the reason; nothing left at the final name.
	small := filepath.Join(s.Root, "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", small).CombinedOutput(); err != nil {
		t.Fatalf("mount a 2 MiB tmpfs for the full-disk case: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", small).Run() })
	sftpOwn(t, small)
	xferRandomFile(t, c, "in/four.bin", 4*xferMiB, 9)
	fullID := xferCreate(t, c, "--recovery-timeout", "4s", "in/four.bin", "sftp://PARTNER/small/four.bin")
	v = xferEnded(t, c, 60*time.Second, fullID)
	t.Logf("send to a full disk: %s: %s", v.State, v.Reason)
	if v.State != transfer.StateFailed || !strings.Contains(v.Reason, "file system is full") {
		t.Errorf("send to a full disk: %s (reason %q), want failed with \"file system is full\"", v.State, v.Reason)
	}
	for _, p := range []string{"four.bin", "four.bin.part"} {
		if _, err := os.Lstat(filepath.Join(small, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists after the failed send (%v)", p, err)
		}
	}

	// A fetch of a missing file is refused when it is asked for.
	res, err := c.Transfer(t.Context(), "create", "sftp://PARTNER/incoming/missing.bin", "back/missing.bin")
	if err == nil && res.Exit == 0 || !strings.Contains(res.Stdout+res.Stderr, "not exist") {
		t.Errorf("fetch of a missing file: exit %d %v; want refused with \"not exist\": %s %s", res.Exit, err, res.Stdout, res.Stderr)
	}
}

// A bandwidth-limited send to the partner and a fetch from it, both
// running when the active is killed (-9) and later when the server is
// killed and restarted: both resume (on the new active, then on the same
// one once the server is back), complete with the source's digest, resend
// at most one checkpoint interval per disruption, and leave no .part on
// either side.
func TestSFTPFailoverAndServerRestart(t *testing.T) {
	t.Parallel() // mostly waiting on its bandwidth limit
	s := sftpServer(t)
	c, active := xferCluster(t, sftpPartner(s, "PARTNER", s.IdentityFile, "", "")...)
	const size = 64 * xferMiB
	sendSum := xferRandomFile(t, c, "in/send.bin", size, 11)
	fetchSrc := filepath.Join(s.Root, "outgoing", "fetch.bin")
	if err := harness.WriteRandomFile(fetchSrc, size, 12); err != nil {
		t.Fatal(err)
	}
	fetchSum := xferSum(t, fetchSrc)
	sftpOwn(t, filepath.Dir(fetchSrc), fetchSrc)
	// 4 MiB/s: 16 s each, with 16 MiB checkpoints (xferCluster).
	send := xferCreate(t, c, "--bwlimit", "4M", "in/send.bin", "sftp://PARTNER/incoming/send.bin")
	fetch := xferCreate(t, c, "--bwlimit", "4M", "sftp://PARTNER/outgoing/fetch.bin", "in/fetch.bin")

	// Kill the active once both are past their first checkpoint.
	xferMidway(t, c, send, 20*xferMiB)
	xferMidway(t, c, fetch, 20*xferMiB)
	if err := c.Kill(active); err != nil {
		t.Fatal(err)
	}
	next := xferNewActive(t, c, active)
	t.Logf("killed %s; %s active", active, next)
	for _, id := range []string{send, fetch} {
		xferWait(t, c, 30*time.Second, id, "resumed on "+next, func(v transfer.View) bool {
			return v.Failovers >= 1 && v.State == transfer.StateRunning || transfer.Terminal(v.State)
		})
	}

	// Kill the server once both have gone on a while, and restart it.
	xferMidway(t, c, send, 40*xferMiB)
	xferMidway(t, c, fetch, 40*xferMiB)
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Log("sshd killed")
	xferWait(t, c, 30*time.Second, send, "recovering while the server is down", func(v transfer.View) bool {
		return v.State == transfer.StateRecovering || transfer.Terminal(v.State)
	})
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Log("sshd restarted")

	for _, x := range []struct{ id, what string }{{send, "send"}, {fetch, "fetch"}} {
		v := sftpCompleted(t, c, 90*time.Second, x.id)
		t.Logf("%s: failovers %d, bytesResent %d (%.1f MiB)", x.what, v.Failovers, v.BytesResent, float64(v.BytesResent)/float64(xferMiB))
		if v.Failovers < 1 {
			t.Errorf("%s: failovers %d, want at least 1", x.what, v.Failovers)
		}
		// Two disruptions: the active's death and the server's.
		if v.BytesResent > 2*xferCheckpoint {
			t.Errorf("%s: bytesResent %d, want at most %d (one checkpoint interval per disruption)", x.what, v.BytesResent, 2*xferCheckpoint)
		}
	}
	if sum := xferSum(t, filepath.Join(s.Root, "incoming", "send.bin")); sum != sendSum {
		t.Errorf("sent file: sha256 %s, want %s", sum, sendSum)
	}
	if sum := xferSum(t, xferPath(c, "in/fetch.bin")); sum != fetchSum {
		t.Errorf("fetched file: sha256 %s, want %s", sum, fetchSum)
	}
	xferNoParts(t, c)
	parts, err := harness.PartFiles(s.Root)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) > 0 {
		t.Errorf(".part files left on the server: %v", parts)
	}
}
