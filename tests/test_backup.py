# SPDX-License-Identifier: MIT
"""Incremental backups of a mount with rsync, restic, borg and GNU tar.

A file's st_ino names its content version, its mtime = ctime is when the
daemon first saw that content, and the state folder keeps both across an
unmount and remount.  So, by each tool's own report: a second backup with
nothing changed takes no file, and after a change exactly the changed files
are taken - in one mount, and across a remount (the change made while
unmounted).  Borg has one rule of its own (see Borg.expect); with it, a
second `borg create --list` of a mount of 1000 tasks lists all but one of
its 4000 files as unchanged.
"""
import json
import os
import re
import stat
import subprocess
import time

import pytest

from conftest import wait_for

N_TASKS = 300      # 1200 files: enough to tell "all" from "some" from "none"
BIG_TASKS = 1000   # the borg 99 % check: 4000 files
HOST = "ingestfs-test"  # restic picks its parent snapshot by host and path


def read(path):
    with open(path) as f:
        return f.read()


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    assert r.returncode == 0, "%s exited %d\nstdout: %s\nstderr: %s" % (
        " ".join(map(str, cmd)), r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    return r


def tool_env(**extra):
    """This environment without the caller's restic or borg settings, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "BORG_"))}
    env.update(extra)
    return env


def tree(m):
    """{path relative to the mount: (kind, st_ino, st_size, st_mtime_ns, st_ctime_ns)}
    of the root, every task folder and every file in it."""
    def key(st):
        return (stat.S_IFMT(st.st_mode), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    out = {".": key(os.stat(m.path))}
    for d in os.scandir(m.path):
        out[d.name + "/"] = key(d.stat(follow_symlinks=False))
        for f in os.scandir(d.path):
            out[d.name + "/" + f.name] = key(f.stat(follow_symlinks=False))
    return out


def files_of(t):
    return {p for p, k in t.items() if k[0] == stat.S_IFREG}


def newest(t):
    """The files with the newest ctime (one: stamps are 1 ns apart)."""
    top = max(k[4] for p, k in t.items() if k[0] == stat.S_IFREG)
    return {p for p, k in t.items() if k[0] == stat.S_IFREG and k[4] == top}


def differ(before, after):
    return {p for p in set(before) | set(after) if before.get(p) != after.get(p)}


def pick_task(m):
    """A task whose state is not FAILED yet, so that patching it changes it."""
    for tid in sorted(os.listdir(m.path)):
        if read(m.p(tid, "state")) == "COMPLETED\n":
            return tid
    raise AssertionError("no COMPLETED task in the mount")


def fail_task(m, tid):
    m.sim.patch(tid, {"state": "FAILED"})


def wait_failed(m, tid):
    """Wait until the mount shows tid's new state, in both files it changes."""
    assert wait_for(lambda: read(m.p(tid, "state")) == "FAILED\n"
                    and '"state": "FAILED"' in read(m.p(tid, "raw.json")), 10), \
        "the change to %s never showed: %r" % (tid, m.status())


def changed_paths(tid):
    return {tid + "/state", tid + "/raw.json"}


class Report:
    """What a tool says it did with the files (folders are left out).

    taken: files it read and stored anew; new: those it calls new (None: it
    does not tell new from modified); unchanged: how many files it says it
    skipped (None: it does not count them); odd: lines for files it neither
    took nor skipped cleanly (must be none)."""

    def __init__(self, text, taken, new=None, unchanged=None, odd=()):
        self.text, self.taken, self.new, self.unchanged = text, taken, new, unchanged
        self.odd = list(odd)


class Tool:
    name = None

    def __init__(self, tmp):
        self.tmp = tmp
        tmp.mkdir()
        self.n = 0

    def expect(self, changed, before):
        """(taken, new) a backup must report when the files in changed are the
        only ones that differ from `before`, the tree at the previous backup."""
        return set(changed), set()

    def check(self, m, changed, before, remounted=False):
        """Run a backup and compare its report with expect()."""
        total = len(files_of(tree(m)))
        report = self.backup(m, remounted)
        taken, new = self.expect(changed, before)
        where = "%s backup %d; its report:\n%s" % (self.name, self.n, report.text[-4000:])
        assert not report.odd, "%r in %s" % (report.odd[:10], where)
        assert report.taken == taken, "took %d files %r, expected %r, in %s" % (
            len(report.taken), sorted(report.taken)[:10], sorted(taken), where)
        if report.new is not None:
            assert report.new == new, "new: %r, expected %r, in %s" % (
                sorted(report.new)[:10], sorted(new), where)
        if report.unchanged is not None:
            assert report.unchanged == total - len(taken), where
        return report

    def check_full(self, m):
        files = files_of(tree(m))
        report = self.backup(m, False)
        assert report.taken == files and report.new in (None, files) and not report.odd, \
            "first %s backup: took %d of %d files; its report:\n%s" % (
                self.name, len(report.taken), len(files), report.text[-4000:])
        return report


class Rsync(Tool):
    name = "rsync"
    # %i: update type, file type, then nine attribute letters; -ii lists
    # unchanged files too ('.f' and nine blanks)
    ITEM = re.compile(r"^([<>ch.*])([fdLDS])(.{9}) (.*)$")

    def backup(self, m, remounted):
        self.n += 1
        r = run(["rsync", "-a", "--stats", "-ii", m.path + "/", str(self.tmp / "copy") + "/"])
        taken, new, odd, unchanged = set(), set(), [], 0
        for line in r.stdout.splitlines():
            mo = self.ITEM.match(line)
            if not mo or mo.group(2) != "f":
                continue
            update, attrs, path = mo.group(1), mo.group(3), mo.group(4)
            if update == ">":
                taken.add(path)
                if attrs == "+" * 9:
                    new.add(path)
            elif update == "." and attrs == " " * 9:
                unchanged += 1
            else:
                odd.append(line)  # e.g. '.f..t......': same content, other mtime
        sent = re.search(r"^Number of regular files transferred: ([\d,]+)$", r.stdout, re.M)
        assert sent and int(sent.group(1).replace(",", "")) == len(taken), r.stdout
        return Report(r.stdout, taken, new, unchanged, odd)


class Restic(Tool):
    name = "restic"

    def __init__(self, tmp):
        super().__init__(tmp)
        self.env = tool_env(RESTIC_REPOSITORY=str(tmp / "repo"),
                            RESTIC_PASSWORD="ingestfs-test",
                            RESTIC_CACHE_DIR=str(tmp / "cache"))
        run(["restic", "init", "--quiet"], env=self.env)

    def backup(self, m, remounted):
        self.n += 1
        # -vv --json: one verbose_status line per file and folder, action
        # new / modified / unchanged, then the summary
        r = run(["restic", "backup", "--json", "-vv", "--host", HOST, "."],
                cwd=m.path, env=self.env)
        taken, new, odd, unchanged, summary = set(), set(), [], 0, None
        for line in r.stdout.splitlines():
            msg = json.loads(line)
            if msg["message_type"] == "summary":
                summary = msg
            if msg["message_type"] != "verbose_status" or msg["item"].endswith("/"):
                continue
            path = msg["item"].lstrip("/")
            if msg["action"] in ("new", "modified"):
                taken.add(path)
                if msg["action"] == "new":
                    new.add(path)
            elif msg["action"] == "unchanged":
                unchanged += 1
            else:
                odd.append(line)
        assert summary, r.stdout[-2000:]
        # the summary agrees with the per-file lines
        assert (summary["files_new"], summary["files_changed"], summary["files_unmodified"]) \
            == (len(new), len(taken - new), unchanged), summary
        return Report(json.dumps(summary), taken, new, unchanged, odd)


class Borg(Tool):
    name = "borg"

    def __init__(self, tmp):
        super().__init__(tmp)
        self.repo = str(tmp / "repo")
        self.env = tool_env(BORG_BASE_DIR=str(tmp / "base"),
                            BORG_CACHE_DIR=str(tmp / "cache"),
                            BORG_CONFIG_DIR=str(tmp / "config"), BORG_PASSPHRASE="",
                            BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
                            BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
        run(["borg", "init", "--encryption=none", self.repo], env=self.env)

    def backup(self, m, remounted):
        self.n += 1
        # default --files-cache=ctime,size,inode; --list writes "X path" to
        # stderr: A added, M modified, U unchanged, d folder, E error...
        r = run(["borg", "create", "--list", "%s::b%d" % (self.repo, self.n), "."],
                cwd=m.path, env=self.env)
        status = {}
        odd = []
        for line in r.stderr.splitlines():
            mo = re.match(r"^(\S) (.+)$", line)
            if not mo:
                odd.append(line)
            elif mo.group(1) != "d":
                status[mo.group(2)] = mo.group(1)
        odd += ["%s %s" % (s, p) for p, s in status.items() if s not in "AMU"]
        taken = {p for p, s in status.items() if s in "AM"}
        new = {p for p, s in status.items() if s == "A"}
        unchanged = sum(1 for s in status.values() if s == "U")
        return Report(r.stderr, taken, new, unchanged, odd)

    def expect(self, changed, before):
        # Borg keeps no files-cache entry for the files whose ctime equals
        # the newest ctime among those it read (cache.py, commit: "avoid
        # issues with ... cmtime granularity"), so it reads that file again
        # next time and lists it as 'A'.  Stamps 1 ns apart make that one
        # file, the newest at the previous backup; a changed file is 'M'.
        again = newest(before) - set(changed)
        return set(changed) | again, again


class Tar(Tool):
    name = "tar"

    def backup(self, m, remounted):
        self.n += 1
        archive = str(self.tmp / ("level%d.tar" % self.n))
        cmd = ["tar", "--create", "--file", archive,
               "--listed-incremental", str(self.tmp / "snar")]
        if remounted:
            # The kernel allocates a FUSE mount's st_dev at each mount (the
            # number freed at unmount, or another when other mounts took
            # it meanwhile), and GNU tar takes a folder whose device changed
            # for a renamed one ("tar: ./<id>: Directory has been renamed")
            # and dumps every file in it again.  Its documented
            # --no-check-device compares folders by inode and times only,
            # which the state folder keeps.
            cmd.append("--no-check-device")
        run(cmd + ["-C", m.path, "."])
        listing = run(["tar", "--list", "--verbose", "--file", archive]).stdout
        # "-r--r--r-- root/root 10 2026-01-01 12:00 ./<id>/state"; folders
        # (type d) are in every level, with the names they hold
        taken = {line.split(None, 5)[5][2:] for line in listing.splitlines()
                 if line.startswith("-")}
        odd = [line for line in listing.splitlines() if line[:1] not in ("-", "d")]
        return Report(listing, taken, odd=odd)


TOOLS = {t.name: t for t in (Rsync, Restic, Borg, Tar)}


@pytest.fixture
def mounted(new_mount, sim):
    """A started mount of N_TASKS generated tasks."""
    sim.generate(N_TASKS)
    m = new_mount()
    m.start()
    assert len(os.listdir(m.path)) == N_TASKS
    return m


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_incremental_in_one_mount(tool, mounted, tmp_path):
    m = mounted
    t = TOOLS[tool](tmp_path / tool)
    t.check_full(m)
    before = tree(m)

    # (a) nothing changed: nothing taken
    t.check(m, set(), before)
    assert tree(m) == before

    # (b) one task's state changes: exactly its state and raw.json are taken
    tid = pick_task(m)
    fail_task(m, tid)
    wait_failed(m, tid)
    after = tree(m)
    assert differ(before, after) == changed_paths(tid), "the daemon changed other stats"
    t.check(m, changed_paths(tid), before)

    # and the new versions hold still: the next backup takes nothing again
    t.check(m, set(), after)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_incremental_across_remount(tool, mounted, tmp_path):
    m = mounted
    t = TOOLS[tool](tmp_path / tool)
    t.check_full(m)
    before = tree(m)

    # (c) unmount, mount again with the same state folder, nothing changed
    m.restart()
    diff = differ(before, tree(m))
    assert not diff, "a remount changed the stats of %r" % sorted(diff)[:10]
    t.check(m, set(), before, remounted=True)

    # (d) a change while unmounted: exactly its files are taken
    tid = pick_task(m)
    m.check_exit()
    fail_task(m, tid)
    m.start()
    wait_failed(m, tid)
    assert differ(before, tree(m)) == changed_paths(tid), "the daemon changed other stats"
    t.check(m, changed_paths(tid), before, remounted=True)


def test_borg_lists_99_percent_unchanged(new_mount, sim, tmp_path):
    """The issue's check: with nothing changed, a second `borg create --list`
    of a 1000-task mount lists at least 99 % of its files as 'U'."""
    sim.generate(BIG_TASKS)
    m = new_mount()
    m.start()
    borg = Borg(tmp_path / "borg")
    borg.check_full(m)
    before = tree(m)
    total = len(files_of(before))
    assert total == 4 * BIG_TASKS

    report = borg.check(m, set(), before)
    assert report.unchanged >= 0.99 * total, (report.unchanged, total)
    # precisely: all but the one newest file (see Borg.expect)
    assert report.unchanged == total - 1 and len(newest(before)) == 1


def test_tar_incremental_never_misses_a_change_made_during_runs(new_mount, sim, tmp_path):
    """tar remembers when each run started and later takes files newer than
    that.  So a new version's mtime must not lie before a run that could
    still read the old one: the daemon stamps versions with the moment they
    are shown, not the moment their answer arrived.  tar runs back to back
    on one task folder while its state changes; some run must take it.
    Before that rule, 6 of 10 such changes were never archived."""
    sim.generate(2000)  # a parse long enough to matter (it was 7 to 70 ms)
    m = new_mount(ttl=0.3)
    m.start()
    ids = sorted(os.listdir(m.path))
    for r in range(5):
        tid = ids[r * 37]
        snar = str(tmp_path / ("snar%d" % r))
        run(["tar", "--listed-incremental=" + snar, "-cf", os.devnull, "-C", m.path, tid])
        # a second after the last change, so that the stamp is not held to
        # the next whole second (which would hide the window this is about)
        time.sleep(1.1)
        sim.patch(tid, {"state": "NEW-%d" % r})
        taken, after_visible = set(), 0
        deadline = time.monotonic() + 20
        while after_visible < 2:
            assert time.monotonic() < deadline, "the change never showed: %r" % m.status()
            visible = read(m.p(tid, "state")) == "NEW-%d\n" % r
            out = run(["tar", "--listed-incremental=" + snar, "-cvf", os.devnull, "-C", m.path,
                       tid]).stdout.split()
            taken |= {p for p in out if not p.endswith("/")}
            after_visible += visible
        # a run that started before the change and read it after takes it,
        # and so does the next (tar is careful); none taking it is the bug
        assert taken == changed_paths(tid), "round %d: taken %r" % (r, taken)


def test_tar_incremental_takes_every_file_of_a_wide_change(new_mount, sim, tmp_path):
    """The same for a change to 400 tasks at once, while tar runs back to
    back over all of them.  The kernel is told of a change name by name; a
    run that started after the new versions' stamp must not still read an
    old version through a name not yet told about.  So the names are told
    before the stamps are set, and answered uncached until the swap.  When
    they were told after the swap, runs missed files here (a window of a
    few ms per refresh, that a busy machine widens)."""
    sim.generate(2000)
    m = new_mount(ttl=0.3)
    m.start()
    ids = sorted(os.listdir(m.path))
    picked = ids[::5]
    names = tmp_path / "names"
    names.write_text("".join(t + "\n" for t in picked))
    want = set().union(*(changed_paths(t) for t in picked))
    for r in range(3):
        snar = str(tmp_path / ("wide%d" % r))
        tar = ["tar", "--listed-incremental=" + snar, "-cvf", os.devnull, "-C", m.path,
               "-T", str(names)]
        run(tar)
        time.sleep(1.1)
        items = sim.items()
        for it in items:
            if it["id"] in picked:
                it["state"] = "WIDE-%d" % r
        sim.set_items(items)
        taken, after_visible = set(), 0
        deadline = time.monotonic() + 30
        while after_visible < 2:
            assert time.monotonic() < deadline, "the change never showed: %r" % m.status()
            visible = all(read(m.p(t, "state")) == "WIDE-%d\n" % r for t in picked)
            taken |= {p for p in run(tar).stdout.split() if not p.endswith("/")}
            after_visible += visible
        missed = want - taken
        assert not missed, "round %d: %d of %d never taken, e.g. %r" % (
            r, len(missed), len(want), sorted(missed)[:3])
