"""Daemon figures, measured on a foreground `-d` mount: the daemon's RSS
after a warm find, and the cost of a refresh without and with changes (CPU,
wall time, GET time, peak RSS, invalidations, NOTIFY lines, API requests),
read from /proc and from the daemon's debug log.

Owns: PATCHED_PER_REFRESH, the RE_* patterns of the log lines, DebugLog
(reads and counts the -d log in a thread), counter_delta, and
DaemonFiguresMixin (patch_ids, one_refresh, daemon_figures), a part of
runner.Bench.
Uses: util, procfs, sim (apisim.generated_id); from Bench: sim, repeat,
note, run (workloads), mount_foreground_debug, status, unmount (mounts),
meter_start, meter_stop.
"""

import collections
import os
import re
import signal
import threading
import time

from .procfs import cpu_seconds, proc_io, proc_status, reset_hwm
from .sim import apisim
from .util import BenchError, busy, log, median, mib, size_label

PATCHED_PER_REFRESH = 10   # tasks changed before a "refresh with changes"

# "refresh: N tasks, generation G, C changes, T ms"; newer daemons add or
# substitute "answer unchanged" when they skip the parse: fields are parsed
# one by one, in any order
RE_REFRESH = re.compile(r"refresh: (\d+) tasks, generation (\d+)")
RE_CHANGES = re.compile(r"\b(\d+) changes\b")
RE_MS = re.compile(r"\b(\d+(?:\.\d+)?) ms\b")
RE_REFRESH_ANY = re.compile(r"\brefresh(:| failed| still failing)")
RE_GET = re.compile(r"GET \S+: status (\d+), (\d+) bytes, (\d+) ms")
RE_PUSHED = re.compile(r"pushed (\d+) files into the page cache")  # at exit, -d only
RE_OPCODE = re.compile(r"unique: \d+, opcode: (\w+)")
RE_REPLY_ERR = re.compile(r"unique: \d+, error: (-?\d+) \(([^)]*)\)")
RE_NOTIFY = re.compile(r"NOTIFY: code=(-?\d+)")
# .status: "state_last_save: B bytes, C ms cpu, W ms[, whole|delta]"
RE_SAVE = re.compile(r"(\d+) bytes, ([\d.]+) ms cpu, ([\d.]+) ms(?:, (whole|delta))?")
# .status: "events_last: N lines, C ms cpu, W ms"
RE_FEED = re.compile(r"(\d+) lines, ([\d.]+) ms cpu, ([\d.]+) ms")
RE_BORING = re.compile(r"(unique: \d+, success|FUSE library version|INIT: |flags=0x|"
                       r"max_readahead=|max_write=|max_background=|"
                       r"congestion_threshold=|time_gran=|refresh requested$)")


# --------------------------------------------------------------------------
# The -d log of the foreground daemon

