//! `bench chat`: `--conns` clients in #lobby; the first
//! min(conns, [`CHAT_MAX_SENDERS`]) of them send, each with a window of
//! `--pipeline` lines in flight; every client receives and checks every line
//! relayed to it, and its latency from the sender's timestamp.
//!
//! Setup (not timed): connect everyone (at most [`CHAT_UNWELCOMED_MAX`]
//! waiting for their welcome at once), read each welcome line to learn the
//! client's nickname (`guestK`), and wait until every client has seen the
//! join notice of every client that came after it, so that no join notice is
//! still on its way when the clock starts.
//!
//! Load: a line is *done* when every other live client has received it; a
//! sender starts a new line only while fewer than `--pipeline` of its lines
//! are not done. This closed loop keeps each receiver's backlog at the server
//! below `senders x pipeline` lines, so a fast bench never gets its own
//! receivers disconnected as too slow (keep that times the line length under
//! the server's `--out-limit`).
//!
//! Checking: the server relays one sender's lines to one receiver in order,
//! so each receiver keeps, per sender, the next sequence number it expects,
//! and compares each relayed payload byte for byte with the line regenerated
//! from that number and the sender's recorded send time. A `<nick>` that is
//! none of ours, and notices, are skipped and counted as *ignored*;
//! `* error:` lines and lines that differ are *mismatched*; deliveries still
//! missing at the end are *lost*.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::Token;

use super::payload::Format;
use super::report::{Progress, Tally};
use super::tcp::{cannot_connect, OutStream};
use super::{
    new_poll, Clock, Plan, Schedule, Turn, CHAT_MAX_SENDERS, CHAT_SETUP_TIMEOUT,
    CHAT_UNWELCOMED_MAX, DRAIN_TIMEOUT,
};
use crate::buffer::PageAligned;
use crate::config::READ_BUF_SIZE;
use crate::net::mio::readiness_of;
use crate::net::toolkit::{connect_nonblocking, drain, poll_once, Drained};
use crate::protocol::chat::wire::{self, guest_number, welcome_nick};
use crate::protocol::line::{LineEvent, LineFramer};

/// Read what `stream` has (until it would block: no budget, since a closed
/// loop has at most its windows of lines in flight) and hand each line to
/// `on_line`: `Some(line)`, or `None` for a line too long to be one of ours,
/// which `lines` skips to its LF. `Drained::Eof` when the server closed the
/// connection; a socket error (a refused connect, a reset) is returned.
fn read_lines<R: Read>(
    stream: &mut R,
    rbuf: &mut [u8],
    lines: &mut LineFramer,
    read_closed: bool,
    mut on_line: impl FnMut(Option<&[u8]>),
) -> io::Result<Drained> {
    drain(stream, rbuf, usize::MAX, read_closed, |data| {
        lines.push(data, |event| match event {
            LineEvent::Line(line) => on_line(Some(line)),
            LineEvent::TooLong => on_line(None),
        });
        true
    })
}

/// The longest line a bench client keeps whole: room for its own lines
/// (the payload and the sender's nickname) and any notice, with margin.
fn max_line_for(size: usize) -> usize {
    (2 * (size + 64)).max(4096)
}

/// The nickname in a join notice to #lobby.
fn joined_nick(line: &[u8]) -> Option<&[u8]> {
    wire::joined(line)
        .filter(|&(_, room)| room == b"lobby")
        .map(|(nick, _)| nick)
}

/// One line of a sender's window.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    sent_ns: u64,
    /// Receivers that have not received it yet.
    remaining: u32,
}

/// A sending client's closed loop.
#[derive(Debug)]
struct Sender {
    /// Index of the client that sends.
    client: usize,
    out: OutStream,
    /// Line `seq` lives at `seq % window` while not done.
    ring: Box<[Pending]>,
    /// The oldest line not done; `out.started()` is the next line.
    base: u64,
}

