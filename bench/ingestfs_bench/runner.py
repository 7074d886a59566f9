"""The runner: the benchmark as a whole.  Bench sets up (working folder,
credentials, a release build unless --binary), runs one size after the
other (simulator, first mount and `cp -a` to tmpfs, smoke checks, the
workloads, the daemon figures) and cleans up on exit, error or signal;
it meters the CPU used by others and the load.  main parses the command
line, turns SIGTERM and SIGHUP into a clean stop, and prints and writes
the report.

Owns: DEFAULT_SIZES, Interrupted, Bench (__init__, setup, build, cleanup,
own_cpu, meter_start, meter_stop, sample_load, note, run_size, run_all),
parse_args, main.
Uses: every other module of the package; Bench inherits MountsMixin
(mounts), WorkloadsMixin (workloads), DaemonFiguresMixin (daemon) and
PeerMixin (peer).
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .daemon import DaemonFiguresMixin
from .mounts import MountsMixin
from .peer import PeerMixin
from .procfs import cpu_seconds, drop_caches, is_mounted, proc_status, system_busy_seconds
from .report import machine_info, render, rerender, source_version
from .sim import apisim, simctl
from .util import ENV, ROOT, BenchError, log, median, size_label
from .workloads import WorkloadsMixin

DEFAULT_SIZES = (10000, 100000, 200000)
DEFAULT_PEER_TTL = 10.0     # s: how often the peer's cron job and ingestfs refresh
DEFAULT_PEER_TRIALS = 5     # staleness trials per side
SMOKE_PEER_TTL = 1.0
SMOKE_PEER_TRIALS = 2


class Interrupted(BaseException):
    pass


# --------------------------------------------------------------------------
# The benchmark

class Bench(MountsMixin, WorkloadsMixin, DaemonFiguresMixin, PeerMixin):
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.sizes = [10000] if args.smoke else args.sizes
        self.repeat = 1 if args.smoke else args.repeat
        self.peer = not args.no_peer
        self.peer_only = args.peer_only
        self.peer_ttl = SMOKE_PEER_TTL if args.smoke else args.peer_ttl
        self.peer_trials = SMOKE_PEER_TRIALS if args.smoke else args.peer_trials
        self.is_root = os.geteuid() == 0
        self.work = None
        self.binary = args.binary
        self.mounts = {}          # mountpoint -> pid (daemons we started)
        self.mount_argv = {}      # mountpoint -> argv (to find a daemon's pid)
        self.fg_procs = []        # Popen of foreground daemons
        self.tmpfs_mounts = []
        self.sim = None
        self.failures = []        # smoke assertion failures
        self.notes = []           # odd things seen while running
        self.results = {"sizes": {}}
        self.run_groups = []      # process groups of running workloads
        self.loads = []           # 1-min load average before each workload
        self.foreign_mounts = set()

    # ---- setup and cleanup

    def setup(self):
        self.work = tempfile.mkdtemp(prefix="ingestfs-bench.")
        self.cred = os.path.join(self.work, "credentials")
        simctl.write_credentials(self.cred, apisim.DEFAULT_USER, apisim.DEFAULT_KEY)
        self.source = source_version() if not self.binary else "prebuilt binary"
        if not self.binary:
            self.build()
        self.binary = os.path.abspath(self.binary)
        if not os.access(self.binary, os.X_OK):
            raise BenchError("not an executable: %s" % self.binary)

    def build(self):
        bdir = os.path.join(self.work, "build")
        logf = os.path.join(self.work, "build.log")
        log("building a release binary in %s" % bdir)
        with open(logf, "w") as out:
            for argv in (["meson", "setup", bdir, ROOT, "--buildtype=release"],
                         ["ninja", "-C", bdir, "ingestfs"]):
                r = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, check=False)
                if r.returncode != 0:
                    with open(logf) as f:
                        sys.stderr.write(f.read()[-4000:])
                    raise BenchError("build failed: %s" % " ".join(argv))
        self.binary = os.path.join(bdir, "ingestfs")

    def cleanup(self):
        for pgid in list(self.run_groups):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        for mnt in list(self.mounts):
            try:
                self.unmount(mnt)
            except Exception as e:  # keep cleaning
                log("cleanup: %s" % e)
        for p in list(self.fg_procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.sim is not None:
            self.sim.stop()
            self.sim = None
        for t in list(self.tmpfs_mounts):
            self.umount_tmpfs(t)
        if self.work and os.path.isdir(self.work):
            leftover = [m for m in self.mounts if is_mounted(m)]
            if leftover:
                log("NOT removing %s: still mounted: %s" % (self.work, leftover))
            else:
                subprocess.run(["rm", "-rf", "--one-file-system", self.work], check=False)

    # ---- CPU meters, load, notes

    def own_cpu(self, pids=()):
        """CPU time of this benchmark: itself, its reaped children (the
        workloads), the simulator, and the daemons in @pids."""
        t = os.times()
        total = t.user + t.system + t.children_user + t.children_system
        extra = list(pids)
        if self.sim is not None and self.sim.proc is not None:
            extra.append(self.sim.proc.pid)
        for pid in extra:
            try:
                total += cpu_seconds(pid)
            except (OSError, ValueError, IndexError):
                pass
        return total

    def meter_start(self, pids=()):
        return (time.monotonic(), system_busy_seconds(), self.own_cpu(pids), tuple(pids))

    def meter_stop(self, m):
        """CPU seconds used by other processes (and kernel threads) since
        meter_start: the benchmark's numbers are only good when this is ~0."""
        t0, busy0, own0, pids = m
        wall = time.monotonic() - t0
        other = (system_busy_seconds() - busy0) - (self.own_cpu(pids) - own0)
        return {"wall_s": wall, "other_cpu_s": max(0.0, other)}

    def sample_load(self):
        """Remember the load average and FUSE mounts that are not ours: the
        numbers are only good on an otherwise idle machine."""
        try:
            with open("/proc/loadavg") as f:
                self.loads.append(float(f.read().split()[0]))
            with open("/proc/self/mounts") as f:
                for line in f:
                    parts = line.split()
                    if parts[2].startswith("fuse") and not parts[1].startswith(self.work):
                        self.foreign_mounts.add(parts[1])
        except (OSError, IndexError, ValueError):
            pass

    def note(self, msg):
        log("NOTE: " + msg)
        if msg not in self.notes:
            self.notes.append(msg)

    # ---- one size

    def run_size(self, n):
        label = size_label(n)
        res = {"n": n, "workloads": {}, "mounts": []}
        self.results["sizes"][str(n)] = res
        sdir = os.path.join(self.work, "n%d" % n)
        os.mkdir(sdir)
        log("== %s tasks: starting the simulator" % label)
        self.sim = simctl.Sim(sdir, tasks=n)
        self.sim.start()
        # encode the collection once, so mount times measure ingestfs, not
        # the simulator's first json.dumps
        r = self.sim.get(timeout=600)
        if r.status != 200:
            raise BenchError("simulator answered %s" % r.status)
        res["body_bytes"] = len(r.body)
        tmpfs = self.make_tmpfs(label)
        self.dest_seq = 0
        if not self.peer_only:
            self.mounts_copy_workloads(n, res, sdir, tmpfs)
        self.daemon_figures(n, res, sdir)
        if self.peer:
            self.peer_figures(n, res, tmpfs, sdir)

        self.sim.stop()
        self.sim = None
        self.umount_tmpfs(tmpfs)
        if self.is_root:
            drop_caches()

    def mounts_copy_workloads(self, n, res, sdir, tmpfs):
        """The first mount, its `cp -a` to the tmpfs, the smoke checks and
        the workloads on both sides."""
        copy = os.path.join(tmpfs, "copy")
        mnt = os.path.join(sdir, "mnt")
        os.mkdir(mnt)
        took, pid = self.mount_daemon(mnt)
        st = self.status(mnt)
        if st.get("tasks") != str(n):
            raise BenchError(".status says tasks: %s, expected %d" % (st.get("tasks"), n))
        res["mounts"].append(took)
        r = self.run("ls | wc -l", mnt)
        if r["rc"] != 0 or r["out"].strip() != str(n):
            raise BenchError("ls on the fresh mount: rc %d, %r lines"
                             % (r["rc"], r["out"].strip()))
        res["first_ls_s"] = r["s"]
        res["first_usable_s"] = took + r["s"]
        log("mounted in %.3f s (ls: %.3f s); cp -a to tmpfs" % (took, r["s"]))
        r = self.run("cp -a %s %s" % (shlex.quote(mnt + "/."), shlex.quote(copy)), sdir)
        if r["rc"] != 0:
            raise BenchError("cp -a failed: %s" % r["err"])
        res["cp_s"] = r["s"]
        res["rss_after_cp_kib"] = proc_status(pid).get("VmRSS")
        log("cp -a took %.2f s" % r["s"])
        if self.smoke:
            self.smoke_checks(mnt, copy)

        self.run_workloads(res, size_label(n), mnt, copy, tmpfs)
        self.unmount(mnt)
        res["mount_median_s"] = median(res["mounts"])
        res["mount_max_s"] = max(res["mounts"])

    # ---- main

    def run_all(self):
        t0 = time.monotonic()
        self.results["started"] = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC")
        self.setup()
        self.sample_load()
        for n in self.sizes:
            self.run_size(n)
        self.sample_load()
        self.results["elapsed_s"] = time.monotonic() - t0
        self.results["load"] = self.loads
        self.results["foreign_fuse_mounts"] = sorted(self.foreign_mounts)
        if self.foreign_mounts:
            self.note("other FUSE mounts existed during the run (someone else was "
                      "busy on this machine?): %d, e.g. %s"
                      % (len(self.foreign_mounts), sorted(self.foreign_mounts)[0]))


