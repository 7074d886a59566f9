# SPDX-License-Identifier: MIT
"""The tree as users see it: listing, contents, tools, read-only errors."""
import errno
import json
import os
import stat
import subprocess

import pytest

import simctl
from conftest import wait_for

IDS = sorted(t[0] for t in simctl.DEFAULT_TASKS)
BY_ID = {t[0]: t for t in simctl.DEFAULT_TASKS}
FILES = ["operation", "raw.json", "state", "timestamp"]


def sh(cmd, cwd):
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_listing_is_exactly_the_task_ids(mount):
    assert sorted(os.listdir(mount.path)) == IDS
    for i in IDS:
        assert sorted(os.listdir(mount.p(i))) == FILES


def test_contents_sizes_and_modes(mount):
    uid, gid = os.getuid(), os.getgid()
    root = os.stat(mount.path)
    assert stat.S_ISDIR(root.st_mode) and stat.S_IMODE(root.st_mode) == 0o555
    assert root.st_nlink == 2 + len(IDS)
    for i in IDS:
        _, state, op, ts = BY_ID[i]
        d = os.stat(mount.p(i))
        assert stat.S_ISDIR(d.st_mode) and stat.S_IMODE(d.st_mode) == 0o555
        assert d.st_nlink == 2
        assert d.st_mtime == ts  # ls -lt orders by initiation time
        want = {"state": state + "\n", "operation": op + "\n", "timestamp": "%d\n" % ts}
        for name, text in want.items():
            st = os.stat(mount.p(i, name))
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o444
            assert (st.st_uid, st.st_gid, st.st_nlink) == (uid, gid, 1)
            with open(mount.p(i, name)) as f:
                assert f.read() == text
            assert st.st_size == len(text.encode())
            assert st.st_blocks == (st.st_size + 511) // 512
        with open(mount.p(i, "raw.json"), "rb") as f:
            raw = f.read()
        item = simctl.make_item(i, state, op, ts)
        # pretty-printed exactly as json.dumps(indent=2) would, plus a newline
        assert raw == (json.dumps(item, indent=2, ensure_ascii=False) + "\n").encode()
        assert os.stat(mount.p(i, "raw.json")).st_size == len(raw)


def test_reads_at_odd_offsets_and_sizes(mount):
    path = mount.p(IDS[0], "raw.json")
    with open(path, "rb") as f:
        whole = f.read()
    fd = os.open(path, os.O_RDONLY)
    try:
        for off in (0, 1, 7, 100, len(whole) - 1, len(whole), len(whole) + 10, 1 << 40):
            for size in (1, 3, 17, 4096, 1 << 20):
                assert os.pread(fd, size, off) == whole[off:off + size]
    finally:
        os.close(fd)


