"""Logs and identity: the access log in nginx's combined format (buffered,
flushed within a second, untrusted text escaped), access_log = off, the error
log file, log_level, and the Server header (server_name)."""

import fcntl
import os
import pwd
import re
import signal
import socket
import subprocess
import threading

import pytest

from conftest import BIN, Reader, get, request, wait_until

COMBINED = re.compile(r'^(\S+) - - \[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "(.*?)" '
                      r'(\d{3}) (\d+) "(.*?)" "(.*?)"$')


def config(site, extra=""):
    return f"[server]\n{extra}\n[route /]\nhandler = static\nroot = {site}\n"


def log_lines(path):
    """Access log lines, without the harness's readiness probes (OPTIONS *)."""
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if '"OPTIONS * ' not in line]


def test_access_log_lines_in_combined_format(make_server, site, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config=config(site, f"access_log = {log}"))
    get(srv.port, "/hello.txt", [("User-Agent", "tester/1.0"), ("Referer", "http://ref.example/")])
    get(srv.port, "/missing")
    request(srv.port, b"HEAD /big.bin HTTP/1.0\r\n\r\n", head=True)
    lines = wait_until(lambda: len(log_lines(log)) >= 3 and log_lines(log), timeout=5,
                       what="three access log lines")
    fields = [COMBINED.match(line) for line in lines]
    assert all(fields), lines
    first, missing, head = (m.groups() for m in fields)
    assert first[0] == "127.0.0.1"
    assert first[2] == "GET /hello.txt HTTP/1.1" and first[3] == "200" and first[4] == "13"
    assert first[5] == "http://ref.example/" and first[6] == "tester/1.0"
    assert missing[2] == "GET /missing HTTP/1.1" and missing[3] == "404"
    assert missing[5] == "-" and missing[6] == "-"
    # HEAD sends no body bytes; HTTP/1.0 shows as such
    assert head[2] == "HEAD /big.bin HTTP/1.0" and head[3] == "200" and head[4] == "0"


def test_access_log_escapes_untrusted_text(make_server, site, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config=config(site, f"access_log = {log}"))
    # quotes, a backslash and obs-text (UTF-8 bytes) are valid in a field value
    get(srv.port, "/hello.txt", [("User-Agent", 'evil" "injected\\ \xe9')])
    line = wait_until(lambda: log_lines(log), timeout=5, what="the access log line")[0]
    m = COMBINED.match(line)
    assert m, line
    assert m.group(7) == r"evil\x22 \x22injected\x5C \xC3\xA9"