/// Everything the receivers and senders share, apart from the sockets: who
/// is who, what each receiver expects next from each sender, and the
/// senders' windows. Sans-IO: tests drive it with lines and `Vec` writers.
#[derive(Debug)]
pub struct Book {
    format: Format,
    window: u64,
    /// Sender index of each client, if it sends.
    sender_of: Vec<Option<usize>>,
    senders: Vec<Sender>,
    /// `expected[r * senders + s]`: the next line receiver `r` expects from
    /// sender `s`.
    expected: Vec<u64>,
    /// Client index by guest number.
    by_guest: HashMap<u64, usize>,
    /// Live clients.
    live: usize,
    /// Lines sent and not done, over all senders: the drain ends at 0.
    open_lines: u64,
    /// Senders whose window opened since they last wrote.
    woken: Vec<usize>,
    is_woken: Vec<bool>,
}

impl Book {
    /// `clients` clients of which the first `senders` send `size`-byte
    /// lines, `window` in flight each.
    pub fn new(clients: usize, senders: usize, size: usize, window: usize) -> Book {
        let format = Format::Text { size };
        Book {
            format,
            window: window as u64,
            sender_of: (0..clients).map(|c| (c < senders).then_some(c)).collect(),
            senders: (0..senders)
                .map(|client| Sender {
                    client,
                    out: OutStream::new(OutStream::capacity_for(format.wire_len(), window)),
                    ring: vec![Pending::default(); window].into_boxed_slice(),
                    base: 0,
                })
                .collect(),
            expected: vec![0; clients * senders],
            by_guest: HashMap::with_capacity(clients),
            live: clients,
            open_lines: 0,
            woken: Vec::with_capacity(senders),
            is_woken: vec![false; senders],
        }
    }

    /// Client `client` is `guestK`.
    pub fn name(&mut self, client: usize, guest: u64) {
        self.by_guest.insert(guest, client);
    }

    /// Lines sent and not yet received by everyone.
    pub fn open_lines(&self) -> u64 {
        self.open_lines
    }

    /// One line received by client `r` during the load.
    pub fn on_line(&mut self, r: usize, line: &[u8], turn: &Turn, tally: &mut Tally) {
        if line.starts_with(b"* error") {
            tally.mismatched += 1;
            return;
        }
        let Some((nick, payload)) = wire::relayed(line) else {
            tally.ignored += 1; // a notice
            return;
        };
        let Some(&from) = guest_number(nick).and_then(|g| self.by_guest.get(&g)) else {
            tally.ignored += 1; // someone else's line
            return;
        };
        let Some(s) = self.sender_of[from].filter(|_| from != r) else {
            // Our own line, or from a client of ours that never sends.
            tally.mismatched += 1;
            return;
        };
        let slot = r * self.senders.len() + s;
        let seq = self.expected[slot];
        let sender = &mut self.senders[s];
        if seq >= sender.out.started() {
            tally.mismatched += 1;
            return;
        }
        let pending = &mut sender.ring[(seq % self.window) as usize];
        if payload.len() + 1 != self.format.wire_len()
            || !self.format.matches(seq, pending.sent_ns, 0, payload)
        {
            tally.mismatched += 1;
            return;
        }
        tally.answered(
            line.len() + 1,
            turn.now_ns.saturating_sub(pending.sent_ns),
            turn.now,
        );
        self.expected[slot] = seq + 1;
        pending.remaining -= 1;
        if pending.remaining == 0 {
            self.complete(s);
        }
    }

    /// A line of sender `s` may be done: move its window on, and wake it.
    fn complete(&mut self, s: usize) {
        let sender = &mut self.senders[s];
        let started = sender.out.started();
        while sender.base < started
            && sender.ring[(sender.base % self.window) as usize].remaining == 0
        {
            sender.base += 1;
            self.open_lines -= 1;
        }
        if !self.is_woken[s] {
            self.is_woken[s] = true;
            self.woken.push(s);
        }
    }

