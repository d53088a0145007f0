//! TCP echo clients for the simulation. Each sends its own deterministic
//! byte stream ([`super::stream_byte`]) in chunks of random size, reads at
//! its own pace, shuts down its sending side when done (every other client
//! only once all its bytes came back, as a request-response client does, so
//! that no FIN of its own can wake a stalled stream) and reads until the
//! server closes. Every byte that comes back must be the next byte it sent
//! (so no byte is lost, reordered, invented or another client's); a client
//! that keeps reading must get what it is owed within
//! [`super::LIVENESS_TURNS`]; the stream may end early only when the
//! server was allowed to cut it (idle timeout, SIGTERM, `--max-conns`).

use std::net::SocketAddr;
use std::time::Duration;

use super::{stream_bytes, stream_mismatch, Complaints, Ctx, Pace};
use crate::net::sim::{ClientRead, ConnId, SimNet};
use crate::reactor::stats::Stats;

/// How an echo connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Everything came back, then EOF.
    Complete,
    /// Cut early, for a reason the server is allowed.
    Cut(&'static str),
}

#[derive(Debug)]
struct EchoClient {
    who: usize,
    pace: Pace,
    total: usize,
    conn: Option<ConnId>,
    sent: usize,
    recv: usize,
    shut: bool,
    /// Sends its FIN only once everything came back.
    holds_fin: bool,
    end: Option<End>,
    paused_until: u64,
    starve: u64,
    /// When the current run of empty reads began.
    starve_since: Duration,
    last_input: Duration,
    /// Hostile only: at this many bytes sent, misbehave.
    trick_at: usize,
    buf: Vec<u8>,
}

/// All echo clients of a run.
#[derive(Debug)]
pub struct EchoClients {
    clients: Vec<EchoClient>,
    server: SocketAddr,
    /// Rejected at `--max-conns` (closed at once, nothing echoed).
    rejected: u64,
}

impl EchoClients {
    /// Clients as the scenario lists them; they connect on their first act.
    pub fn new(spec: &[(Pace, usize)], server: SocketAddr, net: &mut SimNet) -> EchoClients {
        let clients = spec
            .iter()
            .enumerate()
            .map(|(who, &(pace, total))| EchoClient {
                who,
                pace,
                total,
                conn: None,
                sent: 0,
                recv: 0,
                shut: false,
                holds_fin: who % 2 == 1,
                end: None,
                paused_until: 0,
                starve: 0,
                starve_since: Duration::ZERO,
                last_input: Duration::ZERO,
                trick_at: net.rng().range(0, total),
                buf: Vec::new(),
            })
            .collect();
        EchoClients {
            clients,
            server,
            rejected: 0,
        }
    }

    /// One step of every client.
    pub fn act(&mut self, ctx: &mut Ctx<'_>) {
        for i in 0..self.clients.len() {
            let rejected = self.clients[i].act(ctx, self.server);
            self.rejected += u64::from(rejected);
        }
    }

    /// Every client has sent all it meant to (or is gone).
    pub fn done_sending(&self) -> bool {
        self.clients.iter().all(|c| c.end.is_some() || c.shut)
    }

    /// Some client has something to send now: virtual time may not jump.
    pub fn busy(&self, net: &SimNet) -> bool {
        self.clients.iter().any(|c| {
            c.end.is_none()
                && match c.conn {
                    None => true,
                    Some(conn) => !c.shut && net.client_can_send(conn),
                }
        })
    }

    /// Every client is finished.
    pub fn settled(&self) -> bool {
        self.clients.iter().all(|c| c.end.is_some())
    }

    /// SIGTERM was sent: nothing is owed any more, and the server will
    /// close every connection after flushing what it read.
    pub fn on_signal(&mut self) {}

    /// Clients owed bytes that have been reading for too long without any.
    pub fn stalled(&self, net: &SimNet) -> Complaints {
        let now = net.elapsed();
        let mut out = Complaints::default();
        for c in &self.clients {
            if c.starve > super::LIVENESS_TURNS
                && now.saturating_sub(c.starve_since) > super::LIVENESS_TIME
            {
                out.push(format_args!(
                    "echo client {} ({:?}) owed {} bytes ({} sent, {} back), read {} times in a row and got none; {}",
                    c.who,
                    c.pace,
                    c.sent - c.recv,
                    c.sent,
                    c.recv,
                    c.starve,
                    c.conn.map(|id| net.describe(id)).unwrap_or_default()
                ));
            }
        }
        out
    }

    /// At the end of the run: every client ended, the rejections add up.
    pub fn finish(&self, stats: &Stats) {
        for c in &self.clients {
            if c.conn.is_some() && c.end.is_none() && c.pace != Pace::Hostile {
                // The server shut down (grace over) while it still read.
                continue;
            }
        }
        assert!(
            self.rejected <= stats.conns_rejected,
            "{} echo clients were cut at once, the server rejected only {}",
            self.rejected,
            stats.conns_rejected
        );
    }
}

