package endpoint_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/test/harness"
)

func TestSFTPPaths(t *testing.T) {
	for _, tc := range []struct {
		user, partner, resolved string
		bad                     bool
	}{
		{"sftp://P/incoming/a.csv", "P", "sftp:/P/incoming/a.csv", false},
		{"sftp://P/", "P", "sftp:/P", false},
		{"sftp://P", "P", "sftp:/P", false},
		{"sftp://P//x/./y/", "P", "sftp:/P/x/y", false},
		{"sftp://P/x/../../etc", "", "", true},
		{"sftp:///x", "", "", true},
		{"sftp://a b/x", "", "", true},
	} {
		partner, resolved, ok, err := endpoint.ParseSFTP(tc.user)
		if !ok || (err != nil) != tc.bad || partner != tc.partner || resolved != tc.resolved {
			t.Errorf("ParseSFTP(%q) = %q, %q, %v, %v", tc.user, partner, resolved, ok, err)
		}
		if err == nil && endpoint.UserSFTP(resolved) != "sftp://"+partner+"/"+strings.TrimPrefix(resolved, "sftp:/"+partner+"/") && resolved != "sftp:/"+partner {
			t.Errorf("UserSFTP(%q) = %q", resolved, endpoint.UserSFTP(resolved))
		}
		if err == nil && (!endpoint.IsSFTP(resolved) || endpoint.IsSFTP(tc.user)) {
			t.Errorf("IsSFTP: the resolved form %q must be one, the user's %q not", resolved, tc.user)
		}
		// The planner joins and cleans resolved paths with filepath.
		if err == nil && filepath.Join(resolved, "sub", "f") != resolved+"/sub/f" {
			t.Errorf("filepath.Join(%q, ...) = %q", resolved, filepath.Join(resolved, "sub", "f"))
		}
	}
	if _, _, ok, _ := endpoint.ParseSFTP("/srv/in/a.csv"); ok {
		t.Error("a local path parsed as an SFTP one")
	}
}

