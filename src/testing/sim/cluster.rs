//! The cluster simulation: two or three real reactors (`serve --cluster`),
//! each on its own [`SimNet`] but on one shared virtual clock, joined by one
//! simulated Redis ([`super::redis`]), with chat clients on every server.
//! One seed chooses everything: the servers, the clients and what they
//! type, the network's faults, and the Redis faults: Redis crashing and
//! coming back (with its data or empty), every connection to it dropped,
//! Redis slow (late answers, bytes in small chunks, a congested link) and
//! Redis cutting a subscriber whose output passed its pub/sub limit.
//!
//! A run has four phases. **Running**: clients connect, chat and rename
//! (`/nick` to a handful of names shared by everyone, so claims race across
//! servers) while the faults strike. **Settling**, once the faults have
//! stopped and every client has typed its lines: every link must come back,
//! and every client's `/who` must list exactly the users all servers hold,
//! with no name held twice. **Probing**: every client sends one last line,
//! which every other client must receive. **Shutdown**: SIGTERM to every
//! server, each must finish within its grace.
//!
//! What is checked:
//!
//! - **liveness**: each phase ends within its virtual deadline (the links
//!   are up again, the member lists agree, the probes arrive, shutdown
//!   ends), and the run within [`super::MAX_STEPS`]; a connection is never
//!   cut, except the one way the contract allows (no name can be proven
//!   free while the link is down: the client then reconnects later);
//! - **per-sender order**: the lines of one sender arrive at every client,
//!   whatever its server, in the order typed (gaps are allowed across
//!   servers: the bus is at-most-once), and never a line not typed yet;
//! - **names**: at every step, every name a server's hub holds is held in
//!   Redis by that server (`SET NX` proved it), so no name is granted twice
//!   and none without proof; and no two servers hold one name. The
//!   contract allows an exception (a server cut off for more than the 5 s
//!   after which the others declare it lost, or Redis restarted empty),
//!   so once a link has been down for 3 s or Redis lost its data, these
//!   checks wait for the end of settling, where they must hold again;
//! - **notices**: a client told `* cluster link lost` is told `* cluster
//!   link restored` by the end of settling;
//! - **bounds**: the link's output toward Redis within
//!   [`MAX_OUTPUT`], its commands in flight within
//!   [`MAX_IN_FLIGHT`], and every bound the single-server simulation
//!   audits (pending output, slab, timers, sockets);
//! - **the link speaks only what the model knows**: a command the
//!   simulated Redis does not know fails the run.
//!
//! What it does not check: that a line reaches every client of the same
//! server without a gap while the link is down (the single-server
//! simulation checks local delivery in depth), `/msg`, rooms other than
//! `#lobby`, wrong passwords, malformed bus messages (unit tests and the
//! `cluster_hub` fuzz target do), and the exact timing of "server lost"
//! (tests/binary/cluster_chat.rs does, against a real Redis).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::redis::{RedisFaults, SimRedis};
use super::{audit, MAX_STEPS};
use crate::cluster::link::{MAX_IN_FLIGHT, MAX_OUTPUT};
use crate::config::redis_url::RedisUrl;
use crate::config::{ListenerSpec, ServeConfig, Service};
use crate::net::sim::{ClientRead, ConnId, Faults, SimEvents, SimNet, SimRng};
use crate::net::EventList;
use crate::protocol::chat::wire::WELCOME_HEAD;
use crate::reactor::Server;
use crate::testing::check_output_line;

/// Where the simulated Redis listens.
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

/// A link down this long (or Redis restarted empty) suspends the per-step
/// name checks until the end of settling: 2 s short of the 5 s after which
/// the other servers may declare a silent server lost and free its names,
/// to leave room for late heartbeats.
pub const NAMES_EXCUSED_AFTER: Duration = Duration::from_secs(3);

/// A link up this long has done what it does when it comes back.
pub const SETTLED_AFTER: Duration = Duration::from_secs(1);

