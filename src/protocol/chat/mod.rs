//! The chat service as a sans-IO state machine: a [`Hub`] of sessions and
//! rooms. The reactor feeds it events through its `handle_*` methods (a
//! client connected, bytes arrived, input ended, the connection went away,
//! the server is stopping) and takes its answers out as [`Effect`]s with
//! [`Hub::poll_effect`]: lines addressed to clients, and requests to close
//! them. It never touches a socket or a clock and never calls back into its
//! caller, so tests and fuzz targets drive it directly, with any chunking of
//! input; what happens to a line on its way to a client (the `--out-limit`
//! policy) is [`delivery`]'s, which the reactor and the fuzz harness share.
//!
//! # Calling it
//!
//! For each client, in this order: [`Hub::handle_connect`] once, then any
//! number of [`Hub::handle_input`], then either [`Hub::handle_eof`] (the
//! client shut down its sending side) or [`Hub::handle_disconnect`] (the
//! connection is gone, or the server is closing it). When the hub itself
//! ends a session (`/quit`, `bye`, end of input), it emits [`Effect::Close`]
//! and forgets the client; any later event for that id is ignored, as is any
//! event for an id it never saw. At the end, [`Hub::handle_shutdown`] says
//! goodbye to everyone. After each `handle_*` call, take every effect out
//! with [`Hub::poll_effect`] (in order: they are queued in the order the hub
//! decided them) before the next call, or at least before writing anything.
//!
//! # The hot path
//!
//! A plain text line is the common case, and costs one heap allocation,
//! whatever the size of the room: the bytes are framed in place
//! ([`line::LineFramer`](crate::protocol::line::LineFramer) hands out slices
//! of the reactor's read buffer), checked as UTF-8 in place, formatted once
//! into a reusable scratch buffer ([`text::LineBuilder`]), copied once into a
//! [`SharedLine`], and that one handle goes to every member of the sender's
//! room: N recipients, N reference-count increments. The room's member list
//! is kept with the room, so a relay never looks at clients outside it.
//! Nicknames and room names are inline values ([`name::Name`]), so a
//! session, a rename or a lookup never allocates a string either.
//!
//! # Submodules
//!
//! - [`cluster`]: the hub as one of several servers (`--cluster`): what
//!   it tells the others, and what it learns from them.
//! - [`command`]: splitting a line into a command and its arguments.
//! - [`delivery`]: the per-client output bound and the too-slow rule.
//! - [`name`]: the nickname and room-name rule, and case-insensitive keys.
//! - [`text`]: building outgoing lines, and replacing control characters.
//! - [`wire`]: the words of the lines other programs read, and their readers.
//!
//! docs/protocol.md describes the protocol for users; the exact lines below
//! are the ones it documents.

pub mod bus;
pub mod cluster;
pub mod command;
pub mod delivery;
pub mod name;
pub mod text;
pub mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write;
use std::rc::Rc;

use crate::buffer::SharedLine;
use crate::protocol::line::{LineEvent, LineFramer};
use cluster::{ClusterRequest, ClusterView, RemoteMember};
use command::{usage, Command, CommandError};
use name::{Name, NameKey};
use text::LineBuilder;

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
    /// The server closed it because its output passed `--out-limit`:
    /// `* NICK left #ROOM (too slow)`.
    TooSlow,
    /// The server closed it after `--idle-timeout` of silence:
    /// `* NICK left #ROOM (idle timeout)`.
    IdleTimeout,
}

impl LeaveReason {
    /// The words in parentheses after the leave notice ("" for none).
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Disconnected => "",
            LeaveReason::TooSlow => "too slow",
            LeaveReason::IdleTimeout => "idle timeout",
        }
    }
}

