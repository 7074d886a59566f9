# SPDX-License-Identifier: MIT
"""Views: .by-state/<STATE>/<id> and .by-operation/<OP>/<id> link to ../../<id>."""
import errno
import os
import subprocess

import simctl
from conftest import wait_for

IDS = sorted(t[0] for t in simctl.DEFAULT_TASKS)
ID0 = simctl.DEFAULT_TASKS[0][0]


def listdir(p):
    return sorted(os.listdir(p))


def test_views_list_and_link(mount):
    assert listdir(mount.p(".by-state")) == ["COMPLETED"]
    assert listdir(mount.p(".by-operation")) == ["CREATE", "DELETE"]
    assert listdir(mount.p(".by-state", "COMPLETED")) == IDS
    assert listdir(mount.p(".by-operation", "DELETE")) == [ID0]
    link = mount.p(".by-operation", "DELETE", ID0)
    assert os.path.islink(link)
    assert os.readlink(link) == "../../" + ID0
    assert open(os.path.join(link, "operation")).read() == "DELETE\n"
    assert os.path.samefile(link, mount.p(ID0))
    # the top level still lists only task ids
    assert listdir(mount.path) == IDS
    r = subprocess.run("cat .by-state/COMPLETED/*/state | wc -l", shell=True, cwd=mount.path,
                       capture_output=True, text=True)
    assert r.stdout.strip() == "8"


def test_views_follow_changes(mount):
    sim = mount.sim
    listdir(mount.p(".by-state"))
    listdir(mount.p(".by-state", "COMPLETED"))
    assert not os.path.exists(mount.p(".by-state", "FAILED"))  # cached negative
    sim.patch(ID0, {"state": "FAILED"})
    assert wait_for(lambda: os.path.exists(mount.p(".by-state", "FAILED", ID0)), 5)
    assert listdir(mount.p(".by-state", "FAILED")) == [ID0]
    assert ID0 not in listdir(mount.p(".by-state", "COMPLETED"))
    assert listdir(mount.p(".by-state")) == ["COMPLETED", "FAILED"]
    sim.patch(ID0, {"state": "COMPLETED"})
    assert wait_for(lambda: listdir(mount.p(".by-state")) == ["COMPLETED"], 5)
    assert not os.path.exists(mount.p(".by-state", "FAILED"))
    assert listdir(mount.p(".by-state", "COMPLETED")) == IDS
    sim.delete(ID0)
    assert wait_for(lambda: ID0 not in listdir(mount.p(".by-operation", "CREATE"))
                    and not os.path.exists(mount.p(".by-operation", "DELETE")), 5)


def test_views_skip_unsafe_values(mount):
    sim = mount.sim
    sim.patch(IDS[0], {"state": "../../etc"})
    sim.patch(IDS[1], {"state": ".hidden"})
    sim.patch(IDS[2], {"state": 42})
    sim.patch(IDS[3], {"state": "a/b"})
    assert wait_for(lambda: open(mount.p(IDS[0], "state")).read() == "../../etc\n", 5)
    assert listdir(mount.p(".by-state")) == ["COMPLETED"]
    assert len(listdir(mount.p(".by-state", "COMPLETED"))) == 4
    # following every link stays inside the mount and reaches the task itself
    r = subprocess.run(["find", "-L", mount.p(".by-state"), "-exec", "realpath", "-e", "{}", "+"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    targets = r.stdout.splitlines()
    completed = [i for i in IDS[4:]]
    want = {mount.p(".by-state"), mount.p(".by-state", "COMPLETED")}
    for i in completed:
        want |= {mount.p(i)} | {mount.p(i, f) for f in ("state", "operation", "timestamp",
                                                      "raw.json")}
    assert set(targets) == want, sorted(set(targets) ^ want)


def test_views_are_read_only(mount):
    for op in (lambda: os.mkdir(mount.p(".by-state", "NEW")),
               lambda: os.unlink(mount.p(".by-operation", "DELETE", ID0)),
               lambda: os.symlink("x", mount.p(".by-state", "COMPLETED", "x"))):
        try:
            op()
        except OSError as e:
            assert e.errno == errno.EROFS, e
        else:
            raise AssertionError("a view was modified")
