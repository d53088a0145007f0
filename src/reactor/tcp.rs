//! TCP connections: reading until `WouldBlock` (within a budget) into the
//! loop's one read buffer and handing the bytes to the connection's sans-IO
//! state machine; writing queued output at the end of the turn and arming
//! WRITABLE only while bytes remain; and the deferred close: a connection is
//! marked closing at once and leaves the slab only at the sweep, after the
//! whole batch of events. Shutdown's lingering close lives here too.

use std::io::{self, IoSlice};
use std::time::Instant;

use log::{debug, trace};
use mio::Token;
use slab::Slab;

use crate::buffer::BufferPool;
use crate::config;
use crate::net::toolkit::{drain, Drained};
use crate::net::{read_once, write_once, Net, ReadOutcome, WriteOutcome};
use crate::protocol::chat::LeaveReason;

use super::relay::{drain_relay, RelayRead};
use super::source::{client_id, CloseReason, Conn, Entry, Proto, Source};
use super::{Server, ServerPhase, WriteStop};

impl<N: Net> Server<N> {
    /// Read until the socket would block, the protocol pauses input, or the
    /// turn's budget is spent; feed every chunk to the protocol.
    pub(super) fn conn_read(&mut self, key: usize, read_closed: bool) {
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
            if self.phase != ServerPhase::Running {
                return; // draining: no new input, only flushing
            }
            // Echo input becomes pending output byte for byte, so echo reads
            // only what fits under both its own backlog bound and the bound
            // on all pending output together. Chat output is bounded by
            // disconnecting slow clients instead (see `settle_max_pending`).
            let headroom = self.config.max_pending.saturating_sub(self.pending_total);
            let allowance = match &conn.proto {
                Proto::Echo(e) => e.read_allowance(),
                Proto::Chat(c) if c.finishing => 0,
                Proto::Chat(_) => usize::MAX,
                // Reads nothing: once its line is out, the lingering close
                // reads and throws away whatever the client sent.
                Proto::Daytime(_) => 0,
            };
            let allowance_now = match &conn.proto {
                Proto::Echo(_) => allowance
                    .min(headroom)
                    .min(conn.total_share.unwrap_or(usize::MAX)),
                Proto::Chat(_) | Proto::Daytime(_) => allowance,
            };
            let want = allowance_now.min(budget).min(self.read_buf.len());
            if want == 0 {
                if allowance_now > 0 {
                    // Budget spent, not the socket: come back next turn.
                    self.still_ready.push((key, serial));
                } else if allowance > 0 {
                    // Paused at --max-pending (or its share of the room
                    // under it is used up): `settle_max_pending` resumes it
                    // once the total is under the bound again.
                    conn.total_share = None;
                    if !conn.paused_for_total {
                        trace!("token={key}: input paused (all pending output at max-pending)");
                        conn.paused_for_total = true;
                        self.paused_for_total.push((key, serial));
                    }
                } else {
                    trace!(
                        "token={key}: input paused (backlog at out-limit, relay busy or finishing)"
                    );
                }
                break;
            }
            if conn.relay.is_some() {
                match self.read_through_relay(key, want) {
                    RelayRead::Moved(n) => {
                        budget -= n;
                        continue;
                    }
                    RelayRead::Stopped => break,
                    RelayRead::Closed => return,
                }
            }
            match read_once(&mut self.net.io(&conn.stream), &mut self.read_buf[..want]) {
                Ok(ReadOutcome::Data(n)) => {
                    conn.bytes_in += n as u64;
                    conn.last_input = self.now;
                    self.stats.bytes_in += n as u64;
                    budget -= n;
                    let data = &self.read_buf[..n];
                    match &mut conn.proto {
                        Proto::Echo(e) => {
                            if let Some(share) = conn.total_share.as_mut() {
                                *share -= n; // n <= want <= share
                            }
                            // Nothing queued before these bytes: send them
                            // straight from the read buffer, and keep only
                            // what the socket did not take. Streaming then
                            // copies nothing, and a request-response echo
                            // costs one read and one write as before.
                            let mut rest = data;
                            if e.pending() == 0 {
                                let from = self.trace.as_ref().map(|_| Instant::now());
                                match write_once(
                                    &mut self.net.io(&conn.stream),
                                    &[IoSlice::new(data)],
                                ) {
                                    Ok(WriteOutcome::Wrote(w)) => {
                                        conn.bytes_out += w as u64;
                                        self.stats.bytes_out += w as u64;
                                        rest = &data[w..];
                                        if let (Some(t), Some(from)) = (self.trace.as_mut(), from) {
                                            t.write(from, Instant::now(), key, w, n);
                                        }
                                    }
                                    Ok(WriteOutcome::WouldBlock) => {}
                                    Err(err) => {
                                        self.close_conn(key, CloseReason::Error(err.to_string()));
                                        return;
                                    }
                                }
                            }
                            if !rest.is_empty() {
                                e.handle_input(rest, &mut self.pool);
                                self.pending_total += rest.len();
                                self.queue_flush(key);
                            } else if n == self.read_buf.len() && e.may_relay() {
                                // A read that filled the whole buffer, all
                                // sent: the client streams, and its next
                                // bytes take the kernel's path.
                                conn.relay = self.relays.take(&mut self.net);
                            }
                        }
                        Proto::Chat(_) => {
                            let id = client_id(key, serial);
                            self.hub.handle_input(id, &self.read_buf[..n]);
                            // The turn's lines are delivered together at the
                            // flush, a run to one room member by member
                            // (`Delivery::apply_all`); sooner only if many
                            // wait, so that the hub's queue stays bounded.
                            if self.hub.pending_effects() >= config::EFFECTS_BEFORE_DELIVERY {
                                self.deliver_chat();
                            }
                        }
                        // Its allowance is 0, so no read reaches here; were
                        // one to, RFC 867 says input is thrown away.
                        Proto::Daytime(_) => {}
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
                    conn.saw_eof = true;
                    if let Some(t) = self.trace.as_mut() {
                        t.instant("eof", key, "");
                    }
                    match &mut conn.proto {
                        Proto::Echo(e) => {
                            e.handle_eof();
                            self.queue_flush(key);
                        }
                        Proto::Chat(_) => {
                            let id = client_id(key, serial);
                            self.hub.handle_eof(id);
                            self.deliver_chat();
                            self.queue_flush(key);
                        }
                        Proto::Daytime(_) => self.queue_flush(key),
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
        self.keep_or_return_relay(key, config::READ_BUDGET_PER_TURN - budget);
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
    pub(super) fn queue_flush(&mut self, key: usize) {
        queue_flush(&mut self.sources, &mut self.flush_list, key);
    }

    /// Write every connection that got output this turn. Runs after all
    /// events, so several chat lines queued in one turn leave in one writev.
    pub(super) fn flush_pending(&mut self) {
        // Effects the hub queued outside a hub call of ours (leave notices
        // of connections closed since) are delivered first; and again after
        // each write, which may close a connection.
        self.deliver_chat();
        while let Some(key) = self.flush_list.pop() {
            self.deliver_chat();
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
            let cost_before = conn.pending_cost();
            let relayed_before = conn.relayed();
            let result = write_out(&mut self.net, conn, &mut self.pool);
            self.pending_total -= cost_before - conn.pending_cost();
            self.stats.bytes_spliced += (relayed_before - conn.relayed()) as u64;
            match result {
                Ok((written, stop)) => {
                    self.stats.bytes_out += written as u64;
                    if let (Some(t), Some((from, pending))) = (self.trace.as_mut(), traced) {
                        t.write(from, Instant::now(), key, written, pending);
                    }
                    if stop == WriteStop::Budget {
                        // Budget spent, not the socket: write again next turn.
                        trace!("token={key}: write budget spent, output left");
                        self.still_ready.push((key, serial));
                    }
                    if stop == WriteStop::SocketFull && !self.spill_relay(key) {
                        continue;
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
                if conn.saw_eof {
                    // The peer said it is done sending: nothing unread can
                    // follow, so closing cannot turn into a reset.
                    let reason = match self.phase {
                        ServerPhase::Running => CloseReason::Done,
                        ServerPhase::Draining { .. } => CloseReason::Shutdown,
                    };
                    self.close_conn(key, reason);
                } else {
                    self.begin_linger(key, serial);
                }
                continue;
            }
            if !was_reading && conn.wants_read() && self.phase == ServerPhase::Running {
                // Echo backlog fell below its bound: reading resumes. Bytes
                // that arrived while we were paused raised their edge back
                // then, so read now instead of waiting for an event. The
                // idle clock restarts: the silence was ours, not the peer's.
                trace!("token={key}: input resumed");
                conn.last_input = self.now;
                self.still_ready.push((key, serial));
            }
            self.refresh_interest(key);
        }
    }

    /// Shutdown: the connection's output is all out. Send our FIN, then read
    /// and discard until the client closes (see `Conn::lingering`).
    pub(super) fn begin_linger(&mut self, key: usize, serial: u64) {
        let Source::Conn(conn) = &mut self.sources[key].source else {
            return;
        };
        trace!("token={key}: output flushed, lingering until the client closes");
        if let Some(t) = self.trace.as_mut() {
            t.instant("linger", key, "");
        }
        if self.net.shutdown_write(&conn.stream).is_err() {
            self.close_conn(key, CloseReason::Shutdown);
            return;
        }
        conn.lingering = true;
        self.refresh_interest(key);
        self.still_ready.push((key, serial));
        // While serving, a lingering close has its own deadline; during
        // shutdown the grace bounds it.
        if self.phase == ServerPhase::Running {
            self.set_deadline(key, Some(self.now + config::LINGER_TIMEOUT));
        }
    }

    /// Read and discard a lingering connection's input until EOF.
    pub(super) fn linger_read(&mut self, key: usize) {
        let Source::Conn(conn) = &mut self.sources[key].source else {
            return;
        };
        // Called without the event's flags: read on to `WouldBlock`
        // (read_closed), which is what a lingering close waits for anyway.
        let bytes_in = &mut conn.bytes_in;
        let drained = drain(
            &mut self.net.io(&conn.stream),
            &mut self.read_buf,
            config::READ_BUDGET_PER_TURN,
            true,
            |discarded| {
                *bytes_in += discarded.len() as u64;
                true
            },
        );
        match drained {
            Ok(Drained::Empty | Drained::Stopped) => {}
            Ok(Drained::BudgetSpent) => {
                let serial = self.sources[key].serial;
                self.still_ready.push((key, serial));
            }
            Ok(Drained::Eof) | Err(_) => {
                let reason = match self.phase {
                    ServerPhase::Running => CloseReason::Done,
                    ServerPhase::Draining { .. } => CloseReason::Shutdown,
                };
                self.close_conn(key, reason);
            }
        }
    }

    /// Re-register a connection only if the interest its state asks for
    /// changed (each change is an `epoll_ctl` syscall).
    pub(super) fn refresh_interest(&mut self, key: usize) {
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
            match self.net.reregister(&mut conn.stream, Token(key), wanted) {
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
    pub(super) fn close_conn(&mut self, key: usize, reason: CloseReason) {
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
        if let Some(relay) = conn.relay.take() {
            // Closed with what it holds, if anything: bytes of this
            // connection must never reach the next stream that borrows it.
            let empty = conn.relayed() == 0;
            self.relays.give_back(relay, empty);
        }
        if reason != CloseReason::Done {
            // Nobody will read what is still queued.
            self.pending_total -= conn.pending_cost();
            conn.discard_output(&mut self.pool);
        }
        if let Some(when) = conn.deadline.take() {
            self.timers.cancel(when, key, serial);
        }
        if conn.paused_for_total {
            conn.paused_for_total = false;
            self.paused_for_total.retain(|&(k, _)| k != key);
        }
        let leave = match &reason {
            CloseReason::TooSlow => LeaveReason::TooSlow,
            CloseReason::IdleTimeout => LeaveReason::IdleTimeout,
            _ => LeaveReason::Disconnected,
        };
        conn.closing = Some(reason);
        self.closing.push(key);
        if is_chat {
            // Its room is told; the notices are delivered by the caller's
            // next `deliver_chat` (at the latest, the turn's flush).
            self.hub.handle_disconnect(client_id(key, serial), leave);
        }
    }

    /// Remove the connections closed this turn from the slab. Dropping the
    /// socket closes the fd, and closing the fd removes it from epoll, so no
    /// explicit deregister syscall is needed.
    pub(super) fn sweep(&mut self) {
        if !self.closing.is_empty() {
            self.relays.descriptors_freed();
        }
        for key in self.closing.drain(..) {
            let entry = self.sources.remove(key);
            let Source::Conn(mut conn) = entry.source else {
                continue;
            };
            self.pending_total -= conn.pending_cost();
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
}

impl<N: Net> Server<N> {
    /// Give a connection its one deadline (`None`: none), replacing the one
    /// it had.
    pub(super) fn set_deadline(&mut self, key: usize, when: Option<Instant>) {
        let serial = self.sources[key].serial;
        let Source::Conn(conn) = &mut self.sources[key].source else {
            return;
        };
        if let Some(old) = std::mem::replace(&mut conn.deadline, when) {
            self.timers.cancel(old, key, serial);
        }
        if let Some(when) = when {
            self.timers.schedule(when, key, serial);
        }
    }

    /// A connection's deadline came: a lingering close is over, or it is
    /// time to check whether the connection has been idle too long.
    pub(super) fn conn_deadline(&mut self, key: usize, serial: u64) {
        let Source::Conn(conn) = &self.sources[key].source else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        let (paused, last_input) = (conn.input_paused_by_server(), conn.last_input);
        if conn.lingering {
            let reason = match self.phase {
                ServerPhase::Running => CloseReason::Done,
                ServerPhase::Draining { .. } => CloseReason::Shutdown,
            };
            self.close_conn(key, reason);
            return;
        }
        let Some(idle) = self.config.idle_timeout else {
            return;
        };
        let next_check = if paused {
            // We stopped reading it, so its silence says nothing; its clock
            // restarts when reading resumes. Look again one period later.
            self.now + idle
        } else if last_input + idle <= self.now {
            debug!("token={key}: idle for {idle:?}");
            self.close_conn(key, CloseReason::IdleTimeout);
            return;
        } else {
            last_input + idle
        };
        debug_assert_eq!(self.sources[key].serial, serial);
        self.set_deadline(key, Some(next_check));
    }

    /// Hold all pending output together within `--max-pending`. Runs after
    /// the turn's flush, when every client that reads has taken what it
    /// could, so only real backlogs count: while the total is past the
    /// bound, or at it with echo input waiting for room, the chat client
    /// with the most pending output is disconnected as too slow (its leave
    /// notices are flushed in turn). Echo needs no such step: it reads only
    /// what fits under the bound, so echo input waits (backpressure, nothing
    /// lost). Once the total is under the bound, every connection paused by
    /// it reads again, each with an equal share of the room left, so that
    /// the first to read cannot take it all, turn after turn, and starve the
    /// others.
    pub(super) fn settle_max_pending(&mut self) {
        let max = self.config.max_pending;
        while self.pending_total > max
            || (self.pending_total == max && !self.paused_for_total.is_empty())
        {
            let Some(victim) = self.largest_chat_backlog() else {
                break;
            };
            debug!(
                "token={victim}: pending output at max-pending ({} > {}): too slow",
                self.pending_total, self.config.max_pending
            );
            self.close_conn(victim, CloseReason::TooSlow);
            self.flush_pending();
        }
        if self.pending_total < max && !self.paused_for_total.is_empty() {
            let now = self.now;
            let each = (max - self.pending_total) / self.paused_for_total.len();
            // Room enough for everyone's full budget: no share needed.
            let share = (each < config::READ_BUDGET_PER_TURN).then_some(each.max(1));
            for (key, serial) in std::mem::take(&mut self.paused_for_total) {
                if let Some(Entry {
                    source: Source::Conn(conn),
                    ..
                }) = self.sources.get_mut(key)
                {
                    trace!("token={key}: input resumed (under max-pending)");
                    conn.paused_for_total = false;
                    conn.total_share = share;
                    conn.last_input = now;
                    self.still_ready.push((key, serial));
                }
            }
        }
    }

    /// The open chat connection with the most pending output, if any has
    /// some. A scan of the slab: it runs only at the `--max-pending` bound.
    fn largest_chat_backlog(&self) -> Option<usize> {
        self.sources
            .iter()
            .filter_map(|(key, e)| match &e.source {
                Source::Conn(c) if c.closing.is_none() && matches!(c.proto, Proto::Chat(_)) => {
                    Some((c.pending_cost(), key))
                }
                _ => None,
            })
            .filter(|&(cost, _)| cost > 0)
            .max()
            .map(|(_, key)| key)
    }
}

pub(super) fn queue_flush<N: Net>(
    sources: &mut Slab<Entry<N>>,
    flush_list: &mut Vec<usize>,
    key: usize,
) {
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
/// block, or the write budget is spent. Returns the bytes written and why it
/// stopped.
pub(super) fn write_out<N: Net>(
    net: &mut N,
    conn: &mut Conn<N>,
    pool: &mut BufferPool,
) -> io::Result<(usize, WriteStop)> {
    // A streaming echo's bytes wait in its relay, and only there (the
    // session never queues in both at once).
    if let (Proto::Echo(session), Some(relay)) = (&mut conn.proto, conn.relay.as_mut()) {
        if session.relayed() > 0 {
            let budget = config::WRITE_BUDGET_PER_TURN;
            let (written, stop) = drain_relay(net, &conn.stream, relay, session, budget)?;
            conn.bytes_out += written as u64;
            return Ok((written, stop));
        }
    }
    let mut written = 0;
    loop {
        let mut iov = [IoSlice::new(&[]); config::MAX_IOVECS];
        let n = conn.output(&mut iov);
        if n == 0 {
            return Ok((written, WriteStop::Drained));
        }
        if written >= config::WRITE_BUDGET_PER_TURN {
            return Ok((written, WriteStop::Budget));
        }
        let offered: usize = iov[..n].iter().map(|s| s.len()).sum();
        // mio implements Write for &TcpStream, so the socket can be written
        // while the output slices still borrow the connection.
        let outcome = write_once(&mut net.io(&conn.stream), &iov[..n])?;
        let WriteOutcome::Wrote(w) = outcome else {
            return Ok((written, WriteStop::SocketFull));
        };
        conn.consume_output(w, pool);
        written += w;
        // A partial write means the send buffer is full: WRITABLE will tell
        // us when it has room, so don't spend a syscall to hear WouldBlock.
        if w < offered {
            return Ok((written, WriteStop::SocketFull));
        }
    }
}