/// Settling (links back, member lists agreeing) may take this long.
pub const SETTLE_TIME: Duration = Duration::from_secs(40);

/// Every probe must arrive within this long.
pub const PROBE_TIME: Duration = Duration::from_secs(10);

/// Names the clients ask for with `/nick`: few, and equal but for case, so
/// that claims collide across servers.
const NICKS: &[&str] = &["ann", "Ann", "bob", "BOB", "cy", "guest2"];

/// One fault of the Redis side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Redis dies (every connection reset, connects refused) and starts
    /// again after `down_for`, with its data or empty.
    Crash {
        /// How long it stays down.
        down_for: Duration,
        /// Whether it comes back with its keys.
        keep_data: bool,
    },
    /// The network drops every connection to Redis; Redis stays up.
    Drop,
    /// Redis is slow, or cuts slow subscribers, for a while.
    Slow {
        /// For how long.
        lasts: Duration,
        /// How.
        faults: RedisFaults,
    },
}

/// One chat client of the scenario.
#[derive(Debug, Clone, Copy)]
pub struct ClientSpec {
    /// The server it connects to.
    pub server: usize,
    /// Lines it types (besides its `/nick`s and its probe).
    pub lines: usize,
    /// When it connects.
    pub connect_at: Duration,
    /// It asks for names from a small shared list now and then.
    pub renames: bool,
    /// It stops reading for a while, now and then.
    pub stop_and_go: bool,
}

/// The scenario a seed chose, printed with every failure.
#[derive(Debug, Clone)]
pub struct ClusterScenario {
    /// The seed.
    pub seed: u64,
    /// How many servers.
    pub servers: usize,
    /// Every server's configuration.
    pub config: ServeConfig,
    /// The network's faults (each server's).
    pub net_faults: Faults,
    /// Receive windows.
    pub windows: Vec<usize>,
    /// The clients.
    pub clients: Vec<ClientSpec>,
    /// The Redis faults, by when they strike.
    pub faults: Vec<(Duration, Fault)>,
    /// No fault after this.
    pub faults_end: Duration,
}

