"""The application API through a real application: the key-value service of
conf/examples/kv, run both as a program of its own (kv-server: kv.c with
pfd_main) and as a module of the stock binary (kv.so); hooks, the shared
table and its robust lock across workers, handler faults, modules that
--check refuses, and the installed library built against with pkg-config."""

import collections
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import threading

import pytest

import conftest
from conftest import BIN, SOURCE_DIR, Reader, get, has_fault_handler, wait_until

BUILD = pathlib.Path(BIN).resolve().parent  # kv-server and kv.so are built beside preforkd
KV_SERVER = BUILD / "kv-server"
KV_SO = BUILD / "kv.so"
KV_CONF = SOURCE_DIR / "conf" / "examples" / "kv" / "kv.conf"

need_kv_server = pytest.mark.skipif(
    not KV_SERVER.exists(), reason=f"{KV_SERVER} is not built (the kv-server target of CMake)")
need_kv_so = pytest.mark.skipif(
    not KV_SO.exists(), reason=f"{KV_SO} is not built (the kv target of CMake)")

# Routes the tests add to kv.conf: the handler that holds the table's lock
# (kv.conf leaves it out), and the test build's fault handler.
HOLD_ROUTE = "\n[route = /kv/_hold]\nhandler = kv_hold\n"
FAULT_ROUTE = "\n[route /f]\nhandler = fault\n"
STATUS_ROUTE = "\n[route = /status]\nhandler = status\n"


def serving(srv):
    """Pids of the workers that serve, from the built-in status handler."""
    doc = json.loads(get(srv.port, "/status").body)
    return {w["pid"] for w in doc["workers"] if w["state"] == "serving"}


def kv_config(module=None, server="", routes=""):
    """kv.conf, with settings added to [server], routes added, and each kv
    route loading the module when one is given."""
    text = KV_CONF.read_text().replace("[server]\n", "[server]\n" + server, 1) + routes
    if module:
        text = re.sub(r"^(handler = kv_\w+.*)$", lambda m: f"{m.group(1)}\nmodule = {module}",
                      text, flags=re.M)
    return text


@pytest.fixture
def start(make_server):
    """start(binary, config, ...): make_server with another program than the
    stock preforkd (the harness runs conftest.BIN)."""
    def run(binary, config, **kw):
        saved = conftest.BIN
        conftest.BIN = str(binary)
        try:
            return make_server(config=config, **kw)
        finally:
            conftest.BIN = saved
    return run


def start_kv(start, how, routes="", server="", **kw):
    if how == "embedded":
        if not KV_SERVER.exists():
            pytest.skip(f"{KV_SERVER} is not built")
        return start(KV_SERVER, kv_config(server=server, routes=routes), **kw)
    if not KV_SO.exists():
        pytest.skip(f"{KV_SO} is not built")
    return start(BIN, kv_config(module=KV_SO, server=server, routes=routes), **kw)


@pytest.fixture(params=["embedded", "module"])
def kv(request, start):
    """The service on two workers: kv-server, or preforkd loading kv.so."""
    return start_kv(start, request.param, workers=2)


def raw_request(method, path, body=None, ctype="application/json", headers=()):
    lines = [f"{method} {path} HTTP/1.1", "Host: x"]
    if body is not None:
        body = body.encode() if isinstance(body, str) else body
        if ctype:
            lines.append(f"Content-Type: {ctype}")
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def value_body(value):
    return json.dumps({"value": value}, ensure_ascii=False)


class Conn:
    """One keep-alive connection to the server."""

    def __init__(self, srv):
        self.sock = srv.connect()
        self.rd = Reader(self.sock)

    def ask(self, method, path, body=None, **kw):
        self.sock.sendall(raw_request(method, path, body, **kw))
        return self.rd.response(head=method == "HEAD")

    def json(self, method, path, body=None, **kw):
        r = self.ask(method, path, body, **kw)
        assert r.header("content-type") == "application/json", r
        return r, json.loads(r.body)

    def stats(self):
        r, doc = self.json("GET", "/kv/_stats")
        assert r.status == 200, r
        return doc

    def close(self):
        self.sock.close()


def conns_on_workers(srv, pids=None, count=2, per_worker=1, limit=100):
    """Keep-alive connections, opened until `count` workers (or the workers
    `pids`) hold at least per_worker each: {pid: [Conn, ...]}. A worker is
    told by /kv/_stats on the connection. The connections that are opened
    stay open: a worker holding more steps back from accepting, so the
    others get the next ones."""
    by = collections.defaultdict(list)
    for _ in range(limit):
        c = Conn(srv)
        by[c.stats()["worker"]["pid"]].append(c)
        enough = lambda pids: all(len(by[p]) >= per_worker for p in pids)
        if enough(pids) if pids is not None else len(by) >= count and enough(list(by)):
            return by
    raise AssertionError(f"{limit} connections reached workers {sorted(by)} only")


