# SPDX-License-Identifier: MIT
"""The change feed: .events lines, their escapes, following, rotation,
durability across restarts and kills."""
import os
import select
import subprocess
import threading
import time

import simctl
from conftest import Terminal, wait_for

IDS = [t[0] for t in simctl.DEFAULT_TASKS]


def read(path):
    with open(path, "rb") as f:
        return f.read().decode()


def lines(m, name=".events"):
    return [l.split("\t") for l in read(m.p(name)).splitlines()]


def test_kinds_and_escapes(mount):
    assert read(mount.p(".events")) == ""  # the first snapshot records nothing
    assert ".events" not in os.listdir(mount.path)
    mount.sim.patch(IDS[0], {"state": "A\tB\\C\nD", "timestamp": 7})
    mount.sim.add(simctl.make_item("brand-new", state="-"))
    mount.sim.delete(IDS[1])
    assert wait_for(lambda: len(lines(mount)) == 4, 10), read(mount.p(".events"))
    got = sorted(l[1:] for l in lines(mount))
    assert got == sorted([
        [IDS[0], "changed", "state", "COMPLETED", "A\\tB\\\\C\\nD"],
        [IDS[0], "changed", "timestamp", "1664900951", "7"],
        ["brand-new", "added", "-", "-", "\\-"],
        [IDS[1], "removed", "-", "COMPLETED", "-"],
    ])
    times = {l[0] for l in lines(mount)}
    assert len(times) == 1 and times.pop().endswith("Z")
    st = os.stat(mount.p(".events"))
    assert st.st_size == len(read(mount.p(".events")).encode())
    assert st.st_mode & 0o777 == 0o444
    status = mount.status()
    assert status["events"] == "in the state folder"
    assert status["events_lines"] == "4" and status["events_error"] == "none"
    assert status["events_bytes"] == "%d in .events, 0 in .events.1" % st.st_size
    assert status["events_last"].startswith("4 lines, ")
    # refreshes without a change write nothing
    files = {f: os.stat(os.path.join(mount.state, f)) for f in os.listdir(mount.state)
             if f.startswith("events.")}
    assert len(files) == 1
    n = mount.counter("refreshes")
    mount.wait_refreshes(n + 3)
    for f, was in files.items():
        now = os.stat(os.path.join(mount.state, f))
        assert (now.st_size, now.st_mtime_ns) == (was.st_size, was.st_mtime_ns), f
    assert os.stat(mount.p(".events")).st_mtime_ns == st.st_mtime_ns


def test_restart_keeps_the_feed_and_records_changes_made_while_down(new_mount):
    m = new_mount()
    m.start()
    m.sim.patch(IDS[0], {"state": "FAILED"})
    assert wait_for(lambda: len(lines(m)) == 1, 10)
    before = read(m.p(".events"))
    ino = os.stat(m.p(".events")).st_ino
    m.check_exit()
    m.sim.patch(IDS[2], {"operation": "UPDATE"})
    m.start()
    # a new mount starts a new .events (tail -F rereads it from the start);
    # the old one is .events.1, with its inode
    assert read(m.p(".events.1")) == before
    assert os.stat(m.p(".events.1")).st_ino == ino
    assert [l[1:] for l in lines(m)] == [[IDS[2], "changed", "operation", "CREATE", "UPDATE"]]
    assert os.stat(m.p(".events")).st_ino != ino
    after = read(m.p(".events"))
    # with nothing new, a restart moves the lines on once, then keeps them
    for _ in range(2):
        m.restart()
        assert read(m.p(".events.1")) == after
        assert read(m.p(".events")) == ""


def test_state_dir_none_keeps_the_feed_in_memory(new_mount):
    m = new_mount()
    m.start("state_dir=none")
    m.sim.patch(IDS[0], {"state": "FAILED"})
    assert wait_for(lambda: len(lines(m)) == 1, 10)
    assert m.status()["events"] == "in memory (state_dir=none)"
    m.restart("state_dir=none")
    assert read(m.p(".events")) == ""


