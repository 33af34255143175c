// Package sandbox is the one place where ftagent turns user-supplied paths
// into absolute file-system paths and decides whether they may be used.
//
// A Sandbox has a root (the transferRoot property), against which relative
// paths are resolved, and a list of entries (the sandboxRoot property): plain
// entries allow a directory tree, entries starting with "!" deny a directory
// tree inside an allowed one. A path is accepted only if, after lexical
// cleaning and after resolving every symbolic link in it, it lies under an
// allowed entry and under no denied entry. Paths that do not exist yet (a
// destination) are resolved as far as they exist, and the rest is appended.
//
// A Sandbox is immutable after New and safe for concurrent use.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// maxLinks bounds how many symbolic links one resolution may follow, so
// that a link loop ends with an error instead of running forever.
const maxLinks = 255

var errTooManyLinks = errors.New("too many levels of symbolic links")

// Error is a refusal: Path is what the user gave, Reason says why in words.
type Error struct {
	Path   string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("path %q: %s", e.Path, e.Reason)
}

// entry is one sandboxRoot entry.
type entry struct {
	lexical  string // absolute, cleaned, relative entries joined to the root
	resolved string // lexical with symbolic links resolved (as far as it exists)
	complete bool   // resolved was computed with every element existing
}

// Sandbox resolves and checks paths against a root and allow/deny entries.
type Sandbox struct {
	root  string // resolved root
	allow []entry
	deny  []entry
	// area names, in refusals, what paths must lie in as the user
	// configured it: "transferRoot", or "the sandboxRoot entries".
	area string
}

// New builds a sandbox. root is transferRoot (absolute, must exist and be a
// directory); allow lists sandboxRoot entries (absolute, or relative to
// root; an entry starting with "!" denies that directory and everything
// under it). If allow has no plain (non-"!") entry, root is the one allowed
// entry. Plain entries must exist and be directories; "!" entries need not
// exist (what does not exist yet is denied when it appears). Errors name the
// bad entry.
func New(root string, allow []string) (*Sandbox, error) {
	if root == "" {
		return nil, errors.New("transferRoot is empty")
	}
	if strings.IndexByte(root, 0) >= 0 {
		return nil, fmt.Errorf("transferRoot %q contains a NUL byte", root)
	}
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("transferRoot %q is not an absolute path", root)
	}
	r, err := filepath.EvalSymlinks(filepath.Clean(root))
	if err != nil {
		return nil, fmt.Errorf("transferRoot %q: %w", root, err)
	}
	fi, err := os.Stat(r)
	if err != nil {
		return nil, fmt.Errorf("transferRoot %q: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("transferRoot %q is not a directory", root)
	}
	s := &Sandbox{root: r}

	for _, a := range allow {
		raw, deny := a, false
		if strings.HasPrefix(a, "!") {
			raw, deny = a[1:], true
		}
		if raw == "" {
			return nil, fmt.Errorf("sandboxRoot entry %q is empty", a)
		}
		if strings.IndexByte(raw, 0) >= 0 {
			return nil, fmt.Errorf("sandboxRoot entry %q contains a NUL byte", a)
		}
		lex := s.abs(raw)
		res, complete, err := resolve(lex)
		if err != nil {
			return nil, fmt.Errorf("sandboxRoot entry %q: %w", a, err)
		}
		e := entry{lexical: lex, resolved: res, complete: complete}
		if deny {
			s.deny = append(s.deny, e)
			continue
		}
		if !complete {
			return nil, fmt.Errorf("sandboxRoot entry %q: %s does not exist", a, lex)
		}
		fi, err := os.Stat(res)
		if err != nil {
			return nil, fmt.Errorf("sandboxRoot entry %q: %w", a, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("sandboxRoot entry %q: %s is not a directory", a, res)
		}
		s.allow = append(s.allow, e)
	}
	s.area = "the sandboxRoot entries"
	if len(s.allow) == 0 {
		s.allow = []entry{{lexical: r, resolved: r, complete: true}}
		s.area = "transferRoot"
	}
	return s, nil
}

// Roots returns the directories paths are allowed beneath, cleaned and
// with symbolic links resolved: the transfer root, or the plain
// sandboxRoot entries. An endpoint resolves each path beneath one of them
// again when it uses it (endpoint.Local).
func (s *Sandbox) Roots() []string {
	roots := make([]string, len(s.allow))
	for i, e := range s.allow {
		roots[i] = e.resolved
	}
	return roots
}

// Root returns the transfer root, cleaned and with symbolic links resolved.
func (s *Sandbox) Root() string { return s.root }

// abs joins a relative path to the root and cleans the result.
func (s *Sandbox) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(s.root, p)
}

