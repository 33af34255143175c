package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ftagent/ftagent/test/harness"
)

func report(w io.Writer, e *env, works []*workload, started time.Time, elapsed time.Duration) {
	goVer, _ := exec.Command("go", "version").Output()
	fmt.Fprintf(w, "### SFTP benchmark results\n\n")
	fmt.Fprintf(w, "- date: %s; `go run ./bench/sftp %s` (%v in all)\n", started.UTC().Format(time.RFC3339), strings.Join(os.Args[1:], " "), elapsed.Round(time.Second))
	fmt.Fprintf(w, "- machine: %d CPUs, %s, %s, Linux %s, %s RAM; disk: %s\n", runtime.NumCPU(), harness.CPUModel(), runtime.GOARCH, harness.Kernel(), harness.MemTotal(), harness.Mount(e.c.Root))
	fmt.Fprintf(w, "- ftagent: %s; %s; %s\n", e.revision, strings.TrimSpace(string(goVer)), e.sshVer)
	fmt.Fprintf(w, "- load average (1, 5, 15 min) after the warm-up: %s; at the end: %s\n", e.loadStart, harness.LoadAvg())
	props := "every other property at its default (sftp.PARTNER.maxConnections 1)"
	if len(flagProps) > 0 {
		props = "**and `" + strings.Join(flagProps, "`, `") + "`**; every other property at its default"
	}
	fmt.Fprintf(w, "- agent: 3 instances on 127.0.0.1 (harness.New), TLS required between the CLI and the instances (certificates from the run's own CA; the SFTP connection itself is SSH), partner PARTNER = the sshd below with key login, %s\n", props)
	cipher := "OpenSSH's default"
	if *flagCipher != "" {
		cipher = "`-c " + *flagCipher + "`"
	}
	fmt.Fprintf(w, "- server: one sshd on 127.0.0.1 for every tool (harness.StartSSHD: `ForceCommand internal-sftp`, key login as %s; scp speaks SFTP, OpenSSH ≥ 9.0); OpenSSH clients with `-F /dev/null`, %s, negotiated cipher %s; ftagent's client (golang.org/x/crypto/ssh) prefers aes128-gcm@openssh.com; one OpenSSH login (`sftp -b` running `pwd`) takes %s (median of 3), paid by every OpenSSH command; ftagent keeps its connection to the partner open between transfers\n", harness.SSHDUser, cipher, e.ciph, secs(e.login))
	fmt.Fprintf(w, "- each command timed from its start to its exit, run from the agent's transferRoot; sources in the page cache; the tools alternate, the order rotated each repetition; `sync` after every run (untimed); \"+ sync\" adds `sync -f` of what the OpenSSH command wrote, timed on its own right after it (ftagent syncs every file it writes before renaming it into place — fsync@openssh.com on the server, fdatasync locally — and the parts at its checkpoints (checkpointInterval, default 64M); sftp and scp sync nothing); every output checked by SHA-256 outside the timing; the large file's outputs are deleted after each run, the trees' kept to the end\n")
	fmt.Fprintf(w, "- CPU (user + system): for ftagent, its active instance (not its CLI nor the standbys); for sftp and scp, the client with its ssh; sshd: the listener and its sessions, polled every 50 ms; machine busy: all CPUs, neither idle nor in I/O wait, during the command (a \"+ sync\" row's is the command's). Peak RSS: the active's VmHWM (reset before each transfer through clear_refs) and VmRSS polled every 10 ms\n")
	fmt.Fprintf(w, "- before each timed run the benchmark waited (up to %v) for a second in which the machine was at least 90%% idle; runs started without one: %d\n\n", *flagQuiet, e.notQuiet)

	for _, wl := range works {
		pick := func(t string, f func(sample) time.Duration) []time.Duration {
			var out []time.Duration
			for _, x := range wl.samples[t] {
				out = append(out, f(x))
			}
			return out
		}
		walls := func(t string, withSync bool) []time.Duration {
			return pick(t, func(x sample) time.Duration { return x.wall + map[bool]time.Duration{true: x.sync}[withSync] })
		}
		ftMed := median(walls("ftagent", false))
		unit, rate := "MiB/s", func(d time.Duration) float64 { return float64(wl.bytes) / (1 << 20) / d.Seconds() }
		if wl.files > 0 {
			unit, rate = "files/s", func(d time.Duration) float64 { return float64(wl.files) / d.Seconds() }
		}
		fmt.Fprintf(w, "#### %s\n\n| command | n | median | min | max | %s (median) | ftagent's speed ÷ this | CPU (median) | sshd CPU (median) | machine busy (median) | peak RSS (median, max) |\n| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |\n", wl.title, unit)
		var vs []string
		for _, t := range tools {
			for _, withSync := range []bool{false, true} {
				if t == "ftagent" && withSync {
					continue
				}
				ds, label, ratio, rss := walls(t, withSync), fmt.Sprintf("%s: `%s`", t, wl.cmds[t]), "—", "—"
				med := median(ds)
				if withSync {
					label = t + " + `sync -f`"
				}
				if t == "ftagent" {
					var rs []time.Duration
					for _, x := range wl.samples[t] {
						rs = append(rs, time.Duration(x.rss))
					}
					rss = fmt.Sprintf("%s, %s", mib(int64(median(rs))), mib(int64(slices.Max(rs))))
				} else {
					ratio = fmt.Sprintf("%.2f×", med.Seconds()/ftMed.Seconds())
					vs = append(vs, fmt.Sprintf("%s%s %s", t, map[bool]string{true: " + sync"}[withSync], ratio))
				}
				fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %.1f | %s | %s | %s | %s | %s |\n", label, len(ds), secs(med), secs(slices.Min(ds)), secs(slices.Max(ds)), rate(med), ratio,
					secs(median(pick(t, func(x sample) time.Duration { return x.cpu }))), secs(median(pick(t, func(x sample) time.Duration { return x.sshdCPU }))),
					secs(median(pick(t, func(x sample) time.Duration { return x.busy }))), rss)
			}
		}
		fmt.Fprintf(w, "\nftagent's speed against (medians): %s.", strings.Join(vs, "; "))
		if r := median(walls("sftp", false)).Seconds() / ftMed.Seconds(); wl.target != "" {
			fmt.Fprintf(w, " Target %s: %.2f× — %s.", wl.target, r, map[bool]string{true: "met", false: "**missed**"}[r >= 1.0])
		} else {
			fmt.Fprintf(w, " No target for this direction in issue 13.")
		}
		fmt.Fprintf(w, "\n\nRaw times (s), in the order run (rotated each repetition):")
		for _, t := range tools {
			var parts []string
			for _, x := range wl.samples[t] {
				parts = append(parts, fmt.Sprintf("%.3f", x.wall.Seconds()))
			}
			fmt.Fprintf(w, " %s %s;", t, strings.Join(parts, ", "))
		}
		fmt.Fprintf(w, "\n\n")
	}
	if len(e.smallSums) > 0 {
		fmt.Fprintf(w, "Writing the %d sources took %s: for some minutes after many files were deleted, ext4 creates files several times slower (the caveats of the transfer benchmark in docs/performance.md), and this benchmark's clean-up deletes %d; wait several minutes before running it again.\n\n", len(e.smallSums), secs(e.probe), len(e.smallSums)*(1+len(tools)**flagN))
	}
	fmt.Fprintf(w, "Caveats: loopback and one machine, so the client, sshd and the disk share %d CPUs; the same sshd serves every tool; ftagent's durability (an fsync per file on the server, a rename, its transfer's state replicated to two standbys) is included in its times, and the \"+ sync\" rows give OpenSSH the flush it otherwise skips (for the tree, one `sync -f` of the file system rather than an fsync per file).\n", runtime.NumCPU())
}

// median of an even sample is the mean of the two middle values.
func median(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
func mib(b int64) string          { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
