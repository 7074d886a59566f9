#!/bin/bash
# Run the integration suite N times (default 10) while stress-ng keeps both
# CPUs busy, as CI's shared machine may; print one line per run and a
# closing "N passed, N failed".  Builds build-test/gcc if needed.
#   scripts/stress.sh [N] [pytest args...]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
shift || true
scripts/deps.sh || exit 1
dir=build-test/gcc
[ -f $dir/build.ninja ] || meson setup $dir -Dwerror=true >/dev/null || exit 1
ninja -C $dir >/dev/null || exit 1
logs=$(mktemp -d /tmp/ingestfs-stress.XXXXXX)
stress-ng --cpu 2 --timeout 0 --quiet &
load=$!
trap 'kill $load 2>/dev/null; wait $load 2>/dev/null' EXIT
ok=0
bad=0
for i in $(seq 1 "$runs"); do
	if INGESTFS_BIN=$PWD/$dir/ingestfs INGESTFS_SOURCE_ROOT=$PWD \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider tests "$@" >"$logs/run$i.log" 2>&1; then
		ok=$((ok + 1))
	else
		bad=$((bad + 1))
	fi
	echo "run $i: $(tail -n 1 "$logs/run$i.log")"
	grep -E '^FAILED' "$logs/run$i.log" | sed 's/^/    /'
done
echo "logs: $logs"
echo "$ok passed, $bad failed"
[ "$bad" -eq 0 ]
