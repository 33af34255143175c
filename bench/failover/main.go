// Command failover measures how long ftagent takes to fail over, on a cluster
// of three real instances on this machine at the default timeouts:
//
//   - planned: from just before `ftstop -i` is run until a surviving instance
//     reports itself ACTIVE under a higher epoch;
//   - crash: from just before SIGKILL of the active until a surviving instance
//     reports itself ACTIVE under a higher epoch;
//
// and the idle resident set size of each instance. The new active is observed
// by polling every survivor's GET /v1/instance directly (every -poll), so a
// time is the moment the first poll saw the new active: it overstates the
// true time by at most one poll interval plus one loopback request.
//
// Each repetition also reads the instances' JSON logs (RFC 3339 nanosecond
// timestamps, same clock) to split the time into phases.
//
// It is a benchmark, not a test: it prints a markdown report and asserts no
// target. Run it with bench/failover.sh.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/test/harness"
)

var (
	flagRoot    = flag.String("root", ".", "a directory inside the ftagent module (its root is found with go env GOMOD)")
	flagN       = flag.Int("n", 20, "repetitions of each kind of fail-over")
	flagPoll    = flag.Duration("poll", 5*time.Millisecond, "interval between polls of each survivor's /v1/instance")
	flagIdle    = flag.Duration("idle", 5*time.Second, "how long the cluster idles before RSS is read")
	flagTimeout = flag.Duration("timeout", 30*time.Second, "longest wait for a fail-over or for the cluster to settle")
	flagKeep    = flag.Bool("keep", false, "keep the working directory (binaries, properties, instance logs)")
	flagTLS     = flag.String("tls", "required", "tlsMode of the instances: required (certificates from a CA of the run's own) or disabled, to measure what TLS costs")
	flagLog     = flag.String("log-level", "", "instances' --log-level (debug adds raft's election steps to the logs; default: info)")
)

// httpc polls the instances; keep-alive connections keep a poll to one
// loopback round trip.
var httpc = &http.Client{
	Timeout:   time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute},
}

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/failover [flags]\n\n%s\n", "Measures planned (ftstop -i) and crash (kill -9) fail-over of a three-instance ftagent cluster, and idle RSS.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || *flagN < 1 || *flagPoll <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

