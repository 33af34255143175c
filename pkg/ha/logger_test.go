package ha

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestRaftLoggerThrottlesRepeatedComplaints(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	w := &hclogWriter{log: zerolog.New(&out), every: 10 * time.Second, seen: map[string]*repeats{}, now: func() time.Time { return now }}
	line := func(level, msg, target string) {
		b, _ := json.Marshal(map[string]any{"@level": level, "@message": msg, "@module": "raft", "target": map[string]string{"ID": target}})
		if _, err := w.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		line("error", "failed to make requestVote RPC", "ha2")
		line("info", "entering candidate state", "")
		now = now.Add(time.Second)
	}
	line("error", "failed to make requestVote RPC", "ha3") // another peer: its own count
	now = now.Add(6 * time.Second)
	line("error", "failed to make requestVote RPC", "ha2")

	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	var errs []map[string]any
	infos := 0
	for _, m := range got {
		switch m["level"] {
		case "error":
			errs = append(errs, m)
		case "info":
			infos++
		}
	}
	if infos != 5 {
		t.Errorf("%d info lines, want all 5 (only warnings and errors are throttled)", infos)
	}
	if len(errs) != 3 {
		t.Fatalf("%d error lines, want 3 (first for ha2, first for ha3, ha2 again after the window): %v", len(errs), errs)
	}
	if n, _ := errs[2]["repeatsNotLogged"].(float64); n != 4 {
		t.Errorf("repeat after the window says %v repeats not logged, want 4", errs[2]["repeatsNotLogged"])
	}
	if _, ok := errs[0]["repeatsNotLogged"]; ok {
		t.Errorf("first line carries repeatsNotLogged: %v", errs[0])
	}
}