def test_inodes_are_unique_and_name_versions(mount):
    """Folders keep their number; a file's names one version of its content."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(mount.path):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            seen[p] = os.stat(p).st_ino
    assert len(set(seen.values())) == len(seen) == 8 * 5
    assert os.stat(mount.path).st_ino not in seen.values()
    mount.sim.patch(IDS[0], {"state": "FAILED"})
    assert wait_for(lambda: open(mount.p(IDS[0], "state")).read() == "FAILED\n", 5)
    changed = {mount.p(IDS[0], "state"), mount.p(IDS[0], "raw.json")}
    for p, ino in seen.items():
        if p in changed:
            assert os.stat(p).st_ino not in seen.values(), p  # new, never used
        else:
            assert os.stat(p).st_ino == ino, p


def test_shell_tools(mount):
    r = sh("cat */state", mount.path)
    assert r.returncode == 0 and r.stdout == "COMPLETED\n" * 8
    r = sh("grep -l DELETE */operation", mount.path)
    assert r.returncode == 0
    assert r.stdout.split() == ["5eead8d6-79e3-4a3d-915e-a886199dfde0/operation"]
    r = sh("grep -rl CREATE . | sort", mount.path)
    assert r.returncode == 0
    assert len(r.stdout.split()) == 7 * 2  # operation and raw.json of 7 tasks
    r = sh("find . | sort", mount.path)
    assert r.returncode == 0, r.stderr
    want = ["."] + ["./" + i for i in IDS] + ["./%s/%s" % (i, f) for i in IDS for f in FILES]
    assert r.stdout.split() == sorted(want)
    r = sh("ls -lt | awk 'NR>1 {print $NF}'", mount.path)
    by_time = [t[0] for t in sorted(simctl.DEFAULT_TASKS, key=lambda t: -t[3])]
    assert r.stdout.split() == by_time


def test_meta_files_are_hidden_from_listings(mount):
    assert ".status" not in os.listdir(mount.path)
    r = sh("ls -a", mount.path)
    assert ".status" not in r.stdout.split()
    assert os.path.exists(mount.p(".status"))


def test_tar_round_trip_is_identical(mount, tmp_path):
    dest = tmp_path / "untarred"
    dest.mkdir()
    r = sh("set -o pipefail; tar -cf - . | tar -xf - -C %s" % dest, mount.path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(["diff", "-r", mount.path, str(dest)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(os.listdir(dest)) == IDS


def test_second_rsync_copies_nothing(mount, tmp_path):
    dest = str(tmp_path / "backup") + "/"
    r = subprocess.run(["rsync", "-a", "--stats", mount.path + "/", dest],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Number of regular files transferred: 32" in r.stdout
    # let refreshes run in between: unchanged data must stay unchanged
    mount.wait_refreshes(mount.counter("refreshes") + 2)
    r = subprocess.run(["rsync", "-a", "--itemize-changes", "--stats", mount.path + "/", dest],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Number of regular files transferred: 0" in r.stdout
    itemized = [l for l in r.stdout.splitlines() if l[:1] in "<>ch." and "/" in l]
    assert itemized == []


def test_same_size_change_reaches_rsync(mount, tmp_path):
    dest = str(tmp_path / "backup") + "/"
    mount.sim.patch(IDS[0], {"state": "PENDING"})
    assert wait_for(lambda: open(mount.p(IDS[0], "state")).read() == "PENDING\n", 5)
    subprocess.run(["rsync", "-a", mount.path + "/", dest], check=True)
    mount.sim.patch(IDS[0], {"state": "DELETED"})  # same length as PENDING
    assert wait_for(lambda: open(mount.p(IDS[0], "state")).read() == "DELETED\n", 5)
    subprocess.run(["rsync", "-a", mount.path + "/", dest], check=True)
    with open(os.path.join(dest, IDS[0], "state")) as f:
        assert f.read() == "DELETED\n"


@pytest.mark.parametrize("op", [
    lambda m: open(m.p("newfile"), "w"),
    lambda m: open(m.p(IDS[0], "state"), "w"),
    lambda m: open(m.p(IDS[0], "state"), "a"),
    lambda m: os.mkdir(m.p("d")),
    lambda m: os.rmdir(m.p(IDS[0])),
    lambda m: os.unlink(m.p(IDS[0], "state")),
    lambda m: os.rename(m.p(IDS[0]), m.p("x")),
    lambda m: os.chmod(m.p(IDS[0], "state"), 0o644),
    lambda m: os.truncate(m.p(IDS[0], "state"), 0),
    lambda m: os.symlink("x", m.p("link")),
    lambda m: os.link(m.p(IDS[0], "state"), m.p(IDS[0], "s2")),
    lambda m: os.utime(m.p(IDS[0], "state"), (0, 0)),
    lambda m: os.setxattr(m.p(IDS[0], "state"), "user.x", b"1"),
])
def test_modifications_fail_read_only(mount, op):
    with pytest.raises(OSError) as e:
        op(mount)
    assert e.value.errno == errno.EROFS, e.value
    assert sorted(os.listdir(mount.path)) == IDS


def test_missing_names_are_enoent(mount):
    for p in ["nope", IDS[0] + "x", IDS[0] + "/nope", IDS[0] + "/state/x", ".nope", "..."]:
        with pytest.raises(OSError) as e:
            os.stat(mount.p(p))
        assert e.value.errno in (errno.ENOENT, errno.ENOTDIR), p


def test_null_and_missing_fields_have_no_file(mount):
    mount.sim.patch(IDS[0], {"state": None, "$delete": ["operation"]})
    assert wait_for(lambda: sorted(os.listdir(mount.p(IDS[0]))) == ["raw.json", "timestamp"], 5)
    assert not os.path.exists(mount.p(IDS[0], "state"))
    mount.sim.patch(IDS[0], {"state": 42})  # not a string: its JSON text
    assert wait_for(lambda: os.path.exists(mount.p(IDS[0], "state")), 5)
    with open(mount.p(IDS[0], "state")) as f:
        assert f.read() == "42\n"


def test_status_file(mount):
    st = mount.status()
    for key in ("api_url", "endpoint", "transport", "ttl", "tasks", "generation", "refreshes",
                "requests", "last_success", "last_attempt", "age_seconds", "last_error",
                "consecutive_failures", "next_attempt", "items", "total_items",
                "skipped_items", "skipped_why", "duplicate_ids", "warning",
                "retained_versions"):
        assert key in st, key
    assert st["api_url"] == mount.sim.url
    assert st["tasks"] == "8"
    assert st["last_error"] == "none"
    assert st["last_success"].endswith("Z") and "T" in st["last_success"]
    assert int(st["requests"]) >= 1


def test_no_secret_in_the_mount(mount):
    key = mount.sim.key
    with open(mount.p(".status")) as f:
        assert key not in f.read()
    r = sh("grep -r -F %s . ; echo rc=$?" % key, mount.path)
    assert "rc=1" in r.stdout
    with open("/proc/%d/cmdline" % mount.proc.pid, "rb") as f:
        assert key.encode() not in f.read()
