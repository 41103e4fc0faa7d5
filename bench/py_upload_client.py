#!/usr/bin/env python3
"""The client of the Python upload baseline, in the seed's design: send
'post|SIZE|NAME', wait for 'ok', then the file with sendall() in
BUFSIZE-byte reads (1024, as in the seed). One file per process.

usage: py_upload_client.py HOST PORT PATH REMOTE_NAME [BUFSIZE=1024]
"""
import os
import socket
import sys

host, port, path, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
bufsize = int(sys.argv[5]) if len(sys.argv) > 5 else 1024
s = socket.create_connection((host, port), timeout=120)
size = os.path.getsize(path)
s.send(f"post|{size}|{name}".encode())
s.recv(1024)  # 'ok'
with open(path, "rb") as f:
    while True:
        chunk = f.read(bufsize)
        if not chunk:
            break
        s.sendall(chunk)
s.close()
