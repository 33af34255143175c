package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixture builds, under one temporary directory:
//
//	root/                     transferRoot
//	  a/b/file.txt
//	  a/up -> ../../outside   relative link out
//	  in/x.csv in/y.csv in/z.txt in/sub/w.csv
//	  empty/
//	  secret/s.txt            denied by "!secret"
//	  tosecret -> secret      link into the denied directory
//	  inlink -> a/b/file.txt  link inside, pointing inside
//	  lnfile -> outside/passwd
//	  lndir -> outside/dir
//	  chain1 -> chain2 -> ../outside/passwd
//	  dangle -> ../outside/newfile (does not exist)
//	  loop1 -> loop2 -> loop1
//	  tree/ok.txt tree/sub/deep.txt tree/alias -> ../a/b/file.txt tree/dirlink -> ../in
//	  badtree/ok.txt badtree/evil -> outside/passwd
//	  baddir/ok.txt baddir/evildir -> outside/dir
//	  dangtree/gone -> missing
//	  mixed/a.txt mixed/private/p.txt  private denied by "!mixed/private"
//	rootx/f                   shares a prefix with root
//	other/o.txt               second allowed root
//	outside/passwd outside/dir/f
type fixture struct {
	base, root, outside, other, rootx string
	sb                                *Sandbox
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		base:    base,
		root:    filepath.Join(base, "root"),
		outside: filepath.Join(base, "outside"),
		other:   filepath.Join(base, "other"),
		rootx:   filepath.Join(base, "rootx"),
	}
	files := map[string]string{
		"root/a/b/file.txt":        "hello",
		"root/in/x.csv":            "x,1\n",
		"root/in/y.csv":            "y,22\n",
		"root/in/z.txt":            "z",
		"root/in/sub/w.csv":        "w",
		"root/secret/s.txt":        "s",
		"root/tree/ok.txt":         "ok",
		"root/tree/sub/deep.txt":   "deep",
		"root/badtree/ok.txt":      "ok",
		"root/baddir/ok.txt":       "ok",
		"root/mixed/a.txt":         "a",
		"root/mixed/private/p.txt": "p",
		"rootx/f":                  "f",
		"other/o.txt":              "o",
		"outside/passwd":           "root:x:0:0",
		"outside/dir/f":            "f",
	}
	for name, data := range files {
		p := filepath.Join(base, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"root/empty", "root/dangtree"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := [][2]string{
		{"root/a/up", "../../outside"},
		{"root/tosecret", "secret"},
		{"root/inlink", "a/b/file.txt"},
		{"root/lnfile", filepath.Join(f.outside, "passwd")},
		{"root/lndir", filepath.Join(f.outside, "dir")},
		{"root/chain1", "chain2"},
		{"root/chain2", "../outside/passwd"},
		{"root/dangle", "../outside/newfile"},
		{"root/loop1", "loop2"},
		{"root/loop2", "loop1"},
		{"root/tree/alias", "../a/b/file.txt"},
		{"root/tree/dirlink", "../in"},
		{"root/badtree/evil", filepath.Join(f.outside, "passwd")},
		{"root/baddir/evildir", filepath.Join(f.outside, "dir")},
		{"root/dangtree/gone", "missing"},
	}
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(base, filepath.FromSlash(l[0]))); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := New(f.root, []string{".", f.other, "!secret", "!mixed/private"})
	if err != nil {
		t.Fatal(err)
	}
	f.sb = sb
	return f
}

// wantRefusal checks err is an *Error for path whose reason contains want.
func wantRefusal(t *testing.T, err error, path, want string) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("error = %v (%T), want *Error", err, err)
	}
	if se.Path != path {
		t.Errorf("Error.Path = %q, want %q", se.Path, path)
	}
	if !strings.Contains(se.Reason, want) {
		t.Errorf("Error.Reason = %q, want it to contain %q", se.Reason, want)
	}
	if !strings.Contains(se.Error(), want) || !strings.HasPrefix(se.Error(), "path ") {
		t.Errorf("Error() = %q", se.Error())
	}
}

