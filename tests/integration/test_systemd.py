"""preforkd under systemd, with the test playing systemd's part: a unix
datagram socket as NOTIFY_SOCKET receives READY=1, RELOADING=1 (with
MONOTONIC_USEC), STOPPING=1, STATUS=, WATCHDOG=1 and a new master's
MAINPID= after a binary upgrade, each with the sender's credentials
(SO_PASSCRED); listening sockets bound by the test are passed as fds 3, 4...
with LISTEN_FDS and LISTEN_PID (socket activation), as systemd passes them,
and must serve across a reload and a binary upgrade, a unix socket file
staying where systemd made it."""

import array
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from conftest import BIN, SLOW, Reader, alive, get, wait_until

# Plays systemd's part between fork and exec: the passed sockets move to
# fds 3, 4... and LISTEN_PID / WATCHDOG_PID name this very process, which
# then execs preforkd (same pid).
WRAPPER = r"""
import fcntl, os, sys
fds = [int(x) for x in os.environ.pop("TEST_LISTEN_FDS", "").split(",") if x]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
if fds:
    os.environ["LISTEN_FDS"] = str(len(fds))
    os.environ["LISTEN_PID"] = str(os.getpid())
if "WATCHDOG_USEC" in os.environ and "WATCHDOG_PID" not in os.environ:
    os.environ["WATCHDOG_PID"] = str(os.getpid())
os.execv(sys.argv[1], sys.argv[1:])
"""


def site_conf(site, extra=""):
    return f"[server]\n{extra}\n[route /]\nhandler = static\nroot = {site}\n"


class Notify:
    """The service manager's notification socket."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.seen = []  # (pid, {key: value}) in arrival order

    def env(self):
        return {"NOTIFY_SOCKET": self.path}

    def _read(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, blob in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", blob[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.seen.append((pid, fields))
        return pid, fields

    def wait_for(self, key, value=None, timeout=15 * SLOW):
        """The next message with key (= value), skipping others."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self._read(deadline - time.monotonic())
            if got and key in got[1] and (value is None or got[1][key] == value):
                return got
        raise AssertionError(f"no {key}={value or '...'} within {timeout} s: {self.seen}")

    def collect(self, seconds):
        """Every message of the next seconds."""
        out, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            got = self._read(deadline - time.monotonic())
            if got:
                out.append(got)
        return out

    def drain(self):
        """What is queued already (from processes that may be gone)."""
        out = []
        while (got := self._read(0.001)):
            out.append(got)
        return out

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    n = Notify(tmp_path / "notify.sock")
    yield n
    n.close()


@pytest.fixture
def wrapper(tmp_path):
    path = tmp_path / "activate.py"
    path.write_text(WRAPPER)
    return [sys.executable, str(path)]


def unix_get(sock, path="/hello.txt"):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return Reader(s).response()


def stop_pid(pid, timeout=30):
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), timeout=timeout, what=f"pid {pid} to stop")


# ---- sd_notify ----------------------------------------------------------------


def test_ready_reload_and_stop(make_server, site, notify):
    srv = make_server(config=site_conf(site), workers=2, env=notify.env())
    pid, ready = notify.wait_for("READY", "1")
    assert pid == srv.proc.pid
    assert ready["STATUS"] == "serving with 2 worker(s), generation 1", ready
    # the message came once the workers served: it was logged before
    assert "master started" in srv.log()

    before = time.monotonic_ns() // 1000
    srv.signal(signal.SIGHUP)
    pid, reloading = notify.wait_for("RELOADING", "1")
    after = time.monotonic_ns() // 1000
    assert pid == srv.proc.pid
    # CLOCK_MONOTONIC in µs, taken when the reload began
    assert before <= int(reloading["MONOTONIC_USEC"]) <= after, reloading
    pid, ready = notify.wait_for("READY", "1")
    assert ready["STATUS"] == "serving with 2 worker(s), generation 2", ready
    assert "reload done" in srv.log()
    assert get(srv.port, "/hello.txt").status == 200

    srv.stop(signal.SIGTERM)
    pid, stopping = notify.wait_for("STOPPING", "1")
    assert pid == srv.proc.pid and stopping["STATUS"] == "graceful stop", stopping


