//! Reactor tests that need the loop's insides: driving one batch of events by
//! hand to show that a closed connection's stale event cannot reach the
//! connection that takes its slab slot.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mio::Token;

use super::*;
use crate::buffer::SharedLine;
use crate::config::{ListenerSpec, ServeConfig, Service, TcpService};
use crate::net::would_block;
use crate::testing::in_process::InProcessServer;
use source::{CloseReason, Conn, Proto, Source};

fn echo_config() -> ServeConfig {
    ServeConfig::with_defaults(vec![ListenerSpec {
        service: Service::TcpEcho,
        addr: "127.0.0.1:0".into(),
    }])
}

/// Slab keys of the open connections.
fn conn_keys(server: &Server) -> Vec<usize> {
    server
        .sources
        .iter()
        .filter(|(_, e)| matches!(e.source, Source::Conn(_)))
        .map(|(k, _)| k)
        .collect()
}

/// How long any wait of these tests may take.
const WAIT: Duration = Duration::from_secs(5);

fn bytes_in(server: &Server, key: usize) -> u64 {
    match &server.sources[key].source {
        Source::Conn(c) => c.bytes_in,
        _ => panic!("not a connection"),
    }
}

#[test]
fn a_stale_event_never_reaches_the_connection_that_reuses_the_slot() {
    let mut in_process = InProcessServer::bind(echo_config());
    let addr = in_process.addr();

    let mut a = TcpStream::connect(addr).unwrap();
    in_process.turn_until("A accepted", WAIT, |s| conn_keys(s).len() == 1);
    let server = in_process.server_mut();
    let listener_key = server.endpoints[0];
    let key_a = conn_keys(server)[0];
    a.write_all(b"from A").unwrap();

    // One batch, played by hand: A is closed (say its earlier event found
    // an error), then the listener's event accepts B, then A's own readable
    // event for "from A" arrives -- the stale event of the trap.
    server.close_conn(key_a, CloseReason::Error("closed in this batch".into()));
    let mut b = TcpStream::connect(addr).unwrap();
    server.accept_ready(listener_key);
    let key_b = *conn_keys(server)
        .iter()
        .find(|&&k| k != key_a)
        .expect("B accepted");
    assert_ne!(
        key_b, key_a,
        "A's slot is not free until the sweep, so B cannot take it"
    );
    server.dispatch(
        Token(key_a),
        Readiness {
            readable: true,
            writable: true,
            read_closed: false,
        },
    );
    assert_eq!(bytes_in(server, key_b), 0, "A's event did not reach B");
    assert_eq!(
        bytes_in(server, key_a),
        0,
        "a closing connection is not read"
    );
    server.flush_pending();
    server.sweep();
    assert!(
        server.sources.get(key_a).is_none(),
        "A left the slab at the sweep"
    );

    // After the sweep the slot is reused, and the newcomer starts clean.
    let mut c = TcpStream::connect(addr).unwrap();
    in_process.turn_until("C accepted", WAIT, |s| conn_keys(s).len() == 2);
    let server = in_process.server();
    assert!(conn_keys(server).contains(&key_a), "C reused A's slot");
    assert_eq!(bytes_in(server, key_a), 0);

    // B and C each get exactly their own bytes back, nothing of A's.
    b.write_all(b"from B").unwrap();
    c.write_all(b"from C").unwrap();
    for (stream, expected) in [(&mut b, b"from B"), (&mut c, b"from C")] {
        stream.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        in_process.turn_until("the echo", WAIT, |_| {
            let mut buf = [0u8; 64];
            match stream.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if would_block(&e) => {}
                Err(e) => panic!("{e}"),
            }
            got.len() >= expected.len()
        });
        assert_eq!(&got, expected);
    }
    // A was closed: it reads end of stream or a reset, never an echo.
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    match a.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "A got data after it was closed"),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
    }
}

#[test]
fn idle_echo_connections_hold_no_buffer() {
    let mut in_process = InProcessServer::bind(echo_config());
    let mut a = in_process.connect();
    a.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    in_process.turn_until("the echo", WAIT, |_| a.read(&mut one).is_ok());
    let server = in_process.server();
    let key = conn_keys(server)[0];
    let Source::Conn(conn) = &server.sources[key].source else {
        unreachable!()
    };
    let Proto::Echo(echo) = &conn.proto else {
        unreachable!()
    };
    assert!(!echo.holds_buffer(), "an idle connection holds no buffer");
    // The socket took the echo at once, straight from the loop's read
    // buffer: no backlog buffer was ever needed.
    assert_eq!(server.pool.spare_count(), 0);
}

