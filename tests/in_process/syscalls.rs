//! The server's system calls per message, counted exactly: the real
//! `Server` on real loopback sockets with a `CountingNet` around the real
//! network, so every call the reactor makes is counted as `strace -c`
//! would count it. Counts, unlike speed, can be asserted.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sockloop::config::Service;
use sockloop::net::mio::MioNet;
use sockloop::testing::counting_net::{CountingNet, SyscallCounts};
use sockloop::testing::in_process::InProcessServer;

type CountedServer = InProcessServer<CountingNet<MioNet>>;

/// Send `msg`, turn the loop until it is all back, check it.
fn round_trip(server: &mut CountedServer, client: &mut TcpStream, msg: &[u8], buf: &mut [u8]) {
    client.write_all(msg).unwrap();
    let mut got = 0;
    server.turn_until("the echo", Duration::from_secs(10), |_| {
        loop {
            match client.read(&mut buf[got..msg.len()]) {
                Ok(0) => panic!("the server closed"),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            if got == msg.len() {
                break;
            }
        }
        got == msg.len()
    });
    assert!(buf[..msg.len()] == *msg, "the echo differs");
}

/// Echo `msg` `rounds` times over `clients` connections after a warm-up,
/// and return the server's system calls during the measured rounds.
fn count_echo(clients: usize, msg: &[u8], rounds: usize) -> SyscallCounts {
    let mut server = InProcessServer::serve_counting(Service::TcpEcho);
    let mut clients: Vec<TcpStream> = (0..clients).map(|_| server.connect()).collect();
    let mut buf = vec![0u8; msg.len()];
    for _ in 0..10 {
        for c in clients.iter_mut() {
            round_trip(&mut server, c, msg, &mut buf);
        }
    }
    let before = server.server().net().counts();
    for i in 0..rounds {
        let n = clients.len();
        round_trip(&mut server, &mut clients[i % n], msg, &mut buf);
    }
    server.server().net().counts() - before
}

/// A small request-response echo is one `read` and one `writev`: the read
/// that returns less than asked is taken as "drained" (no read to hear
/// `EAGAIN`), the reply goes straight from the read buffer, nothing is
/// spliced, and the interest never changes (no `epoll_ctl`).
#[test]
fn an_echo_round_trip_is_one_read_and_one_writev() {
    let rounds = 2_000;
    let counts = count_echo(4, &[0x5a; 64], rounds);
    let rounds = rounds as u64;
    assert_eq!(counts.reads, rounds, "{counts:?}");
    assert_eq!(counts.writes, rounds, "{counts:?}");
    assert_eq!(counts.reregisters, 0, "{counts:?}");
    assert_eq!(counts.relay_fills + counts.relay_drains, 0, "{counts:?}");
}

/// A streamed 64 KiB echo goes through the relay: three `splice`s each
/// (fill, drain, and the fill that says `EAGAIN`, which a relay cannot skip:
/// a short fill does not prove the socket drained), no `read`, no `writev`,
/// no `epoll_ctl`, and no new pipe once the stream has one. (Loopback queues
/// the whole 64 KiB message before the server's turn, so the counts are
/// exact.)
#[test]
fn a_streamed_echo_is_three_splices_and_no_copy() {
    let msg: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let rounds = 500;
    let counts = count_echo(2, &msg, rounds);
    let rounds = rounds as u64;
    assert_eq!(counts.reads + counts.writes, 0, "{counts:?}");
    assert_eq!(counts.relays_opened, 0, "{counts:?}");
    assert_eq!(counts.reregisters, 0, "{counts:?}");
    assert_eq!(counts.relay_fills, 2 * rounds, "{counts:?}");
    assert_eq!(counts.relay_drains, rounds, "{counts:?}");
}
