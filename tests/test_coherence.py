# SPDX-License-Identifier: MIT
"""Kernel caching stays coherent: freshness, no torn reads, stable listings,
byte-identical backups, one API request per refresh.  All on the read-only
mount, because a read-write mount would hide truncation bugs."""
import json
import os
import subprocess
import threading
import time

import simctl
from conftest import wait_for

ID0 = simctl.DEFAULT_TASKS[0][0]


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def report(name, value):
    """Measured figures go to the test log (pytest -s or the meson log)."""
    print("MEASURED %s: %s" % (name, value))


def test_changes_visible_within_ttl(new_mount):
    m = new_mount(ttl=0.5)
    m.start()
    sim = m.sim
    worst = 0.0
    # warm every kernel cache first: entries, attributes, pages, listings
    for i in range(20):
        os.listdir(m.path)
        read(m.p(ID0, "state"))
        os.stat(m.p(ID0, "state"))
        state = "S%d-%s" % (i, "x" * (i * 7 % 23))
        sim.patch(ID0, {"state": state})
        sim.add(simctl.make_item("added-%d" % i))
        if i:
            sim.delete("added-%d" % (i - 1))
        t0 = time.monotonic()

        def seen():
            names = os.listdir(m.path)
            return (read(m.p(ID0, "state")) == state + "\n"
                    and os.stat(m.p(ID0, "state")).st_size == len(state) + 1
                    and "added-%d" % i in names
                    and (i == 0 or "added-%d" % (i - 1) not in names))

        assert wait_for(seen, 10, interval=0.01), i
        worst = max(worst, time.monotonic() - t0)
    report("worst-case staleness over 20 changes (ttl 0.5 s)", "%.3f s" % worst)
    assert worst <= m.ttl + 1.0


