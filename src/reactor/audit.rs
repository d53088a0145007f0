//! What the simulation checks after every turn, read from the loop's
//! insides: how many sources the slab holds, the idle timers, each
//! connection's pending output and registration. Read-only, never called by
//! the server itself.

use crate::config::ServeConfig;
use crate::net::Net;

use super::source::Source;
use super::Server;

/// One connection as the audit sees it.
#[derive(Debug, Clone, Copy)]
pub struct ConnAudit {
    /// Its slab key (and so its token).
    pub key: usize,
    /// What its pending output costs, as `--out-limit` counts it.
    pub pending: usize,
    /// Marked closing, waiting for the sweep.
    pub closing: bool,
    /// Whether its input is paused.
    pub wants_read: bool,
    /// It holds a relay.
    pub has_relay: bool,
    /// Of `pending`, the bytes in its relay.
    pub relayed: usize,
}

/// The loop's sizes after a turn.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Entries in the slab.
    pub slab: usize,
    /// Listeners and UDP sockets.
    pub endpoints: usize,
    /// The connections.
    pub conns: Vec<ConnAudit>,
    /// Deadlines held (idle, linger, accept back-off).
    pub timers: usize,
    /// How far the nearest deadline is from now (negative: overdue, as
    /// `None` when there is none).
    pub next_deadline_in: Option<std::time::Duration>,
    /// The nearest deadline is already past.
    pub deadline_overdue: bool,
    /// The loop's running total of pending output (`--max-pending`).
    pub pending_total: usize,
    /// Still-ready entries waiting for the next turn.
    pub still_ready: usize,
    /// Relays the pool counts open (lent out or idle).
    pub relays_open: usize,
    /// Relays open and idle in the pool.
    pub relays_idle: usize,
    /// The most relays that may be open at once.
    pub relays_limit: usize,
}

impl<N: Net> Server<N> {
    /// The network the server runs on.
    pub fn net(&self) -> &N {
        &self.net
    }

    /// The network the server runs on, to act on it between turns.
    pub fn net_mut(&mut self) -> &mut N {
        &mut self.net
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// `--max-conns` after the clamp below the fd limit.
    pub fn max_conns(&self) -> usize {
        self.max_conns
    }

    /// Whether the server is done: after a signal, every connection is gone
    /// or the grace is over (then everything left is closed now). This is
    /// the check `run` makes after every turn.
    pub fn finished(&mut self) -> bool {
        self.drain_finished()
    }

    /// The loop's sizes now.
    pub fn audit(&self) -> Audit {
        let mut audit = Audit {
            slab: self.sources.len(),
            endpoints: self.endpoints.len(),
            conns: Vec::new(),
            timers: self.timers.len(),
            next_deadline_in: self
                .timers
                .next()
                .map(|t| t.saturating_duration_since(self.net.now())),
            deadline_overdue: self.timers.next().is_some_and(|t| t < self.net.now()),
            pending_total: self.pending_total,
            still_ready: self.still_ready.len(),
            relays_open: self.relays.open(),
            relays_idle: self.relays.idle(),
            relays_limit: self.relays.limit(),
        };
        for (key, entry) in &self.sources {
            if let Source::Conn(conn) = &entry.source {
                audit.conns.push(ConnAudit {
                    key,
                    pending: conn.pending_cost(),
                    closing: conn.closing.is_some(),
                    wants_read: conn.wants_read(),
                    has_relay: conn.relay.is_some(),
                    relayed: conn.relayed(),
                });
            }
        }
        audit
    }

    /// Every connection's socket with its slab key (its token).
    pub fn conn_streams(&self) -> impl Iterator<Item = (usize, &N::Stream)> + '_ {
        self.sources.iter().filter_map(|(key, e)| match &e.source {
            Source::Conn(conn) if conn.closing.is_none() => Some((key, &conn.stream)),
            _ => None,
        })
    }
}