    /// Client `r` is gone: every line in flight that it had not received yet
    /// is lost (for it), and no longer waits for it.
    pub fn drop_client(&mut self, r: usize, tally: &mut Tally) {
        self.live -= 1;
        for s in 0..self.senders.len() {
            if self.senders[s].client == r {
                continue;
            }
            let from = self.expected[r * self.senders.len() + s];
            let started = self.senders[s].out.started();
            let mut any_done = false;
            for seq in from..started {
                let p = &mut self.senders[s].ring[(seq % self.window) as usize];
                p.remaining -= 1;
                tally.lost += 1;
                any_done |= p.remaining == 0;
            }
            if any_done {
                self.complete(s);
            }
        }
    }

    /// Sender `s` writes to `dst`: it finishes its current line and starts
    /// new ones while its window has room.
    pub fn pump<W: Write>(
        &mut self,
        s: usize,
        dst: &mut W,
        turn: &Turn,
        tally: &mut Tally,
    ) -> io::Result<()> {
        let receivers = (self.live - 1) as u32;
        let window = self.window;
        let sender = &mut self.senders[s];
        let (base, ring) = (sender.base, &mut sender.ring);
        let open_lines = &mut self.open_lines;
        sender.out.pump(dst, &self.format, |seq| {
            if turn.running && tally.may_start() && receivers > 0 && seq - base < window {
                ring[(seq % window) as usize] = Pending {
                    sent_ns: turn.now_ns,
                    remaining: receivers,
                };
                *open_lines += 1;
                tally.sent += 1;
                Some(turn.now_ns)
            } else {
                None
            }
        })
    }

    /// Deliveries still missing: counted as lost when the bench stops.
    pub fn missing(&self) -> u64 {
        self.senders
            .iter()
            .map(|s| {
                (s.base..s.out.started())
                    .map(|seq| u64::from(s.ring[(seq % self.window) as usize].remaining))
                    .sum::<u64>()
            })
            .sum()
    }
}

struct Client {
    stream: TcpStream,
    /// Splits what the server sends into lines, without allocating per line.
    lines: LineFramer,
    /// Guest number, from the welcome line.
    guest: Option<u64>,
    /// Join notices seen for guests numbered above this client's own.
    joins_seen: usize,
    /// Across servers: whether this client has asked `/who` yet.
    asked_who: bool,
    /// Across servers: whether its `/who` listed every one of our clients.
    knows_all: bool,
}

fn setup_error(plan: &Plan, what: String) -> io::Error {
    io::Error::other(format!("chat at {}: {what}", plan.servers()))
}