// validate refuses paths that can never be right.
func validate(p string) *Error {
	if p == "" {
		return &Error{Path: p, Reason: "is empty"}
	}
	if strings.IndexByte(p, 0) >= 0 {
		return &Error{Path: p, Reason: "contains a NUL byte"}
	}
	return nil
}

// Resolve turns a user path into an absolute, cleaned path inside the
// sandbox, with every symbolic link in it resolved. Relative paths are
// joined to the root. The path need not exist: the longest existing part is
// resolved and the rest appended, so a destination can be checked before it
// is created. A refusal is an *Error.
func (s *Sandbox) Resolve(p string) (string, error) {
	if err := validate(p); err != nil {
		return "", err
	}
	r, _, err := s.resolveAs(p, s.abs(p))
	if err != nil {
		return "", err
	}
	return r, nil
}

// resolveAs resolves the absolute cleaned path lex and admits it; errors
// name user. It reports whether every element of the path exists.
func (s *Sandbox) resolveAs(user, lex string) (string, bool, error) {
	r, complete, err := resolve(lex)
	if err != nil {
		return "", false, &Error{Path: user, Reason: "cannot be resolved: " + err.Error()}
	}
	if err := s.admit(user, lex, r); err != nil {
		return "", false, err
	}
	return r, complete, nil
}

// admit checks a path: lex is its cleaned form before resolving links, r
// its resolved form. r decides; lex is checked against denied entries too
// (naming a denied directory is refused even through another name) and
// chooses the wording of a refusal.
func (s *Sandbox) admit(user, lex, r string) *Error {
	for _, d := range s.deny {
		dr := d.resolved
		if !d.complete {
			// The denied directory did not (fully) exist at New; it
			// may exist now, possibly as a link.
			if x, _, err := resolve(d.lexical); err == nil {
				dr = x
			}
		}
		if under(lex, d.lexical) || under(r, d.lexical) || under(r, dr) {
			return &Error{Path: user, Reason: "is denied by sandboxRoot entry !" + d.lexical}
		}
	}
	for _, a := range s.allow {
		if under(r, a.resolved) {
			return nil
		}
	}
	for _, a := range s.allow {
		if under(lex, a.lexical) || under(lex, a.resolved) {
			return &Error{Path: user, Reason: "symbolic link leads outside " + s.area + " (" + r + ")"}
		}
	}
	return &Error{Path: user, Reason: "resolves outside " + s.area + " (" + r + ")"}
}

// under reports whether p is dir or lies below it. Both are absolute and
// clean; "/tmp/rootx" is not under "/tmp/root".
func under(p, dir string) bool {
	if p == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(p, dir)
}

// resolve returns the physical path of the absolute cleaned path p: every
// symbolic link along it is replaced by its target, element by element, as
// the kernel would. Once an element does not exist, the remaining elements
// are appended as they are (nothing below a missing directory can be a
// link). A dangling link is followed to its (missing) target, so that
// creating a file through it is checked where it would really land.
// complete reports whether every element existed.
func resolve(p string) (resolved string, complete bool, err error) {
	vol := filepath.VolumeName(p)
	sep := string(filepath.Separator)
	top := vol + sep
	resolved = top
	rest := split(p[len(vol):])
	links := 0
	missing := 0 // how many trailing elements of resolved do not exist
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			// Only link targets bring ".." here; p itself is clean.
			resolved = filepath.Dir(resolved)
			if missing > 0 {
				missing--
			}
			continue
		}
		next := filepath.Join(resolved, c)
		if missing > 0 {
			resolved = next
			missing++
			continue
		}
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			resolved = next
			missing++
			continue
		}
		if err != nil {
			return "", false, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		links++
		if links > maxLinks {
			return "", false, fmt.Errorf("%s: %w", p, errTooManyLinks)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", false, err
		}
		if filepath.IsAbs(target) {
			tv := filepath.VolumeName(target)
			resolved = tv + sep
			target = target[len(tv):]
		}
		rest = append(split(target), rest...)
	}
	return resolved, missing == 0, nil
}

func split(p string) []string {
	return strings.Split(filepath.ToSlash(p), "/")
}

// File is one source file found by Expand.
type File struct {
	Path string // absolute resolved path of the file
	Rel  string // path relative to the source argument's base directory, '/'-separated
	Size int64
}

// hasMeta reports whether a path element contains filepath.Match wildcards.
func hasMeta(name string) bool {
	return strings.ContainsAny(name, `*?[`)
}

