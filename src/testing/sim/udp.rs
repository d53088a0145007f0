//! UDP echo clients for the simulation. Each sends numbered datagrams of
//! random size (empty ones included) from its own address and collects the
//! replies. UDP promises no delivery, so replies may be missing (a full
//! receive buffer or reply queue drops them), but every reply must be one of
//! the client's own datagrams, whole, from the server's address, in the
//! order sent. A hostile client sends from a guarded source port (0, 7,
//! 13, 17, 19) and must never get an answer.

use std::net::SocketAddr;

use std::time::Duration;

use super::{stream_bytes, Complaints, Ctx, Pace};
use crate::net::sim::SimNet;

#[derive(Debug)]
struct UdpClient {
    who: usize,
    addr: SocketAddr,
    guarded: bool,
    total: usize,
    /// Datagrams sent so far (their sizes).
    sent: Vec<usize>,
    /// Index of the datagram the last reply matched.
    matched: Option<usize>,
    replies: usize,
}

/// All UDP clients of a run.
#[derive(Debug)]
pub struct UdpClients {
    clients: Vec<UdpClient>,
    server: SocketAddr,
    /// Turns in a row with datagrams unread after everyone was done.
    starve: u64,
    starve_since: Duration,
}

/// Datagram `seq` of client `who`, `len` bytes: a 6-byte header naming
/// both (when it fits), then the client's stream bytes.
fn datagram(who: usize, seq: usize, len: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(len);
    stream_bytes(who + 1000, seq * 7, len, &mut d);
    let header = [
        who as u8,
        (seq >> 16) as u8,
        (seq >> 8) as u8,
        seq as u8,
        0xAB,
        0xCD,
    ];
    let n = header.len().min(len);
    d[..n].copy_from_slice(&header[..n]);
    d
}

impl UdpClients {
    /// Clients as the scenario lists them.
    pub fn new(spec: &[(Pace, usize)], server: SocketAddr, net: &mut SimNet) -> UdpClients {
        let clients = spec
            .iter()
            .enumerate()
            .map(|(who, &(pace, total))| {
                let guarded = pace == Pace::Hostile;
                let mut addr = net.client_addr();
                if guarded {
                    addr.set_port(net.rng().pick(&[0, 7, 13, 17, 19]));
                }
                UdpClient {
                    who,
                    addr,
                    guarded,
                    total,
                    sent: Vec::new(),
                    matched: None,
                    replies: 0,
                }
            })
            .collect();
        UdpClients {
            clients,
            server,
            starve: 0,
            starve_since: Duration::ZERO,
        }
    }

    /// One step of every client: maybe send, then take every reply.
    pub fn act(&mut self, ctx: &mut Ctx<'_>) {
        for c in &mut self.clients {
            if !ctx.signalled && c.sent.len() < c.total && ctx.net.rng().chance(200) {
                // Now and then a burst, more than one turn's datagram
                // budget (256) at once.
                let burst = if ctx.net.rng().chance(50) { 300 } else { 1 };
                for _ in 0..burst {
                    let len = ctx.net.rng().pick(&[0, 1, 6, 100, 1400, 65_507]);
                    let len = if burst > 1 { len.min(100) } else { len };
                    let d = datagram(c.who, c.sent.len(), len);
                    ctx.net.udp_send(c.addr, self.server, &d);
                    c.sent.push(len);
                }
            }
            while let Some((from, reply)) = ctx.net.udp_recv(c.addr) {
                c.check(from, &reply, self.server);
            }
        }
        // Once everyone is done sending, every datagram the kernel took
        // must be read (a reply may then be dropped and counted, UDP
        // promises no delivery, but a datagram left unread is a stall).
        if ctx.draining && !ctx.signalled && ctx.net.udp_unread() > 0 {
            if self.starve == 0 {
                self.starve_since = ctx.now;
            }
            self.starve += 1;
        } else {
            self.starve = 0;
        }
    }

    /// Every client has sent its datagrams.
    pub fn done_sending(&self) -> bool {
        self.clients.iter().all(|c| c.sent.len() >= c.total)
    }

    /// Some client has datagrams left to send.
    pub fn busy(&self) -> bool {
        !self.done_sending()
    }

    /// No datagram waits unread in the server's sockets.
    pub fn settled(&self, net: &SimNet) -> bool {
        net.udp_unread() == 0
    }

    /// Datagrams left unread for too long once everyone was done sending.
    pub fn stalled(&self, net: &SimNet) -> Complaints {
        let mut out = Complaints::default();
        if self.starve > super::LIVENESS_TURNS
            && net.elapsed().saturating_sub(self.starve_since) > super::LIVENESS_TIME
        {
            out.push(format_args!(
                "udp: {} datagrams left unread in the server's sockets for {} turns",
                net.udp_unread(),
                self.starve
            ));
        }
        out
    }
}

impl UdpClient {
    fn check(&mut self, from: SocketAddr, reply: &[u8], server: SocketAddr) {
        assert!(
            !self.guarded,
            "udp: a datagram from guarded port {} was answered",
            self.addr.port()
        );
        assert_eq!(from, server, "udp client {}: reply from {from}", self.who);
        // The first datagram after the last match that this reply is.
        let start = self.matched.map_or(0, |m| m + 1);
        let found = (start..self.sent.len()).find(|&seq| {
            self.sent[seq] == reply.len()
                && (reply.len() < 6 || reply[1..4] == datagram(self.who, seq, 4)[1..4])
                && datagram(self.who, seq, self.sent[seq]) == reply
        });
        match found {
            Some(seq) => {
                self.matched = Some(seq);
                self.replies += 1;
            }
            None => panic!(
                "udp client {}: a reply of {} bytes that is none of its datagrams after #{start} \
                 (foreign, truncated, reordered or repeated)",
                self.who,
                reply.len()
            ),
        }
    }
}
