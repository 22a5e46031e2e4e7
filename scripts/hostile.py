#!/usr/bin/env python3
"""hostile.py PORT SECONDS — misbehaving clients for scripts/soak, bounded in
concurrency and time: slowloris trickles, resets in the middle of a head, a
body or a response, clients that stop reading, oversized and malformed heads,
smuggling attempts, half-closes and abandoned pipelines. Prints how many of
each it ran; never fails itself (the soak judges the server)."""

import random
import socket
import struct
import sys
import threading
import time

PORT = int(sys.argv[1])
DEADLINE = time.monotonic() + float(sys.argv[2])
counts = {}
lock = threading.Lock()


def count(name):
    with lock:
        counts[name] = counts.get(name, 0) + 1


def conn(timeout=5):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    return s


def reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def slowloris():
    """Keeps 50 connections trickling header bytes until they are cut."""
    socks = []
    while time.monotonic() < DEADLINE:
        while len(socks) < 50:
            try:
                s = conn()
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            except OSError:
                break
        for s in list(socks):
            try:
                s.send(b"X")
            except OSError:
                socks.remove(s)
                s.close()
                count("slowloris cut")
        time.sleep(1)
    for s in socks:
        s.close()


def once(kind):
    try:
        s = conn()
        if kind == "reset-head":
            s.sendall(b"GET /hello HTTP/1.1\r\nHo")
            reset(s)
        elif kind == "reset-body":
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n" + b"a" * 999)
            reset(s)
        elif kind == "reset-response":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /1m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(1000)
            reset(s)
        elif kind == "no-read":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /1m.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
            time.sleep(2)
            s.close()
        elif kind == "oversized":
            s.sendall(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(100)
            s.close()
        elif kind == "garbage":
            s.sendall(bytes(random.getrandbits(8) for _ in range(random.randint(1, 3000))))
            s.settimeout(2)
            s.recv(100)
            s.close()
        elif kind == "smuggle":
            body = b"0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            s.recv(1000)
            s.close()
        elif kind == "half-close":
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
            s.close()
        elif kind == "abandon-pipeline":
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
            s.close()
        elif kind == "pool-reset":
            s.sendall(b"GET /sleep?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)
            reset(s)
        count(kind)
    except OSError:
        count(kind + " (error on the client side)")


def mixer():
    kinds = ["reset-head", "reset-body", "reset-response", "no-read", "oversized", "garbage",
             "smuggle", "half-close", "abandon-pipeline", "pool-reset"]
    while time.monotonic() < DEADLINE:
        once(random.choice(kinds))
        time.sleep(0.01)


threads = [threading.Thread(target=slowloris)] + [threading.Thread(target=mixer) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("hostile clients:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
