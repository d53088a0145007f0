//! Deterministic simulation of the whole server: the real reactor
//! ([`Server`]) on the simulated network ([`SimNet`]), driven by scenario
//! clients that check it at every step. One seed chooses everything: the
//! limits, the fault rates, the receive windows, the clients and what each
//! does when; [`run_seed`] replays a seed exactly.
//!
//! A run goes: bind the three services on the simulated network; then, step
//! after step, every client acts (connects, sends a chunk, reads, pauses,
//! half-closes, resets...), virtual time moves on a little, and the server
//! makes one turn of its loop; after each turn the loop's sizes are audited.
//! When the clients are done sending, they keep reading until each has what
//! it is owed (within a bounded number of turns: liveness), then the server
//! gets SIGTERM and must finish within its grace. Sometimes SIGTERM comes in
//! the middle instead.
//!
//! What is checked, at every step and at the end:
//!
//! - **liveness**: a client that keeps reading gets what it is owed within
//!   [`LIVENESS_TURNS`] turns and [`LIVENESS_TIME`] of virtual time; the run
//!   ends, and shutdown ends within its grace;
//! - **safety**: echo is byte-exact (never a foreign byte); chat lines per
//!   sender are exact, in order, without gaps, none after the sender's leave,
//!   none invented; UDP replies are whole, to their source, never to a
//!   guarded port;
//! - **bounds**: each connection's pending output within `--out-limit`, all
//!   of it within `--max-pending`; the slab within `--max-conns` plus
//!   listeners; the timers within the open sources; the simulated kernel
//!   holds exactly the sockets the slab holds, each registered under its own
//!   slab key, and no token is reused while the batch being handled still
//!   holds an event of its closed previous owner.
//!
//! The clients live in [`echo`], [`chat`] and [`udp`]. [`cluster`] runs
//! several servers with `--cluster` joined by the simulated Redis of
//! [`redis`], with its own scenarios and checks.

pub mod chat;
pub mod cluster;
pub mod echo;
pub mod redis;
pub mod udp;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{ListenerSpec, ServeConfig, Service};
use crate::net::sim::{Faults, SimEvents, SimNet, SimRng};
use crate::net::EventList;
use crate::reactor::Server;

/// Turns a client that keeps reading may go without receiving anything it
/// is owed (and [`LIVENESS_TIME`] must have passed too). Far above what
/// budgets, small windows and split event batches need (a few turns); a lost
/// wake-up never ends.
pub const LIVENESS_TURNS: u64 = 2000;

/// And virtual time it may go without: the longest delay the server puts
/// on purpose (the accept back-off after EMFILE) fits many times over.
pub const LIVENESS_TIME: Duration = Duration::from_secs(3);

/// Steps a run may take at most, whatever happens (a run that does not end
/// is a failure, never a hang).
pub const MAX_STEPS: u64 = 200_000;

/// How one client behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// Reads whenever it can, as much as it can.
    #[default]
    Steady,
    /// Reads a few bytes at a time.
    Slow,
    /// Stops reading for a while, now and then.
    StopAndGo,
    /// Chat only: reads its welcome, then nothing until everyone is done
    /// sending, then as fast as it can (its backlog grows meanwhile).
    Sleeper,
    /// Sends garbage, stops reading, half-closes or resets at any moment;
    /// only checked for safety, never owed anything.
    Hostile,
}

impl Pace {
    fn draw(rng: &mut SimRng) -> Pace {
        match rng.below(9) {
            0..=2 => Pace::Steady,
            3 | 4 => Pace::StopAndGo,
            5 | 6 => Pace::Slow,
            7 => Pace::Sleeper,
            _ => Pace::Hostile,
        }
    }

    /// How many bytes one read asks for.
    fn read_size(self, rng: &mut SimRng) -> usize {
        match self {
            Pace::Slow => rng.pick(&[1, 3, 16, 16, 200, 4096]),
            _ => rng.pick(&[1, 100, 4096, 65536, 1 << 20]),
        }
    }
}