def close_all(by):
    for cs in by.values():
        for c in cs:
            c.close()


# ---- CRUD --------------------------------------------------------------------


def test_crud_round_trip(kv):
    c = Conn(kv)
    r, doc = c.json("GET", "/kv")
    assert (r.status, doc) == (200, {"count": 0, "keys": []})

    r, doc = c.json("PUT", "/kv/greeting", value_body("hello"))
    assert (r.status, doc) == (201, {"key": "greeting", "created": True})
    assert r.header("location") == "/kv/greeting"
    r, doc = c.json("GET", "/kv/greeting")
    assert (r.status, doc) == (200, {"key": "greeting", "value": "hello"})
    head = c.ask("HEAD", "/kv/greeting")
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == str(len(r.body))

    r, doc = c.json("PUT", "/kv/greeting", value_body("hello again"))
    assert (r.status, doc) == (200, {"key": "greeting", "created": False})
    assert c.json("GET", "/kv/greeting")[1]["value"] == "hello again"

    r, doc = c.json("POST", "/kv/greeting", value_body("no"))
    assert r.status == 409 and doc == {"error": 'key "greeting" exists'}
    r, doc = c.json("POST", "/kv/gr.2_x-y", value_body("made"))
    assert (r.status, doc) == (201, {"key": "gr.2_x-y", "created": True})
    assert c.json("GET", "/kv/greeting")[1]["value"] == "hello again"  # POST changed nothing

    # every string the client sent comes back as it was: escapes, surrogate
    # pairs, raw UTF-8, control characters, NUL
    odd = 'quote " backslash \\ slash / tab \t nl \n nul \x00 \x01 \x7f é ☃ 😀'
    assert c.json("PUT", "/kv/odd", json.dumps({"value": odd}))[0].status == 201
    assert c.json("GET", "/kv/odd")[1]["value"] == odd
    assert c.json("PUT", "/kv/odd", value_body(odd))[0].status == 200  # raw UTF-8 this time
    assert c.json("GET", "/kv/odd")[1]["value"] == odd
    assert c.json("PUT", "/kv/empty", value_body(""))[0].status == 201
    assert c.json("GET", "/kv/empty")[1]["value"] == ""
    biggest = "x" * 4096
    assert c.json("PUT", "/kv/big", value_body(biggest))[0].status == 201
    assert c.json("GET", "/kv/big")[1]["value"] == biggest
    r, doc = c.json("PUT", "/kv/big", value_body("é" * 2048))  # 4096 bytes of UTF-8
    assert r.status == 200

    r, doc = c.json("GET", "/kv")
    assert doc == {"count": 5, "keys": ["big", "empty", "gr.2_x-y", "greeting", "odd"]}
    assert c.json("GET", "/kv?prefix=gr")[1] == {"count": 2, "keys": ["gr.2_x-y", "greeting"]}
    assert c.json("GET", "/kv?prefix=zz")[1] == {"count": 0, "keys": []}

    r = c.ask("DELETE", "/kv/greeting")
    assert r.status == 204 and r.body == b""
    r, doc = c.json("GET", "/kv/greeting")
    assert r.status == 404 and doc == {"error": 'no key "greeting"'}
    r, doc = c.json("DELETE", "/kv/greeting")
    assert r.status == 404 and doc == {"error": 'no key "greeting"'}
    assert c.json("GET", "/kv")[1]["count"] == 4
    c.close()


def test_every_worker_sees_the_same_table(kv):
    # a write on one worker is read on the other at once: one table
    by = conns_on_workers(kv, count=2)
    (a, [ca, *_]), (b, [cb, *_]) = list(by.items())[:2]
    assert ca.json("PUT", "/kv/shared", value_body(f"from {a}"))[0].status == 201
    assert cb.json("GET", "/kv/shared")[1]["value"] == f"from {a}"
    assert cb.json("PUT", "/kv/shared", value_body(f"from {b}"))[0].status == 200
    assert ca.json("GET", "/kv/shared")[1]["value"] == f"from {b}"
    assert cb.ask("DELETE", "/kv/shared").status == 204
    assert ca.json("GET", "/kv/shared")[0].status == 404
    close_all(by)


