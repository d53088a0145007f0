//! The chat service end to end: the real `sockloop serve --chat 127.0.0.1:0`
//! over loopback sockets. The rows of the chat table (docs/protocol.md), Chinese text,
//! any segmentation of input, the errors, and the three limits
//! (`--out-limit`, `--max-conns`, `--idle-timeout`) each provoked.
//!
//! Every wait has a deadline (`common::WAIT`); no test sleeps.

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Server, WAIT};

fn chat_server(extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec!["--chat", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args, 1);
    let addr = server.addr("chat");
    (server, addr)
}

/// A chat client that reads lines with deadlines, from its own buffer (so a
/// timeout never loses half a line).
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    nick: String,
}

impl Client {
    /// Connect without reading anything.
    fn connect_raw(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        Client::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            nick: String::new(),
        }
    }

    /// Connect and read the welcome line, learning the nickname.
    fn join(addr: SocketAddr) -> Client {
        let mut c = Client::connect_raw(addr);
        c.read_welcome();
        c
    }

    fn read_welcome(&mut self) {
        let welcome = self.line();
        self.nick = common::welcome_nick(&welcome);
        assert!(welcome.contains(" in #lobby;"), "{welcome:?}");
    }

    fn send(&mut self, text: &str) {
        self.send_raw(format!("{text}\n").as_bytes());
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    /// The next line within `within`, or `None` if none came in time.
    /// Panics if the server closes the connection.
    fn try_line(&mut self, within: Duration) -> Option<String> {
        match self.next_line_or_end(within) {
            Read_::Line(line) => Some(line),
            Read_::Timeout => None,
            Read_::Closed => panic!("{}: connection closed; buffered {:?}", self.nick, self.buf),
        }
    }

    /// The next line (without its LF); panics after `WAIT`.
    fn line(&mut self) -> String {
        self.try_line(WAIT)
            .unwrap_or_else(|| panic!("{}: no line within {WAIT:?}", self.nick))
    }

    fn expect(&mut self, expected: &str) {
        assert_eq!(self.line(), expected, "{} received", self.nick);
    }

    /// Read until the server closes the connection; returns the lines read
    /// on the way. Panics if it stays open past `WAIT`.
    fn lines_until_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.next_line_or_end(WAIT) {
                Read_::Line(line) => lines.push(line),
                Read_::Closed => return lines,
                Read_::Timeout => panic!("{}: still open after {WAIT:?}", self.nick),
            }
        }
    }

    fn expect_closed(&mut self) {
        let rest = self.lines_until_closed();
        assert!(
            rest.is_empty(),
            "{}: lines before close: {rest:?}",
            self.nick
        );
    }

    fn next_line_or_end(&mut self, within: Duration) -> Read_ {
        let deadline = Instant::now() + within;
        loop {
            if let Some(lf) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=lf).collect();
                let text = String::from_utf8(line).expect("the server sends UTF-8");
                return Read_::Line(text.strip_suffix('\n').unwrap().to_string());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Read_::Timeout;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Read_::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Read_::Timeout
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Read_::Closed,
                Err(e) => panic!("{}: read: {e}", self.nick),
            }
        }
    }
}

enum Read_ {
    Line(String),
    Timeout,
    Closed,
}

/// Clients 0..n joined in order, each having read the join notices of the
/// ones after it.
fn clients(addr: SocketAddr, n: usize) -> Vec<Client> {
    let mut all: Vec<Client> = Vec::new();
    for _ in 0..n {
        let c = Client::join(addr);
        for earlier in &mut all {
            earlier.expect(&format!("* {} joined #lobby", c.nick));
        }
        all.push(c);
    }
    all
}

