"""Self-tests of the API simulator (tests/apisim.py) and its helper
(tests/simctl.py). Run: /usr/bin/python3 -m pytest tests/test_apisim.py"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import apisim  # noqa: E402
import simctl  # noqa: E402
from simctl import (DEFAULT_KEY, DEFAULT_TASKS, DEFAULT_USER,  # noqa: E402
                    INGEST_ROUTE, SLICERS_ROUTE, Sim, SimError, make_item,
                    sign)

VECTOR_NOW = 1700000000
VECTOR_MSG = ("eNqrVorPL89LLVKyUlAyNDI2MTUzt7A0SExKTklNS8/IzMrOyc3LLygsKi4pVd"
              "JRUIovycxNLS5JzC0AajA0N4CCWgAxdRY+")
VECTOR_SIG = "efc00f6953c10a881964ef3413a80652cfdc28e0bbe5044aaffc1d35ec19baa8"


@pytest.fixture
def sim(tmp_path):
    s = Sim(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def raw_get(sim, path, query="", timeout=10):
    """GET with http.client so truncated bodies can be observed."""
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=timeout)
    try:
        conn.request("GET", path + ("?" + query if query else ""))
        resp = conn.getresponse()
        try:
            body = resp.read()
            complete = True
        except http.client.IncompleteRead as e:
            body = e.partial
            complete = False
        return resp, body, complete
    finally:
        conn.close()


# ---------------------------------------------------------------- verify()

def test_known_vector_verifies():
    assert apisim.verify(VECTOR_MSG, VECTOR_SIG, DEFAULT_USER, DEFAULT_KEY,
                         VECTOR_NOW) == (200, "ok")
    # edges of the +-300 s window
    assert apisim.verify(VECTOR_MSG, VECTOR_SIG, DEFAULT_USER, DEFAULT_KEY,
                         VECTOR_NOW + 300)[0] == 200
    assert apisim.verify(VECTOR_MSG, VECTOR_SIG, DEFAULT_USER, DEFAULT_KEY,
                         VECTOR_NOW - 300)[0] == 200


def test_known_vector_stale():
    for now in (VECTOR_NOW + 301, VECTOR_NOW - 301):
        status, reason = apisim.verify(VECTOR_MSG, VECTOR_SIG, DEFAULT_USER,
                                       DEFAULT_KEY, now)
        assert status == 401
        assert "stale" in reason


def test_known_vector_flipped_sig():
    for i in (0, 31, 63):
        c = VECTOR_SIG[i]
        flipped = VECTOR_SIG[:i] + ("0" if c != "0" else "1") + \
            VECTOR_SIG[i + 1:]
        assert apisim.verify(VECTOR_MSG, flipped, DEFAULT_USER, DEFAULT_KEY,
                             VECTOR_NOW) == (401, "bad signature")
    # uppercase hex is not the lowercase hex the API expects
    assert apisim.verify(VECTOR_MSG, VECTOR_SIG.upper(), DEFAULT_USER,
                         DEFAULT_KEY, VECTOR_NOW)[0] == 401
    # wrong key
    assert apisim.verify(VECTOR_MSG, VECTOR_SIG, DEFAULT_USER,
                         DEFAULT_KEY[:-1] + "5", VECTOR_NOW)[0] == 401


def test_known_vector_other_owner_is_403():
    # The vector's owner is not the configured user.
    assert apisim.verify(VECTOR_MSG, VECTOR_SIG, "someoneelse", DEFAULT_KEY,
                         VECTOR_NOW)[0] == 403
    # A message signed with the right key but naming another owner.
    msg, sig = sign("someoneelse", DEFAULT_KEY, VECTOR_NOW)
    assert apisim.verify(msg, sig, DEFAULT_USER, DEFAULT_KEY,
                         VECTOR_NOW) == (403, "wrong owner")


def test_sign_reproduces_vector():
    assert sign(DEFAULT_USER, DEFAULT_KEY, VECTOR_NOW) == (VECTOR_MSG,
                                                           VECTOR_SIG)


def test_verify_rejects_malformed():
    def signed(msg):
        return msg, hmac.new(DEFAULT_KEY.encode(), msg.encode(),
                             hashlib.sha256).hexdigest()

    def enc(payload_bytes):
        return base64.b64encode(zlib.compress(payload_bytes)).decode()

    good = {"_owner": DEFAULT_USER, "_timestamp": VECTOR_NOW}
    padded = next(m for m in (enc(json.dumps(dict(good, pad=n)).encode())
                              for n in range(100)) if m.endswith("="))
    assert apisim.verify(*signed(padded), DEFAULT_USER, DEFAULT_KEY,
                         VECTOR_NOW) == (200, "ok")
    assert apisim.verify(None, VECTOR_SIG, DEFAULT_USER, DEFAULT_KEY,
                         VECTOR_NOW)[0] == 401
    assert apisim.verify(VECTOR_MSG, None, DEFAULT_USER, DEFAULT_KEY,
                         VECTOR_NOW)[0] == 401
    assert apisim.verify("", "", DEFAULT_USER, DEFAULT_KEY,
                         VECTOR_NOW)[0] == 401
    cases = [
        signed("not*base64"),
        signed(padded.rstrip("=")),            # missing padding
        signed(padded + "\n"),                 # stray character
        signed(base64.b64encode(b"plain").decode()),     # not zlib
        signed(enc(b"{not json")),
        signed(enc(b"[1, 2]")),
        signed(enc(json.dumps({"_owner": DEFAULT_USER}).encode())),
        signed(enc(json.dumps({"_owner": DEFAULT_USER,
                               "_timestamp": "1700000000"}).encode())),
        signed(enc(json.dumps({"_owner": DEFAULT_USER,
                               "_timestamp": True}).encode())),
        signed(enc(json.dumps({"_owner": DEFAULT_USER,
                               "_timestamp": 1700000000.0}).encode())),
    ]
    for msg, sig in cases:
        status, reason = apisim.verify(msg, sig, DEFAULT_USER, DEFAULT_KEY,
                                       VECTOR_NOW)
        assert status == 401, (msg, reason)
    # control: a well-formed message built the same way passes
    msg, sig = signed(enc(json.dumps({"_owner": DEFAULT_USER,
                                      "_timestamp": VECTOR_NOW}).encode()))
    assert apisim.verify(msg, sig, DEFAULT_USER, DEFAULT_KEY,
                         VECTOR_NOW) == (200, "ok")


# ---------------------------------------------------------------- API

def test_signed_get_default_tasks(sim):
    r = sim.get()
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json"
    doc = r.json()
    assert list(doc) == ["@id", "@type", "items", "total_items"]
    assert doc["@id"] == INGEST_ROUTE
    assert doc["@type"] == "Collection"
    assert doc["total_items"] == 8
    assert len(doc["items"]) == 8
    for item, (tid, state, op, ts) in zip(doc["items"], DEFAULT_TASKS):
        assert list(item) == ["@id", "@type", "id", "state", "operation",
                              "timestamp"]
        assert item == {
            "@id": INGEST_ROUTE + "/" + tid,
            "@type": "ReservedEndpointTask",
            "id": tid,
            "state": state,
            "operation": op,
            "timestamp": ts,
        }
        assert type(item["timestamp"]) is int
    assert doc["items"][0]["id"] == "5eead8d6-79e3-4a3d-915e-a886199dfde0"
    assert doc["items"][0]["operation"] == "DELETE"
    assert doc["items"] == simctl.default_items()


def test_unsigned_get_is_401(sim):
    r = sim.get(signed=False)
    assert r.status == 401
    err = r.json()
    assert err["@type"] == "Error"
    assert err["status_code"] == 401
    st = sim.stats()
    assert st["auth_failures"] == 1
    assert st["ok"] == 0
    assert "missing" in st["last_auth_error"]


def plus_msg(n):
    # a high-entropy pad varies the compressed bytes, so '+' turns up soon
    payload = {"_owner": DEFAULT_USER, "_timestamp": int(time.time()),
               "pad": hashlib.sha256(str(n).encode()).hexdigest()}
    return base64.b64encode(zlib.compress(json.dumps(payload).encode())) \
        .decode()


def test_live_auth_failures(sim):
    assert sim.get(ts=int(time.time()) - 1000).status == 401
    assert sim.stats()["last_auth_error"] == "stale timestamp"
    assert sim.get(key="x" * 40).status == 401
    assert sim.stats()["last_auth_error"] == "bad signature"
    r = sim.get(user="someoneelse")
    assert r.status == 403
    assert r.json()["code"] == "forbidden"
    # an unencoded '+' in msg turns into a space and breaks the signature
    msg = next(m for m in (plus_msg(n) for n in range(1000)) if "+" in m)
    sig = hmac.new(DEFAULT_KEY.encode(), msg.encode(),
                   hashlib.sha256).hexdigest()
    assert sim.get(signed=False,
                   query="msg=%s&sig=%s" % (msg, sig)).status == 401
    assert sim.get(signed=False, query=urllib.parse.urlencode(
        {"msg": msg, "sig": sig})).status == 200   # properly encoded: fine
    # duplicate parameters are rejected
    q = simctl.signed_query(DEFAULT_USER, DEFAULT_KEY)
    assert sim.get(signed=False, query=q + "&" + q).status == 401
    st = sim.stats()
    assert st["auth_failures"] == 5
    assert st["requests"] == 6 and st["ok"] == 1


def test_stats_count_requests(sim):
    st = sim.stats()
    assert st == {"requests": 0, "ok": 0, "auth_failures": 0, "faults": 0,
                  "last_auth_error": None, "last_auth_kind": None, "last_kid": None,
                  "last_user_agent": None, "last_query_keys": []}
    sim.get(headers={"User-Agent": "ingestfs/test"}, query="x=1")
    sim.get(signed=False)
    sim.get()
    sim.get(INGEST_ROUTE + "/nope")
    st = sim.stats()
    assert st["requests"] == 4
    assert sim.requests() == 4
    assert st["ok"] == 2
    assert st["auth_failures"] == 1
    assert st["last_query_keys"] == ["msg", "sig"]
    assert st["last_user_agent"].startswith("Python-urllib")
    sim.get(headers={"User-Agent": "ingestfs/test"}, query="x=1")
    st = sim.stats()
    assert st["last_user_agent"] == "ingestfs/test"
    assert st["last_query_keys"] == ["msg", "sig", "x"]
    # control calls are not counted
    sim.items()
    assert sim.requests() == 5
    sim.reset()
    assert sim.stats()["requests"] == 0


# ---- scoped keys: the verifier, tested with tokens made here, not by ingestfs

def make_token(key, header=None, claims=None, now=VECTOR_NOW, der=False, raw_sig=None):
    """An ES256 JWT by the book (RFC 7515), made with python3-cryptography."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    h = {"alg": "ES256", "kid": key.kid, "typ": "JWT"}
    h.update(header or {})
    c = {"sub": key.sub, "scp": key.scopes, "iat": now, "exp": now + 300}
    c.update(claims or {})
    head = b64(json.dumps(h).encode()) + "." + b64(json.dumps(c).encode())
    sig = key.private.sign(head.encode(), ec.ECDSA(hashes.SHA256()))
    if not der:
        r, s_ = decode_dss_signature(sig)
        sig = r.to_bytes(32, "big") + s_.to_bytes(32, "big")
    return head + "." + b64(raw_sig if raw_sig is not None else sig)


