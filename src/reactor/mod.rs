//! The reactor: the one thread, the one `mio::Poll`, and the only server code
//! that calls mio.
//!
//! Every socket the server has (TCP listeners, TCP connections, UDP sockets)
//! lives in one [`slab::Slab`]; a source's slab key is its mio [`Token`]. One
//! turn of the loop goes:
//!
//! 1. **wait** in `poll` until an event, or the nearest timer deadline, or not
//!    at all if some source is *still ready* (see 3);
//! 2. **dispatch** each event to its slab entry: accept, read or write until
//!    the socket would block, because mio's readiness is *edge-triggered*: an
//!    event reports a change ("became readable") once, not a state, so bytes
//!    left unread get no second event. Each source has a *budget* per turn
//!    (bytes, accepts, datagrams) so that one busy peer cannot starve the
//!    rest. Bytes read go to the entry's *sans-IO* state machine
//!    ([`crate::protocol`]): protocol logic that never touches a socket or a
//!    clock, bytes and `now` in, bytes and effects out;
//! 3. run the **still-ready** sources: those that stopped on their budget
//!    with work left (or whose paused input resumed), which the kernel will
//!    not report again, so the loop keeps them on a list of its own and does
//!    not sleep while it is not empty; then due **timers** (idle timeouts,
//!    lingering closes, accept back-off, the Redis link's, stats, the end
//!    of the shutdown grace: all in one ordered set, [`timers::Timers`]);
//! 4. **flush** every connection that got new output this turn: write first,
//!    and ask for WRITABLE only if bytes remain (Redis's "handle clients with
//!    pending writes before sleeping"); a connection's *interest*, what
//!    epoll watches it for, is a function of its state;
//! 5. **sweep**: connections marked closing during the turn leave the slab
//!    only now, after the whole batch, so an event of a closed connection can
//!    never reach a new connection that reused its slot.
//!
//! Errors from one peer close that peer only (logged at debug); only a
//! failure of `poll` itself ends the loop. SIGINT and SIGTERM arrive as
//! readable events on a signal-hook-mio source and start a graceful drain.
//!
//! # Files
//!
//! This file holds the [`Server`], one turn of the loop, dispatch, signals,
//! shutdown and timers. The handlers are `impl Server` blocks of their own,
//! one per kind of source:
//!
//! - `accept.rs`: listeners (accept budget, `--max-conns`, EMFILE back-off);
//! - `tcp.rs`: connections (read, flush, interest, deferred close, sweep);
//! - `outbox.rs`: how the chat hub's output reaches the connections (and
//!   the other servers, with `--cluster`);
//! - `redis.rs`: the link to Redis of `--cluster`, one more source;
//! - `udp.rs`: UDP echo sockets;
//! - `source.rs`: what a slab entry holds ([`Source`]); plus
//!   [`timers`], [`stats`] and [`mod@trace`].
//!
//! Every term in italics is in the repository's `docs/glossary.md`, and
//! `docs/build-your-own.md` builds this loop up from a blocking server in
//! five runnable steps (`examples/`).

mod accept;
pub mod audit;
mod outbox;
mod redis;
mod relay;
mod source;
pub mod stats;
mod tcp;
#[cfg(test)]
mod tests;
pub mod timers;
pub mod trace;
mod udp;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{info, trace};
use mio::{Interest, Token};
use slab::Slab;

use crate::buffer::BufferPool;
use crate::config::{self, ServeConfig, Service, TcpService};
use crate::net::mio::MioNet;
use crate::net::{interrupted, EventList, FdBudget, Net, Readiness, SIGNAL_TOKEN};
use crate::protocol::chat::delivery::Delivery;
use crate::protocol::chat::{ChatLimits, Hub};
use crate::protocol::udp_echo::{UdpEcho, UdpLimits};
pub use redis::ClusterState;
use relay::RelayPool;
use source::{CloseReason, Entry, Listener, Proto};
pub use source::{Source, UdpEndpoint};
use stats::Stats;
use timers::{LoopTimer, Timers, Wake};
use trace::{EventTrace, Moved, Ready};

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerPhase {
    /// Accepting and serving.
    Running,
    /// A signal came: no more accepting or reading; flushing until the
    /// deadline or until every connection is gone.
    Draining { deadline: Instant },
}