// Expand resolves one source argument into the regular files it names:
//
//   - a regular file: itself, Rel its base name (as the user named it, even
//     if it is a link);
//   - a directory: an error unless recursive, then every regular file under
//     it in sorted walk order, Rel the '/'-separated path under it;
//   - a last element with wildcards (filepath.Match syntax: * ? [..]; as
//     with filepath.Match, * also matches names starting with a dot): the
//     matching entries of its directory, Rel the matched name (plus the path
//     under it for a matched directory, which is expanded only with
//     recursive).
//
// Symbolic links met while expanding are resolved, and each target must lie
// inside the sandbox, else an *Error names the link. A directory inside the
// sandbox that is denied by a "!" entry is refused the same way rather than
// skipped, so that nothing is left out silently. Inside a walked directory,
// links to directories are not followed (their files are not listed): this
// keeps the walk finite and each file listed once. Only the argument itself,
// or a wildcard match, may be a link to a directory. Entries that are
// neither regular files nor directories (sockets, devices, fifos) are
// skipped inside a directory and refused when named. An empty directory
// yields no files and no error.
func (s *Sandbox) Expand(p string, recursive bool) ([]File, error) {
	return s.ExpandWithin(Bounds{}, p, recursive)
}

// Bounds bound an expansion: Ctx (nil: none) stops a walk whose request
// has gone away, and MaxFiles ends it, with an error wrapping
// ErrTooManyFiles, once it has found more files than that (0: no limit;
// negative: not one file).
type Bounds struct {
	Ctx      context.Context
	MaxFiles int
}

// ErrTooManyFiles: an expansion found more files than its Bounds allow.
var ErrTooManyFiles = errors.New("too many files")

// expansion hands an expansion's files to emit within its bounds.
type expansion struct {
	Bounds
	emit func(File) error
	n    int // files emitted
}

func (x *expansion) add(f File) error {
	if x.MaxFiles != 0 && x.n >= x.MaxFiles {
		return fmt.Errorf("more than %d files: %w", max(x.MaxFiles, 0), ErrTooManyFiles)
	}
	x.n++
	return x.emit(f)
}

func (x *expansion) err() error {
	if x.Ctx == nil {
		return nil
	}
	return x.Ctx.Err()
}

