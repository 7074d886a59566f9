# SPDX-License-Identifier: MIT
"""Identity and time across versions and restarts: per-version inodes,
sub-second times that never run ahead of the clock, the state folder,
offline start, and what a damaged state file does (nothing but a warning).
"""
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import zlib

import pytest

import apisim
import simctl
from conftest import BIN, Terminal, clean_env, is_mounted, wait_for

ID0 = simctl.DEFAULT_TASKS[0][0]
ID1 = simctl.DEFAULT_TASKS[1][0]
API_DOWN = dict(status=503)


def read(path):
    with open(path) as f:
        return f.read()


def tree(m):
    """Every path under the mount but .status -> (ino, size, mtime_ns, ctime_ns)."""
    out = {}
    roots = [m.path] + [m.p(v) for v in (".by-state", ".by-operation")]
    for root in roots:
        out[os.path.relpath(root, m.path)] = stat_of(root)
        for d, ds, fs in os.walk(root):
            for n in ds + fs:
                p = os.path.join(d, n)
                out[os.path.relpath(p, m.path)] = stat_of(p)
    return out


def stat_of(p):
    st = os.lstat(p)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def inodes(t):
    """The numbers that depend on the key or the allocator: not the root's or
    the view roots' (1, 3, 4)."""
    return {v[0] for v in t.values() if v[0] > 16}


def start_fails(m, opts=None):
    r = subprocess.run(m.argv(opts), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env=clean_env(), timeout=60)
    assert not is_mounted(m.path)
    return r


def state_file(m):
    return os.path.join(m.state, "state")


# ---- per-version identity and times -----------------------------------------

def test_changed_file_gets_new_inode_and_later_whole_second(mount):
    path = mount.p(ID0, "state")
    fd = os.open(path, os.O_RDONLY)
    try:
        before = os.fstat(fd)
        mount.sim.patch(ID0, {"state": "ABCDEFGHI"})  # the same size as COMPLETED
        assert wait_for(lambda: read(path) == "ABCDEFGHI\n", 10)
        after = os.stat(path)
        assert after.st_ino != before.st_ino
        assert after.st_size == before.st_size
        # rsync compares whole seconds: a new version never shares one
        assert int(after.st_mtime) > int(before.st_mtime)
        assert after.st_ctime_ns == after.st_mtime_ns
        # the open descriptor keeps its own version
        assert os.pread(fd, 100, 0) == b"COMPLETED\n"
        assert os.fstat(fd).st_ino == before.st_ino
    finally:
        os.close(fd)
    # the other files of the task kept their identity
    assert os.stat(mount.p(ID0, "operation")).st_mtime_ns < after.st_mtime_ns


def test_files_carry_distinct_subsecond_times(mount):
    times = [os.stat(mount.p(d, f)).st_mtime_ns
             for d in os.listdir(mount.path) for f in ("state", "operation", "timestamp", "raw.json")]
    assert len(set(times)) == len(times) == 32  # borg trusts only files older than the newest
    assert max(times) <= time.time_ns()


def test_tail_F_follows_a_file_across_versions(mount, tmp_path):
    out = tmp_path / "tail.out"
    with open(out, "wb") as f:
        tail = subprocess.Popen(["tail", "-F", "-s", "0.1", mount.p(ID0, "state")],
                                stdout=f, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: out.read_bytes() == b"COMPLETED\n", 10)
        for value in ("PENDING", "IN_PROGRESS", "FAILED"):
            mount.sim.patch(ID0, {"state": value})
            assert wait_for(lambda: value.encode() in out.read_bytes(), 10), out.read_bytes()
    finally:
        tail.kill()
        tail.wait()
    lines = out.read_bytes().decode().split()
    assert lines == ["COMPLETED", "PENDING", "IN_PROGRESS", "FAILED"]


