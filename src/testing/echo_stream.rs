//! The `echo_stream` target: a TCP echo session driven the way the reactor
//! drives it, with the client's sends, the reactor's reads and the socket's
//! partial writes in an arbitrary order and of arbitrary sizes.
//!
//! The reactor may also move bytes through the kernel relay (a pipe filled
//! and drained with `splice`, see `reactor::relay`), and spill what the
//! relay holds back into the backlog; the model keeps the pipe's bytes.
//!
//! The model is a byte count: everything the client sent, how much of it
//! the server has read, how much has been echoed, and what waits in the
//! pipe. Checked after every operation: what the session offers to write,
//! or what the pipe holds, is exactly the bytes read and not yet echoed (so
//! the output is the input, byte for byte, in order; the backlog and the
//! relay never both hold bytes); all of it never passes `out_limit`; the
//! read allowance is exactly the room left under it (0 once input ended, and
//! while the relay holds bytes: it is filled only when empty); the session
//! holds a buffer only while its backlog has bytes, and is done exactly when
//! input ended and everything was echoed. At the end the client shuts down its side, the
//! reactor reads and writes until the session is done, and everything sent
//! must have come back.

use std::io::IoSlice;

use crate::buffer::BufferPool;
use crate::config::POOL_MAX_BUFFERS;
use crate::protocol::echo::EchoSession;

/// One connection's life.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct EchoStreamInput {
    /// `--out-limit`, as `1 + out_limit % 4096`.
    pub out_limit: u16,
    /// I/O slices offered to each write, as `1 + iovecs % 4`.
    pub iovecs: u8,
    /// What happens, in order.
    pub ops: Vec<EchoOp>,
}

/// One thing that happens to the connection.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum EchoOp {
    /// The client sends bytes (they wait in the kernel until read).
    Send(Vec<u8>),
    /// The reactor reads at most `1 + n` bytes (and at most the allowance).
    Read(u16),
    /// The socket takes at most `n` bytes of a write (0: it would block).
    Write(u16),
    /// The client shuts down its sending side.
    Shutdown,
    /// The reactor fills the empty relay with at most `1 + n` bytes (and at
    /// most the allowance), if nothing waits in the backlog.
    RelayFill(u16),
    /// The socket takes at most `n` bytes from the relay (0: it would
    /// block).
    RelayDrain(u16),
    /// The client fell behind: the relay's bytes are read back into the
    /// backlog, `1 + n` at a time, until the relay is empty.
    Spill(u16),
}

/// The connection: the real session plus the model's counters.
struct ModelConn {
    session: EchoSession,
    pool: BufferPool,
    out_limit: usize,
    iovecs: usize,
    /// Everything the client sent.
    sent: Vec<u8>,
    /// How much of it the server has read.
    read: usize,
    /// Everything echoed back.
    echoed: Vec<u8>,
    /// What the relay (the pipe) holds, oldest first.
    pipe: Vec<u8>,
    client_shut: bool,
    eof_seen: bool,
}

impl ModelConn {
    fn read(&mut self, max: usize) {
        let allowance = self.session.read_allowance();
        if allowance == 0 {
            return;
        }
        let n = max.min(allowance).min(self.sent.len() - self.read);
        if n > 0 {
            self.session
                .handle_input(&self.sent[self.read..self.read + n], &mut self.pool);
            self.read += n;
        } else if self.client_shut && self.read == self.sent.len() && !self.eof_seen {
            // read() returned 0.
            self.session.handle_eof();
            self.eof_seen = true;
        }
    }

    fn relay_fill(&mut self, max: usize) {
        if !self.session.may_relay() || self.session.relayed() > 0 {
            return;
        }
        let n = max
            .min(self.session.read_allowance())
            .min(self.sent.len() - self.read);
        if n > 0 {
            self.session.relay_filled(n);
            self.pipe
                .extend_from_slice(&self.sent[self.read..self.read + n]);
            self.read += n;
        }
    }

    fn relay_drain(&mut self, capacity: usize) {
        let take = capacity.min(self.session.relayed());
        self.echoed.extend(self.pipe.drain(..take));
        self.session.relay_drained(take);
    }