impl ClusterScenario {
    /// Draw a scenario from `rng`.
    pub fn draw(seed: u64, rng: &mut SimRng) -> ClusterScenario {
        let servers = rng.range(2, 3);
        let mut config = ServeConfig::with_defaults(vec![ListenerSpec {
            service: Service::Chat,
            addr: "127.0.0.1:7001".into(),
        }]);
        config.cluster = Some(RedisUrl::parse(&format!("redis://{REDIS_ADDR}")).expect("valid"));
        config.max_conns = 64;
        config.shutdown_grace = Duration::from_millis(rng.range(1000, 5000) as u64);
        let net_faults = Faults {
            eintr: rng.pick(&[0, 5, 50]),
            spurious: rng.pick(&[0, 20, 200]),
            emfile: 0,
            short_write: rng.pick(&[0, 50, 300]),
        };
        let windows = match rng.below(3) {
            0 => vec![7, 64, 4096],
            1 => vec![100, 4096, 65536],
            _ => vec![65536, 1 << 20],
        };
        let faults_end = Duration::from_millis(rng.range(3000, 20_000) as u64);
        let mut clients = Vec::new();
        for server in 0..servers {
            for _ in 0..rng.range(1, 3) {
                clients.push(ClientSpec {
                    server,
                    lines: rng.range(0, 25),
                    connect_at: Duration::from_millis(rng.below(faults_end.as_millis() as u64)),
                    renames: rng.chance(300),
                    stop_and_go: rng.chance(300),
                });
            }
        }
        let mut faults = Vec::new();
        for _ in 0..rng.pick(&[0, 1, 1, 2, 3]) {
            let at = Duration::from_millis(rng.below(faults_end.as_millis() as u64));
            let left = faults_end - at;
            let fault = match rng.below(3) {
                0 => Fault::Crash {
                    down_for: Duration::from_millis(rng.range(0, 8000) as u64).min(left),
                    keep_data: rng.chance(500),
                },
                1 => Fault::Drop,
                _ => Fault::Slow {
                    lasts: Duration::from_millis(rng.range(500, 6000) as u64).min(left),
                    faults: RedisFaults {
                        latency: Duration::from_millis(rng.pick(&[0, 5, 50, 400, 3500])),
                        chunk: rng.pick(&[1, 7, 64, 1 << 20]),
                        rate: rng.pick(&[usize::MAX, 64, 512]),
                        pubsub_limit: rng.pick(&[32 << 20, 256, 2048]),
                        stalled: rng.chance(250),
                    },
                },
            };
            faults.push((at, fault));
        }
        faults.sort_by_key(|(at, _)| *at);
        ClusterScenario {
            seed,
            servers,
            config,
            net_faults,
            windows,
            clients,
            faults,
            faults_end,
        }
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunPhase {
    Running,
    Settling { since: Duration },
    Probing { since: Duration },
    Shutdown { since: Duration },
}

/// One chat client: what it typed, what it knows, what it received.
#[derive(Debug, Default)]
struct Client {
    spec: Option<ClientSpec>,
    who: usize,
    conn: Option<ConnId>,
    connect_at: Duration,
    /// The line being sent, and how much of it went out; `Some(seq)` for a
    /// numbered text line.
    sending: Option<(Vec<u8>, usize, Option<usize>)>,
    /// Numbered lines handed whole to the network.
    typed: usize,
    next_at: Duration,
    nick: Option<String>,
    inbuf: Vec<u8>,
    /// Per sender: the last sequence number received.
    last_from: Vec<Option<usize>>,
    /// Told the link is lost, and not yet that it is restored.
    link_lost: bool,
    /// The latest `/who` answer.
    who_answer: Option<BTreeSet<String>>,
    who_asked_at: Duration,
    probe_sent: bool,
    paused_until: Duration,
    /// Times it was turned away for want of a provable name.
    turned_away: u64,
    /// The server closed it after telling it no name could be proven free.
    refused_name: bool,
}

impl Client {
    fn live(&self) -> bool {
        self.conn.is_some() && self.nick.is_some()
    }
}

/// A run's outcome, for reports.
#[derive(Debug, Clone)]
pub struct ClusterOutcome {
    /// What was run.
    pub scenario: ClusterScenario,
    /// Steps taken.
    pub steps: u64,
    /// Virtual time at the end.
    pub elapsed: Duration,
    /// What the simulated Redis counted.
    pub redis: super::redis::RedisCounters,
    /// Clients turned away (no provable name) and reconnected.
    pub turned_away: u64,
    /// Whether the name checks were suspended for part of the run.
    pub names_excused: bool,
    /// The most bytes a link ever had waiting for Redis (its bound is
    /// [`MAX_OUTPUT`]).
    pub max_output: usize,
}

/// Run the scenario of `seed`. Panics, with the seed, the replay command
/// and the scenario, at the first broken check.
pub fn run_seed(seed: u64) -> ClusterOutcome {
    let mut rng = SimRng::seeded(seed);
    let scenario = ClusterScenario::draw(seed, &mut rng);
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| simulate(&scenario, rng)));
    match result {
        Ok(outcome) => outcome,
        Err(panic) => {
            let msg = super::panic_message(panic.as_ref());
            panic!(
                "cluster simulation failed, seed {seed} (replay: SOCKLOOP_SIM_CLUSTER_SEED={seed} \
                 cargo test --test in_process sim_cluster::)\n{msg}\nscenario: {scenario:#?}"
            );
        }
    }
}

/// The whole run: servers, Redis, clients, the fault schedule, the phases.
struct Run<'a> {
    scenario: &'a ClusterScenario,
    rng: SimRng,
    servers: Vec<Server<SimNet>>,
    redis: SimRedis,
    chat: SocketAddr,
    clients: Vec<Client>,
    /// Per server: since when its link has been down (after being up).
    down_since: Vec<Option<Duration>>,
    /// Per server: since when its link has been up.
    up_since: Vec<Option<Duration>>,
    names_excused: bool,
    next_fault: usize,
    restart_at: Option<(Duration, bool)>,
    slow_until: Option<Duration>,
    step: u64,
    max_output: usize,
}

