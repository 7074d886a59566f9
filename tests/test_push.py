# SPDX-License-Identifier: MIT
"""A reader of whole task folders (grep -r, tar, rsync) gets each folder's
other files stored into the page cache ahead of its reads (fs_push.c), and
a reader of one file per folder gets nothing it did not ask for.  Counted
in the -d trace: READ requests that reached the daemon."""
import os
import re
import subprocess

import pytest

import simctl
from conftest import Mount

N = 40  # task folders: 4 files each


@pytest.fixture
def sim40(tmp_path):
    s = simctl.Sim(tmp_path / "sim", tasks=N)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def mounts(tmp_path, sim40):
    made = []

    def make(single=False):
        m = Mount(tmp_path / ("m%d" % len(made)), sim40, ttl=3600)
        if single:  # -s: one worker thread, where a push could deadlock
            argv = m.argv
            m.argv = lambda opts=None, foreground=True: (
                lambda a: a[:1] + ["-s"] + a[1:])(argv(opts, foreground))
        made.append(m)
        m.start(opts="debug")
        return m

    yield make
    for m in made:
        m.check_exit()


def reads(m, since):
    """READ requests in the -d trace after offset @since."""
    return len(re.findall(r"opcode: READ \(", m.stderr()[since:]))


def task_dirs(m):
    return sorted(d for d in os.listdir(m.path) if not d.startswith("."))


def contents(m):
    """Every task file's bytes, read through the mount."""
    out = {}
    for d in task_dirs(m):
        for f in sorted(os.listdir(m.p(d))):
            with open(m.p(d, f), "rb") as fh:
                out[d + "/" + f] = fh.read()
    return out


def grep_r(m):
    r = subprocess.run(["grep", "-rl", "--exclude=.*", "FAILED", "."], cwd=m.path,
                       capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr
    return sorted(r.stdout.split())


def test_whole_folder_reader_gets_the_rest_pushed(mounts):
    push, single = mounts(), mounts(single=True)
    assert len(task_dirs(push)) == N
    at_push, at_single = len(push.stderr()), len(single.stderr())
    found = grep_r(push)
    assert found == grep_r(single)
    # without a push every file of every folder is a READ; with it, the
    # first folder takes two and each later folder one
    n_single = reads(single, at_single)
    n_push = reads(push, at_push)
    assert n_single >= 4 * N, n_single
    assert n_push <= N + 1, (n_push, n_single)
    # the pushed pages hold the files' bytes: the same as read one by one
    at_push = len(push.stderr())
    assert contents(push) == contents(single)
    assert reads(push, at_push) == 0
    push.stop()
    assert re.search(r"pushed (\d+) files into the page cache", push.stderr())


def test_one_file_per_folder_reader_gets_nothing_pushed(mounts):
    m = mounts()
    for d in task_dirs(m):  # every file's inode known to the kernel
        os.listdir(m.p(d))
    at = len(m.stderr())
    for d in task_dirs(m):
        with open(m.p(d, "state")) as f:
            f.read()
    assert reads(m, at) == N
    at = len(m.stderr())
    for d in task_dirs(m):
        with open(m.p(d, "raw.json")) as f:
            f.read()
    assert reads(m, at) == N  # none of them was pushed with its state


READER = ("import sys\n"
          "for line in sys.stdin:\n"
          "    with open(line.rstrip('\\n'), 'rb') as f:\n"
          "        f.read()\n"
          "    print('ok', flush=True)\n")


class Reader:
    """A process of its own that reads the files it is told, one at a time."""

    def __init__(self):
        self.p = subprocess.Popen(["/usr/bin/python3", "-c", READER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

    def read(self, path):
        self.p.stdin.write(path + "\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline() == "ok\n", path

    def close(self):
        self.p.stdin.close()
        assert self.p.wait(timeout=30) == 0


def test_interleaved_readers_each_keep_their_streak(mounts):
    """Two readers of whole folders at once (two tar runs), their reads
    interleaved file by file: each is followed on its own, so each gets
    its folders pushed as if it were alone."""
    m = mounts()
    dirs = task_dirs(m)
    for d in dirs:  # every file's inode known to the kernel
        os.listdir(m.p(d))
    files = sorted(os.listdir(m.p(dirs[0])))
    assert len(files) == 4
    halves = (dirs[:N // 2], dirs[N // 2:])
    readers = (Reader(), Reader())
    at = len(m.stderr())
    try:
        for i in range(N // 2):
            for f in files:
                for half, r in zip(halves, readers):
                    r.read(m.p(half[i], f))
    finally:
        for r in readers:
            r.close()
    # alone, a reader of N/2 folders sends N/2 + 1 READs; one streak shared
    # by both would break at every turn and send all 4N
    assert reads(m, at) <= N + 2, reads(m, at)
