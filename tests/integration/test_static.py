"""The static file handler (workers/static.c): methods, MIME types,
conditional requests, byte ranges, index files and redirects, percent-decoding,
confinement to the root (dot segments, symlinks, FIFOs), routes with nginx
"root" semantics, inline and pool modes, large files and slow readers."""

import email.utils
import hashlib
import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest

from conftest import Reader, Server, get

# A fixed modification time for every file of the shared site, so that ETag
# and Last-Modified are known: Sun, 13 Sep 2020 12:26:40 GMT.
MTIME = 1600000000
MTIME_HTTP = email.utils.formatdate(MTIME, usegmt=True)
SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT\n"
SECRET2 = b"ANOTHER-SECRET-IN-OUTSIDE-DIR\n"
BIG = os.urandom(1 << 20)

MIME_FILES = {
    "page.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "data.json": "application/json; charset=utf-8",
    "pic.png": "image/png",
    "notes.txt": "text/plain; charset=utf-8",
    "blob.qwzx": "application/octet-stream",
    "PHOTO.PNG": "image/png",
    "Page.HTML": "text/html; charset=utf-8",
    "noext": "application/octet-stream",
    "dotted.d/plain": "application/octet-stream",
}


def build_site(base):
    """Creates base/www (the root) and secrets beside it, outside the root."""
    base = pathlib.Path(base)
    root = base / "www"
    root.mkdir(parents=True)
    (base / "secret.txt").write_bytes(SECRET)
    (base / "outside").mkdir()
    (base / "outside" / "secret2.txt").write_bytes(SECRET2)
    (base / "outside" / "index.html").write_bytes(SECRET2)

    (root / "index.html").write_text("<h1>index</h1>\n")
    (root / "hello.txt").write_text("Hello, World!")
    (root / "empty.txt").write_bytes(b"")
    (root / "big.bin").write_bytes(BIG)
    (root / "dir").mkdir()
    (root / "dir" / "index.html").write_text("dir index\n")
    (root / "noindex").mkdir()
    (root / "noindex" / "listed-file-name.txt").write_text("a\n")
    (root / "a b.txt").write_text("space in name\n")
    (root / "h\u00e9llo-\u4e16\u754c.txt").write_text("utf-8 name\n")
    (root / "dotted.d").mkdir()
    for name in MIME_FILES:
        (root / name).write_text(f"content of {name}\n")
    # symlinks that stay inside the root
    os.symlink("hello.txt", root / "link.txt")
    os.symlink("dir", root / "alias")
    (root / "sub").mkdir()
    os.symlink("../hello.txt", root / "sub" / "up.txt")
    os.symlink(str(root / "hello.txt"), root / "abslink.txt")
    (root / "symindex").mkdir()
    os.symlink("../index.html", root / "symindex" / "index.html")
    # symlinks that lead out
    os.symlink(str(base / "secret.txt"), root / "leak.txt")
    os.symlink("../secret.txt", root / "relleak.txt")
    os.symlink(str(base / "outside"), root / "outdir")
    os.symlink("../outside", root / "reloutdir")
    os.symlink("/etc/passwd", root / "passwd")
    os.symlink("/", root / "slash")
    os.symlink("loop", root / "loop")
    os.mkfifo(root / "pipe")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                os.utime(p, (MTIME, MTIME))
    return root


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the read-only tests of this file (startup is not free
    under the sanitizers). Stopped at the end and checked for a clean exit."""
    base = tmp_path_factory.mktemp("static")
    root = build_site(base)
    srv = Server(base / "srv", args=["--root", str(root)], workers=1)
    srv.root = root
    yield srv
    srv.stop()
    srv.check_clean()


def etag_of(path):
    st = os.stat(path)
    return '"%x-%x"' % (int(st.st_mtime), st.st_size)


def raw_get(path, headers=(), method="GET", close=True):
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
    if close:
        lines.append("Connection: close")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def followed_by_get(srv, raw, head=False):
    """Sends raw then a GET /hello.txt on the same connection: the second
    answer parses only if the first one carried exactly its framed body."""
    with srv.connect() as s:
        rd = Reader(s)
        s.sendall(raw)
        r = rd.response(head=head)
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r2 = rd.response()
        assert r2.status == 200 and r2.body == b"Hello, World!", (r, r2)
        return r


def curl(*args, timeout=20):
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)


# ---- methods ----------------------------------------------------------------


def test_get_serves_file_with_validators(shared):
    r = get(shared.port, "/hello.txt")
    assert r.status == 200
    assert r.body == b"Hello, World!"
    assert r.header("content-length") == "13"
    assert r.header("content-type") == "text/plain; charset=utf-8"
    assert r.header("last-modified") == MTIME_HTTP
    assert r.header("etag") == etag_of(shared.root / "hello.txt")
    assert r.header("accept-ranges") == "bytes"


def test_head_has_same_headers_as_get_and_no_body(shared):
    g = get(shared.port, "/big.bin")
    h = followed_by_get(shared, raw_get("/big.bin", method="HEAD", close=False), head=True)
    assert h.status == 200
    for name in ("content-length", "content-type", "etag", "last-modified", "accept-ranges"):
        assert h.header(name) == g.header(name), name
    assert h.header("content-length") == str(1 << 20)


def test_head_of_missing_file_has_no_body(shared):
    r = followed_by_get(shared, raw_get("/missing.txt", method="HEAD", close=False), head=True)
    assert r.status == 404
    assert r.header("content-length") == str(len(b"404 Not Found\n"))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405_with_allow(shared, method):
    r = get(shared.port, "/x" if method == "OPTIONS" else "/hello.txt", method=method)
    assert r.status == 405
    assert r.header("allow") == "GET, HEAD"
    assert b"Hello" not in r.body


def test_post_body_is_dropped_and_connection_reusable(shared):
    body = b"x" * 200_000
    raw = (b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    r = followed_by_get(shared, raw)
    assert r.status == 405
    assert r.header("allow") == "GET, HEAD"
    assert r.header("connection") is None


def test_chunked_post_is_dropped_and_pipelined_get_answered(shared):
    with shared.connect() as s:
        rd = Reader(s)
        s.sendall(b"POST /dir/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                  b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n")
        r1 = rd.response()
        r2 = rd.response()
    assert r1.status == 405 and r1.header("allow") == "GET, HEAD"
    assert r2.status == 200 and r2.body == b"dir index\n"


# ---- MIME types -------------------------------------------------------------


def test_mime_types_by_extension(shared):
    got = {}
    for name in MIME_FILES:
        r = get(shared.port, "/" + name)
        assert r.status == 200, name
        assert r.body == f"content of {name}\n".encode()
        got[name] = r.header("content-type")
    assert got == MIME_FILES


def test_index_gets_html_type(shared):
    assert get(shared.port, "/").header("content-type") == "text/html; charset=utf-8"
    assert get(shared.port, "/dir/").header("content-type") == "text/html; charset=utf-8"


# ---- conditional requests ---------------------------------------------------


def test_if_none_match_exact_is_304_without_body(shared):
    etag = etag_of(shared.root / "hello.txt")
    r = followed_by_get(shared, raw_get("/hello.txt", [("If-None-Match", etag)], close=False))
    assert r.status == 304
    assert r.header("etag") == etag
    assert r.header("last-modified") == MTIME_HTTP
    assert r.header("content-length") in (None, "13")
    assert r.body == b""


@pytest.mark.parametrize("value", [
    '"nope", {etag}, "other"',
    '"a","b",{etag}',
    "W/{etag}",
    '"x", W/{etag}',
    "*",
])
def test_if_none_match_forms_that_match(shared, value):
    etag = etag_of(shared.root / "hello.txt")
    r = followed_by_get(shared, raw_get("/hello.txt", [("If-None-Match", value.format(etag=etag))],
                                        close=False))
    assert r.status == 304
    assert r.header("etag") == etag


@pytest.mark.parametrize("value", [
    '"0-0"',
    '"nope", "other"',
    "{short}",        # our tag minus its last hex digit
    '"{inner}x"',     # our tag plus a character
    "W/\"zz\"",
])
def test_if_none_match_forms_that_do_not_match(shared, value):
    etag = etag_of(shared.root / "hello.txt")
    v = value.format(short=etag[:-2] + '"', inner=etag.strip('"'))
    r = get(shared.port, "/hello.txt", [("If-None-Match", v)])
    assert r.status == 200
    assert r.body == b"Hello, World!"


def test_if_none_match_on_head(shared):
    etag = etag_of(shared.root / "hello.txt")
    r = followed_by_get(shared, raw_get("/hello.txt", [("If-None-Match", etag)], method="HEAD",
                                        close=False), head=True)
    assert r.status == 304


@pytest.mark.parametrize("since,status", [
    (MTIME_HTTP, 304),
    (email.utils.formatdate(MTIME + 3600, usegmt=True), 304),
    (email.utils.formatdate(MTIME - 1, usegmt=True), 200),
    ("Sunday, 13-Sep-20 12:26:40 GMT", 304),   # RFC 850 form
    ("Sun Sep 13 12:26:40 2020", 304),         # asctime form
    ("Sun Sep 13 12:26:39 2020", 200),
    ("garbage", 200),
    ("Sun, 13 Sep 2020 12:26:40", 200),        # no GMT: not an HTTP-date
    ("", 200),
])
def test_if_modified_since(shared, since, status):
    r = get(shared.port, "/hello.txt", [("If-Modified-Since", since)])
    assert r.status == status
    assert r.body == (b"Hello, World!" if status == 200 else b"")


def test_if_none_match_split_over_two_field_lines(shared):
    # one list, two lines (RFC 9110 5.3): our tag on the second still matches
    etag = etag_of(shared.root / "hello.txt")
    r = get(shared.port, "/hello.txt", [("If-None-Match", '"x"'), ("If-None-Match", etag)])
    assert r.status == 304 and r.body == b""


@pytest.mark.parametrize("value,status", [
    ("{etag}", 200),
    ('"x", {etag}', 200),
    ("*", 200),
    ('"nope"', 412),
    ("W/{etag}", 412),  # If-Match compares strongly: a weak tag never matches
])
def test_if_match(shared, value, status):
    etag = etag_of(shared.root / "hello.txt")
    r = followed_by_get(shared, raw_get("/hello.txt", [("If-Match", value.format(etag=etag))],
                                        close=False))
    assert r.status == status
    assert (r.body == b"Hello, World!") == (status == 200)


@pytest.mark.parametrize("since,status", [
    (MTIME_HTTP, 200),
    (email.utils.formatdate(MTIME + 3600, usegmt=True), 200),
    (email.utils.formatdate(MTIME - 1, usegmt=True), 412),
    ("garbage", 200),  # an invalid date is ignored
])
def test_if_unmodified_since(shared, since, status):
    r = get(shared.port, "/hello.txt", [("If-Unmodified-Since", since)])
    assert r.status == status


def test_if_match_wins_over_if_unmodified_since(shared):
    etag = etag_of(shared.root / "hello.txt")
    earlier = email.utils.formatdate(MTIME - 3600, usegmt=True)
    r = get(shared.port, "/hello.txt", [("If-Match", etag), ("If-Unmodified-Since", earlier)])
    assert r.status == 200
    r = get(shared.port, "/hello.txt", [("If-Match", '"x"'), ("If-None-Match", etag)])
    assert r.status == 412  # If-Match is evaluated first


def test_if_none_match_takes_precedence_over_if_modified_since(shared):
    etag = etag_of(shared.root / "hello.txt")
    later = email.utils.formatdate(MTIME + 3600, usegmt=True)
    earlier = email.utils.formatdate(MTIME - 3600, usegmt=True)
    r = get(shared.port, "/hello.txt", [("If-None-Match", '"other"'), ("If-Modified-Since", later)])
    assert r.status == 200 and r.body == b"Hello, World!"
    r = get(shared.port, "/hello.txt", [("If-None-Match", etag), ("If-Modified-Since", earlier)])
    assert r.status == 304


def test_etag_changes_when_file_changes(make_server, site):
    # without the open-file cache a change is seen at once (test_fcache.py
    # covers the cache's own freshness)
    srv = make_server(config=f"[server]\nfile_cache_entries = 0\n[route /]\nhandler = static\n"
                             f"root = {site}\n")
    f = site / "hello.txt"
    os.utime(f, (MTIME, MTIME))
    r1 = get(srv.port, "/hello.txt")
    old = r1.header("etag")
    f.write_text("Hello again, a longer file!")
    os.utime(f, (MTIME + 10, MTIME + 10))
    r2 = get(srv.port, "/hello.txt", [("If-None-Match", old)])
    assert r2.status == 200
    assert r2.body == b"Hello again, a longer file!"
    assert r2.header("etag") != old
    assert r2.header("last-modified") == email.utils.formatdate(MTIME + 10, usegmt=True)
    r3 = get(srv.port, "/hello.txt", [("If-Modified-Since", MTIME_HTTP)])
    assert r3.status == 200


# ---- ranges -----------------------------------------------------------------

SIZE = 1 << 20


def test_single_range(shared):
    r = get(shared.port, "/big.bin", [("Range", "bytes=1000-1999")])
    assert r.status == 206
    assert r.header("content-range") == f"bytes 1000-1999/{SIZE}"
    assert r.header("content-length") == "1000"
    assert r.body == BIG[1000:2000]
    assert r.header("accept-ranges") == "bytes"
    assert r.header("etag") == etag_of(shared.root / "big.bin")


@pytest.mark.parametrize("spec,first,last", [
    ("bytes=0-0", 0, 0),
    ("BYTES=0-1", 0, 1),
    ("bytes=2-3 ", 2, 3),
    ("bytes=100-", 100, SIZE - 1),
    ("bytes=-500", SIZE - 500, SIZE - 1),
    ("bytes=-%d" % (SIZE * 4), 0, SIZE - 1),        # suffix longer than the file
    ("bytes=1048000-99999999", 1048000, SIZE - 1),  # last byte beyond the end
    ("bytes=%d-%d" % (SIZE - 1, SIZE - 1), SIZE - 1, SIZE - 1),
    ("bytes=500000-600000", 500000, 600000),
])
def test_range_forms(shared, spec, first, last):
    r = get(shared.port, "/big.bin", [("Range", spec)])
    assert r.status == 206
    assert r.header("content-range") == f"bytes {first}-{last}/{SIZE}"
    assert r.header("content-length") == str(last - first + 1)
    assert r.body == BIG[first:last + 1]


@pytest.mark.parametrize("path,spec,size", [
    ("/big.bin", "bytes=%d-" % SIZE, SIZE),
    ("/big.bin", "bytes=%d-%d" % (SIZE + 10, SIZE + 20), SIZE),
    ("/big.bin", "bytes=-0", SIZE),
    ("/empty.txt", "bytes=0-", 0),
    ("/empty.txt", "bytes=-5", 0),
])
def test_unsatisfiable_range_is_416(shared, path, spec, size):
    r = followed_by_get(shared, raw_get(path, [("Range", spec)], close=False))
    assert r.status == 416
    assert r.header("content-range") == f"bytes */{size}"
    assert BIG[:64] not in r.body


@pytest.mark.parametrize("spec", [
    "bytes=0-1,5-6",
    "bytes=0-99, 200-299",
    "bytes=abc",
    "bytes=500-100",
    "bytes=",
    "bytes=--5",
    "items=0-5",
    "0-5",
    "bytes=1-2-3",
])
def test_multiple_or_malformed_ranges_give_full_file(shared, spec):
    r = get(shared.port, "/big.bin", [("Range", spec)])
    assert r.status == 200
    assert r.header("content-range") is None
    assert r.body == BIG


def test_range_on_head_is_ignored(shared):
    r = followed_by_get(shared, raw_get("/big.bin", [("Range", "bytes=0-9")], method="HEAD",
                                        close=False), head=True)
    assert r.status == 200
    assert r.header("content-length") == str(SIZE)
    assert r.header("content-range") is None


def test_if_range(shared):
    etag = etag_of(shared.root / "big.bin")
    rng = ("Range", "bytes=10-19")
    r = get(shared.port, "/big.bin", [rng, ("If-Range", etag)])
    assert r.status == 206 and r.body == BIG[10:20]
    r = get(shared.port, "/big.bin", [rng, ("If-Range", '"stale-tag"')])
    assert r.status == 200 and r.body == BIG
    # If-Range uses the strong comparison: a weak tag never matches
    r = get(shared.port, "/big.bin", [rng, ("If-Range", "W/" + etag)])
    assert r.status == 200 and r.body == BIG
    r = get(shared.port, "/big.bin", [rng, ("If-Range", MTIME_HTTP)])
    assert r.status == 206 and r.body == BIG[10:20]
    r = get(shared.port, "/big.bin",
            [rng, ("If-Range", email.utils.formatdate(MTIME - 60, usegmt=True))])
    assert r.status == 200 and r.body == BIG
    r = get(shared.port, "/big.bin", [rng, ("If-Range", "not a date")])
    assert r.status == 200 and r.body == BIG


# ---- index files and redirects ---------------------------------------------


def test_root_and_directory_serve_index(shared):
    r = get(shared.port, "/")
    assert r.status == 200 and r.body == b"<h1>index</h1>\n"
    r = get(shared.port, "/dir/")
    assert r.status == 200 and r.body == b"dir index\n"
    r = get(shared.port, "/dir/./")
    assert r.status == 200 and r.body == b"dir index\n"
    r = get(shared.port, "/dir/..")
    assert r.status == 200 and r.body == b"<h1>index</h1>\n"


@pytest.mark.parametrize("target,locations", [
    ("/dir", ["/dir/"]),
    ("/dir?x=1", ["/dir/?x=1"]),
    ("/dir?a=1&b=%20", ["/dir/?a=1&b=%20"]),
    ("/d%69r", ["/d%69r/", "/dir/"]),  # the client's encoding kept, or normalized
    ("/noindex", ["/noindex/"]),
    ("/a%20b.txt/../dir", ["/a%20b.txt/../dir/", "/dir/"]),
    ("http://example.com/dir?q", ["/dir/?q"]),
])
def test_directory_without_slash_redirects(shared, target, locations):
    r = followed_by_get(shared, raw_get(target, close=False))
    assert r.status == 301
    assert r.header("location") in locations


@pytest.mark.parametrize("target", [
    "//evil.example/../dir",
    "///evil.example/../dir",
    "/\\evil.example/../dir",
])
def test_directory_redirect_never_leaves_the_site(shared, target):
    """The Location of the slash redirect must be a path on this site. A value
    starting with "//" or "/\\" is a network-path reference: browsers go to
    another host (an open redirect)."""
    r = get(shared.port, target)
    assert r.status in (301, 400, 404)
    if r.status == 301:
        loc = r.header("location")
        assert loc.startswith("/") and loc[1:2] not in ("/", "\\"), loc


def test_directory_without_index_is_403_not_listed(shared):
    r = get(shared.port, "/noindex/")
    assert r.status == 403
    assert b"listed-file-name" not in r.body


def test_custom_index_setting(make_server, site):
    (site / "start.txt").write_text("custom start\n")
    (site / "dir" / "start.txt").write_text("custom dir start\n")
    srv = make_server(config=f"[route /]\nhandler = static\nroot = {site}\nindex = start.txt\n")
    r = get(srv.port, "/")
    assert r.status == 200 and r.body == b"custom start\n"
    assert r.header("content-type") == "text/plain; charset=utf-8"
    assert get(srv.port, "/dir/").body == b"custom dir start\n"
    # index.html is no longer the index: a directory holding only it is 403
    assert get(srv.port, "/noindex/").status == 403
    (site / "only-html").mkdir()
    (site / "only-html" / "index.html").write_text("x")
    assert get(srv.port, "/only-html/").status == 403
    # still reachable by name
    assert get(srv.port, "/index.html").body == b"<h1>index</h1>\n"


# ---- percent-decoding -------------------------------------------------------


@pytest.mark.parametrize("target,body", [
    ("/hello%2etxt", b"Hello, World!"),
    ("/hello%2Etxt", b"Hello, World!"),
    ("/%68ello.txt", b"Hello, World!"),
    ("/%68%65%6c%6c%6f%2e%74%78%74", b"Hello, World!"),
    ("/dir%2Findex.html", b"dir index\n"),
    ("/a%20b.txt", b"space in name\n"),
    ("/h%C3%A9llo-%E4%B8%96%E7%95%8C.txt", b"utf-8 name\n"),
    ("/h%c3%a9llo-%e4%b8%96%e7%95%8c.txt", b"utf-8 name\n"),
    ("/hello.txt?x=%00&y=..", b"Hello, World!"),
])
def test_percent_decoding(shared, target, body):
    r = get(shared.port, target)
    assert r.status == 200
    assert r.body == body


@pytest.mark.parametrize("target", ["/hello%2", "/hello%zz.txt", "/%"])
def test_bad_percent_encoding_is_400(shared, target):
    assert get(shared.port, target).status == 400


# ---- confinement to the root ------------------------------------------------

TRAVERSALS = [
    "/../secret.txt",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E%2Fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/.%2e/secret.txt",
    "/%2e./secret.txt",
    "/./../secret.txt",
    "/dir/../../secret.txt",
    "/dir/%2e%2e/%2e%2e/secret.txt",
    "/dir/..%2f..%2fsecret.txt",
    "/..",
    "/../",
    "/%2e%2e",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/%2e%2e%5csecret.txt",
    "/dir\\..\\..\\secret.txt",
    "/..\\..\\..\\etc\\passwd",
    "/../../../../../../../../etc/passwd",
    "/dir/../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/%252e%252e/secret.txt",
    "/..;/secret.txt",
    "//etc/passwd",
    "/etc/passwd",
    "/%2fetc%2fpasswd",
    "http://x/../../etc/passwd",
    "http://x/../secret.txt",
    "http://x/%2e%2e/secret.txt",
    "/hello.txt%00",
    "/hello.txt%00.html",
    "/%00",
    "/../secret.txt%00",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_nothing_outside_the_root(shared, target):
    r = get(shared.port, target)
    assert r.status in (400, 404), r
    assert SECRET not in r.body
    assert b"root:" not in r.body
    assert b"Hello, World!" not in r.body


@pytest.mark.parametrize("target", [
    "/leak.txt", "/relleak.txt", "/outdir/secret2.txt", "/reloutdir/secret2.txt", "/outdir/",
    "/outdir", "/passwd", "/slash/etc/passwd", "/slash/",
])
def test_symlinks_leading_out_are_refused(shared, target):
    r = get(shared.port, target)
    assert r.status == 403, r
    assert SECRET not in r.body and SECRET2 not in r.body
    assert b"root:" not in r.body
    # nor through a range request
    r = get(shared.port, target, [("Range", "bytes=0-5")])
    assert r.status == 403 and SECRET[:6] not in r.body and SECRET2[:6] not in r.body


def test_symlink_loop_is_refused_quickly(shared):
    t0 = time.monotonic()
    r = get(shared.port, "/loop")
    assert r.status in (403, 404)
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("target,body", [
    ("/link.txt", b"Hello, World!"),
    ("/sub/up.txt", b"Hello, World!"),
    ("/alias/", b"dir index\n"),
    ("/alias/index.html", b"dir index\n"),
])
def test_relative_symlinks_inside_the_root_are_served(shared, target, body):
    r = get(shared.port, target)
    assert r.status == 200, r
    assert r.body == body


def test_symlinked_directory_inside_root_redirects(shared):
    r = get(shared.port, "/alias")
    assert r.status == 301 and r.header("location") == "/alias/"


def test_absolute_symlink_to_a_file_inside_the_root_is_served(shared):
    """root/abslink.txt -> /abs/path/to/root/hello.txt stays inside the root."""
    r = get(shared.port, "/abslink.txt")
    assert r.status == 200, r
    assert r.body == b"Hello, World!"


def test_index_symlinked_to_a_file_elsewhere_in_the_root_is_served(shared):
    """root/symindex/index.html -> ../index.html: still inside the root."""
    r = get(shared.port, "/symindex/")
    assert r.status == 200, r
    assert r.body == b"<h1>index</h1>\n"


def test_fifo_does_not_hang_the_server(shared):
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", shared.port), timeout=5) as s:
        s.sendall(raw_get("/pipe"))
        r = Reader(s).response()
    assert r.status == 404
    assert time.monotonic() - t0 < 2
    # and the worker still answers
    assert get(shared.port, "/hello.txt").body == b"Hello, World!"


def test_unreadable_file_is_403(make_server, site, tmp_path, open_tmp, monkeypatch):
    """A file the server may not read is 403. As root every file is readable,
    so there the whole server runs as nobody (setpriv) on a world-searchable
    copy of the site."""
    import conftest
    root = site
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root reads every file and setpriv is missing")
        root = open_tmp / "www"
        root.mkdir(mode=0o755)
        (root / "hello.txt").write_text("Hello, World!")
        (root / "hello.txt").chmod(0o644)
        wrapper = tmp_path / "as-nobody.sh"
        wrapper.write_text("#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups "
                           f"{conftest.BIN} \"$@\"\n")
        wrapper.chmod(0o755)
        monkeypatch.setattr(conftest, "BIN", str(wrapper))
    f = root / "locked.txt"
    f.write_text("locked content")
    f.chmod(0)
    srv = make_server(args=["--root", str(root)])
    assert get(srv.port, "/hello.txt").body == b"Hello, World!"
    r = get(srv.port, "/locked.txt")
    assert r.status == 403
    assert b"locked content" not in r.body


# ---- routes -----------------------------------------------------------------


def test_route_root_uses_nginx_semantics(make_server, site, tmp_path):
    other = tmp_path / "assets"
    (other / "static").mkdir(parents=True)
    (other / "static" / "x.txt").write_text("from assets/static\n")
    (other / "x.txt").write_text("wrong: prefix stripped\n")
    srv = make_server(config=f"[route /]\nhandler = static\nroot = {site}\n\n"
                             f"[route /static/]\nhandler = static\nroot = {other}\n")
    r = get(srv.port, "/static/x.txt")
    assert r.status == 200 and r.body == b"from assets/static\n"
    assert get(srv.port, "/hello.txt").body == b"Hello, World!"
    # the "/" route does not see the other root's files
    assert get(srv.port, "/x.txt").status == 404


def test_longest_prefix_wins(make_server, tmp_path):
    r0, r1, r2 = (tmp_path / n for n in ("r0", "r1", "r2"))
    for r in (r0, r1, r2):
        (r / "a" / "b").mkdir(parents=True)
        (r / "a" / "b" / "f.txt").write_text(f"{r.name} deep\n")
        (r / "a" / "f.txt").write_text(f"{r.name} shallow\n")
        (r / "f.txt").write_text(f"{r.name} top\n")
    # shortest first, so that a first-match lookup would be wrong
    srv = make_server(config=f"[route /]\nhandler = static\nroot = {r0}\n"
                             f"[route /a/]\nhandler = static\nroot = {r1}\n"
                             f"[route /a/b/]\nhandler = static\nroot = {r2}\n")
    assert get(srv.port, "/a/b/f.txt").body == b"r2 deep\n"
    assert get(srv.port, "/a/f.txt").body == b"r1 shallow\n"
    assert get(srv.port, "/f.txt").body == b"r0 top\n"


def _normalized(r):
    return (r.status, sorted((k, v) for k, v in r.headers if k != "date"), r.body)


def test_pool_mode_serves_the_same_bytes_as_inline(make_server, tmp_path):
    root = build_site(tmp_path / "site")
    inline = make_server(config=f"[route /]\nhandler = static\nroot = {root}\nmode = inline\n")
    pooled = make_server(config=f"[route /]\nhandler = static\nroot = {root}\nmode = pool\n")
    etag = etag_of(root / "big.bin")
    cases = [
        ("/big.bin", ()),
        ("/hello.txt", ()),
        ("/empty.txt", ()),
        ("/", ()),
        ("/dir", ()),
        ("/noindex/", ()),
        ("/missing", ()),
        ("/leak.txt", ()),
        ("/pipe", ()),
        ("/big.bin", (("Range", "bytes=1000-200000"),)),
        ("/big.bin", (("Range", "bytes=-1"),)),
        ("/big.bin", (("Range", "bytes=%d-" % SIZE),)),
        ("/big.bin", (("If-None-Match", etag),)),
        ("/big.bin", (("If-Modified-Since", MTIME_HTTP),)),
    ]
    for path, headers in cases:
        a = get(inline.port, path, headers)
        b = get(pooled.port, path, headers)
        assert _normalized(a) == _normalized(b), (path, headers)
    assert get(pooled.port, "/big.bin").body == BIG
    a = get(pooled.port, "/hello.txt", method="POST", body=b"abc")
    assert a.status == 405 and a.header("allow") == "GET, HEAD"
    # keep-alive through the pool: several files on one connection
    with pooled.connect() as s:
        rd = Reader(s)
        for _ in range(5):
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert rd.response().body == BIG
            s.sendall(b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert rd.response(head=True).header("content-length") == "13"


# ---- sizes and slow clients -------------------------------------------------


def test_one_mib_file_byte_for_byte(shared):
    r = followed_by_get(shared, raw_get("/big.bin", close=False))
    assert r.status == 200
    assert r.header("content-length") == str(SIZE)
    assert r.body == BIG


def test_empty_file(shared):
    r = followed_by_get(shared, raw_get("/empty.txt", close=False))
    assert r.status == 200
    assert r.header("content-length") == "0"
    assert r.header("content-type") == "text/plain; charset=utf-8"
    assert r.body == b""


def test_20_mib_file_to_a_slow_reader(make_server, tmp_path):
    root = tmp_path / "huge"
    root.mkdir()
    data = os.urandom(20 << 20)
    (root / "huge.bin").write_bytes(data)
    srv = make_server(args=["--root", str(root)])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.settimeout(20)
    with s:
        s.connect(("127.0.0.1", srv.port))
        s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)  # let the server fill every buffer and wait on the socket
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            assert chunk, "closed before the head"
            head += chunk
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"\r\nContent-Length: %d\r\n" % len(data) in head
        h = hashlib.sha256()
        got = 0
        since_pause = 0
        while got < len(data):
            chunk = s.recv(min(4096, len(data) - got))
            assert chunk, f"closed after {got} bytes"
            h.update(chunk)
            got += len(chunk)
            since_pause += len(chunk)
            if since_pause >= 128 * 1024:
                since_pause = 0
                time.sleep(0.01)
        assert h.digest() == hashlib.sha256(data).digest()
        # the connection is still in step: a next request works
        rd = Reader(s)
        s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-10\r\n\r\n")
        r = rd.response()
        assert r.status == 206 and r.body == data[-10:]


# ---- curl as a real client --------------------------------------------------


def test_curl_get_range_head_and_redirect(shared):
    base = f"http://127.0.0.1:{shared.port}"
    out = curl("--fail", f"{base}/big.bin", "-o", "-")
    assert out.returncode == 0, out.stderr
    assert out.stdout == BIG
    out = curl("--fail", "-r", "100-199", f"{base}/big.bin", "-o", "-")
    assert out.returncode == 0, out.stderr
    assert out.stdout == BIG[100:200]
    out = curl("--fail", "-I", f"{base}/hello.txt")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode().lower()
    assert text.startswith("http/1.1 200")
    assert "content-length: 13" in text and "accept-ranges: bytes" in text
    out = curl("--fail", "-L", f"{base}/dir")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"dir index\n"
    out = curl("--fail", "-o", "/dev/null", f"{base}/missing.txt")
    assert out.returncode == 22  # HTTP error reported by --fail
    out = curl("--fail", "--path-as-is", f"{base}/../secret.txt")
    assert out.returncode == 22 and SECRET not in out.stdout
    out = curl("-o", "/dev/null", "-w", "%{http_code}", "-z", MTIME_HTTP, f"{base}/hello.txt")
    assert out.stdout == b"304"
