package command

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRememberedActive(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	addrs := []string{"127.0.0.1:7101", "127.0.0.1:7102"}
	f := rememberFile("ORDERS", addrs)
	if f == "" {
		t.Fatal("no file for the remembered active")
	}
	if other := rememberFile("PAYMENTS", addrs); other == f {
		t.Fatal("two agents share a file")
	}
	if other := rememberFile("ORDERS", addrs[:1]); other == f {
		t.Fatal("two address lists share a file")
	}
	if got := remembered(f, addrs); got != "" {
		t.Fatalf("remembered %q before anything was remembered", got)
	}
	remember(f, addrs[1])
	if got := remembered(f, addrs); got != addrs[1] {
		t.Fatalf("remembered %q, want %q", got, addrs[1])
	}
	if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the file: %v %v", fi, err)
	}
	// An address that is not in the list, or garbage, is not used.
	for _, bad := range []string{"10.9.9.9:1\n", "garbage", ""} {
		if err := os.WriteFile(f, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := remembered(f, addrs); got != "" {
			t.Fatalf("remembered %q from %q", got, bad)
		}
	}
	// A cache directory that cannot be made loses the shortcut, nothing
	// else (a regular file stands where the directory would go: even root
	// cannot write beneath it).
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(blocker, "ftagent", "active-x")
	remember(bad, addrs[0])
	if got := remembered(bad, addrs); got != "" {
		t.Fatalf("remembered %q beneath a file", got)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Fatal("a file was written beneath a regular file")
	}
	remember("", addrs[0]) // no cache directory at all: nothing to do
	if got := remembered("", addrs); got != "" {
		t.Fatalf("remembered %q without a file", got)
	}
}
