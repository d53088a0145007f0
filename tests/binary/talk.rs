//! `sockloop talk` end to end: two real talk processes (or one and a raw
//! socket in the test) over loopback, stdin and stdout as pipes. The
//! listening side uses port 0 and the test reads the real port from its
//! `listening on ADDR` line on stderr.

use crate::client_support;
use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use client_support::{closed_tcp_port, Client};
use common::WAIT;

/// Start `talk --listen 127.0.0.1:0` and return it with its real address.
fn listener() -> (Client, SocketAddr) {
    let mut l = Client::start(&["talk", "--listen", "127.0.0.1:0"]);
    let line = l.stderr.wait_for("listening on ");
    let addr = line
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
    (l, addr)
}

/// A connected pair: (listening side, connecting side), both past
/// `connected to PEER`.
fn pair() -> (Client, Client) {
    let (mut l, addr) = listener();
    let addr = addr.to_string();
    let mut c = Client::start(&["talk", &addr]);
    assert_eq!(
        c.stderr.wait_for("connected to "),
        format!("connected to {addr}")
    );
    l.stderr.wait_for("connected to 127.0.0.1:");
    (l, c)
}

fn assert_exit(client: &mut Client, code: i32) {
    let status = client.wait_exit();
    assert_eq!(
        status.code(),
        Some(code),
        "stdout: {:?}, stderr: {:?}",
        client.stdout.seen,
        client.stderr.seen
    );
}

#[test]
fn lines_go_both_ways_and_bye_from_the_connecting_side_ends_both() {
    let (mut l, mut c) = pair();
    l.type_line("hello from the listener");
    assert_eq!(c.stdout.next_line().unwrap(), "hello from the listener");
    c.type_line("hello from the connector");
    assert_eq!(l.stdout.next_line().unwrap(), "hello from the connector");
    // Full duplex: both type before either reads.
    l.type_line("crossing 1");
    c.type_line("crossing 2");
    assert_eq!(c.stdout.next_line().unwrap(), "crossing 1");
    assert_eq!(l.stdout.next_line().unwrap(), "crossing 2");
    c.type_line("bye");
    assert_eq!(l.stdout.next_line().unwrap(), "bye");
    assert_exit(&mut l, 0);
    assert_exit(&mut c, 0);
    assert!(
        c.stdout.seen.iter().all(|l| l != "bye"),
        "the side that typed bye does not print it"
    );
}

#[test]
fn bye_from_the_listening_side_ends_both() {
    let (mut l, mut c) = pair();
    c.type_line("hi");
    assert_eq!(l.stdout.next_line().unwrap(), "hi");
    l.type_line("bye");
    assert_eq!(c.stdout.next_line().unwrap(), "bye");
    assert_exit(&mut c, 0);
    assert_exit(&mut l, 0);
}

#[test]
fn end_of_stdin_says_bye_for_the_user() {
    let (mut l, mut c) = pair();
    // An unfinished last line still arrives as a line of its own.
    c.type_raw(b"last words");
    c.close_stdin();
    assert_eq!(l.stdout.next_line().unwrap(), "last words");
    assert_eq!(l.stdout.next_line().unwrap(), "bye");
    assert_exit(&mut l, 0);
    assert_exit(&mut c, 0);
}

#[test]
fn nothing_typed_after_bye_is_sent() {
    let (mut l, mut c) = pair();
    // One write, so the client reads it in one chunk.
    c.type_raw(b"one\nbye\nnot sent\n");
    assert_eq!(l.stdout.next_line().unwrap(), "one");
    assert_eq!(l.stdout.next_line().unwrap(), "bye");
    assert_exit(&mut l, 0);
    assert_exit(&mut c, 0);
    assert_eq!(l.stdout.seen, ["one", "bye"]);
}

#[test]
fn a_peer_that_vanishes_is_reported_and_exits_1() {
    let (mut l, mut c) = pair();
    c.type_line("about to vanish");
    assert_eq!(l.stdout.next_line().unwrap(), "about to vanish");
    c.kill();
    assert_exit(&mut l, 1);
    let last = l.stderr.seen.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("sockloop: 127.0.0.1:")
            && (last.contains("without saying bye") || last.contains("lost")),
        "{:?}",
        l.stderr.seen
    );
}

#[test]
fn the_listener_takes_exactly_one_peer() {
    let (l, addr) = listener();
    let addr_text = addr.to_string();
    let mut c = Client::start(&["talk", &addr_text]);
    c.stderr.wait_for("connected to ");
    // The listener was closed before `connected to` was printed.
    let mut l = l;
    l.stderr.wait_for("connected to ");
    let second = TcpStream::connect_timeout(&addr, WAIT);
    assert!(
        second.is_err(),
        "a second peer could connect to a talk that already has one"
    );
}

