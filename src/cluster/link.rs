//! The link to Redis as a sans-IO state machine: bytes and `now` in, bytes
//! to write and [`Effect`]s out. It never touches a socket or a clock; the
//! reactor owns the TCP connection and the timer, and tests drive it with
//! scripted Redis replies.
//!
//! # One connection, RESP3
//!
//! The link speaks RESP3 (`HELLO 3`, Redis 6 or later) on a single
//! connection. In RESP3, pub/sub messages arrive as *push* frames that can
//! never be mistaken for replies, and a subscribed connection may still run
//! ordinary commands; so the same connection subscribes to the bus channel,
//! publishes, claims names and counts guests. RESP2 would need two
//! connections (a subscribed RESP2 connection accepts only (un)subscribe
//! commands), hence two non-blocking connects, two handshakes, and two ways
//! for the link to be half up. One connection is one source in the reactor's
//! slab, one fate, one reconnect.
//!
//! # Calling it
//!
//! After every call, drain [`Link::poll_effect`] until it returns `None`,
//! write [`Link::transmit`] to the socket and report what was written with
//! [`Link::advance`], and set the timer to [`Link::poll_timeout`].
//!
//! - [`Effect::Connect`]: open a TCP connection to the Redis address; then
//!   call [`Link::handle_connected`], or [`Link::handle_io_error`] if the
//!   connect fails.
//! - Bytes read from it go to [`Link::handle_input`]; end of input to
//!   [`Link::handle_eof`]; an error to [`Link::handle_io_error`].
//! - When the timer fires, [`Link::handle_timeout`].
//! - [`Effect::Down`]: close the connection (if one is open); the link will
//!   ask for a new one with [`Effect::Connect`] after its back-off.
//!
//! The chat side calls [`Link::publish`], [`Link::claim`],
//! [`Link::release`], [`Link::release_for`] and [`Link::reserve_guests`],
//! and consumes the effects ([`Effect::Up`], [`Effect::Message`],
//! [`Effect::ServerLost`], [`Effect::Claimed`], ...).
//!
//! # Bounds and policies
//!
//! - Output toward Redis is at most [`MAX_OUTPUT`] bytes. A publish that
//!   does not fit is dropped and counted (pub/sub promises no delivery, and
//!   a chat line is worth less than the link); a claim or a guest request
//!   that does not fit is answered "not granted" at once. If Redis stops
//!   reading altogether, the oldest command goes unanswered past
//!   [`Timing::reply_timeout`] and the link is declared lost.
//! - Commands awaiting a reply are at most [`MAX_IN_FLIGHT`]; past it,
//!   the same policy as a full output.
//! - Input from Redis is parsed as it arrives; an unfinished frame may not
//!   grow past [`resp::MAX_FRAME`] (else the link is lost).
//! - Other servers tracked: at most [`MAX_PEERS`]; messages from more are
//!   dropped and counted.
//!
//! # Names: leases
//!
//! A nickname is claimed with `SET {prefix}:nick:{lowercase} OWNER NX PX
//! TTL` (OWNER is this server's id): only one server can create the key, and
//! if its server dies the key expires. Held names are re-asserted every
//! [`Timing::refresh`] (and at once after a reconnect) by one script that,
//! for each key, extends it if it is still ours, re-creates it if it has
//! gone, and reports it lost if another server holds it. A name is released
//! by compare-and-delete: a script that deletes the key only if it still
//! holds our id. `GETDEL` (or `GET` then `DEL`) would not do: between our
//! lease expiring and our delete, another server may have claimed the name,
//! and an unconditional delete would free *its* claim. Scripts run
//! atomically in Redis, so the compare and the delete cannot be split.
//!
//! # Other servers
//!
//! Every bus message carries its sender's id and sequence number. The link
//! remembers when it last heard each server; one silent for
//! [`Timing::lost_after`] while our own link is up is reported once with
//! [`Effect::ServerLost`] (servers publish a heartbeat every
//! [`Timing::heartbeat`]). While our link is down nobody is declared lost
//! (we cannot hear anyone); when it comes back every server gets a fresh
//! `lost_after` to be heard again, and the link asks all of them for their
//! member lists ([`bus::Event::SyncRequest`]; one addressed to another
//! server is not passed on). A sequence number that skips
//! ahead is reported as [`Effect::Gap`] (messages were lost in between);
//! one that goes back is a stale or forged message, dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use super::resp::{self, Frame, RespError, Value};
use crate::protocol::chat::bus::{self, Event, Message, ServerId};
use crate::protocol::chat::name::{Name, NameKey, MAX_NAME_LEN};

