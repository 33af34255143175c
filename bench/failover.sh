#!/usr/bin/env bash
# Measures ftagent fail-over on three local instances at the default timeouts:
# planned (ftstop -i) and crash (kill -9 of the active), each repeated -n times
# (default 20), and the idle RSS of each instance. Progress goes to stderr; the
# markdown report (recorded in docs/performance.md) goes to stdout.
#
#   bench/failover.sh            # 20 repetitions of each
#   bench/failover.sh -n 40      # more repetitions
#   bench/failover.sh -keep      # keep binaries, properties and instance logs
#   bench/failover.sh -h         # every flag
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./bench/failover -root . "$@"
