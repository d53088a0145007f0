//! The Redis link of `serve --cluster` as one more source of the loop: an
//! outbound TCP connection in the same slab and the same `mio::Poll` as the
//! clients, driven by the sans-IO [`Link`].
//!
//! The link's slab entry ([`Source::Redis`]) lives as long as the server;
//! the socket inside it comes and goes with the link's effects: opened
//! (non-blocking) on `Connect`, checked when it turns writable (`take_error`,
//! then `peer_addr`: connected, or not yet), closed on `Down`. A reconnect
//! waits at least the link's first back-off, so an event of the old socket
//! (possible only in the batch that closed it) can never be taken for the
//! new one's.
//!
//! Reads are edge-triggered into the loop's one read buffer, within the
//! turn's budget, and handed to [`Link::handle_input`]. What the link wants
//! written ([`Link::transmit`]) is written at the end of each pump, and
//! WRITABLE is armed only while bytes remain (or while the connect is in
//! progress). The link's next deadline ([`Link::poll_timeout`]) sits on the
//! loop's timers like any source's.
//!
//! After every call into the link, [`Server::pump_link`] takes its effects
//! out and carries them to the hub (`Up`, `Down`, bus messages, claims, ...)
//! and the hub's answers back to the link through `deliver_chat`, until
//! neither has anything left: a plain loop, no callbacks.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, trace, warn};
use mio::{Interest, Token};
use slab::Slab;

use crate::cluster::link::{Effect as LinkEffect, Link, LinkConfig, LinkError};
use crate::config;
use crate::config::redis_url::RedisUrl;
use crate::net::toolkit::{drain, Drained};
use crate::net::{write_once, EventList, Net, Readiness, WriteOutcome};

use super::source::{Entry, RedisSource, Source};
use super::{stats, Server};

/// The Redis link and what the loop keeps about it.
pub struct ClusterLink {
    /// The sans-IO link.
    pub link: Link,
    /// Where Redis is (for messages: the password is hidden).
    pub url: RedisUrl,
    /// Its resolved address.
    pub addr: SocketAddr,
    /// The slab key and serial of the link's source.
    pub key: usize,
    serial: u64,
    /// The deadline given to the timers, to cancel it when it changes.
    deadline: Option<Instant>,
    /// Whether the link has ever been up.
    pub ever_up: bool,
    /// Why the link failed before it was ever up (start-up gives up).
    pub startup_error: Option<LinkError>,
}

/// A snapshot of the cluster side of a server ([`Server::cluster_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    /// This server's id on the bus.
    pub server: u64,
    /// The link is up (authenticated and subscribed).
    pub up: bool,
    /// A new connection would get a name (the guest pool is not empty).
    pub ready: bool,
    /// Bytes of commands waiting to be written to Redis.
    pub output: usize,
    /// Commands sent and not answered yet.
    pub in_flight: usize,
    /// The link's counters.
    pub stats: crate::cluster::link::LinkStats,
    /// The local users' nicknames, sorted.
    pub nicks: Vec<String>,
}

impl<N: Net> Server<N> {
    /// Build the link for `url` and give it its slab entry (no socket yet:
    /// the link asks for one at once).
    pub(super) fn cluster_link(
        sources: &mut Slab<Entry<N>>,
        next_serial: &mut u64,
        url: &RedisUrl,
        now: Instant,
        server_id: u64,
    ) -> io::Result<ClusterLink> {
        let addr = config::resolve(&url.addr())
            .map_err(|e| io::Error::new(e.kind(), format!("cannot reach Redis at {url}: {e}")))?;
        let serial = *next_serial;
        *next_serial += 1;
        let key = sources.insert(Entry {
            serial,
            source: Source::Redis(Box::new(RedisSource {
                socket: None,
                connected: false,
                interest: None,
            })),
        });
        let config = LinkConfig::new(server_id, url);
        Ok(ClusterLink {
            link: Link::new(config, now),
            url: url.clone(),
            addr,
            key,
            serial,
            deadline: None,
            ever_up: false,
            startup_error: None,
        })
    }

