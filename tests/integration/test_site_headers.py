"""A static site's per-route settings (workers/site.c): header (and
"always"), cache_control, expires, cors (simple answers and preflights),
error_page (the original status kept, a missing page falls back, inherited
under a prefix route), return (each variable; nothing a client sends can add
a header), and --check's FILE:LINE errors for each setting."""
import subprocess

import pytest

from conftest import BIN, get, request

ORIGINS = "https://a.example https://b.example:8443"


@pytest.fixture
def site_root(site):
    (site / "404.html").write_text("<h1>custom 404</h1>\n")
    (site / "errors").mkdir()
    (site / "errors" / "403.html").write_text("<h1>custom 403</h1>\n")
    (site / "gone.html").write_text("<h1>gone page</h1>\n")
    return site


def config(root):
    return f"""
[route /]
handler = static
root = {root}
header = X-Frame-Options: DENY
header = X-Trace: on always
expires = 1h
cors = {ORIGINS}
error_page = 404 405 /404.html
error_page = 403 /errors/403.html
error_page = 410 /missing.html

[route /assets]
handler = static
root = {root}
cache_control = public, max-age=60

[route /open]
handler = echo
cors = *

[route /api]
handler = echo
methods = GET POST
cors = {ORIGINS}

[route = /old]
return = 301 https://new.example$request_uri

[route = /moved]
return = 302 $scheme://$host/new$uri?from=$args

[route = /brace]
return = 308 https://x.example${{uri}}.html

[route = /text]
return = 200 "hello from $host"

[route = /gone]
return = 410

[route = /gone-text]
return = 404 "not here"

[route = /only-get]
handler = echo
methods = GET
"""


@pytest.fixture
def srv(make_server, site_root):
    return make_server(config=config(site_root))


# ---- header, cache_control, expires -----------------------------------------


def test_headers_on_success(srv):
    r = get(srv.port, "/hello.txt")
    assert r.status == 200
    assert r.header("X-Frame-Options") == "DENY"
    assert r.header("X-Trace") == "on"
    assert r.header("Cache-Control") == "max-age=3600"
    assert r.header("Expires")
    assert r.body == b"Hello, World!"


def test_headers_on_304(srv):
    etag = get(srv.port, "/hello.txt").header("ETag")
    r = get(srv.port, "/hello.txt", headers=[("If-None-Match", etag)])
    assert r.status == 304
    assert r.header("X-Frame-Options") == "DENY"
    assert r.header("X-Trace") == "on"
    assert r.header("Cache-Control") == "max-age=3600"


def test_only_always_headers_on_errors(srv):
    r = get(srv.port, "/nothing-here")
    assert r.status == 404
    assert r.header("X-Frame-Options") is None
    assert r.header("Expires") is None and r.header("Cache-Control") is None
    assert r.header("X-Trace") == "on"


def test_cache_control_of_another_route(srv):
    r = get(srv.port, "/assets/x")  # the file is not there: no Cache-Control
    assert r.status == 404 and r.header("Cache-Control") is None
    # the route's own settings only: none of [route /]'s headers
    assert r.header("X-Trace") is None


def test_cache_control(make_server, site_root):
    srv = make_server(config=f"[route /]\nroot = {site_root}\nhandler = static\n"
                             "cache_control = public, max-age=60\n")
    r = get(srv.port, "/hello.txt")
    assert r.header("Cache-Control") == "public, max-age=60"
    assert r.header("Expires") is None


# ---- cors ---------------------------------------------------------------------


def test_cors_any(srv):
    r = get(srv.port, "/open", headers=[("Origin", "https://anyone.example")])
    assert r.header("Access-Control-Allow-Origin") == "*"


def test_cors_list_echoes_a_listed_origin(srv):
    r = get(srv.port, "/hello.txt", headers=[("Origin", "https://b.example:8443")])
    assert r.header("Access-Control-Allow-Origin") == "https://b.example:8443"
    assert "Origin" in r.header("Vary")


def test_cors_list_refuses_others(srv):
    r = get(srv.port, "/hello.txt", headers=[("Origin", "https://evil.example")])
    assert r.status == 200
    assert r.header("Access-Control-Allow-Origin") is None
    assert "Origin" in r.header("Vary")
    r = get(srv.port, "/hello.txt")
    assert r.header("Access-Control-Allow-Origin") is None


def test_preflight(srv):
    r = get(srv.port, "/api/items", method="OPTIONS",
            headers=[("Origin", "https://a.example"), ("Access-Control-Request-Method", "POST"),
                     ("Access-Control-Request-Headers", "content-type, x-token")])
    # the route takes GET and POST only: the preflight is answered before
    assert r.status == 204
    assert r.body == b""
    assert r.header("Access-Control-Allow-Origin") == "https://a.example"
    assert r.header("Access-Control-Allow-Methods") == "GET, HEAD, POST, OPTIONS"
    assert r.header("Access-Control-Allow-Headers") == "content-type, x-token"
    assert r.header("Access-Control-Max-Age") == "86400"


