// Package version reports the build's version: stamped at link time, else taken
// from the build information Go embeds.
package version

import (
	"runtime/debug"
	"sync"
)

// Version is set at build time:
//
//	go build -ldflags "-X github.com/ftagent/ftagent/pkg/version.Version=1.2.0" ./cmd/ftagent
var Version = ""

var (
	once     sync.Once
	computed string
)

// String returns the version of this binary. Without a stamped version it falls
// back to the VCS revision Go embeds (with "+dirty" for modified trees), then to
// the module version, then to "dev".
func String() string {
	once.Do(func() { computed = compute() })
	return computed
}

func compute() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified == "true" {
			rev += "+dirty"
		}
		return "dev-" + rev
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return "dev"
}
