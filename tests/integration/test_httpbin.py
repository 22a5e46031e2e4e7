"""The httpbin handler (workers/httpbin.c) next to the real thing: Debian's
python3-httpbin under gunicorn on loopback and preforkd get the same
requests, and must give the same status, the same JSON keys and the same
values (what depends on the mount point, the time or chance is normalized).
Then what only preforkd does: delays that hold no thread, the seed, the
weights of /status, bad input refused with 4xx, a pool route."""

import base64
import gzip
import importlib.util
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib

import pytest

from conftest import SLOW, Reader, Server, get, wait_until

PREFIX = "/hb"  # where the comparison mounts the handler

CONFIG = """\
[server]
threads = 1
[route /hb/]
handler = httpbin
[route /p]
handler = httpbin
[route /pool/]
handler = httpbin
mode = pool
"""


def _have_reference():
    return (importlib.util.find_spec("httpbin") is not None
            and importlib.util.find_spec("gunicorn") is not None)


@pytest.fixture(scope="module")
def preforkd():
    """One preforkd for the whole file (stopped and checked clean at the end)."""
    tmp = pathlib.Path(tempfile.mkdtemp())
    try:
        srv = Server(tmp / "srv", config=CONFIG, workers=1)
        try:
            yield srv
        finally:
            srv.stop()
            srv.reap_group()
        srv.check_clean()
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def reference():
    """Debian's httpbin under gunicorn on an ephemeral loopback port."""
    if not _have_reference():
        pytest.skip("python3-httpbin or gunicorn is not installed (scripts/deps test installs "
                    "the Debian packages python3-httpbin and gunicorn)")
    tmp = pathlib.Path(tempfile.mkdtemp())
    log = open(tmp / "gunicorn.log", "wb")
    # gthread: a /delay must not hold up the other requests
    proc = subprocess.Popen([sys.executable if sys.executable.startswith("/usr/bin/") else
                             "/usr/bin/python3", "-m", "gunicorn", "-b", "127.0.0.1:0",
                             "--threads", "8", "--worker-tmp-dir", str(tmp),
                             "--error-logfile", "-", "httpbin:app"],
                            stdout=log, stderr=log, cwd=tmp, start_new_session=True)
    try:
        def port():
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)",
                          (tmp / "gunicorn.log").read_text(errors="replace"))
            if proc.poll() is not None:
                raise AssertionError("gunicorn exited:\n" + (tmp / "gunicorn.log").read_text())
            return int(m.group(1)) if m else None
        p = wait_until(port, timeout=30, what="gunicorn to listen")

        def booted():
            try:
                return get(p, "/get").status == 200
            except OSError:
                return False
        wait_until(booted, timeout=30, what="gunicorn's worker")
        yield p
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10 * SLOW)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the comparison ------------------------------------------------------------

MULTIPART = (b"--XyZ\r\n"
             b'Content-Disposition: form-data; name="field"\r\n\r\n'
             b"value 1\r\n"
             b"--XyZ\r\n"
             b'Content-Disposition: form-data; name="field"\r\n\r\n'
             b"value 2\r\n"
             b"--XyZ\r\n"
             b'Content-Disposition: form-data; name="text"; filename="a.txt"\r\n'
             b"Content-Type: text/plain\r\n\r\n"
             b"hello\nfile\r\n"
             b"--XyZ\r\n"
             b'Content-Disposition: form-data; name="bin"; filename="b.bin"\r\n'
             b"Content-Type: image/png\r\n\r\n"
             b"\x89PNG\xff\x00\r\n"
             b"--XyZ--\r\n")

FORM = [("Content-Type", "application/x-www-form-urlencoded")]
JSON_CT = [("Content-Type", "application/json")]
BASIC = [("Authorization", "Basic " + base64.b64encode(b"user:pa ss").decode())]

