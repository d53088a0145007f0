//! The chat service as a sans-IO state machine: a [`Hub`] of sessions and
//! rooms. The reactor feeds it events (a client connected, bytes arrived,
//! input ended, the connection went away) and the hub answers through an
//! [`Outbox`]: lines addressed to clients, and requests to close them. It
//! never touches a socket or a clock.
//!
//! (Minimal version: welcome, join/leave notices, relay in #lobby, `bye` and
//! `/quit`. The full command set of SPEC.md is issue 3.)

use std::collections::HashMap;
use std::rc::Rc;

use crate::buffer::SharedLine;
use crate::protocol::line::{LineEvent, LineFramer};

/// A client, named by the reactor. The hub only compares ids; the reactor
/// packs whatever it needs into them (a slab slot and a serial number, so an
/// id is never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// Why a client left, as its room is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// It disconnected or its connection failed: `* NICK left #ROOM`.
    Disconnected,
    /// The server closed it because its output passed `--out-limit`.
    TooSlow,
    /// The server closed it after `--idle-timeout` of silence.
    IdleTimeout,
}

/// Where the hub's output goes. The reactor implements it over connections;
/// tests and fuzz targets implement it with a recorder.
pub trait Outbox {
    /// Queue one complete, LF-terminated line for `to`. The same
    /// [`SharedLine`] is passed for every recipient of a fan-out, so queuing
    /// it is a reference-count increment, not a copy.
    fn send(&mut self, to: ClientId, line: &SharedLine);
    /// The hub is done with `who` (it has already forgotten it): flush what is
    /// queued for it, then close its connection.
    fn close(&mut self, who: ClientId);
}

/// The line a connection over `--max-conns` receives before it is closed.
pub const SERVER_FULL: &[u8] = b"* error: server full\n";
/// The line every client receives when the server shuts down.
pub const SHUTTING_DOWN: &[u8] = b"* server shutting down\n";

/// Limits the hub enforces.
#[derive(Debug, Clone, Copy)]
pub struct ChatLimits {
    /// Longest line, without its ending (`--max-line`).
    pub max_line: usize,
}

struct Session {
    nick: String,
    framer: LineFramer,
}

/// All sessions and rooms of one chat service.
pub struct Hub {
    limits: ChatLimits,
    sessions: HashMap<ClientId, Session>,
    /// #lobby's members in join order.
    lobby: Vec<ClientId>,
    next_guest: u64,
    scratch: Vec<u8>,
}

impl Hub {
    /// An empty hub.
    pub fn new(limits: ChatLimits) -> Hub {
        Hub {
            limits,
            sessions: HashMap::new(),
            lobby: Vec::new(),
            next_guest: 1,
            scratch: Vec::new(),
        }
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        self.sessions.len()
    }

    /// A client connected: welcome it and announce it to #lobby.
    pub fn handle_connect(&mut self, id: ClientId, out: &mut impl Outbox) {
        let nick = format!("guest{}", self.next_guest);
        self.next_guest += 1;
        let welcome = self.line(format_args!(
            "* welcome to sockloop chat, you are {nick} in #lobby; /help lists commands"
        ));
        out.send(id, &welcome);
        let joined = self.line(format_args!("* {nick} joined #lobby"));
        for &member in &self.lobby {
            out.send(member, &joined);
        }
        self.lobby.push(id);
        self.sessions.insert(
            id,
            Session {
                nick,
                framer: LineFramer::new(self.limits.max_line),
            },
        );
    }

    /// Bytes arrived from `id`.
    pub fn handle_input(&mut self, id: ClientId, bytes: &[u8], out: &mut impl Outbox) {
        let Some(mut session) = self.sessions.remove(&id) else {
            return;
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        session.framer.push(bytes, |ev| {
            if let LineEvent::Line(l) = ev {
                lines.push(l.to_vec())
            }
        });
        self.sessions.insert(id, session);
        for l in lines {
            if !self.sessions.contains_key(&id) {
                break;
            }
            self.handle_line(id, &l, out);
        }
    }

    fn handle_line(&mut self, id: ClientId, line: &[u8], out: &mut impl Outbox) {
        let text = String::from_utf8_lossy(line);
        if text.is_empty() {
            return;
        }
        if text == "bye" || text == "/quit" {
            out.send(id, &Rc::from(&b"* bye\n"[..]));
            self.leave(id, LeaveReason::Disconnected, out);
            out.close(id);
            return;
        }
        let nick = self.sessions[&id].nick.clone();
        let relayed = self.line(format_args!("<{nick}> {text}"));
        for &member in &self.lobby {
            if member != id {
                out.send(member, &relayed);
            }
        }
    }

    /// `id` will send nothing more (it shut down its sending side).
    pub fn handle_eof(&mut self, id: ClientId, out: &mut impl Outbox) {
        if self.sessions.contains_key(&id) {
            self.leave(id, LeaveReason::Disconnected, out);
            out.close(id);
        }
    }

    /// `id`'s connection is gone (or is being closed by the server for `reason`).
    pub fn handle_disconnect(&mut self, id: ClientId, reason: LeaveReason, out: &mut impl Outbox) {
        self.leave(id, reason, out);
    }

    /// The server is shutting down: tell everyone.
    pub fn handle_shutdown(&mut self, out: &mut impl Outbox) {
        let line: SharedLine = Rc::from(SHUTTING_DOWN);
        for &member in &self.lobby {
            out.send(member, &line);
        }
    }

    fn leave(&mut self, id: ClientId, reason: LeaveReason, out: &mut impl Outbox) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        self.lobby.retain(|&m| m != id);
        let suffix = match reason {
            LeaveReason::Disconnected => "",
            LeaveReason::TooSlow => " (too slow)",
            LeaveReason::IdleTimeout => " (idle timeout)",
        };
        let left = self.line(format_args!("* {} left #lobby{suffix}", session.nick));
        for &member in &self.lobby {
            out.send(member, &left);
        }
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) -> SharedLine {
        use std::io::Write;
        self.scratch.clear();
        let _ = self.scratch.write_fmt(args);
        self.scratch.push(b'\n');
        Rc::from(&self.scratch[..])
    }
}
