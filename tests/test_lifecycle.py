# SPDX-License-Identifier: MIT
"""Start-up, refresh, failures and shutdown of the real daemon."""
import os
import signal
import subprocess
import time

import pytest

import simctl
from conftest import clean_env, is_mounted, run_ingestfs, terminate, wait_for

ID0 = simctl.DEFAULT_TASKS[0][0]
ID1 = simctl.DEFAULT_TASKS[1][0]


def read(path):
    with open(path) as f:
        return f.read()


# ---- start-up failures: one line on stderr, exit 1, nothing mounted

def start_fails(m, argv_opts=None, env=None):
    r = subprocess.run(m.argv(argv_opts), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=env or clean_env(), timeout=60)
    assert not is_mounted(m.path)
    return r


def test_wrong_key_is_refused(new_mount):
    m = new_mount()
    simctl.write_credentials(m.creds, m.sim.user, "not-the-key")
    r = start_fails(m)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "401" in r.stderr, r.stderr
    assert "not-the-key" not in r.stderr


def test_wrong_user_is_refused(new_mount):
    m = new_mount()
    simctl.write_credentials(m.creds, "someoneelse", m.sim.key)
    r = start_fails(m)
    assert r.returncode == 1 and "403" in r.stderr and r.stderr.count("\n") == 1


def test_missing_credentials_file(new_mount):
    m = new_mount()
    os.unlink(m.creds)
    r = start_fails(m)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "no credentials" in r.stderr and m.creds in r.stderr


def test_incomplete_credentials_file(new_mount):
    m = new_mount()
    with open(m.creds, "w") as f:
        f.write("user_id = %s\n" % m.sim.user)
    r = start_fails(m)
    assert r.returncode == 1 and "no api_key" in r.stderr and m.creds in r.stderr


def test_world_readable_credentials_refused(new_mount):
    m = new_mount()
    os.chmod(m.creds, 0o644)
    r = start_fails(m)
    assert r.returncode == 1 and "chmod 600" in r.stderr
    assert m.sim.key not in r.stderr
    assert m.sim.requests() == 0  # refused before any request


def test_credentials_from_environment(new_mount):
    m = new_mount()
    os.unlink(m.creds)
    m.start(env=clean_env(UPLYNK_USER_ID=m.sim.user, UPLYNK_API_KEY=m.sim.key))
    assert sorted(os.listdir(m.path))[0] == sorted(t[0] for t in simctl.DEFAULT_TASKS)[0]
    assert m.stop() == 0


def test_api_down_at_start(new_mount):
    m = new_mount()
    m.sim.stop()
    r = start_fails(m, "timeout=2")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "cannot load tasks" in r.stderr


@pytest.mark.parametrize("fault", [
    {"status": 503},
    {"status": 500, "body": "<html>oops</html>", "content_type": "text/html"},
    {"status": 429, "retry_after": "5"},
])
def test_api_error_at_start(new_mount, fault):
    m = new_mount()
    m.sim.fault(**fault)
    r = start_fails(m)
    assert r.returncode == 1 and str(fault["status"]) in r.stderr


@pytest.mark.parametrize("body", [b"not json", b"<html></html>", b"[]", b'{"items": 5}'])
def test_unusable_answer_at_start(new_mount, body):
    m = new_mount()
    m.sim.set_raw(body)
    r = start_fails(m)
    assert r.returncode == 1 and "unusable answer" in r.stderr and r.stderr.count("\n") == 1


def test_timeout_at_start(new_mount):
    m = new_mount()
    m.sim.fault(hang=True)
    t0 = time.monotonic()
    r = start_fails(m, "timeout=1")
    assert r.returncode == 1 and time.monotonic() - t0 < 10
    m.sim.clear_fault()


# ---- usage

@pytest.mark.parametrize("args", [
    ["-o", "ttl=abc", "/tmp"],
    ["-o", "ttl=-1", "/tmp"],
    ["-o", "timeout=0", "/tmp"],
    ["-o", "api_url=ftp://example", "/tmp"],
    ["-o", "no_such_option=1", "/tmp"],
    [],
])
def test_usage_errors_exit_2(args, tmp_path):
    # never the real API, even if option checking were broken
    args = ["-o", "api_url=http://127.0.0.1:1,timeout=1"] + args
    r = run_ingestfs(args, env=clean_env(UPLYNK_USER_ID="u", UPLYNK_API_KEY="k"))
    assert r.returncode == 2, r
    assert r.stderr.strip() and r.stderr.count(b"\n") == 1, r.stderr


def test_help_and_version():
    r = run_ingestfs(["--help"])
    assert r.returncode == 0
    for opt in (b"api_url=", b"ttl=", b"credentials=", b"timeout=", b"-f", b"-d", b"-s"):
        assert opt in r.stdout
    assert b"default: 30" in r.stdout and b"default: 10" in r.stdout
    assert b"https://services.uplynk.com" in r.stdout
    r = run_ingestfs(["-V"])
    assert r.returncode == 0 and r.stdout.startswith(b"ingestfs ")


# ---- lifecycle of a good mount

def test_clean_start_prints_nothing(new_mount):
    m = new_mount()
    m.start()
    os.listdir(m.path)
    read(m.p(ID0, "state"))
    m.wait_refreshes(3)
    assert m.stop() == 0
    assert m.stderr() == ""


