package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/test/harness"
)

// sample is one timed run.
type sample struct {
	wall time.Duration // the command, as its caller sees it
	// ftagent only:
	server    time.Duration // the transfer's created → ended, on the active's clock
	rssBefore int64         // the active's VmRSS just before
	rssPeak   int64         // max(VmHWM after, VmRSS polled during); VmHWM reset before
	entries   uint64        // raft entries the transfer added (the active's lastApplied)
	cpu       map[string]time.Duration
	reported  int64         // KiB of free guest memory reported to the host during the run
	clientCPU time.Duration // the command's own CPU time (for ftagent: the client's)
}

// series is the samples of one row of a table.
type series struct {
	label   string
	command string // as run, in transferRoot
	samples []sample
}

func (s *series) walls() []time.Duration {
	var out []time.Duration
	for _, x := range s.samples {
		out = append(out, x.wall)
	}
	return out
}

func (s *series) servers() []time.Duration {
	var out []time.Duration
	for _, x := range s.samples {
		out = append(out, x.server)
	}
	return out
}

type results struct {
	big, bigCold, mid map[string]*series // keyed by tool
	small             map[string]*series
	few               *series // ftagent, -files-small files
	explain           explained
	elapsed           time.Duration
}

// A tool copies src to dst (paths relative to transferRoot).
type tool struct {
	key     string
	label   string
	argv    func(e *env, src, dst string) []string
	display func(src, dst string) string
	ftagent bool
}

var (
	toolCp = tool{key: "cp", label: "`cp`",
		argv:    func(_ *env, s, d string) []string { return []string{"cp", s, d} },
		display: func(s, d string) string { return "cp " + s + " " + d }}
	toolCpSync = tool{key: "cp+sync", label: "`cp` + `sync FILE`",
		argv: func(_ *env, s, d string) []string {
			return []string{"sh", "-c", `cp "$1" "$2" && sync "$2"`, "sh", s, d}
		},
		display: func(s, d string) string { return "cp " + s + " " + d + " && sync " + d }}
	toolFt = tool{key: "ftagent", label: "ftagent", ftagent: true,
		argv: func(e *env, s, d string) []string {
			return []string{e.bin.Ftagent, "transfer", "create", "--config", e.c.Props, "--wait", "--json", s, d}
		},
		display: func(s, d string) string {
			return "ftagent transfer create --config agent.properties --wait --json " + s + " " + d
		}}
	toolRsync = tool{key: "rsync", label: "`rsync -r`",
		argv:    func(_ *env, s, d string) []string { return []string{"rsync", "-r", s, d} },
		display: func(s, d string) string { return "rsync -r " + s + " " + d }}
	toolRsyncSync = tool{key: "rsync+sync", label: "`rsync -r` + `sync`",
		argv: func(_ *env, s, d string) []string {
			return []string{"sh", "-c", `rsync -r "$1" "$2" && sync`, "sh", s, d}
		},
		display: func(s, d string) string { return "rsync -r " + s + " " + d + " && sync" }}
	toolRsyncFsync = tool{key: "rsync-fsync", label: "`rsync -r --fsync`",
		argv:    func(_ *env, s, d string) []string { return []string{"rsync", "-r", "--fsync", s, d} },
		display: func(s, d string) string { return "rsync -r --fsync " + s + " " + d }}
	toolFtR = tool{key: "ftagent", label: "ftagent", ftagent: true,
		argv: func(e *env, s, d string) []string {
			return []string{e.bin.Ftagent, "transfer", "create", "--config", e.c.Props, "--recursive", "--wait", "--json", s, d}
		},
		display: func(s, d string) string {
			return "ftagent transfer create --config agent.properties --recursive --wait --json " + s + " " + d
		}}
)

