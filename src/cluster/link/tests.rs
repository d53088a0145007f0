//! The link driven sans-IO: a virtual clock, and Redis played by scripted
//! replies. Each test reads the commands the link wrote as RESP, and feeds
//! back the bytes a real Redis 7 sends (the real-Redis test in
//! tests/in_process/cluster_redis.rs checks that these scripts match reality).

use super::*;
use crate::protocol::chat::bus::{Reason, Text};

const SERVER: ServerId = 0xabc;
const PEER: ServerId = 0x777;

fn config(password: Option<&str>) -> LinkConfig {
    LinkConfig {
        server: SERVER,
        prefix: "t".into(),
        username: None,
        password: password.map(Into::into),
        timing: Timing::default(),
    }
}

fn name(s: &str) -> Name {
    Name::parse(s.as_bytes()).unwrap()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Everything the link asked for or reported.
fn effects(link: &mut Link) -> Vec<Effect> {
    std::iter::from_fn(|| link.poll_effect()).collect()
}

/// The commands the link wrote (all of them, marked written), each byte of
/// an argument as one char (lossless, and plain text for ASCII).
fn commands(link: &mut Link) -> Vec<Vec<String>> {
    let mut bytes = link.transmit().to_vec();
    link.advance(bytes.len());
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (frame, used) = resp::decode(&bytes).unwrap().unwrap();
        let Frame::Reply(Value::Array(args)) = frame else {
            panic!("not a command: {frame:?}")
        };
        out.push(
            args.iter()
                .map(|a| a.as_bytes().unwrap().iter().map(|&b| b as char).collect())
                .collect(),
        );
        bytes.drain(..used);
    }
    out
}

/// An argument as written by [`commands`], back to its bytes.
fn raw(arg: &str) -> Vec<u8> {
    arg.chars().map(|c| c as u8).collect()
}

fn names_of(cmds: &[Vec<String>]) -> Vec<&str> {
    cmds.iter().map(|c| c[0].as_str()).collect()
}

/// The error of the one effect left, which must be the fall of a link that
/// was up.
fn lost(link: &mut Link) -> LinkError {
    match &effects(link)[..] {
        [Effect::Down {
            error,
            was_up: true,
        }] => error.clone(),
        other => panic!("expected the link to go down, got {other:?}"),
    }
}

fn bulk(b: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", b.len()).into_bytes();
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
    out
}

fn push(items: &[&[u8]]) -> Vec<u8> {
    let mut out = format!(">{}\r\n", items.len()).into_bytes();
    for i in items {
        out.extend(bulk(i));
    }
    out
}

/// What Redis 7 answers to HELLO 3 (abridged: the map's contents are not
/// read).
const HELLO_REPLY: &[u8] = b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n";

fn subscribed() -> Vec<u8> {
    let mut out = b">3\r\n".to_vec();
    out.extend(bulk(b"subscribe"));
    out.extend(bulk(b"t:bus"));
    out.extend_from_slice(b":1\r\n");
    out
}

fn bus_bytes(server: ServerId, seq: u64, event: Event) -> Vec<u8> {
    let mut payload = Vec::new();
    bus::encode(&Message { server, seq, event }, &mut payload).unwrap();
    push(&[b"message", b"t:bus", &payload])
}

/// A link taken through connect and handshake to up, its commands read.
fn up_link(now: Instant) -> Link {
    let mut link = Link::new(config(None), now);
    link.handle_timeout(now);
    assert_eq!(effects(&mut link), [Effect::Connect]);
    link.handle_connected(now);
    commands(&mut link);
    link.handle_input(now, HELLO_REPLY);
    link.handle_input(now, &subscribed());
    assert_eq!(effects(&mut link), [Effect::Up { restored: false }]);
    // The sync request and the first heartbeat: answered, and echoed back
    // through the channel as Redis does for a subscriber.
    for c in answer_publishes(&mut link, now) {
        link.handle_input(now, &push(&[b"message", b"t:bus", &raw(&c[2])]));
    }
    link
}