@pytest.fixture
def scoped():
    k = simctl.ScopedKey()
    return k, {k.kid: {"sub": k.sub, "public": apisim.load_public_key(k.public_pem),
                       "scopes": set(k.scopes)}}


def test_jwt_by_the_book_verifies(scoped):
    k, keys = scoped
    assert apisim.verify_jwt(make_token(k), keys, VECTOR_NOW, simctl.REQUIRED_SCOPE) == \
        (200, "ok")
    assert apisim.verify_jwt(make_token(k), keys, VECTOR_NOW + 299,
                             simctl.REQUIRED_SCOPE)[0] == 200


def test_jwt_refusals(scoped):
    k, keys = scoped
    other = simctl.ScopedKey(kid=k.kid, sub=k.sub)
    good = make_token(k)
    flipped = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    cases = {
        "alg is not ES256": make_token(k, header={"alg": "HS256"}),
        "typ is not JWT": make_token(k, header={"typ": "JOSE"}),
        "unknown kid": make_token(k, header={"kid": "nobody"}),
        "bad signature": make_token(other),
        "signature is not 64 bytes (r || s)": make_token(k, der=True),
        "sub is not the key's": make_token(k, claims={"sub": "someone"}),
        "iat outside the window": make_token(k, now=VECTOR_NOW - 301),
        "lifetime over 300 s": make_token(k, claims={"exp": VECTOR_NOW + 301}),
        "token expired": make_token(k, claims={"exp": VECTOR_NOW}),
        "missing or non-integer iat or exp": make_token(k, claims={"iat": str(VECTOR_NOW)}),
        "scp is not a list of strings": make_token(k, claims={"scp": "a,b"}),
        "token is not three dot-separated parts": good + ".x",
        "token is not base64url JSON": "e30." + good.split(".", 1)[1].replace("e", "+", 1),
    }
    for reason, token in cases.items():
        assert apisim.verify_jwt(token, keys, VECTOR_NOW, simctl.REQUIRED_SCOPE) == \
            (401, reason), reason
    status, _ = apisim.verify_jwt(flipped, keys, VECTOR_NOW, simctl.REQUIRED_SCOPE)
    assert status == 401
    # a token that proves who sent it but may not read: 403
    assert apisim.verify_jwt(make_token(k, claims={"scp": ["other"]}), keys, VECTOR_NOW,
                             simctl.REQUIRED_SCOPE) == (403, "token claims scopes the key "
                                                        "does not have")
    keys[k.kid]["scopes"] = {"other"}
    assert apisim.verify_jwt(make_token(k, claims={"scp": ["other"]}), keys, VECTOR_NOW,
                             simctl.REQUIRED_SCOPE) == (403, "missing scope %s"
                                                        % simctl.REQUIRED_SCOPE)


