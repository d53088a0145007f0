//! `sockloop bench`: a load generator for the three services, built like the
//! server it drives: one thread, one hand-written mio poll loop, buffers
//! allocated before the clock starts and nothing allocated per message.
//!
//! Every message is produced from its sequence number and send time
//! ([`payload`]), so every reply is checked byte for byte without keeping a
//! copy, and its latency is known the moment it arrives. A reply that differs
//! is counted as *mismatched*, a message never answered as *lost*, a
//! connection that ends under the bench as *disconnected*; any of them makes
//! the bench exit with status 1 after printing its report, so a fast but wrong
//! server never looks good.
//!
//! A run has three phases: connect (not timed; bounded by
//! [`CONNECT_TIMEOUT`](crate::net::toolkit::CONNECT_TIMEOUT), and for chat
//! by [`CHAT_SETUP_TIMEOUT`] to let the join notices settle), load
//! (`--duration` seconds), and drain: at the deadline no
//! new message starts, and the bench waits at most [`DRAIN_TIMEOUT`] (UDP:
//! [`UDP_LOSS_TIMEOUT`]) for the answers still in flight before it reports.
//! So the tool always stops by itself.
//!
//! - [`payload`]: the wire formats and the byte-for-byte check.
//! - [`tcp`]: opening many connections and the output side every TCP driver
//!   shares. The socket routines themselves (connect and its check,
//!   `poll_once`, the read loop, the fd limit) are the server's and the
//!   clients' too, in [`crate::net::toolkit`].
//! - [`echo`]: closed-loop TCP echo, `--pipeline` messages in flight per connection.
//! - [`udp`]: datagrams in flight per socket, with a loss timeout.
//! - [`chat`]: N clients in #lobby, senders with a window of lines, every
//!   receiver checking every relayed line.
//! - [`report`]: counters, latency histogram, table, JSON and progress bar.

pub mod chat;
pub mod echo;
pub mod payload;
pub mod report;
pub mod tcp;
pub mod udp;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use crate::config;
use crate::net::toolkit::{raise_fd_limit, BENCH_FD_RESERVE};
use report::{Progress, Report, Tally};

/// Non-blocking connects in progress at once: half the listen backlog most
/// servers use (128, mio's and std's default). A connect storm past a full
/// backlog costs SYN retransmits (a second and more each), so the bench opens
/// connections in waves of this many.
pub const CONNECTS_IN_FLIGHT: usize = 64;
/// Chat clients connected but not yet welcomed, at once (see `chat`'s setup:
/// a completed handshake is not yet an accepted connection).
pub const CHAT_UNWELCOMED_MAX: usize = 64;
/// How long, after the deadline, the bench waits for TCP answers in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// A UDP datagram not answered within this is counted as lost (and its slot
/// in the window goes on with a new datagram).
pub const UDP_LOSS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long chat clients may take, after connecting, to receive their welcome
/// and every other client's join notice.
pub const CHAT_SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many chat clients send; all of them receive. Each receiver
/// tracks the next line expected from each sender, so the bookkeeping is
/// `conns x senders`; 100 senders already keep any room busy.
pub const CHAT_MAX_SENDERS: usize = 100;
/// Largest `--size` for chat (a line is held whole by its receiver).
pub const CHAT_MAX_SIZE: usize = 65_536;
/// Largest `--pipeline`: each connection keeps one timestamp per message in
/// flight.
pub const MAX_PIPELINE: usize = 4096;
/// Readiness events taken from one poll.
const EVENTS_CAPACITY: usize = 1024;

/// The service `bench` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// TCP echo, closed loop.
    Echo,
    /// UDP echo.
    Udp,
    /// Chat fan-out in one room.
    Chat,
}