#[test]
fn connecting_to_nobody_fails_with_the_address() {
    let addr = closed_tcp_port();
    let mut c = Client::start(&["talk", &addr.to_string()]);
    assert_exit(&mut c, 1);
    assert_eq!(c.stderr.seen.len(), 1, "{:?}", c.stderr.seen);
    assert!(
        c.stderr.seen[0].starts_with(&format!("sockloop: connect to {addr}: ")),
        "{:?}",
        c.stderr.seen
    );
}

/// The peer's bytes reach our terminal only as text: control characters
/// (an escape sequence here) become U+FFFD, TAB stays, CRLF is a line end.
#[test]
fn received_control_characters_are_neutralised() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let mut c = Client::start(&["talk", &addr]);
    let (mut peer, _) = server.accept().unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    c.stderr.wait_for("connected to ");
    peer.write_all(b"\x1b[2Jred\talert\x07\r\nbye\n").unwrap();
    assert_eq!(
        c.stdout.next_line().unwrap(),
        "\u{FFFD}[2Jred\talert\u{FFFD}"
    );
    assert_eq!(c.stdout.next_line().unwrap(), "bye");
    assert_exit(&mut c, 0);
}

/// Our `bye` is followed by the end of our stream, and we wait for the peer
/// to close rather than resetting the connection under it.
#[test]
fn our_bye_is_followed_by_a_clean_end_of_stream() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let mut c = Client::start(&["talk", &addr]);
    let (peer, _) = server.accept().unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let mut from_client = BufReader::new(peer.try_clone().unwrap());
    c.type_line("hello");
    c.type_line("bye");
    let mut got = String::new();
    while from_client.read_line(&mut got).unwrap() > 0 {}
    assert_eq!(got, "hello\nbye\n", "then end of stream");
    // The client is still there, reading, until we close.
    let mut peer = peer;
    peer.write_all(b"late line\n").unwrap();
    assert_eq!(c.stdout.next_line().unwrap(), "late line");
    drop(peer);
    drop(from_client);
    assert_exit(&mut c, 0);
}

/// A peer that never reads must not make the client grow: once the outbox
/// and the kernel buffers are full, the client stops reading stdin, and the
/// test's writer, feeding stdin through a socket, sees stdin stop draining.
/// Then the peer reads, and every typed byte arrives, in order.
#[test]
fn a_peer_that_never_reads_stalls_stdin_instead_of_growing_the_client() {
    use mio::{Events, Interest, Poll, Token};
    use std::io::{ErrorKind, Read};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::process::Stdio;
    use std::time::Duration;

    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let (typist, client_stdin) = UnixStream::pair().unwrap();
    let mut c =
        Client::start_with_stdin(&["talk", &addr], Stdio::from(OwnedFd::from(client_stdin)));
    let (mut peer, _) = server.accept().unwrap();
    c.stderr.wait_for("connected to ");

    // Type numbered lines as fast as stdin drains, without blocking: when it
    // stops draining for a whole second, the client has stopped reading.
    typist.set_nonblocking(true).unwrap();
    let mut typist = mio::net::UnixStream::from_std(typist);
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut typist, Token(0), Interest::WRITABLE)
        .unwrap();
    let mut events = Events::with_capacity(4);
    const GIVE_UP: usize = 256 << 20;
    let line = |i: usize| format!("line {i:09}\n");
    let (mut next_line, mut pending, mut typed) = (0usize, Vec::new(), 0usize);
    loop {
        if pending.is_empty() {
            pending = line(next_line).into_bytes();
            next_line += 1;
        }
        match typist.write(&pending) {
            Ok(n) => {
                typed += n;
                pending.drain(..n);
                assert!(typed < GIVE_UP, "stdin never stopped draining");
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                poll.poll(&mut events, Some(Duration::from_secs(1)))
                    .unwrap();
                if events.is_empty() {
                    break; // stalled
                }
            }
            Err(e) => panic!("typing: {e}"),
        }
    }
    // The pipe from the typist to the peer (two socket buffers, the outbox,
    // TCP buffers) holds a few MiB at most; far below the give-up mark.
    assert!(typed < 64 << 20, "{typed} bytes absorbed");
    let rss = common::rss_bytes(c.pid());
    assert!(rss < 32 << 20, "client RSS {rss} bytes while stalled");

    // Now the peer reads: everything typed arrives, in order, and the
    // typist's end of input becomes the client's `bye`.
    let reader = std::thread::spawn(move || {
        peer.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got // and the peer's socket closes here
    });
    while !pending.is_empty() {
        match typist.write(&pending) {
            Ok(n) => drop(pending.drain(..n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                poll.poll(&mut events, Some(WAIT)).unwrap();
                assert!(!events.is_empty(), "stdin did not drain once the peer read");
            }
            Err(e) => panic!("typing: {e}"),
        }
    }
    drop(typist);
    let got = reader.join().unwrap();
    let mut expected: String = (0..next_line).map(line).collect();
    expected.push_str("bye\n");
    assert_eq!(got.len(), expected.len());
    assert!(
        got == expected.as_bytes(),
        "the bytes differ from what was typed"
    );
    assert_exit(&mut c, 0);
}
