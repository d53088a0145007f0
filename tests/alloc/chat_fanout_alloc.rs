//! Chat fan-out through the whole server costs the same number of heap
//! allocations whatever the size of the room: the real `Server` runs in this
//! process over real loopback sockets, dhat counts allocations, and one line
//! is relayed to a room of 1 and to a room of 999. Each recipient's queue
//! gets a handle to the one shared line, never a copy.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sockloop::config::Service;
use sockloop::protocol::chat::wire;
use sockloop::testing::in_process::InProcessServer;

/// How long the whole room may take to get one line, or its welcomes.
const WAIT: Duration = Duration::from_secs(20);

/// Turn the loop until every receiver has read `expected` whole.
/// `got` is the caller's scratch (one count per receiver), so that this
/// function allocates nothing itself while allocations are being counted.
fn deliver(
    server: &mut InProcessServer,
    receivers: &mut [TcpStream],
    got: &mut [usize],
    expected: &[u8],
) {
    got.fill(0);
    let mut buf = [0u8; 256];
    server.turn_until("the line delivered to everyone", WAIT, |_| {
        for (r, n) in receivers.iter_mut().zip(got.iter_mut()) {
            while *n < expected.len() {
                match r.read(&mut buf[..expected.len() - *n]) {
                    Ok(0) => panic!("receiver closed"),
                    Ok(k) => {
                        assert_eq!(&buf[..k], &expected[*n..*n + k]);
                        *n += k;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        got.iter().all(|&n| n == expected.len())
    });
}

/// Allocations for relaying `lines` lines from one client to a room of
/// `receivers` others, measured after a warm-up.
fn allocations_per_room(receivers: usize, lines: usize) -> u64 {
    let mut server = InProcessServer::serve(Service::Chat);
    let mut sender = server.connect();
    let mut room: Vec<TcpStream> = (0..receivers).map(|_| server.connect()).collect();
    // Accept everyone and read every welcome and join notice, so that none
    // is left in a socket when the measured lines flow. The k-th client to
    // join gets its welcome and a notice for each one after it: n(n+1)/2
    // lines for n clients, whatever the order of the accepts.
    let clients = receivers + 1;
    let owed = clients * (clients + 1) / 2;
    let mut seen = vec![0usize; clients];
    let mut senders_first_line = Vec::new();
    let mut sink = vec![0u8; 1 << 16];
    server.turn_until("every welcome and join notice", WAIT, |_| {
        let everyone = std::iter::once(&mut sender).chain(room.iter_mut());
        for (k, s) in everyone.enumerate() {
            loop {
                match s.read(&mut sink) {
                    Ok(0) => panic!("client {k} closed during the welcomes"),
                    Ok(n) => {
                        seen[k] += sink[..n].iter().filter(|&&b| b == b'\n').count();
                        if k == 0 && !senders_first_line.contains(&b'\n') {
                            senders_first_line.extend_from_slice(&sink[..n]);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        seen.iter().sum::<usize>() >= owed
    });
    assert_eq!(seen.iter().sum::<usize>(), owed, "more lines than owed");
    let end = senders_first_line.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(
        wire::welcome_nick(&senders_first_line[..end]),
        Some(&b"guest1"[..]),
        "the sender, first to connect, is guest1"
    );
    // Nick of the sender is guest1 (first to connect).
    let relay = |i: usize| format!("<guest1> line {i:04}\n");
    let mut got = vec![0usize; receivers];
    // Warm-up: every queue reaches its working capacity.
    for i in 0..10 {
        sender
            .write_all(&format!("line {i:04}\n").into_bytes())
            .unwrap();
        deliver(&mut server, &mut room, &mut got, relay(i).as_bytes());
    }
    let messages: Vec<Vec<u8>> = (0..lines)
        .map(|i| format!("line {i:04}\n").into_bytes())
        .collect();
    let expected: Vec<String> = (0..lines).map(relay).collect();
    let before = dhat::HeapStats::get();
    for (msg, exp) in messages.iter().zip(&expected) {
        sender.write_all(msg).unwrap();
        deliver(&mut server, &mut room, &mut got, exp.as_bytes());
    }
    dhat::HeapStats::get().total_blocks - before.total_blocks
}

pub fn fan_out_allocations_do_not_grow_with_the_room() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let lines = 20;
    let small = allocations_per_room(1, lines);
    let large = allocations_per_room(999, lines);
    assert_eq!(
        small, large,
        "{lines} lines: {small} allocations for a room of 2, {large} for a room of 1000"
    );
    assert!(
        small == lines as u64,
        "{small} allocations for {lines} lines: each line should cost exactly its one shared buffer"
    );
}