#[test]
fn every_row_of_the_chat_table() {
    let (_server, addr) = chat_server(&[]);
    let mut cs = clients(addr, 3);
    let [a, b, c] = &mut cs[..] else {
        unreachable!()
    };

    // text: the others get it, the sender nothing (checked by the next line
    // it reads being the answer to its own later command).
    a.send("hello everyone");
    b.expect(&format!("<{}> hello everyone", a.nick));
    c.expect(&format!("<{}> hello everyone", a.nick));

    // /nick: everyone in the room, the sender included.
    let old = std::mem::replace(&mut a.nick, "alice".into());
    a.send("/nick alice");
    for x in [&mut *a, &mut *b, &mut *c] {
        x.expect(&format!("* {old} is now known as alice"));
    }

    // /who, in join order.
    b.send("/who");
    b.expect(&format!("* users in #lobby: alice, {}, {}", b.nick, c.nick));

    // /join: the three notices.
    c.send("/join rust");
    a.expect(&format!("* {} left #lobby", c.nick));
    b.expect(&format!("* {} left #lobby", c.nick));
    c.expect("* you are now in #rust");
    b.send("/join #rust");
    a.expect(&format!("* {} left #lobby", b.nick));
    c.expect(&format!("* {} joined #rust", b.nick));
    b.expect("* you are now in #rust");

    // /rooms.
    a.send("/rooms");
    a.expect("* rooms: #lobby (1), #rust (2)");

    // text stays in its room.
    b.send("rust only");
    c.expect(&format!("<{}> rust only", b.nick));

    // /msg across rooms.
    c.send("/msg ALICE psst");
    a.expect(&format!("*{}* psst", c.nick));
    c.expect("-> *alice* psst");

    // /me.
    c.send("/me waves");
    b.expect(&format!("* {} waves", c.nick));

    // /help.
    a.send("/help");
    let first = a.line();
    assert!(first.starts_with("* "), "{first}");
    let mut help = vec![first];
    while !help.last().unwrap().contains("any other line") {
        help.push(a.line());
    }
    assert!(
        help.iter().any(|l| l.contains("/msg NICK TEXT")),
        "{help:?}"
    );

    // /quit with a reason.
    b.send("/quit see you");
    b.expect("* bye");
    b.expect_closed();
    c.expect(&format!("* {} left #rust (see you)", b.nick));

    // bye.
    c.send("bye");
    c.expect("* bye");
    c.expect_closed();

    // A plain disconnect.
    let d = Client::join(addr);
    a.expect(&format!("* {} joined #lobby", d.nick));
    d.stream.shutdown(Shutdown::Both).unwrap();
    a.expect(&format!("* {} left #lobby", d.nick));
    a.send("/who");
    a.expect("* users in #lobby: alice");
}

#[test]
fn chinese_text_round_trips() {
    let (_server, addr) = chat_server(&[]);
    let mut cs = clients(addr, 2);
    let [a, b] = &mut cs[..] else { unreachable!() };
    a.send("你好，世界");
    b.expect(&format!("<{}> 你好，世界", a.nick));
    b.send("/nick 你好");
    b.expect("* error: invalid nickname: 你好 (1 to 32 ASCII letters, digits, _ or -)");
}

#[test]
fn a_line_split_over_many_small_writes() {
    let (_server, addr) = chat_server(&[]);
    let mut cs = clients(addr, 2);
    let [a, b] = &mut cs[..] else { unreachable!() };
    for byte in "split into single bytes, 你好, CRLF\r\n".bytes() {
        a.send_raw(&[byte]);
    }
    b.expect(&format!("<{}> split into single bytes, 你好, CRLF", a.nick));
}

#[test]
fn many_lines_in_one_write() {
    let (_server, addr) = chat_server(&[]);
    let mut cs = clients(addr, 2);
    let [a, b] = &mut cs[..] else { unreachable!() };
    let batch: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    a.send_raw(batch.as_bytes());
    for i in 0..2000 {
        b.expect(&format!("<{}> line {i}", a.nick));
    }
}

#[test]
fn too_long_lines_and_invalid_utf8_are_errors_and_the_client_stays() {
    let (_server, addr) = chat_server(&["--max-line", "16"]);
    let mut cs = clients(addr, 2);
    let [a, b] = &mut cs[..] else { unreachable!() };
    let too_long = "* error: line too long (the limit is 16 bytes)";

    a.send("sixteen bytes ok");
    b.expect(&format!("<{}> sixteen bytes ok", a.nick));
    a.send("seventeen bytes!!");
    a.expect(too_long);

    // A megabyte without LF, in pieces: one error, everything skipped.
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..16 {
        a.send_raw(&chunk);
    }
    a.send_raw(b"still the long line\nafter\n");
    a.expect(too_long);
    b.expect(&format!("<{}> after", a.nick));

    a.send_raw(b"caf\xe9\n");
    a.expect("* error: line is not valid UTF-8");
    a.send("/nope");
    a.expect("* error: unknown command: /nope (/help lists commands)");
    a.send("/who");
    a.expect(&format!("* users in #lobby: {}, {}", a.nick, b.nick));
}

