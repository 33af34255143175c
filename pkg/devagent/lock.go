package devagent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockName is the file in a dev directory that the running `ftagent dev`
// holds an exclusive lock on (flock), with its PID inside.
const lockName = "dev.lock"

// ErrInUse is a dev directory that another `ftagent dev` runs.
var ErrInUse = errors.New("in use")

// lockDir takes the dev directory for this process, or fails at once with
// an error naming the PID of the `ftagent dev` that has it. The lock lasts
// until the returned file is closed, or the process ends (a crash included:
// the kernel drops it).
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another ftagent dev"
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				who = fmt.Sprintf("ftagent dev PID %d", pid)
			}
			return nil, fmt.Errorf("%s is %w by %s", dir, ErrInUse, who)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
