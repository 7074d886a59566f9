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
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # write nothing into tests/ (no __pycache__)

from ingestfs_bench.daemon import PATCHED_PER_REFRESH, DaemonFiguresMixin  # noqa: E402
from ingestfs_bench.mounts import MountsMixin  # noqa: E402
from ingestfs_bench.procfs import (cpu_seconds, drop_caches, is_mounted,  # noqa: E402
                                   proc_status, system_busy_seconds)
from ingestfs_bench.sim import apisim, simctl  # noqa: E402
from ingestfs_bench.util import (ENV, OTHER_CPU_FLOOR_S, OTHER_CPU_LIMIT_PCT,  # noqa: E402
                                 ROOT, BenchError, busy, cmd_out, fmt_ratio, fmt_s,
                                 log, median, mib, ratio, size_label)
from ingestfs_bench.workloads import WORKLOADS, WorkloadsMixin  # noqa: E402

DEFAULT_SIZES = (10000, 100000, 200000)

# Targets, checked at 100k (or the size nearest to it).
WARM_TARGETS = (
    ("find -type f | wc -l", 1.5, "find, warm"),
    ("grep -rl FAILED", 1.5, "grep -r, warm"),
    ("tar | cat", 2.0, "tar, warm"),
    ("ls -l", 2.0, "ls -l, warm"),
    ("read all states", 2.0, "reading all states, warm"),
)
COLD_TARGET = 10.0
MOUNT_TARGET_S = 3.0
STEADY_RSS_TARGET = 1024      # bytes per task
PEAK_RSS_TARGET = 3 * 1024    # bytes per task
REFRESH_CPU_TARGET_S = 0.5
SCALE_SLACK = 1.1             # 200k may cost 1.1 x 2 = 2.2 x 100k
NOISE_FLOOR_S = 0.1           # times this small are not flagged (10 ms CPU ticks)


class Interrupted(BaseException):
    pass


# --------------------------------------------------------------------------
# The benchmark

class Bench(MountsMixin, WorkloadsMixin, DaemonFiguresMixin):
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.sizes = [10000] if args.smoke else args.sizes
        self.repeat = 1 if args.smoke else args.repeat
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
        copy = os.path.join(tmpfs, "copy")
        self.dest_seq = 0

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

        self.run_workloads(res, label, mnt, copy, tmpfs)
        self.unmount(mnt)
        res["mount_median_s"] = median(res["mounts"])
        res["mount_max_s"] = max(res["mounts"])

        self.daemon_figures(n, res, sdir)

        self.sim.stop()
        self.sim = None
        self.umount_tmpfs(tmpfs)
        if self.is_root:
            drop_caches()

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
# Report

def source_version():
    """The commit the binary is built from, and whether the sources that go
    into it (src/, meson files) differ from that commit.  Read read-only
    (no index refresh), at build time: the tree may move on during a run."""
    git = ["git", "-C", ROOT, "--no-optional-locks"]
    head = cmd_out(git + ["rev-parse", "--short", "HEAD"])
    dirty = cmd_out(git + ["status", "--porcelain", "--", "src", "meson.build",
                           "meson_options.txt"], default="")
    return head + (" + uncommitted changes in src/ or meson files" if dirty
                   else " (src/ as committed)")


def machine_info(binary):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1048576.0)
    except OSError:
        pass
    return {
        "nproc": cmd_out(["nproc"]),
        "kernel": platform.release(),
        "libfuse": cmd_out(["pkg-config", "--modversion", "fuse3"]),
        "cpu": cpu,
        "memory": mem,
        "ingestfs": cmd_out([binary, "--version"]) if binary else "unknown",
        "tools": "; ".join(cmd_out([t, "--version"]).splitlines()[0]
                           for t in ("ls", "find", "grep", "tar", "rsync")),
    }


def per_task(kib, n):
    return None if kib is None else kib * 1024.0 / n


def fmt_bpt(b):
    return "n/a" if b is None else "%.0f B (%.2f KiB)" % (b, b / 1024.0)