impl Target {
    /// `echo`, `udp` or `chat`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Echo => "echo",
            Target::Udp => "udp",
            Target::Chat => "chat",
        }
    }

    /// The address the service listens on by default.
    pub fn default_addr(self) -> &'static str {
        match self {
            Target::Echo => config::DEFAULT_ECHO_ADDR,
            Target::Udp => config::DEFAULT_UDP_ECHO_ADDR,
            Target::Chat => config::DEFAULT_CHAT_ADDR,
        }
    }
}

/// When the load phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this long (`--duration`).
    After(Duration),
    /// Once `count` messages have been started (`-n`), or after `at_most`,
    /// whichever comes first: a server that stops answering must not keep
    /// the bench waiting forever.
    Count {
        /// Messages (chat: lines) to send in all.
        count: u64,
        /// The time limit all the same.
        at_most: Duration,
    },
}

/// With `-n COUNT` and no `--duration`, the run still ends after this many
/// seconds.
pub const COUNT_MODE_MAX_SECS: f64 = 300.0;

/// What `sockloop bench` was asked to do, before anything is resolved.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The service driven.
    pub target: Target,
    /// The server (`None`: the service's default address).
    pub to: Option<String>,
    /// More servers (chat only, with `--to` repeated): the clients are
    /// spread over `to` and these, round-robin.
    pub also_to: Vec<String>,
    /// Connections (UDP sockets, chat clients).
    pub conns: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Messages in flight per connection.
    pub pipeline: usize,
    /// When the load phase ends.
    pub stop: Stop,
    /// Progress lines on stderr this often when it is not a terminal.
    pub interval: Option<Duration>,
    /// One JSON object instead of a table.
    pub json: bool,
}

impl BenchOptions {
    /// Check the limits that depend on the target. The message is worded
    /// for a person; the command line turns it into a usage error.
    pub fn check(&self) -> Result<(), String> {
        let target = self.target.name();
        let limit = |what: &str, value: usize, min: usize, max: usize| {
            if value < min || value > max {
                Err(format!(
                    "bench {target}: {what} must be from {min} to {max}, not {value}"
                ))
            } else {
                Ok(())
            }
        };
        limit("--pipeline", self.pipeline, 1, MAX_PIPELINE)?;
        if !self.also_to.is_empty() && self.target != Target::Chat {
            return Err(format!(
                "bench {target} drives one server: --to may be repeated for chat only"
            ));
        }
        match self.target {
            Target::Echo => Ok(()),
            Target::Udp => limit(
                "--size",
                self.size,
                payload::BINARY_HEADER,
                config::MAX_UDP_PAYLOAD,
            ),
            Target::Chat => {
                limit("--size", self.size, payload::TEXT_HEADER, CHAT_MAX_SIZE)?;
                if self.conns < 2 {
                    return Err(format!(
                        "bench chat needs --conns 2 or more, not {}: one client sends, \
                         the others receive what it says",
                        self.conns
                    ));
                }
                Ok(())
            }
        }
    }
}

/// A bench run, resolved and checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The service driven.
    pub target: Target,
    /// The server's address, resolved.
    pub addr: SocketAddr,
    /// More servers' addresses (chat: clients go round-robin over `addr`
    /// and these).
    pub also: Vec<SocketAddr>,
    /// Connections (UDP sockets, chat clients).
    pub conns: usize,
    /// Payload bytes per message (chat: per line, without nick and LF).
    pub size: usize,
    /// Messages in flight per connection (chat: lines in flight per sender).
    pub pipeline: usize,
    /// Length of the load phase (with a count: its upper bound).
    pub duration: Duration,
    /// Messages to start in all (`None`: as many as fit in `duration`).
    pub count: Option<u64>,
    /// Progress lines on stderr this often when it is not a terminal.
    pub interval: Option<Duration>,
}

