"""The worker's thread pool: slow handlers (the built-in sleep handler) run on
pool threads while the loop keeps serving; a full queue answers 503, a handler
past request_timeout 504; streamed bodies go out as chunks as they are made."""

import json
import socket
import threading
import time

import pytest

from conftest import Reader, get, wait_until

STREAM_BODY = b"chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n"


def _config(site, **server):
    settings = {"threads": "2"}
    settings.update(server)
    head = "".join(f"{k} = {v}\n" for k, v in settings.items())
    return (f"[server]\n{head}"
            f"[route /]\nhandler = static\nroot = {site}\n"
            f"[route /sleep]\nhandler = sleep\n"
            f"[route /status]\nhandler = status\n")


@pytest.fixture
def srv(make_server, site):
    return make_server(config=_config(site))


def _status(port):
    r = get(port, "/status")
    assert r.status == 200
    return json.loads(r.body)["workers"][0]


def _send(port, path, version="1.1", timeout=15):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"GET {path} HTTP/{version}\r\nHost: x\r\n\r\n".encode())
    return s


def _timed_get(port, path, results, key):
    t = time.monotonic()
    try:
        r = get(port, path)
        results[key] = (r, time.monotonic() - t)
    except Exception as e:  # reported by the asserting thread
        results[key] = (e, time.monotonic() - t)


def test_sleep_answers_after_sleeping(srv):
    t = time.monotonic()
    r = get(srv.port, "/sleep?ms=500")
    took = time.monotonic() - t
    assert r.status == 200
    assert r.body == b"slept 500 ms\n"
    assert r.header("content-type") == "text/plain"
    assert 0.5 <= took < 5, f"answered after {took:.2f} s"


def test_bad_query_is_400(srv):
    for q in ("ms=abc", "ms=", "ms=5&chunks=x", "ms=99999999999"):
        r = get(srv.port, f"/sleep?{q}")
        assert r.status == 400, q
    # the server is fine afterwards
    assert get(srv.port, "/sleep?ms=1").body == b"slept 1 ms\n"