/// The scenario a seed chose, printed with every failure.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed.
    pub seed: u64,
    /// The server's configuration.
    pub config: ServeConfig,
    /// Fault rates.
    pub faults: Faults,
    /// Receive window sizes connections draw from.
    pub windows: Vec<usize>,
    /// Echo clients and how each behaves, with the bytes each sends.
    pub echo: Vec<(Pace, usize)>,
    /// Chat clients, with the lines each sends.
    pub chat: Vec<(Pace, usize)>,
    /// UDP clients, with the datagrams each sends.
    pub udp: Vec<(Pace, usize)>,
    /// Bulk: more than a turn's budgets through wide windows.
    pub bulk: bool,
    /// SIGTERM at this step (else only at the end).
    pub early_sigterm: Option<u64>,
}

impl Scenario {
    /// Draw a scenario from `rng`.
    pub fn draw(seed: u64, rng: &mut SimRng) -> Scenario {
        let listeners = vec![
            ListenerSpec {
                service: Service::TcpEcho,
                addr: "127.0.0.1:7000".into(),
            },
            ListenerSpec {
                service: Service::UdpEcho,
                addr: "127.0.0.1:7000".into(),
            },
            ListenerSpec {
                service: Service::Chat,
                addr: "127.0.0.1:7001".into(),
            },
        ];
        let mut config = ServeConfig::with_defaults(listeners);
        // Bulk runs move more than a turn's read and write budgets (256 KiB)
        // through wide windows, so that budgets, not the sockets, stop the
        // loop; the others move little through windows down to one byte.
        let mut bulk = rng.chance(200);
        config.max_conns = rng.range(2, 24);
        config.out_limit = if bulk {
            rng.pick(&[1 << 20, 4 << 20])
        } else {
            rng.pick(&[64, 1000, 4096, 65536, 1 << 20])
        };
        config.max_line = if bulk {
            4096
        } else {
            rng.pick(&[40, 100, 4096])
        };
        if rng.chance(200) {
            config.max_pending = rng.pick(&[100, 5000, 300_000]);
        }
        if rng.chance(250) {
            config.idle_timeout = Some(Duration::from_millis(rng.range(500, 20_000) as u64));
        }
        config.shutdown_grace = Duration::from_millis(rng.range(200, 10_000) as u64);
        if rng.chance(100) {
            config.stats_interval = Some(Duration::from_millis(rng.range(50, 5000) as u64));
        }
        let faults = Faults {
            eintr: rng.pick(&[0, 5, 50]),
            spurious: rng.pick(&[0, 20, 200]),
            emfile: rng.pick(&[0, 0, 30, 150]),
            short_write: rng.pick(&[0, 50, 300]),
        };
        let windows = if bulk {
            vec![rng.pick(&[300_000, 300_000, 1 << 20])]
        } else {
            match rng.below(3) {
                0 => vec![1, 2, 7, 64],
                1 => vec![5, 100, 4096, 65536],
                _ => vec![4096, 65536, 1 << 20],
            }
        };
        let small = windows.iter().all(|&w| w <= 64);
        let echo_bytes = |rng: &mut SimRng| {
            if bulk {
                rng.range(270_000, 450_000)
            } else if small {
                rng.range(0, 600)
            } else {
                rng.range(0, 5_000)
            }
        };
        let echo = (0..rng.range(0, 5))
            .map(|_| (Pace::draw(rng), echo_bytes(rng)))
            .collect();
        let lines = if bulk {
            (80, 250)
        } else if small {
            (0, 8)
        } else {
            (0, 40)
        };
        let chat = (0..rng.range(0, 6))
            .map(|_| (Pace::draw(rng), rng.range(lines.0, lines.1)))
            .collect();
        let udp = (0..rng.range(0, 3))
            .map(|_| (Pace::draw(rng), rng.range(0, 40)))
            .collect();
        let mut chat: Vec<(Pace, usize)> = chat;
        let mut windows = windows;
        if rng.chance(150) {
            // The case, on purpose: one member sleeps while the
            // others paste hundreds of long lines, then reads as fast as it
            // can through a wide window, so that whole writes spend the
            // turn's write budget before the socket fills.
            bulk = true;
            config.max_line = 4096;
            config.out_limit = 4 << 20;
            config.max_pending = crate::config::DEFAULT_MAX_PENDING;
            windows = vec![rng.pick(&[300_000, 1 << 20])];
            chat = vec![(Pace::Sleeper, 0)];
            for _ in 0..rng.range(2, 4) {
                chat.push((Pace::Steady, rng.range(150, 250)));
            }
        }
        let early_sigterm = rng.chance(150).then(|| rng.range(1, 3000) as u64);
        Scenario {
            seed,
            bulk,
            config,
            faults,
            windows,
            echo,
            chat,
            udp,
            early_sigterm,
        }
    }
}