#[test]
fn end_of_input_sends_the_last_line_then_leaves() {
    let (_server, addr) = chat_server(&[]);
    let mut cs = clients(addr, 2);
    let [a, b] = &mut cs[..] else { unreachable!() };
    a.send_raw(b"no newline at the end");
    a.stream.shutdown(Shutdown::Write).unwrap();
    b.expect(&format!("<{}> no newline at the end", a.nick));
    b.expect(&format!("* {} left #lobby", a.nick));
    a.expect_closed();
}

#[test]
fn a_slow_reader_is_disconnected_and_the_others_get_everything() {
    let (_server, addr) = chat_server(&["--out-limit", "16384"]);
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("* {} joined #lobby", b.nick));
    // The slow one: a small receive buffer, and it never reads.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect_timeout(&addr.into(), WAIT).unwrap();
    let mut slow = Client::from_stream(socket.into());
    slow.read_welcome();
    a.expect(&format!("* {} joined #lobby", slow.nick));
    b.expect(&format!("* {} joined #lobby", slow.nick));

    // A talks in batches; B reads each batch before the next is sent, so B
    // keeps up (a reader slower than the talker would be too slow as well).
    // The slow one's buffers fill up until its queue passes --out-limit.
    let too_slow = format!("* {} left #lobby (too slow)", slow.nick);
    let filler = "x".repeat(200);
    let mut sent = 0u32;
    let mut notice_seen = false;
    while !notice_seen {
        assert!(sent < 100_000, "no too-slow notice after {sent} lines");
        let batch: String = (sent..sent + 40)
            .map(|i| format!("{i} {filler}\n"))
            .collect();
        a.send_raw(batch.as_bytes());
        for i in sent..sent + 40 {
            let mut line = b.line();
            if line == too_slow {
                notice_seen = true;
                line = b.line();
            }
            let expected = format!("<{}> {i} {filler}", a.nick);
            assert_eq!(line, expected, "B receives every line, in order");
        }
        sent += 40;
    }
    a.expect(&too_slow);
    a.send("the end");
    b.expect(&format!("<{}> the end", a.nick));

    // The slow one got a gapless prefix of the lines, then was closed.
    let got = slow.lines_until_closed();
    assert!((got.len() as u32) < sent, "it did not get everything");
    for (i, line) in got.iter().enumerate() {
        assert!(line.starts_with(&format!("<{}> {i} ", a.nick)), "{line:?}");
    }
}

#[test]
fn max_conns_turns_new_clients_away() {
    let (_server, addr) = chat_server(&["--max-conns", "2"]);
    let mut cs = clients(addr, 2);
    let [a, b] = &mut cs[..] else { unreachable!() };
    let mut third = Client::connect_raw(addr);
    third.expect("* error: server full");
    third.expect_closed();
    // The two still talk, and a freed place can be taken again.
    a.send("still here");
    b.expect(&format!("<{}> still here", a.nick));
    b.send("/quit");
    b.expect("* bye");
    b.expect_closed();
    a.expect(&format!("* {} left #lobby", b.nick));
    // The server closed its side and lingers until the client closes its
    // own (as every chat client does on the server's close), so that input
    // the client may still send cannot turn the close into a reset.
    cs.truncate(1);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut fourth = Client::connect_raw(addr);
        let first = fourth.line();
        if first.starts_with("* welcome to sockloop chat, you are guest") {
            break;
        }
        // The server may not have seen B's close yet.
        assert_eq!(first, "* error: server full");
        assert!(Instant::now() < deadline, "B's place never came free");
    }
}

