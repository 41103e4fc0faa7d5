#!/usr/bin/env python3
"""The Python baseline for the echo benchmark, in the seed's design.

socketserver.ThreadingTCPServer, one thread per connection, recv(1024) then
sendall() until the peer closes. The only change from the seed is the listen
backlog: 1024 instead of socketserver's 5, which drops SYNs (and costs
1-second retries) as soon as 100 clients connect at once.

Prints {"type": "listening", "address": "127.0.0.1:PORT", "pid": PID} on
stdout once listening, and exits when its stdin closes or after LIFETIME_S.

usage: py_echo_server.py [PORT=0] [LIFETIME_S=900]
"""
import json
import os
import socketserver
import sys
import threading
import time


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            self.request.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024


def exit_when_stdin_closes():
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


def exit_after(seconds):
    time.sleep(seconds)
    os._exit(0)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    lifetime = float(sys.argv[2]) if len(sys.argv) > 2 else 900
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    threading.Thread(target=exit_after, args=(lifetime,), daemon=True).start()
    with Server(("127.0.0.1", port), Echo) as server:
        host, real_port = server.server_address[:2]
        print(json.dumps({"type": "listening", "address": f"{host}:{real_port}",
                          "pid": os.getpid()}), flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