# (method, path, body, content type, status, what the error says)
INVALID = [
    ("GET", "/kv/" + "k" * 65, None, None, 400, "key: 65 bytes, not 1 to 64"),
    ("PUT", "/kv/a%20b", '{"value": "x"}', "application/json", 400, "key: byte 2 (0x20)"),
    ("GET", "/kv/a%FFb", None, None, 400, "key: byte 2 (0xff)"),
    ("GET", "/kv/a*b", None, None, 400, "key: '*' at byte 2 is not allowed"),
    ("PUT", "/kv/_x", '{"value": "x"}', "application/json", 400,
     "a key starts with a letter or a digit"),
    ("DELETE", "/kv/-x", None, None, 400, "a key starts with a letter or a digit"),
    ("PUT", "/kv/k", '{"value": "x"}', None, 415, "Content-Type: send application/json"),
    ("PUT", "/kv/k", '{"value": "x"}', "text/plain", 415, "Content-Type"),
    ("PUT", "/kv/k", '{"value": "x"}', "application/jsonp", 415, "Content-Type"),
    ("POST", "/kv/k", '{"value": "x"}', "application/json; charset=latin-1", 415,
     "Content-Type"),
    ("PUT", "/kv/k", "", "application/json", 400, 'no body: send {"value": "..."}'),
    ("PUT", "/kv/k", '{"value": "x"', "application/json", 400,
     "malformed JSON at byte 14: expected ',' or '}'"),
    ("PUT", "/kv/k", '{"value": "x",}', "application/json", 400,
     "malformed JSON at byte 15: expected a string"),
    ("PUT", "/kv/k", "{'value': 'x'}", "application/json", 400,
     "malformed JSON at byte 2: expected a string"),
    ("PUT", "/kv/k", '["x"]', "application/json", 400, "malformed JSON at byte 1: expected '{'"),
    ("PUT", "/kv/k", '{"value" "x"}', "application/json", 400, "expected ':'"),
    ("PUT", "/kv/k", '{"value": "x"} {}', "application/json", 400, "text after the object"),
    ("PUT", "/kv/k", '{"value": "a\x01"}', "application/json", 400, "a control character"),
    ("PUT", "/kv/k", '{"value": "\\q"}', "application/json", 400, "an unknown escape"),
    ("PUT", "/kv/k", '{"value": "\\u12"}', "application/json", 400, "four hex digits"),
    ("PUT", "/kv/k", '{"value": "\\ud800"}', "application/json", 400,
     "a high surrogate without a low one"),
    ("PUT", "/kv/k", '{"value": "\\udc00"}', "application/json", 400,
     "a low surrogate without a high one"),
    ("PUT", "/kv/k", b'{"value": "\xff"}', "application/json", 400, "not UTF-8"),
    ("PUT", "/kv/k", b'{"value": "\xc0\xaf"}', "application/json", 400, "not UTF-8"),  # overlong
    ("PUT", "/kv/k", b'{"value": "\xed\xa0\x80"}', "application/json", 400, "not UTF-8"),
    ("PUT", "/kv/k", '{"value": 1}', "application/json", 400, '"value" must be a string'),
    ("PUT", "/kv/k", '{"value": null}', "application/json", 400, '"value" must be a string'),
    ("PUT", "/kv/k", '{"valu": "x"}', "application/json", 400,
     'unknown member at byte 2: the body is {"value": "..."}'),
    ("PUT", "/kv/k", '{"value": "x", "ttl": 5}', "application/json", 400,
     "unknown member at byte 16"),
    ("PUT", "/kv/k", "{}", "application/json", 400, 'missing "value"'),
    ("PUT", "/kv/k", '{"value": "a", "value": "b"}', "application/json", 400,
     '"value" given twice'),
    ("PUT", "/kv/k", value_body("x" * 4097), "application/json", 413,
     "value: longer than 4096 bytes"),
    ("PUT", "/kv/k", '{"value": "' + "\\u0041" * 4097 + '"}', "application/json", 413,
     "value: longer than 4096 bytes"),
    ("PUT", "/kv/k", value_body("x") + " " * 30000, "application/json", 413,
     "body: longer than 24832 bytes"),
    ("GET", "/kv?prefix=a%2", None, None, 400, "prefix: a broken %-encoding"),
    ("GET", "/kv?prefix=_a", None, None, 400, "prefix: '_' at byte 1"),
    ("GET", "/kv/missing", None, None, 404, 'no key "missing"'),
    ("DELETE", "/kv/missing", None, None, 404, 'no key "missing"'),
]


