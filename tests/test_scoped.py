# SPDX-License-Identifier: MIT
"""Scoped API keys (ES256 tokens in X-Auth-Uplynk-Jwt) end to end, and
ingestfs --check, against the simulator, which checks tokens with its own
implementation (apisim.verify_jwt, python3-cryptography)."""
import base64
import os
import re
import signal
import subprocess

import pytest

import simctl
from conftest import BIN, ROOT, clean_env, is_mounted, run_ingestfs, wait_for
from test_harden import count_in_memory, open_dir  # noqa: F401 - a fixture

TASK_IDS = sorted(t[0] for t in simctl.DEFAULT_TASKS)


@pytest.fixture
def key(sim):
    """A scoped key the simulator knows, with the scope the tasks need."""
    k = simctl.ScopedKey()
    sim.add_scoped_key(k)
    return k


def use_env(m, key, **kw):
    """Make the mount's credentials file the key's .env file, as downloaded."""
    key.write_env(m.creds, **kw)


def start_fails(m, opts=None, env=None):
    r = subprocess.run(m.argv(opts), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env=env or clean_env(), timeout=60)
    assert not is_mounted(m.path)
    return r


def check(m, *opts, env=None):
    """ingestfs --check with the mount's options, no mount point."""
    o = "api_url=%s,credentials=%s" % (m.sim.url, m.creds)
    if opts:
        o += "," + ",".join(opts)
    return run_ingestfs(["--check", "-o", o], env=env)


def no_secret(text, key):
    """Neither the base64 nor the PEM text of the private key, nor a piece of them."""
    pem = base64.b64decode(key.private_b64).decode()
    body = "".join(pem.splitlines()[1:-1])
    for piece in (key.private_b64[40:72], body[40:72]):
        assert piece not in text


def test_scoped_env_file_mounts_the_tree(new_mount, key):
    """The .env file unchanged, its ROOT_URL naming the API: no api_url needed."""
    m = new_mount()
    use_env(m, key, root_url=m.sim.url + "/ignored/path")
    argv = [BIN, "-f", "-o", "ttl=0.5,credentials=%s,state_dir=%s" % (m.creds, m.state), m.path]
    m._err = open(m.stderr_path, "ab")
    m.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=m._err, stderr=m._err,
                              env=clean_env())
    assert wait_for(lambda: is_mounted(m.path) or m.proc.poll() is not None, 15), m.stderr()
    assert is_mounted(m.path), m.stderr()
    assert sorted(os.listdir(m.path)) == TASK_IDS
    with open(m.p(TASK_IDS[0], "state")) as f:
        assert f.read().strip() == "COMPLETED"
    st = m.sim.stats()
    assert st["last_auth_kind"] == "scoped" and st["last_kid"] == key.kid
    assert st["auth_failures"] == 0
    status = m.status()
    assert status["auth"] == "scoped"
    assert status["kid"] == key.kid
    assert status["scopes"] == simctl.REQUIRED_SCOPE
    assert status["api_url"] == m.sim.url  # ROOT_URL's origin
    # every refresh signs anew and is taken
    m.wait_refreshes(4)
    assert m.sim.stats()["auth_failures"] == 0
    # the key is in no file of the mount, nor in the log
    text = ""
    for dirpath, _, files in os.walk(m.path):
        for name in files + ([".status", ".events"] if dirpath == m.path else []):
            with open(os.path.join(dirpath, name), errors="replace") as f:
                text += f.read()
    no_secret(text + m.stderr(), key)


def test_classic_key_says_so(mount):
    status = mount.status()
    assert status["auth"] == "classic"
    assert status["kid"] == "none" and status["scopes"] == "none"
    assert mount.sim.stats()["last_auth_kind"] == "classic"


def test_scoped_key_from_the_environment(new_mount, key):
    m = new_mount()
    os.unlink(m.creds)
    m.start(env=clean_env(UPLYNK_KID=key.kid, UPLYNK_SUB=key.sub,
                          UPLYNK_PRIVATE_B64=key.private_b64, UPLYNK_SCP=",".join(key.scopes)))
    assert sorted(os.listdir(m.path)) == TASK_IDS
    assert m.status()["auth"] == "scoped"
    with open("/proc/%d/environ" % m.proc.pid, "rb") as f:
        environ = f.read()
    assert b"UPLYNK_PRIVATE_B64" not in environ and key.private_b64[:40].encode() not in environ


