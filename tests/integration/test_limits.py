"""Request limits: max_uri (414), max_header_size and max_headers (431),
max_body_size (413). Each refusal closes the connection, arrives without the
server waiting for the rest of an oversized request, and leaves the server
serving; values right at a limit are accepted.

Sizes as the server counts them:
  max_uri          the request-target, as sent
  max_header_size  everything after the request line: the field lines with
                   their CRLFs and the final empty line
  max_headers      field lines (Host included)
  max_body_size    body bytes after chunked decoding"""

import select
import socket
import time

import pytest

from conftest import Reader

MAX_URI = 64
MAX_HEADER_SIZE = 1024
MAX_HEADERS = 10
MAX_BODY = 1024

FOLLOW = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def srv(make_server, site):
    return make_server(config=(
        "[server]\n"
        f"max_uri = {MAX_URI}\n"
        "max_header_size = 1k\n"
        f"max_headers = {MAX_HEADERS}\n"
        "max_body_size = 1k\n"
        "header_timeout = 30s\n"
        "body_timeout = 30s\n"
        f"[route /]\nhandler = static\nroot = {site}\n"
        "[route /echo]\nhandler = echo\n"))


def assert_serves(srv):
    with srv.connect() as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = Reader(s).response()
        assert r.status == 200 and r.body == b"Hello, World!"


def send_one(srv, raw, timeout=10):
    """Sends raw followed by a valid request; returns the responses that arrive
    before the server closes (a refusal must leave exactly one)."""
    with srv.connect(timeout=timeout) as s:
        s.sendall(raw + FOLLOW)
        rd = Reader(s)
        out = [rd.response()]
        if out[0].status >= 400:
            assert out[0].header("connection") == "close", out[0]
            assert rd.closed(), f"bytes after a refusal: {rd.buf[:200]!r}"
        else:
            out.append(rd.response())
        return out


def assert_refused(srv, raw, status):
    rs = send_one(srv, raw)
    assert rs[0].status == status, rs[0]
    assert_serves(srv)


def assert_accepted(srv, raw, body=b"Hello, World!"):
    rs = send_one(srv, raw)
    assert rs[0].status == 200, rs[0]
    assert rs[0].body == body
    # and the pipelined request after it was parsed from the right place
    assert rs[1].status == 200 and rs[1].body == b"Hello, World!"


def target_of(n):
    """A target of exactly n bytes naming /hello.txt."""
    t = "/hello.txt?" + "a" * (n - len("/hello.txt?"))
    assert len(t) == n
    return t.encode()


def request_with_target(n):
    return b"GET " + target_of(n) + b" HTTP/1.1\r\nHost: x\r\n\r\n"


def head_with_section(size, nfields=2):
    """A GET whose header section (after the request line) is exactly size
    bytes, in nfields field lines."""
    fixed = b"Host: x\r\n"
    fields = [fixed]
    for i in range(nfields - 2):
        fields.append(b"X-F%d: v\r\n" % i)
    used = sum(len(f) for f in fields) + len(b"X-Pad: \r\n") + 2
    fields.append(b"X-Pad: " + b"p" * (size - used) + b"\r\n")
    section = b"".join(fields) + b"\r\n"
    assert len(section) == size
    return b"GET /hello.txt HTTP/1.1\r\n" + section


def head_with_fields(n):
    fields = [b"Host: x\r\n"] + [b"X-F%d: v\r\n" % i for i in range(n - 1)]
    return b"GET /hello.txt HTTP/1.1\r\n" + b"".join(fields) + b"\r\n"


def answer_while_sending(srv, first, filler, max_bytes, step=256):
    """Sends first, then filler bytes in steps, never finishing the request;
    returns (response, bytes sent) as soon as the server answers."""
    with srv.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(first)
        sent = len(first)
        deadline = time.monotonic() + 20
        while True:
            readable, _, _ = select.select([s], [], [], 0.02)
            if readable:
                break
            assert sent < max_bytes, f"no answer after {sent} bytes of an endless request"
            assert time.monotonic() < deadline
            s.sendall(filler * step)
            sent += step * len(filler)
        rd = Reader(s)
        r = rd.response()
        assert r.header("connection") == "close"
        assert rd.closed()
        return r, sent


