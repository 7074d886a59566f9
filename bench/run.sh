#!/bin/sh
# ingestfs benchmark: ingestfs vs a tmpfs copy of the same tree.
#   bench/run.sh [--sizes 10000,100000,200000] [--repeat 3] [--smoke]
#                [--binary PATH] [--out FILE]
# See bench/README.md.  Needs root (tmpfs mount, drop_caches), FUSE,
# fusermount3, rsync, meson and ninja (unless --binary is given).
BENCH_ARGV0=${BENCH_ARGV0:-bench/run.sh}
export BENCH_ARGV0
exec /usr/bin/python3 "$(dirname "$0")/bench.py" "$@"