func TestResolveRefuses(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, path, reason string
	}{
		{"dotdot climbs out", "../outside/passwd", "resolves outside the sandboxRoot entries (" + filepath.Join(f.outside, "passwd") + ")"},
		{"dotdot alone", "..", "resolves outside the sandboxRoot entries (" + f.base + ")"},
		{"absolute outside", filepath.Join(f.outside, "passwd"), "resolves outside the sandboxRoot entries"},
		{"etc passwd", "/etc/passwd", "resolves outside the sandboxRoot entries (/etc/passwd)"},
		{"a/../../x", "a/../../x", "resolves outside the sandboxRoot entries (" + filepath.Join(f.base, "x") + ")"},
		{"link to file outside", "lnfile", "symbolic link leads outside the sandboxRoot entries (" + filepath.Join(f.outside, "passwd") + ")"},
		{"link to dir outside", "lndir", "symbolic link leads outside the sandboxRoot entries (" + filepath.Join(f.outside, "dir") + ")"},
		{"file under link to dir outside", "lndir/f", "symbolic link leads outside the sandboxRoot entries (" + filepath.Join(f.outside, "dir", "f") + ")"},
		{"relative link out in the middle", "a/up/passwd", "symbolic link leads outside the sandboxRoot entries (" + filepath.Join(f.outside, "passwd") + ")"},
		{"link chain out", "chain1", "symbolic link leads outside the sandboxRoot entries (" + filepath.Join(f.outside, "passwd") + ")"},
		{"new destination under link out", "lndir/new.csv", "symbolic link leads outside the sandboxRoot entries (" + filepath.Join(f.outside, "dir", "new.csv") + ")"},
		{"new nested destination under link out", "lndir/x/y/new.csv", "symbolic link leads outside the sandboxRoot entries (" + filepath.Join(f.outside, "dir", "x", "y", "new.csv") + ")"},
		{"dangling link out", "dangle", "symbolic link leads outside the sandboxRoot entries (" + filepath.Join(f.outside, "newfile") + ")"},
		{"denied dir", "secret", "is denied by sandboxRoot entry !" + filepath.Join(f.root, "secret")},
		{"under denied dir", "secret/s.txt", "is denied by sandboxRoot entry !" + filepath.Join(f.root, "secret")},
		{"new file under denied dir", filepath.Join(f.root, "secret", "new"), "is denied by sandboxRoot entry !"},
		{"link into denied dir", "tosecret/s.txt", "is denied by sandboxRoot entry !"},
		{"dotdot into denied dir", "a/../secret/s.txt", "is denied by sandboxRoot entry !"},
		{"shares prefix with root", filepath.Join(f.rootx, "f"), "resolves outside the sandboxRoot entries (" + filepath.Join(f.rootx, "f") + ")"},
		{"shares prefix, relative", "../rootx/f", "resolves outside the sandboxRoot entries (" + filepath.Join(f.rootx, "f") + ")"},
		{"link loop", "loop1", "too many levels of symbolic links"},
		{"through a file", "a/b/file.txt/x", "cannot be resolved"},
		{"NUL byte", "a/b\x00/../../../etc/passwd", "contains a NUL byte"},
		{"empty", "", "is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := f.sb.Resolve(c.path)
			if err == nil {
				t.Fatalf("Resolve(%q) = %q, want refusal", c.path, got)
			}
			if got != "" {
				t.Errorf("Resolve(%q) returned %q with its error", c.path, got)
			}
			wantRefusal(t, err, c.path, c.reason)
		})
	}
}

func TestResolveAccepts(t *testing.T) {
	f := newFixture(t)
	file := filepath.Join(f.root, "a", "b", "file.txt")
	cases := []struct {
		name, path, want string
	}{
		{"relative", "a/b/file.txt", file},
		{"absolute inside", file, file},
		{"dot elements", "a/./b/file.txt", file},
		{"dotdot staying inside", "a/b/../b/file.txt", file},
		{"trailing slash", "a/b/", filepath.Join(f.root, "a", "b")},
		{"root itself", ".", f.root},
		{"link inside to inside", "inlink", file},
		{"link chain staying inside", "tree/alias", file},
		{"not yet existing destination", "a/b/new.csv", filepath.Join(f.root, "a", "b", "new.csv")},
		{"not yet existing directories", "a/new/dir/x.csv", filepath.Join(f.root, "a", "new", "dir", "x.csv")},
		{"second allowed root", filepath.Join(f.other, "o.txt"), filepath.Join(f.other, "o.txt")},
		{"second allowed root, relative", "../other/o.txt", filepath.Join(f.other, "o.txt")},
		{"name starting with secret", "secretary.txt", filepath.Join(f.root, "secretary.txt")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := f.sb.Resolve(c.path)
			if err != nil {
				t.Fatalf("Resolve(%q): %v", c.path, err)
			}
			if got != c.want {
				t.Errorf("Resolve(%q) = %q, want %q", c.path, got, c.want)
			}
		})
	}
}

