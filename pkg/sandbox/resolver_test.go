package sandbox

import (
	"path/filepath"
	"testing"
)

// TestResolverAgreesWithResolve: a Resolver gives Resolve's answer (path or
// refusal, word for word) for every path of the escape and acceptance
// tables, with its cache primed by the paths before it, in both orders.
func TestResolverAgreesWithResolve(t *testing.T) {
	f := newFixture(t)
	paths := []string{
		"../outside/passwd", "..", filepath.Join(f.outside, "passwd"), "/etc/passwd", "a/../../x",
		"lnfile", "lndir", "lndir/f", "a/up/passwd", "chain1", "lndir/new.csv", "lndir/x/y/new.csv",
		"dangle", "secret", "secret/s.txt", filepath.Join(f.root, "secret", "new"), "tosecret/s.txt",
		"a/../secret/s.txt", filepath.Join(f.rootx, "f"), "../rootx/f", "loop1", "loop1/x", "a/b/file.txt/x",
		"a/b\x00/../../../etc/passwd", "",
		"a/b/file.txt", filepath.Join(f.root, "a", "b", "file.txt"), "a/./b/file.txt", "a/b/../b/file.txt",
		"a/b/", ".", "/", "inlink", "tree/alias", "tree/dirlink/x.csv", "a/b/new.csv", "a/new/dir/x.csv",
		"a/new/dir/y.csv", filepath.Join(f.other, "o.txt"), "../other/o.txt", "secretary.txt",
		"in/x.csv", "in/y.csv", "in/new.csv", "in/sub/w.csv", "mixed/a.txt", "mixed/private/p.txt",
		"mixed/private/new", "badtree/evil", "badtree/ok.txt", "baddir/evildir/f", "dangtree/gone",
	}
	for _, order := range []string{"forward", "backward"} {
		r := f.sb.NewResolver()
		for k := range paths {
			p := paths[k]
			if order == "backward" {
				p = paths[len(paths)-1-k]
			}
			want, wantErr := f.sb.Resolve(p)
			for range 2 { // the second time from the cache
				got, err := r.Resolve(p)
				if got != want || (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
					t.Fatalf("%s: Resolver.Resolve(%q) = %q, %v; Resolve gives %q, %v", order, p, got, err, want, wantErr)
				}
			}
		}
	}
}
