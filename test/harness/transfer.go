package harness

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
)

// Transfer runs `ftagent transfer SUB --config <props> ARGS...`.
func (c *Cluster) Transfer(ctx context.Context, sub string, args ...string) (Result, error) {
	return Run(ctx, c.Bin.Ftagent, append([]string{"transfer", sub, "--config", c.Props}, args...)...)
}

// CreateTransfer runs `ftagent transfer create --json ARGS...` and decodes
// the view it prints (with --wait, the final view). A refused request or a
// transfer that did not complete is no error here: it comes back as the
// Result's exit status and stderr, with the view printed if any.
func (c *Cluster) CreateTransfer(ctx context.Context, args ...string) (transfer.View, Result, error) {
	r, err := c.Transfer(ctx, "create", append([]string{"--json"}, args...)...)
	var v transfer.View
	if err != nil {
		return v, r, err
	}
	if strings.TrimSpace(r.Stdout) == "" && r.Exit != 0 {
		return v, r, nil
	}
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		return v, r, fmt.Errorf("transfer create --json printed %q (exit %d, stderr %q): %w", r.Stdout, r.Exit, r.Stderr, err)
	}
	return v, r, nil
}

// TransferView runs `ftagent transfer show --json ID`.
func (c *Cluster) TransferView(ctx context.Context, id string) (transfer.View, Result, error) {
	r, err := c.Transfer(ctx, "show", "--json", id)
	var v transfer.View
	if err != nil {
		return v, r, err
	}
	if r.Exit != 0 {
		return v, r, fmt.Errorf("transfer show %s: exit %d: %s", id, r.Exit, strings.TrimSpace(r.Stderr))
	}
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		return v, r, fmt.Errorf("transfer show --json printed %q: %w", r.Stdout, err)
	}
	return v, r, nil
}

// WaitTransfer polls `ftagent transfer show --json ID` until cond holds and
// returns that view; errors while it polls (a failover) are retried. On
// timeout it returns the last view and an error describing it.
func (c *Cluster) WaitTransfer(timeout time.Duration, id, what string, cond func(transfer.View) bool) (transfer.View, error) {
	deadline := time.Now().Add(timeout)
	var last transfer.View
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, _, err := c.TransferView(ctx, id)
		cancel()
		if err == nil {
			last = v
			if cond(v) {
				return v, nil
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("timed out after %v waiting for transfer %s: %s; last view %s; last error %v",
				timeout, id, what, ViewText(last), lastErr)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// ViewText is a transfer view in short form for messages: the whole view
// without its file list when that is long.
func ViewText(v transfer.View) string {
	if len(v.Files) > 4 {
		n := len(v.Files)
		v.Files = v.Files[:4]
		b, _ := json.Marshal(v)
		return fmt.Sprintf("%s (first 4 of %d files)", b, n)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// WriteRandomFile writes size pseudo-random bytes (from seed) to path,
// creating its directory.
func WriteRandomFile(path string, size int64, seed uint64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	if _, err := io.CopyN(f, rand.NewChaCha8(key), size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// FileSHA256 is the hex SHA-256 of a file's bytes.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TreeSHA256 maps the '/'-separated path of every regular file under root
// to its hex SHA-256.
func TreeSHA256(root string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		sum, err := FileSHA256(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = sum
		return nil
	})
	return out, err
}

// PartFiles lists the files named *.part under root (a missing root has
// none).
func PartFiles(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && os.IsNotExist(err) {
				return filepath.SkipAll
			}
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".part") {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