func TestDefaultIsRootAlone(t *testing.T) {
	f := newFixture(t)
	sb, err := New(f.root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := sb.Resolve("secret/s.txt"); err != nil || got != filepath.Join(f.root, "secret", "s.txt") {
		t.Errorf("Resolve(secret/s.txt) = %q, %v; want accepted without a deny entry", got, err)
	}
	_, err = sb.Resolve(filepath.Join(f.other, "o.txt"))
	wantRefusal(t, err, filepath.Join(f.other, "o.txt"), "resolves outside transferRoot")

	// Only deny entries: the root is still the allowed entry.
	sb, err = New(f.root, []string{"!secret"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Resolve("a/b/file.txt"); err != nil {
		t.Errorf("Resolve(a/b/file.txt): %v", err)
	}
	_, err = sb.Resolve("secret")
	wantRefusal(t, err, "secret", "is denied by sandboxRoot entry")

	// Allow entries replace the root: the root's other files are outside.
	sb, err = New(f.root, []string{"in"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := sb.Resolve("in/x.csv"); err != nil || got != filepath.Join(f.root, "in", "x.csv") {
		t.Errorf("Resolve(in/x.csv) = %q, %v", got, err)
	}
	_, err = sb.Resolve("a/b/file.txt")
	wantRefusal(t, err, "a/b/file.txt", "resolves outside the sandboxRoot entries")
}

func TestRootThroughLink(t *testing.T) {
	f := newFixture(t)
	link := filepath.Join(f.base, "rootlink")
	if err := os.Symlink(f.root, link); err != nil {
		t.Fatal(err)
	}
	sb, err := New(link, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Root() != f.root {
		t.Errorf("Root() = %q, want %q", sb.Root(), f.root)
	}
	for _, p := range []string{"a/b/file.txt", filepath.Join(link, "a/b/file.txt"), filepath.Join(f.root, "a/b/file.txt")} {
		if got, err := sb.Resolve(p); err != nil || got != filepath.Join(f.root, "a", "b", "file.txt") {
			t.Errorf("Resolve(%q) = %q, %v", p, got, err)
		}
	}
}

func TestDenyCreatedLater(t *testing.T) {
	f := newFixture(t)
	sb, err := New(f.root, []string{"!later"})
	if err != nil {
		t.Fatal(err)
	}
	// Created after New as a link to an existing directory: what it
	// leads to is denied through both names.
	if err := os.Symlink("in", filepath.Join(f.root, "later")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"later/x.csv", "in/x.csv"} {
		_, err := sb.Resolve(p)
		wantRefusal(t, err, p, "is denied by sandboxRoot entry !"+filepath.Join(f.root, "later"))
	}
}

func TestNewErrors(t *testing.T) {
	f := newFixture(t)
	file := filepath.Join(f.root, "a", "b", "file.txt")
	cases := []struct {
		name  string
		root  string
		allow []string
		want  string
	}{
		{"relative root", "root", nil, `transferRoot "root" is not an absolute path`},
		{"empty root", "", nil, "transferRoot is empty"},
		{"missing root", filepath.Join(f.base, "nope"), nil, "nope"},
		{"root is a file", file, nil, "is not a directory"},
		{"missing entry", f.root, []string{"nope"}, `sandboxRoot entry "nope"`},
		{"entry is a file", f.root, []string{"a/b/file.txt"}, `sandboxRoot entry "a/b/file.txt"`},
		{"empty entry", f.root, []string{""}, `sandboxRoot entry "" is empty`},
		{"bare !", f.root, []string{"!"}, `sandboxRoot entry "!" is empty`},
		{"NUL in entry", f.root, []string{"a\x00"}, "contains a NUL byte"},
		{"looping entry", f.root, []string{"loop1"}, `sandboxRoot entry "loop1"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sb, err := New(c.root, c.allow)
			if err == nil {
				t.Fatalf("New(%q, %q) = %v, want error", c.root, c.allow, sb)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("New error = %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	f := newFixture(t)
	r := func(p string) string { return filepath.Join(f.root, filepath.FromSlash(p)) }
	cases := []struct {
		name      string
		path      string
		recursive bool
		want      []File
	}{
		{"file", "in/x.csv", false, []File{{r("in/x.csv"), "x.csv", 4}}},
		{"file, recursive", "in/x.csv", true, []File{{r("in/x.csv"), "x.csv", 4}}},
		{"link to file keeps the name given", "inlink", false, []File{{r("a/b/file.txt"), "inlink", 5}}},
		{"dir recursive", "in", true, []File{
			{r("in/sub/w.csv"), "sub/w.csv", 1},
			{r("in/x.csv"), "x.csv", 4},
			{r("in/y.csv"), "y.csv", 5},
			{r("in/z.txt"), "z.txt", 1},
		}},
		{"dir recursive, trailing slash", "in/", true, []File{
			{r("in/sub/w.csv"), "sub/w.csv", 1},
			{r("in/x.csv"), "x.csv", 4},
			{r("in/y.csv"), "y.csv", 5},
			{r("in/z.txt"), "z.txt", 1},
		}},
		{"tree with links inside: file link followed, dir link not", "tree", true, []File{
			{r("a/b/file.txt"), "alias", 5},
			{r("tree/ok.txt"), "ok.txt", 2},
			{r("tree/sub/deep.txt"), "sub/deep.txt", 4},
		}},
		{"empty dir", "empty", true, []File{}},
		{"wildcard *.csv", "in/*.csv", false, []File{
			{r("in/x.csv"), "x.csv", 4},
			{r("in/y.csv"), "y.csv", 5},
		}},
		{"wildcard absolute", filepath.Join(f.root, "in", "?.csv"), false, []File{
			{r("in/x.csv"), "x.csv", 4},
			{r("in/y.csv"), "y.csv", 5},
		}},
		{"wildcard class", "in/[xz].*", false, []File{
			{r("in/x.csv"), "x.csv", 4},
			{r("in/z.txt"), "z.txt", 1},
		}},
		{"wildcard * skips directories without recursive", "in/*", false, []File{
			{r("in/x.csv"), "x.csv", 4},
			{r("in/y.csv"), "y.csv", 5},
			{r("in/z.txt"), "z.txt", 1},
		}},
		{"wildcard * with recursive", "in/*", true, []File{
			{r("in/sub/w.csv"), "sub/w.csv", 1},
			{r("in/x.csv"), "x.csv", 4},
			{r("in/y.csv"), "y.csv", 5},
			{r("in/z.txt"), "z.txt", 1},
		}},
		{"second root", filepath.Join(f.other, "o.txt"), false, []File{{filepath.Join(f.other, "o.txt"), "o.txt", 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := f.sb.Expand(c.path, c.recursive)
			if err != nil {
				t.Fatalf("Expand(%q, %v): %v", c.path, c.recursive, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Expand(%q, %v) =\n%+v\nwant\n%+v", c.path, c.recursive, got, c.want)
			}
		})
	}
}

func TestExpandRefuses(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name      string
		path      string
		recursive bool
		errPath   string
		reason    string
	}{
		{"dir without recursive", "in", false, "in", "is a directory (recursive not set)"},
		{"wildcard no match", "in/*.pdf", false, "in/*.pdf", "matches no file"},
		{"wildcard only dirs without recursive", "in/s*", false, "in/s*", "only directories"},
		{"wildcard in missing dir", "nodir/*.csv", false, "nodir/*.csv", "matches no file"},
		{"malformed wildcard", "in/[x", false, "in/[x", "malformed wildcard pattern"},
		{"missing file", "in/nope.csv", false, "in/nope.csv", "does not exist"},
		{"link out in recursive tree", "badtree", true, filepath.Join("badtree", "evil"), "symbolic link leads outside the sandboxRoot entries (" + filepath.Join(f.outside, "passwd") + ")"},
		{"dir link out in recursive tree", "baddir", true, filepath.Join("baddir", "evildir"), "symbolic link leads outside the sandboxRoot entries (" + filepath.Join(f.outside, "dir") + ")"},
		{"dangling link in recursive tree", "dangtree", true, filepath.Join("dangtree", "gone"), "dangling symbolic link"},
		{"wildcard matching a link out", "lnf*", false, "lnfile", "symbolic link leads outside the sandboxRoot entries"},
		{"denied dir inside recursive tree", "mixed", true, filepath.Join("mixed", "private"), "is denied by sandboxRoot entry !" + filepath.Join(f.root, "mixed", "private")},
		{"wildcard matching a denied dir", "mixed/*", true, filepath.Join("mixed", "private"), "is denied by sandboxRoot entry !"},
		{"source escaping", "../outside/passwd", false, "../outside/passwd", "resolves outside the sandboxRoot entries"},
		{"source link out", "lnfile", false, "lnfile", "symbolic link leads outside the sandboxRoot entries"},
		{"wildcard dir outside", "../outside/*", false, "../outside/*", "resolves outside the sandboxRoot entries"},
		{"wildcard under link out", "lndir/*", false, "lndir/*", "symbolic link leads outside the sandboxRoot entries"},
		{"empty", "", false, "", "is empty"},
		{"NUL", "in/x.csv\x00", false, "in/x.csv\x00", "contains a NUL byte"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := f.sb.Expand(c.path, c.recursive)
			if err == nil {
				t.Fatalf("Expand(%q, %v) = %+v, want refusal", c.path, c.recursive, got)
			}
			wantRefusal(t, err, c.errPath, c.reason)
		})
	}
}

// An expansion stops at its bounds: more files than allowed (across a
// walk), or its request's context done.
func TestExpandWithinBounds(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tree/a", "tree/b", "tree/sub/c"} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		max  int
		ok   bool
		want int
	}{{0, true, 3}, {3, true, 3}, {2, false, 0}, {-1, false, 0}} {
		files, err := sb.ExpandWithin(Bounds{MaxFiles: c.max}, "tree", true)
		if c.ok && (err != nil || len(files) != c.want) {
			t.Errorf("MaxFiles %d: %d files, %v; want %d", c.max, len(files), err, c.want)
		}
		if !c.ok && !errors.Is(err, ErrTooManyFiles) {
			t.Errorf("MaxFiles %d: %v, want ErrTooManyFiles", c.max, err)
		}
	}
	if _, err := sb.ExpandWithin(Bounds{MaxFiles: -1}, "tree/a", false); !errors.Is(err, ErrTooManyFiles) {
		t.Errorf("one file with no file allowed: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sb.ExpandWithin(Bounds{Ctx: ctx}, "tree", true); !errors.Is(err, context.Canceled) {
		t.Errorf("a walk whose request has gone away: %v, want context.Canceled", err)
	}
}

// A walk hands the files to its callback in ExpandWithin's order, counts
// its bounds over what it handed, and stops at the callback's error, which
// it returns as it is.
func TestWalkWithin(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tree/b", "tree/a", "tree/sub/d", "tree/sub/c", "tree/z"} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := sb.ExpandWithin(Bounds{}, "tree/", true)
	if err != nil {
		t.Fatal(err)
	}
	var got []File
	if err := sb.WalkWithin(Bounds{}, "tree/", true, func(f File) error {
		got = append(got, f)
		return nil
	}); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("walked %v, %v; want %v", got, err, want)
	}
	if rels := []string{got[0].Rel, got[1].Rel, got[2].Rel, got[3].Rel, got[4].Rel}; !reflect.DeepEqual(rels, []string{"a", "b", "sub/c", "sub/d", "z"}) {
		t.Fatalf("walked in the order %q", rels)
	}
	stop := errors.New("enough")
	n := 0
	err = sb.WalkWithin(Bounds{}, "tree/", true, func(File) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Fatalf("a callback that stops at the third file: %v after %d files", err, n)
	}
	n = 0
	err = sb.WalkWithin(Bounds{MaxFiles: 4}, "tree/", true, func(File) error { n++; return nil })
	if !errors.Is(err, ErrTooManyFiles) || n != 4 {
		t.Fatalf("MaxFiles 4 of 5: %v after %d files", err, n)
	}
}
