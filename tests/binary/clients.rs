//! `sockloop send` and `sockloop chat` end to end: the real binary against a
//! real `sockloop serve` on loopback (port 0, real ports read from its
//! `listening` lines), or against a socket the test holds itself when the
//! test needs a peer that misbehaves on purpose (never replies, never
//! closes) or needs to see the exact bytes a client sends.

use crate::client_support;
use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Stdio;

use client_support::{closed_tcp_port, closed_udp_port, Client};
use common::{run, ChatClient, Server, WAIT};

fn echo_server() -> Server {
    Server::start(&["--echo", "127.0.0.1:0", "--udp-echo", "127.0.0.1:0"], 2)
}

fn chat_server() -> Server {
    Server::start(&["--chat", "127.0.0.1:0"], 1)
}

/// Runs `sockloop send ARGS...` to the end; returns (exit code, stdout, stderr).
fn send(args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["send"];
    all.extend_from_slice(args);
    let (status, out, err) = run(&all);
    (status.code(), out, err)
}

/// A failure is exactly one line on stderr, `sockloop: ...`.
fn assert_one_error_line(err: &str, wanted: &[&str]) {
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {err:?}");
    assert!(lines[0].starts_with("sockloop: "), "stderr: {err:?}");
    for w in wanted {
        assert!(lines[0].contains(w), "{w:?} not in {err:?}");
    }
}

// ---- send -------------------------------------------------------------

#[test]
fn send_over_tcp_prints_the_echo() {
    let server = echo_server();
    let to = server.addr("tcp-echo").to_string();
    let (code, out, err) = send(&["--to", &to, "Hello,Server"]);
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(out, "Received from server: Hello,Server\n");
    // MESSAGE words are joined with single spaces.
    let (code, out, _) = send(&["--to", &to, "Hello,", "big", "Server"]);
    assert_eq!(code, Some(0));
    assert_eq!(out, "Received from server: Hello, big Server\n");
}

#[test]
fn send_over_udp_prints_the_echo() {
    let server = echo_server();
    let to = server.addr("udp-echo").to_string();
    let (code, out, err) = send(&["--udp", "--to", &to, "Hello,", "UDP"]);
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(out, "Received from server: Hello, UDP\n");
}

/// A reply that already ends with a newline is printed as it is, not
/// followed by an empty line.
#[test]
fn a_reply_ending_in_a_newline_prints_one_line() {
    let server = echo_server();
    for to in [server.addr("tcp-echo"), server.addr("udp-echo")] {
        let to = to.to_string();
        let udp = to == server.addr("udp-echo").to_string();
        let mut args = vec!["--to", &to, "two\nlines\n"];
        if udp {
            args.insert(0, "--udp");
        }
        let (code, out, _) = send(&args);
        assert_eq!(code, Some(0));
        assert_eq!(out, "Received from server: two\nlines\n");
    }
}

/// A message of 1.5 MB (near the most a Linux command line can carry)
/// comes back whole. The client reads the echo while it is still writing;
/// on loopback the kernel's autotuned buffers would hold this much anyway,
/// so this checks large replies, not deadlock freedom.
#[test]
fn send_a_large_message_round_trips() {
    let server = Server::start(&["--echo", "127.0.0.1:0", "--out-limit", "4096"], 1);
    let to = server.addr("tcp-echo").to_string();
    // The whole command line must stay under Linux's 2 MiB ARG_MAX, and one
    // argument under 128 KiB: 15 words of 100 kB.
    let word = "x".repeat(100_000);
    let mut args = vec!["--to", to.as_str(), "--timeout", "10"];
    args.extend(std::iter::repeat_n(word.as_str(), 15));
    let (code, out, err) = send(&args);
    assert_eq!(code, Some(0), "stderr: {err}");
    let reply = out
        .strip_prefix("Received from server: ")
        .and_then(|r| r.strip_suffix('\n'))
        .expect("one Received line");
    assert_eq!(reply.len(), 15 * 100_000 + 14);
    assert!(reply.split(' ').all(|w| w == word));
}

