//! `bench echo`: closed-loop TCP echo. Each of `--conns` connections keeps
//! `--pipeline` messages of `--size` bytes in flight: every reply that
//! completes lets the next message start. TCP keeps order, so replies on one
//! connection come back in the order sent, and the bench checks each reply
//! byte by byte, as it streams in, against the message it regenerates from
//! the sequence number and the send time it kept.
//!
//! [`EchoFlow`] is that per-connection logic without a socket (it writes to
//! any `Write` and is fed bytes), so it is tested in memory; [`run`] is the
//! poll loop around it.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::payload::Format;
use super::report::{Progress, Tally};
use super::tcp::{connect_all, OutStream};
use super::{new_poll, Clock, Plan, Schedule, Turn, DRAIN_TIMEOUT};
use crate::buffer::PageAligned;
use crate::config::READ_BUF_SIZE;
use crate::net::mio::readiness_of;
use crate::net::toolkit::{drain, poll_once, Drained};
use crate::net::Readiness;

/// One connection's closed loop: what it sent and when, and how far the
/// replies have come.
#[derive(Debug)]
pub struct EchoFlow {
    format: Format,
    out: OutStream,
    /// Send time of message `seq`, at `seq % window` (one slot per message
    /// in flight).
    sent_ns: Box<[u64]>,
    /// The message the next reply byte belongs to, and how many of its bytes
    /// have arrived.
    recv_seq: u64,
    recv_off: usize,
    /// A byte of the current reply already differed.
    recv_bad: bool,
}

impl EchoFlow {
    /// A flow of `size`-byte messages with `window` in flight.
    pub fn new(size: usize, window: usize) -> EchoFlow {
        let format = Format::Binary { size };
        EchoFlow {
            format,
            out: OutStream::new(OutStream::capacity_for(format.wire_len(), window)),
            sent_ns: vec![0; window.max(1)].into_boxed_slice(),
            recv_seq: 0,
            recv_off: 0,
            recv_bad: false,
        }
    }

    /// Messages begun and not yet answered (well or badly).
    pub fn in_flight(&self) -> u64 {
        self.out.started() - self.recv_seq
    }

    /// A writable edge arrived.
    pub fn unblock(&mut self) {
        self.out.unblock();
    }

    /// Start messages while the window has room (and `running`), and write
    /// until the socket is full.
    pub fn pump<W: Write>(
        &mut self,
        dst: &mut W,
        now_ns: u64,
        running: bool,
        tally: &mut Tally,
    ) -> io::Result<()> {
        let window = self.sent_ns.len() as u64;
        let answered = self.recv_seq;
        let sent_ns = &mut self.sent_ns;
        self.out.pump(dst, &self.format, |seq| {
            if running && tally.may_start() && seq - answered < window {
                sent_ns[(seq % window) as usize] = now_ns;
                tally.sent += 1;
                Some(now_ns)
            } else {
                None
            }
        })
    }

    /// Reply bytes arrived: check them against what was sent, and count each
    /// reply that completes, with its latency.
    pub fn on_reply(&mut self, mut chunk: &[u8], now: Instant, now_ns: u64, tally: &mut Tally) {
        let wire_len = self.format.wire_len();
        let window = self.sent_ns.len() as u64;
        while !chunk.is_empty() {
            if self.recv_seq >= self.out.started() {
                // Bytes for a message never sent: the rest of this read is
                // garbage. Counted once per read.
                tally.mismatched += 1;
                return;
            }
            let sent_ns = self.sent_ns[(self.recv_seq % window) as usize];
            let n = (wire_len - self.recv_off).min(chunk.len());
            if !self.recv_bad
                && !self
                    .format
                    .matches(self.recv_seq, sent_ns, self.recv_off, &chunk[..n])
            {
                self.recv_bad = true;
            }
            self.recv_off += n;
            chunk = &chunk[n..];
            if self.recv_off == wire_len {
                if self.recv_bad {
                    tally.mismatched += 1;
                } else {
                    tally.answered(wire_len, now_ns.saturating_sub(sent_ns), now);
                }
                self.recv_seq += 1;
                self.recv_off = 0;
                self.recv_bad = false;
            }
        }
    }
}

