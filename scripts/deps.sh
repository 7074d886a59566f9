#!/bin/sh
# Install the Debian 12 packages ingestfs needs, but only those missing.
# Run as root (or with sudo).
#   scripts/deps.sh         build, test and run the demo
#   scripts/deps.sh extra   also clang, its sanitizer and fuzzer runtimes, valgrind,
#                           and what the Debian package needs (as deb)
#   scripts/deps.sh deb     also build-essential, debhelper, dpkg-dev, lintian, man-db
set -eu

PKGS="meson ninja-build pkg-config gcc libc6-dev libfuse3-dev fuse3
      libcurl4-openssl-dev libcjson-dev libssl-dev zlib1g-dev
      python3 python3-pytest python3-cryptography rsync tar diffutils findutils grep procps
      groff-base mandoc ca-certificates util-linux stress-ng
      restic borgbackup"
DEB_PKGS="build-essential debhelper dpkg-dev lintian man-db"
case "${1:-}" in
extra) PKGS="$PKGS clang clang-format libclang-rt-14-dev llvm valgrind $DEB_PKGS" ;;
deb) PKGS="$PKGS $DEB_PKGS" ;;
esac

missing=""
for p in $PKGS; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$status" in
	ii*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
echo "deps: installing:$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