/// Bytes of commands waiting to be written to Redis, at most.
pub const MAX_OUTPUT: usize = 1 << 20;

/// Commands sent and not yet answered, at most.
pub const MAX_IN_FLIGHT: usize = 16 * 1024;

/// Other servers tracked at once, at most.
pub const MAX_PEERS: usize = 4096;

/// Names re-asserted by one script call (bounds one command's size).
pub const REFRESH_BATCH: usize = 512;

/// Releases owed while the link is down, at most; past it the lease's TTL
/// frees the name instead.
pub const MAX_OWED_RELEASES: usize = 16 * 1024;

/// Extend each held key if it is still ours, re-create it if it is gone,
/// and return the (1-based) indices of the keys another server now holds.
/// `ARGV[1]` is our id, `ARGV[2]` the lease in milliseconds.
const REASSERT_SCRIPT: &str = "local lost = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == false then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  elseif owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  else
    lost[#lost + 1] = i
  end
end
return lost";

/// Delete `KEYS[1]` only if it still holds `ARGV[1]`: compare-and-delete.
const RELEASE_SCRIPT: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// Every duration the link works with. [`Timing::default`] is what the
/// server uses; tests may shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a connect plus handshake may take (start-up waits this long
    /// for Redis before giving up).
    pub connect_timeout: Duration,
    /// The oldest unanswered command may wait this long before the link is
    /// declared lost (catches a silent cut: heartbeats are always in flight).
    pub reply_timeout: Duration,
    /// The first retry after a failure comes this long after it...
    pub first_retry: Duration,
    /// ...then the delay doubles, up to this.
    pub max_retry: Duration,
    /// A heartbeat is published this often.
    pub heartbeat: Duration,
    /// A server (this one included, for its own echo) not heard from for
    /// this long is lost.
    pub lost_after: Duration,
    /// Held names are re-asserted this often...
    pub refresh: Duration,
    /// ...for this long each time.
    pub lease: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            connect_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(3),
            first_retry: Duration::from_millis(500),
            max_retry: Duration::from_secs(5),
            heartbeat: Duration::from_secs(1),
            lost_after: Duration::from_secs(5),
            refresh: Duration::from_secs(5),
            lease: Duration::from_secs(15),
        }
    }
}

/// A fresh random server id (never [`bus::EVERY_SERVER`]), from the
/// standard library's per-process random hash keys, the process id and the
/// time: no two servers share one in practice, and no coordination is
/// needed to choose it.
pub fn new_server_id() -> ServerId {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(since_epoch.as_nanos());
    hasher.finish().max(1)
}

/// What the link needs to know.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// This server's id on the bus (random, chosen at start-up).
    pub server: ServerId,
    /// Namespace of every key and of the channel (`sockloop`).
    pub prefix: String,
    /// ACL user (`None`: `default`).
    pub username: Option<String>,
    /// Password (`None`: no AUTH).
    pub password: Option<String>,
    /// The link's durations.
    pub timing: Timing,
}

impl LinkConfig {
    /// The default namespace and timing for `server`, credentials from `url`.
    pub fn new(server: ServerId, url: &crate::config::redis_url::RedisUrl) -> LinkConfig {
        LinkConfig {
            server,
            prefix: "sockloop".into(),
            username: url.username.clone(),
            password: url.password.clone(),
            timing: Timing::default(),
        }
    }
}

/// Why the link is not (or no longer) up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The socket failed (connect refused, reset, ...).
    Io(String),
    /// Redis closed the connection.
    Closed,
    /// No answer in time (what was awaited is named).
    Timeout(&'static str),
    /// Redis refused the credentials.
    Auth(String),
    /// Redis is older than 6 (no `HELLO`).
    TooOld(String),
    /// The peer does not speak RESP, or answered out of turn.
    NotRedis(String),
    /// Redis answered the handshake with an error.
    Refused(String),
    /// Our own heartbeats stopped coming back through the channel.
    Unsubscribed,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Io(e) => f.write_str(e),
            LinkError::Closed => f.write_str("connection closed by Redis"),
            LinkError::Timeout(what) => write!(f, "no answer within the time allowed ({what})"),
            LinkError::Auth(e) => write!(f, "authentication failed: {e}"),
            LinkError::TooOld(e) => write!(f, "Redis 6.2 or later is needed ({e})"),
            LinkError::NotRedis(e) => write!(f, "not a Redis server: {e}"),
            LinkError::Refused(e) => write!(f, "Redis refused the handshake: {e}"),
            LinkError::Unsubscribed => {
                f.write_str("our own messages stopped coming back from the channel")
            }
        }
    }
}

