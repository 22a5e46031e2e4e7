"""preforkd as the upstream of the real nginx and HAProxy, over TCP and over
unix sockets (made 0666 in a folder the proxies' unprivileged workers can
reach), with upstream keep-alive: wrk through the proxy while one preforkd
reloads (SIGHUP), upgrades its binary (SIGUSR2) and the other stops
gracefully: not one 502, not one socket error, and nginx never logs that an
upstream closed a kept connection under a request."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading

import pytest

from conftest import SLOW, alive, get, wait_until

SOURCE = os.environ.get("PREFORKD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))

pytestmark = pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(path):
    """Lets other users (the proxies' workers) reach into path's folders."""
    p = path
    while p != p.parent and str(p).startswith("/tmp/"):
        os.chmod(p, os.stat(p).st_mode | 0o011)
        p = p.parent


def backend_conf(site, extra=""):
    return (f"[server]\nkeepalive_timeout = 75s\nshutdown_idle_timeout = 1s\n{extra}\n"
            f"[route /]\nhandler = static\nroot = {site}\n")


def nginx_conf(tmp, port, upstreams):
    servers = "\n".join(f"        server {u};" for u in upstreams)
    text = f"""daemon off;
worker_processes 1;
pid nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path body; proxy_temp_path proxy; fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi; scgi_temp_path scgi;
    upstream preforkd {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://preforkd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""
    (tmp / "nginx.conf").write_text(text)
    return ["nginx", "-e", "stderr", "-p", str(tmp), "-c", str(tmp / "nginx.conf")]


def haproxy_conf(tmp, port, upstreams):
    servers = "\n".join(f"    server s{i} {u}" for i, u in enumerate(upstreams))
    text = f"""global
    maxconn 1024
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on all-retryable-errors
    option http-keep-alive
frontend web
    bind 127.0.0.1:{port}
    default_backend preforkd
backend preforkd
    balance roundrobin
{servers}
"""
    (tmp / "haproxy.cfg").write_text(text)
    return ["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")]


def wrk(port, seconds):
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "--timeout", "10s",
                          f"http://127.0.0.1:{port}/hello.txt"],
                         capture_output=True, text=True, timeout=seconds + 60)
    return out.stdout


