"""Timeouts: header_timeout (total, for the whole head), body_timeout (pause
between two body reads), keepalive_timeout (idle connection), send_timeout (a
client that stops reading) and linger_timeout (draining after an error).

The bounds are generous on purpose: the suite runs under ASan on a loaded
2-core machine. A 1 s timeout must fire between 0.8 s and 4 s."""

import json
import select
import socket
import time

import pytest

from conftest import Reader, get, wait_until

pytestmark = pytest.mark.timing  # latencies and timeouts: not under valgrind

LOW = 0.8   # a 1 s timeout never fires before this
HIGH = 4.0  # ... and always fires before this


def _config(site, **overrides):
    settings = {
        "header_timeout": "1s",
        "body_timeout": "1s",
        "keepalive_timeout": "1s",
        "send_timeout": "1s",
        "linger_timeout": "1s",
    }
    settings.update(overrides)
    server = "".join(f"{k} = {v}\n" for k, v in settings.items())
    return (f"[server]\n{server}"
            f"[route /]\nhandler = static\nroot = {site}\n"
            f"[route /echo]\nhandler = echo\n"
            f"[route /status]\nhandler = status\n")


@pytest.fixture
def srv(make_server, site):
    return make_server(config=_config(site))


def _others(port):
    """Connections the worker holds besides the /status request itself."""
    r = get(port, "/status")
    assert r.status == 200
    workers = json.loads(r.body)["workers"]
    return sum(w["connections"] for w in workers) - 1


def _wait_eof(sock, limit):
    """Reads until the peer closes; returns (bytes read, seconds waited).
    Fails if nothing closes the connection within limit seconds."""
    start = time.monotonic()
    data = b""
    while True:
        left = limit - (time.monotonic() - start)
        assert left > 0, f"connection still open after {limit} s (got {data[:200]!r})"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        except socket.timeout:
            raise AssertionError(f"connection still open after {limit} s (got {data[:200]!r})")
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


# ---- header_timeout -----------------------------------------------------------


def test_half_a_head_gets_408_after_header_timeout(srv):
    with srv.connect() as s:
        t0 = time.monotonic()
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Half: ")
        rd = Reader(s)
        s.settimeout(HIGH + 2)
        r = rd.response()
        waited = time.monotonic() - t0
        assert r.status == 408
        assert r.header("connection") == "close"
        assert LOW <= waited <= HIGH, f"408 after {waited:.2f} s"
        # the server closes its side right after the answer
        assert rd.closed(timeout=3)


def test_silent_connection_is_closed_without_an_answer(srv):
    with srv.connect() as s:
        data, waited = _wait_eof(s, HIGH + 2)
        assert data == b"", "a connection that sent nothing gets no answer"
        assert LOW <= waited <= HIGH, f"closed after {waited:.2f} s"


def test_header_timeout_is_total_not_per_byte(srv):
    """A client trickling a byte every 0.3 s is still cut at header_timeout."""
    with srv.connect() as s:
        t0 = time.monotonic()
        s.sendall(b"GET /hello.txt HTTP/1.1\r\n")
        answered_at = None
        while time.monotonic() - t0 < 8:
            try:
                s.sendall(b"a")
            except OSError:
                break
            readable, _, _ = select.select([s], [], [], 0.3)
            if readable:
                answered_at = time.monotonic() - t0
                break
        assert answered_at is not None, "trickling client never cut off"
        assert LOW <= answered_at <= HIGH, f"cut after {answered_at:.2f} s"
        s.settimeout(5)
        r = Reader(s).response()
        assert r.status == 408


def test_each_request_on_a_connection_gets_its_own_header_timeout(srv):
    """After a request was answered, the next partial head still gets 408."""
    with srv.connect() as s:
        rd = Reader(s)
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert rd.response().body == b"Hello, World!"
        t0 = time.monotonic()
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHo")
        s.settimeout(HIGH + 2)
        r = rd.response()
        waited = time.monotonic() - t0
        assert r.status == 408
        assert LOW <= waited <= HIGH, f"408 after {waited:.2f} s"


def test_a_head_that_came_with_the_previous_request_gets_its_own_header_timeout(make_server,
                                                                                 site):
    """The second head starts in the packet that ends the first one: its
    header_timeout counts from then, not from the first head's start."""
    srv = make_server(config=_config(site, header_timeout="3s"))
    with srv.connect() as s:
        rd = Reader(s)
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
        time.sleep(2)
        s.sendall(b"\r\nGET /hello.txt HTTP/1.1\r\nHo")
        assert rd.response().status == 200
        time.sleep(2)  # 4 s after the first head began, 2 s into the second
        s.sendall(b"st: x\r\n\r\n")
        s.settimeout(5)
        assert rd.response().status == 200


# ---- body_timeout -------------------------------------------------------------


def test_stalled_body_gets_408_after_body_timeout(srv):
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        t0 = time.monotonic()
        s.settimeout(HIGH + 2)
        rd = Reader(s)
        r = rd.response()
        waited = time.monotonic() - t0
        assert r.status == 408
        assert r.header("connection") == "close"
        assert LOW <= waited <= HIGH, f"408 after {waited:.2f} s"
        assert rd.closed(timeout=3)


def test_slow_but_steady_body_is_not_cut(make_server, site):
    """body_timeout is the pause between two reads, not the body's total time:
    a body sent in pieces 0.25 s apart over ~2 s is answered (at 40 bytes/s,
    above the body_min_rate set here)."""
    srv = make_server(config=_config(site, body_min_rate="16"))
    pieces = [bytes([65 + i]) * 10 for i in range(8)]
    body = b"".join(pieces)
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        t0 = time.monotonic()
        for p in pieces:
            time.sleep(0.25)
            s.sendall(p)
        assert time.monotonic() - t0 > 1.5  # longer than body_timeout in total
        s.settimeout(10)
        r = Reader(s).response()
        assert r.status == 200
        assert r.body == body