def test_refused_requests_are_logged(make_server, site, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config=config(site, f"access_log = {log}"))
    assert request(srv.port, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status == 400
    assert request(srv.port, b"\x16\x03\x01garbage\r\n\r\n").status == 400
    lines = wait_until(lambda: len(log_lines(log)) >= 2 and log_lines(log), timeout=5,
                       what="two access log lines")
    assert [COMBINED.match(line).group(4) for line in lines] == ["400", "400"]


def test_access_log_off_writes_nothing(make_server, site):
    srv = make_server(config=config(site, "access_log = off"))
    for _ in range(5):
        assert get(srv.port, "/hello.txt").status == 200
    srv.stop()
    assert srv.access_log() == ""


def test_access_log_is_buffered_and_flushed_at_exit(make_server, site, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config=config(site, f"access_log = {log}"))
    with srv.connect() as s:
        rd = Reader(s)
        for _ in range(200):
            s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert rd.response().status == 200
    srv.stop()
    assert len(log_lines(log)) == 200


def test_error_log_file(make_server, site, tmp_path):
    err = tmp_path / "error.log"
    srv = make_server(config=config(site, f"error_log = {err}"), error_log=err)
    assert get(srv.port, "/hello.txt").status == 200
    assert "listening on 127.0.0.1:" in err.read_text()
    assert "listening on" not in srv.errlog.read_text()  # not on stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_log_level_error_hides_info(site, tmp_path):
    # started by hand: the harness finds the port in the info lines this hides
    err = tmp_path / "quiet.log"
    port = free_port()
    proc = subprocess.Popen([BIN, "--root", str(site), "--listen", f"127.0.0.1:{port}",
                             "--workers", "1", "--error-log", str(err)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(port), timeout=15, what="the quiet server")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert "[info]" in err.read_text()  # log_level defaults to info
    err2 = tmp_path / "quieter.log"
    conf = tmp_path / "q.conf"
    conf.write_text(config(site, f"log_level = error\nerror_log = {err2}"))
    proc = subprocess.Popen([BIN, "--config", str(conf), "--listen", f"127.0.0.1:{port}",
                             "--workers", "1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(port), timeout=15, what="the quieter server")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert err2.read_text() == ""


def _answers(port):
    try:
        return get(port, "/hello.txt").status == 200
    except OSError:
        return False


def test_error_log_line_format(make_server, site):
    srv = make_server(args=["--root", str(site)])
    line = next(l for l in srv.log().splitlines() if "listening on" in l)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[info\] master \d+: listening on ", line)


def test_server_name_setting(make_server, site):
    srv = make_server(config=config(site, "server_name = edge"))
    assert get(srv.port, "/hello.txt").header("server") == "edge"
    # no version in the default Server header
    srv2 = make_server(args=["--root", str(site)], name="default")
    assert get(srv2.port, "/hello.txt").header("server") == "preforkd"


def test_log_over_unix_socket_has_no_address(make_server, site, tmp_path):
    log = tmp_path / "access.log"
    path = tmp_path / "s.sock"
    srv = make_server(config=config(site, f"access_log = {log}"), args=["--listen", f"unix:{path}"])
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert Reader(s).response().status == 200
    line = wait_until(lambda: log_lines(log), timeout=5, what="the access log line")[0]
    assert line.startswith("- - - [")


# ---- logs of workers that run as another user --------------------------------------


def nobody_site(top):
    """A document root that workers running as nobody can read."""
    root = top / "www"
    root.mkdir(mode=0o755)
    (root / "hello.txt").write_text("Hello, World!")
    (root / "hello.txt").chmod(0o644)
    return root


def refuse(port):
    """A malformed request: with log_level = debug the worker that refuses it
    writes a line to the error log."""
    assert request(port, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status == 400


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_rotation_with_user_reopens_both_logs_in_the_workers(make_server, open_tmp):
    # the usual /var/log/preforkd: a root folder the workers' user cannot write
    logs = open_tmp / "logs"
    logs.mkdir(mode=0o755)
    err, acc = logs / "error.log", logs / "access.log"
    srv = make_server(config=config(nobody_site(open_tmp),
                                    f"user = nobody\ngroup = nogroup\nlog_level = debug\n"
                                    f"error_log = {err}\naccess_log = {acc}"), workers=2,
                      error_log=err)
    get(srv.port, "/hello.txt")
    wait_until(lambda: acc.exists() and "/hello.txt" in acc.read_text(), what="a first line")
    err.rename(logs / "error.log.1")
    acc.rename(logs / "access.log.1")
    srv.signal(signal.SIGUSR1)
    wait_until(lambda: err.exists() and acc.exists(), what="new log files")
    nobody = pwd.getpwnam("nobody").pw_uid
    assert err.stat().st_uid == nobody and acc.stat().st_uid == nobody
    # each worker says so in the new error log once it reopened both logs
    # (connections cannot be steered to a given worker: an idle accept queue
    # may hand every one of them to the same worker)
    workers = set(srv.workers())
    wait_until(lambda: all(f" {w}: logs reopened" in err.read_text() for w in workers),
               what="both workers' lines in the new error log")
    refuse(srv.port)
    get(srv.port, "/hello.txt?after")
    wait_until(lambda: "refused request" in err.read_text(), what="a worker's line in the new error log")
    wait_until(lambda: "/hello.txt?after" in acc.read_text(), what="a line in the new access log")
    old = (logs / "error.log.1").read_text()
    assert "reopening error log" not in old and "reopening access log" not in old, old
    assert "/hello.txt?after" not in (logs / "access.log.1").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_symlink_planted_in_the_log_folder_is_not_followed(make_server, open_tmp):
    # the log folder belongs to the workers' user: whoever takes over a worker
    # may replace a log by a symlink before the next reopen (nginx's
    # CVE-2016-1247); the root file it points to must stay as it is
    logs = open_tmp / "logs"
    logs.mkdir(mode=0o755)
    nobody = pwd.getpwnam("nobody")
    os.chown(logs, nobody.pw_uid, nobody.pw_gid)
    secret = open_tmp / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    err, acc = logs / "error.log", logs / "access.log"
    srv = make_server(config=config(nobody_site(open_tmp),
                                    f"user = nobody\ngroup = nogroup\n"
                                    f"error_log = {err}\naccess_log = {acc}"), workers=2,
                      error_log=err)
    get(srv.port, "/hello.txt")
    err.rename(logs / "error.log.1")
    acc.unlink()
    err.symlink_to(secret)
    acc.symlink_to(secret)
    srv.signal(signal.SIGUSR1)
    old = logs / "error.log.1"
    wait_until(lambda: "access log" in old.read_text() and "symbolic link" in old.read_text(),
               what="the refusal in the error log")
    get(srv.port, "/hello.txt?after")  # still serving
    srv.stop()
    st = secret.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o600)
    assert secret.read_text() == "root only\n"
    assert err.is_symlink() and acc.is_symlink()  # left as they were


# ---- the access log through a pipe, and a full disk ----------------------------------


def send_many(port, requests):
    """Sends (target, user_agent) requests on one keep-alive connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        rd = Reader(s)
        for target, agent in requests:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\n\r\n".encode())
            assert rd.response().status == 200


def test_access_log_lines_arrive_whole_through_a_pipe(make_server, site):
    # access_log = - under Docker, journald or "| tee": four workers write to
    # one pipe, and a write longer than PIPE_BUF (4096) may be split and
    # interleaved with the others' (the pipe holds one page here, so every
    # longer write waits for the reader and is split)
    rfd, wfd = os.pipe()
    fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, 4096)
    received = bytearray()

    def read_all():
        while chunk := os.read(rfd, 65536):
            received.extend(chunk)
    reader = threading.Thread(target=read_all)
    reader.start()
    try:
        srv = make_server(config=config(site, "access_log = -"), workers=4, stdout=wfd)
    finally:
        os.close(wfd)
    clients, per_client = 8, 150
    batches = [[(f"/hello.txt?c={c}&i={i}&pad={'p' * (200 * (i % 10))}",
                 f"agent-{c}-{i}-" + "u" * (800 + 100 * (i % 13))) for i in range(per_client)]
               for c in range(clients)]
    # and a few lines longer than PIPE_BUF: shortened, still whole
    batches.append([(f"/hello.txt?long={i}&pad={'q' * 3000}", "L" * 3000) for i in range(20)])
    threads = [threading.Thread(target=send_many, args=(srv.port, b)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert srv.stop() == 0
    reader.join(timeout=30)
    os.close(rfd)
    lines = [l for l in received.decode("latin-1").split("\n")[:-1] if '"OPTIONS * ' not in l]
    torn = [l[:120] for l in lines if not COMBINED.match(l)]
    assert not torn, f"{len(torn)} of {len(lines)} lines torn, e.g. {torn[:3]}"
    assert received.endswith(b"\n")
    assert len(lines) == clients * per_client + 20
    long = [COMBINED.match(l) for l in lines if "?long=" in l]
    assert len(long) == 20
    for m in long:
        assert len(m.group(0)) < 4096
        assert m.group(3).endswith("... HTTP/1.1") and m.group(7).endswith("...")


def test_a_full_access_log_is_reported_once_and_serving_goes_on(make_server, site):
    # stdout on /dev/full: every write fails with ENOSPC, as on a full disk
    with open("/dev/full", "wb") as full:
        srv = make_server(config=config(site, "access_log = -"), stdout=full)
    for _ in range(20):
        assert get(srv.port, "/hello.txt").status == 200
    wait_until(lambda: "access log (stdout): No space left" in srv.log(), what="the report")
    for _ in range(20):
        assert get(srv.port, "/hello.txt").status == 200
    srv.stop()  # the last lines are flushed (and fail) at exit
    assert srv.log().count("access log (stdout)") == 1, srv.log()


def test_a_start_failure_is_on_stderr_too_when_the_error_log_is_a_file(site, tmp_path):
    err = tmp_path / "error.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([BIN, "--root", str(site), "--listen", f"127.0.0.1:{port}",
                            "--error-log", str(err)], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "bind: Address already in use" in p.stderr
    assert "bind: Address already in use" in err.read_text()
    assert "[info]" not in p.stderr  # only errors: the rest stays in the file