# --------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description="ingestfs vs tmpfs benchmark")
    ap.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                    help="comma-separated task counts (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=5,
                    help="warm passes per workload and side; medians (default: 5)")
    ap.add_argument("--smoke", action="store_true",
                    help="10k tasks, one repeat, assert both sides are identical")
    ap.add_argument("--binary", help="use this ingestfs instead of building one")
    ap.add_argument("--render", metavar="JSON",
                    help="only print the report again from a results .json")
    ap.add_argument("--no-peer", action="store_true",
                    help="skip the peer (bench/peer.sh, a cron job writing the tree)")
    ap.add_argument("--peer-only", action="store_true",
                    help="per size only the daemon figures and the peer: no workloads, "
                    "no tmpfs copy")
    ap.add_argument("--peer-ttl", type=float, default=DEFAULT_PEER_TTL,
                    help="seconds between the peer's cron runs and ingestfs's ttl for the "
                    "staleness trials (default: %(default)g; --smoke: 1)")
    ap.add_argument("--peer-trials", type=int, default=DEFAULT_PEER_TRIALS,
                    help="staleness trials per side (default: %(default)d; --smoke: 2)")
    ap.add_argument("--out", help="results file (.md; raw numbers go to .json next to it); "
                    "default bench/results/<date>.md, none with --smoke")
    args = ap.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error("--sizes takes integers, e.g. 10000,100000")
    if not args.sizes or min(args.sizes) < 100:
        ap.error("--sizes: at least 100 tasks each")
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.no_peer and args.peer_only:
        ap.error("--no-peer and --peer-only exclude each other")
    if not 0.1 <= args.peer_ttl <= 3600 or args.peer_trials < 1:
        ap.error("--peer-ttl: 0.1 to 3600 s; --peer-trials: at least 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render:
        return rerender(args.render)
    missing = [t for t in ("fusermount3", "rsync", "tar", "diff")
               if not shutil.which(t, path=ENV["PATH"])]
    if not os.path.exists("/dev/fuse") or "fusermount3" in missing:
        log("SKIP: no /dev/fuse or fusermount3; cannot mount")
        return 77
    if missing:
        log("missing tools: %s" % ", ".join(missing))
        return 2
    if os.geteuid() != 0:
        log("not root: using /dev/shm instead of an own tmpfs and no drop_caches")

    def on_signal(signum, frame):
        raise Interrupted("signal %d" % signum)

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    # also when started in the background of a script (SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    bench = Bench(args)
    command = shlex.join([os.environ.get("BENCH_ARGV0", sys.argv[0])] + sys.argv[1:])
    status = 0
    report = None
    try:
        bench.run_all()
        info = machine_info(bench.binary)
        info["commit"] = bench.source
        bench.results["machine"] = info
        bench.results["command"] = command
        bench.results["notes"] = bench.notes
        bench.results["failures"] = bench.failures
        bench.results["size_list"] = bench.sizes
        bench.results["repeat"] = bench.repeat
        bench.results["smoke"] = bench.smoke
        bench.results["peer_only"] = bench.peer_only
        report = render(bench.results, bench, info, command)
    except (KeyboardInterrupt, Interrupted) as e:
        log("interrupted (%s); cleaning up" % (str(e) or "Ctrl-C"))
        status = 130
    except BenchError as e:
        log("ERROR: %s" % e)
        status = 1
    finally:
        bench.cleanup()
        left = [m for m in bench.mounts if is_mounted(m)] + bench.tmpfs_mounts
        if left:
            log("WARNING: could not clean up: %s" % left)

    if report is not None:
        print(report)
        out = args.out
        if not out and not args.smoke:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out = os.path.join(ROOT, "bench", "results", "results-%s.md" % stamp)
        if out:
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            with open(out, "w") as f:
                f.write(report + "\n")
            with open(os.path.splitext(out)[0] + ".json", "w") as f:
                json.dump(bench.results, f, indent=1, sort_keys=True)
            log("wrote %s (and .json)" % out)
        if bench.smoke:
            if bench.failures:
                log("SMOKE FAILED: %d check(s) differ" % len(bench.failures))
                for m in bench.failures:
                    log("  " + m)
                status = 1
            else:
                log("smoke OK in %.0f s" % bench.results["elapsed_s"])
    return status
