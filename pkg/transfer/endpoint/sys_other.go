//go:build !linux || arm

package endpoint

import "os"

func startWriteback(*os.File, int64, int64) {}

func datasync(f *os.File) error { return f.Sync() }

// syncFS: no syncfs(2) here; SyncParts falls back to one fsync a file.
func syncFS(string) error { return errNoSyncFS }
