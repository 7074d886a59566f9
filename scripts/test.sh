#!/bin/bash
# Build ingestfs and run the whole test suite: unit tests and the FUSE
# integration tests against the local API simulator.  Installs missing
# Debian packages first.  Usage: scripts/test.sh [BUILD_DIR]
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${1:-build}

scripts/deps.sh

if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" -Dwerror=true >/dev/null
fi
ninja -C "$BUILD"

set +e
meson test -C "$BUILD" --print-errorlogs
rc=$?
set -e

# meson shows one line per test program; end with the test-case counts
log="$BUILD/meson-logs/testlog.txt"
units=$(grep -Eh '^test_[a-z]+: [0-9]+ checks, [0-9]+ failed' "$log" || true)
[ -n "$units" ] && echo "$units"
line=$(grep -E '^=+ .*[0-9]+ (passed|failed|error).* in [0-9.]+s.* =+$' "$log" | tail -n 1 || true)
if [ -z "$line" ]; then
	echo "0 passed, 1 failed (no pytest summary found: integration tests did not run)"
	exit 1
fi
# the closing line: pytest's own summary
echo "$line"
exit $rc