/// Connect everyone and wait until every welcome and join notice is in.
///
/// A client counts as connected when its welcome line arrives, not when the
/// kernel completes its handshake: a handshake completes before the server
/// accepts, and a connection the server has not accepted yet waits in its
/// listen backlog (128 by default). When that backlog is full the kernel
/// drops handshakes, and with SYN cookies a client that sends nothing (as a
/// chat client waiting for its welcome) is never told. So at most
/// [`CHAT_UNWELCOMED_MAX`] clients wait for their welcome at once, and the
/// next ones connect as welcomes arrive.
fn set_up(
    plan: &Plan,
    poll: &mut mio::Poll,
    events: &mut mio::Events,
    rbuf: &mut [u8],
    book: &mut Book,
) -> io::Result<Vec<Option<Client>>> {
    let n = plan.conns;
    let mut clients: Vec<Option<Client>> = Vec::with_capacity(n);
    let deadline = Instant::now() + CHAT_SETUP_TIMEOUT;
    let mut welcomed = 0;
    // For each client, how many of ours joined after it (known once all are
    // welcomed; guests are numbered in connection order).
    let mut joins_due: Option<Vec<usize>> = None;
    let mut ready: Vec<usize> = Vec::new();
    loop {
        for &i in &ready {
            let Some(Client {
                stream,
                lines,
                guest,
                joins_seen,
                knows_all,
                ..
            }) = clients[i].as_mut()
            else {
                continue;
            };
            let mut bad_line: Option<String> = None;
            let mut ask_again = false;
            let ours = &book.by_guest;
            // Setup is not timed: read on to `WouldBlock` whatever the event
            // said (read_closed).
            let state = read_lines(stream, rbuf, lines, true, |line| {
                let Some(line) = line else { return };
                let who_lobby = wire::who(line).filter(|(room, _)| *room == b"lobby");
                match *guest {
                    None => match welcome_nick(line).and_then(guest_number) {
                        Some(g) => *guest = Some(g),
                        None => bad_line = Some(String::from_utf8_lossy(line).into_owned()),
                    },
                    Some(_) if who_lobby.is_some() => {
                        let (_, nicks) = who_lobby.expect("an answer to /who");
                        let listed = nicks
                            .filter_map(guest_number)
                            .filter(|g| ours.contains_key(g))
                            .count();
                        *knows_all = listed == n;
                        ask_again = !*knows_all;
                    }
                    Some(own) => {
                        if joined_nick(line)
                            .and_then(guest_number)
                            .is_some_and(|g| g > own)
                        {
                            *joins_seen += 1;
                        }
                    }
                }
            });
            if let Some(line) = bad_line {
                return Err(setup_error(
                    plan,
                    format!("expected a welcome line, got {line:?}"),
                ));
            }
            match state {
                Ok(Drained::Empty) => {}
                // Before the welcome, an error is the connect failing.
                Err(e) if guest.is_none() => return Err(cannot_connect(plan.addr_for(i), e)),
                _ => {
                    return Err(setup_error(
                        plan,
                        "the server closed a connection during setup".into(),
                    ))
                }
            }
            if ask_again {
                // The servers have not all heard of everyone yet: ask again
                // (each answer is a round trip, so this is no busy loop).
                stream.write_all(b"/who\n")?;
            }
            if let Some(g) = *guest {
                if !book.by_guest.contains_key(&g) {
                    book.name(i, g);
                    welcomed += 1;
                }
            }
        }
        // Open the next connections now, before waiting: welcomes that just
        // arrived made room, and no event would come to make it later.
        while clients.len() < n && clients.len() - welcomed < CHAT_UNWELCOMED_MAX {
            let addr = plan.addr_for(clients.len());
            let stream = connect_nonblocking(poll.registry(), addr, Token(clients.len()))
                .map_err(|e| cannot_connect(addr, e))?;
            stream.set_nodelay(true)?;
            clients.push(Some(Client {
                stream,
                lines: LineFramer::new(max_line_for(plan.size)).preallocated(),
                guest: None,
                joins_seen: 0,
                asked_who: false,
                knows_all: false,
            }));
        }
        if joins_due.is_none() && welcomed == n {
            let mut order: Vec<(u64, usize)> = clients
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Some((c.as_ref()?.guest?, i)))
                .collect();
            order.sort_unstable();
            let mut due = vec![0; n];
            for (rank, &(_, i)) in order.iter().enumerate() {
                due[i] = order.len() - 1 - rank;
            }
            joins_due = Some(due);
        }
        if !plan.also.is_empty() && welcomed == n {
            // Across servers, join notices arrive in no order that guest
            // numbers predict: settled is when every client's server lists
            // every client.
            for c in clients.iter_mut().flatten() {
                if !c.asked_who {
                    c.asked_who = true;
                    c.stream.write_all(b"/who\n")?;
                }
            }
            if clients.iter().flatten().all(|c| c.knows_all) {
                return Ok(clients);
            }
        } else if let Some(due) = &joins_due {
            let settled = clients
                .iter()
                .zip(due)
                .all(|(c, &d)| c.as_ref().is_some_and(|c| c.joins_seen >= d));
            if settled {
                return Ok(clients);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(setup_error(
                plan,
                format!(
                    "setup did not settle within {} s ({welcomed} of {n} clients welcomed)",
                    CHAT_SETUP_TIMEOUT.as_secs(),
                ),
            ));
        }
        poll_once(poll, events, Some(deadline - now))?;
        ready.clear();
        ready.extend(events.iter().map(|e| e.token().0));
    }
}

