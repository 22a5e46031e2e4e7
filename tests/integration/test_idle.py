"""Many idle keep-alive connections cost nothing: 2,000 of them stay open on
one worker while other clients are served with normal latency, /status counts
them, and the count goes back down once the clients close them."""

import json
import resource
import selectors
import socket
import time

import pytest

from conftest import Reader, get, wait_until

pytestmark = pytest.mark.timing  # latencies and timeouts: not under valgrind

IDLE = 2000


@pytest.fixture(autouse=True)
def _enough_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3 * IDLE + 500  # our sockets; the server inherits the limit too
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _status(port):
    r = get(port, "/status")
    assert r.status == 200
    assert r.header("content-type") == "application/json"
    return json.loads(r.body)["workers"]


def _connections(port):
    return sum(w["connections"] for w in _status(port))


def _open_idle(port, n, batch=200):
    """n keep-alive connections, each having made one request."""
    socks = []
    req = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    deadline = time.monotonic() + 60
    try:
        while len(socks) < n:
            group = []
            for _ in range(min(batch, n - len(socks))):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                group.append(s)
                socks.append(s)
                s.sendall(req)
            # read the answers of the batch without blocking on one socket
            sel = selectors.DefaultSelector()
            readers = {}
            for s in group:
                s.setblocking(False)
                readers[s] = b""
                sel.register(s, selectors.EVENT_READ)
            pending = set(group)
            while pending:
                assert time.monotonic() < deadline, "opening idle connections took too long"
                for key, _ in sel.select(timeout=5):
                    s = key.fileobj
                    data = s.recv(4096)
                    assert data, "an idle connection was closed after its first answer"
                    readers[s] += data
                    if readers[s].endswith(b"Hello, World!"):
                        assert readers[s].startswith(b"HTTP/1.1 200 ")
                        sel.unregister(s)
                        pending.discard(s)
            sel.close()
            for s in group:
                s.settimeout(10)
        return socks
    except BaseException:
        for s in socks:
            s.close()
        raise


def test_thousands_of_idle_connections_do_not_slow_others(make_server, site):
    srv = make_server(config=f"[server]\nbacklog = 4096\n"
                             f"[route /]\nhandler = static\nroot = {site}\n"
                             f"[route /status]\nhandler = status\n")
    idle = _open_idle(srv.port, IDLE)
    try:
        # the worker holds them all (plus the /status request itself)
        workers = _status(srv.port)
        assert len(workers) == 1
        assert workers[0]["connections"] >= IDLE + 1, workers

        # fresh clients are answered at normal speed meanwhile
        latencies = []
        t_all = time.monotonic()
        for _ in range(200):
            t = time.monotonic()
            r = get(srv.port, "/hello.txt")
            latencies.append(time.monotonic() - t)
            assert r.status == 200 and r.body == b"Hello, World!"
        assert time.monotonic() - t_all < 30
        latencies.sort()
        assert latencies[-1] < 1.0, f"slowest answer {latencies[-1]:.3f} s"
        assert latencies[len(latencies) // 2] < 0.1, f"median {latencies[100]:.3f} s"

        # the idle connections still work: a second request on some of them
        for s in idle[::100]:
            s.sendall(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
            r = Reader(s).response()
            assert r.status == 200 and r.body == b"body { color: red }\n"
    finally:
        for s in idle:
            s.close()

    # the worker notices the closes and its count goes back down
    wait_until(lambda: _connections(srv.port) <= 5, timeout=15, interval=0.2,
               what="the connection count to go back down")
    # and the server is still fine
    assert get(srv.port, "/hello.txt").body == b"Hello, World!"


def test_idle_connections_beyond_max_connections_wait_in_the_backlog(make_server, site):
    """max_connections caps what a worker holds; one more client waits and is
    served as soon as a connection closes."""
    srv = make_server(config=f"[server]\nmax_connections = 50\n"
                             f"[route /]\nhandler = static\nroot = {site}\n"
                             f"[route /status]\nhandler = status\n")
    idle = _open_idle(srv.port, 49)
    try:
        # with /status itself, the worker holds 50
        assert _connections(srv.port) == 50
        idle += _open_idle(srv.port, 1)  # now it is full
        # one more client waits in the backlog, unanswered...
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        try:
            extra.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            extra.settimeout(1.0)
            with pytest.raises(socket.timeout):
                extra.recv(1)
            # ...and is served once one of the others closes
            idle.pop().close()
            extra.settimeout(10)
            r = Reader(extra).response()
            assert r.status == 200 and r.body == b"Hello, World!"
        finally:
            extra.close()
    finally:
        for s in idle:
            s.close()
    wait_until(lambda: _connections(srv.port) <= 3, timeout=10, interval=0.2,
               what="the connection count to go back down")
