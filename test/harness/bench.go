package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// What the benchmarks (bench/) share: a process's memory from /proc, and
// what their reports say of the machine and the commit measured.

// ProcStatus reads a "kB" field of /proc/<pid>/status ("VmRSS:",
// "VmHWM:"), in bytes.
func ProcStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no %s for pid %d", field, pid)
}

// ResetHWM resets a process's VmHWM to its current RSS (Linux 4.0 and
// later; it needs the right to write /proc/<pid>/clear_refs).
func ResetHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5\n"), 0o200)
}

// RSSWatch polls a process's VmRSS and keeps the largest value.
type RSSWatch struct {
	done chan struct{}
	wg   sync.WaitGroup
	max  int64
}

// WatchRSS polls pid's VmRSS every interval until Stop.
func WatchRSS(pid int, every time.Duration) *RSSWatch {
	w := &RSSWatch{done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if rss, err := ProcStatus(pid, "VmRSS:"); err == nil {
				w.max = max(w.max, rss)
			}
			select {
			case <-w.done:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// Stop ends the polls and returns the largest VmRSS seen.
func (w *RSSWatch) Stop() int64 {
	close(w.done)
	w.wg.Wait()
	return w.max
}

// Revision names the commit the binaries were built from, and says whether
// the product's files (not bench/ or docs/) had uncommitted changes.
func Revision(root string) string {
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	rev, err := git("log", "-1", "--format=%h %cs %s")
	if err != nil {
		return "commit unknown (not a git checkout)"
	}
	if len(rev) > 90 {
		rev = rev[:90] + "…"
	}
	dirty, _ := git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench", ":!docs")
	if dirty != "" {
		return "commit " + rev + ", **with uncommitted changes** to " + strings.Join(strings.Fields(strings.ReplaceAll(dirty, "M ", "")), " ")
	}
	return "commit " + rev
}

// LoadAvg is the 1, 5 and 15 minute load averages: other work on the
// machine would show there.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// MemTotal is the machine's memory, for a report.
func MemTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscan(rest, &kb); err != nil {
				return "?"
			}
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "?"
}

// Mount describes the file system holding path: device, type, options.
func Mount(path string) string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "?"
	}
	abs, _ := filepath.Abs(path)
	best, desc := "", "?"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		mp := f[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
			desc = fmt.Sprintf("%s on %s, %s (%s)", f[0], mp, f[2], f[3])
		}
	}
	return desc
}

// ParseSize reads a size in bytes, with an optional K, M or G suffix
// (powers of 1024).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	if s != "" {
		switch strings.ToUpper(s[len(s)-1:]) {
		case "K":
			mult = 1 << 10
		case "M":
			mult = 1 << 20
		case "G":
			mult = 1 << 30
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return n * mult, nil
}

// SizeText writes a size in bytes as a report shows it: 4 KiB, 1 GiB.
func SizeText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