impl std::error::Error for LinkError {}

/// What the link asks of its owner, or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Open a TCP connection to Redis (non-blocking), then report with
    /// [`Link::handle_connected`] or [`Link::handle_io_error`].
    Connect,
    /// The link is up: authenticated and subscribed. `restored` is false
    /// the first time, true after a loss. Publish this server's member list
    /// now (other servers asked for it with a sync request).
    Up {
        /// Whether the link had been up before.
        restored: bool,
    },
    /// The link failed: close the connection if one is open. `was_up` says
    /// whether it had been up (then local users are told); a retry follows.
    Down {
        /// Why.
        error: LinkError,
        /// Whether the link had completed its handshake.
        was_up: bool,
    },
    /// A message from another server.
    Message(Message),
    /// A server not heard from for [`Timing::lost_after`]: its members left
    /// with `(server lost)`; free their names with [`Link::release_for`].
    ServerLost(ServerId),
    /// Messages from `server` were lost in between (its sequence skipped):
    /// ask it for its member list again.
    Gap {
        /// The sender.
        server: ServerId,
        /// How many messages are missing.
        missed: u64,
    },
    /// The answer to [`Link::claim`].
    Claimed {
        /// The caller's token.
        token: u64,
        /// The name asked for.
        name: Name,
        /// Whether it is now ours, proven by Redis.
        granted: bool,
    },
    /// The answer to [`Link::reserve_guests`]: the guest numbers that are
    /// now ours alone, or `None` when Redis could not be asked.
    Guests {
        /// The caller's token.
        token: u64,
        /// The numbers.
        numbers: Option<RangeInclusive<u64>>,
    },
    /// A name we held is now held by another server (found when
    /// re-asserting it): it is no longer ours.
    LeaseLost(Name),
}

/// The link's counters, for `--stats-interval`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bus messages queued for Redis.
    pub published: u64,
    /// Publishes dropped: link down or output full.
    pub publish_dropped: u64,
    /// Bus messages received from other servers and passed on.
    pub received: u64,
    /// Bus messages dropped as malformed (or from too many servers).
    pub dropped_malformed: u64,
    /// Bus messages dropped for an unknown version.
    pub dropped_unknown_version: u64,
    /// Bus messages dropped as stale (sequence went back).
    pub dropped_stale: u64,
    /// Messages known lost (sum of sequence gaps).
    pub missed: u64,
    /// Error replies from Redis to our commands, and unexpected pushes.
    pub redis_errors: u64,
    /// Times the link went down.
    pub failures: u64,
}

/// Where the link is in its life: waiting to connect, connecting, in the
/// handshake, or up.
#[derive(Debug)]
enum LinkPhase {
    /// No connection; ask for one at `at`.
    Waiting { at: Instant },
    /// [`Effect::Connect`] was emitted; the connect has not completed.
    Connecting { deadline: Instant },
    /// Connected; `HELLO` and `SUBSCRIBE` sent.
    Handshake {
        deadline: Instant,
        hello_done: bool,
        subscribed: bool,
    },
    /// Authenticated and subscribed.
    Up,
}

/// What a sent command's reply means.
#[derive(Debug)]
enum Pending {
    Hello,
    Publish,
    Heartbeat,
    Claim { token: u64, name: Name },
    Release,
    Reassert { names: Vec<Name> },
    Guests { token: u64, count: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    last_heard: Instant,
    next_seq: u64,
}

/// The link's whole state (see the module documentation).
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    channel: Vec<u8>,
    owner: Vec<u8>,
    phase: LinkPhase,
    /// Consecutive failures since the link was last up (sets the back-off).
    failures: u32,
    ever_up: bool,
    /// Bytes for Redis; `out[out_start..]` is still to be written.
    out: Vec<u8>,
    out_start: usize,
    /// Bytes from Redis not yet forming a whole frame.
    input: Vec<u8>,
    /// Sent commands awaiting replies, oldest first, with when each was sent.
    in_flight: VecDeque<(Instant, Pending)>,
    effects: VecDeque<Effect>,
    /// Our next bus sequence number.
    next_seq: u64,
    /// Names we hold, by case-folded key.
    held: HashMap<NameKey, Name>,
    /// Names released while the link was down, deleted when it is back.
    owed_releases: Vec<Name>,
    peers: HashMap<ServerId, Peer>,
    next_heartbeat: Instant,
    next_refresh: Instant,
    /// When our own latest message came back through the channel.
    own_heard: Instant,
    /// Send time of the newest heartbeat Redis acknowledged.
    heartbeat_acked: Option<Instant>,
    members: u32,
    stats: LinkStats,
}

