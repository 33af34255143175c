package replog

import (
	"go/build"
	"strings"
	"testing"
)

func TestRegisterKind(t *testing.T) {
	if _, ok := KindFormat("replog.test.unknown"); ok {
		t.Fatal("an unregistered kind is known")
	}
	RegisterKind("replog.test.a", 2)
	RegisterKind("replog.test.a", 2) // the same again: allowed
	if f, ok := KindFormat("replog.test.a"); !ok || f != 2 {
		t.Fatalf("KindFormat: %d, %v; want 2, true", f, ok)
	}
	for _, c := range []struct {
		kind   string
		format int
	}{{"replog.test.a", 3}, {"", 1}, {"replog.test.b", 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterKind(%q, %d) did not panic", c.kind, c.format)
				}
			}()
			RegisterKind(c.kind, c.format)
		}()
	}
}

// TestLeaf keeps the package a leaf: standard packages only, so that the
// replicated state can implement the log's contract without reaching raft
// or the rest of ftagent.
func TestLeaf(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("imports %s: the log's contract imports standard packages only", imp)
		}
	}
}
