#!/usr/bin/env python3
"""Write the seed corpus of the cluster's fuzz targets (committed; rerun
after changing the bus format, then check with `cargo test --test sans_io
cluster_fuzz_seeds::`, which runs every seed through its check and requires
every bus seed to decode).

- resp_decode/: two chunk-size bytes, then bytes as Redis 7 sends them to
  the link (taken from a real session: HELLO 3, SUBSCRIBE, PUBLISH, SET NX
  PX granted and refused, INCRBY, an EVAL array, an error), plus RESP2
  nulls and an unfinished frame.
- bus_decode/: one message of each kind, laid out by hand from the format
  in docs/cluster.md (so the seeds also check that the code and the
  documented layout agree).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    path = os.path.join(HERE, "corpus", target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def push(*items):
    return b">%d\r\n" % len(items) + b"".join(bulk(i) for i in items)


# ---- bus messages ----
SERVER = 0x0123456789ABCDEF


def header(kind, seq):
    return struct.pack(">BBQQ", 1, kind, SERVER, seq)


def name(n):
    return bytes([len(n)]) + n


def text(t):
    t = t.encode()
    return struct.pack(">I", len(t)) + t


bus = {
    "join": header(1, 1) + name(b"ann") + name(b"lobby"),
    "leave-plain": header(2, 2) + name(b"ann") + name(b"lobby") + b"\x00",
    "leave-quit": header(2, 3) + name(b"ann") + name(b"lobby") + b"\x01" + text("gone fishing"),
    "leave-too-slow": header(2, 4) + name(b"b") + name(b"rust") + b"\x02",
    "leave-idle": header(2, 5) + name(b"c") + name(b"rust") + b"\x03",
    "leave-server-lost": header(2, 6) + name(b"d") + name(b"rust") + b"\x04",
    "text": header(3, 7) + name(b"ann") + name(b"lobby") + text("hello, \u00e9t\u00e9\tok"),
    "action": header(4, 8) + name(b"ann") + name(b"lobby") + text("waves"),
    "nick": header(5, 9) + name(b"ann") + name(b"Anna-2") + name(b"lobby"),
    "private": header(6, 10) + name(b"ann") + name(b"bob") + text("psst"),
    "presence": header(7, 11) + b"\x03" + struct.pack(">H", 2)
    + name(b"ann") + name(b"lobby") + name(b"bob") + name(b"rust"),
    "presence-empty": header(7, 12) + b"\x03" + struct.pack(">H", 0),
    "sync-request": header(8, 13) + struct.pack(">Q", 0),
    "sync-request-one": header(8, 13) + struct.pack(">Q", 0x42),
    "heartbeat": header(9, 14) + struct.pack(">I", 42),
    "bye": header(10, 15),
}
for n, data in bus.items():
    write("bus_decode", n, data)

# ---- RESP from Redis ----
hello = (b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n"
         b"$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:3\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
         b"$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n")
subscribed = b">3\r\n$9\r\nsubscribe\r\n$12\r\nsockloop:bus\r\n:1\r\n"
message = push(b"message", b"sockloop:bus", bus["text"])
replies = b":1\r\n+OK\r\n_\r\n:5\r\n*2\r\n:1\r\n:3\r\n_\r\n"
error = b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
resp = {
    "session": b"\x03\x07" + hello + subscribed + message + replies + error,
    "hello-bytewise": b"\x00\x00" + hello,
    "pushes": b"\x0f\x01" + subscribed + message + push(b"message", b"sockloop:bus", bus["bye"]),
    "auth-errors": b"\x02\x05-WRONGPASS invalid username-password pair\r\n-NOAUTH Authentication required.\r\n",
    "resp2-nulls": b"\x01\x02$-1\r\n*-1\r\n*2\r\n$-1\r\n:7\r\n",
    "resp3-types": b"\x04\x04#t\r\n,3.5\r\n(12345678901234567890\r\n=7\r\ntxt:abc\r\n~1\r\n:1\r\n!3\r\nerr\r\n",
    "unfinished": b"\x05\x05" + message[:-5],
}
for n, data in resp.items():
    write("resp_decode", n, data)
