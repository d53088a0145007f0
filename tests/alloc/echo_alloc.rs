//! Steady-state TCP echo allocates nothing per message: the server runs in
//! this process (a real `Server` over real loopback sockets, driven a turn at
//! a time), with dhat counting every heap allocation. Counts are exact, so
//! unlike speed they can be asserted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mio::Events;
use sockloop::config::{ListenerSpec, ServeConfig, Service};
use sockloop::reactor::Server;

fn round_trip(
    server: &mut Server,
    events: &mut Events,
    client: &mut TcpStream,
    msg: &[u8],
    buf: &mut [u8],
) {
    client.write_all(msg).unwrap();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < msg.len() {
        assert!(Instant::now() < deadline, "no echo");
        server
            .turn(events, Some(Duration::from_millis(100)))
            .unwrap();
        match client.read(&mut buf[got..msg.len()]) {
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(&buf[..msg.len()], msg);
}

pub fn steady_state_echo_allocates_nothing_per_message() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let config = ServeConfig::with_defaults(vec![ListenerSpec {
        service: Service::TcpEcho,
        addr: "127.0.0.1:0".into(),
    }]);
    let mut server = Server::bind(config).unwrap();
    let addr = server.local_addrs()[0].1;
    let mut events = Events::with_capacity(64);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for c in &clients {
        c.set_nonblocking(true).unwrap();
    }
    let msg = [0x5a_u8; 64];
    let mut buf = [0u8; 64];
    // Warm-up: accept the clients, fill the buffer pool, grow every Vec the
    // loop keeps to its working size.
    for _ in 0..100 {
        for c in clients.iter_mut() {
            round_trip(&mut server, &mut events, c, &msg, &mut buf);
        }
    }
    let before = dhat::HeapStats::get();
    let interest_changes_before = server.stats().interest_changes;
    let rounds = 10_000;
    for i in 0..rounds {
        let c = &mut clients[i % 4];
        round_trip(&mut server, &mut events, c, &msg, &mut buf);
    }
    let after = dhat::HeapStats::get();
    let allocations = after.total_blocks - before.total_blocks;
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {rounds} echo round trips"
    );
    // Nor any epoll_ctl: every echo fits the send buffer, so WRITABLE is
    // never armed and the interest never changes.
    let changes = server.stats().interest_changes - interest_changes_before;
    assert_eq!(
        changes, 0,
        "{changes} interest changes in {rounds} echo round trips"
    );

    // The counter itself works: one allocation is seen as one.
    let before = dhat::HeapStats::get();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert_eq!(dhat::HeapStats::get().total_blocks - before.total_blocks, 1);
    drop(v);
}