/// After a failure: wait for the retry, connect, and answer the handshake;
/// the time it came up.
fn reconnect(link: &mut Link) -> Instant {
    let now = link.poll_timeout();
    link.handle_timeout(now);
    link.handle_connected(now);
    commands(link);
    link.handle_input(now, HELLO_REPLY);
    link.handle_input(now, &subscribed());
    now
}

/// Answer every command in flight the way Redis would for a publish
/// (`:1`) and return them.
fn answer_publishes(link: &mut Link, now: Instant) -> Vec<Vec<String>> {
    let cmds = commands(link);
    for c in &cmds {
        assert_eq!(c[0], "PUBLISH", "{cmds:?}");
        link.handle_input(now, b":1\r\n");
    }
    cmds
}

/// Run the clock up to (not including) `until`, playing a healthy Redis:
/// every heartbeat answered and echoed. Nothing else may happen.
fn keep_alive(link: &mut Link, until: Instant) {
    loop {
        let now = link.poll_timeout();
        if now >= until {
            return;
        }
        link.handle_timeout(now);
        for c in answer_publishes(link, now) {
            link.handle_input(now, &push(&[b"message", b"t:bus", &raw(&c[2])]));
        }
        assert!(effects(link).is_empty());
    }
}

#[test]
fn server_ids_are_random_and_never_zero() {
    let ids: std::collections::HashSet<ServerId> = (0..100).map(|_| new_server_id()).collect();
    assert_eq!(ids.len(), 100);
    assert!(!ids.contains(&bus::EVERY_SERVER));
}

#[test]
fn handshake_authenticates_names_the_client_and_subscribes() {
    let t0 = Instant::now();
    let mut link = Link::new(config(Some("s3cret")), t0);
    assert_eq!(link.poll_timeout(), t0, "the first connect is at once");
    link.handle_timeout(t0);
    assert_eq!(effects(&mut link), [Effect::Connect]);
    assert!(
        link.transmit().is_empty(),
        "nothing is written before connecting"
    );
    link.handle_connected(t0);
    let cmds = commands(&mut link);
    assert_eq!(
        cmds,
        [
            vec![
                "HELLO",
                "3",
                "AUTH",
                "default",
                "s3cret",
                "SETNAME",
                "sockloop-0000000000000abc"
            ],
            vec!["SUBSCRIBE", "t:bus"],
        ]
    );
    // Both answers are needed, in any order; fed a byte at a time.
    let mut replies = subscribed();
    replies.extend_from_slice(HELLO_REPLY);
    for b in &replies[..replies.len() - 1] {
        link.handle_input(t0, std::slice::from_ref(b));
        assert!(!link.is_up());
    }
    link.handle_input(t0, &replies[replies.len() - 1..]);
    assert!(link.is_up());
    assert_eq!(effects(&mut link), [Effect::Up { restored: false }]);
    // Up: it asks the others for their member lists and sends its first
    // heartbeat.
    let cmds = commands(&mut link);
    assert_eq!(names_of(&cmds), ["PUBLISH", "PUBLISH"]);
    let sync = bus::decode(&raw(&cmds[0][2])).unwrap();
    assert_eq!(
        (sync.server, sync.seq, sync.event),
        (SERVER, 1, Event::SyncRequest { to: 0 })
    );
    let beat = bus::decode(&raw(&cmds[1][2])).unwrap();
    assert_eq!(beat.event, Event::Heartbeat { members: 0 });
    assert_eq!(beat.seq, 2);
}