def test_jwt_over_http(sim):
    k = simctl.ScopedKey()
    sim.add_scoped_key(k)
    now = int(time.time())
    r = sim.get(signed=False, headers={apisim.JWT_HEADER: make_token(k, now=now)})
    assert r.status == 200 and len(r.json()["items"]) == len(DEFAULT_TASKS)
    st = sim.stats()
    assert st["last_auth_kind"] == "scoped" and st["last_kid"] == k.kid
    # a token and msg/sig at once
    r = sim.get(signed=True, headers={apisim.JWT_HEADER: make_token(k, now=now)})
    assert r.status == 401 and sim.stats()["last_auth_error"] == "both a token and msg/sig"
    # the clock moved: the same token is stale, and the Date header says when it is
    sim.set_clock_offset(1000)
    r = sim.get(signed=False, headers={apisim.JWT_HEADER: make_token(k, now=now)})
    assert r.status == 401 and r.json()["status_code"] == 401
    from email.utils import parsedate_to_datetime
    assert abs(parsedate_to_datetime(r.headers["Date"]).timestamp() - now - 1000) < 5
    sim.set_clock_offset(0)
    # a missing scope is 403 with an Uplynk error body
    sim.set_required_scope("other:read")
    r = sim.get(signed=False, headers={apisim.JWT_HEADER: make_token(k, now=now)})
    assert r.status == 403 and r.json()["@type"] == "Error"