/// Why a write loop stopped: [`write_out`](tcp::write_out) for queued
/// output, [`drain_relay`](relay::drain_relay) for a relay's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteStop {
    /// Nothing is left to write.
    Drained,
    /// The socket's send buffer is full (a partial write or `WouldBlock`):
    /// epoll raises WRITABLE when it has room again.
    SocketFull,
    /// The turn's write budget is spent while the socket still took every
    /// byte offered. No event will ever come for this: the send buffer never
    /// filled, so edge-triggered epoll has no edge to report. The caller
    /// must put the connection on the still-ready list.
    Budget,
}

/// The server: the network (the poll instance and the sockets' system
/// calls: mio in production, see [`Net`]), the slab of sources and everything
/// the loop owns. Fields are grouped by what reads and writes them.
pub struct Server<N: Net = MioNet> {
    net: N,
    sources: Slab<Entry<N>>,
    /// Slab keys of the listeners and UDP sockets, in the order given.
    endpoints: Vec<usize>,
    config: ServeConfig,
    /// `--max-conns`, clamped below the file descriptor limit.
    max_conns: usize,
    hub: Hub,
    pool: BufferPool,
    /// The one read buffer every connection and UDP socket reads into.
    read_buf: Vec<u8>,
    /// The pipes echo streams borrow to pass their bytes through the kernel.
    relays: RelayPool<N::Relay>,
    next_serial: u64,
    /// Sources that ran out of budget with work left: (key, serial).
    still_ready: Vec<(usize, u64)>,
    /// The other half of `still_ready`'s double buffer: during a turn, the
    /// sources that ran out of budget in the turn before, to retry now.
    retry_scratch: Vec<(usize, u64)>,
    /// Connections with new output to write before the next poll.
    flush_list: Vec<usize>,
    /// Connections marked closing this turn, removed at the sweep.
    closing: Vec<usize>,
    /// The chat output policy (`--out-limit`, too slow), applied to the
    /// hub's effects.
    delivery: Delivery,
    /// Pending output of all connections together, as `--max-pending`
    /// counts it (the sum of every connection's
    /// [`Conn::pending_cost`](source::Conn::pending_cost)).
    pending_total: usize,
    /// Connections whose reading paused at `--max-pending`: (key, serial).
    paused_for_total: Vec<(usize, u64)>,
    /// Every deadline: each source's (idle checks, lingering closes, accept
    /// back-offs, the Redis link's), the next stats line, the shutdown grace.
    timers: Timers,
    phase: ServerPhase,
    stats: Stats,
    trace: Option<EventTrace>,
    /// The time at the start of this turn: one clock read per turn.
    now: Instant,
    /// The link to the other servers (`--cluster`), if any.
    cluster: Option<redis::ClusterLink>,
}

impl Server<MioNet> {
    /// Bind every socket of `config` and register it. A failure names the
    /// service and the address, and nothing is served.
    pub fn bind(config: ServeConfig) -> io::Result<Server> {
        Server::with_net(config, MioNet::new()?)
    }
}

impl<N: Net> Server<N> {
    /// [`Server::bind`] on any [`Net`]: the simulation passes its own.
    pub fn with_net(config: ServeConfig, mut net: N) -> io::Result<Server<N>> {
        let mut sources = Slab::new();
        let mut endpoints = Vec::new();
        let mut next_serial = 0;
        for spec in &config.listeners {
            let fail = |e: io::Error| {
                io::Error::new(
                    e.kind(),
                    format!("cannot bind {} {}: {e}", spec.service.name(), spec.addr),
                )
            };
            let addr = config::resolve(&spec.addr).map_err(fail)?;
            let entry = sources.vacant_entry();
            let token = Token(entry.key());
            let mut listener = |service| -> io::Result<Source<N>> {
                let socket = net.listen_tcp(addr, token).map_err(fail)?;
                Ok(Source::Listener(Listener {
                    socket,
                    service,
                    backoff_until: None,
                }))
            };
            let source = match spec.service {
                Service::TcpEcho => listener(TcpService::Echo)?,
                Service::Chat => listener(TcpService::Chat)?,
                Service::Daytime => listener(TcpService::Daytime)?,
                Service::UdpEcho => {
                    let socket = net.bind_udp(addr, token).map_err(fail)?;
                    Source::Udp(Box::new(UdpEndpoint {
                        socket,
                        echo: UdpEcho::new(UdpLimits {
                            max_datagrams: config::UDP_QUEUE_DATAGRAMS,
                            max_bytes: config::UDP_QUEUE_BYTES,
                        }),
                        interest: Interest::READABLE,
                    }))
                }
            };
            endpoints.push(entry.key());
            entry.insert(Entry {
                serial: next_serial,
                source,
            });
            next_serial += 1;
        }
        net.register_signals()?;
        let FdBudget { max_conns, relays } = net.fd_budget(config.max_conns, endpoints.len());
        let trace = match &config.trace_events {
            Some(path) => Some(EventTrace::create(path)?),
            None => None,
        };
        let now = net.now();
        let mut timers = Timers::new();
        if let Some(every) = config.stats_interval {
            timers.schedule_loop(now + every, LoopTimer::Stats);
        }
        let cluster = match &config.cluster {
            Some(url) => Some(Server::cluster_link(
                &mut sources,
                &mut next_serial,
                url,
                now,
                net.server_id(),
            )?),
            None => None,
        };
        let limits = ChatLimits {
            max_line: config.max_line,
        };
        let hub = match cluster {
            Some(_) => Hub::with_cluster(limits),
            None => Hub::new(limits),
        };
        Ok(Server {
            net,
            sources,
            endpoints,
            max_conns,
            hub,
            pool: BufferPool::new(),
            read_buf: vec![0; config::READ_BUF_SIZE],
            relays: RelayPool::new(relays),
            next_serial,
            still_ready: Vec::new(),
            retry_scratch: Vec::new(),
            flush_list: Vec::new(),
            closing: Vec::new(),
            delivery: Delivery::new(config.out_limit),
            pending_total: 0,
            paused_for_total: Vec::new(),
            timers,
            phase: ServerPhase::Running,
            stats: Stats::default(),
            trace,
            now,
            config,
            cluster,
        })
    }