fn simulate(scenario: &ClusterScenario, mut rng: SimRng) -> ClusterOutcome {
    let mut nets: Vec<SimNet> = (0..scenario.servers)
        .map(|_| {
            SimNet::new(
                SimRng::seeded(rng.next_u64()),
                scenario.net_faults,
                scenario.windows.clone(),
            )
        })
        .collect();
    let (first, rest) = nets.split_first_mut().expect("two servers or more");
    for net in rest {
        net.share_clock(first);
    }
    let servers: Vec<Server<SimNet>> = nets
        .into_iter()
        .map(|net| Server::with_net(scenario.config.clone(), net).expect("bind"))
        .collect();
    let chat = servers[0].local_addrs()[0].1;
    let redis_addr: SocketAddr = REDIS_ADDR.parse().expect("valid");
    let n = scenario.clients.len();
    let clients = scenario
        .clients
        .iter()
        .enumerate()
        .map(|(who, spec)| Client {
            spec: Some(*spec),
            who,
            connect_at: spec.connect_at,
            last_from: vec![None; n],
            ..Client::default()
        })
        .collect();
    let mut run = Run {
        scenario,
        rng,
        servers,
        redis: SimRedis::new(redis_addr),
        chat,
        clients,
        down_since: vec![None; scenario.servers],
        up_since: vec![None; scenario.servers],
        names_excused: false,
        next_fault: 0,
        restart_at: None,
        slow_until: None,
        step: 0,
        max_output: 0,
    };
    run.start_up();
    run.main_loop();
    let turned_away = run.clients.iter().map(|c| c.turned_away).sum();
    ClusterOutcome {
        scenario: scenario.clone(),
        steps: run.step,
        elapsed: run.now(),
        redis: run.redis.model.counters.clone(),
        turned_away,
        names_excused: run.names_excused,
        max_output: run.max_output,
    }
}

