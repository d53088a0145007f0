//! `bench udp`: UDP echo with `--conns` sockets, each keeping `--pipeline`
//! datagrams of `--size` bytes in flight, with a loss timeout.
//!
//! UDP may drop, duplicate or reorder, so a reply says itself which
//! datagram it answers: its first 8 bytes are the sequence number, and
//! `seq = round * window + slot`. Each of the window's slots has at most one
//! datagram in flight; a reply for the slot's current round is checked byte
//! for byte and frees the slot for the next datagram. A datagram unanswered
//! after [`UDP_LOSS_TIMEOUT`] counts as lost and its slot moves on; should its
//! reply still come, it is counted as *late*, not answered twice.
//!
//! Each socket is bound to an ephemeral port and `connect`ed to the server,
//! so it receives only the server's datagrams and sends without an address.
//! The server never answers source ports 0, 7, 13, 17 and 19 (its guard
//! against echo loops between services); ephemeral ports are never those.
//!
//! [`UdpFlow`] is one socket's window without the socket; [`run`] is the loop.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Interest, Token};

use super::payload::{binary_seq, Format};
use super::report::{Progress, Tally};
use super::{new_poll, Clock, Plan, Schedule, Turn, UDP_LOSS_TIMEOUT};
use crate::config::READ_BUF_SIZE;
use crate::net::toolkit::poll_once;
use crate::net::{interrupted, would_block};

/// How often in-flight datagrams are checked against the loss timeout. A
/// loss is therefore noticed between 1.0 and 1.1 timeouts after the send.
const LOSS_SCAN_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Datagrams sent from this slot so far; the current one is round
    /// `rounds - 1`.
    rounds: u64,
    sent_ns: u64,
    in_flight: bool,
}

/// One socket's window of datagrams.
#[derive(Debug)]
pub struct UdpFlow {
    format: Format,
    slots: Box<[Slot]>,
    /// Slots whose next datagram waits to be sent, oldest first. Each slot
    /// is in here at most once, so it never grows past the window.
    ready: VecDeque<u32>,
    in_flight: u64,
}

impl UdpFlow {
    /// A flow of `size`-byte datagrams, `window` in flight, all slots ready.
    pub fn new(size: usize, window: usize) -> UdpFlow {
        UdpFlow {
            format: Format::Binary { size },
            slots: vec![Slot::default(); window].into_boxed_slice(),
            ready: (0..window as u32).collect(),
            in_flight: 0,
        }
    }

