//! The clients: `send`, `chat` and `talk`, each a small mio loop of its own.
//!
//! They are the tutorial's programs done properly. Each one owns a `mio::Poll`
//! with at most three sources (a socket, stdin, a listener), waits for
//! readiness, and reacts; none of them ever blocks on a socket. What they
//! share lives here and in the helper modules:
//!
//! - [`connect`](fn@connect): resolve the address and start a non-blocking
//!   TCP connect. The connect itself, its check after an event
//!   (`take_error()`, then `peer_addr()`), `poll_once` and the read loop
//!   [`drain`](crate::net::toolkit::drain) come from
//!   [`crate::net::toolkit`], which the server and the load generator use
//!   too.
//! - [`Outbox`]: the bounded queue of bytes waiting for the socket, written
//!   with the same `write_once` helper as the server; `Typing` fills it from
//!   stdin for `chat` and `talk` and watches for a typed `bye`.
//! - [`stdin`]: stdin as a mio source, whatever stdin is (terminal, pipe,
//!   regular file, `/dev/null`).
//! - [`lines`]: making received lines safe to print on a terminal, and the
//!   `bye` watch. Received bytes are split into lines by the server's own
//!   [`LineFramer`](crate::protocol::line::LineFramer), in its splitting
//!   mode.
//! - [`terminal`]: in a terminal, `chat` and `talk` keep an input line with
//!   editing and history (a line editor on a helper thread) and print
//!   received lines above it; with pipes and files, stdout is exactly the
//!   lines received.
//! - [`Deadline`]: the one timer each client needs, turned into a poll timeout
//!   (mio has no timers of its own).
//!
//! # Memory bounds
//!
//! Every client's memory is bounded whatever the peer does. Bytes from stdin
//! wait in the [`Outbox`] (at most [`OUTBOX_LIMIT`] bytes, plus a closing
//! `/quit` or `bye` line): while it is full, the client simply stops reading
//! stdin, so a peer that never reads stalls the typist instead of growing the
//! client. Received bytes are printed as soon as a line is complete; a partial
//! line is kept up to [`MAX_RECEIVED_LINE`] bytes (plus a CR that may precede
//! its LF) and a longer line is printed in pieces of that size.
//! Writing to stdout blocks: when whoever reads our stdout stops reading, the
//! loop stops too, the kernel's socket buffers fill, and the server (or peer)
//! sees a slow reader, which is the honest outcome.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Registry, Token};

use crate::buffer::{BufferPool, ByteQueue};
use crate::config::CLIENT_READ_BUDGET_PER_TURN;
use crate::net::{self, toolkit, ReadOutcome, WriteOutcome};
use lines::ByeWatcher;
use stdin::Stdin;

pub mod chat;
pub mod lines;
pub mod send;
pub mod stdin;
pub mod talk;
pub mod terminal;

/// Whether a client's loop is finished (the answer of each turn).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Done {
    /// Finished: the loop returns.
    Yes,
    /// Not yet: poll again.
    No,
}

/// Bytes read from stdin that may wait for the socket. While the outbox holds
/// this much, stdin is not read.
pub const OUTBOX_LIMIT: usize = 64 * 1024;

/// The longest received line kept whole; a longer one is printed in pieces of
/// this size, so that no byte is lost and memory stays bounded.
pub const MAX_RECEIVED_LINE: usize = 64 * 1024;

/// How long `chat` (after `/quit`) and `talk` (after `bye`) wait for the other
/// side to close the connection before closing it themselves.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Resolve `addr` (`host:port`) and start a non-blocking TCP connect to it,
/// registered under `token` (see [`toolkit::connect_nonblocking`]).
///
/// Returns the stream and the resolved address. The connection does not exist
/// yet: on each event until it does, ask [`toolkit::connect_result`].
pub fn connect(
    addr: &str,
    registry: &Registry,
    token: Token,
) -> io::Result<(TcpStream, SocketAddr)> {
    let resolved = crate::config::resolve(addr)?;
    let stream = toolkit::connect_nonblocking(registry, resolved, token)
        .map_err(|e| toolkit::connect_error(resolved, e))?;
    Ok((stream, resolved))
}

/// After an event on the stream [`connect`](fn@connect) opened to `addr`:
/// the peer once connected, `None` while still connecting, or the failure
/// worded "connect to ADDR: WHY" (see [`toolkit::connect_result`]).
pub fn connected_peer(stream: &TcpStream, addr: SocketAddr) -> io::Result<Option<SocketAddr>> {
    toolkit::connect_result(stream).map_err(|e| toolkit::connect_error(addr, e))
}

/// "connect to ADDR: timed out after N s".
pub fn connect_timeout_error(addr: SocketAddr, after: Duration) -> io::Error {
    let why = format!("timed out after {}", show_secs(after));
    toolkit::connect_error(addr, io::Error::new(io::ErrorKind::TimedOut, why))
}

