"""The peer row: what a user would run instead of ingestfs, a cron job
(bench/peer.sh with bench/peer_sync.py) that fetches the collection every
TTL and writes the tree to a folder, here on the size's tmpfs.  Measured
against the same simulator in the same run as ingestfs:

- the peer's first run (the whole tree written);
- per refresh, --repeat times each, an unchanged answer and one with
  daemon.PATCHED_PER_REFRESH changed tasks: CPU (user+sys of the job and
  all its processes, from wait4), wall time, the fetch (curl's own time),
  bytes written to files (the writer counts them) and all write(2) bytes
  (wchar of /proc/self/io, which adds up reaped children); ingestfs's
  figures of the same kinds come from the daemon figures (one_refresh);
- one task gone and one new (the gone folder must go);
- the peer's tree against a fresh ingestfs mount: `diff -r` must be clean
  (with --smoke a difference fails the run);
- staleness: ingestfs mounted with ttl=--peer-ttl, then the peer run by a
  cron-like driver every --peer-ttl seconds; in each of --peer-trials
  trials a random wait (uniform over one TTL; the same sequence of waits on
  both sides), one task PATCHed to FAILED, and a reader polls its `state`
  file every POLL_S until it reads FAILED.

Owns: PEER_SH, POLL_S, RE_FETCH, RE_PEER, spawn_wait, Cron, loadavg,
read_bytes, PeerMixin (peer_job, du_kib, peer_figures, other_cpu,
peer_staleness, stale_trials), a part of runner.Bench.
Uses: util, procfs, sim, daemon (RE_SAVE); from Bench: sim, cred, repeat,
smoke, work, run_groups, failures, peer_ttl, peer_trials, note,
sample_load, meter_start, meter_stop, run (workloads), patch_ids (daemon), mount_daemon,
mount_foreground_debug, status, unmount (mounts).
"""

import os
import random
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time

from .daemon import RE_SAVE
from .procfs import cpu_seconds, proc_io
from .sim import apisim, simctl
from .util import ENV, ROOT, BenchError, busy, log, median, size_label

PEER_SH = os.path.join(ROOT, "bench", "peer.sh")
POLL_S = 0.01              # the staleness reader's poll interval

# bench/peer.sh's stderr: curl's --write-out line and the writer's summary
RE_FETCH = re.compile(r"fetch: status (\d+), (\d+) bytes, ([\d.]+) s")
RE_PEER = re.compile(r"peer: tasks=(\S+) changed_tasks=(\d+) files=(\d+) bytes=(\d+) "
                     r"removed=(\d+) answer=(\w+)")


def spawn_wait(argv, groups):
    """Run @argv in its own process group (listed in @groups while it runs,
    so that cleanup can kill it); returns (exit code, rusage, wall s,
    stderr text).  wait4's rusage covers the process and every child it
    reaped: curl and both Pythons of peer.sh."""
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err, env=ENV, start_new_session=True)
        groups.append(p.pid)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            os.waitpid(p.pid, 0)
            raise
        finally:
            groups.remove(p.pid)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return p.returncode, ru, wall, text


class Cron(threading.Thread):
    """Starts bench/peer.sh every @ttl seconds on a fixed schedule, as cron
    does; a tick that comes while the job still runs is skipped (what
    `flock -n` in a crontab line does)."""

    def __init__(self, argv, ttl, groups):
        super().__init__(daemon=True)
        self.argv, self.ttl, self.groups = argv, ttl, groups
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.jobs = []          # dicts: start, end, cpu_s, rc (end None while running)
        self.skipped = 0
        self.error = None

    def run(self):
        nxt = time.monotonic()
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if nxt > now and self.stopping.wait(nxt - now):
                    break
                job = {"start": time.monotonic(), "end": None, "cpu_s": None, "rc": None}
                with self.lock:
                    self.jobs.append(job)
                rc, ru, _, text = spawn_wait(self.argv, self.groups)
                with self.lock:
                    job.update(end=time.monotonic(), rc=rc, cpu_s=ru.ru_utime + ru.ru_stime)
                if rc != 0:
                    self.error = "peer.sh exited %d: %s" % (rc, text.strip()[-300:])
                nxt += self.ttl
                now = time.monotonic()
                while nxt <= now:
                    nxt += self.ttl
                    self.skipped += 1
        except Exception as e:  # reported by the caller
            self.error = repr(e)

    def runs(self):
        with self.lock:
            return [(j["start"], j["end"]) for j in self.jobs]

    def finished(self):
        with self.lock:
            return sum(1 for j in self.jobs if j["end"] is not None)

    def stop(self, timeout=600):
        self.stopping.set()
        self.join(timeout)