def test_single_item_and_404(sim):
    tid = DEFAULT_TASKS[3][0]
    r = sim.get(INGEST_ROUTE + "/" + tid)
    assert r.status == 200
    assert r.json() == make_item(*DEFAULT_TASKS[3])
    r = sim.get(INGEST_ROUTE + "/does-not-exist")
    assert r.status == 404
    assert r.json()["status_code"] == 404
    assert sim.get("/api/v4/other").status == 404
    assert sim.get("/api/v4/other", signed=False).status == 401
    r = sim.get(method="POST")
    assert r.status == 405
    assert sim.get(method="DELETE").status == 405


def test_slicers_route(sim):
    r = sim.get(SLICERS_ROUTE)
    assert r.status == 200
    doc = r.json()
    assert doc["@id"] == SLICERS_ROUTE
    assert doc["total_items"] == 8
    assert [i["id"] for i in doc["items"]] == [t[0] for t in DEFAULT_TASKS]
    for item in doc["items"]:
        assert item["@id"] == SLICERS_ROUTE + "/" + item["id"]
    tid = DEFAULT_TASKS[1][0]
    r = sim.get(SLICERS_ROUTE + "/" + tid)
    assert r.status == 200
    assert r.json()["@id"] == SLICERS_ROUTE + "/" + tid
    assert sim.get(SLICERS_ROUTE).status == 200
    assert sim.get(SLICERS_ROUTE, signed=False).status == 401
    # the ingest route is unaffected
    assert sim.get().json()["items"][1]["@id"] == INGEST_ROUTE + "/" + tid


