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
	fmt.Fprintf(w, "### Agent-to-agent benchmark results\n\n")
	fmt.Fprintf(w, "- date: %s\n", started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- machine: %d CPUs (nproc), %s, %s, Linux %s, %s RAM\n", runtime.NumCPU(), harness.CPUModel(), runtime.GOARCH, harness.Kernel(), harness.MemTotal())
	fmt.Fprintf(w, "- disk: %s\n", harness.Mount(e.orders.Root))
	fmt.Fprintf(w, "- ftagent: %s\n", e.revision)
	fmt.Fprintf(w, "- load average (1, 5, 15 min) when both agents were up: %s; at the end: %s\n", e.loadStart, harness.LoadAvg())
	fmt.Fprintf(w, "- %s; %s; %s; %s; ssh cipher negotiated: %s\n", goVersion(), e.sshVer, e.sshdVer, e.rsyncVer, e.cipher)
	fmt.Fprintf(w, "- command: `go run ./bench/agents %s` (%v in all)\n", strings.Join(os.Args[1:], " "), res.elapsed.Round(time.Second))
	props := "every other property at its default (checkpointInterval 64M, checkpointTimeInterval 5s, maxBandwidth unlimited)"
	if p := extraProps(); len(p) > 0 {
		props = "**and on both agents `" + strings.Join(p, "`, `") + "`**; every other property at its default"
	}
	fmt.Fprintf(w, "- agents: ORDERS (ord1–ord3) sends to PAYMENTS (pay1–pay3, `acceptFrom=ORDERS`), 3 + 3 instances on 127.0.0.1, TLS required (one CA), %s; each agent its own directory, transferRoot and data directories, all on one file system\n", props)
	fmt.Fprintf(w, "- OpenSSH: an sshd of the run's own on 127.0.0.1 (`sshd -D`, key login as %s, `Subsystem sftp internal-sftp`: scp speaks SFTP; `SetEnv HOME=` an empty directory, so that the shell through which sshd runs rsync's remote end reads no developer's .bashrc); one login, `ssh 127.0.0.1 true`, takes %s (median of 3); scp and rsync read the same sources as ORDERS (its transferRoot) and write under PAYMENTS' transferRoot\n", e.ssh.user, secs(e.login))
	fmt.Fprintf(w, "- each command is run from ORDERS' transferRoot and timed from its start to its exit; \"+ sync\" adds the `sync FILE` (1 file) or `sync` (many files) run right after it, timed on its own; ")
	fmt.Fprintf(w, "the runs alternate: ftagent, scp; …; then ftagent, rsync; …; a large file's output is deleted and `sync` run after each run, the many-files outputs are kept to the end (ext4's recently deleted inodes slow file creation: see the caveats of the transfer benchmark)")
	if *flagPrefault {
		fmt.Fprintf(w, "; anonymous memory is touched and freed before each timed run (-prefault, as bench/transfer)")
	}
	if *flagQuiet > 0 {
		fmt.Fprintf(w, "\n- before each timed run the benchmark waited (up to %v) for a second in which the machine was at least 90%% idle; runs started without one: %d", *flagQuiet, e.notQuiet)
	}
	if r := reportedKiB(); r > 0 {
		fmt.Fprintf(w, "\n- guest memory reported free to the host (virtio balloon free page reporting) while the agents were up: %s", mib((r-e.reported0)*1024))
	}
	fmt.Fprintf(w, "\n- every output checked after its run (outside the timing): SHA-256 of the large file, each of the many files' bytes, no `.part`\n\n")

	if len(res.bigFt.samples) > 0 {
		size := e.big.size
		fmt.Fprintf(w, "One %s file, source in the page cache:\n\n", harness.SizeText(size))
		fmt.Fprintf(w, "| command | n | min | median | max | MiB/s (median) | ftagent (client) is |\n| --- | --: | --: | --: | --: | --: | --: |\n")
		ft := median(res.bigFt.walls())
		row := func(label string, ds []time.Duration) {
			st := summarize(ds)
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %.0f | %.2f× |\n", label, st.n, secs(st.min), secs(st.median), secs(st.maxv),
				mibps(size, st.median), st.median.Seconds()/ft.Seconds())
		}
		row(fmt.Sprintf("ftagent, client: `%s`", res.bigFt.command), res.bigFt.walls())
		row("ftagent, on ORDERS' active: created → ended", res.bigFt.servers())
		row(fmt.Sprintf("`scp`: `%s`", res.scp.command), res.scp.walls())
		row("`scp` + `sync FILE`", res.scp.withSyncs())
		r := median(res.scp.walls()).Seconds() / ft.Seconds()
		fmt.Fprintf(w, "\nTarget ≥ 2× `scp`'s throughput: %.2f× — %s (against `scp` + `sync FILE`: %.2f×; on ORDERS' active: %.2f× and %.2f×).\n\n",
			r, verdict(r >= 2), median(res.scp.withSyncs()).Seconds()/ft.Seconds(),
			median(res.scp.walls()).Seconds()/median(res.bigFt.servers()).Seconds(), median(res.scp.withSyncs()).Seconds()/median(res.bigFt.servers()).Seconds())
	}

	if len(res.smallFt.samples) > 0 {
		n := e.small.files
		fmt.Fprintf(w, "%d files of %s in one recursive transfer:\n\n", n, harness.SizeText(e.small.size))
		fmt.Fprintf(w, "| command | n | min | median | max | files/s (median) | ftagent (client) is |\n| --- | --: | --: | --: | --: | --: | --: |\n")
		ft := median(res.smallFt.walls())
		row := func(label string, ds []time.Duration) {
			st := summarize(ds)
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %.0f | %.2f× |\n", label, st.n, secs(st.min), secs(st.median), secs(st.maxv),
				float64(n)/st.median.Seconds(), st.median.Seconds()/ft.Seconds())
		}
		row(fmt.Sprintf("ftagent, client: `%s`", res.smallFt.command), res.smallFt.walls())
		row("ftagent, on ORDERS' active: created → ended", res.smallFt.servers())
		row(fmt.Sprintf("`rsync -r -e ssh`: `%s`", res.rsync.command), res.rsync.walls())
		row("`rsync -r -e ssh` + `sync`", res.rsync.withSyncs())
		r := median(res.rsync.walls()).Seconds() / ft.Seconds()
		fmt.Fprintf(w, "\nTarget ≥ 2× `rsync -e ssh`'s files per second: %.2f× — %s (against `rsync` + `sync`: %.2f×; on ORDERS' active: %.2f× and %.2f×).\n\n",
			r, verdict(r >= 2), median(res.rsync.withSyncs()).Seconds()/ft.Seconds(),
			median(res.rsync.walls()).Seconds()/median(res.smallFt.servers()).Seconds(), median(res.rsync.withSyncs()).Seconds()/median(res.smallFt.servers()).Seconds())
	}

	// Memory.
	fmt.Fprintf(w, "The actives' memory (VmHWM reset through `/proc/<pid>/clear_refs` before each transfer%s; VmRSS also polled every %v):\n\n",
		map[bool]string{true: "", false: " — **not possible here: VmHWM is the peak since the process started**"}[e.canReset], *flagPoll)
	fmt.Fprintf(w, "| transfer | active | n | VmRSS before (median) | peak (median) | peak (max) |\n| --- | --- | --: | --: | --: | --: |\n")
	var largePeak int64
	memRows := func(label string, s *series, large bool) {
		if len(s.samples) == 0 {
			return
		}
		for k, who := range []string{"ORDERS (" + e.ordActive + ", sends)", "PAYMENTS (" + e.payActive + ", receives)"} {
			var before, peak []int64
			for _, x := range s.samples {
				before, peak = append(before, x.rssBefore[k]), append(peak, x.rssPeak[k])
			}
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s |\n", label, who, len(peak), mib(medianInt(before)), mib(medianInt(peak)), mib(slices.Max(peak)))
			if large {
				largePeak = max(largePeak, slices.Max(peak))
			}
		}
	}
	memRows(fmt.Sprintf("1 file of %s", harness.SizeText(e.big.size)), &res.bigFt, true)
	memRows(fmt.Sprintf("%d files of %s", e.small.files, harness.SizeText(e.small.size)), &res.smallFt, false)
	if len(res.bigFt.samples) > 0 {
		fmt.Fprintf(w, "\nTarget: RSS of either active ≤ 64 MiB during the %s transfer: %s (max %s).\n\n", harness.SizeText(e.big.size), verdict(largePeak <= 64<<20), mib(largePeak))
	} else {
		fmt.Fprintln(w)
	}

	// CPU.
	fmt.Fprintf(w, "CPU time per run (user + system, medians; the machine has %d CPUs):\n\n", runtime.NumCPU())
	fmt.Fprintf(w, "| transfer | wall (median) | ORDERS' active | ORDERS' standbys (sum) | PAYMENTS' active | PAYMENTS' standbys (sum) | client (with its ssh) | server: sshd, its sessions and what they ran (internal-sftp, rsync --server) | the measured processes (sum) | the whole machine busy | the rest (kernel threads, other work) |\n| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |\n")
	cpuRow := func(label string, s *series, ftagent bool) {
		if len(s.samples) == 0 {
			return
		}
		var oa, pa, ob, pb, cl, sd, all, busy, rest []time.Duration
		for _, x := range s.samples {
			a, b, c, d := cpuSplit(e, x.cpu)
			oa, pa, ob, pb = append(oa, a), append(pa, b), append(ob, c), append(pb, d)
			cl, sd = append(cl, x.clientCPU), append(sd, x.sshdCPU)
			sum := a + b + c + d + x.clientCPU + x.sshdCPU
			all, busy, rest = append(all, sum), append(busy, x.busy), append(rest, x.busy-sum)
		}
		if ftagent {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | — | %s | %s | %s |\n", label, secs(median(s.walls())), secs(median(oa)), secs(median(ob)), secs(median(pa)), secs(median(pb)), secs(median(cl)),
				secs(median(all)), secs(median(busy)), secs(median(rest)))
		} else {
			fmt.Fprintf(w, "| %s | %s | — | — | — | — | %s | %s | %s | %s | %s |\n", label, secs(median(s.walls())), secs(median(cl)), secs(median(sd)),
				secs(median(all)), secs(median(busy)), secs(median(rest)))
		}
	}
	cpuRow(fmt.Sprintf("ftagent, %s", harness.SizeText(e.big.size)), &res.bigFt, true)
	cpuRow(fmt.Sprintf("scp, %s", harness.SizeText(e.big.size)), &res.scp, false)
	cpuRow(fmt.Sprintf("ftagent, %d files", e.small.files), &res.smallFt, true)
	cpuRow(fmt.Sprintf("rsync -e ssh, %d files", e.small.files), &res.rsync, false)
	fmt.Fprintln(w)

	// Raft.
	fmt.Fprintf(w, "The actives' raft entries per ftagent run, from their `/metrics` (`ftagent_raft_apply_seconds`: submission → commit and apply, by kind; `ftagent_checkpoint_commit_seconds` as \"checkpoint\"); medians over the runs:\n\n")
	fmt.Fprintf(w, "| transfer | agent | kind | entries | time in them (sum) |\n| --- | --- | --- | --: | --: |\n")
	raftRows := func(label string, s *series) {
		for k, agent := range []string{"ORDERS", "PAYMENTS"} {
			kinds := map[string]bool{}
			for _, x := range s.samples {
				for kind := range x.raft[k] {
					kinds[kind] = true
				}
			}
			names := make([]string, 0, len(kinds))
			for kind := range kinds {
				names = append(names, kind)
			}
			slices.Sort(names)
			for _, kind := range names {
				var cnt []int64
				var sum []time.Duration
				for _, x := range s.samples {
					cnt = append(cnt, int64(x.raft[k][kind].count))
					sum = append(sum, time.Duration(x.raft[k][kind].sum*float64(time.Second)))
				}
				if medianInt(cnt) == 0 {
					continue // in some runs only
				}
				fmt.Fprintf(w, "| %s | %s | %s | %d | %s |\n", label, agent, kind, medianInt(cnt), ms(median(sum)))
			}
		}
	}
	raftRows(fmt.Sprintf("1 file of %s", harness.SizeText(e.big.size)), &res.bigFt)
	raftRows(fmt.Sprintf("%d files", e.small.files), &res.smallFt)
	fmt.Fprintln(w)

	var resent int64
	var fo int
	for _, s := range []*series{&res.bigFt, &res.smallFt} {
		for _, x := range s.samples {
			resent += x.bytesResent
			fo += x.failovers + x.recvFailovers
		}
	}
	fmt.Fprintf(w, "Every ftagent transfer completed on the same two actives: %d failovers, %d bytes resent in all.\n\n", fo, resent)

	fmt.Fprintf(w, "Raw times (s), in the order run:\n\n")
	raw := func(label string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		var parts []string
		for _, d := range ds {
			parts = append(parts, fmt.Sprintf("%.3f", d.Seconds()))
		}
		fmt.Fprintf(w, "- %s: %s\n", label, strings.Join(parts, ", "))
	}
	big := harness.SizeText(e.big.size)
	raw(big+", ftagent (client)", res.bigFt.walls())
	raw(big+", ftagent (on ORDERS' active)", res.bigFt.servers())
	raw(big+", scp", res.scp.walls())
	raw(big+", scp + sync FILE", res.scp.withSyncs())
	rest := func(s *series) []time.Duration {
		return s.pick(func(x sample) time.Duration {
			a, b, c, d := cpuSplit(e, x.cpu)
			return x.busy - (a + b + c + d + x.clientCPU + x.sshdCPU)
		})
	}
	raw(big+", ftagent: CPU time of the rest of the machine (busy minus the measured processes)", rest(&res.bigFt))
	raw(big+", scp: the same", rest(&res.scp))
	nf := fmt.Sprintf("%d files", e.small.files)
	raw(nf+", ftagent (client)", res.smallFt.walls())
	raw(nf+", ftagent (on ORDERS' active)", res.smallFt.servers())
	raw(nf+", rsync -e ssh", res.rsync.walls())
	raw(nf+", rsync -e ssh + sync", res.rsync.withSyncs())
	raw(nf+", ftagent: CPU time of the rest of the machine", rest(&res.smallFt))
	raw(nf+", rsync: the same", rest(&res.rsync))
	fmt.Fprintln(w)
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

func summarize(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return stats{n: len(s), min: s[0], median: median(s), maxv: s[len(s)-1]}
}

// median: the median of an even sample is the mean of the two middle
// values.
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

func mibps(size int64, d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
func ms(d time.Duration) string                 { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
func secs(d time.Duration) string               { return fmt.Sprintf("%.3f s", d.Seconds()) }
func mib(b int64) string                        { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
