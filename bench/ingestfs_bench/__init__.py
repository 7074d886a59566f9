"""The ingestfs benchmark (bench/bench.py is its entry point, bench/run.sh
runs that): ingestfs against a tmpfs copy of the same tree.

Modules, each owning one concern (bench/README.md, "Layout"):
  runner     Bench (setup, cleanup, one size after the other, CPU meters),
             the command line and signal handling (main)
  mounts     mounting and unmounting ingestfs and the tmpfs
  workloads  the workloads and their timed passes on both sides; smoke checks
  daemon     the -d log of a foreground daemon; RSS, CPU and refresh figures
  evaluate   the figures judged: targets, scaling between sizes
  report     the Markdown report, machine and build info, --render
  sim        the API simulator, reused from tests/
  procfs     /proc readers
  util       logging, formatting, the shared environment and errors
"""
