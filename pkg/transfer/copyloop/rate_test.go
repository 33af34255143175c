package copyloop

import (
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"100", 100},
		{"0", 0},
		{"100B", 100},
		{"512K", 512 << 10},
		{"512k", 512 << 10},
		{"512KB", 512 << 10},
		{"512KiB", 512 << 10},
		{"64M", 64 << 20},
		{"64MiB", 64 << 20},
		{"64mib", 64 << 20},
		{"64mb", 64 << 20},
		{"1G", 1 << 30},
		{"1g", 1 << 30},
		{"2T", 2 << 40},
		{"1P", 1 << 50},
		{"1.5M", 3 << 19},
		{"0.5K", 512},
		{".5K", 512},
		{"1.5", 1},
		{" 64M ", 64 << 20},
	} {
		got, err := ParseRate(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{
		"", "M", "KiB", "b", "-1M", "+1M", "1.2.3M", "1e6", "0x10", "64X", "64MX", "iB", "64iB",
		"1 M", "inf", "NaN", "10000000000P", "9223372036854775808",
	} {
		got, err := ParseRate(in)
		if err == nil {
			t.Errorf("ParseRate(%q) = %d, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("ParseRate(%q): %q does not name the value", in, err)
		}
	}
}
