//! TCP echo (RFC 862) as a sans-IO state machine: every byte that comes in
//! goes back out, in order, unchanged, and nothing else.
//!
//! The one real decision is what to do when the client sends faster than it
//! reads. The backlog of bytes waiting to go back is bounded by `out_limit`:
//! [`EchoSession::read_allowance`] tells the reactor how much it may read
//! now, and at zero the reactor stops reading from the socket. TCP flow
//! control then slows the client down, so no byte is dropped and memory stays
//! bounded.
//!
//! Call order: `handle_input` for bytes read (never more than
//! `read_allowance` at a time), `handle_eof` when the client shut down its
//! sending side; `output` and `consume_output` to write the backlog out;
//! the session is finished when [`is_done`](EchoSession::is_done) says so.

use std::io::IoSlice;

use crate::buffer::{BufferPool, ByteQueue};

/// One echo connection's state.
#[derive(Debug)]
pub struct EchoSession {
    backlog: ByteQueue,
    input_closed: bool,
    out_limit: usize,
}

impl EchoSession {
    /// A new session whose backlog may hold at most `out_limit` bytes.
    pub fn new(out_limit: usize) -> EchoSession {
        EchoSession {
            backlog: ByteQueue::new(),
            input_closed: false,
            out_limit,
        }
    }

    /// How many bytes the reactor may read now; 0 means "pause reading".
    pub fn read_allowance(&self) -> usize {
        if self.input_closed {
            0
        } else {
            self.out_limit.saturating_sub(self.backlog.len())
        }
    }

    /// Whether the session wants more input now (input open, backlog below
    /// its bound).
    pub fn wants_read(&self) -> bool {
        self.read_allowance() > 0
    }

    /// Bytes arrived. Taking more than `read_allowance` is a reactor bug.
    pub fn handle_input(&mut self, data: &[u8], pool: &mut BufferPool) {
        debug_assert!(
            data.len() <= self.read_allowance(),
            "read past the echo backlog bound"
        );
        self.backlog.push(data, pool);
    }

    /// The client will send nothing more: echo what is pending, then finish.
    pub fn handle_eof(&mut self) {
        self.input_closed = true;
    }

    /// Whether the client has shut down its sending side.
    pub fn input_closed(&self) -> bool {
        self.input_closed
    }

    /// Bytes waiting to be sent back.
    pub fn pending(&self) -> usize {
        self.backlog.len()
    }

    /// The pending bytes as I/O slices for one vectored write.
    pub fn output<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        self.backlog.io_slices(out)
    }

    /// The socket took `n` bytes of the output.
    pub fn consume_output(&mut self, n: usize, pool: &mut BufferPool) {
        self.backlog.consume(n, pool);
    }

    /// Input ended and everything was echoed: the connection can close.
    pub fn is_done(&self) -> bool {
        self.input_closed && self.backlog.is_empty()
    }

    /// Whether the session holds a buffer (only while output is pending).
    pub fn holds_buffer(&self) -> bool {
        self.backlog.holds_buffer()
    }

    /// Give the backlog's buffer back (the connection is closing).
    pub fn release(&mut self, pool: &mut BufferPool) {
        self.backlog.clear(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Drive a session the way the reactor does: read at most the allowance,
    /// write at most what a (simulated) socket accepts.
    fn run(input: &[u8], reads: &[usize], writes: &[usize], limit: usize) -> (Vec<u8>, usize) {
        let mut pool = BufferPool::new();
        let mut s = EchoSession::new(limit);
        let mut out = Vec::new();
        let mut max_backlog = 0;
        let (mut pos, mut r, mut w) = (0, 0, 0);
        while !s.is_done() {
            let allow = s.read_allowance();
            if pos < input.len() && allow > 0 {
                let n = reads[r % reads.len()].min(allow).min(input.len() - pos);
                s.handle_input(&input[pos..pos + n], &mut pool);
                pos += n;
                r += 1;
            } else if pos == input.len() && !s.input_closed() {
                s.handle_eof();
            }
            max_backlog = max_backlog.max(s.pending());
            let mut iov = [IoSlice::new(&[])];
            let n = s.output(&mut iov);
            if n > 0 {
                let take = writes[w % writes.len()].min(iov[0].len());
                out.extend_from_slice(&iov[0][..take]);
                s.consume_output(take, &mut pool);
                w += 1;
            }
        }
        assert!(!s.holds_buffer(), "a finished session holds no buffer");
        (out, max_backlog)
    }

    #[test]
    fn echoes_and_finishes_after_eof() {
        let (out, _) = run(b"Hello,Server", &[5], &[3], 1024);
        assert_eq!(out, b"Hello,Server");
    }

    #[test]
    fn reading_pauses_at_the_bound() {
        let mut pool = BufferPool::new();
        let mut s = EchoSession::new(10);
        s.handle_input(&[1; 10], &mut pool);
        assert_eq!(s.read_allowance(), 0);
        assert!(!s.wants_read());
        s.consume_output(4, &mut pool);
        assert_eq!(s.read_allowance(), 4);
    }

    proptest! {
        /// Any chunking of input and any partial writes give back exactly the
        /// input, and the backlog never passes its bound.
        #[test]
        fn output_equals_input(
            input in proptest::collection::vec(any::<u8>(), 0..4000),
            reads in proptest::collection::vec(1usize..700, 1..20),
            writes in proptest::collection::vec(1usize..700, 1..20),
            limit in 1usize..2000,
        ) {
            let (out, max_backlog) = run(&input, &reads, &writes, limit);
            prop_assert_eq!(out, input);
            prop_assert!(max_backlog <= limit);
        }
    }
}
