//! Chat clients for the simulation: many members of `#lobby`, each sending
//! numbered lines (`m<who>.<seq>.<padding>`, the padding a function of both)
//! at random moments and reading at its own pace; hostile members send
//! garbage (invalid UTF-8, control characters, over-long lines), stop
//! reading, or reset.
//!
//! Every line a member receives is checked as it arrives: well formed (one
//! LF, UTF-8, no control character); a relayed line is byte for byte the
//! line its sender sent under the sender's own nickname, the next one after
//! the last it got from that sender (in order, no gap), never after that
//! sender's leave notice, never after its own `* bye`; nothing else but
//! server notices. Owed lines are those a sender sent after the receiver was
//! welcomed (the hub had the receiver in the room before it read the line):
//! a member that keeps reading must get each of them within
//! [`super::LIVENESS_TURNS`], as long as both stay connected.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Complaints, Ctx, Pace};
use crate::net::sim::{ClientRead, ConnId, SimNet};

use crate::reactor::stats::Stats;
use crate::testing::check_output_line;

const WELCOME: &str = "* welcome to sockloop chat, you are ";

#[derive(Debug, Default)]
struct Member {
    who: usize,
    pace: Pace,
    lines_to_send: usize,
    conn: Option<ConnId>,
    /// Everything this client means to send, as typed so far.
    stream: Vec<u8>,
    /// Bytes of `stream` the network took.
    stream_sent: usize,
    /// For each line: where it starts and ends (after its LF) in `stream`,
    /// and the step its first byte went out.
    lines: Vec<(usize, usize, Option<u64>)>,
    /// How many of `lines` went out whole.
    fully_sent: usize,
    /// Its texts, by sequence number.
    texts: Vec<String>,
    nick: Option<String>,
    welcomed_at: Option<u64>,
    inbuf: Vec<u8>,
    /// Per sender: (first, last) sequence number received.
    from: Vec<Option<(usize, usize)>>,
    /// Per sender: its leave notice was seen.
    left: Vec<bool>,
    quit_sent: bool,
    bye_seen: bool,
    shutdown_seen: bool,
    /// The stream ended (EOF or reset).
    ended: bool,
    /// It ended without the client asking, outside shutdown.
    cut: bool,
    rejected: bool,
    paused_until: u64,
    starve: u64,
    /// When the current run of empty reads began.
    starve_since: Duration,
    last_input: Duration,
    buf: Vec<u8>,
}

/// All chat members of a run.
#[derive(Debug)]
pub struct ChatClients {
    members: Vec<Member>,
    server: SocketAddr,
    padding: usize,
    burst: usize,
}

/// The padding of line `seq` of member `who`, `len` letters.
fn padding(who: usize, seq: usize, len: usize) -> String {
    static LETTERS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let letters = LETTERS.get_or_init(|| {
        let mut bytes = Vec::new();
        super::stream_bytes(500, 0, 8192, &mut bytes);
        bytes.iter().map(|b| (b'a' + b % 26) as char).collect()
    });
    let start = (who * 977 + seq * 31) % (letters.len() - len.min(letters.len()) + 1);
    letters[start..start + len.min(letters.len() - start)].to_string()
}

impl ChatClients {
    /// Members as the scenario lists them; they connect on their first act.
    pub fn new(spec: &[(Pace, usize)], bulk: bool, server: SocketAddr) -> ChatClients {
        let n = spec.len();
        let members = spec
            .iter()
            .enumerate()
            .map(|(who, &(pace, lines_to_send))| Member {
                who,
                pace,
                lines_to_send,
                from: vec![None; n],
                left: vec![false; n],
                ..Member::default()
            })
            .collect();
        ChatClients {
            members,
            server,
            padding: if bulk { 3000 } else { 200 },
            burst: if bulk { 40 } else { 3 },
        }
    }

    /// One step of every member.
    pub fn act(&mut self, ctx: &mut Ctx<'_>) {
        for i in 0..self.members.len() {
            self.act_one(i, ctx);
        }
    }

    /// Every member has typed all its lines (or is gone).
    pub fn done_sending(&self) -> bool {
        self.members.iter().all(|m| {
            m.ended
                || m.rejected
                || m.pace == Pace::Hostile
                || (m.texts.len() >= m.lines_to_send && m.stream_sent == m.stream.len())
        })
    }