impl Plan {
    /// The plan for `options`: checked, with the address resolved (the
    /// service's default address when none is given).
    pub fn new(options: &BenchOptions) -> io::Result<Plan> {
        options
            .check()
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        let to = options
            .to
            .as_deref()
            .unwrap_or(options.target.default_addr());
        let (duration, count) = match options.stop {
            Stop::After(d) => (d, None),
            Stop::Count { count, at_most } => (at_most, Some(count)),
        };
        Ok(Plan {
            target: options.target,
            addr: config::resolve(to)?,
            also: options
                .also_to
                .iter()
                .map(|a| config::resolve(a))
                .collect::<io::Result<_>>()?,
            conns: options.conns,
            size: options.size,
            pipeline: options.pipeline,
            duration,
            count,
            interval: options.interval,
        })
    }

    /// The server client `i` connects to: round-robin over every `--to`.
    pub fn addr_for(&self, i: usize) -> SocketAddr {
        match i % (1 + self.also.len()) {
            0 => self.addr,
            k => self.also[k - 1],
        }
    }

    /// Every server driven, for the report: `ADDR` or `ADDR, ADDR, ...`.
    pub fn servers(&self) -> String {
        let mut all = self.addr.to_string();
        for addr in &self.also {
            all.push_str(", ");
            all.push_str(&addr.to_string());
        }
        all
    }

    /// `echo`, `udp` or `chat`.
    pub fn target_name(&self) -> &'static str {
        self.target.name()
    }
}

/// Run `sockloop bench`: check the options, drive the server, print the
/// report (a table, or one JSON object with `--json`) on stdout. Returns an
/// error, so that the process exits 1, when the server could not be reached
/// or when any reply was mismatched or lost.
pub fn run(options: &BenchOptions) -> io::Result<()> {
    let plan = Plan::new(options)?;
    ensure_fd_limit(plan.conns)?;
    let (tally, senders, elapsed) = match plan.target {
        Target::Echo => echo::run(&plan)?,
        Target::Udp => udp::run(&plan)?,
        Target::Chat => chat::run(&plan)?,
    };
    let report = Report {
        plan: &plan,
        senders,
        elapsed,
        tally: &tally,
    };
    if options.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if tally.errors() > 0 {
        return Err(io::Error::other(format!(
            "bench {} saw {} errors ({} mismatched, {} lost, {} disconnected)",
            plan.target_name(),
            tally.errors(),
            tally.mismatched,
            tally.lost,
            tally.disconnected
        )));
    }
    Ok(())
}

/// Raise the soft limit on open files as far as `conns` needs (up to the hard
/// limit) and fail clearly, before opening anything, if that is not enough.
fn ensure_fd_limit(conns: usize) -> io::Result<()> {
    let needed = (conns + BENCH_FD_RESERVE) as u64;
    let got = raise_fd_limit(needed)?;
    if got < needed {
        return Err(io::Error::other(format!(
            "--conns {conns} needs about {needed} file descriptors, but the limit is {got} \
             (raise it with ulimit -n)"
        )));
    }
    Ok(())
}

/// Nanoseconds since the bench started: the timestamps messages carry. One
/// monotonic base for the whole process, so a receiver can subtract a
/// sender's timestamp (chat) as well as its own (echo, UDP).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock {
            base: Instant::now(),
        }
    }

    /// `at` as nanoseconds since the start.
    #[inline]
    pub fn ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos() as u64
    }
}

/// The time of one loop turn, read once after each poll and shared by every
/// event of the batch (reading the clock per message would cost more than
/// the precision it buys), and whether new messages may start.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    /// Now.
    pub now: Instant,
    /// Now, as a message timestamp.
    pub now_ns: u64,
    /// Whether the load phase is still on.
    pub running: bool,
}

impl Turn {
    /// Read the clock.
    pub fn now(clock: &Clock, schedule: &Schedule) -> Turn {
        let now = Instant::now();
        Turn {
            now,
            now_ns: clock.ns(now),
            running: schedule.running(),
        }
    }
}

/// The load and drain phases of a run, and the poll timeout they imply.
#[derive(Debug)]
pub struct Schedule {
    /// When the load phase began.
    pub start: Instant,
    deadline: Instant,
    stopped_at: Option<Instant>,
    drain_until: Option<Instant>,
    drain: Duration,
}

