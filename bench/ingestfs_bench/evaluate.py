"""The figures judged: every daemon figure of one size as a table row, the
targets (checked at 100k, or the size nearest to it), and the scaling of
every figure between the two largest sizes.

Owns: the targets (WARM_TARGETS, COLD_TARGET, MOUNT_TARGET_S,
STEADY_RSS_TARGET, PEAK_RSS_TARGET, REFRESH_CPU_TARGET_S, CHANGED_CPU_TARGET_S), SCALE_SLACK,
NOISE_FLOOR_S, NO_SCALE, per_task, fmt_bpt, daemon_rows, below_floor,
target_size, scale_pair, evaluate, scaling; SAVE_CPU_TARGET_S,
STATE_SIZE_TARGET, state_ratio; FEED_CPU_TARGET_MS; workload_targets;
ingestfs_file_bytes, fmt_bytes, plural, peer_rows (the peer against
ingestfs).
Uses: util, workloads (WORKLOADS), daemon (PATCHED_PER_REFRESH); reads the
results dict that runner.Bench fills (or a results .json).
"""

from .daemon import PATCHED_PER_REFRESH
from .util import fmt_ratio, fmt_s, median, mib, ratio, size_label
from .workloads import WORKLOADS

# Targets, checked at 100k (or the size nearest to it).
# issue 14's targets (the first round's were 1.5x/1.5x/2.0x warm, 10x cold,
# 1 KiB and 3 KiB per task; the unchanged refresh keeps its 0.5 s)
WARM_TARGETS = (
    ("find -type f | wc -l", 1.1, "find, warm"),
    ("grep -rl FAILED", 1.1, "grep -r, warm"),
    ("tar | cat", 1.15, "tar, warm"),
    ("ls -l", 2.0, "ls -l, warm"),
    ("read all states", 2.0, "reading all states, warm"),
)
COLD_TARGET = 5.0
MOUNT_TARGET_S = 3.0
STEADY_RSS_TARGET = 600       # bytes per task
PEAK_RSS_TARGET = 2 * 1024    # bytes per task, during a refresh that changes data
REFRESH_CPU_TARGET_S = 0.5
CHANGED_CPU_TARGET_S = 0.15   # a refresh with 10 changed tasks
SAVE_CPU_TARGET_S = 0.3       # the state save of a changed refresh
STATE_SIZE_TARGET = 1.5       # bytes a save writes / API answer
FEED_CPU_TARGET_MS = 20.0     # .events lines of a changed refresh: the walk, escape, write
SCALE_SLACK = 1.1             # 200k may cost 1.1 x 2 = 2.2 x 100k
NOISE_FLOOR_S = 0.1           # times this small are not flagged (10 ms CPU ticks)


def per_task(kib, n):
    return None if kib is None else kib * 1024.0 / n


def fmt_bpt(b):
    return "n/a" if b is None else "%.0f B (%.2f KiB)" % (b, b / 1024.0)


