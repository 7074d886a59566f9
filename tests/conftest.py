# SPDX-License-Identifier: MIT
"""Fixtures for the integration tests: the API simulator and real mounts.

Every mount lives under pytest's tmp_path and is unmounted in teardown,
also when the test fails.  Every daemon is checked too: a mount's exit
status after its unmount (Mount.expect_rc), and for every ingestfs a test
starts, however it starts it, no sanitizer report (clean_env() sends
reports to files that an autouse fixture reads after each test).
"""
import glob
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sanreport  # noqa: E402
import simctl  # noqa: E402

ROOT = os.environ.get("INGESTFS_SOURCE_ROOT", os.path.dirname(HERE))
BIN = os.environ.get("INGESTFS_BIN", os.path.join(ROOT, "build", "ingestfs"))
# sanitizer reports of every daemon land here, one file per process
SANITIZER_LOGS = tempfile.mkdtemp(prefix="ingestfs-sanitizer-")
os.chmod(SANITIZER_LOGS, 0o1777)  # daemons run as nobody write here too




def sanitizer_options(name, default=""):
    opts = os.environ.get(name, default)
    return (opts + ":" if opts else "") + "log_path=" + os.path.join(SANITIZER_LOGS, "report")


# a sanitized daemon that found an error or a leak exits with this, never 1
SANITIZER_EXITCODE = 23

# every process the tests start inherits these, whatever env it is given
os.environ["ASAN_OPTIONS"] = sanitizer_options("ASAN_OPTIONS") + ":exitcode=%d" % SANITIZER_EXITCODE
os.environ["UBSAN_OPTIONS"] = sanitizer_options("UBSAN_OPTIONS", "print_stacktrace=1")


def clean_env(**extra):
    """The environment for ingestfs: no proxies, no stray credentials."""
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and not k.startswith("UPLYNK_")}
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    """Fail the test if any daemon it started reported to a sanitizer."""
    yield
    text = read_reports(os.path.join(SANITIZER_LOGS, "report*"))
    assert not text, "sanitizer report from a daemon:\n" + text


def read_reports(pattern):
    """The text of the sanitizer reports matching pattern, deleted once read;
    the one known libfuse leak (sanreport.py) is set aside with a note."""
    text = ""
    for r in sorted(glob.glob(pattern)):
        with open(r, errors="replace") as f:
            body = f.read()
        os.unlink(r)
        known = sanreport.known_upstream(body)
        if known:
            print("ignored in %s: %s" % (r, known))
        else:
            text += "==> %s\n%s\n" % (r, body)
    return text


