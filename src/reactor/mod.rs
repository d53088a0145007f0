//! The reactor: the one thread, the one `mio::Poll`, and the only server code
//! that calls mio.
//!
//! Every socket the server has (TCP listeners, TCP connections, UDP sockets)
//! lives in one [`slab::Slab`]; a source's slab key is its mio [`Token`]. One
//! turn of the loop goes:
//!
//! 1. **wait** in `poll` until an event, or the nearest timer deadline, or not
//!    at all if some source still had work when its budget ran out;
//! 2. **dispatch** each event to its slab entry: accept, read or write until
//!    the socket would block (edge-triggered readiness only reports changes),
//!    within a per-event budget so that one busy peer cannot starve the rest;
//!    bytes read go to the entry's sans-IO state machine
//!    ([`crate::protocol`]);
//! 3. run **still-ready** sources (those that ran out of budget last turn)
//!    and due **timers** (idle timeouts, accept back-off, stats);
//! 4. **flush** every connection that got new output this turn: write first,
//!    and ask for WRITABLE only if bytes remain (Redis's "handle clients with
//!    pending writes before sleeping");
//! 5. **sweep**: connections marked closing during the turn leave the slab
//!    only now, after the whole batch, so an event of a closed connection can
//!    never reach a new connection that reused its slot.
//!
//! Errors from one peer close that peer only (logged at debug); only a
//! failure of `poll` itself ends the loop. SIGINT and SIGTERM arrive as
//! readable events on a signal-hook-mio source and start a graceful drain.

mod source;
pub mod stats;
#[cfg(test)]
mod tests;
pub mod timers;
pub mod trace;

use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, trace, warn};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::buffer::{BufferPool, ChunkQueue, SharedLine};
use crate::cli::ServeArgs;
use crate::config::{self, ServeConfig, Service};
use crate::net::{interrupted, read_once, would_block, write_once, ReadOutcome, WriteOutcome};
use crate::protocol::chat::{self, ChatLimits, ClientId, Hub, LeaveReason, Outbox};
use crate::protocol::echo::EchoSession;
use crate::protocol::udp_echo::{Disposition, UdpEcho, UdpLimits};
use source::{key_of, serial_matches, ChatConn, CloseReason, Conn, Entry, Listener, Proto};
pub use source::{Source, UdpEndpoint};
use stats::Stats;
use timers::IdleTimers;
use trace::{EventTrace, Moved, Ready};

/// The token of the signal source. Slab keys count up from 0, so the top of
/// the token space never collides with one.
const SIGNAL_TOKEN: Token = Token(usize::MAX);

/// Run `sockloop serve`: bind every socket, print the `listening` lines, and
/// run the loop until a signal and the drain that follows.
pub fn serve(args: &ServeArgs) -> io::Result<()> {
    let config = ServeConfig::from_args(args);
    let mut server = Server::bind(config)?;
    {
        let mut out = io::stdout().lock();
        for (service, addr) in server.local_addrs() {
            writeln!(out, "listening {} {}", service.name(), addr)?;
        }
        out.flush()?;
    }
    server.run()
}

/// Readiness of one event, copied out of mio's `Event` so that still-ready
/// sources can be dispatched through the same code with a synthetic one.
#[derive(Debug, Clone, Copy)]
struct Readiness {
    readable: bool,
    writable: bool,
    /// The peer shut down its sending side (FIN seen) or the socket failed:
    /// a short read then does not prove the socket is drained.
    read_closed: bool,
}

impl Readiness {
    fn of(event: &Event) -> Readiness {
        Readiness {
            readable: event.is_readable(),
            writable: event.is_writable(),
            read_closed: event.is_read_closed() || event.is_error(),
        }
    }

    /// For a source that still had work: try everything, assume nothing.
    const RETRY: Readiness = Readiness {
        readable: true,
        writable: true,
        read_closed: true,
    };
}

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepting and serving.
    Running,
    /// A signal came: no more accepting or reading; flushing until the
    /// deadline or until every connection is gone.
    Draining { deadline: Instant },
}

