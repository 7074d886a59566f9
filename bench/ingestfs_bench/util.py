"""Small shared helpers: the source tree, the environment every command
runs in, the benchmark's error, logging, number formatting, running a
command for its output, and the "other CPU" verdict.

Owns: ROOT, ENV, OTHER_CPU_LIMIT_PCT, OTHER_CPU_FLOOR_S, BenchError, log,
fmt_s, fmt_ratio, ratio, mib, size_label, median, cmd_out, busy.
Uses: the standard library only.
"""

import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "HOME": os.environ.get("HOME", "/root"),
}

OTHER_CPU_LIMIT_PCT = 10.0    # more CPU than this used by others: numbers suspect...
OTHER_CPU_FLOOR_S = 0.3       # ...unless it is less than this (tick noise, softirqs)


class BenchError(RuntimeError):
    pass


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def fmt_s(x):
    if x is None:
        return "n/a"
    if x < 0.01:
        return "%.4f" % x
    if x < 10:
        return "%.3f" % x
    return "%.1f" % x


def fmt_ratio(x):
    return "n/a" if x is None else "%.2fx" % x


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def mib(kib):
    return "n/a" if kib is None else "%.1f" % (kib / 1024.0)


def size_label(n):
    if n % 1000000 == 0:
        return "%dM" % (n // 1000000)
    if n % 1000 == 0:
        return "%dk" % (n // 1000)
    return str(n)


def median(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def cmd_out(argv, default="unknown"):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           env=ENV, timeout=60, check=False)
        out = r.stdout.decode("utf-8", "replace").strip()
        return out if r.returncode == 0 and out else default
    except (OSError, subprocess.TimeoutExpired):
        return default


def busy(pct, seconds):
    return pct > OTHER_CPU_LIMIT_PCT and seconds > OTHER_CPU_FLOOR_S