#[test]
fn send_to_a_closed_tcp_port_fails_with_one_line() {
    let addr = closed_tcp_port();
    let (code, out, err) = send(&["--to", &addr.to_string(), "hi"]);
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    assert_one_error_line(&err, &[&format!("connect to {addr}"), "refused"]);
}

#[test]
fn send_over_udp_to_a_closed_port_fails_with_one_line() {
    let addr = closed_udp_port();
    let (code, out, err) = send(&["--udp", "--to", &addr.to_string(), "hi"]);
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    // The ICMP "port unreachable" arrives as ECONNREFUSED on a connected
    // UDP socket: a clear error, long before the timeout.
    assert_one_error_line(&err, &[&addr.to_string(), "refused"]);
}

/// A UDP server that receives but never answers: the client gives up after
/// --timeout with exit 1.
#[test]
fn send_over_udp_times_out_without_a_reply() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let addr = silent.local_addr().unwrap();
    let (code, out, err) = send(&[
        "--udp",
        "--to",
        &addr.to_string(),
        "--timeout",
        "0.3",
        "ping",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    assert_one_error_line(&err, &[&format!("no reply from {addr}"), "0.3s"]);
    // It did send, once.
    let mut buf = [0u8; 64];
    let (n, _) = silent.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
}

/// --timeout bounds TCP too: a server that accepts (the kernel completes the
/// handshake from the backlog) but never answers nor closes.
#[test]
fn send_over_tcp_times_out_when_the_server_never_closes() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let (code, out, err) = send(&["--to", &addr.to_string(), "--timeout", "0.3", "ping"]);
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    assert_one_error_line(&err, &[&format!("no reply from {addr}"), "0.3s"]);
    drop(silent);
}

// ---- chat -------------------------------------------------------------

/// Start `sockloop chat ADDR [--nick NAME]` with stdin a pipe and wait for
/// the welcome; returns the client and its nickname.
fn chat_client(addr: SocketAddr, nick: Option<&str>) -> (Client, String) {
    let addr = addr.to_string();
    let mut args = vec!["chat", addr.as_str()];
    if let Some(nick) = nick {
        args.extend(["--nick", nick]);
    }
    let mut c = Client::start(&args);
    let welcome = c.stdout.wait_for("* welcome to sockloop chat, you are ");
    let guest = welcome
        .strip_prefix("* welcome to sockloop chat, you are ")
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_string();
    (c, guest)
}

/// Client A is scripted through a pipe; B is a raw socket in the test. A's
/// typed lines reach B, B's lines appear on A's stdout as they arrive, and
/// the end of A's stdin sends `/quit`: A gets `* bye` and exits 0.
#[test]
fn chat_client_lines_go_both_ways_and_end_of_stdin_quits() {
    let server = chat_server();
    let (mut b, b_nick) = ChatClient::join(server.addr("chat"));
    let (mut a, a_nick) = chat_client(server.addr("chat"), None);
    assert_eq!(b.line(), format!("* {a_nick} joined #lobby"));

    a.type_line("hello from A");
    assert_eq!(b.line(), format!("<{a_nick}> hello from A"));
    b.say("hello from B");
    assert_eq!(
        a.stdout.next_line().unwrap(),
        format!("<{b_nick}> hello from B")
    );
    // A keeps receiving while its stdin stays open and silent.
    b.say("and again");
    assert_eq!(
        a.stdout.next_line().unwrap(),
        format!("<{b_nick}> and again")
    );

    a.close_stdin();
    assert_eq!(a.stdout.next_line().unwrap(), "* bye");
    assert_eq!(a.wait_exit().code(), Some(0), "stderr: {:?}", a.stderr.seen);
    assert_eq!(b.line(), format!("* {a_nick} left #lobby"));
}