// ExpandWithin is Expand within bounds.
func (s *Sandbox) ExpandWithin(b Bounds, p string, recursive bool) ([]File, error) {
	files := []File{}
	err := s.WalkWithin(b, p, recursive, func(f File) error {
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// WalkWithin is ExpandWithin that hands each file to emit as it is found,
// in the same order, instead of collecting them: a source of a million
// files need not be held in memory at once. The checks, the errors and
// the bounds are ExpandWithin's (MaxFiles counts the files emitted); an
// error from emit ends the walk and is returned as it is.
func (s *Sandbox) WalkWithin(b Bounds, p string, recursive bool, emit func(File) error) error {
	if err := validate(p); err != nil {
		return err
	}
	x := &expansion{Bounds: b, emit: emit}
	lex := s.abs(p)
	base := filepath.Base(lex)
	if hasMeta(base) {
		return s.expandGlob(x, p, lex, base, recursive)
	}
	r, complete, err := s.resolveAs(p, lex)
	if err != nil {
		return err
	}
	if !complete {
		return &Error{Path: p, Reason: "does not exist (" + r + ")"}
	}
	fi, err := os.Stat(r)
	if err != nil {
		return &Error{Path: p, Reason: "cannot be read: " + err.Error()}
	}
	switch {
	case fi.Mode().IsRegular():
		return x.add(File{Path: r, Rel: base, Size: fi.Size()})
	case fi.IsDir():
		if !recursive {
			return &Error{Path: p, Reason: "is a directory (recursive not set)"}
		}
		return s.walk(x, p, r, "")
	default:
		return &Error{Path: p, Reason: "is not a regular file or a directory"}
	}
}

// expandGlob expands a source whose last element, pattern, has wildcards.
func (s *Sandbox) expandGlob(x *expansion, p, lex, pattern string, recursive bool) error {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return &Error{Path: p, Reason: fmt.Sprintf("has a malformed wildcard pattern %q", pattern)}
	}
	dir, complete, err := s.resolveAs(p, filepath.Dir(lex))
	if err != nil {
		return err
	}
	if !complete {
		return &Error{Path: p, Reason: "matches no file (directory " + dir + " does not exist)"}
	}
	names, err := readNames(dir)
	if err != nil {
		return &Error{Path: p, Reason: "cannot be read: " + err.Error()}
	}
	userDir := filepath.Dir(p)
	matched, dirs := 0, 0
	for _, name := range names {
		if ok, _ := filepath.Match(pattern, name); !ok {
			continue
		}
		matched++
		isDir, err := s.entry(x, userDir, filepath.Join(dir, name), name, recursive, true)
		if err != nil {
			return err
		}
		if isDir {
			dirs++
		}
	}
	switch {
	case matched == 0:
		return &Error{Path: p, Reason: "matches no file"}
	case dirs == matched && !recursive:
		return &Error{Path: p, Reason: "matches no file, only directories (recursive not set)"}
	}
	return nil
}

// walk emits the regular files under the physical directory dir (inside
// the sandbox), in sorted order; rel is dir's Rel, and userBase joined
// with a Rel names an entry in errors as the user would.
func (s *Sandbox) walk(x *expansion, userBase, dir, rel string) error {
	if err := x.err(); err != nil {
		return err
	}
	names, err := readNames(dir)
	if err != nil {
		return &Error{Path: userJoin(userBase, rel), Reason: "cannot be read: " + err.Error()}
	}
	for _, name := range names {
		if _, err := s.entry(x, userBase, filepath.Join(dir, name), path.Join(rel, name), true, false); err != nil {
			return err
		}
	}
	return nil
}

// readNames lists the names in the directory dir, sorted. Only the names,
// rather than os.ReadDir's entries: a directory of a million files costs
// a walk their names alone (about a third of the entries), and each entry
// is looked at (lstat) as it is reached, as its DirEntry.Info would have.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

func userJoin(user, rel string) string {
	if rel == "" {
		return user
	}
	return filepath.Join(user, filepath.FromSlash(rel))
}

// entry handles one directory entry at the physical path full, whose
// parent is inside the sandbox; rel is its Rel, userBase joined with rel
// its name for errors. Directories are walked when recursive (isDir reports
// them either way); links to directories only when followDirLinks.
func (s *Sandbox) entry(x *expansion, userBase, full, rel string, recursive, followDirLinks bool) (isDir bool, err error) {
	user := userJoin(userBase, rel)
	target := full
	fi, err := os.Lstat(full)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil // removed while we looked
		}
		return false, &Error{Path: user, Reason: "cannot be read: " + err.Error()}
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		r, complete, err := s.resolveAs(user, full)
		if err != nil {
			return false, err
		}
		if !complete {
			return false, &Error{Path: user, Reason: "is a dangling symbolic link (to " + r + ")"}
		}
		if fi, err = os.Stat(r); err != nil {
			return false, &Error{Path: user, Reason: "cannot be read: " + err.Error()}
		}
		if fi.IsDir() && !followDirLinks {
			// A link to a directory inside a walked tree is not
			// followed: its files are not part of the transfer. This
			// keeps walks finite (no link loops) and lists every file
			// once.
			return false, nil
		}
		target = r
	} else {
		if err := s.admit(user, full, full); err != nil {
			return false, err
		}
	}
	switch {
	case fi.Mode().IsRegular():
		if err := x.add(File{Path: target, Rel: rel, Size: fi.Size()}); err != nil {
			return false, err
		}
	case fi.IsDir():
		if recursive {
			return true, s.walk(x, userBase, target, rel)
		}
		return true, nil
	}
	return false, nil
}

// Resolver resolves many paths of one request, as Resolve does, but
// resolves each directory only once: a recursive transfer's destinations
// share few directories, and resolving each of them element by element
// cost one lstat per element per file. For each path it resolves (or
// takes from its cache) the directory, then looks at the last element
// alone: a link there, or anything unusual, takes the full Resolve. The
// result, and every refusal, is the one Resolve gives while the
// directories do not change during the request — as with Resolve, a path
// is checked at one moment. A Resolver is for one goroutine and one
// request.
type Resolver struct {
	s    *Sandbox
	dirs map[string]resolvedDir
}

type resolvedDir struct {
	path     string
	complete bool
	err      error
}

// NewResolver returns a Resolver over s.
func (s *Sandbox) NewResolver() *Resolver {
	return &Resolver{s: s, dirs: map[string]resolvedDir{}}
}

// Resolve is Sandbox.Resolve.
func (r *Resolver) Resolve(p string) (string, error) {
	if err := validate(p); err != nil {
		return "", err
	}
	lex := r.s.abs(p)
	dir, base := filepath.Dir(lex), filepath.Base(lex)
	if dir == lex || base == "." || base == ".." || base == string(filepath.Separator) {
		return r.s.Resolve(p)
	}
	d, ok := r.dirs[dir]
	if !ok {
		d.path, d.complete, d.err = resolve(dir)
		r.dirs[dir] = d
	}
	if d.err != nil {
		return r.s.Resolve(p) // its own error, worded as Resolve words it
	}
	full := filepath.Join(d.path, base)
	if d.complete {
		// Below a missing directory nothing can be a link; in an
		// existing one, the last element may be.
		fi, err := os.Lstat(full)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil, fi.Mode()&fs.ModeSymlink != 0:
			return r.s.Resolve(p)
		}
	}
	if err := r.s.admit(p, lex, full); err != nil {
		return "", err
	}
	return full, nil
}
