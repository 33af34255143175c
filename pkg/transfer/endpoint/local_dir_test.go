package endpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftagent/ftagent/pkg/audit"
)

// MakeDir makes a directory and its parents; one already there is no
// error (a replay); a file or a symbolic link in its place is refused, and
// permanently.
func TestLocalMakeDir(t *testing.T) {
	l, dir := tempLocal(t)
	ctx := context.Background()
	nested := filepath.Join(dir, "a\xff", "b\n", "c")
	for range 2 {
		if err := l.MakeDir(ctx, nested); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Lstat(nested); err != nil || !fi.IsDir() || fi.Mode().Perm() != dirMode&^umask(t) {
		t.Fatalf("made %v, %v", fi, err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(nested, link); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{file: "not a directory", link: "symbolic link", filepath.Join(file, "below"): "not a directory", filepath.Join(link, "below"): "symbolic link"} {
		err := l.MakeDir(ctx, p)
		if err == nil || !Permanent(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("MakeDir(%s): %v (permanent %v), want a permanent error saying %q", p, err, Permanent(err), want)
		}
	}
	if err := l.CheckName("in/a\xff\n\\"); err != nil {
		t.Errorf("a name with any byte but NUL: %v", err)
	}
	if err := l.CheckName("in/a\x00b"); !errors.Is(err, ErrNameNotRepresentable) || !Permanent(err) {
		t.Errorf("a name with NUL: %v", err)
	}
}

// MakeDir is fenced: refused once the fence closes, audited otherwise.
func TestFencedMakeDir(t *testing.T) {
	local, dir := tempLocal(t)
	trail, err := audit.Open(filepath.Join(dir, "audit.jsonl"), "ha1")
	if err != nil {
		t.Fatal(err)
	}
	fence := &switchFence{epoch: 3}
	ep := Fenced{Endpoint: local, Fence: fence, Audit: trail}
	ctx := WithEpoch(context.Background(), 3)
	if err := ep.MakeDir(ctx, filepath.Join(dir, "d")); err != nil {
		t.Fatal(err)
	}
	lost := errors.New("lease lost")
	fence.err = lost
	if err := ep.MakeDir(ctx, filepath.Join(dir, "e")); !errors.Is(err, lost) {
		t.Fatalf("MakeDir after the fence closed: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "e")); !os.IsNotExist(err) {
		t.Errorf("directory made after the fence closed: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if !strings.Contains(string(b), `"op":"mkdir"`) || strings.Count(string(b), "\n") != 1 {
		t.Errorf("audit trail %s, want one mkdir", b)
	}
}

func umask(t *testing.T) os.FileMode {
	p := filepath.Join(t.TempDir(), "probe")
	if err := os.Mkdir(p, 0o777); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	return 0o777 &^ fi.Mode().Perm()
}
