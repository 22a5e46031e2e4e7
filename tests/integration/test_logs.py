"""Logs and identity: the access log in nginx's combined format (buffered,
flushed within a second, untrusted text escaped), access_log = off, the error
log file, log_level, and the Server header (server_name)."""

import re
import signal
import socket
import subprocess

from conftest import BIN, Reader, get, request, wait_until

COMBINED = re.compile(r'^(\S+) - - \[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "(.*?)" '
                      r'(\d{3}) (\d+) "(.*?)" "(.*?)" (\d+\.\d{3})$')


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
