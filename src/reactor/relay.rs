//! Echo's zero-copy path: a streaming echo connection borrows a *relay* (a
//! pipe) and its bytes go socket to pipe to socket with `splice`, so the
//! process never copies them; the kernel hands the same pages from the
//! receive queue to the send queue. This module owns the pool of relays and
//! the two steps that move bytes through one; the echo session
//! ([`EchoSession`]) keeps counting them, so `--out-limit`, `--max-pending`
//! and the order of the bytes hold exactly as on the copying path.
//!
//! When: a connection starts on the copying path (read into the loop's
//! buffer, write straight back). A read that fills the whole buffer says the
//! client is streaming, and the connection takes a relay from the pool. It
//! keeps it while every turn of its reading moves bulk, and gives it back
//! after a turn that moved little (its traffic turned small, or stopped) or
//! when it ends, so a few relays serve many streams in turn, and small
//! request-response traffic never pays a pipe's extra system calls.
//!
//! A relay holds one pipe's worth, not `--out-limit`'s: when the socket is
//! full with bytes still in the relay (the client stopped keeping up), the
//! bytes are read back into the session's backlog and the relay goes back
//! to the pool ([`Server::spill_relay`]); the stream waits as a copying one
//! does, and the relay goes to one that flows.
//!
//! Two traps, both about `splice` saying less than `read` does:
//! - splicing from a socket into a pipe answers "would block" both when the
//!   socket is empty and when the pipe has no room, so a relay is filled
//!   only while it is empty (the session's read allowance is 0 otherwise);
//! - a fill that took less than asked does not prove the socket drained (a
//!   pipe holds 16 pages however full each is), so a relay reads on until
//!   "would block", where the copying path may stop at a short read.

use std::io;
use std::time::Instant;

use log::{debug, trace};

use crate::config;
use crate::net::{interrupted, would_block, Net, ReadOutcome, WriteOutcome};
use crate::protocol::echo::EchoSession;

use super::source::{CloseReason, Entry, Proto, Source};
use super::{Server, WriteStop};

/// The relays: the open but unused ones, and how many are open at all.
pub(super) struct RelayPool<R> {
    idle: Vec<R>,
    /// Relays open, in use or idle.
    open: usize,
    /// At most this many open at once (what the fd limit leaves, up to
    /// [`config::MAX_RELAYS`]).
    limit: usize,
    /// Opening one failed (out of descriptors): no new attempt until a
    /// descriptor is freed (a relay or a connection closes), so that a full
    /// descriptor table costs no `pipe2` per read.
    blocked: bool,
}

impl<R> RelayPool<R> {
    /// An empty pool that may open up to `limit` relays.
    pub(super) fn new(limit: usize) -> RelayPool<R> {
        RelayPool {
            idle: Vec::with_capacity(config::IDLE_RELAYS_KEPT.min(limit)),
            open: 0,
            limit,
            blocked: false,
        }
    }

    /// A relay for a stream: an idle one, or a new one while the limit
    /// allows; `None` and the stream copies.
    pub(super) fn take<N: Net<Relay = R>>(&mut self, net: &mut N) -> Option<R> {
        if let Some(relay) = self.idle.pop() {
            return Some(relay);
        }
        if self.open >= self.limit || self.blocked {
            return None;
        }
        match net.open_relay() {
            Ok(relay) => {
                self.open += 1;
                Some(relay)
            }
            Err(e) => {
                debug!("no relay for a stream, it copies instead: {e}");
                self.blocked = true;
                None
            }
        }
    }

    /// A stream is done with its relay. An empty one is kept for the next
    /// stream while few are idle; one that still holds bytes (its
    /// connection closed mid-stream) or one too many is closed.
    pub(super) fn give_back(&mut self, relay: R, empty: bool) {
        if empty && self.idle.len() < config::IDLE_RELAYS_KEPT {
            self.idle.push(relay);
        } else {
            drop(relay);
            self.open -= 1;
            self.blocked = false;
        }
    }

    /// Connections closed: descriptors are free again, so opening a relay
    /// is worth another try.
    pub(super) fn descriptors_freed(&mut self) {
        self.blocked = false;
    }

    /// Relays open now, in use or idle.
    pub(super) fn open(&self) -> usize {
        self.open
    }

    /// Relays open and unused.
    pub(super) fn idle(&self) -> usize {
        self.idle.len()
    }

    /// The most that may be open at once.
    pub(super) fn limit(&self) -> usize {
        self.limit
    }
}