def test_private_key_text_not_left_in_memory(open_dir, sim, key):  # noqa: F811
    """Once loaded, neither the base64 nor the PEM text of the key stays in
    the daemon's memory: the key lives on only inside OpenSSL."""
    binary = os.path.join(open_dir, "ingestfs")
    with open(BIN, "rb") as src, open(binary, "wb") as dst:
        dst.write(src.read())
    os.chmod(binary, 0o755)
    creds = key.write_env(os.path.join(open_dir, "key.env"))
    os.chown(creds, 65534, 65534)
    os.makedirs(os.path.join(open_dir, "mnt"))
    sim.fault(hang=True)  # keep the daemon in its first fetch, key loaded
    proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             binary, "-f", "-o",
                             "api_url=%s,state_dir=none,credentials=%s" % (sim.url, creds),
                             os.path.join(open_dir, "mnt")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())
    try:
        assert wait_for(lambda: sim.requests() >= 1, 10)
        pem = base64.b64decode(key.private_b64)
        body = b"".join(pem.splitlines()[1:-1])
        counts = {what: count_in_memory(proc.pid, needle) for what, needle in (
            ("PRIVATE_B64", key.private_b64[60:100].encode()),
            ("PEM", body[60:100]))}
        print("MEASURED copies of the key text in memory: %r" % counts)
        assert counts == {"PRIVATE_B64": 0, "PEM": 0}, counts
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 1, err


# ---- the three ways a scoped key is refused: exit 1, one line, no secret

def one_line_401(r, key):
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    no_secret(r.stderr, key)


def test_wrong_key_is_refused(new_mount, key):
    """The .env file's private key is not the one the API knows for its KID."""
    m = new_mount()
    other = simctl.ScopedKey(kid=key.kid, sub=key.sub)
    use_env(m, other)
    r = start_fails(m)
    one_line_401(r, other)
    assert "HTTP 401" in r.stderr and "scoped key %s" % key.kid in r.stderr, r.stderr
    assert m.sim.stats()["last_auth_error"] == "bad signature"


@pytest.mark.parametrize("offset,word", [(1000, "behind"), (-1000, "ahead of")])
def test_a_clock_off_by_more_than_the_token_lifetime(new_mount, key, offset, word):
    """The API's clock 1000 s from ours: the token is expired (or not yet
    valid) there, and the line says which clock is off, from the Date header."""
    m = new_mount()
    use_env(m, key)
    m.sim.set_clock_offset(offset)
    r = start_fails(m)
    one_line_401(r, key)
    assert "HTTP 401" in r.stderr
    assert re.search(r"clock is 100\d s %s the API's" % word, r.stderr), r.stderr
    assert m.sim.stats()["last_auth_error"] == "iat outside the window"


def test_a_clock_off_by_less_than_the_window_is_fine(new_mount, key):
    m = new_mount()
    use_env(m, key)
    m.sim.set_clock_offset(200)
    m.start()
    assert sorted(os.listdir(m.path)) == TASK_IDS


def test_missing_scope_is_forbidden(new_mount, sim):
    """A key without the scope the tasks need: 403, and the line names its scopes."""
    k = simctl.ScopedKey(scopes=["slicers:write", "other:read"])
    sim.add_scoped_key(k)
    m = new_mount()
    use_env(m, k)
    r = start_fails(m)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "HTTP 403" in r.stderr
    assert "scoped key %s has scopes slicers:write,other:read" % k.kid in r.stderr, r.stderr
    assert sim.stats()["last_auth_error"] == "missing scope %s" % simctl.REQUIRED_SCOPE


def test_claiming_a_scope_the_key_lacks_is_forbidden(new_mount, sim):
    k = simctl.ScopedKey(scopes=["other:read"])
    sim.add_scoped_key(k)
    m = new_mount()
    use_env(m, k, scopes=["other:read", simctl.REQUIRED_SCOPE])
    r = start_fails(m)
    assert r.returncode == 1 and "HTTP 403" in r.stderr and r.stderr.count("\n") == 1
    assert sim.stats()["last_auth_error"] == "token claims scopes the key does not have"


@pytest.mark.parametrize("text,why", [
    ("user_id = u\napi_key = k\nKID=a\nSUB=b\nPRIVATE_B64=x\nSCP=y\n", "both a classic key"),
    ("# empty\nNAME=my key\n", "holds no key"),
    ("KID=a\nSUB=b\nSCP=y\n", "no PRIVATE_B64 line"),
    ("KID=a\nSUB=b\nPRIVATE_B64=bm90IGEga2V5\nSCP=y\n", "line 3: PRIVATE_B64"),
    ("KID=a\nSUB=b\nPRIVATE_B64=KEY\nSCP=a,,b\n", "SCP is not a list"),
])
def test_bad_credentials_files_are_refused_before_any_request(new_mount, key, text, why):
    m = new_mount()
    with open(m.creds, "w") as f:
        f.write(text.replace("KEY", key.private_b64))
    r = start_fails(m)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert why in r.stderr and m.creds in r.stderr, r.stderr
    no_secret(r.stderr, key)
    assert m.sim.requests() == 0


