# SPDX-License-Identifier: MIT
"""mount(8), fstab and mount.fuse3; the debug log."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import simctl
from conftest import BIN, clean_env, is_mounted, wait_for

LINK = "/usr/local/bin/ingestfs"  # mount(8) runs helpers with a fixed PATH


@pytest.fixture
def installed():
    """Make `ingestfs` reachable for mount.fuse3, then take it away again."""
    if not shutil.which("mount.fuse3"):
        pytest.skip("mount.fuse3 (Debian's fuse3) is not installed")
    if os.path.lexists(LINK) and os.path.realpath(LINK) != os.path.realpath(BIN):
        pytest.skip("%s exists and is not this build" % LINK)
    made = not os.path.lexists(LINK)
    if made:
        os.symlink(os.path.realpath(BIN), LINK)
    yield
    if made:
        os.unlink(LINK)


def daemon_pids(mnt):
    r = subprocess.run(["pgrep", "-f", "ingestfs.* %s" % re.escape(mnt)], capture_output=True,
                       text=True)
    return [int(p) for p in r.stdout.split()]


def opts(m):
    return "api_url=%s,credentials=%s,ttl=30,state_dir=%s" % (m.sim.url, m.creds, m.state)


def test_mount_t_fuse_ingestfs(new_mount, installed):
    m = new_mount()
    o = opts(m) + ",noauto,nofail,_netdev,x-systemd.automount,x-systemd.idle-timeout=60"
    r = subprocess.run(["mount", "-t", "fuse.ingestfs", "ingestfs", m.path, "-o", o],
                       capture_output=True, text=True, env=clean_env(), timeout=30)
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(m.path)
        assert sorted(os.listdir(m.path)) == sorted(t[0] for t in simctl.DEFAULT_TASKS)
        with open("/proc/self/mounts") as f:
            line = [l for l in f if l.split()[1] == os.path.realpath(m.path)][0]
        assert line.split()[2] == "fuse.ingestfs" and "ro" in line.split()[3].split(",")
        pids = daemon_pids(m.path)
        assert len(pids) == 1
    finally:
        r = subprocess.run(["umount", m.path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not is_mounted(m.path)
    assert wait_for(lambda: not daemon_pids(m.path), 5)


def test_fstab_line(new_mount, installed, tmp_path):
    m = new_mount()
    fstab = tmp_path / "fstab"
    fstab.write_text("# the README's line, with test values\n"
                     "ingestfs %s fuse.ingestfs noauto,nofail,_netdev,x-systemd.automount,%s 0 0\n"
                     % (m.path, opts(m)))
    r = subprocess.run(["mount", "--fstab", str(fstab), m.path], capture_output=True, text=True,
                       env=clean_env(), timeout=30)
    try:
        assert r.returncode == 0, r.stderr
        assert open(os.path.join(m.path, simctl.DEFAULT_TASKS[0][0], "operation")).read() \
            == "DELETE\n"
    finally:
        subprocess.run(["umount", m.path], capture_output=True)
    assert not is_mounted(m.path)


def test_debug_log_has_requests_and_no_secrets(new_mount):
    m = new_mount(ttl=0.3)
    m.start(opts="debug")
    os.listdir(m.path)
    open(m.p(simctl.DEFAULT_TASKS[0][0], "state")).read()
    m.sim.patch(simctl.DEFAULT_TASKS[0][0], {"state": "FAILED"})
    m.wait_generation(2)  # the change is in
    m.wait_refreshes(4)
    m.sim.fault(status=503, count=1)
    time.sleep(1)
    assert m.stop() == 0
    log = m.stderr()
    gets = re.findall(r"GET /api/v4/managed-slicer/ingest-points/tasks: status (\d+), "
                      r"(\d+) bytes, (\d+) ms", log)
    assert len(gets) >= 4 and ("503" in [g[0] for g in gets])
    assert re.search(r"refresh: 8 tasks, generation \d+, [1-9]\d* changes, \d+ ms", log)
    assert re.search(r"refresh: 8 tasks, generation \d+, 0 changes, \d+ ms, answer unchanged", log)
    for secret in (m.sim.key, "msg=", "sig="):
        assert secret not in log
    # libfuse's own request trace is part of -d as well
    assert "opcode: LOOKUP" in log or "LOOKUP" in log


def test_slicer_task_collection(new_mount):
    m = new_mount()
    m.start(opts="endpoint=/api/v4/managed-slicer/slicers/tasks")
    assert sorted(os.listdir(m.path)) == sorted(t[0] for t in simctl.DEFAULT_TASKS)
    raw = open(m.p(simctl.DEFAULT_TASKS[0][0], "raw.json")).read()
    assert "/api/v4/managed-slicer/slicers/tasks/" in raw
    assert m.status()["endpoint"] == "/api/v4/managed-slicer/slicers/tasks"
    assert m.stop() == 0


def test_endpoint_must_be_an_api_path(new_mount):
    m = new_mount()
    r = subprocess.run(m.argv("endpoint=/v4/tasks"), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "/api/" in r.stderr
    assert m.sim.requests() == 0


def test_meson_install_puts_binary_and_man_page(tmp_path):
    build = os.path.dirname(os.path.realpath(BIN))
    if not os.path.exists(os.path.join(build, "build.ninja")):
        pytest.skip("INGESTFS_BIN is not in a meson build folder")
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", build, "--destdir", str(dest), "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    files = [str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()]
    assert any(f.endswith("bin/ingestfs") for f in files), files
    assert any(f.endswith("man1/ingestfs.1") or f.endswith("man1/ingestfs.1.gz") for f in files)


def test_daemon_logs_to_syslog(new_mount, tmp_path):
    """In the background, messages go to syslog: facility daemon, ident ingestfs.

    /dev/log becomes a socket this test reads: in a private mount namespace
    when the system has one (bind-mounted over it), else a link made for
    the test.  Either way the daemon uses plain syslog(3)."""
    import socket
    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    m = new_mount(ttl=0.2)
    argv = m.argv(foreground=False)
    own_link = not os.path.lexists("/dev/log")
    if own_link:
        os.symlink(path, "/dev/log")
    else:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /dev/log && exec "$@"', path] + argv
    pid = None
    try:
        r = subprocess.run(argv, capture_output=True, timeout=30, env=clean_env())
        assert r.returncode == 0 and r.stderr == b"", r.stderr
        m.sim.fault(status=503)
        msg = b""
        while b"refresh failed" not in msg:
            msg = sock.recv(4096)
        # <28>: facility daemon (3 << 3) | warning (4)
        assert msg.startswith(b"<28>") and b"ingestfs[" in msg and b"503" in msg, msg
        assert m.sim.key.encode() not in msg
        pid = int(re.search(rb"ingestfs\[(\d+)\]", msg).group(1))
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)  # unmounts, in whichever namespace it is
            assert wait_for(lambda: not os.path.exists("/proc/%d" % pid), 15)
        m.unmount()
        sock.close()
        if own_link:
            os.unlink("/dev/log")
