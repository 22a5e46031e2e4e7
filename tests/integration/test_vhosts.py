"""Virtual hosts: routes that name the hosts they serve (hosts = ...), so
[route /] may repeat for several sites; the Host header (port, case and a
trailing dot ignored) picks them; routes without hosts serve every other
host, or with unknown_host = 421 no other host is served."""
import subprocess

from conftest import BIN, request


def site(tmp_path, name):
    root = tmp_path / name
    root.mkdir()
    (root / "index.html").write_text(f"{name}\n")
    (root / "only.txt").write_text(f"only {name}\n")
    return root


def conf(tmp_path, extra=""):
    if not (tmp_path / "a").exists():
        for name in ("a", "b", "default"):
            site(tmp_path, name)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "default"
    return (f"[server]\n{extra}\n"
            f"[route /]\nhandler = static\nroot = {a}\nhosts = a.example www.a.example\n"
            f"[route /]\nhandler = static\nroot = {b}\nhosts = *.b.example\n"
            f"[route /]\nhandler = static\nroot = {c}\n"
            f"[route = /only.txt]\nhandler = static\nroot = {a}\nhosts = a.example\n")


def host_get(port, host, path="/"):
    raw = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    return request(port, raw)


def test_the_host_picks_the_site(make_server, tmp_path):
    srv = make_server(config=conf(tmp_path))
    cases = {"a.example": b"a\n", "A.Example:8080": b"a\n", "www.a.example.": b"a\n",
             "x.b.example": b"b\n", "deep.x.b.example": b"b\n",
             "b.example": b"default\n",  # *.b.example is below it, not it
             "other.example": b"default\n", "127.0.0.1": b"default\n", "[::1]:80": b"default\n"}
    for host, body in cases.items():
        r = host_get(srv.port, host)
        assert r.status == 200 and r.body == body, (host, r)
    # an exact route of one host: its own file there, the site's route elsewhere
    assert host_get(srv.port, "a.example", "/only.txt").body == b"only a\n"
    assert host_get(srv.port, "x.b.example", "/only.txt").body == b"only b\n"


def test_unknown_host_421(make_server, tmp_path):
    srv = make_server(config=conf(tmp_path, "unknown_host = 421").replace(
        f"[route /]\nhandler = static\nroot = {tmp_path / 'default'}\n", ""))
    assert host_get(srv.port, "a.example").status == 200
    r = host_get(srv.port, "elsewhere.example")
    assert r.status == 421


def test_hosts_are_checked(tmp_path):
    bad = conf(tmp_path) + "[route /x]\nhandler = static\nroot = /tmp\nhosts = bad_name!\n"
    path = tmp_path / "bad.conf"
    path.write_text(bad)
    out = subprocess.run([BIN, "--check", "--config", str(path)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "hosts" in out.stderr and "bad_name!" in out.stderr
    # the same path and hosts twice is still a mistake
    path.write_text(conf(tmp_path) +
                    f"[route /]\nhandler = static\nroot = {tmp_path}\nhosts = a.example www.a.example\n")
    out = subprocess.run([BIN, "--check", "--config", str(path)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "defined twice" in out.stderr, out.stderr
    path.write_text(conf(tmp_path, "unknown_host = maybe"))
    out = subprocess.run([BIN, "--check", "--config", str(path)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "unknown_host" in out.stderr
    path.unlink()