def daemon_rows(r):
    """(name, value, unit-formatter) for every daemon figure of one size."""
    n = r["n"]
    d = r["daemon"]
    u, c = d["unchanged"], d["changed"]

    # results of older runs lack the figures added since: n/a, not a KeyError
    def med(lst, k):
        v = [x.get(k) for x in lst]
        return median(v) if v and None not in v else None

    def mx(lst, k):
        v = [x[k] for x in lst if x.get(k) is not None]
        return max(v) if v else None

    return [
        ("mount: command returns (median of %d mounts), s" % len(r["mounts"]),
         r.get("mount_median_s"), fmt_s),
        ("mount: slowest of those, s", r.get("mount_max_s"), fmt_s),
        ("first mount: `ls` of the root right after, s", r.get("first_ls_s"), fmt_s),
        ("cp -a of the fresh mount to tmpfs, s", r.get("cp_s"), fmt_s),
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
        ("refresh, tasks changed: state save CPU (median), ms", med(c, "state_cpu_ms"),
         lambda x: "n/a" if x is None else "%.1f" % x),
        ("refresh, tasks changed: state save wall, fsync included (median), ms",
         med(c, "state_wall_ms"), lambda x: "n/a" if x is None else "%.1f" % x),
        ("refresh, tasks changed: state written (%s), MiB" % save_kinds(c),
         mx(c, "state_bytes"),
         lambda x: "n/a" if x is None else "%.1f" % (x / 1048576.0)),
        ("refresh, tasks changed: state written / API answer", state_ratio(c),
         lambda x: "n/a" if x is None else "%.2fx" % x),
        ("refresh, no change: state saves (max)", mx(u, "state_saves"),
         lambda x: "n/a" if x is None else "%d" % x),
        ("refresh, tasks changed: .events lines (max)", mx(c, "feed_lines"),
         lambda x: "n/a" if x is None else "%d" % x),
        ("refresh, tasks changed: .events bytes added (max)", mx(c, "feed_bytes"),
         lambda x: "n/a" if x is None else "%d" % x),
        ("refresh, tasks changed: .events lines CPU (median), ms", med(c, "feed_cpu_ms"),
         lambda x: "n/a" if x is None else "%.2f" % x),
        ("refresh, tasks changed: .events write wall, fsync included (median), ms",
         med(c, "feed_wall_ms"), lambda x: "n/a" if x is None else "%.1f" % x),
        ("refresh, no change: .events lines and bytes (max)",
         max((x.get("feed_lines", 0), x.get("feed_bytes", 0)) for x in u),
         lambda x: "%d lines, %d bytes" % x),
        ("RSS after all refreshes, MiB", d["rss_after_refreshes_kib"], mib),
        ("RSS after all refreshes per task", per_task(d["rss_after_refreshes_kib"], n),
         fmt_bpt),
    ]


def save_kinds(changed):
    """What the saves of the changed refreshes wrote: "delta", "whole",
    "delta or whole", or "whole file" for a daemon before deltas."""
    kinds = sorted({x.get("state_kind") or "whole" for x in changed if x.get("state_saves")})
    return " or ".join(kinds) if kinds else "none"


def state_ratio(changed):
    """Bytes a save wrote over answer bytes, the largest of the changed refreshes."""
    v = [x["state_bytes"] / x["answer_bytes"] for x in changed
         if x.get("state_bytes") and x.get("answer_bytes")]
    return max(v) if v else None


# figures that are counts which need not grow with N: no scaling flag
NO_SCALE = ("invalidations", "NOTIFY", "API requests", "answer unchanged", "state saves",
            "state written / API answer", ".events")


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