def test_preflight_does_not_reach_the_handler(srv):
    r = get(srv.port, "/open", method="OPTIONS",
            headers=[("Origin", "https://x.example"), ("Access-Control-Request-Method", "PUT")])
    assert r.status == 204 and r.body == b""
    assert r.header("Access-Control-Allow-Origin") == "*"
    # a plain OPTIONS is the handler's (echo answers it)
    r = get(srv.port, "/open", method="OPTIONS")
    assert r.status == 200
    assert r.header("Access-Control-Max-Age") is None


def test_preflight_of_an_unlisted_origin(srv):
    r = get(srv.port, "/api/items", method="OPTIONS",
            headers=[("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")])
    assert r.status == 204
    assert r.header("Access-Control-Allow-Origin") is None


# ---- error_page ----------------------------------------------------------------


def test_error_page_keeps_its_status(srv):
    r = get(srv.port, "/nothing-here")
    assert r.status == 404
    assert r.body == b"<h1>custom 404</h1>\n"
    assert r.header("Content-Type").startswith("text/html")


def test_error_page_head(srv):
    r = get(srv.port, "/nothing-here", method="HEAD")
    assert r.status == 404 and r.body == b""
    assert r.header("Content-Length") == str(len("<h1>custom 404</h1>\n"))


def test_error_page_in_a_folder(srv):
    r = get(srv.port, "/noindex/")  # a folder without its index: 403
    assert r.status == 403
    assert r.body == b"<h1>custom 403</h1>\n"


def test_missing_error_page_falls_back(srv):
    r = get(srv.port, "/gone")  # 410, whose page is not there
    assert r.status == 410
    assert r.body == b"410 Gone\n"


def test_error_page_inherited_and_405(srv):
    # /only-get's 405 comes from the route table: [route /]'s page applies
    r = get(srv.port, "/only-get", method="DELETE")
    assert r.status == 405
    assert r.header("Allow") == "GET, HEAD"
    assert r.body == b"<h1>custom 404</h1>\n"
    # a return route inherits [route /]'s pages too
    r = get(srv.port, "/assets/none")
    assert r.status == 404 and r.body == b"<h1>custom 404</h1>\n"


def test_a_body_of_its_own_is_kept(srv):
    r = get(srv.port, "/gone-text")
    assert r.status == 404
    assert r.body == b"not here\n"


# ---- return ----------------------------------------------------------------------


def test_return_request_uri(srv):
    r = get(srv.port, "/old?a=1&b=%20")
    assert r.status == 301
    assert r.header("Location") == "https://new.example/old?a=1&b=%20"


def test_return_scheme_host_uri_args(srv):
    r = request(srv.port, b"GET /moved?x=y HTTP/1.1\r\nHost: WWW.Example.ORG:8080\r\n"
                          b"Connection: close\r\n\r\n")
    assert r.status == 302
    assert r.header("Location") == "http://www.example.org/new/moved?from=x=y"


def test_return_braces(srv):
    r = get(srv.port, "/brace")
    assert r.status == 308
    assert r.header("Location") == "https://x.example/brace.html"


def test_return_text(srv):
    r = request(srv.port, b"GET /text HTTP/1.1\r\nHost: Site.Example\r\nConnection: close\r\n\r\n")
    assert r.status == 200
    assert r.body == b"hello from site.example\n"
    assert r.header("Content-Type").startswith("text/plain")


def test_return_header_injection(make_server, site_root):
    srv = make_server(config=config(site_root) + """
[route /r]
return = 302 https://x.example$uri

[route /q]
return = 301 https://new.example$request_uri
""")
    # a decoded CR LF in the path cannot split the Location header
    r = request(srv.port, b"GET /r/a%0d%0aSet-Cookie:%20x=1 HTTP/1.1\r\nHost: h\r\n"
                          b"Connection: close\r\n\r\n")
    assert r.status == 302
    assert r.header("Set-Cookie") is None
    assert r.header("Location") == "https://x.example/r/a%0D%0ASet-Cookie:%20x=1"
    # the raw target keeps its encoding
    r = get(srv.port, "/q%0d%0aX-Evil:%201?a=%0d%0a")
    assert r.status == 301
    assert r.header("X-Evil") is None
    assert r.header("Location") == "https://new.example/q%0d%0aX-Evil:%201?a=%0d%0a"
    # a Host that is not a host name is refused
    r = request(srv.port, b"GET /moved HTTP/1.1\r\nHost: evil.example/path\r\nConnection: close"
                          b"\r\n\r\n")
    assert r.status == 400
    assert r.header("Location") is None


