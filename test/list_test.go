package test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/test/harness"
)

// `transfer list` pages through the kept transfers with the command its
// last line gives, and filters them by state and age.
func TestTransferListPagesAndFilters(t *testing.T) {
	c := newCluster(t, harness.Options{})
	startAll(t, c)
	wait(t, c, 20*time.Second, "one active", activeWithStandbys(2))
	var ids []string
	for i := range 3 {
		xferRandomFile(t, c, fmt.Sprintf("in/l%d.bin", i), 1000, uint64(i+1))
		ids = append(ids, xferCreate(t, c, "--wait", fmt.Sprintf("in/l%d.bin", i), fmt.Sprintf("out/l%d.bin", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list := func(args ...string) (rows []string, next []string) {
		t.Helper()
		r, err := c.Transfer(ctx, "list", args...)
		if err != nil || r.Exit != 0 {
			t.Fatalf("transfer list %v: exit %d %v: %s", args, r.Exit, err, r.Stderr)
		}
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n")[1:] {
			if _, cmd, ok := strings.Cut(line, "next: ftagent transfer list "); ok {
				next = strings.Fields(cmd)
				continue
			}
			rows = append(rows, strings.Fields(line)[0])
		}
		return rows, next
	}
	rows, next := list("--count", "2")
	if strings.Join(rows, " ") != ids[0]+" "+ids[1] || len(next) == 0 {
		t.Fatalf("first page %v next %v, want %v and a next page", rows, next, ids[:2])
	}
	if !regexp.MustCompile(`^--after \S+ --count 2$`).MatchString(strings.Join(next, " ")) {
		t.Fatalf("the next page's command: %v", next)
	}
	rows, next = list(next...)
	if strings.Join(rows, " ") != ids[2] || next != nil {
		t.Fatalf("second page %v next %v, want %v alone", rows, next, ids[2:])
	}
	if rows, _ = list("--state", "failed,cancelled"); len(rows) != 0 {
		t.Fatalf("failed or cancelled: %v", rows)
	}
	if rows, _ = list("--state", "completed", "--since", "1h"); len(rows) != 3 {
		t.Fatalf("completed within the hour: %v", rows)
	}
	if rows, _ = list("--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(rows) != 0 {
		t.Fatalf("created in an hour's time: %v", rows)
	}
	r, err := c.Transfer(ctx, "list", "--state", "done")
	if err != nil || r.Exit == 0 || !strings.Contains(r.Stderr, `"done" is not one of`) || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Fatalf("a bad state: exit %d %v, stderr %q (want one clear line)", r.Exit, err, r.Stderr)
	}
}
