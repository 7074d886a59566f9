"""The report: the Markdown tables of a run (workloads per size, daemon
figures, scaling, targets, FUSE traffic, notes, smoke checks), what its
header says about the machine and the build, and --render, which prints
the report again from a results .json.

Owns: source_version, machine_info, render, render_peer, fmt_peer_ratio,
fmt_other_phase, fmt_other, esc, fmt_counts, rerender.
Uses: util, evaluate, workloads (WORKLOADS); the results dict that
runner.Bench fills and the attributes sizes, repeat, notes, smoke and
failures of a Bench (or of the stand-in that rerender builds).
"""

import argparse
import json
import platform

from .evaluate import (NO_SCALE, NOISE_FLOOR_S, SCALE_SLACK, below_floor, daemon_rows,
                       evaluate, peer_rows, scale_pair, scaling)
from .util import (OTHER_CPU_FLOOR_S, OTHER_CPU_LIMIT_PCT, ROOT, busy, cmd_out, fmt_ratio,
                   fmt_s, mib, ratio, size_label)
from .workloads import WORKLOADS


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


def render(results, bench, info, command):
    sizes = bench.sizes
    L = []
    L.append("## Results")
    L.append("")
    L.append("- date: %s" % results["started"])
    L.append("- machine: %s CPUs (`nproc`), %s, %s RAM; kernel `%s`; libfuse %s "
             "(`pkg-config --modversion fuse3`)"
             % (info["nproc"], info["cpu"], info["memory"], info["kernel"], info["libfuse"]))
    if info["commit"] == "prebuilt binary":
        L.append("- ingestfs: %s, a prebuilt binary (`--binary`)" % info["ingestfs"])
    else:
        L.append("- ingestfs: %s, built from commit %s, release build"
                 % (info["ingestfs"], info["commit"]))
    L.append("- tools: %s" % info["tools"])
    L.append("- command: `%s`" % command)
    L.append("- repeats: %d (warm passes per workload and side, refreshes of each kind; "
             "medians shown); total run time %.0f s%s"
             % (bench.repeat, results["elapsed_s"],
                "; `--peer-only`: no workloads, no timed mounts" if getattr(
                    bench, "peer_only", False) else ""))
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
        if not r.get("workloads"):
            continue
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
        if all(rw[i][1] is None for rw in rows):
            continue  # e.g. the timed mounts of a --peer-only run
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
    if pair and all(results["sizes"][str(x)].get("workloads") for x in pair):
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
    for n in sizes:
        L.extend(render_peer(results["sizes"][str(n)], n))
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
        if "fuse_round_trip_us" in d:
            extra.append("- %s: one FUSE round trip (fstat of an open `.events`, attribute "
                         "timeout 0: one GETATTR answered from memory): %.1f us; an fstat the "
                         "kernel answers from its cache: %.2f us" % (
                             size_label(n), d["fuse_round_trip_us"], d["cached_fstat_us"]))
        if "fuse_requests_warm_grep" in d:
            extra.append("- %s: of the first `grep -rl` after them: %s; of a warm one: %s; "
                         "of the first `tar -cf - . | cat`: %s; of a warm one: %s" % (
                             size_label(n), fmt_counts(d["fuse_requests_first_grep"]),
                             fmt_counts(d["fuse_requests_warm_grep"]),
                             fmt_counts(d["fuse_requests_first_tar"]),
                             fmt_counts(d["fuse_requests_warm_tar"])))
        if d.get("files_pushed") is not None:
            extra.append("- %s: files pushed into the page cache ahead of their reads "
                         "(FUSE_NOTIFY_STORE, fs_push.c) over the daemon's life: %d"
                         % (size_label(n), d["files_pushed"]))
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
            if any(results["sizes"][str(n)].get("workloads") for n in sizes):
                L.append("- `find . | sort`, `cat` of every state, `grep -rl FAILED . | sort` "
                         "identical on both sides; `diff -r` clean")
            if any(results["sizes"][str(n)].get("peer") for n in sizes):
                L.append("- the peer's tree and a fresh ingestfs mount: `diff -r` clean; "
                         "a task gone and one new handled")
        L.append("")
    return "\n".join(L)


def render_peer(r, n):
    """The peer's table of one size (none when the run had no peer)."""
    rows = peer_rows(r)
    if rows is None:
        return []
    p = r["peer"]
    L = ["### Peer: a cron job writing the tree (`bench/peer.sh`) vs ingestfs, %s tasks"
         % size_label(n), ""]
    L.append("The peer writes to %s; ingestfs's figures per refresh are the daemon "
             "figures above (`-d` mount, SIGHUP), its staleness is from a `-f -d` mount "
             "with `ttl=%g`. The peer's tree and a fresh ingestfs mount: `diff -r` %s "
             "(%.1f s). The cron driver ran the peer %d times during the staleness trials "
             "(%d ticks skipped while a run was still going)."
             % (p["target_fs"], p["ttl"], "clean" if p.get("same_as_ingestfs") else
                "**DIFFERENT**", p.get("diff_s") or 0, p.get("cron_jobs", 0),
                p.get("cron_skipped", 0)))
    loads = [x for x in p.get("load", []) if x is not None]
    other = p.get("other_cpu", {})
    if loads or other:
        L.append("")
        L.append("1-min load average at the start, before the staleness trials and at the "
                 "end: %s; other CPU during the refreshes: %s, during the staleness trials: %s."
                 % (", ".join("%.2f" % x for x in loads) or "n/a",
                    fmt_other_phase(other.get("refreshes")),
                    fmt_other_phase(other.get("staleness"))))
    L.append("")
    L.append("| figure | peer | ingestfs | peer / ingestfs |")
    L.append("|---|---:|---:|---:|")
    for name, vp, vi, fmt in rows:
        num = isinstance(vp, (int, float)) and isinstance(vi, (int, float))
        L.append("| %s | %s | %s | %s |" % (
            esc(name), fmt(vp) if vp is not None else "n/a",
            fmt(vi) if vi is not None else "n/a",
            fmt_peer_ratio(ratio(vp, vi)) if num and vi else ""))
    L.append("")
    return L


def fmt_peer_ratio(x):
    return "> 1000x" if x is not None and x > 1000 else fmt_ratio(x)


def fmt_other_phase(o):
    if not o:
        return "n/a"
    return "%.0f%% of a CPU (%.2f s)%s" % (o["pct"], o["s"],
                                            " **busy**" if busy(o["pct"], o["s"]) else "")


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


def rerender(path):
    with open(path) as f:
        results = json.load(f)
    b = argparse.Namespace(sizes=results["size_list"], repeat=results["repeat"],
                           notes=results.get("notes", []), smoke=results["smoke"],
                           failures=results.get("failures", []),
                           peer_only=results.get("peer_only", False))
    print(render(results, b, results["machine"], results["command"]))
    return 0
