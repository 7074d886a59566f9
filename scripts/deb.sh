#!/bin/bash
# Build the Debian package (run as root, or with sudo for the dependencies):
#   scripts/deb.sh [OUTDIR]      default OUTDIR: ingestfs-deb/ in this tree
# Installs the missing build dependencies (scripts/deps.sh deb), copies the
# files git knows (tracked, or new and not ignored) to OUTDIR/src and runs
# dpkg-buildpackage -us -uc -b there; the .deb, .changes and .buildinfo land
# in OUTDIR, and the last line names the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-$PWD/ingestfs-deb}
scripts/deps.sh deb
rm -rf "$OUT/src"
mkdir -p "$OUT/src"
rm -f "$OUT"/ingestfs*_*.deb "$OUT"/ingestfs_*.changes "$OUT"/ingestfs_*.buildinfo
git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$OUT/src"
if ! (cd "$OUT/src" && dpkg-buildpackage -us -uc -b) >"$OUT/build.log" 2>&1; then
	tail -n 40 "$OUT/build.log"
	echo "deb: dpkg-buildpackage failed; the whole log is $OUT/build.log" >&2
	exit 1
fi
rm -rf "$OUT/src"
echo "$OUT/ingestfs_$(dpkg-parsechangelog -l debian/changelog -S Version)_$(dpkg --print-architecture).deb"
