//! The `udp_echo` target: datagrams from arbitrary sources, a socket whose
//! send buffer fills and drains at arbitrary times, driven the way the
//! reactor drives [`UdpEcho`] (send at once when nothing waits, `defer` when
//! the send would block, flush the queue when writable).
//!
//! The model is a plain FIFO with the protocol's rules (docs/protocol.md): a datagram from port 0,
//! 7, 13, 17 or 19 is dropped; a reply that cannot go now waits if the queue
//! has room for it under both bounds (datagrams and bytes) and is dropped
//! otherwise; nothing is sent out of order. Checked after every operation:
//! the disposition of each datagram, the queue's length, bytes and front,
//! and every reply sent, which must be a received payload, whole, going
//! back to the address it came from. At the end the socket drains and every
//! datagram is accounted for: sent, guarded or dropped for lack of room.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::buffer::BufferPool;
use crate::protocol::udp_echo::{Disposition, UdpEcho, UdpLimits};

/// The source ports the protocol says are never answered.
const GUARDED_PORTS: [u16; 5] = [0, 7, 13, 17, 19];

/// One socket's life.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct UdpEchoInput {
    /// Reply queue bound in datagrams, as `max_datagrams % 17`.
    pub max_datagrams: u8,
    /// Reply queue bound in bytes, as `max_bytes % 4096`.
    pub max_bytes: u16,
    /// What happens, in order.
    pub ops: Vec<UdpOp>,
}

/// One thing that happens to the socket.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum UdpOp {
    /// A datagram arrives.
    Datagram {
        /// Where it came from.
        from: DatagramSource,
        /// Its payload (empty ones included).
        payload: Vec<u8>,
    },
    /// The kernel's send buffer now takes `n` more datagrams before a send
    /// would block (0: full).
    SendRoom(u8),
    /// The socket is writable: the reactor flushes the queue.
    Writable,
}

/// A source address: IPv4 or IPv6 loopback-ish host, any port.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct DatagramSource {
    /// IPv6 rather than IPv4.
    pub v6: bool,
    /// The last byte of the address.
    pub host: u8,
    /// The source port.
    pub port: u16,
}

impl DatagramSource {
    /// As a socket address.
    pub fn addr(self) -> SocketAddr {
        if self.v6 {
            let mut octets = Ipv6Addr::LOCALHOST.octets();
            octets[15] = self.host;
            SocketAddr::from((Ipv6Addr::from(octets), self.port))
        } else {
            SocketAddr::from((Ipv4Addr::new(127, 0, 0, self.host), self.port))
        }
    }
}

/// The model and the socket simulation around the real [`UdpEcho`].
struct Socket {
    echo: UdpEcho,
    pool: BufferPool,
    limits: UdpLimits,
    /// Datagrams the kernel takes before a send would block.
    send_room: usize,
    /// What went out on the wire, in order.
    sent: Vec<(SocketAddr, Vec<u8>)>,
    /// The model's queue.
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
    /// The model's expected wire: every reply not dropped, in order.
    expected: Vec<(SocketAddr, Vec<u8>)>,
    received: usize,
    guarded: usize,
    dropped_full: usize,
}

impl Socket {
    fn try_send(&mut self, dst: SocketAddr, data: &[u8]) -> bool {
        if self.send_room == 0 {
            return false;
        }
        self.send_room -= 1;
        self.sent.push((dst, data.to_vec()));
        true
    }

    /// The model's answer for a reply that has to wait.
    fn model_defer(&mut self, dst: SocketAddr, data: &[u8]) -> Disposition {
        let bytes: usize = self.queue.iter().map(|(_, d)| d.len()).sum();
        if self.queue.len() < self.limits.max_datagrams
            && bytes + data.len() <= self.limits.max_bytes
        {
            self.queue.push_back((dst, data.to_vec()));
            self.expected.push((dst, data.to_vec()));
            Disposition::Queued
        } else {
            self.dropped_full += 1;
            Disposition::DroppedFull
        }
    }

    fn datagram(&mut self, src: SocketAddr, data: &[u8]) {
        self.received += 1;
        let got = self.echo.handle_datagram(src, data, &mut self.pool);
        let want = if GUARDED_PORTS.contains(&src.port()) {
            self.guarded += 1;
            Disposition::DroppedGuard
        } else if self.queue.is_empty() {
            Disposition::SendNow
        } else {
            self.model_defer(src, data)
        };
        assert_eq!(got, want, "datagram from {src}: disposition");
        if got == Disposition::SendNow {
            if self.try_send(src, data) {
                self.expected.push((src, data.to_vec()));
            } else {
                let got = self.echo.defer(src, data, &mut self.pool);
                let want = self.model_defer(src, data);
                assert_eq!(got, want, "datagram from {src}: deferred reply");
            }
        }
    }

    fn flush(&mut self) {
        while let Some((dst, data)) = self.echo.front() {
            let data = data.to_vec();
            if !self.try_send(dst, &data) {
                break;
            }
            self.echo.pop_front(&mut self.pool);
            self.queue.pop_front();
        }
    }

    fn check(&self, step: &str) {
        let e = &self.echo;
        let bytes: usize = self.queue.iter().map(|(_, d)| d.len()).sum();
        assert_eq!(e.queued(), self.queue.len(), "{step}: replies queued");
        assert_eq!(e.queued_bytes(), bytes, "{step}: bytes queued");
        assert!(
            e.queued() <= self.limits.max_datagrams && e.queued_bytes() <= self.limits.max_bytes,
            "{step}: queue over its bounds"
        );
        assert_eq!(
            e.wants_write(),
            !self.queue.is_empty(),
            "{step}: wants_write"
        );
        assert_eq!(
            e.front(),
            self.queue.front().map(|(a, d)| (*a, d.as_slice())),
            "{step}: front of the queue"
        );
        assert_eq!(
            self.sent[..],
            self.expected[..self.sent.len()],
            "{step}: replies on the wire"
        );
        for (dst, _) in &self.sent {
            assert!(
                !GUARDED_PORTS.contains(&dst.port()),
                "{step}: a reply went to guarded port {}",
                dst.port()
            );
        }
        assert_eq!(
            self.received,
            self.sent.len() + self.queue.len() + self.guarded + self.dropped_full,
            "{step}: every datagram is sent, queued or dropped"
        );
    }
}

/// Run `input`; panics on any broken invariant.
pub fn check(input: &UdpEchoInput) {
    let limits = UdpLimits {
        max_datagrams: usize::from(input.max_datagrams) % 17,
        max_bytes: usize::from(input.max_bytes) % 4096,
    };
    let mut socket = Socket {
        echo: UdpEcho::new(limits),
        pool: BufferPool::new(),
        limits,
        send_room: 1,
        sent: Vec::new(),
        queue: VecDeque::new(),
        expected: Vec::new(),
        received: 0,
        guarded: 0,
        dropped_full: 0,
    };
    for (i, op) in input.ops.iter().enumerate() {
        match op {
            UdpOp::Datagram { from, payload } => socket.datagram(from.addr(), payload),
            UdpOp::SendRoom(n) => socket.send_room = usize::from(*n),
            UdpOp::Writable => socket.flush(),
        }
        socket.check(&format!("op {i}"));
    }
    socket.send_room = usize::MAX;
    socket.flush();
    socket.check("end");
    assert!(!socket.echo.wants_write(), "the queue drains");
    assert_eq!(socket.sent, socket.expected, "every reply kept went out");
}
