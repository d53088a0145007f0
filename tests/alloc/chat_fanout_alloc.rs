//! Chat fan-out through the whole server costs the same number of heap
//! allocations whatever the size of the room: the real `Server` runs in this
//! process over real loopback sockets, dhat counts allocations, and one line
//! is relayed to a room of 1 and to a room of 999. Each recipient's queue
//! gets a handle to the one shared line, never a copy.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mio::Events;
use sockloop::config::{ListenerSpec, ServeConfig, Service};
use sockloop::reactor::Server;

/// Turn the loop until every receiver has read `expected` whole.
/// `got` is the caller's scratch (one count per receiver), so that this
/// function allocates nothing itself while allocations are being counted.
fn deliver(
    server: &mut Server,
    events: &mut Events,
    receivers: &mut [TcpStream],
    got: &mut [usize],
    expected: &[u8],
) {
    got.fill(0);
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.iter().any(|&n| n < expected.len()) {
        assert!(Instant::now() < deadline, "line not delivered to everyone");
        server
            .turn(events, Some(Duration::from_millis(10)))
            .unwrap();
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
    }
}

/// Allocations for relaying `lines` lines from one client to a room of
/// `receivers` others, measured after a warm-up.
fn allocations_per_room(receivers: usize, lines: usize) -> u64 {
    let mut server = Server::bind(ServeConfig::with_defaults(vec![ListenerSpec {
        service: Service::Chat,
        addr: "127.0.0.1:0".into(),
    }]))
    .unwrap();
    let addr = server.local_addrs()[0].1;
    let mut events = Events::with_capacity(1024);
    let mut sender = TcpStream::connect(addr).unwrap();
    sender.set_nonblocking(true).unwrap();
    let mut room: Vec<TcpStream> = (0..receivers)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    // Accept everyone, then throw away welcomes and join notices.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.stats().conns_open < receivers as u64 + 1 {
        assert!(Instant::now() < deadline, "not all accepted");
        server
            .turn(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
    }
    for _ in 0..5 {
        server
            .turn(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
    }
    let mut sink = vec![0u8; 1 << 20];
    for s in room.iter_mut().chain(std::iter::once(&mut sender)) {
        while s.read(&mut sink).is_ok_and(|n| n > 0) {}
    }
    // Nick of the sender is guest1 (first to connect).
    let relay = |i: usize| format!("<guest1> line {i:04}\n");
    let mut got = vec![0usize; receivers];
    // Warm-up: every queue reaches its working capacity.
    for i in 0..10 {
        sender
            .write_all(&format!("line {i:04}\n").into_bytes())
            .unwrap();
        deliver(
            &mut server,
            &mut events,
            &mut room,
            &mut got,
            relay(i).as_bytes(),
        );
    }
    let messages: Vec<Vec<u8>> = (0..lines)
        .map(|i| format!("line {i:04}\n").into_bytes())
        .collect();
    let expected: Vec<String> = (0..lines).map(relay).collect();
    let before = dhat::HeapStats::get();
    for (msg, exp) in messages.iter().zip(&expected) {
        sender.write_all(msg).unwrap();
        deliver(
            &mut server,
            &mut events,
            &mut room,
            &mut got,
            exp.as_bytes(),
        );
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
