//! The non-blocking toolkit: the few socket routines that the server's
//! [`MioNet`](super::mio::MioNet), the clients (`send`, `chat`, `talk`) and
//! the load generator (`bench`) each need, written once so that each trap is
//! solved in one place.
//!
//! - Connecting: [`connect_nonblocking`] starts a connect and registers the
//!   stream; [`connect_result`] tells, after an event, whether it is up
//!   (`take_error()` first, then `peer_addr()`: docs/pitfalls.md,
//!   "Non-blocking connect"); [`connect_error`] names the address in an
//!   error; [`CONNECT_TIMEOUT`] bounds how long a tool waits.
//! - Waiting: [`poll_once`], a `Poll::poll` for which `EINTR` is an empty
//!   wake-up rather than an error (docs/pitfalls.md, "Signals in a poll loop").
//! - Reading: [`drain`], the read-until-`WouldBlock` loop every
//!   edge-triggered stream needs, with a budget and the FIN guard.
//! - File descriptors: [`raise_fd_limit`] and the two reserves it is given.
//!
//! The server's reactor reaches the OS through the [`Net`](super::Net) seam
//! so that the simulation can stand in for it; these helpers are what
//! `MioNet` and the tools outside the reactor call on the real sockets.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Duration;

use log::debug;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

use super::{interrupted, read_once, ReadOutcome};
use crate::config;

/// How long the tools wait for TCP connections to be established: `chat`
/// and `talk` for their one connection, `bench` for all of its connections
/// together. (`send` bounds its whole exchange with `--timeout` instead.)
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors the server keeps aside from `--max-conns`: besides its
/// listening sockets (counted apart), the poll instance, the signal pipe,
/// stdio, the trace file, a Redis link and headroom for `accept`, so that the
/// clean "server full" path is hit before `accept` fails with EMFILE.
pub const SERVER_FD_RESERVE: usize = 32;

/// File descriptors the load generator needs beyond one per connection:
/// stdio and the poll instance. It accepts nothing and opens no file, so it
/// needs less headroom than the server.
pub const BENCH_FD_RESERVE: usize = 16;

/// Start a non-blocking TCP connect to `addr` and register the stream under
/// `token` for READABLE and WRITABLE: it turns writable when the connect has
/// ended, one way or the other, and then [`connect_result`] says which. The
/// connection does not exist yet when this returns. An error is returned as
/// the OS gave it: each tool words it (see [`connect_error`]).
pub fn connect_nonblocking(
    registry: &Registry,
    addr: SocketAddr,
    token: Token,
) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
    Ok(stream)
}

/// After an event on a stream that is still connecting: has the connect
/// finished?
///
/// `Ok(Some(peer))` once connected; `Ok(None)` when the event was spurious
/// and the connect is still in progress (keep waiting); `Err` when it failed,
/// with the reason the kernel recorded (refused, unreachable, ...).
///
/// The order matters: `take_error()` (`getsockopt(SO_ERROR)`) first, because
/// a failed connect reports its reason only there; then `peer_addr()`
/// (`getpeername`), which succeeds only on a connected socket and fails with
/// `ENOTCONN` while the handshake is still under way.
pub fn connect_result(stream: &TcpStream) -> io::Result<Option<SocketAddr>> {
    if let Some(err) = stream.take_error()? {
        return Err(err);
    }
    match stream.peer_addr() {
        Ok(peer) => Ok(Some(peer)),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(None),
        Err(e) => Err(e),
    }
}

/// "connect to ADDR: WHY", keeping the error's kind.
pub fn connect_error(addr: SocketAddr, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("connect to {addr}: {err}"))
}

/// One `Poll::poll`, at most `timeout` (`None`: wait for events only), that
/// treats `EINTR` as a wake-up with no events: a signal interrupted the wait,
/// and the caller's loop checks its deadline and flags and polls again.
pub fn poll_once(
    poll: &mut Poll,
    events: &mut Events,
    timeout: Option<Duration>,
) -> io::Result<()> {
    match poll.poll(events, timeout) {
        Err(e) if interrupted(&e) => {
            events.clear();
            Ok(())
        }
        other => other,
    }
}

/// Raise the soft limit on open files (`RLIMIT_NOFILE`) toward `wanted`, up
/// to the hard limit, and return the soft limit now in force. It is never
/// lowered. Many systems start processes with a soft limit of 1024 and a far
/// higher hard one, so a server or bench with thousands of sockets raises it
/// itself rather than asking the user to.
pub fn raise_fd_limit(wanted: u64) -> io::Result<u64> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if soft >= wanted || hard <= soft {
        return Ok(soft);
    }
    let raised = wanted.min(hard);
    match rlimit::setrlimit(rlimit::Resource::NOFILE, raised, hard) {
        Ok(()) => {
            debug!("raised the fd limit from {soft} to {raised}");
            Ok(raised)
        }
        Err(e) => {
            debug!("could not raise the fd limit from {soft} to {raised}: {e}");
            Ok(soft)
        }
    }
}

/// The soft limit on open files (`RLIMIT_NOFILE`) now in force.
pub fn fd_limit() -> io::Result<u64> {
    Ok(rlimit::getrlimit(rlimit::Resource::NOFILE)?.0)
}

