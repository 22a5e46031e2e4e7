"""The command line: --version, --help, usage errors (exit 2 with one clear
line), configuration errors with FILE:LINE, --check, --signal through the pid
file, --root, --listen overriding the file, paths relative to the config."""

import json
import os
import re
import socket
import subprocess

import pytest

import conftest
from conftest import BIN, SOURCE_DIR, check_build_info, get, wait_until

DEFAULT_CONF = SOURCE_DIR / "conf" / "preforkd.conf"

OPTIONS = ["--config", "--listen", "--root", "--workers", "--threads", "--access-log",
           "--error-log", "--pid-file", "--check", "-t", "-T", "--signal", "--version", "--help"]


def run(*args, cwd=None, timeout=20):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def usage_error(p, *words):
    """Exit 2, one line on stderr naming every word, nothing on stdout."""
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("preforkd: "), p.stderr
    for w in words:
        assert w in lines[0], (w, p.stderr)
    assert p.stdout == ""
    return lines[0]


def server_settings():
    """Setting names of the [server] section of the default config, commented
    out or not."""
    names, section = [], None
    for line in DEFAULT_CONF.read_text().splitlines():
        line = line.strip()
        m = re.match(r"\[(.*)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r";?\s*([a-z_]+)\s*=", line)
        if section == "server" and m:
            names.append(m.group(1))
    return names


@pytest.fixture
def held_port():
    """A loopback port we listen on ourselves: nobody else can bind it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def write_conf(tmp_path, text, name="bad.conf"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- info ---------------------------------------------------------------------


def test_version():
    p = run("--version")
    assert p.returncode == 0
    assert re.fullmatch(r"preforkd \d+\.\d+\.\d+\n", p.stdout), p.stdout
    assert p.stderr == ""


def test_build_info_matches_the_linked_libraries():
    with open(BIN, "rb") as f:
        if f.read(4) != b"\x7fELF":  # scripts/valgrind's wrapper script
            pytest.skip(f"{BIN} is not the binary itself: ldd cannot read it")
    check_build_info(BIN)
    assert re.search(r"^  -V\s", run("--help").stdout, re.M)


def test_help_lists_every_option_and_setting():
    p = run("--help")
    assert p.returncode == 0, p.stderr
    for opt in OPTIONS:
        assert re.search(rf"(^|\s){re.escape(opt)}\b", p.stdout), opt
    names = server_settings()
    assert len(names) >= 20, names  # the default config shows them all
    for name in names:
        assert re.search(rf"^\s+{name}\s", p.stdout, re.M), f"--help does not list {name}"


def test_help_shows_the_real_defaults():
    # a setting without a value shows what that means: the error log is
    # stderr, not "-" (which as a value means stdout)
    p = run("--help")
    shown = dict(re.findall(r"^  (\w+) +(\S+) ", p.stdout, re.M))
    assert shown["error_log"] == "stderr"
    assert shown["listen"] == "127.0.0.1:8080"
    assert shown["pid_file"] == shown["user"] == "none"
    assert "-" not in shown.values(), shown


# ---- usage errors -------------------------------------------------------------


def test_unknown_option():
    usage_error(run("--bogus"), "--bogus")


def test_missing_option_value():
    usage_error(run("--workers"), "--workers")
    usage_error(run("--config"), "--config")


def test_bad_workers_value_names_the_flag():
    usage_error(run("--workers", "abc", "--check"), "--workers", "abc")


def test_stray_argument():
    usage_error(run("serve"), "serve")


def test_no_arguments_names_config():
    # nothing to serve without a configuration: say how to give one
    usage_error(run(), "--config", "--root")


def test_threads_has_no_short_letter(tmp_path):
    # -t is nginx's check now; pool threads are --threads only
    usage_error(run("-t", "4", "--root", tmp_path), '"4"')
    assert run("--threads", "4", "--root", tmp_path, "-t").returncode == 0


# ---- configuration errors -----------------------------------------------------


def test_unknown_setting_names_file_and_line(tmp_path):
    path = write_conf(tmp_path, "; comment\n[server]\nthreads = 2\nfrobnicate = 3\n")
    usage_error(run("--config", path, "--check"), f"{path}:4", "frobnicate")


def test_bad_value_names_setting_and_line(tmp_path):
    path = write_conf(tmp_path, "[server]\n\nmax_uri = 12q\n[route /]\nhandler = status\n")
    usage_error(run("--config", path, "--check"), f"{path}:3", "max_uri", "12q")


def test_unknown_section(tmp_path):
    path = write_conf(tmp_path, "[server]\nthreads = 2\n[bogus]\nx = 1\n")
    usage_error(run("--config", path, "--check"), f"{path}:", "bogus")


def test_route_without_handler(tmp_path):
    path = write_conf(tmp_path, f"[route /]\nhandler = status\n[route /api]\n"
                                f"mode = pool\n")
    line = usage_error(run("--config", path, "--check"), "/api", "handler")
    # like every configuration error, it points at the file and line
    assert re.search(rf"{re.escape(str(path))}:3\b", line), line


def test_static_route_with_missing_root(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    path = write_conf(tmp_path, f"[route /]\nhandler = static\nroot = {missing}\n")
    line = usage_error(run("--config", path, "--check"), str(missing))
    assert re.search(rf"{re.escape(str(path))}:[1-3]\b", line), line


def test_missing_config_file(tmp_path):
    p = run("--config", tmp_path / "absent.conf", "--check")
    usage_error(p, "absent.conf")


# ---- --check ------------------------------------------------------------------


def test_check_default_config_binds_nothing(held_port):
    p = run("--config", DEFAULT_CONF, "--check")
    assert p.returncode == 0, p.stderr
    assert "valid" in p.stdout
    # a port someone else holds: --check does not try to bind it
    p = run("--config", DEFAULT_CONF, "--check", "--listen", f"127.0.0.1:{held_port}")
    assert p.returncode == 0, p.stderr
    assert "valid" in p.stdout


def test_check_broken_config(tmp_path):
    path = write_conf(tmp_path, "[server]\nworkers = many\n[route /]\nhandler = status\n")
    usage_error(run("--config", path, "--check"), f"{path}:2", "workers")


START_FAILURES = {
    # name: (settings after the listen line, line at fault, words of the error)
    "access log folder": ("access_log = {tmp}/missing/access.log", 3,
                          "access_log: {tmp}/missing/access.log: No such file or directory"),
    "error log folder": ("error_log = {tmp}/missing/error.log", 3,
                         "error_log: {tmp}/missing/error.log: No such file or directory"),
    "unknown user": ("workers = 1\nuser = nosuchuser", 4, 'user: no user "nosuchuser"'),
    "unknown group": ("user = nobody\ngroup = nosuchgroup", 4, 'group: no group "nosuchgroup"'),
    # found in review: --check opened these as root, following the link
    "access log symlink": ("access_log = {tmp}/link.log", 3,
                           "access_log: {tmp}/link.log: a symbolic link: not followed for a log"),
    "access log FIFO": ("access_log = {tmp}/fifo.log", 3,
                        "access_log: {tmp}/fifo.log: not a regular file: not used as a log"),
    "unix socket folder": ("listen = unix:{tmp}/missing/s.sock", 3,
                           "listen: unix:{tmp}/missing/s.sock: {tmp}/missing: "
                           "No such file or directory"),
}


@pytest.mark.parametrize("case", START_FAILURES)
def test_check_fails_on_what_start_fails_on(tmp_path, case):
    """Defect 4: --check passed what a start then rejected (logs that cannot
    be opened, an unknown user or group, a unix socket in a folder that does
    not exist), and the user's error had no FILE:LINE. --check and a start
    run the same checks now: the same one line, with the file as given."""
    settings, line, words = (x.format(tmp=tmp_path) if isinstance(x, str) else x
                             for x in START_FAILURES[case])
    (tmp_path / "victim").write_text("root's\n")
    os.symlink(tmp_path / "victim", tmp_path / "link.log")
    os.mkfifo(tmp_path / "fifo.log")
    (tmp_path / "site.conf").write_text(f"[server]\nlisten = 127.0.0.1:0\n{settings}\n"
                                        f"[route /]\nhandler = status\n")
    check = usage_error(run("--config", "site.conf", "--check", cwd=tmp_path))
    assert check == f"preforkd: site.conf:{line}: {words}"
    start = usage_error(run("--config", "site.conf", cwd=tmp_path))
    assert start == check
    assert not (tmp_path / "missing").exists()


def test_check_leaves_no_log_file_behind(tmp_path):
    """Defect 4 (a guard of the fix): --check opens the log files as a start
    would, and removes those it had to create."""
    path = write_conf(tmp_path, f"[server]\naccess_log = {tmp_path}/access.log\n"
                                f"error_log = {tmp_path}/error.log\n[route /]\nhandler = status\n")
    p = run("--config", path, "--check")
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad.conf"]


ROUTE_ERRORS = [
    # (text, line, words)
    ("[route /]\nhandler = status\n[route /api]\n; the new API\nhandler = php\n", 5,
     '[route /api]: handler: unknown handler "php"'),
    ("[route /e]\nhandler = echo\n\nroot = www\n", 4,
     "[route /e]: root: not a setting of handler echo"),
    ("[route /s]\nhandler = sleep\nmode = inline\n", 3,
     "[route /s]: mode: the sleep handler runs on the pool"),
    ("[route /]\nhandler = static\nindex = home.html\nroot = nowhere\n", 4,
     "[route /]: root: {tmp}/nowhere: No such file or directory"),
]


@pytest.mark.parametrize("text,line,words", ROUTE_ERRORS,
                         ids=["handler", "root", "mode", "missing root"])
def test_route_errors_name_the_setting_line_and_the_file_as_given(tmp_path, text, line, words):
    """Config slip: a route's error named the line of its [route] header, not
    the setting's, and printed the config's absolute path where [server]
    errors print it as given on the command line."""
    (tmp_path / "site.conf").write_text(text)
    err = usage_error(run("--config", "site.conf", "--check", cwd=tmp_path))
    assert err == f"preforkd: site.conf:{line}: {words.format(tmp=tmp_path)}"


def test_shutdown_idle_timeout_over_keepalive_timeout_is_an_error(tmp_path):
    """Config slip: a shutdown_idle_timeout longer than keepalive_timeout
    passed silently (and was cut to keepalive_timeout). Set on purpose, it
    is a configuration error now; the default of 1 s just yields to a
    shorter keepalive_timeout."""
    path = write_conf(tmp_path, "[server]\nkeepalive_timeout = 2s\nshutdown_idle_timeout = 5s\n"
                                "[route /]\nhandler = status\n")
    usage_error(run("--config", path, "--check"), f"{path}:3: shutdown_idle_timeout",
                "keepalive_timeout")
    path = write_conf(tmp_path, "[server]\nkeepalive_timeout = 500ms\n[route /]\nhandler = status\n",
                      name="short.conf")
    assert run("--config", path, "--check").returncode == 0


def test_serving_on_a_held_port_fails_cleanly(held_port, tmp_path):
    """The same address without --check does try to bind, and says so."""
    p = run("--root", tmp_path, "--listen", f"127.0.0.1:{held_port}", "--workers", "1")
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert str(held_port) in p.stderr


def test_t_checks_like_check(tmp_path):
    p = run("-c", DEFAULT_CONF, "-t")
    assert p.returncode == 0, p.stderr
    assert "is valid" in p.stdout
    path = write_conf(tmp_path, "[server]\nworkers = none\n")
    usage_error(run("-t", "-c", path), f"{path}:2", "workers")


def test_T_prints_the_effective_configuration(tmp_path, site):
    path = write_conf(tmp_path, f"[server]\nheader_timeout = 1m30s\nthreads = 6\n"
                                f"listen = 127.0.0.1:9\n[route /]\nhandler = static\nroot = {site}\n"
                                f"[route = /ping]\nhandler = echo\nmethods = GET\n", "t.conf")
    p = run("-T", "-c", path)
    assert p.returncode == 0, p.stderr
    assert "is valid" in p.stderr  # stdout holds the configuration alone
    server = dict(re.findall(r"^(\w+) = (.*)$", p.stdout.split("[route")[0], re.M))
    # every setting of --help, with its value (defaults too; unset ones commented)
    for name in server_settings():
        assert name in server or re.search(rf"^; {name} = \(", p.stdout, re.M), name
    assert server["header_timeout"] == "90s" and server["threads"] == "6"
    assert server["listen"] == "127.0.0.1:9" and server["keepalive_timeout"] == "75s"
    assert re.search(r"^\[route /\]\n(;.*\n)?handler = static\nroot = ", p.stdout, re.M)
    assert "[route = /ping]\n" in p.stdout and "methods = GET\n" in p.stdout
    # it reads back as a valid configuration
    again = write_conf(tmp_path, p.stdout, "again.conf")
    q = run("-T", "-c", again)
    assert q.returncode == 0, q.stderr
    assert q.stdout.split("\n", 1)[1] == p.stdout.split("\n", 1)[1]


def test_T_prints_unix_paths_absolute(tmp_path, site):
    # relative unix paths are the config file's folder's: -T shows where
    path = write_conf(tmp_path, f"[server]\nlisten = unix:app.sock\nadmin_listen = unix:admin.sock\n"
                                f"[route /]\nhandler = static\nroot = {site}\n", "u.conf")
    p = run("-T", "-c", path)
    assert p.returncode == 0, p.stderr
    assert f"\nlisten = unix:{tmp_path}/app.sock\n" in p.stdout, p.stdout
    assert f"\nadmin_listen = unix:{tmp_path}/admin.sock\n" in p.stdout, p.stdout


def test_T_on_a_broken_configuration_prints_nothing(tmp_path):
    path = write_conf(tmp_path, "[server]\nmax_uri = 12q\n")
    usage_error(run("-T", "-c", path), "max_uri")


def test_durations_in_parts(tmp_path, site):
    path = write_conf(tmp_path, f"[server]\nshutdown_timeout = 1m30s\nworker_timeout = 1h2m\n"
                                f"[route /]\nhandler = static\nroot = {site}\n")
    p = run("-T", "-c", path)
    assert p.returncode == 0, p.stderr
    assert "shutdown_timeout = 90s\n" in p.stdout and "worker_timeout = 62m\n" in p.stdout


# ---- --signal -----------------------------------------------------------------


def test_signal_without_pid_file(tmp_path):
    p = run("--signal", "reopen")
    assert p.returncode != 0
    assert "pid_file" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_signal_with_bad_name():
    line = usage_error(run("--signal", "explode", "--pid-file", "/nonexistent.pid"), "explode")
    assert "ttin or ttou" in line


def test_signal_ttin_and_ttou_through_pid_file(make_server, site, tmp_path):
    pid_file = tmp_path / "preforkd.pid"
    conf = tmp_path / "sig.conf"
    conf.write_text(f"[server]\npid_file = {pid_file}\n[route /]\nhandler = static\nroot = {site}\n")
    srv = make_server(args=["--config", str(conf)], workers=1)
    assert run("--config", conf, "--signal", "ttin").returncode == 0
    wait_until(lambda: "SIGTTIN: 2 worker(s)" in srv.log(), what="a second worker")
    wait_until(lambda: len(srv.workers()) == 2, what="two workers")
    assert run("--config", conf, "--signal", "ttou").returncode == 0
    wait_until(lambda: "SIGTTOU: 1 worker(s)" in srv.log(), what="one worker less")
    assert get(srv.port, "/hello.txt").status == 200


def test_signal_reopen_and_quit_through_pid_file(make_server, site, tmp_path):
    pid_file = tmp_path / "preforkd.pid"
    access = tmp_path / "access.log"
    conf = tmp_path / "sig.conf"
    conf.write_text(f"[server]\npid_file = {pid_file}\naccess_log = {access}\n"
                    f"[route /]\nhandler = static\nroot = {site}\n")
    srv = make_server(args=["--config", str(conf)])
    assert pid_file.read_text().strip() == str(srv.proc.pid)

    # reopen: the access log moves away; after the signal a new file is written
    assert get(srv.port, "/hello.txt").status == 200
    wait_until(lambda: access.exists() and "/hello.txt" in access.read_text(), timeout=10,
               what="the access log line")
    access.rename(tmp_path / "access.log.1")
    p = run("--config", conf, "--signal", "reopen")
    assert p.returncode == 0, p.stderr

    def logged_in_new_file():
        get(srv.port, "/style.css")
        return access.exists() and "/style.css" in access.read_text()
    wait_until(logged_in_new_file, timeout=10, interval=0.3, what="a reopened access log")
    assert srv.proc.poll() is None

    # quit: a graceful stop; the pid file goes away
    with srv.connect() as busy:
        busy.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        busy.settimeout(10)
        assert conftest.Reader(busy).response().status == 200
        p = run("--config", conf, "--signal", "quit")
        assert p.returncode == 0, p.stderr
        srv.proc.wait(timeout=30)
    assert srv.proc.returncode == 0
    assert not pid_file.exists()
    assert "graceful stop" in srv.log()


@pytest.mark.parametrize("content", ["", "12x\n", "0\n", "-5\n", "123\n456\n"])
def test_signal_with_a_pid_file_that_names_no_master(tmp_path, content):
    pid_file = tmp_path / "stale.pid"
    pid_file.write_text(content)
    p = run("--pid-file", pid_file, "--signal", "quit")
    assert p.returncode == 1
    assert str(pid_file) in p.stderr and "no pid in it" in p.stderr


def test_signal_without_a_pid_file_is_a_usage_error(tmp_path):
    p = run("--root", tmp_path, "--signal", "reload")
    assert p.returncode == 2
    assert "--signal needs pid_file" in p.stderr


# ---- what gets served ---------------------------------------------------------


def test_root_alone_serves_that_folder(make_server, site):
    srv = make_server(args=["--root", str(site)])
    assert get(srv.port, "/hello.txt").body == b"Hello, World!"
    assert get(srv.port, "/").body == b"<h1>index</h1>\n"


def test_listen_flag_replaces_the_config_listen(make_server, site, held_port):
    # were the file's address used too, binding it would fail
    srv = make_server(config=f"[server]\nlisten = 127.0.0.1:{held_port}\n"
                             f"[route /]\nhandler = static\nroot = {site}\n")
    assert len(srv.addresses) == 1
    assert srv.addresses[0] != f"127.0.0.1:{held_port}"
    assert get(srv.port, "/hello.txt").body == b"Hello, World!"


def test_relative_root_resolves_against_the_config_folder(make_server, tmp_path, monkeypatch):
    cfg_dir = tmp_path / "cfgsite"
    (cfg_dir / "www").mkdir(parents=True)
    (cfg_dir / "www" / "which.txt").write_text("next to the config\n")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "www").mkdir(parents=True)
    (elsewhere / "www" / "which.txt").write_text("current directory\n")
    monkeypatch.setattr(conftest, "BIN", os.path.abspath(conftest.BIN))
    monkeypatch.chdir(elsewhere)
    srv = make_server(config="[route /]\nhandler = static\nroot = www\n", name="cfgsite")
    assert get(srv.port, "/which.txt").body == b"next to the config\n"


def test_default_config_serves_its_site_and_status(make_server):
    srv = make_server(args=["--config", str(DEFAULT_CONF)])
    r = get(srv.port, "/")
    assert r.status == 200
    assert r.body == (SOURCE_DIR / "conf" / "www" / "index.html").read_bytes()
    assert r.header("content-type") == "text/html; charset=utf-8"
    r = get(srv.port, "/status")
    assert r.status == 200
    workers = json.loads(r.body)["workers"]
    assert len(workers) == 1 and workers[0]["pid"] in srv.workers()
    assert workers[0]["requests"] >= 1
    r = get(srv.port, "/sleep?ms=20")
    assert r.body == b"slept 20 ms\n"
    # access_log = - : requests show on stdout
    wait_until(lambda: "GET / " in srv.access_log() or '"GET / HTTP' in srv.access_log(),
               timeout=10, what="the access log on stdout")