/// A burst of datagrams larger than one turn's budget is answered whole
/// with no more traffic to raise an edge: the socket goes on the still-ready
/// list when its budget runs out, or the rest would wait for the next
/// datagram that happens to arrive.
#[test]
fn a_burst_past_the_datagram_budget_is_answered_without_new_traffic() {
    let config = ServeConfig::with_defaults(vec![ListenerSpec {
        service: Service::UdpEcho,
        addr: "127.0.0.1:0".into(),
    }]);
    let mut in_process = InProcessServer::bind(config);
    let addr = in_process.addr();
    let server = in_process.server();
    let key = server.endpoints[0];
    // Room for the whole burst in both receive buffers.
    let roomy = 4 << 20;
    if let Source::Udp(udp) = &server.sources[key].source {
        socket2::SockRef::from(&udp.socket)
            .set_recv_buffer_size(roomy)
            .unwrap();
    }
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&client)
        .set_recv_buffer_size(roomy)
        .unwrap();
    client.set_nonblocking(true).unwrap();
    let burst = 4 * config::DATAGRAM_BUDGET_PER_TURN;
    for i in 0..burst {
        client.send_to(&(i as u32).to_be_bytes(), addr).unwrap();
    }
    let mut answered = 0;
    let mut buf = [0u8; 16];
    in_process.turn_until(
        "the whole burst answered (the rest waits for an edge that never comes)",
        WAIT,
        |_| {
            while let Ok((n, _)) = client.recv_from(&mut buf) {
                assert_eq!(buf[..n], (answered as u32).to_be_bytes(), "in order, whole");
                answered += 1;
            }
            answered == burst
        },
    );
}

/// A chat client that never reads, holding exactly `--max-pending` bytes of
/// output, is not *past* the bound; but echo, which reads only what fits
/// under it, can then read nothing at all. At the bound with echo input
/// waiting for room counts as past it: the chat client is disconnected as
/// too slow. (The simulation found this: the echo client was blocked for
/// good.)
#[test]
fn a_chat_backlog_exactly_at_max_pending_does_not_block_echo_for_good() {
    let max_pending = 1000;
    let mut config = ServeConfig::with_defaults(vec![
        ListenerSpec {
            service: Service::TcpEcho,
            addr: "127.0.0.1:0".into(),
        },
        ListenerSpec {
            service: Service::Chat,
            addr: "127.0.0.1:0".into(),
        },
    ]);
    config.max_pending = max_pending;
    let mut in_process = InProcessServer::bind(config);
    let addrs = in_process.server().local_addrs();
    let _echo_client = TcpStream::connect(addrs[0].1).unwrap();
    let _chat_client = TcpStream::connect(addrs[1].1).unwrap();
    in_process.turn_until("both accepted, the welcome sent", WAIT, |s| {
        conn_keys(s).len() == 2 && s.pending_total == 0
    });
    let server = in_process.server_mut();
    let kind_of = |s: &Server, key: usize| match &s.sources[key].source {
        Source::Conn(c) => c.service,
        _ => unreachable!(),
    };
    let keys = conn_keys(server);
    let echo = *keys
        .iter()
        .find(|&&k| kind_of(server, k) == TcpService::Echo)
        .unwrap();
    let chat = *keys
        .iter()
        .find(|&&k| kind_of(server, k) == TcpService::Chat)
        .unwrap();
    // The chat client's queue holds exactly the bound (as if it never read).
    let line: SharedLine =
        std::rc::Rc::from(vec![b'x'; max_pending - crate::buffer::QUEUED_LINE_COST]);
    if let Source::Conn(Conn {
        proto: Proto::Chat(c),
        ..
    }) = &mut server.sources[chat].source
    {
        c.out.push(&line);
        assert_eq!(c.out.cost(), max_pending);
    }
    server.pending_total += max_pending;
    // Echo finds no room and pauses.
    server.conn_read(echo, false);
    assert_eq!(server.paused_for_total.len(), 1, "echo paused at the bound");
    server.settle_max_pending();
    match &server.sources[chat].source {
        Source::Conn(c) => assert_eq!(c.closing, Some(CloseReason::TooSlow)),
        _ => unreachable!(),
    }
    assert_eq!(server.pending_total, 0);
    assert!(server.paused_for_total.is_empty(), "echo resumed");
}
