#!/usr/bin/env python3
"""The Python baseline for the upload benchmark, in the seed's design.

One connection at a time: read a 'post|SIZE|NAME' header with one
recv(1024), answer 'ok', then loop conn.recv(BUFSIZE) (1024 bytes, as in the
seed) writing to DESTDIR/basename(NAME) until SIZE bytes arrived. No hash,
no fsync, no atomic rename: bytes go straight into the final name. The only
additions to the seed are the lines around it: a free port, the "listening"
line, a "stored" line once each file is closed (so that the bench can stop
its clock when the data is on the server, not when the client exits), and
the limits below.

Prints {"type": "listening", "address": "127.0.0.1:PORT", "pid": PID} on
stdout once listening, then {"type": "stored", "name": NAME, "bytes": N}
per file. Bounded: exits after MAX_CONNS connections, after IDLE_S without
one, or when its stdin closes.

usage: py_upload_server.py DESTDIR [BUFSIZE=1024] [MAX_CONNS=100000] [IDLE_S=300]
"""
import json
import os
import socket
import sys
import threading


def exit_when_stdin_closes():
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


def main():
    destdir = sys.argv[1]
    bufsize = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    max_conns = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    idle = float(sys.argv[4]) if len(sys.argv) > 4 else 300
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    s.settimeout(idle)
    host, port = s.getsockname()[:2]
    print(json.dumps({"type": "listening", "address": f"{host}:{port}",
                      "pid": os.getpid()}), flush=True)
    for _ in range(max_conns):
        try:
            conn, _addr = s.accept()
        except socket.timeout:
            break
        conn.settimeout(60)
        got = 0
        name = ""
        try:
            # The seed's code, as it was.
            header = conn.recv(1024).decode()
            _cmd, size, name = header.split("|")
            size = int(size)
            conn.send(b"ok")
            with open(os.path.join(destdir, os.path.basename(name)), "wb") as f:
                while got < size:
                    data = conn.recv(bufsize)
                    if not data:
                        break
                    f.write(data)
                    got += len(data)
        except (OSError, ValueError):
            pass
        conn.close()
        print(json.dumps({"type": "stored", "name": name, "bytes": got}), flush=True)
    s.close()


if __name__ == "__main__":
    main()
