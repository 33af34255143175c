package replog

import (
	"fmt"
	"sync"
)

// The command-kind registry: every kind a build applies, with the format that
// introduced it. pkg/ha registers its own (the lease); a StateMachine's
// package registers the kinds it owns (pkg/transfer/replicated does it in an
// init function). The registry is what the replicated state trusts to tell a
// command it knows from one it does not, and what pkg/ha's Node.Apply
// consults before it proposes anything.
var kindRegistry = struct {
	sync.RWMutex
	formats map[string]int
}{formats: map[string]int{}}

// RegisterKind declares a command kind this build applies, introduced in
// format. Format 1 is the first format: every build reads it. A kind that a
// newer build adds (or whose data it changes in a way older builds would
// misread) is registered at a new format, and pkg/ha's FormatVersion is
// raised to it. Call RegisterKind from an init function, before any node
// starts; it panics on a kind registered twice with different formats.
func RegisterKind(kind string, format int) {
	if kind == "" || format < 1 {
		panic(fmt.Sprintf("replog.RegisterKind(%q, %d): a kind needs a name and a format of at least 1", kind, format))
	}
	kindRegistry.Lock()
	defer kindRegistry.Unlock()
	if f, ok := kindRegistry.formats[kind]; ok && f != format {
		panic(fmt.Sprintf("replog.RegisterKind(%q, %d): already registered with format %d", kind, format, f))
	}
	kindRegistry.formats[kind] = format
}

// KindFormat returns the format that introduced kind, and whether this build
// knows kind at all.
func KindFormat(kind string) (int, bool) {
	kindRegistry.RLock()
	defer kindRegistry.RUnlock()
	f, ok := kindRegistry.formats[kind]
	return f, ok
}