#[test]
fn handshake_failures_say_what_went_wrong() {
    type Check = fn(&LinkError) -> bool;
    let cases: [(&[u8], Check); 4] = [
        (
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
            |e| matches!(e, LinkError::Auth(_)),
        ),
        (b"-ERR unknown command 'HELLO'\r\n", |e| {
            matches!(e, LinkError::TooOld(_))
        }),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", |e| {
            matches!(e, LinkError::NotRedis(_))
        }),
        (b"+OK\r\n", |e| matches!(e, LinkError::NotRedis(_))),
    ];
    for (reply, expected) in cases {
        let t0 = Instant::now();
        let mut link = Link::new(config(Some("x")), t0);
        link.handle_timeout(t0);
        link.handle_connected(t0);
        commands(&mut link);
        link.handle_input(t0, reply);
        let effs = effects(&mut link);
        let [Effect::Connect, Effect::Down {
            error,
            was_up: false,
        }] = &effs[..]
        else {
            panic!("{reply:?}: {effs:?}")
        };
        assert!(expected(error), "{reply:?}: {error}");
        assert!(!link.is_up());
    }
}

#[test]
fn an_unanswered_connect_or_handshake_times_out() {
    let t0 = Instant::now();
    let mut link = Link::new(config(None), t0);
    link.handle_timeout(t0);
    effects(&mut link);
    assert_eq!(link.poll_timeout(), t0 + secs(5.0));
    link.handle_timeout(t0 + secs(4.9));
    assert!(effects(&mut link).is_empty());
    link.handle_timeout(t0 + secs(5.0));
    assert_eq!(
        effects(&mut link),
        [Effect::Down {
            error: LinkError::Timeout("connecting"),
            was_up: false
        }]
    );
    // Same for a connection that never answers HELLO.
    let t1 = link.poll_timeout();
    link.handle_timeout(t1);
    link.handle_connected(t1);
    link.handle_timeout(t1 + secs(5.0));
    assert!(matches!(
        effects(&mut link)[..],
        [
            Effect::Connect,
            Effect::Down {
                error: LinkError::Timeout(_),
                ..
            }
        ]
    ));
}

#[test]
fn retries_within_a_second_then_backs_off_to_at_most_five() {
    let mut now = Instant::now();
    let mut link = Link::new(config(None), now);
    let mut delays = Vec::new();
    for _ in 0..7 {
        link.handle_timeout(now);
        assert_eq!(effects(&mut link), [Effect::Connect]);
        link.handle_io_error(now, &io::Error::from(io::ErrorKind::ConnectionRefused));
        let effs = effects(&mut link);
        assert!(
            matches!(&effs[..], [Effect::Down { error: LinkError::Io(e), was_up: false }] if e.contains("refused")),
            "{effs:?}"
        );
        let next = link.poll_timeout();
        delays.push((next - now).as_secs_f64());
        // Nothing happens before the retry is due.
        link.handle_timeout(next - secs(0.01));
        assert!(effects(&mut link).is_empty());
        now = next;
    }
    assert_eq!(delays, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]);
    // Once up again, the back-off starts over.
    let now = reconnect(&mut link);
    link.handle_eof(now);
    assert!(matches!(
        effects(&mut link)[..],
        [
            Effect::Connect,
            Effect::Up { restored: false },
            Effect::Down {
                error: LinkError::Closed,
                was_up: true
            }
        ]
    ));
    assert_eq!(link.poll_timeout() - now, secs(0.5));
}

#[test]
fn a_lost_link_comes_back_restored_and_resyncs() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    link.handle_io_error(t0, &io::Error::from(io::ErrorKind::ConnectionReset));
    assert!(matches!(
        effects(&mut link)[..],
        [Effect::Down { was_up: true, .. }]
    ));
    assert!(link.transmit().is_empty(), "unsent output is discarded");
    reconnect(&mut link);
    assert_eq!(
        effects(&mut link),
        [Effect::Connect, Effect::Up { restored: true }]
    );
    let cmds = commands(&mut link);
    let first = bus::decode(&raw(&cmds[0][2])).unwrap();
    assert_eq!(first.event, Event::SyncRequest { to: 0 });
    assert_eq!(first.seq, 3, "sequence numbers go on across reconnects");
}

