"""Basic HTTP/1.1 behaviour: status lines, standard headers, keep-alive,
HTTP/1.0, HEAD, Connection: close."""

import email.utils
import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from conftest import Reader, get, request, wait_until


def test_get_index_has_standard_headers(static_server):
    r = get(static_server.port, "/")
    assert r.status == 200
    assert r.body == b"<h1>index</h1>\n"
    assert r.header("content-type") == "text/html; charset=utf-8"
    assert r.header("content-length") == str(len(r.body))
    assert r.header("server") == "preforkd"
    date = email.utils.parsedate_to_datetime(r.header("date"))
    assert abs(date.timestamp() - time.time()) < 5


def test_not_found_has_short_body(static_server):
    r = get(static_server.port, "/missing.txt")
    assert r.status == 404
    assert r.body == b"404 Not Found\n"
    assert r.header("content-type") == "text/plain"


def test_keep_alive_serves_many_requests_on_one_connection(static_server):
    with static_server.connect() as s:
        rd = Reader(s)
        for _ in range(20):
            s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            r = rd.response()
            assert r.status == 200 and r.body == b"Hello, World!"
            assert r.header("connection") is None


def test_connection_close_is_honoured(static_server):
    with static_server.connect() as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200
        assert r.header("connection") == "close"
        assert rd.closed()


def test_http10_closes_by_default(static_server):
    with static_server.connect() as s:
        s.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        assert r.status == 200 and r.body == b"Hello, World!"
        assert r.version == "1.1"
        assert r.header("connection") == "close"
        assert rd.closed()


def test_http10_keep_alive_on_request(static_server):
    with static_server.connect() as s:
        rd = Reader(s)
        for _ in range(3):
            s.sendall(b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = rd.response()
            assert r.status == 200
            assert r.header("connection") == "keep-alive"


def test_head_has_length_but_no_body(static_server):
    with static_server.connect() as s:
        rd = Reader(s)
        s.sendall(b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r = rd.response(head=True)
        assert r.status == 200
        assert r.header("content-length") == "13"
        # the next response starts right away: no body bytes in between
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r2 = rd.response()
        assert r2.body == b"Hello, World!"


def test_options_asterisk(static_server):
    r = request(static_server.port, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.status == 204


def test_curl_as_a_real_client(static_server, site):
    out = subprocess.run(["curl", "-sS", "--fail", f"http://127.0.0.1:{static_server.port}/big.bin",
                          "-o", "-"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (site / "big.bin").read_bytes()


def test_keepalive_requests_limit_closes_connection(make_server, site):
    srv = make_server(config=f"[server]\nkeepalive_requests = 3\n[route /]\nhandler = static\n"
                             f"root = {site}\n")
    with srv.connect() as s:
        rd = Reader(s)
        for i in range(3):
            s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            r = rd.response()
            assert r.status == 200
            assert (r.header("connection") == "close") == (i == 2)
        assert rd.closed()


def read_until_closed(s, timeout=10):
    """Everything the server sends until it closes; a reset counts as a
    failure (it would have destroyed answers in flight)."""
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("limit,sent", [(3, 200), (1000, 1100)])
def test_pipelined_requests_past_the_keepalive_limit_get_every_answer(make_server, site, limit,
                                                                      sent):
    # the server closes after `limit` answers while more requests are still
    # coming: it must close in stages (RFC 9112 9.6), not reset the connection
    srv = make_server(config=f"[server]\nkeepalive_requests = {limit}\n[route /]\n"
                             f"handler = static\nroot = {site}\n")
    with srv.connect() as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" * sent)
        data = read_until_closed(s)
    assert data.count(b"HTTP/1.1 200 OK") == limit
    assert data.count(b"Connection: close") == 1
    assert data.endswith(b"Hello, World!")


def test_http10_close_wins_over_keep_alive(static_server):
    for value in ("keep-alive, close", "close, keep-alive"):
        with static_server.connect() as s:
            s.sendall(f"GET /hello.txt HTTP/1.0\r\nConnection: {value}\r\n\r\n"
                      "GET /hello.txt HTTP/1.0\r\n\r\n".encode())
            data = read_until_closed(s)
        assert data.count(b"HTTP/1.1 200 OK") == 1, value
        assert b"Connection: close" in data


@pytest.mark.parametrize("extra,status", [
    ("Expect: something\r\n", 417),
    ("Content-Length: 99999999999\r\n", 413),
    ("Transfer-Encoding: gzip\r\n", 501),
    ("Host: y\r\n", 400),
])
def test_errors_answering_head_have_no_content(static_server, extra, status):
    with static_server.connect() as s:
        s.sendall(f"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        data = read_until_closed(s)
    head, _, content = data.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}".encode()), data
    assert b"Content-Length:" in head and content == b""


def test_unix_socket_listener(make_server, site, tmp_path):
    path = tmp_path / "p.sock"
    srv = make_server(args=["--root", str(site), "--listen", f"unix:{path}"])
    assert f"unix:{path}" in srv.addresses
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert Reader(s).response().body == b"Hello, World!"


def unix_get(path, target="/hello.txt"):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return Reader(s).response()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_unix_socket_lets_other_users_connect(make_server, site, open_tmp):
    # a root master's socket must let a local front proxy (nginx's workers run
    # as www-data) connect: 0666, as nginx makes its unix listeners
    path = open_tmp / "p.sock"
    make_server(args=["--root", str(site), "--listen", f"unix:{path}"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o666
    code = ("import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
            "s.sendall(b'GET /hello.txt HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
            "print(s.recv(100).split(b'\\r\\n')[0].decode())\n")
    p = subprocess.run([sys.executable, "-c", code, str(path)], user=65534, group=65534,
                       capture_output=True, text=True, timeout=30)
    assert p.stdout.strip() == "HTTP/1.1 200 OK", p.stderr


def test_relative_unix_socket_path_resolves_against_the_config_folder(make_server, site,
                                                                      tmp_path):
    (tmp_path / "conf-dir" / "sockets").mkdir(parents=True)
    srv = make_server(config=f"[server]\nlisten = unix:sockets/rel.sock\n"
                             f"[route /]\nhandler = static\nroot = {site}\n", listen=False,
                      name="conf-dir")
    path = srv.tmp / "sockets" / "rel.sock"
    assert f"unix:{path}" in srv.addresses
    assert unix_get(path).body == b"Hello, World!"


def _connections(port):
    import json
    return json.loads(get(port, "/status").body)["workers"][0]["connections"]


@pytest.mark.parametrize("defer", ["1s", "0"])
def test_defer_accept(make_server, site, defer):
    """defer_accept: the kernel hands a TCP connection to the worker once
    its first bytes came (TCP_DEFER_ACCEPT), or after the time set; 0 hands
    it over at once. Either way the request is answered."""
    srv = make_server(config=f"[server]\ndefer_accept = {defer}\n[route /]\nhandler = static\n"
                             f"root = {site}\n[route /status]\nhandler = status\n")
    s = srv.connect()
    if defer == "0":
        wait_until(lambda: _connections(srv.port) == 2, what="the silent connection accepted")
    else:
        time.sleep(0.3)
        assert _connections(srv.port) == 1  # only /status's own: the silent one waits
    s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert Reader(s).response().body == b"Hello, World!"
    s.close()