def test_invalid_requests_get_clear_errors(kv):
    c = Conn(kv)
    for method, path, body, ctype, status, says in INVALID:
        r = c.ask(method, path, body, ctype=ctype)
        assert r.status == status, (method, path, body, r)
        assert r.header("content-type") == "application/json", (path, body, r)
        error = json.loads(r.body)["error"]
        assert says in error, (method, path, body, error)
    # nothing was written by any of them
    assert c.json("GET", "/kv")[1] == {"count": 0, "keys": []}
    assert c.json("PUT", "/kv/k", '{"value": "x"}', ctype="Application/JSON; charset=UTF-8")[
        0].status == 201
    c.close()


def test_methods_a_route_does_not_take_get_405_with_allow(kv):
    # answered from the route table (kv.conf's methods), before the handler
    c = Conn(kv)
    for method, path, allow in [("PATCH", "/kv/k", "GET, HEAD, POST, PUT, DELETE"),
                                ("POST", "/kv", "GET, HEAD"),
                                ("DELETE", "/kv/_stats", "GET, HEAD"),
                                ("GET", "/kv/_snapshot", "POST"),
                                ("PUT", "/kv/_digest", "GET, HEAD")]:
        r = c.ask(method, path, "{}" if method in ("PUT", "POST", "PATCH") else None)
        assert (r.status, r.header("allow")) == (405, allow), (method, path, r)
    c.close()


def test_a_body_beyond_max_body_size_is_the_servers_413(kv):
    r = get(kv.port, "/kv/k", method="PUT", body=b" " * (65 * 1024),
            headers=[("Content-Type", "application/json")])
    assert r.status == 413


@need_kv_server
def test_a_full_table_refuses_new_keys_but_replaces_old_ones(start):
    srv = start(KV_SERVER, kv_config(server="keepalive_requests = 100000\n"), workers=1)
    c = Conn(srv)
    batch = 64
    for first in range(0, 1024, batch):  # pipelined, a batch at a time
        c.sock.sendall(b"".join(raw_request("PUT", f"/kv/k{i}", value_body(str(i)))
                                for i in range(first, first + batch)))
        assert [c.rd.response().status for _ in range(batch)] == [201] * batch
    assert c.stats()["keys"] == 1024
    r, doc = c.json("PUT", "/kv/one-more", value_body("x"))
    assert r.status == 507 and doc == {"error": "the table is full (1024 keys)"}
    assert c.json("PUT", "/kv/k7", value_body("seven"))[0].status == 200  # the spare slot
    assert c.json("GET", "/kv/k7")[1]["value"] == "seven"
    assert c.ask("DELETE", "/kv/k0").status == 204
    assert c.json("POST", "/kv/one-more", value_body("x"))[0].status == 201
    assert c.json("GET", "/kv")[1]["count"] == 1024
    c.close()


# ---- the pool: pfd_async and a pool handler ------------------------------------


def canonical_digest(table):
    h = hashlib.sha256()
    for k, v in sorted((k.encode(), v.encode()) for k, v in table.items()):
        h.update(struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v)
    return h.hexdigest()


def test_digest_is_computed_on_the_pool(kv):
    c = Conn(kv)
    table = {"b": "two", "a": "one", "a0": "é😀", "z": "x" * 4096}
    for k, v in table.items():
        assert c.json("PUT", f"/kv/{k}", value_body(v))[0].status == 201
    r, doc = c.json("GET", "/kv/_digest")
    assert r.status == 200
    assert doc == {"sha256": canonical_digest(table), "keys": 4,
                   "bytes": sum(len(k.encode()) + len(v.encode()) for k, v in table.items())}
    table["b"] = "changed"
    c.json("PUT", "/kv/b", value_body("changed"))
    assert c.json("GET", "/kv/_digest")[1]["sha256"] == canonical_digest(table)
    c.close()


@need_kv_server
def test_snapshot_is_written_on_the_pool_and_loaded_at_the_next_start(start, tmp_path):
    table = {"a": "one", "quote": 'say "hi" \\ \n\t\x00\x1f', "uni": "é☃😀", "empty": ""}
    srv = start(KV_SERVER, kv_config(), workers=2, name="kv")
    c = Conn(srv)
    for k, v in table.items():
        assert c.json("PUT", f"/kv/{k}", value_body(v))[0].status == 201
    r, doc = c.json("POST", "/kv/_snapshot")
    snapshot = tmp_path / "kv" / "kv-snapshot.json"  # relative to the config's folder
    assert r.status == 200
    assert doc == {"file": str(snapshot), "keys": 4, "bytes": snapshot.stat().st_size}
    assert json.loads(snapshot.read_text()) == table
    assert sorted(p.name for p in snapshot.parent.iterdir() if "snapshot" in p.name) == [
        "kv-snapshot.json"]  # no temporary file left
    c.close()
    assert srv.stop() == 0

    srv = start(KV_SERVER, kv_config(), workers=2, name="kv")  # the same folder and config
    assert "kv: 4 keys loaded from " + str(snapshot) in srv.log()
    c = Conn(srv)
    assert c.json("GET", "/kv")[1] == {"count": 4, "keys": sorted(table)}
    for k, v in table.items():
        assert c.json("GET", f"/kv/{k}")[1]["value"] == v
    c.close()