impl Run<'_> {
    fn now(&self) -> Duration {
        self.servers[0].net().elapsed()
    }

    /// Redis pumps for every server, then every server makes one turn; the
    /// bounds are audited after each.
    fn turns(&mut self, busy: bool, events: &mut [SimEvents]) {
        for (i, server) in self.servers.iter_mut().enumerate() {
            self.redis.pump(i, server.net_mut());
        }
        for (i, server) in self.servers.iter_mut().enumerate() {
            server.net_mut().max_jump = Some(if busy {
                Duration::from_millis(2)
            } else {
                Duration::from_millis(50)
            });
            server
                .turn(&mut events[i], None)
                .unwrap_or_else(|e| panic!("server {i}: turn failed: {e}"));
            audit(server, &self.scenario.config, 1);
            let state = server.cluster_state().expect("--cluster");
            self.max_output = self.max_output.max(state.output);
            assert!(
                state.output <= MAX_OUTPUT,
                "server {i}: {} bytes waiting for Redis, over {MAX_OUTPUT}",
                state.output
            );
            assert!(
                state.in_flight <= MAX_IN_FLIGHT,
                "server {i}: {} commands in flight, over {MAX_IN_FLIGHT}",
                state.in_flight
            );
        }
        assert!(
            self.redis.model.unknown.is_empty(),
            "the link sent what the simulated Redis does not know: {:?}",
            self.redis.model.unknown
        );
    }

    fn new_events(&mut self) -> Vec<SimEvents> {
        (0..self.servers.len())
            .map(|_| SimEvents::with_capacity(self.rng.pick(&[1, 2, 8, 1024])))
            .collect()
    }

    /// Every server's link up and its guest pool filled, as `serve` waits
    /// for before it says it is listening (within the same 5 s).
    fn start_up(&mut self) {
        let mut events = self.new_events();
        let deadline = Duration::from_secs(5);
        while !self
            .servers
            .iter()
            .all(|s| s.cluster_state().is_some_and(|c| c.up && c.ready))
        {
            assert!(
                self.now() < deadline,
                "start-up: not every server's link is up within {deadline:?}: {:?}",
                self.states()
            );
            self.step += 1;
            let busy = self.link_busy();
            self.turns(busy, &mut events);
        }
    }

    /// Bytes on their way between a server and Redis.
    fn link_busy(&self) -> bool {
        self.redis.busy()
            || self
                .servers
                .iter()
                .any(|s| s.cluster_state().is_some_and(|c| c.output > 0))
    }

    fn states(&self) -> Vec<crate::reactor::ClusterState> {
        self.servers
            .iter()
            .filter_map(|s| s.cluster_state())
            .collect()
    }

    fn main_loop(&mut self) {
        let mut events = self.new_events();
        let mut phase = RunPhase::Running;
        let mut signalled = false;
        loop {
            self.step += 1;
            assert!(
                self.step < MAX_STEPS,
                "the run did not end within {MAX_STEPS} steps ({phase:?})\n{}",
                self.summary()
            );
            let now = self.now();
            self.apply_faults(now);
            phase = self.next_phase(phase, now, &mut signalled);
            if let RunPhase::Shutdown { since } = phase {
                let mut finished = true;
                for (i, server) in self.servers.iter_mut().enumerate() {
                    if !server.finished() {
                        finished = false;
                        let grace = self.scenario.config.shutdown_grace;
                        assert!(
                            now - since <= grace + Duration::from_secs(1),
                            "server {i}: shutdown took over {grace:?} + 1 s"
                        );
                    }
                }
                if finished {
                    return;
                }
            }
            for i in 0..self.clients.len() {
                self.act(i, phase, signalled);
            }
            let busy = self.link_busy()
                || self.clients.iter().any(|c| {
                    c.sending.is_some()
                        || c.conn.is_some_and(|conn| {
                            self.servers[c.spec.expect("set").server]
                                .net()
                                .client_has_unread(conn)
                        })
                })
                || self.servers.iter().any(|s| s.audit().pending_total > 0);
            self.turns(busy, &mut events);
            self.check_names(false);
        }
    }

    /// Carry out the faults due now; after the last, a healthy Redis.
    fn apply_faults(&mut self, now: Duration) {
        if let Some((at, keep_data)) = self.restart_at {
            if now >= at {
                self.restart_at = None;
                self.redis.start(keep_data);
                if !keep_data {
                    self.names_excused = true;
                }
            }
        }
        if self.slow_until.is_some_and(|until| now >= until) {
            self.slow_until = None;
            self.redis.heal();
        }
        while let Some(&(at, fault)) = self.scenario.faults.get(self.next_fault) {
            if at > now {
                break;
            }
            self.next_fault += 1;
            match fault {
                Fault::Crash {
                    down_for,
                    keep_data,
                } => {
                    self.cut_all();
                    self.redis.stop();
                    self.restart_at = Some((now + down_for, keep_data));
                }
                Fault::Drop => self.cut_all(),
                Fault::Slow { lasts, faults } => {
                    self.redis.faults = faults;
                    self.slow_until = Some(now + lasts);
                }
            }
        }
        if now >= self.scenario.faults_end {
            if !self.redis.is_up() {
                let keep = self.restart_at.is_none_or(|(_, keep)| keep);
                self.redis.start(keep);
                self.names_excused |= !keep;
                self.restart_at = None;
            }
            if self.redis.faults != RedisFaults::NONE {
                self.redis.heal();
            }
        }
        // A link down long enough for the others to call its server lost.
        for (i, server) in self.servers.iter().enumerate() {
            let up = server.cluster_state().is_some_and(|c| c.up);
            match (&mut self.up_since[i], up) {
                (since @ None, true) => *since = Some(now),
                (since, false) => *since = None,
                _ => {}
            }
            match (&mut self.down_since[i], up) {
                (since @ Some(_), true) => *since = None,
                (since @ None, false) => *since = Some(now),
                (Some(since), false) if now - *since >= NAMES_EXCUSED_AFTER => {
                    self.names_excused = true;
                }
                _ => {}
            }
        }
    }

    fn cut_all(&mut self) {
        for (i, server) in self.servers.iter_mut().enumerate() {
            self.redis.cut(i, server.net_mut());
        }
    }

    fn next_phase(&mut self, phase: RunPhase, now: Duration, signalled: &mut bool) -> RunPhase {
        match phase {
            RunPhase::Running => {
                let done = now >= self.scenario.faults_end
                    && self.restart_at.is_none()
                    && self.clients.iter().all(|c| {
                        let spec = c.spec.expect("set");
                        c.typed >= spec.lines && c.sending.is_none() && c.live()
                    });
                if done {
                    return RunPhase::Settling { since: now };
                }
            }
            RunPhase::Settling { since } => {
                let settled = self.settled();
                if settled.is_empty() {
                    self.check_names(true);
                    return RunPhase::Probing { since: now };
                }
                assert!(
                    now - since <= SETTLE_TIME,
                    "liveness: {SETTLE_TIME:?} after the faults stopped, the cluster has not \
                     settled: {settled}\n{}",
                    self.summary()
                );
            }
            RunPhase::Probing { since } => {
                if let Some(i) = self.states().iter().position(|s| !s.up) {
                    panic!(
                        "server {i}'s link went down after the faults stopped and the cluster \
                         settled\n{}",
                        self.summary()
                    );
                }
                let missing = self.missing_probes();
                if missing.is_empty() {
                    *signalled = true;
                    for server in &mut self.servers {
                        server.net_mut().raise_signal(signal_hook::consts::SIGTERM);
                    }
                    return RunPhase::Shutdown { since: now };
                }
                assert!(
                    now - since <= PROBE_TIME,
                    "liveness: {PROBE_TIME:?} after the probes, still missing: {missing}\n{}",
                    self.summary()
                );
            }
            RunPhase::Shutdown { .. } => {}
        }
        phase
    }

    /// What is still unsettled ("" when everything is).
    fn settled(&self) -> String {
        let states = self.states();
        if let Some(i) = states.iter().position(|s| !s.up) {
            return format!("server {i}'s link is down");
        }
        // What a link does when it comes back (re-assert its names, resync
        // the member lists) takes a few round trips: a link only just back
        // is not settled yet.
        let now = self.now();
        if let Some(i) =
            (0..states.len()).find(|&i| self.up_since[i].is_none_or(|t| now - t < SETTLED_AFTER))
        {
            return format!("server {i}'s link is up for less than {SETTLED_AFTER:?}");
        }
        let truth: BTreeSet<String> = states.iter().flat_map(|s| s.nicks.clone()).collect();
        let held: usize = states.iter().map(|s| s.nicks.len()).sum();
        if truth.len() != held {
            return format!("a name is held twice: {states:?}");
        }
        for c in &self.clients {
            if !c.live() {
                return format!("client {} is not connected yet", c.who);
            }
            if c.link_lost {
                return format!("client {} was not told the link is restored", c.who);
            }
            if c.who_answer.as_ref() != Some(&truth) {
                return format!(
                    "client {}'s /who says {:?}, the servers hold {truth:?}",
                    c.who, c.who_answer
                );
            }
        }
        String::new()
    }

    /// Probes not received yet ("" when all are).
    fn missing_probes(&self) -> String {
        let mut missing = String::new();
        for c in &self.clients {
            for s in &self.clients {
                let probe = s.spec.expect("set").lines;
                if s.who != c.who && c.last_from[s.who].is_none_or(|last| last < probe) {
                    missing.push_str(&format!(" {}->{}", s.who, c.who));
                }
            }
        }
        missing
    }

    /// No name held twice, and each held in Redis by its server: at every
    /// step unless excused, and at the end of settling always.
    fn check_names(&mut self, always: bool) {
        if self.names_excused && !always {
            return;
        }
        let now = self.now();
        let states = self.states();
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, state) in states.iter().enumerate() {
            for nick in &state.nicks {
                let key = nick.to_ascii_lowercase();
                if let Some((_, other)) = seen.iter().find(|(k, _)| *k == key) {
                    panic!("the name {nick} is held by server {other} and by server {i}");
                }
                seen.push((key.clone(), i));
                if !state.up {
                    continue; // checked again when its link is back
                }
                let owner = format!("{:016x}", state.server);
                let redis_key = format!("sockloop:nick:{key}");
                let holder = self
                    .redis
                    .model
                    .get(redis_key.as_bytes(), now)
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                if holder.as_deref() != Some(owner.as_str()) {
                    panic!(
                        "names: server {i} ({owner}) holds the name {nick}, which Redis gives to \
                         {holder:?}\n{}",
                        self.summary()
                    );
                }
            }
        }
    }

    /// One step of client `i`.
    fn act(&mut self, i: usize, phase: RunPhase, signalled: bool) {
        let now = self.now();
        let spec = self.clients[i].spec.expect("set");
        let net = self.servers[spec.server].net_mut();
        let c = &mut self.clients[i];
        let Some(conn) = c.conn else {
            if now >= c.connect_at && !signalled {
                c.conn = net.client_connect(self.chat);
                assert!(c.conn.is_some(), "client {i}: the chat port refused");
            }
            return;
        };
        // Type: the next line when its time has come.
        if c.sending.is_none() && c.nick.is_some() && !signalled && now >= c.next_at {
            let rng = &mut self.rng;
            match phase {
                RunPhase::Running if c.typed < spec.lines => {
                    c.sending = Some(if spec.renames && rng.chance(250) {
                        (format!("/nick {}\n", rng.pick(NICKS)).into_bytes(), 0, None)
                    } else {
                        let seq = c.typed;
                        (format!("m{i}.{seq} hi\n").into_bytes(), 0, Some(seq))
                    });
                    c.next_at = now + Duration::from_millis(rng.below(800));
                }
                RunPhase::Settling { .. } if now >= c.who_asked_at + Duration::from_millis(700) => {
                    c.who_asked_at = now;
                    c.sending = Some((b"/who\n".to_vec(), 0, None));
                }
                RunPhase::Probing { .. } if !c.probe_sent => {
                    c.probe_sent = true;
                    let seq = spec.lines;
                    c.sending = Some((format!("m{i}.{seq} probe\n").into_bytes(), 0, Some(seq)));
                }
                _ => {}
            }
        }
        if let Some((line, sent, seq)) = &mut c.sending {
            if let Ok(n) = net.client_send(conn, &line[*sent..]) {
                *sent += n;
            }
            if *sent == line.len() {
                if let Some(seq) = seq {
                    c.typed = c.typed.max(*seq + 1);
                }
                c.sending = None;
            }
        }
        // Read, unless pausing.
        if spec.stop_and_go && now >= c.paused_until && self.rng.chance(20) {
            c.paused_until = now + Duration::from_millis(self.rng.range(10, 2000) as u64);
        }
        if now < c.paused_until && phase == RunPhase::Running {
            return;
        }
        let mut buf = Vec::new();
        let ended = loop {
            let max = self.rng.pick(&[1, 100, 4096, 65536]);
            match net.client_recv(conn, &mut buf, max) {
                ClientRead::Data(_) => continue,
                ClientRead::WouldBlock => break false,
                ClientRead::Eof | ClientRead::Reset => break true,
            }
        };
        c.inbuf.extend_from_slice(&buf);
        self.take_lines(i);
        let c = &mut self.clients[i];
        if ended {
            assert!(
                signalled || c.refused_name,
                "client {i}: the server cut the connection ({})",
                self.servers[spec.server].net().describe(conn)
            );
            if !signalled {
                // Turned away for want of a provable name: try again later.
                c.turned_away += 1;
                c.refused_name = false;
                c.conn = None;
                c.nick = None;
                c.sending = None;
                c.link_lost = false;
                c.inbuf.clear();
                c.connect_at = now + Duration::from_millis(500);
            }
        }
    }

    /// Check and take the whole lines client `i` received.
    fn take_lines(&mut self, i: usize) {
        while let Some(end) = self.clients[i].inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.clients[i].inbuf.drain(..=end).collect();
            check_output_line(&line, self.scenario.config.max_line + 200);
            let text = String::from_utf8(line).expect("checked");
            let text = text.trim_end_matches('\n');
            self.handle_line(i, text);
        }
    }

    fn handle_line(&mut self, i: usize, text: &str) {
        let typed: Vec<usize> = self.clients.iter().map(|c| c.typed).collect();
        let c = &mut self.clients[i];
        if let Some(said) = text.strip_prefix('<') {
            let (_, body) = said
                .split_once("> ")
                .unwrap_or_else(|| panic!("client {i}: malformed line {text:?}"));
            let (who, rest) = body
                .strip_prefix('m')
                .and_then(|b| b.split_once('.'))
                .unwrap_or_else(|| panic!("client {i}: a line nobody typed: {text:?}"));
            let who: usize = who.parse().expect("a sender number");
            let seq: usize = rest
                .split(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("a sequence number");
            assert!(
                who < typed.len() && who != i,
                "client {i}: a line from {who}: {text:?}"
            );
            assert!(
                seq < typed[who],
                "client {i}: line {seq} of client {who}, which has typed only {}: {text:?}",
                typed[who]
            );
            if let Some(last) = c.last_from[who] {
                assert!(
                    seq > last,
                    "per-sender order: client {i} got line {seq} of client {who} after line {last}"
                );
            }
            c.last_from[who] = Some(seq);
            return;
        }
        let notice = text
            .strip_prefix("* ")
            .unwrap_or_else(|| panic!("client {i}: unexpected line {text:?}"));
        if let Some(rest) = text.strip_prefix(WELCOME_HEAD) {
            let nick = rest.split(' ').next().expect("a name");
            assert!(c.nick.is_none(), "client {i}: welcomed twice: {text:?}");
            c.nick = Some(nick.to_string());
        } else if notice.starts_with("cluster link lost") {
            c.link_lost = true;
        } else if notice == "cluster link restored" {
            c.link_lost = false;
        } else if let Some(list) = notice.strip_prefix("users in #lobby: ") {
            c.who_answer = Some(list.split(", ").map(str::to_string).collect());
        } else if notice.starts_with("error: no nickname can be proven free") {
            c.refused_name = true;
        } else if let Some((old, new)) = notice.split_once(" is now known as ") {
            if c.nick.as_deref() == Some(old) {
                c.nick = Some(new.to_string());
            }
        }
    }

    fn summary(&self) -> String {
        let mut out = format!(
            "virtual time {:?}, Redis up {}, {} connection(s) to it, faults {:?}\n",
            self.now(),
            self.redis.is_up(),
            self.redis.connections(),
            self.redis.faults
        );
        for (i, state) in self.states().iter().enumerate() {
            out.push_str(&format!("server {i}: {state:?}\n"));
        }
        out.push_str(&self.redis.describe());
        for c in &self.clients {
            out.push_str(&format!(
                "client {} on server {}: nick {:?}, typed {}, link lost {}, who {:?}, last {:?}\n",
                c.who,
                c.spec.expect("set").server,
                c.nick,
                c.typed,
                c.link_lost,
                c.who_answer,
                c.last_from
            ));
            if let Some(conn) = c.conn {
                let net = self.servers[c.spec.expect("set").server].net();
                out.push_str(&format!(
                    "  sending {:?}, unread {:?}; {}\n",
                    c.sending
                        .as_ref()
                        .map(|(l, n, _)| (String::from_utf8_lossy(l), n)),
                    String::from_utf8_lossy(&c.inbuf),
                    net.describe(conn)
                ));
            }
        }
        out
    }
}