@pytest.mark.parametrize("proxy", ["nginx", "haproxy"])
@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_reload_upgrade_and_stop_under_load_cost_no_request(proxy, transport, make_server, site,
                                                            tmp_path):
    if not shutil.which(proxy):
        pytest.skip(f"{proxy} is not installed: scripts/deps")
    reachable(tmp_path)
    os.chmod(site, 0o755)
    for f in site.rglob("*"):
        os.chmod(f, 0o755 if f.is_dir() else 0o644)
    sockets = [tmp_path / "a.sock", tmp_path / "b.sock"]
    pid_file = tmp_path / "a.pid"
    if transport == "unix":
        a = make_server(config=backend_conf(site, f"pid_file = {pid_file}"),
                        args=["--listen", f"unix:{sockets[0]}"], name="a")
        b = make_server(config=backend_conf(site), args=["--listen", f"unix:{sockets[1]}"],
                        name="b")
        upstreams = [f"unix:{s}" for s in sockets] if proxy == "nginx" else [str(s) for s in sockets]
    else:
        a = make_server(config=backend_conf(site, f"pid_file = {pid_file}"), name="a")
        b = make_server(config=backend_conf(site), name="b")
        upstreams = [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
    port = free_port()
    ptmp = tmp_path / proxy
    ptmp.mkdir()
    cmd = nginx_conf(ptmp, port, upstreams) if proxy == "nginx" else \
        haproxy_conf(ptmp, port, upstreams)
    log = open(ptmp / "out.log", "wb")
    front = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    try:
        def answers():
            try:
                return get(port, "/hello.txt").status == 200
            except OSError:
                return False
        wait_until(answers, timeout=30, what=proxy)
        old_master = a.proc.pid
        events = [(1.5, lambda: a.signal(signal.SIGHUP)),
                  (3.5, lambda: a.signal(signal.SIGUSR2)),
                  (6.0, lambda: b.signal(signal.SIGTERM))]
        timers = [threading.Timer(t * SLOW, f) for t, f in events]
        for t in timers:
            t.start()
        text = wrk(port, int(9 * SLOW))
        for t in timers:
            t.join()
        sent = int(re.search(r"(\d+) requests in", text).group(1))
        assert sent > 1000, text
        assert "Non-2xx" not in text and "Socket errors" not in text, text
        assert "reload done" in a.log()
        assert "binary upgrade: serving" in a.log()
        if proxy == "nginx":
            # refused connects to the stopped backend are retried, as they
            # should be; a kept connection closed under a request is not
            errors = (ptmp / "nginx-error.log").read_text()
            assert "upstream prematurely closed" not in errors, errors
            assert "while reading response header" not in errors, errors
    finally:
        # the old master handed over; the new one is stopped by pid
        a.proc.wait(timeout=30 * SLOW)
        new = int(pid_file.read_text())
        if new != old_master:
            os.kill(new, signal.SIGTERM)
            wait_until(lambda: not alive(new), timeout=30,
                       what="the new master to stop")
        front.send_signal(signal.SIGTERM if proxy == "haproxy" else signal.SIGQUIT)
        try:
            front.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(front.pid, signal.SIGKILL)
            front.wait()
        log.close()


def test_unix_socket_mode_user_and_group(make_server, site, tmp_path):
    import grp
    import pwd
    import stat
    from conftest import BIN
    sock = tmp_path / "web.sock"
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the socket to another user")
    srv = make_server(config=backend_conf(site), name="owned",
                      args=["--listen", f"unix:{sock} mode=0660 user=nobody group=nogroup"])
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_uid == pwd.getpwnam("nobody").pw_uid
    assert st.st_gid == grp.getgrnam("nogroup").gr_gid
    assert "listening on unix:" in srv.log()
    # the default: 0666, root's
    plain = tmp_path / "plain.sock"
    make_server(config=backend_conf(site), name="plain", args=["--listen", f"unix:{plain}"])
    assert stat.S_IMODE(os.stat(plain).st_mode) == 0o666
    for line, why in ((f"unix:{tmp_path}/x.sock mode=999", "octal mode"),
                      (f"unix:{tmp_path}/x.sock user=no-such-user-here", "no such user"),
                      (f"unix:{tmp_path}/x.sock group=no-such-group-here", "no such group"),
                      ("127.0.0.1:0 mode=0660", "unix sockets only")):
        out = subprocess.run([BIN, "--check", "--root", str(site), "--listen", line],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2 and why in out.stderr, (line, out.stderr)


def test_a_reload_redoes_the_socket_files_mode_and_owner(make_server, site, tmp_path):
    import pwd
    import stat
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the socket to another user")
    sock = tmp_path / "r.sock"
    conf = backend_conf(site).replace("[server]\n", f"[server]\nlisten = unix:{sock} MODE\n")
    srv = make_server(config=conf.replace("MODE", "mode=0600 user=nobody"), name="reload",
                      listen=False)
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == pwd.getpwnam("nobody").pw_uid
    (srv.tmp / "preforkd.conf").write_text(conf.replace("MODE", "mode=0640 user=root"))
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "reload done" in srv.log(), timeout=20, what="the reload")
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0


def test_keep_alive_header_never_promises_more_than_the_wait(make_server, site):
    srv = make_server(config=backend_conf(site).replace(
        "keepalive_timeout = 75s\nshutdown_idle_timeout = 1s", "keepalive_timeout = 300ms"))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
        from conftest import Reader
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r = Reader(s).response()
        assert r.status == 200 and r.header("Keep-Alive") is None


def test_a_half_sent_proxy_header_does_not_hold_a_stop(make_server, site):
    import time
    port = free_port()
    srv = make_server(config=backend_conf(site, "header_timeout = 60s"),
                      args=["--listen", f"127.0.0.1:{port} proxy_protocol"], name="halfproxy")
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW) as s:
        s.sendall(b"PROXY TCP4 192.0.2.1 ")
        time.sleep(0.3)
        start = time.monotonic()
        srv.signal(signal.SIGTERM)
        srv.proc.wait(timeout=30 * SLOW)
        # nothing to answer: closed at once, not after header_timeout (60 s)
        assert time.monotonic() - start < 20
        assert s.recv(16) == b""
