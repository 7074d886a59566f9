"""Helper for starting and steering the local API simulator (apisim.py).

    from simctl import Sim, make_item, sign

    with Sim(tmp_path) as sim:
        sim.set_items([make_item("a"), make_item("b", state="FAILED")])
        sim.fault(status=503, retry_after="7", count=1)
        ... run ingestfs against sim.url with sim.user / sim.key ...
        assert sim.requests() == 2

Standard library only, but for python3-cryptography for scoped keys.
"""

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

from apisim import read_credentials  # the simulator's own reader

HERE = os.path.dirname(os.path.abspath(__file__))
APISIM = os.path.join(HERE, "apisim.py")
PYTHON = "/usr/bin/python3"

INGEST_ROUTE = "/api/v4/managed-slicer/ingest-points/tasks"
SLICERS_ROUTE = "/api/v4/managed-slicer/slicers/tasks"

DEFAULT_USER = "1234567890abcdefghijklmnopqrstu"
DEFAULT_KEY = "1234567890abcdefghijklmnopqrstuvwxyz1234"

# (id, state, operation, timestamp) of the eight default tasks, in order.
DEFAULT_TASKS = (
    ("5eead8d6-79e3-4a3d-915e-a886199dfde0", "COMPLETED", "DELETE", 1664900951),
    ("7c401e2e-d53f-4b82-9ba2-f89cb00d245a", "COMPLETED", "CREATE", 1663974437),
    ("5e395271-b1d3-44c2-ab1b-a55b1d1b96e6", "COMPLETED", "CREATE", 1663976769),
    ("64242fbe-0bc3-47e4-ae5a-6a1461165421", "COMPLETED", "CREATE", 1664392131),
    ("c0b71aba-5799-4816-9fa3-271959be8d1a", "COMPLETED", "CREATE", 1664470813),
    ("d8454e1c-8b47-4a3b-8d57-e6875c39a220", "COMPLETED", "CREATE", 1664822066),
    ("5e80862f-7863-4482-89ad-796715b31547", "COMPLETED", "CREATE", 1664822095),
    ("49a72797-755b-4550-a384-ba78931431b2", "COMPLETED", "CREATE", 1664836080),
)

CONTROL_TIMEOUT = 10.0

_NO_DATA = object()

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SimError(RuntimeError):
    """A control call failed or the simulator could not start."""

    def __init__(self, message, status=None, body=None):
        super().__init__(message)
        self.status = status
        self.body = body


def make_item(id, state="COMPLETED", operation="CREATE",  # noqa: A002
              timestamp=1664900951, route=INGEST_ROUTE):
    """An item dict shaped like the simulator's default tasks."""
    return {
        "@id": route + "/" + str(id),
        "@type": "ReservedEndpointTask",
        "id": id,
        "state": state,
        "operation": operation,
        "timestamp": timestamp,
    }


def default_items(route=INGEST_ROUTE):
    return [make_item(*t, route=route) for t in DEFAULT_TASKS]


def sign(user, key, ts=None):
    """Client-side Uplynk signing: returns (msg, sig) for the query string.

    Uses zlib level 9 and json.dumps' default separators, which reproduces
    the known-answer vector byte for byte."""
    if ts is None:
        ts = int(time.time())
    payload = json.dumps({"_owner": user, "_timestamp": ts}).encode("utf-8")
    msg = base64.b64encode(zlib.compress(payload, 9)).decode("ascii")
    if isinstance(key, str):
        key = key.encode("utf-8")
    sig = hmac.new(key, msg.encode("ascii"), hashlib.sha256).hexdigest()
    return msg, sig


def signed_query(user, key, ts=None):
    msg, sig = sign(user, key, ts)
    return urllib.parse.urlencode({"msg": msg, "sig": sig})


