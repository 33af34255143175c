package replicated

import (
	"go/build"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// pure lists the packages this package's own files may import: none of
// them reaches a file, the network, the clock's timers or another process,
// so Apply, Snapshot and Restore cannot either. A package added here must
// be as pure; one that does I/O belongs to the Manager (pkg/transfer).
var pure = []string{
	"bytes", "encoding/hex", "encoding/json", "errors", "fmt",
	"io", // the Writer a snapshot is written to: the interface, no I/O of its own
	"maps", "math",
	"path/filepath", // Clean and Rel: string functions, no file system
	"reflect", "slices", "sort", "strconv", "strings", "sync",
	"time", // values and formatting; Now only in the active's commands
	"unicode", "unicode/utf8",
	"github.com/ftagent/ftagent/pkg/checkpoint", // the record and Check
	"github.com/ftagent/ftagent/pkg/replog",     // StateMachine, RegisterKind, ErrUnknownKind
}

// refused are packages this package must never reach, not even through
// another: pkg/ha owns the raft node, and raft does I/O (its network, its
// stores, its timers). The log's contract is pkg/replog, a leaf.
var refused = []string{
	"github.com/ftagent/ftagent/pkg/ha",
	"github.com/hashicorp/raft",
}

// TestImportsNoIO keeps "Apply has no side effects" by construction: the
// package imports only pure packages, and none of the project's packages
// that read or write files (the endpoint, the copy loop, the sandbox, the
// Manager) reaches it, not even through another package; nor do pkg/ha and
// raft.
func TestImportsNoIO(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		if !slices.Contains(pure, imp) {
			t.Errorf("imports %s, which is not in the list of pure packages (imports_test.go)", imp)
		}
	}
	// The package's own tests keep to the contract too: a test of its
	// entries against pkg/ha belongs to pkg/ha's tests (package ha_test).
	for _, imp := range p.TestImports {
		for _, r := range refused {
			if imp == r || strings.HasPrefix(imp, r+"/") {
				t.Errorf("a test file imports %s, which is refused here: the log's contract is pkg/replog", imp)
			}
		}
	}

	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies:", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/ftagent/ftagent/"
	allowed := []string{module + "pkg/checkpoint", module + "pkg/replog", module + "pkg/transfer/replicated"}
	for dep := range strings.FieldsSeq(string(out)) {
		for _, r := range refused {
			if dep == r || strings.HasPrefix(dep, r+"/") {
				t.Errorf("depends on %s (go list -deps), which is refused here: the log's contract is pkg/replog", dep)
			}
		}
		if strings.HasPrefix(dep, module) && !slices.Contains(allowed, dep) {
			t.Errorf("depends on %s (go list -deps): only %v may be reached", dep, allowed)
		}
	}
}
