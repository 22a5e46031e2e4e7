"""The Debian package (scripts/package, conf/debian): built once for this
file with Debian's tools, unpacked with dpkg-deb -x into a temporary root;
its layout, control files, systemd unit and logrotate file are checked,
lintian finds no error, and the unpacked binary serves the unpacked default
site with the unpacked configuration (its paths moved into the root). -V of
the packaged binary agrees with ldd.

The build is a Release build of its own, kept in the test build's folder
(build-asan/package) so that a second run rebuilds only what changed."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

import conftest
from conftest import BIN, SOURCE_DIR, check_build_info, get, wait_until

TOOLS = ("dpkg-buildpackage", "dh", "dpkg-deb", "dpkg-parsechangelog", "lintian", "ldd")
CONF = "etc/preforkd/preforkd.conf"
SITE = "usr/share/preforkd/www"
LOGS = "var/log/preforkd"


class Package:
    def __init__(self, out, root, tmp):
        self.out = out  # the folder with the .deb files and the .changes
        self.tmp = tmp  # TMPDIR of the tools
        self.root = root  # preforkd_*.deb unpacked
        [self.deb] = out.glob("preforkd_*.deb")
        [self.changes] = out.glob("preforkd_*.changes")

    def field(self, name, deb=None):
        return subprocess.run(["dpkg-deb", "-f", deb or self.deb, name], capture_output=True,
                              text=True, check=True).stdout.strip()

    def control_file(self, name):
        return subprocess.run(["dpkg-deb", "-I", self.deb, name], capture_output=True,
                              text=True, check=True).stdout

    def files(self, deb):
        out = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                             check=True).stdout
        # "MODE OWNER SIZE DATE TIME ./PATH[ -> TARGET]"
        return [line.split(None, 5)[5].split(" -> ")[0].lstrip(".") for line in out.splitlines()]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"packaging tools missing: {', '.join(missing)} "
                    f"(scripts/deps package installs them)")
    tmp = tmp_path_factory.mktemp("package")
    build = pathlib.Path(BIN).resolve().parent
    out = build / "package" if (build / "CMakeCache.txt").exists() else tmp / "out"
    env = dict(os.environ, TMPDIR=str(tmp), DEB_BUILD_OPTIONS="noddebs")
    p = subprocess.run([SOURCE_DIR / "scripts" / "package", "--no-lintian", out], env=env,
                       capture_output=True, text=True, timeout=540)
    assert p.returncode == 0, p.stdout + p.stderr
    root = tmp / "root"
    [deb] = out.glob("preforkd_*.deb")
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return Package(out, root, tmp)


# ---- what the package holds ---------------------------------------------------


def test_layout(package):
    root = package.root
    binary = root / "usr/sbin/preforkd"
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert (root / CONF).is_file()
    assert (root / SITE / "index.html").read_bytes() == \
        (SOURCE_DIR / "conf/www/index.html").read_bytes()
    assert (root / LOGS).is_dir()
    for f in ("lib/systemd/system/preforkd.service", "etc/logrotate.d/preforkd",
              "usr/share/man/man8/preforkd.8.gz", "usr/share/doc/preforkd/copyright",
              "usr/share/doc/preforkd/README.md.gz"):
        assert (root / f).is_file(), f
    assert "Expat" in (root / "usr/share/doc/preforkd/copyright").read_text()
    # the library is in packages of its own, as Debian splits them
    lib = package.files(next(package.out.glob("libpreforkd0_*.deb")))
    assert any(re.search(r"/usr/lib/[^/]+/libpreforkd\.so\.0", f) for f in lib), lib
    dev = package.files(next(package.out.glob("libpreforkd-dev_*.deb")))
    for want in (r"/usr/include/preforkd\.h", r"/usr/lib/[^/]+/libpreforkd\.a",
                 r"/usr/lib/[^/]+/libpreforkd\.so$", r"/usr/lib/[^/]+/pkgconfig/preforkd\.pc"):
        assert any(re.search(want, f) for f in dev), (want, dev)


def test_control_fields(package):
    assert package.field("Package") == "preforkd"
    version = re.search(r"^project\(preforkd VERSION ([\d.]+)",
                        (SOURCE_DIR / "CMakeLists.txt").read_text(), re.M).group(1)
    assert package.field("Version").split("-")[0] == version
    depends = package.field("Depends")
    # from dpkg-shlibdeps: the libraries the binary is linked with
    for lib in ("libevent-core-2.1", "libevent-pthreads-2.1", "libhttp-parser", "libinih",
                "libsystemd0", "libdeflate0", "libc6", "adduser"):
        assert lib in depends, (lib, depends)
    assert package.control_file("conffiles").split() == ["/etc/logrotate.d/preforkd",
                                                         "/" + CONF]


def test_maintainer_scripts(package):
    postinst = package.control_file("postinst")
    # the system user exists before the service starts
    assert re.search(r"adduser --system .*preforkd", postinst.replace("\\\n", " "))
    assert postinst.index("adduser") < postinst.index("deb-systemd-invoke")
    # enabled everywhere, started only where systemd runs
    assert "deb-systemd-helper enable 'preforkd.service'" in postinst
    start = postinst[postinst.index("if [ -d /run/systemd/system ]"):]
    assert "deb-systemd-invoke" in start


def test_production_configuration(package):
    text = (package.root / CONF).read_text()
    settings = re.findall(r"^(\w+)\s*=\s*(\S+)", text, re.M)
    server = dict(settings)
    assert server["user"] == "preforkd"
    assert server["access_log"].startswith("/" + LOGS + "/")
    assert server["error_log"].startswith("/" + LOGS + "/")
    # the default site only: no demo or diagnostic endpoints
    assert re.findall(r"^\[route (\S+)\]", text, re.M) == ["/"]
    assert [v for k, v in settings if k == "handler"] == ["static"]
    assert server["root"] == "/" + SITE


def test_systemd_unit(package):
    unit = (package.root / "lib/systemd/system/preforkd.service").read_text()
    lines = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    # sd_notify: READY=1 once serving; the new master of an upgrade says
    # MAINPID=, hence all
    assert lines["Type"] == "notify"
    assert lines["NotifyAccess"] == "all"
    assert lines["ExecStart"] == "/usr/sbin/preforkd --config /" + CONF
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit, re.M)
    # SIGTERM to the master alone: its graceful stop, which it escalates
    assert lines["KillSignal"] == "SIGTERM" and lines["KillMode"] == "mixed"
    # the stop timeout leaves room for shutdown_timeout (30 s) and the grace
    assert int(lines["TimeoutStopSec"].rstrip("s")) > 33
    assert re.search(r"^#WatchdogSec=", unit, re.M)
    assert lines["WantedBy"] == "multi-user.target"


def test_logrotate_signals_the_reopen(package):
    """README: SIGUSR1 makes the master and every worker reopen their logs;
    the pid file logrotate reads is the configuration's."""
    rotate = (package.root / "etc/logrotate.d/preforkd").read_text()
    assert rotate.startswith(f"/{LOGS}/*.log {{")
    script = re.search(r"postrotate\n(.*?)endscript", rotate, re.S).group(1)
    pid_file = re.search(r"^pid_file\s*=\s*(\S+)", (package.root / CONF).read_text(), re.M)[1]
    assert re.search(rf'kill -USR1 "\$\(cat {re.escape(pid_file)}\)"', script), script
    assert re.search(r"\| `SIGUSR1` \| reopen logs \|", (SOURCE_DIR / "README.md").read_text())
    assert "nocreate" in rotate  # the master makes the new files for the workers' user