# ---- --check ---------------------------------------------------------------------


def check(tmp_path, text):
    path = tmp_path / "site.conf"
    path.write_text(text)
    return path, subprocess.run([BIN, "--config", str(path), "--check"], capture_output=True,
                                text=True, timeout=30)


@pytest.mark.parametrize("setting,line,words", [
    ("header = Content-Length: 5", 4, ["header", "Content-Length"]),
    ("header = Server: other", 4, ["Server"]),
    ("header = X-A", 4, ["Name: value"]),
    ("expires = soon", 4, ["expires"]),
    ("cors = example.org", 4, ["cors", "example.org"]),
    ("error_page = 200 /x.html", 4, ["error_page", "200"]),
    ("error_page = 404 /../x.html", 4, ["error_page"]),
    ("return = 301", 4, ["return", "URL"]),
    ("return = 302 https://x$nope", 4, ["$nope"]),
])
def test_check_errors(tmp_path, site_root, setting, line, words):
    path, r = check(tmp_path, f"[route /]\nhandler = static\nroot = {site_root}\n{setting}\n")
    assert r.returncode != 0
    assert f"{path}:{line}:" in r.stderr
    for w in words:
        assert w in r.stderr


def test_check_error_page_needs_a_root(tmp_path):
    path, r = check(tmp_path, "[route /x]\nhandler = echo\n\nerror_page = 404 /404.html\n")
    assert r.returncode != 0
    assert f"{path}:4:" in r.stderr and "root" in r.stderr


def test_check_return_with_a_handler(tmp_path):
    path, r = check(tmp_path, "[route = /x]\nhandler = echo\nreturn = 200 ok\n")
    assert r.returncode != 0
    assert f"{path}:3:" in r.stderr and "handler" in r.stderr


def test_check_valid(tmp_path, site_root):
    _, r = check(tmp_path, config(site_root))
    assert r.returncode == 0, r.stderr


def test_error_pages_per_host(make_server, site_root):
    """Virtual hosts: a route takes the error pages of the prefix route
    above it of the same hosts, never another site's."""
    srv = make_server(config=f"""
[route /]
hosts = a.example
handler = static
root = {site_root}
error_page = 404 /404.html

[route /sub]
hosts = a.example
handler = static
root = {site_root}

[route /]
handler = static
root = {site_root}

[route /sub]
handler = static
root = {site_root}
""")

    def fetch(host, path):
        return request(srv.port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                                 "\r\n".encode())

    for path in ("/nothing", "/sub/nothing"):
        r = fetch("a.example", path)
        assert r.status == 404 and r.body == b"<h1>custom 404</h1>\n", path
        r = fetch("b.example", path)
        assert r.status == 404 and r.body == b"404 Not Found\n", path


# ---- [server]'s defaults ---------------------------------------------------------


def server_defaults_config(root):
    return f"""
[server]
header = X-Content-Type-Options: nosniff always
header = Referrer-Policy: no-referrer
cache_control = no-cache
cors = *

[route /]
handler = static
root = {root}

[route /dir/]
handler = static
root = {root}
header = X-Own: yes
expires = 1h

[route /api]
handler = echo
cors = https://a.example

[route = /old]
return = 301 https://new.example/
"""


def test_server_defaults_for_routes_without_their_own(make_server, site_root):
    """[server]'s header, cache_control/expires and cors are what a route
    that sets none of a kind takes, kind by kind (nginx's add_header and
    expires inherited by a location without its own)."""
    srv = make_server(config=server_defaults_config(site_root))
    r = get(srv.port, "/hello.txt")
    assert r.status == 200
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("Referrer-Policy") == "no-referrer"
    assert r.header("Cache-Control") == "no-cache"
    assert r.header("Access-Control-Allow-Origin") == "*"
    # "always" kept: an error answer carries it, the others not
    r = get(srv.port, "/missing")
    assert r.status == 404 and r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("Referrer-Policy") is None
    # a route with header lines of its own takes none of [server]'s, and its
    # expires replaces cache_control; cors it does not set: [server]'s
    r = get(srv.port, "/dir/")
    assert r.status == 200 and r.header("X-Own") == "yes"
    assert r.header("X-Content-Type-Options") is None and r.header("Referrer-Policy") is None
    assert r.header("Cache-Control") == "max-age=3600" and r.header("Expires")
    assert r.header("Access-Control-Allow-Origin") == "*"
    # its own cors list: not [server]'s *
    r = get(srv.port, "/api", headers=[("Origin", "https://b.example")])
    assert r.header("Access-Control-Allow-Origin") is None
    assert r.header("X-Content-Type-Options") == "nosniff"
    r = get(srv.port, "/api", headers=[("Origin", "https://a.example")])
    assert r.header("Access-Control-Allow-Origin") == "https://a.example"
    # a fixed answer takes them too (nginx adds add_header to a 301)
    r = get(srv.port, "/old")
    assert r.status == 301 and r.header("Referrer-Policy") == "no-referrer"