def test_static_files_stay_fast_while_the_pool_is_busy(srv):
    results = {}
    slow = [threading.Thread(target=_timed_get, args=(srv.port, "/sleep?ms=2000", results, i))
            for i in range(2)]
    for t in slow:
        t.start()
    try:
        # both pool threads are busy now
        wait_until(lambda: _status(srv.port)["pool_busy"] == 2, timeout=5,
                   what="both pool threads to be busy")
        lat = []
        for _ in range(10):
            t = time.monotonic()
            r = get(srv.port, "/hello.txt")
            lat.append(time.monotonic() - t)
            assert r.status == 200 and r.body == b"Hello, World!"
        lat.sort()
        assert lat[len(lat) // 2] < 0.2, f"static answers slowed by the pool: {lat}"
        assert lat[-1] < 0.5, f"static answers slowed by the pool: {lat}"
        # the slow ones had not finished while we were served
        assert not results, "the sleeps ended before the static requests"
    finally:
        for t in slow:
            t.join(15)
    for i in range(2):
        r, took = results[i]
        assert not isinstance(r, Exception), r
        assert r.status == 200 and r.body == b"slept 2000 ms\n"
        assert took >= 2.0


def test_full_pool_queue_answers_503_with_retry_after(make_server, site):
    srv = make_server(config=_config(site, threads="1", pool_queue="1"))
    # (the pool counters of /status lag by up to a second: pace by time)
    first = _send(srv.port, "/sleep?ms=2500")   # runs on the one thread
    try:
        time.sleep(0.3)
        second = _send(srv.port, "/sleep?ms=100")  # waits in the queue
        try:
            time.sleep(0.3)
            t = time.monotonic()
            r = get(srv.port, "/sleep?ms=100")       # no room: refused at once
            assert time.monotonic() - t < 1.0
            assert r.status == 503
            assert r.header("retry-after") == "1"
            # the two accepted ones are answered in turn
            r1 = Reader(first).response()
            assert r1.status == 200 and r1.body == b"slept 2500 ms\n"
            r2 = Reader(second).response()
            assert r2.status == 200 and r2.body == b"slept 100 ms\n"
        finally:
            second.close()
    finally:
        first.close()
    assert "pool queue full" in srv.log()
    # room again: accepted
    assert get(srv.port, "/sleep?ms=1").status == 200


def test_request_timeout_answers_504_and_closes(make_server, site):
    srv = make_server(config=_config(site, request_timeout="1s"))
    with _send(srv.port, "/sleep?ms=3000") as s:
        t = time.monotonic()
        rd = Reader(s)
        r = rd.response()
        took = time.monotonic() - t
        assert r.status == 504
        assert r.header("connection") == "close"
        assert 0.8 <= took <= 2.5, f"504 after {took:.2f} s"
        assert rd.closed(timeout=5)
    # healthy: static files and the other pool thread still answer
    assert get(srv.port, "/hello.txt").body == b"Hello, World!"
    assert get(srv.port, "/sleep?ms=10").body == b"slept 10 ms\n"
    assert "request_timeout" in srv.log()
    # the abandoned job ends on its own and frees its thread
    wait_until(lambda: _status(srv.port)["pool_busy"] == 0, timeout=10,
               what="the abandoned job to finish")


def test_pool_handler_may_outlast_header_timeout(make_server, site):
    """header_timeout bounds the arrival of the request head only: a handler
    that works longer than that still gets its answer to the client."""
    srv = make_server(config=_config(site, header_timeout="1s", request_timeout="10s"))
    with _send(srv.port, "/sleep?ms=2000") as s:
        r = Reader(s).response()
        assert r.status == 200 and r.body == b"slept 2000 ms\n"


def _read_stream(sock, timeout=15):
    """Reads a chunked response; returns (response head, [(time, chunk)])."""
    sock.settimeout(timeout)
    rd = Reader(sock)
    lines = []
    while True:
        line = rd._line()
        if not line:
            break
        lines.append(line)
    chunks = []
    while True:
        size = int(rd._line().split(b";")[0], 16)
        if size == 0:
            while rd._line():
                pass
            break
        data = rd._exact(size)
        assert rd._exact(2) == b"\r\n"
        chunks.append((time.monotonic(), data))
    return lines, chunks, rd


def test_streamed_body_is_chunked_as_it_is_made(srv):
    with _send(srv.port, "/sleep?ms=600&chunks=3") as s:
        t0 = time.monotonic()
        head, chunks, rd = _read_stream(s)
        assert head[0].startswith(b"HTTP/1.1 200")
        names = {l.split(b":", 1)[0].strip().lower(): l.split(b":", 1)[1].strip()
                 for l in head[1:]}
        assert names.get(b"transfer-encoding") == b"chunked"
        assert b"content-length" not in names
        assert b"".join(c for _, c in chunks) == STREAM_BODY
        assert len(chunks) == 3
        # spread over time: the first long before the last
        first, last = chunks[0][0] - t0, chunks[-1][0] - t0
        assert last - first >= 0.25, f"chunks at {first:.2f} s and {last:.2f} s"
        assert last >= 0.55
        # keep-alive: the connection takes another request
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert rd.response().body == b"Hello, World!"


def test_streamed_body_over_http10_ends_with_the_connection(srv):
    with _send(srv.port, "/sleep?ms=600&chunks=3", version="1.0") as s:
        s.settimeout(15)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200
        assert r.header("transfer-encoding") is None
        assert r.header("content-length") is None
        assert r.header("connection") == "close"
        assert r.body == STREAM_BODY
        assert rd.eof


def test_head_of_a_streamed_response_has_no_body(srv):
    raw = b"HEAD /sleep?ms=300&chunks=3 HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as s:
        s.sendall(raw)
        rd = Reader(s)
        r = rd.response(head=True)
        assert r.status == 200
        # the next answer follows right after the head: no chunk in between
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r2 = rd.response()
        assert r2.body == b"Hello, World!"


def test_client_leaving_during_pool_work_is_harmless(srv):
    # gone while the job runs
    for _ in range(3):
        s = _send(srv.port, "/sleep?ms=400")
        time.sleep(0.1)
        s.close()
    # gone in the middle of a stream
    s = _send(srv.port, "/sleep?ms=900&chunks=3")
    s.settimeout(10)
    assert s.recv(1)  # the head and the first chunk are on their way
    s.close()
    # reset (RST) while queued behind busy threads
    for _ in range(4):
        s = _send(srv.port, "/sleep?ms=300")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    # everything finishes; no connection is left behind
    wait_until(lambda: (lambda st: st["pool_busy"] == 0 and st["pool_queued"] == 0
                        and st["connections"] == 1)(_status(srv.port)),
               timeout=15, interval=0.1, what="abandoned jobs to finish")
    assert get(srv.port, "/sleep?ms=10").body == b"slept 10 ms\n"
    # the fixture then checks the server stops cleanly (no leak, no crash)


def test_static_route_in_pool_mode(make_server, site):
    srv = make_server(config=f"[server]\nthreads = 2\n"
                             f"[route /]\nhandler = static\nroot = {site}\nmode = pool\n")
    r = get(srv.port, "/hello.txt")
    assert r.status == 200 and r.body == b"Hello, World!"
    assert get(srv.port, "/").body == b"<h1>index</h1>\n"
    assert get(srv.port, "/missing").status == 404
    r = get(srv.port, "/big.bin")
    assert r.status == 200 and r.body == (site / "big.bin").read_bytes()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        rd = Reader(s)
        for _ in range(5):
            s.sendall(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
            assert rd.response().body == b"body { color: red }\n"
