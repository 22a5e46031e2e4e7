"""Logs and identity: the access log in nginx's combined format (buffered,
flushed within a second, untrusted text escaped; compared with what nginx
writes, read by goaccess), in JSON and in a format of its own, none lost or
torn across a reload and a graceful stop; access_log = off, the error log
file, its text and JSON lines and the start's lines, log_level, and the
Server header (server_name)."""

import fcntl
import json
import os
import pwd
import re
import shutil
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


# ---- the formats: combined as nginx writes it, json, a format of its own -------------

# What the format tests send: 200s, 404s, HEAD, HTTP/1.0, a query, and hostile text
# (quotes, a backslash, a tab, obs-text and UTF-8 bytes, a forged line end)
HOSTILE_AGENT = b'evil" "injected\\ \t\xe9 \xc3\xa9 \xff"] "GET / HTTP/1.1" 200'
FORMAT_REQUESTS = [
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.0\r\n"
    b"Referer: http://ref.example/a b?c=\"d\"\r\n\r\n",
    b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /missing/again?x=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: " + HOSTILE_AGENT + b"\r\n\r\n",
    b"HEAD /hello.txt HTTP/1.0\r\n\r\n",
    b"GET /hello.txt?a=%22b&c=d HTTP/1.1\r\nHost: x\r\nUser-Agent: " + HOSTILE_AGENT + b"\r\n\r\n",
    b"GET /nope.html HTTP/1.0\r\nUser-Agent: \r\n\r\n",
]


def send_format_requests(port):
    """FORMAT_REQUESTS on their own connections; their statuses."""
    statuses = []
    for raw in FORMAT_REQUESTS:
        head = raw.startswith(b"HEAD")
        raw = raw.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
        statuses.append(request(port, raw, head=head).status)
    return statuses


def start_nginx(tmp, site, log):
    """nginx in one process, its access log in combined, unbuffered."""
    port = free_port()
    (tmp / "logs").mkdir(parents=True)
    (tmp / "nginx.conf").write_text(
        f"daemon off; master_process off; pid {tmp}/nginx.pid; error_log stderr;\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{ access_log {log} combined; client_body_temp_path {tmp}/body;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {site}; }} }}\n")
    proc = subprocess.Popen(["nginx", "-e", "stderr", "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_until(lambda: _answers(port), timeout=15, what="nginx")
    return proc, port


STAMP = re.compile(r"\[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]")


@pytest.mark.skipif(not shutil.which("nginx"), reason="needs nginx (scripts/deps test)")
def test_combined_is_byte_for_byte_what_nginx_writes(make_server, site, tmp_path):
    ours = tmp_path / "preforkd.log"
    srv = make_server(config=config(site, f"access_log = {ours}"))
    got = send_format_requests(srv.port)
    srv.stop()
    theirs = tmp_path / "nginx.log"
    nginx, port = start_nginx(tmp_path / "nginx", site, theirs)
    try:
        want = send_format_requests(port)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=20)
    assert got == want == [200, 404, 404, 200, 200, 404]

    def lines(path):
        """Its lines but the readiness probes (OPTIONS * for preforkd, a GET
        without headers for nginx), time stamps and the bytes of 404 pages
        (each server's own) masked."""
        out = [STAMP.sub("[TIME]", l) for l in path.read_bytes().decode("latin-1").splitlines()]
        out = [l for l in out if '"OPTIONS * ' not in l
               and '"GET /hello.txt HTTP/1.1" 200 13 "-" "-"' not in l]
        return [re.sub(r'" 404 \d+ "', '" 404 N "', l) for l in out]
    ours_lines, theirs_lines = lines(ours), lines(theirs)
    assert len(ours_lines) == len(FORMAT_REQUESTS)
    assert ours_lines == theirs_lines
    assert r'\x22' in ours_lines[2] and r'\x5C \x09\xE9 \xC3\xA9 \xFF\x22]' in ours_lines[2]


@pytest.mark.skipif(not shutil.which("goaccess"), reason="needs goaccess (scripts/deps test)")
def test_goaccess_reads_the_combined_log(make_server, site, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config=config(site, f"access_log = {log}"), workers=2)
    sent = 0
    for _ in range(5):
        send_format_requests(srv.port)
        sent += len(FORMAT_REQUESTS)
    send_many(srv.port, [(f"/hello.txt?i={i}", f"agent {i}") for i in range(30)])
    sent += 30
    srv.stop()
    lines = log.read_text(errors="replace").splitlines()
    assert len(log_lines(log)) == sent  # and the harness's readiness probes
    out = tmp_path / "report.json"
    subprocess.run(["goaccess", str(log), "--log-format=COMBINED", "--no-global-config",
                    "-o", str(out)], check=True, stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=60)
    general = json.loads(out.read_text())["general"]
    assert general["total_requests"] == len(lines), general
    assert general["failed_requests"] == 0, general
    assert general["valid_requests"] == len(lines), general


def test_json_access_log(make_server, site, tmp_path):
    log = tmp_path / "access.json"
    srv = make_server(config=config(site, f"access_log = {log}\naccess_log_format = json"))
    statuses = send_format_requests(srv.port)
    workers = set(srv.workers())
    srv.stop()
    records = [json.loads(l) for l in log.read_text().splitlines()]  # ASCII only
    assert log.read_bytes().isascii()
    records = [r for r in records if r["uri"] != "*"]
    assert [r["status"] for r in records] == statuses
    fields = ["time", "remote_addr", "client", "method", "uri", "protocol", "status",
              "body_bytes_sent", "request_time", "route", "worker", "pid", "referer", "user_agent"]
    for r in records:
        assert list(r) == fields
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r["time"])
        assert r["remote_addr"] == r["client"] == "127.0.0.1"
        assert r["route"] == "/" and r["pid"] in workers and r["worker"] == 0
        assert isinstance(r["request_time"], float) and r["request_time"] < 5
    first, hostile = records[0], records[2]
    assert (first["method"], first["uri"], first["protocol"]) == ("GET", "/hello.txt", "HTTP/1.1")
    assert first["body_bytes_sent"] == 13 and first["user_agent"] == "curl/8.0"
    assert first["referer"] == 'http://ref.example/a b?c="d"'
    # every byte comes back: a byte of 0x80 and up is the code point of its number
    assert hostile["user_agent"].encode("latin-1") == HOSTILE_AGENT
    assert hostile["uri"] == "/missing/again?x=1" and hostile["referer"] == ""
    assert records[3]["protocol"] == "HTTP/1.0" and records[3]["method"] == "HEAD"