# (method, path, headers, body, what to compare beyond the status):
#   json: the parsed bodies; body: the bytes; none: the status alone;
#   lines: one JSON document a line; gzip/deflate: the JSON inside
CASES = [
    ("GET", "/get", [], b"", "json"),
    ("GET", "/get?a=1&a=2&b=x%20y+z&c&d=%C3%A9&e=%zz", [], b"", "json"),
    ("GET", "/get", [("X-Custom", "one"), ("x-lower-case", "two"), ("X-Dup", "a"),
                     ("X-Dup", "b"), ("User-Agent", "agent/1.0")], b"", "json"),
    ("GET", "/get", [("X-Forwarded-For", "192.0.2.7"), ("Via", "1.1 proxy")], b"", "json"),
    ("GET", "/get?show_env=1", [("X-Forwarded-For", "192.0.2.7"), ("X-Request-Id", "r1")], b"",
     "json"),
    ("GET", "/get", [("X-Forwarded-Proto", "https")], b"", "json"),
    ("HEAD", "/get", [], b"", "body"),
    ("POST", "/get", [], b"", "none"),
    ("OPTIONS", "/get", [("Origin", "http://example.com"),
                         ("Access-Control-Request-Headers", "X-Foo")], b"", "body"),
    ("POST", "/post", FORM, b"x=1&y=two+words&x=3&z=%E2%82%AC", "json"),
    ("POST", "/post", JSON_CT, b'{"a": [1, 2.5, {"b": null, "c": "\\u00e9"}], "t": true}', "json"),
    ("POST", "/post", JSON_CT, b'{"broken": ', "json"),
    ("POST", "/post", [("Content-Type", "application/octet-stream")], b"\x00\xff\xfe binary",
     "json"),
    ("POST", "/post", [("Content-Type", "text/plain")], "héllo wörld\n".encode(), "json"),
    ("POST", "/post", [("Content-Type", "multipart/form-data; boundary=XyZ")], MULTIPART, "json"),
    ("POST", "/post?q=1", [], b"", "json"),
    ("GET", "/post", [], b"", "none"),
    ("PUT", "/put", JSON_CT, b"[1, 2, 3]", "json"),
    ("PATCH", "/patch", FORM, b"a=b", "json"),
    ("DELETE", "/delete", [], b"", "json"),
    ("GET", "/anything", [], b"", "json"),
    ("TRACE", "/anything", [], b"", "json"),
    ("OPTIONS", "/anything/x", [], b"", "body"),
    ("POST", "/anything/a/b?x=1", FORM, b"k=v", "json"),
    ("PUT", "/anything/deep/er/path", JSON_CT, b'"just a string"', "json"),
    ("GET", "/headers", [("X-One", "1")], b"", "json"),
    ("GET", "/headers", [("X-Latin", "h\u00e9llo"), ("X-Tab", "a\tb")], b"", "json"),
    ("GET", "/ip", [], b"", "json"),
    ("GET", "/user-agent", [("User-Agent", "test-agent/2")], b"", "json"),
    ("GET", "/uuid", [], b"", "json"),
    ("GET", "/status/200", [], b"", "body"),
    ("GET", "/status/201", [], b"", "body"),
    ("POST", "/status/202", [], b"", "body"),
    ("GET", "/status/204", [], b"", "body"),
    ("GET", "/status/301", [], b"", "none"),
    ("GET", "/status/302", [], b"", "none"),
    ("GET", "/status/304", [], b"", "body"),
    ("GET", "/status/307", [], b"", "none"),
    ("GET", "/status/401", [], b"", "body"),
    ("GET", "/status/402", [], b"", "none"),
    ("GET", "/status/404", [], b"", "body"),
    ("GET", "/status/406", [], b"", "json"),
    ("GET", "/status/407", [], b"", "body"),
    ("GET", "/status/418", [], b"", "none"),
    ("GET", "/status/500", [], b"", "body"),
    ("GET", "/status/503", [], b"", "body"),
    ("GET", "/status/503:1,200:0", [], b"", "body"),
    ("GET", "/status/429,429", [], b"", "body"),
    ("GET", "/status/abc", [], b"", "none"),
    ("GET", "/status/200:x,500", [], b"", "none"),
    ("GET", "/delay/0", [], b"", "json"),
    ("GET", "/delay/0.2?a=b", [], b"", "json"),
    ("GET", "/bytes/0", [], b"", "body"),
    ("GET", "/stream/3?x=y", [], b"", "lines"),
    ("GET", "/stream/0", [], b"", "body"),
    ("GET", "/drip?duration=0&numbytes=5", [], b"", "body"),
    ("GET", "/drip?duration=0&numbytes=3&code=201", [], b"", "body"),
    ("GET", "/drip?numbytes=0", [], b"", "none"),
    ("GET", "/range/26", [], b"", "body"),
    ("GET", "/range/30", [("Range", "bytes=2-5")], b"", "body"),
    ("GET", "/range/30", [("Range", "bytes=-3")], b"", "body"),
    ("GET", "/range/30", [("Range", "bytes=28-")], b"", "body"),
    ("GET", "/range/30", [("Range", "bytes=0-29")], b"", "body"),
    ("GET", "/range/30", [("Range", "bytes=50-60")], b"", "body"),
    ("GET", "/range/30", [("Range", "items=1-2")], b"", "body"),
    ("GET", "/range/100?chunk_size=7", [("Range", "bytes=10-40")], b"", "body"),
    ("GET", "/range/0", [], b"", "body"),
    ("GET", "/range/102401", [], b"", "body"),
    ("GET", "/redirect/1", [], b"", "none"),
    ("GET", "/redirect/3", [], b"", "none"),
    ("GET", "/redirect/2?absolute=true", [], b"", "none"),
    ("GET", "/redirect/1?absolute=TRUE", [], b"", "none"),
    ("GET", "/redirect/x", [], b"", "none"),
    ("GET", "/relative-redirect/1", [], b"", "body"),
    ("GET", "/relative-redirect/4", [], b"", "body"),
    ("GET", "/absolute-redirect/1", [], b"", "none"),
    ("GET", "/absolute-redirect/3", [], b"", "none"),
    ("GET", "/redirect-to?url=http%3A%2F%2Fexample.com%2Fx%3Fy%3D1", [], b"", "body"),
    ("POST", "/redirect-to?url=/else&status_code=307", [], b"", "body"),
    ("GET", "/redirect-to?URL=/else&status_code=200", [], b"", "body"),
    ("GET", "/cache", [], b"", "json"),
    ("GET", "/cache", [("If-None-Match", '"x"')], b"", "body"),
    ("GET", "/cache", [("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")], b"", "body"),
    ("GET", "/cache/60", [], b"", "json"),
    ("GET", "/etag/abc", [], b"", "json"),
    ("GET", "/etag/abc", [("If-None-Match", '"xyz", W/"abc"')], b"", "body"),
    ("GET", "/etag/abc", [("If-None-Match", "*")], b"", "body"),
    ("GET", "/etag/abc", [("If-None-Match", '"other"')], b"", "json"),
    ("GET", "/etag/abc", [("If-Match", '"other"')], b"", "body"),
    ("GET", "/etag/abc", [("If-Match", '"abc"')], b"", "json"),
    ("GET", "/response-headers?X-A=1&X-A=2&freeform=hello%20world", [], b"", "json"),
    ("POST", "/response-headers?Cache-Control=no-store", [], b"", "json"),
    ("GET", "/base64/SFRUUEJJTiBpcyBhd2Vzb21l", [], b"", "body"),
    ("GET", "/base64/w6nDqQ==", [], b"", "body"),
    ("GET", "/basic-auth/user/pa%20ss", BASIC, b"", "json"),
    ("GET", "/basic-auth/user/other", BASIC, b"", "body"),
    ("GET", "/basic-auth/user/passwd", [], b"", "body"),
    ("GET", "/hidden-basic-auth/user/pa%20ss", BASIC, b"", "json"),
    ("GET", "/hidden-basic-auth/user/other", BASIC, b"", "body"),
    ("GET", "/bearer", [], b"", "body"),
    ("GET", "/bearer", [("Authorization", "Bearer token123")], b"", "json"),
    ("GET", "/cookies", [("Cookie", "a=1; b=two; __utma=hidden")], b"", "json"),
    ("GET", "/cookies?show_env", [("Cookie", "a=1; __utma=shown")], b"", "json"),
    ("GET", "/cookies", [], b"", "json"),
    ("GET", "/cookies/set?k=v&n=1", [], b"", "none"),
    ("GET", "/cookies/set/name/value", [], b"", "none"),
    ("GET", "/cookies/delete?k", [], b"", "none"),
    ("GET", "/cookies/set?sp=a%20b&q=%22x%22&c=1,2&s=a;b&u=%C3%A9&e=", [], b"", "none"),
    ("GET", "/cookies", [("Cookie", 'q="a b"; x=1; x=2; e=; sp=a b')], b"", "json"),
    ("GET", "/status/200:0.5", [], b"", "none"),
    ("GET", "/anything?a=%zz&%C3%A9=1&b=%ff&&=v&k=", [], b"", "json"),
    ("POST", "/anything", [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
     b"a=%zz&b=%ff&c", "json"),
    ("POST", "/anything", JSON_CT, b' \n{"a": 1} \n', "json"),
    ("POST", "/anything", JSON_CT, b'[1, 2,]', "json"),
    ("POST", "/anything", JSON_CT, b'{"a": 01}', "json"),
    ("POST", "/anything", JSON_CT, b'"\xff"', "json"),
    ("POST", "/anything", [("Content-Type", 'multipart/form-data; boundary="quoted b"')],
     b'--quoted b\r\nContent-Disposition: form-data; name="f"; filename=""\r\n\r\nx\r\n'
     b'--quoted b--\r\n', "json"),
    ("GET", "/robots.txt", [], b"", "body"),
    ("GET", "/deny", [], b"", "none"),
    ("GET", "/html", [], b"", "none"),
    ("GET", "/encoding/utf8", [], b"", "none"),
    ("GET", "/gzip", [], b"", "gzip"),
    ("GET", "/deflate", [], b"", "deflate"),
    ("GET", "/no/such/path", [], b"", "none"),
    ("GET", "/get/", [], b"", "none"),
]

# Header fields whose values must agree (after the mount point is taken out).
# Not Proxy-Authenticate: gunicorn drops it from 407 as hop-by-hop, preforkd
# sends it.
SAME_FIELDS = ("location", "etag", "cache-control", "content-range", "accept-ranges",
               "www-authenticate", "access-control-allow-origin",
               "access-control-allow-credentials", "access-control-allow-methods",
               "access-control-allow-headers", "access-control-max-age", "content-encoding",
               "x-a", "freeform")


def _unmount(v):
    """preforkd's text with the mount point taken out."""
    if isinstance(v, str):
        return v.replace("http://localhost" + PREFIX + "/", "http://localhost/").replace(
            "https://localhost" + PREFIX + "/", "https://localhost/") if "://" in v else (
            v[len(PREFIX):] if v.startswith(PREFIX + "/") else v)
    if isinstance(v, list):
        return [_unmount(x) for x in v]
    if isinstance(v, dict):
        return {k: _unmount(x) for k, x in v.items()}
    return v


def _normalize(doc, path):
    """What depends on chance or the clock, made equal."""
    if isinstance(doc, dict):
        if "uuid" in doc:
            assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                r"[0-9a-f]{12}", doc["uuid"]), doc
            doc["uuid"] = "U"
    return doc