@need_kv_server
def test_check_refuses_a_bad_snapshot_with_its_line(tmp_path):
    conf = tmp_path / "kv.conf"
    conf.write_text(kv_config())
    line = conf.read_text().splitlines().index(
        next(l for l in conf.read_text().splitlines() if l.startswith("snapshot = "))) + 1
    check = lambda: subprocess.run([str(KV_SERVER), "--config", str(conf), "--check"],
                                   capture_output=True, text=True)
    assert check().returncode == 0  # no snapshot yet: an empty table
    (tmp_path / "kv-snapshot.json").write_text('{"a": "one", "b": 2}')
    out = check()
    assert out.returncode == 2
    assert f"{conf}:{line}: [route /kv/_snapshot]: snapshot: {tmp_path}/kv-snapshot.json: " \
           f"malformed JSON at byte 19: expected a string" in out.stderr
    (tmp_path / "kv-snapshot.json").write_text('{"a": "one", "_b": "two"}')
    assert "at byte 14: key: '_' at byte 1" in check().stderr
    conf.write_text(kv_config().replace("snapshot = kv-snapshot.json",
                                        "snapshot = nowhere/kv.json"))
    out = check()
    assert out.returncode == 2
    assert f"{conf}:{line}: [route /kv/_snapshot]: snapshot: {tmp_path}/nowhere: no such folder" \
           in out.stderr


# ---- the shared counter and the lock across workers ------------------------------


