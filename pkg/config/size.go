package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// sizeRE is a whole number of bytes with an optional unit: B, or K, M or G
// optionally followed by B or iB. Matched case-insensitively.
var sizeRE = regexp.MustCompile(`(?i)^([0-9]+)(?:([kmg])(?:i?b)?|b)?$`)

// ParseSize parses a size in bytes as rsync and rclone write them: a whole
// number with an optional K, M or G suffix, 1024-based and of any case,
// optionally followed by B or iB ("512K", "64M", "64MiB", "1gb", "4096",
// "4096B"). Surrounding white space is ignored; a sign, a fraction, an
// exponent or white space inside the value is an error. Errors name the
// value. Rates (maxBandwidth, --bwlimit) use the same form, per second.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("invalid size %q: empty", s)
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid size %q: must not be negative", s)
	}
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid size %q: want a whole number of bytes with an optional K, M or G suffix (1024-based), e.g. 512K, 64M, 1G", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	var mult int64 = 1
	switch strings.ToLower(m[2]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}

// formatSize writes n in the largest unit that divides it exactly ("64M",
// "512K", "1000").
func formatSize(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}
