//! The cluster's sans-IO pieces (RESP codec, bus format, Redis link) against
//! a real `redis-server` started by the test: the handshake with a
//! password, name leases (`SET NX PX`), the guest counter, a bus message
//! from one link reaching another, compare-and-delete, Redis killed and
//! restarted on the same port, and a silent server noticed as lost.
//!
//! The links are driven here over plain blocking `std` sockets with read
//! timeouts: the test may block, the server never will (it drives the same
//! state machine from its poll loop).

use crate::redis_support;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use redis_support::RedisServer;
use sockloop::cluster::link::{Effect, Link, LinkConfig, LinkError, Timing};
use sockloop::config::redis_url::RedisUrl;
use sockloop::protocol::chat::bus::{Event, Text};
use sockloop::protocol::chat::name::Name;

/// The longest any one expected effect may take to show up.
const WAIT: Duration = Duration::from_secs(10);

/// Short timings, so a lost server is noticed in about a second.
fn timing() -> Timing {
    Timing {
        heartbeat: Duration::from_millis(100),
        lost_after: Duration::from_millis(800),
        refresh: Duration::from_millis(300),
        lease: Duration::from_secs(3),
        first_retry: Duration::from_millis(100),
        max_retry: Duration::from_millis(500),
        ..Timing::default()
    }
}

/// One link and its blocking socket.
struct Driver {
    link: Link,
    url: RedisUrl,
    stream: Option<TcpStream>,
    /// Effects seen and not yet asked for.
    backlog: Vec<Effect>,
}

impl Driver {
    fn new(url: &str, server: u64) -> Driver {
        let url = RedisUrl::parse(url).unwrap();
        let mut config = LinkConfig::new(server, &url);
        config.timing = timing();
        Driver {
            link: Link::new(config, Instant::now()),
            url,
            stream: None,
            backlog: Vec::new(),
        }
    }

    /// Do one round of IO: effects, writes, one read (up to 20 ms), timers.
    fn turn(&mut self) {
        while let Some(effect) = self.link.poll_effect() {
            match &effect {
                Effect::Connect => {
                    let addr = self.url.addr().parse().unwrap();
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                        Ok(s) => {
                            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                            s.set_nodelay(true).unwrap();
                            self.stream = Some(s);
                            self.link.handle_connected(Instant::now());
                        }
                        Err(e) => self.link.handle_io_error(Instant::now(), &e),
                    }
                }
                Effect::Down { .. } => self.stream = None,
                _ => {}
            }
            self.backlog.push(effect);
        }
        if let Some(s) = &mut self.stream {
            let out = self.link.transmit().to_vec();
            if !out.is_empty() {
                match s.write_all(&out) {
                    Ok(()) => self.link.advance(out.len()),
                    Err(e) => self.link.handle_io_error(Instant::now(), &e),
                }
            }
        }
        if let Some(s) = &mut self.stream {
            let mut buf = [0u8; 64 * 1024];
            match s.read(&mut buf) {
                Ok(0) => self.link.handle_eof(Instant::now()),
                Ok(n) => self.link.handle_input(Instant::now(), &buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => self.link.handle_io_error(Instant::now(), &e),
            }
        } else {
            // No connection: nothing to read, so wait for the timer (at
            // most 20 ms per turn, as a read would).
            let wait = self
                .link
                .poll_timeout()
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20));
            std::thread::sleep(wait);
        }
        let now = Instant::now();
        if now >= self.link.poll_timeout() {
            self.link.handle_timeout(now);
        }
    }

    /// Turn until Redis has answered everything this link asked so far.
    fn settle(&mut self) {
        let deadline = Instant::now() + WAIT;
        while self.link.awaiting_replies() > 0 {
            assert!(
                Instant::now() < deadline,
                "Redis did not answer within {WAIT:?}"
            );
            self.turn();
        }
    }

    /// Take the first effect matching `want` (seen before or within WAIT),
    /// turning `others` too so they stay alive meanwhile.
    fn expect(
        &mut self,
        others: &mut [&mut Driver],
        what: &str,
        want: impl Fn(&Effect) -> bool,
    ) -> Effect {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.backlog.iter().position(&want) {
                return self.backlog.remove(i);
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {WAIT:?}; saw {:?}",
                self.backlog
            );
            self.turn();
            for o in others.iter_mut() {
                o.turn();
            }
        }
    }
}