def workload_targets(r, lab):
    """The targets that need the workloads and the timed mounts."""
    rows = []
    for wname, lim, title in WARM_TARGETS:
        w = r["workloads"][wname]
        x = ratio(w["ingestfs_warm"], w["tmpfs_warm"])
        rows.append(("%s (%s)" % (title, lab), "<= %gx tmpfs" % lim,
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
    return rows


def evaluate(results, sizes):
    """Targets: list of (target, threshold, measured, met)."""
    rows = []
    n = target_size(sizes)
    r = results["sizes"][str(n)]
    lab = size_label(n)
    if r.get("workloads"):
        rows += workload_targets(r, lab)
    d = r["daemon"]
    b = per_task(d["steady_rss_kib"], n)
    rows.append(("steady RSS after warm find (%s)" % lab, "<= %d B/task" % STEADY_RSS_TARGET,
                 "%s (%s MiB)" % (fmt_bpt(b), mib(d["steady_rss_kib"])),
                 b <= STEADY_RSS_TARGET))
    peaks = [x["peak_kib"] for x in d["changed"] if x["peak_kib"]]
    pk = max(peaks) if peaks else None
    b = per_task(pk, n)
    rows.append(("peak RSS during a refresh with changes (%s)" % lab,
                 "<= %.0f KiB/task" % (PEAK_RSS_TARGET / 1024.0),
                 "%s (%s MiB)" % (fmt_bpt(b), mib(pk)),
                 b is not None and b <= PEAK_RSS_TARGET))
    cpu = median([x["cpu_s"] for x in d["unchanged"]])
    rows.append(("unchanged refresh CPU (%s)" % lab, "<= 0.5 s",
                 "%s s median (max %s s)" % (fmt_s(cpu), fmt_s(max(
                     x["cpu_s"] for x in d["unchanged"]))),
                 cpu <= REFRESH_CPU_TARGET_S))
    c = d["changed"]
    ccpu = median([x["cpu_s"] for x in c]) if c else None
    rows.append(("refresh with %d changed tasks, CPU (%s)" % (PATCHED_PER_REFRESH, lab),
                 "<= %.2f s" % CHANGED_CPU_TARGET_S,
                 "n/a" if ccpu is None else "%s s median (max %s s)" % (
                     fmt_s(ccpu), fmt_s(max(x["cpu_s"] for x in c))),
                 ccpu is not None and ccpu <= CHANGED_CPU_TARGET_S))
    save = median([x["state_cpu_ms"] for x in c]) if c and all(
        x.get("state_cpu_ms") is not None for x in c) else None
    rows.append(("state save CPU per changed refresh (%s)" % lab,
                 "<= %.1f s" % SAVE_CPU_TARGET_S,
                 "n/a" if save is None else "%.3f s median" % (save / 1000.0),
                 save is not None and save / 1000.0 <= SAVE_CPU_TARGET_S))
    sr = state_ratio(c)
    rows.append(("state written per save (%s)" % lab, "<= %.1fx the answer" % STATE_SIZE_TARGET,
                 "n/a" if sr is None else "%.2fx" % sr,
                 sr is not None and sr <= STATE_SIZE_TARGET))
    writes = max(x.get("state_saves", 0) for x in d["unchanged"])
    rows.append(("unchanged refresh writes nothing (%s)" % lab, "0 saves",
                 "%d" % writes, writes == 0))
    lines = max(x.get("feed_lines", 0) for x in c)
    rows.append((".events lines per refresh with %d changes (%s)" % (PATCHED_PER_REFRESH, lab),
                 "<= %d" % PATCHED_PER_REFRESH, "%d max" % lines,
                 0 < lines <= PATCHED_PER_REFRESH))
    fcpu = [x["feed_cpu_ms"] for x in c if x.get("feed_cpu_ms") is not None]
    rows.append((".events CPU per changed refresh (%s)" % lab,
                 "<= %.0f ms" % FEED_CPU_TARGET_MS,
                 "%.2f ms median" % median(fcpu) if fcpu else "n/a",
                 bool(fcpu) and median(fcpu) <= FEED_CPU_TARGET_MS))
    fu = max((x.get("feed_lines", 0), x.get("feed_bytes", 0)) for x in d["unchanged"])
    rows.append(("unchanged refresh adds nothing to .events (%s)" % lab, "0 lines, 0 bytes",
                 "%d lines, %d bytes" % fu, fu == (0, 0)))
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
    for name, _, _ in WORKLOADS if a.get("workloads") and b.get("workloads") else ():
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


# --------------------------------------------------------------------------
# The peer (bench/peer.sh) against ingestfs

def ingestfs_file_bytes(x):
    """Bytes one ingestfs refresh wrote to files: the state (whole or delta) when it
    was saved, and the lines added to .events."""
    saved = (x.get("state_bytes") or 0) if x.get("state_saves") else 0
    return saved + (x.get("feed_bytes") or 0)


def fmt_bytes(b):
    if b is None:
        return "n/a"
    if b < 10240:
        return "%d B" % b
    return "%.1f MiB" % (b / 1048576.0)


def plural(k, word):
    return "%d %s%s" % (k, word, "" if k == 1 else "s")


def peer_rows(r):
    """(figure, peer value, ingestfs value, formatter) for one size; None
    when the run had no peer."""
    p = r.get("peer")
    if not p:
        return None
    d = r["daemon"]
    pu, pc = p["unchanged"], p["changed"]
    du, dc = d["unchanged"], d["changed"]

    def med(lst, f):
        v = [f(x) for x in lst]
        v = [x for x in v if x is not None]
        return median(v) if v else None

    def stale(side, f):
        v = [t["stale_s"] for t in p["stale_" + side] if t.get("stale_s") is not None]
        return f(v) if v else None

    def part(side):
        v = [t["refresh_part_s"] for t in p["stale_" + side]
             if t.get("refresh_part_s") is not None]
        return median(v) if v else None

    def ms(k):
        return lambda x: None if x.get(k) is None else x[k] / 1000.0

    def what(x):
        return x

    first = p["first"]
    return [
        ("first run (peer: whole tree written) / mount until usable (ingestfs `-f -d`), s",
         first["wall_s"], p.get("ingestfs_mount_s"), fmt_s),
        ("first run / mount: CPU user+sys, s", first["cpu_s"], p.get("ingestfs_mount_cpu_s"),
         fmt_s),
        ("first run / mount: bytes written to files (ingestfs: its first state save)",
         first["file_bytes"], p.get("ingestfs_mount_file_bytes"), fmt_bytes),
        ("unchanged answer: CPU user+sys (median), s",
         med(pu, lambda x: x["cpu_s"]), med(du, lambda x: x["cpu_s"]), fmt_s),
        ("unchanged answer: wall (median), s",
         med(pu, lambda x: x["wall_s"]), med(du, ms("wall_log_ms")), fmt_s),
        ("unchanged answer: of which the fetch (median), s",
         med(pu, lambda x: x.get("fetch_s")), med(du, ms("get_ms")), fmt_s),
        ("unchanged answer: bytes written to files (max)",
         max(x["file_bytes"] for x in pu), max(ingestfs_file_bytes(x) for x in du), fmt_bytes),
        ("unchanged answer: all write(2) bytes, `wchar` (median)",
         med(pu, lambda x: x.get("io_wchar")), med(du, lambda x: x.get("io_wchar")),
         fmt_bytes),
        ("%d tasks changed: CPU user+sys (median), s" % PATCHED_PER_REFRESH,
         med(pc, lambda x: x["cpu_s"]), med(dc, lambda x: x["cpu_s"]), fmt_s),
        ("%d tasks changed: wall (median), s" % PATCHED_PER_REFRESH,
         med(pc, lambda x: x["wall_s"]), med(dc, ms("wall_log_ms")), fmt_s),
        ("%d tasks changed: of which the fetch (median), s" % PATCHED_PER_REFRESH,
         med(pc, lambda x: x.get("fetch_s")), med(dc, ms("get_ms")), fmt_s),
        ("%d tasks changed: bytes written to files (median)" % PATCHED_PER_REFRESH,
         med(pc, lambda x: x["file_bytes"]), med(dc, ingestfs_file_bytes), fmt_bytes),
        ("%d tasks changed: what was written (last refresh)" % PATCHED_PER_REFRESH,
         "%d files (%d tasks' state and raw.json, answer.json)"
         % (pc[-1]["files"], pc[-1]["changed_tasks"]),
         "state (%s, %s), %d .events lines" % (
             plural(dc[-1].get("state_saves") or 0, "save"), dc[-1].get("state_kind") or "whole",
             dc[-1].get("feed_lines") or 0),
         what),
        ("%d tasks changed: all write(2) bytes, `wchar` (median)" % PATCHED_PER_REFRESH,
         med(pc, lambda x: x.get("io_wchar")), med(dc, lambda x: x.get("io_wchar")),
         fmt_bytes),
        ("staleness, ttl %g s, %d trials: median, s" % (p["ttl"], p["trials"]),
         stale("peer", median), stale("ingestfs", median), fmt_s),
        ("staleness: mean, s", stale("peer", lambda v: sum(v) / len(v)),
         stale("ingestfs", lambda v: sum(v) / len(v)), fmt_s),
        ("staleness: max, s", stale("peer", max), stale("ingestfs", max), fmt_s),
        ("staleness: of which the refresh that brought it (median), s",
         part("peer"), part("ingestfs"), fmt_s),
        ("space: the tree on tmpfs, `du -s` (peer) / steady RSS (ingestfs), MiB",
         p.get("tree_kib"), d.get("steady_rss_kib"), mib),
        ("space: saved answer (peer) / state folder (ingestfs), MiB",
         p.get("state_kib"), p.get("ingestfs_state_kib"), mib),
    ]