def test_server_defaults_not_on_the_admin_routes(make_server, site_root, tmp_path):
    srv = make_server(config=server_defaults_config(site_root).replace(
        "[server]\n", f"[server]\nadmin_listen = unix:{tmp_path}/admin.sock\n"))
    out = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "--unix-socket",
                          f"{tmp_path}/admin.sock", "http://x/healthz"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.startswith("HTTP/1.1 200") and "nosniff" not in out.lower(), out
    # nor its answers without a route
    out = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "--unix-socket",
                          f"{tmp_path}/admin.sock", "http://x/nothing"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.startswith("HTTP/1.1 404") and "nosniff" not in out.lower(), out
    # while the main listener's do
    assert get(srv.port, "/nothing-here").header("X-Content-Type-Options") == "nosniff"


def test_server_defaults_checked_and_shown(tmp_path, site_root):
    for setting, words in [("error_page = 404 /404.html", ["error_page", "[route]"]),
                           ("return = 301 https://x.example/", ["return", "[route]"]),
                           ("header = Content-Length: 1", ["Content-Length"]),
                           ("expires = soon", ["expires"])]:
        path, r = check(tmp_path, f"[server]\n{setting}\n[route /]\nhandler = static\n"
                                  f"root = {site_root}\n")
        assert r.returncode != 0 and f"{path}:2:" in r.stderr, r.stderr
        for w in words:
            assert w in r.stderr, (setting, r.stderr)
    # -T shows them in [server], each route as written; that reads back alike
    path = tmp_path / "d.conf"
    path.write_text(server_defaults_config(site_root))
    p = subprocess.run([BIN, "-T", "-c", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    server, _, routes = p.stdout.partition("\n[route")
    assert "header = X-Content-Type-Options: nosniff always\n" in server
    assert "cache_control = no-cache\n" in server and "cors = *\n" in server
    assert "nosniff" not in routes and "header = X-Own: yes\n" in routes
    again = tmp_path / "again.conf"
    again.write_text(p.stdout)
    q = subprocess.run([BIN, "-T", "-c", str(again)], capture_output=True, text=True, timeout=30)
    assert q.returncode == 0 and q.stdout.split("\n", 1)[1] == p.stdout.split("\n", 1)[1]


def test_server_defaults_on_answers_no_route_gave(make_server, site_root):
    """An answer without a route (no route for the path, 421 for an unknown
    host, a refused request) takes [server]'s: the always lines on errors."""
    srv = make_server(config=f"""
[server]
unknown_host = 421
header = X-Content-Type-Options: nosniff always
header = X-Success-Only: 1

[route /s/]
hosts = a.example
handler = static
root = {site_root}
""")
    r = request(srv.port, b"GET /nothing HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
    assert r.status == 404 and r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("X-Success-Only") is None
    r = request(srv.port, b"GET /s/ HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
    assert r.status == 421 and r.header("X-Content-Type-Options") == "nosniff"
    r = request(srv.port, b"GET /s/ HTTP/1.1\r\nHost: a.example\r\nBad Header: x\r\n\r\n")
    assert r.status == 400 and r.header("X-Content-Type-Options") == "nosniff"
    r = request(srv.port, b"OPTIONS * HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
    assert r.status == 204 and r.header("X-Success-Only") == "1"


def test_cache_control_is_one_kind(make_server, site_root):
    """cache_control, expires and a header line naming Cache-Control are one
    kind: a route with any of them takes none of [server]'s, so the answer
    never carries two Cache-Control fields."""
    srv = make_server(config=f"""
[server]
cache_control = no-cache
header = Cache-Control: no-store
header = X-Frame-Options: DENY

[route /]
handler = static
root = {site_root}
header = Cache-Control: private

[route /dir/]
handler = static
root = {site_root}
expires = 1h
""")
    r = get(srv.port, "/hello.txt")
    assert r.header_all("cache-control") == ["private"], r.headers
    assert r.header("X-Frame-Options") is None  # header lines of its own
    r = get(srv.port, "/dir/")
    assert r.header_all("cache-control") == ["max-age=3600"], r.headers
    assert r.header("X-Frame-Options") == "DENY"  # [server]'s lines but their Cache-Control
