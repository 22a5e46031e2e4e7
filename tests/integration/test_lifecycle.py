"""Process lifecycles, end to end: stop signals to the master and to the
whole process group with a request in flight, and a killed master whose
workers run as another user.

Each test's docstring names the defect of the issue "Operational paths as
solid as the parser" it covers."""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, SLOW, Reader, get, request, wait_until

HELLO = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def site_conf(site, extra=""):
    return (f"[server]\n{extra}\n[route /]\nhandler = static\nroot = {site}\n"
            f"[route /status]\nhandler = status\n[route /sleep]\nhandler = sleep\n")


def children(pid):
    """Live child processes of pid (zombies left out)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return sorted(int(p) for p in out if alive(int(p)))


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def workers_status(port):
    return json.loads(get(port, "/status").body)["workers"]


def start_sleep(srv, ms):
    """A connection whose request to the sleep handler (ms long, on the
    pool) is running by the time this returns."""
    s = srv.connect()
    s.sendall(f"GET /sleep?ms={ms} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    # pool_busy reaches the scoreboard with the worker's next tick
    wait_until(lambda: any(w["pool_busy"] for w in workers_status(srv.port)),
               what="the sleep handler running")
    return s


# ---- stop signals with a request in flight --------------------------------------


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGQUIT], ids=["TERM", "QUIT"])
@pytest.mark.parametrize("to", ["group", "master"])
def test_graceful_stop_answers_the_request_in_flight(make_server, site, sig, to):
    """Defect 5: a SIGTERM or SIGQUIT to the whole process group (systemd's
    KillMode=control-group, docker stop, Ctrl-\\) reaches each worker from
    its sender and again relayed by the master; workers took the second for
    "a second signal" and cut the request in flight. The copy that arrives
    once the stop is under way (the port refuses: every worker stopped
    accepting) is sent again here, so that the two never merge into one
    pending signal. A worker's stop is idempotent now. (Sent to the master
    alone, the stop always was graceful.)"""
    srv = make_server(config=site_conf(site), workers=2)
    workers = children(srv.proc.pid)
    slow = start_sleep(srv, 3000)
    if to == "group":
        os.killpg(srv.proc.pid, sig)
        wait_until(lambda: refused(srv.port), what="the stop under way")
        for w in workers:
            try:
                os.kill(w, sig)  # a late copy, as the master's relay may be
            except ProcessLookupError:
                pass  # an idle worker is done already
    else:
        srv.signal(sig)
    slow.settimeout(20 * SLOW)
    r = Reader(slow).response()
    assert r.status == 200 and r.body.startswith(b"slept 3000 ms"), r
    assert srv.proc.wait(timeout=30 * SLOW) == 0


def test_second_sigterm_to_the_master_after_a_group_sigterm_is_fast(make_server, site):
    """Defect 5: with workers' stops idempotent, escalation is the master's
    alone: after a SIGTERM to the group, a SIGTERM to the master makes the
    stop fast, and the request in flight (60 s long, shutdown_timeout 30 s)
    is cut."""
    srv = make_server(config=site_conf(site), workers=1)
    slow = start_sleep(srv, 60000)
    os.killpg(srv.proc.pid, signal.SIGTERM)
    wait_until(lambda: "graceful stop" in srv.log(), what="the graceful stop")
    assert srv.proc.poll() is None  # still waiting for the request
    srv.signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=15 * SLOW) == 0
    assert "fast stop" in srv.log()
    slow.settimeout(5)
    try:
        assert slow.recv(100) == b""  # closed without an answer
    except ConnectionResetError:
        pass


# ---- privileges ---------------------------------------------------------------------


ECHO_ONLY = "[route /]\nhandler = echo\n"  # nothing on disk for nobody to reach


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: workers run as nobody")
def test_killed_master_with_user_takes_its_workers_and_port_along(make_server):
    """Defect 7: with user =, the privilege drop cleared PR_SET_PDEATHSIG:
    the workers outlived a killed master and kept the port, so a restart
    failed with "Address already in use". They stop now, and a new server
    binds the same port."""
    srv = make_server(config=f"[server]\nuser = nobody\n{ECHO_ONLY}", workers=2)
    port = srv.port
    workers = wait_until(lambda: len(children(srv.proc.pid)) == 2 and children(srv.proc.pid),
                         what="2 workers")
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    srv.expect_dirty = True  # a SIGKILLed master: exit status -9
    wait_until(lambda: not any(alive(w) for w in workers), timeout=15, what="the workers to stop")
    again = make_server(config=f"[server]\nlisten = 127.0.0.1:{port}\n{ECHO_ONLY}",
                        listen=False, name="again")
    assert again.port == port
    assert get(port, "/").status == 200


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: workers run as nobody")
def test_workers_stay_dumpable_after_the_privilege_drop(make_server):
    """Defect 18: after setuid a worker was no longer dumpable (no core file
    for a crash). PR_SET_DUMPABLE is set again, as nginx does; the sign of
    it: the worker's /proc files belong to its user, not to root."""
    srv = make_server(config=f"[server]\nuser = nobody\n{ECHO_ONLY}", workers=1)
    [worker] = children(srv.proc.pid)
    assert os.stat(f"/proc/{worker}/status").st_uid == 65534