def daemon_rows(r):
    """(name, value, unit-formatter) for every daemon figure of one size."""
    n = r["n"]
    d = r["daemon"]
    u, c = d["unchanged"], d["changed"]

    def med(lst, k):
        return median([x[k] for x in lst])

    def mx(lst, k):
        v = [x[k] for x in lst if x[k] is not None]
        return max(v) if v else None

    return [
        ("mount: command returns (median of %d mounts), s" % len(r["mounts"]),
         r["mount_median_s"], fmt_s),
        ("mount: slowest of those, s", r["mount_max_s"], fmt_s),
        ("first mount: `ls` of the root right after, s", r["first_ls_s"], fmt_s),
        ("cp -a of the fresh mount to tmpfs, s", r["cp_s"], fmt_s),
        ("steady RSS after a warm find, MiB", d["steady_rss_kib"], mib),
        ("steady RSS per task", per_task(d["steady_rss_kib"], n), fmt_bpt),
        ("peak RSS since start (incl. first load), MiB", d["hwm_since_start_kib"], mib),
        ("refresh, no change: CPU (median), s", med(u, "cpu_s"), fmt_s),
        ("refresh, no change: wall from `-d` log (median), ms", med(u, "wall_log_ms"),
         lambda x: "%.0f" % x),
        ("refresh, no change: of which GET (median), ms", med(u, "get_ms"),
         lambda x: "n/a" if x is None else "%.0f" % x),
        ("refresh, no change: SIGHUP to log line (median), s", med(u, "wall_sighup_s"), fmt_s),
        ("refresh, no change: log said `answer unchanged` (parse skipped)",
         sum(1 for x in u if x.get("answer_unchanged")),
         lambda x, k=len(u): "%d of %d" % (x, k)),
        ("refresh, no change: peak RSS (max), MiB", mx(u, "peak_kib"), mib),
        ("refresh, no change: peak RSS per task", per_task(mx(u, "peak_kib"), n), fmt_bpt),
        ("refresh, no change: invalidations (max of `C changes`)", mx(u, "changes"),
         lambda x: "%d" % x),
        ("refresh, no change: NOTIFY lines in the log (max)", mx(u, "notify_lines"),
         lambda x: "%d" % x),
        ("refresh, no change: API requests per refresh (max)", mx(u, "api_requests"),
         lambda x: "%d" % x),
        ("refresh, %d tasks changed: CPU (median), s" % PATCHED_PER_REFRESH,
         med(c, "cpu_s"), fmt_s),
        ("refresh, tasks changed: wall from `-d` log (median), ms", med(c, "wall_log_ms"),
         lambda x: "%.0f" % x),
        ("refresh, tasks changed: of which GET (median), ms", med(c, "get_ms"),
         lambda x: "n/a" if x is None else "%.0f" % x),
        ("refresh, tasks changed: peak RSS (max), MiB", mx(c, "peak_kib"), mib),
        ("refresh, tasks changed: peak RSS per task", per_task(mx(c, "peak_kib"), n), fmt_bpt),
        ("refresh, tasks changed: invalidations (median `C changes`)", med(c, "changes"),
         lambda x: "%g" % x),
        ("refresh, tasks changed: NOTIFY lines (median)", med(c, "notify_lines"),
         lambda x: "%g" % x),
        ("refresh, tasks changed: API requests per refresh (max)", mx(c, "api_requests"),
         lambda x: "%d" % x),
        ("RSS after all refreshes, MiB", d["rss_after_refreshes_kib"], mib),
        ("RSS after all refreshes per task", per_task(d["rss_after_refreshes_kib"], n),
         fmt_bpt),
    ]


# figures that are counts which need not grow with N: no scaling flag
NO_SCALE = ("invalidations", "NOTIFY", "API requests", "answer unchanged")


def below_floor(name, va, vb):
    """True for a time figure too small for its ratio to mean much."""
    if va is None or vb is None:
        return False
    if name.endswith(", s"):
        return max(va, vb) < NOISE_FLOOR_S
    if name.endswith(", ms"):
        return max(va, vb) < NOISE_FLOOR_S * 1000
    return False


def target_size(sizes):
    return min(sizes, key=lambda s: (abs(s - 100000), -s))


def scale_pair(sizes):
    if 100000 in sizes and 200000 in sizes:
        return 100000, 200000
    s = sorted(set(sizes))
    return (s[-2], s[-1]) if len(s) >= 2 else None