def test_fusermount_unmount_exits_0(new_mount):
    m = new_mount()
    m.start()
    subprocess.run(["fusermount3", "-u", m.path], check=True)
    assert m.proc.wait(timeout=10) == 0
    assert not is_mounted(m.path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_and_exits_0(new_mount, sig):
    m = new_mount()
    m.start()
    assert terminate(m.proc, sig) == 0
    assert not is_mounted(m.path)
    assert m.stderr() == ""


def test_daemon_mode_returns_once_usable(new_mount):
    m = new_mount()
    r = subprocess.run(m.argv(foreground=False), stdin=subprocess.DEVNULL,
                       capture_output=True, env=clean_env(), timeout=30)
    try:
        assert r.returncode == 0 and r.stderr == b""
        assert is_mounted(m.path)
        assert read(m.p(ID0, "operation")) == "DELETE\n"  # usable right away
    finally:
        m.unmount()
    assert wait_for(lambda: not is_mounted(m.path), 5)


def test_sighup_refreshes_now(new_mount):
    m = new_mount(ttl=3600)
    m.start()
    before = m.sim.requests()
    m.sim.patch(ID0, {"state": "FAILED"})
    os.kill(m.proc.pid, signal.SIGHUP)
    assert wait_for(lambda: read(m.p(ID0, "state")) == "FAILED\n", 5)
    assert m.sim.requests() == before + 1
    assert m.proc.poll() is None


# ---- refresh

def test_refresh_sees_change_addition_removal(mount):
    ttl = mount.ttl
    sim = mount.sim
    read(mount.p(ID0, "state"))
    os.listdir(mount.path)
    assert not os.path.exists(mount.p("brand-new"))  # a cached negative entry

    sim.patch(ID0, {"state": "FAILED"})
    sim.add(simctl.make_item("brand-new", "PENDING", "UPDATE", 1700000000))
    sim.delete(ID1)
    t0 = time.monotonic()
    assert wait_for(lambda: read(mount.p(ID0, "state")) == "FAILED\n", 10)
    assert wait_for(lambda: "brand-new" in os.listdir(mount.path), 10)
    assert wait_for(lambda: ID1 not in os.listdir(mount.path), 10)
    assert time.monotonic() - t0 < ttl + 3
    assert read(mount.p("brand-new", "operation")) == "UPDATE\n"
    assert os.stat(mount.p("brand-new")).st_mtime == 1700000000
    assert not os.path.exists(mount.p(ID1))
    assert os.stat(mount.path).st_nlink == 2 + 8
    assert os.stat(mount.p(ID0, "state")).st_size == len("FAILED\n")


def test_failed_refresh_keeps_last_good_data(mount):
    sim = mount.sim
    sim.fault(status=503)
    assert wait_for(lambda: mount.status()["last_error"] != "none", 10)
    st = mount.status()
    assert "503" in st["last_error"] and int(st["consecutive_failures"]) >= 1
    assert sorted(os.listdir(mount.path)) == sorted(t[0] for t in simctl.DEFAULT_TASKS)
    assert read(mount.p(ID0, "operation")) == "DELETE\n"
    sim.set_raw(b"<html>not json</html>", "text/html")
    sim.clear_fault()
    assert wait_for(lambda: "unusable" in mount.status()["last_error"], 10)
    assert read(mount.p(ID0, "operation")) == "DELETE\n"
    sim.clear_raw()
    sim.patch(ID0, {"operation": "UPDATE"})
    assert wait_for(lambda: mount.status()["last_error"] == "none", 15)
    assert wait_for(lambda: read(mount.p(ID0, "operation")) == "UPDATE\n", 5)
    assert mount.status()["consecutive_failures"] == "0"
    # one line when the failure starts, one when it recovers
    lines = mount.stderr().splitlines()
    assert len(lines) == 2, lines
    assert "refresh failed: HTTP 503" in lines[0] and "recovered" in lines[1], lines


def test_open_file_keeps_its_bytes(mount):
    sim = mount.sim
    path = mount.p(ID0, "raw.json")
    fd = os.open(path, os.O_RDONLY)
    try:
        first = os.pread(fd, 10, 0)  # only part of the file is read now
        size = os.fstat(fd).st_size
        sim.patch(ID0, {"state": "A MUCH LONGER STATE THAN BEFORE"})
        assert wait_for(lambda: "LONGER" in read(path), 10)
        whole = os.pread(fd, 1 << 16, 0)
        assert whole.startswith(first) and len(whole) == size == os.fstat(fd).st_size
        assert b"COMPLETED" in whole and b"LONGER" not in whole
    finally:
        os.close(fd)
    assert os.stat(path).st_size != size


def test_no_requests_per_file_access(mount):
    mount.wait_refreshes(mount.counter("refreshes") + 1)
    before = mount.sim.requests()
    t0 = time.monotonic()
    for _ in range(20):
        for d in os.listdir(mount.path):
            for f in os.listdir(mount.p(d)):
                read(mount.p(d, f))
    elapsed = time.monotonic() - t0
    made = mount.sim.requests() - before
    # only the refresher talks to the API: about one request per ttl
    assert made <= elapsed / mount.ttl + 2
