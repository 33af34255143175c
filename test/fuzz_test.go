package test

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFuzz runs every Go fuzz target of the module (every func FuzzXxx(f
// *testing.F) in a _test.go file, found by reading the sources, so that a
// new target is never left out) for a few seconds each, one after the
// other, each in its own `go test -fuzz` (without -race: the fuzzing
// engine's instrumentation is what matters there). A crash fails the test
// with the child's output; the failing input is then in the package's
// testdata/fuzz/FuzzXxx, where `go test` replays it from then on.
//
// FTAGENT_FUZZTIME sets each target's -fuzztime (default 2s; "500x" counts
// executions instead). docs/security.md (Fuzzing) lists the targets and
// how to run one for longer.
func TestFuzz(t *testing.T) {
	if testing.Short() {
		t.Skip("fuzzing is skipped in -short mode")
	}
	fuzztime := os.Getenv("FTAGENT_FUZZTIME")
	if fuzztime == "" {
		fuzztime = "2s"
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	targets, err := fuzzTargets(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) == 0 {
		t.Fatalf("no fuzz targets found under %s: the search for func FuzzXxx(f *testing.F) is broken", root)
	}
	for _, ft := range targets {
		t.Run(ft.name, func(t *testing.T) {
			start := time.Now()
			for try := 1; ; try++ {
				out, err := fuzzOnce(root, ft, fuzztime)
				if err == nil {
					break
				}
				// Go before 1.27 may end a -fuzztime run that found
				// nothing with a bare "context deadline exceeded" (a race
				// in its fuzzing coordinator, go.dev/issue/75804): no
				// failing input is written, and the run is tried again. A
				// crash always writes its input.
				if coordinatorDeadlineRace(out) && try < 3 {
					t.Logf("%s: the fuzzing coordinator ended with a bare deadline (go.dev/issue/75804), no failing input; trying again", ft.name)
					continue
				}
				t.Fatalf("go test -fuzz %s ./%s (-fuzztime %s): %v\n%s", ft.name, ft.pkg, fuzztime, err, out)
			}
			t.Logf("%s (./%s): no crash in %s (%s in all)", ft.name, ft.pkg, fuzztime, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

// fuzzOnce runs one target in a child `go test -fuzz`.
func fuzzOnce(root string, ft fuzzTarget, fuzztime string) ([]byte, error) {
	// The budget covers building the instrumented test binary and
	// replaying the corpus before the fuzzing proper.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-fuzz", "^"+ft.name+"$", "-fuzztime", fuzztime, "./"+ft.pkg)
	cmd.Dir = root
	return cmd.CombinedOutput()
}

// coordinatorDeadlineRace reports whether a failed fuzzing run's output is
// that of go.dev/issue/75804: the target failed with nothing but
// "context deadline exceeded", and no failing input was written.
func coordinatorDeadlineRace(out []byte) bool {
	s := string(out)
	return strings.Contains(s, "\n    context deadline exceeded\n") && !strings.Contains(s, "Failing input written") &&
		!strings.Contains(s, "panic:") && !strings.Contains(s, ".go:")
}

type fuzzTarget struct {
	pkg  string // directory of its package, relative to the module's root
	name string
}

var fuzzFuncRE = regexp.MustCompile(`(?m)^func (Fuzz[A-Za-z0-9_]*)\(\w+ \*testing\.F\)`)

// fuzzTargets finds the fuzz targets of the module at root, by package and
// name.
func fuzzTargets(root string) ([]fuzzTarget, error) {
	var out []fuzzTarget
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		for _, m := range fuzzFuncRE.FindAllSubmatch(b, -1) {
			out = append(out, fuzzTarget{pkg: filepath.ToSlash(rel), name: string(m[1])})
		}
		return nil
	})
	slices.SortFunc(out, func(a, b fuzzTarget) int {
		return strings.Compare(a.pkg+" "+a.name, b.pkg+" "+b.name)
	})
	return out, err
}