/// One fill of an empty relay from the socket, with EINTR retried and
/// "would block" as an outcome: [`read_once`](crate::net::read_once) for a
/// relay.
pub(super) fn fill_relay<N: Net>(
    net: &mut N,
    stream: &N::Stream,
    relay: &mut N::Relay,
    max: usize,
) -> io::Result<ReadOutcome> {
    loop {
        match net.relay_in(stream, relay, max) {
            Ok(0) => return Ok(ReadOutcome::Eof),
            Ok(n) => return Ok(ReadOutcome::Data(n)),
            Err(e) if would_block(&e) => return Ok(ReadOutcome::WouldBlock),
            Err(e) if interrupted(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Send what waits in the relay back to the socket, until the relay is
/// empty, the socket is full or `budget` bytes went. Returns the bytes
/// written and why it stopped, as [`write_out`](super::tcp::write_out) does.
pub(super) fn drain_relay<N: Net>(
    net: &mut N,
    stream: &N::Stream,
    relay: &mut N::Relay,
    session: &mut EchoSession,
    budget: usize,
) -> io::Result<(usize, WriteStop)> {
    let mut written = 0;
    loop {
        let waiting = session.relayed();
        if waiting == 0 {
            return Ok((written, WriteStop::Drained));
        }
        if written >= budget {
            return Ok((written, WriteStop::Budget));
        }
        let outcome = match net.relay_out(relay, stream, waiting) {
            // The session counted bytes the pipe does not have: nothing
            // could ever drain them, so fail the connection, not the loop.
            Ok(0) => return Err(io::Error::other("echo relay is empty but owes bytes")),
            Ok(w) => WriteOutcome::Wrote(w),
            Err(e) if would_block(&e) => WriteOutcome::WouldBlock,
            Err(e) if interrupted(&e) => continue,
            Err(e) => return Err(e),
        };
        match outcome {
            WriteOutcome::Wrote(w) => {
                session.relay_drained(w);
                written += w;
                // Unlike a short writev, a short splice is retried: the
                // socket's "would block" is the only sure sign it is full.
            }
            WriteOutcome::WouldBlock => return Ok((written, WriteStop::SocketFull)),
        }
    }
}

/// How one step of reading through a relay ended.
pub(super) enum RelayRead {
    /// `n` bytes came in (and went back out as far as the socket took them):
    /// read on, the socket may have more.
    Moved(usize),
    /// The socket is drained or ended; the relay went back to the pool.
    Stopped,
    /// The connection failed and is closing.
    Closed,
}

impl<N: Net> Server<N> {
    /// One fill of connection `key`'s relay, at most `want` bytes, sent
    /// straight back out: the relay's counterpart of reading into the read
    /// buffer and writing from it.
    pub(super) fn read_through_relay(&mut self, key: usize, want: usize) -> RelayRead {
        let Source::Conn(conn) = &mut self.sources[key].source else {
            return RelayRead::Stopped;
        };
        let (Proto::Echo(session), Some(relay)) = (&mut conn.proto, conn.relay.as_mut()) else {
            return RelayRead::Stopped;
        };
        match fill_relay(&mut self.net, &conn.stream, relay, want) {
            Ok(ReadOutcome::Data(n)) => {
                conn.bytes_in += n as u64;
                conn.last_input = self.now;
                self.stats.bytes_in += n as u64;
                if let Some(share) = conn.total_share.as_mut() {
                    *share -= n; // n <= want <= share
                }
                session.relay_filled(n);
                self.pending_total += n;
                let from = self.trace.as_ref().map(|_| Instant::now());
                let drained = drain_relay(
                    &mut self.net,
                    &conn.stream,
                    relay,
                    session,
                    config::WRITE_BUDGET_PER_TURN,
                );
                match drained {
                    Ok((written, stop)) => {
                        conn.bytes_out += written as u64;
                        self.stats.bytes_out += written as u64;
                        self.stats.bytes_spliced += written as u64;
                        self.pending_total -= written;
                        if let (Some(t), Some(from)) = (self.trace.as_mut(), from) {
                            t.write(from, Instant::now(), key, written, n);
                        }
                        if stop == WriteStop::SocketFull && !self.spill_relay(key) {
                            return RelayRead::Closed;
                        }
                        if stop != WriteStop::Drained {
                            // The rest leaves at the flush, or on WRITABLE.
                            self.queue_flush(key);
                        }
                        RelayRead::Moved(n)
                    }
                    Err(err) => {
                        self.close_conn(key, CloseReason::Error(err.to_string()));
                        RelayRead::Closed
                    }
                }
            }
            Ok(ReadOutcome::Eof) => {
                trace!("token={key}: end of input");
                conn.saw_eof = true;
                if let Some(t) = self.trace.as_mut() {
                    t.instant("eof", key, "");
                }
                session.handle_eof();
                self.return_relay(key);
                self.queue_flush(key);
                RelayRead::Stopped
            }
            // The relay was empty, so this is the socket: drained. Whether
            // the stream keeps its relay for its next bytes is the caller's
            // call (`keep_or_return_relay`).
            Ok(ReadOutcome::WouldBlock) => RelayRead::Stopped,
            Err(err) => {
                self.close_conn(key, CloseReason::Error(err.to_string()));
                RelayRead::Closed
            }
        }
    }

    /// The client of connection `key` stopped keeping up (its socket is
    /// full with bytes still in the relay): move those bytes into the
    /// session's backlog, one copy, and give the relay back. The stream
    /// then waits as a copying one does, up to the whole `--out-limit`
    /// instead of one pipe, and the relay goes to a stream that flows.
    /// Returns false if the connection failed and is closing.
    pub(super) fn spill_relay(&mut self, key: usize) -> bool {
        let Source::Conn(conn) = &mut self.sources[key].source else {
            return true;
        };
        let (Proto::Echo(session), Some(relay)) = (&mut conn.proto, conn.relay.as_mut()) else {
            return true;
        };
        while session.relayed() > 0 {
            let want = session.relayed().min(self.read_buf.len());
            match self.net.relay_take(relay, &mut self.read_buf[..want]) {
                Ok(n) if n > 0 => session.relay_spilled(&self.read_buf[..n], &mut self.pool),
                Err(e) if interrupted(&e) => {}
                // The pipe holds fewer bytes than the session counted:
                // nothing could deliver them, so fail the connection.
                Ok(_) | Err(_) => {
                    let err = "echo relay is empty but owes bytes";
                    self.close_conn(key, CloseReason::Error(err.into()));
                    return false;
                }
            }
        }
        self.return_relay(key);
        true
    }

    /// After a turn's reading: a stream that moved less than
    /// [`config::RELAY_KEEP_MIN`] in it has turned small (or stopped), and
    /// gives its empty relay back; one still moving bulk keeps it, so that
    /// its next burst goes through the kernel from its first byte.
    pub(super) fn keep_or_return_relay(&mut self, key: usize, moved: usize) {
        let Some(Entry {
            source: Source::Conn(conn),
            ..
        }) = self.sources.get(key)
        else {
            return;
        };
        if conn.relay.is_some() && conn.relayed() == 0 && moved < config::RELAY_KEEP_MIN {
            self.return_relay(key);
        }
    }

    /// Connection `key` is done with its relay (its stream turned small or
    /// ended): back to the pool, which keeps it only if it holds no byte.
    pub(super) fn return_relay(&mut self, key: usize) {
        let Source::Conn(conn) = &mut self.sources[key].source else {
            return;
        };
        if let Some(relay) = conn.relay.take() {
            let empty = conn.relayed() == 0;
            self.relays.give_back(relay, empty);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::sim::{Faults, SimNet, SimRng};

    fn net(emfile: u32) -> SimNet {
        let faults = Faults {
            emfile,
            ..Faults::default()
        };
        SimNet::new(SimRng::seeded(1), faults, Vec::new())
    }

    #[test]
    fn the_pool_opens_up_to_its_limit_and_keeps_few_idle() {
        let mut net = net(0);
        let mut pool = RelayPool::new(config::IDLE_RELAYS_KEPT + 2);
        let lent: Vec<_> = std::iter::from_fn(|| pool.take(&mut net)).collect();
        assert_eq!(lent.len(), config::IDLE_RELAYS_KEPT + 2, "up to the limit");
        assert_eq!(net.relays_open(), pool.open());
        for relay in lent {
            pool.give_back(relay, true);
        }
        assert_eq!(pool.idle(), config::IDLE_RELAYS_KEPT);
        assert_eq!(pool.open(), config::IDLE_RELAYS_KEPT, "the rest are closed");
        assert_eq!(net.relays_open(), config::IDLE_RELAYS_KEPT);
        // One that still holds bytes is closed, never lent again.
        let relay = pool.take(&mut net).unwrap();
        pool.give_back(relay, false);
        assert_eq!(pool.idle(), config::IDLE_RELAYS_KEPT - 1);
        assert_eq!(net.relays_open(), pool.open());
    }

    #[test]
    fn after_a_failed_open_the_pool_waits_for_a_freed_descriptor() {
        let mut net = net(1000);
        let mut pool = RelayPool::new(4);
        assert!(pool.take(&mut net).is_none(), "pipe2 failed with EMFILE");
        net.faults.emfile = 0;
        let opened = net.counters.relays_opened;
        assert!(pool.take(&mut net).is_none(), "no pipe2 per read meanwhile");
        assert_eq!(net.counters.relays_opened, opened);
        pool.descriptors_freed();
        assert!(
            pool.take(&mut net).is_some(),
            "tried again once a descriptor was freed"
        );
        assert_eq!(pool.open(), 1);
    }
}
