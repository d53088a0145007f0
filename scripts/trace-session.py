#!/usr/bin/env python3
"""Record a short, real sockloop session as a Chrome trace (--trace-events).

Starts `sockloop serve` on 127.0.0.1 (port 0 for every socket) with
--trace-events, plays a few nc-like clients against it one after another, stops
it with SIGINT and leaves the trace file behind, ready for Perfetto
(ui.perfetto.dev) or for scripts/trace2svg.py. Standard library only.

The session, in order (each step waits for its answer, with a timeout):
  1. echo:  connect, send "hello\\n", read it back, shut down the sending side,
            read until the server closes (the tour in docs/tour.md);
  2. udp:   one datagram "ping", one reply;
  3. chat:  two clients join, one says a line the other reads, then "bye";
  4. bulk:  one echo client sends 4 MiB and only then starts reading, so the
            server's backlog reaches --out-limit (64 KiB here), reading pauses,
            writes are partial and WRITABLE interest comes and goes;
  5. SIGINT: the server drains and exits 0.

Usage: scripts/trace-session.py [--bin target/debug/sockloop] [--out trace.json]
                                [--steps echo,udp,chat,bulk]

docs/tour.md's two timelines are `--steps echo,udp,chat` and `--steps bulk`,
each drawn with scripts/trace2svg.py.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

TIMEOUT = 10.0  # every wait in this script is bounded by this


def start_server(binary, trace_path):
    args = [
        binary, "serve",
        "--echo", "127.0.0.1:0",
        "--udp-echo", "127.0.0.1:0",
        "--chat", "127.0.0.1:0",
        "--out-limit", "65536",
        "--trace-events", trace_path,
    ]
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, env=env, text=True)
    addrs = {}
    deadline = time.monotonic() + TIMEOUT
    while len(addrs) < 3:
        if time.monotonic() > deadline:
            proc.kill()
            sys.exit("server did not print its listening lines")
        line = proc.stdout.readline()
        if not line:
            sys.exit("server exited before listening (exit %s)" % proc.wait())
        _, service, addr = line.split()
        host, port = addr.rsplit(":", 1)
        addrs[service] = (host, int(port))
    return proc, addrs


def connect(addr):
    s = socket.create_connection(addr, timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


def read_exact(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        if not chunk:
            raise RuntimeError("closed after %d of %d bytes" % (len(got), n))
        got += chunk
    return got


class LineReader:
    """Lines from a socket, read in large chunks (reading one byte per recv
    would keep this client so busy that the scheduler preempts the server
    in the middle of its writes, and the timeline would show that instead)."""

    def __init__(self, s):
        self.s = s
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError("closed before a full line: %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode() + "\n"

    def rest(self):
        rest, self.buf = self.buf + read_to_end(self.s), b""
        return rest


def read_to_end(s):
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk


def pause():
    # Space the steps apart, so that each shows as its own burst on the
    # timeline (the loop sleeps in poll in between), as a person typing would.
    time.sleep(0.05)


def echo_step(addr):
    s = connect(addr)
    pause()
    s.sendall(b"hello\n")
    assert read_exact(s, 6) == b"hello\n"
    pause()
    s.shutdown(socket.SHUT_WR)
    assert read_to_end(s) == b""
    s.close()


def udp_step(addr):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(TIMEOUT)
    u.sendto(b"ping", addr)
    data, src = u.recvfrom(65536)
    assert data == b"ping" and src == addr, (data, src)
    u.close()


def chat_step(addr):
    a = connect(addr)
    ra = LineReader(a)
    assert ra.line().startswith("* welcome")
    pause()
    b = connect(addr)
    rb = LineReader(b)
    assert rb.line().startswith("* welcome")
    assert " joined #lobby" in ra.line()
    pause()
    a.sendall(b"hi, anyone here?\n")
    assert rb.line().endswith("> hi, anyone here?\n")
    pause()
    b.sendall(b"bye\n")
    assert rb.line() == "* bye\n"
    assert rb.rest() == b""
    assert " left #lobby" in ra.line()
    a.close()
    b.close()


def bulk_step(addr):
    size = 4 * 1024 * 1024
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    # 4 MiB is more than the path back to us holds while we do not read (the
    # server's send buffer, which Linux grows to about 4 MiB on loopback, plus
    # our receive buffer, kept small here), so the server's writes come back
    # partial and it has to wait for WRITABLE; meanwhile its 64 KiB backlog
    # is full and it stops reading from us.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(TIMEOUT)
    s.connect(addr)
    writer = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
    writer.start()
    time.sleep(0.1)  # let the backlog fill before reading anything
    got = read_to_end(s)
    writer.join(TIMEOUT)
    assert got == data, "echo differs"
    s.close()


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(root, "target", "debug", "sockloop"))
    ap.add_argument("--out", default="trace.json")
    ap.add_argument("--steps", default="echo,udp,chat,bulk",
                    help="which steps to play, in order (default: all)")
    args = ap.parse_args()
    steps = {
        "echo": (echo_step, "tcp-echo"),
        "udp": (udp_step, "udp-echo"),
        "chat": (chat_step, "chat"),
        "bulk": (bulk_step, "tcp-echo"),
    }
    chosen = args.steps.split(",")
    for name in chosen:
        if name not in steps:
            ap.error("unknown step %r (steps: %s)" % (name, ", ".join(steps)))
    proc, addrs = start_server(args.bin, args.out)
    try:
        for name in chosen:
            pause()
            step, service = steps[name]
            step(addrs[service])
        pause()
        proc.send_signal(signal.SIGINT)
        status = proc.wait(TIMEOUT)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if status != 0:
        sys.exit("server exited with status %s" % status)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
