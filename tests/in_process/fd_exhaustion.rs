//! Running out of file descriptors: `accept` fails with EMFILE while the
//! connection waits in the kernel's backlog. The server must not exit and
//! must not spin; it pauses accepting on a timer, keeps serving what it has,
//! and accepts again once descriptors free up.
//!
//! The server runs in this process, so the limit can be lowered *after*
//! start-up, past the `--max-conns` clamp that otherwise keeps the server
//! away from EMFILE; and the test runs in a child process of its own
//! ([`in_a_process_of_its_own`]), because the fd limit is the whole
//! process's: the tests beside it would hit it, and their descriptors would
//! upset its count.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sockloop::config::{Service, ACCEPT_BACKOFF};
use sockloop::testing::in_process::InProcessServer;

use crate::in_a_process_of_its_own;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn emfile_backs_off_on_a_timer_and_recovers() {
    in_a_process_of_its_own(
        "fd_exhaustion::emfile_backs_off_on_a_timer_and_recovers",
        emfile_backs_off_on_a_timer_and_recovers_alone,
    );
}

fn emfile_backs_off_on_a_timer_and_recovers_alone() {
    let mut server = InProcessServer::serve(Service::TcpEcho);
    // A turn may sleep far longer than the back-off, so that while backed
    // off a turn ends on the back-off timer, never on this cap.
    server.max_wait = Duration::from_secs(1);

    // Twenty clients connect; the kernel completes the handshakes, and the
    // connections wait in the listen backlog.
    let mut clients: Vec<TcpStream> = (0..20).map(|_| server.connect()).collect();
    // Leave room for five more descriptors only.
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let limit = open_fds() + 5;
    rlimit::setrlimit(rlimit::Resource::NOFILE, limit, hard).unwrap();

    server.turn();
    assert!(
        server.stats().accept_backoffs >= 1,
        "EMFILE seen and backed off"
    );
    let served = server.stats().conns_open;
    assert!(
        (1..20).contains(&served),
        "some accepted, not all: {served}"
    );

    // While backed off the loop sleeps until the back-off timer: a handful of
    // turns cover the whole back-off, not thousands of spins.
    let backoffs = server.stats().accept_backoffs;
    let turns = server.turn_until("a retry after the back-off", Duration::from_secs(5), |s| {
        s.stats().accept_backoffs > backoffs
    });
    assert!(
        turns <= 5,
        "{turns} loop turns during one back-off: spinning"
    );
    // And the retries are spaced by the back-off: a loop that retried at
    // once (spinning) would count a back-off on every turn, which the turn
    // count alone cannot tell from one timer expiry per turn.
    let retries_from = Instant::now();
    let backoffs = server.stats().accept_backoffs;
    server.turn_until("three more retries", Duration::from_secs(5), |s| {
        s.stats().accept_backoffs >= backoffs + 3
    });
    assert!(
        retries_from.elapsed() >= 2 * ACCEPT_BACKOFF,
        "three retries within {:?}: not spaced by the {ACCEPT_BACKOFF:?} back-off",
        retries_from.elapsed(),
    );

    // The connections it has are still served.
    clients[0].write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    let mut got = 0;
    server.turn_until("the echo while backed off", Duration::from_secs(10), |_| {
        if let Ok(n) = clients[0].read(&mut buf[got..]) {
            got += n;
        }
        got == buf.len()
    });
    assert_eq!(&buf, b"still here");

    // Free descriptors: raise the limit again. Every waiting client is
    // accepted at the next retry.
    rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).unwrap();
    server.turn_until(
        "accepting resumed for all 20",
        Duration::from_secs(10),
        |s| s.stats().conns_open >= 20,
    );
    clients.clear();
}
