//! `sockloop serve` end to end: the real binary, real sockets on loopback.
//! Each test starts its own server on port 0 and reads the `listening` lines
//! to learn the real ports.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, UdpSocket};
use std::thread;

use common::{connect, read_n, read_to_end, run, ChatClient, Server, WAIT};

fn echo_server(extra: &[&str]) -> Server {
    let mut args = vec!["--echo", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start(&args, 1)
}

#[test]
fn tcp_echo_round_trip() {
    let server = echo_server(&[]);
    let mut s = connect(server.addr("tcp-echo"));
    s.write_all(b"Hello,Server").unwrap();
    assert_eq!(read_n(&mut s, 12), b"Hello,Server");
    s.write_all(b"again").unwrap();
    assert_eq!(read_n(&mut s, 5), b"again");
}

#[test]
fn half_close_gets_everything_back_then_close() {
    let server = echo_server(&[]);
    let mut s = connect(server.addr("tcp-echo"));
    let msg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&msg).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s), msg, "all bytes back, then EOF");
}

/// 8 MiB through one connection while a second thread reads: byte-exact.
#[test]
fn eight_mib_stream_with_concurrent_reading() {
    let server = echo_server(&[]);
    let mut s = connect(server.addr("tcp-echo"));
    let total = 8 << 20;
    let data: Vec<u8> = (0..total).map(|i| (i * 7 % 256) as u8).collect();
    let mut reader = s.try_clone().unwrap();
    let expected = data.clone();
    let reading = thread::spawn(move || {
        let mut got = vec![0; expected.len()];
        reader.read_exact(&mut got).unwrap();
        assert!(got == expected, "echoed stream differs");
    });
    // Odd write sizes, so the server sees every kind of chunking.
    for chunk in data.chunks(65_521) {
        s.write_all(chunk).unwrap();
    }
    reading.join().unwrap();
}

/// A client that writes much more than --out-limit before reading anything:
/// the server pauses reading at the limit (TCP flow control holds the
/// client back) and then delivers every byte intact.
#[test]
fn backpressure_pauses_reading_and_loses_nothing() {
    let server = echo_server(&["--out-limit", "65536"]);
    let mut s = connect(server.addr("tcp-echo"));
    let total = 4 << 20;
    let data: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
    let mut writer = s.try_clone().unwrap();
    let to_send = data.clone();
    let writing = thread::spawn(move || {
        writer.write_all(&to_send).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    // 4 MiB through a 64 KiB backlog: the writer can only finish because the
    // server pauses reading at the limit and resumes as we drain the echo.
    // (A server that dropped bytes at the limit fails the comparison; the
    // bound on its memory is checked in tests/binary/faults.rs.)
    let got = read_to_end(&mut s);
    writing.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "stream corrupted under backpressure");
}

#[test]
fn a_thousand_concurrent_connections() {
    let server = echo_server(&[]);
    let addr = server.addr("tcp-echo");
    let mut conns: Vec<_> = (0..1000).map(|_| connect(addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("conn {i:04}\n").as_bytes()).unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(read_n(c, 10), format!("conn {i:04}\n").as_bytes());
    }
}

#[test]
fn udp_echo_whole_datagrams_including_max_and_empty() {
    let server = Server::start(&["--udp-echo", "127.0.0.1:0"], 1);
    let addr = server.addr("udp-echo");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0; 70_000];
    for size in [0usize, 1, 1400, 65_507] {
        let msg: Vec<u8> = (0..size).map(|i| (i % 256) as u8).collect();
        sock.send_to(&msg, addr).unwrap();
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(from, addr);
        assert_eq!(&buf[..n], &msg[..], "datagram of {size} bytes");
    }
}

#[test]
fn ipv6_and_host_names_work() {
    let server = Server::start(&["--echo", "[::1]:0", "--echo", "localhost:0"], 2);
    for (_, addr) in &server.listening {
        let mut s = connect(*addr);
        s.write_all(b"hi").unwrap();
        assert_eq!(read_n(&mut s, 2), b"hi");
    }
    assert!(server.listening[0].1.is_ipv6());
}