func run() error {
	started := time.Now()
	root, err := harness.ModuleRoot(*flagRoot)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ftagent-bench-failover-")
	if err != nil {
		return err
	}
	if *flagKeep {
		fmt.Fprintln(os.Stderr, "working directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	progress("building ftagent and ftstop from %s", root)
	bin, err := harness.Build(root, filepath.Join(dir, "bin"), "0.0.0-bench")
	if err != nil {
		return err
	}
	goVersion := goVersionOf(root)

	cdir := filepath.Join(dir, "cluster")
	if err := os.Mkdir(cdir, 0o750); err != nil {
		return err
	}
	// No Extra lines: every timeout at its default.
	c, err := harness.New(bin, cdir, harness.Options{TLSMode: harness.TLSModeOption(*flagTLS)})
	if err != nil {
		return err
	}
	if err := c.DialAsAdmin(httpc.Transport.(*http.Transport)); err != nil {
		return err
	}
	defer c.StopAll()
	for _, n := range c.Names {
		if _, err := c.Start(n, startArgs()...); err != nil {
			return err
		}
	}
	if _, _, err := settle(c, ""); err != nil {
		return fmt.Errorf("first start: %w", err)
	}
	progress("cluster up; idling %v before reading RSS", *flagIdle)
	if err := idle(c); err != nil {
		return err
	}
	rssFresh, err := rssAll(c)
	if err != nil {
		return err
	}

	var planned, crash []rep
	for i := 0; i < *flagN; i++ {
		r, err := plannedOnce(c)
		if err != nil {
			return fmt.Errorf("planned fail-over %d: %w%s", i+1, err, logTails(c))
		}
		progress("planned %2d/%d: %s -> %s  observed %v  ftstop %v  [%s]", i+1, *flagN, r.from, r.to, ms(r.observed), ms(r.ftstop), r.timeline())
		planned = append(planned, r)
	}
	for i := 0; i < *flagN; i++ {
		r, err := crashOnce(c)
		if err != nil {
			return fmt.Errorf("crash fail-over %d: %w%s", i+1, err, logTails(c))
		}
		progress("crash   %2d/%d: %s -> %s  observed %v  candidacies %d, pre-vote refused %v, second round %v  [%s]",
			i+1, *flagN, r.from, r.to, ms(r.observed), r.candidacies, r.prevoteRefused, r.electionRetry, r.timeline())
		crash = append(crash, r)
	}

	if _, _, err := settle(c, ""); err != nil {
		return err
	}
	progress("idling %v before reading RSS again", *flagIdle)
	if err := idle(c); err != nil {
		return err
	}
	rssAfter, err := rssAll(c)
	if err != nil {
		return err
	}

	report(os.Stdout, reportData{
		started: started, goVersion: goVersion,
		planned: planned, crash: crash,
		rssFresh: rssFresh, rssAfter: rssAfter, names: c.Names,
		elapsed: time.Since(started),
	})
	return nil
}

// rep is one fail-over.
type rep struct {
	from, to string
	observed time.Duration // t0 until a poll saw the new active
	ftstop   time.Duration // planned only: ftstop's wall time
	// marks are the moments of the fail-over: t0, the poll's observation,
	// ftstop's return, and events from the instances' logs.
	marks map[string]time.Time
	// Raft election events in the survivors' logs.
	candidacies    int  // "entering candidate state"
	prevoteRefused bool // a "pre-vote campaign failed"
	electionRetry  bool // an "Election timeout reached, restarting election"
}

// segment is a phase of a fail-over, between two marks.
type segment struct{ name, from, to string }

var (
	plannedSegments = []segment{
		{"ftstop starts, its request reaches the active", "t0", "stopping"},
		{"active stops its work, probes the standbys, starts the transfer", "stopping", "transfer"},
		{"TimeoutNow, vote: the target wins the election", "transfer", "won"},
		{"Barrier + lease entry committed: new active holds the lease", "won", "gained"},
		{"until a poll saw it ACTIVE", "gained", "seen"},
		{"(ftstop) old active learns the lease entry is committed", "gained", "handedOver"},
		{"(ftstop) answer, confirm through the agent, old process gone", "handedOver", "ftstopDone"},
	}
	crashSegments = []segment{
		{"kill until the first survivor's heartbeat check fires", "t0", "firstTimeout"},
		{"until the winner's (last) candidacy starts", "firstTimeout", "winnerCandidate"},
		{"pre-vote + vote: the winner wins the election", "winnerCandidate", "won"},
		{"Barrier + lease entry committed: new active holds the lease", "won", "gained"},
		{"until a poll saw it ACTIVE", "gained", "seen"},
	}
)

func plannedOnce(c *harness.Cluster) (rep, error) {
	v, _, err := settle(c, "")
	if err != nil {
		return rep{}, err
	}
	old := v.Active
	survivors := others(c.Names, old)
	offs := logOffsets(c)

	ctx, cancel := context.WithTimeout(context.Background(), *flagTimeout)
	defer cancel()
	seen := watchActive(ctx, c, survivors, v.Epoch)

	t0 := time.Now()
	res, err := c.Ftstop(ctx, "-i")
	ftstop := time.Since(t0)
	if err != nil || res.Exit != 0 {
		return rep{}, fmt.Errorf("ftstop -i: exit %d %v: %s %s", res.Exit, err, res.Stdout, res.Stderr)
	}
	var o observation
	select {
	case o = <-seen:
	case <-ctx.Done():
		return rep{}, fmt.Errorf("no survivor reported ACTIVE above epoch %d within %v", v.Epoch, *flagTimeout)
	}
	cancel()
	if !strings.Contains(res.Stdout, o.name+" is now active") {
		return rep{}, fmt.Errorf("ftstop said %q, but %s was seen active", strings.TrimSpace(res.Stdout), o.name)
	}
	select {
	case <-c.Proc(old).Done():
	case <-time.After(10 * time.Second):
		return rep{}, fmt.Errorf("%s still running 10s after ftstop returned", old)
	}
	r := rep{from: old, to: o.name, observed: o.at.Sub(t0), ftstop: ftstop}

	// The logs are read once the cluster has settled again, so that every
	// line of the fail-over has been written.
	if err := restart(c, old, o.name); err != nil {
		return rep{}, err
	}
	ev := readLogs(c, offs)
	r.electionEvents(ev, survivors)
	r.marks = map[string]time.Time{
		"t0":         t0,
		"seen":       o.at,
		"ftstopDone": t0.Add(ftstop),
		"stopping":   first(ev, []string{old}, "stopping the active instance"),
		"transfer":   first(ev, []string{old}, "transferring leadership"),
		"won":        first(ev, []string{o.name}, "election won"),
		"gained":     first(ev, []string{o.name}, "lease gained"),
		"handedOver": first(ev, []string{old}, "lease handed over"),
	}
	return r, nil
}

func crashOnce(c *harness.Cluster) (rep, error) {
	v, _, err := settle(c, "")
	if err != nil {
		return rep{}, err
	}
	old := v.Active
	survivors := others(c.Names, old)
	offs := logOffsets(c)

	ctx, cancel := context.WithTimeout(context.Background(), *flagTimeout)
	defer cancel()
	seen := watchActive(ctx, c, survivors, v.Epoch)

	t0 := time.Now()
	if err := c.Kill(old); err != nil {
		return rep{}, err
	}
	var o observation
	select {
	case o = <-seen:
	case <-ctx.Done():
		return rep{}, fmt.Errorf("no survivor reported ACTIVE above epoch %d within %v", v.Epoch, *flagTimeout)
	}
	cancel()
	r := rep{from: old, to: o.name, observed: o.at.Sub(t0)}

	if err := restart(c, old, o.name); err != nil {
		return rep{}, err
	}
	ev := readLogs(c, offs)
	r.electionEvents(ev, survivors)
	won := first(ev, []string{o.name}, "election won")
	r.marks = map[string]time.Time{
		"t0":              t0,
		"seen":            o.at,
		"firstTimeout":    first(ev, survivors, "heartbeat timeout reached, starting election"),
		"winnerCandidate": lastBefore(ev, o.name, "entering candidate state", won),
		"won":             won,
		"gained":          first(ev, []string{o.name}, "lease gained"),
	}
	return r, nil
}

func startArgs() []string {
	if *flagLog == "" {
		return nil
	}
	return []string{"--log-level", *flagLog}
}

// restart starts name again and waits until it is back as a standby of the
// same active.
func restart(c *harness.Cluster, name, active string) error {
	if _, err := c.Start(name, startArgs()...); err != nil {
		return err
	}
	_, missing, err := settle(c, active)
	if err != nil {
		return fmt.Errorf("after restarting %s: %w", name, err)
	}
	if len(missing) > 0 {
		unlisted = append(unlisted, fmt.Sprintf("%s active, %s missing", active, strings.Join(missing, ", ")))
		progress("WARNING: %s READY and following %s, but missing from its standbys", strings.Join(missing, ", "), active)
	}
	return nil
}

// unlisted records each fail-over after which the new active's standby list
// lacked an instance that was up, READY and following it.
var unlisted []string

// settleWait is how long settle waits for the full standby list before it
// checks whether a missing standby is in fact up and following the active.
const settleWait = 5 * time.Second

// settle waits until the agent has an active (active, if not "") and every
// other instance is listed as a standby. A standby's status reaches a new
// active at once after a leader change and then only every
// standbyStatusPublishInterval (5 min by default), so if an instance that is
// READY and follows the active is still missing from the list after
// settleWait, settle returns it in missing rather than wait minutes.
func settle(c *harness.Cluster, active string) (ha.AgentView, []string, error) {
	v, err := waitSteady(c, settleWait, active)
	if err == nil {
		return v, nil, nil
	}
	if missing, ok := followingButUnlisted(c, v); ok && (active == "" || v.Active == active) {
		return v, missing, nil
	}
	v, err = waitSteady(c, *flagTimeout, active)
	return v, nil, err
}

// followingButUnlisted reports the instances missing from v's standbys, if
// each of them answers READY with v's active as its leader.
func followingButUnlisted(c *harness.Cluster, v ha.AgentView) ([]string, bool) {
	if v.Status != ha.StatusActive || v.Active == "" {
		return nil, false
	}
	var missing []string
	for _, n := range c.Names {
		if n == v.Active || slices.Contains(v.Standbys, n) {
			continue
		}
		var st ha.InstanceStatus
		if err := harness.GetJSON(context.Background(), httpc, c.Addr[n], api.PathInstance, &st); err != nil ||
			st.Status != ha.StatusReady || st.Leader != v.Active {
			return nil, false
		}
		missing = append(missing, n)
	}
	return missing, len(missing) > 0
}

// electionEvents counts the raft election events the survivors logged.
func (r *rep) electionEvents(ev []logEvent, survivors []string) {
	r.candidacies = countMsg(ev, survivors, "entering candidate state")
	r.prevoteRefused = countMsg(ev, survivors, "pre-vote campaign failed") > 0
	r.electionRetry = countMsg(ev, survivors, "Election timeout reached") > 0
}

// timeline lists the marks after t0, in time order, as offsets from t0.
func (r rep) timeline() string {
	t0 := r.marks["t0"]
	type mark struct {
		name string
		at   time.Time
	}
	var ms []mark
	for n, at := range r.marks {
		if n != "t0" && !at.IsZero() {
			ms = append(ms, mark{n, at})
		}
	}
	slices.SortFunc(ms, func(a, b mark) int { return a.at.Compare(b.at) })
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%s +%.0fms", m.name, float64(m.at.Sub(t0))/float64(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// span is a segment's duration in r, if both its marks are known.
func (r rep) span(sg segment) (time.Duration, bool) {
	a, b := r.marks[sg.from], r.marks[sg.to]
	if a.IsZero() || b.IsZero() {
		return 0, false
	}
	return b.Sub(a), true
}

// observation is a survivor seen active.
type observation struct {
	name  string
	epoch uint64
	at    time.Time
}

// watchActive polls each named instance's GET /v1/instance every -poll until
// one reports ACTIVE under an epoch above epoch; the first such observation
// is sent on the returned channel. It returns once every poller has made one
// request, so that connections are open before the clock starts.
func watchActive(ctx context.Context, c *harness.Cluster, names []string, epoch uint64) <-chan observation {
	out := make(chan observation, len(names))
	var ready sync.WaitGroup
	ready.Add(len(names))
	for _, n := range names {
		go func(addr string) {
			once := sync.OnceFunc(ready.Done)
			defer once()
			for {
				var st ha.InstanceStatus
				err := harness.GetJSON(ctx, httpc, addr, api.PathInstance, &st)
				at := time.Now()
				once()
				if err == nil && st.Status == ha.StatusActive && st.Epoch > epoch {
					out <- observation{name: st.Name, epoch: st.Epoch, at: at}
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(*flagPoll):
				}
			}
		}(c.Addr[n])
	}
	ready.Wait()
	return out
}

// waitSteady waits until the agent has an active (active, if not "") and two
// standbys, asking the instances' GET /v1/agent directly.
func waitSteady(c *harness.Cluster, timeout time.Duration, active string) (ha.AgentView, error) {
	deadline := time.Now().Add(timeout)
	var last ha.AgentView
	for {
		for _, n := range c.Names {
			var v ha.AgentView
			if err := harness.GetJSON(context.Background(), httpc, c.Addr[n], api.PathAgent, &v); err != nil {
				continue // a follower answers 421; a stopped instance not at all
			}
			last = v
			if v.Status == ha.StatusActive && v.Active != "" && len(v.Standbys) == len(c.Names)-1 &&
				(active == "" || v.Active == active) {
				return v, nil
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(last)
			return last, fmt.Errorf("timed out after %v waiting for an active with %d standbys; last view %s", timeout, len(c.Names)-1, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// idle lets the cluster sit untouched; nothing to wait for.
func idle(c *harness.Cluster) error {
	time.Sleep(*flagIdle)
	_, _, err := settle(c, "")
	return err
}

func rssAll(c *harness.Cluster) (map[string]int64, error) {
	out := map[string]int64{}
	for _, n := range c.Names {
		p := c.Proc(n)
		rss, err := harness.RSS(p.Cmd.Process.Pid)
		if err != nil {
			return nil, fmt.Errorf("RSS of %s: %w", n, err)
		}
		out[n] = rss
	}
	return out, nil
}

// logEvent is one line of an instance's JSON log.
type logEvent struct {
	instance string
	at       time.Time
	msg      string
}

func logOffsets(c *harness.Cluster) map[string]int64 {
	out := map[string]int64{}
	for _, n := range c.Names {
		if fi, err := os.Stat(filepath.Join(c.Dir, n+".log")); err == nil {
			out[n] = fi.Size()
		}
	}
	return out
}

// readLogs reads what each instance logged since offs.
func readLogs(c *harness.Cluster, offs map[string]int64) []logEvent {
	var out []logEvent
	for _, n := range c.Names {
		f, err := os.Open(filepath.Join(c.Dir, n+".log"))
		if err != nil {
			continue
		}
		if _, err := f.Seek(offs[n], io.SeekStart); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64*1024), 1<<20)
			for sc.Scan() {
				var line struct {
					Time    string `json:"time"`
					Message string `json:"message"`
				}
				if json.Unmarshal(sc.Bytes(), &line) != nil {
					continue
				}
				t, err := time.Parse(time.RFC3339Nano, line.Time)
				if err != nil {
					continue
				}
				out = append(out, logEvent{instance: n, at: t, msg: line.Message})
			}
		}
		f.Close()
	}
	return out
}

// first is the earliest time one of names logged a message starting with msg.
func first(ev []logEvent, names []string, msg string) time.Time {
	var t time.Time
	for _, e := range ev {
		if slices.Contains(names, e.instance) && strings.HasPrefix(e.msg, msg) && (t.IsZero() || e.at.Before(t)) {
			t = e.at
		}
	}
	return t
}

// lastBefore is the latest time name logged a message starting with msg, at
// or before t.
func lastBefore(ev []logEvent, name, msg string, t time.Time) time.Time {
	var last time.Time
	for _, e := range ev {
		if e.instance == name && strings.HasPrefix(e.msg, msg) && !e.at.After(t) && e.at.After(last) {
			last = e.at
		}
	}
	return last
}

func countMsg(ev []logEvent, names []string, msg string) int {
	n := 0
	for _, e := range ev {
		if slices.Contains(names, e.instance) && strings.HasPrefix(e.msg, msg) {
			n++
		}
	}
	return n
}

// logTails is the end of each instance's log, for an error.
func logTails(c *harness.Cluster) string {
	var b strings.Builder
	for _, n := range c.Names {
		data, _ := os.ReadFile(filepath.Join(c.Dir, n+".log"))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "\n--- last log lines of %s:\n%s", n, strings.Join(lines, "\n"))
	}
	return b.String()
}

func others(names []string, not string) []string {
	var out []string
	for _, n := range names {
		if n != not {
			out = append(out, n)
		}
	}
	return out
}

func goVersionOf(root string) string {
	cmd := exec.Command("go", "version")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// stats are the order statistics of a sample.
type stats struct {
	n                      int
	min, median, p95, maxv time.Duration
}

// summarize: the median is the mean of the two middle values of an even
// sample; p95 is the nearest-rank percentile (the ceil(0.95·n)-th smallest).
func summarize(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	rank := int(math.Ceil(0.95 * float64(n)))
	return stats{n: n, min: s[0], median: med, p95: s[rank-1], maxv: s[n-1]}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func mib(b int64) string {
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

type reportData struct {
	started            time.Time
	goVersion          string
	planned, crash     []rep
	rssFresh, rssAfter map[string]int64
	names              []string
	elapsed            time.Duration
}

func report(w io.Writer, d reportData) {
	pick := func(rs []rep, f func(rep) time.Duration) []time.Duration {
		var out []time.Duration
		for _, r := range rs {
			out = append(out, f(r))
		}
		return out
	}
	row := func(what string, s stats, target string) {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s |\n", what, s.n, ms(s.min), ms(s.median), ms(s.p95), ms(s.maxv), target)
	}
	verdict := func(s stats, limit time.Duration) string {
		if s.median <= limit {
			return fmt.Sprintf("≤ %s median: met", ms(limit))
		}
		return fmt.Sprintf("≤ %s median: **missed**", ms(limit))
	}

	fmt.Fprintf(w, "## Fail-over benchmark results\n\n")
	fmt.Fprintf(w, "- date: %s\n", d.started.Format(time.RFC3339))
	fmt.Fprintf(w, "- machine: %d CPUs (nproc), %s, %s, Linux %s\n", runtime.NumCPU(), harness.CPUModel(), runtime.GOARCH, harness.Kernel())
	fmt.Fprintf(w, "- %s\n", d.goVersion)
	fmt.Fprintf(w, "- command: `go run ./bench/failover %s` (%v in all)\n", strings.Join(os.Args[1:], " "), d.elapsed.Round(time.Second))
	fmt.Fprintf(w, "- cluster: 3 instances on 127.0.0.1, default properties (raft heartbeat 500ms, election 500ms, leader lease 250ms, commit 50ms); new active observed by polling each survivor's `GET /v1/instance` every %v\n\n", *flagPoll)

	fmt.Fprintf(w, "| fail-over | n | min | median | p95 | max | target |\n")
	fmt.Fprintf(w, "| --- | --: | --: | --: | --: | --: | --- |\n")
	pl := summarize(pick(d.planned, func(r rep) time.Duration { return r.observed }))
	row("planned: `ftstop -i` run → new active seen", pl, verdict(pl, 300*time.Millisecond))
	row("planned: `ftstop -i` wall time", summarize(pick(d.planned, func(r rep) time.Duration { return r.ftstop })), "(returns after the new lease is confirmed and the old process has gone)")
	cr := summarize(pick(d.crash, func(r rep) time.Duration { return r.observed }))
	row("crash: `kill -9` of the active → new active seen", cr, verdict(cr, 2*time.Second))
	fmt.Fprintln(w)

	phaseTable := func(title string, rs []rep, segs []segment) {
		fmt.Fprintf(w, "%s, from the instances' JSON log timestamps (same clock as the benchmark):\n\n", title)
		fmt.Fprintf(w, "| phase | n | median | p95 | max |\n| --- | --: | --: | --: | --: |\n")
		for _, sg := range segs {
			var ds []time.Duration
			for _, r := range rs {
				if d, ok := r.span(sg); ok {
					ds = append(ds, d)
				}
			}
			s := summarize(ds)
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", sg.name, s.n, ms(s.median), ms(s.p95), ms(s.maxv))
		}
		var refused, retried, multi int
		for _, r := range rs {
			if r.prevoteRefused {
				refused++
			}
			if r.electionRetry {
				retried++
			}
			if r.candidacies > 1 {
				multi++
			}
		}
		fmt.Fprintf(w, "\nOf %d repetitions: %d with more than one candidacy among the survivors, %d with a pre-vote refused, %d with an election timeout (a second round).\n\n",
			len(rs), multi, refused, retried)
	}
	phaseTable("Planned fail-over phases", d.planned, plannedSegments)
	phaseTable("Crash fail-over phases", d.crash, crashSegments)

	fmt.Fprintf(w, "Standby list: after %d of %d fail-overs the new active's standby list still lacked an instance %v after the restart, although that instance answered READY with the new active as its leader",
		len(unlisted), len(d.planned)+len(d.crash), settleWait)
	if len(unlisted) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(unlisted, "; "))
	}
	fmt.Fprintf(w, ".\n\n")

	fmt.Fprintf(w, "Raw times (ms), in order:\n\n")
	raw := func(label string, rs []rep, f func(rep) time.Duration) {
		var parts []string
		for _, r := range rs {
			parts = append(parts, fmt.Sprintf("%.0f", float64(f(r))/float64(time.Millisecond)))
		}
		fmt.Fprintf(w, "- %s: %s\n", label, strings.Join(parts, ", "))
	}
	raw("planned, new active seen", d.planned, func(r rep) time.Duration { return r.observed })
	raw("planned, ftstop wall time", d.planned, func(r rep) time.Duration { return r.ftstop })
	raw("crash, new active seen", d.crash, func(r rep) time.Duration { return r.observed })
	fmt.Fprintln(w)

	fmt.Fprintf(w, "Idle RSS (VmRSS) after %v idle, target ≤ 50 MiB per instance:\n\n", *flagIdle)
	fmt.Fprintf(w, "| instance | fresh cluster | after the fail-overs |\n| --- | --: | --: |\n")
	var maxFresh, maxAfter int64
	for _, n := range d.names {
		fmt.Fprintf(w, "| %s | %s | %s |\n", n, mib(d.rssFresh[n]), mib(d.rssAfter[n]))
		maxFresh, maxAfter = max(maxFresh, d.rssFresh[n]), max(maxAfter, d.rssAfter[n])
	}
	verdictRSS := "met"
	if max(maxFresh, maxAfter) > 50<<20 {
		verdictRSS = "**missed**"
	}
	fmt.Fprintf(w, "| **max** | **%s** | **%s** |\n\nRSS target ≤ 50 MiB: %s.\n", mib(maxFresh), mib(maxAfter), verdictRSS)
}
