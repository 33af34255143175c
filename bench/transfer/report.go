package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ftagent/ftagent/test/harness"
)

func report(w io.Writer, e *env, res *results, started time.Time) {
	fmt.Fprintf(w, "### Transfer benchmark results\n\n")
	fmt.Fprintf(w, "- date: %s\n", started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- machine: %d CPUs (nproc), %s, %s, Linux %s, %s RAM\n", runtime.NumCPU(), harness.CPUModel(), runtime.GOARCH, harness.Kernel(), harness.MemTotal())
	fmt.Fprintf(w, "- disk: %s\n", harness.Mount(e.dir))
	fmt.Fprintf(w, "- ftagent: %s\n", e.revision)
	fmt.Fprintf(w, "- load average (1, 5, 15 min) when the cluster was up: %s; at the end: %s\n", e.loadStart, harness.LoadAvg())
	fmt.Fprintf(w, "- %s; %s; %s\n", goVersion(), e.cpVer, e.rsyncVer)
	fmt.Fprintf(w, "- writing the %d source files of %s took %s (%.0f files/s; much slower right after many files were deleted on ext4, see the caveats)\n",
		e.small.files, harness.SizeText(e.small.size), secs(e.createProbe), float64(e.small.files)/e.createProbe.Seconds())
	fmt.Fprintf(w, "- command: `go run ./bench/transfer %s` (%v in all)\n", strings.Join(os.Args[1:], " "), res.elapsed.Round(time.Second))
	fmt.Fprintf(w, "- cluster: 3 instances on 127.0.0.1, default properties (checkpointInterval 64M, checkpointTimeInterval 5s, maxBandwidth unlimited, raft commit 50ms); transferRoot, the instances' data directories and every tool's source and destination on the same file system\n")
	fmt.Fprintf(w, "- each command is run from transferRoot and timed from its start to its exit; before each run the previous output is deleted and `sync` run")
	if *flagPrefault {
		fmt.Fprintf(w, "; %s", "then anonymous memory is touched and freed (-prefault, see the caveats)")
	}
	fmt.Fprintf(w, "; runs of the different commands alternate, in a rotating order\n")
	if e.canDrop {
		fmt.Fprintf(w, "- cold: `sync; echo 3 > /proc/sys/vm/drop_caches` before each cold run\n")
	} else {
		fmt.Fprintf(w, "- cold runs skipped: /proc/sys/vm/drop_caches could not be written (%s)\n", e.dropErr)
	}
	if e.reportedN > 0 && reportedKiB() > 0 {
		fmt.Fprintf(w, "- guest memory reported free to the host during the %d timed runs: %s in all\n", e.reportedN, mib(e.reported*1024))
	}
	fmt.Fprintln(w)

	order := []string{"cp", "cp+sync", "ftagent"}
	if len(res.big) > 0 {
		largeTable(w, fmt.Sprintf("One %s file, source in the page cache (warm)", harness.SizeText(e.big.size)), res.big, order, e.big.size)
	}
	if len(res.bigCold) > 0 {
		largeTable(w, fmt.Sprintf("One %s file after dropping the caches (cold)", harness.SizeText(e.big.size)), res.bigCold, order, e.big.size)
	}
	if len(res.mid) > 0 {
		largeTable(w, fmt.Sprintf("One %s file, warm", harness.SizeText(e.mid.size)), res.mid, order, e.mid.size)
	}
	if ft, cp := res.big["ftagent"], res.big["cp"]; ft != nil && cp != nil {
		ratio := median(cp.walls()).Seconds() / median(ft.walls()).Seconds()
		fmt.Fprintf(w, "Target ≥ 0.95× `cp`'s throughput (1 file, warm, client's view): %.2f× — %s (on the active: %.2f×).", ratio, verdict(ratio >= 0.95),
			median(cp.walls()).Seconds()/median(ft.servers()).Seconds())
		if cs := res.big["cp+sync"]; cs != nil {
			fmt.Fprintf(w, " Against `cp` + `sync FILE`: %.2f× (on the active: %.2f×).", median(cs.walls()).Seconds()/median(ft.walls()).Seconds(),
				median(cs.walls()).Seconds()/median(ft.servers()).Seconds())
		}
		fmt.Fprintf(w, "\n\n")
	}

	// Memory.
	fmt.Fprintf(w, "The active's memory (VmHWM reset through `/proc/<pid>/clear_refs` before each transfer%s; VmRSS also polled every %v), target ≤ 64 MiB, constant in file size:\n\n",
		map[bool]string{true: "", false: " — **not possible here: VmHWM is the peak since the process started**"}[e.canReset], *flagPoll)
	fmt.Fprintf(w, "| transfer | n | VmRSS before (median) | peak (median) | peak (max) |\n| --- | --: | --: | --: | --: |\n")
	var peakMax int64
	memRow := func(label string, s *series) {
		if s == nil {
			return
		}
		var before, peak []int64
		for _, x := range s.samples {
			before, peak = append(before, x.rssBefore), append(peak, x.rssPeak)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", label, len(peak), mib(medianInt(before)), mib(medianInt(peak)), mib(slices.Max(peak)))
		peakMax = max(peakMax, slices.Max(peak))
	}
	memRow(fmt.Sprintf("1 file of %s, warm", harness.SizeText(e.big.size)), res.big["ftagent"])
	if res.bigCold["ftagent"] != nil {
		memRow(fmt.Sprintf("1 file of %s, cold", harness.SizeText(e.big.size)), res.bigCold["ftagent"])
	}
	if res.mid["ftagent"] != nil {
		memRow(fmt.Sprintf("1 file of %s, warm", harness.SizeText(e.mid.size)), res.mid["ftagent"])
	}
	var largePeak int64 = peakMax
	memRow(fmt.Sprintf("%d files of %s", e.small.files, harness.SizeText(e.small.size)), res.small["ftagent"])
	if res.few != nil {
		memRow(fmt.Sprintf("%d files of %s", e.few.files, harness.SizeText(e.few.size)), res.few)
	}
	fmt.Fprintf(w, "\nRSS target ≤ 64 MiB while moving one large file: %s (max %s).\n\n", verdict(largePeak <= 64<<20), mib(largePeak))

	// Many files.
	fmt.Fprintf(w, "%d files of %s in one recursive transfer (warm):\n\n", e.small.files, harness.SizeText(e.small.size))
	fmt.Fprintf(w, "| command | n | min | median | max | files/s (median) | vs `rsync -r` |\n| --- | --: | --: | --: | --: | --: | --: |\n")
	rs := res.small["rsync"]
	smallRow := func(label string, ds []time.Duration, files int) {
		st := summarize(ds)
		vs := "—"
		if rs != nil {
			vs = fmt.Sprintf("%.3f×", median(rs.walls()).Seconds()/st.median.Seconds()*float64(files)/float64(e.small.files))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %.0f | %s |\n", label, st.n, secs(st.min), secs(st.median), secs(st.maxv), float64(files)/st.median.Seconds(), vs)
	}
	for _, k := range []string{"rsync", "rsync+sync", "rsync-fsync"} {
		if s := res.small[k]; s != nil {
			smallRow(fmt.Sprintf("%s: `%s`", s.label, s.command), s.walls(), e.small.files)
		}
	}
	if ft := res.small["ftagent"]; ft != nil {
		smallRow(fmt.Sprintf("ftagent, client: `%s`", ft.command), ft.walls(), e.small.files)
		smallRow("ftagent, on the active: created → ended", ft.servers(), e.small.files)
	}
	if res.few != nil {
		smallRow(fmt.Sprintf("ftagent, %d files: `%s`", e.few.files, res.few.command), res.few.walls(), e.few.files)
		smallRow(fmt.Sprintf("ftagent, %d files, on the active", e.few.files), res.few.servers(), e.few.files)
	}
	if ft, rs := res.small["ftagent"], res.small["rsync"]; ft != nil && rs != nil {
		ratio := median(rs.walls()).Seconds() / median(ft.walls()).Seconds()
		fmt.Fprintf(w, "\nTarget ≥ 1.0× `rsync -r`'s files per second: %.3f× — %s (on the active: %.3f×).\n\n", ratio, verdict(ratio >= 1),
			median(rs.walls()).Seconds()/median(ft.servers()).Seconds())
	}

	explainReport(w, e, res)

	fmt.Fprintf(w, "Raw times (s), in order:\n\n")
	raw := func(label string, ds []time.Duration) {
		var parts []string
		for _, d := range ds {
			parts = append(parts, fmt.Sprintf("%.3f", d.Seconds()))
		}
		fmt.Fprintf(w, "- %s: %s\n", label, strings.Join(parts, ", "))
	}
	for _, g := range []struct {
		name string
		m    map[string]*series
	}{{"warm " + harness.SizeText(e.big.size), res.big}, {"cold " + harness.SizeText(e.big.size), res.bigCold}, {"warm " + harness.SizeText(e.mid.size), res.mid}} {
		for _, k := range order {
			if s := g.m[k]; s != nil {
				raw(g.name+", "+k, s.walls())
				if k == "ftagent" {
					raw(g.name+", ftagent on the active", s.servers())
				}
			}
		}
	}
	for _, k := range []string{"rsync", "rsync+sync", "rsync-fsync", "ftagent"} {
		if s := res.small[k]; s != nil {
			raw(fmt.Sprintf("%d files, %s", e.small.files, k), s.walls())
		}
	}
	if res.few != nil {
		raw(fmt.Sprintf("%d files, ftagent", e.few.files), res.few.walls())
	}
	fmt.Fprintln(w)
}

func largeTable(w io.Writer, title string, m map[string]*series, order []string, size int64) {
	fmt.Fprintf(w, "%s:\n\n", title)
	fmt.Fprintf(w, "| command | n | min | median | max | MiB/s (median) | vs `cp` | vs `cp` + `sync` |\n| --- | --: | --: | --: | --: | --: | --: | --: |\n")
	cp, cs := m["cp"], m["cp+sync"]
	row := func(label string, ds []time.Duration) {
		st := summarize(ds)
		vs := func(s *series) string {
			if s == nil {
				return "—"
			}
			return fmt.Sprintf("%.2f×", median(s.walls()).Seconds()/st.median.Seconds())
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %.0f | %s | %s |\n", label, st.n, secs(st.min), secs(st.median), secs(st.maxv),
			float64(size)/(1<<20)/st.median.Seconds(), vs(cp), vs(cs))
	}
	for _, k := range order {
		s := m[k]
		if s == nil {
			continue
		}
		if k == "ftagent" {
			row(fmt.Sprintf("ftagent, client: `%s`", s.command), s.walls())
			row("ftagent, on the active: created → ended", s.servers())
			continue
		}
		row(fmt.Sprintf("%s: `%s`", s.label, s.command), s.walls())
	}
	fmt.Fprintln(w)
}

func explainReport(w io.Writer, e *env, res *results) {
	x := res.explain
	if len(x.phases) == 0 {
		return
	}
	fmt.Fprintf(w, "#### Where the time goes: measurements\n\n")
	fmt.Fprintf(w, "One %s file through the HTTP API (POST, then GET every %v; same machine clock), %d runs, medians:\n\n", harness.SizeText(e.big.size), phasePoll, len(x.phases))
	pick := func(f func(phaseRun) time.Duration) time.Duration {
		var ds []time.Duration
		for _, p := range x.phases {
			ds = append(ds, f(p))
		}
		return median(ds)
	}
	acc, first, copied, done, server := pick(func(p phaseRun) time.Duration { return p.accepted }),
		pick(func(p phaseRun) time.Duration { return p.firstByte }), pick(func(p phaseRun) time.Duration { return p.copied }),
		pick(func(p phaseRun) time.Duration { return p.done }), pick(func(p phaseRun) time.Duration { return p.server })
	fmt.Fprintf(w, "| phase | median |\n| --- | --: |\n")
	fmt.Fprintf(w, "| POST until the create entry committed (201) | %s |\n", ms(acc))
	fmt.Fprintf(w, "| until the first poll that saw bytes written | %s |\n", ms(first))
	fmt.Fprintf(w, "| until the first poll that saw every byte written (copy, hash, checkpoints) | %s |\n", ms(copied))
	fmt.Fprintf(w, "| until the first poll that saw it completed (last sync, lease check, rename, directory fsync, commit) | %s |\n", ms(done))
	fmt.Fprintf(w, "| on the active: created → ended | %s |\n\n", ms(server))

	if len(x.sha) > 0 {
		fmt.Fprintf(w, "In this process, the same %s file, warm, %d runs each (medians):\n\n", harness.SizeText(e.big.size), len(x.sha))
		fmt.Fprintf(w, "| what | median | MiB/s |\n| --- | --: | --: |\n")
		r := func(label string, d time.Duration) {
			fmt.Fprintf(w, "| %s | %s | %.0f |\n", label, secs(d), float64(e.big.size)/(1<<20)/d.Seconds())
		}
		r("SHA-256 alone (read from the page cache, 1 MiB reads)", median(x.sha))
		r(fmt.Sprintf("`copyloop.Copy` + fdatasync, %d checkpoints (fdatasync each; no raft)", x.loopCkCount), median(x.loopCk))
		r("`copyloop.Copy` + fdatasync, no checkpoint", median(x.loopNoCk))
		if s := res.big["cp"]; s != nil {
			r("`cp` (above)", median(s.walls()))
		}
		if s := res.big["cp+sync"]; s != nil {
			r("`cp` + `sync FILE` (above)", median(s.walls()))
		}
		if s := res.big["ftagent"]; s != nil {
			r("ftagent on the active (above)", median(s.servers()))
			r("ftagent, client (above)", median(s.walls()))
		}
		fmt.Fprintln(w)
	}

	if ft := res.small["ftagent"]; ft != nil {
		fmt.Fprintf(w, "Many small files, per file (medians over the runs):\n\n")
		fmt.Fprintf(w, "| transfer | time per file (on the active) | raft entries per file | CPU per file: active | standbys (each) | the client (`--wait`) |\n| --- | --: | --: | --: | --: | --: |\n")
		perFile := func(label string, s *series, files int) {
			var ent []int64
			var act, stb, cl []time.Duration
			for _, x := range s.samples {
				ent = append(ent, int64(x.entries))
				cl = append(cl, x.clientCPU)
				for n, d := range x.cpu {
					if n == e.active {
						act = append(act, d)
					} else {
						stb = append(stb, d)
					}
				}
			}
			fmt.Fprintf(w, "| %s | %s | %.3f | %s | %s | %s |\n", label, ms(median(s.servers())/time.Duration(files)),
				float64(medianInt(ent))/float64(files), ms(median(act)/time.Duration(files)), ms(median(stb)/time.Duration(files)),
				ms(median(cl)/time.Duration(files)))
		}
		if res.few != nil {
			perFile(fmt.Sprintf("%d files", e.few.files), res.few, e.few.files)
		}
		perFile(fmt.Sprintf("%d files", e.small.files), ft, e.small.files)
		fmt.Fprintln(w)
	}
	if len(x.phasesMany) > 0 {
		pickM := func(f func(phaseRun) time.Duration) time.Duration {
			var ds []time.Duration
			for _, p := range x.phasesMany {
				ds = append(ds, f(p))
			}
			return median(ds)
		}
		fmt.Fprintf(w, "The %d files through the HTTP API (POST, then GET every 100 ms), %d runs, medians:\n\n", e.small.files, len(x.phasesMany))
		fmt.Fprintf(w, "| phase | median |\n| --- | --: |\n")
		fmt.Fprintf(w, "| POST until the create entry committed (201): listing and stat of the sources, the entry with every file (%s of JSON) through raft | %s |\n",
			mib(int64(x.createBytes)), ms(pickM(func(p phaseRun) time.Duration { return p.accepted })))
		if len(x.planExpand) > 0 {
			fmt.Fprintf(w, "| — of which, in this process: `sandbox.Expand` of the sources | %s |\n", ms(median(x.planExpand)))
			fmt.Fprintf(w, "| — of which, in this process: `sandbox.Resolve` of each destination | %s |\n", ms(median(x.planResolve)))
		}
		if len(x.raftBig) > 0 {
			fmt.Fprintf(w, "| — of which, in this process: pkg/ha `Apply` of a command of that size (median of %d) | %s |\n", len(x.raftBig), ms(median(x.raftBig)))
		}
		if n := e.small.files; x.applyCreate[n] > 0 {
			fmt.Fprintf(w, "| — of which, in this process: `transfer.State.Apply` of the create entry (each instance) | %s |\n", ms(x.applyCreate[n]))
		}
		fmt.Fprintf(w, "| on the active: created → ended | %s |\n", ms(pickM(func(p phaseRun) time.Duration { return p.server })))
		fmt.Fprintf(w, "| until the first poll that saw it completed | %s |\n\n", ms(pickM(func(p phaseRun) time.Duration { return p.done })))
	}
	if x.groupFiles > 0 || x.localFiles > 0 {
		fmt.Fprintf(w, "In this process, without raft, small files (%s) as pkg/transfer writes them:\n\n", harness.SizeText(e.small.size))
		fmt.Fprintf(w, "| piece | per file |\n| --- | --: |\n")
	}
	if x.groupFiles > 0 {
		total := x.groupCopy + x.groupSync + x.groupStat + x.groupCommit
		fmt.Fprintf(w, "| group path (`copySmall`, 256 files a group), %d files: in all | %s |\n", x.groupFiles, us(total))
		fmt.Fprintf(w, "| — check the destination, open the source, create the .part, copy and hash (`copyloop.Copy`), close | %s |\n", us(x.groupCopy))
		fmt.Fprintf(w, "| — one `SyncParts` (syncfs) per group | %s |\n", us(x.groupSync))
		fmt.Fprintf(w, "| — stat the source again | %s |\n", us(x.groupStat))
		fmt.Fprintf(w, "| — `RenameAll` and `SyncDirs`: the renames, one directory fsync per group | %s |\n", us(x.groupCommit))
	}
	if x.localFiles > 0 {
		fmt.Fprintf(w, "| per-file path (`copyFile`: files over 1 MiB, resumed files), %d files: fdatasync and directory fsync each | %s |\n", x.localFiles, us(x.localFull))
		fmt.Fprintf(w, "| — the same with a plain rename, no directory fsync | %s |\n", us(x.localNoDir))
		fmt.Fprintf(w, "| — the same without the fdatasync either | %s |\n", us(x.localNo))
	}
	if x.groupFiles > 0 || x.localFiles > 0 {
		fmt.Fprintln(w)
	}
	if len(x.applyN) > 0 || len(x.raftApply) > 0 {
		fmt.Fprintf(w, "In this process, the replicated state and the log:\n\n| piece | time |\n| --- | --: |\n")
		for _, n := range x.applyN {
			fmt.Fprintf(w, "| `transfer.State.Apply` of the create entry of a transfer of %d files (on each instance) | %s |\n", n, ms(x.applyCreate[n]))
			fmt.Fprintf(w, "| `transfer.State.Apply` of one files entry of %d events, transfer of %d files (on each instance) | %s |\n", x.applyEntries, n, ms(x.applyPer[n]))
		}
		if len(x.fsync4k) > 0 {
			fmt.Fprintf(w, "| a 4 KiB write + fdatasync on this disk (median of %d) | %s |\n", len(x.fsync4k), ms(median(x.fsync4k)))
		}
		if len(x.raftApply) > 0 {
			fmt.Fprintf(w, "| pkg/ha `Apply` of one small command, 3 nodes in one process over loopback TCP, bbolt on this disk (median of %d) | %s |\n", len(x.raftApply), ms(median(x.raftApply)))
			fmt.Fprintf(w, "| the same, 64 `Apply` calls at once: time per entry | %s |\n", ms(x.raftBatch))
			fmt.Fprintf(w, "| pkg/ha `VerifyLease` (raft `VerifyLeader`), median of %d | %s |\n", len(x.raftVerify), ms(median(x.raftVerify)))
		} else if x.raftErr != "" {
			fmt.Fprintf(w, "| pkg/ha in process | failed: %s |\n", x.raftErr)
		}
		fmt.Fprintln(w)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// stats are the order statistics of a sample.
type stats struct {
	n                 int
	min, median, maxv time.Duration
}

// summarize: the median of an even sample is the mean of the two middle
// values.
func summarize(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return stats{n: len(s), min: s[0], median: median(s), maxv: s[len(s)-1]}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

func medianInt(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
func ms(d time.Duration) string   { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string   { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
func mib(b int64) string          { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