def test_man_page(package):
    page = package.root / "usr/share/man/man8/preforkd.8.gz"
    p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", page],
                       capture_output=True, text=True, env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert p.returncode == 0 and p.stderr == "", p.stderr
    text = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                          env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")).stdout
    for section in ("SYNOPSIS", "OPTIONS", "SIGNALS", "CONFIGURATION", "FILES"):
        assert re.search(rf"^{section}$", text, re.M), section
    assert "/" + CONF in text and "README.md" in text


def test_lintian_reports_no_error(package):
    p = subprocess.run(["lintian", "--fail-on", "none", package.changes], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, TMPDIR=str(package.tmp)))
    assert p.returncode == 0, p.stderr
    tags = [line for line in p.stdout.splitlines() if re.match(r"[EWIPXO]: ", line)]
    errors = [line for line in tags if line.startswith("E: ")]
    assert not errors, "\n".join(tags)
    print("lintian:", *tags, sep="\n  ")


# ---- the unpacked binary ------------------------------------------------------


def test_build_info_of_the_packaged_binary(package):
    info = check_build_info(str(package.root / "usr/sbin/preforkd"))
    assert info["build"] == "Release"
    if shutil.which("git") and (SOURCE_DIR / ".git").exists():
        head = subprocess.run(["git", "-C", SOURCE_DIR, "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        commit = re.search(r"(?:^|-g)([0-9a-f]{12})(?:-dirty)?$", info["commit"])
        assert commit and head.startswith(commit.group(1)), (info["commit"], head)


def test_serves_the_default_site(package, make_server, monkeypatch):
    """The unpacked configuration with its paths moved into the temporary
    root and its user line left out (no user switch here); --listen takes
    a free loopback port instead of port 80."""
    root = package.root
    conf = root / CONF
    text = conf.read_text()
    for path in ("/" + SITE, "/" + LOGS, "/run/"):
        text = text.replace(path, str(root) + path)
    text = re.sub(r"^user\s*=.*\n", "", text, flags=re.M)
    (root / "run").mkdir(exist_ok=True)
    conf.write_text(text)
    monkeypatch.setattr(conftest, "BIN", str(root / "usr/sbin/preforkd"))
    srv = make_server(args=["--config", str(conf)], error_log=root / LOGS / "error.log")
    assert (root / "run/preforkd.pid").read_text().strip() == str(srv.proc.pid)
    r = get(srv.port, "/")
    assert r.status == 200
    assert r.body == (root / SITE / "index.html").read_bytes()
    assert r.header("content-type") == "text/html; charset=utf-8"
    for path in ("/status", "/sleep?ms=1", "/echo"):
        assert get(srv.port, path).status == 404, path
    access = root / LOGS / "access.log"
    wait_until(lambda: access.exists() and '"GET / HTTP/1.1" 200' in access.read_text(),
               timeout=10, what="the access log line")
    assert "master started" in (root / LOGS / "error.log").read_text()
