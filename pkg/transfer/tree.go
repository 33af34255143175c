package transfer

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/ftagent/ftagent/pkg/sandbox"
)

// treeDirs hands to emit the directories a recursive request's source
// argument src names or holds, each with the destination directory it maps
// to, parents before children, in sorted order: the directory src names
// (or each one its wildcard matches) goes to dest joined with prefix (its
// name, or "" when src ends with "/", as for its files), and every
// directory below it to the same place below that. As sandbox.Expand
// lists their files, links to directories are followed only where src
// names them (itself or a wildcard match), not inside a walked tree, and
// special files are skipped. Each source and destination directory is
// checked by the sandbox.
//
// sandbox.Expand lists only files; the directories are listed here
// because an empty one holds no file to find it by. They are listed
// before the files (plan), so a source that Expand would refuse is left to
// it where that is the first thing wrong (a source that does not exist, a
// wildcard's directory that cannot be read), and a directory of the tree
// is named in a refusal as Expand names it: the user is told what he was
// told when the files were listed first.
func treeDirs(sb *sandbox.Sandbox, res *sandbox.Resolver, src, prefix, dest string, emit func(Dir) error) error {
	if hasWildcard(src) {
		dir, err := sb.Resolve(filepath.Dir(src))
		if err != nil {
			return err
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil // Expand says why
		}
		pattern := filepath.Base(src)
		for _, e := range ents {
			if ok, _ := filepath.Match(pattern, e.Name()); !ok {
				continue
			}
			user := filepath.Join(filepath.Dir(src), e.Name())
			p, err := sb.Resolve(user)
			if err != nil {
				return err
			}
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				if err := walkDirs(sb, res, user, p, filepath.Join(dest, e.Name()), emit); err != nil {
					return err
				}
			}
		}
		return nil
	}
	p, err := sb.Resolve(src)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil || !fi.IsDir() {
		return nil // a file, or nothing Expand will accept: no directory
	}
	return walkDirs(sb, res, src, p, filepath.Join(dest, prefix), emit)
}

// walkDirs emits the directory dir (physical, inside the sandbox), going
// to to, then every directory below it; user names dir as the user would.
func walkDirs(sb *sandbox.Sandbox, res *sandbox.Resolver, user, dir, to string, emit func(Dir) error) error {
	if _, err := sb.Resolve(dir); err != nil {
		var se *sandbox.Error
		if errors.As(err, &se) {
			return &sandbox.Error{Path: user, Reason: se.Reason}
		}
		return err
	}
	if res != nil { // nil: another agent's directory, resolved there
		if _, err := res.Resolve(to); err != nil {
			return err
		}
	}
	if err := emit(Dir{Source: dir, Destination: to}); err != nil {
		return err
	}
	names, err := subdirs(dir)
	if err != nil {
		return &sandbox.Error{Path: user, Reason: "cannot be read: " + err.Error()}
	}
	for _, name := range names {
		if err := walkDirs(sb, res, filepath.Join(user, name), filepath.Join(dir, name), filepath.Join(to, name), emit); err != nil {
			return err
		}
	}
	return nil
}

// subdirs lists the names of the directories in dir, sorted: files are
// Expand's, links and special files are skipped. It reads dir in batches,
// so that a directory of a million files is not held whole for its few
// directories.
func subdirs(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	for {
		ents, err := f.ReadDir(1024)
		for _, e := range ents {
			if e.Type()&fs.ModeType == fs.ModeDir {
				names = append(names, e.Name())
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(names)
	return names, nil
}
