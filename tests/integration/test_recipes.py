"""README's "Load testing with preforkd": every command block of the chapter
runs here against preforkd with the default configuration and nginx in front
of it (conf/nginx/front.conf), with the test's own ports and 1-second runs,
so that no recipe rots."""

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import SLOW, SOURCE_DIR, Server, get, wait_until

pytestmark = pytest.mark.skipif(not (shutil.which("wrk") and shutil.which("nginx")),
                                reason="needs wrk and nginx (scripts/deps test)")

README = pathlib.Path(SOURCE_DIR) / "README.md"


def chapter_blocks():
    text = README.read_text()
    start = text.index("## Load testing with preforkd\n")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def servers():
    """preforkd on conf/preforkd.conf (2 workers), nginx in front of it."""
    tmp = pathlib.Path(tempfile.mkdtemp())
    nginx = None
    try:
        conf = (pathlib.Path(SOURCE_DIR) / "conf" / "preforkd.conf").read_text()
        conf = conf.replace("root = www", f"root = {SOURCE_DIR}/conf/www")
        conf = re.sub(r"^listen = .*$", "", conf, flags=re.M)
        conf = re.sub(r"^access_log = .*$", "access_log = off", conf, flags=re.M)
        srv = Server(tmp / "srv", config=conf, workers=2)
        front_port = _free_port()
        front = (pathlib.Path(SOURCE_DIR) / "conf" / "nginx" / "front.conf").read_text()
        front = front.replace("127.0.0.1:8080", f"127.0.0.1:{srv.port}")
        front = front.replace("127.0.0.1:8081", f"127.0.0.1:{front_port}")
        (tmp / "nginx").mkdir()
        (tmp / "nginx" / "front.conf").write_text(front)
        nginx = subprocess.Popen(["nginx", "-e", "stderr", "-p", str(tmp / "nginx"), "-c",
                                  str(tmp / "nginx" / "front.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: _answers(front_port), timeout=20, what="nginx in front")
        try:
            yield srv, front_port
        finally:
            srv.stop()
            srv.reap_group()
        srv.check_clean()
    finally:
        if nginx:
            nginx.send_signal(signal.SIGQUIT)
            try:
                nginx.wait(timeout=20)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _answers(port):
    try:
        return get(port, "/echo").status == 200
    except OSError:
        return False


def test_the_chapter_has_its_recipes():
    blocks = chapter_blocks()
    assert len(blocks) >= 5, blocks
    assert any("scripts/serve" in b for b in blocks) and any("8081" in b for b in blocks)


@pytest.mark.parametrize("index", range(1, 5))
def test_recipe(servers, index):
    srv, front_port = servers
    blocks = chapter_blocks()
    block = blocks[index]
    script = (block.replace("127.0.0.1:8080", f"127.0.0.1:{srv.port}")
              .replace("127.0.0.1:8081", f"127.0.0.1:{front_port}")
              .replace("-d10s", "-d1s")
              .replace("$(pgrep -o -f 'preforkd --config conf/preforkd.conf')",
                       str(srv.proc.pid)))
    out = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=SOURCE_DIR,
                         capture_output=True, text=True, timeout=120 * SLOW)
    assert out.returncode == 0, (script, out.stdout, out.stderr)
    lines = out.stdout.strip().splitlines()
    assert lines, (script, out.stderr)
    if "mix.lua" in block:
        summaries = [json.loads(l) for l in lines if l.startswith("{")]
        assert len(summaries) == block.count("mix.lua"), out.stdout
        for s in summaries:
            assert s["requests"] > 0 and s["errors"]["connect"] == 0, s
        if "status=503" in block:
            assert set(summaries[0]["statuses"]) == {"200", "503"}, summaries[0]
    elif "us of CPU per request" in block:
        assert re.fullmatch(r"\d+ us of CPU per request", lines[-1]), out.stdout
    else:
        assert out.stdout.count("requests in") == block.count("wrk "), out.stdout
        assert "Socket errors" not in out.stdout and "Non-2xx" not in out.stdout, out.stdout