class DebugLog:
    """Reads the daemon's stderr (-d) in a thread and keeps counters; the
    libfuse request trace is counted, not stored."""

    def __init__(self, stream, path):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.refreshes = []       # dicts: t, tasks, generation, changes, ms, unchanged, line
        self.gets = []            # (status, bytes, ms)
        self.opcodes = collections.Counter()
        self.errors = collections.Counter()
        self.notifies = 0
        self.pushed = None        # files pushed into the page cache (fs_push.c), at exit
        self.other = []           # unexpected lines (warnings, errors), capped
        self.lines = 0
        self.eof = False
        self.file = open(path, "w", encoding="utf-8")
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream):
        try:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                now = time.monotonic()
                with self.lock:
                    self._take(line, now)
                    self.cond.notify_all()
        finally:
            with self.lock:
                self.eof = True
                self.cond.notify_all()
            self.file.close()

    def _take(self, line, now):
        self.lines += 1
        m = RE_OPCODE.search(line)
        if m:
            self.opcodes[m.group(1)] += 1
            return
        m = RE_REPLY_ERR.search(line)
        if m:
            self.errors["%s (%s)" % (m.group(1), m.group(2))] += 1
            return
        m = RE_NOTIFY.search(line)
        if m:
            self.notifies += 1
            return
        if RE_BORING.search(line):
            return
        self.file.write(line + "\n")
        m = RE_REFRESH.search(line)
        ms = RE_MS.search(line)
        if m and ms:
            unchanged = "answer unchanged" in line
            ch = RE_CHANGES.search(line)
            self.refreshes.append({
                "t": now, "tasks": int(m.group(1)), "generation": int(m.group(2)),
                "changes": int(ch.group(1)) if ch else (0 if unchanged else None),
                "unchanged": unchanged, "ms": float(ms.group(1)), "line": line})
            return
        if RE_REFRESH_ANY.search(line):  # a failure, or a format we do not know
            self.refreshes.append({"t": now, "tasks": None, "generation": None,
                                   "changes": None, "unchanged": None, "ms": None,
                                   "line": line})
            if len(self.other) < 50:
                self.other.append(line)
            return
        m = RE_GET.search(line)
        if m:
            self.gets.append(tuple(int(g) for g in m.groups()))
            return
        m = RE_PUSHED.search(line)
        if m:
            self.pushed = int(m.group(1))
            return
        if len(self.other) < 50:
            self.other.append(line)

    def counters(self):
        with self.lock:
            return {"refreshes": len(self.refreshes), "gets": len(self.gets),
                    "opcodes": collections.Counter(self.opcodes),
                    "errors": collections.Counter(self.errors),
                    "notifies": self.notifies, "other": len(self.other)}

    def wait_refresh(self, count, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.refreshes) < count and not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.5))
            if len(self.refreshes) < count:
                return None
            return self.refreshes[count - 1]

    def last_get(self):
        with self.lock:
            return self.gets[-1] if self.gets else None


def counter_delta(after, before):
    d = collections.Counter(after)
    d.subtract(before)
    return {k: v for k, v in d.items() if v}


