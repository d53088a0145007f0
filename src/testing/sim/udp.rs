//! UDP echo clients for the simulation. Each sends numbered datagrams of
//! random size (empty ones included) from its own address and collects the
//! replies. UDP promises no delivery, so replies may be missing (a full
//! receive buffer or reply queue drops them), but every reply must be one of
//! the client's own datagrams, whole, from the server's address, in the
//! order sent. A hostile client sends from a guarded source port (0, 7,
//! 13, 17, 19) and must never get an answer.

use std::net::SocketAddr;

use super::{stream_bytes, Ctx, Pace};
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
        UdpClients { clients, server }
    }

    /// One step of every client: maybe send, then take every reply.
    pub fn act(&mut self, ctx: &mut Ctx<'_>) {
        for c in &mut self.clients {
            if !ctx.signalled && c.sent.len() < c.total && ctx.net.rng().chance(200) {
                let len = ctx.net.rng().pick(&[0, 1, 6, 100, 1400, 65_507]);
                let d = datagram(c.who, c.sent.len(), len);
                ctx.net.udp_send(c.addr, self.server, &d);
                c.sent.push(len);
            }
            while let Some((from, reply)) = ctx.net.udp_recv(c.addr) {
                c.check(from, &reply, self.server);
            }
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

    /// Nothing to wait for: UDP owes nothing.
    pub fn settled(&self) -> bool {
        true
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
