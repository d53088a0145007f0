//! Steady-state TCP echo allocates nothing per message: the server runs in
//! this process (a real `Server` over real loopback sockets, driven a turn at
//! a time), with dhat counting every heap allocation. Counts are exact, so
//! unlike speed they can be asserted.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sockloop::config::Service;
use sockloop::reactor::stats::Stats;
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

/// Echo `msg` over `clients` connections: `warmup` rounds over every
/// client (accept them, fill the buffer pool, grow every Vec the loop keeps
/// to its working size), then `rounds` round trips measured. Returns the
/// heap blocks allocated while measuring (dhat's count, exact) and the
/// server's counters before and after.
fn measure_echo(clients: usize, msg: &[u8], warmup: usize, rounds: usize) -> (u64, Stats, Stats) {
    let mut server = InProcessServer::serve(Service::TcpEcho);
    let mut clients: Vec<TcpStream> = (0..clients).map(|_| server.connect()).collect();
    let mut buf = vec![0u8; msg.len()];
    for _ in 0..warmup {
        for c in clients.iter_mut() {
            round_trip(&mut server, c, msg, &mut buf);
        }
    }
    let stats_before = server.stats().clone();
    let before = dhat::HeapStats::get();
    for i in 0..rounds {
        let n = clients.len();
        round_trip(&mut server, &mut clients[i % n], msg, &mut buf);
    }
    let allocations = dhat::HeapStats::get().total_blocks - before.total_blocks;
    (allocations, stats_before, server.stats().clone())
}

pub fn steady_state_echo_allocates_nothing_per_message() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rounds = 10_000;
    let (allocations, before, after) = measure_echo(4, &[0x5a; 64], 100, rounds);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {rounds} echo round trips"
    );
    // Nor any epoll_ctl: every echo fits the send buffer, so WRITABLE is
    // never armed and the interest never changes.
    let changes = after.interest_changes - before.interest_changes;
    assert_eq!(
        changes, 0,
        "{changes} interest changes in {rounds} echo round trips"
    );

    // The counter itself works: one allocation is seen as one.
    let before = dhat::HeapStats::get();
    drop(std::hint::black_box(vec![1u8; 10]));
    assert_eq!(dhat::HeapStats::get().total_blocks - before.total_blocks, 1);
}

/// The same for a stream of 64 KiB messages, which go through the kernel
/// relay (socket -> pipe -> socket): no allocation per message either, and
/// the relay really carried them.
pub fn streamed_echo_allocates_nothing_per_message() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let msg: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let rounds = 1_000;
    let (allocations, before, after) = measure_echo(2, &msg, 20, rounds);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {rounds} streamed 64 KiB echoes"
    );
    let spliced = after.bytes_spliced - before.bytes_spliced;
    let total = (rounds * msg.len()) as u64;
    assert!(
        spliced >= total / 2,
        "only {spliced} of {total} bytes went through a relay"
    );
}
