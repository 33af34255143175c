package agent

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
)

func TestParseListFilter(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	q := url.Values{api.QueryState: {"failed, completed"}, api.QuerySince: {"24h"}}
	f, paged, err := parseListFilter(q, now)
	if err != nil || paged || !f.States["failed"] || !f.States["completed"] || len(f.States) != 2 || !f.Since.Equal(now.Add(-24*time.Hour)) || f.Count != 0 {
		t.Fatalf("%+v paged %v err %v", f, paged, err)
	}
	f, paged, err = parseListFilter(url.Values{api.QuerySince: {"2026-12-01T02:00:00Z"}, api.QueryAfter: {"12.x"}}, now)
	if err != nil || !paged || f.Count != api.DefaultLimit || f.After != "12.x" || !f.Since.Equal(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("%+v paged %v err %v", f, paged, err)
	}
	if f, paged, err = parseListFilter(url.Values{api.QueryCount: {"5"}}, now); err != nil || !paged || f.Count != 5 {
		t.Fatalf("%+v paged %v err %v", f, paged, err)
	}
	for _, bad := range []url.Values{
		{api.QueryState: {"done"}},
		{api.QueryState: {"failed,"}},
		{api.QuerySince: {"yesterday"}},
		{api.QuerySince: {"-1h"}},
		{api.QueryCount: {"0"}},
		{api.QueryCount: {"10001"}},
		{api.QueryCount: {"x"}},
	} {
		_, _, err := parseListFilter(bad, now)
		if err == nil {
			t.Errorf("%v: accepted", bad)
			continue
		}
		for k := range bad {
			if !strings.Contains(err.Error(), k+"=") {
				t.Errorf("%v: the error %q does not name %s", bad, err, k)
			}
		}
	}
}
