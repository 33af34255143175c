package replicated

import "github.com/ftagent/ftagent/pkg/replog"

// The transfer kinds are in every build's first command format, but for
// KindCreateV2, which format 2 added, KindFilesV2, format 3, KindCreateV3,
// format 4, KindPrune, format 5, and KindCreateOpen and KindAppend, format
// 6. A kind added later, or one whose data changes in a way older builds
// would misread, is registered at the format
// that introduced it (see replog.RegisterKind): the active then proposes it
// only once every instance reads that format (pkg/ha's FormatVersion is
// raised to it).
func init() {
	for _, k := range Kinds {
		replog.RegisterKind(k, 1)
	}
	replog.RegisterKind(KindCreateV2, formatCreateV2)
	replog.RegisterKind(KindFilesV2, formatFilesV2)
	replog.RegisterKind(KindCreateV3, formatDirs)
	replog.RegisterKind(KindPrune, FormatPrune)
	replog.RegisterKind(KindCreateOpen, FormatOpen)
	replog.RegisterKind(KindAppend, FormatOpen)
	replog.RegisterKind(KindInbound, FormatInbound)
	replog.RegisterKind(KindReceiver, FormatInbound)
	replog.RegisterKind(KindSwitch, FormatInbound)
	replog.RegisterKind(KindReconcile, FormatInbound)
	replog.RegisterKind(KindTold, FormatInbound)
}

// formatCreateV2 is the command format that introduced KindCreateV2.
const formatCreateV2 = 2

// formatFilesV2 is the command format that introduced KindFilesV2.
const formatFilesV2 = 3

// formatDirs is the command format that introduced KindCreateV3: a
// transfer's directories, and names that are not UTF-8 (escaped, names.go).
const formatDirs = 4

// FormatPrune is the command format that introduced KindPrune: once every
// instance reads it, history is pruned by explicit entries and creates
// prune nothing themselves.
const FormatPrune = 5

// FormatOpen is the command format that introduced KindCreateOpen and
// KindAppend: once every instance reads it, a request of many files is
// created in several bounded entries (open.go).
const FormatOpen = 6