def test_fast_changes_never_run_ahead_of_the_clock(new_mount):
    """ttl=0.1 and a change every 50 ms: mtimes stay behind the clock, and
    each version shown has a whole second of its own."""
    m = new_mount(ttl=0.1)
    m.start()
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            m.sim.patch(ID0, {"state": "V%06d" % i})
            i += 1
            time.sleep(0.05)

    seen = {}
    t = threading.Thread(target=churn)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            st = os.stat(m.p(ID0, "state"))
            now = time.time_ns()
            assert st.st_mtime_ns <= now, "mtime %d is ahead of the clock %d" % (
                st.st_mtime_ns, now)
            seen[st.st_ino] = st.st_mtime_ns
            time.sleep(0.02)
    finally:
        stop.set()
        t.join()
    seconds = sorted(ns // 10**9 for ns in seen.values())
    assert len(seen) >= 3, seen
    assert len(set(seconds)) == len(seconds), "two versions share a second: %r" % seconds
    newest = max(stat_of(m.p(d, f))[2] for d in os.listdir(m.path)
                 for f in ("state", "raw.json"))
    assert newest <= time.time_ns()


# ---- restarts ------------------------------------------------------------------

def test_restart_keeps_every_inode_size_and_time(new_mount):
    m = new_mount()
    m.start()
    before = tree(m)
    assert len(before) > 40
    m.restart()
    assert m.status()["source"] == "api"
    assert tree(m) == before
    assert m.counter("state_saves") == 0  # the same answer again: nothing written


def test_restart_after_a_change_shows_exactly_the_changed_files(new_mount):
    m = new_mount()
    m.start()
    before = tree(m)
    m.check_exit()
    m.sim.patch(ID0, {"state": "FAILED"})
    m.start()
    after = tree(m)
    tasks = {p for p in before if not p.startswith(".")}
    differ = {p for p in tasks if before[p] != after.get(p)}
    assert differ == {os.path.join(ID0, "state"), os.path.join(ID0, "raw.json")}
    for p in differ:
        assert after[p][0] not in {v[0] for v in before.values()}  # a new inode
        assert after[p][2] > before[p][2]
    assert m.counter("state_saves") == 1


# ---- deltas between whole saves ------------------------------------------------

def delta_file(m):
    return os.path.join(m.state, "state.delta")


def wholes_after(m, n):
    """Wait for save n; how many of the saves so far wrote the whole file.
    (Under load a save can be followed by a second one of the same
    snapshot, when its stamps had to move: always a delta, so the count
    of whole saves is settled once save n is.)"""
    assert wait_for(lambda: m.counter("state_saves") >= n, 10), m.status()
    return m.counter("state_whole_saves")


def change(m, tid, state):
    """Patch one task; "whole" or "delta": what its save wrote."""
    saves, wholes = m.counter("state_saves"), m.counter("state_whole_saves")
    m.sim.patch(tid, {"state": state})
    assert wait_for(lambda: read(m.p(tid, "state")) == state + "\n", 10)
    return "whole" if wholes_after(m, saves + 1) > wholes else "delta"


def test_changes_are_saved_as_deltas_and_a_restart_keeps_them(new_mount):
    m = new_mount()
    m.sim.generate(400)
    ids = [apisim.generated_id(i) for i in (3, 150, 397)]
    m.start()
    assert wholes_after(m, 1) == 1
    whole = os.stat(state_file(m))
    for i, tid in enumerate(ids):
        assert change(m, tid, "DELTA%d" % i) == "delta"
    # the whole file stays as it was; the delta is small and private
    after = os.stat(state_file(m))
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        whole.st_ino, whole.st_size, whole.st_mtime_ns)
    d = os.stat(delta_file(m))
    assert d.st_mode & 0o777 == 0o600 and d.st_size < whole.st_size // 4
    last = m.status()["state_last_save"]
    assert last.endswith(", delta") and int(last.split()[0]) == d.st_size
    before = tree(m)
    m.restart()
    assert m.status()["source"] == "api"
    assert tree(m) == before  # every inode, size and time from state + state.delta
    assert m.counter("state_saves") == 0
    # started from a delta: the next save is whole
    assert change(m, ids[0], "AGAIN") == "whole"
    assert os.stat(state_file(m)).st_ino != whole.st_ino
    assert change(m, ids[1], "AGAIN") == "delta"
    before = tree(m)
    m.restart()
    assert tree(m) == before


def test_a_delta_too_large_makes_the_save_whole(new_mount):
    """Ops over an eighth of the saved answer: the whole file again."""
    m = new_mount()
    m.sim.generate(40)
    m.start()
    assert wholes_after(m, 1) == 1
    for i in range(0, 40, 2):  # half the items: far over an eighth
        m.sim.patch(apisim.generated_id(i), {"state": "HALF"})
    assert wait_for(lambda: read(m.p(apisim.generated_id(38), "state")) == "HALF\n", 10)
    assert wholes_after(m, 2) == 2