/// A duration for a person: `2s`, `0.5s`.
pub fn show_secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// The one timer a client loop needs. mio has no timers: the loop passes
/// [`Deadline::poll_timeout`] to `Poll::poll` and, after it returns, asks
/// [`Deadline::expired`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline: poll waits for events only.
    pub fn never() -> Deadline {
        Deadline(None)
    }

    /// `after` from now.
    pub fn after(after: Duration) -> Deadline {
        Deadline(Some(Instant::now() + after))
    }

    /// The timeout for the next `Poll::poll`: the time left, or `None` to wait
    /// for events only.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }
}

/// What [`Typing::move_into`] found in what was typed.
#[derive(Debug)]
pub(crate) enum Typed {
    /// Nothing that ends the conversation (stdin has no more for now, the
    /// outbox is full, or the budget is spent).
    More,
    /// A line `bye`: it and what came before it are in the outbox, unsent;
    /// nothing typed after it is.
    Bye,
    /// stdin ended; an unfinished last line got its LF.
    End,
    /// Sending what was typed failed (the peer is gone).
    SendFailed(io::Error),
}

/// The keyboard side of `chat` and `talk`: stdin as a mio source (once the
/// connection is up), whether it may have bytes, and the watch for a `bye`
/// line. What a `bye` or the end of stdin means is each client's own.
#[derive(Debug, Default)]
pub(crate) struct Typing {
    /// `None` before the connection exists and after the conversation's
    /// last line was queued.
    stdin: Option<Stdin>,
    /// stdin may have bytes for us.
    ready: bool,
    watcher: ByeWatcher,
}

impl Typing {
    /// Read `stdin` from now on. It may already hold input; a directly
    /// polled pipe reports that with an event, a helper thread with a
    /// wake-up, but trying costs one read and saves a turn.
    pub(crate) fn start(&mut self, stdin: Stdin) {
        self.stdin = Some(stdin);
        self.ready = true;
    }

    /// An event said stdin may have bytes.
    pub(crate) fn note_ready(&mut self) {
        self.ready = true;
    }

    /// Typed bytes may wait and the outbox has room for them: the next poll
    /// must not sleep (a turn cut short by its budget, say).
    pub(crate) fn pending(&self, outbox: &Outbox) -> bool {
        self.ready && self.stdin.is_some() && outbox.room() > 0
    }

    /// The conversation's last line is queued: stop reading stdin for good.
    pub(crate) fn stop(&mut self, registry: &Registry) {
        if let Some(stdin) = self.stdin.take() {
            stdin.close(registry);
        }
        self.ready = false;
    }

    /// Move typed bytes into the outbox while it has room, calling `send`
    /// after each read so that room frees up, for at most
    /// [`CLIENT_READ_BUDGET_PER_TURN`] bytes. Stays ready while the outbox
    /// is full (the next turn resumes). Stops at a typed `bye` line or the
    /// end of stdin, for the caller to end the conversation its own way; a
    /// stdin error is returned.
    pub(crate) fn move_into(
        &mut self,
        outbox: &mut Outbox,
        buf: &mut [u8],
        mut send: impl FnMut(&mut Outbox) -> io::Result<()>,
    ) -> io::Result<Typed> {
        let Some(stdin) = &mut self.stdin else {
            return Ok(Typed::More);
        };
        let mut budget = CLIENT_READ_BUDGET_PER_TURN;
        while self.ready && budget > 0 {
            let room = outbox.room().min(buf.len()).min(budget);
            if room == 0 {
                // Full: wait for WRITABLE to drain the outbox; stdin stays
                // "ready" so the next turn resumes reading it.
                break;
            }
            match stdin.read(&mut buf[..room])? {
                ReadOutcome::Data(n) => {
                    budget -= n;
                    let typed = &buf[..n];
                    if let Some(through_bye) = self.watcher.scan(typed) {
                        outbox.push(&typed[..through_bye]);
                        return Ok(Typed::Bye);
                    }
                    outbox.push(typed);
                    if let Err(e) = send(outbox) {
                        return Ok(Typed::SendFailed(e));
                    }
                }
                ReadOutcome::WouldBlock => self.ready = false,
                ReadOutcome::Eof => {
                    outbox.finish_line();
                    return Ok(Typed::End);
                }
            }
        }
        Ok(Typed::More)
    }
}

