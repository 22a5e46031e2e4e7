"""Strict message framing (RFC 9112 sections 6 and 11.2, and the request-line
and field-line grammar of sections 3 and 5).

Every ambiguous or malformed request is refused with an error status and the
connection is closed: nothing sent after the bad request may be parsed, so a
valid request pipelined right behind it must never be answered. Smuggling
attempts (CL.TE, TE.CL, TE.TE) must never get a request hidden in a body
answered as a request of its own."""

import socket

import pytest

from conftest import Reader

# The valid request pipelined behind every bad one: it must never be answered.
FOLLOW = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"

# A request hidden inside a body; the file exists, so answering it would show.
SMUGGLED = b"GET /smuggled.txt HTTP/1.1\r\nHost: x\r\n\r\n"
SMUGGLED_BODY = b"SMUGGLED-RESPONSE"


@pytest.fixture
def srv(make_server, site):
    (site / "smuggled.txt").write_bytes(SMUGGLED_BODY)
    return make_server(config=f"[route /]\nhandler = static\nroot = {site}\n"
                              f"[route /echo]\nhandler = echo\n")


def exchange(srv, raw, timeout=10):
    """Sends raw on a new connection; returns (first response, Reader)."""
    s = srv.connect(timeout=timeout)
    s.sendall(raw)
    rd = Reader(s)
    return rd.response(), rd


def assert_refused(srv, raw, status):
    """raw followed by a valid request: exactly one answer, the refusal with
    Connection: close, then the connection ends."""
    r, rd = exchange(srv, raw + FOLLOW)
    try:
        assert r.status == status, (raw, r)
        assert r.header("connection") == "close", r
        assert rd.closed(), f"more bytes after the refusal of {raw!r}: {rd.buf[:200]!r}"
    finally:
        rd.sock.close()
    # the worker is still fine
    assert_serves(srv)


def assert_serves(srv):
    with srv.connect() as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = Reader(s).response()
        assert r.status == 200 and r.body == b"Hello, World!"


