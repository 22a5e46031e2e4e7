"""Request bodies: Content-Length and chunked bodies through the echo handler,
bodies that arrive slowly, Expect: 100-continue, and bodies sent to routes
that do not want them (read, dropped, and the next request still parsed from
the right place)."""

import os
import random
import socket
import time

import pytest

from conftest import Reader

NEXT = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def config(site, extra=""):
    return (f"[server]\n{extra}"
            f"[route /]\nhandler = static\nroot = {site}\n"
            "[route /echo]\nhandler = echo\n")


@pytest.fixture
def srv(make_server, site):
    return make_server(config=config(site, "body_timeout = 20s\n"))


def post_cl(body, path=b"/echo", extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body) +
            extra + b"\r\n" + body)


def encode_chunked(body, sizes, ext=b"", trailers=b""):
    out, i, k = b"", 0, 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        k += 1
        piece = body[i:i + n]
        i += len(piece)
        out += b"%x%s\r\n%s\r\n" % (len(piece), ext, piece)
    return out + b"0\r\n" + trailers + b"\r\n"


def post_chunked(encoded, path=b"/echo", extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + extra +
            b"\r\n" + encoded)


def assert_next_works(rd):
    rd.sock.sendall(NEXT)
    r = rd.response()
    assert r.status == 200 and r.body == b"Hello, World!"


# ---- Content-Length -------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 100, 4096, 64 * 1024])
def test_content_length_body_is_echoed(srv, size):
    body = os.urandom(size)
    with srv.connect() as s:
        s.sendall(post_cl(body))
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200
        assert r.header("content-length") == str(size)
        assert r.body == body
        assert_next_works(rd)


def test_echo_without_a_body(srv):
    with srv.connect() as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == b""
        assert_next_works(rd)


def test_echo_keeps_the_content_type(srv):
    with srv.connect() as s:
        s.sendall(post_cl(b"{}", extra=b"Content-Type: application/json\r\n"))
        r = Reader(s).response()
        assert r.status == 200 and r.body == b"{}"
        assert r.header("content-type") == "application/json"


def test_bodies_do_not_leak_between_requests(srv):
    # a long body, then shorter ones on the same connection: no stale bytes
    with srv.connect() as s:
        rd = Reader(s)
        for body in (b"A" * 5000, b"B" * 10, b"C", b"D" * 3000):
            s.sendall(post_cl(body))
            r = rd.response()
            assert r.status == 200 and r.body == body


def test_empty_body_after_a_body_on_one_connection(srv):
    with srv.connect() as s:
        rd = Reader(s)
        s.sendall(post_cl(b"first"))
        assert rd.response().body == b"first"
        s.sendall(post_cl(b""))
        r = rd.response()
        assert r.status == 200 and r.body == b""


@pytest.mark.parametrize("size", [1 << 20, 3 << 20], ids=["1MiB", "3MiB"])
def test_large_body_with_max_body_size_raised(make_server, site, size):
    srv = make_server(config=config(site, "max_body_size = 4m\n"))
    body = os.urandom(size)
    with srv.connect(timeout=30) as s:
        s.sendall(post_cl(body))
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200
        assert len(r.body) == size and r.body == body
        assert_next_works(rd)


# ---- chunked ------------------------------------------------------------------------


def test_chunked_body_is_decoded(srv):
    body = os.urandom(10000)
    with srv.connect() as s:
        s.sendall(post_chunked(encode_chunked(body, [1, 7, 100, 4096, 0x3ff])))
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == body
        assert_next_works(rd)


def test_chunked_body_with_extensions_and_trailers(srv):
    body = b"The quick brown fox jumps over the lazy dog" * 50
    encoded = encode_chunked(body, [17, 300], ext=b";name=value;flag;q=\"a;b\"",
                             trailers=b"X-Checksum: 42\r\nX-Other: yes\r\n")
    with srv.connect() as s:
        s.sendall(post_chunked(encoded) + NEXT)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == body
        # trailers are not mistaken for a request, nor kept in the body
        r2 = rd.response()
        assert r2.status == 200 and r2.body == b"Hello, World!"


def test_empty_chunked_body(srv):
    with srv.connect() as s:
        s.sendall(post_chunked(b"0\r\n\r\n") + NEXT)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == b""
        assert rd.response().body == b"Hello, World!"


def test_large_chunked_body(srv):
    body = os.urandom(900 * 1024)
    with srv.connect(timeout=30) as s:
        s.sendall(post_chunked(encode_chunked(body, [65536, 12345, 1])))
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == body
        assert_next_works(rd)


# ---- slow bodies ---------------------------------------------------------------------------


def send_slowly(sock, data, pieces, pause=0.003, seed=1):
    """Writes data in pieces of random size, pausing between them."""
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(data)), min(pieces - 1, len(data) - 1)))
    prev = 0
    for cut in cuts + [len(data)]:
        sock.sendall(data[prev:cut])
        prev = cut
        time.sleep(pause)


