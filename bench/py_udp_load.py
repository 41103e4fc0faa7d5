#!/usr/bin/env python3
"""A lighter load generator for the UDP echo benchmark, in Python.

The same protocol and output as bench/udp_load.ts, for the same servers: SOCKETS
UDP sockets on 127.0.0.1 (each a distinct source, like that many clients), each
keeping INFLIGHT requests of 64 bytes in flight; each reply is compared with the
request it answers (socket id in bytes 0-3, sequence number in bytes 4-7, a
pattern of both in bytes 8-63) and answered at once with the next request. A
request unanswered for TIMEOUT ms counts as lost and is replaced.

Why a second load generator: a Deno client spends about as much CPU per datagram
as a Deno server, so on 2 cores it caps every server near the plain Deno echo's
rate; this loop (one epoll, connected non-blocking sockets) costs less per
datagram, so the faster servers are not hidden behind the client.

Prints {"type": "measuring"} when the measured window opens, then
{"type": "result", ...}, both with "cpu", the CPU seconds used so far; exits 1 with a message on stderr when a reply is wrong,
and exits at once when its stdin closes.

usage: py_udp_load.py HOST:PORT [--sockets N] [--inflight K] [--warmup MS]
                      [--duration MS] [--max-trips N] [--timeout MS]
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import threading
import time

MESSAGE_SIZE = 64
HEADER = struct.Struct(">II")


def exit_when_stdin_closes():
    while sys.stdin.buffer.read(4096):
        pass
    fail("Cannot finish: stdin closed before the run ended")


def fail(message):
    """Prints why on stderr and exits 1 at once (the stdin thread would block a normal exit)."""
    print(f"udp_load: {message}", file=sys.stderr, flush=True)
    os._exit(1)


def cpu_seconds():
    """CPU time this process has used so far, user and system, in seconds."""
    times = os.times()
    return times.user + times.system


def patterns(sock_id):
    """The 56 pattern bytes of socket sock_id for each value of seq & 0xff."""
    return [bytes((i * 7 + sock_id * 13 + seq) & 0xFF for i in range(8, MESSAGE_SIZE))
            for seq in range(256)]


class Client:
    __slots__ = ("id", "sock", "patterns", "outstanding", "seq")

    def __init__(self, sock_id, server):
        self.id = sock_id
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect(server)
        self.sock.setblocking(False)
        self.patterns = patterns(sock_id)
        self.outstanding = {}  # seq -> (send time, request)
        self.seq = 0

    def send(self, now, counters):
        seq = self.seq
        self.seq = (seq + 1) & 0xFFFFFFFF
        request = HEADER.pack(self.id, seq) + self.patterns[seq & 0xFF]
        self.outstanding[seq] = (now, request)
        try:
            self.sock.send(request)
        except (BlockingIOError, ConnectionRefusedError):
            counters["sendErrors"] += 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--sockets", type=int, default=1)
    parser.add_argument("--inflight", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--duration", type=int, default=3000)
    parser.add_argument("--max-trips", type=int, default=2_000_000)
    parser.add_argument("--timeout", type=int, default=200)
    args = parser.parse_args()
    for name in ("sockets", "inflight", "warmup", "duration", "max_trips", "timeout"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    host, port = args.address.rsplit(":", 1)
    server = (host, int(port))
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()

    counters = {"trips": 0, "lost": 0, "late": 0, "sendErrors": 0}
    clients = {}
    poller = select.epoll()
    now = time.monotonic()
    for sock_id in range(args.sockets):
        client = Client(sock_id, server)
        clients[client.sock.fileno()] = client
        poller.register(client.sock.fileno(), select.EPOLLIN)
        for _ in range(args.inflight):
            client.send(now, counters)

    timeout = args.timeout / 1000
    check_every = timeout / 4
    next_check = now + check_every
    measuring_at = now + args.warmup / 1000
    start = end = None
    before = None
    trips = 0
    while True:
        events = poller.poll(check_every)
        now = time.monotonic()
        for fd, _ in events:
            client = clients[fd]
            # Up to INFLIGHT replies may be queued on one socket; read them all.
            for _ in range(args.inflight):
                try:
                    data = client.sock.recv(2048)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:
                    break  # an ICMP error: the request stays outstanding until its timeout
                if len(data) != MESSAGE_SIZE:
                    fail(f"Cannot verify echo: got {len(data)} bytes, "
                                     f"expected {MESSAGE_SIZE}")
                sock_id, seq = HEADER.unpack_from(data)
                if sock_id != client.id:
                    fail(f"Cannot verify echo: socket {client.id} got a "
                                     f"reply for socket {sock_id}")
                entry = client.outstanding.pop(seq, None)
                if entry is None:
                    counters["late"] += 1
                    continue
                if data != entry[1]:
                    fail(f"Cannot verify echo of request {seq}: "
                                     "the reply differs from the request")
                trips += 1
                client.send(now, counters)
        if now >= next_check:
            next_check = now + check_every
            for client in clients.values():
                expired = [s for s, (sent, _) in client.outstanding.items() if now - sent >= timeout]
                for s in expired:
                    del client.outstanding[s]
                    counters["lost"] += 1
                    client.send(now, counters)
        if start is None:
            if now >= measuring_at:
                counters["trips"] = trips
                before = dict(counters)
                print(json.dumps({"type": "measuring", "cpu": cpu_seconds()}), flush=True)
                start = time.monotonic()
                end = start + args.duration / 1000
        elif now >= end or trips - before["trips"] >= args.max_trips:
            break
    seconds = time.monotonic() - start
    counters["trips"] = trips
    counted = trips - before["trips"]
    print(json.dumps({
        "type": "result", "sockets": args.sockets, "inflight": args.inflight,
        "trips": counted, "seconds": seconds, "rate": counted / seconds,
        "lost": counters["lost"] - before["lost"], "late": counters["late"] - before["late"],
        "sendErrors": counters["sendErrors"] - before["sendErrors"],
        "cpu": cpu_seconds(),
    }), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
