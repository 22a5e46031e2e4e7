"""Process lifecycles, end to end: a generation of workers that cannot start
(on a cold start and on a reload, while clients keep asking), stop signals
to the master and to the whole process group with a request in flight,
reloads under load, a killed master whose workers run as another user, and
running out of descriptors in the middle of a reload.

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

from conftest import alive, workers_status, has_fault_handler, BIN, SLOW, Reader, get, request, wait_until

HELLO = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def site_conf(site, extra=""):
    return (f"[server]\n{extra}\n[route /]\nhandler = static\nroot = {site}\n"
            f"[route /status]\nhandler = status\n[route /sleep]\nhandler = sleep\n")


def children(pid):
    """Live child processes of pid (zombies left out)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return sorted(int(p) for p in out if alive(int(p)))


class Traffic:
    """Clients asking in a loop from threads, a new connection per request,
    until stopped, at most `limit` requests or `seconds` in all. Every
    request must be answered 200: failures lists what was not."""

    def __init__(self, port, clients=1, limit=20000, seconds=120, timeout=10 * SLOW):
        self.port, self.limit, self.timeout = port, limit, timeout
        self.deadline = time.monotonic() + seconds * SLOW
        self.ok = 0
        self.failures = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _done(self):
        return (self._stop.is_set() or time.monotonic() > self.deadline or
                self.ok + len(self.failures) >= self.limit)

    def _run(self):
        while not self._done():
            try:
                r = request(self.port, HELLO, timeout=self.timeout)
                bad = None if r.status == 200 else f"status {r.status}"
            except (OSError, EOFError, AssertionError) as e:
                bad = repr(e)
            with self._lock:
                if bad:
                    self.failures.append(bad)
                else:
                    self.ok += 1

    def more(self, n):
        """Waits until n more requests were answered."""
        target = self.ok + n
        wait_until(lambda: self.ok >= target or self._done(), timeout=60, what=f"{n} answers")
        assert self.ok >= target, f"traffic ended early: {self.ok} ok, {self.failures[:5]}"

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join()
        return self.failures


