"""Request smuggling, as a table. The Transfer-Encoding mutations are those a
smuggling checker (defparsio's smuggler.py, which cannot be installed here)
tries: odd whitespace and casing, duplicate and conflicting fields, every
control and high byte before, inside and after the name and the value, line
folding, bare CR and LF; plus patterns of published CVEs (gunicorn
CVE-2024-1135, netty CVE-2020-7238, HAProxy CVE-2019-18277, llhttp
CVE-2022-32213/32215, waitress CVE-2022-24761, Puma CVE-2024-21647).

Each mutation is sent as CL.TE (a Content-Length body that ends a chunked
reading early) and as TE.CL (a chunked body with no Content-Length). Either
way, the request hidden in the body must never be answered: the server
refuses (400/501, then closes) or reads the body exactly as framed."""

import pytest

from conftest import Reader, Server

SECRET = b"SMUGGLED-RESPONSE-BODY"
SMUGGLED = b"GET /smuggled.txt HTTP/1.1\r\nHost: x\r\n\r\n"


def te_mutations():
    m = {
        "plain": b"Transfer-Encoding: chunked",
        "sp-colon": b"Transfer-Encoding : chunked",
        "tab-colon": b"Transfer-Encoding\t: chunked",
        "space-join": b"Transfer Encoding: chunked",
        "under-join": b"Transfer_Encoding: chunked",
        "smashed": b"Transfer Encoding:chunked",
        "lead-space": b" Transfer-Encoding: chunked",
        "tab-value": b"Transfer-Encoding:\tchunked",
        "two-spaces": b"Transfer-Encoding:  chunked",
        "comma-cow": b"Transfer-Encoding: chunked, cow",
        "cow-comma": b"Transfer-Encoding: cow, chunked",
        "content-enc": b"Content-Encoding: chunked",
        "quoted": b'Transfer-Encoding: "chunked"',
        "aposed": b"Transfer-Encoding: 'chunked'",
        "lazy": b"Transfer-Encoding: chunk",
        "sarcasm": b"TrAnSFer-EnCODinG: cHuNkeD",
        "yelling": b"TRANSFER-ENCODING: CHUNKED",
        "cr-suffix": b"Transfer-Encoding: chunked\r",
        "dual-cow-first": b"Transfer-Encoding: cow\r\nTransfer-Encoding: chunked",
        "dual-cow-last": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: cow",
        "dual-chunked": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "nested": b"Transfer-Encoding: cow chunked bar",
        "identity": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
        "gzip-last": b"Transfer-Encoding: chunked, gzip",
        "gzip-first": b"Transfer-Encoding: gzip, chunked",
        "fold-value": b"Transfer-Encoding:\r\n chunked",
        "fold-name": b"Transfer-Encoding\r\n : chunked",
        "x-cr": b"X: X\rTransfer-Encoding: chunked",
        "x-lf": b"X: X\nTransfer-Encoding: chunked",
        "lf-end": b"Transfer-Encoding: chunked\n",
        "accent-ch": b"Transfer-Encoding: ch\x96nked",
        "accent-te": b"Transf\x82r-Encoding: chunked",
        "ff-value": b"Transfer-Encoding:\xffchunked",
    }
    chars = list(range(0x00, 0x21)) + [0x7F, 0x80, 0xA0, 0xFF]
    for c in chars:
        b = bytes([c])
        m[f"mid-{c:02x}"] = b"Transfer-Encoding:" + b + b"chunked"
        m[f"post-{c:02x}"] = b"Transfer-Encoding" + b + b": chunked"
        m[f"pre-{c:02x}"] = b + b"Transfer-Encoding: chunked"
        m[f"end-{c:02x}"] = b"Transfer-Encoding: chunked" + b
        m[f"xpre-{c:02x}"] = b"X: x" + b + b"Transfer-Encoding: chunked"
        m[f"endx-{c:02x}"] = b"Transfer-Encoding: chunked" + b + b"X: x"
        m[f"rxpre-{c:02x}"] = b"X: x\r\n" + b + b"Transfer-Encoding: chunked"
        m[f"xnpre-{c:02x}"] = b"X: x" + b + b"\nTransfer-Encoding: chunked"
        m[f"endrx-{c:02x}"] = b"Transfer-Encoding: chunked\r\n" + b + b"X: x"
        m[f"endxn-{c:02x}"] = b"Transfer-Encoding: chunked" + b + b"\nX: x"
    return m


