"""The application API (workers/preforkd.h) through a module the tests load
(tests/modules/apitest.c): pfd_async with its done callback, cancellation
before and while the work runs, request_timeout over async work, pfd_after
timers that hold no thread, an inline stream paced by pfd_on_drain, path and
query parameters, methods; and a module rebuilt and reloaded under load."""

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import BIN, SLOW, Reader, get, wait_until

BUILD = pathlib.Path(BIN).resolve().parent
MODULE = BUILD / "apitest.so"
SOURCE = pathlib.Path(os.environ.get("PREFORKD_SOURCE_DIR",
                                     pathlib.Path(__file__).resolve().parents[2]))

pytestmark = pytest.mark.skipif(not MODULE.exists(), reason=f"{MODULE} is not built")


def _config(**server):
    head = "".join(f"{k} = {v}\n" for k, v in server.items())
    routes = ""
    for path, handler, extra in [("= /async", "async", ""), ("= /after", "after", ""),
                                 ("= /stream", "stream", ""), ("= /stream-async", "stream_async", ""),
                                 ("/p/{a}/{b}", "params", ""),
                                 ("= /stats", "stats", ""),
                                 ("= /only-post", "params", "methods = POST\n"),
                                 ("= /case", "case", ""), ("= /pool-case", "case", "mode = pool\n"),
                                 ("= /upload", "upload", "max_body_size = 64m\n")]:
        routes += f"[route {path}]\nhandler = {handler}\nmodule = {MODULE}\n{extra}"
    return f"[server]\n{head}" + routes + "[route /status]\nhandler = status\n"


def _stats(port):
    return json.loads(get(port, "/stats").body)


def _open(srv, raw, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10 * SLOW)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(raw)
    return s


def _reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def _pool(port):
    w = json.loads(get(port, "/status").body)["workers"][0]
    return w["pool_busy"], w["pool_queued"]


def test_async_work_then_done_answers(make_server):
    srv = make_server(config=_config())
    t0 = time.monotonic()
    r = get(srv.port, "/async?ms=300")
    assert r.status == 200 and json.loads(r.body) == {"slept": 300, "cancelled": False}
    assert time.monotonic() - t0 >= 0.3
    st = _stats(srv.port)
    assert st["work_started"] == st["work_finished"] == st["done_called"] == 1


def test_async_answers_keep_the_order_of_pipelined_requests(make_server):
    """The slow one first: its answer still comes first."""
    srv = make_server(config=_config(threads=4))
    s = _open(srv, b"GET /async?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /async?ms=10 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /p/1/2 HTTP/1.1\r\nHost: x\r\n\r\n")
    rd = Reader(s)
    assert json.loads(rd.response().body)["slept"] == 400
    assert json.loads(rd.response().body)["slept"] == 10
    assert json.loads(rd.response().body)["a"] == "1"
    s.close()


