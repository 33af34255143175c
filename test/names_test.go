package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// File names are bytes: names that are not UTF-8 (0xff, 0x80, 0xfe), and
// names with a newline, a backslash or a "%", arrive byte for byte through
// the CLI's arguments, the API's JSON, the raft log and the views; and a
// recursive transfer reproduces the tree with its directories, empty ones
// included.

// oddFiles are the files of the tree the tests below write, by path under
// the tree, with their sizes (random contents).
var oddFiles = map[string]int64{
	"a\xff.bin":           1000,
	"b\x80c":              0,
	"new\nline.txt":       70_000,
	`back\slash`:          5,
	"100%.txt":            12,
	"plain.txt":           3,
	"sub\xfe/x\xff\x80":   300_000,
	"sub\xfe/\x80/deeper": 17,
}

// oddDirs are the tree's directories beside those that hold files; the
// empty ones among them.
var oddDirs = []string{"empty", "empty\xff", "nest/deeper/deepest", "sub\xfe/void", "new\nline dir"}

// writeOddTree writes the tree under transferRoot/rel, each file's size
// plus extra bytes.
func writeOddTree(t *testing.T, c *harness.Cluster, rel string, extra int64) {
	t.Helper()
	seed := uint64(40)
	for _, name := range slices.Sorted(maps.Keys(oddFiles)) {
		seed++
		xferRandomFile(t, c, rel+"/"+name, oddFiles[name]+extra, seed)
	}
	for _, d := range oddDirs {
		if err := os.MkdirAll(xferPath(c, rel+"/"+d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
}

// treeEntries lists what is under dir: "d PATH" for a directory, "f PATH"
// for a file, by the bytes of its path under dir.
func treeEntries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		kind := "f "
		if d.IsDir() {
			kind = "d "
		}
		out = append(out, kind+rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// sameTree checks that dst holds exactly src's tree: the same names, byte
// for byte, the same directories, and each file's bytes the same (read
// both, and cmp where it is installed).
func sameTree(t *testing.T, src, dst string) {
	t.Helper()
	want, got := treeEntries(t, src), treeEntries(t, dst)
	if !slices.Equal(got, want) {
		t.Fatalf("destination tree %s:\n%q\nwant (as %s):\n%q", dst, got, src, want)
	}
	cmp, _ := exec.LookPath("cmp")
	for _, e := range want {
		kind, rel, _ := strings.Cut(e, " ")
		if kind != "f" {
			continue
		}
		a, err1 := os.ReadFile(filepath.Join(src, rel))
		b, err2 := os.ReadFile(filepath.Join(dst, rel))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("file %q: contents differ (%v, %v)", rel, err1, err2)
		}
		if cmp != "" {
			if out, err := exec.Command(cmp, filepath.Join(src, rel), filepath.Join(dst, rel)).CombinedOutput(); err != nil {
				t.Errorf("cmp %q: %v %s", rel, err, out)
			}
		}
	}
}

// checkOddView checks that a view of the odd tree's transfer from
// transferRoot/from to transferRoot/to names every file and directory
// byte for byte, counts the directories, and has them all done.
func checkOddView(t *testing.T, v transfer.View, from, to string) {
	t.Helper()
	if v.State != transfer.StateCompleted {
		t.Fatalf("transfer %s %s (%q), want completed: %s", v.ID, v.State, v.Reason, harness.ViewText(v))
	}
	var wantFiles []string
	for name := range oddFiles {
		wantFiles = append(wantFiles, from+"/"+name+" → "+to+"/"+name)
	}
	var gotFiles []string
	for _, f := range v.Files {
		gotFiles = append(gotFiles, f.Source+" → "+f.Destination)
	}
	slices.Sort(wantFiles)
	slices.Sort(gotFiles)
	if !slices.Equal(gotFiles, wantFiles) {
		t.Errorf("files in the view:\n%q\nwant\n%q", gotFiles, wantFiles)
	}
	dirs := map[string]bool{"": true}
	for _, d := range oddDirs {
		for ; d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for name := range oddFiles {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var wantDirs, gotDirs []string
	for d := range dirs {
		wantDirs = append(wantDirs, strings.TrimSuffix(from+"/"+d, "/")+" → "+strings.TrimSuffix(to+"/"+d, "/"))
	}
	for _, d := range v.Dirs {
		gotDirs = append(gotDirs, d.Source+" → "+d.Destination)
		if d.State != transfer.StateCompleted {
			t.Errorf("directory %q %s (%s)", d.Destination, d.State, d.Reason)
		}
	}
	slices.Sort(wantDirs)
	slices.Sort(gotDirs)
	if !slices.Equal(gotDirs, wantDirs) {
		t.Errorf("directories in the view:\n%q\nwant\n%q", gotDirs, wantDirs)
	}
	if v.Directories != len(wantDirs) || v.DirectoriesDone != len(wantDirs) {
		t.Errorf("view counts %d directories, %d made; want %d", v.Directories, v.DirectoriesDone, len(wantDirs))
	}
}

func TestTransferNonUTF8NamesAndEmptyDirectories(t *testing.T) {
	c, _ := xferCluster(t)
	writeOddTree(t, c, "in/odd\xff", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// One file named with 0xff, given on the command line: found, and
	// written under a name with 0x80.
	v, r, err := c.CreateTransfer(ctx, "--wait", "in/odd\xff/a\xff.bin", "out/one\x80.bin")
	if err != nil || r.Exit != 0 || v.State != transfer.StateCompleted || len(v.Files) != 1 ||
		v.Files[0].Source != "in/odd\xff/a\xff.bin" || v.Files[0].Destination != "out/one\x80.bin" {
		t.Fatalf("one file named with 0xff: exit %d %v, %s\nstderr %s", r.Exit, err, harness.ViewText(v), r.Stderr)
	}
	a, _ := os.ReadFile(xferPath(c, "in/odd\xff/a\xff.bin"))
	b, err := os.ReadFile(xferPath(c, "out/one\x80.bin"))
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("out/one\\x80.bin: %v, contents equal %v", err, bytes.Equal(a, b))
	}

	// The tree, recursively.
	v, r, err = c.CreateTransfer(ctx, "--wait", "-r", "in/odd\xff", "out/")
	if err != nil || r.Exit != 0 {
		t.Fatalf("transfer create -r: exit %d %v\nstdout %q\nstderr %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	checkOddView(t, v, "in/odd\xff", "out/odd\xff")
	sameTree(t, xferPath(c, "in/odd\xff"), xferPath(c, "out/odd\xff"))
	xferNoParts(t, c)
	// The JSON is UTF-8 with nothing replaced, and escapes the names that
	// are not UTF-8 as documented.
	if !json.Valid([]byte(r.Stdout)) || strings.Contains(r.Stdout, "\ufffd") || !strings.Contains(r.Stdout, `"\u0000in/odd%FF/a%FF.bin"`) {
		t.Errorf("transfer create --json printed %s", r.Stdout)
	}

	// show --json: the same names.
	shown, _, err := c.TransferView(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkOddView(t, shown, "in/odd\xff", "out/odd\xff")

	// show's table: one line per file and per directory, names that would
	// break a line quoted.
	r, err = c.Transfer(ctx, "show", v.ID)
	if err != nil || r.Exit != 0 {
		t.Fatalf("transfer show: exit %d %v %s", r.Exit, err, r.Stderr)
	}
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	header := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "SOURCE") })
	if header < 0 {
		t.Fatalf("transfer show printed no table:\n%s", r.Stdout)
	}
	rows := lines[header+1:]
	if want := len(v.Files) + len(v.Dirs); len(rows) != want {
		t.Errorf("transfer show's table has %d rows, want %d (one per file and directory):\n%s", len(rows), want, r.Stdout)
	}
	var firsts []string
	for _, row := range rows {
		first, _, _ := strings.Cut(row, "  ")
		firsts = append(firsts, first)
	}
	for _, f := range v.Files {
		if !slices.Contains(firsts, transfer.QuoteName(f.Source)) {
			t.Errorf("no row of transfer show begins with %s:\n%s", transfer.QuoteName(f.Source), r.Stdout)
		}
	}
	for _, d := range v.Dirs {
		if !slices.Contains(firsts, transfer.QuoteName(d.Source+"/")) {
			t.Errorf("no row of transfer show begins with %s:\n%s", transfer.QuoteName(d.Source+"/"), r.Stdout)
		}
	}
	if !slices.Contains(firsts, `"in/odd\xff/new\nline.txt"`) {
		t.Errorf("the name with a newline is not shown quoted on one line:\n%s", r.Stdout)
	}

	// An empty directory alone: made, and counted.
	if err := os.MkdirAll(xferPath(c, "in/emptydir"), 0o750); err != nil {
		t.Fatal(err)
	}
	r, err = c.Transfer(ctx, "create", "--wait", "-r", "in/emptydir", "out/")
	if err != nil || r.Exit != 0 || !strings.Contains(r.Stdout, "completed: 0 files, 1 directory") {
		t.Errorf("transfer create --wait -r in/emptydir out/: exit %d %v\nstdout %s\nstderr %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	if fi, err := os.Lstat(xferPath(c, "out/emptydir")); err != nil || !fi.IsDir() {
		t.Errorf("out/emptydir: %v", err)
	}
}

// transfer show pages a transfer's files: --limit and --offset select a
// window, and a line after the table says which files it shows and the
// command for the next page; the last page has none, nor has a transfer
// shown whole. --json is the agent's view as is (filesTotal, nextOffset).
// create --wait and transfer list count every file without listing them.
func TestTransferShowPages(t *testing.T) {
	c, _ := xferCluster(t)
	for i := range 25 {
		xferRandomFile(t, c, fmt.Sprintf("in/pages/f%02d", i), 1024, uint64(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := c.Transfer(ctx, "create", "--wait", "-r", "in/pages", "out/")
	fields := strings.Fields(r.Stdout)
	if err != nil || r.Exit != 0 || len(fields) < 2 || !strings.Contains(r.Stdout, "completed: 25 files, 1 directory") {
		t.Fatalf("transfer create --wait: exit %d %v\nstdout %s\nstderr %s", r.Exit, err, r.Stdout, r.Stderr)
	}
	id := fields[1]

	// show: the table (rows of files, then of directories) and what
	// follows it.
	show := func(args ...string) (files []string, after []string) {
		t.Helper()
		r, err := c.Transfer(ctx, "show", append(args, id)...)
		if err != nil || r.Exit != 0 {
			t.Fatalf("transfer show %v: exit %d %v %s", args, r.Exit, err, r.Stderr)
		}
		lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
		header := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "SOURCE") })
		if header < 0 {
			t.Fatalf("transfer show %v printed no table:\n%s", args, r.Stdout)
		}
		for _, l := range lines[header+1:] {
			switch {
			case strings.HasPrefix(l, "in/pages/f"):
				files = append(files, strings.Fields(l)[0])
			case !strings.HasPrefix(l, "in/pages/"):
				after = append(after, l)
			}
		}
		return files, after
	}
	files, after := show("--limit", "10")
	next := "files 1-10 of 25; next: ftagent transfer show " + id + " --offset 10 --limit 10"
	if len(files) != 10 || files[0] != "in/pages/f00" || !slices.Equal(after, []string{next}) {
		t.Errorf("show --limit 10: files %v, then %q; want f00-f09, then %q", files, after, next)
	}
	files, after = show("--offset", "10", "--limit", "10")
	if len(files) != 10 || files[0] != "in/pages/f10" || len(after) != 1 || !strings.HasPrefix(after[0], "files 11-20 of 25; next: ") {
		t.Errorf("show --offset 10 --limit 10: files %v, then %q", files, after)
	}
	if files, after = show("--offset", "20", "--limit", "10"); len(files) != 5 || !slices.Equal(after, []string{"files 21-25 of 25"}) {
		t.Errorf("the last page: files %v, then %q; want 5, then %q", files, after, "files 21-25 of 25")
	}
	if files, after = show(); len(files) != 25 || len(after) != 0 {
		t.Errorf("show without a window: %d files, then %q; want 25 and nothing after", len(files), after)
	}

	r, err = c.Transfer(ctx, "show", "--json", "--limit", "10", id)
	var v transfer.View
	if err != nil || r.Exit != 0 || json.Unmarshal([]byte(r.Stdout), &v) != nil || len(v.Files) != 10 || v.FilesTotal != 25 || v.NextOffset != 10 {
		t.Errorf("show --json --limit 10: exit %d %v: %.300s; want 10 files, filesTotal 25, nextOffset 10", r.Exit, err, r.Stdout)
	}
	if r, err = c.Transfer(ctx, "show", "--limit", "0", id); err != nil || r.Exit != 2 || !strings.Contains(r.Stderr, "--limit 0: must be 1-10000") {
		t.Errorf("show --limit 0: exit %d %v %q; want 2, must be 1-10000", r.Exit, err, r.Stderr)
	}
	r, err = c.Transfer(ctx, "list")
	if lines := strings.Split(strings.TrimSpace(r.Stdout), "\n"); err != nil || r.Exit != 0 || len(lines) != 2 || strings.Fields(lines[1])[2] != "25" {
		t.Errorf("transfer list: exit %d %v\n%s; want one transfer of 25 files", r.Exit, err, r.Stdout)
	}
}

// Across a kill -9 of the active midway: the new active finishes the
// transfer, the names still exact in its views and on disk, the empty
// directories there.
func TestTransferNonUTF8NamesAcrossFailover(t *testing.T) {
	c, active := xferCluster(t)
	// Each file 4 MiB more: about 5 s at 8 MiB/s, so the kill comes midway.
	writeOddTree(t, c, "in/odd\x80", 4*xferMiB)
	id := xferCreate(t, c, "-r", "--bwlimit", "8M", "in/odd\x80/", "out/tree\xff/")
	v := xferMidway(t, c, id, 8*xferMiB)
	if err := c.Kill(active); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s at bytesDone %d", active, v.BytesDone)
	xferNewActive(t, c, active)
	v = xferEnded(t, c, 90*time.Second, id)
	if v.Failovers < 1 {
		t.Errorf("failovers %d, want at least 1", v.Failovers)
	}
	checkOddView(t, v, "in/odd\x80", "out/tree\xff")
	sameTree(t, xferPath(c, "in/odd\x80"), xferPath(c, "out/tree\xff"))
	xferNoParts(t, c)
}