/// Register `stream` for READABLE always, plus WRITABLE only while bytes
/// wait in `outbox` (docs/pitfalls.md, "Partial writes and WRITABLE interest"): the interest is a function of the
/// state. `current` is what the stream is registered with now; the
/// `reregister` syscall happens only when that changes.
pub fn update_interest(
    registry: &mio::Registry,
    stream: &mut TcpStream,
    token: mio::Token,
    current: &mut mio::Interest,
    outbox: &Outbox,
) -> io::Result<()> {
    let wanted = if outbox.is_empty() {
        mio::Interest::READABLE
    } else {
        mio::Interest::READABLE | mio::Interest::WRITABLE
    };
    if wanted != *current {
        registry.reregister(stream, token, wanted)?;
        *current = wanted;
    }
    Ok(())
}

/// Append one received line, made safe for a terminal, and its LF to the
/// lines waiting for [`terminal::Output::print`].
pub fn add_line(to_print: &mut Vec<u8>, line: &[u8]) {
    to_print.extend_from_slice(lines::printable(line).as_bytes());
    to_print.push(b'\n');
}

/// Bytes waiting for the socket, bounded by [`OUTBOX_LIMIT`].
///
/// The owner reads stdin only while [`Outbox::room`] is non-zero, writes with
/// [`Outbox::flush`] after every push and on every WRITABLE event, and asks
/// mio for WRITABLE only while [`Outbox::is_empty`] is false.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: ByteQueue,
    pool: BufferPool,
    /// The last byte ever pushed, to know whether a line is unfinished.
    last_pushed: Option<u8>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Bytes stdin may still add before the outbox is full.
    pub fn room(&self) -> usize {
        OUTBOX_LIMIT.saturating_sub(self.queue.len())
    }

    /// Nothing waits for the socket.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queue bytes for the socket. Callers push stdin bytes only up to
    /// [`Outbox::room`]; the client's own short control lines (`/nick`,
    /// `/quit`, `bye`) may go a few bytes past the limit.
    pub fn push(&mut self, data: &[u8]) {
        if let Some(&last) = data.last() {
            self.last_pushed = Some(last);
            self.queue.push(data, &mut self.pool);
        }
    }

    /// End an unfinished line (stdin ended without a final LF), so that a line
    /// the client adds next (`/quit`, `bye`) is not glued to it.
    pub fn finish_line(&mut self) {
        if self.last_pushed.is_some_and(|b| b != b'\n') {
            self.push(b"\n");
        }
    }

    /// Write until the outbox is empty or the socket would block. Errors
    /// (`BrokenPipe` when the peer is gone: docs/pitfalls.md) are returned.
    pub fn flush<W: io::Write>(&mut self, dst: &mut W) -> io::Result<()> {
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[])];
            let n = self.queue.io_slices(&mut slices);
            match net::write_once(dst, &slices[..n])? {
                WriteOutcome::Wrote(n) => self.queue.consume(n, &mut self.pool),
                WriteOutcome::WouldBlock => break,
            }
        }
        Ok(())
    }

    /// Drop whatever waits (the conversation is over).
    pub fn clear(&mut self) {
        self.queue.clear(&mut self.pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::net::fake::ThrottledWriter;

    #[test]
    fn outbox_keeps_what_the_socket_did_not_take() {
        let mut out = Outbox::new();
        out.push(b"hello world\n");
        // Two writes of 4 bytes, then the send buffer is full.
        let mut sock = ThrottledWriter::new(8, 4);
        out.flush(&mut sock).unwrap();
        assert_eq!(sock.taken, b"hello wo");
        assert!(!out.is_empty());
        sock.room = 100;
        out.flush(&mut sock).unwrap();
        assert_eq!(sock.taken, b"hello world\n");
        assert!(out.is_empty());
    }

    #[test]
    fn outbox_room_shrinks_to_zero_at_the_limit() {
        let mut out = Outbox::new();
        assert_eq!(out.room(), OUTBOX_LIMIT);
        out.push(&vec![b'x'; OUTBOX_LIMIT - 10]);
        assert_eq!(out.room(), 10);
        out.push(&[b'x'; 10]);
        assert_eq!(out.room(), 0);
    }

    #[test]
    fn finish_line_only_ends_an_unfinished_line() {
        let mut out = Outbox::new();
        out.finish_line();
        assert!(out.is_empty(), "nothing pushed: nothing to finish");
        out.push(b"partial");
        out.finish_line();
        out.finish_line();
        out.push(b"/quit\n");
        let mut sock = ThrottledWriter::new(1000, 100);
        out.flush(&mut sock).unwrap();
        assert_eq!(sock.taken, b"partial\n/quit\n");
    }

    #[test]
    fn deadlines() {
        assert!(!Deadline::never().expired());
        assert_eq!(Deadline::never().poll_timeout(), None);
        let d = Deadline::after(Duration::ZERO);
        assert!(d.expired());
        assert_eq!(d.poll_timeout(), Some(Duration::ZERO));
        assert!(!Deadline::after(Duration::from_secs(60)).expired());
    }
}
