#!/bin/bash
# Build ingestfs and mount it against the bundled API simulator, then show
# what an operator sees.  Installs missing Debian packages first.
#   scripts/demo.sh          show, then unmount and clean up
#   scripts/demo.sh --keep   leave it mounted and say how to stop it
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

WORK=$(mktemp -d /tmp/ingestfs-demo.XXXXXX)
MNT=$WORK/mnt
SIM_PID=
cleanup() {
	# also when interrupted while showing the mount: leave it first, and
	# let no failed step keep the others from running
	cd /
	if [ "$KEEP" = 0 ]; then
		if mountpoint -q "$MNT" 2>/dev/null; then
			fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" || true
		fi
		[ -z "$SIM_PID" ] || kill "$SIM_PID" 2>/dev/null || true
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap "exit 130" INT TERM PIPE HUP

# a throwaway key for this demo only, shared by the simulator and the mount
umask 077
USER_ID=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
API_KEY=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
printf 'user_id = %s\napi_key = %s\n' "$USER_ID" "$API_KEY" >"$WORK/credentials"
/usr/bin/python3 tests/apisim.py --port-file "$WORK/port" --credentials "$WORK/credentials" &
SIM_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/port")
mkdir "$MNT"

OPTS="api_url=http://127.0.0.1:$PORT,credentials=$WORK/credentials,ttl=5"
echo "\$ ingestfs --check -o $OPTS"
"$ROOT/build/ingestfs" --check -o "$OPTS"
echo
"$ROOT/build/ingestfs" -o "$OPTS" "$MNT"

cd "$MNT"
run() { echo "\$ $*"; "$@"; echo; }
run ls -l
echo "\$ cat */state"; cat */state; echo
echo "\$ grep -l DELETE */operation"; grep -l DELETE */operation; echo
run ls -l .by-operation/DELETE
run cat 5eead8d6-79e3-4a3d-915e-a886199dfde0/raw.json
run cat .status
cd /

if [ "$KEEP" = 1 ]; then
	echo "mounted at $MNT (simulator pid $SIM_PID on port $PORT)"
	echo "stop with: fusermount3 -u $MNT; kill $SIM_PID; rm -rf $WORK"
fi