def test_access_log_format_of_its_own(make_server, site, tmp_path):
    log = tmp_path / "access.log"
    fmt = ("$request_method $uri $args|$status $route $worker $pid ${http_x_test}! "
           "$request_time $msec $time_iso8601")
    srv = make_server(config=config(site, f"access_log = {log}\naccess_log_format = {fmt}"))
    assert get(srv.port, "/hello.txt?a=1", [("X-Test", 'one "two"')]).status == 200
    assert get(srv.port, "/%68ello.txt").status == 200
    worker = srv.workers()[0]
    srv.stop()
    lines = log_lines(log)
    lines = [l for l in lines if not l.startswith("OPTIONS ")]
    assert re.match(rf'^GET /hello.txt a=1\|200 / \d+ {worker} one \\x22two\\x22! '
                    r"\d+\.\d{3} \d{10}\.\d{3} \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", lines[0]), lines
    assert lines[1].startswith(f"GET /hello.txt -|200 / ")  # $uri is decoded; no query: -


def test_unknown_variable_is_refused_by_check(site, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text(config(site, "access_log_format = $remote_addr $bytes_sent"))
    p = subprocess.run([BIN, "--config", str(conf), "--check"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2
    assert "bad.conf:2: access_log_format: unknown variable $bytes_sent" in p.stderr
    conf.write_text(config(site, "log_format = yaml"))
    p = subprocess.run([BIN, "--config", str(conf), "--check"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "log_format: expected text or json" in p.stderr


# ---- no line lost, none torn: a graceful stop and a reload under load ----------------


def keep_sending(port, stop, served, errors):
    """Requests on keep-alive connections until stop is set or the server is
    gone; served counts the responses received whole."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                rd = Reader(s)
                while not stop.is_set():
                    s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: load\r\n\r\n")
                    r = rd.response()
                    if r.status != 200:
                        errors.append(r.status)
                    served.append(1)
                    if (r.header("connection") or "").lower() == "close":
                        break
        except (OSError, AssertionError):
            pass  # the connection closed between two requests: not served
        except Exception as e:  # noqa: BLE001 - a bad response is a failure
            errors.append(repr(e))


def test_no_line_lost_across_reload_and_graceful_stop_under_load(make_server, site, tmp_path):
    log = tmp_path / "access.log"
    srv = make_server(config=config(site, f"access_log = {log}"), workers=2)
    stop, served, errors = threading.Event(), [], []
    threads = [threading.Thread(target=keep_sending, args=(srv.port, stop, served, errors))
               for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(served) > 1000, timeout=30, what="load")
        srv.signal(signal.SIGHUP)  # the old workers retire, the new ones serve
        wait_until(lambda: srv.log().count("reload done") == 1, timeout=30, what="the reload")
        mark = len(served)
        wait_until(lambda: len(served) > mark + 1000, timeout=30, what="load after the reload")
        assert srv.stop() == 0  # graceful: under load
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors[:5]
    lines = log_lines(log)
    torn = [l for l in lines if not COMBINED.match(l)]
    assert not torn, torn[:3]
    assert len(lines) == len(served)


# ---- the error log: what a start says, JSON lines --------------------------------------


def test_start_lines_say_version_addresses_workers_threads_and_limits(make_server, site):
    srv = make_server(config=config(site, "threads = 3\nmax_connections = 500\n"
                                          "max_body_size = 2m\nheader_timeout = 7s"), workers=2)
    log = srv.log()
    version = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.split()[1]
    assert f"[info] master {srv.proc.pid}: preforkd {version} starting" in log
    assert f"listening on 127.0.0.1:{srv.port}" in log
    assert "workers = 2 (configured)" in log
    m = re.search(r"per worker: 3 pool thread\(s\), max_connections 500, open files (\d+); "
                  r"max_body_size 2097152 bytes; timeouts \(ms\): header 7000, body 60000, "
                  r"send 60000, keepalive 75000, request 60000, shutdown 30000", log)
    assert m and int(m.group(1)) >= 500, log
    srv.stop()
    auto = make_server(args=["--root", str(site)], workers=None, name="auto")
    assert re.search(r"workers = auto: \d+ \(\d+ usable CPU\(s\) in the affinity mask", auto.log())


def test_json_error_log(make_server, site, tmp_path):
    err = tmp_path / "error.json"
    srv = make_server(config=config(site, f"error_log = {err}\nlog_format = json\n"
                                          "log_level = debug"), workers=2, error_log=err)
    refuse(srv.port)  # a worker's debug line
    wait_until(lambda: "refused request" in err.read_text(), what="a worker's line")
    srv.stop()
    records = [json.loads(l) for l in err.read_text().splitlines()]
    workers = [r for r in records if r["role"] == "worker"]
    masters = [r for r in records if r["role"] == "master"]
    assert masters and workers
    for r in records:
        assert list(r) == ["time", "level", "pid", "role"] + (["slot"] if r["role"] == "worker"
                                                              else []) + ["msg"]
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r["time"])
        assert r["level"] in ("error", "warn", "info", "debug")
    assert {r["pid"] for r in masters} == {srv.proc.pid}
    assert all(isinstance(r["slot"], int) and r["slot"] >= 0 for r in workers)
    assert any(r["msg"].startswith("listening on 127.0.0.1:") for r in masters)
    assert any("refused request" in r["msg"] for r in workers)


def test_client_behind_a_trusted_proxy_in_each_format(make_server, site, tmp_path):
    logs = {}
    for fmt in ("combined", "json", "$remote_addr $realip_remote_addr $client"):
        log = logs[fmt] = tmp_path / f"{len(logs)}.log"
        srv = make_server(config=config(site, f"access_log = {log}\naccess_log_format = {fmt}\n"
                                              "trusted_proxies = 127.0.0.1"), name=str(len(logs)))
        get(srv.port, "/hello.txt", [("X-Forwarded-For", "203.0.113.7")])
        srv.stop()
    [combined] = log_lines(logs["combined"])
    assert combined.startswith("203.0.113.7 - - [")  # as nginx's realip module does
    [record] = [json.loads(l) for l in logs["json"].read_text().splitlines()
                if '"uri":"/hello.txt"' in l]
    assert (record["remote_addr"], record["client"]) == ("127.0.0.1", "203.0.113.7")
    own = [l for l in logs["$remote_addr $realip_remote_addr $client"].read_text().splitlines()]
    assert "203.0.113.7 127.0.0.1 203.0.113.7" in own