# ---------------------------------------------------------------- control

def test_set_items_verbatim(sim):
    hostile = [
        make_item("a"),
        "just a string",
        42,
        None,
        [1, 2],
        {"id": "../../etc/passwd", "state": "COMPLETED"},
        {"id": "x/y\nz\u00e9\u2603", "@type": "ReservedEndpointTask"},
        {"no_id": True},
        {"id": 7, "state": None, "timestamp": "yesterday"},
    ]
    sim.set_items(hostile)
    assert sim.items() == hostile
    doc = sim.get().json()
    assert doc["items"] == hostile
    assert doc["total_items"] == len(hostile)
    # a body that is UTF-8, not \u escapes
    assert "\u2603".encode() in sim.get().body
    sim.set_items([])
    doc = sim.get().json()
    assert doc["items"] == [] and doc["total_items"] == 0


def test_patch_delete_add(sim):
    first = DEFAULT_TASKS[0][0]
    new = sim.patch(first, {"state": "FAILED", "timestamp": None,
                            "extra": {"a": 1}})
    assert new["state"] == "FAILED"
    item = sim.get().json()["items"][0]
    assert item["state"] == "FAILED"
    assert item["timestamp"] is None
    assert item["extra"] == {"a": 1}
    assert list(item)[:6] == ["@id", "@type", "id", "state", "operation",
                              "timestamp"]

    sim.patch(first, {"$delete": ["state", "operation"]})
    item = sim.get().json()["items"][0]
    assert "state" not in item and "operation" not in item
    assert sim.item(first) == item

    sim.delete(DEFAULT_TASKS[2][0])
    ids = [i["id"] for i in sim.get().json()["items"]]
    assert DEFAULT_TASKS[2][0] not in ids
    assert len(ids) == 7

    sim.add(make_item("added-1", state="PENDING"))
    doc = sim.get().json()
    assert doc["items"][-1] == make_item("added-1", state="PENDING")
    assert doc["total_items"] == 8

    with pytest.raises(SimError) as ei:
        sim.patch("missing", {"state": "X"})
    assert ei.value.status == 404
    with pytest.raises(SimError) as ei:
        sim.delete("missing")
    assert ei.value.status == 404


def test_patch_hostile_ids(sim):
    sim.set_items([make_item("a/b c?d#e%f"), make_item(5), "str"])
    sim.patch("a/b c?d#e%f", {"state": "FAILED"})
    sim.patch(5, {"state": "PENDING"})
    items = sim.items()
    assert items[0]["state"] == "FAILED"
    assert items[1]["state"] == "PENDING"
    sim.delete("a/b c?d#e%f")
    assert len(sim.items()) == 2


def test_generate_and_reset(sim):
    sim.generate(10)
    items = sim.get().json()["items"]
    assert len(items) == 10
    assert len({i["id"] for i in items}) == 10
    assert {i["state"] for i in items} == {"COMPLETED", "IN_PROGRESS",
                                           "FAILED", "PENDING"}
    assert {i["operation"] for i in items} == {"CREATE", "UPDATE", "DELETE"}
    ts = [i["timestamp"] for i in items]
    assert ts == sorted(ts) and ts[0] == 1660000000
    for i in items:
        parts = i["id"].split("-")
        assert [len(p) for p in parts] == [8, 4, 4, 4, 12]
        assert list(i) == ["@id", "@type", "id", "state", "operation",
                           "timestamp"]
        assert i["@id"] == INGEST_ROUTE + "/" + i["id"]
    # deterministic
    sim.generate(10)
    assert sim.get().json()["items"] == items
    sim.generate(0)
    assert sim.get().json()["items"] == []
    sim.reset()
    assert sim.get().json()["items"] == simctl.default_items()