// measureLarge runs cp, cp+sync and ftagent on the large files, interleaved
// (the order rotates each repetition), warm and cold.
func measureLarge(e *env, res *results) error {
	tools := []tool{toolCp, toolCpSync, toolFt}
	res.big, res.mid, res.bigCold = map[string]*series{}, map[string]*series{}, map[string]*series{}
	const slack = 256 << 20
	if err := warm(e); err != nil {
		return err
	}
	if err := rounds(e, harness.SizeText(e.big.size)+" warm", tools, *flagN, e.big, res.big, false, e.big.size+slack); err != nil {
		return err
	}
	if e.mid.size > 0 {
		if err := rounds(e, harness.SizeText(e.mid.size)+" warm", tools, *flagN, e.mid, res.mid, false, e.mid.size+slack); err != nil {
			return err
		}
	}
	if e.canDrop && *flagNCold > 0 {
		if err := rounds(e, harness.SizeText(e.big.size)+" cold", tools, *flagNCold, e.big, res.bigCold, true, 2*e.big.size+slack); err != nil {
			return err
		}
	}
	return nil
}

func rounds(e *env, what string, tools []tool, n int, src dataFile, into map[string]*series, cold bool, prefaultBytes int64) error {
	for i := range n {
		for k := range tools {
			t := tools[(i+k)%len(tools)]
			dst := fmt.Sprintf("out/%s-%d.bin", strings.ReplaceAll(t.key, "+", "-"), i+1)
			s, err := runOnce(e, t, src.rel, dst, cold, prefaultBytes)
			if err != nil {
				return fmt.Errorf("%s, %s, repetition %d: %w", what, t.key, i+1, err)
			}
			if err := checkFile(e, t, dst, src, i == 0); err != nil {
				return fmt.Errorf("%s, %s, repetition %d: %w", what, t.key, i+1, err)
			}
			if err := cleanup(e, dst); err != nil {
				return err
			}
			add(into, t, src.rel, dst, s)
			progress("%-16s %2d/%d %-8s %s%s", what, i+1, n, t.key, secs(s.wall), ftDetail(t, s, src.size))
		}
	}
	return nil
}

func ftDetail(t tool, s sample, size int64) string {
	if !t.ftagent {
		return fmt.Sprintf("  (%.0f MiB/s; CPU %s)", float64(size)/(1<<20)/s.wall.Seconds(), secs(s.clientCPU))
	}
	return fmt.Sprintf("  (%.0f MiB/s; server %s; peak RSS %s; %d raft entries)", float64(size)/(1<<20)/s.wall.Seconds(), secs(s.server), mib(s.rssPeak), s.entries)
}

func add(into map[string]*series, t tool, src, dst string, s sample) {
	sr := into[t.key]
	if sr == nil {
		// The command shown is the first repetition's.
		sr = &series{label: t.label, command: t.display(src, dst)}
		into[t.key] = sr
	}
	sr.samples = append(sr.samples, s)
}

// checkFile checks a copied large file: its size always, its bytes
// (independent SHA-256) on the first repetition; ftagent's reported digest
// was checked by runOnce.
func checkFile(e *env, t tool, dst string, src dataFile, full bool) error {
	path := filepath.Join(e.dir, dst)
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() != src.size {
		return fmt.Errorf("%s has %d bytes, want %d", dst, fi.Size(), src.size)
	}
	if _, err := os.Stat(path + ".part"); err == nil {
		return fmt.Errorf("%s.part left behind", dst)
	}
	if full {
		sum, err := harness.FileSHA256(path)
		if err != nil {
			return err
		}
		if sum != src.sha256 {
			return fmt.Errorf("%s: SHA-256 %s, want %s", dst, sum, src.sha256)
		}
	}
	return nil
}

