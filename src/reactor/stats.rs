//! The server's counters: what the limits and the peers did. Plain integers
//! bumped on the loop thread (no atomics: one thread owns them), logged at
//! info every `--stats-interval` and once at shutdown.

use std::fmt;

/// Counters since start-up. `conns_open` is a level, the rest only grow.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections open now.
    pub conns_open: u64,
    /// TCP connections accepted and served.
    pub conns_accepted: u64,
    /// TCP connections accepted and closed at once because of `--max-conns`.
    pub conns_rejected: u64,
    /// Bytes read from TCP connections.
    pub bytes_in: u64,
    /// Bytes written to TCP connections.
    pub bytes_out: u64,
    /// Of `bytes_out`, the echo bytes that went back through a relay (socket
    /// to pipe to socket in the kernel), never copied into the process.
    pub bytes_spliced: u64,
    /// Echo relays (pipes) open now, lent to streams or idle.
    pub relays_open: u64,
    /// The most relays open at the end of a turn (at most
    /// `config::MAX_RELAYS`: past it, streams copy).
    pub relays_peak: u64,
    /// Chat lines queued to clients (one per recipient).
    pub lines_relayed: u64,
    /// Chat clients disconnected because their output passed `--out-limit`.
    pub slow_disconnects: u64,
    /// TCP connections closed after `--idle-timeout` of silence.
    pub idle_closes: u64,
    /// Times accepting stopped for a while because file descriptors ran out.
    pub accept_backoffs: u64,
    /// `epoll_ctl` re-registrations (interest changes). Steady-state echo
    /// needs none: WRITABLE is armed only when a write comes up short.
    pub interest_changes: u64,
    /// UDP datagrams received.
    pub datagrams_in: u64,
    /// UDP replies sent.
    pub datagrams_out: u64,
    /// UDP datagrams dropped by the source-port guard.
    pub datagrams_guarded: u64,
    /// UDP replies dropped because the reply queue was full or sending failed.
    pub datagrams_dropped: u64,
    /// Pending output of all connections together now, as `--max-pending`
    /// counts it.
    pub pending_bytes: u64,
    /// The largest `pending_bytes` seen at the end of a turn.
    pub pending_peak: u64,
    /// Deadlines held by the loop's timers (never more than open sources).
    pub timers: u64,
    /// The bus between servers, with `--cluster`.
    pub bus: Option<BusStats>,
}

/// The bus counters of `--cluster`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BusStats {
    /// Messages published to the other servers.
    pub published: u64,
    /// Messages received from them.
    pub received: u64,
    /// Messages received and dropped: malformed, of an unknown version,
    /// stale, or contradicting what this server knows.
    pub dropped: u64,
    /// Messages not published because the link was down or full.
    pub publish_dropped: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conns_open={} conns_accepted={} conns_rejected={} bytes_in={} bytes_out={} \
             bytes_spliced={} relays_open={} relays_peak={} lines_relayed={} slow_disconnects={} idle_closes={} \
             accept_backoffs={} interest_changes={} \
             datagrams_in={} datagrams_out={} datagrams_guarded={} datagrams_dropped={} \
             pending_bytes={} pending_peak={} timers={}",
            self.conns_open,
            self.conns_accepted,
            self.conns_rejected,
            self.bytes_in,
            self.bytes_out,
            self.bytes_spliced,
            self.relays_open,
            self.relays_peak,
            self.lines_relayed,
            self.slow_disconnects,
            self.idle_closes,
            self.accept_backoffs,
            self.interest_changes,
            self.datagrams_in,
            self.datagrams_out,
            self.datagrams_guarded,
            self.datagrams_dropped,
            self.pending_bytes,
            self.pending_peak,
            self.timers,
        )?;
        if let Some(bus) = &self.bus {
            write!(
                f,
                " bus_published={} bus_received={} bus_dropped={} bus_publish_dropped={}",
                bus.published, bus.received, bus.dropped, bus.publish_dropped
            )?;
        }
        Ok(())
    }
}
