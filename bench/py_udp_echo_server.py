#!/usr/bin/env python3
"""The Python baseline for the UDP echo benchmark, in the seed's design.

One socket, one loop: recvfrom(1024), then sendto() the same bytes back to
the sender. The socket has a 1-second timeout so that the loop can check its
lifetime, as the seed-style peer does.

Prints {"type": "listening", "address": "127.0.0.1:PORT", "pid": PID} on
stdout once listening, and exits when its stdin closes or after LIFETIME_S.

usage: py_udp_echo_server.py [PORT=0] [LIFETIME_S=900]
"""
import json
import os
import socket
import sys
import threading
import time


def exit_when_stdin_closes():
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    end = time.monotonic() + (float(sys.argv[2]) if len(sys.argv) > 2 else 900)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.settimeout(1.0)
    host, real_port = s.getsockname()[:2]
    print(json.dumps({"type": "listening", "address": f"{host}:{real_port}",
                      "pid": os.getpid()}), flush=True)
    while time.monotonic() < end:
        try:
            data, addr = s.recvfrom(1024)
        except socket.timeout:
            continue
        s.sendto(data, addr)


if __name__ == "__main__":
    main()
