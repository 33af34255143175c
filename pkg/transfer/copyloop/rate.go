package copyloop

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseRate parses a size per second as rsync and rclone write it: a number,
// possibly with a fraction, and an optional unit K, M, G, T or P (powers of
// 1024, upper or lower case), optionally followed by "B" or "iB": "100",
// "512K", "64M", "1.5M", "64MiB", "1g". Fractional bytes are rounded down.
// "0" is 0, which callers take as no limit.
func ParseRate(s string) (int64, error) {
	bad := func(why string) (int64, error) {
		return 0, fmt.Errorf("invalid rate %q: %s (want bytes per second such as 100, 512K, 64M, 1.5G)", s, why)
	}
	lower := strings.ToLower(strings.TrimSpace(s))
	binary := strings.HasSuffix(lower, "ib")
	if binary {
		lower = strings.TrimSuffix(lower, "ib")
	} else {
		lower = strings.TrimSuffix(lower, "b")
	}
	mult := int64(1)
	if n := len(lower); n > 0 {
		if i := strings.IndexByte("kmgtp", lower[n-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			lower = lower[:n-1]
		} else if binary {
			return bad(`"iB" needs a unit before it`)
		}
	}
	if lower == "" {
		return bad("no number")
	}
	digits, dots := 0, 0
	for _, c := range lower {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return bad(fmt.Sprintf("unexpected %q", c))
		}
	}
	if digits == 0 || dots > 1 {
		return bad("malformed number")
	}
	if dots == 0 {
		v, err := strconv.ParseInt(lower, 10, 64)
		if err != nil || v > math.MaxInt64/mult {
			return bad("too large")
		}
		return v * mult, nil
	}
	v, err := strconv.ParseFloat(lower, 64)
	if err != nil {
		return bad("malformed number")
	}
	r := math.Floor(v * float64(mult))
	if r >= math.MaxInt64 {
		return bad("too large")
	}
	return int64(r), nil
}
