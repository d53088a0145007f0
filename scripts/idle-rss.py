#!/usr/bin/env python3
"""Server memory per idle TCP echo connection.

Starts the release server on 127.0.0.1:0, measures its resident set size
(VmRSS) after one warm-up echo, opens N idle connections (default 10 000),
makes sure the server has accepted them all, and measures again.

    scripts/idle-rss.py [N]

Needs N + a few hundred file descriptors in this process (it raises its soft
limit to the hard one); the server raises its own.
"""
import resource
import socket
import subprocess
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
subprocess.run(["cargo", "build", "--release", "--quiet"], check=True)
server = subprocess.Popen(
    ["target/release/sockloop", "serve", "--echo", "127.0.0.1:0"],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    host, port = server.stdout.readline().split()[2].rsplit(":", 1)
    addr = (host, int(port))

    def rss():
        with open(f"/proc/{server.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def echo(sock, msg):
        sock.settimeout(10)
        sock.sendall(msg)
        got = b""
        while len(got) < len(msg):
            got += sock.recv(len(msg) - len(got))
        assert got == msg

    warm = socket.create_connection(addr)
    echo(warm, b"x" * 100)
    warm.close()
    time.sleep(0.2)  # let the close be swept; RSS is a level, not an event
    before = rss()
    conns = [socket.create_connection(addr) for _ in range(n)]
    # The server accepts in order: when the last one echoes, all are in.
    echo(conns[-1], b"ping")
    after = rss()
    print(f"connections={n} rss_empty={before} rss_with_idle={after} "
          f"bytes_per_connection={(after - before) / n:.0f}")
finally:
    server.terminate()
    server.wait(timeout=10)
