package transfer

import "github.com/ftagent/ftagent/pkg/transfer/replicated"

// The replicated state of the transfers lives in pkg/transfer/replicated,
// which imports no endpoint and does no I/O. Its names are given again
// here, so that the rest of the tree names a transfer, its request, its
// view and its states through pkg/transfer as it did before the split.

// The replicated state's types.
type (
	State      = replicated.State
	Transfer   = replicated.Transfer
	File       = replicated.File
	Dir        = replicated.Dir
	Request    = replicated.Request
	Duration   = replicated.Duration
	FileEvent  = replicated.FileEvent
	DirEvent   = replicated.DirEvent
	View       = replicated.View
	FileView   = replicated.FileView
	DirView    = replicated.DirView
	Window     = replicated.Window
	ListFilter = replicated.ListFilter
	Moved      = replicated.Moved
)

// Transfer and file states.
const (
	StateQueued     = replicated.StateQueued
	StateRunning    = replicated.StateRunning
	StateRecovering = replicated.StateRecovering
	StateCompleted  = replicated.StateCompleted
	StateFailed     = replicated.StateFailed
	StateCancelled  = replicated.StateCancelled
)

// Command kinds of the replicated log.
const (
	KindCreate     = replicated.KindCreate
	KindStart      = replicated.KindStart
	KindFiles      = replicated.KindFiles
	KindRecovering = replicated.KindRecovering
	KindFail       = replicated.KindFail
	KindCancel     = replicated.KindCancel
	KindCreateV2   = replicated.KindCreateV2
	KindFilesV2    = replicated.KindFilesV2
	KindCreateV3   = replicated.KindCreateV3
	KindPrune      = replicated.KindPrune
	KindCreateOpen = replicated.KindCreateOpen
	KindAppend     = replicated.KindAppend
)

// File event kinds.
const (
	EventStart         = replicated.EventStart
	EventCheckpoint    = replicated.EventCheckpoint
	EventDone          = replicated.EventDone
	EventFailed        = replicated.EventFailed
	EventSourceDeleted = replicated.EventSourceDeleted
)

// Overwrite and disposition policies.
const (
	OverwriteError    = replicated.OverwriteError
	OverwriteAlways   = replicated.OverwriteAlways
	DispositionLeave  = replicated.DispositionLeave
	DispositionDelete = replicated.DispositionDelete
)

// Errors of Apply.
var (
	ErrNotFound      = replicated.ErrNotFound
	ErrQueueFull     = replicated.ErrQueueFull
	ErrEnded         = replicated.ErrEnded
	ErrAlreadyExists = replicated.ErrAlreadyExists
)

// NewState returns an empty replicated state.
func NewState() *State { return replicated.NewState() }

// Terminal reports whether a transfer or file in state s has ended.
func Terminal(s string) bool { return replicated.Terminal(s) }

// ViewOf makes the client view of t; paths under root are shown relative
// to it, as users give them.
func ViewOf(t *Transfer, root string) View { return replicated.ViewOf(t, root) }

// SummaryOf is ViewOf without the files (Files nil).
func SummaryOf(t *Transfer, root string) View { return replicated.SummaryOf(t, root) }

// PageOf is ViewOf with the files and directories of w only.
func PageOf(t *Transfer, root string, w Window) View { return replicated.PageOf(t, root, w) }

// DecodeRequest reads a request as a client sent it, refusing a field the
// request does not have (replicated.DecodeRequest).
func DecodeRequest(b []byte) (Request, error) { return replicated.DecodeRequest(b) }

// DecodeView decodes a view's JSON (replicated.DecodeView).
func DecodeView(b []byte) (View, error) { return replicated.DecodeView(b) }

// EncodeName is replicated.EncodeName: a file name as a JSON string.
func EncodeName(s string) string { return replicated.EncodeName(s) }

// QuoteName is replicated.QuoteName: a file name for one line of a terminal.
func QuoteName(s string) string { return replicated.QuoteName(s) }

// Text is replicated.Text: any text for one line of a terminal.
func Text(s string) string { return replicated.Text(s) }
