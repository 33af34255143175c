#!/usr/bin/env bash
# Measures agent-to-agent transfers (issue 12): agent ORDERS (three
# instances) sends to agent PAYMENTS (three instances, storage of its own)
# over loopback with TLS, side by side with scp and rsync -e ssh of the same
# data to an sshd of the run's own on 127.0.0.1: one 1 GiB file against scp
# (and scp + sync FILE), 10,000 files of 4 KiB against rsync -r -e ssh (and
# rsync + sync), alternating, and the peak RSS of both actives. Progress goes
# to stderr; the markdown report (recorded in docs/performance.md) goes to
# stdout. About 2 minutes at -n 3; run it as root (sshd, the RSS peak reset
# through clear_refs), on an otherwise idle machine, and not within minutes
# of deleting many files on the same ext4 file system (see the caveats of the
# transfer benchmark in docs/performance.md).
#
#   bench/agents.sh                 # 3 repetitions of each, alternating
#   bench/agents.sh -n 5            # more repetitions
#   bench/agents.sh -files 0        # the large file only
#   bench/agents.sh -size 0         # the many files only
#   bench/agents.sh -ssh-cipher aes128-gcm@openssh.com   # scp/rsync with another cipher
#   bench/agents.sh -files 0 -props checkpointInterval=1G   # what the checkpoints cost
#   bench/agents.sh -keep           # keep binaries, data, instance logs, sshd's files
#   bench/agents.sh -h              # every flag
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v scp >/dev/null || missing+=(openssh-client)
command -v rsync >/dev/null || missing+=(rsync)
if [ ${#missing[@]} -gt 0 ]; then
	echo "${missing[*]} not found: installing with apt-get" >&2
	apt-get update >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi
exec go run ./bench/agents -root . "$@"