def test_total_items_override(sim):
    sim.set_total(1000)
    doc = sim.get().json()
    assert doc["total_items"] == 1000 and len(doc["items"]) == 8
    sim.set_total(3)
    assert sim.get().json()["total_items"] == 3
    sim.set_total(None)
    assert sim.get().json()["total_items"] == 8
    sim.set_total(1000)
    sim.reset()
    assert sim.get().json()["total_items"] == 8


def test_raw_body(sim):
    junk = b'{"items": [ \xff\x00 not json'
    sim.set_raw(junk, "text/html")
    r = sim.get()
    assert r.status == 200
    assert r.body == junk
    assert r.headers["Content-Type"] == "text/html"
    assert sim.get(SLICERS_ROUTE).body == junk
    # still authenticated
    assert sim.get(signed=False).status == 401
    sim.set_raw(b"{}", None)
    r = sim.get()
    assert r.body == b"{}" and r.headers.get("Content-Type") is None
    sim.clear_raw()
    r = sim.get()
    assert r.json()["total_items"] == 8
    assert r.headers["Content-Type"] == "application/json"


# ---------------------------------------------------------------- faults

def test_fault_503_retry_after_count_1(sim):
    sim.fault(status=503, retry_after="7", count=1)
    r = sim.get()
    assert r.status == 503
    assert r.headers["Retry-After"] == "7"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.body
    r = sim.get()
    assert r.status == 200
    assert r.json()["total_items"] == 8
    st = sim.stats()
    assert st["faults"] == 1 and st["requests"] == 2 and st["ok"] == 1


def test_fault_until_cleared_and_custom_body(sim):
    sim.fault(status=500, body="<html>oops</html>", content_type="text/html")
    for _ in range(3):
        r = sim.get()
        assert r.status == 500
        assert r.body == b"<html>oops</html>"
        assert r.headers["Content-Type"] == "text/html"
        assert r.headers.get("Retry-After") is None
    # faults apply before authentication
    assert sim.get(signed=False).status == 500
    sim.clear_fault()
    assert sim.get().status == 200
    assert sim.stats()["faults"] == 4


def test_fault_count_2(sim):
    sim.fault(status=429, count=2, retry_after=1)
    assert [sim.get().status for _ in range(3)] == [429, 429, 200]


def test_fault_delay(sim):
    sim.fault(delay=0.6, count=1)
    t0 = time.monotonic()
    r = sim.get()
    elapsed = time.monotonic() - t0
    assert r.status == 200 and r.json()["total_items"] == 8
    assert elapsed >= 0.55
    t0 = time.monotonic()
    assert sim.get().status == 200
    assert time.monotonic() - t0 < 0.55


def test_fault_truncate(sim):
    full = sim.get().body
    sim.fault(truncate=10, count=1)
    resp, body, complete = raw_get(
        sim, INGEST_ROUTE, simctl.signed_query(DEFAULT_USER, DEFAULT_KEY))
    assert resp.status == 200
    assert int(resp.getheader("Content-Length")) == len(full)
    assert not complete
    assert body == full[:10]
    # next request is whole again
    resp, body, complete = raw_get(
        sim, INGEST_ROUTE, simctl.signed_query(DEFAULT_USER, DEFAULT_KEY))
    assert complete and body == full
    assert sim.stats()["ok"] == 2   # the truncated answer is not "ok"