def test_workers_do_not_see_the_notify_socket(make_server, site, notify):
    """Only the master speaks to the service manager: a handler in a worker
    (application code) finds no NOTIFY_SOCKET, so it cannot say READY or
    MAINPID, while the rest of the environment is passed on."""
    module = pathlib.Path(BIN).resolve().parent / "apitest.so"
    if not module.exists():
        pytest.skip(f"{module} is not built")
    env = dict(notify.env(), PREFORKD_TEST_VAR="passed")
    srv = make_server(config=site_conf(site) + f"[route = /env]\nhandler = env\nmodule = {module}\n",
                      workers=2, env=env)
    notify.wait_for("READY", "1")
    assert get(srv.port, "/env?PREFORKD_TEST_VAR").body == b"passed\n"
    for _ in range(4):  # both workers
        assert get(srv.port, "/env?NOTIFY_SOCKET").body == b"(unset)\n"
    srv.signal(signal.SIGHUP)  # the next generation too
    notify.wait_for("READY", "1")
    assert get(srv.port, "/env?NOTIFY_SOCKET").body == b"(unset)\n"


def test_a_failed_reload_is_ready_again_with_the_old_generation(make_server, site, notify):
    srv = make_server(config=site_conf(site), env=notify.env())
    notify.wait_for("READY", "1")
    (srv.tmp / "preforkd.conf").write_text("[server]\nworkers = lots\n")
    srv.signal(signal.SIGHUP)
    notify.wait_for("RELOADING", "1")
    _, ready = notify.wait_for("READY", "1")
    assert "generation 1" in ready["STATUS"] and "reload failed" in ready["STATUS"], ready
    assert get(srv.port, "/hello.txt").status == 200


def test_ttin_updates_the_status(make_server, site, notify):
    srv = make_server(config=site_conf(site), env=notify.env())
    notify.wait_for("READY", "1")
    srv.signal(signal.SIGTTIN)
    _, msg = notify.wait_for("STATUS", "serving with 2 worker(s), generation 1")
    assert msg.get("READY") == "1"


def test_watchdog_is_fed_at_half_the_interval(make_server, site, notify, wrapper):
    srv = make_server(config=site_conf(site), env={**notify.env(), "WATCHDOG_USEC": "600000"},
                      wrapper=wrapper)
    notify.wait_for("READY", "1")
    msgs = notify.collect(2.0)
    pings = [pid for pid, m in msgs if m.get("WATCHDOG") == "1"]
    # every 300 ms: about 6 in 2 s (the loop otherwise wakes once a second)
    assert 4 <= len(pings) <= 9, msgs
    assert set(pings) == {srv.proc.pid}


def test_no_watchdog_for_another_pid(make_server, site, notify):
    # WATCHDOG_PID names a process other than the master: not ours to feed
    make_server(config=site_conf(site), env={**notify.env(), "WATCHDOG_USEC": "400000",
                                             "WATCHDOG_PID": "1"})
    notify.wait_for("READY", "1")
    assert not [m for _, m in notify.collect(1.0) if "WATCHDOG" in m]


def test_binary_upgrade_hands_mainpid_to_the_new_master(make_server, site, notify, wrapper,
                                                         tmp_path):
    pid_file = tmp_path / "m.pid"
    srv = make_server(config=site_conf(site, f"pid_file = {pid_file}"), wrapper=wrapper,
                      env={**notify.env(), "WATCHDOG_USEC": "1000000"})
    old = srv.proc.pid
    notify.wait_for("READY", "1")
    srv.signal(signal.SIGUSR2)
    pid, msg = notify.wait_for("MAINPID")
    new = int(msg["MAINPID"])
    assert pid == new != old and msg["READY"] == "1", msg
    srv.proc.wait(timeout=30 * SLOW)  # the old master retired itself
    assert int(pid_file.read_text()) == new
    # the old master's stop is not the service's: no STOPPING=1 from it
    assert not [m for _, m in notify.seen if "STOPPING" in m], notify.seen
    # the watchdog goes on, fed by the new master (what the old one sent
    # before it exited may still be queued: not what this asks)
    notify.drain()
    pings = [pid for pid, m in notify.collect(1.6) if m.get("WATCHDOG") == "1"]
    assert pings and set(pings) == {new}, pings
    assert get(srv.port, "/hello.txt").status == 200
    stop_pid(new)
    _, msg = notify.wait_for("STOPPING", "1")


# ---- socket activation --------------------------------------------------------


@pytest.fixture
def passed(tmp_path):
    """A TCP and a unix listening socket, bound as systemd binds them."""
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(128)
    path = tmp_path / "run" / "activated.sock"
    path.parent.mkdir()
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(path))
    unix.listen(128)
    yield tcp, unix, path
    tcp.close()
    unix.close()