/// What the hub asks of whoever runs it, one effect at a time. Matching on
/// it is exhaustive on purpose: a new kind of effect (say, publishing to
/// other servers) makes the compiler point at every caller that must handle
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Queue one complete, LF-terminated line for every client in `to`. The
    /// same [`SharedLine`] goes to every recipient, so queuing it is a
    /// reference-count increment, not a copy; and a line to a room is one
    /// effect whatever the room's size.
    Send {
        /// The recipients.
        to: Recipients,
        /// The line, LF included.
        line: SharedLine,
    },
    /// The hub is done with `who` (it has already forgotten it): flush what
    /// is queued for it, then close its connection.
    Close {
        /// The client to close.
        who: ClientId,
    },
    /// Something for the other servers (only from a hub made with
    /// [`Hub::with_cluster`]): carry it to the Redis link.
    Cluster(ClusterRequest),
}

/// Who a line goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// One client.
    One(ClientId),
    /// The members of a room as they were when the line was said, in join
    /// order, but `except` (the sender of a text line). The list is shared
    /// with the room: a snapshot costs a reference count, and the room copies
    /// its list only if it changes while a snapshot is still held.
    Room {
        /// The room's members then.
        members: Rc<Vec<ClientId>>,
        /// Who of them does not get it.
        except: Option<ClientId>,
    },
}

impl Recipients {
    /// Every recipient, in order.
    pub fn iter(&self) -> impl Iterator<Item = ClientId> + '_ {
        let (one, room, except) = match self {
            Recipients::One(id) => (Some(*id), &[][..], None),
            Recipients::Room { members, except } => (None, &members[..], *except),
        };
        one.into_iter()
            .chain(room.iter().copied().filter(move |&m| Some(m) != except))
    }
}

/// The hub's queue of effects not yet taken. It keeps its allocation, so
/// steady traffic queues effects without allocating.
#[derive(Debug, Default)]
struct Effects(VecDeque<Effect>);

impl Effects {
    fn send(&mut self, to: ClientId, line: &SharedLine) {
        self.0.push_back(Effect::Send {
            to: Recipients::One(to),
            line: SharedLine::clone(line),
        });
    }

    fn send_room(
        &mut self,
        members: &Rc<Vec<ClientId>>,
        except: Option<ClientId>,
        line: &SharedLine,
    ) {
        self.0.push_back(Effect::Send {
            to: Recipients::Room {
                members: Rc::clone(members),
                except,
            },
            line: SharedLine::clone(line),
        });
    }

    fn close(&mut self, who: ClientId) {
        self.0.push_back(Effect::Close { who });
    }

    fn cluster(&mut self, request: ClusterRequest) {
        self.0.push_back(Effect::Cluster(request));
    }
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

/// The room everyone starts in. It always exists (while empty it is simply
/// not listed by `/rooms`), so it is always spelled `#lobby`.
const LOBBY: &str = "lobby";

/// What the name errors add, so the user knows the rule.
const NAME_RULE: &str = " (1 to 32 ASCII letters, digits, _ or -)";

/// One connected client.
#[derive(Debug)]
struct Session {
    nick: Name,
    room: NameKey,
    /// When it joined its room, on the hub's join clock (orders `/who`
    /// when members of other servers are listed too).
    joined: u64,
    /// Taken out (left empty) while this session's input is being handled.
    framer: LineFramer,
}

/// A room and its members, in the order they joined it.
#[derive(Debug)]
struct Room {
    /// As spelled by whoever created it.
    name: Name,
    /// Shared with the effects that snapshot it; changed through
    /// [`Rc::make_mut`], which copies only while a snapshot is held.
    members: Rc<Vec<ClientId>>,
    /// Members on other servers, in the order this server learned they
    /// joined (always empty without a cluster).
    remote: Vec<RemoteMember>,
}

impl Room {
    fn new(name: Name) -> Room {
        Room {
            name,
            members: Rc::new(Vec::new()),
            remote: Vec::new(),
        }
    }

    /// No member on any server.
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.remote.is_empty()
    }
}

/// Lines that never change, allocated once when the hub is built: sending
/// one is a reference-count increment.
#[derive(Debug)]
struct Canned {
    bye: SharedLine,
    shutting_down: SharedLine,
    too_long: SharedLine,
    invalid_utf8: SharedLine,
    help: Vec<SharedLine>,
}