#[test]
fn messages_from_other_servers_are_passed_on_with_loss_made_visible() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    let join = Event::Join {
        nick: name("ann"),
        room: name("lobby"),
    };
    link.handle_input(t0, &bus_bytes(PEER, 10, join.clone()));
    let text = Event::Text {
        nick: name("ann"),
        room: name("lobby"),
        text: Text::new("hi").unwrap(),
    };
    link.handle_input(t0, &bus_bytes(PEER, 11, text.clone()));
    // 12 and 13 lost; 14 arrives.
    link.handle_input(t0, &bus_bytes(PEER, 14, Event::SyncRequest { to: SERVER }));
    // A sync request for another server counts in the sequence but is not
    // passed on.
    link.handle_input(t0, &bus_bytes(PEER, 15, Event::SyncRequest { to: 0x999 }));
    // A replay of 11 (or a forgery) is stale.
    link.handle_input(t0, &bus_bytes(PEER, 11, text.clone()));
    // Our own messages come back through the channel: not passed on.
    link.handle_input(t0, &bus_bytes(SERVER, 1, Event::SyncRequest { to: 0 }));
    let msg = |seq, event| {
        Effect::Message(Message {
            server: PEER,
            seq,
            event,
        })
    };
    assert_eq!(
        effects(&mut link),
        [
            msg(10, join),
            msg(11, text),
            Effect::Gap {
                server: PEER,
                missed: 2
            },
            msg(14, Event::SyncRequest { to: SERVER }),
        ]
    );
    let stats = link.stats();
    assert_eq!(
        (stats.received, stats.missed, stats.dropped_stale),
        (3, 2, 1)
    );
}

#[test]
fn malformed_bus_messages_are_dropped_and_counted_not_fatal() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    let mut future = Vec::new();
    bus::encode(
        &Message {
            server: PEER,
            seq: 1,
            event: Event::Bye,
        },
        &mut future,
    )
    .unwrap();
    future[0] = 9; // a newer version
    link.handle_input(t0, &push(&[b"message", b"t:bus", &future]));
    link.handle_input(t0, &push(&[b"message", b"t:bus", b"\x01\x03garbage"]));
    link.handle_input(t0, &push(&[b"message", b"t:bus", b""]));
    // Wrong channel, or a push we never asked for: counted.
    link.handle_input(t0, &push(&[b"message", b"other", b"x"]));
    link.handle_input(t0, &push(&[b"invalidate", b"x"]));
    assert!(effects(&mut link).is_empty());
    assert!(link.is_up());
    let stats = link.stats();
    assert_eq!(
        (
            stats.dropped_unknown_version,
            stats.dropped_malformed,
            stats.redis_errors
        ),
        (1, 2, 2)
    );
    // RESP that is not RESP is another matter: the link is lost.
    link.handle_input(t0, b"!!!\r\n");
    assert!(matches!(lost(&mut link), LinkError::NotRedis(_)));
}

#[test]
fn a_silent_server_is_lost_and_a_bye_is_not() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    link.handle_input(t0, &bus_bytes(PEER, 1, Event::Heartbeat { members: 1 }));
    link.handle_input(t0, &bus_bytes(0x888, 1, Event::Heartbeat { members: 2 }));
    link.handle_input(t0, &bus_bytes(0x888, 2, Event::Bye));
    effects(&mut link);
    // Our own link stays healthy; PEER says nothing more.
    keep_alive(&mut link, t0 + secs(5.0));
    link.handle_timeout(t0 + secs(5.0));
    assert_eq!(effects(&mut link), [Effect::ServerLost(PEER)]);
    assert!(link.is_up());
}

#[test]
fn nobody_is_lost_while_our_own_link_is_down() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    link.handle_input(t0, &bus_bytes(PEER, 1, Event::Heartbeat { members: 1 }));
    effects(&mut link);
    link.handle_eof(t0 + secs(1.0));
    effects(&mut link);
    // Down for a minute: retries fail, nobody is declared lost.
    let mut now = t0 + secs(1.0);
    while now < t0 + secs(60.0) {
        now = link.poll_timeout();
        link.handle_timeout(now);
        link.handle_io_error(now, &io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(effects(&mut link)
            .iter()
            .all(|e| matches!(e, Effect::Connect | Effect::Down { .. })));
    }
    // Back: PEER gets lost_after to be heard again.
    now = reconnect(&mut link);
    effects(&mut link);
    link.handle_timeout(now + secs(4.0));
    assert!(!effects(&mut link).contains(&Effect::ServerLost(PEER)));
}