impl Schedule {
    /// A load phase of `duration` starting now, then a drain of at most `drain`.
    pub fn new(duration: Duration, drain: Duration) -> Schedule {
        let start = Instant::now();
        Schedule {
            start,
            deadline: start + duration,
            stopped_at: None,
            drain_until: None,
            drain,
        }
    }

    /// Whether new messages may still start.
    pub fn running(&self) -> bool {
        self.stopped_at.is_none()
    }

    /// Move to the drain phase if the deadline has passed. Returns true on
    /// the turn the phase changes.
    pub fn advance(&mut self, now: Instant) -> bool {
        if self.running() && now >= self.deadline {
            self.stop(now);
            return true;
        }
        false
    }

    /// Stop starting messages now (the deadline, or nothing left to drive).
    pub fn stop(&mut self, now: Instant) {
        if self.running() {
            self.stopped_at = Some(now);
            self.drain_until = Some(now + self.drain);
        }
    }

    /// Whether the drain phase has used up its time.
    pub fn drain_expired(&self, now: Instant) -> bool {
        self.drain_until.is_some_and(|until| now >= until)
    }

    /// How long the next poll may sleep: until the deadline or the end of the
    /// drain, the next progress redraw, or `other` (a driver's own timer).
    pub fn poll_timeout(
        &self,
        now: Instant,
        progress: &Progress,
        other: Option<Instant>,
    ) -> Duration {
        let mut wake = self.drain_until.unwrap_or(self.deadline);
        for t in [progress.next_draw(), other].into_iter().flatten() {
            wake = wake.min(t);
        }
        wake.saturating_duration_since(now)
    }

    /// The measured interval: from the start to the stop or the last answer,
    /// whichever came later.
    pub fn elapsed(&self, tally: &Tally) -> Duration {
        let stop = self.stopped_at.unwrap_or_else(Instant::now);
        let end = tally.last_answer.map_or(stop, |last| last.max(stop));
        end.saturating_duration_since(self.start)
    }
}

/// A poll instance and its event list, sized once.
pub fn new_poll() -> io::Result<(Poll, Events)> {
    Ok((Poll::new()?, Events::with_capacity(EVENTS_CAPACITY)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(target: Target) -> BenchOptions {
        BenchOptions {
            target,
            to: None,
            also_to: Vec::new(),
            conns: 10,
            size: 64,
            pipeline: 1,
            stop: Stop::After(Duration::from_secs(5)),
            interval: None,
            json: false,
        }
    }

    #[test]
    fn target_limits_are_checked() {
        let with = |target, f: fn(&mut BenchOptions)| {
            let mut o = options(target);
            f(&mut o);
            o.check()
        };
        assert!(with(Target::Udp, |o| o.size = 15).is_err());
        assert!(with(Target::Udp, |o| o.size = 65_508).is_err());
        assert!(with(Target::Chat, |o| o.size = 31).is_err());
        assert!(with(Target::Echo, |o| o.pipeline = 4097).is_err());
        let one = with(Target::Chat, |o| o.conns = 1).unwrap_err();
        assert!(one.contains("--conns 2 or more"), "{one}");
        assert!(with(Target::Echo, |o| o.size = 1).is_ok());
        assert!(with(Target::Udp, |o| o.size = 16).is_ok());
        assert!(with(Target::Chat, |o| {
            o.conns = 2;
            o.size = 32
        })
        .is_ok());
    }

    #[test]
    fn default_address_follows_the_target() {
        let p = Plan::new(&options(Target::Chat)).unwrap();
        assert_eq!(p.addr.to_string(), config::DEFAULT_CHAT_ADDR);
        let p = Plan::new(&options(Target::Udp)).unwrap();
        assert_eq!(p.addr.to_string(), config::DEFAULT_UDP_ECHO_ADDR);
    }
}