# ---- max_uri ------------------------------------------------------------------


def test_target_at_max_uri_is_accepted(srv):
    assert_accepted(srv, request_with_target(MAX_URI))


def test_target_over_max_uri_is_414(srv):
    assert_refused(srv, request_with_target(MAX_URI + 1), 414)
    assert_refused(srv, request_with_target(MAX_URI * 20), 414)


def test_max_uri_counts_the_target_not_the_method(srv):
    # a longer method does not eat into the target's allowance
    raw = b"OPTIONS " + target_of(MAX_URI) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    with srv.connect() as s:
        s.sendall(raw + FOLLOW)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 405, r  # the static handler's answer, not 414
        assert rd.response().body == b"Hello, World!"


def test_endless_request_line_is_414_before_the_client_is_done(srv):
    r, sent = answer_while_sending(srv, b"GET /", b"a", max_bytes=64 * 1024)
    assert r.status == 414
    assert sent < 16 * 1024
    assert_serves(srv)


def test_endless_request_line_in_one_write_is_414(srv):
    with srv.connect() as s:
        s.sendall(b"GET /" + b"a" * 20000)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 414
        assert rd.closed()


# ---- max_header_size ------------------------------------------------------------


def test_header_section_at_max_is_accepted(srv):
    assert_accepted(srv, head_with_section(MAX_HEADER_SIZE))


def test_header_section_over_max_is_431(srv):
    assert_refused(srv, head_with_section(MAX_HEADER_SIZE + 1), 431)
    assert_refused(srv, head_with_section(MAX_HEADER_SIZE * 8), 431)


def test_header_section_at_max_in_many_fields(srv):
    assert_accepted(srv, head_with_section(MAX_HEADER_SIZE, nfields=MAX_HEADERS))
    assert_refused(srv, head_with_section(MAX_HEADER_SIZE + 1, nfields=MAX_HEADERS), 431)


def test_both_target_and_header_section_at_their_limits(srv):
    raw = head_with_section(MAX_HEADER_SIZE).replace(b"/hello.txt", target_of(MAX_URI), 1)
    assert_accepted(srv, raw)


def test_endless_header_field_is_431_before_the_client_is_done(srv):
    r, sent = answer_while_sending(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Long: ",
                                   b"v", max_bytes=64 * 1024)
    assert r.status == 431
    assert sent < 16 * 1024
    assert_serves(srv)


def test_endless_header_section_is_431(srv):
    # many short complete lines, never the empty line
    r, sent = answer_while_sending(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n",
                                   b"X: y\r\n", max_bytes=64 * 1024, step=20)
    assert r.status == 431


# ---- max_headers --------------------------------------------------------------------


def test_max_headers_fields_are_accepted(srv):
    assert_accepted(srv, head_with_fields(MAX_HEADERS))


def test_too_many_fields_is_431(srv):
    assert_refused(srv, head_with_fields(MAX_HEADERS + 1), 431)
    assert_refused(srv, head_with_fields(MAX_HEADERS * 10), 431)


# ---- max_body_size --------------------------------------------------------------------


def post(body_head, body=b""):
    return b"POST /echo HTTP/1.1\r\nHost: x\r\n" + body_head + b"\r\n" + body


