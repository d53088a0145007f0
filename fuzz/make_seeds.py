#!/usr/bin/env python3
"""Write the seed corpus in fuzz/corpus/TARGET/ (committed; rerun after
changing an input type in src/testing/, then check with `cargo test --test
sans_io fuzz_regressions::`, which decodes and checks every seed).

Seeds are inputs a fuzzer should start from: short, readable scenarios that
reach each feature at once. The bytes follow the `arbitrary` crate's
encoding (1.x) of the input types in src/testing/:
- integers little-endian; bool = low bit of one byte;
- an enum variant i of n = a u32 in the i-th of n equal slices of u32;
- a Vec<T> = one "more?" byte (1) before each element and a 0 after;
- a String = its bytes in place, its length taken from the END of the data
  (the first string's length is the very last byte; one byte each while
  the whole input is at most 256 bytes, which every seed here is);
- line_framing, chat_session and client_lines decode by hand: first byte, chunk lengths
  (length from the last byte), then the stream as it is.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


class Enc:
    def __init__(self):
        self.front = bytearray()
        self.back = []  # string lengths, in the order they are read

    def u8(self, v):
        self.front.append(v)

    def u16(self, v):
        self.front += v.to_bytes(2, "little")

    def bool(self, v):
        self.u8(1 if v else 0)

    def variant(self, i, n):
        v = ((2 * i + 1) << 32) // (2 * n)
        assert (v * n) >> 32 == i
        self.front += v.to_bytes(4, "little")

    def string(self, text):
        b = text.encode() if isinstance(text, str) else text
        self.back.append(len(b))
        self.front += b

    def vec(self, items, each):
        for item in items:
            self.bool(True)
            each(item)
        self.bool(False)

    def done(self):
        data = bytes(self.front) + bytes(reversed(self.back))
        assert len(data) <= 256, "keep seeds at most 256 bytes (1-byte lengths)"
        return data


def stream_input(first, chunk_lens, stream):
    """line_framing / chat_session: first byte, chunk lengths, stream."""
    data = bytes([first]) + bytes(chunk_lens) + stream + bytes([len(chunk_lens)])
    assert len(data) <= 256
    return data


# --------------------------------------------------------------- chat_hub
HUB_OPS = ["Connect", "Line", "Raw", "Eof", "Disconnect", "Drain"]
LINE_OPS = ["Say", "Nick", "Who", "Rooms", "Help", "Join", "Msg", "Me", "Quit", "Bye"]
REASONS = ["Disconnected", "TooSlow", "IdleTimeout"]
POOL = {"alice": 0, "bob": 1, "Carol": 2, "lobby": 3, "rust": 4, "x": 5, "guest1": 7}


def name(e, n):
    if isinstance(n, tuple) and n[0] == "guest":
        e.variant(1, 3)
        e.u8(n[1])
    elif isinstance(n, tuple) and n[0] == "shout":
        e.variant(0, 3)
        e.u8(POOL[n[1]])
        e.bool(True)
    elif n in POOL:
        e.variant(0, 3)
        e.u8(POOL[n])
        e.bool(False)
    else:
        e.variant(2, 3)
        e.string(n)


def line_op(e, op):
    kind, *args = op
    e.variant(LINE_OPS.index(kind), len(LINE_OPS))
    if kind in ("Say", "Me", "Quit"):
        e.string(args[0])
    elif kind == "Nick":
        name(e, args[0])
    elif kind == "Join":
        e.bool(args[0])
        name(e, args[1])
    elif kind == "Msg":
        name(e, args[0])
        e.string(args[1])


def hub_op(e, op):
    kind, *args = op
    e.variant(HUB_OPS.index(kind), len(HUB_OPS))
    if kind == "Line":
        e.u8(args[0])
        line_op(e, args[1])
        e.bool(len(args) > 2 and args[2])
    elif kind == "Raw":
        e.u8(args[0])
        e.vec(args[1], e.u8)
    elif kind == "Eof":
        e.u8(args[0])
    elif kind == "Disconnect":
        e.u8(args[0])
        e.variant(REASONS.index(args[1]), 3)
    elif kind == "Drain":
        e.u8(args[0])
        e.u16(args[1])


def hub_input(max_line, out_limit, shutdown, ops):
    e = Enc()
    e.u8(max_line)
    e.u16(out_limit)
    e.bool(shutdown)
    e.vec(ops, lambda op: hub_op(e, op))
    return e.done()


# ------------------------------------------------------------ echo_stream
def echo_input(out_limit, iovecs, ops):
    e = Enc()
    e.u16(out_limit)
    e.u8(iovecs)

    def op(o):
        kind, *args = o
        e.variant(["Send", "Read", "Write", "Shutdown"].index(kind), 4)
        if kind == "Send":
            e.vec(args[0], e.u8)
        elif kind in ("Read", "Write"):
            e.u16(args[0])

    e.vec(ops, op)
    return e.done()


# --------------------------------------------------------------- udp_echo
def udp_input(max_datagrams, max_bytes, ops):
    e = Enc()
    e.u8(max_datagrams)
    e.u16(max_bytes)

    def op(o):
        kind, *args = o
        e.variant(["Datagram", "SendRoom", "Writable"].index(kind), 3)
        if kind == "Datagram":
            v6, host, port, payload = args
            e.bool(v6)
            e.u8(host)
            e.u16(port)
            e.vec(payload, e.u8)
        elif kind == "SendRoom":
            e.u8(args[0])

    e.vec(ops, op)
    return e.done()


SEEDS = {
    "line_framing": {
        "lf-crlf-empty": stream_input(8, [], b"hello\nworld\r\n\n\r\nx\ry\n"),
        "split-reads": stream_input(4, [1, 2, 3, 0], b"ab\r\ncdefgh\nij\r\n\r"),
        "too-long-skipped": stream_input(3, [2], b"abc\r\nabcd\r\n" + b"z" * 40 + b"\nok\n"),
        "max-line-zero": stream_input(0, [], b"\n\r\n\na\n"),
        "binary": stream_input(16, [5, 1], b"\xff\x00\r\r\n\xc3\xa9\r\n\x1b[2J\nlast"),
        "long-line-in-pieces": stream_input(200, [100, 50, 7], b"q" * 199 + b"\r\n" + b"w" * 30),
    },
    "chat_session": {
        "every-command": stream_input(64, [], b"hello\r\n/nick alice\n/who\n/rooms\n/join rust\n/me waves\n/msg guest2 hi\n/help\n/quit gone\n"),
        "errors": stream_input(32, [3, 1, 7], b"/nick Guest2\n/nick bad name\n/join ##x\n/dance\n/msg nobody hi\n/who x\n\xff\xfe\nbye\n"),
        "too-long": stream_input(10, [], b"0123456789A\nok\n0123456789ABCDEF" + b"more\n/who\n"),
        "controls": stream_input(80, [9], b"\x1b[2J\x07 ring\n/me \xc2\x85 next\n\t tab\n/nick GUEST1\nlast"),
        "cross-room": stream_input(40, [], b"/join side\n/who\n/msg GUEST3 psst\n/join #lobby\n/rooms\n/quit\nignored\n"),
    },
    "client_lines": {
        "crlf-and-bye": stream_input(63, [], b"hello\r\nworld\n\nbye\r\nnot sent\n"),
        "pieces": stream_input(3, [2, 5, 1], b"abcdefghij\nab\r\nabcd\r\nbyebye\n bye\nBye\nb"),
        "controls": stream_input(39, [7], b"\x1b[2J\x07\tok\n\xc2\x85\xc2\xa0\n\xff\xfe\n\xe4\xbd\xa0\xe5\xa5\xbd\nby"),
        "bye-split": stream_input(15, [1, 1, 1, 1], b"b" b"y" b"e" b"\n" b"after\n"),
    },
    "chat_hub": {
        "nick-join-msg": hub_input(64, 4000, False, [
            ("Line", 0, ("Nick", "alice")),
            ("Line", 1, ("Nick", ("shout", "alice"))),
            ("Line", 1, ("Join", True, "rust"), True),
            ("Line", 2, ("Say", "hi all")),
            ("Line", 0, ("Msg", ("guest", 2), "psst")),
            ("Connect",),
            ("Line", 3, ("Who",)),
            ("Line", 3, ("Rooms",)),
            ("Drain", 0, 100),
            ("Eof", 1),
            ("Disconnect", 2, "IdleTimeout"),
        ]),
        "too-slow": hub_input(64, 300, False, [
            ("Line", 0, ("Say", "x" * 30)),
            ("Line", 0, ("Say", "y" * 30)),
            ("Line", 0, ("Say", "z" * 30)),
            ("Drain", 1, 400),
            ("Line", 0, ("Say", "w" * 30)),
            ("Line", 1, ("Me", "still here")),
        ]),
        "shutdown": hub_input(48, 2000, True, [
            ("Line", 0, ("Join", False, "rust")),
            ("Line", 1, ("Join", True, ("shout", "rust"))),
            ("Line", 2, ("Nick", "Carol")),
            ("Line", 2, ("Quit", "bye now")),
            ("Connect",),
        ]),
        "raw-pieces": hub_input(20, 2000, False, [
            ("Raw", 0, list(b"/ni")),
            ("Raw", 0, list(b"ck bob\r")),
            ("Raw", 0, list(b"\nhello\n")),
            ("Raw", 1, list(b"a very long line over twenty")),
            ("Raw", 1, list(b" bytes\n/who\n")),
            ("Line", 2, ("Bye",)),
            ("Eof", 0),
        ]),
    },
    "echo_stream": {
        "backpressure": echo_input(15, 0, [
            ("Send", list(range(40))),
            ("Read", 99),
            ("Write", 3),
            ("Read", 99),
            ("Write", 0),
            ("Write", 50),
            ("Shutdown",),
            ("Read", 99),
            ("Write", 7),
        ]),
        "many-small": echo_input(999, 3, [
            ("Send", list(b"Hello,")),
            ("Read", 2),
            ("Send", list(b"Server")),
            ("Read", 0),
            ("Write", 1),
            ("Read", 20),
            ("Write", 2),
            ("Shutdown",),
            ("Read", 5),
        ]),
    },
    "udp_echo": {
        "guarded-ports": udp_input(4, 100, [
            ("Datagram", False, 1, 0, list(b"a")),
            ("Datagram", False, 1, 7, list(b"b")),
            ("Datagram", True, 1, 13, list(b"c")),
            ("Datagram", False, 2, 17, list(b"d")),
            ("Datagram", True, 2, 19, list(b"e")),
            ("Datagram", False, 1, 20, list(b"f")),
            ("Datagram", True, 1, 12345, []),
        ]),
        "queue-bounds": udp_input(2, 10, [
            ("SendRoom", 0),
            ("Datagram", False, 1, 40000, list(b"12345")),
            ("Datagram", False, 1, 40001, list(b"678")),
            ("Datagram", True, 1, 40002, list(b"9")),
            ("Datagram", False, 1, 40003, list(b"abcdef")),
            ("Writable",),
            ("SendRoom", 1),
            ("Writable",),
            ("Datagram", False, 1, 40004, []),
            ("SendRoom", 5),
            ("Writable",),
        ]),
    },
}

# reactor_sim: the simulation takes its first choices from the input, 8
# bytes (a little-endian u64) per choice, and the rest from a generator
# seeded by the input. Seeds: nothing given (all choices from the generator),
# and the first choices of a few scenario families (the first draw picks
# bulk or not: below 200 of 1000 is bulk).
SEEDS["reactor_sim"] = {
    "defaults": b"",
    # bulk; --max-conns 2 + 10; --out-limit 4 MiB; --max-pending default
    "bulk": b"".join(v.to_bytes(8, "little") for v in (0, 10, 1, 999)),
    "not-bulk": (999).to_bytes(8, "little") + bytes(range(64)),
    "noise": bytes((i * 37 + 11) % 256 for i in range(96)),
}

if __name__ == "__main__":
    for target, seeds in SEEDS.items():
        folder = os.path.join(HERE, "corpus", target)
        os.makedirs(folder, exist_ok=True)
        for seed_name, data in seeds.items():
            with open(os.path.join(folder, seed_name), "wb") as f:
                f.write(data)
        print(target, len(seeds), "seeds,", sum(len(d) for d in seeds.values()), "bytes")