struct EchoClient {
    stream: TcpStream,
    flow: EchoFlow,
}

/// Every connection of the run, by token, and the totals the loop steers by.
struct Fleet {
    /// `None` once a connection has ended (its slot is never reused, so a
    /// late event for it finds nothing).
    conns: Vec<Option<EchoClient>>,
    live: usize,
    /// Messages in flight over all connections: the drain ends at 0.
    outstanding: u64,
}

impl Fleet {
    /// Handle readiness of connection `i`: read and check replies, then
    /// start and write new messages. A connection the server closed or
    /// reset is counted and dropped; one bad connection does not end the run.
    fn serve(
        &mut self,
        i: usize,
        ready: Readiness,
        rbuf: &mut [u8],
        turn: &Turn,
        tally: &mut Tally,
    ) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let before = conn.flow.in_flight();
        let open = conn.serve(ready, rbuf, turn, tally);
        let after = conn.flow.in_flight();
        self.outstanding = self.outstanding + after - before;
        if !open {
            tally.disconnected += 1;
            tally.lost += after;
            self.outstanding -= after;
            self.conns[i] = None;
            self.live -= 1;
        }
    }
}

impl EchoClient {
    /// Returns false when the connection has ended.
    fn serve(&mut self, ready: Readiness, rbuf: &mut [u8], turn: &Turn, tally: &mut Tally) -> bool {
        if ready.readable || ready.read_closed {
            // No budget: a closed loop has at most its window of replies in
            // flight, so the reads end by themselves.
            let flow = &mut self.flow;
            let drained = drain(
                &mut self.stream,
                rbuf,
                usize::MAX,
                ready.read_closed,
                |reply| {
                    flow.on_reply(reply, turn.now, turn.now_ns, tally);
                    true
                },
            );
            if matches!(drained, Ok(Drained::Eof) | Err(_)) {
                return false;
            }
        }
        if ready.writable {
            self.flow.unblock();
        }
        self.flow
            .pump(&mut self.stream, turn.now_ns, turn.running, tally)
            .is_ok()
    }
}

