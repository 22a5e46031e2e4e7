"""Hostile and unlucky clients: slowloris, slow bodies, clients that stop
reading, connection floods, running out of file descriptors, abrupt resets,
oversized input, stuck and crashing handlers. Each ends with the server
serving everyone else and holding no more connections, descriptors or memory
than before. Every load here is bounded in count and time."""

import pytest
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time

from conftest import BIN, Reader, get, has_fault_handler, request, wait_until, worker_of


def conf(site, extra=""):
    return (f"[server]\n{extra}\n[route /]\nhandler = static\nroot = {site}\n"
            "[route /status]\nhandler = status\n[route /sleep]\nhandler = sleep\n"
            "[route /echo]\nhandler = echo\n")


def worker(srv):
    out = os.popen(f"pgrep -P {srv.proc.pid}").read().split()
    assert len(out) == 1, out
    return int(out[0])


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status(port):
    return json.loads(get(port, "/status").body)["workers"][0]


def timed_get(port, path="/hello.txt"):
    t0 = time.monotonic()
    r = get(port, path)
    return r, time.monotonic() - t0


def closed_by_server(s):
    """Non-blocking: the server closed this connection (EOF, reset, or an
    answer followed by EOF)."""
    try:
        while True:
            r, _, _ = select.select([s], [], [], 0)
            if not r:
                return False
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True


