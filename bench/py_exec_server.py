#!/usr/bin/env python3
"""The Python baseline for the exec benchmark, in the seed's design.

One connection at a time: read the command with recv(1024), run it with
subprocess (shell=True, stdout and stderr buffered whole), send an
'info|LEN' header, wait for 'ok', then sendall() the output. The only
additions to the seed are the lines around it: a free port, the
"listening" line, and the limits below.

Prints {"type": "listening", "address": "127.0.0.1:PORT", "pid": PID} on
stdout once listening. Bounded: exits after MAX_CONNS connections, after
IDLE_S without one, or when its stdin closes.

usage: py_exec_server.py [PORT=0] [MAX_CONNS=10000] [IDLE_S=300]
"""
import json
import os
import socket
import subprocess
import sys
import threading


def exit_when_stdin_closes():
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    max_conns = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    idle = float(sys.argv[3]) if len(sys.argv) > 3 else 300
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(5)
    s.settimeout(idle)
    host, real_port = s.getsockname()[:2]
    print(json.dumps({"type": "listening", "address": f"{host}:{real_port}",
                      "pid": os.getpid()}), flush=True)
    for _ in range(max_conns):
        try:
            conn, _addr = s.accept()
        except socket.timeout:
            break
        conn.settimeout(60)
        try:
            cmd = conn.recv(1024).decode()
            out = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT).stdout
            conn.send(f"info|{len(out)}".encode())
            conn.recv(1024)  # 'ok'
            conn.sendall(out)
        except OSError:
            pass
        conn.close()
    s.close()


if __name__ == "__main__":
    main()