/// Process-wide set-up for `sockloop serve`, done once before any loop is
/// bound: raise the fd limit for `max_conns` connections, `endpoints`
/// sockets and echo's relays ([`config::MAX_RELAYS`] pipes). Each loop then
/// only clamps its own `--max-conns` below the limit in force, and sizes
/// its relays to what is left ([`Net::fd_budget`](super::Net::fd_budget)),
/// so that several loops in one process would share one limit instead of
/// each raising it for itself (such a process gives each loop its share of
/// the connections). Signals need no such step: each loop registers its own
/// signal-hook pipe, and every registered pipe hears the signal.
pub fn prepare_process_for_serving(max_conns: usize, endpoints: usize) {
    let wanted = (max_conns + endpoints + SERVER_FD_RESERVE + 2 * config::MAX_RELAYS) as u64;
    if let Err(e) = raise_fd_limit(wanted) {
        debug!("could not read the fd limit: {e}");
    }
}

/// Why [`drain`] stopped reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// The socket has nothing more for now: the next byte to arrive raises
    /// a new readable event.
    Empty,
    /// The budget is spent and bytes may be left. No new event will come
    /// for them (the edge has fired), so read again next turn without
    /// waiting: put the source on a still-ready list or poll with timeout 0.
    BudgetSpent,
    /// The peer shut down its sending side: nothing more will ever come.
    Eof,
    /// The consumer asked to stop (it has read all it wants).
    Stopped,
}

/// Read from a non-blocking stream until it would block, into `buf`, handing
/// each chunk to `on_data`, for at most `budget` bytes (fairness: one busy
/// stream must not keep the loop from the others). `on_data` returns `false`
/// to stop reading. A read error (a reset) is returned after the chunks
/// before it were handed over.
///
/// A read that returns fewer bytes than asked for means the kernel had no
/// more: with edge-triggered readiness the next arrival raises a new event,
/// so the read that would only say `WouldBlock` is skipped. Not when
/// `read_closed` (the event flagged the peer's FIN, or an error): a FIN
/// raises no new edge of its own, so a short read then does not prove the
/// stream is drained, and reading goes on until the end of stream itself is
/// seen. A caller that does not know (a retry without an event) passes
/// `true`, which costs at most one read.
pub fn drain<R: Read>(
    src: &mut R,
    buf: &mut [u8],
    mut budget: usize,
    read_closed: bool,
    mut on_data: impl FnMut(&[u8]) -> bool,
) -> io::Result<Drained> {
    loop {
        let want = budget.min(buf.len());
        if want == 0 {
            return Ok(Drained::BudgetSpent);
        }
        match read_once(src, &mut buf[..want])? {
            ReadOutcome::Data(n) => {
                budget -= n;
                if !on_data(&buf[..n]) {
                    return Ok(Drained::Stopped);
                }
                if n < want && !read_closed {
                    return Ok(Drained::Empty);
                }
            }
            ReadOutcome::WouldBlock => return Ok(Drained::Empty),
            ReadOutcome::Eof => return Ok(Drained::Eof),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::net::fake::ScriptedReader as Script;

    /// Drain `s` through a buffer of `buf_len` bytes, consuming everything:
    /// how it ended, and the bytes handed over.
    fn drain_all(
        s: &mut Script,
        buf_len: usize,
        budget: usize,
        read_closed: bool,
    ) -> (io::Result<Drained>, usize) {
        let mut got = 0;
        let end = drain(s, &mut vec![0u8; buf_len], budget, read_closed, |d| {
            got += d.len();
            true
        });
        (end, got)
    }

    fn eof() -> io::Result<usize> {
        Ok(0)
    }

    fn would_block() -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }

    #[test]
    fn after_a_fin_a_short_read_does_not_end_the_drain() {
        // Data and the FIN in one edge: the short read must not be taken
        // for "drained", or the end of stream is never seen (no new edge).
        let mut s = Script::new(vec![Ok(3), eof()]);
        let (end, got) = drain_all(&mut s, 8, 1000, true);
        assert_eq!((end.unwrap(), got, s.reads), (Drained::Eof, 3, 2));
    }

    #[test]
    fn without_a_fin_a_short_read_ends_the_drain_at_once() {
        let mut s = Script::new(vec![Ok(3), eof()]);
        let (end, _) = drain_all(&mut s, 8, 1000, false);
        let no_read_that_would_block = (Drained::Empty, 1);
        assert_eq!((end.unwrap(), s.reads), no_read_that_would_block);
        let mut s = Script::new(vec![Ok(8), Ok(8), would_block()]);
        let (end, _) = drain_all(&mut s, 8, 1000, false);
        assert_eq!((end.unwrap(), s.reads), (Drained::Empty, 3));
    }

    #[test]
    fn the_budget_bounds_every_read_and_says_it_was_spent() {
        let mut s = Script::new(vec![Ok(8), Ok(2)]);
        let (end, got) = drain_all(&mut s, 8, 10, true);
        assert_eq!((end.unwrap(), got, s.reads), (Drained::BudgetSpent, 10, 2));
    }

    #[test]
    fn the_consumer_may_stop_and_errors_come_after_the_data() {
        let mut s = Script::new(vec![Ok(4), Ok(4)]);
        let end = drain(&mut s, &mut [0u8; 4], 100, true, |_| false).unwrap();
        assert_eq!((end, s.reads), (Drained::Stopped, 1));
        let mut s = Script::new(vec![
            Ok(4),
            Err(io::ErrorKind::Interrupted.into()),
            Err(io::ErrorKind::ConnectionReset.into()),
        ]);
        let (end, got) = drain_all(&mut s, 4, 100, true);
        let err = end.unwrap_err();
        assert_eq!((err.kind(), got), (io::ErrorKind::ConnectionReset, 4));
    }
}
