package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/test/harness"
)

// raftUse is what an active's raft entries took during a run, by kind:
// the count, and the sum of their times from submission to commit and
// apply (ftagent_raft_apply_seconds), plus the large file's checkpoints
// (ftagent_checkpoint_commit_seconds, as kind "checkpoint").
type raftUse map[string]raftKind

type raftKind struct {
	count float64
	sum   float64 // seconds
}

// scrapeRaft reads an instance's raft entry histograms from its /metrics.
func scrapeRaft(c *harness.Cluster, name string) (raftUse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr[name]+api.PathMetrics, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", api.PathMetrics, resp.Status)
	}
	out := raftUse{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var kind, field string
		switch {
		case strings.HasPrefix(line, "ftagent_raft_apply_seconds_sum{"), strings.HasPrefix(line, "ftagent_raft_apply_seconds_count{"):
			_, rest, _ := strings.Cut(line, `kind="`)
			kind, _, _ = strings.Cut(rest, `"`)
			field = line[len("ftagent_raft_apply_seconds_"):strings.IndexByte(line, '{')]
		case strings.HasPrefix(line, "ftagent_checkpoint_commit_seconds_sum "), strings.HasPrefix(line, "ftagent_checkpoint_commit_seconds_count "):
			kind = "checkpoint"
			field = line[len("ftagent_checkpoint_commit_seconds_"):strings.IndexByte(line, ' ')]
		default:
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		k := out[kind]
		if field == "sum" {
			k.sum = v
		} else {
			k.count = v
		}
		out[kind] = k
	}
	return out, sc.Err()
}

// minus is u - before, without the kinds that did not change.
func (u raftUse) minus(before raftUse) raftUse {
	out := raftUse{}
	for k, v := range u {
		b := before[k]
		if d := (raftKind{count: v.count - b.count, sum: v.sum - b.sum}); d.count > 0 {
			out[k] = d
		}
	}
	return out
}

// text is u in short form: kind ×count sum.
func (u raftUse) text() string {
	var kinds []string
	for k := range u {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s ×%.0f %.0f ms", k, u[k].count, u[k].sum*1000))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
