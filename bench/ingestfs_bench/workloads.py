"""The workloads: the shell commands timed on both sides, and their passes.
For each workload: a fresh ingestfs mount, one cold and --repeat warm
passes on it, then the same on the tmpfs copy after dropping caches; the
outputs that matter are compared, the daemon's RSS is read, and the CPU
used by other processes meanwhile is metered.  --smoke's checks that both
sides show the same tree live here too.

Owns: WORKLOADS, WorkloadsMixin (run, timed, run_workloads, smoke_checks),
a part of runner.Bench.
Uses: util, procfs; from Bench: smoke, repeat, is_root, work, failures,
run_groups, dest_seq, note, sample_load, meter_start, meter_stop;
mount_daemon, unmount, status, rm_tree (mounts).
"""

import os
import shlex
import signal
import subprocess
import time

from .procfs import drop_caches, pid_alive, proc_status
from .util import ENV, busy, fmt_s, log, median

# (name, shell command run in the tree's top folder). {dest} = a fresh
# folder on tmpfs.  Output that matters is compared between both sides.
WORKLOADS = (
    ("ls", "ls >/dev/null", False),
    ("ls -l", "ls -l >/dev/null", False),
    ("ls -f | wc -l", "ls -f | wc -l", True),
    ("find -type f | wc -l", "find . -type f | wc -l", True),
    ("read all states", "find . -name state -exec cat {} + >/dev/null", False),
    ("grep -rl FAILED", "grep -rl FAILED . >/dev/null", False),
    ("tar | cat", "tar -cf - . | cat >/dev/null", False),
    ("du -s", "du -s >/dev/null", False),
    ("rsync -a", "rsync -a ./ {dest}/", False),
)