/// What the clients may ask of the run while they act.
pub struct Ctx<'a> {
    /// The network, client side.
    pub net: &'a mut SimNet,
    /// Steps so far.
    pub step: u64,
    /// Virtual time since the start.
    pub now: Duration,
    /// The server's configuration.
    pub config: &'a ServeConfig,
    /// SIGTERM has been sent: the server owes nothing more.
    pub signalled: bool,
    /// Every client is done sending: everybody now reads until served.
    pub draining: bool,
}

impl Ctx<'_> {
    /// Whether a connection cut now is one `--idle-timeout` allows: its
    /// client has sent nothing for the timeout.
    pub fn idle_cut_allowed(&self, last_input: Duration) -> bool {
        self.config
            .idle_timeout
            .is_some_and(|idle| self.now.saturating_sub(last_input) >= idle)
    }
}

/// A run's outcome, for reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What was run.
    pub scenario: Scenario,
    /// Steps taken.
    pub steps: u64,
    /// Virtual time at the end.
    pub elapsed: Duration,
    /// The server's counters at the end.
    pub stats: crate::reactor::stats::Stats,
    /// What the simulated network did.
    pub counters: crate::net::sim::SimCounters,
}

/// The server's addresses in the scenario.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    /// TCP echo.
    pub echo: SocketAddr,
    /// UDP echo.
    pub udp: SocketAddr,
    /// Chat.
    pub chat: SocketAddr,
}

/// Run the scenario of `seed`. Panics, with the seed and the scenario, at
/// the first broken check.
pub fn run_seed(seed: u64) -> Outcome {
    run(seed, SimRng::seeded(seed))
}

/// Run a scenario whose every choice is taken from `data` (the fuzz
/// target's entry).
pub fn run_bytes(data: &[u8]) -> Outcome {
    run(0, SimRng::from_bytes(data))
}

fn run(seed: u64, mut rng: SimRng) -> Outcome {
    let scenario = Scenario::draw(seed, &mut rng);
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| simulate(&scenario, rng)));
    match result {
        Ok(outcome) => outcome,
        Err(panic) => {
            let msg = panic_message(panic.as_ref());
            panic!(
                "simulation failed, seed {seed} (replay: SOCKLOOP_SIM_SEED={seed} cargo test --test in_process sim::)\n\
                 {msg}\nscenario: {scenario:#?}"
            );
        }
    }
}

