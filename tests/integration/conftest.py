"""Shared harness for the integration tests: start the real preforkd binary on
an ephemeral loopback port, talk to it over raw sockets, stop it and check that
it exited cleanly (no sanitizer reports, no crashed workers)."""

import os
import pathlib
import re
import resource
import shutil
import signal as signals
import socket
import subprocess
import tempfile
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SOURCE_DIR = pathlib.Path(os.environ.get("PREFORKD_SOURCE_DIR", HERE.parent.parent))


def _find_binary():
    if os.environ.get("PREFORKD_BIN"):
        return os.environ["PREFORKD_BIN"]
    for cand in ("build-asan/preforkd", "build/preforkd"):
        p = SOURCE_DIR / cand
        if p.exists():
            return str(p)
    raise RuntimeError("preforkd binary not found: set PREFORKD_BIN")


BIN = _find_binary()

# scripts/valgrind runs every server under memcheck: 20-50 times slower
SLOW = 10 if os.environ.get("PREFORKD_UNDER_VALGRIND") else 1


_BASETEMP = None


def pytest_configure(config):
    config.addinivalue_line("markers", "timing: asserts latencies or timeouts that a server "
                                       "under valgrind cannot meet (scripts/valgrind skips them)")
    # tmp_path folders go in a folder of this run, removed at its end (pytest
    # would keep the last three runs' in /tmp/pytest-of-USER); short, so that
    # unix socket paths in it stay under their 108 bytes
    global _BASETEMP
    if not config.option.basetemp:
        _BASETEMP = tempfile.mkdtemp(prefix=f"preforkd-pytest-{os.getpid()}-")
        config.option.basetemp = _BASETEMP


def pytest_unconfigure(config):
    if _BASETEMP:
        shutil.rmtree(_BASETEMP, ignore_errors=True)

# What a test run makes in /tmp outside pytest's own folder carries this
# run's pid in its name, so that the check below can tell it from what other
# test runs on the machine make at the same time. tempfile's default prefix
# is set to it: a bare tempfile.mkdtemp() is tagged too.
TMP_TAG = f"preforkd-test-{os.getpid()}-"
tempfile.template = TMP_TAG


@pytest.fixture(scope="session", autouse=True)
def nothing_left_in_tmp():
    """A test run leaves nothing in /tmp (pytest-of-* is pytest's own)."""
    top = tempfile.gettempdir()
    before = set(os.listdir(top))
    yield
    left = sorted(n for n in set(os.listdir(top)) - before if n.startswith(TMP_TAG))
    for name in left:
        shutil.rmtree(os.path.join(top, name), ignore_errors=True)
    assert not left, f"the tests left {left} in {top} (removed now)"


@pytest.fixture
def open_tmp():
    """A folder that users other than root can reach, for tests whose workers
    run as nobody (pytest's tmp_path lies under a folder only root may
    enter). Removed at the end of the test."""
    path = pathlib.Path(tempfile.mkdtemp())
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# What a clean run never prints.
BAD_LOG = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|killed by signal|"
                     r"exited with status [1-9]")


