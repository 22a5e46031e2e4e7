"""Pipelining (RFC 9112 section 9.3): requests sent back to back without
waiting are all answered, in order, with the right bodies, however the bytes
arrive; a final Connection: close or a half-close ends the connection only
after everything before it is answered."""

import socket
import threading
import time

import pytest

from conftest import Reader, request


@pytest.fixture
def srv(make_server, site):
    return make_server(config=f"[route /]\nhandler = static\nroot = {site}\n"
                              "[route /echo]\nhandler = echo\n")


def etag_of(srv, path):
    r = request(srv.port, b"HEAD " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                head=True)
    assert r.status == 200 and r.header("etag")
    return r.header("etag").encode()


class Step:
    """One pipelined request and what its answer must be."""

    def __init__(self, raw, status, body=None, head=False, check=None):
        self.raw, self.status, self.body, self.head, self.check = raw, status, body, head, check

    def verify(self, i, r):
        assert r.status == self.status, f"request {i}: {self.raw[:60]!r} -> {r}"
        if self.body is not None:
            assert r.body == self.body, f"request {i}: {self.raw[:60]!r}: wrong body {r}"
        if self.check:
            self.check(r)


def get(path, extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


def mixed_steps(srv, site):
    """32 requests of every kind, the 1 MiB file in the middle."""
    hello = b"Hello, World!"
    big = (site / "big.bin").read_bytes()
    etag = etag_of(srv, b"/hello.txt")

    def is_dir_redirect(r):
        assert r.header("location") == "/dir/"

    def head_hello(r):
        assert r.header("content-length") == "13" and r.body == b""

    def not_modified(r):
        assert r.header("etag") == etag.decode() and r.body == b""

    kinds = [
        lambda i: Step(get(b"/hello.txt"), 200, hello),
        lambda i: Step(b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 200, head=True,
                       check=head_hello),
        lambda i: Step(get(b"/missing-%d.txt" % i), 404),
        lambda i: Step(get(b"/style.css?v=%d&x=y" % i), 200, b"body { color: red }\n"),
        lambda i: Step(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                       % len(b"body-%d" % i) + b"body-%d" % i, 200, b"body-%d" % i),
        lambda i: Step(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"3\r\nchu\r\n%x\r\nnk-%d\r\n0\r\n\r\n" % (len(b"nk-%d" % i), i),
                       200, b"chunk-%d" % i),
        lambda i: Step(get(b"/dir"), 301, check=is_dir_redirect),
        lambda i: Step(get(b"/hello.txt", b"If-None-Match: " + etag + b"\r\n"), 304,
                       check=not_modified),
        lambda i: Step(get(b"/dir/"), 200, b"dir index\n"),
        lambda i: Step(get(b"/empty.txt"), 200, b""),
    ]
    steps = [kinds[i % len(kinds)](i) for i in range(32)]
    steps[16] = Step(get(b"/big.bin"), 200, big)
    assert len(steps) == 32
    return steps


def read_and_verify(rd, steps):
    for i, st in enumerate(steps):
        st.verify(i, rd.response(head=st.head))


def test_32_mixed_requests_in_one_write(srv, site):
    steps = mixed_steps(srv, site)
    with srv.connect(timeout=20) as s:
        s.sendall(b"".join(st.raw for st in steps))
        rd = Reader(s)
        read_and_verify(rd, steps)
        # exactly 32: nothing more arrives, and the connection is still usable
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1)
        s.settimeout(10)
        s.sendall(get(b"/hello.txt", b"Connection: close\r\n"))
        assert rd.response().body == b"Hello, World!"
        assert rd.closed()


def test_32_mixed_requests_one_byte_at_a_time(srv, site):
    steps = mixed_steps(srv, site)
    raw = b"".join(st.raw for st in steps)
    with srv.connect(timeout=20) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(raw)):
            s.sendall(raw[i:i + 1])
            if i % 64 == 0:
                time.sleep(0.0005)
        rd = Reader(s)
        read_and_verify(rd, steps)
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1)


def test_32_mixed_requests_read_while_writing(srv, site):
    # responses stream back while the requests are still being written
    steps = mixed_steps(srv, site)
    raw = b"".join(st.raw for st in steps)
    with srv.connect(timeout=20) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def write():
            for i in range(0, len(raw), 37):
                s.sendall(raw[i:i + 37])
                time.sleep(0.001)

        t = threading.Thread(target=write, daemon=True)
        t.start()
        read_and_verify(Reader(s), steps)
        t.join(10)
        assert not t.is_alive()


