"""/proc helpers: a process's RSS, peak RSS and CPU time, the machine's busy
time, whether a process is alive, the pid of a command line, whether a path
is mounted, and dropping the page cache.

Owns: CLK_TCK, proc_status, cpu_seconds, proc_io, system_busy_seconds,
reset_hwm, pid_alive, find_pid_by_argv, is_mounted, drop_caches.
Uses: the standard library only.
"""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    """VmRSS and VmHWM in KiB."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads, also exited ones)."""
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_io(pid="self"):
    """/proc/PID/io as a dict (wchar: bytes passed to write(2) and friends,
    to files, pipes, sockets and /dev/fuse alike; write_bytes: bytes sent
    to a block device, 0 on tmpfs).  A process's counts include those of
    its children it has reaped.  {} if it cannot be read."""
    out = {}
    try:
        with open("/proc/%s/io" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k.strip()] = int(v)
    except (OSError, ValueError):
        pass
    return out


def system_busy_seconds():
    """CPU time the whole machine spent busy (all CPUs; not idle/iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK


def reset_hwm(pid):
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return False
    return text[text.rindex(")") + 2:].split()[0] not in ("Z", "X")


def find_pid_by_argv(argv):
    want = [a.encode() for a in argv]
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                got = f.read().split(b"\0")
        except OSError:
            continue
        if got and got[-1] == b"":
            got.pop()
        if got == want:
            return int(name)
    return None


def is_mounted(path):
    path = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 1 and parts[1].replace("\\040", " ") == path:
                    return True
    except OSError:
        pass
    return False


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