#[test]
fn idle_clients_are_closed_with_a_notice() {
    let (_server, addr) = chat_server(&["--idle-timeout", "1"]);
    let mut watcher = Client::join(addr);
    let mut idle = Client::join(addr);
    watcher.expect(&format!("* {} joined #lobby", idle.nick));
    // The watcher stays active (a /who whenever it has heard nothing for a
    // quarter of the timeout) and waits for the idle one's leave notice.
    let notice = format!("* {} left #lobby (idle timeout)", idle.nick);
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no idle timeout notice within {WAIT:?}"
        );
        match watcher.try_line(Duration::from_millis(250)) {
            Some(line) if line == notice => break,
            Some(line) => assert!(line.starts_with("* users in #lobby"), "{line:?}"),
            None => watcher.send("/who"),
        }
    }
    assert!(idle.lines_until_closed().is_empty());
    watcher.send("/who");
    let mut line = watcher.line();
    while line != format!("* users in #lobby: {}", watcher.nick) {
        assert!(line.starts_with("* users in #lobby"), "{line:?}");
        line = watcher.line();
    }
}

/// Garbage from one client: a megabyte of LFs, half a UTF-8 character at the
/// end of a write, random binary with NULs. The server never panics,
/// answers per the protocol (errors to the sender, sanitized relays to the others)
/// and keeps serving.
#[test]
fn garbage_never_breaks_the_chat() {
    let (_server, addr) = chat_server(&["--max-line", "64"]);
    let mut cs = clients(addr, 2);
    let [a, b] = &mut cs[..] else { unreachable!() };

    // A megabyte of empty lines: ignored, no output to anyone. The marker
    // line after it is the first thing b sees.
    a.send_raw(&vec![b'\n'; 1 << 20]);
    a.send("marker 1");
    b.expect(&format!("<{}> marker 1", a.nick));

    // Half a character, then the rest: "你" is E4 BD A0.
    a.send_raw(b"half \xe4\xbd");
    b.send("meanwhile");
    a.expect(&format!("<{}> meanwhile", b.nick));
    a.send_raw(b"\xa0 done\n");
    b.expect(&format!("<{}> half 你 done", a.nick));

    // Random binary (xorshift, NULs and control bytes included).
    let garbage = common::pseudo_random_bytes(0x9e37_79b9, 64 * 1024);
    a.send_raw(&garbage);
    a.send_raw(b"\nmarker 2\n");
    // Everything b receives before the marker is a relay from a, valid
    // UTF-8 (Client::line checks) with no control characters but TAB.
    loop {
        let line = b.line();
        if line == format!("<{}> marker 2", a.nick) {
            break;
        }
        assert!(
            line.starts_with(&format!("<{}> ", a.nick)) || line.starts_with("* "),
            "{line:?}"
        );
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "control character relayed: {line:?}"
        );
    }
    // a got only error lines (or nothing) for its garbage, then everyone is
    // still served.
    a.send("/who");
    loop {
        let line = a.line();
        if line.starts_with("* users in #lobby: ") {
            break;
        }
        assert!(line.starts_with("* error: "), "{line:?}");
    }
    b.send("still here");
    a.expect(&format!("<{}> still here", b.nick));
}

/// The `* ` lines one `/help` sends, counted by asking once.
fn help_line_count(c: &mut Client) -> usize {
    c.send("/help");
    c.send("/who");
    let mut n = 0;
    while !c.line().starts_with("* users in #lobby") {
        n += 1;
    }
    n
}

/// A client that reads gets every line it is owed, however much output is
/// queued for it at once: 1500 `/help` in one write, as
/// `yes /help | head -n 1500 | sockloop chat` sends them. This used to stall
/// for good after about 11 000 lines: when a turn's write budget ran out
/// while the socket still took every byte, nothing brought the connection
/// back (no WRITABLE edge comes for a send buffer that never filled).
#[test]
fn a_reading_client_gets_every_line_it_is_owed() {
    let (_server, addr) = chat_server(&[]);
    let mut c = Client::join(addr);
    let per_help = help_line_count(&mut c);
    let requests = 1500;
    let mut burst = "/help\n".repeat(requests);
    burst.push_str("/quit\n");
    c.send_raw(burst.as_bytes());
    let lines = c.lines_until_closed();
    assert_eq!(
        lines.len(),
        requests * per_help + 1,
        "every help line and the bye; last lines: {:?}",
        &lines[lines.len().saturating_sub(3)..]
    );
    assert_eq!(lines.last().map(String::as_str), Some("* bye"));
}

