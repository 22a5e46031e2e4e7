"""The dashboard handler (workers/dashboard.c, workers/dashboard.html): its
answer over HTTP (headers, the status_url setting escaped into the page, the
setting's checks), and the page itself in a real headless Chromium, driven
over the DevTools protocol (browser.py): against the real server's /status
under wrk load, and against a fake /status that restarts a worker and fails
on command, to see the page count restarts and show, then clear, its error
banner. Each browser run saves a screenshot (to $PREFORKD_ARTIFACTS when
set, else into the test's tmp folder)."""

import base64
import hashlib
import html
import json
import os
import pathlib
import re
import shutil
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import browser
from conftest import BIN, SLOW, get

CONFIG = """[route /status]
handler = status
[route /dashboard]
handler = dashboard
[route /echo]
handler = echo
"""

# What the page shows, read in one go: the figures the tests look at, the
# points each canvas drew, the workers' table, the banner and #errors (null
# while the page is still loading).
READ_PAGE = """(() => {
  const text = (id) => document.getElementById(id).textContent;
  if (!document.getElementById('samples')) return null;  // not loaded yet
  return {
    samples: Number(text('samples')), failures: Number(text('failures')),
    restarts: Number(text('restarts')), rps: text('total-rps'), requests: text('total-requests'),
    errors: text('errors'), banner: !document.getElementById('banner').hidden,
    bannerText: text('banner'),
    canvases: Object.fromEntries([...document.querySelectorAll('canvas')]
      .map((c) => [c.id, Number(c.dataset.points || 0)])),
    workers: [...document.querySelectorAll('#workers tr')]
      .map((tr) => [...tr.children].map((td) => td.textContent)),
  };
})()"""

CANVASES = {"chart-rps", "chart-latency", "chart-status", "chart-conns", "chart-pool",
            "chart-bytes"}

needs_browser = pytest.mark.skipif(not browser.available(), reason="needs chromium")