def write_credentials(path, user, key):
    """Write a `key = value` credentials file readable only by the owner."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# apisim test credentials\nuser_id = %s\napi_key = %s\n"
                % (user, key))
    return path


REQUIRED_SCOPE = "ingest-points:read"  # what apisim.py asks of a scoped key


class ScopedKey:
    """A scoped API key as Uplynk hands it out: a P-256 key pair, and the
    .env file (KID, SUB, PRIVATE_B64, SCP) that holds its private half."""

    def __init__(self, kid="kid-1", sub="sub-1", scopes=(REQUIRED_SCOPE,)):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.kid, self.sub, self.scopes = kid, sub, list(scopes)
        self.private = ec.generate_private_key(ec.SECP256R1())
        pem = self.private.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        self.private_b64 = base64.b64encode(pem).decode("ascii")
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    def env_text(self, root_url=None, scopes=None):
        """The .env file's text, as downloaded."""
        text = "KID=%s\nSUB=%s\nPRIVATE_B64=%s\nSCP=%s\n" % (
            self.kid, self.sub, self.private_b64,
            ",".join(self.scopes if scopes is None else scopes))
        if root_url:
            text += "ROOT_URL=%s\n" % root_url
        return text

    def write_env(self, path, **kw):
        """Write the .env file readable only by the owner; returns its path."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.env_text(**kw))
        return os.fspath(path)


class Response:
    """Result of Sim.get(): status, headers (an email.message.Message-like
    object), raw body bytes; .json() decodes the body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %s %d bytes>" % (self.status, len(self.body))


