package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// plainSeconds matches an unsigned decimal number of seconds: "300", "1.5",
// ".5", "2.". No sign, exponent, underscores or hexadecimal.
var plainSeconds = regexp.MustCompile(`^([0-9]+\.?[0-9]*|\.[0-9]+)$`)

// ParseDuration accepts plain (possibly fractional) seconds as IBM MQ MFT
// does ("300", "1.5") and Go durations ("500ms", "2s", "1m30s"); negative
// is an error. Surrounding white space is ignored.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	if plainSeconds.MatchString(s) {
		// time.ParseDuration does exact decimal arithmetic (no float
		// rounding) and reports overflow.
		d, err := time.ParseDuration(s + "s")
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: out of range", s)
		}
		return d, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want seconds (e.g. 300 or 1.5) or a Go duration (e.g. 500ms, 2s, 1m30s)", s)
	}
	return d, nil
}

// formatDuration writes whole seconds as "300s" (the unit of the file) and
// anything else in Go form ("500ms", "1.5s").
func formatDuration(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// ParseRecoveryTimeout parses a transfer recovery timeout
// (transferRecoveryTimeout, or a transfer's own override): "-1" means retry
// forever and gives RecoverForever; "0" means fail at once; anything else
// is a duration as accepted by ParseDuration. -1 is the only negative value
// allowed.
func ParseRecoveryTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "-1" {
		return RecoverForever, nil
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid recovery timeout %q: the only negative value allowed is -1 (retry forever)", s)
	}
	return ParseDuration(s)
}
