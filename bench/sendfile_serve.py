#!/usr/bin/env python3
"""Serves one file over HTTP/1.1 on 127.0.0.1 with sendfile(2), for any
request: the kernel's zero-copy path from the page cache to a loopback
socket, the reference for "loopback disk-cache throughput" in
bench/registry.sh. Usage: sendfile_serve.py FILE PORT"""
import os
import socket
import sys

path, port = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
while True:
    conn, _ = srv.accept()
    try:
        req = b""
        while b"\r\n\r\n" not in req:
            data = conn.recv(4096)
            if not data:
                break
            req += data
        if b"\r\n\r\n" in req:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
            with open(path, "rb") as f:
                conn.sendfile(f)
    except OSError:
        pass
    finally:
        conn.close()