def start_sleep(srv, ms):
    """A connection whose request to the sleep handler (ms long, on the
    pool) is running by the time this returns."""
    s = srv.connect()
    s.sendall(f"GET /sleep?ms={ms} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    # pool_busy reaches the scoreboard with the worker's next tick
    wait_until(lambda: any(w["pool_busy"] for w in workers_status(srv.port)),
               what="the sleep handler running")
    return s


# ---- a generation that cannot start -------------------------------------------


def test_reload_whose_workers_cannot_start_keeps_the_old_generation(make_server, site,
                                                                      tmp_path):
    """Defect 3: a reload whose new workers cannot start (here: they hang in
    their start past worker_timeout, held by the test build's fault handler)
    used to retire the old generation at once and crash-loop the new one.
    Now the old generation answers every request during and after the
    failed reload, the new one is given up with one error, and a later
    SIGHUP works."""
    if not has_fault_handler():
        pytest.skip("needs a build with PREFORKD_FAULT_HANDLER (scripts/test builds one)")
    srv = make_server(config=site_conf(site), workers=2)
    old = children(srv.proc.pid)
    traffic = Traffic(srv.port)
    traffic.more(20)
    conf = srv.tmp / "preforkd.conf"
    conf.write_text(site_conf(site, "worker_timeout = 1s") +
                    f"[route /hold]\nhandler = fault\nstart = wait\nstart_file = {tmp_path}/never\n")
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed: worker" in srv.log(), timeout=30, what="the reload given up")
    traffic.more(20)
    assert traffic.stop() == []
    log = srv.log()
    [line] = [l for l in log.splitlines() if "could not start" in l]
    assert "of generation 2 could not start" in line and "generation 1 keeps serving" in line
    assert "respawning" not in log  # no crash loop
    wait_until(lambda: children(srv.proc.pid) == old, what="the abandoned workers gone")
    assert {w["generation"] for w in workers_status(srv.port)} == {1}
    # a later SIGHUP may try again
    conf.write_text(site_conf(site, "server_name = fixed"))
    srv.signal(signal.SIGHUP)
    wait_until(lambda: get(srv.port, "/hello.txt").header("server") == "fixed", what="the fix")
    wait_until(lambda: {w["generation"] for w in workers_status(srv.port)} == {3},
               what="generation 3 alone")


def test_reload_whose_access_log_folder_is_missing_is_refused(make_server, site, tmp_path):
    """Defects 3 and 4: the issue's own case, an access log in a folder that
    does not exist. The reload runs the checks of --check and of a start,
    so it is refused before anything is forked, with FILE:LINE, and the old
    generation answers every request."""
    srv = make_server(config=site_conf(site), workers=2)
    old = children(srv.proc.pid)
    traffic = Traffic(srv.port)
    traffic.more(20)
    conf = srv.tmp / "preforkd.conf"
    conf.write_text(site_conf(site, f"access_log = {tmp_path}/missing/access.log"))
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed" in srv.log(), what="the reload refused")
    traffic.more(20)
    assert traffic.stop() == []
    assert re.search(rf"reload failed: {re.escape(str(conf))}:2: access_log: "
                     rf"{re.escape(str(tmp_path))}/missing/access.log: No such file or directory; "
                     r"still serving", srv.log()), srv.log()
    assert children(srv.proc.pid) == old


def run_until_exit(cmd, timeout):
    """Runs a server that should give up by itself; kills its whole process
    group if it has not within timeout. Returns (status, stderr)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
        raise AssertionError(f"the server did not give up within {timeout} s:\n{err[-3000:]}")
    finally:
        try:  # whatever is left of its group (workers stuck on a FIFO)
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_cold_start_whose_workers_cannot_start_exits_with_one_error(site, tmp_path):
    """Defect 3: a cold start whose workers cannot start used to log
    "master started" and crash-loop forever. Now the master says why once
    (in the error log, and on stderr) and exits with status 1, without
    "master started"."""
    if not has_fault_handler():
        pytest.skip("needs a build with PREFORKD_FAULT_HANDLER (scripts/test builds one)")
    error_log = tmp_path / "error.log"
    conf = tmp_path / "cold.conf"
    conf.write_text(site_conf(site, f"listen = 127.0.0.1:0\nworker_timeout = 1s\n"
                                    f"error_log = {error_log}") +
                    "[route /fail]\nhandler = fault\nstart = fail\n")
    status, err = run_until_exit([BIN, "--config", str(conf), "--workers", "2"], timeout=60 * SLOW)
    assert status == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.search(r"\[error\] master \d+: worker \d could not start: ",
                                         lines[0]), err
    log = error_log.read_text()
    assert "master started" not in log
    assert log.count("could not start") == 1, log
    assert "respawning" not in log


@pytest.mark.skipif(SLOW > 1, reason="valgrind emulates the open-file limit itself")
def test_cold_start_out_of_descriptors_exits_with_one_error(site, tmp_path):
    """Defects 3 and 18: workers that run out of descriptors while they set
    up (forty static routes, each holding its root open, under a limit of
    32) cannot start; the master says so once and exits with status 1
    instead of crash-looping."""
    routes = "".join(f"[route /r{i}]\nhandler = static\nroot = {site}\n" for i in range(40))
    conf = tmp_path / "many.conf"
    conf.write_text(site_conf(site, "listen = 127.0.0.1:0") + routes)

    def low_limit():
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    p = subprocess.Popen([BIN, "--config", str(conf), "--workers", "1"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=low_limit)
    try:
        _, err = p.communicate(timeout=60 * SLOW)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
        raise AssertionError("the server did not give up:\n" + err[-3000:])
    assert p.returncode == 1, err
    assert "open files limited to 32" in err  # said at start: the limit is too low
    # the worker's own words, in the master's one line
    assert re.search(r"could not start: route /r\d+: root .*: Too many open files", err), err
    assert len(re.findall(r"could not start", err)) == 1, err
    assert "master started" not in err and "respawning" not in err


# ---- stop signals with a request in flight --------------------------------------


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # queued as the last listener closed: ask again
        return False


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


# ---- reloads under load -----------------------------------------------------------


def test_reloads_under_load_answer_every_request(make_server, site):
    """Defect 3, the hand-over as it always worked and must keep working:
    three reloads while four clients keep asking; every request is answered
    (the previous generation retires only once the new one serves), and
    each time the new generation alone serves in the end."""
    srv = make_server(config=site_conf(site), workers=2)
    traffic = Traffic(srv.port, clients=4)
    traffic.more(50)
    for n in range(3):
        srv.signal(signal.SIGHUP)
        wait_until(lambda: {w["generation"] for w in workers_status(srv.port)} == {n + 2},
                   timeout=30, what=f"generation {n + 2} alone")
        traffic.more(50)
    assert traffic.stop() == []


def test_ttin_and_ttou_during_a_reload_resize_the_new_generation(make_server, site, tmp_path):
    """Defect 3, a consequence of the fix: with the old generation serving
    until the new one does, SIGTTIN and SIGTTOU while a reload starts must
    resize the generation that will serve, or a TTIN given to the retiring
    one is lost while the TTOU after it shrinks the new one. The new
    workers are held before serving by the test build's fault handler
    (start = wait) until the test creates its start_file."""
    if not has_fault_handler():
        pytest.skip("needs a build with PREFORKD_FAULT_HANDLER (scripts/test builds one)")
    go = tmp_path / "go"
    srv = make_server(config=site_conf(site), workers=2)
    (srv.tmp / "preforkd.conf").write_text(
        site_conf(site) + f"[route /hold]\nhandler = fault\nstart = wait\nstart_file = {go}\n")
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "generation 2 started" in srv.log(), what="the reload")
    srv.signal(signal.SIGTTIN)
    wait_until(lambda: "SIGTTIN: 3 worker(s)" in srv.log(), what="the new worker")
    go.write_text("")
    wait_until(lambda: "reload done: generation 2 serves with 3 worker(s)" in srv.log(),
               timeout=30, what="generation 2 serving")
    srv.signal(signal.SIGTTOU)
    wait_until(lambda: [w["generation"] for w in workers_status(srv.port)] == [2, 2],
               timeout=30, what="two workers of generation 2")


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


# ---- descriptors --------------------------------------------------------------------


def open_files_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        line = next(l for l in f if l.startswith("Max open files"))
    return [int(x) for x in line.split()[3:5]]


@pytest.mark.skipif(SLOW > 1, reason="valgrind emulates the open-file limit itself")
def test_reload_recomputes_the_open_file_limit(make_server, site):
    """Defect 18: RLIMIT_NOFILE was set once at start and counted only
    max_connections. A reload that needs more raises it for the new
    workers: 3000 connections + 1024 cached files + 4 threads + 1 socket
    + 3 route roots + 256 spare."""
    srv = make_server(config=site_conf(site, "max_connections = 100"), nofile=(512, 8192))
    [first] = children(srv.proc.pid)
    assert open_files_limit(first) == [1388, 8192]
    (srv.tmp / "preforkd.conf").write_text(site_conf(site, "max_connections = 3000"))
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "reload done" in srv.log(), timeout=30, what="the reload")
    # the old worker may still be finishing when the reload is done
    [second] = wait_until(lambda: (lambda k: len(k) == 1 and first not in k and k)(
        children(srv.proc.pid)), what="the old worker to go")
    assert open_files_limit(second) == [4288, 8192]


@pytest.mark.skipif(SLOW > 1, reason="valgrind emulates the open-file limit itself")
def test_reload_out_of_descriptors_keeps_the_old_generation(make_server, site):
    """Defects 3 and 18: EMFILE in the middle of a reload. Under a hard
    limit of 64, a new configuration with eighty static routes (each worker
    holds every root open) cannot start: the master says the limit is too
    low, gives the new generation up, and the old one answers every
    request."""
    srv = make_server(config=site_conf(site), workers=2, nofile=(64, 64))
    old = children(srv.proc.pid)
    traffic = Traffic(srv.port)
    traffic.more(20)
    routes = "".join(f"[route /r{i}]\nhandler = static\nroot = {site}\n" for i in range(80))
    (srv.tmp / "preforkd.conf").write_text(site_conf(site) + routes)
    warned = srv.log().count("open files limited to 64")
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed: worker" in srv.log(), timeout=30, what="the reload given up")
    traffic.more(20)
    assert traffic.stop() == []
    log = srv.log()
    assert log.count("open files limited to 64") == warned + 1, log
    assert re.search(r"could not start: route /r\d+: root .*: Too many open files", log), log
    assert "generation 1 keeps serving" in log
    wait_until(lambda: children(srv.proc.pid) == old, what="the abandoned workers gone")
