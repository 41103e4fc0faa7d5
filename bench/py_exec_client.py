#!/usr/bin/env python3
"""The client of the Python exec baseline, in the seed's design: send the
command, read 'info|LEN', answer 'ok', then recv(1024) until LEN bytes
arrived, writing them to stdout. Exits 1 when fewer arrived.

usage: py_exec_client.py HOST PORT COMMAND...
"""
import socket
import sys

host, port, cmd = sys.argv[1], int(sys.argv[2]), " ".join(sys.argv[3:])
s = socket.create_connection((host, port), timeout=60)
s.send(cmd.encode())
_info, n = s.recv(1024).decode().split("|")
n = int(n)
s.send(b"ok")
out = sys.stdout.buffer
got = 0
while got < n:
    data = s.recv(1024)
    if not data:
        break
    out.write(data)
    got += len(data)
out.flush()
s.close()
sys.exit(0 if got == n else 1)
