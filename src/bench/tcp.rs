//! What the TCP drivers (echo and chat) share: opening many connections
//! without blocking, and [`OutStream`], the output side of one connection,
//! which produces messages straight into a fixed buffer and writes them.
//!
//! Each connection is registered once for READABLE and WRITABLE and never
//! re-registered: with edge-triggered readiness an interest that is always
//! on costs nothing while nothing changes, whereas toggling WRITABLE would
//! cost an `epoll_ctl` per toggle. A write that leaves bytes behind marks the
//! stream *blocked* until the next writable edge.

use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Events, Poll, Token};

use super::payload::Format;
use super::CONNECTS_IN_FLIGHT;
use crate::buffer::PageAligned;
use crate::net::toolkit::{
    connect_error, connect_nonblocking, connect_result, poll_once, CONNECT_TIMEOUT,
};
use crate::net::{write_once, WriteOutcome};

/// A failed connect in the bench's words, "cannot connect to ADDR: WHY" (the
/// clients say "connect to ADDR: WHY", [`connect_error`]).
pub fn cannot_connect(addr: SocketAddr, err: io::Error) -> io::Error {
    let err = connect_error(addr, err);
    io::Error::new(err.kind(), format!("cannot {err}"))
}

/// Open `n` connections to `addr`, registered with tokens `0..n` for
/// READABLE | WRITABLE, with `TCP_NODELAY` on (a request/response loop must
/// not wait for Nagle). At most [`CONNECTS_IN_FLIGHT`] connects are in
/// progress at once; all must succeed within [`CONNECT_TIMEOUT`], and the
/// first failure is returned naming the address.
///
/// A non-blocking connect returns before the connection exists: it is done
/// when the socket turns writable, and then [`connect_result`] says whether
/// it failed or is really up (a wake-up can be spurious).
///
/// Readiness events that arrive for an established connection while others
/// are still connecting are consumed here; the caller must try one read on
/// every connection before waiting for events of its own (edge-triggered
/// readiness does not repeat an edge).
pub fn connect_all(
    poll: &mut Poll,
    events: &mut Events,
    addr: SocketAddr,
    n: usize,
) -> io::Result<Vec<TcpStream>> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut streams = Vec::with_capacity(n);
    let mut up = vec![false; n];
    let mut done = 0;
    while done < n {
        while streams.len() < n && streams.len() - done < CONNECTS_IN_FLIGHT {
            let token = Token(streams.len());
            let stream = connect_nonblocking(poll.registry(), addr, token)
                .map_err(|e| cannot_connect(addr, e))?;
            streams.push(stream);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "cannot connect to {addr}: {done} of {n} connections up after {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
            ));
        }
        poll_once(poll, events, Some(deadline - now))?;
        for event in events.iter() {
            let i = event.token().0;
            if up[i] {
                continue;
            }
            let stream = &streams[i];
            if connect_result(stream)
                .map_err(|e| cannot_connect(addr, e))?
                .is_some()
            {
                stream.set_nodelay(true)?;
                up[i] = true;
                done += 1;
            }
        }
    }
    Ok(streams)
}

/// The output side of one connection: a fixed buffer, the message being
/// produced into it (sequence number, send time, bytes produced so far), and
/// whether the socket last refused bytes.
///
/// Messages are produced on demand from [`Format::fill`], a buffer-full at a
/// time, so a 1 MiB message needs no 1 MiB buffer; a message that has begun
/// is always finished, even after the deadline, so the server never sees a
/// torn message.
#[derive(Debug)]
pub struct OutStream {
    /// Page-aligned: the kernel's copy out of it runs at full speed
    /// ([`PageAligned`] says why that is not a given).
    buf: PageAligned,
    /// Bytes `pos..len` of `buf` are produced and not yet written.
    pos: usize,
    len: usize,
    /// The message being produced: its number, send time, and bytes done.
    gen_seq: u64,
    gen_ts: u64,
    gen_off: usize,
    /// The last write did not take everything: wait for a writable edge.
    blocked: bool,
}