def test_a_delta_of_an_older_state_is_ignored(new_mount):
    """A crash between a whole save and the removal of the delta leaves a
    delta naming the old state: it is not applied."""
    m = new_mount()
    m.sim.generate(400)
    tid = apisim.generated_id(7)
    m.start()
    assert change(m, tid, "ONE") == "delta"
    old_delta = open(delta_file(m), "rb").read()
    # A whole save that stays the last one.  When the swap came late (a busy
    # machine) its stamps moved and a delta recording them followed: the
    # crash below would throw that delta away, with stamps readers were
    # shown.  Then again, the next start being from that delta.
    m.check_exit()
    for attempt in range(5):
        m.start()
        value = "TWO%d" % attempt
        assert change(m, tid, value) == "whole"
        before = tree(m)
        m.check_exit()
        if not os.path.exists(delta_file(m)):
            break
    else:
        pytest.fail("every whole save was followed by a delta: the machine is too busy")
    with open(delta_file(m), "wb") as f:
        f.write(old_delta)
    os.chmod(delta_file(m), 0o600)
    m.start()
    assert "ignoring" not in m.stderr()
    assert tree(m) == before
    assert read(m.p(tid, "state")) == value + "\n"


@pytest.mark.parametrize("kind", ["flipped-bit", "truncated", "garbage"])
def test_damaged_delta_is_ignored_with_one_warning(new_mount, kind):
    m = new_mount()
    m.sim.generate(400)
    m.start()
    assert change(m, apisim.generated_id(9), "ONE") == "delta"
    before = tree(m)
    m.check_exit()
    data = open(delta_file(m), "rb").read()
    data = {"flipped-bit": data[:100] + bytes([data[100] ^ 1]) + data[101:],
            "truncated": data[:len(data) // 2],
            "garbage": os.urandom(len(data))}[kind]
    with open(delta_file(m), "wb") as f:
        f.write(data)
    m.start()
    warnings = [l for l in m.stderr().splitlines() if "ignoring the saved state" in l]
    assert len(warnings) == 1 and "state.delta" in warnings[0], m.stderr()
    after = tree(m)
    assert {p: v[1] for p, v in after.items()} == {p: v[1] for p, v in before.items()}
    assert inodes(after) & inodes(before) == set()  # a fresh identity, as for a damaged state
    assert wholes_after(m, 1) == 1


def test_state_file_is_private_and_holds_no_secret(new_mount):
    m = new_mount()
    m.start()
    st = os.stat(state_file(m))
    assert st.st_mode & 0o777 == 0o600
    assert os.stat(m.state).st_mode & 0o777 == 0o700
    data = open(state_file(m), "rb").read()
    assert m.sim.key.encode() not in data
    assert b"COMPLETED" in data  # it does hold the answer
    assert sorted(os.listdir(m.state)) == ["events.1", "lock", "state"]
    assert os.stat(os.path.join(m.state, "events.1")).st_mode & 0o777 == 0o600


def test_state_dir_none_keeps_nothing(new_mount, tmp_path):
    m = new_mount()
    m.start("state_dir=none")
    assert m.status()["state_dir"] == "none"
    before = tree(m)
    m.restart("state_dir=none")
    after = tree(m)
    assert not os.path.exists(m.state)
    # a new hash key and allocator: no number of the last mount comes back
    assert inodes(before) & inodes(after) == set()


def test_default_state_dir_for_root(new_mount):
    m = new_mount()
    m.state = None  # let the daemon choose
    base = "/var/lib/ingestfs"
    existed = set(os.listdir(base)) if os.path.isdir(base) else set()
    try:
        m.start()
        made = set(os.listdir(base)) - existed
        assert len(made) == 1, made
        name = made.pop()
        assert name.startswith("127.0.0.1-") and len(name) == len("127.0.0.1-") + 16
        assert m.status()["state_dir"] == os.path.join(base, name)
        assert os.stat(os.path.join(base, name)).st_mode & 0o777 == 0o700
        assert os.path.isfile(os.path.join(base, name, "state"))
    finally:
        m.check_exit()
        m.proc = None
        for n in set(os.listdir(base)) - existed:
            shutil.rmtree(os.path.join(base, n))
        if not existed:
            os.rmdir(base)


@pytest.mark.parametrize("where", ["XDG_STATE_HOME", "HOME"])
def test_default_state_dir_for_a_user(sim, where):
    """As nobody (who cannot mount here: /dev/fuse is root's), the folder is
    made before the first fetch, which an API fault then fails."""
    home = tempfile.mkdtemp(prefix="ingestfs-home-", dir="/tmp")
    try:
        os.chmod(home, 0o755)
        creds = os.path.join(home, "creds")
        simctl.write_credentials(creds, sim.user, sim.key)
        os.makedirs(os.path.join(home, "mnt"))
        binary = os.path.join(home, "ingestfs")
        shutil.copy(BIN, binary)
        for p in (home, creds, os.path.join(home, "mnt")):
            os.chown(p, 65534, 65534)
        env = clean_env(HOME=home)
        env.pop("XDG_STATE_HOME", None)
        if where == "XDG_STATE_HOME":
            env["XDG_STATE_HOME"] = os.path.join(home, "xdg")
            base = os.path.join(home, "xdg", "ingestfs")
        else:
            base = os.path.join(home, ".local", "state", "ingestfs")
        sim.fault(**API_DOWN)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            binary, "-f", "-o", "api_url=%s,credentials=%s" % (sim.url, creds),
                            os.path.join(home, "mnt")],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 1 and "503" in r.stderr, r.stderr
        names = os.listdir(base)
        assert len(names) == 1 and names[0].startswith("127.0.0.1-"), names
        st = os.stat(os.path.join(base, names[0]))
        assert st.st_uid == 65534 and st.st_mode & 0o777 == 0o700
        assert os.stat(base).st_mode & 0o777 == 0o700  # parents made private too
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_two_mounts_never_share_a_state_dir(new_mount):
    a = new_mount()
    a.start()
    b = new_mount()
    r = start_fails(b, "state_dir=" + a.state)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "in use by another ingestfs" in r.stderr