    /// With `--cluster`: run the loop until the link is up and a new
    /// connection would get a name (at most `limit`), before the server
    /// says it is listening. An error names the Redis address.
    pub fn wait_for_cluster(&mut self, limit: Duration) -> io::Result<()> {
        if self.cluster.is_none() {
            return Ok(());
        }
        let deadline = self.net.now() + limit;
        let mut events = N::Events::with_capacity(64);
        self.pump_link();
        loop {
            let c = self.cluster.as_ref().expect("checked above");
            if c.ever_up && self.hub.cluster_ready() {
                info!(
                    "cluster link up: {} (server id {:016x})",
                    c.url,
                    c.link.server()
                );
                return Ok(());
            }
            if let Some(error) = &c.startup_error {
                return Err(io::Error::other(format!(
                    "cannot reach Redis at {}: {error}",
                    c.url
                )));
            }
            let now = self.net.now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "cannot reach Redis at {}: no answer within {} s",
                        c.url,
                        limit.as_secs()
                    ),
                ));
            }
            self.turn(&mut events, Some(deadline - now))?;
        }
    }

    /// An event on the link's socket.
    pub(super) fn redis_ready(&mut self, key: usize, ready: Readiness) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Source::Redis(r) = &mut self.sources[key].source else {
            return;
        };
        let Some(socket) = r.socket.as_ref() else {
            return; // closed earlier in this batch
        };
        let now = self.now;
        if !r.connected {
            if !(ready.writable || ready.read_closed) {
                return;
            }
            match self.net.connect_result(socket) {
                Ok(true) => {
                    trace!("token={key}: redis connected");
                    r.connected = true;
                    c.link.handle_connected(now);
                }
                Ok(false) => return, // not yet: a spurious event
                Err(e) => c.link.handle_io_error(now, &e),
            }
            return self.pump_link();
        }
        if ready.readable || ready.read_closed {
            let link = &mut c.link;
            let drained = drain(
                &mut self.net.io(socket),
                &mut self.read_buf,
                config::READ_BUDGET_PER_TURN,
                ready.read_closed,
                |data| {
                    link.handle_input(now, data);
                    true
                },
            );
            match drained {
                Ok(Drained::Empty | Drained::Stopped) => {}
                Ok(Drained::BudgetSpent) => self.still_ready.push((key, c.serial)),
                Ok(Drained::Eof) => c.link.handle_eof(now),
                Err(e) => c.link.handle_io_error(now, &e),
            }
        }
        // Writable: the pump writes whatever waits.
        self.pump_link();
    }

    /// The link's deadline came due.
    pub(super) fn redis_timer(&mut self) {
        if let Some(c) = self.cluster.as_mut() {
            c.deadline = None;
            c.link.handle_timeout(self.now);
        }
        self.pump_link();
    }

    /// Carry out the link's effects (to the hub, whose answers go back to
    /// the link), write what the link has for Redis, and set its interest
    /// and deadline; until nothing is left to do.
    pub(super) fn pump_link(&mut self) {
        loop {
            let Some(c) = self.cluster.as_mut() else {
                return;
            };
            if let Some(effect) = c.link.poll_effect() {
                self.link_effect(effect);
                self.deliver_chat();
                continue;
            }
            if !self.redis_write() {
                break;
            }
        }
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.link.set_members(self.hub.client_count() as u32);
        let next = c.link.poll_timeout();
        if c.deadline != Some(next) {
            if let Some(old) = c.deadline.take() {
                self.timers.cancel(old, c.key, c.serial);
            }
            self.timers.schedule(next, c.key, c.serial);
            c.deadline = Some(next);
        }
        let key = c.key;
        let wants_write = !c.link.transmit().is_empty();
        let Source::Redis(r) = &mut self.sources[key].source else {
            return;
        };
        let Some(socket) = r.socket.as_mut() else {
            return;
        };
        let desired = if wants_write || !r.connected {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if r.interest != Some(desired) {
            let result = match r.interest {
                Some(_) => self.net.reregister(socket, Token(key), desired),
                None => self.net.register(socket, Token(key), desired),
            };
            match result {
                Ok(()) => {
                    r.interest = Some(desired);
                    self.stats.interest_changes += 1;
                }
                Err(e) => {
                    if let Some(c) = self.cluster.as_mut() {
                        c.link.handle_io_error(self.now, &e);
                    }
                    self.pump_link();
                }
            }
        }
    }

    /// Write what the link has for Redis until it is all written or the
    /// socket would block. True if that raised an effect to carry out.
    fn redis_write(&mut self) -> bool {
        let Some(c) = self.cluster.as_mut() else {
            return false;
        };
        let Source::Redis(r) = &mut self.sources[c.key].source else {
            return false;
        };
        let (Some(socket), true) = (r.socket.as_ref(), r.connected) else {
            return false;
        };
        let mut budget = config::WRITE_BUDGET_PER_TURN;
        while !c.link.transmit().is_empty() && budget > 0 {
            let bytes = c.link.transmit();
            match write_once(&mut self.net.io(socket), &[IoSlice::new(bytes)]) {
                Ok(WriteOutcome::Wrote(n)) => {
                    c.link.advance(n);
                    budget = budget.saturating_sub(n);
                }
                Ok(WriteOutcome::WouldBlock) => return false,
                Err(e) => {
                    c.link.handle_io_error(self.now, &e);
                    return true;
                }
            }
        }
        if !c.link.transmit().is_empty() {
            // Budget spent with bytes left: WRITABLE stays armed, and the
            // still-ready list brings us back next turn.
            self.still_ready.push((c.key, c.serial));
        }
        false
    }

    /// One effect of the link.
    fn link_effect(&mut self, effect: LinkEffect) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        match effect {
            LinkEffect::Connect => {
                let key = c.key;
                let Source::Redis(r) = &mut self.sources[key].source else {
                    return;
                };
                debug!("connecting to Redis at {}", c.url);
                match self.net.connect(c.addr) {
                    Ok(socket) => {
                        r.socket = Some(socket);
                        r.connected = false;
                        r.interest = None;
                    }
                    Err(e) => c.link.handle_io_error(self.now, &e),
                }
            }
            LinkEffect::Up { restored } => {
                c.ever_up = true;
                if restored {
                    warn!("cluster link restored: {}", c.url);
                }
                self.hub.handle_link_up(restored);
            }
            LinkEffect::Down { error, was_up } => {
                let key = c.key;
                if let Source::Redis(r) = &mut self.sources[key].source {
                    // Closing is dropping (it also leaves epoll).
                    r.socket = None;
                    r.connected = false;
                    r.interest = None;
                }
                if !c.ever_up && c.startup_error.is_none() {
                    c.startup_error = Some(error.clone());
                }
                if was_up {
                    warn!("cluster link lost: {}: {error}", c.url);
                } else {
                    debug!("cluster link to {} failed: {error}", c.url);
                }
                self.hub.handle_link_down(was_up);
            }
            LinkEffect::Message(message) => self.hub.handle_bus(message),
            LinkEffect::ServerLost(server) => {
                info!("cluster: server {server:016x} lost");
                self.hub.handle_server_lost(server);
            }
            LinkEffect::Gap { server, missed } => {
                debug!("cluster: {missed} message(s) from {server:016x} lost; asking it again");
                self.hub.handle_gap(server);
            }
            LinkEffect::Claimed {
                token,
                name,
                granted,
            } => self.hub.handle_claimed(token, name, granted),
            LinkEffect::Guests { token, numbers } => self.hub.handle_guests(token, numbers),
            LinkEffect::LeaseLost(name) => {
                warn!("cluster: another server holds {name} now");
                self.hub.handle_lease_lost(name);
            }
        }
    }

    /// Whether the link has nothing left to tell Redis (or cannot: it is
    /// down), so that shutdown may end.
    pub(super) fn cluster_flushed(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| {
            !c.link.is_up() || (c.link.transmit().is_empty() && c.link.awaiting_replies() == 0)
        })
    }

    /// What the link and the hub's cluster view are like now (`None`
    /// without `--cluster`): for the simulation's checks.
    pub fn cluster_state(&self) -> Option<ClusterState> {
        let c = self.cluster.as_ref()?;
        let mut nicks: Vec<String> = self.hub.nicks().map(str::to_string).collect();
        nicks.sort();
        Some(ClusterState {
            server: c.link.server(),
            up: c.link.is_up(),
            ready: self.hub.cluster_ready(),
            output: c.link.transmit().len(),
            in_flight: c.link.awaiting_replies(),
            stats: c.link.stats(),
            nicks,
        })
    }

    /// The bus counters for `--stats-interval`.
    pub(super) fn bus_stats(&self) -> Option<stats::BusStats> {
        let c = self.cluster.as_ref()?;
        let s = c.link.stats();
        Some(stats::BusStats {
            published: s.published,
            received: s.received,
            dropped: s.dropped_malformed
                + s.dropped_unknown_version
                + s.dropped_stale
                + self.hub.bus_dropped(),
            publish_dropped: s.publish_dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ListenerSpec, ServeConfig, Service};
    use crate::net::sim::{Faults, SimNet, SimRng};

    /// On the simulated network with no Redis listening (every outbound
    /// connect refused), a `--cluster` server gives up at start-up with one
    /// error naming the Redis address: the start-up path runs on the `Net`
    /// seam like the rest of the loop.
    #[test]
    fn an_unreachable_redis_ends_start_up_with_its_address() {
        let mut config = ServeConfig::with_defaults(vec![ListenerSpec {
            service: Service::Chat,
            addr: "127.0.0.1:7000".into(),
        }]);
        config.cluster = Some(RedisUrl::parse("redis://:secret@127.0.0.1:6390").unwrap());
        let net = SimNet::new(SimRng::seeded(7), Faults::default(), vec![1000]);
        let mut server = Server::with_net(config, net).unwrap();
        let error = server
            .wait_for_cluster(Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot reach Redis at redis://:***@127.0.0.1:6390: "),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
        assert!(!server.hub.cluster_ready());
    }
}
