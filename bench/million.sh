#!/usr/bin/env bash
# Measures one recursive ftagent transfer of a huge tree on three local
# instances (TLS, default properties but maxFilesPerTransfer, raised above the
# tree's files): whether the agent accepts it and how long that takes, how
# long it then takes to complete, the active's and the standbys' memory while
# accepting and while transferring (VmRSS polled, VmHWM reset through
# clear_refs: run it as root), the raft entries written and the largest of
# them, a check of the copy, and rsync -r of the same tree. A transfer that is
# refused or does not complete within -timeout is reported as such, with the
# memory figures gathered until then. Progress goes to stderr; the markdown
# report goes to stdout.
#
# The tree (by default 1,000,000 files of 1 KiB, 1,000 a directory) is
# generated once in a cache directory under -workdir
# (ftagent-bench-million-cache) and reused by the next run with the same
# -files, -file-size and -per-dir; -keep-tree=false deletes it at the end.
# 1,000,000 files of 1 KiB take about 4 GB on ext4 for each copy (the tree,
# ftagent's, rsync's) and may take the instances several GB of memory.
#
#   bench/million.sh                     # 1,000,000 files (long: see the report's times)
#   bench/million.sh -files 20000        # a quick try
#   bench/million.sh -files 100000 -rsync=false -timeout 20m
#   bench/million.sh -client-timeout 10m # give the command 10 min for the create (default 2 s)
#   bench/million.sh -workdir /mnt/disk  # another disk (the cache goes there too)
#   bench/million.sh -keep               # keep binaries, data, instance logs and the copies
#   bench/million.sh -h                  # every flag
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" -rsync=false "* ]] && ! command -v rsync >/dev/null; then
	echo "rsync not found: installing it with apt-get" >&2
	apt-get update >&2
	apt-get install -y rsync >&2
fi
exec go run ./bench/million -root . "$@"