def wait_for(pred, timeout, interval=0.05):
    """Poll pred() until true or timeout seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


class Mount:
    """One ingestfs process in the foreground (-f) on tmp/mnt."""

    expect_rc = 0  # exit status at teardown; a test that kills it says what

    def __init__(self, tmp_path, sim, ttl=0.5):
        self.tmp = tmp_path
        self.sim = sim
        self.ttl = ttl
        self.path = str(tmp_path / "mnt")
        os.makedirs(self.path, exist_ok=True)
        self.creds = str(tmp_path / "credentials")
        simctl.write_credentials(self.creds, sim.user, sim.key)
        self.stderr_path = str(tmp_path / "ingestfs.stderr")
        # never the default under /var/lib: each mount keeps its state here
        self.state = str(tmp_path / "ingestfs-state")
        self.proc = None

    def argv(self, opts=None, foreground=True):
        o = "api_url=%s,ttl=%s,credentials=%s" % (self.sim.url, self.ttl, self.creds)
        if self.state and (not opts or "state_dir=" not in opts):
            o += ",state_dir=" + self.state
        if opts:
            o += "," + opts
        return [BIN] + (["-f"] if foreground else []) + ["-o", o, self.path]

    def start(self, opts=None, env=None):
        """Start in the foreground and wait until the mount is there."""
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(self.argv(opts), stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=self._err,
                                     env=env or clean_env())
        ok = wait_for(lambda: is_mounted(self.path) or self.proc.poll() is not None, 15)
        if not is_mounted(self.path):
            self.stop()
            raise AssertionError("ingestfs did not mount: rc=%s stderr=%r"
                                 % (self.proc.returncode, self.stderr()))
        return ok

    def restart(self, opts=None, env=None):
        """Unmount (the daemon must exit 0, sanitizer-clean), then start again."""
        self.check_exit()
        self.start(opts, env)

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def status(self):
        with open(self.p(".status")) as f:
            return dict(line.split(": ", 1) for line in f.read().splitlines())

    def counter(self, name):
        return int(self.status()[name])

    def wait_generation(self, n, timeout=10):
        """Wait until at least n snapshots were swapped in; fail otherwise."""
        assert wait_for(lambda: self.counter("generation") >= n, timeout), \
            "generation %d not reached: %r" % (n, self.status())

    def wait_refreshes(self, n, timeout=10):
        """Wait until at least n refreshes succeeded (changed or not); fail otherwise."""
        assert wait_for(lambda: self.counter("refreshes") >= n, timeout), \
            "refreshes %d not reached: %r" % (n, self.status())

    def check_exit(self):
        """Teardown: the daemon ended as expected and said nothing a sanitizer wrote."""
        rc = self.stop()
        err = self.stderr()
        pattern = os.path.join(SANITIZER_LOGS, "report.%d" % self.proc.pid)
        upstream_only = bool(glob.glob(pattern))
        reports = read_reports(pattern)
        upstream_only = upstream_only and not reports
        err += reports
        assert "Sanitizer" not in err and "runtime error:" not in err, err
        if upstream_only and rc == SANITIZER_EXITCODE:
            rc = 0  # only the set-aside libfuse leak made LeakSanitizer fail the exit
        if self.expect_rc is not None:
            assert rc == self.expect_rc, "ingestfs exited %r, expected %r; stderr: %s" % (
                rc, self.expect_rc, err)

    def unmount(self):
        if is_mounted(self.path):
            subprocess.run(["fusermount3", "-u", self.path], check=False,
                           stderr=subprocess.DEVNULL)
            if is_mounted(self.path):
                subprocess.run(["fusermount3", "-u", "-z", self.path], check=False,
                               stderr=subprocess.DEVNULL)

    def stop(self):
        """Unmount and reap; returns the exit code."""
        self.unmount()
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._err.close()


def pytest_sessionfinish(session, exitstatus):
    """The report folder goes when it is empty (every report was read)."""
    try:
        os.rmdir(SANITIZER_LOGS)
    except OSError:
        pass


def pytest_collection_modifyitems(config, items):
    if os.path.exists("/dev/fuse") and shutil.which("fusermount3"):
        return
    skip = pytest.mark.skip(reason="FUSE unavailable: no /dev/fuse or fusermount3")
    for item in items:
        if {"mount", "new_mount"} & set(item.fixturenames):
            item.add_marker(skip)


@pytest.fixture
def sim(tmp_path):
    s = simctl.Sim(tmp_path / "sim")
    s.start()
    yield s
    s.stop()


@pytest.fixture
def mount(tmp_path, sim):
    """A started mount of the default eight tasks, ttl=0.5."""
    assert os.path.exists(BIN), "build ingestfs first: %s" % BIN
    m = Mount(tmp_path, sim)
    m.start()
    yield m
    m.check_exit()


@pytest.fixture
def new_mount(tmp_path, sim):
    """A factory for mounts the test starts itself; all stopped at teardown."""
    made = []

    def make(ttl=0.5, sub="m"):
        base = tmp_path / ("%s%d" % (sub, len(made)))
        base.mkdir()
        m = Mount(base, sim, ttl=ttl)
        made.append(m)
        return m

    yield make
    for m in made:
        if m.proc is not None:
            m.check_exit()
        else:
            m.unmount()


class Terminal:
    """A program on a terminal of its own (less needs one), and what it printed."""

    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.environ["TERM"] = "xterm"
            os.execvp(argv[0], argv)
        self.out = bytearray()

    def seen(self, text):
        while select.select([self.fd], [], [], 0.05)[0]:
            try:
                self.out.extend(os.read(self.fd, 4096))
            except OSError:
                break
        return text.encode() in self.out

    def close(self):
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def run_ingestfs(args, env=None, timeout=30):
    return subprocess.run([BIN] + args, stdin=subprocess.DEVNULL, capture_output=True,
                          env=env or clean_env(), timeout=timeout)


def terminate(proc, sig=signal.SIGTERM, timeout=15):
    proc.send_signal(sig)
    return proc.wait(timeout=timeout)
