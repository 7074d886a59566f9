#!/bin/sh
# Install the Debian 12 packages ingestfs needs to build, test and run its
# demo, but only those that are missing.  Run as root (or with sudo).
set -eu

PKGS="meson ninja-build pkg-config gcc libc6-dev libfuse3-dev fuse3
      libcurl4-openssl-dev libcjson-dev libssl-dev zlib1g-dev
      python3 python3-pytest rsync tar diffutils findutils grep procps
      groff-base ca-certificates"
[ "${INGESTFS_EXTRA_PKGS:-}" ] && PKGS="$PKGS $INGESTFS_EXTRA_PKGS"

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
