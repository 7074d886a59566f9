"""Mounting: ingestfs in daemon mode (the timed mounts) and in the
foreground with -d (the daemon figures), unmounting it so that no daemon is
left behind, its .status file, and the tmpfs that holds the copy.

Owns: TTL, MountsMixin (make_tmpfs, umount_tmpfs, rm_tree, mount_daemon,
mount_foreground_debug, unmount, status), a part of runner.Bench.
Uses: util, procfs, daemon (DebugLog); from Bench: work, is_root, binary,
cred, sim, mounts, mount_argv, fg_procs, tmpfs_mounts, note.
"""

import os
import signal
import subprocess
import tempfile
import time

from .daemon import DebugLog
from .procfs import find_pid_by_argv, is_mounted, pid_alive
from .util import BenchError

TTL = 3600                 # refreshes happen only when we send SIGHUP


def state_dir(mnt):
    """Each mount keeps its own state folder beside it, fresh for each run."""
    return mnt.rstrip("/") + ".state"


class MountsMixin:
    """Mounts and unmounts; a part of runner.Bench."""

    # ---- the tmpfs

    def make_tmpfs(self, tag):
        path = os.path.join(self.work, "tmpfs-" + tag)
        os.mkdir(path, 0o700)
        if self.is_root:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80%,mode=0700",
                            "ingestfs-bench", path], check=True)
            self.tmpfs_mounts.append(path)
            return path
        # not root: a folder on /dev/shm (tmpfs too)
        os.rmdir(path)
        path = tempfile.mkdtemp(prefix="ingestfs-bench.", dir="/dev/shm")
        self.tmpfs_mounts.append(path)
        return path

    def umount_tmpfs(self, path):
        if path in self.tmpfs_mounts:
            self.tmpfs_mounts.remove(path)
        if self.is_root:
            r = subprocess.run(["umount", path], check=False)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", path], check=False)
        else:
            self.rm_tree(path)

    def rm_tree(self, path):
        if not os.path.lexists(path):
            return
        if not self.is_root:  # the copies keep the 0555 folder modes
            subprocess.run(["chmod", "-R", "u+w", path], check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)

    # ---- mounting

    def mount_daemon(self, mnt, ttl=TTL):
        """Mount in daemon mode; returns (seconds until the command returned, pid)."""
        argv = [self.binary, "-o", "api_url=%s,credentials=%s,ttl=%g,state_dir=%s"
                % (self.sim.url, self.cred, ttl, state_dir(mnt)), mnt]
        self.mounts[mnt] = None
        self.mount_argv[mnt] = argv
        t0 = time.perf_counter()
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=600, check=False)
        took = time.perf_counter() - t0
        pid = None
        for _ in range(100):
            pid = find_pid_by_argv(argv)
            if pid:
                break
            time.sleep(0.02)
        self.mounts[mnt] = pid
        if r.returncode != 0:
            raise BenchError("ingestfs exited %d: %s" % (
                r.returncode, r.stderr.decode("utf-8", "replace").strip()))
        if r.stderr.strip():
            self.note("ingestfs printed on a clean start: %s"
                      % r.stderr.decode("utf-8", "replace").strip()[:200])
        if not pid:
            raise BenchError("mounted, but cannot find the daemon's pid")
        return took, pid

    def mount_foreground_debug(self, mnt, logpath, ttl=TTL):
        argv = [self.binary, "-f", "-d", "-o", "api_url=%s,credentials=%s,ttl=%g,state_dir=%s"
                % (self.sim.url, self.cred, ttl, state_dir(mnt)), mnt]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        self.fg_procs.append(proc)
        self.mounts[mnt] = proc.pid
        self.mount_argv[mnt] = argv
        dlog = DebugLog(proc.stderr, logpath)
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise BenchError("ingestfs -f -d exited %s during start-up; see %s"
                                 % (proc.returncode, logpath))
            if is_mounted(mnt):
                try:
                    with open(os.path.join(mnt, ".status")) as f:
                        f.read()
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise BenchError("ingestfs -f -d did not mount within 300 s")
            time.sleep(0.02)
        return proc, dlog

    def unmount(self, mnt):
        """Unmount @mnt and make sure the daemon serving it is gone (also
        one that is still starting up); returns a foreground daemon's exit
        status."""
        pid = self.mounts.get(mnt)
        if pid is None and mnt in self.mount_argv:
            pid = find_pid_by_argv(self.mount_argv[mnt])
        fg = [p for p in self.fg_procs if p.pid == pid]
        proc = fg[0] if fg else None

        def alive():
            if proc is not None:
                return proc.poll() is None
            return pid is not None and pid_alive(pid)

        def wait_gone(seconds):
            deadline = time.monotonic() + seconds
            while alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            return not alive()

        if is_mounted(mnt):
            for _ in range(20):
                r = subprocess.run(["fusermount3", "-u", mnt], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, check=False)
                if r.returncode == 0 or not is_mounted(mnt):
                    break
                time.sleep(0.5)
            else:
                self.note("fusermount3 -u %s kept failing; lazy unmount" % mnt)
                subprocess.run(["fusermount3", "-uz", mnt], check=False)
            if not wait_gone(120):
                self.note("daemon %s still running 120 s after unmount" % pid)
        if alive():  # not mounted (yet): a daemon still starting, or stuck
            os.kill(pid, signal.SIGTERM)
            if not wait_gone(10):
                os.kill(pid, signal.SIGKILL)
                wait_gone(10)
        if is_mounted(mnt):  # the daemon died without unmounting
            subprocess.run(["fusermount3", "-uz", mnt], check=False)
        rc = None
        if proc is not None:
            rc = proc.wait()
            self.fg_procs.remove(proc)
        self.mounts.pop(mnt, None)
        self.mount_argv.pop(mnt, None)
        return rc

    def status(self, mnt):
        try:
            with open(os.path.join(mnt, ".status")) as f:
                text = f.read()
        except OSError as e:
            return {"error": str(e)}
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(": ")
            out[k] = v
        return out
