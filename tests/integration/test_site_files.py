"""Settings of the static handler for serving a whole site without a front
server: hidden and backup files, charsets and mime.types, index lists and
listings, try_files."""

import os
import pathlib
import socket
import subprocess
import urllib.parse

import pytest

from conftest import BIN, get, wait_until


def conf(root, **settings):
    lines = ["[route /]", "handler = static", f"root = {root}"]
    lines += [f"{k} = {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def check(tmp_path, text):
    """preforkd --check on a config; returns (status, stderr)."""
    cf = tmp_path / "check.conf"
    cf.write_text(text)
    p = subprocess.run([BIN, "--check", "--config", str(cf)], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stderr


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<h1>index</h1>\n")
    (root / "hello.txt").write_text("Hello")
    (root / ".env").write_text("SECRET=1\n")
    (root / ".htaccess").write_text("deny from all\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / ".git" / "index.html").write_text("git index\n")
    (root / "sub").mkdir()
    (root / "sub" / ".hidden.txt").write_text("hidden\n")
    (root / ".well-known").mkdir()
    (root / ".well-known" / "security.txt").write_text("Contact: x\n")
    for name in ["notes.txt~", "page.html.bak", "page.html.BAK", "edit.swp", "conf.orig"]:
        (root / name).write_text("backup\n")
    return root


# ---- hidden and backup files -------------------------------------------------

HIDDEN = ["/.env", "/.htaccess", "/.git/config", "/.git/", "/.git", "/sub/.hidden.txt",
          "/%2egit/config", "/%2Egit/config", "/.%67it/config", "/%2e%67%69%74/config",
          "/%2eenv", "/sub/%2Ehidden.txt", "/sub/../.env", "/./.env", "//.env",
          "/.git/../.git/config", "/.git/index.html"]
BACKUP = ["/notes.txt~", "/notes.txt%7E", "/page.html.bak", "/page.html.BAK", "/edit.swp",
          "/conf.orig", "/page.html%2ebak"]


def test_hidden_and_backup_refused_by_default(make_server, www):
    srv = make_server(config=conf(www))
    for path in HIDDEN + BACKUP:
        r = get(srv.port, path)
        assert r.status == 404, (path, r.status)
        assert b"SECRET" not in r.body and b"core" not in r.body and b"backup" not in r.body
    # the same file twice: a refusal is not cached as a hit
    assert get(srv.port, "/hello.txt").body == b"Hello"
    assert get(srv.port, "/.well-known/security.txt").body == b"Contact: x\n"
    assert get(srv.port, "/").status == 200


def test_hidden_allowed(make_server, www):
    srv = make_server(config=conf(www, hidden_files="allow", deny_suffixes="off"))
    assert get(srv.port, "/.env").body == b"SECRET=1\n"
    assert get(srv.port, "/%2egit/config").body == b"[core]\n"
    assert get(srv.port, "/notes.txt~").body == b"backup\n"


def test_deny_suffixes_setting(make_server, www):
    srv = make_server(config=conf(www, deny_suffixes=".txt .orig"))
    assert get(srv.port, "/hello.txt").status == 404
    assert get(srv.port, "/conf.orig").status == 404
    assert get(srv.port, "/page.html.bak").status == 200  # no longer on the list
    assert get(srv.port, "/.env").status == 404


def test_hidden_settings_checked(tmp_path, www):
    rc, err = check(tmp_path, conf(www, hidden_files="maybe"))
    assert rc == 2 and "check.conf:4:" in err and "hidden_files" in err, err
    rc, err = check(tmp_path, conf(www, deny_suffixes="~ a/b"))
    assert rc == 2 and "check.conf:4:" in err and "deny_suffixes" in err, err


# ---- types and charsets ------------------------------------------------------

TYPED = {
    "a.html": "text/html; charset=utf-8",
    "a.json": "application/json; charset=utf-8",
    "a.svg": "image/svg+xml; charset=utf-8",
    "a.mjs": "text/javascript; charset=utf-8",
    "site.webmanifest": "application/manifest+json; charset=utf-8",
    "a.wasm": "application/wasm",
    "a.avif": "image/avif",
    "a.webp": "image/webp",
    "a.woff2": "font/woff2",
    "a.png": "image/png",
}


@pytest.fixture
def typed(tmp_path):
    root = tmp_path / "typed"
    root.mkdir()
    for name in list(TYPED) + ["a.foo", "a.txt"]:
        (root / name).write_text("x\n")
    return root


def test_charset_on_text_types(make_server, typed):
    srv = make_server(config=conf(typed))
    for name, want in TYPED.items():
        for _ in range(2):  # a miss, then a cached answer
            assert get(srv.port, "/" + name).header("content-type") == want, name


def test_charset_setting(make_server, typed):
    srv = make_server(config=conf(typed, charset="iso-8859-1"))
    assert get(srv.port, "/a.html").header("content-type") == "text/html; charset=iso-8859-1"
    assert get(srv.port, "/a.png").header("content-type") == "image/png"
    srv = make_server(config=conf(typed, charset="off"))
    assert get(srv.port, "/a.html").header("content-type") == "text/html"
    assert get(srv.port, "/a.json").header("content-type") == "application/json"


def test_mime_types_file(make_server, typed, tmp_path):
    (tmp_path / "extra.types").write_text(
        "# site types\napplication/x-foo foo\ntext/x-plain txt\n\nimage/x-png png\n")
    # relative to the config file's folder (the server's tmp folder)
    srv = make_server(config=conf(typed, mime_types=str(tmp_path / "extra.types")))
    assert get(srv.port, "/a.foo").header("content-type") == "application/x-foo"
    assert get(srv.port, "/a.txt").header("content-type") == "text/x-plain; charset=utf-8"
    assert get(srv.port, "/a.png").header("content-type") == "image/x-png"
    assert get(srv.port, "/a.html").header("content-type") == "text/html; charset=utf-8"


def test_system_mime_types_file(make_server, typed):
    if not os.path.exists("/etc/mime.types"):
        pytest.skip("no /etc/mime.types")
    srv = make_server(config=conf(typed, mime_types="/etc/mime.types"))
    assert get(srv.port, "/a.png").header("content-type") == "image/png"


def test_type_settings_checked(tmp_path, typed):
    (tmp_path / "bad.types").write_text("text/plain txt\n\nnonsense foo\n")
    rc, err = check(tmp_path, conf(typed, charset="off", mime_types=str(tmp_path / "bad.types")))
    assert rc == 2, err
    assert f"check.conf:5: [route /]: mime_types: {tmp_path}/bad.types:3: \"nonsense\" is not a media type" \
        in err, err
    rc, err = check(tmp_path, conf(typed, mime_types="missing.types"))
    assert rc == 2 and "check.conf:4: [route /]: mime_types:" in err and "missing.types" in err, err
    rc, err = check(tmp_path, conf(typed, charset="utf 8"))
    assert rc == 2 and "check.conf:4: [route /]: charset" in err, err
    (tmp_path / "good.types").write_text("text/plain txt\n")
    rc, err = check(tmp_path, conf(typed, mime_types="good.types"))
    assert rc == 0, err


# ---- index lists and listings -----------------------------------------------

def test_index_list_first_existing_wins(make_server, tmp_path):
    root = tmp_path / "idx"
    for d in ["both", "htm", "none", "dirnamed"]:
        (root / d).mkdir(parents=True)
    (root / "both" / "index.html").write_text("html\n")
    (root / "both" / "index.htm").write_text("htm\n")
    (root / "htm" / "index.htm").write_text("htm only\n")
    (root / "dirnamed" / "index.html").mkdir()  # a folder is no index
    (root / "dirnamed" / "index.htm").write_text("second\n")
    srv = make_server(config=conf(root, index="index.html index.htm"))
    for _ in range(2):
        assert get(srv.port, "/both/").body == b"html\n"
        r = get(srv.port, "/htm/")
        assert r.body == b"htm only\n"
        assert r.header("content-type") == "text/html; charset=utf-8"  # the index's name
    assert get(srv.port, "/dirnamed/").body == b"second\n"
    assert get(srv.port, "/none/").status == 403  # no listing by default
    assert get(srv.port, "/htm").status == 301


HOSTILE = ["<img src=x onerror=alert(1)>.txt", 'quote".txt', "amp&amp;.txt", "a b c.txt",
           "h\u00e9llo-\u4e16\u754c.txt", "it's.txt", "colon:x.txt", "pct%41.txt", "hash#q?.txt"]


def test_autoindex_hostile_names(make_server, tmp_path):
    root = tmp_path / "list"
    root.mkdir()
    for name in HOSTILE:
        (root / name).write_text("x\n")
    bad = b"bad-\xff\xfe-utf8.txt"
    os.close(os.open(os.fsencode(root) + b"/" + bad, os.O_CREAT | os.O_WRONLY, 0o644))
    (root / "sub dir").mkdir()
    (root / ".git").mkdir()
    (root / ".env").write_text("SECRET\n")
    (root / "old.txt~").write_text("x\n")
    srv = make_server(config=conf(root, autoindex="on", index="none.html"))
    r = get(srv.port, "/")
    assert r.status == 200
    assert r.header("content-type") == "text/html; charset=utf-8"
    body = r.body.decode("utf-8")  # invalid bytes were replaced: it decodes
    assert "<img" not in body and "&lt;img src=x onerror=alert(1)&gt;.txt" in body
    assert "quote&quot;.txt" in body and "amp&amp;amp;.txt" in body and "it&#39;s.txt" in body
    assert ".git" not in body and ".env" not in body and "old.txt~" not in body
    assert "bad-\ufffd\ufffd-utf8.txt" in body
    assert 'href="sub%20dir/">sub dir/</a>' in body
    hrefs = [h.split('"', 1)[0] for h in body.split('href="')[1:]]
    assert "../" not in hrefs  # the root has no parent
    # every link, followed, serves its file
    for name in HOSTILE + [bad]:
        enc = urllib.parse.quote(name if isinstance(name, bytes) else name.encode(), safe="-._~")
        assert enc in hrefs, (name, hrefs)
        want = b"" if isinstance(name, bytes) else b"x\n"
        assert get(srv.port, "/" + enc).body == want, name
    sub = get(srv.port, "/sub%20dir/")
    assert sub.status == 200 and 'href="../"' in sub.body.decode()
    assert b"Index of /sub dir/" in sub.body
    assert get(srv.port, "/.git/").status == 404
    # a listing is never a cached file: a new file shows at once
    (root / "new.txt").write_text("x\n")
    assert b"new.txt" in get(srv.port, "/").body
    assert get(srv.port, "/", method="HEAD").status == 200


def test_autoindex_with_try_files(make_server, tmp_path):
    root = tmp_path / "tl"
    (root / "files").mkdir(parents=True)
    (root / "files" / "a.txt").write_text("a\n")
    (root / "index.html").write_text("app\n")
    srv = make_server(config=conf(root, autoindex="on", try_files="$uri $uri/ /index.html"))
    r = get(srv.port, "/files")
    assert r.status == 301 and r.header("location") == "/files/"
    r = get(srv.port, "/files/")
    assert r.status == 200 and 'href="a.txt"' in r.body.decode()
    assert get(srv.port, "/nothing").body == b"app\n"


def test_index_settings_checked(tmp_path, www):
    rc, err = check(tmp_path, conf(www, index="index.html a/b.html"))
    assert rc == 2 and "check.conf:4: [route /]: index" in err, err
    rc, err = check(tmp_path, conf(www, autoindex="yes"))
    assert rc == 2 and "check.conf:4: [route /]: autoindex" in err, err


# ---- try_files ---------------------------------------------------------------

@pytest.fixture
def spa(tmp_path):
    root = tmp_path / "spa"
    (root / "assets").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "noidx").mkdir()
    (root / "index.html").write_text("<app/>\n")
    (root / "about.html").write_text("about\n")
    (root / "assets" / "app.js").write_text("js\n")
    (root / "docs" / "index.html").write_text("docs\n")
    (root / ".env").write_text("SECRET\n")
    (root / "page.bak.html").write_text("x\n")
    return root


def test_try_files_single_page_app(make_server, spa):
    srv = make_server(config=conf(spa, try_files="$uri $uri.html $uri/ /index.html"))
    for _ in range(2):  # misses, then cached answers
        r = get(srv.port, "/assets/app.js")
        assert r.body == b"js\n" and r.header("content-type") == "text/javascript; charset=utf-8"
        assert get(srv.port, "/about").body == b"about\n"
        assert get(srv.port, "/docs").body == b"docs\n"  # $uri/: the index, no redirect
        assert get(srv.port, "/docs/").body == b"docs\n"
        r = get(srv.port, "/users/42/profile")
        assert r.status == 200 and r.body == b"<app/>\n"
        assert r.header("content-type") == "text/html; charset=utf-8"
        assert get(srv.port, "/noidx/").body == b"<app/>\n"
        assert get(srv.port, "/").body == b"<app/>\n"
    assert get(srv.port, "/.env").status == 404  # refused before try_files
    # a file appearing is served within file_cache_valid
    (spa / "late.html").write_text("late\n")
    import time
    time.sleep(1.2)
    assert get(srv.port, "/late").body == b"late\n"


def test_try_files_code_last(make_server, spa):
    srv = make_server(config=conf(spa, try_files="$uri $uri.html =404"))
    assert get(srv.port, "/about").body == b"about\n"
    assert get(srv.port, "/missing").status == 404
    assert get(srv.port, "/docs").status == 404  # a folder is not a $uri file
    srv = make_server(config=conf(spa, try_files="$uri =410", mode="pool"))
    assert get(srv.port, "/missing").status == 410
    assert get(srv.port, "/about.html").body == b"about\n"


def test_try_files_checked(tmp_path, spa):
    for bad in ["=404 $uri", "$uri =200", "$uri =40x", "uri", "$uri $args", "$uri /../x",
                "$uri /a/./b"]:
        rc, err = check(tmp_path, conf(spa, try_files=bad))
        assert rc == 2 and "check.conf:4: [route /]: try_files" in err, (bad, err)
    rc, err = check(tmp_path, conf(spa, try_files="$uri $uri/ /index.html =404"))
    assert rc == 0, err


# ---- precompressed files -----------------------------------------------------

import gzip as gziplib

import brotli  # python3-brotli: real brotli bytes, and their check

CSS = b"body { color: red }\n" * 400


@pytest.fixture
def packed(tmp_path):
    root = tmp_path / "packed"
    (root / "docs").mkdir(parents=True)
    (root / "site.css").write_bytes(CSS)
    (root / "site.css.gz").write_bytes(gziplib.compress(CSS, 9))
    (root / "only-gz.js").write_bytes(b"js();\n" * 100)
    (root / "only-gz.js.gz").write_bytes(gziplib.compress(b"js();\n" * 100))
    (root / "plain.txt").write_bytes(b"no compressed form\n")
    (root / "docs" / "index.html").write_bytes(b"<p>docs</p>\n" * 50)
    (root / "docs" / "index.html.gz").write_bytes(gziplib.compress(b"<p>docs</p>\n" * 50))
    (root / "site.css.br").write_bytes(brotli.compress(CSS))
    return root


def test_precompressed_chosen_by_accept_encoding(make_server, packed):
    srv = make_server(config=conf(packed, gzip_static="on", brotli_static="on"))
    gz = (packed / "site.css.gz").read_bytes()
    br = (packed / "site.css.br").read_bytes()
    cases = [
        (None, None, CSS),
        ("gzip", "gzip", gz),
        ("gzip, deflate, br", "br", br),
        ("gzip;q=1, br;q=0.5", "gzip", gz),
        ("gzip;q=0.5, br;q=1", "br", br),
        ("br;q=0, gzip;q=0", None, CSS),
        ("identity;q=1, *;q=0", None, CSS),
        ("*", "br", br),
        ("deflate", None, CSS),
    ]
    etags = {}
    for _ in range(2):  # misses, then cached answers
        for ae, want_enc, want_body in cases:
            r = get(srv.port, "/site.css", headers=[("Accept-Encoding", ae)] if ae else [])
            assert r.status == 200, ae
            assert r.header("content-encoding") == want_enc, ae
            assert r.body == want_body, ae
            decode = {"gzip": gziplib.decompress, "br": brotli.decompress}.get(want_enc)
            assert (decode(r.body) if decode else r.body) == CSS
            assert r.header("vary") == "Accept-Encoding", ae
            assert r.header("content-type") == "text/css; charset=utf-8", ae
            etags.setdefault(want_enc, set()).add(r.header("etag"))
    assert all(len(v) == 1 for v in etags.values()), etags
    assert etags["gzip"] != etags[None] and etags["br"] != etags[None]
    assert next(iter(etags["gzip"])).endswith('-gz"') and next(iter(etags["br"])).endswith('-br"')
    # a conditional request matches only its own coding's tag
    tag = next(iter(etags["gzip"]))
    r = get(srv.port, "/site.css", headers=[("Accept-Encoding", "gzip"), ("If-None-Match", tag)])
    assert r.status == 304 and r.header("vary") == "Accept-Encoding"
    assert r.header("etag") == tag and r.header("content-encoding") is None
    r = get(srv.port, "/site.css", headers=[("If-None-Match", tag)])
    assert r.status == 200 and r.body == CSS
    # a range applies to the compressed bytes
    r = get(srv.port, "/site.css", headers=[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")])
    assert r.status == 206 and r.body == gz[:10]
    assert r.header("content-range") == f"bytes 0-9/{len(gz)}"
    assert r.header("content-encoding") == "gzip"
    # no compressed form: the file itself, still with Vary
    for _ in range(2):
        r = get(srv.port, "/plain.txt", headers=[("Accept-Encoding", "gzip, br")])
        assert r.body == b"no compressed form\n" and r.header("content-encoding") is None
        assert r.header("vary") == "Accept-Encoding"
    r = get(srv.port, "/only-gz.js", headers=[("Accept-Encoding", "br")])
    assert r.header("content-encoding") is None and r.body == b"js();\n" * 100
    # br preferred but only a .gz: the next acceptable coding
    for _ in range(2):
        r = get(srv.port, "/only-gz.js", headers=[("Accept-Encoding", "gzip, deflate, br")])
        assert r.header("content-encoding") == "gzip"
        assert gziplib.decompress(r.body) == b"js();\n" * 100
    r = get(srv.port, "/only-gz.js", headers=[("Accept-Encoding", "br, gzip;q=0")])
    assert r.header("content-encoding") is None
    r = get(srv.port, "/docs/", headers=[("Accept-Encoding", "gzip")])
    assert r.header("content-encoding") == "gzip"
    assert r.header("content-type") == "text/html; charset=utf-8"
    assert gziplib.decompress(r.body) == b"<p>docs</p>\n" * 50
    assert get(srv.port, "/missing").header("vary") == "Accept-Encoding"


def test_precompressed_with_curl(make_server, packed):
    srv = make_server(config=conf(packed, gzip_static="on", brotli_static="on"))
    url = f"http://127.0.0.1:{srv.port}/site.css"
    for enc in ["gzip", "br"]:  # Debian's curl decodes both
        out = subprocess.run(["curl", "-sS", "--compressed", "-H", f"Accept-Encoding: {enc}",
                              "-D", "-", "-o", "/dev/stdout", url], capture_output=True,
                             timeout=30, check=True).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        assert f"content-encoding: {enc}".encode() in head.lower()
        assert body == CSS


def test_precompressed_updated_file(make_server, packed):
    srv = make_server(config=conf(packed, gzip_static="on"))
    h = [("Accept-Encoding", "gzip")]
    assert get(srv.port, "/plain.txt", headers=h).header("content-encoding") is None
    (packed / "plain.txt.gz").write_bytes(gziplib.compress(b"no compressed form\n"))
    import time
    time.sleep(1.2)  # file_cache_valid
    r = get(srv.port, "/plain.txt", headers=h)
    assert r.header("content-encoding") == "gzip"
    assert gziplib.decompress(r.body) == b"no compressed form\n"


def test_no_vary_without_encodings(make_server, packed):
    srv = make_server(config=conf(packed))
    r = get(srv.port, "/site.css", headers=[("Accept-Encoding", "gzip")])
    assert r.body == CSS and r.header("vary") is None and r.header("content-encoding") is None


def test_compression_settings_checked(tmp_path, packed):
    rc, err = check(tmp_path, conf(packed, gzip_static="yes"))
    assert rc == 2 and "check.conf:4: [route /]: gzip_static" in err, err
    rc, err = check(tmp_path, conf(packed, gzip_static="on", brotli_static="maybe"))
    assert rc == 2 and "check.conf:5: [route /]: brotli_static" in err, err


# ---- compression on the fly --------------------------------------------------

@pytest.fixture
def texts(tmp_path):
    root = tmp_path / "texts"
    root.mkdir()
    (root / "page.html").write_bytes(b"<p>hello, compression</p>\n" * 200)  # 5.4 KB
    (root / "tiny.css").write_bytes(b"a{}\n")
    (root / "pic.png").write_bytes(os.urandom(100) + b"\0" * 3000)
    (root / "big.js").write_bytes(b"var x = 1;\n" * 3000)  # 33 KB: compressed per request
    lines = (f"{i:06d} the quick brown fox jumps over the lazy dog {i * 7919 % 10007}\n"
             for i in range(6000))
    (root / "large.txt").write_bytes("".join(lines).encode())  # 360 KB
    (root / "random.txt").write_bytes(os.urandom(4000))
    (root / "app.json").write_bytes(b'{"k": "value"}\n' * 100)
    return root


@pytest.mark.parametrize("mode", ["inline", "pool"])
def test_compress_on_the_fly(make_server, texts, mode):
    srv = make_server(config=conf(texts, compress="on", mode=mode))
    page = (texts / "page.html").read_bytes()
    h = [("Accept-Encoding", "gzip, deflate, br")]
    tags = set()
    for _ in range(3):  # the first answer compresses, the next come from the cache
        r = get(srv.port, "/page.html", headers=h)
        assert r.status == 200 and r.header("content-encoding") == "gzip"
        assert r.header("vary") == "Accept-Encoding"
        assert r.header("content-type") == "text/html; charset=utf-8"
        assert int(r.header("content-length")) == len(r.body) < len(page) // 4
        assert gziplib.decompress(r.body) == page
        tags.add(r.header("etag"))
    tag = tags.pop()
    assert not tags and tag.startswith('W/"') and tag.endswith('-gz"')  # weak: made here
    r304 = get(srv.port, "/page.html", headers=h + [("If-None-Match", tag)])
    assert r304.status == 304 and r304.header("etag") == tag
    assert r304.header("content-encoding") is None
    plain = get(srv.port, "/page.html")
    assert plain.body == page and plain.header("content-encoding") is None
    assert plain.header("etag") != r.header("etag")
    r2 = get(srv.port, "/page.html", headers=[("Accept-Encoding", "identity;q=1, *;q=0")])
    assert r2.body == page and r2.header("content-encoding") is None
    # not compressed: too small, not a text type, incompressible
    for path in ["/tiny.css", "/pic.png", "/random.txt"]:
        r = get(srv.port, path, headers=h)
        assert r.header("content-encoding") is None, path
        assert r.body == (texts / path[1:]).read_bytes()
        assert r.header("vary") == "Accept-Encoding"
    # a range of an answer compressed on the fly is ignored, as nginx's gzip
    # does: the whole compressed answer, which does not offer ranges
    full = get(srv.port, "/app.json", headers=h)
    assert full.header("accept-ranges") is None
    r = get(srv.port, "/app.json", headers=h + [("Range", "bytes=5-14")])
    assert r.status == 200 and r.body == full.body and r.header("content-range") is None
    # the plain answer keeps its ranges
    r = get(srv.port, "/app.json", headers=[("Range", "bytes=5-14")])
    assert r.status == 206 and r.body == (texts / "app.json").read_bytes()[5:15]


@pytest.mark.parametrize("mode", ["inline", "pool"])
def test_compress_large_files(make_server, texts, mode):
    # files over 16 KiB are compressed for each request (on the pool for an
    # inline route), whole, never cached compressed
    srv = make_server(config=conf(texts, compress="on", mode=mode))
    h = [("Accept-Encoding", "gzip")]
    for name in ["big.js", "large.txt"]:
        plain = (texts / name).read_bytes()
        bodies, tags = set(), set()
        for _ in range(3):
            r = get(srv.port, "/" + name, headers=h)
            assert r.status == 200 and r.header("content-encoding") == "gzip", name
            assert r.header("vary") == "Accept-Encoding" and r.header("accept-ranges") is None
            assert r.header("content-type") == "text/plain; charset=utf-8" or name == "big.js"
            assert gziplib.decompress(r.body) == plain
            assert int(r.header("content-length")) == len(r.body) < len(plain) // 3
            bodies.add(r.body)
            tags.add(r.header("etag"))
        assert len(bodies) == 1 and len(tags) == 1
        tag = tags.pop()
        assert tag.startswith('W/"') and tag.endswith('-gz"')
        # HEAD is not compressed (nginx's gzip neither): the file's own head
        plain_tag = get(srv.port, "/" + name).header("etag")
        head = get(srv.port, "/" + name, headers=h, method="HEAD")
        assert head.status == 200 and head.body == b""
        assert head.header("content-length") == str(len(plain))
        assert head.header("content-encoding") is None and head.header("etag") == plain_tag
        assert head.header("vary") == "Accept-Encoding"
        # validators of the compressed answer: 304 without compressing
        r = get(srv.port, "/" + name, headers=h + [("If-None-Match", tag)])
        assert r.status == 304 and r.body == b"" and r.header("etag") == tag
        assert r.header("content-encoding") is None  # a 304 has no representation fields
        assert r.header("vary") == "Accept-Encoding" and r.header("last-modified")
        r = get(srv.port, "/" + name, headers=h + [("If-None-Match", tag[2:])])
        assert r.status == 304  # the weak comparison
        # a weak tag never matches If-Match (strong comparison)
        r = get(srv.port, "/" + name, headers=h + [("If-Match", tag)])
        assert r.status == 412
        # ranges: ignored on the fly
        r = get(srv.port, "/" + name, headers=h + [("Range", "bytes=0-99")])
        assert r.status == 200 and gziplib.decompress(r.body) == plain
    # a large file that does not shrink goes out as it is (and stays so)
    noise = os.urandom(100_000)
    (texts / "noise.txt").write_bytes(noise)
    for _ in range(2):
        r = get(srv.port, "/noise.txt", headers=h)
        assert r.status == 200 and r.header("content-encoding") is None and r.body == noise
        assert r.header("accept-ranges") == "bytes" and not r.header("etag").startswith("W/")
    # byte for byte through curl
    out = subprocess.run(["curl", "-sS", "--compressed", "-o", "-",
                          f"http://127.0.0.1:{srv.port}/large.txt"],
                         capture_output=True, timeout=30, check=True).stdout
    assert out == (texts / "large.txt").read_bytes()


def test_compress_max_size(make_server, texts):
    srv = make_server(config=conf(texts, compress="on", compress_max_size="100k"))
    h = [("Accept-Encoding", "gzip")]
    r = get(srv.port, "/large.txt", headers=h)  # 360 KB: over the maximum
    assert r.header("content-encoding") is None and r.header("vary") == "Accept-Encoding"
    assert r.body == (texts / "large.txt").read_bytes()
    assert r.header("accept-ranges") == "bytes"
    r = get(srv.port, "/big.js", headers=h)
    assert r.header("content-encoding") == "gzip"
    assert gziplib.decompress(r.body) == (texts / "big.js").read_bytes()


def test_compress_memory_bound(make_server, texts):
    # a client that does not read holds its compressed answer; the route's
    # compress_memory bounds what such answers hold: past it, files go out
    # as they are (sendfile, nothing held), until the memory is given back
    # text that compresses to ~75% (base64 of random bytes): more gzip than
    # the kernel's socket buffers take (tcp_wmem's most, 4 MiB by default)
    import base64
    wmem = int(pathlib.Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    (texts / "huge.txt").write_bytes(base64.encodebytes(os.urandom(max(4_500_000, 2 * wmem))))
    plain = (texts / "huge.txt").read_bytes()
    size = len(plain)
    # a job takes 2 x size while compressing, then its gzip's length (~0.75 x
    # size): a second job does not fit beside the first's answer
    srv = make_server(config=conf(texts, compress="on", compress_max_size=str(size),
                                  compress_memory=str(size * 5 // 2)))
    h = [("Accept-Encoding", "gzip")]
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", srv.port))
    slow.sendall(b"GET /huge.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += slow.recv(1024)
    assert b"Content-Encoding: gzip" in head  # its output is held until sent
    r = get(srv.port, "/huge.txt", headers=h)
    assert r.status == 200 and r.header("content-encoding") is None and r.body == plain
    assert r.header("vary") == "Accept-Encoding"
    r = get(srv.port, "/big.js", headers=h)  # 33 KB: still fits
    assert r.header("content-encoding") == "gzip"
    slow.close()
    wait_until(lambda: get(srv.port, "/huge.txt", headers=h).header("content-encoding")
               == "gzip", what="compress_memory given back")
    r = get(srv.port, "/huge.txt", headers=h)
    assert gziplib.decompress(r.body) == plain


def test_compress_request_timeout(make_server, texts):
    # request_timeout fires while a compression runs: the client gets 504
    # at once; the job runs to its end, holding its memory, then gives it
    # back. A probe with a one-byte Range tells which path a GET takes: a
    # plain answer (the memory is taken) is a 206 of one byte, a compression
    # ignores the range and runs into the timeout again (504).
    import base64
    (texts / "slow.txt").write_bytes(base64.encodebytes(os.urandom(15_000_000)))  # 20 MB
    srv = make_server(config="[server]\nrequest_timeout = 100ms\n" +
                      conf(texts, compress="on", compress_level="9", compress_max_size="21m",
                           compress_memory="50m"))
    h = [("Accept-Encoding", "gzip")]
    assert get(srv.port, "/slow.txt", headers=h).status == 504
    probe = h + [("Range", "bytes=0-0")]
    r = get(srv.port, "/slow.txt", headers=probe)  # 40 of 50 MB held: sent as it is
    assert r.status == 206 and r.body == (texts / "slow.txt").read_bytes()[:1]
    assert get(srv.port, "/big.js", headers=h).header("content-encoding") == "gzip"
    wait_until(lambda: get(srv.port, "/slow.txt", headers=probe).status == 504, timeout=60,
               interval=0.3, what="the timed-out job's memory given back")


def test_compress_clients_leave_and_queue_full(make_server, texts):
    # the pool job of a large compression: clients that leave before it
    # starts, while it runs and after; a queue that is full answers 503;
    # the worker survives all and frees everything (ASan build)
    (texts / "huge.txt").write_bytes((texts / "large.txt").read_bytes() * 8)  # 2.9 MB
    # level 9: each job runs long enough that the later requests find the
    # pool's one thread and two queue places taken
    srv = make_server(config="[server]\nthreads = 1\npool_queue = 2\n" +
                      conf(texts, compress="on", compress_max_size="8m", compress_level="9"))
    req = (b"GET /huge.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
    # connected first, then asked at once: the jobs outnumber the pool's room
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(24)]
    for s in socks:
        s.sendall(req)
    for i, s in enumerate(socks):
        if i % 3 == 0:  # reset: SO_LINGER 0
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            s.close()
        elif i % 3 == 1:
            s.close()
    statuses = []
    for s in socks[2::3]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        statuses.append(int(data.split()[1]))
        s.close()
    assert set(statuses) <= {200, 503} and 503 in statuses, statuses
    r = get(srv.port, "/huge.txt", headers=[("Accept-Encoding", "gzip")])
    assert r.status == 200 and gziplib.decompress(r.body) == (texts / "huge.txt").read_bytes()


def test_compress_after_missing_brotli(make_server, texts):
    (texts / "app.json.br").write_bytes(b"fake-br")
    srv = make_server(config=conf(texts, compress="on", brotli_static="on"))
    h = [("Accept-Encoding", "gzip, br")]
    assert get(srv.port, "/app.json", headers=h).body == b"fake-br"
    r = get(srv.port, "/page.html", headers=h)  # no .br: gzip on the fly
    assert r.header("content-encoding") == "gzip"
    assert gziplib.decompress(r.body) == (texts / "page.html").read_bytes()


def test_compress_with_curl_byte_for_byte(make_server, texts):
    srv = make_server(config=conf(texts, compress="on", compress_level="9"))
    for name in ["page.html", "app.json", "big.js", "tiny.css"]:
        out = subprocess.run(["curl", "-sS", "--compressed", "-o", "-",
                              f"http://127.0.0.1:{srv.port}/{name}"],
                             capture_output=True, timeout=30, check=True).stdout
        assert out == (texts / name).read_bytes(), name


def test_compress_types_and_min_size(make_server, texts):
    srv = make_server(config=conf(texts, compress="on", compress_types="image/png",
                                  compress_min_size="3k"))
    h = [("Accept-Encoding", "gzip")]
    r = get(srv.port, "/pic.png", headers=h)
    assert r.header("content-encoding") == "gzip"
    assert gziplib.decompress(r.body) == (texts / "pic.png").read_bytes()
    assert get(srv.port, "/page.html", headers=h).header("content-encoding") is None
    srv = make_server(config=conf(texts, compress="on", compress_min_size="6k"))
    assert get(srv.port, "/page.html", headers=h).header("content-encoding") is None


def test_compress_file_changes(make_server, texts):
    srv = make_server(config=conf(texts, compress="on"))
    h = [("Accept-Encoding", "gzip")]
    assert gziplib.decompress(get(srv.port, "/app.json", headers=h).body).startswith(b'{"k"')
    (texts / "app.json").write_bytes(b'{"changed": true}\n' * 50)
    import time
    time.sleep(1.2)
    r = get(srv.port, "/app.json", headers=h)
    assert gziplib.decompress(r.body) == b'{"changed": true}\n' * 50


def test_compress_settings_checked(tmp_path, texts):
    for k, v in [("compress", "yes"), ("compress_level", "0"), ("compress_level", "10"),
                 ("compress_min_size", "big"), ("compress_types", "html"),
                 ("compress_max_size", "65m"), ("compress_max_size", "10"),
                 ("compress_memory", "lots")]:
        rc, err = check(tmp_path, conf(texts, **{k: v}))
        assert rc == 2 and f"check.conf:4: [route /]: {k}" in err, (k, v, err)
    # two settings that disagree
    rc, err = check(tmp_path, conf(texts, compress_max_size="20m"))
    assert rc == 2 and "compress_memory (33554432) is below twice compress_max_size (20971520)" \
        in err, err
    assert check(tmp_path, conf(texts, compress_max_size="20m", compress_memory="40m"))[0] == 0