    /// Datagrams sent and neither answered nor given up on.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    fn window(&self) -> u64 {
        self.slots.len() as u64
    }

    /// Produce the next datagram to send into `buf`, if a slot is ready.
    /// Nothing changes until [`sent`](Self::sent) confirms the send, so a
    /// send that would block is simply tried again later.
    pub fn next_datagram(&self, buf: &mut [u8], now_ns: u64) -> Option<usize> {
        let &slot = self.ready.front()?;
        let seq = self.slots[slot as usize].rounds * self.window() + u64::from(slot);
        let len = self.format.wire_len();
        self.format.fill(seq, now_ns, 0, &mut buf[..len]);
        Some(len)
    }

    /// The datagram from [`next_datagram`](Self::next_datagram) was sent.
    pub fn sent(&mut self, now_ns: u64, tally: &mut Tally) {
        if let Some(slot) = self.ready.pop_front() {
            let s = &mut self.slots[slot as usize];
            s.rounds += 1;
            s.sent_ns = now_ns;
            s.in_flight = true;
            self.in_flight += 1;
            tally.sent += 1;
        }
    }

    /// A datagram arrived: find which one it answers and check it.
    pub fn on_datagram(&mut self, d: &[u8], turn: &Turn, tally: &mut Tally) {
        let Some(seq) = binary_seq(d).filter(|_| d.len() == self.format.wire_len()) else {
            tally.mismatched += 1;
            return;
        };
        let window = self.window();
        let (slot, round) = ((seq % window) as usize, seq / window);
        let s = &mut self.slots[slot];
        if round >= s.rounds {
            // An answer to a datagram not sent yet.
            tally.mismatched += 1;
        } else if round + 1 == s.rounds && s.in_flight {
            s.in_flight = false;
            self.in_flight -= 1;
            if self.format.matches(seq, s.sent_ns, 0, d) {
                tally.answered(d.len(), turn.now_ns.saturating_sub(s.sent_ns), turn.now);
            } else {
                tally.mismatched += 1;
            }
            if turn.running {
                self.ready.push_back(slot as u32);
            }
        } else {
            // An answer to a datagram already given up on (or a duplicate).
            // Its send time is gone; check everything else with the one it
            // carries.
            let carried_ns = u64::from_le_bytes(d[8..16].try_into().expect("16-byte header"));
            if self.format.matches(seq, carried_ns, 0, d) {
                tally.late += 1;
            } else {
                tally.mismatched += 1;
            }
        }
    }

    /// Count datagrams older than `timeout_ns` as lost; their slots go on.
    pub fn expire(&mut self, turn: &Turn, timeout_ns: u64, tally: &mut Tally) {
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.in_flight && turn.now_ns.saturating_sub(s.sent_ns) >= timeout_ns {
                s.in_flight = false;
                self.in_flight -= 1;
                tally.lost += 1;
                if turn.running {
                    self.ready.push_back(i as u32);
                }
            }
        }
    }

    /// The load phase is over: datagrams not yet sent never will be.
    pub fn stop(&mut self) {
        self.ready.clear();
    }
}

struct Flow {
    socket: UdpSocket,
    flow: UdpFlow,
}

/// How a socket's turn ended.
enum Served {
    Open,
    /// `ECONNREFUSED`: an ICMP port unreachable came back, nothing listens.
    Refused(io::Error),
    /// Any other socket error.
    Failed,
}

impl Flow {
    fn serve(
        &mut self,
        readable: bool,
        rbuf: &mut [u8],
        sbuf: &mut [u8],
        turn: &Turn,
        tally: &mut Tally,
    ) -> Served {
        if readable {
            loop {
                match self.socket.recv(rbuf) {
                    Ok(n) => self.flow.on_datagram(&rbuf[..n], turn, tally),
                    Err(e) if would_block(&e) => break,
                    Err(e) if interrupted(&e) => continue,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        return Served::Refused(e)
                    }
                    Err(_) => return Served::Failed,
                }
            }
        }
        // Stop at `-n COUNT`; the loop then ends the load phase.
        while tally.may_start() {
            let Some(len) = self.flow.next_datagram(sbuf, turn.now_ns) else {
                break;
            };
            match self.socket.send(&sbuf[..len]) {
                Ok(_) => self.flow.sent(turn.now_ns, tally),
                // Full: the writable edge (always registered) resumes it.
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Served::Refused(e)
                }
                Err(_) => return Served::Failed,
            }
        }
        Served::Open
    }
}

/// The local address to bind for talking to `server`: the loopback of the
/// same family when the server is on loopback, else the unspecified one.
fn local_for(server: SocketAddr) -> SocketAddr {
    let ip: IpAddr = match (server.ip().is_loopback(), server.is_ipv4()) {
        (true, true) => Ipv4Addr::LOCALHOST.into(),
        (true, false) => Ipv6Addr::LOCALHOST.into(),
        (false, true) => Ipv4Addr::UNSPECIFIED.into(),
        (false, false) => Ipv6Addr::UNSPECIFIED.into(),
    };
    SocketAddr::new(ip, 0)
}

/// Every socket of the run, by token, and the totals the loop steers by.
struct Fleet {
    flows: Vec<Option<Flow>>,
    live: usize,
    /// Datagrams in flight over all sockets: the drain ends at 0.
    outstanding: u64,
    server: SocketAddr,
    rbuf: Vec<u8>,
    sbuf: Vec<u8>,
}

