//go:build !linux || !(amd64 || arm64)

package endpoint

func renameExclusive(string, string) error { return errNoExclusiveRename }
