#!/usr/bin/python3
"""ingestfs benchmark: the mount against a tmpfs copy of the same tree.

For each size N it starts the API simulator with N generated tasks, mounts
ingestfs, copies the tree to tmpfs with `cp -a`, then times the same shell
workloads on both sides (cold = first pass, warm = median of --repeat
passes).  A second, foreground `-d` mount measures the daemon: RSS after a
warm find, and the cost of a refresh without and with changes (CPU, wall,
peak RSS, kernel invalidations, API requests).  Prints a Markdown report and
writes it (plus the raw numbers as JSON) to a results file.

--smoke: 10k tasks, one repeat, and asserts that both sides show the same
tree (find, cat of every state, grep -rl, diff -r).  Exit 1 on a mismatch.

Standard library only; run with Debian's /usr/bin/python3 (bench/run.sh).

The code lives in the package ingestfs_bench/ next to this file, one module
per concern (bench/README.md, "Layout"); this file only starts it.
"""

import sys

sys.dont_write_bytecode = True  # write nothing into bench/ or tests/ (no __pycache__)

from ingestfs_bench.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