/// Run `bench echo`. Returns the counters, the number of sending
/// connections and the measured interval.
pub fn run(plan: &Plan) -> io::Result<(Tally, usize, Duration)> {
    let clock = Clock::start();
    let (mut poll, mut events) = new_poll()?;
    let streams = connect_all(&mut poll, &mut events, plan.addr, plan.conns)?;
    let mut fleet = Fleet {
        conns: streams
            .into_iter()
            .map(|stream| {
                Some(EchoClient {
                    stream,
                    flow: EchoFlow::new(plan.size, plan.pipeline),
                })
            })
            .collect(),
        live: plan.conns,
        outstanding: 0,
    };
    let mut rbuf = PageAligned::new(READ_BUF_SIZE);
    let mut tally = Tally::for_plan(plan);
    let mut progress = Progress::new("bench echo", plan);
    let mut schedule = Schedule::new(plan.duration, DRAIN_TIMEOUT);

    // Kick-off: every connection fills its window; from then on only
    // readiness events drive the loop.
    let turn = Turn::now(&clock, &schedule);
    for i in 0..plan.conns {
        let may_write = Readiness {
            readable: false,
            writable: true,
            read_closed: false,
        };
        fleet.serve(i, may_write, &mut rbuf, &turn, &mut tally);
    }
    loop {
        let now = Instant::now();
        schedule.advance(now);
        if fleet.live == 0 || !tally.may_start() {
            schedule.stop(now);
        }
        if !schedule.running() && (fleet.outstanding == 0 || schedule.drain_expired(now)) {
            break;
        }
        progress.update(now, now - schedule.start, &tally);
        let timeout = schedule.poll_timeout(now, &progress, None);
        poll_once(&mut poll, &mut events, Some(timeout))?;
        let turn = Turn::now(&clock, &schedule);
        for event in events.iter() {
            let i = event.token().0;
            fleet.serve(i, readiness_of(event), &mut rbuf, &turn, &mut tally);
        }
    }
    // Whatever is still unanswered after the drain is lost.
    tally.lost += fleet.outstanding;
    progress.finish();
    let elapsed = schedule.elapsed(&tally);
    Ok((tally, plan.conns, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `rounds` of send-everything-then-echo-it-back through `server`,
    /// a function from the bytes sent to the bytes echoed.
    fn drive(flow: &mut EchoFlow, rounds: usize, server: impl Fn(Vec<u8>) -> Vec<u8>) -> Tally {
        let mut tally = Tally::new();
        for round in 0..rounds {
            let mut wire = Vec::new();
            flow.pump(&mut wire, round as u64 * 1000, true, &mut tally)
                .unwrap();
            let echoed = server(wire);
            // Feed the reply back in uneven pieces, as TCP may.
            for piece in echoed.chunks(7) {
                flow.on_reply(piece, Instant::now(), round as u64 * 1000 + 500, &mut tally);
            }
        }
        tally
    }

    #[test]
    fn a_faithful_echo_answers_everything() {
        let mut flow = EchoFlow::new(100, 4);
        let tally = drive(&mut flow, 10, |b| b);
        assert_eq!(tally.sent, 40);
        assert_eq!(tally.messages, 40);
        assert_eq!(tally.bytes, 4000);
        assert_eq!(tally.errors(), 0);
        assert_eq!(flow.in_flight(), 0);
        assert_eq!(tally.latency.min(), 500);
    }

    #[test]
    fn the_window_bounds_what_is_in_flight() {
        let mut flow = EchoFlow::new(10, 3);
        let mut tally = Tally::new();
        let mut wire = Vec::new();
        flow.pump(&mut wire, 0, true, &mut tally).unwrap();
        flow.pump(&mut wire, 0, true, &mut tally).unwrap();
        assert_eq!(wire.len(), 30);
        assert_eq!(flow.in_flight(), 3);
        flow.on_reply(&wire[..10], Instant::now(), 1, &mut tally);
        flow.pump(&mut wire, 0, true, &mut tally).unwrap();
        assert_eq!(wire.len(), 40);
        // Once not running, nothing new starts.
        flow.on_reply(&wire[10..20], Instant::now(), 1, &mut tally);
        flow.pump(&mut wire, 0, false, &mut tally).unwrap();
        assert_eq!(wire.len(), 40);
    }

    #[test]
    fn tiny_messages_check_too() {
        let mut flow = EchoFlow::new(1, 2);
        let tally = drive(&mut flow, 50, |b| b);
        assert_eq!((tally.messages, tally.errors()), (100, 0));
        let mut flow = EchoFlow::new(1, 2);
        let tally = drive(&mut flow, 50, |mut b| {
            b[0] ^= 1;
            b
        });
        assert_eq!((tally.messages, tally.mismatched), (50, 50));
    }

    #[test]
    fn a_flipped_byte_is_a_mismatch_and_the_rest_still_counts() {
        let mut flow = EchoFlow::new(64, 2);
        let tally = drive(&mut flow, 5, |mut b| {
            b[70] ^= 0x40; // inside the second message of each round
            b
        });
        assert_eq!(tally.mismatched, 5);
        assert_eq!(tally.messages, 5);
    }

    #[test]
    fn bytes_nobody_sent_are_a_mismatch() {
        let mut flow = EchoFlow::new(8, 1);
        let tally = drive(&mut flow, 3, |mut b| {
            b.push(0);
            b
        });
        assert!(tally.mismatched >= 1);
    }

    #[test]
    fn a_shifted_stream_is_all_mismatch() {
        // A server that dropped the first byte it received.
        let mut flow = EchoFlow::new(16, 1);
        let mut tally = Tally::new();
        let mut wire = Vec::new();
        flow.pump(&mut wire, 0, true, &mut tally).unwrap();
        flow.on_reply(&wire[1..], Instant::now(), 1, &mut tally);
        assert_eq!(tally.messages, 0);
        assert_eq!(flow.in_flight(), 1);
    }
}
