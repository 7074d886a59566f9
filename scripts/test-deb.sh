#!/bin/bash
# The Debian package, from build to mount to purge (run as root; CI step 6):
#   1. build it with dpkg-buildpackage from a copy of this tree;
#   2. lintian: no error, no warning;
#   3. apt-get install ./ingestfs_*.deb (dependencies resolved by apt);
#   4. man -w ingestfs finds the page;
#   5. mount through an /etc/fstab line with the installed binary (mount(8)
#      -> mount.fuse3 -> /usr/bin/ingestfs) against the API simulator, list
#      the tasks, read one, unmount;
#   6. apt-get purge, and no file the package installed is left.
# Refuses to run when ingestfs is already installed (it would purge it).
# Everything it changes (fstab line, package, temporary folder) is put back
# on exit, also on failure.  The last line says how many checks passed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TAG="# ingestfs package test $$"
checks=0
ok() { checks=$((checks + 1)); echo "ok: $*"; }
die() { echo "FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: it installs a package and edits /etc/fstab"
if dpkg-query -W -f='${db:Status-Abbrev}' ingestfs 2>/dev/null | grep -q '^.i'; then
	die "the ingestfs package is installed; this test installs and purges it: remove it first"
fi
scripts/deps.sh deb

WORK=$(mktemp -d /tmp/ingestfs-deb.XXXXXX)
MNT=$WORK/mnt
SIM_PID=
INSTALLED=0
cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && { umount "$MNT" || fusermount3 -u -z "$MNT"; }
	if grep -qF "$TAG" /etc/fstab; then
		grep -vF "$TAG" /etc/fstab >"$WORK/fstab" && cat "$WORK/fstab" >/etc/fstab
	fi
	[ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null
	[ "$INSTALLED" = 1 ] && DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ingestfs >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 130" INT TERM PIPE HUP

# 1. build
start=$SECONDS
DEB=$(scripts/deb.sh "$WORK" | tail -n 1) || die "scripts/deb.sh"
VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
[ -f "$DEB" ] || die "no $DEB after the build: $(ls "$WORK")"
ok "dpkg-buildpackage -us -uc -b built $(basename "$DEB") in $((SECONDS - start)) s"

# 2. lintian
lintian --fail-on error,warning "$WORK"/ingestfs_*.changes || die "lintian"
ok "lintian: no error, no warning"

# 3. install with apt, which resolves the dependencies
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$DEB" >/dev/null || die "apt-get install"
INSTALLED=1
dpkg -L ingestfs >"$WORK/files"
[ -x /usr/bin/ingestfs ] || die "/usr/bin/ingestfs missing"
[ "$(/usr/bin/ingestfs --version | head -1 | awk '{print $2}')" = "$VERSION" ] ||
	die "ingestfs --version does not say $VERSION"
for f in /lib/systemd/system/ingestfs@.service /lib/systemd/system/srv-tasks.mount \
	/usr/share/doc/ingestfs/README.md.gz /usr/share/doc/ingestfs/examples/credentials.example \
	/usr/share/doc/ingestfs/examples/fstab.example; do
	[ -f "$f" ] || die "$f missing"
done
grep -q '^ExecStart=/usr/bin/ingestfs ' /lib/systemd/system/ingestfs@.service ||
	die "the installed service does not start /usr/bin/ingestfs"
ok "apt-get install: binary, units, README and examples in place"

# 4. the man page
[ "$(man -w ingestfs)" = /usr/share/man/man1/ingestfs.1.gz ] || die "man -w ingestfs: $(man -w ingestfs 2>&1)"
ok "man -w ingestfs: /usr/share/man/man1/ingestfs.1.gz"

# 5. mount through fstab, against the simulator
umask 077
printf 'user_id = %s\napi_key = %s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
	"$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')" >"$WORK/credentials"
umask 022
/usr/bin/python3 tests/apisim.py --port-file "$WORK/port" --credentials "$WORK/credentials" \
	2>"$WORK/apisim.log" &
SIM_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || die "the simulator did not start: $(cat "$WORK/apisim.log")"
mkdir "$MNT"
echo "ingestfs $MNT fuse.ingestfs noauto,api_url=http://127.0.0.1:$(cat "$WORK/port"),credentials=$WORK/credentials,state_dir=$WORK/state,ttl=5 0 0 $TAG" >>/etc/fstab
mount "$MNT" || die "mount $MNT (fstab line: $(grep -F "$TAG" /etc/fstab))"
[ "$(findmnt -n -o FSTYPE "$MNT")" = fuse.ingestfs ] || die "$MNT is not a fuse.ingestfs mount"
pid=$(pgrep -f "^ingestfs ingestfs $MNT" | head -1 || true)
[ -n "$pid" ] || pid=$(pgrep -x ingestfs | head -1 || true)
[ "$(readlink "/proc/$pid/exe")" = /usr/bin/ingestfs ] ||
	die "the daemon is not /usr/bin/ingestfs: pid '$pid' runs $(readlink "/proc/$pid/exe" 2>&1)"
tasks=$(ls "$MNT" | wc -l)
[ "$tasks" -eq 8 ] || die "ls $MNT shows $tasks tasks, the simulator has 8"
[ "$(cat "$MNT/5eead8d6-79e3-4a3d-915e-a886199dfde0/state")" = COMPLETED ] || die "a task's state"
umount "$MNT" || die "umount $MNT"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && die "the daemon still runs after umount"
ok "mount via fstab: /usr/bin/ingestfs, $tasks tasks listed, a state read, umount ended the daemon"

# 6. purge: nothing the package installed is left
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ingestfs >/dev/null || die "apt-get purge"
INSTALLED=0
if dpkg-query -W -f='${db:Status-Abbrev}' ingestfs 2>/dev/null | grep -q '^[^u]'; then
	die "dpkg still knows ingestfs: $(dpkg-query -W -f='${db:Status-Abbrev}' ingestfs)"
fi
left=0
while read -r f; do
	if [ -e "$f" ] && [ ! -d "$f" ]; then
		echo "left after purge: $f" >&2
		left=$((left + 1))
	fi
done <"$WORK/files"
[ "$left" -eq 0 ] || die "$left installed file(s) left after purge"
[ ! -e /usr/share/doc/ingestfs ] || die "/usr/share/doc/ingestfs left after purge"
ok "apt-get purge: none of the $(wc -l <"$WORK/files") installed paths is left"
cd "$ROOT"
echo "deb: $checks passed, 0 failed"
