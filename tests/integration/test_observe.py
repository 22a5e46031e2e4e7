"""Observability: the scoreboard's counters against what the tests sent
(h2load across two workers, a reload, a killed worker and a binary
upgrade: no counter goes backwards, none counts twice), why connections
closed, the admin listener and allow lists, /healthz and /readyz through a
stop and a reload, /metrics checked by promtool and scraped by a real
Prometheus that answers a PromQL rate() over the requests."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import SLOW, Reader, alive, get, request, wait_until

H2LOAD = shutil.which("h2load")
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


def site_conf(site, extra=""):
    return (f"[server]\nadmin_listen = 127.0.0.1:0\n{extra}\n"
            f"[route /]\nhandler = static\nroot = {site}\n")


def admin_port(srv):
    # the admin listener is the last address logged
    return int(srv.addresses[-1].rsplit(":", 1)[1])


def status(port):
    r = get(port, "/status")
    assert r.status == 200, r
    return json.loads(r.body)


def route(doc, path):
    for r in doc["totals"]["routes"]:
        if r["route"] == path:
            return r
    raise AssertionError(f"no route {path} in {[r['route'] for r in doc['totals']['routes']]}")


def h2load(port, path, n, conns=8):
    out = subprocess.run([H2LOAD, "--h1", "-n", str(n), "-c", str(conns), "-t", "1",
                          f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, timeout=120 * SLOW)
    assert f"{n} succeeded" in out.stdout, out.stdout + out.stderr
    return out.stdout


def serving_pids(port):
    return {w["pid"] for w in status(port)["workers"] if w["state"] == "serving"}


@pytest.mark.skipif(not H2LOAD, reason="h2load (nghttp2-client) is not installed: scripts/deps")
def test_counters_agree_with_what_was_sent_across_reload_kill_and_upgrade(make_server, site,
                                                                          tmp_path):
    pid_file = tmp_path / "m.pid"
    srv = make_server(config=site_conf(site, f"pid_file = {pid_file}"), workers=2)
    admin = admin_port(srv)
    base = status(admin)  # the start's readiness probes (OPTIONS *) are counted
    h2load(srv.port, "/hello.txt", 1000)
    for _ in range(10):
        assert get(srv.port, "/missing.txt").status == 404
    doc = status(admin)
    r = route(doc, "/")
    assert r["requests"] == 1010
    assert r["status"] == {"1xx": 0, "2xx": 1000, "3xx": 0, "4xx": 10, "5xx": 0}
    assert r["latency"]["count"] == 1010 and sum(r["latency"]["buckets"]) == 1010
    t = doc["totals"]
    # what else these totals gained went to the admin listener
    admin_requests = route(doc, "admin:/status")["requests"] - \
        route(base, "admin:/status")["requests"]
    assert admin_requests >= 1
    assert t["requests"] - base["totals"]["requests"] == 1010 + admin_requests
    assert t["status"]["2xx"] - base["totals"]["status"]["2xx"] == 1000 + admin_requests
    assert t["status"]["4xx"] == 10
    assert t["bytes_out"] > 1000 * len("Hello, World!")
    assert t["bytes_in"] > 1010 * len("GET /hello.txt HTTP/1.1\r\n")
    assert t["accepted"] >= 8 + 10
    assert sum(w["requests"] for w in doc["workers"]) == t["requests"]
    assert doc["config"]["workers"] == 2 and len(doc["workers"]) == 2

    def steady(expected):
        """Route / holds exactly expected, however often it is read."""
        for _ in range(3):
            assert route(status(admin), "/")["requests"] == expected

    # a reload: the old generation's counters fold into the totals
    before = serving_pids(admin)
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "reload done" in srv.log(), timeout=20, what="the reload")
    wait_until(lambda: not (serving_pids(admin) & before) and len(status(admin)["workers"]) == 2,
               timeout=30, what="the old generation to retire")
    steady(1010)
    h2load(srv.port, "/hello.txt", 100)
    steady(1110)

    # a killed worker: what it counted stays
    victim = sorted(serving_pids(admin))[0]
    srv.expect_dirty = True  # its death is logged as an error, on purpose
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in serving_pids(admin) and len(serving_pids(admin)) == 2,
               timeout=30, what="the respawn")
    steady(1110)

    # a binary upgrade: the new master takes the board over
    old_master = srv.proc.pid
    srv.signal(signal.SIGUSR2)
    srv.proc.wait(timeout=60 * SLOW)  # the old master retires once the new one serves
    new_master = int(pid_file.read_text())
    assert new_master != old_master and alive(new_master)
    wait_until(lambda: status(admin)["master_pid"] == new_master
               and len(status(admin)["workers"]) == 2, timeout=30, what="the new master's workers")
    steady(1110)
    h2load(srv.port, "/hello.txt", 100)
    doc = status(admin)
    assert route(doc, "/")["requests"] == 1210
    assert route(doc, "/")["status"]["2xx"] == 1200
    assert "scoreboard's totals carry over" in srv.log()
    os.kill(new_master, signal.SIGTERM)
    wait_until(lambda: not alive(new_master), timeout=30, what="the new master to stop")


def closed(doc):
    return doc["totals"]["closed"]


def test_why_connections_closed(make_server, site):
    srv = make_server(config=site_conf(site, "keepalive_requests = 2\nkeepalive_timeout = 1s\n"
                                             "header_timeout = 1s"))
    admin = admin_port(srv)
    base = closed(status(admin))
    # the client asks to close
    assert get(srv.port, "/hello.txt").status == 200
    # keepalive_requests answered
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        rd = Reader(s)
        assert rd.response().status == 200 and rd.response().status == 200
        assert rd.closed()
    # idle between requests past keepalive_timeout
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = Reader(s)
        assert rd.response().status == 200
        assert rd.closed(timeout=10 * SLOW)
    # a head that never ends
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
        assert Reader(s).response().status == 408
    # a bad request
    assert request(srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n"
                   ).status == 400
    # a reset in the middle of a request
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        time.sleep(0.2)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    want = {"client": 1, "keepalive_limit": 1, "idle_timeout": 1, "header_timeout": 1,
            "parse_error": 1}

    def grown():
        now = closed(status(admin))
        # the admin requests themselves close as "client" (Connection: close)
        delta = {k: now[k] - base[k] for k in now}
        return delta if all(delta[k] >= v for k, v in want.items()) and \
            delta["reset"] + delta["client"] >= 2 + 1 else None
    delta = wait_until(grown, timeout=10, what="the close reasons")
    for k in ("keepalive_limit", "idle_timeout", "header_timeout", "parse_error"):
        assert delta[k] == want[k], delta
    assert delta["shutdown"] == 0 and delta["server"] == 0, delta


def test_connection_states_and_pool(make_server, site):
    srv = make_server(config=site_conf(site) + "[route /sleep]\nhandler = sleep\n", workers=1)
    admin = admin_port(srv)
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW)
             for _ in range(3)]
    try:
        socks[0].sendall(b"GET /sleep?ms=4000 HTTP/1.1\r\nHost: x\r\n\r\n")  # on the pool
        socks[1].sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")  # half a head
        socks[2].sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")  # then idle
        assert Reader(socks[2]).response().status == 200

        def states():
            w = status(admin)["workers"][0]
            c = w["conns"]
            # the admin connection reading /status is one of the open ones
            return w if (c["writing"] >= 1 and c["reading"] >= 1 and c["idle"] >= 1
                         and w["pool_busy"] == 1) else None
        w = wait_until(states, timeout=10, what="connections by state")
        assert w["connections"] >= 3 and w["pool_threads"] == 4
    finally:
        for s in socks:
            s.close()
    doc = wait_until(lambda: (d := status(admin))["totals"]["pool"]["jobs"] >= 1 and d,
                     timeout=10, what="the pool job")
    assert doc["totals"]["pool"]["wait"]["count"] == doc["totals"]["pool"]["jobs"]


def test_admin_listener_and_allow_lists(make_server, site, tmp_path):
    conf = site_conf(site) + ("[route /open-metrics]\nhandler = metrics\nallow = 127.0.0.0/8\n"
                              "[route /hidden-metrics]\nhandler = metrics\nallow = 10.0.0.0/8 ::1\n"
                              "[route /denied]\nhandler = healthz\ndeny = 127.0.0.1\n")
    srv = make_server(config=conf)
    admin = admin_port(srv)
    for path in ("/status", "/metrics", "/healthz", "/readyz"):
        assert get(admin, path).status == 200, path
    assert get(admin, "/hello.txt").status == 404  # the site is not on the admin listener
    assert get(admin, "/status", method="POST").status == 405
    assert get(srv.port, "/status").status == 404  # nor the admin routes on the site's
    assert get(srv.port, "/open-metrics").status == 200
    assert get(srv.port, "/hidden-metrics").status == 403
    assert get(srv.port, "/denied").status == 403

    # an admin listener whose allow list does not name us
    other = make_server(config=site_conf(site, "admin_allow = 10.0.0.0/8, unix"), name="closed")
    r = get(admin_port(other), "/metrics")
    assert r.status == 403
    assert b"preforkd_requests_total" not in r.body


def test_admin_settings_are_checked(tmp_path, site):
    from conftest import BIN
    bad = [("admin_allow = 10.0.0.300", "10.0.0.300"),
           ("admin_listen = 127.0.0.1:8080\nlisten = 127.0.0.1:8080", "listen address already")]
    for extra, why in bad:
        conf = tmp_path / "bad.conf"
        conf.write_text(f"[server]\nadmin_listen = 127.0.0.1:9\n{extra}\n"
                        f"[route /]\nhandler = static\nroot = {site}\n"
                        if "admin_listen" not in extra else
                        f"[server]\n{extra}\n[route /]\nhandler = static\nroot = {site}\n")
        out = subprocess.run([BIN, "--check", "--config", str(conf)], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode != 0 and why in out.stderr, out.stderr
    conf.write_text(f"[server]\n[route /]\nhandler = static\nroot = {site}\nallow = 1.2.3.4/40\n")
    out = subprocess.run([BIN, "--check", "--config", str(conf)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode != 0 and "allow" in out.stderr and "1.2.3.4/40" in out.stderr
    conf.unlink()


def keepalive_get(sock, path):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return Reader(sock).response()


def test_readyz_says_503_while_a_stop_or_reload_drains(make_server, site):
    srv = make_server(config=site_conf(site, "shutdown_idle_timeout = 20s\n"
                                             "keepalive_timeout = 30s") +
                      "[route /readyz]\nhandler = readyz\n[route /healthz]\nhandler = healthz\n",
                      workers=1)
    # a reload: a connection to the old generation hears it is going
    old = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW)
    try:
        assert keepalive_get(old, "/readyz").status == 200
        srv.signal(signal.SIGHUP)
        wait_until(lambda: "reload done" in srv.log(), timeout=20, what="the reload")
        # the old worker hears of its retirement a moment after the log line
        r = wait_until(lambda: (r := keepalive_get(old, "/readyz")).status == 503 and r,
                       timeout=10, what="503 from the old generation")
        assert r.header("Connection") == "close"
    finally:
        old.close()
    assert get(srv.port, "/readyz").status == 200  # the new generation is ready
    # a stop: what still has a connection hears the same
    conn = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW)
    try:
        assert keepalive_get(conn, "/healthz").status == 200
        srv.signal(signal.SIGTERM)
        wait_until(lambda: "graceful stop" in srv.log(), timeout=10, what="the stop")
        wait_until(lambda: keepalive_get(conn, "/readyz").status == 503, timeout=10,
                   what="503 while the stop drains")
    finally:
        conn.close()
    srv.proc.wait(timeout=30 * SLOW)


def metrics_text(port):
    r = get(port, "/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    return r.body.decode()


@pytest.mark.skipif(not PROMTOOL, reason="promtool (prometheus) is not installed: scripts/deps")
def test_metrics_pass_promtool(make_server, site):
    srv = make_server(config=site_conf(site) + "[route /a\"b\\c]\nhandler = healthz\n", workers=2)
    admin = admin_port(srv)
    for path in ("/hello.txt", "/missing", '/a"b\\c'):
        get(srv.port, path)
    text = metrics_text(admin)
    out = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stdout + out.stderr
    assert 'preforkd_route_requests_total{route="/a\\"b\\\\c"} 1' in text
    assert re.search(r'^preforkd_requests_total \d+$', text, re.M)
    assert 'preforkd_request_duration_seconds_bucket{le="+Inf"}' in text
    assert re.search(r'^preforkd_worker_requests_total\{worker="\d+",pid="\d+"\} \d+$', text, re.M)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prom_query(port, query, at=None):
    args = {"query": query}
    if at is not None:
        args["time"] = f"{at:.3f}"
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(args)
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.load(r)
    assert doc["status"] == "success", doc
    return doc["data"]


@pytest.mark.skipif(not PROMETHEUS, reason="prometheus is not installed: scripts/deps")
@pytest.mark.skipif(not H2LOAD, reason="h2load (nghttp2-client) is not installed: scripts/deps")
def test_a_real_prometheus_scrapes_and_answers_rate(make_server, site, tmp_path):
    srv = make_server(config=site_conf(site), workers=2)
    admin = admin_port(srv)
    data = tmp_path / "prom"
    data.mkdir()
    (data / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: preforkd\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{admin}']\n")
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={data / 'prometheus.yml'}",
                             f"--storage.tsdb.path={data / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=log, start_new_session=True)
    try:
        def up():
            try:
                res = prom_query(port, 'up{job="preforkd"}')["result"]
                return res and res[0]["value"][1] == "1"
            except OSError:
                return False
        wait_until(up, timeout=60, interval=0.5, what="Prometheus to scrape preforkd")
        h2load(srv.port, "/hello.txt", 2000)

        def scraped():
            res = prom_query(port, 'sum(preforkd_route_requests_total{route="/"})')["result"]
            return res and res[0]["value"][1] == "2000"
        wait_until(scraped, timeout=60, interval=0.5, what="a scrape after the load")
        # the raw samples of 60 s, and rate() over the same window (both
        # evaluated at one instant: a scrape in between changes nothing)
        at = time.time()
        raw = prom_query(port, 'preforkd_route_requests_total{route="/"}[60s]', at)["result"][0]
        values = [(float(t), float(v)) for t, v in raw["values"]]
        rate = float(prom_query(port, 'rate(preforkd_route_requests_total{route="/"}[60s])', at
                                )["result"][0]["value"][1])
        first, last = values[0], values[-1]
        assert last[1] == 2000
        # rate is the increase over the samples, extrapolated to the window
        # by at most the window's length over the samples' span
        increase = last[1] - first[1]
        span = last[0] - first[0]
        assert increase > 0 and span > 0
        assert increase / 60 * 0.99 <= rate <= increase / span * 1.01, (rate, increase, span)
        total = prom_query(port, "sum(preforkd_requests_total)")["result"][0]["value"][1]
        assert float(total) >= 2000
    finally:
        os.killpg(prom.pid, signal.SIGTERM)
        try:
            prom.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(prom.pid, signal.SIGKILL)
            prom.wait()
        log.close()


def test_load_test_endpoints_are_counted_per_route(make_server, site):
    """echo's status and delay mixes show on its route: the server's own
    latency, to hold against what wrk measures."""
    srv = make_server(config=site_conf(site) + "[route /echo]\nhandler = echo\n")
    admin = admin_port(srv)
    statuses = []
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
        rd = Reader(s)
        for _ in range(40):
            s.sendall(b"GET /echo?status=503:50&delay=20ms&seed=7 HTTP/1.1\r\nHost: x\r\n\r\n")
            statuses.append(rd.response().status)
    r = route(status(admin), "/echo")
    assert r["requests"] == 40
    assert r["status"]["5xx"] == statuses.count(503) and r["status"]["2xx"] == statuses.count(200)
    assert 0 < statuses.count(503) < 40
    lat = r["latency"]
    assert lat["count"] == 40 and lat["sum_s"] >= 40 * 0.020
    bounds = status(admin)["latency_bounds_s"]
    # no answer before its delay: nothing in the buckets up to 10 ms
    assert sum(lat["buckets"][:bounds.index(0.01) + 1]) == 0


# ---- found in review: each a class of its own ---------------------------------------


def test_a_new_master_stopped_before_it_serves_leaves_the_old_ready(make_server, site,
                                                                    tmp_path):
    """The board is shared during a binary upgrade: the new master's stop
    drains its own workers only."""
    from conftest import has_fault_handler
    if not has_fault_handler():
        pytest.skip("needs the test build's fault handler")
    pid_file = tmp_path / "m.pid"
    srv = make_server(config=site_conf(site, f"pid_file = {pid_file}"), workers=1)
    admin = admin_port(srv)
    old = srv.proc.pid
    # the new master's workers are held before serving
    (srv.tmp / "preforkd.conf").write_text(
        site_conf(site, f"pid_file = {pid_file}") +
        f"[route /hold]\nhandler = fault\nstart = wait\nstart_file = {tmp_path / 'never'}\n")
    srv.signal(signal.SIGUSR2)
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() not in ("", str(old)),
               timeout=20, what="the new master's pid file")
    os.kill(int(pid_file.read_text()), signal.SIGTERM)
    wait_until(lambda: "binary upgrade failed" in srv.log(), timeout=40, what="the rollback")
    assert get(admin, "/readyz").status == 200
    assert "preforkd_draining 0" in metrics_text(admin)
    srv.expect_dirty = True  # the held worker is killed on its way out


def test_workers_hold_no_descriptor_of_the_board(make_server, site):
    srv = make_server(config=site_conf(site), workers=1)
    for pid in srv.workers():
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        assert not [l for l in links if "scoreboard" in l], links
    master = [os.readlink(f"/proc/{srv.proc.pid}/fd/{fd}")
              for fd in os.listdir(f"/proc/{srv.proc.pid}/fd")]
    assert [l for l in master if "preforkd-scoreboard" in l]


def test_a_denied_client_sends_no_body(make_server, site):
    srv = make_server(config=site_conf(site) +
                      "[route /up]\nhandler = echo\nallow = 10.0.0.0/8\n")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW) as s:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        r = Reader(s).response()
        assert r.status == 403  # at once: no 100 Continue, no body read
        assert r.header("Connection") == "close"


def test_a_fault_overrides_a_planned_close(make_server, site):
    with open(site / "huge.bin", "wb") as f:
        f.truncate(64 << 20)  # more than the socket buffers hold
    srv = make_server(config=site_conf(site, "send_timeout = 1s"))
    admin = admin_port(srv)
    base = closed(status(admin))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    try:
        # Connection: close plans a "client" close; the client then never reads
        s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        wait_until(lambda: closed(status(admin))["send_timeout"] > base["send_timeout"],
                   timeout=20, what="the send timeout")
    finally:
        s.close()
    now = closed(status(admin))
    assert now["send_timeout"] == base["send_timeout"] + 1


def test_long_non_ascii_route_names_stay_scrapable(make_server, site):
    if not PROMTOOL:
        pytest.skip("promtool (prometheus) is not installed: scripts/deps")
    srv = make_server(config=site_conf(site) + "[route /a" + "é" * 60 + "]\nhandler = healthz\n")
    text = metrics_text(admin_port(srv))
    out = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stdout + out.stderr
    assert "/a" + "é" * 40 in text


def test_admin_listen_off_and_relative_unix_path(tmp_path, site):
    from conftest import BIN
    folder = tmp_path / "etc"
    folder.mkdir()
    conf = folder / "p.conf"
    conf.write_text(f"[server]\nadmin_listen = off\n[route /]\nhandler = static\nroot = {site}\n")
    out = subprocess.run([BIN, "--check", "--config", str(conf)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    conf.write_text(f"[server]\nlisten = 127.0.0.1:0\nadmin_listen = unix:admin.sock\n"
                    f"[route /]\nhandler = static\nroot = {site}\n")
    proc = subprocess.Popen([BIN, "--config", str(conf), "--workers", "1"], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        sock = folder / "admin.sock"  # the config's folder, not the working one
        wait_until(sock.exists, timeout=20, what="the admin socket")
        def answers():
            try:
                with socket.socket(socket.AF_UNIX) as u:
                    u.settimeout(5)
                    u.connect(str(sock))
                    u.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return Reader(u).response().status == 200
            except OSError:
                return False
        wait_until(answers, timeout=20, what="the admin listener on its unix socket")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert not (folder / "admin.sock").exists() and not (tmp_path / "admin.sock").exists()
    conf.unlink()


def test_stop_delay_says_503_while_it_serves_on(make_server, site):
    srv = make_server(config=site_conf(site, "stop_delay = 3s"), workers=1)
    admin = admin_port(srv)
    assert get(admin, "/readyz").status == 200
    srv.signal(signal.SIGTERM)
    wait_until(lambda: "stop_delay" in srv.log(), timeout=10, what="the drain to begin")
    # new connections are still taken and answered, health checks say go away
    assert get(admin, "/readyz").status == 503
    assert get(srv.port, "/hello.txt").status == 200
    assert "preforkd_draining 1" in metrics_text(admin)
    srv.proc.wait(timeout=30 * SLOW)
    log = srv.log()
    assert log.index("stop_delay") < log.index("graceful stop: finishing")