def test_fault_hang_released_by_clear(sim):
    sim.fault(hang=True)
    result = {}

    def client():
        try:
            result["resp"] = raw_get(
                sim, INGEST_ROUTE,
                simctl.signed_query(DEFAULT_USER, DEFAULT_KEY), timeout=20)
        except Exception as e:  # the expected outcome
            result["exc"] = e

    t = threading.Thread(target=client, daemon=True)
    t.start()
    time.sleep(0.8)
    assert t.is_alive(), "hanging request got an answer: %r" % result
    assert sim.stats()["faults"] == 1
    sim.clear_fault()
    t.join(10)
    assert not t.is_alive()
    assert "resp" not in result
    assert isinstance(result["exc"], (http.client.RemoteDisconnected,
                                      ConnectionError))
    assert sim.get().status == 200
    assert "GET %s -" % INGEST_ROUTE in sim.log_lines()


def test_fault_bad_spec_is_400(sim):
    for kw in ({"status": "x"}, {"bogus": 1}, {"count": 0},
               {"body": "no status"}, {"delay": -1}):
        with pytest.raises(SimError) as ei:
            sim.fault(**kw)
        assert ei.value.status == 400
    assert sim.get().status == 200


# ---------------------------------------------------------------- process

def test_control_errors_do_not_kill_server(sim):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for method, path, data in (("PUT", "/_sim/items", b"{not json"),
                               ("PUT", "/_sim/items", b'{"a": 1}'),
                               ("POST", "/_sim/generate", b'{"count": "x"}'),
                               ("PATCH", "/_sim/items/x", b"[1]"),
                               ("GET", "/_sim/nope", None)):
        req = urllib.request.Request(sim.url + path, data=data, method=method)
        with pytest.raises(urllib.error.HTTPError) as ei:
            opener.open(req, timeout=5)
        assert ei.value.code in (400, 404)
        assert json.loads(ei.value.read())["@type"] == "Error"
    assert sim.get().status == 200


def test_credentials_file_and_env(tmp_path):
    user, key = "u" * 31, "k" * 40
    s = Sim(tmp_path / "a", credentials=(user, key))
    s.start()
    try:
        assert s.user == user
        assert s.get().status == 200
        assert s.get(user=DEFAULT_USER, key=DEFAULT_KEY).status == 401
        with open(s.cred_path) as f:
            assert "api_key = " + key in f.read()
        assert oct(os.stat(s.cred_path).st_mode & 0o777) == "0o600"
    finally:
        s.stop()
    s = Sim(tmp_path / "b", env={"UPLYNK_USER_ID": user,
                                 "UPLYNK_API_KEY": key})
    s.start()
    try:
        assert s.get(user=user, key=key).status == 200
        assert s.get(user=DEFAULT_USER, key=DEFAULT_KEY).status == 401
    finally:
        s.stop()


def test_tasks_option_and_exit_status(tmp_path):
    s = Sim(tmp_path, tasks=50)
    s.start()
    try:
        with open(s.port_file) as f:
            assert f.read() == "%d\n" % s.port
        assert s.get().json()["total_items"] == 50
        s.set_items([])
        s.reset()
        assert len(s.get().json()["items"]) == 50
        proc = s.proc
    finally:
        rc = s.stop()
    assert rc == 0
    assert proc.returncode == 0


def test_start_failure_reports_stderr(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("# nothing here\n")
    s = Sim(tmp_path, credentials=str(bad))
    with pytest.raises(SimError) as ei:
        s.start()
    assert "credentials" in str(ei.value)
    assert s.stop() is None


def test_log_has_no_secrets(sim):
    sim.get(query="extra=1")
    sim.get(signed=False)
    sim.stats()
    msg, sig = sign(DEFAULT_USER, DEFAULT_KEY)
    sim.stop()
    with open(sim.log_path) as f:
        text = f.read()
    lines = text.splitlines()
    assert lines[0] == "GET %s 200" % INGEST_ROUTE
    assert lines[1] == "GET %s 401" % INGEST_ROUTE
    assert lines[2] == "GET /_sim/stats 200"
    for secret in (DEFAULT_KEY, "msg", "sig=", "?"):
        assert secret not in text
    assert sim.stderr() == ""


def test_generate_100k(sim):
    sim.generate(100000)
    doc = sim.get(timeout=60).json()
    assert doc["total_items"] == 100000
    assert len(doc["items"]) == 100000
    assert len({i["id"] for i in doc["items"]}) == 100000
