//! Chat across servers, end to end: a real `redis-server` started by the
//! test on a free loopback port, several `sockloop serve --cluster`
//! processes of the real binary, and plain TCP chat clients. Every wait is
//! for a line (or an exit), under the harness's deadline; nothing sleeps.
//!
//! A client proves that nothing else reached it by sending `/who` and
//! finding the answer as its very next line.
//!
//! Without `redis-server` on the PATH each test says "SKIPPED" loudly and
//! passes; under CI (the `CI` variable set) that is a failure instead.

use crate::common;
use crate::redis_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{run, ChatClient, Server};
use redis_support::{free_port, RedisServer};
use sockloop::cluster::resp::{self, Frame, Value};
use sockloop::protocol::chat::bus::{self, Event};

/// `sockloop serve --chat 127.0.0.1:0 --cluster URL [EXTRA...]`.
fn serve(url: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--chat", "127.0.0.1:0", "--cluster", url];
    args.extend_from_slice(extra);
    Server::start(&args, 1)
}

/// The next line must be `want`.
fn expect(c: &mut ChatClient, want: &str) {
    assert_eq!(c.line(), want);
}

/// Nothing reached `c` since its last line: its `/who` answer comes next.
fn quiet(c: &mut ChatClient, room: &str, members: &[&str]) {
    c.say("/who");
    expect(c, &format!("* users in #{room}: {}", members.join(", ")));
}

