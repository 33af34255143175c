package harness

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildCommit builds ftagent and ftstop as they were at commit of the git
// repository at repo, stamped with version, for tests that run an earlier
// release beside the current code (a rolling upgrade). The commit's tree is
// exported with `git archive` into dir/src, so the repository's worktree and
// its list of worktrees stay untouched, and built into dir/bin with the same
// Go toolchain and module cache as the current code.
func BuildCommit(repo, commit, dir, version string) (Binaries, error) {
	src := filepath.Join(dir, "src")
	if err := exportCommit(repo, commit, src); err != nil {
		return Binaries{}, err
	}
	out := filepath.Join(dir, "bin")
	b := Binaries{
		Ftagent: filepath.Join(out, "ftagent"),
		Ftstop:  filepath.Join(out, "ftstop"),
		Version: version,
	}
	// The exported tree is no repository: there is no VCS state to stamp,
	// whatever GOFLAGS says, and the version comes from -ldflags.
	ldflags := "-X github.com/ftagent/ftagent/pkg/version.Version=" + version
	cmd := exec.Command("go", "build", "-buildvcs=false", "-ldflags", ldflags, "-o", out+string(os.PathSeparator), "./cmd/ftagent", "./cmd/ftstop")
	cmd.Dir = src
	if o, err := cmd.CombinedOutput(); err != nil {
		return b, fmt.Errorf("go build at %s: %v\n%s", commit, err, o)
	}
	return b, nil
}

// exportCommit writes the tree of commit into dir.
func exportCommit(repo, commit, dir string) error {
	cmd := exec.Command("git", "-C", repo, "archive", "--format=tar", commit)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("git archive %s: %w", commit, err)
	}
	extractErr := extractTar(pipe, dir)
	_, _ = io.Copy(io.Discard, pipe)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git archive %s (is the commit in this clone? a shallow clone lacks it): %v: %s", commit, err, strings.TrimSpace(stderr.String()))
	}
	return extractErr
}

func extractTar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(os.PathSeparator)) {
			return fmt.Errorf("archive entry %q leaves %s", h.Name, dir)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o750); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		}
		// Other entries (the pax header with the commit id) carry nothing
		// the build needs.
	}
}
