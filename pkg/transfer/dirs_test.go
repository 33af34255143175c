package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/replog"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

func TestCreateV3IsRegisteredAtFormat4(t *testing.T) {
	if f, ok := replog.KindFormat(KindCreateV3); !ok || f != 4 {
		t.Fatalf("%s registered at format %d (%v), want 4", KindCreateV3, f, ok)
	}
	if ha.FormatVersion < 4 {
		t.Fatalf("ha.FormatVersion %d: this build must read the format of %s", ha.FormatVersion, KindCreateV3)
	}
}

// TestFormatVersionReadsEveryTransferKind: this build reads the format of
// every transfer kind it registers (pkg/replog), else it would refuse its
// own entries.
func TestFormatVersionReadsEveryTransferKind(t *testing.T) {
	for _, k := range append(slices.Clone(replicated.Kinds), KindCreateV2, KindFilesV2, KindCreateV3, KindPrune, KindCreateOpen, KindAppend) {
		f, ok := replog.KindFormat(k)
		if !ok || f > ha.FormatVersion {
			t.Errorf("%s registered at format %d (%v); ha.FormatVersion is %d", k, f, ok, ha.FormatVersion)
		}
	}
}

// oddTree writes, under root/in/odd, files whose names are not UTF-8 or
// hold a newline or a backslash, a nested directory so named, and empty
// directories (one nested three deep); it returns the files' SHA-256 by
// path relative to root/in.
func oddTree(t *testing.T, root string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	files := map[string]string{
		"a\xff.bin":           "first",
		"b\x80c":              "second",
		"new\nline.txt":       "third",
		`back\slash`:          "fourth",
		"plain.txt":           "fifth",
		"sub\xfe/x\xff\x80":   "sixth",
		"sub\xfe/%41 percent": "seventh",
	}
	for rel, data := range files {
		p := filepath.Join(root, "in", "odd", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(data))
		sums["odd/"+rel] = hex.EncodeToString(sum[:])
	}
	for _, d := range []string{"empty", "empty\xff", "nest/deeper/deepest", "sub\xfe/void"} {
		if err := os.MkdirAll(filepath.Join(root, "in", "odd", d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	return sums
}

// treeOf lists every entry under dir by its path's bytes: "d " and the
// path for a directory, "f ", the path, a space and the contents for a
// file.
func treeOf(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out = append(out, "d "+rel)
			return nil
		}
		b, err := os.ReadFile(p)
		out = append(out, "f "+rel+" "+string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// A recursive transfer reproduces the tree: names byte for byte, contents,
// and every directory, empty ones included, with a crash between a
// directory made and its record (the next active makes it again).
func TestRecursiveTransferReproducesTreeAcrossCrash(t *testing.T) {
	for crashAfter := 0; crashAfter <= 4; crashAfter++ {
		t.Run(fmt.Sprintf("crash after %d entries", crashAfter), func(t *testing.T) {
			r := newRig(t)
			sums := oddTree(t, r.root)
			first := &fakeLog{}
			m := r.manager(first, &tracingEndpoint{Local: r.local, tr: r.tr})
			id := r.submit(t, m, Request{Sources: []string{"in/odd"}, Destination: "out/", Recursive: true})
			if first.kinds[0] != KindCreateV3 {
				t.Fatalf("created with %v", first.kinds)
			}
			if crashAfter > 0 {
				ctx, cancel := context.WithCancel(context.Background())
				// The entries counted from here: the start, then the
				// directories made, then files.
				first.mu.Lock()
				first.crashAfter, first.crash = first.entries+crashAfter, cancel
				first.mu.Unlock()
				runOnce(ctx, m, 1, id)
				cancel()
			}
			second := r.manager(&fakeLog{index: 1000}, &tracingEndpoint{Local: r.local, tr: r.tr})
			runOnce(context.Background(), second, 2, id)
			got, _ := r.state.Get(id)
			if got.State != StateCompleted {
				t.Fatalf("transfer %s (%s)", got.State, got.Reason)
			}
			if want, have := treeOf(t, filepath.Join(r.root, "in", "odd")), treeOf(t, filepath.Join(r.root, "out", "odd")); !slices.Equal(have, want) {
				t.Fatalf("destination tree\n%q\nwant\n%q", have, want)
			}
			v := ViewOf(got, r.root)
			if v.Directories != 8 || v.DirectoriesDone != 8 || len(v.Files) != 7 {
				t.Errorf("view: %d directories, %d made, %d files; want 8, 8, 7", v.Directories, v.DirectoriesDone, len(v.Files))
			}
			r.checkEnded(t, id, sums)
		})
	}
}

// `transfer create -r in/emptydir out/` makes out/emptydir, and completes
// with one directory.
func TestEmptyDirectoryTransfer(t *testing.T) {
	r := newRig(t)
	if err := os.MkdirAll(filepath.Join(r.root, "in", "emptydir"), 0o750); err != nil {
		t.Fatal(err)
	}
	m := r.manager(&fakeLog{}, &tracingEndpoint{Local: r.local, tr: r.tr})
	id := r.submit(t, m, Request{Sources: []string{"in/emptydir"}, Destination: "out/", Recursive: true})
	runOnce(context.Background(), m, 1, id)
	got, _ := r.state.Get(id)
	if fi, err := os.Lstat(filepath.Join(r.root, "out", "emptydir")); err != nil || !fi.IsDir() || got.State != StateCompleted || len(got.Dirs) != 1 {
		t.Fatalf("transfer %s, %d directories; out/emptydir: %v", got.State, len(got.Dirs), err)
	}
}

// A directory whose place at the destination holds a file, or a link,
// fails with the reason; the rest of the tree arrives.
func TestDirectoryInTheWayFails(t *testing.T) {
	r := newRig(t)
	oddTree(t, r.root)
	if err := os.MkdirAll(filepath.Join(r.root, "out", "odd", "sub\xfe"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.root, "out", "odd", "empty"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(r.root, "out"), filepath.Join(r.root, "out", "odd", "sub\xfe", "void")); err != nil {
		t.Fatal(err)
	}
	m := r.manager(&fakeLog{}, &tracingEndpoint{Local: r.local, tr: r.tr})
	id := r.submit(t, m, Request{Sources: []string{"in/odd"}, Destination: "out/", Recursive: true})
	runOnce(context.Background(), m, 1, id)
	got, _ := r.state.Get(id)
	failed := map[string]string{}
	for _, d := range got.Dirs {
		if d.State == StateFailed {
			failed[strings.TrimPrefix(d.Destination, r.root+"/out/odd/")] = d.Reason
		}
	}
	if got.State != StateFailed || !strings.Contains(failed["empty"], "not a directory") || !strings.Contains(failed["sub\xfe/void"], "symbolic link") {
		t.Fatalf("transfer %s (%s); failed directories %q", got.State, got.Reason, failed)
	}
	for _, f := range got.Files {
		if f.State != StateCompleted {
			t.Errorf("file %q %s (%s), want completed", f.Destination, f.State, f.Reason)
		}
	}
}

// utf8Only plays an endpoint that holds only UTF-8 names (as an SFTP
// server may): it refuses the others in CheckName, and records whether
// anything was written under a refused name.
type utf8Only struct {
	tracingEndpoint
	wrote []string
}

func (e *utf8Only) CheckName(p string) error {
	if !utf8.ValidString(p) {
		return fmt.Errorf("%q: this endpoint takes UTF-8 names only: %w", p, endpoint.ErrNameNotRepresentable)
	}
	return e.tracingEndpoint.CheckName(p)
}

func (e *utf8Only) OpenPart(ctx context.Context, p string, offset int64) (endpoint.PartFile, error) {
	if !utf8.ValidString(p) {
		e.wrote = append(e.wrote, p)
	}
	return e.tracingEndpoint.OpenPart(ctx, p, offset)
}

func (e *utf8Only) MakeDir(ctx context.Context, p string) error {
	if !utf8.ValidString(p) {
		e.wrote = append(e.wrote, p)
	}
	return e.tracingEndpoint.MakeDir(ctx, p)
}

// A name the endpoint cannot hold fails that file (or directory) with the
// reason before anything is written; the others arrive.
func TestNameTheEndpointCannotHoldFailsAlone(t *testing.T) {
	r := newRig(t)
	oddTree(t, r.root)
	ep := &utf8Only{tracingEndpoint: tracingEndpoint{Local: r.local, tr: r.tr}}
	m := r.manager(&fakeLog{}, ep)
	id := r.submit(t, m, Request{Sources: []string{"in/odd"}, Destination: "out/", Recursive: true})
	runOnce(context.Background(), m, 1, id)
	got, _ := r.state.Get(id)
	if got.State != StateFailed || !strings.Contains(got.Reason, "UTF-8 names only") {
		t.Fatalf("transfer %s (%q), want failed naming the endpoint's reason", got.State, got.Reason)
	}
	if len(ep.wrote) > 0 {
		t.Errorf("written under names the endpoint refused: %q", ep.wrote)
	}
	for _, f := range got.Files {
		want := StateCompleted
		if !utf8.ValidString(f.Source) {
			want = StateFailed
		}
		if f.State != want || want == StateFailed && !strings.Contains(f.Reason, "UTF-8 names only") {
			t.Errorf("file %q: %s (%s), want %s", f.Source, f.State, f.Reason, want)
		}
		if _, err := os.Lstat(f.Destination); (err == nil) != (want == StateCompleted) {
			t.Errorf("file %q %s, destination: %v", f.Source, f.State, err)
		}
	}
	for _, d := range got.Dirs {
		if utf8.ValidString(d.Destination) != (d.State == StateCompleted) {
			t.Errorf("directory %q: %s (%s)", d.Destination, d.State, d.Reason)
		}
	}
}

// Until every instance reads format 4, a request with names that are not
// UTF-8 is refused with the reason (earlier builds would take the escaped
// names for names), and a tree's directories are left out, as earlier
// builds did.
func TestFormat4NotAgreed(t *testing.T) {
	r := newRig(t)
	oddTree(t, r.root)
	log := &fakeLog{formats: 3}
	m := r.manager(log, &tracingEndpoint{Local: r.local, tr: r.tr})
	lease := ha.Lease{Epoch: 1}
	m.mu.Lock()
	m.lease = &lease
	m.mu.Unlock()
	_, err := m.Submit(context.Background(), "", Request{Sources: []string{"in/odd"}, Destination: "out/", Recursive: true})
	var re *RequestError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "not UTF-8") || !strings.Contains(re.Reason, "format 4") {
		t.Fatalf("odd names before format 4 is agreed: %v, want a refusal that says why", err)
	}
	if err := os.MkdirAll(filepath.Join(r.root, "in", "plain", "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.root, "in", "plain", "f"), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	tr, err := m.Submit(context.Background(), "", Request{Sources: []string{"in/plain"}, Destination: "out/", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Dirs) != 0 || len(tr.Files) != 1 || !slices.Equal(log.kinds, []string{KindCreateV2}) {
		t.Fatalf("created with %v: %d directories, %d files; want %s without directories", log.kinds, len(tr.Dirs), len(tr.Files), KindCreateV2)
	}
}