def test_tail_F_across_rotations_loses_and_repeats_nothing(new_mount, tmp_path):
    """Each task's lines form a chain (old of one = new of the one before):
    a lost or repeated line breaks it."""
    m = new_mount(ttl=0.2)
    m.start("events_max=1K")
    out = tmp_path / "tail.out"
    with open(out, "wb") as f:
        tail = subprocess.Popen(["tail", "-F", "-s", "0.05", "-n", "+1", m.p(".events")],
                                stdout=f, stderr=subprocess.DEVNULL)
    try:
        version = {i: "COMPLETED" for i in IDS}
        rotations = 0
        ino = os.stat(m.p(".events")).st_ino
        for n in range(8):
            for i in IDS:
                version[i] = "V%d" % n
                m.sim.patch(i, {"state": version[i]})
            assert wait_for(lambda: all(read(m.p(i, "state")) == version[i] + "\n"
                                        for i in IDS), 10)
            new = os.stat(m.p(".events")).st_ino
            rotations += new != ino
            ino = new
        assert wait_for(lambda: out.read_text().count("\n") >= 8 * len(IDS), 10)
        time.sleep(0.5)
    finally:
        tail.kill()
        tail.wait()
    assert rotations >= 3
    check_chains(out.read_text(), IDS, "COMPLETED", {i: "V7" for i in IDS})