func startSSHD(t *testing.T) *harness.SSHD {
	t.Helper()
	if os.Getuid() != 0 && os.Getenv("CI") == "" {
		t.Skip("starts sshd and an account for it: run as root")
	}
	s, err := harness.StartSSHD(t.TempDir())
	if err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func newSFTP(t *testing.T, s *harness.SSHD, maxConns int) *endpoint.SFTP {
	t.Helper()
	e, err := endpoint.NewSFTP(endpoint.SFTPConfig{
		Name: "P", Address: s.Addr, User: harness.SSHDUser, IdentityFile: s.IdentityFile,
		KnownHostsFile: s.KnownHosts, Root: s.Root, MaxConnections: maxConns,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

func writePart(t *testing.T, e endpoint.Endpoint, p string, off int64, data []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := e.OpenPart(ctx, p, off)
	if err != nil {
		t.Fatalf("OpenPart(%s, %d): %v", p, off, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// The Endpoint contract on a real OpenSSH server: .part written, resumed
// at an offset (cut back to it), committed without replacing, replayed,
// overwritten; sources read at offsets and removed only unchanged;
// directories; names; walks.
func TestSFTPEndpoint(t *testing.T) {
	s := startSSHD(t)
	e := newSFTP(t, s, 1)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	p := "sftp:/P/dir/sub/a.bin"

	writePart(t, e, p, 0, data[:2<<20])
	// Resume at 1 MiB: the bytes after it are cut, then written again.
	writePart(t, e, p, 1<<20, data[1<<20:])
	if _, err := e.OpenPart(ctx, p, 4<<20); !errors.Is(err, endpoint.ErrPartLost) || !endpoint.Permanent(err) {
		t.Errorf("OpenPart past the .part's end: %v, want ErrPartLost", err)
	}
	if err := e.Commit(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(s.Root, "dir/sub/a.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("committed file: %d bytes %v, want the %d written", len(got), err, len(data))
	}
	if err := e.Commit(ctx, p, false); !errors.Is(err, endpoint.ErrAlreadyCommitted) {
		t.Errorf("Commit replayed: %v, want ErrAlreadyCommitted", err)
	}
	// Not replaced without overwrite; replaced with it.
	writePart(t, e, p, 0, []byte("new"))
	if err := e.Commit(ctx, p, false); !errors.Is(err, endpoint.ErrExists) {
		t.Errorf("Commit onto an existing file: %v, want ErrExists", err)
	}
	if got, _ := os.ReadFile(filepath.Join(s.Root, "dir/sub/a.bin")); len(got) != len(data) {
		t.Errorf("the existing file was changed: %d bytes", len(got))
	}
	if err := e.Commit(ctx, p, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(s.Root, "dir/sub/a.bin")); string(got) != "new" {
		t.Errorf("overwritten file holds %q", got)
	}
	if ok, err := e.Exists(ctx, endpoint.PartName(p)); ok || err != nil {
		t.Errorf("Exists(.part) after commit = %v, %v", ok, err)
	}

	// A source read at offsets; its identity; removal only unchanged.
	writePart(t, e, "sftp:/P/src.bin", 0, data)
	if err := e.Commit(ctx, "sftp:/P/src.bin", false); err != nil {
		t.Fatal(err)
	}
	src, err := e.OpenSource(ctx, "sftp:/P/src.bin")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if n, err := src.ReadAt(buf, 1<<20+5); n != 100 || err != nil || !bytes.Equal(buf, data[1<<20+5:1<<20+105]) {
		t.Errorf("ReadAt: %d %v", n, err)
	}
	if n, err := src.ReadAt(buf, int64(len(data))-10); n != 10 || err != io.EOF {
		t.Errorf("ReadAt at the end: %d %v, want 10 and EOF", n, err)
	}
	info := src.Info()
	src.Close()
	if info.Size != int64(len(data)) || info.IsDir {
		t.Errorf("Info = %+v", info)
	}
	changed := info.Source
	changed.ModTime++
	if err := e.RemoveSource(ctx, "sftp:/P/src.bin", changed); !errors.Is(err, checkpoint.ErrSourceChanged) {
		t.Errorf("RemoveSource of another version: %v, want ErrSourceChanged", err)
	}
	if err := e.RemoveSource(ctx, "sftp:/P/src.bin", info.Source); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Stat(ctx, "sftp:/P/src.bin"); !os.IsNotExist(errors.Unwrap(err)) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat after RemoveSource: %v, want not exist", err)
	}
	if err := e.RemoveSource(ctx, "sftp:/P/src.bin", info.Source); err != nil {
		t.Errorf("RemoveSource of a missing file: %v", err)
	}
	if _, err := e.OpenSource(ctx, "sftp:/P/dir"); err == nil || !endpoint.Permanent(err) {
		t.Errorf("OpenSource of a directory: %v, want a permanent error", err)
	}

	// Directories: made with parents, again harmlessly; a file in the way.
	if err := e.MakeDir(ctx, "sftp:/P/m/n/o"); err != nil {
		t.Fatal(err)
	}
	if err := e.MakeDir(ctx, "sftp:/P/m/n/o"); err != nil {
		t.Errorf("MakeDir again: %v", err)
	}
	if err := e.MakeDir(ctx, "sftp:/P/dir/sub/a.bin"); err == nil || !endpoint.Permanent(err) {
		t.Errorf("MakeDir over a file: %v, want a permanent error", err)
	}
	if err := e.CheckName("sftp:/P/bad\xff"); !errors.Is(err, endpoint.ErrNameNotRepresentable) {
		t.Errorf("CheckName of a name that is not UTF-8: %v", err)
	}

	// Walks: a wildcard's matches, a tree's directories before its files.
	for _, f := range []string{"w/a.csv", "w/b.csv", "w/c.txt", "w/t/x/1", "w/t/2"} {
		writePart(t, e, "sftp:/P/"+f, 0, []byte(f))
		if err := e.Commit(ctx, "sftp:/P/"+f, false); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	dirs := func(x endpoint.SFTPEntry) error { seen = append(seen, "d:"+x.Rel); return nil }
	files := func(x endpoint.SFTPEntry) error {
		seen = append(seen, fmt.Sprintf("f:%s:%d", x.Rel, x.Size))
		return nil
	}
	if err := e.Walk(ctx, "sftp:/P/w/*.csv", false, dirs, files); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(seen, " "); got != "f:a.csv:7 f:b.csv:7" {
		t.Errorf("walk of w/*.csv: %s", got)
	}
	seen = nil
	if err := e.Walk(ctx, "sftp:/P/w/t", true, dirs, files); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(seen, " "); got != "d:x f:2:5 f:x/1:7" {
		t.Errorf("walk of w/t: %s", got)
	}
	if err := e.Walk(ctx, "sftp:/P/w/t", false, dirs, files); err == nil || !endpoint.Permanent(err) {
		t.Errorf("walk of a directory without recursive: %v, want a permanent error", err)
	}
	if err := e.Walk(ctx, "sftp:/P/w/none*", false, dirs, files); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("walk of a wildcard that matches nothing: %v", err)
	}
}

// Many files at once share at most maxConnections connections; a server
// killed fails requests with a transient error, and once it is back the
// endpoint connects again by itself.
func TestSFTPConnections(t *testing.T) {
	s := startSSHD(t)
	e := newSFTP(t, s, 2)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("sftp:/P/many/f%02d", i)
			w, err := e.OpenPart(ctx, p, 0)
			if err == nil {
				_, err = w.Write(bytes.Repeat([]byte{byte(i)}, 100_000))
				if cerr := w.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	paths := make([]string, 32)
	for i := range paths {
		paths[i] = fmt.Sprintf("sftp:/P/many/f%02d", i)
	}
	for i, err := range e.RenameAll(ctx, paths, false) {
		if err != nil {
			t.Errorf("rename %s: %v", paths[i], err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(s.Root, "many"))
	if err != nil || len(ents) != 32 {
		t.Fatalf("%d files on the server (%v), want 32", len(ents), err)
	}
	if n := strings.Count(s.Log(), "Accepted publickey"); n < 1 || n > 2 {
		t.Errorf("%d connections were opened, want 1 or 2 (maxConnections=2)", n)
	}

	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	_, err = e.Stat(ctx, "sftp:/P/many/f00")
	if err == nil || endpoint.Permanent(err) {
		t.Errorf("Stat with the server gone: %v, want a transient error", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	// The first request after a drop may still meet the dead connection;
	// the one after it connects again.
	var info endpoint.Info
	for i := 0; i < 3; i++ {
		if info, err = e.Stat(ctx, "sftp:/P/many/f00"); err == nil {
			break
		}
	}
	if err != nil || info.Size != 100_000 {
		t.Errorf("Stat after the server came back: %+v %v", info, err)
	}
}
