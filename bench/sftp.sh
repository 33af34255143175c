#!/usr/bin/env bash
# Measures SFTP partners (issue 13): one agent (three instances) sends a
# 1 GiB file and 10,000 files of 4 KiB to an sshd of the run's own on
# 127.0.0.1 (test/harness StartSSHD: internal-sftp, key login), and fetches
# the 1 GiB file back, side by side with OpenSSH's `sftp -b` and `scp` for
# the same data, alternating; also the OpenSSH runs followed by `sync -f`
# (ftagent fsyncs every file it writes), and the active's peak RSS and CPU.
# Progress goes to stderr; the markdown report goes to stdout. Run it as
# root (sshd, its account, the RSS peak reset through clear_refs), on an
# otherwise idle machine.
#
#   bench/sftp.sh                   # 3 repetitions of each, alternating
#   bench/sftp.sh -n 5              # more repetitions
#   bench/sftp.sh -files 0          # the large file only (sent and fetched)
#   bench/sftp.sh -size 0           # the many files only
#   bench/sftp.sh -props sftp.PARTNER.maxConnections=2   # extra properties
#   bench/sftp.sh -ssh-cipher aes128-gcm@openssh.com    # OpenSSH with ftagent's cipher
#   bench/sftp.sh -h                # every flag
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v sftp >/dev/null && command -v scp >/dev/null || missing+=(openssh-client)
if [ ${#missing[@]} -gt 0 ]; then
	echo "${missing[*]} not found: installing with apt-get" >&2
	apt-get update >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi
exec go run ./bench/sftp -root . "$@"
