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
//!
//! Bytes may also go back without passing through here: a streaming
//! connection's reactor moves them socket to pipe to socket in the kernel
//! (its *relay*). Their order and bound are still this session's business,
//! so it counts them: [`relay_filled`](EchoSession::relay_filled) and
//! [`relay_drained`](EchoSession::relay_drained) keep what waits in the
//! relay under the same `out_limit`, and no byte goes into the relay while
//! the backlog holds any, nor into the backlog while the relay does, so the
//! two never reorder. A relay is filled only when empty: asked for more, a
//! pipe with some room and a socket with nothing both say "would block", and
//! a session that cannot tell them apart could wait for an event that never
//! comes.

use std::io::IoSlice;

use crate::buffer::{BufferPool, ByteQueue};

/// One echo connection's state.
#[derive(Debug)]
pub struct EchoSession {
    backlog: ByteQueue,
    /// Bytes in the kernel relay, read and not yet written back.
    relayed: usize,
    input_closed: bool,
    out_limit: usize,
}

impl EchoSession {
    /// A new session whose backlog may hold at most `out_limit` bytes.
    pub fn new(out_limit: usize) -> EchoSession {
        EchoSession {
            backlog: ByteQueue::new(),
            relayed: 0,
            input_closed: false,
            out_limit,
        }
    }

    /// How many bytes the reactor may read now; 0 means "pause reading".
    /// Also 0 while bytes wait in the relay: it is filled only when empty.
    pub fn read_allowance(&self) -> usize {
        if self.input_closed || self.relayed > 0 {
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

    /// Whether the next bytes may go through the kernel relay: nothing waits
    /// in the backlog, which they would otherwise overtake.
    pub fn may_relay(&self) -> bool {
        self.backlog.is_empty()
    }

    /// `n` bytes went from the socket into the (empty) relay, never more
    /// than `read_allowance`.
    pub fn relay_filled(&mut self, n: usize) {
        debug_assert!(
            self.may_relay() && self.relayed == 0,
            "relay filled out of turn"
        );
        debug_assert!(n <= self.read_allowance(), "relayed past the echo bound");
        self.relayed += n;
    }

    /// `n` bytes went from the relay back to the socket.
    pub fn relay_drained(&mut self, n: usize) {
        debug_assert!(n <= self.relayed, "drained more than the relay held");
        self.relayed -= n;
    }

    /// The relay's oldest bytes, read back out of it into the backlog (the
    /// client stopped keeping up and the stream goes back to copying, where
    /// the whole `out_limit` can wait). Nothing is read while the relay holds
    /// bytes, so these are next in line and the order holds; the total
    /// pending is unchanged.
    pub fn relay_spilled(&mut self, data: &[u8], pool: &mut BufferPool) {
        debug_assert!(
            data.len() <= self.relayed,
            "spilled more than the relay held"
        );
        self.relayed -= data.len();
        self.backlog.push(data, pool);
    }

    /// Bytes waiting in the relay.
    pub fn relayed(&self) -> usize {
        self.relayed
    }

    /// The client will send nothing more: echo what is pending, then finish.
    pub fn handle_eof(&mut self) {
        self.input_closed = true;
    }

    /// Whether the client has shut down its sending side.
    pub fn input_closed(&self) -> bool {
        self.input_closed
    }

    /// Bytes waiting to be sent back, in the backlog or the relay.
    pub fn pending(&self) -> usize {
        self.backlog.len() + self.relayed
    }

    /// The backlog's bytes as I/O slices for one vectored write (what waits
    /// in the relay leaves through it).
    pub fn output<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        self.backlog.io_slices(out)
    }

    /// The socket took `n` bytes of the output.
    pub fn consume_output(&mut self, n: usize, pool: &mut BufferPool) {
        self.backlog.consume(n, pool);
    }

    /// Input ended and everything was echoed: the connection can close.
    pub fn is_done(&self) -> bool {
        self.input_closed && self.pending() == 0
    }

    /// Whether the session holds a buffer (only while output is pending).
    pub fn holds_buffer(&self) -> bool {
        self.backlog.holds_buffer()
    }

    /// Give the backlog's buffer back and forget the relay's bytes (the
    /// connection is closing; its relay is closed with what it holds).
    pub fn release(&mut self, pool: &mut BufferPool) {
        self.backlog.clear(pool);
        self.relayed = 0;
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

        /// The same with a relay, as the reactor drives one: bytes go through
        /// it or through the backlog in any mix, drain in pieces, and spill
        /// back into the backlog at any moment; still exactly the input
        /// comes back, the bound holds, and the relay and the backlog never
        /// both hold bytes.
        #[test]
        fn a_relay_keeps_order_and_bound(
            input in proptest::collection::vec(any::<u8>(), 0..4000),
            steps in proptest::collection::vec((0u8..4, 1usize..700), 1..40),
            limit in 1usize..2000,
        ) {
            let mut pool = BufferPool::new();
            let mut s = EchoSession::new(limit);
            // What the kernel's pipe holds, oldest first.
            let mut pipe: std::collections::VecDeque<u8> = Default::default();
            let (mut out, mut pos, mut turn) = (Vec::new(), 0, 0);
            while !s.is_done() {
                let (op, size) = steps[turn % steps.len()];
                turn += 1;
                prop_assert!(turn < 100_000, "no progress");
                let take = size.min(s.read_allowance()).min(input.len() - pos);
                match op {
                    // Fill the relay (only an empty one, behind an empty backlog).
                    0 if take > 0 && s.may_relay() => {
                        s.relay_filled(take);
                        pipe.extend(&input[pos..pos + take]);
                        pos += take;
                    }
                    // Read into the backlog (the allowance is 0 while the relay holds bytes).
                    1 if take > 0 => {
                        s.handle_input(&input[pos..pos + take], &mut pool);
                        pos += take;
                    }
                    // The client stopped keeping up: spill the whole relay, in pieces.
                    2 if s.relayed() > 0 => {
                        while s.relayed() > 0 {
                            let n = size.min(s.relayed());
                            let piece: Vec<u8> = pipe.drain(..n).collect();
                            s.relay_spilled(&piece, &mut pool);
                        }
                    }
                    // Write: from the relay if it holds bytes, else the backlog.
                    _ if s.relayed() > 0 => {
                        let n = size.min(s.relayed());
                        out.extend(pipe.drain(..n));
                        s.relay_drained(n);
                    }
                    _ => {
                        let mut iov = [IoSlice::new(&[])];
                        if s.output(&mut iov) > 0 {
                            let n = size.min(iov[0].len());
                            out.extend_from_slice(&iov[0][..n]);
                            s.consume_output(n, &mut pool);
                        } else if take > 0 {
                            s.handle_input(&input[pos..pos + take], &mut pool);
                            pos += take;
                        } else if pos == input.len() && !s.input_closed() {
                            s.handle_eof();
                        }
                    }
                }
                prop_assert_eq!(s.relayed(), pipe.len());
                prop_assert!(s.pending() <= limit, "pending {} over {}", s.pending(), limit);
                prop_assert!(
                    s.relayed() == 0 || s.may_relay(),
                    "the relay and the backlog both hold bytes"
                );
            }
            prop_assert_eq!(out, input);
        }
    }
}
