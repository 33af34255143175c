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
	"bytes", "encoding/hex", "encoding/json", "errors", "fmt", "maps", "math",
	"path/filepath", // Clean and Rel: string functions, no file system
	"reflect", "slices", "sort", "strconv", "strings", "sync",
	"time", // values and formatting; Now only in the active's commands
	"unicode", "unicode/utf8",
	"github.com/ftagent/ftagent/pkg/checkpoint", // the record and Check
	"github.com/ftagent/ftagent/pkg/ha",         // StateMachine, RegisterKind, ErrUnknownKind
}

// TestImportsNoIO keeps "Apply has no side effects" by construction: the
// package imports only pure packages, and none of the project's packages
// that read or write files (the endpoint, the copy loop, the sandbox, the
// Manager) reaches it, not even through another package.
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

	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies:", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/ftagent/ftagent/"
	allowed := []string{module + "pkg/checkpoint", module + "pkg/ha", module + "pkg/transfer/replicated"}
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(dep, module) && !slices.Contains(allowed, dep) {
			t.Errorf("depends on %s (go list -deps): only %v may be reached", dep, allowed)
		}
	}
}