# ---- ingestfs --check

def test_check_with_a_classic_key(new_mount):
    m = new_mount()
    r = check(m)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert re.fullmatch(r"ok: 8 tasks from %s \(classic key, \d+ ms\)\n" % re.escape(
        m.sim.tasks_url), out), out
    assert r.stderr == b""
    assert m.sim.requests() == 1
    assert not is_mounted(m.path)


def test_check_with_a_scoped_key(new_mount, key):
    m = new_mount()
    use_env(m, key)
    r = check(m)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert re.fullmatch(r"ok: 8 tasks from %s \(scoped key %s, \d+ ms\)\n" % (
        re.escape(m.sim.tasks_url), key.kid), out), out
    assert m.sim.stats()["last_auth_kind"] == "scoped" and m.sim.requests() == 1


def check_fails_like_the_mount(m, key=None, opts=None):
    """--check and a mount with the same options fail with the same one line."""
    r = check(m, *(opts or []))
    assert r.returncode == 1 and r.stdout == b"", r
    line = r.stderr.decode()
    assert line.count("\n") == 1 and line.startswith("ingestfs: "), line
    mount = start_fails(m, ",".join(opts or []) or None)
    assert mount.returncode == 1
    assert mount.stderr == line, (mount.stderr, line)
    if key:
        no_secret(line, key)
    return line


def test_check_wrong_key(new_mount, key):
    m = new_mount()
    use_env(m, simctl.ScopedKey(kid=key.kid, sub=key.sub))
    assert "HTTP 401" in check_fails_like_the_mount(m, key)


def test_check_clock(new_mount, key):
    m = new_mount()
    use_env(m, key)
    m.sim.set_clock_offset(-3600)
    assert re.search(r"clock is 3\d{3} s ahead of", check_fails_like_the_mount(m, key))


def test_check_missing_scope(new_mount, sim):
    k = simctl.ScopedKey(scopes=["other:read"])
    sim.add_scoped_key(k)
    m = new_mount()
    use_env(m, k)
    assert "HTTP 403" in check_fails_like_the_mount(m, k)


def test_check_classic_wrong_key(new_mount):
    m = new_mount()
    simctl.write_credentials(m.creds, m.sim.user, "not-the-key")
    line = check_fails_like_the_mount(m)
    assert "HTTP 401" in line and "not-the-key" not in line


def test_check_takes_and_checks_libfuse_options(new_mount):
    """An fstab line's libfuse options are checked too: a typo is refused
    like the mount refuses it, before any request; good ones are taken."""
    m = new_mount()
    r = check(m, "allow_other", "max_threads=4", "max_idle_threads=2")
    assert r.returncode == 0, r.stderr
    assert m.sim.requests() == 1
    r = check(m, "allow_othr")
    assert r.returncode == 2 and r.stdout == b"", r
    assert "unknown option" in r.stderr.decode() and "allow_othr" in r.stderr.decode(), r
    assert m.sim.requests() == 1
    mount = start_fails(m, "allow_othr")
    assert mount.returncode == 2 and mount.stderr == r.stderr.decode(), (mount, r)


def test_check_no_credentials(new_mount):
    m = new_mount()
    os.unlink(m.creds)
    assert "no credentials" in check_fails_like_the_mount(m)
    assert m.sim.requests() == 0


def test_check_api_down(new_mount):
    m = new_mount()
    m.sim.stop()
    assert "cannot load tasks" in check_fails_like_the_mount(m, opts=["timeout=2"])


def test_check_unusable_answer(new_mount):
    m = new_mount()
    m.sim.set_raw(b"<html>maintenance</html>", "text/html")
    assert "unusable answer" in check_fails_like_the_mount(m)


def test_check_refuses_plain_http_elsewhere(new_mount):
    m = new_mount()
    r = run_ingestfs(["--check", "-o", "api_url=http://example.com,credentials=" + m.creds])
    assert r.returncode == 2 and b"insecure_http" in r.stderr


def test_check_is_in_help_and_man_page():
    r = run_ingestfs(["--help"])
    assert b"--check" in r.stdout
    with open(os.path.join(ROOT, "man", "ingestfs.1")) as f:
        assert "\\-\\-check" in f.read()