/// The exact bytes `chat --nick` sends, seen by a plain listener in the
/// test: `/nick NAME` first, then the typed lines as typed, then `/quit` at
/// end of stdin (after ending an unfinished last line).
#[test]
fn chat_sends_nick_first_then_lines_then_quit() {
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = fake.local_addr().unwrap().to_string();
    let mut a = Client::start(&["chat", &addr, "--nick", "alice"]);
    let (conn, _) = fake.accept().unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut from_a = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    from_a.read_line(&mut line).unwrap();
    assert_eq!(line, "/nick alice\n");

    a.type_line("first");
    a.type_raw(b"unfinished");
    a.close_stdin();
    let mut rest = String::new();
    for _ in 0..3 {
        from_a.read_line(&mut rest).unwrap();
    }
    assert_eq!(rest, "first\nunfinished\n/quit\n");

    // Lines from the "server" are printed; its close ends the client with 0.
    let mut conn = conn;
    conn.write_all(b"* bye\n").unwrap();
    assert_eq!(a.stdout.next_line().unwrap(), "* bye");
    drop(conn);
    drop(from_a);
    assert_eq!(a.wait_exit().code(), Some(0));
}

/// A server that never closes after `/quit`: the client waits, bounded, then
/// closes itself (status 0, with a note on stderr).
#[test]
fn chat_does_not_wait_forever_for_the_server_to_close() {
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = fake.local_addr().unwrap().to_string();
    let mut a = Client::start_with_stdin(&["chat", &addr], Stdio::null());
    let (conn, _) = fake.accept().unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).unwrap();
    assert_eq!(line, "/quit\n");
    assert_eq!(a.wait_exit().code(), Some(0));
    assert!(
        a.stderr.seen.iter().any(|l| l.contains("did not close")),
        "{:?}",
        a.stderr.seen
    );
}

#[test]
fn chat_with_stdin_from_dev_null_quits_at_once() {
    let server = chat_server();
    let addr = server.addr("chat").to_string();
    let mut a = Client::start_with_stdin(&["chat", &addr], Stdio::null());
    a.stdout.wait_for("* welcome to sockloop chat");
    assert_eq!(a.stdout.next_line().unwrap(), "* bye");
    assert_eq!(a.wait_exit().code(), Some(0), "stderr: {:?}", a.stderr.seen);
}

/// A regular file on stdin (epoll refuses it: the stdin thread reads it).
#[test]
fn chat_with_stdin_from_a_regular_file() {
    let server = chat_server();
    let (mut b, _) = ChatClient::join(server.addr("chat"));
    let path = std::env::temp_dir().join(format!("sockloop-chat-stdin-{}.txt", std::process::id()));
    std::fs::write(&path, "line one\nline two").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let addr = server.addr("chat").to_string();
    let mut a = Client::start_with_stdin(&["chat", &addr], Stdio::from(file));
    let joined = b.line();
    let a_nick = joined
        .strip_prefix("* ")
        .and_then(|r| r.strip_suffix(" joined #lobby"))
        .unwrap_or_else(|| panic!("{joined:?}"))
        .to_string();
    assert_eq!(b.line(), format!("<{a_nick}> line one"));
    assert_eq!(b.line(), format!("<{a_nick}> line two"));
    assert_eq!(b.line(), format!("* {a_nick} left #lobby"));
    assert_eq!(a.wait_exit().code(), Some(0), "stderr: {:?}", a.stderr.seen);
    assert!(a.stdout.seen.iter().any(|l| l == "* bye"));
    let _ = std::fs::remove_file(&path);
}

/// The server closing the connection (here: shutting down) ends the client
/// with status 0, after printing the server's last words.
#[test]
fn chat_exits_0_when_the_server_closes() {
    let server = chat_server();
    let (mut a, _) = chat_client(server.addr("chat"), None);
    server.signal("TERM");
    assert_eq!(a.stdout.next_line().unwrap(), "* server shutting down");
    assert_eq!(a.wait_exit().code(), Some(0), "stderr: {:?}", a.stderr.seen);
}