@pytest.mark.parametrize("kind", ["group-writable", "world-readable", "other-owner", "a-file"])
def test_state_dir_that_is_not_private_is_refused(new_mount, kind):
    m = new_mount()
    if kind == "a-file":
        open(m.state, "w").close()
    else:
        os.mkdir(m.state, 0o700)
        if kind == "group-writable":
            os.chmod(m.state, 0o770)
        elif kind == "world-readable":
            os.chmod(m.state, 0o755)
        else:
            os.chown(m.state, 65534, 65534)
    r = start_fails(m)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "state folder " + m.state in r.stderr or "state folder" in r.stderr
    assert m.sim.requests() == 0


# ---- offline start --------------------------------------------------------------

def test_offline_start_serves_the_saved_answer_and_recovers(new_mount):
    m = new_mount()
    m.start()
    before = tree(m)
    m.check_exit()
    m.sim.fault(**API_DOWN)
    m.start()
    st = m.status()
    assert st["source"].startswith("saved")
    assert st["consecutive_failures"] == "1" and "503" in st["last_error"]
    assert int(st["age_seconds"]) >= 0
    assert tree(m) == before
    lines = [l for l in m.stderr().splitlines() if "serving the saved answer" in l]
    assert len(lines) == 1 and "503" in lines[0], m.stderr()
    m.sim.clear_fault()
    assert wait_for(lambda: m.status()["source"] == "api", 10), m.status()
    assert tree(m) == before
    m.sim.patch(ID1, {"state": "FAILED"})
    assert wait_for(lambda: read(m.p(ID1, "state")) == "FAILED\n", 10)


def test_offline_start_no_exits_1(new_mount):
    m = new_mount()
    m.start()
    m.check_exit()
    m.proc = None
    m.sim.fault(**API_DOWN)
    r = start_fails(m, "offline_start=no")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "503" in r.stderr


def test_api_down_with_nothing_saved_exits_1(new_mount):
    m = new_mount()
    m.sim.fault(**API_DOWN)
    r = start_fails(m)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "503" in r.stderr


def test_wrong_credentials_are_not_an_outage(new_mount):
    m = new_mount()
    m.start()
    m.check_exit()
    m.proc = None
    simctl.write_credentials(m.creds, m.sim.user, "not-the-key")  # same user: same folder
    r = start_fails(m)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "401" in r.stderr, r.stderr


# ---- damaged, foreign or hostile state files ------------------------------------

def fix_crc(data):
    return data[:-8] + struct.pack("<II", zlib.crc32(data[:-8]), 0)


