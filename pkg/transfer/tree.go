package transfer

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ftagent/ftagent/pkg/sandbox"
)

// treeDirs lists the directories a recursive request's source argument src
// names or holds, each with the destination directory it maps to, parents
// before children, in sorted order: the directory src names (or each one
// its wildcard matches) goes to dest joined with prefix (its name, or ""
// when src ends with "/", as for its files), and every directory below it
// to the same place below that. As sandbox.Expand lists their files,
// links to directories are followed only where src names them (itself or
// a wildcard match), not inside a walked tree, and special files are
// skipped. Each source and destination directory is checked by the
// sandbox: the tree was checked by Expand already, this checks what may
// have changed since.
//
// sandbox.Expand lists only files; the directories are listed here
// because an empty one holds no file to find it by.
func treeDirs(sb *sandbox.Sandbox, res *sandbox.Resolver, src, prefix, dest string) ([]Dir, error) {
	var tops []string // physical source directories that src names
	var names []string
	if hasWildcard(src) {
		dir, err := sb.Resolve(filepath.Dir(src))
		if err != nil {
			return nil, err
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, &sandbox.Error{Path: src, Reason: "cannot be read: " + err.Error()}
		}
		pattern := filepath.Base(src)
		for _, e := range ents {
			if ok, _ := filepath.Match(pattern, e.Name()); !ok {
				continue
			}
			p, err := sb.Resolve(filepath.Join(filepath.Dir(src), e.Name()))
			if err != nil {
				return nil, err
			}
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				tops, names = append(tops, p), append(names, e.Name())
			}
		}
	} else {
		p, err := sb.Resolve(src)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			return nil, nil // a file: no directory
		}
		tops, names = append(tops, p), append(names, prefix)
	}
	var out []Dir
	for k, top := range tops {
		to := filepath.Join(dest, names[k])
		if err := walkDirs(sb, res, strings.TrimSuffix(src, "/"), top, to, &out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// walkDirs appends the directory dir (physical, inside the sandbox), going
// to to, then every directory below it.
func walkDirs(sb *sandbox.Sandbox, res *sandbox.Resolver, user, dir, to string, out *[]Dir) error {
	if _, err := sb.Resolve(dir); err != nil {
		return err
	}
	if _, err := res.Resolve(to); err != nil {
		return err
	}
	*out = append(*out, Dir{Source: dir, Destination: to})
	ents, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return &sandbox.Error{Path: user, Reason: "cannot be read: " + err.Error()}
	}
	for _, e := range ents {
		if e.Type()&fs.ModeType != fs.ModeDir {
			continue // files are Expand's; links and special files are skipped
		}
		if err := walkDirs(sb, res, filepath.Join(user, e.Name()), filepath.Join(dir, e.Name()), filepath.Join(to, e.Name()), out); err != nil {
			return err
		}
	}
	return nil
}