class WorkloadsMixin:
    """Runs the workloads; a part of runner.Bench."""

    # ---- running workloads

    def run(self, cmd, cwd, timeout=3600):
        t0 = time.perf_counter()
        p = subprocess.Popen(["/bin/sh", "-c", cmd], cwd=cwd, env=ENV,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        self.run_groups.append(p.pid)
        try:
            out, err = p.communicate(timeout=timeout)
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
            raise
        finally:
            self.run_groups.remove(p.pid)
        took = time.perf_counter() - t0
        return {"s": took, "rc": p.returncode,
                "out": out.decode("utf-8", "replace"),
                "err": err.decode("utf-8", "replace")[-1000:]}

    def timed(self, name, cmd, cwd, side, rsync_base):
        dest = None
        if "{dest}" in cmd:
            self.dest_seq += 1
            dest = os.path.join(rsync_base, "rsync-dest-%d" % self.dest_seq)
            cmd = cmd.format(dest=dest)
        r = self.run(cmd, cwd)
        if dest:
            self.rm_tree(dest)
        if r["rc"] != 0:
            msg = "%s on %s exited %d: %s" % (name, side, r["rc"], r["err"].strip()[:300])
            self.note(msg)
            if self.smoke:
                self.failures.append(msg)
        return r

    def run_workloads(self, res, label, mnt, copy, tmpfs):
        """Every workload on a fresh mount at @mnt, then on the tmpfs @copy;
        the figures go to res["workloads"]."""
        for name, cmd, compare in WORKLOADS:
            self.sample_load()
            # ingestfs: a fresh mount, so the cold pass is the first one
            self.unmount(mnt)
            took, pid = self.mount_daemon(mnt)
            res["mounts"].append(took)
            w = {"cmd": cmd}
            meter = self.meter_start([pid])
            runs = [self.timed(name, cmd, mnt, "ingestfs", tmpfs)
                    for _ in range(1 + self.repeat)]
            w["ingestfs_meter"] = self.meter_stop(meter)
            w["ingestfs_cold"] = runs[0]["s"]
            w["ingestfs_warm_runs"] = [x["s"] for x in runs[1:]]
            w["ingestfs_rc"] = [x["rc"] for x in runs]
            ps = proc_status(pid)
            w["daemon_rss_kib"] = ps.get("VmRSS")
            w["daemon_hwm_kib"] = ps.get("VmHWM")
            w["daemon_alive"] = pid_alive(pid)
            if not w["daemon_alive"]:
                self.note("the daemon died during %s at %s" % (name, label))
            st = self.status(mnt)
            if st.get("last_error", "none") != "none":
                self.note("%s: .status last_error: %s" % (name, st.get("last_error")))
            # tmpfs: drop what can be dropped, then the same passes
            if self.is_root:
                drop_caches()
            meter = self.meter_start([pid])
            truns = [self.timed(name, cmd, copy, "tmpfs", tmpfs)
                     for _ in range(1 + self.repeat)]
            w["tmpfs_meter"] = self.meter_stop(meter)
            w["other_cpu_pct"] = max(
                100.0 * m["other_cpu_s"] / m["wall_s"]
                for m in (w["ingestfs_meter"], w["tmpfs_meter"]) if m["wall_s"] > 0)
            w["other_cpu_s"] = max(w["ingestfs_meter"]["other_cpu_s"],
                                   w["tmpfs_meter"]["other_cpu_s"])
            if busy(w["other_cpu_pct"], w["other_cpu_s"]):
                self.note("%s at %s: other processes used %.0f%% of a CPU while it ran; "
                          "its numbers are suspect" % (name, label, w["other_cpu_pct"]))
            w["tmpfs_cold"] = truns[0]["s"]
            w["tmpfs_warm_runs"] = [x["s"] for x in truns[1:]]
            w["tmpfs_rc"] = [x["rc"] for x in truns]
            if compare:
                a = sorted(set(x["out"] for x in runs))
                b = sorted(set(x["out"] for x in truns))
                w["output"] = {"ingestfs": a, "tmpfs": b}
                if a != b:
                    msg = "%s at %s: ingestfs printed %r, tmpfs %r" % (name, label, a, b)
                    self.note(msg)
                    if self.smoke:
                        self.failures.append(msg)
            w["ingestfs_warm"] = median(w["ingestfs_warm_runs"])
            w["tmpfs_warm"] = median(w["tmpfs_warm_runs"])
            res["workloads"][name] = w
            log("%-22s cold %8s / %8s   warm %8s / %8s  (ingestfs / tmpfs, s)"
                % (name, fmt_s(w["ingestfs_cold"]), fmt_s(w["tmpfs_cold"]),
                   fmt_s(w["ingestfs_warm"]), fmt_s(w["tmpfs_warm"])))

    # ---- smoke assertions

    def smoke_checks(self, mnt, copy):
        checks = (
            ("find . | sort", "find . | sort"),
            ("cat of every state", "find . -name state -exec cat {} + | sort"),
            ("grep -rl FAILED . | sort", "grep -rl FAILED . | sort"),
        )
        for name, cmd in checks:
            a = self.run(cmd, mnt)
            b = self.run(cmd, copy)
            same = a["rc"] == b["rc"] == 0 and a["out"] == b["out"] and a["out"]
            log("smoke: %-26s %s (%d lines)" % (name, "same" if same else "DIFFERENT",
                                                a["out"].count("\n")))
            if not same:
                self.failures.append("%s differs: ingestfs rc %d, %d bytes; tmpfs rc %d, "
                                     "%d bytes" % (name, a["rc"], len(a["out"]), b["rc"],
                                                   len(b["out"])))
        r = self.run("diff -r %s %s" % (shlex.quote(copy), shlex.quote(mnt)), self.work)
        ok = r["rc"] == 0 and not r["out"] and not r["err"]
        log("smoke: %-26s %s" % ("diff -r copy mount", "clean" if ok else "DIFFERENT"))
        if not ok:
            self.failures.append("diff -r: rc %d: %s %s" % (r["rc"], r["out"][:500],
                                                            r["err"][:300]))