impl Fleet {
    /// Handle readiness of socket `i`: receive and check, then send what is
    /// ready. A socket that fails is counted and dropped; the run goes on,
    /// unless nothing has answered yet and the failure says nothing listens.
    fn serve(
        &mut self,
        i: usize,
        readable: bool,
        turn: &Turn,
        tally: &mut Tally,
    ) -> io::Result<()> {
        let Some(f) = self.flows.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        let before = f.flow.in_flight();
        let served = f.serve(readable, &mut self.rbuf, &mut self.sbuf, turn, tally);
        let after = f.flow.in_flight();
        self.outstanding = self.outstanding + after - before;
        match served {
            Served::Open => return Ok(()),
            Served::Refused(e) if tally.messages == 0 && tally.late == 0 => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("no UDP echo at {}: {e}", self.server),
                ));
            }
            Served::Refused(_) | Served::Failed => {}
        }
        tally.disconnected += 1;
        tally.lost += after;
        self.outstanding -= after;
        self.flows[i] = None;
        self.live -= 1;
        Ok(())
    }

    /// Give up on datagrams past the loss timeout, and send the next ones.
    fn expire(&mut self, turn: &Turn, timeout_ns: u64, tally: &mut Tally) -> io::Result<()> {
        for i in 0..self.flows.len() {
            if let Some(f) = self.flows[i].as_mut() {
                let before = f.flow.in_flight();
                f.flow.expire(turn, timeout_ns, tally);
                self.outstanding -= before - f.flow.in_flight();
                self.serve(i, false, turn, tally)?;
            }
        }
        Ok(())
    }
}