class DaemonFiguresMixin:
    """The daemon figures of one size; a part of runner.Bench."""

    # ---- daemon figures: RSS, refresh cost

    def patch_ids(self, n, round_no):
        """PATCHED_PER_REFRESH ids of tasks that start COMPLETED (i % 4 == 0),
        spread over the collection, different in each round."""
        step = max(4, (n // PATCHED_PER_REFRESH) // 4 * 4)
        out = []
        for j in range(PATCHED_PER_REFRESH):
            i = j * step + 4 * round_no
            if i < n:
                out.append(apisim.generated_id(i))
        return out

    def one_refresh(self, proc, dlog, mnt, n):
        pid = proc.pid
        st0 = self.status(mnt)
        saves0 = int(st0.get("state_saves", 0))
        lines0 = int(st0.get("events_lines", 0))
        feed0 = self.feed_bytes(mnt)
        before = dlog.counters()
        req0 = self.sim.requests()
        rss0 = proc_status(pid).get("VmRSS")
        hwm_reset = reset_hwm(pid)
        io0 = proc_io(pid)
        cpu0 = cpu_seconds(pid)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGHUP)
        limit = 60 + n / 1000.0
        ev = dlog.wait_refresh(before["refreshes"] + 1, limit)
        if ev is None:
            raise BenchError("no `refresh` log line within %.0f s of SIGHUP" % limit)
        if ev["ms"] is None or ev["changes"] is None:
            raise BenchError("refresh did not succeed or its log line is new to me: %r"
                             % ev["line"])
        wall_ext = ev["t"] - t0
        time.sleep(0.3)  # let notifications and the log settle
        cpu1 = cpu_seconds(pid)
        io1 = proc_io(pid)
        ps = proc_status(pid)
        after = dlog.counters()
        req1 = self.sim.requests()
        get = dlog.last_get()
        st = self.status(mnt)
        save = RE_SAVE.match(st.get("state_last_save", ""))
        lines = int(st.get("events_lines", 0)) - lines0
        feed = RE_FEED.match(st.get("events_last", "")) if lines else None
        saves = int(st.get("state_saves", 0)) - saves0
        out = {
            "io_wchar": io1.get("wchar", 0) - io0.get("wchar", 0) if io0 else None,
            "io_write_bytes": (io1.get("write_bytes", 0) - io0.get("write_bytes", 0)
                               if io0 else None),
            "feed_lines": lines,
            "feed_bytes": self.feed_bytes(mnt) - feed0,
            "feed_cpu_ms": float(feed.group(2)) if feed else None,
            "feed_wall_ms": float(feed.group(3)) if feed else None,
            "state_saves": saves,
            "state_bytes": int(save.group(1)) if save else None,
            # what the last save wrote: "whole" or "delta" (None: a daemon before deltas)
            "state_kind": save.group(4) if save else None,
            "state_cpu_ms": float(save.group(2)) if save else None,
            "state_wall_ms": float(save.group(3)) if save else None,
            "answer_bytes": get[1] if get else None,
            "cpu_s": cpu1 - cpu0,
            "wall_log_ms": ev["ms"],
            "wall_sighup_s": wall_ext,
            "get_ms": get[2] if get else None,
            "changes": ev["changes"],
            "answer_unchanged": ev["unchanged"],
            "log_line": ev["line"],
            "generation": ev["generation"],
            "notify_lines": after["notifies"] - before["notifies"],
            "api_requests": req1 - req0,
            "rss_before_kib": rss0,
            "peak_kib": ps.get("VmHWM") if hwm_reset else None,
            "rss_after_kib": ps.get("VmRSS"),
            "fuse_requests": counter_delta(after["opcodes"], before["opcodes"]),
        }
        if ev["tasks"] != n:
            self.note("refresh reported %d tasks, expected %d" % (ev["tasks"], n))
        return out

    @staticmethod
    def feed_bytes(mnt):
        """Bytes in .events and .events.1 (0 for a daemon without a feed)."""
        total = 0
        for name in (".events", ".events.1"):
            try:
                total += os.stat(os.path.join(mnt, name)).st_size
            except FileNotFoundError:
                pass
        return total

    @staticmethod
    def round_trip(mnt, n=20000):
        """The floor under any pass that asks the daemon: fstat of an open
        .events (attribute timeout 0, so each is one GETATTR answered from
        memory), against fstat of a task file the kernel answers itself.
        Median of 5 rounds of @n calls; microseconds per call."""
        task = sorted(e for e in os.listdir(mnt) if not e.startswith("."))[0]
        out = []
        for path in (os.path.join(mnt, ".events"), os.path.join(mnt, task, "state")):
            fd = os.open(path, os.O_RDONLY)
            try:
                rounds = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    for _ in range(n):
                        os.fstat(fd)
                    rounds.append((time.perf_counter() - t0) / n * 1e6)
            finally:
                os.close(fd)
            out.append(median(rounds))
        return out[0], out[1]

    def daemon_figures(self, n, res, sdir):
        label = size_label(n)
        mnt = os.path.join(sdir, "mnt-debug")
        os.mkdir(mnt)
        logpath = os.path.join(sdir, "ingestfs-debug.log")
        log("daemon figures: foreground -d mount")
        proc, dlog = self.mount_foreground_debug(mnt, logpath)
        pid = proc.pid
        d = {}
        res["daemon"] = d
        meter = self.meter_start([pid])
        c0 = dlog.counters()
        r = self.run("find . -type f | wc -l", mnt)
        d["find_cold_count"] = r["out"].strip()
        c1 = dlog.counters()
        r = self.run("find . -type f | wc -l", mnt)
        c2 = dlog.counters()
        d["fuse_requests_cold_find"] = counter_delta(c1["opcodes"], c0["opcodes"])
        d["fuse_requests_warm_find"] = counter_delta(c2["opcodes"], c1["opcodes"])
        d["fuse_errors_find"] = counter_delta(c2["errors"], c0["errors"])
        # the same for the readers of every file: the first pass reads them
        # into the page cache, the second should ask nothing
        for key, cmd in (("grep", "grep -rl FAILED . >/dev/null"),
                         ("tar", "tar -cf - . | cat >/dev/null")):
            for when in ("first", "warm"):
                a = dlog.counters()
                self.run(cmd, mnt)
                b = dlog.counters()
                d["fuse_requests_%s_%s" % (when, key)] = counter_delta(b["opcodes"], a["opcodes"])
        d["fuse_round_trip_us"], d["cached_fstat_us"] = self.round_trip(mnt)
        log("one FUSE round trip (GETATTR): %.1f us; a cached fstat: %.2f us"
            % (d["fuse_round_trip_us"], d["cached_fstat_us"]))
        time.sleep(1.0)
        ps = proc_status(pid)
        d["steady_rss_kib"] = ps.get("VmRSS")
        d["hwm_since_start_kib"] = ps.get("VmHWM")
        log("steady RSS %s MiB (%.0f B/task), peak since start %s MiB"
            % (mib(ps.get("VmRSS")), ps.get("VmRSS", 0) * 1024.0 / n, mib(ps.get("VmHWM"))))

        d["unchanged"] = []
        for _ in range(self.repeat):
            x = self.one_refresh(proc, dlog, mnt, n)
            d["unchanged"].append(x)
            log("refresh, no change: cpu %.2f s, wall %d ms (GET %s ms), %d changes, "
                "%d requests, peak %s MiB" % (x["cpu_s"], x["wall_log_ms"], x["get_ms"],
                                              x["changes"], x["api_requests"],
                                              mib(x["peak_kib"])))

        d["changed"] = []
        wrong = []
        for rnd in range(self.repeat):
            ids = self.patch_ids(n, rnd)
            for tid in ids:
                self.sim.patch(tid, {"state": "FAILED"})
            x = self.one_refresh(proc, dlog, mnt, n)
            x["patched"] = len(ids)
            d["changed"].append(x)
            for tid in ids:
                try:
                    with open(os.path.join(mnt, tid, "state")) as f:
                        got = f.read()
                except OSError as e:
                    got = str(e)
                if got != "FAILED\n":
                    wrong.append((tid, got))
            log("refresh, %d tasks changed: cpu %.2f s, wall %d ms (GET %s ms), "
                "%d changes, %d requests, peak %s MiB"
                % (len(ids), x["cpu_s"], x["wall_log_ms"], x["get_ms"], x["changes"],
                   x["api_requests"], mib(x["peak_kib"])))
        if wrong:
            self.note("%s: %d patched tasks do not read FAILED after the refresh, e.g. %r"
                      % (label, len(wrong), wrong[0]))
        d["patched_not_visible"] = len(wrong)

        c3 = dlog.counters()
        r = self.run("find . -type f | wc -l", mnt)
        c4 = dlog.counters()
        d["fuse_requests_find_after_changes"] = counter_delta(c4["opcodes"], c3["opcodes"])
        d["find_after_changes_count"] = r["out"].strip()
        ps = proc_status(pid)
        d["rss_after_refreshes_kib"] = ps.get("VmRSS")
        m = self.meter_stop(meter)
        d["other_cpu_pct"] = 100.0 * m["other_cpu_s"] / m["wall_s"] if m["wall_s"] else 0
        d["other_cpu_s"] = m["other_cpu_s"]
        if busy(d["other_cpu_pct"], d["other_cpu_s"]):
            self.note("daemon figures at %s: other processes used %.0f%% of a CPU meanwhile; "
                      "they are suspect" % (label, d["other_cpu_pct"]))
        st = self.status(mnt)
        d["status"] = st
        if st.get("last_error", "none") != "none":
            self.note("%s: .status last_error after refreshes: %s"
                      % (label, st.get("last_error")))
        d["exit_code"] = self.unmount(mnt)
        dlog.thread.join(30)
        d["unexpected_log_lines"] = list(dlog.other)
        d["files_pushed"] = dlog.pushed
        if d["exit_code"] != 0:
            self.note("%s: the -d daemon exited %s after unmount" % (label, d["exit_code"]))
        if dlog.other:
            self.note("%s: unexpected daemon log lines, e.g. %r" % (label, dlog.other[0]))
        if d["find_cold_count"] != d["find_after_changes_count"]:
            self.note("%s: find counted %s files before and %s after the refreshes"
                      % (label, d["find_cold_count"], d["find_after_changes_count"]))