def test_no_torn_reads(new_mount):
    m = new_mount(ttl=0.1)
    m.start()
    sim = m.sim
    # versions of very different lengths, some spanning several pages
    states = ["A", "B" * 100, "C" * 5000, "D" * 20000, "E" * 3]
    state_files = {(s + "\n").encode() for s in states}
    item = dict(simctl.make_item(ID0, "COMPLETED", "DELETE", 1664900951))
    raw_files = set()
    for s in states:
        item["state"] = s
        raw_files.add((json.dumps(item, indent=2) + "\n").encode())
    sim.patch(ID0, {"state": states[0]})
    assert wait_for(lambda: read(m.p(ID0, "state")) == states[0] + "\n", 5)

    stop = threading.Event()
    bad = []
    counts = {"cat": 0, "pread": 0}
    lock = threading.Lock()

    def flipper():
        i = 0
        while not stop.is_set():
            i += 1
            sim.patch(ID0, {"state": states[i % len(states)]})
            time.sleep(0.1)

    def cat_reader(name, valid):
        while not stop.is_set():
            out = subprocess.run(["cat", m.p(ID0, name)], capture_output=True).stdout
            with lock:
                counts["cat"] += 1
                if out not in valid:
                    bad.append(("cat", name, len(out)))

    def pread_reader(name, valid):
        while not stop.is_set():
            fd = os.open(m.p(ID0, name), os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                chunks, off = [], 0
                while True:
                    c = os.pread(fd, 7 if off < 64 else 4093, off)
                    if not c:
                        break
                    chunks.append(c)
                    off += len(c)
                data = b"".join(chunks)
                size_after = os.fstat(fd).st_size
            finally:
                os.close(fd)
            with lock:
                counts["pread"] += 1
                if data not in valid or size != len(data) or size_after != len(data):
                    bad.append(("pread", name, size, len(data), size_after))

    threads = [threading.Thread(target=flipper)]
    for i in range(8):
        name, valid = ("state", state_files) if i % 2 else ("raw.json", raw_files)
        threads.append(threading.Thread(target=cat_reader if i < 4 else pread_reader,
                                        args=(name, valid)))
    for t in threads:
        t.start()
    time.sleep(20)
    stop.set()
    for t in threads:
        t.join()
    gen = int(m.status()["generation"])
    report("torn-read run", "%d cat + %d pread reads, %d torn, %d snapshots"
           % (counts["cat"], counts["pread"], len(bad), gen))
    assert bad == []
    assert counts["cat"] > 100 and counts["pread"] > 100
    # the content really did flip underneath, as often as it may: a change
    # shows at most once a second, in a new whole second (README, "Times")
    assert gen > 15


def test_listing_stable_while_it_changes(new_mount):
    m = new_mount(ttl=0.1)
    sim = m.sim
    stable = ["stable-%04d" % i for i in range(1500)]
    sim.set_items([simctl.make_item(i) for i in stable])
    m.start()
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            sim.add(simctl.make_item("churn-%d" % i))
            if i >= 3:
                sim.delete("churn-%d" % (i - 3))
            i += 1
            time.sleep(0.05)

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(5):
            seen = []
            fd = os.open(m.path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                # small getdents batches with pauses, so refreshes land mid-way
                with os.scandir(fd) as it:
                    for n, e in enumerate(it):
                        seen.append(e.name)
                        if n % 200 == 0:
                            time.sleep(0.15)
            finally:
                os.close(fd)
            assert len(seen) == len(set(seen)), "repeated entries"
            assert set(stable) <= set(seen), "skipped entries"
    finally:
        stop.set()
        t.join()
    assert int(m.status()["generation"]) > 4  # at most one change a second


def test_tar_is_byte_identical_while_refreshing(new_mount, tmp_path):
    m = new_mount(ttl=0.2)
    m.start()
    archives = set()
    for _ in range(10):
        m.wait_refreshes(m.counter("refreshes") + 1)  # a refresh in between
        r = subprocess.run("tar -cf - . | cat", shell=True, cwd=m.path, capture_output=True)
        assert r.returncode == 0 and r.stderr == b"", r.stderr
        archives.add(r.stdout)
    assert len(archives) == 1
    assert m.counter("refreshes") >= 10  # refreshes did run meanwhile


def test_same_size_change_reaches_rsync_across_remount(new_mount, tmp_path):
    dest = str(tmp_path / "backup") + "/"
    m = new_mount(ttl=0.5)
    m.sim.patch(ID0, {"state": "PENDING"})
    m.start()
    subprocess.run(["rsync", "-a", m.path + "/", dest], check=True)
    assert m.stop() == 0
    m.sim.patch(ID0, {"state": "DELETED"})
    m2 = new_mount(ttl=0.5)
    m2.start()
    subprocess.run(["rsync", "-a", "--stats", m2.path + "/", dest], check=True,
                       capture_output=True, text=True)
    assert read(os.path.join(dest, ID0, "state")) == "DELETED\n"


def test_one_request_per_refresh_with_busy_readers(new_mount):
    m = new_mount(ttl=0.5)
    m.start()
    stop = threading.Event()
    reads = [0]

    def reader():
        while not stop.is_set():
            for d in os.listdir(m.path):
                for f in ("state", "operation", "timestamp", "raw.json"):
                    read(m.p(d, f))
                    os.stat(m.p(d, f))
            reads[0] += 1

    st0 = m.status()
    sim0 = m.sim.requests()
    t0 = time.monotonic()
    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(5)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    st1 = m.status()
    sim_requests = m.sim.requests() - sim0
    daemon_requests = int(st1["requests"]) - int(st0["requests"])
    refreshes = int(st1["refreshes"]) - int(st0["refreshes"])
    report("request economy", "%d reader passes, %d API requests in %.1f s at ttl 0.5, "
           "%d refreshes" % (reads[0], sim_requests, elapsed, refreshes))
    # each refresh is one request; none come from file access
    assert abs(sim_requests - daemon_requests) <= 1
    assert abs(refreshes - daemon_requests) <= 1
    assert st1["generation"] == st0["generation"]  # nothing changed, nothing swapped
    assert sim_requests <= elapsed / m.ttl + 2
    assert reads[0] > 8


def test_task_that_leaves_and_returns_shows_new_content(new_mount):
    m = new_mount(ttl=0.3)
    m.start()
    sim = m.sim
    item = sim.item(ID0)
    fd = os.open(m.p(ID0, "state"), os.O_RDONLY)  # a reader holds the old file
    try:
        assert os.pread(fd, 100, 0) == b"COMPLETED\n"
        sim.delete(ID0)
        assert wait_for(lambda: not os.path.exists(m.p(ID0)), 5)
        item["state"] = "NEWSTATE"
        sim.add(item)
        assert wait_for(lambda: os.path.exists(m.p(ID0)), 5)
        m.wait_refreshes(m.counter("refreshes") + 2)
        assert read(m.p(ID0, "state")) == "NEWSTATE\n"
        assert '"NEWSTATE"' in read(m.p(ID0, "raw.json"))
        assert os.pread(fd, 100, 0) == b"COMPLETED\n"  # the open file keeps its bytes
    finally:
        os.close(fd)
    assert read(m.p(ID0, "state")) == "NEWSTATE\n"
