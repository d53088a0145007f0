//! Thin socket helpers shared by the server, the clients and the load
//! generator: naming the two "not an error" errors of non-blocking IO, and the
//! read-until-`WouldBlock` loop every edge-triggered source needs.
//!
//! Nothing here owns state or knows a protocol; the helpers only make the
//! reactor's code read like the rules in docs/pitfalls.md.

use std::io::{self, Read};

/// The socket has nothing more for us right now (`EAGAIN`/`EWOULDBLOCK`).
/// After an edge-triggered event this is the normal way a drain loop ends, and
/// right after an event it is also normal: events can be spurious.
pub fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the syscall (`EINTR`): retry it at once.
pub fn interrupted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}

/// How one attempt to read from a non-blocking stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `n` bytes arrived (`n > 0`).
    Data(usize),
    /// The peer shut down its sending side: no more input, ever.
    Eof,
    /// Nothing to read now; wait for the next readable event.
    WouldBlock,
}

/// One `read` on a non-blocking stream, with `EINTR` retried and
/// `WouldBlock` and end of stream turned into outcomes instead of errors.
/// A real error (reset, ...) is returned as `Err`: it closes this peer only.
pub fn read_once<R: Read>(src: &mut R, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    loop {
        match src.read(buf) {
            Ok(0) => return Ok(ReadOutcome::Eof),
            Ok(n) => return Ok(ReadOutcome::Data(n)),
            Err(e) if interrupted(&e) => continue,
            Err(e) if would_block(&e) => return Ok(ReadOutcome::WouldBlock),
            Err(e) => return Err(e),
        }
    }
}

/// How one attempt to write to a non-blocking stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The kernel took `n` bytes (maybe fewer than offered: a partial write).
    Wrote(usize),
    /// The send buffer is full; wait for a writable event.
    WouldBlock,
}

/// One vectored write with `EINTR` retried and `WouldBlock` as an outcome.
/// A real error (`BrokenPipe`, reset) is returned: it closes this peer only.
pub fn write_once<W: io::Write>(dst: &mut W, bufs: &[io::IoSlice<'_>]) -> io::Result<WriteOutcome> {
    loop {
        match dst.write_vectored(bufs) {
            Ok(n) => return Ok(WriteOutcome::Wrote(n)),
            Err(e) if interrupted(&e) => continue,
            Err(e) if would_block(&e) => return Ok(WriteOutcome::WouldBlock),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that replays a script of results, to drive `read_once`
    /// through every branch without a socket.
    struct Script(Vec<io::Result<usize>>);
    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let r = self.0.remove(0);
            if let Ok(n) = r {
                buf[..n].fill(b'x');
            }
            r
        }
    }

    #[test]
    fn read_once_retries_eintr_and_names_the_outcomes() {
        let mut buf = [0u8; 8];
        let mut s = Script(vec![Err(io::ErrorKind::Interrupted.into()), Ok(3)]);
        assert_eq!(read_once(&mut s, &mut buf).unwrap(), ReadOutcome::Data(3));
        let mut s = Script(vec![Ok(0)]);
        assert_eq!(read_once(&mut s, &mut buf).unwrap(), ReadOutcome::Eof);
        let mut s = Script(vec![Err(io::ErrorKind::WouldBlock.into())]);
        assert_eq!(
            read_once(&mut s, &mut buf).unwrap(),
            ReadOutcome::WouldBlock
        );
        let mut s = Script(vec![Err(io::ErrorKind::ConnectionReset.into())]);
        assert!(read_once(&mut s, &mut buf).is_err());
    }
}
