#!/usr/bin/python3
"""Local simulator of the Uplynk API collection used by ingestfs tests.

Serves GET /api/v4/managed-slicer/ingest-points/tasks (and the slicers/tasks
twin) with Uplynk-style request authentication, classic msg/sig or a
scoped key's ES256 token in X-Auth-Uplynk-Jwt (checked with Debian's
python3-cryptography, imported only when a scoped key is registered), plus
an unauthenticated control API under /_sim/ that lets tests change the
data, register scoped keys, move the clock, inject faults and read
statistics.

Usage:
    apisim.py --port-file PATH [--credentials FILE] [--tasks N] [--log FILE]

Standard library only, but for python3-cryptography for scoped keys.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INGEST_ROUTE = "/api/v4/managed-slicer/ingest-points/tasks"
SLICERS_ROUTE = "/api/v4/managed-slicer/slicers/tasks"
TASK_ROUTES = (INGEST_ROUTE, SLICERS_ROUTE)

DEFAULT_USER = "1234567890abcdefghijklmnopqrstu"
DEFAULT_KEY = "1234567890abcdefghijklmnopqrstuvwxyz1234"

TIMESTAMP_WINDOW = 300          # seconds either side of "now"
JWT_HEADER = "X-Auth-Uplynk-Jwt"
JWT_MAX_TTL = 300               # longest exp - iat a scoped token may ask for
# The scope the task collections need.  Uplynk's real scope names are not
# known here; this stands in for "may read ingest point tasks".
REQUIRED_SCOPE = "ingest-points:read"
MAX_MSG_INFLATED = 64 * 1024    # bound on the decompressed msg size
MAX_CONTROL_BODY = 1 << 30      # bound on control request bodies

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

GEN_STATES = ("COMPLETED", "IN_PROGRESS", "FAILED", "PENDING")
GEN_OPERATIONS = ("CREATE", "UPDATE", "DELETE")
GEN_BASE_TIMESTAMP = 1660000000

FAULT_KEYS = {"status", "body", "content_type", "delay", "hang", "count",
              "retry_after", "truncate", "rate"}


# --------------------------------------------------------------------------
# Data helpers

def task_item(task_id, state, operation, timestamp, route=INGEST_ROUTE):
    """One task item, keys in the API's order."""
    return {
        "@id": route + "/" + task_id,
        "@type": "ReservedEndpointTask",
        "id": task_id,
        "state": state,
        "operation": operation,
        "timestamp": timestamp,
    }


def default_items():
    return [task_item(*t) for t in DEFAULT_TASKS]


def generated_id(i):
    """Deterministic uuid-shaped id; the counter in the last group makes it
    unique."""
    h = hashlib.md5(b"ingestfs-sim-task-%d" % i).hexdigest()
    variant = "89ab"[int(h[16], 16) & 3]
    return "%s-%s-4%s-%s%s-%012x" % (h[0:8], h[8:12], h[13:16],
                                     variant, h[17:20], i)


def generate_items(count):
    items = []
    append = items.append
    prefix = INGEST_ROUTE + "/"
    for i in range(count):
        tid = generated_id(i)
        append({
            "@id": prefix + tid,
            "@type": "ReservedEndpointTask",
            "id": tid,
            "state": GEN_STATES[i % 4],
            "operation": GEN_OPERATIONS[i % 3],
            "timestamp": GEN_BASE_TIMESTAMP + i * 7,
        })
    return items


def encode_json(obj):
    """UTF-8 JSON; falls back to ASCII escapes if the data holds strings
    that cannot be encoded as UTF-8 (lone surrogates)."""
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj).encode("ascii")


def item_matches(item, wanted):
    if not isinstance(item, dict) or "id" not in item:
        return False
    value = item["id"]
    if isinstance(value, str):
        return value == wanted
    try:
        return json.dumps(value) == wanted
    except (TypeError, ValueError):
        return False


def adjust_item(item, route):
    """Rewrite the @id of an item for a route other than ingest-points."""
    if route == INGEST_ROUTE or not isinstance(item, dict):
        return item
    at_id = item.get("@id")
    prefix = INGEST_ROUTE + "/"
    if isinstance(at_id, str) and at_id.startswith(prefix):
        item = dict(item)
        item["@id"] = route + "/" + at_id[len(prefix):]
    return item