#[test]
fn a_silent_redis_is_a_lost_link() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    // The heartbeat sent at t0 + 1 s is never answered.
    link.handle_timeout(t0 + secs(1.0));
    assert_eq!(names_of(&commands(&mut link)), ["PUBLISH"]);
    link.handle_timeout(t0 + secs(3.99));
    assert!(link.is_up());
    assert_eq!(link.poll_timeout(), t0 + secs(4.0));
    link.handle_timeout(t0 + secs(4.0));
    assert!(matches!(lost(&mut link), LinkError::Timeout(_)));
}

#[test]
fn when_our_own_messages_stop_coming_back_the_link_is_lost() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    let mut now = t0;
    // Redis answers every command but the subscription delivers nothing.
    while link.is_up() {
        now = link.poll_timeout();
        link.handle_timeout(now);
        if link.is_up() {
            answer_publishes(&mut link, now);
        }
    }
    assert_eq!(now - t0, secs(5.0));
    assert!(effects(&mut link).contains(&Effect::Down {
        error: LinkError::Unsubscribed,
        was_up: true
    }));
}

#[test]
fn names_are_claimed_with_set_nx_px_and_released_by_compare_and_delete() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    link.claim(t0, name("Ann"), 1);
    link.claim(t0, name("bob"), 2);
    let cmds = commands(&mut link);
    assert_eq!(
        cmds,
        [
            ["SET", "t:nick:ann", "0000000000000abc", "NX", "PX", "15000"],
            ["SET", "t:nick:bob", "0000000000000abc", "NX", "PX", "15000"],
        ]
    );
    link.handle_input(t0, b"+OK\r\n_\r\n");
    assert_eq!(
        effects(&mut link),
        [
            Effect::Claimed {
                token: 1,
                name: name("Ann"),
                granted: true
            },
            Effect::Claimed {
                token: 2,
                name: name("bob"),
                granted: false
            },
        ]
    );
    assert_eq!(link.held().collect::<Vec<_>>(), [&name("Ann")]);
    // Released by compare-and-delete, never by a plain DEL or GETDEL.
    link.release(t0, name("ann"));
    let cmds = commands(&mut link);
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0][0], "EVAL");
    assert!(cmds[0][1].contains("redis.call('GET', KEYS[1]) == ARGV[1]"));
    assert_eq!(cmds[0][2..], ["1", "t:nick:ann", "0000000000000abc"]);
    assert_eq!(link.held().count(), 0);
    // Releasing what we do not hold sends nothing.
    link.release(t0, name("bob"));
    assert!(commands(&mut link).is_empty());
}

#[test]
fn a_name_that_cannot_be_proven_free_is_not_granted() {
    let t0 = Instant::now();
    let mut link = Link::new(config(None), t0);
    link.claim(t0, name("ann"), 7);
    assert_eq!(
        effects(&mut link),
        [Effect::Claimed {
            token: 7,
            name: name("ann"),
            granted: false
        }]
    );
    // A claim in flight when the link fails is refused too, and its
    // possible lease is deleted (if ours) once the link is back.
    let mut link = up_link(t0);
    link.claim(t0, name("ann"), 8);
    commands(&mut link);
    link.handle_eof(t0);
    let effs = effects(&mut link);
    assert_eq!(
        effs[0],
        Effect::Claimed {
            token: 8,
            name: name("ann"),
            granted: false
        }
    );
    reconnect(&mut link);
    let cmds = commands(&mut link);
    let release = cmds.iter().find(|c| c[0] == "EVAL").expect("owed release");
    assert_eq!(release[3..], ["t:nick:ann", "0000000000000abc"]);
}