impl Link {
    /// A link that will ask for its first connection at once.
    pub fn new(config: LinkConfig, now: Instant) -> Link {
        let channel = format!("{}:bus", config.prefix).into_bytes();
        let owner = format!("{:016x}", config.server).into_bytes();
        Link {
            config,
            channel,
            owner,
            phase: LinkPhase::Waiting { at: now },
            failures: 0,
            ever_up: false,
            out: Vec::new(),
            out_start: 0,
            input: Vec::new(),
            in_flight: VecDeque::new(),
            effects: VecDeque::new(),
            next_seq: 1,
            held: HashMap::new(),
            owed_releases: Vec::new(),
            peers: HashMap::new(),
            next_heartbeat: now,
            next_refresh: now,
            own_heard: now,
            heartbeat_acked: None,
            members: 0,
            stats: LinkStats::default(),
        }
    }

    /// Whether the link is up (authenticated and subscribed).
    pub fn is_up(&self) -> bool {
        matches!(self.phase, LinkPhase::Up)
    }

    /// The counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// This server's id on the bus.
    pub fn server(&self) -> ServerId {
        self.config.server
    }

    /// The names this server holds leases on.
    pub fn held(&self) -> impl Iterator<Item = &Name> {
        self.held.values()
    }

    /// Commands sent (or queued) and not answered yet: zero means Redis has
    /// carried out everything asked of it so far.
    pub fn awaiting_replies(&self) -> usize {
        self.in_flight.len()
    }

    /// How many members this server has (sent in heartbeats).
    pub fn set_members(&mut self, members: u32) {
        self.members = members;
    }

    /// Until when the names we hold are proven ours: no other server can
    /// have declared us lost (and freed them) before this instant, because
    /// a heartbeat we sent at `t` was acknowledged, and the others wait
    /// [`Timing::lost_after`] after hearing it. `None` before any
    /// acknowledged heartbeat.
    pub fn names_proven_until(&self) -> Option<Instant> {
        self.heartbeat_acked
            .map(|sent| sent + self.config.timing.lost_after)
    }

    // ----- outputs -----

    /// The next thing the owner must do or know.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Bytes to write to the Redis connection.
    pub fn transmit(&self) -> &[u8] {
        &self.out[self.out_start..]
    }