    fn spill(&mut self, piece: usize) {
        while self.session.relayed() > 0 {
            let n = piece.min(self.session.relayed());
            let bytes: Vec<u8> = self.pipe.drain(..n).collect();
            self.session.relay_spilled(&bytes, &mut self.pool);
        }
    }

    fn write(&mut self, capacity: usize) {
        if self.session.relayed() > 0 {
            // The reactor writes what waits in the relay, through it.
            self.relay_drain(capacity);
            return;
        }
        let mut iov = vec![IoSlice::new(&[]); self.iovecs];
        let n = self.session.output(&mut iov);
        assert!(
            n <= self.iovecs,
            "output filled {n} of {} slices",
            self.iovecs
        );
        let offered: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(
            offered,
            &self.sent[self.echoed.len()..self.read],
            "the session offers other bytes than those read and not yet echoed"
        );
        let take = capacity.min(offered.len());
        self.echoed.extend_from_slice(&offered[..take]);
        self.session.consume_output(take, &mut self.pool);
    }

    fn check(&self, step: &str) {
        let s = &self.session;
        let waiting = self.read - self.echoed.len();
        assert_eq!(s.pending(), waiting, "{step}: pending bytes");
        assert_eq!(s.relayed(), self.pipe.len(), "{step}: relayed bytes");
        if !self.pipe.is_empty() {
            assert_eq!(
                self.pipe,
                &self.sent[self.echoed.len()..self.read],
                "{step}: the relay holds other bytes than those read and not yet echoed"
            );
        }
        assert!(
            s.pending() <= self.out_limit,
            "{step}: backlog {} over out_limit {}",
            s.pending(),
            self.out_limit
        );
        let allowance = if self.eof_seen || !self.pipe.is_empty() {
            0
        } else {
            self.out_limit - waiting
        };
        assert_eq!(s.read_allowance(), allowance, "{step}: read allowance");
        assert_eq!(s.wants_read(), allowance > 0, "{step}: wants_read");
        assert_eq!(s.input_closed(), self.eof_seen, "{step}: input closed");
        assert_eq!(
            s.is_done(),
            self.eof_seen && waiting == 0,
            "{step}: is_done"
        );
        assert_eq!(
            s.holds_buffer(),
            waiting > self.pipe.len(),
            "{step}: holds a buffer"
        );
        assert!(
            self.pool.spare_count() <= POOL_MAX_BUFFERS,
            "{step}: pool bound"
        );
    }
}

/// Run `input`; panics on any broken invariant.
pub fn check(input: &EchoStreamInput) {
    let out_limit = 1 + usize::from(input.out_limit) % 4096;
    let mut conn = ModelConn {
        session: EchoSession::new(out_limit),
        pool: BufferPool::new(),
        out_limit,
        iovecs: 1 + usize::from(input.iovecs) % 4,
        sent: Vec::new(),
        read: 0,
        echoed: Vec::new(),
        pipe: Vec::new(),
        client_shut: false,
        eof_seen: false,
    };
    conn.check("start");
    for (i, op) in input.ops.iter().enumerate() {
        match op {
            EchoOp::Send(bytes) => {
                if !conn.client_shut {
                    conn.sent.extend_from_slice(bytes);
                }
            }
            EchoOp::Read(max) => conn.read(1 + usize::from(*max)),
            EchoOp::Write(capacity) => conn.write(usize::from(*capacity)),
            EchoOp::Shutdown => conn.client_shut = true,
            EchoOp::RelayFill(max) => conn.relay_fill(1 + usize::from(*max)),
            EchoOp::RelayDrain(capacity) => conn.relay_drain(usize::from(*capacity)),
            EchoOp::Spill(piece) => conn.spill(1 + usize::from(*piece)),
        }
        conn.check(&format!("op {i} {op:?}"));
    }
    // The client shuts down and reads everything: the session must finish
    // with every byte echoed.
    conn.client_shut = true;
    let mut turns = 0;
    while !conn.session.is_done() {
        conn.read(usize::MAX);
        conn.write(usize::MAX);
        conn.check("draining");
        turns += 1;
        assert!(
            turns <= 2 + 2 * conn.sent.len() / out_limit + 2,
            "the session does not finish"
        );
    }
    assert_eq!(conn.echoed, conn.sent, "output differs from input");
    assert!(
        !conn.session.holds_buffer(),
        "a finished session holds no buffer"
    );
}
