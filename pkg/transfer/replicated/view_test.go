package replicated

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRelAgreesWithFilepathRel: rel's short cut gives what filepath.Rel
// gives (or the path itself outside the root).
func TestRelAgreesWithFilepathRel(t *testing.T) {
	slow := func(root, p string) string {
		r, err := filepath.Rel(root, p)
		if err != nil || r == ".." || strings.HasPrefix(r, "../") {
			return p
		}
		return r
	}
	roots := []string{"/srv/ft", "/srv/ft/", "/srv/./ft", "/", "/srv"}
	paths := []string{"/srv/ft/in/a.csv", "/srv/ft", "/srv/ftx/a", "/srv/ft/", "/srv/ft/../x", "/srv/ft//a", "/other/a", "/srv/ft/a/./b", "/srv/ft/.hidden"}
	for _, root := range roots {
		for _, p := range paths {
			if got, want := rel(cleanRoot(root), p), slow(root, p); got != want {
				t.Errorf("rel(%q, %q) = %q, want %q", root, p, got, want)
			}
		}
	}
	if got := rel("", "/a/b"); got != "/a/b" {
		t.Errorf("no root: %q", got)
	}
}