#[test]
fn held_names_are_reasserted_and_a_stolen_one_is_reported() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    for (i, n) in ["a", "b", "c"].into_iter().enumerate() {
        link.claim(t0, name(n), i as u64);
        commands(&mut link);
        link.handle_input(t0, b"+OK\r\n");
    }
    effects(&mut link);
    let t1 = t0 + secs(5.0);
    keep_alive(&mut link, t1);
    link.handle_timeout(t1);
    let cmds = commands(&mut link);
    let eval = cmds.iter().find(|c| c[0] == "EVAL").expect("a reassert");
    assert_eq!(eval[2], "3");
    assert_eq!(eval[6..], ["0000000000000abc", "15000"]);
    let stolen = eval[3..6].iter().position(|k| k == "t:nick:b").unwrap() + 1;
    // Answer in order: publishes first (the heartbeat), then the script.
    for c in &cmds {
        if c[0] == "EVAL" {
            link.handle_input(t1, format!("*1\r\n:{stolen}\r\n").as_bytes());
        } else {
            link.handle_input(t1, b":1\r\n");
        }
    }
    assert_eq!(effects(&mut link), [Effect::LeaseLost(name("b"))]);
    assert_eq!(link.held().count(), 2);
}

#[test]
fn guest_numbers_come_from_incrby() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    link.reserve_guests(t0, 10, 5);
    assert_eq!(commands(&mut link), [["INCRBY", "t:guests", "10"]]);
    link.handle_input(t0, b":30\r\n");
    assert_eq!(
        effects(&mut link),
        [Effect::Guests {
            token: 5,
            numbers: Some(21..=30)
        }]
    );
    // An answer that cannot be a count is no numbers at all.
    link.reserve_guests(t0, 10, 6);
    link.handle_input(t0, b":3\r\n");
    assert_eq!(
        effects(&mut link),
        [Effect::Guests {
            token: 6,
            numbers: None
        }]
    );
}

#[test]
fn output_toward_redis_is_bounded_and_publishes_past_it_are_dropped() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    let big = Text::new(&"x".repeat(100_000)).unwrap();
    let event = Event::Leave {
        nick: name("a"),
        room: name("r"),
        reason: Reason::Quit(big),
    };
    let mut sent = 0;
    while link.publish(t0, event.clone()) {
        sent += 1;
    }
    assert!(link.transmit().len() <= MAX_OUTPUT);
    assert_eq!(sent, MAX_OUTPUT / 100_070);
    assert_eq!(link.stats().publish_dropped, 1);
    link.claim(t0, name("x"), 1);
    link.claim(t0, name("y"), 2);
    // A small claim still fits; what does not fit is refused at once.
    let effs = effects(&mut link);
    assert!(effs
        .iter()
        .all(|e| matches!(e, Effect::Claimed { granted: false, .. })));
    // Writing it out makes room again.
    let n = link.transmit().len();
    link.advance(n);
    assert!(link.publish(t0, event));
}

#[test]
fn a_reply_nobody_asked_for_is_a_protocol_error() {
    let t0 = Instant::now();
    let mut link = up_link(t0);
    answer_publishes(&mut link, t0);
    link.handle_input(t0, b"+OK\r\n");
    assert!(matches!(lost(&mut link), LinkError::NotRedis(_)));
}

/// One thing that can happen to a link, for the property test below.
#[derive(Debug, Clone)]
enum Op {
    /// Time passes (milliseconds), then the link's timer is serviced.
    Wait(u16),
    Connected,
    Refused,
    Eof,
    /// Redis answers the handshake.
    Handshake,
    /// Redis answers the oldest command with one of a few replies.
    Reply(u8),
    /// A bus message from one of three other servers.
    Bus(u8, u64),
    /// Bytes that may or may not be RESP.
    Garbage(Vec<u8>),
    Publish(u16),
    Claim(u8),
    Release(u8),
    Guests(u8),
    /// The socket takes this many bytes.
    Write(u32),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => any::<u16>().prop_map(|ms| Op::Wait(ms % 7000)),
        2 => Just(Op::Connected),
        1 => Just(Op::Refused),
        1 => Just(Op::Eof),
        2 => Just(Op::Handshake),
        6 => any::<u8>().prop_map(Op::Reply),
        2 => (any::<u8>(), 0u64..6).prop_map(|(p, s)| Op::Bus(p, s)),
        1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Op::Garbage),
        3 => any::<u16>().prop_map(Op::Publish),
        3 => any::<u8>().prop_map(Op::Claim),
        2 => any::<u8>().prop_map(Op::Release),
        2 => any::<u8>().prop_map(Op::Guests),
        3 => any::<u32>().prop_map(Op::Write),
    ]
}

