//! UDP echo sockets: receiving datagrams until `WouldBlock` (within a
//! budget), answering each straight from the read buffer, and queueing a
//! reply only when the socket cannot send right now (bounded, drop and
//! count past the bound: see `protocol::udp_echo`).

use log::{debug, trace};
use mio::Token;

use crate::buffer::BufferPool;
use crate::config;
use crate::net::{would_block, Net, Readiness};
use crate::protocol::udp_echo::{Disposition, UdpEcho};

use super::source::{Source, UdpEndpoint};
use super::stats::Stats;
use super::{Server, ServerPhase};

impl<N: Net> Server<N> {
    /// Receive datagrams until the socket would block (within budget) and
    /// answer each; send queued replies when writable.
    pub(super) fn udp_ready(&mut self, key: usize, ready: Readiness) {
        let serial = self.sources[key].serial;
        let Source::Udp(udp) = &mut self.sources[key].source else {
            return;
        };
        let UdpEndpoint { socket, echo, .. } = &mut **udp;
        if ready.writable || echo.wants_write() {
            flush_udp(&mut self.net, socket, echo, &mut self.pool, &mut self.stats);
        }
        if ready.readable && self.phase == ServerPhase::Running {
            let mut drained = false;
            for _ in 0..config::DATAGRAM_BUDGET_PER_TURN {
                match self.net.recv_from(socket, &mut self.read_buf) {
                    Ok((n, src)) => {
                        self.stats.datagrams_in += 1;
                        let data = &self.read_buf[..n];
                        match echo.handle_datagram(src, data, &mut self.pool) {
                            Disposition::SendNow => match self.net.send_to(socket, data, src) {
                                Ok(_) => self.stats.datagrams_out += 1,
                                Err(e) if would_block(&e) => {
                                    if echo.defer(src, data, &mut self.pool)
                                        == Disposition::DroppedFull
                                    {
                                        self.stats.datagrams_dropped += 1;
                                    }
                                }
                                Err(e) => {
                                    debug!("udp send_to {src}: {e}");
                                    self.stats.datagrams_dropped += 1;
                                }
                            },
                            Disposition::Queued => {}
                            Disposition::DroppedGuard => {
                                trace!("udp from {src}: guarded source port, dropped");
                                self.stats.datagrams_guarded += 1;
                            }
                            Disposition::DroppedFull => self.stats.datagrams_dropped += 1,
                        }
                    }
                    Err(e) if would_block(&e) => {
                        drained = true;
                        break;
                    }
                    // Not fatal: ICMP errors from earlier sends surface here
                    // on some systems, and EINTR just means "again".
                    Err(e) => debug!("udp recv: {e}"),
                }
            }
            if !drained {
                self.still_ready.push((key, serial));
            }
        }
        let wanted = udp.desired_interest();
        if wanted != udp.interest {
            trace!("token={key}: udp interest {:?} -> {wanted:?}", udp.interest);
            if let Some(t) = self.trace.as_mut() {
                t.instant("interest", key, format_args!("{wanted:?}"));
            }
            if self
                .net
                .reregister_udp(&mut udp.socket, Token(key), wanted)
                .is_ok()
            {
                udp.interest = wanted;
                self.stats.interest_changes += 1;
            }
        }
    }
}

/// Send queued UDP replies until the queue is empty or the socket would block.
pub(super) fn flush_udp<N: Net>(
    net: &mut N,
    socket: &N::Udp,
    echo: &mut UdpEcho,
    pool: &mut BufferPool,
    stats: &mut Stats,
) {
    while let Some((dst, data)) = echo.front() {
        match net.send_to(socket, data, dst) {
            Ok(_) => stats.datagrams_out += 1,
            Err(e) if would_block(&e) => return,
            Err(e) => {
                debug!("udp send_to {dst}: {e}");
                stats.datagrams_dropped += 1;
            }
        }
        echo.pop_front(pool);
    }
}