def test_async_work_of_a_client_that_left_before_it_started_never_runs(make_server):
    """threads = 1: the first job holds the thread, the second waits; both
    clients leave. The waiting work never runs, the running one sees the
    cancellation; both done callbacks run (to free what they own), knowing
    the client is gone."""
    srv = make_server(config=_config(threads=1))
    first = _open(srv, b"GET /async?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(lambda: _pool(srv.port) == (1, 0), what="the first job running")
    second = _open(srv, b"GET /async?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(lambda: _pool(srv.port) == (1, 1), what="the second job queued")
    _reset(second)
    wait_until(lambda: _pool(srv.port) == (1, 0), what="the queued job taken back")
    _reset(first)
    wait_until(lambda: _pool(srv.port) == (0, 0), timeout=5, what="the running job to stop")
    st = wait_until(lambda: (lambda st: st["done_called"] == 2 and st)(_stats(srv.port)),
                    what="both done callbacks")
    assert st["work_started"] == 1, st  # the queued one never ran
    assert st["work_cancelled"] == 1 and st["work_finished"] == 0, st
    assert st["done_gone"] == 2, st


def test_request_timeout_answers_504_and_cancels_async_work(make_server):
    srv = make_server(config=_config(request_timeout="1s"))
    t0 = time.monotonic()
    r = get(srv.port, "/async?ms=20000")
    assert r.status == 504 and time.monotonic() - t0 < 8
    st = wait_until(lambda: (lambda st: st["work_cancelled"] == 1 and st["done_called"] == 1 and
                             st)(_stats(srv.port)),
                    timeout=5, what="the work to see the cancellation, then its done callback")
    assert st["done_gone"] == 1


def test_after_holds_no_thread(make_server):
    """500 requests waiting 1 s each on a worker with one pool thread, which
    stays idle: all are answered in about the delay, not 500 times it."""
    srv = make_server(config=_config(threads=1))
    n, results = 500, []
    socks = [_open(srv, b"GET /after?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(n)]
    t0 = time.monotonic()
    assert _pool(srv.port) == (0, 0)
    for s in socks:
        results.append(Reader(s).response())
        s.close()
    took = time.monotonic() - t0
    assert all(r.status == 200 and r.body.startswith(b"waited 1000 ms") for r in results)
    assert took < 1 + 20 * SLOW, took  # one thread, serialised, would take 500 s
    assert _stats(srv.port)["after_fired"] == n


def test_after_of_a_client_that_left_fires_at_once(make_server):
    """The callback runs at once, knowing the client is gone, and may still
    read the request (its strings live as long as the request: ASan checks
    the callback's reads of a large header and the path)."""
    srv = make_server(config=_config())
    s = _open(srv, b"GET /after?ms=60000 HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"u" * 9000 +
              b"\r\n\r\n")
    wait_until(lambda: json.loads(get(srv.port, "/status").body)["workers"][0]["connections"] == 2,
               what="the request to arrive")
    _reset(s)
    st = wait_until(lambda: (lambda st: st["after_fired"] == 1 and st)(_stats(srv.port)),
                    timeout=5, what="the timer's callback")
    assert st["after_gone"] == 1


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def test_an_inline_stream_waits_for_a_slow_reader(make_server):
    """32 MiB streamed from the loop thread to a client that reads nothing
    for a while: the handler is told to come back (PFD_AGAIN, pfd_on_drain)
    instead of the worker buffering it all."""
    srv = make_server(config=_config(stream_buffer="64k"),
                      env={"ASAN_OPTIONS": "quarantine_size_mb=0:detect_leaks=1"})
    [pid] = srv.workers()
    get(srv.port, "/stats")
    base = _rss_kib(pid)
    s = _open(srv, b"GET /stream?n=512&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n", rcvbuf=65536)
    time.sleep(1)
    grown = _rss_kib(pid) - base
    assert grown < 16 * 1024, f"the worker grew by {grown} KiB"
    s.settimeout(60 * SLOW)
    r = Reader(s).response()
    assert r.status == 200 and len(r.body) == 32 << 20 and r.header("transfer-encoding") == "chunked"
    s.close()
    assert _stats(srv.port)["stream_drains"] > 0


def test_a_client_leaving_an_inline_stream_ends_it(make_server):
    """The stream waits for room (a drain callback is pending) when the
    client resets: the callback still runs, so the handler frees its state."""
    srv = make_server(config=_config(stream_buffer="64k"))
    s = _open(srv, b"GET /stream?n=100000&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n", rcvbuf=65536)
    assert s.recv(100).startswith(b"HTTP/1.1 200")
    wait_until(lambda: _stats(srv.port)["stream_drains"] > 0, what="the stream to wait for room")
    _reset(s)
    wait_until(lambda: _stats(srv.port)["stream_freed"] == 1, timeout=5,
               what="the drain callback to free the stream")
    assert get(srv.port, "/p/a/b").status == 200


def test_a_stream_whose_async_work_finds_the_pool_full_is_cut(make_server):
    """Its status went out with its head: a full pool cannot make it a 503
    (that would be a second answer inside the first); the stream is cut."""
    srv = make_server(config=_config(threads=1, pool_queue=1))
    busy = [_open(srv, b"GET /async?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")]
    wait_until(lambda: _pool(srv.port) == (1, 0), what="the thread busy")
    busy.append(_open(srv, b"GET /async?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n"))
    wait_until(lambda: _pool(srv.port) == (1, 1), what="the queue full")
    s = _open(srv, b"GET /stream-async HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    s.settimeout(10 * SLOW)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200") and b"503" not in data, data
    assert not data.endswith(b"0\r\n\r\n"), data  # no last chunk: the client sees the cut
    for b in busy:
        _reset(b)
    assert "pfd_async: the pool's queue is full" in srv.log()


def test_a_stop_runs_the_callbacks_of_requests_it_cuts(make_server):
    """A graceful stop that cuts a request waiting on a timer still runs its
    callback (its state is freed: LeakSanitizer checks at exit)."""
    srv = make_server(config=_config(shutdown_timeout="1s"))
    s = _open(srv, b"GET /stream?n=100000&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n", rcvbuf=65536)
    s2 = _open(srv, b"GET /after?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(lambda: _stats(srv.port)["stream_drains"] > 0, what="the stream to wait for room")
    assert srv.stop() == 0
    s.close()
    s2.close()


def test_path_and_query_parameters(make_server):
    srv = make_server(config=_config())
    r = get(srv.port, "/p/x%20y/%C3%A9?q=1&z=a+b%26c&empty=&flag")
    assert json.loads(r.body) == {"a": "x y", "b": "\u00e9", "query": [
        ["q", "1"], ["z", "a b&c"], ["empty", ""], ["flag", ""]]}
    assert get(srv.port, "/p/x/y/z").status == 404  # a pattern matches whole paths
    assert get(srv.port, "/p/x/y?bad=%zz").status == 400


def test_methods_of_a_route_give_405_with_allow(make_server):
    srv = make_server(config=_config())
    r = get(srv.port, "/only-post")
    assert r.status == 405 and r.header("allow") == "POST"
    assert get(srv.port, "/only-post", method="POST", body=b"x").status == 200


# ---- uses and misuses of the API, one case each ----------------------------------


def _raw_until_close(srv, raw, timeout=10):
    """Sends raw, reads until the server closes."""
    s = _open(srv, raw)
    s.settimeout(timeout * SLOW)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data


@pytest.mark.parametrize("route", ["/case", "/pool-case"])
@pytest.mark.parametrize("method,status", [("GET", 204), ("GET", 304), ("HEAD", 200)])
def test_a_stream_of_an_answer_without_content_sends_none(make_server, route, method, status):
    """A handler that streams 4 MiB (and wrote some body before) into an
    answer that has no content: the head goes alone, and the next answer on
    the connection is whole. A pool handler is not left waiting for a
    client that will never read the bytes (stream_buffer is 64 KiB)."""
    srv = make_server(config=_config(stream_buffer="64k"))
    s = _open(srv, f"{method} {route}?c=nocontent&status={status}&n=64&size=65536 HTTP/1.1\r\n"
                   f"Host: x\r\n\r\nGET /p/a/b HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    rd = Reader(s)
    first = rd.response(head=True)
    assert first.status == status and first.body == b""
    if method != "HEAD":  # HEAD's head is GET's: chunked
        assert first.header("transfer-encoding") is None
    nxt = rd.response()
    assert nxt.status == 200 and json.loads(nxt.body)["a"] == "a"
    s.close()


def test_content_type_is_copied(make_server):
    srv = make_server(config=_config())
    r = get(srv.port, "/case?c=ctype")
    assert r.status == 200 and r.header("content-type") == "text/x-freed" and r.body == b"typed\n"


def test_an_allocation_too_large_is_null(make_server):
    srv = make_server(config=_config())
    assert get(srv.port, "/case?c=huge_alloc").body == b"null null\n"


@pytest.mark.parametrize("route,case,says", [
    ("/case", "async_twice", "one job at a time"),
    ("/case", "async_after", "pfd_after while pfd_async work"),
    ("/case", "drain_twice", "pfd_on_drain twice"),
    ("/pool-case", "async_on_pool", "pfd_async from a pool thread"),
])
def test_misuse_fails_the_request_with_500_and_a_log_line(make_server, route, case, says):
    """A second job, a timer or a second drain callback while work is out:
    the call fails and so does the request (500), rather than a quiet -1
    the handler may ignore. The worker goes on."""
    srv = make_server(config=_config())
    r = get(srv.port, f"{route}?c={case}")
    assert r.status == 500, r
    wait_until(lambda: says in srv.log(), what=f"the log line ({says})")
    assert get(srv.port, "/p/a/b").status == 200
    if case == "drain_twice":  # the first one still runs, once
        assert wait_until(lambda: _stats(srv.port)["drains"] == 1, what="the drain")


def test_a_drain_callback_with_nothing_queued_still_runs(make_server):
    srv = make_server(config=_config())
    r = get(srv.port, "/case?c=drain_end")
    assert r.status == 200 and r.body == b"" and r.header("transfer-encoding") == "chunked"
    assert _stats(srv.port)["drains"] == 1


def test_an_inline_stream_left_open_is_cut_not_held(make_server):
    """Nothing pending could ever end it: the connection is cut (no last
    chunk, so the client knows), not held until a timeout."""
    srv = make_server(config=_config())
    t0 = time.monotonic()
    data = _raw_until_close(srv, b"GET /case?c=left_open HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and b"open" in data, data
    assert not data.endswith(b"0\r\n\r\n"), data
    assert time.monotonic() - t0 < 5 * SLOW
    assert "a stream was left open with nothing pending" in srv.log()


@pytest.mark.parametrize("route", ["/case", "/pool-case"])
def test_a_write_after_the_stream_ended_goes_nowhere(make_server, route):
    srv = make_server(config=_config())
    data = _raw_until_close(srv, f"GET {route}?c=after_end HTTP/1.1\r\nHost: x\r\n"
                                 f"Connection: close\r\n\r\n".encode())
    assert data.startswith(b"HTTP/1.1 200") and b"ended" in data and b"AFTER" not in data, data
    wait_until(lambda: "a stream written after pfd_stream_end" in srv.log(), what="the log line")


@pytest.mark.parametrize("route", ["/case", "/pool-case"])
def test_a_body_written_before_the_stream_is_its_first_piece(make_server, route):
    srv = make_server(config=_config())
    r = get(srv.port, f"{route}?c=body_then_stream")
    assert r.status == 200 and r.body == b"first,second", r.body


def test_the_head_of_a_pool_stream_is_fixed_by_its_first_piece(make_server):
    srv = make_server(config=_config())
    data = _raw_until_close(srv, b"GET /pool-case?c=late_header HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and b"piece" in data, data
    assert b"x-late" not in data.lower() and b"LATE" not in data, data
    wait_until(lambda: "pfd_header_add after the answer's head was sent" in srv.log(),
               what="the log line")


@pytest.mark.parametrize("route", ["/case", "/pool-case"])
@pytest.mark.parametrize("size", [100, 1 << 20])
def test_a_body_by_reference_is_sent_whole_and_released_on_the_loop(make_server, route, size):
    """A 1 MiB body goes out from the handler's memory (not copied); its
    release runs once, on the loop thread, also for a pool handler."""
    srv = make_server(config=_config())
    r = get(srv.port, f"{route}?c=body_ref&size={size}")
    want = bytes(ord("a") + i % 26 for i in range(size))
    assert r.status == 200 and r.body == want
    st = wait_until(lambda: (lambda st: st["released"] == 1 and st)(_stats(srv.port)),
                    what="the release")
    assert st["released_off_loop"] == 0


def test_a_body_by_reference_to_a_client_that_leaves_is_released(make_server):
    srv = make_server(config=_config())
    s = _open(srv, b"GET /case?c=body_ref&size=33554432 HTTP/1.1\r\nHost: x\r\n\r\n",
              rcvbuf=65536)
    assert s.recv(100).startswith(b"HTTP/1.1 200")
    _reset(s)
    wait_until(lambda: _stats(srv.port)["released"] == 1, what="the release")


def test_shared_regions_are_made_in_init_only(make_server):
    srv = make_server(config=_config())
    assert get(srv.port, "/case?c=shared").body == b"null\n"


def test_a_reload_runs_the_fini_of_the_configuration_it_replaces(make_server):
    srv = make_server(config=_config())
    assert _stats(srv.port)["fini"] == 0
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "reload done" in srv.log(), timeout=30, what="the reload")
    # the region lives on across the reload: the old module's fini counted in it
    wait_until(lambda: _stats(srv.port)["fini"] == 1, what="fini")


def test_one_module_under_two_names_is_loaded_once(make_server, tmp_path):
    """Its init runs once, and so does its fini at a reload."""
    link = tmp_path / "other-name.so"
    link.symlink_to(MODULE)
    conf = _config() + f"[route = /again]\nhandler = stats\nmodule = {link}\n"
    srv = make_server(config=conf)
    st = json.loads(get(srv.port, "/again").body)
    assert st["inits"] == 1 and st == _stats(srv.port)
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "reload done" in srv.log(), timeout=30, what="the reload")
    st = wait_until(lambda: (lambda st: st["fini"] >= 1 and st)(_stats(srv.port)), what="fini")
    assert st["inits"] == 2 and st["fini"] == 1, st


# ---- a request body read as a stream (PFD_BODY_STREAM) ---------------------------


def _fnv(data):
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def _payload(n):
    return bytes((i * 7 + i // 251) & 0xFF for i in range(n))


def test_a_streamed_body_reaches_the_handler_whole(make_server):
    """8 MiB by Content-Length and 3 MiB chunked, past the server's 1 MiB
    max_body_size (the route allows 64 MiB), read 4 KiB at a time."""
    srv = make_server(config=_config(stream_buffer="64k"))
    body = _payload(8 << 20)
    r = get(srv.port, "/upload?chunk=4096", method="POST", body=body)
    assert r.status == 200 and json.loads(r.body) == {"bytes": len(body), "fnv": _fnv(body)}
    small = body[:3 << 20]
    chunks = b"".join(b"%x\r\n" % len(small[i:i + 100_000]) + small[i:i + 100_000] + b"\r\n"
                      for i in range(0, len(small), 100_000))
    s = _open(srv, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
              chunks + b"0\r\n\r\nGET /p/a/b HTTP/1.1\r\nHost: x\r\n\r\n")
    rd = Reader(s)
    assert json.loads(rd.response().body) == {"bytes": len(small), "fnv": _fnv(small)}
    assert json.loads(rd.response().body)["a"] == "a"  # the next request, whole
    s.close()


def test_a_streamed_body_is_read_no_faster_than_the_handler(make_server):
    """The handler pauses 3 s after its first read: the worker reads at
    most about stream_buffer ahead of it, so a 32 MiB upload stalls in the
    client's socket (the kernel's buffers hold a few MiB), then goes on."""
    srv = make_server(config=_config(stream_buffer="64k"))
    total = 32 << 20
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(f"POST /upload?pause=3000 HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n"
              .encode())
    s.setblocking(False)
    sent, piece, t0 = 0, b"z" * 65536, time.monotonic()
    while time.monotonic() - t0 < 1.5:
        try:
            sent += s.send(piece)
        except BlockingIOError:
            time.sleep(0.01)
    assert sent < 16 << 20, f"the worker read {sent} bytes for a handler that read 64 KiB"
    s.setblocking(True)
    s.settimeout(60 * SLOW)
    while sent < total:
        sent += s.send(piece[:min(len(piece), total - sent)])
    r = Reader(s).response()
    assert r.status == 200 and json.loads(r.body)["bytes"] == total
    s.close()


def test_an_answer_before_the_end_of_a_streamed_body_drops_the_rest(make_server):
    srv = make_server(config=_config())
    body = _payload(1 << 20)
    s = _open(srv, f"POST /upload?stop=10&chunk=10 HTTP/1.1\r\nHost: x\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body +
              b"GET /p/a/b HTTP/1.1\r\nHost: x\r\n\r\n")
    rd = Reader(s)
    assert json.loads(rd.response().body) == {"bytes": 10, "fnv": _fnv(body[:10])}
    assert json.loads(rd.response().body)["a"] == "a"
    s.close()


def test_a_streamed_body_over_the_limit_gets_413(make_server):
    """Chunked, so only the bytes tell: the handler's read fails, the client
    gets 413 and the connection closes."""
    srv = make_server(config=_config().replace("max_body_size = 64m", "max_body_size = 100k"))
    chunk = b"%x\r\n" % 65536 + b"q" * 65536 + b"\r\n"
    data = _raw_until_close(srv, b"POST /upload HTTP/1.1\r\nHost: x\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert _stats(srv.port)["body_failed"] == 1
    # by Content-Length, refused before the handler runs
    r = get(srv.port, "/upload", method="POST", body=b"x" * 200_000)
    assert r.status == 413
    assert _stats(srv.port)["body_failed"] == 1


def test_a_stalled_streamed_body_gets_408(make_server):
    srv = make_server(config=_config(body_timeout="1s", body_min_rate=0))
    t0 = time.monotonic()
    data = _raw_until_close(srv, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                                 b"\r\nonly ten b")
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert time.monotonic() - t0 < 10 * SLOW
    assert _stats(srv.port)["body_failed"] == 1


def test_a_client_leaving_in_the_middle_of_a_streamed_body(make_server):
    srv = make_server(config=_config())
    s = _open(srv, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" +
              b"x" * 5000)
    wait_until(lambda: _pool(srv.port)[0] == 1, what="the handler reading")
    _reset(s)
    wait_until(lambda: _stats(srv.port)["body_failed"] == 1, what="the handler's read to fail")
    wait_until(lambda: _pool(srv.port) == (0, 0), what="the handler to end")
    assert get(srv.port, "/p/a/b").status == 200


def test_expect_continue_on_a_streamed_body(make_server):
    srv = make_server(config=_config())
    s = _open(srv, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"Expect: 100-continue\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
    s.sendall(b"hello")
    r = Reader(s).response()
    assert json.loads(r.body) == {"bytes": 5, "fnv": _fnv(b"hello")}
    s.close()


def test_a_streamed_body_route_cannot_run_inline(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text(f"[server]\nlisten = 127.0.0.1:0\n[route = /u]\nhandler = upload\n"
                    f"module = {MODULE}\nmode = inline\n")
    out = subprocess.run([BIN, "--config", str(conf), "--check"], capture_output=True, text=True)
    assert out.returncode == 2 and f"{conf}:6: [route /u]: mode: the upload handler runs on " \
                                   f"the pool" in out.stderr, out.stderr


REST = b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_streamed_answer_before_the_end_of_a_streamed_body_drops_the_rest(make_server):
    """The rest of the body is never read as a request, whatever the answer
    (here a streamed one): the bytes that look like a request are dropped."""
    srv = make_server(config=_config())
    s = _open(srv, b"POST /upload?stop=10&chunk=10&pieces=2 HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: %d\r\n\r\n0123456789" % (10 + len(REST)))
    rd = Reader(s)
    r = rd.response()
    assert r.status == 200 and r.body == b"piece\npiece\n"
    s.sendall(REST)  # the body's rest
    s.sendall(b"GET /p/a/b HTTP/1.1\r\nHost: x\r\n\r\n")
    r = rd.response()
    assert json.loads(r.body)["a"] == "a", r.body  # not the /stats answer
    s.close()


def test_request_timeout_while_a_streamed_body_arrives(make_server, tmp_path):
    """504, and the connection closes: the rest of the body is not read into
    a new exchange (ASan checks the access log's use of the request)."""
    log = tmp_path / "access.log"
    srv = make_server(config=_config(request_timeout="1s", access_log=log, cached_objects=0))
    s = _open(srv, b"POST /upload?pause=3000&chunk=10 HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 1000\r\n\r\n0123456789")
    rd = Reader(s)
    assert rd.response().status == 504
    time.sleep(2.5)  # the handler's job comes back and its exchange goes
    try:
        s.sendall(b"x" * 990)
    except OSError:
        pass
    s.settimeout(10 * SLOW)
    try:
        rest = s.recv(100)
    except ConnectionResetError:
        rest = b""
    assert rest == b"", rest
    s.close()
    assert get(srv.port, "/p/a/b").status == 200
    wait_until(lambda: " 504 " in log.read_text(), what="the 504 in the access log")


def test_a_streamed_body_route_without_a_body(make_server):
    srv = make_server(config=_config())
    for method in ("GET", "POST"):
        t0 = time.monotonic()
        r = get(srv.port, "/upload", method=method) if method == "GET" else \
            get(srv.port, "/upload", method="POST", headers=[("Content-Length", "0")])
        assert json.loads(r.body) == {"bytes": 0, "fnv": _fnv(b"")}
        assert time.monotonic() - t0 < 5 * SLOW


def test_min_rate_does_not_count_the_time_the_handler_held_the_body(make_server):
    """The worker stops reading while the handler pauses (4 s, past
    body_timeout + 1 MB at 100 KB/s): that time is not the client's."""
    srv = make_server(config=_config(body_timeout="1s", body_min_rate="100k",
                                     stream_buffer="64k"))
    body = _payload(1_000_000)
    r = get(srv.port, "/upload?pause=4000", method="POST", body=body)
    assert r.status == 200 and json.loads(r.body)["bytes"] == len(body)


def test_a_stalled_body_under_a_streamed_answer_closes_the_connection(make_server):
    """The handler streams its answer (a piece every 300 ms) without reading
    the body, which stalls: body_timeout still runs (the answer's pieces do
    not restart it), so the connection closes after the answer."""
    srv = make_server(config=_config(body_timeout="1s", body_min_rate=0))
    s = _open(srv, b"POST /upload?stop=0&pieces=8&tick=300 HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 1000\r\n\r\n0123456789")
    rd = Reader(s)
    r = rd.response()
    assert r.status == 200 and r.body == b"piece\n" * 8
    s.settimeout(10 * SLOW)
    assert s.recv(100) == b""  # closed, not kept alive owing 990 bytes
    s.close()


def test_a_body_by_reference_replaced_on_a_pool_thread_is_released_on_the_loop(make_server):
    srv = make_server(config=_config())
    assert get(srv.port, "/pool-case?c=ref_then_text").body == b"replaced\n"
    st = wait_until(lambda: (lambda st: st["released"] == 1 and st)(_stats(srv.port)),
                    what="the release")
    assert st["released_off_loop"] == 0


def test_max_body_size_per_route(make_server, site):
    """nginx's client_max_body_size per location: above or below the
    server's."""
    srv = make_server(config="[server]\nmax_body_size = 1m\n"
                             "[route /big]\nhandler = echo\nmax_body_size = 2m\n"
                             "[route /tiny]\nhandler = echo\nmax_body_size = 1k\n"
                             "[route /]\nhandler = echo\n")
    body = b"b" * (1536 * 1024)
    assert get(srv.port, "/big", method="POST", body=body).body == body
    assert get(srv.port, "/", method="POST", body=body).status == 413
    assert get(srv.port, "/tiny", method="POST", body=b"t" * 1024).status == 200
    assert get(srv.port, "/tiny", method="POST", body=b"t" * 1025).status == 413
    # chunked: counted as it comes
    data = _raw_until_close(srv, b"POST /tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                 b"\r\n\r\n800\r\n" + b"t" * 2048 + b"\r\n0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413"), data[:100]


# ---- a module rebuilt and reloaded under load ------------------------------------

VERSIONED = """
#include <preforkd.h>
static int v(pfd_req *r) { return pfd_text(r, 200, "@TEXT@"); }
static const pfd_handler handlers[] = {{.name = "v", .handle = v}, {0}};
const pfd_app preforkd_module = {.api_version = PFD_API_VERSION, .handlers = handlers};
"""


def _build_module(tmp_path, version, dest):
    src = tmp_path / f"v{version}.c"
    src.write_text(VERSIONED.replace("@TEXT@", f"v{version}"))
    tmp = tmp_path / f"v{version}.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", f"-I{SOURCE / 'workers'}", "-o", str(tmp),
                    str(src)], check=True)
    os.rename(tmp, dest)  # a new file at the path: never rewrite a loaded one in place


@pytest.mark.skipif(not shutil.which("cc") or not shutil.which("wrk"), reason="needs cc and wrk")
def test_a_rebuilt_module_is_picked_up_by_a_reload_under_load(make_server, tmp_path):
    """Kore's reload, done preforkd's way: the module is rebuilt in place,
    SIGHUP brings up workers running the new code while the old ones finish
    what they have; wrk sees no error and no non-2xx answer."""
    module = tmp_path / "app.so"
    _build_module(tmp_path, 1, module)
    conf = f"[route = /v]\nhandler = v\nmodule = {module}\n[route /status]\nhandler = status\n"
    srv = make_server(config=conf, workers=2)
    assert get(srv.port, "/v").body == b"v1"
    wrk = subprocess.Popen(["wrk", "-t1", "-c8", "-d6s", f"http://127.0.0.1:{srv.port}/v"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)
        _build_module(tmp_path, 2, module)
        srv.signal(signal.SIGHUP)
        wait_until(lambda: get(srv.port, "/v").body == b"v2", timeout=20, what="the new code")
        out, _ = wrk.communicate(timeout=60)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    assert "reload done" in srv.log()
    assert re.search(r"\d+ requests in", out), out
    assert "Socket errors" not in out and "Non-2xx" not in out, out