def activated(make_server, wrapper, passed, conf, notify=None, **kw):
    tcp, unix, _ = passed
    env = {"TEST_LISTEN_FDS": f"{tcp.fileno()},{unix.fileno()}", **(notify.env() if notify else {})}
    return make_server(config=conf, listen=False, wrapper=wrapper, env=env,
                       pass_fds=(tcp.fileno(), unix.fileno()), **kw)


def test_socket_activation_serves_across_reload_and_upgrade(make_server, site, wrapper, passed,
                                                            notify, tmp_path):
    tcp, unix, path = passed
    port = tcp.getsockname()[1]
    pid_file = tmp_path / "m.pid"
    lines = f"pid_file = {pid_file}\nlisten = 127.0.0.1:{port}\nlisten = unix:{path}"
    srv = activated(make_server, wrapper, passed, site_conf(site, lines), notify, workers=2)
    log = srv.log()
    assert f"listening on 127.0.0.1:{port} (socket from the service manager)" in log
    assert f"listening on unix:{path} (socket from the service manager)" in log
    assert get(port, "/hello.txt").status == 200
    assert unix_get(path).status == 200

    srv.signal(signal.SIGHUP)
    notify.wait_for("RELOADING", "1")
    notify.wait_for("READY", "1")
    assert get(port, "/hello.txt").status == 200
    assert unix_get(path).status == 200

    # a reload that drops an activated socket's line is refused
    conf = srv.tmp / "preforkd.conf"
    conf.write_text(site_conf(site, f"pid_file = {pid_file}\nlisten = 127.0.0.1:{port}"))
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "a socket from the service manager" in srv.log(), what="refused reload")
    assert "reload failed" in srv.log()
    assert unix_get(path).status == 200
    conf.write_text(site_conf(site, lines))

    old = srv.proc.pid
    srv.signal(signal.SIGUSR2)
    srv.proc.wait(timeout=30 * SLOW)
    new = int(pid_file.read_text())
    assert new != old and alive(new)
    assert get(port, "/hello.txt").status == 200
    assert unix_get(path).status == 200
    assert srv.log().count(f"listening on unix:{path} (socket from the service manager)") == 2
    stop_pid(new)
    assert path.exists()  # systemd's file: never unlinked by preforkd


def test_unix_socket_file_stays_after_a_stop(make_server, site, wrapper, passed):
    tcp, unix, path = passed
    port = tcp.getsockname()[1]
    srv = activated(make_server, wrapper, passed,
                    site_conf(site, f"listen = 127.0.0.1:{port}\nlisten = unix:{path}"))
    assert unix_get(path).status == 200
    assert srv.stop() == 0
    assert path.exists()
    # systemd's copy still listens: the next start takes it again
    srv2 = activated(make_server, wrapper, passed,
                     site_conf(site, f"listen = 127.0.0.1:{port}\nlisten = unix:{path}"))
    assert unix_get(path).status == 200 and get(port, "/hello.txt").status == 200
    srv2.stop()


def test_lines_without_a_passed_socket_are_bound(make_server, site, wrapper, passed, tmp_path):
    tcp, unix, path = passed
    port = tcp.getsockname()[1]
    own = tmp_path / "own.sock"
    srv = activated(make_server, wrapper, passed,
                    site_conf(site, f"listen = 127.0.0.1:{port}\nlisten = unix:{path}\n"
                                    f"listen = unix:{own}"))
    assert f"listening on unix:{own}\n" in srv.log()
    assert unix_get(own).status == 200
    srv.stop()
    assert not own.exists() and path.exists()  # ours removed, systemd's kept


def test_a_passed_socket_without_a_listen_line_is_an_error(site, wrapper, passed, tmp_path):
    tcp, unix, path = passed
    port = tcp.getsockname()[1]
    conf = tmp_path / "p.conf"
    conf.write_text(site_conf(site, f"listen = 127.0.0.1:{port}"))
    p = subprocess.run([*wrapper, BIN, "--config", str(conf), "--workers", "1"],
                       env={**os.environ, "TEST_LISTEN_FDS": f"{tcp.fileno()},{unix.fileno()}"},
                       pass_fds=(tcp.fileno(), unix.fileno()), capture_output=True, text=True,
                       timeout=30 * SLOW)
    assert p.returncode == 1, p.stderr
    assert f"passed a socket on unix:{path}, which no listen line names" in p.stderr, p.stderr
    assert path.exists()


def test_listen_fds_for_another_pid_are_ignored(make_server, site, passed):
    # LISTEN_PID names someone else: the sockets are not ours, nothing is taken
    srv = make_server(config=site_conf(site), env={"LISTEN_FDS": "2", "LISTEN_PID": "1"})
    assert "service manager" not in srv.log()