def evaluate(results, sizes):
    """Targets: list of (target, threshold, measured, met)."""
    rows = []
    n = target_size(sizes)
    r = results["sizes"][str(n)]
    lab = size_label(n)
    for wname, lim, title in WARM_TARGETS:
        w = r["workloads"][wname]
        x = ratio(w["ingestfs_warm"], w["tmpfs_warm"])
        rows.append(("%s (%s)" % (title, lab), "<= %.1fx tmpfs" % lim,
                     "%s (%s s vs %s s)" % (fmt_ratio(x), fmt_s(w["ingestfs_warm"]),
                                            fmt_s(w["tmpfs_warm"])),
                     x is not None and x <= lim))
    worst = max(((ratio(w["ingestfs_cold"], w["tmpfs_cold"]), k)
                 for k, w in r["workloads"].items()), key=lambda t: t[0] or 0)
    over = ["%s %s" % (k, fmt_ratio(ratio(w["ingestfs_cold"], w["tmpfs_cold"])))
            for k, w in r["workloads"].items()
            if (ratio(w["ingestfs_cold"], w["tmpfs_cold"]) or 0) > COLD_TARGET]
    rows.append(("cold first passes, every workload (%s)" % lab,
                 "<= %.0fx tmpfs cold" % COLD_TARGET,
                 "worst: %s %s" % (worst[1], fmt_ratio(worst[0]))
                 + ("; over: " + ", ".join(over) if over else ""),
                 not over))
    rows.append(("mount usable (%s)" % lab, "<= %.0f s" % MOUNT_TARGET_S,
                 "median %s s, max %s s (first mount + `ls`: %s s)"
                 % (fmt_s(r["mount_median_s"]), fmt_s(r["mount_max_s"]),
                    fmt_s(r["first_usable_s"])),
                 r["mount_max_s"] <= MOUNT_TARGET_S))
    d = r["daemon"]
    b = per_task(d["steady_rss_kib"], n)
    rows.append(("steady RSS after warm find (%s)" % lab, "<= 1 KiB/task",
                 "%s (%s MiB)" % (fmt_bpt(b), mib(d["steady_rss_kib"])),
                 b <= STEADY_RSS_TARGET))
    peaks = [x["peak_kib"] for x in d["unchanged"] + d["changed"] if x["peak_kib"]]
    pk = max(peaks) if peaks else None
    b = per_task(pk, n)
    rows.append(("peak RSS during a refresh (%s)" % lab, "<= 3 KiB/task",
                 "%s (%s MiB)" % (fmt_bpt(b), mib(pk)),
                 b is not None and b <= PEAK_RSS_TARGET))
    cpu = median([x["cpu_s"] for x in d["unchanged"]])
    rows.append(("unchanged refresh CPU (%s)" % lab, "<= 0.5 s",
                 "%s s median (max %s s)" % (fmt_s(cpu), fmt_s(max(
                     x["cpu_s"] for x in d["unchanged"]))),
                 cpu <= REFRESH_CPU_TARGET_S))
    inv = max(x["changes"] for x in d["unchanged"])
    notes = max(x["notify_lines"] for x in d["unchanged"])
    rows.append(("unchanged refresh invalidations (%s)" % lab, "0",
                 "%d (NOTIFY lines: %d)" % (inv, notes), inv == 0 and notes == 0))
    pair = scale_pair(sizes)
    if pair:
        lo, hi = pair
        lim = SCALE_SLACK * hi / lo
        flagged = [f for f in scaling(results, lo, hi) if f[3] is not None and f[4]
                   and f[3] > lim]
        rows.append(("%s vs %s, every ingestfs figure" % (size_label(hi), size_label(lo)),
                     "<= %.1fx" % lim,
                     ("over: " + "; ".join("%s %s" % (f[0], fmt_ratio(f[3]))
                                           for f in flagged)) if flagged else "all within",
                     not flagged))
    return rows


def scaling(results, lo, hi):
    """(figure, value lo, value hi, ratio, counts-for-the-flag) for every figure."""
    a = results["sizes"][str(lo)]
    b = results["sizes"][str(hi)]
    out = []
    for name, _, _ in WORKLOADS:
        wa, wb = a["workloads"][name], b["workloads"][name]
        for key, side in (("ingestfs_cold", "ingestfs cold"), ("ingestfs_warm", "ingestfs warm"),
                          ("tmpfs_cold", "tmpfs cold"), ("tmpfs_warm", "tmpfs warm")):
            fig = "%s, %s, s" % (name, side)
            out.append((fig, wa[key], wb[key], ratio(wb[key], wa[key]),
                        side.startswith("ingestfs") and not below_floor(fig, wa[key], wb[key])))
    da, db = daemon_rows(a), daemon_rows(b)
    for (name, va, fmt), (_, vb, _) in zip(da, db):
        if "per task" in name:
            continue
        counts = not any(k in name for k in NO_SCALE) and "cp -a" not in name
        out.append((name, va, vb, ratio(vb, va) if counts else None,
                    counts and not below_floor(name, va, vb)))
    return out


