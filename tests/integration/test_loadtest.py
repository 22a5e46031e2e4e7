"""The echo handler as a load-test target (workers/loadtest.c): fortio's echo
query parameters (delay, status, size, close, header, gzip) with their
percentages, ranges, seed, chunks, the route limits max_delay and max_size,
400s naming the bad parameter, 10,000 delayed requests waiting on one worker
without a thread each, and the wrk script scripts/wrk/mix.lua."""

import gzip
import json
import math
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import time
import zlib

import pytest

from conftest import BIN, SLOW, SOURCE_DIR, Reader, get

CONFIG = """[server]
keepalive_requests = 100000
{server}
[route /echo]
handler = echo
{echo}
[route /pecho]
handler = echo
mode = pool
[route /status]
handler = status
"""


def _config(server="", echo=""):
    return CONFIG.format(server=server, echo=echo)


@pytest.fixture
def srv(make_server):
    return make_server(config=_config())


def _filler(n):
    """The payload's bytes: splitmix64 from 0, little-endian, repeating
    every 64 KiB (workers/loadtest.c)."""
    m = (1 << 64) - 1
    s, out = 0, bytearray()
    while len(out) < 65536:
        s = (s + 0x9E3779B97F4A7C15) & m
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        out += (z ^ (z >> 31)).to_bytes(8, "little")
    block = bytes(out)
    return (block * (n // 65536 + 1))[:n]


def _pipelined(port, paths, headers=""):
    """Sends every request on one connection at once; the answers in order."""
    raw = "".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n{headers}\r\n" for p in paths).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30 * SLOW) as s:
        s.sendall(raw)
        rd = Reader(s)
        return [rd.response() for _ in paths]


def _within(count, n, p, sigmas=5):
    """count of n draws of probability p, within sigmas standard deviations."""
    sd = math.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= sigmas * sd, (count, n * p, sd)


# ---- each parameter ---------------------------------------------------------


def test_no_parameters_echo_the_body_and_its_type(srv):
    r = get(srv.port, "/echo", method="POST", body=b"hello", headers=[("Content-Type", "text/x")])
    assert r.status == 200 and r.body == b"hello" and r.header("content-type") == "text/x"
    r = get(srv.port, "/echo?unknown=1", method="POST", body=b"abc")
    assert r.status == 200 and r.body == b"abc"
    assert r.header("content-type") == "application/octet-stream"


def test_status_and_size(srv):
    r = get(srv.port, "/echo?status=503", method="POST", body=b"x")
    assert r.status == 503 and r.body == b"x"
    r = get(srv.port, "/echo?size=1000")
    assert r.status == 200 and r.body == _filler(1000)
    assert r.header("content-type") == "application/octet-stream"
    r = get(srv.port, "/echo?size=0", method="POST", body=b"dropped")
    assert r.body == b""
    r = get(srv.port, "/echo?size=200k")  # beyond the 64 KiB table: the same sequence
    assert len(r.body) == 200 * 1024 and r.body == _filler(200 * 1024)
    r = get(srv.port, "/pecho?size=3&status=418")
    assert r.status == 418 and r.body == _filler(3)


def test_header_is_repeatable_and_may_set_the_content_type(srv):
    r = get(srv.port, "/echo?header=X-A:1&header=X-B:%20two%20&header=Content-Type:text/y&size=2")
    assert r.header("x-a") == "1" and r.header("x-b") == "two"
    assert r.header("content-type") == "text/y"
    # fields chosen by a link run nothing as the site's origin: a text/html
    # answer is sandboxed, and not sniffed
    r = get(srv.port, "/echo?header=Content-Type:text/html", method="POST",
            body=b"<script>alert(1)</script>")
    assert r.header("content-type") == "text/html"
    assert r.header("content-security-policy") == "sandbox"
    assert r.header("x-content-type-options") == "nosniff"
    # a plain echo carries neither (the hot path stays as it was)
    assert get(srv.port, "/echo", method="POST", body=b"x").header("content-security-policy") is None


def test_close_true_closes_after_the_answer(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
        s.sendall(b"GET /echo?close=true HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.header("connection") == "close"
        assert rd.closed()
    for q in ("close=false", "close=0", "close=0%25"):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
            s.sendall(f"GET /echo?{q} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 2)
            rd = Reader(s)
            assert rd.response().header("connection") is None
            assert rd.response().status == 200


def test_gzip_only_when_the_client_accepts_it(srv):
    text = b"all work and no play " * 200
    ae = [("Accept-Encoding", "br, gzip;q=0.5")]
    r = get(srv.port, "/echo?gzip=true", method="POST", body=text, headers=ae)
    assert r.header("content-encoding") == "gzip" and r.header("vary") == "Accept-Encoding"
    assert gzip.decompress(r.body) == text and len(r.body) < len(text) // 10
    r = get(srv.port, "/pecho?gzip=100&size=5000", headers=[("Accept-Encoding", "*")])
    assert gzip.decompress(r.body) == _filler(5000)
    for refused in ((), [("Accept-Encoding", "gzip;q=0")], [("Accept-Encoding", "identity")],
                    [("Accept-Encoding", "*, gzip;q=0.0")]):
        r = get(srv.port, "/echo?gzip=true", method="POST", body=text, headers=refused)
        assert r.header("content-encoding") is None and r.body == text, refused
        assert r.header("vary") == "Accept-Encoding"
    r = get(srv.port, "/echo?gzip=false", method="POST", body=text, headers=ae)
    assert r.header("content-encoding") is None and r.header("vary") is None


@pytest.mark.timing
def test_delay_inline_and_on_the_pool(srv):
    for path in ("/echo?delay=300ms", "/pecho?delay=0.3s", "/echo?delay=300ms:100"):
        t0 = time.monotonic()
        r = get(srv.port, path)
        took = time.monotonic() - t0
        assert r.status == 200 and 0.3 <= took < 0.3 + 5 * SLOW, (path, took)


@pytest.mark.timing
def test_delay_ranges_stay_in_bounds(srv):
    """delay=lo-hi: never shorter than lo; sizes drawn from a range stay in
    it exactly and cover it."""
    for path in ("/echo?delay=50ms-150ms", "/echo?delay=50ms-150ms:100",
                 "/pecho?delay=50ms-150ms"):
        for _ in range(8):
            t0 = time.monotonic()
            assert get(srv.port, path).status == 200
            took = time.monotonic() - t0
            assert 0.05 <= took < 0.15 + 5 * SLOW, (path, took)
    sizes = [len(r.body) for r in _pipelined(srv.port, ["/echo?size=100-200:50,1k-2k:50"] * 400)]
    assert all(100 <= n <= 200 or 1024 <= n <= 2048 for n in sizes)
    assert min(sizes) < 110 and max(sizes) > 2000 and 190 < max(n for n in sizes if n < 300)


@pytest.mark.timing
def test_chunks_spread_the_answer_over_the_delay(srv):
    """chunks=4 over 800 ms: the head comes at once, then four pieces, one
    every 200 ms; on a pool route too."""
    for route in ("echo", "pecho"):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW)
        t0 = time.monotonic()
        s.sendall(f"GET /{route}?chunks=4&delay=800ms&size=1000 HTTP/1.1\r\nHost: x\r\n\r\n"
                  .encode())
        data, times = b"", []
        while not data.endswith(b"\r\n0\r\n\r\n"):
            got = s.recv(65536)
            assert got, data
            data += got
            times.append((time.monotonic() - t0, len(data)))
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        sizes, payload = [], b""
        while True:
            line, _, body = body.partition(b"\r\n")
            sizes.append(int(line, 16))
            payload += body[:sizes[-1]]
            body = body[sizes[-1] + 2:]
            if sizes[-1] == 0:
                break
        assert sizes == [250, 250, 250, 250, 0], sizes
        assert payload == _filler(1000)
        # the head at once, the last piece at 800 ms
        assert times[-1][0] >= 0.8 and times[0][0] < times[-1][0] - 0.3, times
    r = get(srv.port, "/echo?chunks=3", method="POST", body=b"abcdefgh")
    assert r.body == b"abcdefgh" and r.header("transfer-encoding") == "chunked"


# ---- percentages and seeds -------------------------------------------------


def test_weighted_percentages_hold_over_2000_requests(srv):
    n = 2000
    answers = _pipelined(srv.port, ["/echo?status=503:20,429:5%25&size=10:30,100-199:10"] * n)
    statuses = [r.status for r in answers]
    for code, p in ((503, 0.20), (429, 0.05), (200, 0.75)):
        ok, why = _within(statuses.count(code), n, p)
        assert ok, (code, why)
    sizes = [len(r.body) for r in answers]
    for pred, p in ((lambda x: x == 10, 0.30), (lambda x: 100 <= x <= 199, 0.10),
                    (lambda x: x == 0, 0.60)):  # the rest: the (empty) body back
        ok, why = _within(sum(map(pred, sizes)), n, p)
        assert ok, (p, why)
    # close=N%: the share of answers that close (one connection each)
    closes = 0
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
            for _ in range(60):
                s.sendall(b"GET /echo?close=25 HTTP/1.1\r\nHost: x\r\n\r\n")
                if Reader(s).response().header("connection") == "close":
                    closes += 1
                    break
    # a connection's first close within 60 requests: all but sure (1 - 0.75^60)
    assert closes == 10


def test_seed_makes_two_runs_identical(make_server):
    """seed=S: the k-th request of a connection gets the same draws in every
    run: on another connection, on another server with more workers."""
    path = "/echo?seed=42&status=503:30,500-504:10&size=0-1000:50&gzip=40"
    paths = [path] * 300
    hdr = "Accept-Encoding: gzip\r\n"

    def run(port):
        return [(r.status, r.header("content-encoding"), r.body) for r in
                _pipelined(port, paths, hdr)]

    a = make_server(config=_config())
    first = run(a.port)
    assert run(a.port) == first
    b = make_server(config=_config(), workers=2)
    assert run(b.port) == first
    statuses = {s for s, _, _ in first}
    assert {200, 503} <= statuses and len(statuses) >= 4  # not a constant
    other = [(r.status, r.header("content-encoding"), r.body)
             for r in _pipelined(a.port, [path.replace("42", "43")] * 300, hdr)]
    assert other != first
    # without seed, two runs differ
    unseeded = path.replace("seed=42&", "")
    assert ([r.status for r in _pipelined(a.port, [unseeded] * 300)] !=
            [r.status for r in _pipelined(a.port, [unseeded] * 300)])


# ---- refusals and limits ----------------------------------------------------

BAD = [
    ("delay=abc", "delay"), ("delay=10", "delay"), ("delay=1s:50:2", "delay"),
    ("delay=1s:101", "delay"), ("delay=1s:60,2s:50", "delay"), ("delay=-1s", "delay"),
    ("delay=50ms-10ms", "delay"), ("delay=1s,2s", "delay"), ("delay=1s:", "delay"),
    ("delay=1s:10,", "delay"), ("status=99", "status"), ("status=abc", "status"),
    ("status=600", "status"), ("status=503:x", "status"), ("size=1x", "size"),
    ("size=10-5", "size"), ("size=-5", "size"), ("close=maybe", "close"),
    ("gzip=yes", "gzip"), ("close=101", "close"), ("seed=-1", "seed"), ("seed=x", "seed"),
    ("chunks=x", "chunks"), ("chunks=100001", "chunks"), ("header=NoColon", "header"),
    ("header=Bad%20Name:v", "header"), ("header=Content-Length:5", "header"),
    ("header=Connection:close", "header"), ("header=X:a%01b", "header"),
    ("header=Content-Type:", "header"), ("size=%zz", "query"),
    # fields that would act on the site's origin, and NUL
    ("header=Set-Cookie:session=x", "header"), ("header=location:https://evil.example/", "header"),
    ("header=Refresh:0;url=https://evil.example/", "header"), ("header=Link:<x>", "header"),
    ("header=Access-Control-Allow-Origin:*", "header"), ("header=Content-Encoding:gzip", "header"),
    ("header=Content-Security-Policy:x", "header"), ("header=X-A:ok%00", "header"),
    ("size=2m&gzip=true", "gzip"),
]


@pytest.mark.parametrize("query,name", BAD)
def test_bad_parameters_get_400_naming_them(srv, query, name):
    r = get(srv.port, f"/echo?{query}")
    assert r.status == 400, r
    assert r.body.startswith(f"echo: bad parameter {name}:".encode()), r.body
    value = query.split("=", 1)[1]
    assert len(value) < 3 or value.encode() not in r.body  # never quoted back


def test_limits_are_route_settings(make_server):
    srv = make_server(config=_config(echo="max_delay = 100ms\nmax_size = 1k\n"))
    assert get(srv.port, "/echo?delay=100ms&size=1k").status == 200
    r = get(srv.port, "/echo?delay=101ms")
    assert r.status == 400 and b"delay" in r.body and b"max_delay (100 ms)" in r.body
    r = get(srv.port, "/echo?delay=1ms:10,50ms-2s:10")
    assert r.status == 400 and b"max_delay" in r.body
    r = get(srv.port, "/echo?size=1025")
    assert r.status == 400 and b"size" in r.body and b"max_size (1024 bytes)" in r.body
    # the defaults: 10 s and 10 MiB
    dflt = make_server(config=_config())
    assert get(dflt.port, "/echo?delay=10001ms").status == 400
    assert get(dflt.port, "/echo?size=10m").body == _filler(10 << 20)
    r = get(dflt.port, "/echo?size=10485761")
    assert r.status == 400 and b"max_size (10485760 bytes)" in r.body


@pytest.mark.parametrize("setting", ["max_delay = soon", "max_size = big"])
def test_check_refuses_bad_limits(tmp_path, setting):
    conf = tmp_path / "bad.conf"
    conf.write_text(_config(echo=setting + "\n"))
    out = subprocess.run([BIN, "--config", str(conf), "--check"], capture_output=True, text=True)
    assert out.returncode == 2 and setting.split()[0] in out.stderr, out.stderr


def test_large_payloads_are_shared_not_copied(make_server):
    """40 connections each waiting on a 10 MB answer (delay=3s): the worker
    holds one 10 MB payload, not 40 (it grew by 400 MB before)."""
    srv = make_server(config=_config())
    [pid] = srv.workers()
    before = _rss_kb(pid)
    socks = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30 * SLOW)
        s.sendall(b"GET /echo?size=10m&delay=3s HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    time.sleep(1)
    grown = _rss_kb(pid) - before
    assert grown < 100 * 1024, f"the worker grew by {grown} KiB"
    for s in socks:
        r = Reader(s).response()
        assert r.status == 200 and len(r.body) == 10 << 20
        s.close()


# ---- 10,000 delayed requests on one worker -----------------------------------


def _rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


@pytest.mark.timing
def test_10000_delayed_requests_wait_on_one_worker_without_threads(make_server):
    """10,000 connections each ask echo?delay=1s of one worker at once: the
    timers run side by side, so all answer about 1 s after they were sent
    (serialized they would take hours, on 4 pool threads 40 minutes)."""
    n, delay = 10000, 1.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < n + 500:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {n + 500}")
    srv = make_server(config=_config(server=f"max_connections = {n + 1000}\nthreads = 2"),
                      nofile=hard)
    worker = srv.workers()[0]
    assert get(srv.port, "/echo?delay=1ms").status == 200
    rss0 = _rss_kb(worker)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sel = selectors.DefaultSelector()
    socks, sent, done, data = [], {}, {}, {}
    req = b"GET /echo?delay=1s HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        t0 = time.monotonic()
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=30 * SLOW)
            sent[i] = time.monotonic()  # before: the server cannot start earlier
            s.sendall(req)
            s.setblocking(False)
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, i)
        t_sent = time.monotonic() - t0
        # the worker's memory now, and how many requests it holds: those
        # whose answer has not come yet
        rss_sent = _rss_kb(worker)
        waiting = n - len(sel.select(timeout=0))
        deadline = time.monotonic() + delay + 20 * SLOW
        hwm_samples = []
        while len(done) < n and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                i = key.data
                chunk = key.fileobj.recv(4096)
                data[i] = data.get(i, b"") + chunk
                if b"\r\n\r\n" in data[i] or not chunk:
                    done[i] = time.monotonic()
                    sel.unregister(key.fileobj)
            hwm_samples.append(_rss_kb(worker))
        total = time.monotonic() - t0
        peak = max(hwm_samples + [_rss_kb(worker, "VmHWM")])
    finally:
        sel.close()
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(done) == n, f"{len(done)} of {n} answered in {total:.1f} s"
    ok = sum(d.startswith(b"HTTP/1.1 200 ") for d in data.values())
    assert ok == n
    lat = sorted(done[i] - sent[i] for i in range(n))
    assert lat[0] >= delay - 0.01  # a libevent timer counts from the loop's cached time
    per = (rss_sent - rss0) * 1024 / max(waiting, 1)
    print(f"\n10000 x echo?delay=1s on one worker: sent in {t_sent:.2f} s, all answered "
          f"{total:.2f} s after the first; latency min {lat[0]:.3f} p50 {lat[n // 2]:.3f} "
          f"p99 {lat[n * 99 // 100]:.3f} max {lat[-1]:.3f} s; worker RSS {rss0} KiB, "
          f"{rss_sent} KiB with {waiting} waiting: {per:.0f} bytes per waiting request "
          f"(connection included), peak {peak} KiB")
    assert total < delay + 20 * SLOW + t_sent


# ---- wrk ----------------------------------------------------------------------


@pytest.mark.skipif(not shutil.which("wrk"), reason="needs wrk")
def test_wrk_mix_script_prints_a_json_summary(srv):
    script = SOURCE_DIR / "scripts" / "wrk" / "mix.lua"
    env = dict(os.environ, DEPTH="4", BODY="ping",
               PATHS="/echo,/echo?status=503:50,POST:/echo?size=100,/echo?delay=1ms-3ms")
    out = subprocess.run(["wrk", "-t2", "-c8", "-d2s", "-s", str(script),
                          f"http://127.0.0.1:{srv.port}"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["requests"] > 100 and summary["depth"] == 4
    st = summary["statuses"]
    assert set(st) == {"200", "503"} and sum(st.values()) >= summary["requests"] * 0.9
    assert summary["errors"]["status"] == st["503"]
    assert summary["errors"]["connect"] == summary["errors"]["timeout"] == 0
    lat = summary["latency_us"]
    assert 0 <= lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"], \
        lat
