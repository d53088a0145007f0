//! Steady-state TCP echo allocates nothing per message: the server runs in
//! this process (a real `Server` over real loopback sockets, driven a turn at
//! a time), with dhat counting every heap allocation. Counts are exact, so
//! unlike speed they can be asserted.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sockloop::config::Service;
use sockloop::testing::in_process::InProcessServer;

fn round_trip(server: &mut InProcessServer, client: &mut TcpStream, msg: &[u8], buf: &mut [u8]) {
    client.write_all(msg).unwrap();
    let mut got = 0;
    server.turn_until("the echo", Duration::from_secs(10), |_| {
        match client.read(&mut buf[got..msg.len()]) {
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        got == msg.len()
    });
    assert_eq!(&buf[..msg.len()], msg);
}

pub fn steady_state_echo_allocates_nothing_per_message() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut server = InProcessServer::serve(Service::TcpEcho);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    let msg = [0x5a_u8; 64];
    let mut buf = [0u8; 64];
    // Warm-up: accept the clients, fill the buffer pool, grow every Vec the
    // loop keeps to its working size.
    for _ in 0..100 {
        for c in clients.iter_mut() {
            round_trip(&mut server, c, &msg, &mut buf);
        }
    }
    let before = dhat::HeapStats::get();
    let interest_changes_before = server.stats().interest_changes;
    let rounds = 10_000;
    for i in 0..rounds {
        let c = &mut clients[i % 4];
        round_trip(&mut server, c, &msg, &mut buf);
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