fn name(s: &str) -> Name {
    Name::parse(s.as_bytes()).unwrap()
}

fn claimed(d: &mut Driver, others: &mut [&mut Driver], token: u64) -> bool {
    match d.expect(
        others,
        "a claim answer",
        |e| matches!(e, Effect::Claimed { token: t, .. } if *t == token),
    ) {
        Effect::Claimed { granted, .. } => granted,
        _ => unreachable!(),
    }
}

#[test]
fn two_links_share_names_guests_and_the_bus_through_a_real_redis() {
    let Some(mut redis) = RedisServer::start("cluster_redis", Some("pa:ss@word")) else {
        return;
    };
    // The password has URL-special characters: the URL escapes them.
    let url = format!("redis://:pa%3Ass%40word@127.0.0.1:{}", redis.port());
    let mut a = Driver::new(&url, 0xa);
    let mut b = Driver::new(&url, 0xb);

    // Handshake: HELLO 3 with AUTH, SUBSCRIBE.
    a.expect(&mut [&mut b], "A up", |e| {
        *e == Effect::Up { restored: false }
    });
    b.expect(&mut [&mut a], "B up", |e| {
        *e == Effect::Up { restored: false }
    });

    // A wrong password is an authentication error, said as such.
    let mut wrong = Driver::new(&format!("redis://:nope@127.0.0.1:{}", redis.port()), 0xc);
    match wrong.expect(&mut [], "a refusal", |e| matches!(e, Effect::Down { .. })) {
        Effect::Down { error, was_up } => {
            assert!(matches!(error, LinkError::Auth(_)), "{error}");
            assert!(!was_up);
        }
        _ => unreachable!(),
    }

    // No password at all, against a Redis that wants one: the same.
    let mut none = Driver::new(&format!("redis://127.0.0.1:{}", redis.port()), 0xd);
    match none.expect(&mut [], "a refusal", |e| matches!(e, Effect::Down { .. })) {
        Effect::Down { error, .. } => assert!(matches!(error, LinkError::Auth(_)), "{error}"),
        _ => unreachable!(),
    }

    // Name leases: one owner, without regard to case.
    let now = Instant::now();
    a.link.claim(now, name("Ann"), 1);
    assert!(claimed(&mut a, &mut [&mut b], 1));
    b.link.claim(Instant::now(), name("aNN"), 2);
    assert!(!claimed(&mut b, &mut [&mut a], 2), "a held name is refused");

    // The guest counter: numbers are never handed out twice.
    a.link.reserve_guests(Instant::now(), 1, 3);
    let first = a.expect(&mut [&mut b], "guests", |e| {
        matches!(e, Effect::Guests { .. })
    });
    b.link.reserve_guests(Instant::now(), 5, 4);
    let second = b.expect(&mut [&mut a], "guests", |e| {
        matches!(e, Effect::Guests { .. })
    });
    assert_eq!(
        (first, second),
        (
            Effect::Guests {
                token: 3,
                numbers: Some(1..=1)
            },
            Effect::Guests {
                token: 4,
                numbers: Some(2..=6)
            }
        )
    );

    // PUBLISH from A reaches B (subscribed on its own connection), in
    // order, marked with A's id.
    for line in ["one", "two", "three"] {
        let event = Event::Text {
            nick: name("Ann"),
            room: name("lobby"),
            text: Text::new(line).unwrap(),
        };
        assert!(a.link.publish(Instant::now(), event));
    }
    let mut texts = Vec::new();
    while texts.len() < 3 {
        let got = b.expect(
            &mut [&mut a],
            "A's lines",
            |e| matches!(e, Effect::Message(m) if matches!(m.event, Event::Text { .. })),
        );
        let Effect::Message(m) = got else {
            unreachable!()
        };
        assert_eq!(m.server, 0xa);
        let Event::Text { text, .. } = m.event else {
            unreachable!()
        };
        texts.push(text.as_str().to_owned());
    }
    assert_eq!(texts, ["one", "two", "three"]);

    // Compare-and-delete: B cannot free A's name by naming the wrong owner...
    b.link.release_for(Instant::now(), 0xb, name("ann"));
    b.link.claim(Instant::now(), name("ann"), 5);
    assert!(!claimed(&mut b, &mut [&mut a], 5));
    // ...and when A releases it, it is free.
    a.link.release(Instant::now(), name("ann"));
    // (Redis orders commands per connection, not across servers: wait
    // until A's release is done before B asks.)
    a.settle();
    b.link.claim(Instant::now(), name("ann"), 6);
    assert!(claimed(&mut b, &mut [&mut a], 6));

    // Redis dies: both links go down; restarted (empty) on the same port,
    // both come back, and B's name is re-asserted in the new Redis.
    redis.kill();
    a.expect(&mut [&mut b], "A down", |e| {
        matches!(e, Effect::Down { was_up: true, .. })
    });
    b.expect(&mut [&mut a], "B down", |e| {
        matches!(e, Effect::Down { was_up: true, .. })
    });
    let refused_claim = Instant::now();
    a.link.claim(refused_claim, name("zed"), 7);
    assert!(!claimed(&mut a, &mut [&mut b], 7), "no claim without Redis");
    redis.restart();
    a.expect(&mut [&mut b], "A restored", |e| {
        *e == Effect::Up { restored: true }
    });
    b.expect(&mut [&mut a], "B restored", |e| {
        *e == Effect::Up { restored: true }
    });
    // B's re-assertion was queued as its link came up.
    b.settle();
    a.link.claim(Instant::now(), name("ANN"), 8);
    assert!(
        !claimed(&mut a, &mut [&mut b], 8),
        "B's lease survived the restart"
    );

    // B goes silent (its process "dies": nobody drives its link any more):
    // A notices within lost_after.
    a.backlog.clear();
    let silent_since = Instant::now();
    a.expect(&mut [], "B lost", |e| *e == Effect::ServerLost(0xb));
    assert!(silent_since.elapsed() < Duration::from_secs(3));
    // A frees the lost server's names at once.
    a.link.release_for(Instant::now(), 0xb, name("ann"));
    a.link.claim(Instant::now(), name("ann"), 9);
    assert!(claimed(&mut a, &mut [], 9));
    drop(b);
}

#[test]
fn nothing_listening_and_not_redis_are_told_apart() {
    // Refused: a socket bound but not listening holds the port, so nothing
    // can listen there (a port probed and closed again could be taken by a
    // test running beside this one) and a connect is refused.
    let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    holder
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let port = holder.local_addr().unwrap().as_socket().unwrap().port();
    let mut d = Driver::new(&format!("redis://127.0.0.1:{port}"), 1);
    match d.expect(&mut [], "a failure", |e| matches!(e, Effect::Down { .. })) {
        Effect::Down {
            error: LinkError::Io(e),
            ..
        } => assert!(e.to_lowercase().contains("refused"), "{e}"),
        other => panic!("{other:?}"),
    }

    // A server that speaks something else.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let http = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    let mut d = Driver::new(&format!("redis://127.0.0.1:{port}"), 1);
    match d.expect(&mut [], "a failure", |e| matches!(e, Effect::Down { .. })) {
        Effect::Down {
            error: LinkError::NotRedis(e),
            ..
        } => assert!(!e.is_empty()),
        other => panic!("{other:?}"),
    }
    http.join().unwrap();
}