/// Wait until `c`'s server knows `nick` (in `c`'s room, #lobby): a user on
/// another server who connected just before `c` may reach `c`'s server
/// before or after `c` did, so `c` may or may not hear its join. Returns
/// the `/who` list then, in the order `c`'s server learned of them.
fn settle(c: &mut ChatClient, nick: &str) -> Vec<String> {
    let deadline = Instant::now() + common::WAIT;
    let joined = format!("* {nick} joined #lobby");
    loop {
        c.say("/who");
        let mut line = c.line();
        if line == joined {
            line = c.line();
        }
        let list = line
            .strip_prefix("* users in #lobby: ")
            .unwrap_or_else(|| panic!("not a /who answer: {line}"));
        let list: Vec<String> = list.split(", ").map(String::from).collect();
        if list.iter().any(|n| n == nick) {
            return list;
        }
        assert!(Instant::now() < deadline, "{nick} never became known");
        // A pause between two questions, under the deadline above.
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_chat_row_works_across_two_servers() {
    let Some(redis) = RedisServer::start("every_chat_row_works_across_two_servers", None) else {
        return;
    };
    let a = serve(&redis.url(), &[]);
    let b = serve(&redis.url(), &[]);
    let (mut a1, n_a1) = ChatClient::join(a.addr("chat"));
    let (mut b1, n_b1) = ChatClient::join(b.addr("chat"));
    expect(&mut a1, &format!("* {n_b1} joined #lobby"));
    assert_ne!(n_a1, n_b1, "guest numbers are cluster-wide");
    let on_b = settle(&mut b1, &n_a1);
    let on_b: Vec<&str> = on_b.iter().map(String::as_str).collect();
    quiet(&mut a1, "lobby", &[&n_a1, &n_b1]);

    // Text (sanitized), then /me, each to the others only.
    a1.say("hello \u{1b}[31mred");
    expect(&mut b1, &format!("<{n_a1}> hello \u{fffd}[31mred"));
    b1.say("/me waves");
    expect(&mut a1, &format!("* {n_b1} waves"));
    quiet(&mut b1, "lobby", &on_b);

    // One sender's lines arrive in the order sent.
    for i in 0..50 {
        a1.say(&format!("line {i}"));
    }
    for i in 0..50 {
        expect(&mut b1, &format!("<{n_a1}> line {i}"));
    }

    // A rename is seen on both servers; the name is then taken everywhere,
    // without regard to case.
    b1.say("/nick Bob");
    expect(&mut b1, &format!("* {n_b1} is now known as Bob"));
    expect(&mut a1, &format!("* {n_b1} is now known as Bob"));
    a1.say("/nick bOB");
    expect(&mut a1, "* error: nickname taken: bOB");

    // /msg reaches the other server; an unknown nick is an error.
    a1.say("/msg bob psst");
    expect(&mut a1, "-> *Bob* psst");
    expect(&mut b1, &format!("*{n_a1}* psst"));
    a1.say("/msg nobody hi");
    expect(&mut a1, "* error: no such user: nobody");

    // A third member, on A: /who on B lists in the order B learned.
    let (mut a2, n_a2) = ChatClient::join(a.addr("chat"));
    expect(&mut a1, &format!("* {n_a2} joined #lobby"));
    expect(&mut b1, &format!("* {n_a2} joined #lobby"));
    let renamed: Vec<&str> = on_b
        .iter()
        .map(|&n| if n == n_b1 { "Bob" } else { n })
        .chain([n_a2.as_str()])
        .collect();
    quiet(&mut b1, "lobby", &renamed);
    quiet(&mut a2, "lobby", &[&n_a1, "Bob", &n_a2]);

    // /join: the old room hears the leave, the new room the join, on every
    // server; /rooms counts everyone.
    a1.say("/join #rust");
    expect(&mut a1, "* you are now in #rust");
    expect(&mut b1, &format!("* {n_a1} left #lobby"));
    expect(&mut a2, &format!("* {n_a1} left #lobby"));
    b1.say("/join Rust");
    expect(&mut b1, "* you are now in #rust");
    expect(&mut a1, "* Bob joined #rust");
    expect(&mut a2, "* Bob left #lobby");
    a2.say("/rooms");
    expect(&mut a2, "* rooms: #lobby (1), #rust (2)");
    quiet(&mut a1, "rust", &[&n_a1, "Bob"]);

    // /quit with a reason; the name is free again at once.
    b1.say("/quit gone fishing");
    expect(&mut b1, "* bye");
    b1.expect_closed();
    expect(&mut a1, "* Bob left #rust (gone fishing)");
    a2.say("/nick bob");
    expect(&mut a2, &format!("* {n_a2} is now known as bob"));

    // A disconnect, from B's side: a plain leave.
    let (b2, n_b2) = ChatClient::join(b.addr("chat"));
    expect(&mut a2, &format!("* {n_b2} joined #lobby"));
    drop(b2.stream.shutdown(std::net::Shutdown::Both));
    expect(&mut a2, &format!("* {n_b2} left #lobby"));
    quiet(&mut a2, "lobby", &["bob"]);
    quiet(&mut a1, "rust", &[&n_a1]);
}

#[test]
fn leave_reasons_cross_servers() {
    let Some(redis) = RedisServer::start("leave_reasons_cross_servers", None) else {
        return;
    };
    let a = serve(&redis.url(), &[]);
    let idle = serve(&redis.url(), &["--idle-timeout", "1"]);
    let (mut a1, n_a1) = ChatClient::join(a.addr("chat"));
    let (_sleeper, n_sleeper) = ChatClient::join(idle.addr("chat"));
    expect(&mut a1, &format!("* {n_sleeper} joined #lobby"));
    expect(
        &mut a1,
        &format!("* {n_sleeper} left #lobby (idle timeout)"),
    );
    quiet(&mut a1, "lobby", &[&n_a1]);
}

#[test]
fn start_up_fails_with_one_line_naming_redis() {
    let Some(redis) =
        RedisServer::start("start_up_fails_with_one_line_naming_redis", Some("right"))
    else {
        return;
    };
    // A listener that accepts and never answers: no handshake within 5 s.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("redis://{}", silent.local_addr().unwrap());
    let silent_run = std::thread::spawn(move || {
        let started = Instant::now();
        let result = run(&["serve", "--chat", "127.0.0.1:0", "--cluster", &silent_url]);
        (result, started.elapsed(), silent_url)
    });
    // Something that is not Redis at all.
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_url = format!("redis://{}", http.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = http.accept() {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    });
    let refused = format!("redis://127.0.0.1:{}", free_port());
    let wrong_password = format!("redis://:wrong@127.0.0.1:{}", redis.port());
    let no_password = redis.url().replace(":right@", "");
    for (url, why) in [
        (&refused, "refused"),
        (&wrong_password, "authentication failed"),
        (&no_password, "authentication failed"),
        (&http_url, "not a Redis server"),
    ] {
        let (status, out, err) = run(&["serve", "--chat", "127.0.0.1:0", "--cluster", url]);
        assert_eq!(status.code(), Some(1), "{url}: {err}");
        assert_eq!(out, "", "no listening line for {url}");
        assert_eq!(err.lines().count(), 1, "one stderr line: {err:?}");
        let shown = url.replace(":wrong@", ":***@");
        assert!(err.contains(&shown) && err.contains(why), "{url}: {err:?}");
        assert!(!err.contains("wrong"), "the password is not shown: {err}");
    }
    let ((status, out, err), took, url) = silent_run.join().unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(out, "");
    assert!(err.contains(&url) && err.contains("no answer"), "{err:?}");
    assert!(took >= Duration::from_secs(4), "gave up after {took:?}");
    drop(silent);
}

#[test]
fn bad_cluster_arguments_are_usage_errors() {
    for args in [
        &[
            "serve",
            "--chat",
            "127.0.0.1:0",
            "--cluster",
            "http://127.0.0.1:1",
        ][..],
        &[
            "serve",
            "--chat",
            "127.0.0.1:0",
            "--cluster",
            "redis://127.0.0.1:port",
        ][..],
        &[
            "serve",
            "--echo",
            "127.0.0.1:0",
            "--cluster",
            "redis://127.0.0.1:1",
        ][..],
    ] {
        let (status, out, err) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(out, "");
        assert!(err.contains("Usage:"), "{err}");
    }
}

#[test]
fn redis_killed_and_restarted_link_lost_then_restored() {
    let Some(mut redis) = RedisServer::start("redis_killed_and_restarted", None) else {
        return;
    };
    let a = serve(&redis.url(), &[]);
    let b = serve(&redis.url(), &[]);
    let (mut a1, n_a1) = ChatClient::join(a.addr("chat"));
    let (mut b1, n_b1) = ChatClient::join(b.addr("chat"));
    expect(&mut a1, &format!("* {n_b1} joined #lobby"));
    let on_b = settle(&mut b1, &n_a1);
    let on_b: Vec<&str> = on_b.iter().map(String::as_str).collect();
    let (mut a2, n_a2) = ChatClient::join(a.addr("chat"));
    expect(&mut a1, &format!("* {n_a2} joined #lobby"));
    expect(&mut b1, &format!("* {n_a2} joined #lobby"));
    let with_a2: Vec<&str> = on_b.iter().copied().chain([n_a2.as_str()]).collect();

    redis.kill();
    let lost = "* cluster link lost; until it is back, only users on this server hear you";
    for c in [&mut a1, &mut a2, &mut b1] {
        expect(c, lost);
    }
    // Local chat goes on; the other server does not hear it, and nobody
    // is announced as leaving.
    a1.say("only here");
    expect(&mut a2, &format!("<{n_a1}> only here"));
    quiet(&mut b1, "lobby", &with_a2);
    // A name cannot be proven free now.
    b1.say("/nick zed");
    let refusal = b1.line();
    assert!(refusal.starts_with("* error: "), "{refusal}");
    // A real change while the link is down: a2 leaves.
    a2.say("/quit");
    expect(&mut a2, "* bye");
    expect(&mut a1, &format!("* {n_a2} left #lobby"));

    redis.restart();
    let restored = "* cluster link restored";
    expect(&mut a1, restored);
    expect(&mut b1, restored);
    // Only the real change is announced, after the restored notice.
    expect(&mut b1, &format!("* {n_a2} left #lobby"));
    quiet(&mut b1, "lobby", &on_b);
    quiet(&mut a1, "lobby", &[&n_a1, &n_b1]);
    // And the cluster works again.
    b1.say("/nick zed");
    expect(&mut b1, &format!("* {n_b1} is now known as zed"));
    expect(&mut a1, &format!("* {n_b1} is now known as zed"));
}

#[test]
fn a_killed_server_is_lost_within_10s_and_its_names_come_free() {
    let Some(redis) = RedisServer::start("a_killed_server_is_lost", None) else {
        return;
    };
    let a = serve(&redis.url(), &[]);
    let mut b = serve(&redis.url(), &[]);
    let (mut a1, n_a1) = ChatClient::join(a.addr("chat"));
    let (mut b1, n_b1) = ChatClient::join(b.addr("chat"));
    expect(&mut a1, &format!("* {n_b1} joined #lobby"));
    settle(&mut b1, &n_a1);
    b1.say("/nick victim");
    expect(&mut b1, &format!("* {n_b1} is now known as victim"));
    expect(&mut a1, &format!("* {n_b1} is now known as victim"));

    let killed = Instant::now();
    let _ = b.child.kill(); // SIGKILL, by PID
    let _ = b.child.wait();
    expect(&mut a1, "* victim left #lobby (server lost)");
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(10), "noticed after {took:?}");
    a1.say("/nick victim");
    expect(&mut a1, &format!("* {n_a1} is now known as victim"));
}

#[test]
fn a_server_shutting_down_takes_its_users_out() {
    let Some(redis) = RedisServer::start("a_server_shutting_down", None) else {
        return;
    };
    let a = serve(&redis.url(), &[]);
    let mut b = serve(&redis.url(), &[]);
    let (mut a1, n_a1) = ChatClient::join(a.addr("chat"));
    let (mut b1, n_b1) = ChatClient::join(b.addr("chat"));
    expect(&mut a1, &format!("* {n_b1} joined #lobby"));
    settle(&mut b1, &n_a1);
    let (mut b2, n_b2) = ChatClient::join(b.addr("chat"));
    expect(&mut a1, &format!("* {n_b2} joined #lobby"));
    expect(&mut b1, &format!("* {n_b2} joined #lobby"));
    b2.say("/join elsewhere");
    expect(&mut b2, "* you are now in #elsewhere");
    expect(&mut a1, &format!("* {n_b2} left #lobby"));
    expect(&mut b1, &format!("* {n_b2} left #lobby"));

    b.signal("TERM");
    expect(&mut b1, "* server shutting down");
    expect(&mut a1, &format!("* {n_b1} left #lobby"));
    assert!(b.wait_exit().success());
    a1.say("/rooms");
    expect(&mut a1, "* rooms: #lobby (1)");
    quiet(&mut a1, "lobby", &[&n_a1]);
    a1.say(&format!("/nick {n_b1}"));
    expect(&mut a1, &format!("* {n_a1} is now known as {n_b1}"));
}

/// A raw RESP2 connection to Redis, for what no sockloop server would send
/// and to watch the channel.
struct RawRedis {
    stream: TcpStream,
    input: Vec<u8>,
}

impl RawRedis {
    fn connect(redis: &RedisServer) -> RawRedis {
        let stream = common::connect(redis.addr());
        RawRedis {
            stream,
            input: Vec::new(),
        }
    }

    fn command(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        resp::encode_command(&mut out, args);
        self.stream.write_all(&out).unwrap();
    }

    fn frame(&mut self) -> Frame {
        loop {
            if let Some((frame, used)) = resp::decode(&self.input).unwrap() {
                self.input.drain(..used);
                return frame;
            }
            let mut buf = [0; 4096];
            let n = self
                .stream
                .read(&mut buf)
                .expect("a frame from Redis in time");
            assert!(n > 0, "Redis closed the connection");
            self.input.extend_from_slice(&buf[..n]);
        }
    }

    /// The next bus message on the channel this connection subscribed to.
    fn bus_message(&mut self) -> bus::Message {
        loop {
            let items = match self.frame() {
                Frame::Push(items) => items,
                Frame::Reply(Value::Array(items)) => items,
                Frame::Reply(_) => continue,
            };
            if items.first().and_then(Value::as_bytes) == Some(b"message") {
                let payload = items[2].as_bytes().expect("a payload");
                return bus::decode(payload).expect("a well-formed bus message");
            }
        }
    }
}

#[test]
fn one_publish_per_line_per_room_and_malformed_messages_are_dropped() {
    let Some(redis) = RedisServer::start("one_publish_per_line", None) else {
        return;
    };
    let mut a = Server::start_env(
        &[
            "--chat",
            "127.0.0.1:0",
            "--cluster",
            &redis.url(),
            "--stats-interval",
            "0.2",
        ],
        1,
        &[("RUST_LOG", "info")],
    );
    let (mut a1, n_a1) = ChatClient::join(a.addr("chat"));
    let mut everyone = vec![n_a1.clone()];
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let (c, nick) = ChatClient::join(a.addr("chat"));
        expect(&mut a1, &format!("* {nick} joined #lobby"));
        everyone.push(nick);
        listeners.push(c);
    }
    let mut watch = RawRedis::connect(&redis);
    watch.command(&[b"SUBSCRIBE", b"sockloop:bus"]);
    let _ = watch.frame(); // the subscribe confirmation
    a1.say("to everyone");
    a1.say("/me is done");
    // Between the two lines only heartbeats may pass: the line to a room
    // of four is one message, not one per listener.
    let mut texts = 0;
    // What was published before the subscription took effect may still
    // come first (the joins): skip to the first line.
    while !matches!(watch.bus_message().event, Event::Text { .. }) {}
    texts += 1;
    loop {
        match watch.bus_message().event {
            Event::Text { text, .. } => {
                assert_eq!(text.as_str(), "to everyone");
                texts += 1;
            }
            Event::Action { .. } => break,
            Event::Heartbeat { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(texts, 1);

    // Garbage on the bus: dropped and counted, the server carries on.
    let mut raw = RawRedis::connect(&redis);
    raw.command(&[b"PUBLISH", b"sockloop:bus", b"\x01\x03not a message"]);
    raw.command(&[b"PUBLISH", b"sockloop:bus", b"\x09from the future"]);
    let line = a.stderr.wait_for("bus_dropped=2");
    assert!(
        line.contains("bus_published=") && line.contains("bus_received="),
        "{line}"
    );
    let everyone: Vec<&str> = everyone.iter().map(String::as_str).collect();
    quiet(&mut a1, "lobby", &everyone);
    for (i, c) in listeners.iter_mut().enumerate() {
        for later in &everyone[i + 2..] {
            expect(c, &format!("* {later} joined #lobby"));
        }
        expect(c, &format!("<{n_a1}> to everyone"));
        expect(c, &format!("* {n_a1} is done"));
    }
}

/// Read `c`'s lines until one starts with `prefix`; return it.
fn wait_line(c: &mut ChatClient, prefix: &str) -> String {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let line = c.line();
        if line.starts_with(prefix) {
            return line;
        }
        assert!(Instant::now() < deadline, "no line starting {prefix:?}");
    }
}

#[test]
fn a_cut_off_server_comes_back_and_no_two_users_share_a_name() {
    let Some(redis) = RedisServer::start("a_cut_off_server_comes_back", None) else {
        return;
    };
    let a = serve(&redis.url(), &[]);
    let b = serve(&redis.url(), &[]);
    let (mut a1, n_a1) = ChatClient::join(a.addr("chat"));
    let (mut b1, n_b1) = ChatClient::join(b.addr("chat"));
    expect(&mut a1, &format!("* {n_b1} joined #lobby"));
    settle(&mut b1, &n_a1);
    b1.say("/nick alice");
    expect(&mut b1, &format!("* {n_b1} is now known as alice"));
    expect(&mut a1, &format!("* {n_b1} is now known as alice"));

    // B stops answering (as if cut off): A notices and frees the name.
    b.signal("STOP");
    expect(&mut a1, "* alice left #lobby (server lost)");
    a1.say("/nick alice");
    expect(&mut a1, &format!("* {n_a1} is now known as alice"));

    // B is back: it finds its user's name taken, renames that user, and
    // the two servers agree again.
    b.signal("CONT");
    let renamed = wait_line(&mut b1, "* alice is now known as ");
    let new = renamed.rsplit(' ').next().unwrap().to_string();
    assert_ne!(new.to_lowercase(), "alice");
    expect(&mut a1, &format!("* {new} joined #lobby"));
    quiet(&mut a1, "lobby", &["alice", &new]);
    let deadline = Instant::now() + common::WAIT;
    loop {
        b1.say("/who");
        let who = wait_line(&mut b1, "* users in #lobby: ");
        let mut names: Vec<&str> = who["* users in #lobby: ".len()..].split(", ").collect();
        names.sort_unstable();
        let mut want = vec!["alice", new.as_str()];
        want.sort_unstable();
        if names == want {
            break;
        }
        assert!(Instant::now() < deadline, "B still lists {names:?}");
        // A pause between two questions, under the deadline above.
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bench_chat_spreads_its_clients_over_servers_and_checks_every_line() {
    let Some(redis) = RedisServer::start("bench_chat_spreads_its_clients", None) else {
        return;
    };
    let a = serve(&redis.url(), &[]);
    let b = serve(&redis.url(), &[]);
    let (a_addr, b_addr) = (a.addr("chat").to_string(), b.addr("chat").to_string());
    let (status, out, err) = run(&[
        "bench", "chat", "--to", &a_addr, "--to", &b_addr, "-c", "6", "-n", "200", "--json",
    ]);
    assert!(status.success(), "{err}");
    let field = |name: &str| -> u64 {
        let at = out
            .find(&format!("\"{name}\":"))
            .unwrap_or_else(|| panic!("{out}"));
        let rest = &out[at + name.len() + 3..];
        let end = rest.find([',', '}']).unwrap();
        rest[..end].parse().unwrap()
    };
    // Every line reaches the five other clients, half of them through the
    // other server, and each is checked byte for byte.
    assert_eq!(field("sent"), 200);
    assert_eq!(field("messages"), 200 * 5);
    assert_eq!(field("errors"), 0);
    assert!(
        out.contains(&format!("\"to\":\"{a_addr}, {b_addr}\"")),
        "{out}"
    );
    let (status, _, err) = run(&["bench", "echo", "--to", &a_addr, "--to", &b_addr]);
    assert_eq!(status.code(), Some(2), "{err}");
}

#[test]
fn guest_numbers_are_never_reused_across_servers() {
    let Some(redis) = RedisServer::start("guest_numbers_are_never_reused", None) else {
        return;
    };
    let a = serve(&redis.url(), &[]);
    let mut b = serve(&redis.url(), &[]);
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        let server = if i % 2 == 0 { &a } else { &b };
        // Each leaves at once, freeing its name: the number still is not
        // handed out again.
        let (c, nick) = ChatClient::join(server.addr("chat"));
        drop(c);
        assert!(seen.insert(nick.clone()), "{nick} handed out twice");
    }
    // A server that restarts takes a fresh block.
    b.signal("TERM");
    assert!(b.wait_exit().success());
    let b = serve(&redis.url(), &[]);
    for _ in 0..5 {
        let (_c, nick) = ChatClient::join(b.addr("chat"));
        assert!(seen.insert(nick.clone()), "{nick} handed out twice");
    }
}

/// A burst of connections larger than the guest names a server has proven
/// free at that moment: the ones past the pool wait for the next block and
/// are welcomed when it comes, each under a name of its own. They used to be
/// told "no nickname can be proven free right now (cluster link down)" and
/// closed, with the link up all along.
#[test]
fn a_burst_of_connections_waits_for_guest_names_instead_of_failing() {
    let Some(redis) = RedisServer::start("a_burst_of_connections_waits", None) else {
        return;
    };
    let a = serve(&redis.url(), &[]);
    let addr = a.addr("chat");
    let burst = 3 * sockloop::protocol::chat::cluster::GUEST_BLOCK as usize;
    // Connect them all before reading any welcome.
    let streams: Vec<std::net::TcpStream> = (0..burst).map(|_| common::connect(addr)).collect();
    let mut nicks = std::collections::HashSet::new();
    for s in streams {
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(s), &mut first).unwrap();
        let nick = common::welcome_nick(first.trim_end());
        assert!(nicks.insert(nick.clone()), "{nick} given twice");
    }
    assert_eq!(nicks.len(), burst);
}
