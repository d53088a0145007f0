//! UDP echo (RFC 862) as a sans-IO state machine: each datagram goes back
//! whole to the address it came from.
//!
//! Two rules make it safe on a real network:
//! - **The source-port guard.** A datagram from port 0, 7 (echo), 13
//!   (daytime), 17 (qotd) or 19 (chargen) is dropped, never answered: two
//!   such services pointed at each other would otherwise bounce packets
//!   forever.
//! - **A bounded reply queue.** When the socket cannot send right now
//!   (`WouldBlock`), replies wait in a queue bounded in datagrams and bytes.
//!   Past the bound a reply is dropped and counted: UDP promises no delivery,
//!   and a flood must not turn into unbounded memory.
//!
//! Call order: for each datagram received, [`UdpEcho::handle_datagram`]. On
//! [`Disposition::SendNow`] the reactor sends the reply straight from its
//! read buffer (no copy); if that send would block it calls
//! [`UdpEcho::defer`]. When the socket is writable again the reactor sends
//! [`front`](UdpEcho::front) and calls [`pop_front`](UdpEcho::pop_front)
//! until the queue is empty or the send would block.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::buffer::BufferPool;

/// Source ports never answered: 0 and the classic "small services" that
/// answer anything (echo, daytime, qotd, chargen).
pub const GUARDED_PORTS: [u16; 5] = [0, 7, 13, 17, 19];

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Nothing is queued: send the reply now.
    SendNow,
    /// The reply waits in the queue.
    Queued,
    /// Dropped: its source port is guarded.
    DroppedGuard,
    /// Dropped: the reply queue is full.
    DroppedFull,
}

/// The bounds of the reply queue.
#[derive(Debug, Clone, Copy)]
pub struct UdpLimits {
    /// Replies that may wait.
    pub max_datagrams: usize,
    /// Payload bytes those replies may hold together.
    pub max_bytes: usize,
}

/// One UDP echo socket's state: the replies waiting to be sent.
#[derive(Debug)]
pub struct UdpEcho {
    limits: UdpLimits,
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
    queued_bytes: usize,
}

impl UdpEcho {
    /// An empty echo with the given queue bounds.
    pub fn new(limits: UdpLimits) -> UdpEcho {
        UdpEcho {
            limits,
            queue: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    /// Whether a datagram from `src` may be answered.
    pub fn source_allowed(src: &SocketAddr) -> bool {
        !GUARDED_PORTS.contains(&src.port())
    }

    /// A datagram arrived from `src`.
    pub fn handle_datagram(
        &mut self,
        src: SocketAddr,
        data: &[u8],
        pool: &mut BufferPool,
    ) -> Disposition {
        if !Self::source_allowed(&src) {
            return Disposition::DroppedGuard;
        }
        if self.queue.is_empty() {
            // Keep replies in arrival order: only send directly when nothing
            // older is waiting.
            Disposition::SendNow
        } else {
            self.defer(src, data, pool)
        }
    }

    /// Sending the reply now would block: queue it, or drop it when full.
    pub fn defer(&mut self, dst: SocketAddr, data: &[u8], pool: &mut BufferPool) -> Disposition {
        let fits = self.queue.len() < self.limits.max_datagrams
            && self.queued_bytes + data.len() <= self.limits.max_bytes;
        if !fits {
            return Disposition::DroppedFull;
        }
        let mut buf = pool.take();
        buf.extend_from_slice(data);
        self.queued_bytes += data.len();
        self.queue.push_back((dst, buf));
        Disposition::Queued
    }

    /// The oldest waiting reply.
    pub fn front(&self) -> Option<(SocketAddr, &[u8])> {
        self.queue.front().map(|(a, d)| (*a, d.as_slice()))
    }

    /// The oldest reply was sent (or failed for good): forget it.
    pub fn pop_front(&mut self, pool: &mut BufferPool) {
        if let Some((_, buf)) = self.queue.pop_front() {
            self.queued_bytes -= buf.len();
            pool.give(buf);
        }
    }

    /// Replies waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Payload bytes waiting.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether replies wait (the reactor then asks for WRITABLE).
    pub fn wants_write(&self) -> bool {
        !self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn guarded_ports_are_never_answered() {
        let mut pool = BufferPool::new();
        let mut e = UdpEcho::new(UdpLimits {
            max_datagrams: 4,
            max_bytes: 100,
        });
        for p in GUARDED_PORTS {
            assert_eq!(
                e.handle_datagram(addr(p), b"x", &mut pool),
                Disposition::DroppedGuard
            );
        }
        assert_eq!(
            e.handle_datagram(addr(40000), b"x", &mut pool),
            Disposition::SendNow
        );
        assert_eq!(
            e.handle_datagram(addr(8), b"", &mut pool),
            Disposition::SendNow
        );
    }

    #[test]
    fn the_queue_keeps_order_and_drops_past_its_bound() {
        let mut pool = BufferPool::new();
        let mut e = UdpEcho::new(UdpLimits {
            max_datagrams: 2,
            max_bytes: 100,
        });
        assert_eq!(e.defer(addr(1000), b"a", &mut pool), Disposition::Queued);
        assert_eq!(
            e.handle_datagram(addr(1001), b"b", &mut pool),
            Disposition::Queued
        );
        assert_eq!(
            e.handle_datagram(addr(1002), b"c", &mut pool),
            Disposition::DroppedFull
        );
        assert_eq!(e.front(), Some((addr(1000), &b"a"[..])));
        e.pop_front(&mut pool);
        assert_eq!(e.front(), Some((addr(1001), &b"b"[..])));
        e.pop_front(&mut pool);
        assert!(!e.wants_write());
        assert_eq!(e.queued_bytes(), 0);
    }

    proptest! {
        /// Whatever arrives and whenever the socket blocks, every reply that
        /// is not dropped goes back whole to its source, in order, and the
        /// queue never passes either bound.
        #[test]
        fn replies_are_whole_and_bounded(
            grams in proptest::collection::vec((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..300), any::<bool>()), 0..60),
            max_datagrams in 1usize..8,
            max_bytes in 0usize..1000,
        ) {
            let mut pool = BufferPool::new();
            let mut e = UdpEcho::new(UdpLimits { max_datagrams, max_bytes });
            let mut expected = Vec::new();
            let mut sent = Vec::new();
            for (port, data, socket_blocked) in &grams {
                let src = addr(*port);
                match e.handle_datagram(src, data, &mut pool) {
                    Disposition::SendNow if !socket_blocked => {
                        expected.push((src, data.clone()));
                        sent.push((src, data.clone()));
                    }
                    Disposition::SendNow => {
                        if e.defer(src, data, &mut pool) == Disposition::Queued {
                            expected.push((src, data.clone()));
                        }
                    }
                    Disposition::Queued => expected.push((src, data.clone())),
                    Disposition::DroppedGuard => prop_assert!(GUARDED_PORTS.contains(port)),
                    Disposition::DroppedFull => {}
                }
                prop_assert!(e.queued() <= max_datagrams && e.queued_bytes() <= max_bytes);
                if !socket_blocked {
                    while let Some((a, d)) = e.front() {
                        sent.push((a, d.to_vec()));
                        e.pop_front(&mut pool);
                    }
                }
            }
            while let Some((a, d)) = e.front() {
                sent.push((a, d.to_vec()));
                e.pop_front(&mut pool);
            }
            prop_assert_eq!(sent, expected);
        }
    }
}