class Sim:
    def __init__(self, tmpdir, credentials=None, tasks=None, env=None):
        """tmpdir: directory for the port file, log and stderr capture.
        credentials: None (default user/key pair, UPLYNK_* env ignored),
        a (user, key) tuple (written to a 0600 file in tmpdir), or the path
        of an existing `key = value` credentials file.
        tasks: None for the eight default tasks, or N generated tasks.
        env: extra environment for the simulator process."""
        self.tmpdir = os.fspath(tmpdir)
        self.tasks = tasks
        self.extra_env = dict(env or {})
        self.port_file = os.path.join(self.tmpdir, "apisim.port")
        self.log_path = os.path.join(self.tmpdir, "apisim.log")
        self.stderr_path = os.path.join(self.tmpdir, "apisim.stderr")
        self.cred_path = None
        if credentials is None:
            self.user, self.key = DEFAULT_USER, DEFAULT_KEY
        elif isinstance(credentials, (tuple, list)):
            self.user, self.key = credentials
            self.cred_path = os.path.join(self.tmpdir, "apisim.credentials")
        else:
            self.cred_path = os.fspath(credentials)
            try:
                self.user, self.key = read_credentials(self.cred_path)
            except ValueError:
                # the simulator refuses the file at start, in its own words
                self.user = self.key = None
        self._credentials = credentials
        self.proc = None
        self.port = None

    # ---- lifecycle

    def start(self):
        if self.proc is not None:
            raise SimError("simulator already started")
        os.makedirs(self.tmpdir, exist_ok=True)
        if isinstance(self._credentials, (tuple, list)):
            write_credentials(self.cred_path, self.user, self.key)
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        cmd = [PYTHON, APISIM, "--port-file", self.port_file,
               "--log", self.log_path]
        if self.cred_path:
            cmd += ["--credentials", self.cred_path]
        if self.tasks is not None:
            cmd += ["--tasks", str(int(self.tasks))]
        env = dict(os.environ)
        env.pop("UPLYNK_USER_ID", None)
        env.pop("UPLYNK_API_KEY", None)
        env.update(self.extra_env)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=err, env=env)
        deadline = time.monotonic() + 10.0
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise SimError("apisim exited with %s during startup:\n%s"
                               % (rc, self.stderr()))
            try:
                with open(self.port_file) as f:
                    text = f.read()
                if text.endswith("\n"):
                    self.port = int(text)
                    break
            except (FileNotFoundError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SimError("apisim did not write its port file within "
                               "10 s:\n%s" % self.stderr())
            time.sleep(0.02)
        return self

    def stop(self):
        """SIGTERM, wait up to 5 s, then SIGKILL. Returns the exit status
        (None if it was not running)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def url(self):
        if self.port is None:
            raise SimError("simulator not started")
        return "http://127.0.0.1:%d" % self.port

    @property
    def tasks_url(self):
        return self.url + INGEST_ROUTE

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        """Request log lines: 'METHOD PATH STATUS' ('-' = no response,
        'NNN-truncated' = truncated answer)."""
        try:
            with open(self.log_path, encoding="utf-8") as f:
                return f.read().splitlines()
        except OSError:
            return []

    # ---- control plumbing

    def _call(self, method, route, data=_NO_DATA, headers=None, raw=False):
        hdrs = dict(headers or {})
        body = None
        if data is not _NO_DATA:
            if raw:
                body = data
            else:
                body = json.dumps(data).encode("utf-8")
                hdrs.setdefault("Content-Type", "application/json")
        elif method in ("POST", "PUT", "PATCH"):
            body = b""
        req = urllib.request.Request(self.url + route, data=body,
                                     headers=hdrs, method=method)
        try:
            with _OPENER.open(req, timeout=CONTROL_TIMEOUT) as resp:
                out = resp.read()
        except urllib.error.HTTPError as e:
            err = e.read()
            raise SimError("%s %s -> %d: %s" % (method, route, e.code,
                                                err.decode("utf-8", "replace")),
                           status=e.code, body=err)
        return json.loads(out.decode("utf-8")) if out else None

    # ---- control routes

    def stats(self):
        return self._call("GET", "/_sim/stats")

    def requests(self):
        return self.stats()["requests"]

    def reset(self):
        self._call("POST", "/_sim/reset")

    def items(self):
        return self._call("GET", "/_sim/items")

    def item(self, id):  # noqa: A002
        return self._call("GET", "/_sim/items/" + _quote_id(id))

    def set_items(self, items):
        self._call("PUT", "/_sim/items", list(items))

    def patch(self, id, changes):  # noqa: A002
        """Merge changes into the first item whose id equals id; a key in
        the list changes["$delete"] is removed. Returns the new item."""
        return self._call("PATCH", "/_sim/items/" + _quote_id(id), changes)

    def delete(self, id):  # noqa: A002
        self._call("DELETE", "/_sim/items/" + _quote_id(id))

    def add(self, item):
        self._call("POST", "/_sim/items", item)

    def generate(self, n):
        self._call("POST", "/_sim/generate", {"count": int(n)})

    def set_total(self, n):
        """Override total_items (any JSON value); None = automatic."""
        self._call("PUT", "/_sim/total_items", n)

    def set_raw(self, data, content_type="application/json"):
        """Serve data (bytes or str) verbatim as the collection body;
        content_type=None sends no Content-Type header at all."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if content_type is None:
            headers = {"X-Sim-No-Content-Type": "1"}
        else:
            headers = {"X-Sim-Content-Type": content_type}
        self._call("PUT", "/_sim/raw", bytes(data), headers=headers, raw=True)

    def clear_raw(self):
        self._call("DELETE", "/_sim/raw")

    def fault(self, **kw):
        """status, body, content_type, delay, hang, count, retry_after,
        truncate, rate - see apisim.py."""
        self._call("POST", "/_sim/fault", kw)

    def set_max_skew(self, seconds):
        """Refuse msg timestamps further than this from the simulator's clock
        (the API allows 300 s; a small value catches a reused signature)."""
        self._call("PUT", "/_sim/max_skew", seconds)

    def clear_fault(self):
        self._call("DELETE", "/_sim/fault")

    def add_scoped_key(self, key, scopes=None):
        """Let the simulator know a ScopedKey (its public half), granted
        its own scopes or @scopes."""
        self._call("POST", "/_sim/scoped_keys", {
            "kid": key.kid, "sub": key.sub, "public_pem": key.public_pem,
            "scopes": list(key.scopes if scopes is None else scopes)})

    def set_clock_offset(self, seconds):
        """Move the simulator's clock (and its Date header) by seconds."""
        self._call("PUT", "/_sim/clock_offset", seconds)

    def set_required_scope(self, scope):
        self._call("PUT", "/_sim/required_scope", scope)

    # ---- API client helpers (for tests of the simulator itself)

    def get(self, path=INGEST_ROUTE, signed=True, ts=None, user=None,
            key=None, query=None, headers=None, timeout=CONTROL_TIMEOUT,
            method="GET"):
        """Request an API path; returns a Response (never raises on HTTP
        status). query: extra/override query string (str) appended."""
        parts = []
        if signed:
            parts.append(signed_query(user or self.user, key or self.key, ts))
        if query:
            parts.append(query)
        url = self.url + path + ("?" + "&".join(parts) if parts else "")
        req = urllib.request.Request(url, headers=dict(headers or {}),
                                     method=method)
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())


def _quote_id(id):  # noqa: A002
    if not isinstance(id, str):
        id = json.dumps(id)
    return urllib.parse.quote(id, safe="")