def render(results, bench, info, command):
    sizes = bench.sizes
    L = []
    L.append("## Results")
    L.append("")
    L.append("- date: %s" % results["started"])
    L.append("- machine: %s CPUs (`nproc`), %s, %s RAM; kernel `%s`; libfuse %s "
             "(`pkg-config --modversion fuse3`)"
             % (info["nproc"], info["cpu"], info["memory"], info["kernel"], info["libfuse"]))
    L.append("- ingestfs: %s, built from commit %s, release build"
             % (info["ingestfs"], info["commit"]))
    L.append("- tools: %s" % info["tools"])
    L.append("- command: `%s`" % command)
    L.append("- repeats: %d warm passes per workload and side (medians shown); "
             "total run time %.0f s" % (bench.repeat, results["elapsed_s"]))
    loads = results.get("load") or [0]
    L.append("- 1-min load average before the workloads: %.2f at the start, max %.2f "
             "(2 or more on 2 CPUs means the benchmark itself; much more means other load)"
             % (loads[0], max(loads)))
    L.append("- other CPU: CPU time used outside the benchmark's own processes while a "
             "workload ran (busy time from `/proc/stat` minus the benchmark, its workloads, "
             "the simulator and the daemon), in %% of one CPU (CPU seconds) over the passes of "
             "the busier side; over %.0f%% and %.1f s the row is suspect"
             % (OTHER_CPU_LIMIT_PCT, OTHER_CPU_FLOOR_S))
    L.append("")
    for n in sizes:
        r = results["sizes"][str(n)]
        L.append("### Workloads, %s tasks (seconds; ratio = ingestfs / tmpfs)" % size_label(n))
        L.append("")
        L.append("| workload | ingestfs cold | tmpfs cold | ratio cold | ingestfs warm "
                 "| tmpfs warm | ratio warm | daemon RSS after, MiB | other CPU |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, cmd, _ in WORKLOADS:
            w = r["workloads"][name]
            L.append("| `%s` | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                esc(cmd.replace(" {dest}/", " DEST/")),
                fmt_s(w["ingestfs_cold"]), fmt_s(w["tmpfs_cold"]),
                fmt_ratio(ratio(w["ingestfs_cold"], w["tmpfs_cold"])),
                fmt_s(w["ingestfs_warm"]), fmt_s(w["tmpfs_warm"]),
                fmt_ratio(ratio(w["ingestfs_warm"], w["tmpfs_warm"])),
                mib(w["daemon_rss_kib"]), fmt_other(w)))
        L.append("")
    L.append("### Daemon")
    L.append("")
    pair = scale_pair(sizes)
    head = "| figure | " + " | ".join(size_label(n) for n in sizes) + " |"
    sep = "|---|" + "---:|" * len(sizes)
    if pair:
        head += " %s / %s |" % (size_label(pair[1]), size_label(pair[0]))
        sep += "---:|"
    L.append(head)
    L.append(sep)
    rows = [daemon_rows(results["sizes"][str(n)]) for n in sizes]
    lim = SCALE_SLACK * pair[1] / pair[0] if pair else None
    for i, (name, _, fmt) in enumerate(rows[0]):
        cells = [fmt(rw[i][1]) if rw[i][1] is not None else "n/a" for rw in rows]
        line = "| %s | %s |" % (esc(name), " | ".join(cells))
        if pair:
            va = rows[sizes.index(pair[0])][i][1]
            vb = rows[sizes.index(pair[1])][i][1]
            if any(k in name for k in NO_SCALE) or "per task" in name or "cp -a" in name:
                line += " |"
            else:
                x = ratio(vb, va)
                if below_floor(name, va, vb):
                    line += " %s (too small to flag) |" % fmt_ratio(x)
                else:
                    line += " %s%s |" % (fmt_ratio(x), " **> %.1fx**" % lim
                                         if x is not None and x > lim else "")
        L.append(line)
    L.append("")
    if pair:
        lo, hi = pair
        L.append("### Scaling, %s vs %s (flag: ingestfs figure > %.1fx)"
                 % (size_label(hi), size_label(lo), lim))
        L.append("")
        L.append("Times under %.1f s at both sizes are marked `(small)` and not flagged."
                 % NOISE_FLOOR_S)
        L.append("")
        L.append("The last two columns divide ingestfs's growth by tmpfs's in the same run: "
                 "near 1.0x means the growth is the kernel's and the tool's, not the daemon's.")
        L.append("")
        L.append("| workload | ingestfs cold | ingestfs warm | tmpfs cold | tmpfs warm "
                 "| cold, relative to tmpfs | warm, relative to tmpfs |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        sc = {f[0]: f for f in scaling(results, lo, hi)}
        for name, _, _ in WORKLOADS:
            cells = []
            for side in ("ingestfs cold", "ingestfs warm", "tmpfs cold", "tmpfs warm"):
                f = sc["%s, %s, s" % (name, side)]
                flag = f[4] and f[3] is not None and f[3] > lim
                small = side.startswith("ingestfs") and below_floor(f[0], f[1], f[2])
                cells.append(fmt_ratio(f[3]) + (" **FLAG**" if flag else "")
                             + (" (small)" if small else ""))
            for temp in ("cold", "warm"):
                cells.append(fmt_ratio(ratio(sc["%s, ingestfs %s, s" % (name, temp)][3],
                                             sc["%s, tmpfs %s, s" % (name, temp)][3])))
            L.append("| `%s` | %s |" % (esc(name), " | ".join(cells)))
        L.append("")
    L.append("### Targets")
    L.append("")
    L.append("| target | threshold | measured | met? |")
    L.append("|---|---|---|---|")
    for t, lim_s, meas, met in evaluate(results, sizes):
        L.append("| %s | %s | %s | %s |" % (esc(t), esc(lim_s), esc(meas),
                                             "met" if met else "**NOT MET**"))
    L.append("")
    extra = []
    for n in sizes:
        d = results["sizes"][str(n)]["daemon"]
        extra.append("- %s: FUSE requests of a cold `find` on the `-d` mount: %s; of the "
                     "warm `find` after it: %s; of a `find` after the changed refreshes: %s; "
                     "error replies: %s" % (
                         size_label(n), fmt_counts(d["fuse_requests_cold_find"]),
                         fmt_counts(d["fuse_requests_warm_find"]),
                         fmt_counts(d["fuse_requests_find_after_changes"]),
                         fmt_counts(d["fuse_errors_find"])))
    L.append("### FUSE traffic (from the `-d` trace)")
    L.append("")
    L.extend(extra)
    L.append("")
    if bench.notes:
        L.append("### Notes from this run")
        L.append("")
        for m in bench.notes:
            L.append("- " + m)
        L.append("")
    if bench.smoke:
        L.append("### Smoke checks")
        L.append("")
        if bench.failures:
            for m in bench.failures:
                L.append("- FAILED: " + m)
        else:
            L.append("- `find . | sort`, `cat` of every state, `grep -rl FAILED . | sort` "
                     "identical on both sides; `diff -r` clean")
        L.append("")
    return "\n".join(L)


def fmt_other(w):
    x, sec = w.get("other_cpu_pct"), w.get("other_cpu_s")
    if x is None or sec is None:
        return "n/a"
    return "%.0f%% (%.2f s)%s" % (x, sec, " **busy**" if busy(x, sec) else "")


def esc(text):
    """A Markdown table cell: `|` must be escaped, also inside code spans."""
    return str(text).replace("|", "\\|")


def fmt_counts(c):
    if not c:
        return "none"
    return ", ".join("%s %d" % (k, v) for k, v in sorted(c.items(), key=lambda t: -t[1]))


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
    return args


def rerender(path):
    with open(path) as f:
        results = json.load(f)
    b = argparse.Namespace(sizes=results["size_list"], repeat=results["repeat"],
                           notes=results.get("notes", []), smoke=results["smoke"],
                           failures=results.get("failures", []))
    print(render(results, b, results["machine"], results["command"]))
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