def test_grep_line_buffered_downstream_of_tail_f(mount, tmp_path):
    out = tmp_path / "failed.out"
    with open(out, "wb") as f:
        pipe = subprocess.Popen("tail -f -s 0.1 %s | grep --line-buffered FAILED"
                                % mount.p(".events"), shell=True, stdout=f,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        mount.sim.patch(IDS[0], {"state": "PENDING"})
        mount.sim.patch(IDS[3], {"state": "FAILED"})
        assert wait_for(lambda: "FAILED" in out.read_text(), 10)
        time.sleep(0.3)
    finally:
        os.killpg(pipe.pid, 9)
        pipe.wait()
    got = out.read_text().splitlines()
    assert len(got) == 1 and got[0].split("\t")[1:] == [IDS[3], "changed", "state",
                                                        "COMPLETED", "FAILED"]


def check_chains(text, tasks, first, last):
    """The lines of @text, all about the state of @tasks, take each task from
    @first to its value in @last one value at a time: a lost, torn or
    repeated line breaks a chain."""
    chains = {t: [first] for t in tasks}
    for l in text.splitlines():
        f = l.split("\t")
        assert len(f) == 6 and f[1] in chains and f[3] == "state", l
        assert f[4] == chains[f[1]][-1], (l, chains[f[1]])
        chains[f[1]].append(f[5])
    for t in tasks:
        assert chains[t][-1] == last[t] and len(chains[t]) == len(set(chains[t])), chains[t]


def test_less_F_prints_new_lines(mount):
    """less +F, on a terminal, waits at the end of .events like tail -f."""
    term = Terminal(["less", "+F", mount.p(".events")])
    try:
        assert wait_for(lambda: term.seen("Waiting for data"), 10), bytes(term.out)
        for value in ("PENDING", "FAILED"):
            mount.sim.patch(IDS[0], {"state": value})
            assert wait_for(lambda: term.seen(value), 15), bytes(term.out)
    finally:
        term.close()


def test_kill_9_never_tears_or_repeats_a_line(new_mount):
    """Kills while one task keeps changing.  Each start shows the last run's
    lines as .events.1: collected after every start, they and the last
    .events are one unbroken chain of that task's values."""
    m = new_mount(ttl=0.1)
    m.start()
    value = "COMPLETED"
    text, seen = "", set()

    def collect(name):
        nonlocal text
        try:
            st = os.stat(m.p(name))
        except FileNotFoundError:
            return
        if st.st_ino not in seen:
            seen.add(st.st_ino)
            got = read(m.p(name))
            assert got == "" or got.endswith("\n"), got
            text += got

    for n in range(10):
        value = "V%d" % n
        m.sim.patch(IDS[0], {"state": value})
        time.sleep(0.3 + 0.07 * n)
        m.proc.kill()
        m.proc.wait()
        m.expect_rc = -9
        m.check_exit()
        m.expect_rc = 0
        m.start()
        collect(".events.1")
    assert wait_for(lambda: read(m.p(IDS[0], "state")) == value + "\n", 10)
    collect(".events")
    check_chains(text, IDS[:1], "COMPLETED", {IDS[0]: value})


def follow(m, out, steps, *restarts):
    """tail -F on .events while every task's state goes V0, V1, ... and the
    daemon is restarted by each of @restarts in turn (each may change tasks
    while it is down and returns their number).  Returns the last values and
    the inode numbers .events had."""
    with open(out, "wb") as f:
        tail = subprocess.Popen(["tail", "-F", "-s", "0.05", "-n", "+1", m.p(".events")],
                                stdout=f, stderr=subprocess.DEVNULL)
    last = {i: "COMPLETED" for i in IDS}
    lines = n = 0
    inodes = set()
    try:
        for how in (None,) + restarts:
            if how:
                lines += how(last)
            for _ in range(steps):
                for i in IDS:
                    last[i] = "V%d" % n
                    m.sim.patch(i, {"state": last[i]})
                lines += len(IDS)
                n += 1
                # before the next restart, tail has everything shown so far
                assert wait_for(lambda: out.read_text().count("\n") >= lines, 15), \
                    "tail printed %r; .events is %r" % (out.read_text(), read(m.p(".events")))
                inodes.add(os.stat(m.p(".events")).st_ino)
    finally:
        tail.kill()
        tail.wait()
    return last, inodes


def test_tail_F_across_rotations_a_restart_and_a_kill_loses_and_repeats_nothing(
        new_mount, tmp_path):
    """Over 1K of lines between restarts (16 of about 80 bytes), so .events
    also rotates on its own within each run."""
    m = new_mount(ttl=0.1)
    m.start("events_max=1K")
    out = tmp_path / "tail.out"

    def restart(last):
        # tail holds .events open: the unmount is lazy, and the daemon ends
        # once tail sees the file gone and lets it go
        m.check_exit()
        last[IDS[0]] = "DOWN"
        m.sim.patch(IDS[0], {"state": "DOWN"})  # made while it is down
        m.start("events_max=1K")
        return 1

    def kill(last):
        m.proc.kill()
        m.proc.wait()
        m.expect_rc = -9
        m.check_exit()
        m.expect_rc = 0
        m.start("events_max=1K")
        return 0

    last, inodes = follow(m, out, 4, restart, kill)
    time.sleep(0.3)
    text = out.read_text()
    assert "\tDOWN\n" in text
    assert len(inodes) >= 5  # three mounts, and rotations within them
    check_chains(text, IDS, "COMPLETED", last)


def test_stat_and_read_stay_coherent_while_the_feed_grows(new_mount):
    """A reader that stats, reads and stats again while lines keep coming:
    never a NUL where a line should be (the kernel's zero-filled page past
    an old end), never a partial line, never a size smaller than what was
    just read."""
    m = new_mount(ttl=0.1)
    m.start()
    stop = threading.Event()
    values = []

    def change():
        n = 0
        while not stop.is_set():
            values.append("C%d" % n)
            m.sim.patch(IDS[n % len(IDS)], {"state": values[-1]})
            n += 1
            time.sleep(0.05)

    writer = threading.Thread(target=change)
    writer.start()
    reads = grew = 0
    try:
        fd = os.open(m.p(".events"), os.O_RDONLY)
        try:
            end = time.monotonic() + 6
            last = 0
            while time.monotonic() < end:
                before = os.fstat(fd).st_size
                data = os.pread(fd, 1 << 20, 0)
                after = os.fstat(fd).st_size
                assert b"\0" not in data, data
                assert data == b"" or data.endswith(b"\n"), data[-100:]
                assert before <= len(data) <= after, (before, len(data), after)
                grew += len(data) > last
                last = len(data)
                reads += 1
        finally:
            os.close(fd)
    finally:
        stop.set()
        writer.join()
    assert reads > 100 and grew >= 3, (reads, grew)
    check = os.stat(m.p(".events")).st_size
    assert check == len(read(m.p(".events")).encode())


def test_poll_says_readable_at_once_as_for_any_regular_file(mount):
    """No FUSE poll (README: "No poll(2)"): poll(2) returns at once."""
    fd = os.open(mount.p(".events"), os.O_RDONLY)
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        assert p.poll(2000) == [(fd, select.POLLIN)]
    finally:
        os.close(fd)