/// The server: the poll instance, the slab of sources and everything the loop
/// owns. Fields are grouped by what reads and writes them.
pub struct Server {
    poll: Poll,
    sources: Slab<Entry>,
    /// Slab keys of the listeners and UDP sockets, in the order given.
    endpoints: Vec<usize>,
    signals: Signals,
    config: ServeConfig,
    /// `--max-conns`, clamped below the file descriptor limit.
    max_conns: usize,
    hub: Hub,
    pool: BufferPool,
    /// The one read buffer every connection and UDP socket reads into.
    read_buf: Vec<u8>,
    next_serial: u64,
    /// Sources that ran out of budget with work left: (key, serial).
    still_ready: Vec<(usize, u64)>,
    /// The other half of `still_ready`'s double buffer (see `retry_still_ready`).
    retry_scratch: Vec<(usize, u64)>,
    /// Connections with new output to write before the next poll.
    flush_list: Vec<usize>,
    /// Connections marked closing this turn, removed at the sweep.
    closing: Vec<usize>,
    /// Chat clients whose output passed `--out-limit` during a hub call.
    too_slow: Vec<ClientId>,
    idle: IdleTimers,
    next_stats: Option<Instant>,
    phase: Phase,
    stats: Stats,
    trace: Option<EventTrace>,
    /// The time at the start of this turn: one clock read per turn.
    now: Instant,
}