def test_content_length_body_in_many_small_writes(srv):
    body = os.urandom(3000)
    with srv.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_slowly(s, post_cl(body) + NEXT, pieces=300)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == body
        assert rd.response().body == b"Hello, World!"


def test_chunked_body_in_many_small_writes(srv):
    body = os.urandom(2000)
    raw = post_chunked(encode_chunked(body, [1, 2, 3, 250], ext=b";e=1",
                                      trailers=b"X-T: 1\r\n")) + NEXT
    with srv.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_slowly(s, raw, pieces=400, pause=0.002)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == body
        assert rd.response().body == b"Hello, World!"


def test_body_one_byte_at_a_time(srv):
    body = b"0123456789" * 20
    raw = post_cl(body)
    with srv.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(raw)):
            s.sendall(raw[i:i + 1])
            if i % 20 == 0:
                time.sleep(0.001)
        r = Reader(s).response()
        assert r.status == 200 and r.body == body


# ---- Expect: 100-continue ----------------------------------------------------------------


def read_exact(sock, n, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_expect_100_continue_with_content_length(srv):
    body = os.urandom(5000)
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Expect: 100-continue\r\n\r\n" % len(body))
        # the interim response comes before any body byte is sent
        assert read_exact(s, len(CONTINUE)) == CONTINUE
        s.sendall(body)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == body
        assert_next_works(rd)


def test_expect_100_continue_with_chunked(srv):
    body = b"chunky" * 100
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Expect: 100-Continue\r\n\r\n")
        assert read_exact(s, len(CONTINUE)) == CONTINUE
        s.sendall(encode_chunked(body, [77]))
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == body


def test_expect_100_continue_body_sent_anyway(srv):
    # a client that does not wait: 100, then the final answer, nothing else
    body = b"impatient"
    with srv.connect() as s:
        s.sendall(post_cl(body, extra=b"Expect: 100-continue\r\n") + NEXT)
        rd = Reader(s)
        r = rd.response()
        if r.status == 100:
            r = rd.response()
        assert r.status == 200 and r.body == body
        r2 = rd.response()
        assert r2.status == 200 and r2.body == b"Hello, World!"


def test_expect_with_body_over_limit_is_413_without_continue(make_server, site):
    srv = make_server(config=config(site, "max_body_size = 1k\n"))
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        assert r.status == 413, "100 Continue was sent for a body that will be refused"
        assert r.header("connection") == "close"
        assert rd.closed()


def test_expect_in_http10_gets_no_interim_response(srv):
    body = b"old client"
    raw = (b"POST /echo HTTP/1.0\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" %
           len(body)) + body
    with srv.connect() as s:
        s.sendall(raw)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200, "an HTTP/1.0 client must not get 100 Continue"
        assert r.body == body


def test_expect_without_a_body_gets_no_interim_response(srv):
    with srv.connect() as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == b"Hello, World!"


# ---- bodies to routes that do not want them --------------------------------------------------


@pytest.mark.parametrize("size", [1, 5000, 200 * 1024])
def test_content_length_body_to_static_is_dropped(srv, size):
    body = b"x" * (size - 1) + b"G"  # ends like the start of a request would
    raw = (b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size) + body
    with srv.connect() as s:
        s.sendall(raw + b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == b"Hello, World!"
        r2 = rd.response()
        assert r2.status == 200 and r2.body == b"body { color: red }\n"
        assert_next_works(rd)


@pytest.mark.parametrize("size", [1, 5000, 200 * 1024])
def test_chunked_body_to_static_is_dropped(srv, size):
    body = (b"GET /smuggle HTTP/1.1\r\n\r\n" * (size // 25 + 1))[:size]
    raw = (b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
           encode_chunked(body, [1000, 3]))
    with srv.connect() as s:
        s.sendall(raw + b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == b"Hello, World!"
        r2 = rd.response()
        assert r2.status == 200 and r2.body == b"body { color: red }\n"
        assert_next_works(rd)


def test_body_to_static_in_separate_writes(srv):
    with srv.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        time.sleep(0.05)
        s.sendall(b"01234")
        time.sleep(0.05)
        s.sendall(b"56789GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = Reader(s)
        assert rd.response().body == b"Hello, World!"
        assert rd.response().body == b"body { color: red }\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_post_to_static_is_405_then_next_request_works(srv, chunked):
    body = b"field=value&other=" + b"z" * 3000
    if chunked:
        raw = post_chunked(encode_chunked(body, [100]), path=b"/hello.txt")
    else:
        raw = post_cl(body, path=b"/hello.txt")
    with srv.connect() as s:
        s.sendall(raw + NEXT)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 405
        assert r.header("allow") == "GET, HEAD"
        assert r.header("connection") is None  # the body was read: the connection stays
        r2 = rd.response()
        assert r2.status == 200 and r2.body == b"Hello, World!"
        assert_next_works(rd)


def test_body_to_missing_file_is_404_then_next_request_works(srv):
    with srv.connect() as s:
        s.sendall(post_cl(b"q" * 777, path=b"/nope.txt") + NEXT)
        rd = Reader(s)
        assert rd.response().status in (404, 405)
        assert rd.response().body == b"Hello, World!"