MUTATIONS = te_mutations()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("www")
    (root / "hello.txt").write_text("Hello, World!")
    (root / "smuggled.txt").write_bytes(SECRET)
    conf = f"[route /]\nhandler = static\nroot = {root}\n[route /echo]\nhandler = echo\n"
    server = Server(tmp_path_factory.mktemp("srv"), config=conf, workers=1)
    yield server
    server.stop()
    server.check_clean()


def responses(srv, raw):
    """Every response to raw, until the server closes or goes quiet."""
    s = srv.connect(timeout=3)
    s.sendall(raw)
    rd, out = Reader(s), []
    try:
        while True:
            out.append(rd.response())
    except (EOFError, ConnectionResetError, TimeoutError, OSError):
        pass
    s.close()
    return out


def check(srv, raw):
    rs = responses(srv, raw)
    assert rs, f"no answer to {raw!r}"
    assert all(SECRET not in r.body for r in rs), f"smuggled request answered: {raw!r}"
    assert len(rs) == 1, f"{len(rs)} answers to one request: {raw!r} {rs}"
    r = rs[0]
    assert r.status in (200, 400, 501), r
    if r.status != 200:
        assert r.header("connection") == "close"
    return r


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_cl_te(srv, name):
    body = b"0\r\n\r\n" + SMUGGLED
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + MUTATIONS[name] +
           b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    r = check(srv, raw)
    if r.status == 200:  # read by Content-Length alone: the whole body is data
        assert r.body == body


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_te_cl(srv, name):
    chunk = b"%x\r\n%s\r\n" % (len(SMUGGLED), SMUGGLED)
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + MUTATIONS[name] +
           b"\r\n\r\n" + chunk + b"0\r\n\r\n")
    r = check(srv, raw)
    if r.status == 200:
        # read as chunked, the hidden request is the body; not a
        # Transfer-Encoding field at all, there is no body (and the
        # connection closes before the rest is read)
        assert r.body in (SMUGGLED, b"")


def test_only_the_exact_forms_are_read_as_chunked(srv):
    """The mutations whose TE.CL form is read as a chunked body: exactly the
    valid spellings of one chunked coding (RFC 9112 allows any case and
    whitespace around the value), nothing that only resembles one."""
    chunk = b"%x\r\n%s\r\n" % (len(SMUGGLED), SMUGGLED)
    chunked = set()
    for name, te in MUTATIONS.items():
        raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + te + b"\r\n\r\n" +
               chunk + b"0\r\n\r\n")
        r = check(srv, raw)
        if r.status == 200 and r.body == SMUGGLED:
            chunked.add(name)
    # (xnpre-0d and endxn-0d put a proper CRLF between two fields)
    assert chunked == {"plain", "tab-value", "two-spaces", "sarcasm", "yelling", "mid-09",
                       "mid-20", "end-09", "end-20", "xnpre-0d", "endxn-0d"}, chunked


@pytest.mark.parametrize("raw", [
    # gunicorn CVE-2024-1135: conflicting Transfer-Encoding fields
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    # netty CVE-2020-7238: whitespace before the colon
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n"
    b"0\r\n\r\n",
    # HAProxy CVE-2019-18277: a vertical tab before the value
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \x0bchunked\r\nContent-Length: 5\r\n\r\n"
    b"0\r\n\r\n",
    # llhttp CVE-2022-32213: folding inside Transfer-Encoding
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n , identity\r\n\r\n0\r\n\r\n",
    # llhttp CVE-2022-32215: a multi-line Transfer-Encoding
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\tidentity\r\n\r\n0\r\n\r\n",
    # waitress CVE-2022-24761: a chunk size with a sign or a 0x prefix
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    # a Content-Length with a sign, twice, or with a list
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
    # Puma CVE-2024-21647: chunk extensions without end (bounded, then refused)
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;" + b"a" * 8000 +
    b"\r\nhello\r\n0\r\n\r\n",
    # a bare CR or LF ending a chunk size
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
], ids=["gunicorn-1135", "netty-7238", "haproxy-18277", "llhttp-32213", "llhttp-32215",
        "waitress-plus", "waitress-0x", "cl-plus", "cl-twice", "cl-list", "puma-21647",
        "chunk-bare-cr", "chunk-bare-lf"])
def test_cve_patterns_are_refused(srv, raw):
    rs = responses(srv, raw + SMUGGLED)
    assert len(rs) == 1 and rs[0].status in (400, 501), rs
    assert rs[0].header("connection") == "close"
    assert all(SECRET not in r.body for r in rs)