def loadavg():
    """The 1-minute load average."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_bytes(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


class PeerMixin:
    """The peer's figures of one size; a part of runner.Bench."""

    def peer_job(self, target):
        """One run of bench/peer.sh onto @target, measured."""
        io0 = proc_io()
        rc, ru, wall, text = spawn_wait([PEER_SH, self.sim.url, self.cred, target],
                                        self.run_groups)
        io1 = proc_io()
        out = {"rc": rc, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
               "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
               "io_wchar": io1.get("wchar", 0) - io0.get("wchar", 0) if io0 else None,
               "io_write_bytes": (io1.get("write_bytes", 0) - io0.get("write_bytes", 0)
                                  if io0 else None),
               "stderr": text.strip()[-1000:]}
        m = RE_FETCH.search(text)
        if m:
            out.update(http_status=int(m.group(1)), answer_bytes=int(m.group(2)),
                       fetch_s=float(m.group(3)))
        m = RE_PEER.search(text)
        if m:
            out.update(tasks=None if m.group(1) == "?" else int(m.group(1)),
                       changed_tasks=int(m.group(2)), files=int(m.group(3)),
                       file_bytes=int(m.group(4)), removed=int(m.group(5)),
                       answer=m.group(6))
        if rc != 0 or not m:
            raise BenchError("bench/peer.sh exited %d: %s" % (rc, text.strip()[-500:]))
        return out

    def du_kib(self, path, apparent=False):
        argv = ["du", "-sk"] + (["--apparent-size"] if apparent else []) + [path]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           env=ENV, check=False)
        try:
            return int(r.stdout.split()[0])
        except (IndexError, ValueError):
            return None

    def peer_figures(self, n, res, tmpfs, sdir):
        label = size_label(n)
        p = {"target_fs": "tmpfs", "ttl": self.peer_ttl, "trials": self.peer_trials}
        res["peer"] = p
        p["load"] = [loadavg()]
        self.sample_load()
        target = os.path.join(tmpfs, "peer")
        meter = self.meter_start()
        log("peer: first run of bench/peer.sh onto the tmpfs")
        x = self.peer_job(target)
        p["first"] = x
        if x.get("tasks") != n:
            raise BenchError("peer.sh wrote %s tasks, expected %d" % (x.get("tasks"), n))
        log("peer: first run %.2f s wall, %.2f s CPU, %d files, %d bytes"
            % (x["wall_s"], x["cpu_s"], x["files"], x["file_bytes"]))
        p["tree_kib"] = self.du_kib(target)
        p["tree_apparent_kib"] = self.du_kib(target, apparent=True)
        p["state_kib"] = self.du_kib(target + ".state", apparent=True)
        # the -d mount of the daemon figures left its state folder behind
        p["ingestfs_state_kib"] = self.du_kib(os.path.join(sdir, "mnt-debug.state"),
                                              apparent=True)

        p["unchanged"] = []
        for _ in range(self.repeat):
            x = self.peer_job(target)
            p["unchanged"].append(x)
            log("peer, no change: cpu %.3f s, wall %.3f s, %d bytes to files"
                % (x["cpu_s"], x["wall_s"], x["file_bytes"]))
        p["changed"] = []
        wrong = []
        for rnd in range(self.repeat):
            # rounds after the daemon figures' ones: tasks still COMPLETED
            ids = self.patch_ids(n, self.repeat + rnd)
            for tid in ids:
                self.sim.patch(tid, {"state": "FAILED"})
            x = self.peer_job(target)
            x["patched"] = len(ids)
            p["changed"].append(x)
            wrong += [tid for tid in ids
                      if read_bytes(os.path.join(target, tid, "state")) != b"FAILED\n"]
            log("peer, %d tasks changed: cpu %.3f s, wall %.3f s (fetch %.3f s), "
                "%d files, %d bytes to files"
                % (len(ids), x["cpu_s"], x["wall_s"], x.get("fetch_s", 0), x["files"],
                   x["file_bytes"]))
        if wrong:
            self.note("%s: %d patched tasks do not read FAILED in the peer's tree, e.g. %s"
                      % (label, len(wrong), wrong[0]))
        p["patched_not_visible"] = len(wrong)

        # one task gone, one new: the gone folder must go
        gone, new = apisim.generated_id(2), apisim.generated_id(n)
        self.sim.delete(gone)
        self.sim.add(simctl.make_item(new, state="PENDING", operation="CREATE",
                                      timestamp=apisim.GEN_BASE_TIMESTAMP + 7 * n))
        x = self.peer_job(target)
        p["churn"] = x
        ok = (x["removed"] == 1 and not os.path.lexists(os.path.join(target, gone))
              and read_bytes(os.path.join(target, new, "state")) == b"PENDING\n")
        p["churn_ok"] = ok
        if not ok:
            msg = ("%s: after one task went and one came, the peer removed %d folders; "
                   "gone one still there: %s" % (label, x["removed"],
                                                 os.path.lexists(os.path.join(target, gone))))
            self.note(msg)
            if self.smoke:
                self.failures.append(msg)

        # (the daemon below is not our child: its CPU would count as others')
        self.other_cpu(p, "refreshes", meter, label)

        # the same bytes as ingestfs
        mnt = os.path.join(sdir, "mnt-peercheck")
        os.mkdir(mnt)
        self.mount_daemon(mnt)
        r = self.run("diff -r %s %s" % (shlex.quote(target), shlex.quote(mnt)), self.work)
        same = r["rc"] == 0 and not r["out"] and not r["err"]
        p["diff_s"] = r["s"]
        p["same_as_ingestfs"] = same
        log("peer: diff -r peer tree vs ingestfs mount: %s (%.1f s)"
            % ("clean" if same else "DIFFERENT", r["s"]))
        if not same:
            msg = ("%s: diff -r peer tree vs ingestfs: rc %d: %s %s"
                   % (label, r["rc"], r["out"][:500], r["err"][:300]))
            self.note(msg)
            if self.smoke:
                self.failures.append(msg)
        self.unmount(mnt)

        p["load"].append(loadavg())
        self.sample_load()
        meter = self.meter_start()
        self.peer_staleness(n, p, target, sdir)
        self.other_cpu(p, "staleness", meter, label)
        p["load"].append(loadavg())

    def other_cpu(self, p, phase, meter, label):
        """CPU used by processes outside the benchmark during @phase (the
        peer's jobs are reaped by the benchmark, so they count as its own)."""
        m = self.meter_stop(meter)
        pct = 100.0 * m["other_cpu_s"] / m["wall_s"] if m["wall_s"] else 0.0
        p.setdefault("other_cpu", {})[phase] = {"pct": pct, "s": m["other_cpu_s"]}
        if busy(pct, m["other_cpu_s"]):
            self.note("peer %s at %s: other processes used %.0f%% of a CPU meanwhile; "
                      "they are suspect" % (phase, label, pct))

    # ---- staleness

    def stale_trials(self, n, root, first, runs):
        """--peer-trials trials on the tree at @root: wait a random part of
        a TTL, PATCH one IN_PROGRESS task (i % 4 == 1, from the @first-th
        on) to FAILED, poll its `state` until it reads FAILED.  @runs()
        lists the (start, end) of the refreshes so far, to tell which one
        brought the change."""
        rng = random.Random(20261130)  # both sides wait the same sequence: paired trials
        ttl = self.peer_ttl
        limit = 3 * ttl + 120 + n / 1000.0
        out = []
        for k in range(self.peer_trials):
            i = 4 * (first + k) + 1
            if i >= n:
                break
            tid = apisim.generated_id(i)
            path = os.path.join(root, tid, "state")
            time.sleep(rng.uniform(0, ttl))
            self.sim.patch(tid, {"state": "FAILED"})
            t0 = time.monotonic()
            seen = None
            while time.monotonic() - t0 < limit:
                if read_bytes(path) == b"FAILED\n":
                    seen = time.monotonic()
                    break
                time.sleep(POLL_S)
            if seen is None:
                self.note("%s: a change did not show within %.0f s at %s"
                          % (size_label(n), limit, root))
                out.append({"stale_s": None})
                continue
            time.sleep(0.3)  # let the refresh's end be recorded
            starts = [s for s, _ in runs() if s <= seen]
            start = max(starts) if starts else None
            out.append({"stale_s": seen - t0,
                        "refresh_part_s": seen - start if start is not None else None})
            log("staleness trial %d at %s: %.2f s (the refresh that brought it: %s s)"
                % (k + 1, os.path.basename(root), seen - t0,
                   "%.2f" % (seen - start) if start is not None else "?"))
        return out

    def peer_staleness(self, n, p, target, sdir):
        ttl = self.peer_ttl
        # ingestfs: a foreground -d mount, so that its log tells when each refresh ran
        mnt = os.path.join(sdir, "mnt-stale")
        os.mkdir(mnt)
        log("staleness: ingestfs with ttl=%g, %d trials" % (ttl, self.peer_trials))
        t0 = time.monotonic()
        proc, dlog = self.mount_foreground_debug(mnt, os.path.join(sdir, "ingestfs-stale.log"),
                                                 ttl=ttl)
        p["ingestfs_mount_s"] = time.monotonic() - t0
        p["ingestfs_mount_cpu_s"] = cpu_seconds(proc.pid)
        time.sleep(0.5)  # the first state save runs beside the mount
        st = self.status(mnt)
        save = RE_SAVE.match(st.get("state_last_save", ""))
        p["ingestfs_mount_file_bytes"] = (int(save.group(1)) if save and
                                          int(st.get("state_saves", 0)) >= 1 else None)

        def ingestfs_runs():
            with dlog.lock:
                return [(ev["t"] - ev["ms"] / 1000.0, ev["t"]) for ev in dlog.refreshes
                        if ev["ms"] is not None]

        p["stale_ingestfs"] = self.stale_trials(n, mnt, 0, ingestfs_runs)
        p["ingestfs_refreshes"] = len(dlog.refreshes)
        self.unmount(mnt)

        log("staleness: the peer from a cron-like driver every %g s, %d trials"
            % (ttl, self.peer_trials))
        cron = Cron([PEER_SH, self.sim.url, self.cred, target], ttl, self.run_groups)
        cron.start()
        try:
            deadline = time.monotonic() + 300 + n / 100.0
            while cron.finished() < 1 and time.monotonic() < deadline and cron.is_alive():
                time.sleep(0.05)
            if cron.finished() < 1:
                raise BenchError("the peer's first cron run did not finish: %s" % cron.error)
            p["stale_peer"] = self.stale_trials(n, target, self.peer_trials, cron.runs)
        finally:
            cron.stop()
        p["cron_jobs"] = len(cron.jobs)
        p["cron_skipped"] = cron.skipped
        p["cron_cpu_s"] = sum(j["cpu_s"] or 0 for j in cron.jobs)
        if cron.error:
            self.note("%s: the peer's cron job: %s" % (size_label(n), cron.error))
        for side in ("ingestfs", "peer"):
            v = [t["stale_s"] for t in p["stale_" + side] if t["stale_s"] is not None]
            log("staleness %s: median %s s, max %s s over %d trials"
                % (side, "%.2f" % median(v) if v else "n/a",
                   "%.2f" % max(v) if v else "n/a", len(v)))
