#!/bin/bash
# The peer: what a user would run from cron every TTL instead of mounting
# ingestfs.  Fetches the ingest point tasks collection (signed like ingestfs
# signs, classic msg/sig) and writes it to TARGET as ingestfs shows it: one
# folder per task with state, operation, timestamp and raw.json, only the
# files that changed, each through a temporary file and rename(2); folders
# of tasks that are gone are removed.  See bench/peer_sync.py.
#
#   bench/peer.sh API_URL CREDENTIALS TARGET
#   e.g. in a crontab:  * * * * *  flock -n /run/tasks.lock bench/peer.sh ...
#
# Prints on stderr one `fetch:` line (curl's status, bytes and seconds) and
# the writer's `peer:` line.  A failed fetch or an answer that is not the
# collection changes nothing and exits non-zero.
set -euo pipefail
here=$(dirname "$0")
api=${1:?API_URL}
cred=${2:?CREDENTIALS}
target=${3:?TARGET}
route=/api/v4/managed-slicer/ingest-points/tasks

query=$(/usr/bin/python3 "$here/peer_sync.py" sign "$cred")
curl --silent --show-error --fail --max-time 600 --noproxy '*' \
	--write-out '%{stderr}fetch: status %{http_code}, %{size_download} bytes, %{time_total} s\n' \
	"$api$route?$query" |
	/usr/bin/python3 "$here/peer_sync.py" write "$target"
