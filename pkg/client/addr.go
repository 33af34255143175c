package client

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ParseAddresses splits the values of repeated -x flags, each possibly
// comma-separated, trims spaces and drops empty entries, and checks that each
// entry is host:port with a numeric port in 1-65535 (an IPv6 host is written in
// brackets: [::1]:7101). The error names the bad entry. The order is kept, and so
// are duplicates. No entries at all is not an error: the result is empty.
func ParseAddresses(values ...string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, entry := range strings.Split(v, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			if err := checkAddress(entry); err != nil {
				return nil, err
			}
			out = append(out, entry)
		}
	}
	return out, nil
}

// checkAddress reports whether a is host:port with a non-empty host and a
// numeric port in 1-65535.
func checkAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("address %q: want host:port", a)
	}
	if host == "" {
		return fmt.Errorf("address %q: missing host", a)
	}
	if strings.ContainsAny(host, "/?#@ ") {
		return fmt.Errorf("address %q: want host:port, not a URL", a)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strings.ContainsAny(port, "+-") {
		return fmt.Errorf("address %q: port %q is not a number in 1-65535", a, port)
	}
	return nil
}
