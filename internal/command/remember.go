package command

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A command remembers which instance of an agent answered it, so that the
// next command asks that one first (client.WithPreferred): with TLS, every
// command whose first listed instance is a standby would otherwise pay a
// second handshake for the 421 pointer to the active. The address is kept
// in the user's cache directory ($XDG_CACHE_HOME, else ~/.cache), in
// ftagent/active-<key>, one file per agent and address list; deleting it
// is harmless, and an unwritable cache directory only loses the shortcut.

// rememberFile is the file that remembers the answering instance of the
// agent reached through addrs; "" when there is no cache directory.
func rememberFile(agent string, addrs []string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(agent + "\n" + strings.Join(addrs, ",")))
	return filepath.Join(dir, "ftagent", "active-"+hex.EncodeToString(sum[:8]))
}

// remembered is the address remembered in file, if it is one of addrs.
func remembered(file string, addrs []string) string {
	if file == "" {
		return ""
	}
	b, err := os.ReadFile(file)
	if err != nil || len(b) > 512 {
		return ""
	}
	a := strings.TrimSpace(string(b))
	if !slices.Contains(addrs, a) {
		return ""
	}
	return a
}

// remember writes address to file (atomically; errors are ignored: the
// file is a shortcut, not state).
func remember(file, address string) {
	if file == "" {
		return
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".active-*")
	if err != nil {
		return
	}
	_, werr := tmp.WriteString(address + "\n")
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), file) != nil {
		os.Remove(tmp.Name())
	}
}