impl Server {
    /// Bind every socket of `config` and register it. A failure names the
    /// service and the address, and nothing is served.
    pub fn bind(config: ServeConfig) -> io::Result<Server> {
        let poll = Poll::new()?;
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
            let source = match spec.service {
                Service::TcpEcho | Service::Chat => {
                    let mut socket = bind_listener(addr).map_err(fail)?;
                    poll.registry()
                        .register(&mut socket, token, Interest::READABLE)?;
                    Source::Listener(Listener {
                        socket,
                        service: spec.service,
                        backoff_until: None,
                    })
                }
                Service::UdpEcho => {
                    let mut socket = UdpSocket::bind(addr).map_err(fail)?;
                    poll.registry()
                        .register(&mut socket, token, Interest::READABLE)?;
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
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        let max_conns = clamp_max_conns(config.max_conns, endpoints.len());
        let trace = match &config.trace_events {
            Some(path) => Some(EventTrace::create(path)?),
            None => None,
        };
        let now = Instant::now();
        Ok(Server {
            poll,
            sources,
            endpoints,
            signals,
            max_conns,
            hub: Hub::new(ChatLimits {
                max_line: config.max_line,
            }),
            pool: BufferPool::new(),
            read_buf: vec![0; config::READ_BUF_SIZE],
            next_serial,
            still_ready: Vec::new(),
            retry_scratch: Vec::new(),
            flush_list: Vec::new(),
            closing: Vec::new(),
            too_slow: Vec::new(),
            idle: IdleTimers::new(),
            next_stats: config.stats_interval.map(|i| now + i),
            phase: Phase::Running,
            stats: Stats::default(),
            trace,
            now,
            config,
        })
    }

    /// The service and real address (port 0 resolved) of every socket, in the
    /// order given.
    pub fn local_addrs(&self) -> Vec<(Service, SocketAddr)> {
        self.endpoints
            .iter()
            .filter_map(|&key| match &self.sources[key].source {
                Source::Listener(l) => Some((l.service, l.socket.local_addr().ok()?)),
                Source::Udp(u) => Some((Service::UdpEcho, u.socket.local_addr().ok()?)),
                Source::Conn(_) => None,
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
        let mut events = Events::with_capacity(1024);
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
    pub fn turn(&mut self, events: &mut Events, max_wait: Option<Duration>) -> io::Result<()> {
        let timeout = match (self.poll_timeout(), max_wait) {
            (Some(t), Some(cap)) => Some(t.min(cap)),
            (t, cap) => t.or(cap),
        };
        let waited_from = self.trace_clock();
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            // A signal landed while we slept: just loop (the signal itself
            // arrives as an event through signal-hook's pipe).
            Err(e) if interrupted(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.now = Instant::now();
        if let (Some(t), Some(from)) = (self.trace.as_mut(), waited_from) {
            t.poll_wait(from, self.now, events.iter().count(), timeout);
        }
        // Counting the batch is a pass over it: only when tracing.
        let batch = if self.trace.is_some() {
            events.iter().count()
        } else {
            0
        };
        self.step("events", batch, |s| {
            for event in events.iter() {
                s.dispatch(event.token(), Readiness::of(event));
            }
        });
        self.step(
            "still-ready",
            self.still_ready.len(),
            Server::retry_still_ready,
        );
        self.fire_timers();
        self.step("flush", self.flush_list.len(), Server::flush_pending);
        self.step("sweep", self.closing.len(), Server::sweep);
        Ok(())
    }

    /// Run one step of the turn. With `--trace-events`, a step that had
    /// `items` to handle is recorded as a slice on the loop's track; without,
    /// this is just `run(self)`.
    fn step(&mut self, name: &str, items: usize, run: impl FnOnce(&mut Server)) {
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
        let listener_backoffs =
            self.endpoints
                .iter()
                .filter_map(|&k| match &self.sources[k].source {
                    Source::Listener(l) => l.backoff_until,
                    _ => None,
                });
        let drain_deadline = match self.phase {
            Phase::Draining { deadline } => Some(deadline),
            Phase::Running => None,
        };
        let nearest = [self.idle.next(), self.next_stats, drain_deadline]
            .into_iter()
            .flatten()
            .chain(listener_backoffs)
            .min()?;
        // Round up to the next millisecond: epoll's timeout is in whole
        // milliseconds, and rounding down would wake us just before the
        // deadline, to find nothing due and sleep 0 ms again.
        let wait = nearest.saturating_duration_since(Instant::now());
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
        received.extend(self.signals.pending());
        for signal in received {
            if let Some(t) = self.trace.as_mut() {
                t.signal(signal);
            }
            match self.phase {
                Phase::Running => {
                    info!(
                        "signal {signal}: shutting down (grace {:?})",
                        self.config.shutdown_grace
                    );
                    self.begin_drain();
                }
                Phase::Draining { .. } => {
                    info!("signal {signal} during shutdown: ending the grace now");
                    self.phase = Phase::Draining { deadline: self.now };
                }
            }
        }
    }

    /// Stop accepting and reading; tell chat clients; flush until the grace
    /// deadline.
    fn begin_drain(&mut self) {
        self.phase = Phase::Draining {
            deadline: self.now + self.config.shutdown_grace,
        };
        // Listeners go at once: closing them makes the kernel refuse new
        // connections instead of queueing them in a backlog nobody accepts.
        for &key in &self.endpoints {
            if let Source::Listener(l) = &mut self.sources[key].source {
                let _ = self.poll.registry().deregister(&mut l.socket);
            }
        }
        self.endpoints
            .retain(|&key| !matches!(self.sources[key].source, Source::Listener(_)));
        for key in self.sources.iter().map(|(k, _)| k).collect::<Vec<_>>() {
            if matches!(self.sources[key].source, Source::Listener(_)) {
                self.sources.remove(key);
            }
        }
        self.with_hub(|hub, _, out| hub.handle_shutdown(out));
        let keys: Vec<usize> = self.sources.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Source::Conn(conn) = &mut self.sources[key].source {
                match &mut conn.proto {
                    // Treat it as end of input: echo what is pending, then close.
                    Proto::Echo(e) => e.handle_eof(),
                    Proto::Chat(c) => c.finishing = true,
                }
                self.queue_flush(key);
            }
        }
        self.settle_too_slow();
    }

    fn drain_finished(&mut self) -> bool {
        match self.phase {
            Phase::Running => false,
            Phase::Draining { deadline } => {
                if self.stats.conns_open == 0 {
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

    // ----- accepting -----------------------------------------------------

    /// Accept until the listener would block, within the accept budget.
    fn accept_ready(&mut self, key: usize) {
        if self.phase != Phase::Running {
            return;
        }
        for _ in 0..config::ACCEPT_BUDGET_PER_TURN {
            let Source::Listener(listener) = &mut self.sources[key].source else {
                return;
            };
            if listener.backoff_until.is_some() {
                return; // the back-off timer will try again
            }
            let service = listener.service;
            match listener.socket.accept() {
                Ok((stream, peer)) => self.admit(service, stream, peer),
                Err(e) if would_block(&e) => return,
                // The client gave up before we accepted it, or a signal came:
                // neither is about us; try the next one at once.
                Err(e) if interrupted(&e) || e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) if out_of_resources(&e) => {
                    // The connection stays in the kernel's backlog. Retrying
                    // now would spin; exiting would be worse. Pause this
                    // listener and let a timer retry.
                    warn!(
                        "accept on {}: {e}; pausing accepts for {:?} ({} connections open)",
                        service.name(),
                        config::ACCEPT_BACKOFF,
                        self.stats.conns_open
                    );
                    self.stats.accept_backoffs += 1;
                    listener.backoff_until = Some(self.now + config::ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => debug!("accept on {}: {e}", service.name()),
            }
        }
        // Budget spent with connections maybe still waiting: come back next
        // turn, after the other sources had theirs.
        self.still_ready.push((key, self.sources[key].serial));
    }

    /// Take an accepted connection into the slab, or turn it away at
    /// `--max-conns`.
    fn admit(&mut self, service: Service, mut stream: TcpStream, peer: SocketAddr) {
        if self.stats.conns_open as usize >= self.max_conns {
            self.stats.conns_rejected += 1;
            debug!(
                "reject {} {peer}: at max-conns {}",
                service.name(),
                self.max_conns
            );
            if service == Service::Chat {
                // A fresh socket's send buffer is empty, so this short line
                // fits; if it somehow does not, the client just sees a close.
                let _ = stream.write(chat::SERVER_FULL);
            }
            return; // dropping the stream closes it
        }
        // Echo and chat send small replies that the client waits for; Nagle's
        // algorithm would hold them back waiting for an ACK.
        if let Err(e) = stream.set_nodelay(true) {
            debug!("set_nodelay {peer}: {e}");
        }
        let entry = self.sources.vacant_entry();
        let key = entry.key();
        let serial = self.next_serial;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            warn!("register {peer}: {e}");
            return;
        }
        self.next_serial += 1;
        let proto = match service {
            Service::Chat => Proto::Chat(ChatConn {
                out: ChunkQueue::new(),
                finishing: false,
            }),
            _ => Proto::Echo(EchoSession::new(self.config.out_limit)),
        };
        entry.insert(Entry {
            serial,
            source: Source::Conn(Conn {
                stream,
                peer,
                service,
                proto,
                interest: Interest::READABLE,
                closing: None,
                flush_queued: false,
                opened: self.now,
                last_input: self.now,
                bytes_in: 0,
                bytes_out: 0,
                lingering: false,
            }),
        });
        self.stats.conns_open += 1;
        self.stats.conns_accepted += 1;
        debug!("open {} {peer} token={key}", service.name());
        if let Some(t) = self.trace.as_mut() {
            t.instant("open", key, format_args!("{} {peer}", service.name()));
        }
        if let Some(idle) = self.config.idle_timeout {
            self.idle.schedule(self.now + idle, key, serial);
        }
        if service == Service::Chat {
            let id = Conn::client_id(key, serial);
            self.with_hub(|hub, _, out| hub.handle_connect(id, out));
        }
    }

    // ----- TCP connections -------------------------------------------------

    /// Read until the socket would block, the protocol pauses input, or the
    /// turn's budget is spent; feed every chunk to the protocol.
    fn conn_read(&mut self, key: usize, read_closed: bool) {
        let mut budget = config::READ_BUDGET_PER_TURN;
        loop {
            let serial = self.sources[key].serial;
            let Source::Conn(conn) = &mut self.sources[key].source else {
                return;
            };
            if conn.closing.is_some() {
                return;
            }
            if conn.lingering {
                self.linger_read(key);
                return;
            }
            if self.phase != Phase::Running {
                return; // draining: no new input, only flushing
            }
            let allowance = match &conn.proto {
                Proto::Echo(e) => e.read_allowance(),
                Proto::Chat(c) if c.finishing => 0,
                Proto::Chat(_) => usize::MAX,
            };
            let want = allowance.min(budget).min(self.read_buf.len());
            if want == 0 {
                if allowance > 0 {
                    // Budget spent, not the socket: come back next turn.
                    self.still_ready.push((key, serial));
                } else {
                    trace!("token={key}: input paused (backlog at out-limit or finishing)");
                }
                break;
            }
            match read_once(&mut conn.stream, &mut self.read_buf[..want]) {
                Ok(ReadOutcome::Data(n)) => {
                    conn.bytes_in += n as u64;
                    conn.last_input = self.now;
                    self.stats.bytes_in += n as u64;
                    budget -= n;
                    let data = &self.read_buf[..n];
                    match &mut conn.proto {
                        Proto::Echo(e) => {
                            e.handle_input(data, &mut self.pool);
                            self.queue_flush(key);
                        }
                        Proto::Chat(_) => {
                            let id = Conn::client_id(key, serial);
                            self.with_hub(|hub, read_buf, out| {
                                hub.handle_input(id, &read_buf[..n], out)
                            });
                        }
                    }
                    // A short read means the kernel had no more bytes: with
                    // edge-triggered epoll the next arrival raises a new
                    // event, so skip the read that would only say WouldBlock.
                    // Not if the peer's FIN was flagged: a FIN raises no new
                    // edge, so read on until we see the EOF itself.
                    if n < want && !read_closed {
                        break;
                    }
                }
                Ok(ReadOutcome::Eof) => {
                    trace!("token={key}: end of input");
                    if let Some(t) = self.trace.as_mut() {
                        t.instant("eof", key, "");
                    }
                    match &mut conn.proto {
                        Proto::Echo(e) => {
                            e.handle_eof();
                            self.queue_flush(key);
                        }
                        Proto::Chat(_) => {
                            let id = Conn::client_id(key, serial);
                            self.with_hub(|hub, _, out| hub.handle_eof(id, out));
                            self.queue_flush(key);
                        }
                    }
                    break;
                }
                Ok(ReadOutcome::WouldBlock) => break,
                Err(e) => {
                    self.close_conn(key, CloseReason::Error(e.to_string()));
                    return;
                }
            }
        }
        // A connection with output queued gets its interest set after the
        // flush at the end of the turn, when we know whether bytes remain:
        // setting it now would arm WRITABLE only to disarm it a moment later,
        // two epoll_ctl calls per message for nothing.
        let queued = matches!(&self.sources.get(key), Some(Entry { source: Source::Conn(c), .. }) if c.flush_queued);
        if !queued {
            self.refresh_interest(key);
        }
    }

    /// Put a connection on this turn's flush list (once).
    fn queue_flush(&mut self, key: usize) {
        queue_flush(&mut self.sources, &mut self.flush_list, key);
    }

    /// Write every connection that got output this turn. Runs after all
    /// events, so several chat lines queued in one turn leave in one writev.
    fn flush_pending(&mut self) {
        while let Some(key) = self.flush_list.pop() {
            let Some(Entry {
                source: Source::Conn(conn),
                serial,
            }) = self.sources.get_mut(key)
            else {
                continue;
            };
            let serial = *serial;
            conn.flush_queued = false;
            if conn.closing.is_some() {
                continue;
            }
            let was_reading = conn.wants_read();
            // Traced only when there is something to write: an empty flush
            // (say, after EOF) makes no syscall.
            let traced = self
                .trace
                .as_ref()
                .map(|_| conn.pending_output())
                .filter(|&pending| pending > 0)
                .map(|pending| (Instant::now(), pending));
            match write_out(conn, &mut self.pool) {
                Ok(written) => {
                    self.stats.bytes_out += written as u64;
                    if let (Some(t), Some((from, pending))) = (self.trace.as_mut(), traced) {
                        t.write(from, Instant::now(), key, written, pending);
                    }
                }
                Err(e) => {
                    self.close_conn(key, CloseReason::Error(e.to_string()));
                    continue;
                }
            }
            let Source::Conn(conn) = &mut self.sources[key].source else {
                continue;
            };
            if conn.is_finished() && !conn.lingering {
                if self.phase == Phase::Running {
                    self.close_conn(key, CloseReason::Done);
                } else {
                    self.begin_linger(key, serial);
                }
                continue;
            }
            if !was_reading && conn.wants_read() && self.phase == Phase::Running {
                // Echo backlog fell below its bound: reading resumes. Bytes
                // that arrived while we were paused raised their edge back
                // then, so read now instead of waiting for an event.
                trace!("token={key}: input resumed");
                self.still_ready.push((key, serial));
            }
            self.refresh_interest(key);
        }
    }

    /// Shutdown: the connection's output is all out. Send our FIN, then read
    /// and discard until the client closes (see `Conn::lingering`).
    fn begin_linger(&mut self, key: usize, serial: u64) {
        let Source::Conn(conn) = &mut self.sources[key].source else {
            return;
        };
        trace!("token={key}: output flushed, lingering until the client closes");
        if let Some(t) = self.trace.as_mut() {
            t.instant("linger", key, "");
        }
        if conn.stream.shutdown(std::net::Shutdown::Write).is_err() {
            self.close_conn(key, CloseReason::Shutdown);
            return;
        }
        conn.lingering = true;
        self.refresh_interest(key);
        self.still_ready.push((key, serial));
    }

    /// Read and discard a lingering connection's input until EOF.
    fn linger_read(&mut self, key: usize) {
        let Source::Conn(conn) = &mut self.sources[key].source else {
            return;
        };
        for _ in 0..(config::READ_BUDGET_PER_TURN / self.read_buf.len()).max(1) {
            match read_once(&mut conn.stream, &mut self.read_buf) {
                Ok(ReadOutcome::Data(n)) => conn.bytes_in += n as u64,
                Ok(ReadOutcome::WouldBlock) => return,
                Ok(ReadOutcome::Eof) | Err(_) => {
                    self.close_conn(key, CloseReason::Shutdown);
                    return;
                }
            }
        }
        let serial = self.sources[key].serial;
        self.still_ready.push((key, serial));
    }

    /// Re-register a connection only if the interest its state asks for
    /// changed (each change is an `epoll_ctl` syscall).
    fn refresh_interest(&mut self, key: usize) {
        let Some(Entry {
            source: Source::Conn(conn),
            ..
        }) = self.sources.get_mut(key)
        else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        let Some(wanted) = conn.desired_interest() else {
            return;
        };
        if wanted != conn.interest {
            trace!("token={key}: interest {:?} -> {:?}", conn.interest, wanted);
            if let Some(t) = self.trace.as_mut() {
                t.instant("interest", key, format_args!("{wanted:?}"));
            }
            match self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), wanted)
            {
                Ok(()) => {
                    conn.interest = wanted;
                    self.stats.interest_changes += 1;
                }
                Err(e) => self.close_conn(key, CloseReason::Error(e.to_string())),
            }
        }
    }

    /// Mark a connection closing: it stops receiving events now and leaves
    /// the slab at the sweep. A chat client's room is told it left.
    fn close_conn(&mut self, key: usize, reason: CloseReason) {
        let serial = self.sources[key].serial;
        let Source::Conn(conn) = &mut self.sources[key].source else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        trace!("token={key}: closing ({reason})");
        if let Some(t) = self.trace.as_mut() {
            t.instant("closing", key, &reason);
        }
        let is_chat = matches!(conn.proto, Proto::Chat(_));
        if reason != CloseReason::Done {
            // Nobody will read what is still queued.
            conn.discard_output(&mut self.pool);
        }
        let leave = match &reason {
            CloseReason::TooSlow => LeaveReason::TooSlow,
            CloseReason::IdleTimeout => LeaveReason::IdleTimeout,
            _ => LeaveReason::Disconnected,
        };
        conn.closing = Some(reason);
        self.closing.push(key);
        if is_chat {
            let id = Conn::client_id(key, serial);
            self.with_hub(|hub, _, out| hub.handle_disconnect(id, leave, out));
        }
    }

    /// Remove the connections closed this turn from the slab. Dropping the
    /// socket closes the fd, and closing the fd removes it from epoll, so no
    /// explicit deregister syscall is needed.
    fn sweep(&mut self) {
        for key in self.closing.drain(..) {
            let entry = self.sources.remove(key);
            let Source::Conn(mut conn) = entry.source else {
                continue;
            };
            conn.discard_output(&mut self.pool);
            self.stats.conns_open -= 1;
            let reason = conn.closing.take().unwrap_or(CloseReason::Done);
            match reason {
                CloseReason::TooSlow => self.stats.slow_disconnects += 1,
                CloseReason::IdleTimeout => self.stats.idle_closes += 1,
                _ => {}
            }
            debug!(
                "close {} {} token={key} in={} out={} lifetime={:?} reason={reason}",
                conn.service.name(),
                conn.peer,
                conn.bytes_in,
                conn.bytes_out,
                self.now.saturating_duration_since(conn.opened)
            );
            if let Some(t) = self.trace.as_mut() {
                t.instant("close", key, &reason);
            }
        }
    }

    // ----- chat plumbing -----------------------------------------------

    /// Call the hub with an outbox over the connections (and the read
    /// buffer, whose bytes the hub frames in place), then deal with any
    /// client that turned out too slow.
    fn with_hub(&mut self, f: impl FnOnce(&mut Hub, &[u8], &mut ConnOutbox<'_>)) {
        let Server {
            hub,
            read_buf,
            sources,
            flush_list,
            too_slow,
            stats,
            config,
            ..
        } = self;
        let mut out = ConnOutbox {
            sources,
            flush_list,
            too_slow,
            stats,
            out_limit: config.out_limit,
        };
        f(hub, read_buf, &mut out);
        self.settle_too_slow();
    }

    /// Disconnect every client the outbox found too slow. Each leave notice
    /// may find another one too slow, so loop until none is left.
    fn settle_too_slow(&mut self) {
        while let Some(id) = self.too_slow.pop() {
            let key = key_of(id);
            if self
                .sources
                .get(key)
                .is_some_and(|e| serial_matches(id, e.serial))
            {
                self.close_conn(key, CloseReason::TooSlow);
            }
        }
    }

    // ----- UDP -----------------------------------------------------------

    /// Receive datagrams until the socket would block (within budget) and
    /// answer each; send queued replies when writable.
    fn udp_ready(&mut self, key: usize, ready: Readiness) {
        let serial = self.sources[key].serial;
        let Source::Udp(udp) = &mut self.sources[key].source else {
            return;
        };
        let UdpEndpoint { socket, echo, .. } = &mut **udp;
        if ready.writable || echo.wants_write() {
            flush_udp(socket, echo, &mut self.pool, &mut self.stats);
        }
        if ready.readable && self.phase == Phase::Running {
            let mut drained = false;
            for _ in 0..config::DATAGRAM_BUDGET_PER_TURN {
                match socket.recv_from(&mut self.read_buf) {
                    Ok((n, src)) => {
                        self.stats.datagrams_in += 1;
                        let data = &self.read_buf[..n];
                        match echo.handle_datagram(src, data, &mut self.pool) {
                            Disposition::SendNow => match socket.send_to(data, src) {
                                Ok(_) => self.stats.datagrams_out += 1,
                                Err(e) if would_block(&e) => {
                                    if echo.defer(src, data, &mut self.pool)
                                        == Disposition::DroppedFull
                                    {
                                        self.stats.datagrams_dropped += 1;
                                    }
                                }
                                Err(e) => {
                                    debug!("udp send_to {src}: {e}");
                                    self.stats.datagrams_dropped += 1;
                                }
                            },
                            Disposition::Queued => {}
                            Disposition::DroppedGuard => {
                                trace!("udp from {src}: guarded source port, dropped");
                                self.stats.datagrams_guarded += 1;
                            }
                            Disposition::DroppedFull => self.stats.datagrams_dropped += 1,
                        }
                    }
                    Err(e) if would_block(&e) => {
                        drained = true;
                        break;
                    }
                    // Not fatal: ICMP errors from earlier sends surface here
                    // on some systems, and EINTR just means "again".
                    Err(e) => debug!("udp recv: {e}"),
                }
            }
            if !drained {
                self.still_ready.push((key, serial));
            }
        }
        let wanted = udp.desired_interest();
        if wanted != udp.interest {
            trace!("token={key}: udp interest {:?} -> {wanted:?}", udp.interest);
            if let Some(t) = self.trace.as_mut() {
                t.instant("interest", key, format_args!("{wanted:?}"));
            }
            if self
                .poll
                .registry()
                .reregister(&mut udp.socket, Token(key), wanted)
                .is_ok()
            {
                udp.interest = wanted;
                self.stats.interest_changes += 1;
            }
        }
    }

    // ----- timers ------------------------------------------------------

    fn retry_still_ready(&mut self) {
        if self.still_ready.is_empty() {
            return;
        }
        // Sources that run out of budget again re-enter `still_ready` while we
        // iterate, so iterate a swapped-out list; swapping two Vecs back and
        // forth keeps both allocations alive, so this costs nothing per turn.
        let mut retry = std::mem::take(&mut self.retry_scratch);
        std::mem::swap(&mut retry, &mut self.still_ready);
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
        while let Some((key, serial)) = self.idle.pop_due(now) {
            let Some(Entry {
                serial: s,
                source: Source::Conn(conn),
            }) = self.sources.get(key)
            else {
                continue;
            };
            if *s != serial || conn.closing.is_some() {
                continue; // a deadline of a connection that is gone
            }
            let Some(idle) = self.config.idle_timeout else {
                continue;
            };
            let due = conn.last_input + idle;
            if due <= now {
                debug!("token={key}: idle for {idle:?}");
                self.close_conn(key, CloseReason::IdleTimeout);
            } else {
                self.idle.schedule(due, key, serial);
            }
        }
        for i in 0..self.endpoints.len() {
            let key = self.endpoints[i];
            if let Source::Listener(l) = &mut self.sources[key].source {
                if l.backoff_until.is_some_and(|t| t <= now) {
                    l.backoff_until = None;
                    trace!("token={key}: accept back-off over");
                    self.still_ready.push((key, self.sources[key].serial));
                }
            }
        }
        if let (Some(at), Some(every)) = (self.next_stats, self.config.stats_interval) {
            if at <= now {
                info!("stats: {}", self.stats);
                self.next_stats = Some(now + every);
            }
        }
    }
}

/// The hub's view of the connections: sending a line queues a handle to it
/// on the recipient's output (no copy); a recipient whose output would pass
/// `--out-limit` gets nothing more and is noted as too slow.
struct ConnOutbox<'a> {
    sources: &'a mut Slab<Entry>,
    flush_list: &'a mut Vec<usize>,
    too_slow: &'a mut Vec<ClientId>,
    stats: &'a mut Stats,
    out_limit: usize,
}

impl ConnOutbox<'_> {
    fn chat_conn(&mut self, id: ClientId) -> Option<&mut Conn> {
        let entry = self.sources.get_mut(key_of(id))?;
        if !serial_matches(id, entry.serial) {
            return None;
        }
        match &mut entry.source {
            Source::Conn(conn) if conn.closing.is_none() => Some(conn),
            _ => None,
        }
    }
}

impl Outbox for ConnOutbox<'_> {
    fn send(&mut self, to: ClientId, line: &SharedLine) {
        let out_limit = self.out_limit;
        let Some(conn) = self.chat_conn(to) else {
            return;
        };
        let Proto::Chat(chat) = &mut conn.proto else {
            return;
        };
        if chat.out.len() + line.len() > out_limit {
            if !self.too_slow.contains(&to) {
                self.too_slow.push(to);
            }
            return;
        }
        chat.out.push(line);
        self.stats.lines_relayed += 1;
        queue_flush(self.sources, self.flush_list, key_of(to));
    }

    fn close(&mut self, who: ClientId) {
        let Some(conn) = self.chat_conn(who) else {
            return;
        };
        if let Proto::Chat(chat) = &mut conn.proto {
            chat.finishing = true;
        }
        queue_flush(self.sources, self.flush_list, key_of(who));
    }
}

fn queue_flush(sources: &mut Slab<Entry>, flush_list: &mut Vec<usize>, key: usize) {
    if let Some(Entry {
        source: Source::Conn(conn),
        ..
    }) = sources.get_mut(key)
    {
        if !conn.flush_queued {
            conn.flush_queued = true;
            flush_list.push(key);
        }
    }
}

/// Write a connection's pending output until it is drained, the socket would
/// block, or the write budget is spent. Returns the bytes written.
fn write_out(conn: &mut Conn, pool: &mut BufferPool) -> io::Result<usize> {
    let mut written = 0;
    while written < config::WRITE_BUDGET_PER_TURN {
        let mut iov = [IoSlice::new(&[]); config::MAX_IOVECS];
        let n = conn.output(&mut iov);
        if n == 0 {
            break;
        }
        let offered: usize = iov[..n].iter().map(|s| s.len()).sum();
        // mio implements Write for &TcpStream, so the socket can be written
        // while the output slices still borrow the connection.
        let outcome = write_once(&mut &conn.stream, &iov[..n])?;
        let WriteOutcome::Wrote(w) = outcome else {
            break;
        };
        conn.consume_output(w, pool);
        written += w;
        // A partial write means the send buffer is full: WRITABLE will tell
        // us when it has room, so don't spend a syscall to hear WouldBlock.
        if w < offered {
            break;
        }
    }
    Ok(written)
}

/// Send queued UDP replies until the queue is empty or the socket would block.
fn flush_udp(socket: &UdpSocket, echo: &mut UdpEcho, pool: &mut BufferPool, stats: &mut Stats) {
    while let Some((dst, data)) = echo.front() {
        match socket.send_to(data, dst) {
            Ok(_) => stats.datagrams_out += 1,
            Err(e) if would_block(&e) => return,
            Err(e) => {
                debug!("udp send_to {dst}: {e}");
                stats.datagrams_dropped += 1;
            }
        }
        echo.pop_front(pool);
    }
}

/// A non-blocking TCP listener with our backlog (`config::LISTEN_BACKLOG`)
/// and `SO_REUSEADDR` (so a restarted server can bind while old connections
/// sit in TIME_WAIT), as mio's own `bind` does but with a larger backlog.
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(config::LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Whether an accept error means the process or system ran out of file
/// descriptors or memory (the connection is still waiting in the backlog).
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Clamp `--max-conns` below the process's file descriptor limit, so that the
/// clean "server full" path is hit before `accept` fails with EMFILE. The
/// soft limit is first raised as far as the hard limit allows.
fn clamp_max_conns(max_conns: usize, endpoints: usize) -> usize {
    let wanted = (max_conns + endpoints + config::FD_RESERVE) as u64;
    let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return max_conns;
    };
    let mut limit = soft;
    if soft < wanted && hard > soft {
        let raised = wanted.min(hard);
        if rlimit::setrlimit(rlimit::Resource::NOFILE, raised, hard).is_ok() {
            debug!("raised the fd limit from {soft} to {raised}");
            limit = raised;
        }
    }
    let usable = (limit as usize)
        .saturating_sub(endpoints + config::FD_RESERVE)
        .max(1);
    if usable < max_conns {
        warn!("--max-conns {max_conns} is above what the fd limit {limit} allows; using {usable}");
        usable
    } else {
        max_conns
    }
}