/// A reader that pauses while thousands of lines pile up for it, then reads
/// as fast as it can, gets all of them; and SIGTERM flushes that backlog
/// before the shutdown notice and the close. Both used to stop after a few
/// thousand lines (the write budget lost its wake-up; see above).
#[test]
fn a_paused_reader_gets_its_whole_backlog_even_through_shutdown() {
    let (mut server, addr) = chat_server(&["--out-limit", "16777216"]);
    let mut reader = Client::join(addr);
    let mut talker = Client::join(addr);
    reader.expect(&format!("* {} joined #lobby", talker.nick));
    let filler = "y".repeat(1000);
    let lines = 8000;
    let batch: String = (0..lines).map(|i| format!("{i} {filler}\n")).collect();
    // The reader reads nothing while the talker sends 8 MB; its own /who
    // answer proves the server has handled every line before it.
    let mut writer = talker.stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || writer.write_all(batch.as_bytes()).unwrap());
    sending.join().unwrap();
    talker.send("/who");
    assert!(talker.line().starts_with("* users in #lobby"));
    server.signal("TERM");
    talker.expect("* server shutting down");
    let got = reader.lines_until_closed();
    let relayed = got.iter().filter(|l| l.starts_with('<')).count();
    assert_eq!(relayed, lines, "every line reached the paused reader");
    for (i, line) in got.iter().take(lines).enumerate() {
        assert!(
            line.starts_with(&format!("<{}> {i} ", talker.nick)),
            "line {i} in order: {:?}",
            &line[..line.len().min(40)]
        );
    }
    assert_eq!(
        got.last().map(String::as_str),
        Some("* server shutting down"),
        "the notice comes after the backlog"
    );
    talker.expect_closed();
    assert_eq!(server.wait_exit().code(), Some(0));
}

/// Output to a client is not input from it: a client that only receives
/// (the room keeps talking) is still idle and is closed at `--idle-timeout`.
#[test]
fn a_client_that_only_receives_is_still_idle() {
    let (_server, addr) = chat_server(&["--idle-timeout", "1"]);
    let mut talker = Client::join(addr);
    let mut listener = Client::join(addr);
    talker.expect(&format!("* {} joined #lobby", listener.nick));
    let notice = format!("* {} left #lobby (idle timeout)", listener.nick);
    let deadline = Instant::now() + WAIT;
    let mut said = 0u32;
    loop {
        assert!(
            Instant::now() < deadline,
            "the receiving-only client was never idle-closed ({said} lines relayed)"
        );
        talker.send(&format!("line {said}"));
        // Wait for the relay, so the listener really receives output, and
        // look out for the notice meanwhile.
        match listener.next_line_or_end(WAIT) {
            Read_::Line(line) => assert_eq!(line, format!("<{}> line {said}", talker.nick)),
            Read_::Closed => break,
            Read_::Timeout => panic!("no relay within {WAIT:?}"),
        }
        said += 1;
        if let Some(line) = talker.try_line(Duration::ZERO) {
            assert_eq!(line, notice);
            break;
        }
    }
    assert!(said > 0);
}

/// A client that sends more after `/quit` (or `bye`) still gets `* bye` and a
/// clean close, not a reset: the server shuts down its side and reads and
/// discards until the client closes (a lingering close). Closing with the
/// client's bytes unread made the kernel send RST, which can destroy the
/// `* bye` before the client reads it.
#[test]
fn input_after_quit_gets_a_clean_close_not_a_reset() {
    let (_server, addr) = chat_server(&[]);
    for quit in ["/quit", "bye"] {
        let mut c = Client::join(addr);
        c.send(quit);
        c.expect("* bye");
        // Sent after the server has answered, so it arrives after the
        // server read the quit: it is still unread when the server closes.
        c.send_raw("more after quit\n".repeat(100).as_bytes());
        let mut got = Vec::new();
        c.stream.set_read_timeout(Some(WAIT)).unwrap();
        loop {
            let mut chunk = [0u8; 4096];
            match c.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => panic!(
                    "after {quit:?}: {e} (kind {:?}), read so far {got:?}",
                    e.kind()
                ),
            }
        }
        assert!(got.is_empty(), "after {quit:?}: {got:?}");
    }
}