def _media_type(resp):
    ct = resp.header("content-type")
    return ct.split(";")[0].strip().lower() if ct else None


def _fields(resp, unmount):
    out = {}
    for name in SAME_FIELDS:
        vals = resp.header_all(name)
        if vals:
            out[name] = sorted(_unmount(v) if unmount else v for v in vals)
    if resp.header("allow"):
        out["allow"] = sorted(m.strip() for m in resp.header("allow").split(","))
    cookies = [re.sub(r"Expires=[^;]*", "Expires=E", c) for c in resp.header_all("set-cookie")]
    if cookies:
        out["set-cookie"] = sorted(cookies)
    if resp.header("last-modified"):
        out["last-modified"] = "present"
    return out


@pytest.mark.parametrize("method,path,headers,body,compare", CASES,
                         ids=[f"{c[0]} {c[1]}" + (f" {c[2][0][0]}" if c[2] else "")
                              for c in CASES])
def test_same_as_httpbin(reference, preforkd, method, path, headers, body, compare):
    ours = get(preforkd.port, PREFIX + path, headers=headers, method=method, body=body)
    theirs = get(reference, path, headers=headers, method=method, body=body)
    assert ours.status == theirs.status, (ours, theirs)
    if path == "/cache" and ours.status == 200:
        # a fresh ETag each time: the same form, not the same value
        assert re.fullmatch(r"[0-9a-f]{32}", ours.header("etag")), ours.header("etag")
        ours.headers = [(k, v) for k, v in ours.headers if k != "etag"]
        theirs.headers = [(k, v) for k, v in theirs.headers if k != "etag"]
    assert _fields(ours, True) == _fields(theirs, False), (ours.headers, theirs.headers)
    if ours.status not in (204, 304) and method != "HEAD" and compare != "none":
        assert _media_type(ours) == _media_type(theirs), (ours.headers, theirs.headers)
    if compare == "json":
        a = _normalize(_unmount(json.loads(ours.body)), path)
        b = _normalize(json.loads(theirs.body), path)
        assert a == b
        assert sorted(a) == sorted(b)
    elif compare == "body":
        assert _unmount(ours.body.decode("latin-1")) == theirs.body.decode("latin-1")
    elif compare == "lines":
        a = [_unmount(json.loads(line)) for line in ours.body.splitlines()]
        b = [json.loads(line) for line in theirs.body.splitlines()]
        assert a == b
    elif compare in ("gzip", "deflate"):
        unpack = gzip.decompress if compare == "gzip" else zlib.decompress
        a = json.loads(unpack(ours.body))
        b = json.loads(unpack(theirs.body))
        # the request's Accept-Encoding is not what curl would send: none here
        assert a == b