impl Canned {
    fn new(limits: &ChatLimits, b: &mut LineBuilder) -> Canned {
        let help = [
            (usage::NICK, "change your nickname"),
            (
                usage::WHO,
                "list the users in your room, in the order they joined",
            ),
            (usage::ROOMS, "list the rooms and how many are in each"),
            (usage::JOIN, "go to ROOM (# optional); it is created if new"),
            (usage::MSG, "send TEXT to NICK alone"),
            (usage::ME, "tell your room what you are doing"),
            (usage::QUIT, "leave (so does the line bye)"),
            (usage::HELP, "this list"),
        ];
        let mut help_lines = vec![b.str("* commands:").finish()];
        for (command, what) in help {
            let _ = write!(b, "*   {command:<16}{what}");
            help_lines.push(b.finish());
        }
        help_lines.push(b.str("* any other line is said to your room").finish());
        Canned {
            bye: b.str("* bye").finish(),
            shutting_down: Rc::from(SHUTTING_DOWN),
            too_long: b
                .str("* error: line too long (the limit is ")
                .num(limits.max_line)
                .str(" bytes)")
                .finish(),
            invalid_utf8: b.str("* error: line is not valid UTF-8").finish(),
            help: help_lines,
        }
    }
}

/// Whether the client whose line was just handled is still connected.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Closed,
}

/// All sessions and rooms of one chat service.
#[derive(Debug)]
pub struct Hub {
    limits: ChatLimits,
    sessions: HashMap<ClientId, Session>,
    /// Every nickname in use, case-folded, and whose it is.
    nicks: HashMap<NameKey, ClientId>,
    /// Every room with at least one member, plus #lobby; in name order, which
    /// is the order `/rooms` lists them in.
    rooms: BTreeMap<NameKey, Room>,
    lobby: NameKey,
    /// The next guest number to try; it only ever increases.
    next_guest: u64,
    /// Scratch space every outgoing line is formatted in.
    builder: LineBuilder,
    canned: Canned,
    shut_down: bool,
    /// Effects decided and not yet taken by [`Hub::poll_effect`].
    effects: Effects,
    /// Stamps each join, so members of every server can be listed in the
    /// order this server learned they joined.
    join_clock: u64,
    /// The other servers' members and the pending name claims, when this
    /// hub is part of a cluster.
    cluster: Option<Box<ClusterView>>,
}

impl Hub {
    /// An empty hub: no clients, and an empty #lobby.
    pub fn new(limits: ChatLimits) -> Hub {
        let mut builder = LineBuilder::new();
        let canned = Canned::new(&limits, &mut builder);
        let lobby_name = Name::parse(LOBBY.as_bytes()).expect("a valid name");
        let lobby = lobby_name.key();
        let mut rooms = BTreeMap::new();
        rooms.insert(lobby, Room::new(lobby_name));
        Hub {
            limits,
            sessions: HashMap::new(),
            nicks: HashMap::new(),
            rooms,
            lobby,
            next_guest: 1,
            builder,
            canned,
            shut_down: false,
            effects: Effects::default(),
            join_clock: 0,
            cluster: None,
        }
    }

    /// An empty hub that is one of several servers of one chat: it
    /// publishes what its users do and takes what other servers publish
    /// (see [`cluster`]).
    pub fn with_cluster(limits: ChatLimits) -> Hub {
        let mut hub = Hub::new(limits);
        hub.cluster = Some(Box::default());
        hub
    }

    /// The next stamp of the join clock.
    fn next_join(&mut self) -> u64 {
        self.join_clock += 1;
        self.join_clock
    }