def read_all(sock, timeout=5):
    """Everything the server sends until it closes (or goes quiet)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def chunked(*pieces, ext=b"", trailers=b""):
    out = b""
    for p in pieces:
        out += b"%x%s\r\n%s\r\n" % (len(p), ext, p)
    return out + b"0\r\n" + trailers + b"\r\n"


# ---- Content-Length and Transfer-Encoding ------------------------------------


@pytest.mark.parametrize("fields", [
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
], ids=["cl-then-te", "te-then-cl"])
def test_content_length_with_transfer_encoding(srv, fields):
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n" + chunked(b"hello")
    assert_refused(srv, raw, 400)


def test_two_different_content_lengths(srv):
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    assert_refused(srv, raw, 400)


@pytest.mark.parametrize("value", [b"abc", b"5a", b"+5", b"-5", b"5, 6", b"0x5", b"",
                                   b"99999999999999999999999"])
def test_invalid_content_length(srv, value):
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\nhello"
    # an absurd length may also be refused as too large
    status = 413 if value.startswith(b"9999") else 400
    r, rd = exchange(srv, raw + FOLLOW)
    with rd.sock:
        assert r.status in (400, status), r
        assert r.header("connection") == "close"
        assert rd.closed()


@pytest.mark.parametrize("value,status", [
    (b"gzip", 501),
    (b"gzip, chunked", 501),
    (b"chunked, gzip", 400),
    (b"chunked, chunked", 400),
    (b"xchunked", 501),
    (b"chunked-false", 501),
])
def test_transfer_codings(srv, value, status):
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + value + b"\r\n\r\n" + \
        chunked(b"hello")
    assert_refused(srv, raw, status)


def test_chunked_in_http10_is_refused(srv):
    raw = b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"hello")
    assert_refused(srv, raw, 400)


# ---- chunked framing -----------------------------------------------------------

POST_CHUNKED = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("body", [
    b"g\r\nhello\r\n0\r\n\r\n",                       # not hex
    b"0x5\r\nhello\r\n0\r\n\r\n",                     # C-style prefix
    b"-5\r\nhello\r\n0\r\n\r\n",                      # sign
    b" 5\r\nhello\r\n0\r\n\r\n",                      # leading whitespace
    b"\r\nhello\r\n0\r\n\r\n",                        # empty size
    b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n",       # 17 digits: over 64 bits
    b"ffffffffffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    b"1" + b"0" * 16 + b"5\r\nhello\r\n0\r\n\r\n",    # wraps to 5 in 64 bits
    b"5\nhello\r\n0\r\n\r\n",                          # bare LF after the size
], ids=["nonhex", "0x", "negative", "leading-ws", "empty", "17-digits", "32-digits", "wrap",
        "size-bare-lf"])
def test_bad_chunk_size(srv, body):
    assert_refused(srv, POST_CHUNKED + body, 400)


def test_bare_lf_in_chunk_extension(srv):
    # a front end that ends the line at the LF sees "xx\r\n" as data...
    body = b"5;a=b\nxx\r\nhello\r\n0\r\n\r\n"
    assert_refused(srv, POST_CHUNKED + body, 400)


def test_bare_cr_in_chunk_extension(srv):
    body = b"5;a=b\rxx\r\nhello\r\n0\r\n\r\n"
    assert_refused(srv, POST_CHUNKED + body, 400)


@pytest.mark.parametrize("body", [
    b"5\r\nhelloXX0\r\n\r\n",             # data runs on
    b"5\r\nhello\n0\r\n\r\n",             # bare LF after data
    b"5\r\nhello\r0\r\n\r\n",             # bare CR after data
    b"3\r\nhello\r\n0\r\n\r\n",           # more data than announced
], ids=["no-crlf", "bare-lf", "bare-cr", "longer-than-size"])
def test_chunk_data_not_followed_by_crlf(srv, body):
    assert_refused(srv, POST_CHUNKED + body, 400)


@pytest.mark.parametrize("trailers", [
    b" X: y\r\n",          # folded trailer
    b"X: y\nZ: w\r\n",     # bare LF in the trailer section
    b"X: a\x00b\r\n",      # control character
    b"X y\r\n",            # no colon... invalid trailer line
], ids=["fold", "bare-lf", "ctl", "no-colon"])
def test_bad_trailer_section(srv, trailers):
    assert_refused(srv, POST_CHUNKED + b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n", 400)


def test_last_chunk_bare_lf_ending(srv):
    assert_refused(srv, POST_CHUNKED + b"5\r\nhello\r\n0\r\n\n", 400)


# ---- field lines ---------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"GET /hello.txt HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost\t: x\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-A : y\r\n\r\n",
], ids=["host-sp", "host-htab", "other-sp"])
def test_whitespace_before_colon(srv, raw):
    assert_refused(srv, raw, 400)


@pytest.mark.parametrize("line", [b"X-No-Colon", b": empty-name", b"X A: space-in-name",
                                  b"X-A\x00: nul-in-name", b"X-(A): separators"],
                         ids=["no-colon", "empty-name", "space", "nul", "separators"])
def test_malformed_field_line(srv, line):
    assert_refused(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n" + line + b"\r\n\r\n", 400)


@pytest.mark.parametrize("raw", [
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-A: one\r\n \r\n\r\n",
], ids=["sp", "htab", "blank-fold"])
def test_obs_fold(srv, raw):
    assert_refused(srv, raw, 400)


@pytest.mark.parametrize("raw", [
    b"GET /hello.txt HTTP/1.1\r\n Host: x\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\n\tHost: x\r\n\r\n",
], ids=["sp", "htab"])
def test_whitespace_led_first_field_line(srv, raw):
    assert_refused(srv, raw, 400)


def test_missing_host_in_http11(srv):
    assert_refused(srv, b"GET /hello.txt HTTP/1.1\r\nAccept: */*\r\n\r\n", 400)


def test_repeated_host(srv):
    assert_refused(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400)
    assert_refused(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400)


@pytest.mark.parametrize("host", [b"a b", b"x/y", b"x@y", b"x\"y"])
def test_invalid_host_value(srv, host):
    assert_refused(srv, b"GET /hello.txt HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", 400)


def test_http10_without_host_is_fine(srv):
    r, rd = exchange(srv, b"GET /hello.txt HTTP/1.0\r\n\r\n")
    with rd.sock:
        assert r.status == 200 and r.body == b"Hello, World!"


@pytest.mark.parametrize("ctl", [b"\x00", b"\x01", b"\x7f", b"\x0b", b"\x0c", b"\x1b"])
def test_control_character_in_field_value(srv, ctl):
    raw = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-A: a" + ctl + b"b\r\n\r\n"
    assert_refused(srv, raw, 400)


@pytest.mark.parametrize("ctl", [b"\x00", b"\x01", b"\x7f"])
def test_control_character_in_field_name(srv, ctl):
    raw = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-" + ctl + b"A: b\r\n\r\n"
    assert_refused(srv, raw, 400)


@pytest.mark.parametrize("ctl", [b"\x00", b"\x01", b"\x7f", b"\t", b"\x0b"])
def test_control_character_in_target(srv, ctl):
    raw = b"GET /hel" + ctl + b"lo.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    assert_refused(srv, raw, 400)


def test_non_ascii_in_target(srv):
    assert_refused(srv, b"GET /h\xc3\xa9llo.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400)


@pytest.mark.parametrize("raw", [
    b"GET /hello.txt HTTP/1.1\nHost: x\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\n",
    b"GET /hello.txt HTTP/1.1\nHost: x\n\n",
], ids=["reqline", "field", "end", "all"])
def test_bare_lf_line_endings(srv, raw):
    assert_refused(srv, raw, 400)


@pytest.mark.parametrize("raw", [
    b"GET /hello.txt HTTP/1.1\rHost: x\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\rX-A: y\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-A: y\r\r\n\r\n",
    b"GET /hello.txt\r HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["after-reqline", "inside-field", "double-cr", "in-target"])
def test_bare_cr(srv, raw):
    assert_refused(srv, raw, 400)


@pytest.mark.parametrize("method", [b"FOO", b"GETT", b"BREW", b"get"])
def test_unknown_method(srv, method):
    assert_refused(srv, method + b" /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 501)


@pytest.mark.parametrize("line", [
    b"GET  /hello.txt HTTP/1.1",
    b"GET /hello.txt  HTTP/1.1",
    b"GET /hello.txt",
    b"GET /hello.txt ",
    b"GET /hello.txt HTTP/1.1 ",
    b" GET /hello.txt HTTP/1.1",
    b"GET\t/hello.txt HTTP/1.1",
    b"GET /hello.txt\tHTTP/1.1",
    b"GET /hello.txt http/1.1",
    b"GET /hello.txt HTTP/1",
    b"GET /hello.txt HTTP/1.10",
    b"GET /hello.txt HTTP/11",
    b"GET /hello.txt HTTPS/1.1",
    b"GET HTTP/1.1",
    b"/hello.txt HTTP/1.1",
    b"GET /hello.txt HTTP/1.1 extra",
], ids=["double-space-1", "double-space-2", "no-version", "no-version-sp", "trailing-sp",
        "leading-sp", "htab-1", "htab-2", "lowercase", "short-version", "long-version",
        "no-dot", "https", "no-target", "no-method", "extra"])
def test_malformed_request_line(srv, line):
    assert_refused(srv, line + b"\r\nHost: x\r\n\r\n", 400)


def test_http2_version_is_505(srv):
    assert_refused(srv, b"GET /hello.txt HTTP/2.0\r\nHost: x\r\n\r\n", 505)


def test_http_0_9_version_is_505(srv):
    assert_refused(srv, b"GET /hello.txt HTTP/0.9\r\nHost: x\r\n\r\n", 505)


def test_unsupported_expectation_is_417(srv):
    assert_refused(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", 417)


def test_fragment_in_target(srv):
    assert_refused(srv, b"GET /hello.txt#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400)


def test_leading_empty_lines_are_tolerated(srv):
    r, rd = exchange(srv, b"\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    with rd.sock:
        assert r.status == 200 and r.body == b"Hello, World!"


# ---- request smuggling ---------------------------------------------------------


class _Bytes:
    """A socket stand-in that yields recorded bytes, then EOF."""

    def __init__(self, data):
        self.data = data

    def recv(self, n):
        out, self.data = self.data[:n], self.data[n:]
        return out


def parse_responses(data):
    rd = Reader(_Bytes(data))
    out = []
    while True:
        try:
            out.append(rd.response())
        except EOFError:
            break
    assert rd.buf == b"", f"trailing bytes: {rd.buf!r}"
    return out


def assert_not_smuggled(srv, raw):
    """Sends raw (which hides SMUGGLED in a body); whatever the answer, the
    hidden request is never answered on its own. Returns the responses."""
    with srv.connect() as s:
        s.sendall(raw)
        data = read_all(s, timeout=3)
    responses = parse_responses(data)
    for r in responses:
        assert r.body != SMUGGLED_BODY, f"smuggled request answered: {responses}"
    return responses


def test_cl_te_smuggling(srv):
    # front end uses Content-Length (whole thing is one body), back end chunked
    body = b"0\r\n\r\n" + SMUGGLED
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" % len(body)) + body
    rs = assert_not_smuggled(srv, raw)
    assert [r.status for r in rs] == [400]


def test_te_cl_smuggling(srv):
    # front end uses chunked, back end Content-Length: 4 ("5c\r\n")
    inner = SMUGGLED + b"\r\n"
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner)
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Length: 4\r\n\r\n") + body
    rs = assert_not_smuggled(srv, raw)
    assert [r.status for r in rs] == [400]


@pytest.mark.parametrize("te_fields", [
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: xchunked\r\n",
    b"Transfer-Encoding: xchunked\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: xchunked\r\n",
    b"Transfer-Encoding : chunked\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
    b"Transfer-Encoding:\x0bchunked\r\n",
    b"Transfer-Encoding: \x00chunked\r\n",
    b"Transfer-Encoding\r\n : chunked\r\n",
    b"Transfer-Encoding: \r\n chunked\r\n",
    b"X: y\r\n Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: identity\r\n",
    b"Transfer-Encoding: chunked;q=1\r\n",
    b"Transfer-Encoding: \"chunked\"\r\n",
    b"Transfer_Encoding: chunked\r\n",
], ids=["te-xte", "xte-te", "xchunked", "sp-colon", "te-x", "vtab", "nul", "fold-name",
        "fold-value", "fold-previous", "identity", "params", "quoted", "underscore"])
def test_te_te_smuggling_with_content_length(srv, te_fields):
    # the body is valid under Content-Length; a server that also sees chunked
    # would take "0\r\n\r\n" as the end and answer the hidden request
    body = b"0\r\n\r\n" + SMUGGLED
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\n" + te_fields +
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    rs = assert_not_smuggled(srv, raw)
    assert len(rs) == 1
    if te_fields.startswith(b"Transfer_Encoding"):
        # not Transfer-Encoding at all: an unknown field, the body is framed by CL
        assert rs[0].status == 200 and rs[0].body == body
    else:
        assert rs[0].status in (400, 501)
        assert rs[0].header("connection") == "close"


@pytest.mark.parametrize("te_fields", [
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: xchunked\r\n",
    b"Transfer-Encoding: xchunked\r\n",
    b"Transfer-Encoding: chunked, identity\r\n",
    b"Transfer-Encoding:\x0bchunked\r\n",
], ids=["te-xte", "xchunked", "identity-last", "vtab"])
def test_te_te_smuggling_without_content_length(srv, te_fields):
    body = b"0\r\n\r\n" + SMUGGLED
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\n" + te_fields + b"\r\n" + body
    rs = assert_not_smuggled(srv, raw)
    assert len(rs) == 1 and rs[0].status in (400, 501)


@pytest.mark.parametrize("te", [b"CHUNKED", b"Chunked", b"\tchunked", b"chunked  ", b" chunked\t",
                                b",chunked", b"chunked,"],
                         ids=["upper", "title", "htab", "trailing-sp", "mixed-ws", "lead-comma",
                              "trail-comma"])
def test_odd_but_valid_transfer_encoding_is_accepted(srv, te):
    # the smuggled request is part of the chunk data: echoed, never answered
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:" + te + b"\r\n\r\n" +
           chunked(SMUGGLED) + FOLLOW)
    with srv.connect() as s:
        s.sendall(raw)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200, r
        assert r.body == SMUGGLED
        r2 = rd.response()
        assert r2.status == 200 and r2.body == b"Hello, World!"
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert rd.response().body == b"Hello, World!"
        assert rd.closed()


def test_transfer_encoding_field_name_casing(srv):
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\ntRaNsFeR-eNcOdInG: chunked\r\n\r\n" +
           chunked(b"abc", b"def"))
    r, rd = exchange(srv, raw)
    with rd.sock:
        assert r.status == 200 and r.body == b"abcdef"


def test_smuggled_request_in_content_length_body_is_data(srv):
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED) +
           SMUGGLED + b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with srv.connect() as s:
        s.sendall(raw)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == SMUGGLED
        r2 = rd.response()
        assert r2.body == b"Hello, World!"
        assert rd.closed()


def test_refusal_mid_pipeline_answers_earlier_requests_only(srv):
    raw = (b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" +
           b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab" +
           FOLLOW)
    with srv.connect() as s:
        s.sendall(raw)
        rd = Reader(s)
        r1 = rd.response()
        assert r1.status == 200 and r1.body == b"Hello, World!"
        r2 = rd.response()
        assert r2.status == 400 and r2.header("connection") == "close"
        assert rd.closed()


# ---- good framing is accepted ----------------------------------------------------


def test_uppercase_chunk_sizes_and_extensions(srv):
    data = b"x" * 0xAB
    body = (b"AB;name=value\r\n" + data + b"\r\n" +
            b"5;a;b=\"quoted;str\"\r\nhello\r\n" +
            b"0;last=1\r\n\r\n")
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n" + body + FOLLOW
    with srv.connect() as s:
        s.sendall(raw)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == data + b"hello"
        assert rd.response().body == b"Hello, World!"


def test_chunk_size_with_leading_zeros(srv):
    raw = POST_CHUNKED + b"0005\r\nhello\r\n000\r\n\r\n" + FOLLOW
    with srv.connect() as s:
        s.sendall(raw)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == b"hello"
        assert rd.response().body == b"Hello, World!"


def test_trailers_are_accepted_and_not_parsed_as_requests(srv):
    raw = POST_CHUNKED + chunked(b"hello", trailers=b"X-Sum: 5\r\nX-Other: y\r\n") + FOLLOW
    with srv.connect() as s:
        s.sendall(raw)
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == b"hello"
        assert rd.response().body == b"Hello, World!"


def test_identical_request_framing_split_across_writes(srv):
    # the same accepted message, its framing cut at every awkward place
    body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
    raw = POST_CHUNKED + body + FOLLOW
    with srv.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rd = Reader(s)
        for cut in range(0, len(raw), 7):
            s.sendall(raw[cut:cut + 7])
        r = rd.response()
        assert r.status == 200 and r.body == b"hello world"
        assert rd.response().body == b"Hello, World!"


def test_field_value_whitespace_and_obs_text_accepted(srv):
    raw = (b"GET /hello.txt HTTP/1.1\r\nHost:x\r\nX-A:\t v\xe9lue \t\r\nX-B:\r\n"
           b"X-C: a\tb\r\n\r\n")
    r, rd = exchange(srv, raw)
    with rd.sock:
        assert r.status == 200 and r.body == b"Hello, World!"


def test_content_length_zero_and_with_whitespace(srv):
    raw = (b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
           b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length:   3  \r\n\r\nabc" + FOLLOW)
    with srv.connect() as s:
        s.sendall(raw)
        rd = Reader(s)
        r1 = rd.response()
        assert r1.status == 200 and r1.body == b"Hello, World!"
        r2 = rd.response()
        assert r2.status == 200 and r2.body == b"abc"
        assert rd.response().body == b"Hello, World!"