@need_kv_server
def test_shared_counter_counts_every_request_of_two_workers(start):
    # 10,000 requests over keep-alive connections on both workers: the
    # counter in shared memory (atomic) counts each exactly once, and so
    # does the count of writes, which is a plain read-and-store made under
    # the robust lock: a lock that let two writers in would lose some
    total = 10_000
    srv = start(KV_SERVER, kv_config(server="keepalive_requests = 100000\n"), workers=2)
    by = conns_on_workers(srv, count=2, per_worker=2)
    conns = [(pid, c) for pid, cs in by.items() for c in cs]
    first = conns[0][1]
    before = first.stats()
    sent = collections.Counter()
    statuses = collections.Counter()
    lock = threading.Lock()

    def drive(tag, pid, c, n):
        done, seen = 0, collections.Counter()
        while done < n:
            batch = range(done, min(done + 25, n))  # pipelined, 25 at a time
            c.sock.sendall(b"".join(
                raw_request("PUT", f"/kv/c{tag}-{i // 2 % 16}", value_body(f"v{i}"))
                if i % 2 == 0 else raw_request("GET", f"/kv/c{tag}-{i // 2 % 16}")
                for i in batch))
            for _ in batch:
                seen[c.rd.response().status] += 1
            done += len(batch)
        with lock:
            sent[pid] += n
            statuses.update(seen)

    share = [total // len(conns) + (i < total % len(conns)) for i in range(len(conns))]
    threads = [threading.Thread(target=drive, args=(i, pid, c, share[i]))
               for i, (pid, c) in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(sent.values()) == total
    assert set(statuses) <= {200, 201} and sum(statuses.values()) == total, statuses

    after = first.stats()  # counts itself too
    assert after["requests"] - before["requests"] == total + 1
    puts = sum((n + 1) // 2 for n in share)
    assert after["writes"] - before["writes"] == puts
    per_worker = lambda doc: {w["pid"]: w["requests"] for w in doc["workers"]}
    b, a = per_worker(before), per_worker(after)
    for pid in by:
        assert a[pid] - b[pid] == sent[pid] + (pid == conns[0][0]), (pid, sent)
        assert sent[pid] > 0
    close_all(by)


def read_until(sock, buf, pattern, timeout=10):
    sock.settimeout(timeout * conftest.SLOW)
    while not (m := re.search(pattern, buf)):
        data = sock.recv(4096)
        assert data, f"closed before {pattern!r}: {buf!r}"
        buf += data
    return m


@need_kv_server
def test_a_worker_killed_holding_the_lock_leaves_it_to_the_next_locker(start):
    srv = start(KV_SERVER, kv_config(routes=HOLD_ROUTE + STATUS_ROUTE), workers=2)
    srv.expect_dirty = True  # the log reports the kill; sanitizers are checked below
    by = conns_on_workers(srv, count=2)
    (a, [ca, *_]), (b, [cb, *_]) = list(by.items())[:2]
    assert ca.json("PUT", "/kv/k", value_body("old"))[0].status == 201

    # a worker takes the lock and dies in the middle of replacing k: the
    # new value is half written in a spare slot
    ca.sock.sendall(raw_request("GET", "/kv/_hold?key=k&value=new-value-never-finished"))
    holder = int(read_until(ca.sock, b"", rb"holding the lock in worker (\d+)\n").group(1))
    assert holder == a
    # the other worker waits for the lock (its loop does: the lock is held
    # for a copy of one value, so inline handlers take it)
    cb.sock.sendall(raw_request("GET", "/kv/k"))
    os.kill(a, signal.SIGKILL)

    # the waiting worker gets the lock, repairs the table, and says so
    r = cb.rd.response()
    assert r.status == 200, r
    assert json.loads(r.body) == {"key": "k", "value": "old"}  # the old value, whole
    assert r.header("x-kv-recovered") == \
        "a worker died holding the lock; 1 half-done write(s) dropped"
    assert f"kv: a worker died holding the table's lock: repaired in worker {b} " \
           f"(1 half-done write(s) dropped, 1 keys)" in srv.log()
    # the server's line names the lock: its region and where in it
    assert re.search(r"the lock at offset \d+ of shared region kv was held by a process that "
                     r"died: recovered", srv.log())

    # the lock works as before, on the survivor and on the respawned worker
    wait_until(lambda: len(serving(srv) - {a}) == 2, what="the killed worker respawned, serving")
    [a2] = serving(srv) - {a, b}
    fresh = conns_on_workers(srv, pids=[a2])
    c2 = fresh[a2][0]
    r, doc = c2.json("GET", "/kv/k")
    assert (r.status, doc["value"], r.header("x-kv-recovered")) == (200, "old", None)
    assert c2.json("PUT", "/kv/k", value_body("newer"))[0].status == 200
    assert cb.json("GET", "/kv/k")[1]["value"] == "newer"
    assert cb.json("PUT", "/kv/k2", value_body("two"))[0].status == 201
    assert c2.json("GET", "/kv")[1] == {"count": 2, "keys": ["k", "k2"]}
    stats = cb.stats()
    assert (stats["recoveries"], stats["last_recovery_pid"], stats["last_recovery_dropped"],
            stats["keys"]) == (1, b, 1, 2)
    assert srv.log().count("repaired in worker") == 1

    close_all(by)
    close_all(fresh)
    assert srv.stop() == 0
    log = srv.log()
    assert f"(pid {a}) killed by signal 9" in log
    assert not re.search(r"AddressSanitizer|LeakSanitizer|runtime error:", log), log[-4000:]


@need_kv_server
def test_a_released_hold_rolls_its_half_write_back(start):
    # the same half-done write, but the holder lives: it undoes it
    srv = start(KV_SERVER, kv_config(routes=HOLD_ROUTE), workers=1)
    c = Conn(srv)
    assert c.json("PUT", "/kv/k", value_body("old"))[0].status == 201
    r = c.ask("GET", "/kv/_hold?key=k&value=new&ms=10")
    assert r.status == 200 and r.body.endswith(b"released\n")
    assert c.json("GET", "/kv/k")[1]["value"] == "old"
    assert c.stats()["recoveries"] == 0
    c.close()


# ---- hooks ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["embedded", "module"])
def test_hooks_run_once_per_worker_and_per_thread(start, how):
    srv = start_kv(start, how, workers=2, args=["--threads", "3"])
    c = Conn(srv)
    hooks = lambda: c.stats()["hooks"]
    # pool threads start beside the loop: their hook may come just after
    wait_until(lambda: hooks()["thread_init"] == 6, what="thread_init on 2 x 3 threads")
    assert hooks() == {"init": 1, "worker_init": 2, "worker_exit": 0, "thread_init": 6,
                       "thread_exit": 0}
    assert c.json("PUT", "/kv/kept", value_body("across reloads"))[0].status == 201
    c.close()

    # a reload: init again in the master (the module is loaded afresh), a
    # new generation of workers; the old one's exit hooks run as it stops.
    # The shared region, and the table in it, stay.
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "reload done" in srv.log(), what="the reload")
    want = {"init": 2, "worker_init": 4, "worker_exit": 2, "thread_init": 12, "thread_exit": 6}
    last = {}

    def settled():
        nonlocal last
        with Conn(srv).sock as s:
            s.sendall(raw_request("GET", "/kv/_stats"))
            last = json.loads(Reader(s).response().body)["hooks"]
        return last == want
    wait_until(settled, what=f"the hooks of the reload (last {last})")
    c = Conn(srv)
    assert c.json("GET", "/kv/kept")[1]["value"] == "across reloads"
    c.close()


# ---- faults ---------------------------------------------------------------------


@need_kv_server
def test_bad_handler_output_gets_500_and_a_log_line_naming_the_route(start):
    if not has_fault_handler():
        pytest.skip("the binary has no fault handler (configure with -DPREFORKD_FAULT_HANDLER=ON)")
    srv = start(KV_SERVER, kv_config(routes=FAULT_ROUTE), workers=1)
    r = get(srv.port, "/f?kind=header")  # a header value with CR LF: refused whole
    assert r.status == 500
    assert r.header("x-split") is None and r.header("set-cookie") is None
    assert b"not sent" not in r.body
    wait_until(lambda: "route /f: a header value with CR, LF, NUL or another control character: "
                       "the client gets 500" in srv.log(), what="the log line")
    r = get(srv.port, "/f?kind=error")  # the handler returns PFD_ERROR
    assert r.status == 500
    wait_until(lambda: "route /f: the handler returned an error: the client gets 500" in srv.log(),
               what="the log line")
    assert get(srv.port, "/kv").status == 200  # the app's routes go on


# ---- modules --check refuses -----------------------------------------------------

MODULES = {
    "nosymbol": "int kv_something_else = 1;\n",
    "otherapi": "#include <preforkd.h>\n"
                "static int h(pfd_req *r) { return pfd_text(r, 200, \"x\"); }\n"
                "static const pfd_handler hs[] = {{.name = \"x\", .handle = h}, {0}};\n"
                "const pfd_app preforkd_module = {.api_version = PFD_API_VERSION + 1,\n"
                "                                 .handlers = hs};\n",
    "undefined": "#include <preforkd.h>\n"
                 "int kv_not_defined_anywhere(void);\n"
                 "static int h(pfd_req *r) { return kv_not_defined_anywhere(); }\n"
                 "static const pfd_handler hs[] = {{.name = \"x\", .handle = h}, {0}};\n"
                 "const pfd_app preforkd_module = {.api_version = PFD_API_VERSION,\n"
                 "                                 .handlers = hs};\n",
    "nohandle": "#include <preforkd.h>\n"
                "static const pfd_handler hs[] = {{.name = \"x\"}, {0}};\n"
                "const pfd_app preforkd_module = {.api_version = PFD_API_VERSION,\n"
                "                                 .handlers = hs};\n",
}


def test_check_refuses_bad_modules_with_file_and_line(tmp_path):
    cc = shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler (cc)")
    for name, source in MODULES.items():
        (tmp_path / f"{name}.c").write_text(source)
        subprocess.run([cc, "-shared", "-fPIC", f"-I{SOURCE_DIR}/workers", "-o",
                        str(tmp_path / f"{name}.so"), str(tmp_path / f"{name}.c")], check=True)
    # the master runs a module's code as root: a file others may write is
    # refused, and so is a FIFO planted at the path (it must not hang --check)
    shutil.copy(tmp_path / "nohandle.so", tmp_path / "shared.so")
    os.chmod(tmp_path / "shared.so", 0o664)
    os.mkfifo(tmp_path / "fifo.so")
    cases = []
    if os.geteuid() == 0:  # a file another user could rewrite
        shutil.copy(tmp_path / "nohandle.so", tmp_path / "theirs.so")
        os.chown(tmp_path / "theirs.so", 65534, 65534)
        cases.append(("theirs.so", "module theirs.so: owned by uid 65534, neither root nor the "
                                   "server's user: not loaded"))
    cases += [
        ("nohandle.so", 'module nohandle.so: handler "x" has no handle function'),
        ("shared.so", "module shared.so: writable by others than its owner (mode 664)"),
        ("fifo.so", "module fifo.so: not a regular file"),
        ("missing.so", "module missing.so: No such file or directory"),
        ("nosymbol.so", "module nosymbol.so: no symbol preforkd_module (a const pfd_app)"),
        ("otherapi.so", "module otherapi.so: built against API version 2, this server has 1"),
        ("undefined.so", "undefined symbol: kv_not_defined_anywhere"),
    ]
    for module, says in cases:
        conf = tmp_path / "bad.conf"
        conf.write_text(f"[server]\nlisten = 127.0.0.1:0\n\n[route /m]\nhandler = x\n"
                        f"module = {module}\n")
        out = subprocess.run([BIN, "--config", str(conf), "--check"], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 2, (module, out)
        assert f"{conf}:6: [route /m]: " in out.stderr, (module, out.stderr)
        assert says.replace("module ", f"module {tmp_path}/", 1) in out.stderr, (module, out.stderr)


@need_kv_so
def test_check_accepts_the_kv_module(tmp_path):
    conf = tmp_path / "kv.conf"
    conf.write_text(kv_config(module=KV_SO))
    out = subprocess.run([BIN, "--config", str(conf), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    conf.write_text(kv_config(module=KV_SO).replace("handler = kv_item", "handler = kv_itme"))
    out = subprocess.run([BIN, "--config", str(conf), "--check"], capture_output=True, text=True)
    assert out.returncode == 2
    assert f'handler: module {KV_SO} has no handler "kv_itme"' in out.stderr


# ---- the installed library ---------------------------------------------------------

TINY = r"""
#include <preforkd.h>

static int hi(pfd_req *r) {
    return pfd_json(r, 200, "{\"hello\": \"from an installed libpreforkd\"}");
}

static const pfd_handler handlers[] = {{.name = "hi", .handle = hi}, {0}};
static const pfd_app app = {.api_version = PFD_API_VERSION, .name = "tiny", .handlers = handlers};

int main(int argc, char **argv) {
    return pfd_main(argc, argv, &app);
}
"""


def run(cmd, **kw):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{cmd}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


Installed = collections.namedtuple("Installed", "prefix pcdir cc cflags")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """cmake --install of PREFORKD_BIN's build tree into a fresh prefix.
    A program built against a sanitized library needs the sanitizers too:
    cc and cflags say how to compile one. When the tree has no libraries
    (scripts/valgrind's binary stands alone), a Release tree is configured
    and built from the sources instead."""
    for tool in ("cmake", "cc", "pkg-config", "ldd", "nm"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is missing")
    tmp = tmp_path_factory.mktemp("install")
    build = BUILD
    if not all((build / f).exists() for f in ("libpreforkd.a", "libpreforkd.so", "preforkd.pc")):
        build = tmp / "build"
        run(["cmake", "-S", SOURCE_DIR, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
             "-DPREFORKD_TESTS=OFF"])
        run(["cmake", "--build", build, "-j2"])
    cache = (build / "CMakeCache.txt").read_text()
    cc = re.search(r"^CMAKE_C_COMPILER:\w+=(.+)$", cache, re.M).group(1)
    sanitized = re.search(r"^PREFORKD_SANITIZE:BOOL=ON$", cache, re.M)
    prefix = tmp / "prefix"
    run(["cmake", "--install", build, "--prefix", prefix])
    [pc] = list(prefix.glob("**/pkgconfig/preforkd.pc"))
    return Installed(prefix, pc.parent, cc, ["-fsanitize=address,undefined"] if sanitized else [])


def test_a_program_builds_against_the_installed_library_with_pkg_config(installed, tmp_path,
                                                                         start):
    prefix, pcdir = installed.prefix, installed.pcdir
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcdir))
    flags = run(["pkg-config", "--cflags", "--libs", "--static", "preforkd"], env=env).split()
    (tmp_path / "tiny.c").write_text(TINY)
    run([installed.cc, "-o", tmp_path / "tiny", tmp_path / "tiny.c"] + flags + installed.cflags)
    libdir = pcdir.parent
    ldd = run(["ldd", tmp_path / "tiny"], env=dict(os.environ, LD_LIBRARY_PATH=str(libdir)))
    assert f"libpreforkd.so.0 => {libdir}/libpreforkd.so.0" in ldd
    exported = run(["nm", "-D", "--defined-only", libdir / "libpreforkd.so"]).splitlines()
    assert exported and not [l for l in exported if " pfd_" not in l], "only the API is exported"
    srv = start(tmp_path / "tiny", config="[route = /hi]\nhandler = hi\n", workers=1,
                env={"LD_LIBRARY_PATH": str(libdir)})
    r = get(srv.port, "/hi")
    assert (r.status, r.header("content-type")) == (200, "application/json")
    assert json.loads(r.body) == {"hello": "from an installed libpreforkd"}


def test_the_pkg_config_file_follows_the_install_prefix(installed):
    """Found while writing the example: the .pc file named the prefix of the
    configure step; it finds the prefix from its own place now."""
    prefix, pcdir = installed.prefix, installed.pcdir
    cflags = run(["pkg-config", "--cflags", "preforkd"], env=dict(os.environ,
                                                                   PKG_CONFIG_PATH=str(pcdir)))
    includes = [os.path.realpath(f[2:]) for f in cflags.split() if f.startswith("-I")]
    assert includes == [os.path.realpath(prefix / "include")], cflags
