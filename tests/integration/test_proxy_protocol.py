"""The PROXY protocol on a listener (`listen = ADDR proxy_protocol`): raw v1
and v2 headers over TCP and a unix socket, whose client address replaces the
peer's for the access log, the handler API (httpbin's /ip) and allow/deny;
malformed or missing headers closed without an answer (parse_error); a header
in pieces; a slow one cut at header_timeout; the option kept across a reload
and a binary upgrade; and the real HAProxy (send-proxy, send-proxy-v2) and
nginx's stream module (proxy_protocol on) in front, with clients on other
loopback addresses whose address preforkd must report."""

import json
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import SLOW, Reader, alive, get, wait_until

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
GET_IP = b"GET /ip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"


def conf(sock, extra=""):
    return (f"[server]\nlisten = 127.0.0.1:0\nlisten = 127.0.0.1:0 proxy_protocol\n"
            f"listen = unix:{sock} proxy_protocol\nadmin_listen = 127.0.0.1:0\n"
            f"access_log = -\n{extra}\n"
            f"[route /]\nhandler = httpbin\n"
            f"[route /only-doc]\nhandler = echo\nallow = 192.0.2.0/24\n")


@pytest.fixture
def srv(make_server, tmp_path):
    # defer_accept 0: header_timeout counts from the connect, for the timing test
    s = make_server(config=conf(tmp_path / "p.sock", "header_timeout = 1s\ndefer_accept = 0"),
                    listen=False)
    plain, proxied, unix, admin = s.addresses
    assert unix.startswith("unix:")
    s.proxy_port = int(proxied.rsplit(":", 1)[1])
    s.sock = unix[5:]
    s.admin_port = int(admin.rsplit(":", 1)[1])
    assert "(proxy_protocol)" in s.log()
    return s


def v2(cmd, fam, block):
    return V2_SIG + bytes([cmd, fam]) + struct.pack("!H", len(block)) + block


def v2_inet(src, sport, dst="192.0.2.80", dport=443, tlvs=b""):
    return v2(0x21, 0x11, socket.inet_pton(socket.AF_INET, src) +
              socket.inet_pton(socket.AF_INET, dst) + struct.pack("!HH", sport, dport) + tlvs)


def v2_inet6(src, sport, dst="2001:db8::1", dport=443):
    return v2(0x21, 0x21, socket.inet_pton(socket.AF_INET6, src) +
              socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport))


def talk(port_or_path, *pieces, pause=0.0, timeout=10 * SLOW):
    """Sends the pieces (pause seconds apart) on a new connection and returns
    everything the server sent until it closed (a reset counts as a close)."""
    if isinstance(port_or_path, int):
        s = socket.create_connection(("127.0.0.1", port_or_path), timeout=timeout)
    else:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(str(port_or_path))
    with s:
        for i, p in enumerate(pieces):
            if i and pause:
                time.sleep(pause)
            try:
                s.sendall(p)
            except (BrokenPipeError, ConnectionResetError):
                break
        out = b""
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                return out
            if not data:
                return out
            out += data


