# SPDX-License-Identifier: MIT
"""kill -9 at any moment leaves the old state or the new one, never a mix.

Fifty kills while the data keeps changing: half at random moments, half at
the moment the daemon has its temporary state file open (a save under
way).  After each kill the daemon is started again with the API down, so
the mount can only come from the state folder: it must come up, from the
saved answer, without calling the state damaged, and show a tree that is
consistent in itself.
"""
import json
import os
import random
import threading
import time

import simctl
from conftest import wait_for

KILLS = 50
TASKS = 1500
PAD = "x" * 1200  # about 2 MB of answer: a save takes long enough to be hit


def item(i, version):
    it = simctl.make_item("task-%04d" % i, state="S%d" % version)
    it["note"] = PAD
    return it


def saving(pid):
    """True while the daemon has a state file open for writing: a save."""
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            if target.endswith(("/state.tmp", "/state")):
                with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                    flags = int(f.read().split("flags:")[1].split()[0], 8)
                if flags & os.O_WRONLY:
                    return True
    except (FileNotFoundError, ProcessLookupError):
        pass
    return False


def check_tree(m, rng):
    """The offline mount: the saved answer, whole and consistent."""
    st = m.status()
    assert st["source"].startswith("saved"), st
    names = os.listdir(m.path)
    assert len(names) == int(st["tasks"]) == TASKS
    seen = set()
    for name in rng.sample(names, 60):
        with open(m.p(name, "raw.json")) as f:
            raw = json.load(f)
        with open(m.p(name, "state")) as f:
            assert f.read() == raw["state"] + "\n"
        assert raw["id"] == name and raw["note"] == PAD
        for f in ("state", "operation", "timestamp", "raw.json"):
            s = os.stat(m.p(name, f))
            assert s.st_ino not in seen
            seen.add(s.st_ino)
            assert s.st_mtime_ns <= time.time_ns()


def test_kill_9_during_refreshes_never_damages_the_state(new_mount):
    rng = random.Random(int(os.environ.get("INGESTFS_CRASH_SEED", "1")))
    m = new_mount(ttl=0.1)
    versions = [0] * TASKS
    m.sim.set_items([item(i, 0) for i in range(TASKS)])
    m.start()
    m.check_exit()  # a first state exists before the first kill
    tmp = os.path.join(m.state, "state.tmp")

    stop = threading.Event()

    def churn():
        while not stop.is_set():
            i = rng.randrange(TASKS)
            versions[i] += 1
            m.sim.patch("task-%04d" % i, {"state": "S%d" % versions[i]})
            time.sleep(0.01)

    t = threading.Thread(target=churn)
    t.start()
    mid_save = 0
    try:
        for n in range(KILLS):
            m.sim.clear_fault()
            m.start()
            if n % 2:
                # at the moment a save is under way
                assert wait_for(lambda: saving(m.proc.pid), 20, interval=0.0005), \
                    "no save seen in 20 s: %r" % m.status()
            else:
                time.sleep(rng.uniform(0, 1.5))
            m.proc.kill()
            m.proc.wait()
            mid_save += os.path.exists(tmp)
            m.expect_rc = -9
            m.check_exit()
            m.expect_rc = 0

            m.sim.fault(status=503)
            m.start()
            check_tree(m, rng)
            m.check_exit()
            assert "ignoring the saved state" not in m.stderr(), m.stderr()
    finally:
        stop.set()
        t.join()
        m.sim.clear_fault()
    print("MEASURED crash loop: %d kill -9, %d of them with a save under way, "
          "%d restarts from the state alone" % (KILLS, mid_save, KILLS))
    # the kills did land inside saves, where a torn state would come from
    assert mid_save >= KILLS // 4, mid_save
    m.proc = None