def reset(s):
    """Closes with a TCP reset instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@pytest.mark.timing
def test_slowloris_is_cut_at_header_timeout_while_others_are_served(make_server, site):
    srv = make_server(config=conf(site, "header_timeout = 2s"))
    slow = []
    for _ in range(300):
        s = srv.connect()
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    stop = threading.Event()

    def trickle():  # one more header byte on each connection every 0.5 s
        while not stop.is_set():
            for s in slow:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            stop.wait(0.5)

    t = threading.Thread(target=trickle)
    t.start()
    try:
        t0 = time.monotonic()
        latencies = []
        while time.monotonic() - t0 < 1.5:
            r, dt = timed_get(srv.port)
            assert r.status == 200
            latencies.append(dt)
        assert max(latencies) < 0.5, max(latencies)
        wait_until(lambda: all(closed_by_server(s) for s in slow), timeout=8,
                   what="every slowloris connection closed")
        assert time.monotonic() - t0 >= 1.5  # not before the timeout
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()
    wait_until(lambda: status(srv.port)["connections"] == 1, what="connections back to 1")


@pytest.mark.timing
def test_slow_bodies_are_cut_at_body_timeout(make_server, site):
    srv = make_server(config=conf(site, "body_timeout = 1s"))
    slow = []
    for _ in range(100):
        s = srv.connect()
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npart")
        slow.append(s)
    r, dt = timed_get(srv.port)
    assert r.status == 200 and dt < 0.5
    wait_until(lambda: all(closed_by_server(s) for s in slow), timeout=8,
               what="every slow body cut")
    for s in slow:
        s.close()


@pytest.mark.timing
def test_clients_that_stop_reading_are_cut_at_send_timeout(make_server, site):
    with open(site / "10m.bin", "wb") as f:
        f.truncate(10 << 20)
    srv = make_server(config=conf(site, "send_timeout = 1s"))
    w = worker(srv)
    request(srv.port, b"HEAD /10m.bin HTTP/1.1\r\nHost: x\r\n\r\n", head=True)  # now cached
    get(srv.port, "/hello.txt")
    time.sleep(0.2)  # the worker has closed those connections
    base = fds(w)
    stuck = []
    for _ in range(50):
        s = srv.connect()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /10m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        stuck.append(s)
    time.sleep(0.3)
    r, dt = timed_get(srv.port)
    assert r.status == 200 and dt < 0.5
    wait_until(lambda: status(srv.port)["connections"] == 1, timeout=10,
               what="the stuck readers disconnected")
    for s in stuck:
        s.close()
    wait_until(lambda: fds(w) <= base, what="descriptors back to the baseline")


def test_flood_beyond_max_connections_waits_and_is_served(make_server, site):
    srv = make_server(config=conf(site, "max_connections = 20"))
    socks = [srv.connect() for _ in range(300)]  # completed by the kernel's backlog
    for s in socks:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    # the server holds at most 20; each answered connection makes room
    answered = 0
    for s in socks:
        s.settimeout(20)
        r = Reader(s).response()
        assert r.status == 200
        answered += 1
        s.close()
    assert answered == 300
    assert status(srv.port)["connections"] <= 20


@pytest.mark.timing
def test_running_out_of_descriptors_backs_off_and_recovers(make_server, site):
    srv = make_server(config=conf(site, "max_connections = 1000"), nofile=64)
    w = worker(srv)
    hold = []
    for _ in range(120):  # more than the 64 descriptors the worker may have
        s = srv.connect()
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        hold.append(s)
    wait_until(lambda: "pausing accepts" in srv.log(), timeout=5, what="EMFILE")
    cpu0 = cpu_seconds(w)
    time.sleep(2)
    assert cpu_seconds(w) - cpu0 < 0.5  # paused, not spinning on accept
    for s in hold:
        s.close()
    wait_until(lambda: get(srv.port, "/hello.txt").status == 200, timeout=10,
               what="serving again")


def test_abrupt_clients_leave_nothing_behind(make_server, site):
    with open(site / "8m.bin", "wb") as f:
        f.truncate(8 << 20)
    srv = make_server(config=conf(site))
    w = worker(srv)
    for _ in range(3):  # warm the caches (the open-file cache keeps 8m.bin open), then measure
        get(srv.port, "/hello.txt")
        request(srv.port, b"HEAD /8m.bin HTTP/1.1\r\nHost: x\r\n\r\n", head=True)
        get(srv.port, "/sleep?ms=1")
        get(srv.port, "/echo", method="POST", body=b"x")
    base_fds, base_rss = fds(w), rss_kib(w)
    for round_ in range(40):
        s = srv.connect()  # reset in the middle of a head
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHo")
        reset(s)
        s = srv.connect()  # reset in the middle of a body
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 5000)
        reset(s)
        s = srv.connect()  # reset in the middle of a response
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /8m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(1000)
        reset(s)
        s = srv.connect()  # half-close after the request: still answered
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        assert Reader(s).response().body == b"Hello, World!"
        s.close()
        s = srv.connect()  # pipelined requests, then gone without reading
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
        s.close()
        s = srv.connect()  # in the middle of a pool handler
        s.sendall(b"GET /sleep?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n")
        reset(s)
        s = srv.connect()  # connect and leave
        s.close()
    wait_until(lambda: status(srv.port)["connections"] == 1, timeout=10,
               what="every connection gone")
    time.sleep(0.3)  # pool handlers of reset clients finish
    wait_until(lambda: fds(w) <= base_fds, what="descriptors back to the baseline")
    assert rss_kib(w) - base_rss < 4096, (base_rss, rss_kib(w))
    assert get(srv.port, "/hello.txt").status == 200


def test_oversized_input_is_refused_with_bounded_memory(make_server, site):
    srv = make_server(config=conf(site))
    w = worker(srv)
    get(srv.port, "/hello.txt")
    base = rss_kib(w)

    def flood(prefix, filler, expect):
        s = srv.connect()
        s.sendall(prefix)
        got = b""
        try:
            for _ in range(2000):  # up to 64 MiB, stops as soon as refused
                s.sendall(filler)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            got = s.recv(100)
        except ConnectionResetError:
            pass
        s.close()
        assert got.startswith(expect) or got == b"", got

    chunk = b"a" * 32768
    flood(b"GET /", chunk, b"HTTP/1.1 414")  # an endless target
    flood(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", chunk, b"HTTP/1.1 431")  # an endless field
    flood(b"GET / HTTP/1.1\r\nHost: x\r\n", b"X-A: b\r\n" * 4096, b"HTTP/1.1 431")  # many fields
    flood(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;",
          chunk, b"HTTP/1.1 400")  # an endless chunk extension
    flood(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"f" * 32768,
          b"HTTP/1.1 400")  # an endless chunk size
    flood(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
          b"8000\r\n" + chunk + b"\r\n", b"HTTP/1.1 413")  # a body past max_body_size
    assert rss_kib(w) - base < 8192, (base, rss_kib(w))
    assert get(srv.port, "/hello.txt").status == 200


@pytest.mark.timing
def test_stuck_pool_handler_is_reported(make_server, site):
    """A pool handler deaf to cancellation (the test build's fault?kind=hang)
    runs past request_timeout: the client gets 504, and the thread counts as
    stuck until it returns."""
    if not has_fault_handler():
        pytest.skip("needs a build with PREFORKD_FAULT_HANDLER (scripts/test builds one)")
    srv = make_server(config=conf(site, "request_timeout = 1s\nthreads = 2") +
                      "[route /fault]\nhandler = fault\nmode = pool\n")
    t0 = time.monotonic()
    r = get(srv.port, "/fault?kind=hang&ms=3000")
    assert r.status == 504 and time.monotonic() - t0 < 2.5
    st = status(srv.port)
    assert st["pool_stuck"] == 1 and st["pool_busy"] <= 2
    assert "exceeded request_timeout (1000 ms): 504" in srv.log()
    wait_until(lambda: status(srv.port)["pool_stuck"] == 0, timeout=5, what="the thread back")
    assert "after it was asked to stop" in srv.log()
    assert get(srv.port, "/sleep?ms=10").body == b"slept 10 ms\n"


def crash_costs_only_its_worker(make_server, site, crash, extra_routes=""):
    """Holds keep-alive connections spread over 2 workers (8 or more), lets crash() end
    one worker and checks that the other worker's connections go on and that
    the master respawns the one that died."""
    # under AddressSanitizer, let SIGSEGV end the process as it would otherwise
    srv = make_server(config=conf(site) + extra_routes, workers=2,
                      env={"ASAN_OPTIONS": "handle_segv=0:detect_leaks=1"})
    workers = wait_until(lambda: len(srv.workers()) == 2 and srv.workers(), what="2 workers")
    # fair accepting only counts peers that have started serving
    wait_until(lambda: [w["state"] for w in json.loads(get(srv.port, "/status").body)["workers"]]
               == ["serving"] * 2, what="2 workers serving")
    conns = []
    # how the kernel spreads connections over the workers depends on which
    # wakes first; on a loaded machine one may take many in a row
    while len(conns) < 8 or len({w for _, _, w in conns}) < 2:
        assert len(conns) < 64, "connections never spread over both workers"
        s = srv.connect()
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = Reader(s)
        assert rd.response().status == 200
        conns.append((s, rd, worker_of(s, workers)))
    crash(srv)
    # (valgrind, when the suite runs under it, ends the process itself: an exit status)
    died = wait_until(lambda: re.findall(r"pid (\d+)\) (?:killed by signal \d+|exited with "
                                         r"status \d+); respawning", srv.log()), what="the respawn")
    assert len(died) == 1 and int(died[0]) in workers
    alive = []
    for s, rd, w in conns:
        try:
            s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            if rd.response().status == 200:
                alive.append(w)
        except (OSError, EOFError):
            pass
        s.close()
    # exactly the other worker's connections went on
    assert sorted(alive) == sorted(w for _, _, w in conns if w != int(died[0]))
    wait_until(lambda: len(srv.workers()) == 2, what="the worker replaced")
    assert get(srv.port, "/hello.txt").status == 200
    srv.expect_dirty = True


def test_a_crashing_worker_costs_only_its_connections(make_server, site):
    def crash(srv):
        pid = srv.workers()[0]
        os.kill(pid, signal.SIGSEGV)  # what a fault in any code of the worker does

    crash_costs_only_its_worker(make_server, site, crash)


@pytest.mark.parametrize("mode,kind", [("pool", "segv"), ("inline", "abort")])
def test_a_crashing_handler_costs_only_its_worker(make_server, site, mode, kind):
    if not has_fault_handler():
        pytest.skip("built without PREFORKD_FAULT_HANDLER")

    def crash(srv):
        s = srv.connect()
        s.sendall(f"GET /fault?kind={kind} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.settimeout(10)
        try:
            answer = s.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # no answer: the worker died with the connection
        s.close()

    crash_costs_only_its_worker(make_server, site, crash,
                                f"[route /fault]\nhandler = fault\nmode = {mode}\n")
