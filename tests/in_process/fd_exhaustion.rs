//! Running out of file descriptors: `accept` fails with EMFILE while the
//! connection waits in the kernel's backlog. The server must not exit and
//! must not spin; it pauses accepting on a timer, keeps serving what it has,
//! and accepts again once descriptors free up.
//!
//! The server runs in this process (this test binary holds only this test,
//! because it lowers the process's own fd limit), so the limit can be
//! lowered *after* start-up, past the `--max-conns` clamp that otherwise keeps
//! the server away from EMFILE.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mio::Events;
use sockloop::config::{ListenerSpec, ServeConfig, Service};
use sockloop::reactor::Server;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn emfile_backs_off_on_a_timer_and_recovers() {
    let config = ServeConfig::with_defaults(vec![ListenerSpec {
        service: Service::TcpEcho,
        addr: "127.0.0.1:0".into(),
    }]);
    let mut server = Server::bind(config).unwrap();
    let addr = server.local_addrs()[0].1;
    let mut events = Events::with_capacity(256);

    // Twenty clients connect; the kernel completes the handshakes, and the
    // connections wait in the listen backlog.
    let mut clients: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Leave room for five more descriptors only.
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let limit = open_fds() + 5;
    rlimit::setrlimit(rlimit::Resource::NOFILE, limit, hard).unwrap();

    server
        .turn(&mut events, Some(Duration::from_secs(1)))
        .unwrap();
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
    let start = Instant::now();
    let mut turns = 0;
    while server.stats().accept_backoffs == backoffs && start.elapsed() < Duration::from_secs(5) {
        server
            .turn(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        turns += 1;
    }
    assert!(
        server.stats().accept_backoffs > backoffs,
        "retried after the back-off"
    );
    assert!(
        turns <= 5,
        "{turns} loop turns during one back-off: spinning"
    );
    // And the retries are spaced by the back-off: a loop that retried at
    // once (spinning) would count a back-off on every turn, which the turn
    // count alone cannot tell from one timer expiry per turn.
    let retries_from = Instant::now();
    let backoffs = server.stats().accept_backoffs;
    while server.stats().accept_backoffs < backoffs + 3 {
        assert!(
            retries_from.elapsed() < Duration::from_secs(5),
            "no retries"
        );
        server
            .turn(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
    }
    assert!(
        retries_from.elapsed() >= 2 * sockloop::config::ACCEPT_BACKOFF,
        "three retries within {:?}: not spaced by the {:?} back-off",
        retries_from.elapsed(),
        sockloop::config::ACCEPT_BACKOFF
    );

    // The connections it has are still served.
    clients[0]
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    clients[0].write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < 10 {
        assert!(Instant::now() < deadline, "no echo while backed off");
        server
            .turn(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok(n) = clients[0].read(&mut buf[got..]) {
            got += n;
        }
    }
    assert_eq!(&buf, b"still here");

    // Free descriptors: raise the limit again. Every waiting client is
    // accepted at the next retry.
    rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stats().conns_open < 20 {
        assert!(
            Instant::now() < deadline,
            "accepting did not resume: {}",
            server.stats()
        );
        server
            .turn(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
    }
    clients.clear();
}