class Server:
    """One preforkd process tree (master and workers)."""

    def __init__(self, tmp, config=None, args=(), workers=1, env=None, listen=True, error_log=None,
                 cpus=None, nofile=None, stdout=None, wrapper=(), pass_fds=()):
        self.tmp = pathlib.Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.errlog = self.tmp / "error.log"  # stderr
        self.error_log = pathlib.Path(error_log) if error_log else None  # error_log setting
        self.outlog = self.tmp / "stdout.log"
        # wrapper: a command that execs the rest (same pid), e.g. to play
        # systemd's part in socket activation (test_systemd.py)
        cmd = [*wrapper, BIN]
        if config is not None:
            conf = self.tmp / "preforkd.conf"
            conf.write_text(config)
            cmd += ["--config", str(conf)]
        if listen:
            cmd += ["--listen", "127.0.0.1:0"]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        cmd += list(args)
        self.cmd = cmd
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._err = open(self.errlog, "wb")
        # stdout: a file (outlog) unless the test gives its own (a pipe...)
        self._out = open(self.outlog, "wb") if stdout is None else None
        def before_exec():
            if cpus:
                os.sched_setaffinity(0, cpus)
            if nofile:  # a number (soft = hard) or a (soft, hard) pair
                pair = nofile if isinstance(nofile, tuple) else (nofile, nofile)
                resource.setrlimit(resource.RLIMIT_NOFILE, pair)

        self.addresses = []
        self.expect_dirty = False  # a test that crashes workers on purpose sets this
        self.proc = subprocess.Popen(cmd, stdout=self._out or stdout, stderr=self._err, env=full_env,
                                     start_new_session=True, pass_fds=pass_fds,
                                     preexec_fn=before_exec if cpus or nofile else None)
        try:
            self._wait_ready()
        except Exception:
            # a server that never got ready must not outlive the test (the
            # group is gone already when the master gave up by itself)
            try:
                os.killpg(self.proc.pid, signals.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self._close_files()
            raise

    def _wait_ready(self, timeout=15 * SLOW):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if "master started" in text:
                # [^\s"]: an address in a JSON error line ends at its quote
                self.addresses = re.findall(r'listening on ([^\s"]+)', text)
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"preforkd exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.02)
        else:
            raise RuntimeError("preforkd did not start:\n" + self.log())
        tcp = [a for a in self.addresses if a.startswith("127.0.0.1:")]
        if tcp:
            self.port = int(tcp[0].rsplit(":", 1)[1])
            # the worker is ready when it answers
            wait_until(lambda: self._answers(), timeout=deadline - time.monotonic(),
                       what="the worker to answer")

    def _answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1")
        except OSError:
            return False

    def log(self):
        text = self.errlog.read_text(errors="replace")
        if self.error_log and self.error_log.exists():
            text += self.error_log.read_text(errors="replace")
        return text

    def access_log(self):
        return self.outlog.read_text(errors="replace")

    def workers(self):
        """Pids of the worker processes (children of the master)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def connect(self, timeout=10 * SLOW):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signals.SIGTERM, timeout=30 * SLOW):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signals.SIGKILL)
                self.proc.wait()
                raise AssertionError("preforkd did not stop in time:\n" + self.log())
        self._close_files()
        return self.proc.returncode

    def _close_files(self):
        self._err.close()
        if self._out:
            self._out.close()

    def group_alive(self):
        """Pids of the server's process group still running (zombies left
        out: who reaps orphans is up to the machine's init)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid and fields[0] != "Z":
                pids.append(int(entry))
        return pids

    def reap_group(self, timeout=5 * SLOW):
        """Whatever is left of the server's process group once the master
        has exited (an upgraded master, orphaned workers): waited for a
        moment, then killed by pid. Returns whether any was left."""
        deadline = time.monotonic() + timeout
        while self.group_alive():
            if time.monotonic() > deadline:
                for pid in self.group_alive():
                    try:
                        os.kill(pid, signals.SIGKILL)
                    except ProcessLookupError:
                        pass
                return True
            time.sleep(0.05)
        return False

    def check_clean(self):
        """The run left no trace of a crash, leak or undefined behaviour."""
        text = self.log()
        if not self.expect_dirty:
            bad = BAD_LOG.search(text)
            assert bad is None, f"unclean run ({bad.group(0)}):\n{text[-6000:]}"
            assert self.proc.returncode == 0, f"exit status {self.proc.returncode}:\n{text[-4000:]}"


def alive(pid):
    """Whether pid runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def workers_status(port):
    """The per-worker slots of /status (the route must be there)."""
    import json
    return json.loads(get(port, "/status").body)["workers"]


def ldd(binary):
    """{soname: path} of the shared libraries the dynamic linker loads for
    binary."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"^\s*(\S+) => (\S+) \(", out, re.M))


def check_build_info(binary):
    """preforkd -V against the binary: the version line of --version, then
    the commit, build and compiler, and for each library the version
    running, the one built against and the files it was loaded from, which
    must be the ones ldd lists. Returns the lines as {name: value}."""
    p = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0 and p.stderr == "", p
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    first, *rest = p.stdout.splitlines()
    assert first + "\n" == version
    info = dict(line.split(": ", 1) for line in rest)
    assert set(info) == {"commit", "build", "compiler", "libevent", "http-parser", "inih",
                         "zlib", "libdeflate", "libsystemd", "glibc"}, p.stdout
    assert re.fullmatch(r"unknown|(v?\d[\w.]*-\d+-g)?[0-9a-f]{7,}(-dirty)?", info["commit"]), info
    assert re.match(r"(Release|RelWithDebInfo|Debug|MinSizeRel|None)\b", info["build"]), info
    assert re.fullmatch(r"(GNU|Clang) \d+\.\d+\S*", info["compiler"]), info

    libs = ldd(binary)
    files = {}
    for name in ("libevent", "http-parser", "inih", "zlib", "libdeflate", "libsystemd", "glibc"):
        m = re.fullmatch(r"(\S+)(?:, built against (\S+)| at build time \(.*\)); (.+)", info[name])
        assert m, info[name]
        running, built, paths = m.group(1), m.group(2), m.group(3).split()
        if built:
            assert running == built or name == "glibc", info[name]  # Debian: the same
        for path in paths:
            assert path in libs.values(), (path, libs)
        files[name] = [os.path.basename(p) for p in paths]
        files[name + " version"] = running
    # the sonames ldd lists are the ones -V names, and their versions agree
    for soname in libs:
        for prefix, name in (("libevent_core", "libevent"), ("libevent_pthreads", "libevent"),
                             ("libhttp_parser", "http-parser"), ("libinih", "inih"),
                             ("libz.", "zlib"), ("libdeflate.", "libdeflate"),
                             ("libsystemd.", "libsystemd")):
            if soname.startswith(prefix):
                assert soname in files[name], (soname, info[name])
    core = next(f for f in files["libevent"] if f.startswith("libevent_core-"))
    assert files["libevent version"].startswith(re.search(r"-(\d+\.\d+)\.so", core).group(1) + ".")
    hp = files["http-parser"][0]
    assert files["http-parser version"].startswith(re.search(r"\.so\.(\d+\.\d+)", hp).group(1) + ".")
    return info


def worker_of(sock, workers):
    """The worker pid holding the server side of a client socket (via ss)."""
    cport = sock.getsockname()[1]
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( dport = :{cport} )"],
                         capture_output=True, text=True).stdout
    pids = [int(p) for p in re.findall(r"pid=(\d+)", out)]
    return next(p for p in pids if p in workers)


_fault_handler = None


def has_fault_handler():
    """Whether the binary has the test-only fault handler (scripts/test builds
    with PREFORKD_FAULT_HANDLER; scripts/valgrind and Release builds do not).
    Asked once, with --check of a configuration that uses it."""
    global _fault_handler
    if _fault_handler is None:
        import tempfile
        with tempfile.TemporaryDirectory(prefix=TMP_TAG + "fault-") as d:
            cfg = pathlib.Path(d) / "fault.conf"
            cfg.write_text("[route /f]\nhandler = fault\n")
            _fault_handler = subprocess.run([BIN, "--config", str(cfg), "--check"],
                                            capture_output=True).returncode == 0
    return _fault_handler


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def make_server(tmp_path):
    """make_server(config=None, args=(), workers=1) -> a started Server.
    Every server is stopped gracefully at the end and must exit cleanly."""
    servers = []

    def make(config=None, args=(), workers=1, env=None, name=None, error_log=None, listen=True,
             cpus=None, nofile=None, stdout=None, wrapper=(), pass_fds=()):
        srv = Server(tmp_path / (name or f"srv{len(servers)}"), config=config, args=args,
                     workers=workers, env=env, error_log=error_log, listen=listen, cpus=cpus,
                     nofile=nofile, stdout=stdout, wrapper=wrapper, pass_fds=pass_fds)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()
    left = [srv.tmp.name for srv in servers if srv.reap_group()]
    for srv in servers:
        srv.check_clean()
    assert not left, f"processes of {left} outlived their master (killed now)"


@pytest.fixture
def site(tmp_path):
    """A document root with a few files."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<h1>index</h1>\n")
    (root / "hello.txt").write_text("Hello, World!")
    (root / "style.css").write_text("body { color: red }\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "dir").mkdir()
    (root / "dir" / "index.html").write_text("dir index\n")
    (root / "noindex").mkdir()
    (root / "noindex" / "a.txt").write_text("a\n")
    (root / "big.bin").write_bytes(os.urandom(1 << 20))
    return root


@pytest.fixture
def static_server(make_server, site):
    return make_server(args=["--root", str(site)])


# ---- raw HTTP over sockets --------------------------------------------------


class Response:
    def __init__(self, status, reason, version, headers, body):
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers  # list of (lowercase name, value)
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:80]!r}>"


class Reader:
    """Reads responses off a socket, keeping what arrives beyond each one."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()  # appends are amortized O(1): big bodies stay cheap
        self.eof = False

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise EOFError("connection closed")
        self.buf += data

    def _line(self):
        while (i := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def response(self, head=False):
        """One response; head=True for an answer to HEAD (no body)."""
        status_line = self._line()
        m = re.match(rb"HTTP/(1\.[01]) (\d{3}) ?(.*)", status_line)
        assert m, f"bad status line {status_line!r}"
        version, status, reason = m.group(1).decode(), int(m.group(2)), m.group(3).decode()
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, v = line.split(b":", 1)
            headers.append((k.decode().lower(), v.strip().decode("latin-1")))
        r = Response(status, reason, version, headers, b"")
        if status < 200:
            return r
        if head or status in (204, 304):
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te:
            assert te.lower() == "chunked", te
            body = bytearray()  # appends stay linear for bodies of many MiB
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                assert self._exact(2) == b"\r\n"
            r.body = bytes(body)
        elif cl is not None:
            r.body = self._exact(int(cl))
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            r.body = bytes(self.buf)
            self.buf = bytearray()
        return r

    def closed(self, timeout=5):
        """True when the server closes the connection (no more bytes)."""
        self.sock.settimeout(timeout)
        if self.buf:
            return False
        try:
            data = self.sock.recv(1)
        except ConnectionResetError:
            return True
        return data == b""


def request(port, raw, head=False, timeout=10 * SLOW):
    """Sends raw bytes on a new connection and reads one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        return Reader(s).response(head=head)


def get(port, path, headers=(), method="GET", version="1.1", body=b""):
    lines = [f"{method} {path} HTTP/{version}", "Host: localhost", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return request(port, raw, head=(method == "HEAD"))
