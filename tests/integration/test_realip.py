"""The real client behind trusted proxies (trusted_proxies, real_ip_header):
X-Forwarded-For and Forwarded honoured from a trusted peer and ignored from
anyone else, in the access log, the handler API (pfd_client_ip, pfd_scheme)
and the routes' allow lists; and through the real nginx of
conf/nginx/front.conf, with the client on another loopback address so that
a forged X-Forwarded-For is seen for what it is."""
import pathlib
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import BIN, SLOW, Reader, get, wait_until

MODULE = pathlib.Path(BIN).resolve().parent / "apitest.so"
SOURCE = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not MODULE.exists(), reason=f"{MODULE} is not built")


def conf(extra):
    return (f"[server]\naccess_log = -\n{extra}\n"
            f"[route /who]\nhandler = whoami\nmodule = {MODULE}\n"
            "[route /private]\nhandler = healthz\nallow = 203.0.113.0/24\n")


def who(port, headers=(), source="127.0.0.1"):
    """GET /who from a given loopback source address."""
    lines = ["GET /who HTTP/1.1", "Host: x", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW,
                                  source_address=(source, 0)) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        r = Reader(s).response()
    assert r.status == 200, r
    return r.body.decode().strip()


def test_a_trusted_peer_names_the_client(make_server):
    srv = make_server(config=conf("trusted_proxies = 127.0.0.1 10.0.0.0/8"))
    xff = [("X-Forwarded-For", "203.0.113.7, 10.1.2.3"), ("X-Forwarded-Proto", "https")]
    assert who(srv.port, xff) == "203.0.113.7 https"
    assert who(srv.port) == "127.0.0.1 http"
    # allow lists see the client, not the proxy
    r = get(srv.port, "/private", headers=[("X-Forwarded-For", "203.0.113.9")])
    assert r.status == 200
    assert get(srv.port, "/private", headers=[("X-Forwarded-For", "198.51.100.1")]).status == 403
    # garbage in the list: the client is unknown ("-"), never the proxy
    assert who(srv.port, [("X-Forwarded-For", "203.0.113.7, nonsense")]) == "- http"
    r = get(srv.port, "/private", headers=[("X-Forwarded-For", "203.0.113.9, nonsense")])
    assert r.status == 403
    wait_until(lambda: "203.0.113.7 - - [" in srv.access_log(), timeout=10,
               what="the access log line")
    assert srv.access_log().count("\n127.0.0.1 - - [") >= 1 or \
        srv.access_log().startswith("127.0.0.1 - - [")


def test_an_untrusted_peer_cannot_spoof(make_server):
    srv = make_server(config=conf("trusted_proxies = 10.0.0.0/8"))
    forged = [("X-Forwarded-For", "203.0.113.7"), ("Forwarded", "for=203.0.113.8"),
              ("X-Forwarded-Proto", "https")]
    assert who(srv.port, forged) == "127.0.0.1 http"
    r = get(srv.port, "/private", headers=[("X-Forwarded-For", "203.0.113.9")])
    assert r.status == 403
    # and without trusted_proxies at all
    plain = make_server(config=conf(""), name="plain")
    assert who(plain.port, forged) == "127.0.0.1 http"


def test_forwarded_header(make_server):
    srv = make_server(config=conf("trusted_proxies = 127.0.0.1\nreal_ip_header = Forwarded"))
    fwd = [("Forwarded", 'for="[2001:db8::7]:4711";proto=https, for=127.0.0.1')]
    assert who(srv.port, fwd) == "2001:db8::7 https"
    # X-Forwarded-For is not what this server reads: a client cannot choose
    assert who(srv.port, [("X-Forwarded-For", "203.0.113.7")]) == "127.0.0.1 http"


def test_bad_settings_are_refused(tmp_path):
    for extra, why in (("trusted_proxies = 10.0.0.0/40", "trusted_proxies"),
                       ("real_ip_header = X Real", "real_ip_header")):
        path = tmp_path / "bad.conf"
        path.write_text(conf(extra))
        out = subprocess.run([BIN, "--check", "--config", str(path)], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 2 and why in out.stderr, out.stderr
    path.unlink()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed: scripts/deps")
def test_through_nginx_a_forged_header_stays_forged(make_server, tmp_path):
    srv = make_server(config=conf("trusted_proxies = 127.0.0.1"))
    front_port = free_port()
    front = (SOURCE / "conf" / "nginx" / "front.conf").read_text()
    front = front.replace("127.0.0.1:8080", f"127.0.0.1:{srv.port}")
    front = front.replace("127.0.0.1:8081", f"127.0.0.1:{front_port}")
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "front.conf").write_text(front)
    nginx = subprocess.Popen(["nginx", "-e", "stderr", "-p", str(tmp_path / "nginx"), "-c",
                              str(tmp_path / "nginx" / "front.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers():
            try:
                return get(front_port, "/who").status == 200
            except OSError:
                return False
        wait_until(answers, timeout=20, what="nginx in front")
        # the client is 127.0.0.5; nginx (127.0.0.1, trusted) appends it to
        # what the client forged
        assert who(front_port, [("X-Forwarded-For", "203.0.113.7")],
                   source="127.0.0.5") == "127.0.0.5 http"
        assert who(front_port, source="127.0.0.6") == "127.0.0.6 http"
        # what a client adds before nginx's entry cannot make it nginx
        assert who(front_port, [("X-Forwarded-For", '"')], source="127.0.0.7") == \
            "127.0.0.7 http"
        assert who(front_port, [("X-Forwarded-For", "," * 100)], source="127.0.0.7") == \
            "127.0.0.7 http"
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(timeout=20)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait()


def test_keep_alive_says_how_long_it_waits(make_server):
    srv = make_server(config=conf("keepalive_timeout = 90s"))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
        s.sendall(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
        r = Reader(s).response()
        assert r.header("Keep-Alive") == "timeout=90"  # longer than nginx's upstream 60 s
    r = get(srv.port, "/who")  # Connection: close: nothing to say
    assert r.header("Keep-Alive") is None and r.header("Connection") == "close"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
        s.sendall(b"GET /who HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = Reader(s).response()
        assert r.header("Connection") == "keep-alive" and r.header("Keep-Alive") == "timeout=90"