// cleanup removes a run's output and syncs, so that its writeback does not
// weigh on the next run.
func cleanup(e *env, dst string) error {
	if err := os.RemoveAll(filepath.Join(e.dir, dst)); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// runOnce times one command; for ftagent it also records the active's
// memory, raft entries and the instances' CPU.
func runOnce(e *env, t tool, src, dst string, cold bool, prefaultBytes int64) (sample, error) {
	var s sample
	if cold {
		if err := dropCaches(); err != nil {
			return s, err
		}
	}
	if *flagPrefault {
		prefault(prefaultBytes)
	}
	var (
		w        *harness.RSSWatch
		applied0 uint64
		cpu0     map[string]time.Duration
		err      error
	)
	if t.ftagent {
		if e.canReset {
			_ = harness.ResetHWM(e.activePID)
		}
		s.rssBefore, _ = harness.RSS(e.activePID)
		if applied0, err = lastApplied(e.c, e.active); err != nil {
			return s, err
		}
		cpu0 = cpuAll(e.c)
		w = harness.WatchRSS(e.activePID, *flagPoll)
	}
	rep0 := reportedKiB()
	ctx, cancel := context.WithTimeout(context.Background(), *flagTimeout)
	defer cancel()
	t0 := time.Now()
	out, cpu, err := runCommand(ctx, e.dir, t.argv(e, src, dst))
	s.clientCPU = cpu
	s.wall = time.Since(t0)
	s.reported = reportedKiB() - rep0
	e.reported += s.reported
	e.reportedN++
	if err != nil {
		if w != nil {
			w.Stop()
		}
		return s, fmt.Errorf("%w%s", err, logTails(e.c))
	}
	if !t.ftagent {
		return s, nil
	}
	polled := w.Stop()
	hwm, _ := harness.ProcStatus(e.activePID, "VmHWM:")
	s.rssPeak = max(polled, hwm)
	applied1, err := lastApplied(e.c, e.active)
	if err != nil {
		return s, err
	}
	s.entries = applied1 - applied0
	s.cpu = cpuAll(e.c)
	for n, d := range cpu0 {
		s.cpu[n] -= d
	}
	var v transfer.View
	if err := json.Unmarshal(out, &v); err != nil {
		return s, fmt.Errorf("transfer create --json printed %q: %w", out, err)
	}
	if v.State != transfer.StateCompleted {
		return s, fmt.Errorf("transfer %s %s: %s", v.ID, v.State, v.Reason)
	}
	if v.Ended == nil {
		return s, fmt.Errorf("transfer %s completed without an end time", v.ID)
	}
	s.server = v.Ended.Sub(v.Created)
	return s, checkView(e, v)
}

// checkView checks the digests ftagent reports against the sources'.
func checkView(e *env, v transfer.View) error {
	for _, f := range v.Files {
		var want string
		switch {
		case f.Source == e.big.rel:
			want = e.big.sha256
		case f.Source == e.mid.rel:
			want = e.mid.sha256
		case strings.HasPrefix(f.Source, e.small.rel+"/"):
			want = e.small.sums[filepath.Base(f.Source)]
		case e.few.rel != "" && strings.HasPrefix(f.Source, e.few.rel+"/"):
			want = e.few.sums[filepath.Base(f.Source)]
		}
		if f.State != transfer.StateCompleted || f.SHA256 != want {
			return fmt.Errorf("file %s: %s, SHA-256 %q, want %q", f.Source, f.State, f.SHA256, want)
		}
	}
	return nil
}

// measureSmall runs the many-files transfer through ftagent and rsync,
// interleaved, then the smaller transfer through ftagent. Every run writes
// to a directory of its own; they are all kept until the end.
func measureSmall(e *env, res *results) error {
	res.small = map[string]*series{}
	src := e.small.rel + "/"
	// The cold runs dropped the caches.
	if err := warm(e); err != nil {
		return err
	}
	const prefaultBytes = 512 << 20
	reps := map[string]int{"rsync": *flagNRsync, "rsync+sync": *flagNRsync, "rsync-fsync": *flagNRsync, "ftagent": *flagNSmall}
	tools := []tool{toolRsync, toolRsyncSync, toolRsyncFsync, toolFtR}
	for i := range max(*flagNRsync, *flagNSmall) {
		for _, t := range tools {
			if i >= reps[t.key] {
				continue
			}
			dst := fmt.Sprintf("out/%s-%d/", strings.ReplaceAll(t.key, "+", "-"), i+1)
			s, err := runOnce(e, t, src, dst, false, prefaultBytes)
			if err != nil {
				return fmt.Errorf("%d files, %s, repetition %d: %w", e.small.files, t.key, i+1, err)
			}
			if err := checkDir(filepath.Join(e.dir, dst), e.small); err != nil {
				return fmt.Errorf("%d files, %s, repetition %d: %w", e.small.files, t.key, i+1, err)
			}
			// Kept, not deleted: ext4 will not reuse an inode for some
			// seconds after its file was deleted, and creating 10,000 files
			// right after deleting 10,000 scans past them (recently_deleted
			// in the kernel), which made the next run several seconds
			// slower, whichever the tool.
			syscall.Sync()
			add(res.small, t, src, dst, s)
			detail := ""
			if t.ftagent {
				detail = fmt.Sprintf("; server %s; %d raft entries; CPU %s, client %s; peak RSS %s", secs(s.server), s.entries, cpuText(e, s.cpu), secs(s.clientCPU), mib(s.rssPeak))
			}
			progress("%d files %2d/%d %-12s %s  (%.0f files/s%s)", e.small.files, i+1, reps[t.key], t.key, secs(s.wall),
				float64(e.small.files)/s.wall.Seconds(), detail)
		}
	}
	if e.few.files == 0 {
		return nil
	}
	m := map[string]*series{}
	for i := range *flagNSmall {
		dst := fmt.Sprintf("out/ftagent-few-%d/", i+1)
		s, err := runOnce(e, toolFtR, e.few.rel+"/", dst, false, prefaultBytes)
		if err != nil {
			return fmt.Errorf("%d files, ftagent, repetition %d: %w", e.few.files, i+1, err)
		}
		if err := checkDir(filepath.Join(e.dir, dst), e.few); err != nil {
			return err
		}
		syscall.Sync() // kept, as above
		add(m, toolFtR, e.few.rel+"/", dst, s)
		progress("%d files %2d/%d ftagent %s  (%.0f files/s; server %s; %d raft entries; CPU %s)", e.few.files, i+1, *flagNSmall,
			secs(s.wall), float64(e.few.files)/s.wall.Seconds(), secs(s.server), s.entries, cpuText(e, s.cpu))
	}
	res.few = m["ftagent"]
	return nil
}

func cpuAll(c *harness.Cluster) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, n := range c.Names {
		if d, err := harness.CPUTime(c.Proc(n).Cmd.Process.Pid); err == nil {
			out[n] = d
		}
	}
	return out
}

