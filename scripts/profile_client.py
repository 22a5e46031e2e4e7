#!/usr/bin/env python3
"""profile_client.py PORT WORKLOAD COUNT — sends exactly COUNT requests, for
scripts/profile: hello (keep-alive, 13-byte file), 1k (keep-alive, 1 KiB),
close (a new connection per request), pipeline16 (16 requests per write),
site (hello from a route with ten header settings and an error page, asked
with an Origin; bare: the same request, the route without its settings), 4k (a 4 KiB text file) and 4kgz (the same, asked with
Accept-Encoding: gzip from a route that compresses: its cached gzip)."""

import socket
import sys


def read_responses(sock, buf, count):
    """Reads count responses (Content-Length framed); returns leftover bytes."""
    for _ in range(count):
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end].decode("latin-1").lower()
                length = int(head.split("content-length:")[1].split("\r\n")[0])
                if len(buf) >= end + 4 + length:
                    buf = buf[end + 4 + length:]
                    break
            data = sock.recv(1 << 16)
            if not data:
                sys.exit("connection closed")
            buf += data
    return buf


def main():
    port, workload, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    path, extra = {"1k": ("/1k.bin", ""), "site": ("/site/hello", "Origin: http://example.org\r\n"),
                   "bare": ("/site/hello", "Origin: http://example.org\r\n"),
                   "4k": ("/4k.css", ""),
                   "4kgz": ("/gz/4k.css", "Accept-Encoding: gzip\r\n")}.get(workload,
                                                                             ("/hello", ""))
    req = f"GET {path} HTTP/1.1\r\nHost: profile\r\n{extra}\r\n".encode()
    if workload == "close":
        close_req = f"GET {path} HTTP/1.1\r\nHost: profile\r\nConnection: close\r\n\r\n".encode()
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(close_req)
                read_responses(s, b"", 1)
        return
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        depth = 16 if workload == "pipeline16" else 1
        done = 0
        while done < count:
            k = min(depth, count - done)
            s.sendall(req * k)
            buf = read_responses(s, buf, k)
            done += k


if __name__ == "__main__":
    main()