#[test]
fn chat_to_a_closed_port_fails_with_one_line() {
    let addr = closed_tcp_port();
    let (status, out, err) = run(&["chat", &addr.to_string()]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(out, "");
    assert_one_error_line(&err, &[&format!("connect to {addr}"), "refused"]);
}

/// `--nick` against the real chat service: everyone in the room sees the
/// rename, and A's lines carry the new name.
#[test]
fn chat_nick_renames_before_the_first_line() {
    let server = chat_server();
    let (mut b, _) = ChatClient::join(server.addr("chat"));
    let (mut a, guest) = chat_client(server.addr("chat"), Some("alice"));
    assert_eq!(b.line(), format!("* {guest} joined #lobby"));
    assert_eq!(b.line(), format!("* {guest} is now known as alice"));
    assert_eq!(
        a.stdout.next_line().unwrap(),
        format!("* {guest} is now known as alice")
    );
    a.type_line("hi");
    assert_eq!(b.line(), "<alice> hi");
}

/// `chat` pointed at something that is not a sockloop chat (here the echo
/// port): the first line is not a welcome, so it warns on stderr (stdout
/// keeps only what was received), and a typed `bye` still ends it although
/// the echo server does not close on it.
#[test]
fn chat_at_the_echo_port_warns_and_still_ends_on_bye() {
    let server = echo_server();
    let addr = server.addr("tcp-echo").to_string();
    let mut a = Client::start(&["chat", &addr]);
    a.type_line("hello");
    assert_eq!(a.stdout.next_line().unwrap(), "hello");
    let warning = a.stderr.wait_for("sockloop: warning:");
    assert!(
        warning.contains(&addr) && warning.contains("sockloop chat server"),
        "{warning}"
    );
    a.type_line("bye");
    assert_eq!(a.stdout.next_line().unwrap(), "bye");
    assert_eq!(a.wait_exit().code(), Some(0), "stderr: {:?}", a.stderr.seen);
    assert!(
        a.stderr.seen.iter().any(|l| l.contains("of bye; closing")),
        "{:?}",
        a.stderr.seen
    );
}

/// Against a real chat server the welcome comes first: no warning.
#[test]
fn chat_at_a_chat_server_does_not_warn() {
    let server = chat_server();
    let addr = server.addr("chat").to_string();
    let mut a = Client::start(&["chat", &addr]);
    a.stdout.wait_for("* welcome to sockloop chat");
    a.type_line("bye");
    assert_eq!(a.stdout.next_line().unwrap(), "* bye");
    assert_eq!(a.wait_exit().code(), Some(0));
    a.stderr.wait_eof();
    assert!(a.stderr.seen.is_empty(), "{:?}", a.stderr.seen);
}

/// nc/ncat habits: `chat --to ADDR -n NAME` and `send -u -t SECS --to ADDR`
/// work like their long and positional forms.
#[test]
fn short_options_and_to_work_end_to_end() {
    let server = Server::start(&common::ALL_SERVICES, 3);
    let chat = server.addr("chat").to_string();
    let mut a = Client::start_with_stdin(&["chat", "--to", &chat, "-n", "zed"], Stdio::null());
    a.stdout.wait_for("* welcome to sockloop chat");
    assert_eq!(
        a.stdout.next_line().unwrap(),
        "* guest1 is now known as zed"
    );
    assert_eq!(a.stdout.next_line().unwrap(), "* bye");
    assert_eq!(a.wait_exit().code(), Some(0), "stderr: {:?}", a.stderr.seen);
    let udp = server.addr("udp-echo").to_string();
    let (code, out, err) = send(&["-u", "-t", "5", "--to", &udp, "short"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "Received from server: short\n");
}
