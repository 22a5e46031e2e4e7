#!/usr/bin/env python3
"""idle_memory.py PORT PID COUNT NAME — what an idle keep-alive connection
costs a server: the growth of the resident memory of the server's process
tree over COUNT connections that each made one request and then stay open.
Used by scripts/bench --memory."""

import resource
import socket
import sys
import time


def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return pids


def rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def main():
    port, pid, count, name = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    req = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"
    # warm up: the first connections grow tables that later ones reuse
    warm = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    for s in warm:
        s.sendall(req)
        s.recv(4096)
    time.sleep(0.5)
    before = rss_kib(pid)
    conns = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(req)
        if not s.recv(4096).startswith(b"HTTP/1.1 200"):
            sys.exit(f"{name}: bad answer")
        conns.append(s)
    time.sleep(1)
    after = rss_kib(pid)
    per = (after - before) * 1024 / count
    print(f"{name:10s} idle keep-alive connection: {per:6.0f} bytes "
          f"(RSS {before} KiB -> {after} KiB over {count} connections)")
    for s in conns + warm:
        s.close()


if __name__ == "__main__":
    main()
