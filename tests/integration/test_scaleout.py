"""Several preforkd hosts behind nginx and behind HAProxy, each host in a
network namespace of its own made by the test (ip netns, a veth pair), with
the balancer configs of conf/nginx/cluster.conf and conf/haproxy/cluster.cfg.
wrk runs through the balancer while

  * a host fails hard (SIGKILL of its whole process tree, requests in
    flight): the balancer retries elsewhere; whatever it could not hide is
    counted and bounded by what was in flight;
  * a host drains with a graceful stop (stop_delay: /readyz says 503 first,
    then its sockets close): not one request fails;
  * the failed host starts again and rejoins: it serves again.

Every request is counted (sent, 2xx, failed); the counts are printed (run
with -s to see them). Skips, saying why, where namespaces cannot be made."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, SLOW, get, wait_until

SOURCE = os.environ.get("PREFORKD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
HOSTS = 3
TAG = f"pf{os.getpid() % 100000}"


def sh(*cmd, ns=None):
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    return subprocess.run(full, capture_output=True, text=True, timeout=30)


def netns_works():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "needs root and iproute2 to make network namespaces"
    probe = f"{TAG}probe"
    out = sh("ip", "netns", "add", probe)
    if out.returncode != 0:
        return f"the kernel refuses network namespaces here: {out.stderr.strip()}"
    sh("ip", "netns", "del", probe)
    return None


WHY_NOT = netns_works()
pytestmark = [pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT)),
              pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed")]


class Host:
    """One preforkd in its own namespace at 10.X.i.2:8080."""

    def __init__(self, tmp, i):
        self.i = i
        self.ns = f"{TAG}h{i}"
        self.addr = f"10.{201 + i}.{os.getpid() % 250}.2"
        self.tmp = tmp / f"host{i}"
        self.tmp.mkdir()
        (self.tmp / "www").mkdir()
        (self.tmp / "www" / "hello.txt").write_text(f"hello from host {i}\n")
        (self.tmp / "preforkd.conf").write_text(
            f"[server]\nlisten = {self.addr}:8080\nworkers = 1\nstop_delay = 2s\n"
            f"shutdown_idle_timeout = 0\nerror_log = {self.tmp / 'error.log'}\n"
            f"[route /]\nhandler = static\nroot = {self.tmp / 'www'}\n"
            "[route = /readyz]\nhandler = readyz\n[route = /status]\nhandler = status\n")
        self.proc = None

    def make_net(self):
        root, peer = f"{TAG}r{self.i}", f"{TAG}n{self.i}"
        net = self.addr.rsplit(".", 1)[0]
        for cmd in (["ip", "netns", "add", self.ns],
                    ["ip", "link", "add", root, "type", "veth", "peer", "name", peer],
                    ["ip", "link", "set", peer, "netns", self.ns],
                    ["ip", "addr", "add", f"{net}.1/24", "dev", root],
                    ["ip", "link", "set", root, "up"]):
            out = sh(*cmd)
            assert out.returncode == 0, (cmd, out.stderr)
        for cmd in (["ip", "addr", "add", f"{net}.2/24", "dev", peer],
                    ["ip", "link", "set", peer, "up"], ["ip", "link", "set", "lo", "up"]):
            out = sh(*cmd, ns=self.ns)
            assert out.returncode == 0, (cmd, out.stderr)

    def start(self):
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, BIN, "--config",
                                      str(self.tmp / "preforkd.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_until(self.answers, timeout=30, what=f"host {self.i}")

    def answers(self):
        try:
            with socket.create_connection((self.addr, 8080), timeout=2) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def served(self):
        """Requests for / this host's workers have answered."""
        import json
        r = get_at(self.addr, 8080, "/status")
        for route in json.loads(r)["totals"]["routes"]:
            if route["route"] == "/":
                return route["requests"]
        return 0

    def kill_hard(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30 * SLOW)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # nothing of the tree outlives the test
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, AttributeError):
            pass

    def destroy(self):
        self.stop()
        sh("ip", "netns", "del", self.ns)  # takes the veth pair with it