# ---- what only preforkd does -----------------------------------------------------------


def _many(port, path, n, timeout):
    """n requests at once, each on its own connection; their statuses."""
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                      .encode())
            socks.append(s)
        return [Reader(s).response().status for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.timing
def test_delay_holds_no_thread(preforkd):
    """threads = 1: 200 concurrent /delay/1 end together after about 1 s,
    not one after another (200 s) as a sleeping thread would make them."""
    start = time.monotonic()
    statuses = _many(preforkd.port, PREFIX + "/delay/1", 200, timeout=20 * SLOW)
    took = time.monotonic() - start
    assert statuses == [200] * 200
    assert 1.0 <= took < 1 + 3 * SLOW, took


@pytest.mark.timing
def test_delay_on_a_pool_route_holds_its_thread(preforkd):
    """mode = pool: the delay sleeps on the pool thread (threads = 1), so
    three of them take three times as long."""
    start = time.monotonic()
    statuses = _many(preforkd.port, "/pool/delay/0.3", 3, timeout=20 * SLOW)
    took = time.monotonic() - start
    assert statuses == [200] * 3
    assert took >= 0.85, took
    r = get(preforkd.port, "/pool/drip?duration=0.2&numbytes=4&code=202")
    assert (r.status, r.body) == (202, b"****")


@pytest.mark.timing
def test_drip_spreads_its_bytes(preforkd):
    """/drip?duration=1&delay=0.3: the first byte after 0.3 s, the end
    after 1.3 s."""
    with socket.create_connection(("127.0.0.1", preforkd.port), timeout=10 * SLOW) as s:
        start = time.monotonic()
        s.sendall(f"GET {PREFIX}/drip?duration=1&numbytes=5&delay=0.3 HTTP/1.1\r\n"
                  "Host: x\r\nConnection: close\r\n\r\n".encode())
        first = None
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if first is None and b"*" in data.partition(b"\r\n\r\n")[2]:
                first = time.monotonic() - start
        took = time.monotonic() - start
    assert data.endswith(b"0\r\n\r\n") and data.split(b"\r\n\r\n", 1)[1].count(b"*") == 5
    assert 0.25 <= first < 0.3 + 0.5 * SLOW, first
    assert 1.25 <= took < 1.3 + 1.0 * SLOW, took


def test_seed_repeats_the_bytes(preforkd):
    a = get(preforkd.port, PREFIX + "/bytes/1000?seed=7")
    b = get(preforkd.port, PREFIX + "/bytes/1000?seed=7")
    c = get(preforkd.port, PREFIX + "/bytes/1000?seed=8")
    d = get(preforkd.port, PREFIX + "/stream-bytes/1000?seed=7&chunk_size=64")
    e = get(preforkd.port, PREFIX + "/bytes/1000")
    assert a.status == 200 and a.header("content-type") == "application/octet-stream"
    assert len(a.body) == 1000 and a.body == b.body == d.body
    assert c.body != a.body and e.body != a.body
    assert d.header("transfer-encoding") == "chunked"
    assert len(get(preforkd.port, PREFIX + "/bytes/999999").body) == 100 * 1024


def test_status_weights(preforkd):
    """/status/200:0.8,503:0.2 over 400 requests on one connection: the
    shares hold within five standard deviations of the binomial."""
    n, p = 400, 0.2
    with socket.create_connection(("127.0.0.1", preforkd.port), timeout=10 * SLOW) as s:
        reader = Reader(s)
        counts = {200: 0, 503: 0}
        for _ in range(n):
            s.sendall(f"GET {PREFIX}/status/200:0.8,503:0.2 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            counts[reader.response().status] += 1
    sigma = (n * p * (1 - p)) ** 0.5
    assert abs(counts[503] - n * p) < 5 * sigma, counts


@pytest.mark.parametrize("path", [
    "/delay/abc", "/delay/-1", "/redirect/0", "/relative-redirect/0", "/status/99",
    "/status/200:1:2", "/status/200:0,500:0", "/status/600", "/base64/wA==", "/base64/QQ",
    "/drip?numbytes=x", "/drip?duration=-1", "/drip?code=999", "/bytes/10?seed=x",
    "/stream-bytes/10?chunk_size=x", "/range/10?duration=x", "/response-headers?Server=x",
    "/response-headers?X-A=%0d%0aInjected:%201", "/response-headers?bad%20name=1",
    "/redirect-to", "/redirect-to?url=/a%0d%0aX:%201", "/redirect-to?url=/a&status_code=x",
    "/cookies/set?bad%20name=1",
])
def test_bad_input_is_a_clear_4xx(preforkd, path):
    r = get(preforkd.port, PREFIX + path)
    assert r.status == 400, r
    assert r.body.strip(), r


def test_numbers_past_a_long_do_not_overflow(preforkd):
    """UBSan ended the worker on these before (signed overflow)."""
    assert get(preforkd.port, PREFIX + "/range/9223372036854775809").status == 404
    assert get(preforkd.port, PREFIX + "/cache/92233720368547758090").status in (400, 404)
    assert get(preforkd.port, PREFIX + "/get").status == 200


def test_a_form_of_too_many_fields_is_refused(preforkd):
    """werkzeug's max_form_parts: 1000 fields; a body of '&'s is not 56
    bytes of memory per byte."""
    r = get(preforkd.port, PREFIX + "/post", method="POST", body=b"a&" * 3000,
            headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 400 and b"1000" in r.body, r
    ok = get(preforkd.port, PREFIX + "/post", method="POST", body=b"&".join([b"a=1"] * 999),
             headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert ok.status == 200 and json.loads(ok.body)["form"]["a"] == ["1"] * 999


def test_mount_points(preforkd):
    """A prefix without its last '/' ([route /p]) and one on the pool."""
    r = get(preforkd.port, "/p/get?x=1")
    assert r.status == 200
    assert json.loads(r.body)["url"] == "http://localhost/p/get?x=1"
    assert get(preforkd.port, "/p/relative-redirect/2").header("location") == \
        "/p/relative-redirect/1"
    r = get(preforkd.port, "/pool/anything/x", method="POST", body=b'{"k": 1}',
            headers=[("Content-Type", "application/json")])
    assert (r.status, json.loads(r.body)["json"]) == (200, {"k": 1})
    r = get(preforkd.port, "/pool/stream/2")
    assert [json.loads(x)["id"] for x in r.body.splitlines()] == [0, 1]
    assert get(preforkd.port, "/hb").status == 404  # below the prefix only
    assert get(preforkd.port, "/hb/").status == 404


def test_json_and_streams(preforkd):
    """/json (newer httpbins' slide show); /range paced by duration."""
    r = get(preforkd.port, PREFIX + "/json")
    assert r.status == 200 and "slideshow" in json.loads(r.body)
    start = time.monotonic()
    r = get(preforkd.port, PREFIX + "/range/26?duration=0.3&chunk_size=5",
            headers=[("Range", "bytes=0-25")])
    assert (r.status, r.body) == (200, b"abcdefghijklmnopqrstuvwxyz")
    assert time.monotonic() - start >= 0.2


def test_clients_that_leave_or_read_slowly(preforkd):
    """A client gone during a /delay, a /drip or a paced /range; one that
    reads a stream slowly (the answer waits for it to drain). The server
    stays clean (checked when it stops)."""
    for path in ("/delay/2", "/drip?duration=2&numbytes=50", "/range/100?duration=2&chunk_size=1",
                 "/pool/delay/2", "/pool/drip?duration=2&numbytes=5"):
        with socket.create_connection(("127.0.0.1", preforkd.port), timeout=10 * SLOW) as s:
            s.sendall(f"GET {PREFIX if not path.startswith('/pool') else ''}{path} HTTP/1.1\r\n"
                      "Host: x\r\n\r\n".encode())
            time.sleep(0.2)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10 * SLOW)
    s.connect(("127.0.0.1", preforkd.port))
    with s:
        s.sendall(f"GET {PREFIX}/stream-bytes/102400?seed=1&chunk_size=1000 HTTP/1.1\r\n"
                  "Host: x\r\nConnection: close\r\n\r\n".encode())
        time.sleep(0.3)  # the server fills the socket, then waits to drain
        r = Reader(s).response()
    assert r.status == 200
    assert r.body == get(preforkd.port, PREFIX + "/bytes/102400?seed=1").body
    # the loop is free: quick answers meanwhile and after
    assert get(preforkd.port, PREFIX + "/get").status == 200