    /// Some member has something to type or send now: virtual time may not
    /// jump.
    pub fn busy(&self, net: &SimNet) -> bool {
        self.members.iter().any(|m| {
            !m.ended
                && !m.rejected
                && m.pace != Pace::Hostile
                && match m.conn {
                    None => true,
                    Some(conn) => {
                        m.welcomed_at.is_some()
                            && (m.texts.len() < m.lines_to_send || m.stream_sent < m.stream.len())
                            && net.client_can_send(conn)
                    }
                }
        })
    }

    /// Each member's state in one line, for failure messages.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (r, m) in self.members.iter().enumerate() {
            out.push_str(&format!(
                "chat member {r} {:?}: nick {:?}, typed {}/{} lines, sent {}/{} bytes, quit {} bye {} ended {} cut {} rejected {}, owed {:?}\n",
                m.pace,
                m.nick,
                m.texts.len(),
                m.lines_to_send,
                m.stream_sent,
                m.stream.len(),
                m.quit_sent,
                m.bye_seen,
                m.ended,
                m.cut,
                m.rejected,
                self.owed(r, None)
            ));
        }
        out
    }

    /// Every member has every line it is owed.
    pub fn settled(&self) -> bool {
        (0..self.members.len()).all(|r| self.owed(r, None).is_none())
    }

    /// Every member has quit (or is gone).
    pub fn all_quit(&self) -> bool {
        self.members
            .iter()
            .all(|m| m.ended || m.rejected || m.conn.is_none())
    }

    /// Everyone still connected says `/quit` (or `bye`).
    pub fn quit_all(&mut self) {
        for m in &mut self.members {
            if m.conn.is_some() && !m.ended && !m.quit_sent && m.welcomed_at.is_some() {
                m.quit_sent = true;
                let quit: &[u8] = if m.who % 2 == 0 { b"/quit\n" } else { b"bye\n" };
                m.stream.extend_from_slice(quit);
            }
        }
    }

    /// SIGTERM was sent.
    pub fn on_signal(&mut self) {}

    /// Members owed something that have been reading without getting it.
    pub fn stalled(&self, net: &SimNet) -> Complaints {
        let now = net.elapsed();
        let mut out = Complaints::default();
        for (r, m) in self.members.iter().enumerate() {
            if m.starve > super::LIVENESS_TURNS
                && now.saturating_sub(m.starve_since) > super::LIVENESS_TIME
            {
                out.push(format_args!(
                    "chat member {r} ({:?}, {:?}) read {} times in a row and got nothing, owed {}; {}",
                    m.pace,
                    m.nick,
                    m.starve,
                    self.owed(r, None).unwrap_or_default(),
                    m.conn.map(|id| net.describe(id)).unwrap_or_default()
                ));
            }
        }
        out
    }

    /// At the end: the cuts add up to what the server says it did.
    pub fn finish(&self, stats: &Stats) {
        let cut = self
            .members
            .iter()
            .filter(|m| m.cut && m.pace != Pace::Hostile)
            .count() as u64;
        assert!(
            cut <= stats.slow_disconnects + stats.idle_closes,
            "{cut} chat members were cut, the server closed only {} too slow and {} idle",
            stats.slow_disconnects,
            stats.idle_closes
        );
    }

    /// What member `r` is owed now, if anything (`net` given: senders the
    /// server has closed owe nothing more).
    fn owed(&self, r: usize, mut net: Option<&mut SimNet>) -> Option<String> {
        let m = &self.members[r];
        if m.ended || m.rejected || m.pace == Pace::Hostile {
            return None;
        }
        let conn = m.conn?;
        if let Some(net) = net.as_deref_mut() {
            if net.conn_server_closed(conn) && !net.client_has_unread(conn) {
                // The server closed it; the end is seen at the next read.
                return Some("its end of stream".into());
            }
        }
        let Some(welcomed) = m.welcomed_at else {
            return net
                .as_deref_mut()
                .is_some_and(|n| n.conn_accepted(conn))
                .then(|| "its welcome".into());
        };
        if m.quit_sent && m.stream_sent == m.stream.len() && !m.bye_seen {
            return Some("its * bye".into());
        }
        for (s, sender) in self.members.iter().enumerate() {
            if s == r || m.left[s] || sender.pace == Pace::Hostile || sender.ended {
                continue;
            }
            if let (Some(net), Some(sc)) = (net.as_deref_mut(), sender.conn) {
                if net.conn_server_closed(sc) {
                    continue;
                }
            }
            // Lines go out in order, so the fully sent ones are a prefix and
            // their first bytes' steps never decrease: the last fully sent
            // line is owed if any is.
            let last_owed = sender
                .fully_sent
                .checked_sub(1)
                .filter(|&k| sender.lines[k].2.is_some_and(|first| first > welcomed));
            if let Some(k) = last_owed {
                if m.from[s].is_none_or(|(_, last)| last < k) {
                    return Some(format!("line {k} of member {s}"));
                }
            }
        }
        None
    }

    fn act_one(&mut self, i: usize, ctx: &mut Ctx<'_>) {
        let m = &mut self.members[i];
        if m.ended || m.rejected {
            return;
        }
        let Some(conn) = m.conn else {
            if !ctx.signalled && ctx.net.rng().chance(300) {
                m.conn = ctx.net.client_connect(self.server);
                m.last_input = ctx.now;
                if m.conn.is_none() {
                    m.ended = true;
                }
            }
            return;
        };
        // Type: the next line, garbage, or an empty keep-alive line.
        if m.welcomed_at.is_some() && !m.quit_sent && !ctx.signalled {
            let rng = ctx.net.rng();
            if m.pace == Pace::Hostile {
                if rng.chance(100) {
                    let len = rng.pick(&[1, 10, ctx.config.max_line, ctx.config.max_line + 10]);
                    let mut junk = vec![b'x'];
                    for _ in 0..len {
                        let b = rng.below(256) as u8;
                        junk.push(if b == b'\n' { b'y' } else { b });
                    }
                    junk.push(b'\n');
                    m.stream.extend_from_slice(&junk);
                }
                if rng.chance(30) {
                    // Commands whose answers go to itself, which it does not
                    // read: its own input makes it too slow.
                    m.stream.extend_from_slice(b"/help\n/who\n/rooms\n");
                }
                if rng.chance(5) {
                    if rng.chance(500) {
                        ctx.net.client_reset(conn);
                    } else {
                        ctx.net.client_close(conn);
                    }
                    m.ended = true;
                    return;
                }
            } else if m.texts.len() < m.lines_to_send && rng.chance(150) {
                if rng.chance(40) {
                    // A question to the server, answered to itself alone.
                    let command: &[u8] = rng.pick(&[b"/who\n", b"/rooms\n", b"/help\n"]);
                    m.stream.extend_from_slice(command);
                }
                // A burst of lines typed at once (pasted), up to `burst`.
                let burst = rng.range(1, self.burst);
                for _ in 0..burst.min(m.lines_to_send - m.texts.len()) {
                    let seq = m.texts.len();
                    let head = format!("m{}.{}.", m.who, seq);
                    let room = ctx.config.max_line.saturating_sub(head.len());
                    let len = ctx.net.rng().range(0, room.min(self.padding));
                    let text = format!("{head}{}", padding(m.who, seq, len));
                    let start = m.stream.len();
                    m.stream.extend_from_slice(text.as_bytes());
                    m.stream.push(b'\n');
                    m.lines.push((start, m.stream.len(), None));
                    m.texts.push(text);
                }
            }
            if let Some(idle) = ctx.config.idle_timeout {
                if ctx.now.saturating_sub(m.last_input) >= idle / 3
                    && m.stream_sent == m.stream.len()
                {
                    m.stream.push(b'\n');
                }
            }
        }
        // Send what is typed, as far as the window allows.
        if m.stream_sent < m.stream.len() && ctx.net.rng().chance(600) {
            let chunk = ctx.net.rng().pick(&[1, 7, 100, 5000, usize::MAX]);
            let end = m.stream.len().min(m.stream_sent.saturating_add(chunk));
            match ctx.net.client_send(conn, &m.stream[m.stream_sent..end]) {
                Ok(n) => {
                    if n > 0 {
                        m.last_input = ctx.now;
                        for line in m.lines[m.fully_sent..].iter_mut() {
                            if line.2.is_none() && line.0 < m.stream_sent + n {
                                line.2 = Some(ctx.step);
                            }
                        }
                    }
                    m.stream_sent += n;
                    while m
                        .lines
                        .get(m.fully_sent)
                        .is_some_and(|l| l.1 <= m.stream_sent)
                    {
                        m.fully_sent += 1;
                    }
                }
                Err(_) => {
                    self.end(i, ctx);
                    return;
                }
            }
        }
        // Read, at its pace.
        let m = &mut self.members[i];
        let rng = ctx.net.rng();
        if ctx.step < m.paused_until {
            return;
        }
        if m.pace == Pace::Sleeper && !ctx.draining && m.welcomed_at.is_some() {
            return;
        }
        if m.pace == Pace::StopAndGo && !ctx.draining && rng.chance(20) {
            m.paused_until = ctx.step + rng.range(10, 500) as u64;
            return;
        }
        if m.pace == Pace::Hostile && rng.chance(900) {
            return;
        }
        // A sleeper, once awake, reads as fast as it can.
        let max = if m.pace == Pace::Sleeper {
            1 << 20
        } else {
            m.pace.read_size(rng)
        };
        m.buf.clear();
        match ctx.net.client_recv(conn, &mut m.buf, max) {
            ClientRead::Data(n) => {
                let m = &mut self.members[i];
                m.inbuf.extend_from_slice(&m.buf[..n]);
                m.starve = 0;
                if !m.buf[..n].contains(&b'\n') {
                    // No line completed (and none was before these bytes).
                    return;
                }
                let inbuf = std::mem::take(&mut self.members[i].inbuf);
                let mut start = 0;
                while let Some(lf) = inbuf[start..].iter().position(|&b| b == b'\n') {
                    self.receive(i, &inbuf[start..=start + lf], ctx);
                    start += lf + 1;
                }
                let mut rest = inbuf;
                rest.drain(..start);
                self.members[i].inbuf = rest;
            }
            ClientRead::WouldBlock => {
                let owed = self.owed(i, Some(ctx.net)).is_some();
                let m = &mut self.members[i];
                if owed && m.starve == 0 {
                    m.starve_since = ctx.now;
                }
                m.starve = if owed { m.starve + 1 } else { 0 };
            }
            ClientRead::Eof | ClientRead::Reset => self.end(i, ctx),
        }
    }

    /// Member `r`'s stream ended. Expected after its `* bye`, after the
    /// server's shutdown notice (or SIGTERM), when rejected; else it was
    /// cut, which `finish` holds against the server's counters.
    fn end(&mut self, r: usize, ctx: &mut Ctx<'_>) {
        let m = &mut self.members[r];
        if let Some(conn) = m.conn {
            ctx.net.client_close(conn);
        }
        m.ended = true;
        if let Some(conn) = m.conn {
            if ctx.net.conn_rejected(conn) {
                // Turned away at --max-conns: `* error: server full` (or
                // as much of it as the window took), then the close.
                m.rejected = true;
                return;
            }
        }
        if m.bye_seen || m.shutdown_seen || ctx.signalled || m.rejected || m.pace == Pace::Hostile {
            return;
        }
        // Cut (too slow, idle), maybe while its /quit was on the way: the
        // server's counters must account for it (see `finish`).
        m.cut = true;
    }

    /// Whether `line` is `<NICK> TEXT` with TEXT exactly a line that the
    /// member named NICK typed (checked in full by `receive`).
    fn is_exact_relay(&self, line: &[u8]) -> bool {
        let Some(rest) = line.strip_prefix(b"<") else {
            return false;
        };
        let Some(gt) = rest.iter().position(|&b| b == b'>') else {
            return false;
        };
        let (nick, body) = (&rest[..gt], &rest[gt..]);
        let Some(body) = body
            .strip_prefix(b"> m")
            .and_then(|b| b.strip_suffix(b"\n"))
        else {
            return false;
        };
        let mut parts = body.splitn(3, |&b| b == b'.');
        let parse = |p: Option<&[u8]>| std::str::from_utf8(p?).ok()?.parse::<usize>().ok();
        let (Some(w), Some(seq)) = (parse(parts.next()), parse(parts.next())) else {
            return false;
        };
        self.members.get(w).is_some_and(|m| {
            m.nick.as_deref().map(str::as_bytes) == Some(nick)
                && m.texts.get(seq).map(|t| &t.as_bytes()[1..]) == Some(body)
        })
    }

    /// Member `r` received one whole line.
    fn receive(&mut self, r: usize, line: &[u8], ctx: &mut Ctx<'_>) {
        let max_line = ctx.config.max_line;
        if !self.is_exact_relay(line) {
            // (A relayed line equal to what its sender typed is plain ASCII
            // letters and digits by construction; the others are checked.)
            check_output_line(line, 3 * max_line + 64 * 40);
        }
        let text = std::str::from_utf8(&line[..line.len() - 1]).expect("checked");
        let who = &self.members[r];
        assert!(
            !who.bye_seen,
            "chat member {r}: {text:?} after its own * bye"
        );
        if who.welcomed_at.is_none() {
            if text == "* error: server full" {
                self.members[r].rejected = true;
                return;
            }
            let nick = text
                .strip_prefix(WELCOME)
                .and_then(|rest| rest.strip_suffix(" in #lobby; /help lists commands"))
                .unwrap_or_else(|| {
                    panic!("chat member {r}: first line {text:?} is not the welcome")
                });
            let m = &mut self.members[r];
            m.nick = Some(nick.to_string());
            m.welcomed_at = Some(ctx.step);
            return;
        }
        if let Some(rest) = text.strip_prefix('<') {
            let (nick, body) = rest
                .split_once("> ")
                .unwrap_or_else(|| panic!("chat member {r}: malformed {text:?}"));
            let sender = self
                .members
                .iter()
                .position(|m| m.nick.as_deref() == Some(nick));
            if let Some(s) = sender {
                assert_ne!(s, r, "chat member {r} got its own line back: {text:?}");
                assert!(
                    !self.members[r].left[s],
                    "chat member {r}: {text:?} after {nick} left"
                );
            }
            if body.starts_with('x') {
                // A hostile member's junk, sanitised by the server.
                if let Some(s) = sender {
                    assert_eq!(
                        self.members[s].pace,
                        Pace::Hostile,
                        "chat member {r}: junk {text:?} under well-behaved {nick}'s name"
                    );
                }
                return;
            }
            let parsed = body.strip_prefix('m').and_then(|b| {
                let mut parts = b.splitn(3, '.');
                let w: usize = parts.next()?.parse().ok()?;
                let seq: usize = parts.next()?.parse().ok()?;
                Some((w, seq))
            });
            let Some((w, seq)) = parsed else {
                panic!("chat member {r}: invented line {text:?}");
            };
            let s =
                sender.unwrap_or_else(|| panic!("chat member {r}: {text:?} from unknown {nick}"));
            assert_eq!(
                s, w,
                "chat member {r}: {text:?}: member {w}'s line under {nick}'s name"
            );
            let sent = self.members[s].texts.get(seq);
            assert_eq!(
                sent.map(String::as_str),
                Some(body),
                "chat member {r}: {text:?} is not what member {s} sent as line {seq}"
            );
            let welcomed = self.members[r].welcomed_at.expect("welcomed");
            let prev = self.members[r].from[s];
            match prev {
                Some((_, last)) => assert_eq!(
                    seq,
                    last + 1,
                    "chat member {r}: line {seq} of member {s} after line {last}"
                ),
                None => {
                    let skipped = self.members[s].lines[..seq]
                        .iter()
                        .position(|&(_, _, first)| first.is_some_and(|f| f > welcomed));
                    assert!(
                        skipped.is_none(),
                        "chat member {r}: first line from member {s} is {seq}, but it was owed line {skipped:?}"
                    );
                }
            }
            let first = prev.map_or(seq, |(f, _)| f);
            self.members[r].from[s] = Some((first, seq));
            return;
        }
        let m = &mut self.members[r];
        if text == "* bye" {
            assert!(m.quit_sent, "chat member {r}: * bye without quitting");
            m.bye_seen = true;
        } else if text == "* server shutting down" {
            m.shutdown_seen = true;
        } else if let Some(rest) = text.strip_prefix("* ") {
            if let Some((nick, _)) = rest.split_once(" left #") {
                if let Some(s) = self
                    .members
                    .iter()
                    .position(|x| x.nick.as_deref() == Some(nick))
                {
                    self.members[r].left[s] = true;
                }
            }
        } else {
            panic!("chat member {r}: unexpected line {text:?}");
        }
    }
}
