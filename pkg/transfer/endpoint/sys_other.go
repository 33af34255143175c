//go:build unix && !linux

package endpoint

import "os"

// pathOnly: no O_PATH here; a name is opened for reading to look at it.
const pathOnly = 0

func startWriteback(*os.File, int64, int64) {}

func datasync(f *os.File) error { return f.Sync() }

// No syncfs(2) here: a batch's files are synced one by one.
func syncfs(int) error { return errNoExclusiveRename }

func trustSyncFS(int) bool { return false }

func renameExclusive(int, string, string) error { return errNoExclusiveRename }