proptest::proptest! {
    /// Whatever happens, in any order: no panic, the bounds hold, and every
    /// claim and guest request is answered exactly once, by Redis or, when
    /// the link fails, by the link itself ("not granted", "no numbers").
    #[test]
    fn every_request_is_answered_once_and_the_bounds_hold(
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut link = Link::new(config(Some("pw")), t0);
        let mut asked = std::collections::BTreeSet::new();
        let mut answered = std::collections::BTreeSet::new();
        let mut token = 0u64;
        let names = ["a", "B", "c", "guest1"];
        let replies: [&[u8]; 6] = [b"+OK\r\n", b"_\r\n", b":7\r\n", b"-ERR x\r\n", b"*1\r\n:1\r\n", HELLO_REPLY];
        for op in ops {
            match op {
                Op::Wait(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    link.handle_timeout(now);
                    // Serviced, the timer is in the future: a deadline left
                    // in the past would make the reactor spin.
                    proptest::prop_assert!(link.poll_timeout() > now);
                }
                Op::Connected => link.handle_connected(now),
                Op::Refused => link.handle_io_error(now, &io::Error::from(io::ErrorKind::ConnectionRefused)),
                Op::Eof => link.handle_eof(now),
                Op::Handshake => {
                    link.handle_input(now, HELLO_REPLY);
                    link.handle_input(now, &subscribed());
                }
                Op::Reply(r) => link.handle_input(now, replies[usize::from(r) % replies.len()]),
                Op::Bus(p, seq) => {
                    let event = Event::Heartbeat { members: u32::from(p) };
                    link.handle_input(now, &bus_bytes(0x100 + u64::from(p % 3), seq, event));
                }
                Op::Garbage(bytes) => link.handle_input(now, &bytes),
                Op::Publish(len) => {
                    let text = Text::new(&"x".repeat(usize::from(len % 4096) * 16)).unwrap();
                    let event = Event::Text { nick: name("a"), room: name("r"), text };
                    link.publish(now, event);
                }
                Op::Claim(n) => {
                    token += 1;
                    asked.insert(token);
                    link.claim(now, name(names[usize::from(n) % names.len()]), token);
                }
                Op::Release(n) => link.release(now, name(names[usize::from(n) % names.len()])),
                Op::Guests(n) => {
                    token += 1;
                    asked.insert(token);
                    link.reserve_guests(now, u64::from(n % 20), token);
                }
                Op::Write(n) => {
                    let n = (n as usize).min(link.transmit().len());
                    link.advance(n);
                }
            }
            proptest::prop_assert!(link.transmit().len() <= MAX_OUTPUT + 512);
            proptest::prop_assert!(link.awaiting_replies() <= MAX_IN_FLIGHT);
            for effect in effects(&mut link) {
                if let Effect::Claimed { token, .. } | Effect::Guests { token, .. } = effect {
                    proptest::prop_assert!(asked.contains(&token), "answer to a token never asked: {token}");
                    proptest::prop_assert!(answered.insert(token), "token {token} answered twice");
                }
            }
        }
        // The link fails: whatever was still outstanding is answered now.
        link.handle_eof(now);
        for effect in effects(&mut link) {
            if let Effect::Claimed { token, .. } | Effect::Guests { token, .. } = effect {
                proptest::prop_assert!(answered.insert(token), "token {token} answered twice");
            }
        }
        proptest::prop_assert_eq!(asked, answered, "some request was never answered");
    }
}