impl OutStream {
    /// An output side with a buffer of `capacity` bytes (at least 1).
    pub fn new(capacity: usize) -> OutStream {
        OutStream {
            buf: PageAligned::new(capacity.max(1)),
            pos: 0,
            len: 0,
            gen_seq: 0,
            gen_ts: 0,
            gen_off: 0,
            blocked: false,
        }
    }

    /// The buffer size for messages of `wire_len` bytes, `window` in flight:
    /// room for the whole window, but never more than 64 KiB.
    pub fn capacity_for(wire_len: usize, window: usize) -> usize {
        wire_len.saturating_mul(window).clamp(1, 64 * 1024)
    }

    /// Messages begun so far: every number below this has been (at least
    /// partly) produced.
    pub fn started(&self) -> u64 {
        self.gen_seq + u64::from(self.gen_off > 0)
    }

    /// Whether bytes of a begun message are still unwritten.
    pub fn has_pending(&self) -> bool {
        self.pos < self.len || self.gen_off > 0
    }

    /// A writable edge arrived: writing may go on.
    pub fn unblock(&mut self) {
        self.blocked = false;
    }

    /// Fill free buffer space: finish the current message, then begin new
    /// ones for as long as `begin(seq)` gives a send time for them.
    fn produce(&mut self, format: &Format, begin: &mut impl FnMut(u64) -> Option<u64>) {
        let wire_len = format.wire_len();
        while self.len < self.buf.len() {
            if self.gen_off == 0 {
                match begin(self.gen_seq) {
                    Some(ts) => self.gen_ts = ts,
                    None => break,
                }
            }
            let n = (wire_len - self.gen_off).min(self.buf.len() - self.len);
            format.fill(
                self.gen_seq,
                self.gen_ts,
                self.gen_off,
                &mut self.buf[self.len..self.len + n],
            );
            self.len += n;
            self.gen_off += n;
            if self.gen_off == wire_len {
                self.gen_off = 0;
                self.gen_seq += 1;
            }
        }
    }

    /// Produce and write until the socket stops taking bytes or `begin`
    /// refuses a new message. A write that takes less than offered means
    /// the send buffer is full: stop and wait for the writable edge instead
    /// of paying for a write that would return `WouldBlock`.
    pub fn pump<W: Write>(
        &mut self,
        dst: &mut W,
        format: &Format,
        mut begin: impl FnMut(u64) -> Option<u64>,
    ) -> io::Result<()> {
        while !self.blocked {
            self.produce(format, &mut begin);
            if self.pos == self.len {
                return Ok(());
            }
            match write_once(dst, &[IoSlice::new(&self.buf[self.pos..self.len])])? {
                WriteOutcome::Wrote(n) => {
                    self.pos += n;
                    if self.pos < self.len {
                        self.blocked = true;
                    }
                }
                WriteOutcome::WouldBlock => self.blocked = true,
            }
            if self.pos == self.len {
                self.pos = 0;
                self.len = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::net::fake::ThrottledWriter;

    #[test]
    fn produces_whole_messages_across_partial_writes() {
        let f = Format::Binary { size: 100 };
        let mut out = OutStream::new(64);
        let mut w = ThrottledWriter::new(30, usize::MAX);
        let mut begun = Vec::new();
        let mut begin = |seq: u64| (seq < 3).then(|| begun.push(seq)).map(|_| seq * 10);
        out.pump(&mut w, &f, &mut begin).unwrap();
        assert!(out.blocked && out.has_pending());
        for _ in 0..60 {
            w.room = 7;
            out.unblock();
            out.pump(&mut w, &f, &mut begin).unwrap();
        }
        assert!(!out.has_pending());
        assert_eq!(out.started(), 3);
        assert_eq!(w.taken.len(), 300);
        for seq in 0..3u64 {
            let m = &w.taken[seq as usize * 100..][..100];
            assert!(f.matches(seq, seq * 10, 0, m));
        }
        assert_eq!(begun, [0, 1, 2]);
    }

    #[test]
    fn capacity_is_bounded() {
        assert_eq!(OutStream::capacity_for(64, 1), 64);
        assert_eq!(OutStream::capacity_for(64, 4), 256);
        assert_eq!(OutStream::capacity_for(1 << 20, 1), 64 * 1024);
        assert_eq!(OutStream::capacity_for(usize::MAX, 9), 64 * 1024);
    }
}
