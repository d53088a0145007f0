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
//! [`CONNECT_TIMEOUT`], and for chat by [`CHAT_SETUP_TIMEOUT`] to let the join
//! notices settle), load (`--duration` seconds), and drain: at the deadline no
//! new message starts, and the bench waits at most [`DRAIN_TIMEOUT`] (UDP:
//! [`UDP_LOSS_TIMEOUT`]) for the answers still in flight before it reports.
//! So the tool always stops by itself.
//!
//! - [`payload`]: the wire formats and the byte-for-byte check.
//! - [`tcp`]: non-blocking connects and the output side every TCP driver shares.
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

use crate::cli::{BenchArgs, BenchTarget};
use crate::config;
use crate::net::interrupted;
use report::{Progress, Report, Tally};

/// How long all connections together may take to be established.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Non-blocking connects in progress at once. The server's listen backlog is
/// finite; a connect storm past it costs SYN retransmits (a second each), so
/// the bench opens connections in waves of this many.
pub const CONNECTS_IN_FLIGHT: usize = 128;
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
/// File descriptors needed beyond one per connection (stdio, the poll
/// instance, whatever the runtime opened).
pub const FD_RESERVE: usize = 16;
/// Readiness events taken from one poll.
const EVENTS_CAPACITY: usize = 1024;

/// A bench run, resolved and checked from the command line.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The service driven.
    pub target: BenchTarget,
    /// The server's address, resolved.
    pub addr: SocketAddr,
    /// Connections (UDP sockets, chat clients).
    pub conns: usize,
    /// Payload bytes per message (chat: per line, without nick and LF).
    pub size: usize,
    /// Messages in flight per connection (chat: lines in flight per sender).
    pub pipeline: usize,
    /// Length of the load phase.
    pub duration: Duration,
}

impl Plan {
    /// Check the options that clap cannot check alone (they depend on the
    /// target). A failure here is a usage error: exit status 2 with usage.
    pub fn check(args: &BenchArgs) -> Result<(), clap::Error> {
        let limit = |what: &str, value: usize, min: usize, max: usize| {
            if value < min || value > max {
                Err(usage_error(format!(
                    "bench {}: {what} must be from {min} to {max}, not {value}",
                    target_name(args.target)
                )))
            } else {
                Ok(())
            }
        };
        limit("--pipeline", args.pipeline, 1, MAX_PIPELINE)?;
        match args.target {
            BenchTarget::Echo => Ok(()),
            BenchTarget::Udp => limit(
                "--size",
                args.size,
                payload::BINARY_HEADER,
                config::MAX_UDP_PAYLOAD,
            ),
            BenchTarget::Chat => {
                limit("--size", args.size, payload::TEXT_HEADER, CHAT_MAX_SIZE)?;
                limit("--conns", args.conns, 2, usize::MAX)
            }
        }
    }

    /// The plan for `args`: checked, with the address resolved (the service's
    /// default address when `--to` is not given).
    pub fn from_args(args: &BenchArgs) -> io::Result<Plan> {
        let to = args.to.as_deref().unwrap_or(match args.target {
            BenchTarget::Echo => config::DEFAULT_ECHO_ADDR,
            BenchTarget::Udp => config::DEFAULT_UDP_ECHO_ADDR,
            BenchTarget::Chat => config::DEFAULT_CHAT_ADDR,
        });
        Ok(Plan {
            target: args.target,
            addr: config::resolve(to)?,
            conns: args.conns,
            size: args.size,
            pipeline: args.pipeline,
            duration: crate::cli::secs(args.duration),
        })
    }

    /// `echo`, `udp` or `chat`.
    pub fn target_name(&self) -> &'static str {
        target_name(self.target)
    }
}

fn target_name(target: BenchTarget) -> &'static str {
    match target {
        BenchTarget::Echo => "echo",
        BenchTarget::Udp => "udp",
        BenchTarget::Chat => "chat",
    }
}

/// A usage error worded like clap's own, with `sockloop bench`'s usage line.
fn usage_error(message: String) -> clap::Error {
    use clap::CommandFactory;
    let mut cli = crate::cli::Cli::command();
    cli.build();
    match cli.find_subcommand_mut("bench") {
        Some(bench) => bench.error(clap::error::ErrorKind::ValueValidation, message),
        None => cli.error(clap::error::ErrorKind::ValueValidation, message),
    }
}

/// Run `sockloop bench`: check the options, drive the server, print the
/// report (a table, or one JSON object with `--json`) on stdout. Returns an
/// error, so that the process exits 1, when the server could not be reached
/// or when any reply was mismatched or lost.
pub fn run(args: &BenchArgs) -> io::Result<()> {
    if let Err(usage) = Plan::check(args) {
        usage.exit();
    }
    let plan = Plan::from_args(args)?;
    ensure_fd_limit(plan.conns)?;
    let (tally, senders, elapsed) = match plan.target {
        BenchTarget::Echo => echo::run(&plan)?,
        BenchTarget::Udp => udp::run(&plan)?,
        BenchTarget::Chat => chat::run(&plan)?,
    };
    let report = Report {
        plan: &plan,
        senders,
        elapsed,
        tally: &tally,
    };
    if args.json {
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
    let needed = (conns + FD_RESERVE) as u64;
    let got = rlimit::increase_nofile_limit(needed)?;
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

/// One `poll`, treating `EINTR` as an empty wake-up.
pub fn poll_once(poll: &mut Poll, events: &mut Events, timeout: Duration) -> io::Result<()> {
    match poll.poll(events, Some(timeout)) {
        Ok(()) => Ok(()),
        Err(e) if interrupted(&e) => {
            events.clear();
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse_from, Command};

    fn bench_args(extra: &[&str]) -> BenchArgs {
        let mut argv = vec!["sockloop", "bench"];
        argv.extend_from_slice(extra);
        match parse_from(argv).unwrap().command {
            Command::Bench(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn target_limits_are_usage_errors() {
        for bad in [
            &["udp", "--size", "15"][..],
            &["udp", "--size", "65508"],
            &["chat", "--size", "31"],
            &["chat", "--conns", "1"],
            &["echo", "--pipeline", "4097"],
        ] {
            let err = Plan::check(&bench_args(bad)).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
        for good in [
            &["echo", "--size", "1"][..],
            &["udp", "--size", "16"],
            &["chat", "--conns", "2", "--size", "32"],
        ] {
            assert!(Plan::check(&bench_args(good)).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn default_address_follows_the_target() {
        let p = Plan::from_args(&bench_args(&["chat"])).unwrap();
        assert_eq!(p.addr.to_string(), config::DEFAULT_CHAT_ADDR);
        let p = Plan::from_args(&bench_args(&["udp"])).unwrap();
        assert_eq!(p.addr.to_string(), config::DEFAULT_UDP_ECHO_ADDR);
    }
}