# ---- keepalive_timeout --------------------------------------------------------


def test_idle_keepalive_connection_closes_silently(srv):
    with srv.connect() as s:
        rd = Reader(s)
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r = rd.response()
        assert r.status == 200 and r.header("connection") is None
        data, waited = _wait_eof(s, HIGH + 2)
        assert rd.buf + data == b"", "the server sent bytes on an idle connection"
        assert LOW <= waited <= HIGH, f"idle connection closed after {waited:.2f} s"


def test_keepalive_idle_time_restarts_with_each_request(make_server, site):
    srv = make_server(config=_config(site, keepalive_timeout="2s"))
    with srv.connect() as s:
        rd = Reader(s)
        t0 = time.monotonic()
        for _ in range(3):
            s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert rd.response().body == b"Hello, World!"
            time.sleep(1.1)
        # 3.3 s on the connection, longer than keepalive_timeout: still open
        assert time.monotonic() - t0 > 3.2
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert rd.response().body == b"Hello, World!"


# ---- send_timeout -------------------------------------------------------------


def test_client_that_stops_reading_is_cut_and_others_are_served(srv, site):
    size = 50 << 20
    with open(site / "huge.bin", "wb") as f:
        f.truncate(size)  # sparse: 50 MiB of zeros without the disk writes
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(10)
        s.connect(("127.0.0.1", srv.port))
        s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        assert _others(srv.port) == 1, "the stalled connection should still be open now"
        # the server keeps serving others while this one is stuck
        for _ in range(10):
            t = time.monotonic()
            r = get(srv.port, "/hello.txt")
            assert r.status == 200 and r.body == b"Hello, World!"
            assert time.monotonic() - t < 1.0
        # send_timeout after the socket buffers filled: the worker drops it
        wait_until(lambda: _others(srv.port) == 0, timeout=10, interval=0.1,
                   what="the worker to drop the client that stopped reading")
        dropped = time.monotonic() - t0
        assert dropped >= LOW, f"dropped after {dropped:.2f} s, before send_timeout"
        # what was already in flight arrives, then the end: far from 50 MiB
        data, _ = _wait_eof(s, 20)
        assert data.startswith(b"HTTP/1.1 200 ")
        assert len(data) < size // 2
    finally:
        s.close()
    r = get(srv.port, "/hello.txt")
    assert r.status == 200


def test_slow_reader_that_keeps_reading_gets_the_whole_file(make_server, site):
    """send_timeout counts from the last progress, and header_timeout covers
    the request head only: a client that reads at a steady pace for longer
    than both in total gets the whole file. (The pace
    must drain half the server's send buffer, <= 2 MiB here, well within
    send_timeout, since the kernel wakes a writer only then.)"""
    srv = make_server(config=_config(site, send_timeout="2s"))
    size = 16 << 20
    rate = 4 << 20  # bytes per second: 4 s in all, twice send_timeout
    (site / "sixteen.bin").write_bytes(bytes(range(256)) * (size // 256))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(10)
        s.connect(("127.0.0.1", srv.port))
        s.sendall(b"GET /sixteen.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        t0 = time.monotonic()
        got = 0
        data_head = b""
        while True:
            chunk = s.recv(64 * 1024)
            if not chunk:
                break
            if len(data_head) < 4096:
                data_head += chunk[:4096]
            got += len(chunk)
            ahead = got / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
            assert time.monotonic() - t0 < 40
        elapsed = time.monotonic() - t0
        assert data_head.startswith(b"HTTP/1.1 200 ")
        head_len = data_head.index(b"\r\n\r\n") + 4
        assert got - head_len == size, f"cut after {got - head_len} bytes, {elapsed:.2f} s"
        assert elapsed > 3  # the transfer did last longer than send_timeout
    finally:
        s.close()


# ---- linger_timeout -----------------------------------------------------------


def test_lingering_after_408_ends_after_linger_timeout(srv):
    """After an error answer the server drains the client (the client's late
    bytes do not reset the connection), then closes after linger_timeout
    even if the client never closes."""
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nxx")
        s.settimeout(HIGH + 2)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 408
        assert rd.closed(timeout=3)  # the server's side is shut
        answered = time.monotonic()
        # late body bytes are read and dropped: no reset yet
        s.sendall(b"y" * 1000)
        time.sleep(0.2)
        assert _others(srv.port) == 1, "the connection should be lingering"
        wait_until(lambda: _others(srv.port) == 0, timeout=HIGH + 2, interval=0.1,
                   what="the lingering connection to close")
        waited = time.monotonic() - answered
        assert 0.5 <= waited <= HIGH, f"lingered for {waited:.2f} s"


def test_linger_timeout_bounds_a_client_that_keeps_sending(srv):
    """A client that keeps sending after the error answer is not drained
    forever: the connection closes about linger_timeout after the answer."""
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n\r\nxx")
        s.settimeout(HIGH + 2)
        rd = Reader(s)
        assert rd.response().status == 408
        answered = time.monotonic()
        cut_at = None
        while time.monotonic() - answered < 8:
            try:
                s.sendall(b"y" * 100)
            except OSError:  # reset: the server closed for good
                cut_at = time.monotonic() - answered
                break
            if _others(srv.port) == 0:
                cut_at = time.monotonic() - answered
                break
            time.sleep(0.2)
        assert cut_at is not None, "a client sending during linger is drained forever"
        assert 0.5 <= cut_at <= HIGH, f"lingered for {cut_at:.2f} s"