fn simulate(scenario: &Scenario, rng: SimRng) -> Outcome {
    let net = SimNet::new(rng, scenario.faults, scenario.windows.clone());
    let mut server =
        Server::with_net(scenario.config.clone(), net).expect("bind on the simulation");
    let addrs = {
        let a = server.local_addrs();
        Addrs {
            echo: a[0].1,
            udp: a[1].1,
            chat: a[2].1,
        }
    };
    let capacity = server.net_mut().rng().pick(&[1, 2, 8, 1024]);
    let mut events = SimEvents::with_capacity(capacity);
    let mut echo = echo::EchoClients::new(&scenario.echo, addrs.echo, server.net_mut());
    let mut chat = chat::ChatClients::new(&scenario.chat, scenario.bulk, addrs.chat);
    let mut udp = udp::UdpClients::new(&scenario.udp, addrs.udp, server.net_mut());
    let mut signalled = false;
    let mut signalled_at = Duration::ZERO;
    let mut step = 0;
    loop {
        step += 1;
        assert!(
            step < MAX_STEPS,
            "the run did not end within {MAX_STEPS} steps: draining {}, settled {} {} {}, all quit {}, signalled {signalled}\n{}\nthe loop now: {:?}",
            echo.done_sending() && chat.done_sending() && udp.done_sending(),
            echo.settled(),
            chat.settled(),
            udp.settled(server.net()),
            chat.all_quit(),
            chat.summary(),
            server.audit()
        );
        let now = server.net().elapsed();
        let draining = echo.done_sending() && chat.done_sending() && udp.done_sending();
        {
            let mut ctx = Ctx {
                net: server.net_mut(),
                step,
                now,
                config: &scenario.config,
                signalled,
                draining,
            };
            echo.act(&mut ctx);
            chat.act(&mut ctx);
            udp.act(&mut ctx);
            if ctx.net.rng().chance(300) {
                let dt = Duration::from_micros(ctx.net.rng().below(3000));
                ctx.net.advance(dt);
            }
        }
        let settled = echo.settled() && chat.settled() && udp.settled(server.net());
        let sigterm_now = !signalled
            && (scenario.early_sigterm == Some(step) || (draining && settled && chat.all_quit()));
        if sigterm_now {
            signalled = true;
            signalled_at = server.net().elapsed();
            echo.on_signal();
            chat.on_signal();
            server.net_mut().raise_signal(signal_hook::consts::SIGTERM);
        }
        if draining && settled && !signalled {
            chat.quit_all();
        }
        let busy = !signalled && (echo.busy(server.net()) || chat.busy(server.net()) || udp.busy());
        server.net_mut().max_jump = busy.then_some(Duration::from_millis(2));
        // Once everybody is done sending, only what the server itself does
        // may deliver what is owed: no lucky spurious wake-up.
        server.net_mut().stingy = draining;
        server
            .turn(&mut events, None)
            .unwrap_or_else(|e| panic!("turn failed: {e}"));
        audit(&mut server, &scenario.config, 0);
        if signalled {
            if server.finished() {
                break;
            }
            let grace = scenario.config.shutdown_grace;
            let waited = server.net().elapsed().saturating_sub(signalled_at);
            assert!(
                waited <= grace + Duration::from_secs(1),
                "shutdown took {waited:?}, grace {grace:?}"
            );
        }
        let mut stalled = echo.stalled(server.net());
        stalled.push_all(chat.stalled(server.net()));
        stalled.push_all(udp.stalled(server.net()));
        if !stalled.is_empty() {
            panic!(
                "liveness: {stalled}\nthe loop now: {:?}\nthe server's counters: {}",
                server.audit(),
                server.stats()
            );
        }
    }
    let stats = server.stats().clone();
    echo.finish(&stats);
    chat.finish(&stats);
    let net = server.net_mut();
    Outcome {
        scenario: scenario.clone(),
        steps: step,
        elapsed: net.elapsed(),
        stats,
        counters: net.counters.clone(),
    }
}

/// The bounds, after every turn. `links` is the number of sources that are
/// neither listeners nor clients (the Redis link of `--cluster`: one slab
/// entry and one timer).
pub(crate) fn audit(server: &mut Server<SimNet>, config: &ServeConfig, links: usize) {
    let audit = server.audit();
    let open = audit.conns.iter().filter(|c| !c.closing).count();
    assert!(
        audit.slab <= server.max_conns() + audit.endpoints + links,
        "slab holds {} entries, over --max-conns {} plus {} listeners",
        audit.slab,
        server.max_conns(),
        audit.endpoints
    );
    assert!(
        audit.timers <= open + audit.endpoints + links,
        "{} timers held for {open} open connections and {} listeners",
        audit.timers,
        audit.endpoints
    );
    let costs: usize = audit.conns.iter().map(|c| c.pending).sum();
    assert_eq!(
        costs, audit.pending_total,
        "the loop counts {} bytes of pending output, the connections hold {costs}",
        audit.pending_total
    );
    assert!(
        costs <= config.max_pending,
        "{costs} bytes of pending output in all, over --max-pending {}",
        config.max_pending
    );
    for c in &audit.conns {
        assert!(
            c.pending <= config.out_limit,
            "connection {} holds {} bytes of output, over --out-limit {}",
            c.key,
            c.pending,
            config.out_limit
        );
    }
    let lent = audit.conns.iter().filter(|c| c.has_relay).count();
    assert_eq!(
        audit.relays_open,
        lent + audit.relays_idle,
        "the pool counts {} relays open, {lent} are lent and {} idle",
        audit.relays_open,
        audit.relays_idle
    );
    assert!(
        audit.relays_open <= audit.relays_limit,
        "relays over their limit"
    );
    assert!(
        audit.relays_idle <= crate::config::IDLE_RELAYS_KEPT,
        "too many idle relays kept"
    );
    assert_eq!(
        server.net().relays_open(),
        audit.relays_open,
        "the kernel holds {} relays open, the pool counts {}",
        server.net().relays_open(),
        audit.relays_open
    );
    for c in &audit.conns {
        assert!(
            c.relayed == 0 || c.has_relay,
            "connection {} owes {} relayed bytes but holds no relay",
            c.key,
            c.relayed
        );
    }
    let mut mismatched = String::new();
    let streams: Vec<(usize, Option<mio::Token>)> = server
        .conn_streams()
        .map(|(key, s)| (key, server.net().stream_token(s)))
        .collect();
    for (key, token) in &streams {
        if *token != Some(mio::Token(*key)) {
            let _ = write!(mismatched, " {key}:{token:?}");
        }
    }
    assert!(
        mismatched.is_empty(),
        "connections registered under another token than their slab key:{mismatched}"
    );
    let (endpoints, sockets) = server.net_mut().open_sockets();
    assert_eq!(
        sockets,
        audit.conns.len(),
        "the kernel holds {sockets} connection sockets, the slab {}",
        audit.conns.len()
    );
    assert!(endpoints >= audit.endpoints);
}