def error_body(status, code, title, detail):
    return encode_json({
        "@type": "Error",
        "code": code,
        "status_code": status,
        "title": title,
        "detail": detail,
    })


# --------------------------------------------------------------------------
# Authentication

def verify(query_msg, query_sig, user, key, now, window=TIMESTAMP_WINDOW):
    """Check an Uplynk msg/sig pair.

    query_msg / query_sig are the URL-decoded query values (None if absent).
    Returns (200, "ok") or (401|403, short reason).
    """
    if query_msg is None or query_msg == "":
        return 401, "missing msg parameter"
    if query_sig is None or query_sig == "":
        return 401, "missing sig parameter"
    if isinstance(key, str):
        key = key.encode("utf-8")
    try:
        msg_bytes = query_msg.encode("utf-8")
        sig_bytes = query_sig.encode("utf-8")
    except UnicodeEncodeError:
        return 401, "bad signature"
    expected = hmac.new(key, msg_bytes, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), sig_bytes):
        return 401, "bad signature"
    try:
        raw = base64.b64decode(msg_bytes, validate=True)
    except (binascii.Error, ValueError):
        return 401, "msg is not valid base64"
    try:
        inflater = zlib.decompressobj()
        text = inflater.decompress(raw, MAX_MSG_INFLATED)
        if inflater.unconsumed_tail:
            return 401, "msg too large"
        text += inflater.flush()
        if not inflater.eof:
            return 401, "msg is not complete zlib data"
    except zlib.error:
        return 401, "msg is not valid zlib data"
    try:
        payload = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return 401, "msg is not valid JSON"
    if not isinstance(payload, dict):
        return 401, "msg is not a JSON object"
    if payload.get("_owner") != user:
        return 403, "wrong owner"
    ts = payload.get("_timestamp")
    if isinstance(ts, bool) or not isinstance(ts, int):
        return 401, "missing or non-integer _timestamp"
    if abs(ts - int(now)) > window:
        return 401, "stale timestamp"
    return 200, "ok"