def test_pipeline_ending_with_connection_close(srv):
    reqs = [get(b"/hello.txt"), get(b"/style.css"),
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nlast",
            get(b"/hello.txt", b"Connection: close\r\n")]
    with srv.connect() as s:
        # a request after the closing one is never answered
        s.sendall(b"".join(reqs) + get(b"/dir/"))
        rd = Reader(s)
        rs = [rd.response() for _ in range(4)]
        assert [r.body for r in rs] == [b"Hello, World!", b"body { color: red }\n", b"last",
                                        b"Hello, World!"]
        assert [r.header("connection") for r in rs] == [None, None, None, "close"]
        assert rd.closed()


@pytest.mark.parametrize("last", ["get", "big", "chunked-post"])
def test_half_close_after_pipelined_requests(srv, site, last):
    reqs = [get(b"/hello.txt"), b"HEAD /style.css HTTP/1.1\r\nHost: x\r\n\r\n", get(b"/nope")]
    expect = [(200, b"Hello, World!"), (200, b""), (404, None)]
    if last == "get":
        reqs.append(get(b"/dir/"))
        expect.append((200, b"dir index\n"))
    elif last == "big":
        reqs.append(get(b"/big.bin"))
        expect.append((200, (site / "big.bin").read_bytes()))
    else:
        reqs.append(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"4\r\ntail\r\n0\r\n\r\n")
        expect.append((200, b"tail"))
    with srv.connect(timeout=20) as s:
        s.sendall(b"".join(reqs))
        s.shutdown(socket.SHUT_WR)
        rd = Reader(s)
        for i, (status, body) in enumerate(expect):
            r = rd.response(head=(i == 1))
            assert r.status == status, (i, r)
            if body is not None:
                assert r.body == body, (i, r)
        assert rd.closed()


def test_half_close_with_a_partial_last_request(srv):
    with srv.connect() as s:
        s.sendall(get(b"/hello.txt") + get(b"/style.css") + b"GET /dir/ HTTP/1.1\r\nHo")
        s.shutdown(socket.SHUT_WR)
        rd = Reader(s)
        assert rd.response().body == b"Hello, World!"
        assert rd.response().body == b"body { color: red }\n"
        # the cut request gets no answer, the connection just ends
        assert rd.closed()


def test_pipeline_larger_than_the_buffers(srv):
    """500 requests (over 100 KiB) written without reading: the server stops
    reading while its answers pile up, then catches up; all in order."""
    n = 500
    pad = b"X-Pad: " + b"p" * 150 + b"\r\n"
    reqs = []
    for i in range(n):
        if i % 2:
            body = b"echo-%d" % i
            reqs.append(b"POST /echo HTTP/1.1\r\nHost: x\r\n" + pad +
                        b"Content-Length: %d\r\n\r\n" % len(body) + body)
        else:
            reqs.append(b"GET /hello.txt?i=%d HTTP/1.1\r\nHost: x\r\n" % i + pad + b"\r\n")
    raw = b"".join(reqs)
    assert len(raw) > 100 * 1024
    with socket.socket() as s:
        # a small receive window: the answers cannot all hide in the kernel
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(20)
        s.connect(("127.0.0.1", srv.port))
        done = threading.Event()
        error = []

        def write():
            try:
                s.sendall(raw)
            except OSError as e:  # pragma: no cover - reported below
                error.append(e)
            done.set()

        t = threading.Thread(target=write, daemon=True)
        t.start()
        # not reading: let the writer get as far as the buffers allow
        done.wait(5)
        time.sleep(0.2)
        rd = Reader(s)
        for i in range(n):
            r = rd.response()
            assert r.status == 200, (i, r)
            want = b"echo-%d" % i if i % 2 else b"Hello, World!"
            assert r.body == want, (i, r)
        t.join(10)
        assert not error, error
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1)


def test_many_large_responses_pipelined(srv, site):
    # every answer is the 1 MiB file: the output, not the input, is the bottleneck
    big = (site / "big.bin").read_bytes()
    with srv.connect(timeout=30) as s:
        s.sendall(get(b"/big.bin") * 8 + get(b"/hello.txt", b"Connection: close\r\n"))
        rd = Reader(s)
        for i in range(8):
            r = rd.response()
            assert r.status == 200 and r.body == big, i
        assert rd.response().body == b"Hello, World!"
        assert rd.closed()


def test_pipelined_http10_keep_alive(srv):
    reqs = (b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 3 +
            b"GET /style.css HTTP/1.0\r\n\r\n" + get(b"/hello.txt"))
    with srv.connect() as s:
        s.sendall(reqs)
        rd = Reader(s)
        for _ in range(3):
            r = rd.response()
            assert r.body == b"Hello, World!" and r.header("connection") == "keep-alive"
        r = rd.response()
        assert r.body == b"body { color: red }\n" and r.header("connection") == "close"
        assert rd.closed()
