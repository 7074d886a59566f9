# SPDX-License-Identifier: MIT
"""Hostile answers: never crash, never escape the mount, keep the last good data."""
import json
import os
import subprocess

import pytest

import simctl
from conftest import is_mounted, wait_for

GOOD = ["good-%d" % i for i in range(5)] + ["\u00e9t\u00e9", "x" * 255, "with space", "a:b"]

HOSTILE = [
    {"id": ""}, {"id": "."}, {"id": ".."}, {"id": ".hidden"}, {"id": "../escape"},
    {"id": "a/b"}, {"id": "/abs"}, {"id": "nul\u0000byte"}, {"id": "tab\there"},
    {"id": "new\nline"}, {"id": "del\u007f"}, {"id": "x" * 256}, {"id": "\udcff"},
    {"id": 5}, {"id": None}, {"id": ["list"]}, {"id": {"o": 1}}, {"state": "no id"},
    1, "string", None, [], True,
    {"id": "good-0", "state": "DUPLICATE"},  # the first one wins
]


def hostile_items():
    items = [simctl.make_item(g, "FAILED" if i % 2 else "COMPLETED") for i, g in enumerate(GOOD)]
    # interleave, so position does not matter
    out = []
    for i, h in enumerate(HOSTILE):
        out.append(h)
        if i < len(items):
            out.append(items[i])
    out.extend(items[len(HOSTILE):])
    return out


def hostile_body():
    # json.dumps cannot write a lone surrogate as UTF-8; keep it as an escape
    return json.dumps({"items": hostile_items(), "total_items": 3}).encode()


def test_hostile_collection(new_mount, tmp_path):
    m = new_mount(ttl=0.5)
    m.sim.set_raw(hostile_body())
    m.start()
    names = os.listdir(m.path)
    assert sorted(names) == sorted(GOOD)
    for g in GOOD:
        assert os.path.isdir(m.p(g))
    assert open(m.p("good-0", "state")).read() == "COMPLETED\n"  # the first of two
    st = m.status()
    assert int(st["skipped_items"]) == len(HOSTILE) - 1
    assert st["duplicate_ids"] == "1"
    assert "paging" in st["warning"]

    # whole-tree tools complete and never leave the mount
    for cmd in ["find . -print0 | xargs -0 -n1 realpath -s --",
                "tar -cf - . | cat >/dev/null", "grep -r . . >/dev/null", "ls -lR >/dev/null",
                "du -s . >/dev/null"]:
        r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=m.path,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (cmd, r.stderr)
        if cmd.startswith("find"):
            for p in r.stdout.splitlines():
                assert p == m.path or p.startswith(m.path + "/"), p
            assert len(r.stdout.splitlines()) == 1 + len(GOOD) * 5
    for bad in ["..", "../escape", "a", "/abs"]:
        assert not os.path.exists(os.path.join(m.path, bad, "state"))
    assert m.proc.poll() is None
    # one warning line for the odd answer, not more
    err = m.stderr()
    assert err.count("skipped") == 1 and err.count("paging") == 1, err
    m.wait_refreshes(int(st["refreshes"]) + 2)
    assert m.stderr() == err  # not repeated on every refresh


def test_long_values_and_odd_types(new_mount):
    m = new_mount(ttl=0.5)
    big = "".join(chr(0x41 + i % 26) for i in range(100 * 1024))
    m.sim.set_raw(json.dumps({"items": [
        {"id": "big", "state": big, "operation": ["CREATE", 1], "timestamp": 1e400 and 17e8},
        {"id": "huge-ts", "timestamp": 123456789012345678901234567890},
        {"id": "neg-ts", "timestamp": -5},
        {"id": "frac-ts", "timestamp": 1664900951.25},
    ]}).replace("1700000000.0", "17e8").encode())
    m.start()
    with open(m.p("big", "state"), "rb") as f:
        data = f.read()
    assert data == (big + "\n").encode()
    assert os.stat(m.p("big", "state")).st_size == len(data)
    assert open(m.p("big", "operation")).read() == '["CREATE",1]\n'
    assert open(m.p("big", "timestamp")).read() == "17e8\n"
    assert open(m.p("huge-ts", "timestamp")).read() == "123456789012345678901234567890\n"
    assert os.stat(m.p("huge-ts")).st_mtime > 1e15  # clamped, not wrapped
    assert os.stat(m.p("neg-ts")).st_mtime == -5
    assert open(m.p("frac-ts", "timestamp")).read() == "1664900951.25\n"
    assert os.stat(m.p("frac-ts")).st_mtime == 1664900951
    r = subprocess.run("tar -cf - . | cat >/dev/null", shell=True, cwd=m.path,
                       capture_output=True, text=True)
    assert r.returncode == 0


def test_oversized_answer(new_mount):
    m = new_mount(ttl=0.3)
    m.start(opts="max_response=64K")
    assert sorted(os.listdir(m.path)) == sorted(t[0] for t in simctl.DEFAULT_TASKS)
    m.sim.generate(2000)  # about 500 KB
    assert wait_for(lambda: "larger than" in m.status()["last_error"], 10)
    assert len(os.listdir(m.path)) == 8  # the last good data
    m.sim.reset()
    assert wait_for(lambda: m.status()["last_error"] == "none", 10)


def test_oversized_answer_at_start(new_mount):
    m = new_mount()
    m.sim.generate(2000)
    r = subprocess.run(m.argv("max_response=64K"), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "larger than 65536 bytes" in r.stderr
    assert not is_mounted(m.path)


@pytest.mark.parametrize("text", [
    "user_id = a\r\napi_key = b\r\n", "\ufeffuser_id = a\napi_key = b\n",
    "user_id = 'a'\napi_key = b\n", "user_id = a\nuser_id = a\napi_key = b\n",
    "user_id =\napi_key = b\n", "user_id a\napi_key = b\n", "user_id = a\napi_key = " + "k" * 2000 + "\n",
])
def test_malformed_credentials_files(new_mount, text):
    m = new_mount()
    with open(m.creds, "w") as f:
        f.write(text)
    r = subprocess.run(m.argv(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "line" in r.stderr, r.stderr
    assert m.sim.requests() == 0
    assert not is_mounted(m.path)
