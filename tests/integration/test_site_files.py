"""Settings of the static handler for serving a whole site without a front
server: hidden and backup files, charsets and mime.types, index lists and
listings, try_files."""

import os
import pathlib
import socket
import subprocess
import urllib.parse

import pytest

from conftest import BIN, get


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