def origin(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    return json.loads(body)["origin"]


def closed_reasons(srv):
    return json.loads(get(srv.admin_port, "/status").body)["totals"]["closed"]


def logged_clients(srv, path="/ip"):
    """The client address of each access log line for path, in order."""
    return [line.split()[0] for line in srv.access_log().splitlines()
            if f'"GET {path} ' in line]


def wait_logged(srv, clients):
    """Waits until the access log names each of clients (it is flushed
    once a second)."""
    wait_until(lambda: set(clients) <= set(logged_clients(srv)), timeout=10,
               what=f"{clients} in the access log")


# ---- raw headers ---------------------------------------------------------------


def test_v1_and_v2_headers_name_the_client(srv):
    p = srv.proxy_port
    assert origin(talk(p, b"PROXY TCP4 192.0.2.7 192.0.2.8 5555 80\r\n" + GET_IP)) == "192.0.2.7"
    assert origin(talk(p, b"PROXY TCP6 2001:db8::7 ::1 5555 80\r\n" + GET_IP)) == "2001:db8::7"
    tlvs = b"\x01\x00\x02h2" + b"\x02\x00\x0bexample.com" + b"\x04\x00\x00"
    assert origin(talk(p, v2_inet("198.51.100.9", 40000, tlvs=tlvs) + GET_IP)) == "198.51.100.9"
    assert origin(talk(p, v2_inet6("2001:db8::42", 1) + GET_IP)) == "2001:db8::42"
    # UNKNOWN, LOCAL (a proxy's health check), UNSPEC: the socket's own peer
    assert origin(talk(p, b"PROXY UNKNOWN\r\n" + GET_IP)) == "127.0.0.1"
    assert origin(talk(p, v2(0x20, 0x00, b"") + GET_IP)) == "127.0.0.1"
    assert origin(talk(p, v2(0x21, 0x00, b"\x04\x00\x01x") + GET_IP)) == "127.0.0.1"
    # a unix socket listener: the header's address, or "unix" without one
    assert origin(talk(srv.sock, b"PROXY TCP4 192.0.2.9 192.0.2.8 1 80\r\n" + GET_IP)) == \
        "192.0.2.9"
    unix_block = b"/run/client.sock".ljust(108, b"\0") + b"/run/p.sock".ljust(108, b"\0")
    assert origin(talk(srv.sock, v2(0x21, 0x31, unix_block) + GET_IP)) == "unix"
    # the plain listener beside them is plain HTTP
    assert get(srv.port, "/ip").status == 200
    # the access log names the header's client
    wait_until(lambda: len(logged_clients(srv)) == 10, timeout=10, what="10 lines logged")
    assert logged_clients(srv)[:5] == ["192.0.2.7", "2001:db8::7", "198.51.100.9",
                                       "2001:db8::42", "127.0.0.1"], srv.access_log()


def test_keep_alive_after_the_header(srv):
    """The header comes once, then requests follow on the same connection;
    allow/deny judges the header's client."""
    with socket.create_connection(("127.0.0.1", srv.proxy_port), timeout=10 * SLOW) as s:
        s.sendall(b"PROXY TCP4 192.0.2.50 192.0.2.8 5555 80\r\n"
                  b"GET /only-doc HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = Reader(s)
        assert rd.response().status == 200
        s.sendall(b"GET /ip HTTP/1.1\r\nHost: x\r\n\r\n")
        r = rd.response()
        assert json.loads(r.body)["origin"] == "192.0.2.50"
        # a second header is no header any more: it is a bad request
        s.sendall(b"PROXY TCP4 192.0.2.51 192.0.2.8 5555 80\r\n\r\n")
        assert rd.response().status == 400
    assert get(srv.port, "/only-doc").status == 403  # 127.0.0.1 is not on the list
    raw = talk(srv.proxy_port, b"PROXY TCP4 203.0.113.1 192.0.2.8 5555 80\r\n"
               b"GET /only-doc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 403"), raw


@pytest.mark.parametrize("data", [
    GET_IP,  # no header at all: not through the proxy
    b"PROXY TCP4 192.0.2.7 192.0.2.8 5555 80\n" + GET_IP,  # LF without CR
    b"PROXY TCP4 192.0.2.7 192.0.2.8 05555 80\r\n" + GET_IP,  # a leading zero
    b"PROXY TCP4 192.0.2.7  192.0.2.8 5555 80\r\n" + GET_IP,  # two spaces
    b"PROXY TCP4 2001:db8::1 192.0.2.8 5555 80\r\n" + GET_IP,  # the wrong family
    b"PROXY TCP4 192.0.2.7 192.0.2.8 5555 65536\r\n" + GET_IP,
    b"PROXY TCP5 192.0.2.7 192.0.2.8 5555 80\r\n" + GET_IP,
    b"PROXY " + b"9" * 120 + b"\r\n" + GET_IP,  # past 107 bytes
    v2(0x22, 0x11, b"\0" * 12) + GET_IP,  # command 2
    v2(0x11, 0x11, b"\0" * 12) + GET_IP,  # version 1 in a v2 header
    v2(0x21, 0x41, b"\0" * 12) + GET_IP,  # family 4
    v2(0x21, 0x11, b"\0" * 11) + GET_IP,  # an address block cut short
    v2(0x21, 0x11, b"\0" * 12 + b"\x04\x00\x09abc") + GET_IP,  # a TLV past the end
    V2_SIG + b"\x21\x11\xff\xff" + b"\0" * 64,  # longer than preforkd takes
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS
], ids=["none", "lf", "zero", "spaces", "family", "port", "tcp5", "long", "v2cmd", "v2ver",
        "v2fam", "v2short", "v2tlv", "v2len", "tls"])
def test_malformed_headers_are_closed_without_an_answer(srv, data):
    before = closed_reasons(srv)["parse_error"]
    assert talk(srv.proxy_port, data) == b""
    wait_until(lambda: closed_reasons(srv)["parse_error"] == before + 1,
               what="a parse_error close counted")


def test_a_header_in_pieces(srv):
    v1 = b"PROXY TCP4 192.0.2.21 192.0.2.8 5555 80\r\n"
    pieces = [v1[:3], v1[3:17], v1[17:-1], v1[-1:] + GET_IP[:10], GET_IP[10:]]
    assert origin(talk(srv.proxy_port, *pieces, pause=0.05)) == "192.0.2.21"
    h = v2_inet("192.0.2.22", 7, tlvs=b"\x05\x00\x04abcd")
    pieces = [h[:5], h[5:13], h[13:16], h[16:20], h[20:] + GET_IP]
    assert origin(talk(srv.proxy_port, *pieces, pause=0.05)) == "192.0.2.22"
    # and bytes by bytes over the unix socket
    assert origin(talk(srv.sock, *[bytes([b]) for b in v1], GET_IP, pause=0.005)) == "192.0.2.21"


@pytest.mark.timing
def test_a_slow_header_is_cut_at_header_timeout(srv):
    before = closed_reasons(srv)["header_timeout"]
    start = time.monotonic()
    # part of a header, then nothing: closed at header_timeout (1 s), no answer
    assert talk(srv.proxy_port, b"PROXY TCP4 192.0.2.7") == b""
    took = time.monotonic() - start
    assert 0.8 <= took < 5 * SLOW, took
    # header_timeout counts from the accept for the header and the request
    # head together: a late header, then a head that does not end, are cut
    # 1 s after the connect (not 1 s after the header)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.proxy_port), timeout=10 * SLOW) as s:
        time.sleep(0.4)
        s.sendall(b"PROXY TCP4 192.0.2.7 192.0.2.8 5555 80\r\n")
        time.sleep(0.2)
        s.sendall(b"GET /ip HTTP/1.1\r\n")
        r = Reader(s).response()
        assert r.status == 408
    took = time.monotonic() - start
    assert 0.8 <= took < 1.3 * SLOW, took
    wait_until(lambda: closed_reasons(srv)["header_timeout"] >= before + 2,
               what="header_timeout closes counted")


def test_listen_option_errors(tmp_path):
    from conftest import BIN
    cfg = tmp_path / "bad.conf"
    for line, why in [("listen = 127.0.0.1:8080 proxy", 'unknown option "proxy"'),
                      ("listen = 127.0.0.1:8080 proxy_protocol=2",
                       'option "proxy_protocol=2" takes no value'),
                      ("admin_listen = 127.0.0.1:9 accept_proxy", 'unknown option')]:
        cfg.write_text(f"[server]\n{line}\n[route /]\nhandler = httpbin\n")
        out = subprocess.run([BIN, "--check", "--config", str(cfg)], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode != 0 and why in out.stderr and ":2:" in out.stderr, out.stderr
    out = subprocess.run([BIN, "--check", "--config", str(cfg), "--listen", "127.0.0.1:1 bogus"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and 'unknown option "bogus"' in out.stderr, out.stderr
    cfg.write_text("[server]\nlisten = 127.0.0.1:8080 proxy_protocol\n"
                   "[route /]\nhandler = httpbin\n")
    out = subprocess.run([BIN, "--check", "--config", str(cfg)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr


# ---- reload and upgrade ----------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxied_ok(port):
    return origin(talk(port, b"PROXY TCP4 192.0.2.33 192.0.2.8 5555 80\r\n" + GET_IP)) == \
        "192.0.2.33"


def test_reload_keeps_and_changes_the_option(make_server, tmp_path):
    a, b = free_port(), free_port()
    lines = {True: f"listen = 127.0.0.1:{a}\nlisten = 127.0.0.1:{b} proxy_protocol",
             False: f"listen = 127.0.0.1:{a} proxy_protocol\nlisten = 127.0.0.1:{b}"}
    text = lambda which: f"[server]\n{lines[which]}\n[route /]\nhandler = httpbin\n"
    srv = make_server(config=text(True), listen=False)
    assert get(a, "/ip").status == 200 and proxied_ok(b)

    def reload(which):
        done = srv.log().count("reload done")
        (srv.tmp / "preforkd.conf").write_text(text(which))
        srv.signal(signal.SIGHUP)
        wait_until(lambda: srv.log().count("reload done") > done, timeout=30, what="reload done")
        wait_until(lambda: len(srv.workers()) == 1, timeout=30, what="the old worker gone")

    reload(True)  # the same configuration: the option stays
    assert get(a, "/ip").status == 200 and proxied_ok(b)
    assert talk(b, GET_IP) == b""
    reload(False)  # the same sockets, the option moved
    assert proxied_ok(a) and talk(a, GET_IP) == b""
    assert get(b, "/ip").status == 200


def test_binary_upgrade_keeps_the_option(make_server, tmp_path):
    pid_file = tmp_path / "m.pid"
    port = free_port()
    sock = tmp_path / "u.sock"
    srv = make_server(config=f"[server]\nlisten = 127.0.0.1:0\n"
                             f"listen = 127.0.0.1:{port} proxy_protocol\n"
                             f"listen = unix:{sock} proxy_protocol\npid_file = {pid_file}\n"
                             f"[route /]\nhandler = httpbin\n", listen=False)
    old = srv.proc.pid
    assert proxied_ok(port)
    srv.signal(signal.SIGUSR2)
    srv.proc.wait(timeout=30 * SLOW)  # the old master retired itself
    new = int(pid_file.read_text())
    assert new != old and alive(new)
    try:
        assert proxied_ok(port)
        assert talk(port, GET_IP) == b""
        assert origin(talk(sock, b"PROXY TCP4 192.0.2.34 192.0.2.8 1 80\r\n" + GET_IP)) == \
            "192.0.2.34"
        assert talk(sock, GET_IP) == b""
    finally:
        os.kill(new, signal.SIGTERM)
        wait_until(lambda: not alive(new), timeout=30, what="the new master to stop")


# ---- the real proxies ------------------------------------------------------------


class Proc:
    """A proxy started for a test, stopped by its pid."""

    def __init__(self, cmd, log):
        self.log = log
        self._out = open(log, "wb")
        self.p = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._out.close()


@pytest.fixture
def procs():
    started = []
    yield lambda cmd, log: started.append(Proc(cmd, log)) or started[-1]
    for p in started:
        p.stop()


def curl_ip(port, source, host="127.0.0.1"):
    """httpbin's /ip through a front port, from a given source address."""
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--interface", source,
                          f"http://{host}:{port}/ip"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["origin"]


def raw_ip(port, source, family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family) as s:
        s.settimeout(10 * SLOW)
        s.bind((source, 0))
        s.connect((host, port))
        s.sendall(GET_IP)
        return json.loads(Reader(s).response().body)["origin"]


def serving(port):
    try:
        return curl_ip(port, "127.0.0.1") == "127.0.0.1"
    except (AssertionError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not shutil.which("haproxy"), reason="needs haproxy (scripts/deps test)")
def test_haproxy_send_proxy_and_send_proxy_v2(srv, procs, tmp_path):
    v2_port, v1_port, unix_port, v6_port = (free_port() for _ in range(4))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""
global
    maxconn 64
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v2
    bind 127.0.0.1:{v2_port}
    bind [::1]:{v6_port}
    default_backend v2
backend v2
    server s1 127.0.0.1:{srv.proxy_port} send-proxy-v2
frontend v1
    bind 127.0.0.1:{v1_port}
    default_backend v1
backend v1
    server s1 127.0.0.1:{srv.proxy_port} send-proxy
frontend unix
    bind 127.0.0.1:{unix_port}
    default_backend unix
backend unix
    server s1 unix@{srv.sock} send-proxy-v2
""")
    hap = procs(["haproxy", "-db", "-f", str(cfg)], tmp_path / "haproxy.log")
    for port in (v2_port, v1_port, unix_port):
        wait_until(lambda: serving(port), timeout=20, what=f"haproxy on {port}")
    assert hap.p.poll() is None
    # the client's own address, not haproxy's (which connects from 127.0.0.1)
    assert curl_ip(v2_port, "127.0.0.11") == "127.0.0.11"
    assert curl_ip(v1_port, "127.0.0.12") == "127.0.0.12"
    assert curl_ip(unix_port, "127.0.0.13") == "127.0.0.13"
    assert raw_ip(v6_port, "::1", socket.AF_INET6, "::1") == "::1"
    assert raw_ip(v1_port, "127.0.0.14") == "127.0.0.14"
    wait_logged(srv, ["127.0.0.11", "127.0.0.12", "127.0.0.13", "::1", "127.0.0.14"])
    assert closed_reasons(srv)["parse_error"] == 0


@pytest.mark.skipif(not (shutil.which("nginx") and os.path.exists(NGINX_STREAM)),
                    reason="needs nginx with its stream module (scripts/deps test)")
def test_nginx_stream_proxy_protocol(srv, procs, tmp_path):
    tcp_port, unix_port = free_port(), free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    (prefix / "nginx.conf").write_text(f"""
load_module {NGINX_STREAM};
daemon off;
user root; # its workers reach the unix socket in a folder only root may enter
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events {{
    worker_connections 64;
}}
stream {{
    server {{
        listen 127.0.0.1:{tcp_port};
        proxy_pass 127.0.0.1:{srv.proxy_port};
        proxy_protocol on;
    }}
    server {{
        listen 127.0.0.1:{unix_port};
        proxy_pass unix:{srv.sock};
        proxy_protocol on;
    }}
}}
""")
    ngx = procs(["nginx", "-e", "stderr", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                tmp_path / "nginx.log")
    for port in (tcp_port, unix_port):
        wait_until(lambda: serving(port), timeout=20, what=f"nginx on {port}")
    assert ngx.p.poll() is None
    assert curl_ip(tcp_port, "127.0.0.21") == "127.0.0.21"
    assert curl_ip(unix_port, "127.0.0.22") == "127.0.0.22"
    assert raw_ip(tcp_port, "127.0.0.23") == "127.0.0.23"
    wait_logged(srv, ["127.0.0.21", "127.0.0.22", "127.0.0.23"])
    assert closed_reasons(srv)["parse_error"] == 0