/// Run `bench chat`. Returns the counters, the number of senders and the
/// measured interval.
pub fn run(plan: &Plan) -> io::Result<(Tally, usize, Duration)> {
    let clock = Clock::start();
    let (mut poll, mut events) = new_poll()?;
    let senders = plan.conns.min(CHAT_MAX_SENDERS);
    let mut book = Book::new(plan.conns, senders, plan.size, plan.pipeline);
    let mut rbuf = PageAligned::new(READ_BUF_SIZE);
    let mut clients = set_up(plan, &mut poll, &mut events, &mut rbuf, &mut book)?;
    let mut tally = Tally::for_plan(plan);
    let mut progress = Progress::new("bench chat", plan);
    let mut schedule = Schedule::new(plan.duration, DRAIN_TIMEOUT);

    let turn = Turn::now(&clock, &schedule);
    for s in 0..senders {
        if let Some(c) = clients[s].as_mut() {
            if book.pump(s, &mut c.stream, &turn, &mut tally).is_err() {
                drop_client(&mut clients, &mut book, s, &mut tally);
            }
        }
    }
    loop {
        let now = Instant::now();
        schedule.advance(now);
        if book.live < 2 || !tally.may_start() {
            schedule.stop(now);
        }
        if !schedule.running() && (book.open_lines() == 0 || schedule.drain_expired(now)) {
            break;
        }
        progress.update(now, now - schedule.start, &tally);
        let timeout = schedule.poll_timeout(now, &progress, None);
        poll_once(&mut poll, &mut events, Some(timeout))?;
        let turn = Turn::now(&clock, &schedule);
        for event in events.iter() {
            let r = event.token().0;
            let Some(client) = clients[r].as_mut() else {
                continue;
            };
            let ready = readiness_of(event);
            if ready.readable || ready.read_closed {
                let book_ref = &mut book;
                let tally_ref = &mut tally;
                let state = read_lines(
                    &mut client.stream,
                    &mut rbuf,
                    &mut client.lines,
                    ready.read_closed,
                    |line| match line {
                        Some(line) => book_ref.on_line(r, line, &turn, tally_ref),
                        None => tally_ref.ignored += 1,
                    },
                );
                if !matches!(state, Ok(Drained::Empty)) {
                    drop_client(&mut clients, &mut book, r, &mut tally);
                    continue;
                }
            }
            if let Some(s) = book.sender_of[r] {
                if ready.writable {
                    book.senders[s].out.unblock();
                }
                if !book.is_woken[s] {
                    book.is_woken[s] = true;
                    book.woken.push(s);
                }
            }
        }
        // Senders whose window opened (or whose socket drained) write now,
        // once per turn however many receivers completed their lines.
        while let Some(s) = book.woken.pop() {
            book.is_woken[s] = false;
            let c = book.senders[s].client;
            let Some(client) = clients[c].as_mut() else {
                continue;
            };
            if book.pump(s, &mut client.stream, &turn, &mut tally).is_err() {
                drop_client(&mut clients, &mut book, c, &mut tally);
            }
        }
    }
    tally.lost += book.missing();
    progress.finish();
    let elapsed = schedule.elapsed(&tally);
    Ok((tally, senders, elapsed))
}