def test_content_length_at_max_is_accepted(srv):
    body = bytes(range(256)) * (MAX_BODY // 256)
    assert_accepted(srv, post(b"Content-Length: %d\r\n" % MAX_BODY, body), body=body)


def test_content_length_over_max_is_413_without_reading_the_body(srv):
    with srv.connect() as s:
        s.sendall(post(b"Content-Length: %d\r\n" % (MAX_BODY + 1)))
        # no body sent: the answer must not wait for it (body_timeout is 30 s)
        s.settimeout(5)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 413
        assert r.header("connection") == "close"
        # the client may still send its body: it is drained, never parsed
        s.sendall(b"x" * (MAX_BODY + 1) + FOLLOW)
        assert rd.closed()
    assert_serves(srv)


def test_huge_content_length_is_413(srv):
    assert_refused(srv, post(b"Content-Length: %d\r\n" % (1 << 40)), 413)


def test_content_length_over_max_on_a_static_route_is_413(srv):
    raw = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
    assert_refused(srv, raw, 413)


def chunks(*sizes):
    out = b""
    for n in sizes:
        out += b"%x\r\n%s\r\n" % (n, b"c" * n)
    return out + b"0\r\n\r\n"


def test_chunked_body_at_max_is_accepted(srv):
    assert_accepted(srv, post(b"Transfer-Encoding: chunked\r\n", chunks(512, 500, 12)),
                    body=b"c" * MAX_BODY)


def test_chunked_body_over_max_is_413(srv):
    assert_refused(srv, post(b"Transfer-Encoding: chunked\r\n", chunks(512, 500, 13)), 413)


def test_chunked_body_growing_over_max_is_413_before_it_ends(srv):
    with srv.connect() as s:
        s.sendall(post(b"Transfer-Encoding: chunked\r\n", b"3e8\r\n" + b"c" * 1000 + b"\r\n"))
        # a chunk bigger than what is left, and never the end of the body
        s.sendall(b"1000\r\n" + b"c" * 100)
        s.settimeout(5)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 413
        assert r.header("connection") == "close"
        assert rd.closed()
    assert_serves(srv)


def test_oversized_trailer_section_is_refused(srv):
    trailers = b"X-T: " + b"t" * (MAX_HEADER_SIZE * 2) + b"\r\n"
    raw = post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n")
    assert_refused(srv, raw, 431)


# ---- the server survives a burst of refusals ----------------------------------------


def test_refusals_leave_the_server_serving(srv):
    bad = [
        request_with_target(MAX_URI + 1),
        head_with_section(MAX_HEADER_SIZE + 1),
        head_with_fields(MAX_HEADERS + 1),
        post(b"Content-Length: %d\r\n" % (MAX_BODY + 1)),
    ]
    for i in range(5):
        for raw in bad:
            with srv.connect() as s:
                s.sendall(raw)
                rd = Reader(s)
                assert rd.response().status in (413, 414, 431)
                assert rd.closed()
    # keep-alive still works after all that
    with srv.connect() as s:
        rd = Reader(s)
        for _ in range(5):
            s.sendall(FOLLOW)
            assert rd.response().body == b"Hello, World!"


# ---- defaults (no config file) ----------------------------------------------------------


def test_default_max_uri(static_server):
    srv = static_server
    assert_accepted(srv, request_with_target(7 * 1024))
    assert_accepted(srv, request_with_target(8 * 1024))
    assert_refused(srv, request_with_target(8 * 1024 + 1), 414)
    assert_refused(srv, request_with_target(9 * 1024), 414)


def test_default_max_header_size(static_server):
    srv = static_server
    assert_accepted(srv, head_with_section(32 * 1024))
    assert_refused(srv, head_with_section(32 * 1024 + 1), 431)


def test_default_max_headers(static_server):
    srv = static_server
    assert_accepted(srv, head_with_fields(100))
    assert_refused(srv, head_with_fields(101), 431)


def test_default_max_body_size(make_server, site):
    srv = make_server(config=f"[route /]\nhandler = static\nroot = {site}\n"
                             "[route /echo]\nhandler = echo\n")
    body = b"b" * (1 << 20)
    with srv.connect(timeout=20) as s:
        s.sendall(post(b"Content-Length: %d\r\n" % len(body), body))
        r = Reader(s).response()
        assert r.status == 200 and r.body == body
    assert_refused(srv, post(b"Content-Length: %d\r\n" % ((1 << 20) + 1)), 413)
