//! A simulated Redis for the cluster simulation: the peer every server's
//! link connects to on the simulated network, and the faults a real Redis
//! and its network bring (it goes away and comes back, with or without its
//! data; it answers late; bytes cross in small pieces; it cuts a subscriber
//! that does not keep up).
//!
//! Two layers. [`RedisModel`] is sans-IO: commands in (decoded with the same
//! `redis-protocol` crate the link's codec uses), RESP3 replies and pub/sub
//! pushes out, keys with expiry on virtual time. It knows exactly the
//! commands the link sends (`HELLO 3 [AUTH u p] SETNAME n`, `SUBSCRIBE`,
//! `PUBLISH`, `SET k v NX PX ms`, `INCRBY`, and the link's two scripts,
//! recognised by their text); anything else is answered with an error *and*
//! counted in [`RedisModel::unknown`], which the simulation requires to
//! stay zero, so a change to the link's commands cannot pass unnoticed.
//! [`SimRedis`] moves bytes between the model and each server's
//! [`SimNet`]: it accepts or refuses connects, reads what a server wrote
//! and writes what the model answered, in chunks and with the delays of the
//! current [`RedisFaults`].
//!
//! What the model is not: no persistence beyond "restart keeps the data or
//! not", no pipelining limits, no memory accounting but the pub/sub output
//! limit, no Lua (the scripts' effects are written here in Rust).

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;

use crate::net::sim::{ClientRead, ConnId, SimNet};

/// How the simulated Redis misbehaves now; the scenario changes it as the
/// run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisFaults {
    /// Commands are carried out this long after their bytes arrived.
    pub latency: Duration,
    /// Bytes moved per read or write, at most (partial reads and writes).
    pub chunk: usize,
    /// Bytes written toward one server per step, at most (a congested link).
    pub rate: usize,
    /// A subscriber whose unwritten output passes this is disconnected
    /// (Redis's `client-output-buffer-limit pubsub`).
    pub pubsub_limit: usize,
    /// Redis reads nothing (busy with something else): the servers'
    /// output toward it backs up, and their sockets must turn writable
    /// again when it reads.
    pub stalled: bool,
}

impl RedisFaults {
    /// A healthy Redis on loopback.
    pub const NONE: RedisFaults = RedisFaults {
        latency: Duration::ZERO,
        chunk: 1 << 20,
        rate: usize::MAX,
        pubsub_limit: 32 << 20,
        stalled: false,
    };
}

/// One client connection as Redis sees it.
#[derive(Debug, Default)]
struct Session {
    /// Bytes received, not yet a whole command.
    input: Vec<u8>,
    /// Replies and pushes not yet written.
    output: Vec<u8>,
    /// The name given with `HELLO ... SETNAME`.
    name: Option<String>,
    /// Subscribed to these channels.
    channels: Vec<Vec<u8>>,
    /// Redis closed it (a slow subscriber, bytes that are not RESP).
    cut: bool,
}

/// What the model counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RedisCounters {
    /// Commands carried out.
    pub commands: u64,
    /// `PUBLISH` commands.
    pub publishes: u64,
    /// Subscribers cut for a full output buffer.
    pub slow_cut: u64,
    /// Restarts (with or without the data).
    pub restarts: u64,
    /// Connections refused while down.
    pub refused: u64,
}

/// The sans-IO Redis: sessions, keys and channels.
#[derive(Debug, Default)]
pub struct RedisModel {
    sessions: BTreeMap<usize, Session>,
    next_session: usize,
    /// key -> (value, expires at).
    keys: BTreeMap<Vec<u8>, (Vec<u8>, Option<Duration>)>,
    /// Commands the model does not know (must stay empty).
    pub unknown: Vec<String>,
    /// What happened.
    pub counters: RedisCounters,
}

fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    let _ = write!(out, "${}\r\n", bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

impl RedisModel {
    /// A new connection: its session number.
    pub fn open(&mut self) -> usize {
        self.next_session += 1;
        self.sessions.insert(self.next_session, Session::default());
        self.next_session
    }

    /// The connection ended.
    pub fn close(&mut self, session: usize) {
        self.sessions.remove(&session);
    }

    /// Redis starts again, with its data (a snapshot that holds every
    /// write) or empty.
    pub fn restart(&mut self, keep_data: bool) {
        self.sessions.clear();
        if !keep_data {
            self.keys.clear();
        }
        self.counters.restarts += 1;
    }

    /// The value of `key` now, if it exists.
    pub fn get(&mut self, key: &[u8], now: Duration) -> Option<&[u8]> {
        self.expire(key, now);
        self.keys.get(key).map(|(v, _)| &v[..])
    }

    /// The session's client name (`SETNAME`).
    pub fn name(&self, session: usize) -> Option<&str> {
        self.sessions.get(&session)?.name.as_deref()
    }

    /// Whether Redis cut the session.
    pub fn is_cut(&self, session: usize) -> bool {
        self.sessions.get(&session).is_none_or(|s| s.cut)
    }

    /// Bytes waiting to be written to the session.
    pub fn output(&self, session: usize) -> &[u8] {
        self.sessions.get(&session).map_or(&[], |s| &s.output[..])
    }

    /// `n` bytes of the output were written.
    pub fn advance(&mut self, session: usize, n: usize) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.output.drain(..n.min(s.output.len()));
        }
    }

    fn expire(&mut self, key: &[u8], now: Duration) {
        if let Some((_, Some(at))) = self.keys.get(key) {
            if *at <= now {
                self.keys.remove(key);
            }
        }
    }

    /// Bytes from the session's client, carried out at `now`.
    pub fn handle_input(
        &mut self,
        session: usize,
        bytes: &[u8],
        now: Duration,
        faults: &RedisFaults,
    ) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        s.input.extend_from_slice(bytes);
        loop {
            let Some(s) = self.sessions.get_mut(&session) else {
                return;
            };
            if s.cut {
                return;
            }
            let (frame, used) = match decode(&s.input) {
                Ok(Some(done)) => done,
                Ok(None) => return,
                Err(e) => {
                    // Redis answers a protocol error and closes.
                    self.unknown.push(format!("not RESP: {e:?}"));
                    s.cut = true;
                    return;
                }
            };
            s.input.drain(..used);
            let args: Vec<Vec<u8>> = match frame {
                OwnedFrame::Array(items) => items
                    .into_iter()
                    .map(|f| match f {
                        OwnedFrame::BulkString(b) => b,
                        other => format!("{other:?}").into_bytes(),
                    })
                    .collect(),
                other => {
                    self.unknown.push(format!("not a command: {other:?}"));
                    continue;
                }
            };
            self.command(session, &args, now, faults);
        }
    }

    fn reply(&mut self, session: usize, bytes: &[u8]) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.output.extend_from_slice(bytes);
        }
    }

    fn command(&mut self, session: usize, args: &[Vec<u8>], now: Duration, faults: &RedisFaults) {
        self.counters.commands += 1;
        let name = args
            .first()
            .map(|a| a.to_ascii_uppercase())
            .unwrap_or_default();
        let arg = |i: usize| args.get(i).map(|a| &a[..]).unwrap_or(b"");
        let mut out = Vec::new();
        match &name[..] {
            b"HELLO" if arg(1) == b"3" => {
                let mut i = 2;
                while i < args.len() {
                    match &args[i].to_ascii_uppercase()[..] {
                        b"AUTH" => i += 3,
                        b"SETNAME" => {
                            let n = String::from_utf8_lossy(arg(i + 1)).into_owned();
                            if let Some(s) = self.sessions.get_mut(&session) {
                                s.name = Some(n);
                            }
                            i += 2;
                        }
                        _ => {
                            self.unknown.push(format!("HELLO option {:?}", args[i]));
                            i += 1;
                        }
                    }
                }
                out.extend_from_slice(b"%3\r\n");
                bulk(&mut out, b"server");
                bulk(&mut out, b"redis");
                bulk(&mut out, b"version");
                bulk(&mut out, b"7.0.0-sim");
                bulk(&mut out, b"proto");
                out.extend_from_slice(b":3\r\n");
            }
            b"SUBSCRIBE" if args.len() >= 2 => {
                for (n, channel) in args[1..].iter().enumerate() {
                    if let Some(s) = self.sessions.get_mut(&session) {
                        if !s.channels.contains(channel) {
                            s.channels.push(channel.clone());
                        }
                    }
                    out.extend_from_slice(b">3\r\n");
                    bulk(&mut out, b"subscribe");
                    bulk(&mut out, channel);
                    let _ = write!(out, ":{}\r\n", n + 1);
                }
            }
            b"PUBLISH" if args.len() == 3 => {
                self.counters.publishes += 1;
                let mut push = b">3\r\n".to_vec();
                bulk(&mut push, b"message");
                bulk(&mut push, &args[1]);
                bulk(&mut push, &args[2]);
                let mut receivers = 0;
                for s in self.sessions.values_mut() {
                    if s.cut || !s.channels.contains(&args[1]) {
                        continue;
                    }
                    receivers += 1;
                    s.output.extend_from_slice(&push);
                    if s.output.len() > faults.pubsub_limit {
                        s.cut = true;
                        self.counters.slow_cut += 1;
                    }
                }
                let _ = write!(out, ":{receivers}\r\n");
            }
            b"SET"
                if args.len() == 6
                    && arg(3).eq_ignore_ascii_case(b"NX")
                    && arg(4).eq_ignore_ascii_case(b"PX") =>
            {
                self.expire(arg(1), now);
                let ms: u64 = std::str::from_utf8(arg(5))
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                if self.keys.contains_key(arg(1)) {
                    out.extend_from_slice(b"_\r\n");
                } else {
                    let at = now + Duration::from_millis(ms);
                    self.keys
                        .insert(args[1].clone(), (args[2].clone(), Some(at)));
                    out.extend_from_slice(b"+OK\r\n");
                }
            }
            b"INCRBY" if args.len() == 3 => {
                self.expire(arg(1), now);
                let by: i64 = std::str::from_utf8(arg(2))
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let old: i64 = self
                    .keys
                    .get(arg(1))
                    .and_then(|(v, _)| std::str::from_utf8(v).ok()?.parse().ok())
                    .unwrap_or(0);
                let new = old + by;
                self.keys
                    .insert(args[1].clone(), (new.to_string().into_bytes(), None));
                let _ = write!(out, ":{new}\r\n");
            }
            b"EVAL" if args.len() >= 3 => self.eval(args, now, &mut out),
            _ => {
                self.unknown
                    .push(String::from_utf8_lossy(&args.join(&b' ')).into_owned());
                out.extend_from_slice(b"-ERR unknown command in the simulated Redis\r\n");
            }
        }
        self.reply(session, &out);
    }

    /// The link's two scripts, recognised by their text, carried out as
    /// Redis would (atomically: nothing else runs meanwhile).
    fn eval(&mut self, args: &[Vec<u8>], now: Duration, out: &mut Vec<u8>) {
        let script = String::from_utf8_lossy(&args[1]).into_owned();
        let nkeys: usize = std::str::from_utf8(&args[2])
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(usize::MAX);
        if nkeys > args.len() - 3 {
            self.unknown.push(format!("EVAL with {nkeys} keys"));
            out.extend_from_slice(b"-ERR bad number of keys\r\n");
            return;
        }
        let keys = &args[3..3 + nkeys];
        let argv = &args[3 + nkeys..];
        let is_release = script.contains("redis.call('DEL', KEYS[1])") && nkeys == 1;
        let is_reassert = script.contains("PEXPIRE") && script.contains("return lost");
        if is_release && !argv.is_empty() {
            self.expire(&keys[0], now);
            let deleted = match self.keys.get(&keys[0]) {
                Some((owner, _)) if *owner == argv[0] => {
                    self.keys.remove(&keys[0]);
                    1
                }
                _ => 0,
            };
            let _ = write!(out, ":{deleted}\r\n");
        } else if is_reassert && argv.len() == 2 {
            let ms: u64 = std::str::from_utf8(&argv[1])
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let at = now + Duration::from_millis(ms);
            let mut lost = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                self.expire(key, now);
                match self.keys.get_mut(key) {
                    None => {
                        self.keys.insert(key.clone(), (argv[0].clone(), Some(at)));
                    }
                    Some((owner, expiry)) if *owner == argv[0] => *expiry = Some(at),
                    Some(_) => lost.push(i + 1),
                }
            }
            let _ = write!(out, "*{}\r\n", lost.len());
            for i in lost {
                let _ = write!(out, ":{i}\r\n");
            }
        } else {
            self.unknown
                .push(format!("EVAL of an unknown script: {script}"));
            out.extend_from_slice(b"-NOSCRIPT unknown script in the simulated Redis\r\n");
        }
    }
}