/// The text a panic carried (`panic!` with arguments gives a `String`, a
/// bare literal a `&str`); empty if it carried something else.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Failure text collected from several clients ("" when all is well).
#[derive(Debug, Default)]
pub struct Complaints(pub String);

impl Complaints {
    /// Nothing to say.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Add one.
    pub fn push(&mut self, what: impl std::fmt::Display) {
        if !self.0.is_empty() {
            self.0.push_str("; ");
        }
        let _ = write!(self.0, "{what}");
    }
}

impl Complaints {
    /// Add all of `other`'s.
    pub fn push_all(&mut self, other: Complaints) {
        if !other.is_empty() {
            self.push(other.0);
        }
    }
}

impl std::fmt::Display for Complaints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The period of [`stream_byte`]'s pattern: a prime, so that no power-of-two
/// chunking lines up with it.
const PATTERN_LEN: usize = 65_521;

fn pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut rng = SimRng::seeded(0x5eed);
        (0..PATTERN_LEN).map(|_| rng.next_u64() as u8).collect()
    })
}

/// Where client `who`'s stream starts in the pattern: every client sends a
/// different stream, so a byte that reaches the wrong client is seen.
fn pattern_offset(who: usize) -> usize {
    who.wrapping_mul(7919) % PATTERN_LEN
}

/// Byte `at` of client `who`'s stream.
pub fn stream_byte(who: usize, at: usize) -> u8 {
    pattern()[(pattern_offset(who) + at) % PATTERN_LEN]
}

/// Append bytes `at..at + n` of client `who`'s stream to `out`.
pub fn stream_bytes(who: usize, at: usize, n: usize, out: &mut Vec<u8>) {
    let p = pattern();
    let mut pos = (pattern_offset(who) + at) % PATTERN_LEN;
    let mut left = n;
    while left > 0 {
        let k = left.min(PATTERN_LEN - pos);
        out.extend_from_slice(&p[pos..pos + k]);
        left -= k;
        pos = 0;
    }
}

/// The first index in `bytes` that differs from client `who`'s stream read
/// from offset `at`, if any.
pub fn stream_mismatch(who: usize, at: usize, bytes: &[u8]) -> Option<usize> {
    let p = pattern();
    let mut pos = (pattern_offset(who) + at) % PATTERN_LEN;
    let mut done = 0;
    while done < bytes.len() {
        let k = (bytes.len() - done).min(PATTERN_LEN - pos);
        if bytes[done..done + k] != p[pos..pos + k] {
            let i = (0..k).find(|&i| bytes[done + i] != p[pos + i]).unwrap_or(0);
            return Some(done + i);
        }
        done += k;
        pos = 0;
    }
    None
}