/// Client `r`'s connection ended under the bench: count it, close it, and
/// stop waiting for it.
fn drop_client(clients: &mut [Option<Client>], book: &mut Book, r: usize, tally: &mut Tally) {
    if clients[r].take().is_some() {
        tally.disconnected += 1;
        book.drop_client(r, tally);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn turn(now_ns: u64) -> Turn {
        Turn {
            now: Instant::now(),
            now_ns,
            running: true,
        }
    }

    #[test]
    fn parses_the_servers_lines() {
        let w = b"* welcome to sockloop chat, you are guest12 in #lobby; /help lists commands";
        assert_eq!(welcome_nick(w).and_then(guest_number), Some(12));
        assert_eq!(joined_nick(b"* guest7 joined #lobby"), Some(&b"guest7"[..]));
        assert_eq!(guest_number(b"guest"), None);
        assert_eq!(guest_number(b"guestx1"), None);
        assert_eq!(guest_number(b"alice"), None);
        assert_eq!(welcome_nick(b"* guest1 joined #lobby"), None);
    }

    #[test]
    fn lines_split_across_reads_overlong_ones_are_skipped_and_a_short_last_read_sees_the_end() {
        let mut lines = LineFramer::new(8).preallocated();
        let mut got: Vec<Option<Vec<u8>>> = Vec::new();
        let data = b"ab\ncd\nthis-is-too-long\nok\npartial"; // 33 bytes: the last read is short
        let mut src = Cursor::new(&data[..]);
        let mut rbuf = [0u8; 5]; // lines fall across reads
                                 // The last read is short: only with the FIN flagged does the drain
                                 // go on to see the end of the stream.
        let state = read_lines(&mut src, &mut rbuf, &mut lines, true, |l| {
            got.push(l.map(<[u8]>::to_vec))
        });
        assert_eq!(state.unwrap(), Drained::Eof); // a Cursor ends: EOF
        assert_eq!(
            got,
            [
                Some(b"ab".to_vec()),
                Some(b"cd".to_vec()),
                None,
                Some(b"ok".to_vec())
            ]
        );
    }

    /// Two clients that both send, wired through a fake relay.
    fn relay(book: &mut Book, sender: usize, nick: &str, tally: &mut Tally) -> Vec<Vec<u8>> {
        let mut wire = Vec::new();
        book.pump(sender, &mut wire, &turn(100), tally).unwrap();
        wire.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| [format!("<{nick}> ").as_bytes(), l].concat())
            .collect()
    }

    fn pair(window: usize) -> Book {
        let mut book = Book::new(3, 2, 40, window);
        book.name(0, 5);
        book.name(1, 6);
        book.name(2, 7);
        book
    }

    #[test]
    fn relayed_lines_check_and_complete_the_window() {
        let mut book = pair(2);
        let mut tally = Tally::new();
        let lines = relay(&mut book, 0, "guest5", &mut tally);
        assert_eq!(lines.len(), 2);
        assert_eq!(book.open_lines(), 2);
        // Nothing more until the window opens.
        assert!(relay(&mut book, 0, "guest5", &mut tally).is_empty());
        for r in [1, 2] {
            for l in &lines {
                book.on_line(r, l, &turn(150), &mut tally);
            }
        }
        assert_eq!((tally.messages, tally.errors()), (4, 0));
        assert_eq!(book.open_lines(), 0);
        assert_eq!(tally.latency.max(), 50);
        assert_eq!(relay(&mut book, 0, "guest5", &mut tally).len(), 2);
    }

    #[test]
    fn wrong_lines_are_mismatches_and_notices_are_ignored() {
        let mut book = pair(1);
        let mut tally = Tally::new();
        let line = relay(&mut book, 0, "guest5", &mut tally).remove(0);
        let mut bad = line.clone();
        *bad.last_mut().unwrap() ^= 1;
        book.on_line(1, &bad, &turn(1), &mut tally); // corrupt
        book.on_line(0, &line, &turn(1), &mut tally); // its own line back
        book.on_line(1, b"* error: line too long", &turn(1), &mut tally);
        book.on_line(1, &line[..line.len() - 1], &turn(1), &mut tally); // short
        assert_eq!(tally.mismatched, 4);
        book.on_line(1, b"* guest9 joined #lobby", &turn(1), &mut tally);
        book.on_line(1, b"<guest9> hello", &turn(1), &mut tally);
        assert_eq!(tally.ignored, 2);
        // The good copy still counts, once; a duplicate does not.
        book.on_line(1, &line, &turn(1), &mut tally);
        book.on_line(1, &line, &turn(1), &mut tally);
        assert_eq!((tally.messages, tally.mismatched), (1, 5));
    }

    #[test]
    fn a_receiver_that_leaves_turns_its_missing_lines_into_losses() {
        let mut book = pair(3);
        let mut tally = Tally::new();
        let lines = relay(&mut book, 1, "guest6", &mut tally);
        assert_eq!(lines.len(), 3);
        book.on_line(0, &lines[0], &turn(1), &mut tally);
        for l in &lines {
            book.on_line(2, l, &turn(1), &mut tally);
        }
        book.drop_client(0, &mut tally);
        assert_eq!((tally.messages, tally.lost), (4, 2));
        assert_eq!(book.open_lines(), 0);
        assert_eq!(book.missing(), 0);
    }
}
