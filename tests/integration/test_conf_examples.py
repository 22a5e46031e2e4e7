"""The ready examples of conf/nginx and conf/haproxy that no other test
starts (front.conf: test_recipes and test_realip; cluster.conf and
cluster.cfg: test_scaleout), each started as shipped, with only its
addresses replaced, in front of preforkd: a request through it reaches
preforkd, which sees the client's own address."""
import gzip
import os
import pathlib
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import BIN, SLOW, Reader, wait_until

SOURCE = pathlib.Path(os.environ.get("PREFORKD_SOURCE_DIR",
                                     pathlib.Path(__file__).resolve().parents[2]))
MODULE = pathlib.Path(BIN).resolve().parent / "apitest.so"
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"

pytestmark = pytest.mark.skipif(not MODULE.exists(), reason=f"{MODULE} is not built")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def who(port, source):
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW,
                                  source_address=(source, 0)) as s:
        s.sendall(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = Reader(s).response()
    assert r.status == 200, r
    return r.body.decode().split()[0]


def answers(port):
    try:
        return who(port, "127.0.0.1") == "127.0.0.1"
    except (OSError, AssertionError):
        return False


def run(cmd, log):
    return subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)


def stop(proc, sig):
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def backend(make_server, listen, extra=""):
    return make_server(config=f"[server]\n{extra}\n[route /who]\nhandler = whoami\n"
                              f"module = {MODULE}\n", args=["--listen", listen])


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed: scripts/deps")
def test_nginx_unix_conf(make_server, tmp_path):
    sock = tmp_path / "web.sock"
    srv = backend(make_server, f"unix:{sock}", "trusted_proxies = unix")
    port = free_port()
    text = (SOURCE / "conf" / "nginx" / "unix.conf").read_text()
    text = text.replace("unix:/run/preforkd/web.sock", f"unix:{sock}")
    text = text.replace("127.0.0.1:8085", f"127.0.0.1:{port}")
    # its workers reach the socket in a folder only root may enter
    text = text.replace("daemon off;", "daemon off;\nuser root;")
    (tmp_path / "ngx").mkdir()
    (tmp_path / "ngx" / "nginx.conf").write_text(text)
    with open(tmp_path / "nginx.log", "wb") as log:
        ngx = run(["nginx", "-e", "stderr", "-p", str(tmp_path / "ngx"), "-c",
                   str(tmp_path / "ngx" / "nginx.conf")], log)
        try:
            wait_until(lambda: answers(port), timeout=30, what="nginx over the unix socket")
            assert who(port, "127.0.0.41") == "127.0.0.41"  # trusted_proxies = unix
        finally:
            stop(ngx, signal.SIGQUIT)
    assert srv.proc.poll() is None


@pytest.mark.skipif(not (shutil.which("nginx") and os.path.exists(NGINX_STREAM)),
                    reason="needs nginx with its stream module: scripts/deps")
def test_nginx_stream_proxy_conf(make_server, tmp_path):
    back = free_port()
    backend(make_server, f"127.0.0.1:{back} proxy_protocol")
    port = free_port()
    text = (SOURCE / "conf" / "nginx" / "stream-proxy.conf").read_text()
    text = text.replace("127.0.0.1:8081", f"127.0.0.1:{back}")
    text = text.replace("127.0.0.1:8084", f"127.0.0.1:{port}")
    (tmp_path / "ngx").mkdir()
    (tmp_path / "ngx" / "nginx.conf").write_text(text)
    with open(tmp_path / "nginx.log", "wb") as log:
        ngx = run(["nginx", "-e", "stderr", "-p", str(tmp_path / "ngx"), "-c",
                   str(tmp_path / "ngx" / "nginx.conf")], log)
        try:
            wait_until(lambda: answers(port), timeout=30, what="nginx stream")
            assert who(port, "127.0.0.42") == "127.0.0.42"
        finally:
            stop(ngx, signal.SIGQUIT)


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy is not installed: scripts/deps")
def test_haproxy_send_proxy_cfg(make_server, tmp_path):
    back = free_port()
    srv = make_server(config=f"[server]\n[route /who]\nhandler = whoami\nmodule = {MODULE}\n"
                             "[route = /readyz]\nhandler = readyz\n",
                      args=["--listen", f"127.0.0.1:{back} proxy_protocol"])
    port = free_port()
    text = (SOURCE / "conf" / "haproxy" / "send-proxy.cfg").read_text()
    text = text.replace("127.0.0.1:8081", f"127.0.0.1:{back}")
    text = text.replace("127.0.0.1:8086", f"127.0.0.1:{port}")
    (tmp_path / "haproxy.cfg").write_text(text)
    with open(tmp_path / "haproxy.log", "wb") as log:
        hap = run(["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")], log)
        try:
            wait_until(lambda: answers(port), timeout=30, what="haproxy")
            assert who(port, "127.0.0.43") == "127.0.0.43"
        finally:
            stop(hap, signal.SIGTERM)
    assert srv.proc.poll() is None


def host_get(port, host, path, headers=()):
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return Reader(s).response()


def test_the_example_site(make_server):
    """conf/examples/site/site.conf as shipped (its relative roots), on the
    test's own port."""
    import re
    text = (SOURCE / "conf" / "examples" / "site" / "site.conf").read_text()
    text = re.sub(r"^listen = .*$", "", text, flags=re.M)
    folder = SOURCE / "conf" / "examples" / "site"
    text = text.replace("root = www", f"root = {folder / 'www'}")
    srv = make_server(config=text)
    r = host_get(srv.port, "www.example.org", "/")
    assert r.status == 200 and b"example.org" in r.body
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("Cache-Control") == "no-cache"
    r = host_get(srv.port, "example.org", "/missing")
    assert r.status == 404 and b"Not here" in r.body  # the error page, its status kept
    assert r.header("Referrer-Policy")  # always: on errors too
    assert host_get(srv.port, "example.org", "/.env").status == 404
    r = host_get(srv.port, "example.org", "/old-blog")
    assert r.status == 301 and r.header("Location") == "https://example.org/blog/"
    r = host_get(srv.port, "example.org", "/app/settings/profile")
    assert r.status == 200 and b"app shell" in r.body  # the SPA fallback
    r = host_get(srv.port, "example.org", "/assets/style.css", [("Accept-Encoding", "gzip")])
    gz = (folder / "www" / "assets" / "style.css.gz").read_bytes()
    assert r.status == 200 and r.header("Content-Encoding") == "gzip" and r.body == gz
    assert r.header("Access-Control-Allow-Origin") == "*"
    assert "max-age=2592000" in r.header("Cache-Control")  # its own, not [server]'s
    assert r.header("X-Content-Type-Options") == "nosniff"  # [server]'s
    r = host_get(srv.port, "example.org", "/app/x")
    assert r.header("Cache-Control") == "no-cache" and r.header("Referrer-Policy")
    r = host_get(srv.port, "example.org", "/blog/", [("Accept-Encoding", "gzip")])
    blog = (folder / "www" / "blog" / "index.html").read_bytes()
    assert r.status == 200 and r.header("Content-Encoding") == "gzip"
    assert gzip.decompress(r.body) == blog and len(r.body) < len(blog) // 2
    assert r.header("Vary") == "Accept-Encoding"
    r = host_get(srv.port, "other.example", "/")
    assert r.status == 200 and r.body == b"no site here\n"