def b64url_decode(text):
    """Unpadded base64url, strictly: nothing but its alphabet."""
    if not isinstance(text, str) or len(text) % 4 == 1 or \
            text.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def verify_jwt(token, keys, now, required_scope, window=TIMESTAMP_WINDOW):
    """Check a scoped key's ES256 token, with our own reading of RFC 7515/7519.

    keys: kid -> {"sub", "public" (an EC public key), "scopes" (a set)}.
    Returns (200, "ok") or (401|403, short reason): 401 for a token that
    does not prove who sent it, 403 for one that does but may not read.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    parts = token.split(".")
    if len(parts) != 3:
        return 401, "token is not three dot-separated parts"
    try:
        header = json.loads(b64url_decode(parts[0]).decode("utf-8"))
        claims = json.loads(b64url_decode(parts[1]).decode("utf-8"))
        sig = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError):
        return 401, "token is not base64url JSON"
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return 401, "token header or claims are not JSON objects"
    if header.get("alg") != "ES256":
        return 401, "alg is not ES256"
    if header.get("typ") != "JWT":
        return 401, "typ is not JWT"
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        return 401, "unknown kid"
    if len(sig) != 64:
        return 401, "signature is not 64 bytes (r || s)"
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                               int.from_bytes(sig[32:], "big"))
    try:
        key["public"].verify(der, (parts[0] + "." + parts[1]).encode("ascii"),
                             ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return 401, "bad signature"
    if claims.get("sub") != key["sub"]:
        return 401, "sub is not the key's"
    iat, exp = claims.get("iat"), claims.get("exp")
    if not is_int(iat) or not is_int(exp):
        return 401, "missing or non-integer iat or exp"
    if abs(iat - int(now)) > window:
        return 401, "iat outside the window"
    if exp - iat > JWT_MAX_TTL:
        return 401, "lifetime over %d s" % JWT_MAX_TTL
    if exp <= int(now):
        return 401, "token expired"
    scp = claims.get("scp")
    if not isinstance(scp, list) or not all(isinstance(x, str) for x in scp):
        return 401, "scp is not a list of strings"
    if not set(scp) <= key["scopes"]:
        return 403, "token claims scopes the key does not have"
    if required_scope not in scp:
        return 403, "missing scope %s" % required_scope
    return 200, "ok"


def jwt_kid(token):
    """The kid a token names, for the statistics; None when unreadable."""
    try:
        kid = json.loads(b64url_decode(token.split(".")[0]).decode("utf-8")).get("kid")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return kid if isinstance(kid, str) else None


def load_public_key(pem):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ControlError(400, "public_pem is not a P-256 key")
    return key


def read_credentials(path):
    creds = {}
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            creds[k.strip()] = v
    if not creds.get("user_id") or not creds.get("api_key"):
        raise ValueError("credentials file needs user_id and api_key")
    return creds["user_id"], creds["api_key"]


# --------------------------------------------------------------------------
# Shared state

class ControlError(Exception):
    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Fault:
    def __init__(self, spec):
        self.status = spec.get("status")
        self.body = spec.get("body")
        self.content_type = spec.get("content_type")
        self.delay = spec.get("delay") or 0
        self.hang = bool(spec.get("hang", False))
        self.count = spec.get("count")
        self.retry_after = spec.get("retry_after")
        self.truncate = spec.get("truncate")
        self.rate = spec.get("rate")      # body bytes per second, steadily
        self.released = threading.Event()


def validate_fault(spec):
    if not isinstance(spec, dict):
        raise ControlError(400, "fault body must be a JSON object")
    unknown = set(spec) - FAULT_KEYS
    if unknown:
        raise ControlError(400, "unknown fault keys: %s" % sorted(unknown))

    status = spec.get("status")
    if status is not None and not (is_int(status) and 100 <= status <= 999):
        raise ControlError(400, "status must be an integer 100..999")
    if spec.get("body") is not None:
        if status is None:
            raise ControlError(400, "body requires status")
        if not isinstance(spec["body"], str):
            raise ControlError(400, "body must be a string")
    ct = spec.get("content_type")
    if ct is not None and not isinstance(ct, str):
        raise ControlError(400, "content_type must be a string")
    delay = spec.get("delay")
    if delay is not None and (isinstance(delay, bool)
                              or not isinstance(delay, (int, float))
                              or delay < 0):
        raise ControlError(400, "delay must be a non-negative number")
    if spec.get("hang") not in (None, True, False):
        raise ControlError(400, "hang must be a boolean")
    count = spec.get("count")
    if count is not None and not (is_int(count) and count >= 1):
        raise ControlError(400, "count must be a positive integer or null")
    ra = spec.get("retry_after")
    if ra is not None and not (isinstance(ra, str) or is_int(ra)):
        raise ControlError(400, "retry_after must be a string or integer")
    tr = spec.get("truncate")
    if tr is not None and not (is_int(tr) and tr >= 0):
        raise ControlError(400, "truncate must be a non-negative integer")
    rate = spec.get("rate")
    if rate is not None and not (is_int(rate) and rate >= 1):
        raise ControlError(400, "rate must be a positive integer (bytes/s)")


class SimState:
    def __init__(self, user, key, base_count=None):
        self.user = user
        self.key = key
        self.base_count = base_count
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.hanging = []          # Fault objects whose hangers await release
        self.reset()

    def _base_items(self):
        if self.base_count is None:
            return default_items()
        return generate_items(self.base_count)

    # All methods below with a leading "l_" must be called with the lock held.

    def reset(self):
        items = self._base_items()
        with self.lock:
            self.items = items
            self.total_override = None
            self.raw = None
            self._clear_fault_locked()
            self.requests = 0
            self.ok = 0
            self.auth_failures = 0
            self.faults = 0
            self.last_auth_error = None
            self.last_auth_kind = None
            self.last_kid = None
            self.last_user_agent = None
            self.last_query_keys = []
            self.max_skew = TIMESTAMP_WINDOW
            self.clock_offset = 0
            self.scoped_keys = {}
            self.required_scope = REQUIRED_SCOPE
            self._invalidate()

    def _invalidate(self):
        self.cache = {}

    def _clear_fault_locked(self):
        old = getattr(self, "fault", None)
        if old is not None:
            old.released.set()
        for f in self.hanging:
            f.released.set()
        self.hanging = []
        self.fault = None

    def clear_fault(self):
        with self.lock:
            self._clear_fault_locked()

    def set_fault(self, spec):
        validate_fault(spec)
        with self.lock:
            if self.fault is not None:
                # Requests hanging on the previous fault stay hung until a
                # clear or reset.
                self.hanging.append(self.fault)
            self.fault = Fault(spec)

    def take_fault(self):
        with self.lock:
            f = self.fault
            if f is None:
                return None
            self.faults += 1
            if f.count is not None:
                f.count -= 1
                if f.count <= 0:
                    self.hanging.append(f)
                    self.fault = None
            return f

    def collection_body(self, route):
        with self.lock:
            if self.raw is not None:
                return self.raw
            body = self.cache.get(route)
            if body is None:
                items = self.items
                if route != INGEST_ROUTE:
                    items = [adjust_item(it, route) for it in items]
                total = self.total_override
                if total is None:
                    total = len(items)
                body = encode_json({
                    "@id": route,
                    "@type": "Collection",
                    "items": items,
                    "total_items": total,
                })
                self.cache[route] = body
            return body, "application/json"

    def find_item_body(self, route, item_id):
        with self.lock:
            for it in self.items:
                if item_matches(it, item_id):
                    return encode_json(adjust_item(it, route))
        return None

    def now(self):
        """The simulator's clock: the machine's, moved by clock_offset."""
        return time.time() + self.clock_offset

    def add_scoped_key(self, spec):
        if not isinstance(spec, dict):
            raise ControlError(400, "a scoped key is an object")
        kid, sub, pem, scopes = (spec.get(k) for k in ("kid", "sub", "public_pem", "scopes"))
        if not (isinstance(kid, str) and kid and isinstance(sub, str) and sub
                and isinstance(pem, str) and isinstance(scopes, list)
                and all(isinstance(x, str) for x in scopes)):
            raise ControlError(400, "need kid, sub, public_pem and a list of scopes")
        key = {"sub": sub, "public": load_public_key(pem), "scopes": set(scopes)}
        with self.lock:
            self.scoped_keys[kid] = key

    def stats(self):
        with self.lock:
            return {
                "requests": self.requests,
                "ok": self.ok,
                "auth_failures": self.auth_failures,
                "faults": self.faults,
                "last_auth_error": self.last_auth_error,
                "last_auth_kind": self.last_auth_kind,
                "last_kid": self.last_kid,
                "last_user_agent": self.last_user_agent,
                "last_query_keys": list(self.last_query_keys),
            }

    def _index_of(self, item_id):
        for i, it in enumerate(self.items):
            if item_matches(it, item_id):
                return i
        raise ControlError(404, "no item with id %r" % item_id)

    def set_items(self, items):
        if not isinstance(items, list):
            raise ControlError(400, "items body must be a JSON array")
        with self.lock:
            self.items = items
            self._invalidate()

    def get_items(self):
        with self.lock:
            return encode_json(self.items)

    def patch_item(self, item_id, changes):
        if not isinstance(changes, dict):
            raise ControlError(400, "patch body must be a JSON object")
        deletes = changes.get("$delete", [])
        if not isinstance(deletes, list) or \
                not all(isinstance(k, str) for k in deletes):
            raise ControlError(400, "$delete must be a list of key names")
        with self.lock:
            item = self.items[self._index_of(item_id)]
            for k, v in changes.items():
                if k != "$delete":
                    item[k] = v
            for k in deletes:
                item.pop(k, None)
            self._invalidate()
            return encode_json(item)

    def delete_item(self, item_id):
        with self.lock:
            del self.items[self._index_of(item_id)]
            self._invalidate()

    def add_item(self, item):
        with self.lock:
            self.items.append(item)
            self._invalidate()

    def generate(self, spec):
        count = spec.get("count") if isinstance(spec, dict) else None
        if isinstance(count, bool) or not isinstance(count, int) or \
                not 0 <= count <= 10_000_000:
            raise ControlError(400, 'body must be {"count": N}, 0 <= N <= 1e7')
        items = generate_items(count)
        with self.lock:
            self.items = items
            self._invalidate()

    def set_total(self, value):
        with self.lock:
            self.total_override = value
            self._invalidate()

    def set_raw(self, data, content_type):
        with self.lock:
            self.raw = (data, content_type)

    def clear_raw(self):
        with self.lock:
            self.raw = None


# --------------------------------------------------------------------------
# HTTP handler

class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "apisim/1.0"
    sys_version = ""

    # set on the class by main()
    state = None
    log_file = None
    log_lock = threading.Lock()

    def log_message(self, format, *args):  # noqa: A002 - silence stderr
        pass

    def date_time_string(self, timestamp=None):
        """The Date header, from the simulator's clock (see clock_offset)."""
        return super().date_time_string(self.state.now() if timestamp is None else timestamp)

    def log_error(self, format, *args):  # noqa: A002
        pass

    # ---- plumbing

    def _split_path(self):
        target = self.path
        if target.startswith("/"):
            path, _, query = target.partition("?")
        else:
            parts = urllib.parse.urlsplit(target)
            path, query = parts.path or "/", parts.query
        return path, query

    def _log(self, path, status):
        self._logged = True
        if self.log_file is None:
            return
        line = "%s %s %s\n" % (self.command, path, status)
        with self.log_lock:
            try:
                self.log_file.write(line)
                self.log_file.flush()
            except (OSError, ValueError):
                pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise ControlError(400, "chunked request bodies not supported")
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise ControlError(400, "bad Content-Length")
        if n < 0 or n > MAX_CONTROL_BODY:
            self.close_connection = True
            raise ControlError(400, "bad Content-Length")
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                self.close_connection = True
                raise ControlError(400, "short request body")
            data += chunk
        return data

    def _send(self, status, body, content_type="application/json",
              headers=(), truncate=None, rate=None, log_status=None):
        """Send one answer.  Its log line is written before its body, so a
        client that has read the answer always finds the line."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if truncate is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self._log(self._path, log_status if log_status is not None else status)
        if self.command != "HEAD":
            data = body if truncate is None else body[:truncate]
            if rate is None:
                self.wfile.write(data)
            else:
                self._write_slowly(data, rate)
        self.wfile.flush()
        if truncate is not None:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _write_slowly(self, data, rate):
        """data at rate bytes/s, in ten pieces a second, from the start."""
        step = max(1, rate // 10)
        t0 = time.monotonic()
        for i in range(0, len(data), step):
            wait = t0 + i / rate - time.monotonic()
            if wait > 0 and self.state.stopping.wait(wait):
                return
            self.wfile.write(data[i:i + step])
            self.wfile.flush()

    def _dispatch(self):
        path, query = self._split_path()
        self._path = path
        self._logged = False
        try:
            if path == "/_sim" or path.startswith("/_sim/"):
                status = self._control(path)
            else:
                status = self._api(path, query)
        except (ConnectionError, socket.timeout, TimeoutError):
            self.close_connection = True
            status = "-"
        if not self._logged:  # nothing was sent: a hang or a lost peer
            self._log(path, status)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch
    do_HEAD = do_OPTIONS = _dispatch

    # ---- control routes

    def _json_body(self):
        data = self._read_body()
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ControlError(400, "invalid JSON body: %s" % e)

    def _control(self, path):
        st = self.state
        m = self.command
        try:
            result = self._control_route(st, m, path)
            if result is None:
                body = encode_json({"ok": True})
            elif isinstance(result, bytes):
                body = result
            else:
                body = encode_json(result)
            self._send(200, body)
            return 200
        except ControlError as e:
            status, detail = e.status, e.detail
        except (ConnectionError, socket.timeout, TimeoutError):
            raise
        except Exception as e:  # never let a control error kill anything
            status, detail = 400, "%s: %s" % (type(e).__name__, e)
        titles = {400: "Bad Request", 404: "Not Found",
                  405: "Method Not Allowed"}
        codes = {400: "bad_request", 404: "not_found",
                 405: "method_not_allowed"}
        self._send(status, error_body(status, codes.get(status, "error"),
                                      titles.get(status, "Error"), detail))
        return status

    def _control_route(self, st, m, path):
        def need(*methods):
            if m not in methods:
                self._read_body()
                raise ControlError(405, "method %s not allowed on %s"
                                   % (m, path))

        if path == "/_sim/stats":
            need("GET")
            return st.stats()
        if path == "/_sim/reset":
            need("POST")
            self._read_body()
            st.reset()
            return None
        if path == "/_sim/items":
            need("GET", "PUT", "POST")
            if m == "GET":
                return st.get_items()
            body = self._json_body()
            if m == "PUT":
                st.set_items(body)
            else:
                st.add_item(body)
            return None
        if path.startswith("/_sim/items/"):
            need("PATCH", "DELETE", "GET")
            item_id = urllib.parse.unquote(path[len("/_sim/items/"):])
            if m == "PATCH":
                return st.patch_item(item_id, self._json_body())
            self._read_body()
            if m == "DELETE":
                st.delete_item(item_id)
                return None
            body = st.find_item_body(INGEST_ROUTE, item_id)
            if body is None:
                raise ControlError(404, "no item with id %r" % item_id)
            return body
        if path == "/_sim/generate":
            need("POST")
            st.generate(self._json_body())
            return None
        if path == "/_sim/total_items":
            need("PUT")
            st.set_total(self._json_body())
            return None
        if path == "/_sim/raw":
            need("PUT", "DELETE")
            data = self._read_body()
            if m == "PUT":
                if self.headers.get("X-Sim-No-Content-Type"):
                    ctype = None
                else:
                    ctype = self.headers.get("X-Sim-Content-Type",
                                             "application/json")
                st.set_raw(data, ctype)
            else:
                st.clear_raw()
            return None
        if path == "/_sim/max_skew":
            need("PUT")
            v = self._json_body()
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ControlError(400, "max_skew must be a non-negative integer")
            with st.lock:
                st.max_skew = v
            return None
        if path == "/_sim/scoped_keys":
            need("POST", "DELETE")
            if m == "POST":
                st.add_scoped_key(self._json_body())
            else:
                self._read_body()
                with st.lock:
                    st.scoped_keys = {}
            return None
        if path == "/_sim/clock_offset":
            need("PUT")
            v = self._json_body()
            if not is_int(v):
                raise ControlError(400, "clock_offset must be an integer")
            with st.lock:
                st.clock_offset = v
            return None
        if path == "/_sim/required_scope":
            need("PUT")
            v = self._json_body()
            if not isinstance(v, str) or not v:
                raise ControlError(400, "required_scope must be a string")
            with st.lock:
                st.required_scope = v
            return None
        if path == "/_sim/fault":
            need("POST", "DELETE")
            if m == "POST":
                st.set_fault(self._json_body())
            else:
                self._read_body()
                st.clear_fault()
            return None
        self._read_body()
        raise ControlError(404, "unknown control route %s" % path)

    # ---- API routes

    def _api(self, path, query):
        st = self.state
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        with st.lock:
            st.requests += 1
            st.last_user_agent = self.headers.get("User-Agent")
            st.last_query_keys = sorted(k for k, _ in pairs)

        # Request bodies are never used; drain them to keep the connection
        # in sync.
        try:
            self._read_body()
        except ControlError:
            self.close_connection = True

        fault = st.take_fault()
        truncate = None
        if fault is not None:
            if fault.delay:
                st.stopping.wait(fault.delay)
            if fault.hang:
                while not (fault.released.is_set() or st.stopping.is_set()):
                    fault.released.wait(0.2)
                self.close_connection = True
                return "-"
            truncate = fault.truncate
            if fault.status is not None:
                body = fault.body
                if body is None:
                    body = ("simulated fault %d\n" % fault.status
                            if fault.status >= 400 else "")
                ctype = fault.content_type or "text/plain; charset=utf-8"
                headers = []
                if fault.retry_after is not None:
                    headers.append(("Retry-After", str(fault.retry_after)))
                self._send(fault.status, body.encode("utf-8"), ctype,
                           headers, truncate, fault.rate)
                return fault.status

        status, body, ctype, headers = self._api_answer(path, pairs)
        if status == 200 and truncate is None:
            # counted before the answer goes out: a client that has it
            # must find it counted
            with st.lock:
                st.ok += 1
        logged = status if truncate is None else "%s-truncated" % status
        self._send(status, body, ctype, headers, truncate,
                   fault.rate if fault is not None else None, logged)
        return logged

    def _api_answer(self, path, pairs):
        st = self.state
        if self.command != "GET":
            return (405, error_body(405, "method_not_allowed",
                                    "Method Not Allowed",
                                    "only GET is supported"),
                    "application/json", [("Allow", "GET")])

        values = {}
        for k, v in pairs:
            values.setdefault(k, []).append(v)
        msgs = values.get("msg", [])
        sigs = values.get("sig", [])
        tokens = self.headers.get_all(JWT_HEADER) or []
        with st.lock:
            keys, now = dict(st.scoped_keys), st.now()
            skew, scope = st.max_skew, st.required_scope
        if tokens and (msgs or sigs):
            kind, (status, reason) = "both", (401, "both a token and msg/sig")
        elif len(tokens) > 1:
            kind, (status, reason) = "scoped", (401, "more than one token")
        elif tokens:
            kind = "scoped"
            status, reason = verify_jwt(tokens[0], keys, now, scope, skew)
        elif len(msgs) > 1 or len(sigs) > 1:
            kind, (status, reason) = "classic", (401, "duplicate msg or sig parameter")
        else:
            kind = "classic"
            status, reason = verify(msgs[0] if msgs else None,
                                    sigs[0] if sigs else None,
                                    st.user, st.key, now, skew)
        with st.lock:
            st.last_auth_kind = kind
            st.last_kid = jwt_kid(tokens[0]) if len(tokens) == 1 else None
        if status != 200:
            with st.lock:
                st.auth_failures += 1
                st.last_auth_error = reason
            if status == 403:
                body = error_body(403, "forbidden", "Forbidden", reason)
            else:
                body = error_body(401, "unauthorized", "Unauthorized", reason)
            return status, body, "application/json", []

        for route in TASK_ROUTES:
            if path == route:
                body, ctype = st.collection_body(route)
                return 200, body, ctype, []
            if path.startswith(route + "/"):
                item_id = urllib.parse.unquote(path[len(route) + 1:])
                body = st.find_item_body(route, item_id)
                if body is None:
                    break
                return 200, body, "application/json", []
        return (404, error_body(404, "not_found", "Not Found",
                                "no such resource"),
                "application/json", [])


# --------------------------------------------------------------------------
# Main

def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--credentials")
    ap.add_argument("--tasks", type=int)
    ap.add_argument("--log")
    args = ap.parse_args(argv)

    if args.tasks is not None and args.tasks < 0:
        ap.error("--tasks must be >= 0")
    if args.credentials:
        try:
            user, key = read_credentials(args.credentials)
        except (OSError, ValueError) as e:
            print("apisim: cannot read credentials: %s" % e, file=sys.stderr)
            return 2
    elif os.environ.get("UPLYNK_USER_ID") and os.environ.get("UPLYNK_API_KEY"):
        user = os.environ["UPLYNK_USER_ID"]
        key = os.environ["UPLYNK_API_KEY"]
    else:
        user, key = DEFAULT_USER, DEFAULT_KEY

    state = SimState(user, key, args.tasks)
    Handler.state = state
    if args.log:
        Handler.log_file = open(args.log, "a", encoding="utf-8")

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server = QuietServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    write_port_file(args.port_file, port)

    while not stop.wait(0.2):
        pass

    state.stopping.set()
    state.clear_fault()
    server.shutdown()
    server.server_close()
    if Handler.log_file is not None:
        Handler.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