#[test]
fn listening_lines_come_in_the_order_given() {
    let server = Server::start(
        &[
            "--chat",
            "127.0.0.1:0",
            "--udp-echo",
            "127.0.0.1:0",
            "--echo",
            "127.0.0.1:0",
        ],
        3,
    );
    let services: Vec<&str> = server.listening.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(services, ["chat", "udp-echo", "tcp-echo"]);
    assert!(
        server.listening.iter().all(|(_, a)| a.port() != 0),
        "real ports printed"
    );
}

#[test]
fn chat_welcome_relay_and_leave() {
    let server = Server::start(&["--chat", "127.0.0.1:0"], 1);
    let addr = server.addr("chat");
    let (mut a, nick_a) = ChatClient::join(addr);
    let (mut b, nick_b) = ChatClient::join(addr);
    assert_ne!(nick_a, nick_b);
    assert_eq!(a.line(), format!("* {nick_b} joined #lobby"));
    b.say("hello from b");
    assert_eq!(a.line(), format!("<{nick_b}> hello from b"));
    a.say("bye");
    assert_eq!(a.line(), "* bye");
    a.expect_closed();
    assert_eq!(b.line(), format!("* {nick_a} left #lobby"));
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut server = Server::start(&["--echo", "127.0.0.1:0", "--chat", "127.0.0.1:0"], 2);
    let (mut chat, _) = ChatClient::join(server.addr("chat"));
    let mut echo = connect(server.addr("tcp-echo"));
    echo.write_all(b"pending").unwrap();
    assert_eq!(read_n(&mut echo, 7), b"pending");
    server.signal("TERM");
    assert_eq!(chat.line(), "* server shutting down");
    chat.expect_closed();
    assert_eq!(
        read_to_end(&mut echo),
        b"",
        "echo connection closed cleanly"
    );
    // After its FIN the server waits (lingers) for each client to close.
    drop(echo);
    drop(chat);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {:#?}", server.stderr.seen);
}

#[test]
fn sigint_exits_zero_too() {
    let mut server = echo_server(&[]);
    server.signal("INT");
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn bind_failure_exits_one_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stdout, stderr) = run(&["serve", "--echo", "127.0.0.1:0", "--chat", &addr]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stdout.is_empty(),
        "nothing served, nothing printed: {stdout:?}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(&addr)).collect();
    assert_eq!(lines.len(), 1, "one line naming the address: {stderr:?}");
    assert!(
        lines[0].contains("chat") && lines[0].contains("in use"),
        "{stderr:?}"
    );
}

#[test]
fn bad_arguments_exit_two_with_usage() {
    for args in [
        &["serve", "--max-conns", "many"][..],
        &["serve", "--bogus"],
        &["nosuch"],
    ] {
        let (status, _, stderr) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}");
        assert!(stderr.contains("Usage"), "{args:?}: {stderr}");
    }
    let (status, stdout, _) = run(&["--version"]);
    assert_eq!(status.code(), Some(0));
    assert!(stdout.starts_with("sockloop "));
}

#[test]
fn debug_log_has_one_line_per_open_and_close() {
    let server = Server::start_env(&["--echo", "127.0.0.1:0"], 1, &[("RUST_LOG", "debug")]);
    let mut server = server;
    let mut s = connect(server.addr("tcp-echo"));
    s.write_all(b"abc").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s), b"abc");
    let open = server.stderr.wait_for("open tcp-echo");
    assert!(
        open.contains(&s.local_addr().unwrap().to_string()),
        "{open}"
    );
    let close = server.stderr.wait_for("close tcp-echo");
    assert!(
        close.contains("in=3") && close.contains("out=3") && close.contains("reason="),
        "{close}"
    );
}