/// Run `bench udp`. Returns the counters, the number of sending sockets and
/// the measured interval. Fails, naming the address, when the very first
/// answer is an ICMP "port unreachable" (nothing listens there).
pub fn run(plan: &Plan) -> io::Result<(Tally, usize, Duration)> {
    let clock = Clock::start();
    let (mut poll, mut events) = new_poll()?;
    let mut flows = Vec::with_capacity(plan.conns);
    for i in 0..plan.conns {
        let mut socket = UdpSocket::bind(local_for(plan.addr))?;
        socket
            .connect(plan.addr)
            .map_err(|e| super::tcp::cannot_connect(plan.addr, e))?;
        poll.registry().register(
            &mut socket,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        flows.push(Some(Flow {
            socket,
            flow: UdpFlow::new(plan.size, plan.pipeline),
        }));
    }
    let mut fleet = Fleet {
        flows,
        live: plan.conns,
        outstanding: 0,
        server: plan.addr,
        rbuf: vec![0u8; READ_BUF_SIZE],
        sbuf: vec![0u8; plan.size],
    };
    let mut tally = Tally::for_plan(plan);
    let mut progress = Progress::new("bench udp", plan);
    // The drain lasts until every datagram is answered or timed out.
    let mut schedule = Schedule::new(plan.duration, UDP_LOSS_TIMEOUT + 2 * LOSS_SCAN_EVERY);
    let timeout_ns = UDP_LOSS_TIMEOUT.as_nanos() as u64;
    let mut next_scan = Instant::now() + LOSS_SCAN_EVERY;

    let turn = Turn::now(&clock, &schedule);
    for i in 0..plan.conns {
        fleet.serve(i, false, &turn, &mut tally)?;
    }
    loop {
        let now = Instant::now();
        let was_running = schedule.running();
        schedule.advance(now);
        if fleet.live == 0 || !tally.may_start() {
            schedule.stop(now);
        }
        if was_running && !schedule.running() {
            for f in fleet.flows.iter_mut().flatten() {
                f.flow.stop();
            }
        }
        if now >= next_scan {
            next_scan = now + LOSS_SCAN_EVERY;
            fleet.expire(&Turn::now(&clock, &schedule), timeout_ns, &mut tally)?;
        }
        if !schedule.running() && (fleet.outstanding == 0 || schedule.drain_expired(now)) {
            break;
        }
        progress.update(now, now - schedule.start, &tally);
        let timeout = schedule.poll_timeout(now, &progress, Some(next_scan));
        poll_once(&mut poll, &mut events, Some(timeout))?;
        let turn = Turn::now(&clock, &schedule);
        for event in events.iter() {
            let readable = event.is_readable() || event.is_error();
            fleet.serve(event.token().0, readable, &turn, &mut tally)?;
        }
    }
    tally.lost += fleet.outstanding;
    progress.finish();
    let elapsed = schedule.elapsed(&tally);
    Ok((tally, plan.conns, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(now_ns: u64, running: bool) -> Turn {
        Turn {
            now: Instant::now(),
            now_ns,
            running,
        }
    }

    /// Send everything ready; return the datagrams as the wire would carry them.
    fn send_all(flow: &mut UdpFlow, now_ns: u64, tally: &mut Tally) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while let Some(n) = flow.next_datagram(&mut buf, now_ns) {
            out.push(buf[..n].to_vec());
            flow.sent(now_ns, tally);
        }
        out
    }

    #[test]
    fn answers_in_any_order_all_count() {
        let mut flow = UdpFlow::new(32, 4);
        let mut tally = Tally::new();
        for round in 0..3u64 {
            let mut sent = send_all(&mut flow, round * 100, &mut tally);
            assert_eq!(sent.len(), 4);
            sent.reverse();
            for d in &sent {
                flow.on_datagram(d, &turn(round * 100 + 40, true), &mut tally);
            }
        }
        assert_eq!((tally.sent, tally.messages, tally.errors()), (12, 12, 0));
        assert_eq!(tally.latency.max(), 40);
        assert_eq!(flow.in_flight(), 0);
    }

    #[test]
    fn a_corrupt_reply_is_a_mismatch_and_frees_its_slot() {
        let mut flow = UdpFlow::new(20, 1);
        let mut tally = Tally::new();
        let mut d = send_all(&mut flow, 0, &mut tally).remove(0);
        d[19] ^= 1;
        flow.on_datagram(&d, &turn(1, true), &mut tally);
        assert_eq!((tally.messages, tally.mismatched), (0, 1));
        assert_eq!(send_all(&mut flow, 2, &mut tally).len(), 1);
        // Wrong length, too short for a header, or a number never sent.
        flow.on_datagram(&d[..19], &turn(3, true), &mut tally);
        flow.on_datagram(&d[..4], &turn(3, true), &mut tally);
        let mut future = d.clone();
        future[0] = 9;
        flow.on_datagram(&future, &turn(3, true), &mut tally);
        assert_eq!(tally.mismatched, 4);
    }

    #[test]
    fn a_timeout_counts_lost_and_a_late_reply_is_not_counted_twice() {
        let mut flow = UdpFlow::new(16, 2);
        let mut tally = Tally::new();
        let first = send_all(&mut flow, 0, &mut tally);
        flow.on_datagram(&first[0], &turn(10, true), &mut tally);
        flow.expire(&turn(1_000, true), 1_000, &mut tally);
        assert_eq!((tally.messages, tally.lost), (1, 1));
        assert_eq!(flow.in_flight(), 0);
        flow.on_datagram(&first[1], &turn(1_100, true), &mut tally);
        assert_eq!((tally.late, tally.messages, tally.mismatched), (1, 1, 0));
        // A duplicate of an answered datagram is late as well, never answered twice.
        flow.on_datagram(&first[0], &turn(1_100, true), &mut tally);
        assert_eq!((tally.late, tally.messages), (2, 1));
    }

    #[test]
    fn after_stop_nothing_new_is_sent() {
        let mut flow = UdpFlow::new(16, 3);
        let mut tally = Tally::new();
        let sent = send_all(&mut flow, 0, &mut tally);
        flow.stop();
        for d in &sent {
            flow.on_datagram(d, &turn(5, false), &mut tally);
        }
        assert!(send_all(&mut flow, 6, &mut tally).is_empty());
        assert_eq!((tally.sent, tally.messages), (3, 3));
    }
}