/// One connection from a server to the simulated Redis.
#[derive(Debug)]
struct Wire {
    server: usize,
    conn: ConnId,
    session: usize,
    /// Bytes read from the server, with when they may be carried out.
    arrived: VecDeque<(Duration, Vec<u8>)>,
}

/// The simulated Redis on the simulated network: the model, its
/// connections, whether it is up, and its faults.
#[derive(Debug)]
pub struct SimRedis {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The sans-IO model.
    pub model: RedisModel,
    /// Its faults now.
    pub faults: RedisFaults,
    up: bool,
    wires: Vec<Wire>,
    buf: Vec<u8>,
}

impl SimRedis {
    /// A Redis at `addr`, up, with no faults.
    pub fn new(addr: SocketAddr) -> SimRedis {
        SimRedis {
            addr,
            model: RedisModel::default(),
            faults: RedisFaults::NONE,
            up: true,
            wires: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Whether it is running.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Connections open now (to every server).
    pub fn connections(&self) -> usize {
        self.wires.len()
    }

    /// Server `server`'s connections are reset (Redis died, or the network
    /// between dropped them).
    pub fn cut(&mut self, server: usize, net: &mut SimNet) {
        let mut i = 0;
        while i < self.wires.len() {
            if self.wires[i].server == server {
                let wire = self.wires.remove(i);
                net.client_reset(wire.conn);
                self.model.close(wire.session);
            } else {
                i += 1;
            }
        }
    }

    /// The slowness ends: no fault from now on, and what was held back is
    /// carried out at the next pump.
    pub fn heal(&mut self) {
        self.faults = RedisFaults::NONE;
        for wire in &mut self.wires {
            for (at, _) in &mut wire.arrived {
                *at = Duration::ZERO;
            }
        }
    }

    /// Redis dies: connects are refused until [`SimRedis::start`] (cut
    /// every server's connections too).
    pub fn stop(&mut self) {
        self.up = false;
    }

    /// Redis starts again, with its data or empty.
    pub fn start(&mut self, keep_data: bool) {
        self.up = true;
        self.model.restart(keep_data);
    }

    /// One step of Redis toward server `server`: accept or refuse its
    /// connects, read what it wrote, carry out what is due at `now`, write
    /// the answers; cut what must be cut.
    pub fn pump(&mut self, server: usize, net: &mut SimNet) {
        net.peer_listen(self.addr, self.up);
        let now = net.elapsed();
        while let Some(conn) = net.peer_pending(self.addr) {
            if self.up {
                net.peer_accept(conn);
                let session = self.model.open();
                self.wires.push(Wire {
                    server,
                    conn,
                    session,
                    arrived: VecDeque::new(),
                });
            } else {
                net.peer_refuse(conn);
                self.model.counters.refused += 1;
            }
        }
        let faults = self.faults;
        let mut i = 0;
        while i < self.wires.len() {
            if self.wires[i].server != server {
                i += 1;
                continue;
            }
            let (conn, session) = (self.wires[i].conn, self.wires[i].session);
            // Read what the server wrote: nothing while stalled, one small
            // chunk a step while slow, else all there is.
            let reads = if faults.stalled {
                0
            } else if faults.chunk < (1 << 20) {
                1
            } else {
                usize::MAX
            };
            let mut ended = false;
            for _ in 0..reads {
                self.buf.clear();
                match net.client_recv(conn, &mut self.buf, faults.chunk.max(1)) {
                    ClientRead::Data(_) => self.wires[i]
                        .arrived
                        .push_back((now + faults.latency, self.buf.clone())),
                    ClientRead::WouldBlock => break,
                    ClientRead::Eof | ClientRead::Reset => {
                        ended = true;
                        break;
                    }
                }
            }
            while let Some((at, _)) = self.wires[i].arrived.front() {
                if *at > now {
                    break;
                }
                let (_, bytes) = self.wires[i].arrived.pop_front().expect("just seen");
                self.model.handle_input(session, &bytes, now, &faults);
            }
            // Write the answers, within the chunk and the rate.
            let mut budget = faults.rate;
            while budget > 0 {
                let out = self.model.output(session);
                if out.is_empty() {
                    break;
                }
                let n = out.len().min(faults.chunk.max(1)).min(budget);
                match net.client_send(conn, &out[..n]) {
                    Ok(0) => break,
                    Ok(sent) => {
                        self.model.advance(session, sent);
                        budget -= sent;
                    }
                    Err(_) => {
                        ended = true;
                        break;
                    }
                }
            }
            if self.model.is_cut(session) && !ended {
                // Redis closes the connection of a client it gave up on.
                net.client_close(conn);
                ended = true;
            }
            if ended {
                if !net.conn_server_closed(conn) {
                    net.client_close(conn);
                }
                self.model.close(session);
                self.wires.remove(i);
                continue;
            }
            i += 1;
        }
    }

    /// Its connections in a few words, for failure messages.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for w in &self.wires {
            let s = self.model.sessions.get(&w.session);
            out.push_str(&format!(
                "  server {} (conn {}): session {} {:?}, subscribed {:?}, {} bytes unwritten, {} pieces held back\n",
                w.server,
                w.conn,
                w.session,
                s.and_then(|s| s.name.clone()),
                s.map(|s| s.channels.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>()),
                self.model.output(w.session).len(),
                w.arrived.len()
            ));
        }
        out
    }

    /// Whether bytes wait to be carried out or written: virtual time must
    /// not leap meanwhile.
    pub fn busy(&self) -> bool {
        self.wires
            .iter()
            .any(|w| !w.arrived.is_empty() || !self.model.output(w.session).is_empty())
    }

    /// The session number of server `server`'s open connection, if any.
    pub fn session_of(&self, server: usize) -> Option<usize> {
        self.wires
            .iter()
            .find(|w| w.server == server)
            .map(|w| w.session)
    }

    /// Unwritten output toward server `server` (bounded by the pub/sub
    /// limit, past which the connection is cut).
    pub fn pending_to(&self, server: usize) -> usize {
        self.wires
            .iter()
            .filter(|w| w.server == server)
            .map(|w| self.model.output(w.session).len())
            .sum()
    }
}