def artifacts_dir(tmp_path):
    folder = pathlib.Path(os.environ.get("PREFORKD_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def csp_hash(page, tag):
    """The CSP source of the text of the page's one <tag> element."""
    text = re.search(rb"<%s>(.*?)</%s>" % (tag, tag), page, re.S).group(1)
    return "'sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode() + "'"


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    return struct.unpack(">II", data[16:24])


def wait_for(chrome, session, pred, timeout, what):
    """Reads the page every 0.3 s until pred(reading) holds; every reading
    is kept (returned with the last)."""
    readings = []
    deadline = time.monotonic() + timeout * SLOW
    while True:
        reading = chrome.evaluate(session, READ_PAGE)
        if reading is not None:
            readings.append(reading)
        if reading is not None and pred(reading):
            return reading, readings
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last reading: {reading}\n"
                                 f"chromium: {chrome.log_tail()}")
        time.sleep(0.3)


@pytest.fixture
def chrome(tmp_path_factory):
    """A headless Chromium with its profile in a tmp folder of the run; every
    process of it is gone at the end. The folder's name is short: Chromium's
    socket paths in its TMPDIR must fit in 108 bytes."""
    b = browser.Browser(str(tmp_path_factory.mktemp("cr")))
    yield b
    killed = b.close()
    assert not b.left(), f"chromium processes outlived close(): {b.left()}"
    # a clean quit needs no kill; one that needed it is still no failure of
    # the page, but it is worth seeing in the output
    if killed:
        print(f"chromium: killed {killed} after Browser.close")


# ---- the answer over HTTP ---------------------------------------------------


def test_page_headers_and_methods(make_server):
    srv = make_server(config=CONFIG)
    r = get(srv.port, "/dashboard")
    assert r.status == 200
    assert r.header("content-type") == "text/html; charset=utf-8"
    assert r.header("cache-control") == "no-store"
    assert r.header("x-content-type-options") == "nosniff"
    csp = r.header("content-security-policy")
    # the page's own script and style and nothing else; fetches to this origin
    assert f"script-src {csp_hash(r.body, b'script')};" in csp, csp
    assert f"style-src {csp_hash(r.body, b'style')};" in csp, csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
    assert b'<meta name="status-url" content="/status">' in r.body
    # self-contained: nothing loaded from anywhere
    assert not re.search(rb"""(src|href)\s*=\s*["']?(https?:)?//""", r.body), "external asset"
    assert b"@import" not in r.body and b"url(" not in r.body

    head = get(srv.port, "/dashboard", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == r.header("content-length")
    for method in ("POST", "PUT", "DELETE"):
        bad = get(srv.port, "/dashboard", method=method)
        assert bad.status == 405, (method, bad)
        assert bad.header("allow") == "GET, HEAD"


def test_status_url_is_escaped_into_the_page(make_server):
    url = "/st?a=1&b='<x>\""
    srv = make_server(config=f"[route /dash]\nhandler = dashboard\nstatus_url = {url}\n")
    body = get(srv.port, "/dash").body.decode()
    meta = re.search(r'<meta name="status-url" content="([^"]*)">', body)
    assert meta, body[:600]
    assert meta.group(1) == "/st?a=1&amp;b=&#39;&lt;x&gt;&quot;"
    assert html.unescape(meta.group(1)) == url


def test_admin_listener_serves_the_dashboard(make_server):
    srv = make_server(config="[server]\nadmin_listen = 127.0.0.1:0\n[route /echo]\nhandler = echo\n")
    admin = int(srv.addresses[-1].rsplit(":", 1)[1])  # the admin listener is logged last
    r = get(admin, "/dashboard")
    assert r.status == 200 and r.header("cache-control") == "no-store"
    assert b'<meta name="status-url" content="/status">' in r.body
    assert get(admin, "/status").status == 200  # what the page polls is there too
    assert get(srv.port, "/dashboard").status == 404  # not on the site's listener


@pytest.mark.parametrize("value", ["status", "//evil.example/status", "/\\evil.example",
                                   "http://evil.example/status", "/a\tb", ""])
def test_status_url_must_be_a_path_of_this_server(tmp_path, value):
    conf = tmp_path / "bad.conf"
    conf.write_text(f"[route /dash]\nhandler = dashboard\nstatus_url = {value}\n")
    p = subprocess.run([BIN, "--config", str(conf), "--check"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0, p
    assert f"{conf}:3:" in p.stderr and "status_url" in p.stderr, p.stderr


# ---- the page in a browser, against the real server -------------------------


@needs_browser
@pytest.mark.skipif(not shutil.which("wrk"), reason="needs wrk")
def test_live_page_under_load(make_server, chrome, tmp_path):
    srv = make_server(config=CONFIG, workers=2)
    status = json.loads(get(srv.port, "/status").body)
    assert "totals" in status and "latency_bounds_s" in status, \
        "the page reads the /status of the observability issue (totals, latency histograms)"

    session = chrome.new_page()
    blank = chrome.screenshot(session)
    chrome.navigate(session, f"http://127.0.0.1:{srv.port}/dashboard")
    first, _ = wait_for(chrome, session, lambda r: r["samples"] >= 1, 60, "the first poll")

    # load: 2xx, 4xx and 5xx answers, for a bounded time
    wrk = subprocess.Popen(
        ["wrk", "-t1", "-c4", "-d8s", "--timeout", "10s",
         f"http://127.0.0.1:{srv.port}/echo?status=200:80,404:10,503:10&size=64"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # polls during the load: at least four more after it started, or as
        # many as came before wrk ended
        start = first["samples"]
        last, readings = wait_for(
            chrome, session,
            lambda r: r["samples"] >= start + 4 or (wrk.poll() is not None and
                                                    r["samples"] >= start + 2),
            90, "polls during the load")
    finally:
        try:
            out = wrk.communicate(timeout=60 * SLOW)[0]
        except subprocess.TimeoutExpired:
            os.killpg(wrk.pid, 9)
            out = wrk.communicate()[0]
    assert wrk.returncode == 0, out

    assert last["samples"] >= 3, last
    # total-rps: a number, above 0; the totals moved from poll to poll
    by_sample = {r["samples"]: r for r in readings}
    rates = [float(r["rps"]) for r in by_sample.values() if r["rps"] != "-"]
    assert rates and max(rates) > 0, readings
    requests = [int(r["requests"].replace(",", "")) for r in by_sample.values()
                if r["requests"] != "-"]
    assert len(set(requests)) >= 2 and requests == sorted(requests), requests
    # every chart drew
    assert set(last["canvases"]) == CANVASES, last["canvases"]
    assert all(n > 0 for n in last["canvases"].values()), last["canvases"]
    # both workers in the table, with their pids
    pids = sorted(int(row[1]) for row in last["workers"])
    assert pids == sorted(w["pid"] for w in json.loads(get(srv.port, "/status").body)["workers"])
    assert last["errors"] == "", last["errors"]
    assert not last["banner"], last["bannerText"]
    assert chrome.page_errors(session) == []
    assert not [line for line in chrome.console_log() if "Uncaught" in line]

    png = chrome.screenshot(session)
    shot = artifacts_dir(tmp_path) / "dashboard.png"
    shot.write_bytes(png)
    assert png_size(png) == (1280, 900)
    # charts, text and table: far more than the blank page of the same size
    assert len(png) > 4 * len(blank), (len(png), len(blank))


# ---- the page against a fake /status: restarts and failures -----------------

BOUNDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25, 0.5, 1, 2.5, 5, 10]
CLOSED = ("client", "keepalive_limit", "idle_timeout", "header_timeout", "body_timeout",
          "send_timeout", "request_timeout", "parse_error", "reset", "shutdown", "server")


def _counters():
    return {"accepted": 0, "requests": 0, "bytes_in": 0, "bytes_out": 0,
            "status": {c: 0 for c in ("1xx", "2xx", "3xx", "4xx", "5xx")},
            "latency": {"buckets": [0] * 18, "sum_s": 0.0, "count": 0},
            "pool": {"jobs": 0, "wait": {"buckets": [0] * 18, "sum_s": 0.0, "count": 0}},
            "closed": {k: 0 for k in CLOSED}, "routes": []}


def _grow(c, n, step):
    """n more requests in counters c, spread over buckets and statuses."""
    c["accepted"] += n // 4
    c["requests"] += n
    c["bytes_in"] += 80 * n
    c["bytes_out"] += 200 * n
    c["status"]["2xx"] += n - n // 10
    c["status"]["4xx"] += n // 20
    c["status"]["5xx"] += n // 10 - n // 20
    for i, share in ((3, 0.5), (5, 0.3), (7 + step % 3, 0.2)):
        c["latency"]["buckets"][i] += int(n * share)
    c["latency"]["count"] = sum(c["latency"]["buckets"])
    c["latency"]["sum_s"] += n * 0.002
    c["closed"]["client"] += n // 100


class FakeStatus:
    """A /status in the observability issue's shape, moving with each poll:
    two workers, slot 1 replaced by a new pid (its counters from 0) when
    restart is set, 503s and broken JSON while failing is set. /dashboard
    answers the real server's page and headers."""

    def __init__(self, page, headers):
        self.page, self.page_headers = page, headers
        self.lock = threading.Lock()
        self.polls = 0
        self.failing = False
        self.restart = False
        self.totals = _counters()
        self.workers = [dict(slot=i, pid=40000 + i, **_counters()) for i in range(2)]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/dashboard":
                    self._send(200, fake.page, fake.page_headers)
                elif self.path == "/status":
                    code, body = fake.answer()
                    self._send(code, body, [("Content-Type", "application/json")])
                else:
                    self._send(404, b"not here\n", [])

            def _send(self, code, body, headers):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self):
        with self.lock:
            self.polls += 1
            if self.failing:
                return (503, b"busy\n") if self.polls % 2 else (200, b"{not json")
            if self.restart:
                self.restart = False
                self.workers[1] = dict(slot=1, pid=self.workers[1]["pid"] + 100, **_counters())
            for w, n in zip(self.workers, (120, 80)):
                _grow(w, n, self.polls)
                _grow(self.totals, n, self.polls)
            return 200, json.dumps(self.snapshot()).encode()

    def snapshot(self):
        conns = {"open": 5, "reading": 1, "writing": 2, "idle": 2, "lingering": 0}
        workers = [dict(w, state="serving", generation=1, uptime_s=3.0, heartbeat_age_ms=10,
                        connections=3, conns=conns, pool_threads=4, pool_busy=1 + self.polls % 3,
                        pool_queued=self.polls % 2, pool_stuck=0) for w in self.workers]
        totals = dict(self.totals, conns=conns, pool_busy=2, pool_queued=1, pool_stuck=0)
        return {"server": "preforkd", "version": "0.1.0", "master_pid": 39999, "generation": 1,
                "uptime_s": 10.0 + self.polls, "time": time.time(), "draining": False,
                "config": {"workers": 2, "threads": 4, "listen": ["127.0.0.1:1"],
                           "routes": [{"path": "/", "handler": "static", "mode": "inline"}]},
                "latency_bounds_s": BOUNDS, "totals": totals, "workers": workers}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def fake_status(make_server):
    srv = make_server(config=CONFIG)
    r = get(srv.port, "/dashboard")
    keep = ("content-type", "content-security-policy", "cache-control", "x-content-type-options")
    fake = FakeStatus(r.body, [(k, v) for k, v in r.headers if k in keep])
    yield fake
    fake.close()


@needs_browser
def test_page_survives_failures_and_worker_restarts(fake_status, chrome, tmp_path):
    fake = fake_status
    session = chrome.new_page()
    chrome.navigate(session, f"http://127.0.0.1:{fake.port}/dashboard")
    wait_for(chrome, session, lambda r: r["samples"] >= 3, 60, "three polls")

    # polls fail (503, then JSON that does not parse): the banner shows and
    # the page keeps polling
    fake.failing = True
    down, _ = wait_for(chrome, session, lambda r: r["banner"] and r["failures"] >= 2, 60,
                       "the error banner")
    assert "/status failed" in down["bannerText"], down
    fake.failing = False
    up, _ = wait_for(chrome, session, lambda r: not r["banner"] and r["samples"] > down["samples"],
                     60, "the banner to go once polls work again")

    # slot 1 gets a new pid whose counters start from 0: a restart, not a
    # negative rate
    new_pid = str(fake.workers[1]["pid"] + 100)
    fake.restart = True
    after, readings = wait_for(
        chrome, session,
        lambda r: r["restarts"] >= 1 and any(row[1] == new_pid for row in r["workers"]) and
        r["samples"] >= up["samples"] + 3, 60, "the restart to be seen")
    assert after["restarts"] == 1, after
    for r in readings:
        for row in r["workers"]:
            assert not row[6].startswith("-") or row[6] == "-", row  # req/s never negative
        assert r["rps"] == "-" or float(r["rps"]) >= 0, r
    assert all(n > 0 for n in after["canvases"].values()), after["canvases"]
    assert after["errors"] == "", after["errors"]
    # failed polls are the page's business (the banner), not errors of the
    # page: only the failed fetches' own log lines may be there
    errors = [e for e in chrome.page_errors(session) if "503" not in e]
    assert errors == [], errors
    assert not [line for line in chrome.console_log() if "Uncaught" in line]
    (artifacts_dir(tmp_path) / "dashboard-fake.png").write_bytes(chrome.screenshot(session))