impl EchoClient {
    /// Returns true if the connection turned out rejected at `--max-conns`.
    fn act(&mut self, ctx: &mut Ctx<'_>, server: SocketAddr) -> bool {
        if self.end.is_some() {
            return false;
        }
        let Some(conn) = self.conn else {
            if ctx.signalled {
                self.end = Some(End::Cut("never connected before shutdown"));
                return false;
            }
            if ctx.net.rng().chance(300) {
                self.conn = ctx.net.client_connect(server);
                self.last_input = ctx.now;
                if self.conn.is_none() {
                    self.end = Some(End::Cut("refused"));
                }
            }
            return false;
        };
        let rng = ctx.net.rng();
        // Send a chunk.
        if !self.shut && rng.chance(500) {
            let want = rng
                .pick(&[1, 10, 1000, 70_000, 300_000])
                .min(self.total - self.sent);
            if self.pace == Pace::Hostile && self.sent >= self.trick_at && self.trick(ctx, conn) {
                return false;
            }
            if want > 0 {
                self.buf.clear();
                stream_bytes(self.who, self.sent, want, &mut self.buf);
                match ctx.net.client_send(conn, &self.buf) {
                    Ok(n) => {
                        if n > 0 {
                            self.last_input = ctx.now;
                        }
                        self.sent += n;
                    }
                    Err(_) => return self.cut(ctx, "send failed"),
                }
            }
            let owed = self.sent - self.recv;
            if self.sent == self.total
                && self.pace != Pace::Hostile
                && (!self.holds_fin || owed == 0)
            {
                ctx.net.client_shutdown(conn);
                self.last_input = ctx.now;
                self.shut = true;
            }
        }
        if self.pace == Pace::Hostile && self.sent == self.total && !self.shut {
            if self.trick(ctx, conn) {
                return false;
            }
            ctx.net.client_shutdown(conn);
            self.shut = true;
        }
        // Read, at the client's pace.
        let rng = ctx.net.rng();
        if ctx.step < self.paused_until {
            return false;
        }
        // (An echo client cannot sleep until the end: its own input would
        // stop at --out-limit. A sleeper here is stop-and-go.)
        let stop_and_go = matches!(self.pace, Pace::StopAndGo | Pace::Sleeper);
        if stop_and_go && !ctx.draining && rng.chance(20) {
            self.paused_until = ctx.step + rng.range(10, 500) as u64;
            return false;
        }
        if self.pace == Pace::Hostile && rng.chance(700) {
            return false;
        }
        let max = self.pace.read_size(rng);
        self.buf.clear();
        match ctx.net.client_recv(conn, &mut self.buf, max) {
            ClientRead::Data(n) => {
                assert!(
                    self.recv + n <= self.sent,
                    "echo client {}: {} bytes came back, only {} were sent",
                    self.who,
                    self.recv + n,
                    self.sent
                );
                if let Some(i) = stream_mismatch(self.who, self.recv, &self.buf[..n]) {
                    panic!(
                        "echo client {}: byte {} is not the byte it sent",
                        self.who,
                        self.recv + i
                    );
                }
                self.recv += n;
                self.starve = 0;
            }
            ClientRead::WouldBlock => {
                if self.recv < self.sent && self.pace != Pace::Hostile {
                    if self.starve == 0 {
                        self.starve_since = ctx.now;
                    }
                    self.starve += 1;
                } else {
                    self.starve = 0;
                }
            }
            ClientRead::Eof => {
                ctx.net.client_close(conn);
                if self.shut && self.recv == self.sent {
                    self.end = Some(End::Complete);
                } else {
                    return self.cut(ctx, "EOF before everything came back");
                }
            }
            ClientRead::Reset => return self.cut(ctx, "reset"),
        }
        false
    }

    /// The hostile client's misbehaviour: returns true if it ended the
    /// connection.
    fn trick(&mut self, ctx: &mut Ctx<'_>, conn: ConnId) -> bool {
        match ctx.net.rng().below(4) {
            0 => {
                ctx.net.client_reset(conn);
                self.end = Some(End::Cut("hostile reset"));
                true
            }
            1 => {
                ctx.net.client_close(conn);
                self.end = Some(End::Cut("hostile close"));
                true
            }
            2 => {
                ctx.net.client_shutdown(conn);
                self.shut = true;
                false
            }
            _ => {
                self.trick_at = usize::MAX;
                false
            }
        }
    }

    /// The connection ended early. Allowed only for a hostile client, after
    /// SIGTERM, after `--idle-timeout` of silence, or at `--max-conns`
    /// (closed before anything was read). Returns whether it was a rejection.
    fn cut(&mut self, ctx: &mut Ctx<'_>, how: &'static str) -> bool {
        let conn = self.conn.expect("connected");
        ctx.net.client_close(conn);
        if self.pace == Pace::Hostile {
            self.end = Some(End::Cut("hostile"));
            return false;
        }
        // An idle close never leaves input unread (that would be a
        // connection whose input the server paused: not idle), so it is
        // seen as an early EOF, never as a reset.
        let idle = how != "reset" && ctx.idle_cut_allowed(self.last_input);
        if ctx.signalled || idle {
            self.end = Some(End::Cut(how));
            return false;
        }
        if ctx.net.conn_rejected(conn) {
            self.end = Some(End::Cut("rejected at --max-conns"));
            return true;
        }
        panic!(
            "echo client {} ({:?}): {how} with {} of {} bytes back ({} sent in all{}), at {:?}; \
             the server may cut a connection only on SIGTERM, at --max-conns or after --idle-timeout {:?} of silence (last input {:?}); {}",
            self.who,
            self.pace,
            self.recv,
            self.sent,
            self.total,
            if self.shut { ", then FIN" } else { "" },
            ctx.now,
            ctx.config.idle_timeout,
            self.last_input,
            ctx.net.describe(conn)
        );
    }
}