func cpuText(e *env, cpu map[string]time.Duration) string {
	var parts []string
	for _, n := range e.c.Names {
		role := "standby"
		if n == e.active {
			role = "active"
		}
		parts = append(parts, fmt.Sprintf("%s %s %s", n, role, secs(cpu[n])))
	}
	return strings.Join(parts, ", ")
}

// prefault touches n bytes of fresh anonymous memory (in huge pages) and
// frees it. On a virtual machine that hands free guest memory back to its
// host (virtio balloon free page reporting), the first touch of such a page
// costs a fault in the host, and writing a new 1 GiB file into the page
// cache then takes anywhere from 0.3 s to 2 s; the page cache a copy fills
// comes instead, for every tool alike, from the pages just freed here. See
// the caveats in docs/performance.md.
func prefault(n int64) {
	if n <= 0 {
		return
	}
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return
	}
	// Huge pages: freed, they go back as blocks of the order the page
	// cache's large folios are taken from.
	_ = syscall.Madvise(b, madvHugepage)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	_ = syscall.Munmap(b)
}

const madvHugepage = 14 // MADV_HUGEPAGE

// reportedKiB is how much free memory the guest has reported to the host
// (free page reporting), where the kernel exposes it; 0 otherwise.
func reportedKiB() int64 {
	b, err := os.ReadFile("/sys/module/page_reporting/parameters/reported_kib")
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// httpc talks to the instances directly.
var httpc = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute},
}