    /// `n` bytes of [`Link::transmit`] were written.
    pub fn advance(&mut self, n: usize) {
        self.out_start = (self.out_start + n).min(self.out.len());
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
            shrink_idle(&mut self.out);
        } else if self.out_start > self.out.len() / 2 {
            self.out.drain(..self.out_start);
            self.out_start = 0;
        }
    }

    /// When [`Link::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Instant {
        let t = &self.config.timing;
        match self.phase {
            LinkPhase::Waiting { at } => at,
            LinkPhase::Connecting { deadline } | LinkPhase::Handshake { deadline, .. } => deadline,
            LinkPhase::Up => {
                let mut next = self
                    .next_heartbeat
                    .min(self.own_heard + t.lost_after)
                    .min(self.next_refresh);
                if let Some((sent, _)) = self.in_flight.front() {
                    next = next.min(*sent + t.reply_timeout);
                }
                if let Some(oldest) = self.peers.values().map(|p| p.last_heard).min() {
                    next = next.min(oldest + t.lost_after);
                }
                next
            }
        }
    }

    // ----- inputs from the reactor -----

    /// The TCP connection asked for by [`Effect::Connect`] is established:
    /// queue the handshake.
    pub fn handle_connected(&mut self, now: Instant) {
        if !matches!(self.phase, LinkPhase::Connecting { .. }) {
            return;
        }
        self.phase = LinkPhase::Handshake {
            deadline: now + self.config.timing.connect_timeout,
            hello_done: false,
            subscribed: false,
        };
        let name = format!("sockloop-{:016x}", self.config.server);
        let mut hello: Vec<&[u8]> = vec![b"HELLO", b"3"];
        if let Some(password) = &self.config.password {
            let user = self.config.username.as_deref().unwrap_or("default");
            hello.extend_from_slice(&[b"AUTH", user.as_bytes(), password.as_bytes()]);
        }
        hello.extend_from_slice(&[b"SETNAME", name.as_bytes()]);
        resp::encode_command(&mut self.out, &hello);
        self.in_flight.push_back((now, Pending::Hello));
        // Its confirmation is a push, not a reply: nothing awaits it in
        // `in_flight`.
        let channel = self.channel.clone();
        resp::encode_command(&mut self.out, &[b"SUBSCRIBE", &channel]);
    }

    /// Bytes read from the connection.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if matches!(
            self.phase,
            LinkPhase::Waiting { .. } | LinkPhase::Connecting { .. }
        ) {
            return;
        }
        self.input.extend_from_slice(bytes);
        let mut used = 0;
        let result = loop {
            match resp::decode(&self.input[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
                    if let Err(e) = self.handle_frame(now, frame) {
                        break Err(e);
                    }
                    if matches!(self.phase, LinkPhase::Waiting { .. }) {
                        // The frame failed the link; the rest is moot.
                        return;
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(protocol_error(e)),
            }
        };
        self.input.drain(..used);
        shrink_idle(&mut self.input);
        if let Err(e) = result {
            self.fail(now, e);
        }
    }

    /// The connection reached end of input.
    pub fn handle_eof(&mut self, now: Instant) {
        if !matches!(self.phase, LinkPhase::Waiting { .. }) {
            self.fail(now, LinkError::Closed);
        }
    }

    /// The connect, a read or a write failed.
    pub fn handle_io_error(&mut self, now: Instant, error: &io::Error) {
        if !matches!(self.phase, LinkPhase::Waiting { .. }) {
            self.fail(now, LinkError::Io(error.to_string()));
        }
    }

    /// Time has passed (at least up to [`Link::poll_timeout`], or not: an
    /// early call does nothing harmful).
    pub fn handle_timeout(&mut self, now: Instant) {
        let t = self.config.timing;
        match self.phase {
            LinkPhase::Waiting { at } => {
                if now >= at {
                    self.phase = LinkPhase::Connecting {
                        deadline: now + t.connect_timeout,
                    };
                    self.effects.push_back(Effect::Connect);
                }
            }
            LinkPhase::Connecting { deadline } => {
                if now >= deadline {
                    self.fail(now, LinkError::Timeout("connecting"));
                }
            }
            LinkPhase::Handshake { deadline, .. } => {
                if now >= deadline {
                    self.fail(now, LinkError::Timeout("HELLO and SUBSCRIBE"));
                }
            }
            LinkPhase::Up => {
                if let Some((sent, _)) = self.in_flight.front() {
                    if now >= *sent + t.reply_timeout {
                        return self.fail(now, LinkError::Timeout("a command's reply"));
                    }
                }
                if now >= self.own_heard + t.lost_after {
                    return self.fail(now, LinkError::Unsubscribed);
                }
                if now >= self.next_heartbeat {
                    self.next_heartbeat = now + t.heartbeat;
                    let event = Event::Heartbeat {
                        members: self.members,
                    };
                    self.publish_as(now, event, Pending::Heartbeat);
                }
                if now >= self.next_refresh {
                    self.next_refresh = now + t.refresh;
                    self.reassert_all(now);
                }
                let mut lost: Vec<ServerId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| now >= p.last_heard + t.lost_after)
                    .map(|(id, _)| *id)
                    .collect();
                // In the same order every run (a simulated seed replays).
                lost.sort_unstable();
                for id in lost {
                    self.peers.remove(&id);
                    self.effects.push_back(Effect::ServerLost(id));
                }
            }
        }
    }

    // ----- requests from the chat side -----

    /// Publish `event` for the other servers. False (and counted) when it
    /// was dropped: the link is down or its output is full.
    pub fn publish(&mut self, now: Instant, event: Event) -> bool {
        self.publish_as(now, event, Pending::Publish)
    }

    /// Claim `name` for this server; the answer comes as
    /// [`Effect::Claimed`] with `token` (at once, not granted, when Redis
    /// cannot be asked: a name that cannot be proven free is not granted).
    ///
    /// Two things are the caller's to handle, as only it knows its users:
    /// a grant that arrives after the user who asked has gone must be
    /// [`released`](Link::release); and a rename that changes only the
    /// case keeps the same lease (the key is case-folded), so it needs no
    /// claim and must not release the old spelling.
    pub fn claim(&mut self, now: Instant, name: Name, token: u64) {
        let key = self.nick_key(&name);
        let ttl = self.config.timing.lease.as_millis().to_string();
        let owner = self.owner.clone();
        let args: [&[u8]; 6] = [b"SET", &key, &owner, b"NX", b"PX", ttl.as_bytes()];
        if !self.send(now, &args, Pending::Claim { token, name }) {
            self.effects.push_back(Effect::Claimed {
                token,
                name,
                granted: false,
            });
        }
    }

    /// Give up `name` (its user left or renamed): compare-and-delete now, or
    /// when the link is back.
    pub fn release(&mut self, now: Instant, name: Name) {
        if self.held.remove(&name.key()).is_none() {
            return;
        }
        let owner = self.owner.clone();
        if !self.send_release(now, &name, &owner) && self.owed_releases.len() < MAX_OWED_RELEASES {
            self.owed_releases.push(name);
        }
    }

    /// Free `name` if lost server `owner` still holds it (compare-and-delete
    /// with its id), so its users' names are free again at once rather than
    /// when their leases run out.
    pub fn release_for(&mut self, now: Instant, owner: ServerId, name: Name) {
        let owner = format!("{owner:016x}").into_bytes();
        self.send_release(now, &name, &owner);
    }

    /// Reserve `count` guest numbers (`INCRBY`): they are never handed out
    /// again while Redis keeps its data. The answer comes as
    /// [`Effect::Guests`] with `token`.
    pub fn reserve_guests(&mut self, now: Instant, count: u64, token: u64) {
        let key = format!("{}:guests", self.config.prefix).into_bytes();
        let n = count.max(1).to_string();
        let args: [&[u8]; 3] = [b"INCRBY", &key, n.as_bytes()];
        if !self.send(now, &args, Pending::Guests { token, count }) {
            self.effects.push_back(Effect::Guests {
                token,
                numbers: None,
            });
        }
    }

    // ----- internals -----

    fn nick_key(&self, name: &Name) -> Vec<u8> {
        let mut lower = [0u8; MAX_NAME_LEN];
        let bytes = name.as_bytes();
        lower[..bytes.len()].copy_from_slice(bytes);
        lower.make_ascii_lowercase();
        let mut key = Vec::with_capacity(self.config.prefix.len() + 6 + bytes.len());
        key.extend_from_slice(self.config.prefix.as_bytes());
        key.extend_from_slice(b":nick:");
        key.extend_from_slice(&lower[..bytes.len()]);
        key
    }

    /// Queue one command if the link is up and within its bounds.
    fn send(&mut self, now: Instant, args: &[&[u8]], pending: Pending) -> bool {
        if !self.is_up()
            || self.in_flight.len() >= MAX_IN_FLIGHT
            || self.transmit().len() + resp::command_len(args) > MAX_OUTPUT
        {
            return false;
        }
        resp::encode_command(&mut self.out, args);
        self.in_flight.push_back((now, pending));
        true
    }

    fn send_release(&mut self, now: Instant, name: &Name, owner: &[u8]) -> bool {
        let key = self.nick_key(name);
        let args: [&[u8]; 5] = [b"EVAL", RELEASE_SCRIPT.as_bytes(), b"1", &key, owner];
        self.send(now, &args, Pending::Release)
    }

    fn publish_as(&mut self, now: Instant, event: Event, pending: Pending) -> bool {
        let message = Message {
            server: self.config.server,
            seq: self.next_seq,
            event,
        };
        let mut payload = Vec::new();
        if bus::encode(&message, &mut payload).is_err() {
            self.stats.publish_dropped += 1;
            return false;
        }
        let channel = self.channel.clone();
        if self.send(now, &[b"PUBLISH", &channel, &payload], pending) {
            self.next_seq += 1;
            self.stats.published += 1;
            true
        } else {
            self.stats.publish_dropped += 1;
            false
        }
    }

    /// Re-assert every held name, in batches.
    fn reassert_all(&mut self, now: Instant) {
        let names: Vec<Name> = self.held.values().copied().collect();
        for batch in names.chunks(REFRESH_BATCH) {
            let keys: Vec<Vec<u8>> = batch.iter().map(|n| self.nick_key(n)).collect();
            let count = batch.len().to_string();
            let ttl = self.config.timing.lease.as_millis().to_string();
            let owner = self.owner.clone();
            let mut args: Vec<&[u8]> = vec![b"EVAL", REASSERT_SCRIPT.as_bytes(), count.as_bytes()];
            args.extend(keys.iter().map(|k| &k[..]));
            args.push(&owner);
            args.push(ttl.as_bytes());
            let pending = Pending::Reassert {
                names: batch.to_vec(),
            };
            if !self.send(now, &args, pending) {
                // Full: try again at the next refresh; the lease outlives
                // several refresh periods.
                break;
            }
        }
    }

    fn handle_frame(&mut self, now: Instant, frame: Frame) -> Result<(), LinkError> {
        match frame {
            Frame::Push(items) => {
                self.handle_push(now, items);
                Ok(())
            }
            Frame::Reply(value) => {
                let Some((sent, pending)) = self.in_flight.pop_front() else {
                    return Err(LinkError::NotRedis(format!(
                        "a reply nobody asked for: {value:?}"
                    )));
                };
                self.handle_reply(now, sent, pending, value)
            }
        }
    }

    fn handle_reply(
        &mut self,
        now: Instant,
        sent: Instant,
        pending: Pending,
        value: Value,
    ) -> Result<(), LinkError> {
        if let (Pending::Hello, Value::Error(e)) = (&pending, &value) {
            let text = String::from_utf8_lossy(e).into_owned();
            return Err(
                if text.starts_with("WRONGPASS") || text.starts_with("NOAUTH") {
                    LinkError::Auth(text)
                } else if text.contains("unknown command") || text.starts_with("NOPROTO") {
                    LinkError::TooOld(text)
                } else {
                    LinkError::Refused(text)
                },
            );
        }
        if let Value::Error(e) = &value {
            self.stats.redis_errors += 1;
            log::debug!(
                "redis error reply to {pending:?}: {}",
                String::from_utf8_lossy(e)
            );
        }
        match pending {
            Pending::Hello => {
                if !matches!(value, Value::Map(_)) {
                    return Err(LinkError::NotRedis(format!(
                        "HELLO 3 answered with {value:?}"
                    )));
                }
                if let LinkPhase::Handshake { hello_done, .. } = &mut self.phase {
                    *hello_done = true;
                }
                self.maybe_up(now);
            }
            Pending::Publish | Pending::Release => {}
            Pending::Heartbeat => {
                if !matches!(value, Value::Error(_)) {
                    self.heartbeat_acked = self.heartbeat_acked.max(Some(sent));
                }
            }
            Pending::Claim { token, name } => {
                let granted = matches!(&value, Value::Simple(ok) if ok == b"OK");
                if granted {
                    self.held.insert(name.key(), name);
                }
                self.effects.push_back(Effect::Claimed {
                    token,
                    name,
                    granted,
                });
            }
            Pending::Reassert { names } => {
                if let Value::Array(lost) = value {
                    for index in lost {
                        let Value::Int(i) = index else { continue };
                        let Some(name) = usize::try_from(i - 1).ok().and_then(|i| names.get(i))
                        else {
                            continue;
                        };
                        if self.held.remove(&name.key()).is_some() {
                            self.effects.push_back(Effect::LeaseLost(*name));
                        }
                    }
                }
            }
            Pending::Guests { token, count } => {
                let numbers = match value {
                    Value::Int(last) if last >= 1 && (last as u64) >= count => {
                        let last = last as u64;
                        Some(last - count + 1..=last)
                    }
                    _ => None,
                };
                self.effects.push_back(Effect::Guests { token, numbers });
            }
        }
        Ok(())
    }

    fn handle_push(&mut self, now: Instant, items: Vec<Value>) {
        let kind = items.first().and_then(Value::as_bytes).unwrap_or(b"");
        match (kind, items.len()) {
            (b"message", 3) if items[1].as_bytes() == Some(&self.channel[..]) => {
                if let Some(payload) = items[2].as_bytes() {
                    self.handle_bus(now, payload);
                }
            }
            (b"subscribe", 3) if items[1].as_bytes() == Some(&self.channel[..]) => {
                if let LinkPhase::Handshake { subscribed, .. } = &mut self.phase {
                    *subscribed = true;
                }
                self.maybe_up(now);
            }
            _ => {
                self.stats.redis_errors += 1;
                log::debug!("unexpected push from redis: {items:?}");
            }
        }
    }

    fn handle_bus(&mut self, now: Instant, payload: &[u8]) {
        let message = match bus::decode(payload) {
            Ok(message) => message,
            Err(bus::DecodeError::UnknownVersion(v)) => {
                self.stats.dropped_unknown_version += 1;
                log::debug!("bus message of unknown version {v} dropped");
                return;
            }
            Err(e) => {
                self.stats.dropped_malformed += 1;
                log::debug!("malformed bus message dropped: {e}");
                return;
            }
        };
        if message.server == self.config.server {
            self.own_heard = now;
            return;
        }
        match self.peers.get_mut(&message.server) {
            Some(peer) => {
                if message.seq < peer.next_seq {
                    self.stats.dropped_stale += 1;
                    log::debug!(
                        "stale bus message from {:016x}: seq {} < {}",
                        message.server,
                        message.seq,
                        peer.next_seq
                    );
                    return;
                }
                if message.seq > peer.next_seq {
                    let missed = message.seq - peer.next_seq;
                    self.stats.missed += missed;
                    self.effects.push_back(Effect::Gap {
                        server: message.server,
                        missed,
                    });
                }
                peer.next_seq = message.seq + 1;
                peer.last_heard = now;
            }
            None => {
                if self.peers.len() >= MAX_PEERS {
                    self.stats.dropped_malformed += 1;
                    return;
                }
                self.peers.insert(
                    message.server,
                    Peer {
                        last_heard: now,
                        next_seq: message.seq.saturating_add(1),
                    },
                );
            }
        }
        match message.event {
            Event::Bye => {
                self.peers.remove(&message.server);
            }
            Event::SyncRequest { to } if to != bus::EVERY_SERVER && to != self.config.server => {
                return; // asked of another server
            }
            _ => {}
        }
        self.stats.received += 1;
        self.effects.push_back(Effect::Message(message));
    }

    fn maybe_up(&mut self, now: Instant) {
        let LinkPhase::Handshake {
            hello_done: true,
            subscribed: true,
            ..
        } = self.phase
        else {
            return;
        };
        self.phase = LinkPhase::Up;
        self.failures = 0;
        let restored = self.ever_up;
        self.ever_up = true;
        // Everyone gets a fresh chance to be heard: we could not hear them
        // while we were away.
        for peer in self.peers.values_mut() {
            peer.last_heard = now;
        }
        self.own_heard = now;
        self.next_heartbeat = now;
        self.next_refresh = now + self.config.timing.refresh;
        self.effects.push_back(Effect::Up { restored });
        self.publish(
            now,
            Event::SyncRequest {
                to: bus::EVERY_SERVER,
            },
        );
        let owner = self.owner.clone();
        for name in std::mem::take(&mut self.owed_releases) {
            self.send_release(now, &name, &owner);
        }
        self.reassert_all(now);
        self.handle_timeout(now); // the first heartbeat, now
    }

    fn fail(&mut self, now: Instant, error: LinkError) {
        let was_up = self.is_up();
        log::debug!("redis link down (was up: {was_up}): {error}");
        self.stats.failures += 1;
        self.out.clear();
        self.out_start = 0;
        self.input.clear();
        shrink_idle(&mut self.out);
        shrink_idle(&mut self.input);
        for (_, pending) in std::mem::take(&mut self.in_flight) {
            match pending {
                Pending::Claim { token, name } => {
                    // The SET may have reached Redis: delete it once the
                    // link is back, if it is ours, so the name is not
                    // blocked until its lease runs out.
                    if self.owed_releases.len() < MAX_OWED_RELEASES {
                        self.owed_releases.push(name);
                    }
                    self.effects.push_back(Effect::Claimed {
                        token,
                        name,
                        granted: false,
                    });
                }
                Pending::Guests { token, .. } => self.effects.push_back(Effect::Guests {
                    token,
                    numbers: None,
                }),
                _ => {}
            }
        }
        let t = self.config.timing;
        let delay = t
            .first_retry
            .saturating_mul(1 << self.failures.min(16))
            .min(t.max_retry);
        self.failures = self.failures.saturating_add(1);
        self.phase = LinkPhase::Waiting { at: now + delay };
        self.effects.push_back(Effect::Down { error, was_up });
    }
}

/// What an empty buffer keeps of its capacity: enough for ordinary
/// traffic, so a one-off big frame (a presence list, a burst of
/// publishes) does not pin its peak size for the life of the link.
const IDLE_CAPACITY: usize = 64 * 1024;

fn shrink_idle(buffer: &mut Vec<u8>) {
    if buffer.is_empty() && buffer.capacity() > IDLE_CAPACITY {
        buffer.shrink_to(IDLE_CAPACITY);
    }
}

fn protocol_error(e: RespError) -> LinkError {
    LinkError::NotRedis(e.to_string())
}

#[cfg(test)]
mod tests;
