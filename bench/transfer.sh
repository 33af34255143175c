#!/usr/bin/env bash
# Measures ftagent transfers on three local instances at default properties,
# side by side with cp and rsync on the same disk: one 1 GiB file (warm and,
# where the caches can be dropped, cold) against cp and cp + sync, a 256 MiB
# file, 10,000 files of 4 KiB against rsync -r, and the active's peak RSS;
# then where the time goes. Progress goes to stderr; the markdown report
# (recorded in docs/performance.md) goes to stdout. About 4 minutes; run it
# as root for the cold runs (drop_caches) and the RSS peak reset (clear_refs),
# on an otherwise idle machine, and not within ~6 minutes of deleting many
# files on the same ext4 file system (a previous run's clean-up included):
# see the caveats in docs/performance.md.
#
#   bench/transfer.sh                          # everything, at the defaults
#   bench/transfer.sh -n 3 -n-cold 0 -n-small 2 -explain=false   # quicker
#   bench/transfer.sh -large=false -explain=false -files-small 0 -n-small 3 -n-rsync 2   # the 10,000 files only (~40 s)
#   bench/transfer.sh -keep                    # keep binaries, data and instance logs
#   bench/transfer.sh -h                       # every flag
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v rsync >/dev/null; then
	echo "rsync not found: installing it with apt-get" >&2
	apt-get update >&2
	apt-get install -y rsync >&2
fi
exec go run ./bench/transfer -root . "$@"
