#!/usr/bin/python3
"""The Python half of bench/peer.sh, the cron job a user would write instead
of mounting ingestfs: it signs the request, and it writes the fetched
collection to a folder the way ingestfs shows it.

    peer_sync.py sign CREDENTIALS     print the query string: msg=...&sig=...
    peer_sync.py write TARGET <ANSWER  make TARGET show ANSWER (stdin)

sign: the classic Uplynk scheme, as ingestfs signs: msg = base64 of the
zlib-compressed JSON {"_owner": USER, "_timestamp": NOW}, sig = the hex
HMAC-SHA256 of msg under the API key.  CREDENTIALS is the `key = value`
file ingestfs reads (user_id, api_key).

write: one folder per task id holding `state`, `operation`, `timestamp`
and `raw.json`, with the same bytes as ingestfs (a string value plus a
newline, any other value as its compact JSON plus a newline, no file for a
missing or null field; raw.json the item pretty-printed with two spaces,
plus a newline).  Every file goes in with write-to-temp-then-rename, so a
reader sees the old or the new content, never a part.  It writes only what
changed and removes the folders of tasks that are gone:

- The answer is kept beside the tree (TARGET.state/answer.json, written
  last, also through a temporary file).  A byte-identical answer changes
  nothing (ingestfs skips the parse then too).
- Otherwise both answers are parsed and compared task by task (json.loads
  and dict equality, both in C); a task whose item is the same is skipped
  without touching the disk.  For the others, raw.json is made and compared
  with the one on disk; each of the four files is written only if its
  content changed, raw.json last, so a run that is cut short redoes that
  task next time.  Without a saved answer (the first run, or after
  deleting it) every task is compared with the disk.
- Top-level entries of TARGET that are not tasks of the answer are removed.

It prints one line on stderr: `peer: tasks=N changed_tasks=C files=F
bytes=B removed=R answer=changed|unchanged` (B = bytes written to files).
Exit 0 on success; 1 on an answer that is not the expected JSON, which
changes nothing.  Standard library only, plus the signing of tests/simctl.py.
"""

import json
import os
import re
import shutil
import sys

# the signing and the credentials reader of the test simulator's client,
# rather than a third copy
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from apisim import read_credentials  # noqa: E402
from simctl import signed_query  # noqa: E402

FIELDS = ("state", "operation", "timestamp")
BAD_IN_NAME = re.compile("[\x00-\x1f\x7f/]")


# --------------------------------------------------------------------------
# sign

def sign(cred_path):
    print(signed_query(*read_credentials(cred_path)))
    return 0


# --------------------------------------------------------------------------
# write

def safe_name(tid):
    """An id that can be a folder name (ingestfs refuses a few more)."""
    if not isinstance(tid, str) or not tid or tid.startswith(".") or BAD_IN_NAME.search(tid):
        return False
    try:
        return len(tid.encode("utf-8")) <= 255
    except UnicodeEncodeError:  # a lone surrogate
        return False


def compact(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def pretty(item):
    """The item pretty-printed with two spaces, as ingestfs's raw.json.  A
    flat item (no nested object or array, the usual task) takes the C
    encoder with a separator that breaks the lines; json.dumps(indent=2)
    gives the same text but is several times slower."""
    if not item:
        return "{}\n"
    for v in item.values():
        if isinstance(v, (dict, list)):
            return json.dumps(item, ensure_ascii=False, indent=2) + "\n"
    text = json.dumps(item, ensure_ascii=False, separators=(",\n  ", ": "))
    return "{\n  " + text[1:-1] + "\n}\n"


class Writer:
    def __init__(self):
        self.files = 0
        self.bytes = 0

    def put(self, path, data):
        """Write @data to @path with a temporary file and rename(2)."""
        d, name = os.path.split(path)
        tmp = os.path.join(d, ".%s.tmp-%d" % (name, os.getpid()))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        self.files += 1
        self.bytes += len(data)


def read_or_none(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def index(items):
    """{id: item} of the items that get a folder; the first of an id wins."""
    out = {}
    for item in items:
        if isinstance(item, dict):
            tid = item.get("id")
            if tid not in out and safe_name(tid):
                out[tid] = item
    return out


def parse(body):
    doc = json.loads(body)
    items = doc["items"]
    if not isinstance(items, list):
        raise TypeError("items is not a list")
    return index(items)


def write(target):
    body = sys.stdin.buffer.read()
    state = target.rstrip("/") + ".state"
    os.makedirs(target, exist_ok=True)
    os.makedirs(state, exist_ok=True)
    last = os.path.join(state, "answer.json")
    old_body = read_or_none(last)
    if old_body == body:
        sys.stderr.write("peer: tasks=? changed_tasks=0 files=0 bytes=0 removed=0 "
                         "answer=unchanged\n")
        return 0
    try:
        tasks = parse(body)
    except (ValueError, KeyError, TypeError) as e:
        sys.stderr.write("peer: not the expected answer (%s); nothing changed\n" % e)
        return 1
    try:
        old = parse(old_body) if old_body is not None else {}
    except (ValueError, KeyError, TypeError):
        old = {}  # compare everything with the disk

    w = Writer()
    changed = 0
    for tid, item in tasks.items():
        if old.get(tid) == item:
            continue
        folder = os.path.join(target, tid)
        raw = pretty(item).encode("utf-8")
        old_raw = read_or_none(os.path.join(folder, "raw.json"))
        if old_raw == raw:
            continue
        changed += 1
        if old_raw is None:
            os.makedirs(folder, exist_ok=True)
        for name in FIELDS:
            path = os.path.join(folder, name)
            v = item.get(name)
            if v is None:
                if os.path.lexists(path):
                    os.unlink(path)
                continue
            data = ((v if isinstance(v, str) else compact(v)) + "\n").encode("utf-8")
            if old_raw is None or read_or_none(path) != data:
                w.put(path, data)
        w.put(os.path.join(folder, "raw.json"), raw)

    removed = 0
    with os.scandir(target) as it:
        gone = [e.path for e in it if e.name not in tasks]
    for path in gone:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        removed += 1

    w.put(last, body)
    sys.stderr.write("peer: tasks=%d changed_tasks=%d files=%d bytes=%d removed=%d "
                     "answer=changed\n" % (len(tasks), changed, w.files, w.bytes, removed))
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "sign":
        return sign(argv[2])
    if len(argv) == 3 and argv[1] == "write":
        return write(argv[2])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