def damage(path, kind):
    data = open(path, "rb").read()
    if kind == "directory":
        os.unlink(path)
        os.mkdir(path)
        return
    if kind == "symlink":
        os.rename(path, path + ".elsewhere")
        os.symlink(path + ".elsewhere", path)
        return
    if kind == "fifo":
        os.unlink(path)
        os.mkfifo(path)
        return
    new = {
        "empty": b"",
        "garbage": os.urandom(len(data)),
        "truncated": data[:len(data) // 2],
        "one-byte-short": data[:-1],
        "flipped-body-bit": data[:-20] + bytes([data[-20] ^ 1]) + data[-19:],
        "flipped-record-bit": data[:150] + bytes([data[150] ^ 0x40]) + data[151:],
        "other-version": fix_crc(data[:8] + struct.pack("<I", 99) + data[12:]),
        "other-mount": fix_crc(data[:16] + b"\xff" * 8 + data[24:]),
        "other-renderer": fix_crc(data[:96] + b"\x01" * 8 + data[104:]),
        "oversized-answer": fix_crc(data[:120] + struct.pack("<Q", 1 << 40) + data[128:]),
        "too-many-tasks": fix_crc(data[:104] + struct.pack("<Q", 1 << 60) + data[112:]),
        # a feed generation whose node id would leave its range
        "feed-gen-beyond": fix_crc(data[:128] + struct.pack("<Q", 1 << 62) + data[136:]),
        "feed-gen-zero": fix_crc(data[:128] + struct.pack("<Q", 0) + data[136:]),
        # every node id lies beyond the allocator
        "node-ids-beyond": fix_crc(data[:40] + struct.pack("<Q", 16) + data[48:]),
        # every mtime is newer than the newest stamp
        "mtimes-ahead": fix_crc(data[:48] + struct.pack("<q", 0) + data[56:]),
        # one byte moved from the answer to the records: both misread
        "shifted": fix_crc(data[:112] + struct.pack("<QQ", *[
            v + d for v, d in zip(struct.unpack("<QQ", data[112:128]), (1, -1))]) + data[128:]),
        # the answer edited in place, same length: a file's size changes
        "answer-edited": fix_crc(data[:-8].replace(b'"COMPLETED"', b'"DONE"     ', 1) + data[-8:]),
    }[kind]
    with open(path, "wb") as f:
        f.write(new)


# each kind of damage and the reason the warning must give
DAMAGE = {
    "empty": "truncated",
    "garbage": "not an ingestfs state file",
    "truncated": "sizes do not add up",
    "one-byte-short": "sizes do not add up",
    "flipped-body-bit": "checksum mismatch",
    "flipped-record-bit": "checksum mismatch",
    "other-version": "from another version of ingestfs",
    "other-mount": "belongs to another mount",
    "other-renderer": "shows files differently",
    "oversized-answer": "larger than max_response",
    "too-many-tasks": "sizes do not add up",
    "feed-gen-beyond": "change feed generation out of range",
    "feed-gen-zero": "change feed generation out of range",
    "node-ids-beyond": "beyond the allocator",
    "mtimes-ahead": "newer than the newest stamp",
    "shifted": "bytes after the task records",
    "answer-edited": "do not match its answer",
    "directory": "not a regular file",
    "symlink": "symbolic links",
    "fifo": "not a regular file",
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_state_is_ignored_with_one_warning(new_mount, kind):
    m = new_mount()
    m.start()
    before = tree(m)
    m.check_exit()
    damage(state_file(m), kind)
    m.start()
    assert m.status()["source"] == "api"
    warnings = [l for l in m.stderr().splitlines() if "ignoring the saved state" in l]
    assert len(warnings) == 1, m.stderr()
    assert DAMAGE[kind] in warnings[0], warnings[0]
    after = tree(m)
    # the API's data, under a fresh identity: new key, allocator past the old
    assert {p: v[1] for p, v in after.items()} == {p: v[1] for p, v in before.items()}
    assert inodes(after) & inodes(before) == set()
    if kind != "directory":
        # replaced by a good one at once
        assert m.counter("state_saves") == 1 and m.status()["state_error"] == "none"
        m.restart()
        assert tree(m) == after
    else:
        assert m.counter("state_saves") == 0 and m.status()["state_error"] != "none"


def test_less_follow_name_follows_a_file_across_versions(mount):
    """less +F follows a descriptor, like tail -f; with --follow-name it
    reopens the name, like tail -F, and sees each new version."""
    term = Terminal(["less", "--follow-name", "+F", mount.p(ID0, "state")])
    try:
        assert wait_for(lambda: term.seen("COMPLETED"), 10), bytes(term.out)
        for value in ("PENDING", "FAILED"):
            mount.sim.patch(ID0, {"state": value})
            assert wait_for(lambda: term.seen(value), 15), bytes(term.out)
    finally:
        term.close()
