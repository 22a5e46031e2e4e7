"""Lifetimes of what a request leaves in a worker: the exchange, its pool job,
its request_timeout timer, its buffers, a streamed answer, the listening
sockets of a retiring worker. Each end of each of them is driven here: the
client resets in every connection state, a deadline fires after the client
left, a job is cancelled before and while it runs, a slow reader meets a
streaming handler, a stop leaves handlers running. After each, the same
worker must go on serving, and the run must be clean (no crash, no
sanitizer report: the harness checks the logs)."""

import contextlib
import json
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import Reader, get, has_fault_handler, wait_until

BIG = 4 << 20  # a file that takes many writes to a slow reader


def _config(site, **server):
    head = "".join(f"{k} = {v}\n" for k, v in server.items())
    return (f"[server]\n{head}"
            f"[route /]\nhandler = static\nroot = {site}\n"
            f"[route /sleep]\nhandler = sleep\n"
            f"[route /echo]\nhandler = echo\n"
            f"[route /status]\nhandler = status\n")


def _status(port):
    return json.loads(get(port, "/status").body)["workers"]


def _worker(srv):
    pids = wait_until(lambda: srv.workers(), what="a worker")
    assert len(pids) == 1, pids
    return pids[0]


def _reset(s):
    """Closes with a TCP reset, as a client that crashed or gave up does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def _open(srv, raw=b"", rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", srv.port))
    if raw:
        s.sendall(raw)
    return s


def _quiet(srv, pid, connections=0):
    """The worker is back to idle: only /status's own connection open, no
    pool thread busy, nothing queued; and it is the same process."""
    def idle():
        w = _status(srv.port)[0]
        return (w["connections"] == connections + 1 and w["pool_busy"] == 0 and
                w["pool_queued"] == 0)
    wait_until(idle, timeout=15, what="the worker to be idle again")
    assert _worker(srv) == pid, "the worker was replaced: it crashed"
    assert get(srv.port, "/hello.txt").body == b"Hello, World!"


def _started(srv, busy=1, queued=0):
    wait_until(lambda: (lambda w: w["pool_busy"] == busy and w["pool_queued"] == queued)(
        _status(srv.port)[0]), what=f"{busy} running and {queued} queued pool job(s)")


# ---- a client reset in every state ------------------------------------------


def _reading_head(srv):
    return _open(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Half: ")


def _reading_body(srv):
    return _open(srv, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 5000)


def _dropping_body(srv):
    """A body the static handler does not want: answered (405) while it comes."""
    s = _open(srv, b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" +
              b"a" * 5000)
    assert Reader(s).response().status == 405
    return s


def _pool_running(srv):
    s = _open(srv, b"GET /sleep?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1)
    return s


def _pool_queued(srv):
    """threads = 1: the first sleep holds the thread, the second waits."""
    keep = _open(srv, b"GET /sleep?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1)
    s = _open(srv, b"GET /sleep?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1, queued=1)
    _reset(keep)
    _started(srv, busy=1, queued=0)  # the queued one took the thread
    s2 = _open(srv, b"GET /sleep?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1, queued=1)
    return [s, s2]  # reset both: the running one and the queued one


def _streaming(srv):
    s = _open(srv, b"GET /sleep?ms=20000&chunks=100 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(10)
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    return s


def _writing_file(srv):
    s = _open(srv, b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", rcvbuf=4096)
    assert s.recv(1000).startswith(b"HTTP/1.1 200")
    # the rest stays unread: the worker waits for room to write
    wait_until(lambda: _writing(srv), what="the worker to wait on a full socket")
    return s


def _writing(srv):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{srv.port} )"],
                         capture_output=True, text=True).stdout
    return any(int(line.split()[1]) > 0 for line in out.splitlines() if line.split())


def _lingering(srv):
    s = _open(srv, b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n" + b"junk" * 100)
    assert Reader(s).response().status == 400
    return s


def _idle(srv):
    s = _open(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert Reader(s).response().status == 200
    return s


STATES = {
    "reading-head": _reading_head,
    "reading-body": _reading_body,
    "dropping-body": _dropping_body,
    "pool-running": _pool_running,
    "pool-queued": _pool_queued,
    "streaming": _streaming,
    "writing-file": _writing_file,
    "lingering": _lingering,
    "idle": _idle,
}


@pytest.fixture
def big_site(site):
    (site / "big.bin").write_bytes(os.urandom(BIG))
    return site


@pytest.mark.parametrize("state", list(STATES))
def test_client_reset_in_every_state(make_server, big_site, state):
    """A reset in any state ends the connection and everything it started:
    the worker stays, its pool is free again at once (running handlers stop,
    queued ones never run), and it serves the next client."""
    srv = make_server(config=_config(big_site, threads=1, request_timeout="30s",
                                     access_log="-"))
    pid = _worker(srv)
    got = STATES[state](srv)
    for s in got if isinstance(got, list) else [got]:
        _reset(s)
    _quiet(srv, pid)


def test_reset_during_a_pool_job_then_its_deadline_passes(make_server, site):
    """Defect: the request_timeout timer outlived the abandoned exchange and
    crashed the worker when it fired. The deadline passes after the reset;
    the worker must not notice."""
    srv = make_server(config=_config(site, request_timeout="1s", threads=2))
    pid = _worker(srv)
    for _ in range(3):
        s = _open(srv, b"GET /sleep?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        _started(srv, busy=1)
        _reset(s)
    time.sleep(1.5)  # past request_timeout of every one of them
    assert _worker(srv) == pid
    _quiet(srv, pid)


# ---- cancellation -----------------------------------------------------------


def test_jobs_of_clients_that_left_do_not_run(make_server, site):
    """Defect: with threads = 1, three clients that sent /sleep?ms=5000 and
    reset delayed a later request by their whole sleeps. A queued job whose
    client left is taken back; a running handler sees its client gone."""
    srv = make_server(config=_config(site, threads=1, access_log="-"))
    pid = _worker(srv)
    gone = []
    for i in range(3):
        gone.append(_open(srv, b"GET /sleep?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n"))
        _started(srv, busy=1, queued=i)
    for s in gone:
        _reset(s)
    t0 = time.monotonic()
    r = get(srv.port, "/sleep?ms=10")
    took = time.monotonic() - t0
    assert r.body == b"slept 10 ms\n"
    # before: 3 x 5 s of sleeping for nobody; a loaded machine needs far less
    assert took < 4, f"the later request waited {took:.1f} s"
    _quiet(srv, pid)
    # the three left before an answer: logged as nginx does (499)
    srv.stop()
    lines = [l for l in srv.access_log().splitlines() if "/sleep?ms=5000" in l]
    assert len(lines) == 3 and all('" 499 ' in l for l in lines), lines


def test_request_timeout_takes_back_a_queued_job(make_server, site):
    """Defect: a job still queued at request_timeout was counted as a stuck
    thread, and ran later for nobody. Now it never runs, and a running
    handler that notices the cancellation is not stuck either."""
    srv = make_server(config=_config(site, threads=1, request_timeout="2s"))
    pid = _worker(srv)
    first = _open(srv, b"GET /sleep?ms=8000 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1)
    second = _open(srv, b"GET /sleep?ms=8000 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1, queued=1)
    for s in (first, second):
        r = Reader(s).response()
        assert r.status == 504, r
        s.close()
    # both cancelled: nothing runs, nothing is stuck, well before 8 s
    wait_until(lambda: (lambda w: w["pool_busy"] == 0 and w["pool_queued"] == 0 and
                        w["pool_stuck"] == 0)(_status(srv.port)[0]),
               timeout=2, what="an idle pool with no stuck thread")
    assert "stuck" not in srv.log()
    _quiet(srv, pid)


# ---- streamed answers and slow readers --------------------------------------


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def test_a_stream_to_a_slow_reader_waits_instead_of_buffering(make_server, site):
    """A handler streams 64 MiB to a client that reads nothing for a while:
    the handler waits once stream_buffer bytes are on their way; the worker
    does not hold the stream in memory. Then the client reads it all."""
    srv = make_server(config=_config(site, stream_buffer="64k", request_timeout="5m"),
                      env={"ASAN_OPTIONS": "quarantine_size_mb=0:detect_leaks=1"})
    pid = _worker(srv)
    get(srv.port, "/hello.txt")
    base = _rss_kib(pid)
    s = _open(srv, b"GET /sleep?ms=0&chunks=1024&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n",
              rcvbuf=65536)
    time.sleep(1.5)  # the handler writes as fast as it may meanwhile
    grown = _rss_kib(pid) - base
    assert grown < 16 * 1024, f"the worker grew by {grown} KiB for an unread stream"
    s.settimeout(30)
    r = Reader(s).response()
    assert r.status == 200 and len(r.body) == 64 << 20 and r.body.count(b"x") == 64 << 20
    s.close()
    _quiet(srv, pid)


def test_idle_memory_does_not_keep_the_largest_requests(make_server, site):
    """Defect: 200 concurrent 1 MiB POSTs to /echo left an idle worker at
    408 MiB: every cached exchange kept its largest buffers. Buffers over
    cached_buffer_max are freed when a request ends. (ASan's quarantine is
    off here so that freed memory leaves as it would with glibc.)"""
    srv = make_server(config=_config(site, max_body_size="2m"),
                      env={"ASAN_OPTIONS": "quarantine_size_mb=0:detect_leaks=1"})
    pid = _worker(srv)
    get(srv.port, "/hello.txt")
    base = _rss_kib(pid)
    body = os.urandom(1 << 20)
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    socks = []
    try:
        for _ in range(200):  # every body is in before any answer is read
            s = _open(srv)
            s.sendall(head + body)
            socks.append(s)
        for s in socks:
            s.settimeout(60)
            r = Reader(s).response()
            assert r.status == 200 and r.body == body
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: _status(srv.port)[0]["connections"] == 1, what="the clients gone")
    time.sleep(2.5)  # a quiet tick gives memory back
    grown = _rss_kib(pid) - base
    assert grown < 48 * 1024, f"an idle worker kept {grown} KiB after the burst"
    _quiet(srv, pid)


# ---- bodies that are not wanted, or come too slowly ---------------------------


def _trickle(s, stop, every=0.3):
    try:
        while not stop.is_set():
            s.send(b"a")
            stop.wait(every)
    except OSError:
        pass


@contextlib.contextmanager
def _trickled_post(make_server, site, path):
    """A POST of 4 KiB to path whose body comes a byte every 0.3 s, to a
    server with body_timeout 1s and body_min_rate 1k; yields the socket."""
    srv = make_server(config=_config(site, body_timeout="1s", body_min_rate="1k"))
    s = _open(srv, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n" % path)
    stop = threading.Event()
    t = threading.Thread(target=_trickle, args=(s, stop))
    t.start()
    try:
        yield s
    finally:
        stop.set()
        t.join()
        s.close()


def test_a_body_nobody_wants_is_answered_before_it_arrives(make_server, site):
    """Defect: a POST to a static file with a 4 KiB body sent a byte every few
    seconds got no answer and held the connection indefinitely. The answer
    (405) comes at once; the trickle is cut by body_min_rate."""
    with _trickled_post(make_server, site, b"/hello.txt") as s:
        t0 = time.monotonic()
        rd = Reader(s)
        r = rd.response()
        assert r.status == 405 and time.monotonic() - t0 < 1.5
        assert rd.closed(timeout=8), "the trickled body still holds the connection"
        assert time.monotonic() - t0 < 8


def test_a_body_slower_than_body_min_rate_gets_408(make_server, site):
    """A handler that wants the body (echo): a byte every 0.3 s never pauses
    for body_timeout, but falls behind body_min_rate: 408, then close."""
    with _trickled_post(make_server, site, b"/echo") as s:
        t0 = time.monotonic()
        r = Reader(s).response()
        took = time.monotonic() - t0
        assert r.status == 408 and 0.8 < took < 6, (r.status, took)


def test_body_min_rate_0_allows_a_trickle(make_server, site):
    """body_min_rate = 0 turns the rate off: only body_timeout's pause counts."""
    srv = make_server(config=_config(site, body_timeout="1s", body_min_rate="0"))
    s = _open(srv, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    for _ in range(10):
        time.sleep(0.25)
        s.send(b"b")
    r = Reader(s).response()
    assert r.status == 200 and r.body == b"b" * 10
    s.close()


def test_a_dropped_body_keeps_the_connection(make_server, site):
    """The early answer does not cost the connection: once the unwanted body
    has come, the next request on it is answered."""
    srv = make_server(config=_config(site))
    s = _open(srv, b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
    rd = Reader(s)
    assert rd.response().status == 405  # before the body
    s.sendall(b"z" * 300000 + b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert rd.response().body == b"Hello, World!"
    s.close()


# ---- request heads that cannot be ----------------------------------------------


@pytest.mark.parametrize("raw", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    b"G(T / HTTP/1.1",
    b"SSH-2.0-OpenSSH_9.2p1 Debian-2",  # no method is this long: 501
    b"GET Debian-2",  # not a target: no '/', '*' or "scheme:"
    b"GET /a\x00b",
    b"GET / HTTQ",
    b"GET / HTTP/1.1 ",
    b" GET /",
], ids=["tls", "bad-method", "ssh", "not-a-target", "nul-in-target", "bad-version",
        "after-version", "space"])
def test_bytes_that_cannot_begin_a_request_are_refused_at_once(make_server, site, raw):
    """Defect: such bytes held the connection for header_timeout (60 s)."""
    srv = make_server(config=_config(site, header_timeout="30s"))
    s = _open(srv, raw)
    t0 = time.monotonic()
    rd = Reader(s)
    r = rd.response()
    assert r.status == (501 if raw.startswith(b"SSH") else 400)
    assert time.monotonic() - t0 < 5
    s.close()


@pytest.mark.parametrize("length", [2 ** 63, 2 ** 64 - 101])
def test_a_content_length_past_2_63_is_413_without_100_continue(make_server, site, length):
    """Defect: 2^63 or more read as negative: 100 Continue, and the 413 only
    after max_body_size bytes."""
    srv = make_server(config=_config(site))
    s = _open(srv, b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                   b"Content-Length: %d\r\n\r\n" % length)
    r = Reader(s).response()
    assert r.status == 413
    s.close()


# ---- stops and retiring workers --------------------------------------------------


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_retiring_worker_does_not_spin_on_the_shared_socket(make_server, site):
    """Defect: a worker retired by a reload closed its copy of the listening
    socket while its removal from epoll was still pending; the registration
    outlived the descriptor (the master keeps the socket) and every
    connection waiting for the new workers woke the retiring one, which
    spun. Here a retiring worker finishing one slow request must stay
    (nearly) idle while wrk opens connections for its successor."""
    srv = make_server(config=_config(site, threads=2))
    old = _worker(srv)
    s = _open(srv, b"GET /sleep?ms=8000 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1)
    srv.signal(__import__("signal").SIGHUP)
    wait_until(lambda: len(srv.workers()) == 2, what="the new generation")
    wait_until(lambda: any(w["state"] == "serving" and w["pid"] != old
                           for w in _status(srv.port)), what="the new worker serving")
    before = _cpu_seconds(old)
    subprocess.run(["wrk", "-t1", "-c16", "-d3s", "-H", "Connection: close",
                    f"http://127.0.0.1:{srv.port}/hello.txt"], capture_output=True, timeout=60)
    used = _cpu_seconds(old) - before
    assert used < 0.5, f"the retiring worker used {used:.2f} s of CPU in 3 s while idle"
    r = Reader(s).response()  # and it finishes what it had
    assert r.status == 200 and r.body == b"slept 8000 ms\n"
    s.close()


def test_a_fast_stop_leaves_running_handlers_what_they_use(make_server, site):
    """Defect: a fast stop freed the routes while pool handlers could still
    use them. A handler reading its route in a loop outlives a SIGINT; the
    worker exits without a use-after-free."""
    if not has_fault_handler():
        pytest.skip("needs a build with PREFORKD_FAULT_HANDLER (scripts/test builds one)")
    srv = make_server(config=_config(site, threads=2) +
                      "[route /fault]\nhandler = fault\nmode = pool\n")
    s = _open(srv, b"GET /fault?kind=touch&ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1)
    assert srv.stop(__import__("signal").SIGINT) == 0
    assert "leaving 1 pool handler(s) running" in srv.log()
    s.close()


# ---- the clock ----------------------------------------------------------------

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


@pytest.mark.skipif(not os.path.exists(FAKETIME), reason="needs Debian's libfaketime "
                    "(scripts/deps test installs it)")
@pytest.mark.parametrize("step", ["-1h", "+1h"])
def test_deadlines_ignore_a_step_of_the_wall_clock(make_server, site, tmp_path, step):
    """Defect: header and linger deadlines followed the wall clock, so a clock
    step (NTP, a VM resumed) stretched them (a slowloris held on) or cut them
    (a client within its header_timeout got 408). The worker's wall clock is
    stepped by libfaketime while a head arrives slowly: 408 comes at
    header_timeout, neither much later nor at once. (header_timeout is longer
    than the 5 s after which libevent notices a step of the wall clock.)"""
    spec = tmp_path / "faketime"
    spec.write_text("+0\n")
    srv = make_server(config=_config(site, header_timeout="8s"), env={
        "LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": str(spec), "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "ASAN_OPTIONS": "verify_asan_link_order=0:detect_leaks=1"})
    s = _open(srv, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    spec.write_text(step + "\n")
    got = b""
    s.settimeout(0.25)
    while time.monotonic() - t0 < 16 and not got:
        try:
            s.sendall(b"X-Slow: 1\r\n")
            got = s.recv(100)
        except socket.timeout:
            pass
        except OSError:
            break
    took = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 408"), f"after {took:.1f} s: {got!r}"
    assert 7 < took < 13, f"408 after {took:.1f} s for a header_timeout of 8 s"
    s.close()


# ---- found in review: each with the class it stands for ------------------------


def test_request_timeout_of_a_queued_job_logs_its_request(make_server, site):
    """A job still queued at request_timeout: the 504 logs the request it
    answers, with its time (a freed exchange was read before: an empty
    request line, 0.000, or a crash)."""
    if not has_fault_handler():
        pytest.skip("needs a build with PREFORKD_FAULT_HANDLER (scripts/test builds one)")
    # the request time is not in combined (nginx's): a format with it
    srv = make_server(config=_config(site, threads=1, request_timeout="1s", access_log="-",
                                     access_log_format='"$request" $status $request_time') +
                      "[route /hang]\nhandler = fault\nmode = pool\n")
    pid = _worker(srv)
    stuck = _open(srv, b"GET /hang?kind=hang&ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1)
    queued = _open(srv, b"GET /sleep?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1, queued=1)
    for s in (queued, stuck):
        assert Reader(s).response().status == 504
        s.close()
    _quiet(srv, pid)
    srv.stop()
    [line] = [l for l in srv.access_log().splitlines() if "/sleep?ms=100" in l]
    assert '"GET /sleep?ms=100 HTTP/1.1" 504 ' in line, line
    assert float(line.rsplit(" ", 1)[1]) >= 0.9, line  # the request's own time


def test_a_client_that_closes_during_a_pool_job_is_gone(make_server, site):
    """A FIN while the handler works (not only a reset): the job is
    cancelled and logged as 499, as nginx does; the next pool request does
    not wait for it."""
    srv = make_server(config=_config(site, threads=1, access_log="-"))
    pid = _worker(srv)
    s = _open(srv, b"GET /sleep?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
    _started(srv, busy=1)
    s.close()
    t0 = time.monotonic()
    assert get(srv.port, "/sleep?ms=10").body == b"slept 10 ms\n"
    assert time.monotonic() - t0 < 5
    _quiet(srv, pid)
    srv.stop()
    assert '"GET /sleep?ms=20000 HTTP/1.1" 499 ' in srv.access_log()


def test_every_request_whose_head_was_read_is_logged(make_server, big_site):
    """A body cut short by a reset: 400 (nginx's "client prematurely closed
    connection"); a file cut by a reset: the bytes that went out, not its
    size."""
    srv = make_server(config=_config(big_site, access_log="-"))
    pid = _worker(srv)
    s = _open(srv, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
    wait_until(lambda: _status(srv.port)[0]["connections"] == 2, what="the request in")
    _reset(s)
    s = _writing_file(srv)
    _reset(s)
    _quiet(srv, pid)
    srv.stop()
    log = srv.access_log()
    assert '"POST /echo HTTP/1.1" 400 ' in log, log
    [line] = [l for l in log.splitlines() if "/big.bin" in l]
    sent = int(line.split('" ')[1].split()[1])
    assert 0 < sent < BIG, line