    /// The oldest effect not yet taken, if any. Take them all after each
    /// `handle_*` call.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.0.pop_front()
    }

    /// The next effect, if it is a line to the very same room snapshot as
    /// `members` (the same `Rc`: nobody joined or left in between): its line
    /// and who of the members does not get it. Lets the delivery queue a run
    /// of lines to one room member by member instead of line by line.
    pub fn poll_line_to_room(
        &mut self,
        members: &Rc<Vec<ClientId>>,
    ) -> Option<(SharedLine, Option<ClientId>)> {
        match self.effects.0.front() {
            Some(Effect::Send {
                to: Recipients::Room { members: next, .. },
                ..
            }) if Rc::ptr_eq(next, members) => {}
            _ => return None,
        }
        match self.effects.0.pop_front() {
            Some(Effect::Send {
                to: Recipients::Room { except, .. },
                line,
            }) => Some((line, except)),
            _ => None, // checked just above
        }
    }

    /// Effects waiting to be taken.
    pub fn pending_effects(&self) -> usize {
        self.effects.0.len()
    }

    /// Run `f` with the effect queue moved out of the hub, so that `f` can
    /// borrow the rest of the hub freely while it queues effects. Moving a
    /// `VecDeque` in and out does not allocate.
    fn emitting<R>(&mut self, f: impl FnOnce(&mut Hub, &mut Effects) -> R) -> R {
        let mut out = std::mem::take(&mut self.effects);
        let result = f(self, &mut out);
        self.effects = out;
        result
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        self.sessions.len()
    }

    /// The nickname of `id`, if connected.
    pub fn nick_of(&self, id: ClientId) -> Option<&str> {
        self.sessions.get(&id).map(|s| s.nick.as_str())
    }

    /// The nicknames of the clients connected now, in no particular order.
    pub fn nicks(&self) -> impl Iterator<Item = &str> {
        self.sessions.values().map(|s| s.nick.as_str())
    }

    /// The room `id` is in (without its `#`), if connected.
    pub fn room_of(&self, id: ClientId) -> Option<&str> {
        let session = self.sessions.get(&id)?;
        Some(self.rooms[&session.room].name.as_str())
    }

    /// Bytes of an unfinished line held for `id` (never more than
    /// `max_line + 1`), if connected: how tests and fuzz targets see that a
    /// session's input memory stays bounded.
    pub fn input_buffered(&self, id: ClientId) -> Option<usize> {
        self.sessions.get(&id).map(|s| s.framer.buffered())
    }

    /// A client connected: give it the next guest name, welcome it and
    /// announce it to #lobby. An id already connected is ignored. After
    /// [`handle_shutdown`](Self::handle_shutdown), the client is told the
    /// server is shutting down and closed.
    pub fn handle_connect(&mut self, id: ClientId) {
        self.emitting(|hub, out| hub.connect(id, out));
    }

    fn connect(&mut self, id: ClientId, out: &mut Effects) {
        if self.shut_down {
            out.send(id, &self.canned.shutting_down);
            out.close(id);
            return;
        }
        if self.sessions.contains_key(&id) {
            return;
        }
        if self.is_awaiting_guest(id) {
            return;
        }
        let nick = if self.cluster.is_some() {
            match self.take_cluster_guest(out) {
                Some(nick) => nick,
                // A burst used the pool up and the next block is on its
                // way: the client is welcomed when a name arrives.
                None if self.wait_for_guest(id) => return,
                None => {
                    out.send(id, &self.builder.str(cluster::NO_GUEST_NAME).finish());
                    out.close(id);
                    return;
                }
            }
        } else {
            // Skip numbers whose guest name someone already chose with /nick.
            loop {
                let candidate = Name::guest(self.next_guest);
                self.next_guest += 1;
                if !self.nicks.contains_key(&candidate.key()) {
                    break candidate;
                }
            }
        };
        self.welcome(id, nick, out);
    }

    /// Give `id` the name `nick`: welcome it, announce it to #lobby, and
    /// (in a cluster) to the other servers.
    fn welcome(&mut self, id: ClientId, nick: Name, out: &mut Effects) {
        self.nicks.insert(nick.key(), id);
        let b = &mut self.builder;
        let welcome = b
            .str(wire::WELCOME_HEAD)
            .str(nick.as_str())
            .str(wire::WELCOME_ROOM)
            .str(LOBBY)
            .str(wire::WELCOME_TAIL)
            .finish();
        out.send(id, &welcome);
        let lobby = self
            .rooms
            .get_mut(&self.lobby)
            .expect("#lobby always exists");
        if !lobby.members.is_empty() {
            let joined = b.joined(nick.as_str(), LOBBY);
            out.send_room(&lobby.members, None, &joined);
        }
        Rc::make_mut(&mut lobby.members).push(id);
        let joined = self.next_join();
        self.sessions.insert(
            id,
            Session {
                nick,
                room: self.lobby,
                joined,
                framer: LineFramer::new(self.limits.max_line),
            },
        );
        self.publish_join(nick, self.lobby, out);
    }

    /// Bytes arrived from `id`, in any chunking: complete lines are handled
    /// at once, an unfinished one is kept for the next call. If a line ends
    /// the session (`/quit`, `bye`), the bytes after it are ignored. An
    /// unknown id is ignored.
    pub fn handle_input(&mut self, id: ClientId, bytes: &[u8]) {
        self.emitting(|hub, out| hub.input(id, bytes, out));
    }

    fn input(&mut self, id: ClientId, bytes: &[u8], out: &mut Effects) {
        let Some(session) = self.sessions.get_mut(&id) else {
            if self.is_awaiting_guest(id) && bytes.contains(&b'\n') {
                // Not kept (it has no session to keep it in), and not lost
                // in silence either.
                out.send(id, &self.builder.str(cluster::NOT_WELCOMED_YET).finish());
            }
            return;
        };
        // The framer is moved out while its lines are handled, so that
        // handling a line can borrow the rest of the hub freely.
        let mut framer = std::mem::take(&mut session.framer);
        let mut input = bytes;
        while let Some(event) = framer.next_event(&mut input) {
            if self.handle_event(id, event, out) == Flow::Closed {
                return;
            }
        }
        if let Some(session) = self.sessions.get_mut(&id) {
            session.framer = framer;
        }
    }

    /// `id` shut down its sending side (its read returned 0). A final line
    /// without LF is handled as a line, as `nc` sends one; then the client
    /// leaves (`* NICK left #ROOM`) and the hub asks to close it, so that the
    /// reactor flushes what is queued for it, then closes. An unknown id is
    /// ignored.
    pub fn handle_eof(&mut self, id: ClientId) {
        self.emitting(|hub, out| hub.eof(id, out));
    }

    fn eof(&mut self, id: ClientId, out: &mut Effects) {
        let Some(session) = self.sessions.get_mut(&id) else {
            if self.is_awaiting_guest(id) {
                self.forget_waiting(id);
                out.close(id);
            }
            return;
        };
        let mut framer = std::mem::take(&mut session.framer);
        if let Some(event) = framer.finish() {
            if self.handle_event(id, event, out) == Flow::Closed {
                return;
            }
        }
        self.forget(id, LeaveReason::Disconnected.as_str(), out);
        out.close(id);
    }

    /// `id`'s connection is gone, or the server is closing it for `reason`:
    /// its room is told `* NICK left #ROOM`, with ` (too slow)` or
    /// ` (idle timeout)`. The hub emits no [`Effect::Close`] (the
    /// reactor is already closing it). An unknown id is ignored.
    pub fn handle_disconnect(&mut self, id: ClientId, reason: LeaveReason) {
        if self.sessions.contains_key(&id) {
            self.emitting(|hub, out| hub.forget(id, reason.as_str(), out));
        } else {
            self.forget_waiting(id);
        }
    }

    /// The server is shutting down: every client receives
    /// `* server shutting down` and is closed (through [`Effect::Close`], so
    /// the line is flushed first); the hub forgets them all, so no leave
    /// notices follow, and it accepts no one after this.
    pub fn handle_shutdown(&mut self) {
        self.emitting(Hub::shutdown);
    }

    fn shutdown(&mut self, out: &mut Effects) {
        self.shut_down = true;
        for id in self.take_waiting() {
            out.send(id, &self.canned.shutting_down);
            out.close(id);
        }
        self.cluster_shutdown(out);
        for room in self.rooms.values_mut() {
            for &member in room.members.iter() {
                out.send(member, &self.canned.shutting_down);
                out.close(member);
            }
            Rc::make_mut(&mut room.members).clear();
        }
        let lobby = self.lobby;
        self.rooms.retain(|&key, _| key == lobby);
        self.sessions.clear();
        self.nicks.clear();
    }

    /// Panics if the hub's tables disagree with each other: every session is
    /// in exactly one room and owns exactly its nickname's key; every room but
    /// #lobby has members. For property tests and fuzz targets.
    pub fn check_invariants(&self) {
        let mut seen = 0;
        for (key, room) in &self.rooms {
            assert_eq!(room.name.key(), *key, "room filed under its own name");
            assert!(*key == self.lobby || !room.is_empty(), "empty room kept");
            for member in room.members.iter() {
                let session = &self.sessions[member];
                assert_eq!(session.room, *key, "member of the room it is in");
                seen += 1;
            }
        }
        assert_eq!(
            seen,
            self.sessions.len(),
            "each session in exactly one room"
        );
        assert_eq!(self.nicks.len(), self.sessions.len(), "one nickname each");
        self.check_cluster_invariants();
        for (id, session) in &self.sessions {
            assert_eq!(self.nicks.get(&session.nick.key()), Some(id), "nick owned");
        }
    }

    /// Handle one framed line (or a too-long one) from `id`.
    fn handle_event(&mut self, id: ClientId, event: LineEvent<'_>, out: &mut Effects) -> Flow {
        let bytes = match event {
            LineEvent::TooLong => {
                out.send(id, &self.canned.too_long);
                return Flow::Continue;
            }
            LineEvent::Line(b"") => return Flow::Continue,
            LineEvent::Line(bytes) => bytes,
        };
        let Ok(line) = std::str::from_utf8(bytes) else {
            out.send(id, &self.canned.invalid_utf8);
            return Flow::Continue;
        };
        match command::parse(line) {
            Ok(Command::Say(text)) => self.say(id, text, out),
            Ok(Command::Nick(wanted)) => self.nick(id, wanted, out),
            Ok(Command::Who) => self.who(id, out),
            Ok(Command::Rooms) => self.list_rooms(id, out),
            Ok(Command::Join(room)) => self.join(id, room, out),
            Ok(Command::Msg { to, text }) => self.msg(id, to, text, out),
            Ok(Command::Me(action)) => self.me(id, action, out),
            Ok(Command::Help) => {
                for line in &self.canned.help {
                    out.send(id, line);
                }
            }
            Ok(Command::Quit(reason)) => {
                out.send(id, &self.canned.bye);
                self.forget(id, reason, out);
                out.close(id);
                return Flow::Closed;
            }
            Err(CommandError::Unknown(word)) => {
                let b = &mut self.builder;
                b.str("* error: unknown command: ").sanitized(word);
                let line = b.str(" (/help lists commands)").finish();
                out.send(id, &line);
            }
            Err(CommandError::Usage(usage)) => {
                let line = self.builder.str("* error: usage: ").str(usage).finish();
                out.send(id, &line);
            }
        }
        Flow::Continue
    }

    /// Plain text: `<NICK> text` to the others in the room.
    fn say(&mut self, id: ClientId, text: &str, out: &mut Effects) {
        let session = &self.sessions[&id];
        let b = &mut self.builder;
        let line = b
            .str("<")
            .str(session.nick.as_str())
            .str("> ")
            .sanitized(text)
            .finish();
        out.send_room(&self.rooms[&session.room].members, Some(id), &line);
        if self.cluster.is_some() {
            self.publish_said(id, text, false, out);
        }
    }

    /// `/me ACTION`: `* NICK ACTION` to the others in the room.
    fn me(&mut self, id: ClientId, action: &str, out: &mut Effects) {
        let session = &self.sessions[&id];
        let b = &mut self.builder;
        let line = b
            .str("* ")
            .str(session.nick.as_str())
            .str(" ")
            .sanitized(action)
            .finish();
        out.send_room(&self.rooms[&session.room].members, Some(id), &line);
        if self.cluster.is_some() {
            self.publish_said(id, action, true, out);
        }
    }

    /// `/nick NAME`: `* OLD is now known as NEW` to the whole room, sender
    /// included. A change of case only (`bob` to `Bob`) is a change.
    fn nick(&mut self, id: ClientId, wanted: &str, out: &mut Effects) {
        let b = &mut self.builder;
        let Some(new) = Name::parse(wanted.as_bytes()) else {
            b.str("* error: invalid nickname: ").sanitized(wanted);
            out.send(id, &b.str(NAME_RULE).finish());
            return;
        };
        let session = self.sessions.get_mut(&id).expect("handled for a session");
        let old = session.nick;
        if new == old {
            out.send(
                id,
                &b.str("* error: you are already ")
                    .str(old.as_str())
                    .finish(),
            );
            return;
        }
        let taken_here = self.nicks.get(&new.key()).is_some_and(|&owner| owner != id);
        if taken_here || self.held_elsewhere(new.key()) {
            out.send(
                id,
                &self
                    .builder
                    .str("* error: nickname taken: ")
                    .str(new.as_str())
                    .finish(),
            );
            return;
        }
        if self.cluster.is_some() && new.key() != old.key() {
            // Only Redis can say the name is free on every server: the
            // rename happens when the claim is granted.
            self.claim_nick(id, old, new, out);
            return;
        }
        self.rename(id, new, out);
    }

    /// Rename `id` (connected) to `new`, which is free: tell its room,
    /// and the other servers.
    fn rename(&mut self, id: ClientId, new: Name, out: &mut Effects) {
        let session = self
            .sessions
            .get_mut(&id)
            .expect("rename a connected client");
        let old = session.nick;
        self.nicks.remove(&old.key());
        self.nicks.insert(new.key(), id);
        session.nick = new;
        let room = session.room;
        let line = self.builder.renamed(old.as_str(), new.as_str());
        out.send_room(&self.rooms[&room].members, None, &line);
        self.publish_rename(old, new, room, out);
    }

    /// `/who`: `* users in #ROOM: A, B, C`, in the order they joined.
    fn who(&mut self, id: ClientId, out: &mut Effects) {
        let room = &self.rooms[&self.sessions[&id].room];
        let b = &mut self.builder;
        b.str(wire::WHO_HEAD)
            .str(room.name.as_str())
            .str(wire::WHO_LIST);
        // Two lists, each in join order: merge them by their stamps.
        let mut local = room.members.iter().map(|m| &self.sessions[m]).peekable();
        let mut remote = room.remote.iter().peekable();
        let mut first = true;
        loop {
            let nick = match (local.peek(), remote.peek()) {
                (Some(l), Some(r)) if l.joined < r.joined => local.next().map(|s| s.nick),
                (Some(_), None) => local.next().map(|s| s.nick),
                (_, Some(_)) => remote.next().map(|r| r.nick),
                (None, None) => break,
            };
            let Some(nick) = nick else { break };
            if !first {
                b.str(wire::WHO_SEP);
            }
            first = false;
            b.str(nick.as_str());
        }
        out.send(id, &b.finish());
    }

    /// `/rooms`: `* rooms: #a (2), #b (1)`, every room with a member, in
    /// alphabetical order without regard to case.
    fn list_rooms(&mut self, id: ClientId, out: &mut Effects) {
        let b = &mut self.builder;
        b.str("* rooms: ");
        let listed = self.rooms.values().filter(|room| !room.is_empty());
        for (i, room) in listed.enumerate() {
            if i > 0 {
                b.str(", ");
            }
            b.str("#")
                .str(room.name.as_str())
                .str(" (")
                .num(room.members.len() + room.remote.len())
                .str(")");
        }
        out.send(id, &b.finish());
    }

    /// `/join ROOM`: leave the current room (`* NICK left #OLD` to it), join
    /// ROOM, creating it if needed (`* NICK joined #ROOM` to its members),
    /// and tell the client `* you are now in #ROOM`. Room names ignore case:
    /// `/join #Rust` joins `#rust` if it exists.
    fn join(&mut self, id: ClientId, wanted: &str, out: &mut Effects) {
        let b = &mut self.builder;
        let Some(name) = Name::parse(wanted.strip_prefix('#').unwrap_or(wanted).as_bytes()) else {
            b.str("* error: invalid room name: ").sanitized(wanted);
            out.send(id, &b.str(NAME_RULE).finish());
            return;
        };
        let key = name.key();
        let session = self.sessions.get_mut(&id).expect("handled for a session");
        if session.room == key {
            let here = self.rooms[&key].name;
            out.send(
                id,
                &b.str("* error: you are already in #")
                    .str(here.as_str())
                    .finish(),
            );
            return;
        }
        let (old_room, nick) = (session.room, session.nick);
        session.room = key;
        self.leave_room(old_room, id, nick, "", out);
        let joined = self.next_join();
        if let Some(session) = self.sessions.get_mut(&id) {
            session.joined = joined;
        }
        let room = self.rooms.entry(key).or_insert(Room::new(name));
        let b = &mut self.builder;
        if !room.members.is_empty() {
            let joined = b.joined(nick.as_str(), room.name.as_str());
            out.send_room(&room.members, None, &joined);
        }
        Rc::make_mut(&mut room.members).push(id);
        out.send(
            id,
            &b.str("* you are now in #").str(room.name.as_str()).finish(),
        );
        self.publish_join(nick, key, out);
    }

    /// `/msg NICK TEXT`: `*FROM* TEXT` to NICK, `-> *NICK* TEXT` to the
    /// sender (both, in that order, when they are the same client).
    fn msg(&mut self, id: ClientId, to: &str, text: &str, out: &mut Effects) {
        let wanted = Name::parse(to.as_bytes());
        let target = wanted.and_then(|name| self.nicks.get(&name.key()).copied());
        if target.is_none() {
            if let Some(remote) = wanted.and_then(|name| self.remote_nick(name.key())) {
                self.msg_remote(id, remote, text, out);
                return;
            }
        }
        let b = &mut self.builder;
        let Some(target) = target else {
            b.str("* error: no such user: ").sanitized(to);
            out.send(id, &b.finish());
            return;
        };
        let from = self.sessions[&id].nick;
        let to_nick = self.sessions[&target].nick;
        let delivered = b.private(from.as_str(), text);
        out.send(target, &delivered);
        let echo = b
            .str("-> *")
            .str(to_nick.as_str())
            .str("* ")
            .sanitized(text)
            .finish();
        out.send(id, &echo);
    }

    /// Forget `id` (it must be connected) and tell its room it left, with
    /// `reason` in parentheses unless it is empty.
    fn forget(&mut self, id: ClientId, reason: &str, out: &mut Effects) {
        let session = self
            .sessions
            .remove(&id)
            .expect("forget a connected client");
        self.nicks.remove(&session.nick.key());
        self.leave_room(session.room, id, session.nick, reason, out);
        self.release_name(session.nick, out);
    }

    /// Take `id` out of a room, tell the members left `* NICK left #ROOM`
    /// (with ` (reason)`), and drop the room if it is now empty (#lobby
    /// stays).
    fn leave_room(
        &mut self,
        key: NameKey,
        id: ClientId,
        nick: Name,
        reason: &str,
        out: &mut Effects,
    ) {
        let room = self.rooms.get_mut(&key).expect("a session's room exists");
        let room_name = room.name;
        if let Some(at) = room.members.iter().position(|&m| m == id) {
            // `remove`, not `swap_remove`: /who lists members in join order.
            Rc::make_mut(&mut room.members).remove(at);
        }
        if room.members.is_empty() {
            if key != self.lobby && room.remote.is_empty() {
                self.rooms.remove(&key);
            }
            self.publish_left(nick, room_name, reason, out);
            return;
        }
        let line = self.builder.left(nick.as_str(), room.name.as_str(), reason);
        out.send_room(&room.members, None, &line);
        self.publish_left(nick, room_name, reason, out);
    }
}