def get_at(host, port, path):
    with socket.create_connection((host, port), timeout=10 * SLOW) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hosts(tmp_path):
    made = [Host(tmp_path, i) for i in range(HOSTS)]
    try:
        for h in made:
            h.make_net()
            h.start()
        yield made
    finally:
        for h in made:
            h.destroy()


def wrk(port, seconds):
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", "--timeout", "10s",
                          f"http://127.0.0.1:{port}/hello.txt"],
                         capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout
    sent = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = sum(int(x) for x in m.groups()) if m else 0
    return {"sent": sent, "2xx": sent - non2xx, "non2xx": non2xx, "socket_errors": errors,
            "text": text}


def during(delay, action):
    t = threading.Timer(delay * SLOW, action)
    t.start()
    return t


def start_balancer(kind, tmp, hosts):
    port = free_port()
    addrs = [h.addr for h in hosts]
    if kind == "nginx":
        text = open(os.path.join(SOURCE, "conf", "nginx", "cluster.conf")).read()
        text = text.replace("127.0.0.1:8082", f"127.0.0.1:{port}")
        for i, a in enumerate(addrs):
            text = text.replace(f"10.0.0.1{i + 1}:8080", f"{a}:8080")
        (tmp / "nginx").mkdir()
        (tmp / "nginx" / "cluster.conf").write_text(text)
        cmd = ["nginx", "-e", "stderr", "-p", str(tmp / "nginx"), "-c",
               str(tmp / "nginx" / "cluster.conf")]
    else:
        text = open(os.path.join(SOURCE, "conf", "haproxy", "cluster.cfg")).read()
        text = text.replace("127.0.0.1:8083", f"127.0.0.1:{port}")
        for i, a in enumerate(addrs):
            text = text.replace(f"10.0.0.1{i + 1}:8080", f"{a}:8080")
        (tmp / "haproxy.cfg").write_text(text)
        cmd = ["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")]
    log = open(tmp / f"{kind}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)

    def answers():
        try:
            return get(port, "/hello.txt").status == 200
        except OSError:
            return False
    wait_until(answers, timeout=30, what=kind)
    return proc, port, log


def stop_balancer(proc, log):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_hosts_fail_drain_and_rejoin_behind_a_balancer(kind, hosts, tmp_path):
    if not shutil.which(kind):
        pytest.skip(f"{kind} is not installed: scripts/deps")
    proc, port, log = start_balancer(kind, tmp_path, hosts)
    try:
        # 1. a host fails hard with requests in flight
        t = during(2, hosts[0].kill_hard)
        failed = wrk(port, 6)
        t.join()
        # 2. a host drains with a graceful stop: not one request fails
        t = during(2, hosts[1].stop)
        drained = wrk(port, 6)
        t.join()
        # 3. the failed host comes back and serves again
        hosts[0].start()
        before = hosts[0].served()
        deadline = time.monotonic() + 30 * SLOW
        while hosts[0].served() == before and time.monotonic() < deadline:
            for _ in range(20):
                assert get(port, "/hello.txt").status == 200
        assert hosts[0].served() > before, "the restarted host does not get requests"
        print(f"\n{kind}: host killed: sent {failed['sent']}, 2xx {failed['2xx']}, "
              f"failed {failed['non2xx'] + failed['socket_errors']}; "
              f"host drained: sent {drained['sent']}, 2xx {drained['2xx']}, "
              f"failed {drained['non2xx'] + drained['socket_errors']}")
        assert drained["sent"] > 100 and drained["non2xx"] == 0 and \
            drained["socket_errors"] == 0, drained["text"]
        # a killed host's requests in flight are retried (GET): at most the
        # connections wrk had open could have been caught mid-answer
        assert failed["sent"] > 100, failed["text"]
        assert failed["non2xx"] + failed["socket_errors"] <= 8, failed["text"]
    finally:
        stop_balancer(proc, log)