    /// The service and real address (port 0 resolved) of every socket, in the
    /// order given.
    pub fn local_addrs(&self) -> Vec<(Service, SocketAddr)> {
        self.endpoints
            .iter()
            .filter_map(|&key| match &self.sources[key].source {
                Source::Listener(l) => {
                    Some((l.service.service(), self.net.listener_addr(&l.socket).ok()?))
                }
                Source::Udp(u) => Some((Service::UdpEcho, self.net.udp_addr(&u.socket).ok()?)),
                Source::Conn(_) | Source::Redis(_) => None,
            })
            .collect()
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Run the loop until a signal has been handled and the drain is over.
    pub fn run(&mut self) -> io::Result<()> {
        info!(
            "serving {} socket(s); max-conns {}, max-line {}, out-limit {}",
            self.endpoints.len(),
            self.max_conns,
            self.config.max_line,
            self.config.out_limit
        );
        let mut events = N::Events::with_capacity(1024);
        loop {
            self.turn(&mut events, None)?;
            if self.drain_finished() {
                break;
            }
        }
        info!("stats at shutdown: {}", self.stats);
        if let Some(t) = self.trace.as_mut() {
            t.finish()?;
        }
        info!("shut down");
        Ok(())
    }

    /// One turn of the loop: wait, dispatch, retry, timers, flush, sweep.
    /// `max_wait` caps the wait (tests drive the loop a turn at a time and
    /// must never block forever); the server itself passes `None`.
    pub fn turn(&mut self, events: &mut N::Events, max_wait: Option<Duration>) -> io::Result<()> {
        let timeout = match (self.poll_timeout(), max_wait) {
            (Some(t), Some(cap)) => Some(t.min(cap)),
            (t, cap) => t.or(cap),
        };
        let waited_from = self.trace_clock();
        match self.net.poll(events, timeout) {
            Ok(()) => {}
            // A signal landed while we slept: just loop (the signal itself
            // arrives as an event through signal-hook's pipe).
            Err(e) if interrupted(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.now = self.net.now();
        // The sources to retry this turn are those that ran out of budget
        // before this poll; any that run out during this turn wait for the
        // next, so a budget is spent at most once per source per turn
        // (except a source that also has a fresh event). Swapping two Vecs
        // keeps both allocations alive: this costs nothing per turn.
        std::mem::swap(&mut self.retry_scratch, &mut self.still_ready);
        if let (Some(t), Some(from)) = (self.trace.as_mut(), waited_from) {
            t.poll_wait(from, self.now, events.ready().count(), timeout);
        }
        // Counting the batch is a pass over it: only when tracing.
        let batch = if self.trace.is_some() {
            events.ready().count()
        } else {
            0
        };
        self.step("events", batch, |s| {
            for (token, readiness) in events.ready() {
                s.dispatch(token, readiness);
            }
        });
        self.step(
            "still-ready",
            self.retry_scratch.len(),
            Server::retry_still_ready,
        );
        self.fire_timers();
        self.step("flush", self.flush_list.len(), Server::flush_pending);
        // What this turn's chat asked of the other servers goes to Redis.
        self.pump_link();
        self.step("max-pending", 0, Server::settle_max_pending);
        self.stats.pending_bytes = self.pending_total as u64;
        self.stats.pending_peak = self.stats.pending_peak.max(self.stats.pending_bytes);
        self.stats.timers = self.timers.len() as u64;
        if self.cluster.is_some() {
            self.stats.bus = self.bus_stats();
        }
        self.step("sweep", self.closing.len(), Server::sweep);
        self.stats.relays_open = self.relays.open() as u64;
        self.stats.relays_peak = self.stats.relays_peak.max(self.stats.relays_open);
        Ok(())
    }

    /// Run one step of the turn. With `--trace-events`, a step that had
    /// `items` to handle is recorded as a slice on the loop's track; without,
    /// this is just `run(self)`.
    fn step(&mut self, name: &str, items: usize, run: impl FnOnce(&mut Server<N>)) {
        let from = self.trace_clock();
        run(self);
        if let (Some(t), Some(from)) = (self.trace.as_mut(), from) {
            if items > 0 {
                t.phase(name, from, Instant::now(), items);
            }
        }
    }

    /// The time now if tracing, so that no clock is read when it is off.
    fn trace_clock(&self) -> Option<Instant> {
        self.trace.as_ref().map(|_| Instant::now())
    }

    /// How long `poll` may sleep: not at all while some source still has
    /// work, else until the nearest deadline, else forever.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.still_ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let nearest = self.timers.next()?;
        // Round up to the next millisecond: epoll's timeout is in whole
        // milliseconds, and rounding down would wake us just before the
        // deadline, to find nothing due and sleep 0 ms again.
        let wait = nearest.saturating_duration_since(self.net.now());
        Some(Duration::from_millis(wait.as_micros().div_ceil(1000) as u64))
    }

    /// Route one event to its source.
    fn dispatch(&mut self, token: Token, ready: Readiness) {
        if token == SIGNAL_TOKEN {
            self.handle_signals();
            return;
        }
        let key = token.0;
        let Some(entry) = self.sources.get(key) else {
            // Only possible for a token we never handed out: the sweep frees
            // slots after the batch, and epoll forgets a closed socket.
            trace!("event token={key} for no source: ignored");
            return;
        };
        trace!(
            "event token={key} kind={} readable={} writable={} closed={}",
            entry.source.kind(),
            ready.readable,
            ready.writable,
            ready.read_closed
        );
        let kind = entry.source.kind();
        let traced = self.trace_clock().map(|at| (at, Moved::of(&self.stats)));
        self.handle_ready(key, ready);
        if let (Some(t), Some((from, before))) = (self.trace.as_mut(), traced) {
            let ready = Ready {
                readable: ready.readable,
                writable: ready.writable,
                closed: ready.read_closed,
            };
            let moved = Moved::of(&self.stats).since(before);
            t.dispatch(from, Instant::now(), key, kind, ready, moved);
        }
    }

    /// Do what one event on slab entry `key` asks for.
    fn handle_ready(&mut self, key: usize, ready: Readiness) {
        match &self.sources[key].source {
            Source::Listener(_) => self.accept_ready(key),
            Source::Udp(_) => self.udp_ready(key, ready),
            Source::Redis(_) => self.redis_ready(key, ready),
            Source::Conn(conn) => {
                if conn.closing.is_some() {
                    // The stale-event trap: this connection was closed earlier
                    // in this batch. Its slot is still ours until the sweep,
                    // so the event cannot reach anybody else; drop it here.
                    trace!("token={key}: connection is closing, event ignored");
                    return;
                }
                if ready.readable || ready.read_closed {
                    self.conn_read(key, ready.read_closed);
                }
                if ready.writable {
                    self.queue_flush(key);
                }
            }
        }
    }

    // ----- signals and shutdown ------------------------------------------

    fn handle_signals(&mut self) {
        let mut received = Vec::new();
        self.net.take_signals(&mut received);
        for signal in received {
            if let Some(t) = self.trace.as_mut() {
                t.signal(signal);
            }
            match self.phase {
                ServerPhase::Running => {
                    info!(
                        "signal {signal}: shutting down (grace {:?})",
                        self.config.shutdown_grace
                    );
                    self.begin_drain();
                }
                ServerPhase::Draining { .. } => {
                    info!("signal {signal} during shutdown: ending the grace now");
                    self.set_grace_deadline(self.now);
                }
            }
        }
    }

    /// Stop accepting and reading; tell chat clients; flush until the grace
    /// deadline.
    fn begin_drain(&mut self) {
        self.set_grace_deadline(self.now + self.config.shutdown_grace);
        // Listeners go at once: closing them makes the kernel refuse new
        // connections instead of queueing them in a backlog nobody accepts.
        for &key in &self.endpoints {
            let serial = self.sources[key].serial;
            if let Source::Listener(l) = &mut self.sources[key].source {
                let _ = self.net.deregister_listener(&mut l.socket);
                if let Some(when) = l.backoff_until.take() {
                    self.timers.cancel(when, key, serial);
                }
            }
        }
        self.endpoints
            .retain(|&key| !matches!(self.sources[key].source, Source::Listener(_)));
        for key in self.sources.iter().map(|(k, _)| k).collect::<Vec<_>>() {
            if matches!(self.sources[key].source, Source::Listener(_)) {
                self.sources.remove(key);
            }
        }
        self.hub.handle_shutdown();
        self.deliver_chat();
        let keys: Vec<usize> = self.sources.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Source::Conn(conn) = &mut self.sources[key].source {
                match &mut conn.proto {
                    // Treat it as end of input: echo what is pending, then close.
                    Proto::Echo(e) => e.handle_eof(),
                    Proto::Chat(c) => c.finishing = true,
                    // Its one line is all it has to say, pending or not.
                    Proto::Daytime(_) => {}
                }
                self.queue_flush(key);
            }
        }
    }

    /// Draining, with the grace over at `deadline` (which wakes the loop
    /// through the timers, replacing any earlier grace deadline).
    fn set_grace_deadline(&mut self, deadline: Instant) {
        if let ServerPhase::Draining { deadline: old } = self.phase {
            self.timers.cancel_loop(old, LoopTimer::GraceOver);
        }
        self.timers.schedule_loop(deadline, LoopTimer::GraceOver);
        self.phase = ServerPhase::Draining { deadline };
    }

    fn drain_finished(&mut self) -> bool {
        match self.phase {
            ServerPhase::Running => false,
            ServerPhase::Draining { deadline } => {
                if self.stats.conns_open == 0 && self.cluster_flushed() {
                    return true;
                }
                if self.now >= deadline {
                    info!(
                        "shutdown grace over: closing {} connection(s) with output pending",
                        self.stats.conns_open
                    );
                    let keys: Vec<usize> = self.sources.iter().map(|(k, _)| k).collect();
                    for key in keys {
                        self.close_conn(key, CloseReason::Shutdown);
                    }
                    self.sweep();
                    return true;
                }
                false
            }
        }
    }

    // ----- timers ------------------------------------------------------

    /// Dispatch again every source that ran out of budget last turn. Those
    /// that run out again re-enter `still_ready`, for the next turn.
    fn retry_still_ready(&mut self) {
        if self.retry_scratch.is_empty() {
            return;
        }
        let mut retry = std::mem::take(&mut self.retry_scratch);
        for &(key, serial) in &retry {
            if self.sources.get(key).is_some_and(|e| e.serial == serial) {
                self.dispatch(Token(key), Readiness::RETRY);
            }
        }
        retry.clear();
        self.retry_scratch = retry;
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        let mut link_due = false;
        while let Some(wake) = self.timers.pop_due(now) {
            let (key, serial) = match wake {
                Wake::Source { key, serial } => (key, serial),
                Wake::Loop(LoopTimer::Stats) => {
                    self.log_stats(now);
                    continue;
                }
                // Nothing to do here: `drain_finished`, after this turn,
                // sees that the grace is over. The deadline only had to
                // wake the loop.
                Wake::Loop(LoopTimer::GraceOver) => continue,
            };
            let Some(entry) = self.sources.get_mut(key) else {
                continue;
            };
            if entry.serial != serial {
                continue; // cannot happen: closing a source cancels its deadline
            }
            match &mut entry.source {
                Source::Listener(l) => {
                    l.backoff_until = None;
                    trace!("token={key}: accept back-off over");
                    self.still_ready.push((key, serial));
                }
                Source::Conn(conn) => {
                    conn.deadline = None;
                    self.conn_deadline(key, serial);
                }
                Source::Udp(_) => {}
                // After the loop: the link's next deadline could be due
                // already, and must wait for the next turn.
                Source::Redis(_) => link_due = true,
            }
        }
        if link_due {
            self.redis_timer();
        }
    }

    /// The stats line is due: log it and schedule the next one.
    fn log_stats(&mut self, now: Instant) {
        info!("stats: {}", self.stats);
        if let Some(every) = self.config.stats_interval {
            self.timers.schedule_loop(now + every, LoopTimer::Stats);
        }
    }
}
