//! A naive model of the chat service, and a harness that runs the real
//! [`Hub`] beside it and compares them after every step.
//!
//! [`ChatModel`] is the chat table of docs/protocol.md written as plainly as possible:
//! clients in a `BTreeMap`, rooms as lists of members in join order, names
//! compared by lowercasing `String`s, commands split by hand, input framed
//! by [`NaiveFramer`]. For every event it predicts, in order, each line the
//! hub must send and to whom, and each close. It predicts lines exactly,
//! except error lines, which it only requires to start with `* error: ` (the
//! wording of errors is pinned by tests/sans_io/chat_hub.rs; what matters here is
//! that there is exactly one, to the sender alone, and that nothing else
//! changes).
//!
//! [`ChatHarness`] drives the hub and the model with the same events and,
//! after every step, checks:
//! - the hub sent exactly the predicted lines, to the predicted clients, in
//!   the predicted order; so each relayed line reaches exactly the other
//!   members of the sender's room, and a `/who` lists the room's members;
//! - no line to, and no close of, a client that has left (or never came);
//! - every line well-formed ([`check_output_line`]): UTF-8, one LF at the
//!   end, no control character, bounded in length;
//! - the hub's view agrees with the model's: each client's nickname and
//!   room, the number of clients, nicknames unique without regard to case,
//!   each client in exactly one room ([`Hub::check_invariants`]);
//! - the unfinished input held per client is exactly the model's, and never
//!   over `max_line + 1` bytes;
//! - `/who` (and `/rooms`) from one client, in turn, list exactly the
//!   model's members in join order (asked through a separate outbox, so the
//!   audit changes nothing).
//!
//! Output goes through a [`ChunkQueue`] per client under `out_limit`, as in
//! the reactor: a client whose queue would pass it is disconnected as too
//! slow, and its room is told so. Drained output must be exactly the lines
//! queued, in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::IoSlice;
use std::sync::OnceLock;

use crate::buffer::{ChunkQueue, SharedLine};
use crate::protocol::chat::delivery::{Delivery, Queues};
use crate::protocol::chat::{ChatLimits, ClientId, Effect, Hub, LeaveReason, Recipients};
use crate::testing::{check_output_line, sanitize, show, NaiveEvent, NaiveFramer};

/// The room everyone starts in.
const LOBBY: &str = "lobby";

/// One output the model expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// This exact line (with its LF) to this client.
    Line(ClientId, Vec<u8>),
    /// A line starting with `* error: ` to this client.
    Error(ClientId),
    /// The hub asks to close this client.
    Close(ClientId),
}

/// One output the hub produced.
#[derive(Debug, Clone)]
pub enum Actual {
    /// [`Effect::Send`].
    Send(ClientId, SharedLine),
    /// [`Effect::Close`].
    Close(ClientId),
}

impl Actual {
    /// What the hub asked for, one recipient at a time.
    pub fn of(effect: &Effect) -> Vec<Actual> {
        match effect {
            Effect::Send { to, line } => to
                .iter()
                .map(|to| Actual::Send(to, SharedLine::clone(line)))
                .collect(),
            Effect::Close { who } => vec![Actual::Close(*who)],
            Effect::Cluster(request) => panic!("the model's hub has no cluster: {request:?}"),
        }
    }

    /// As text for messages and comparisons.
    pub fn render(&self) -> String {
        match self {
            Actual::Send(to, line) => format!("{} {}", to.0, show(line)),
            Actual::Close(who) => format!("close {}", who.0),
        }
    }
}

/// Why a client leaves, as the harness's operations name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Reason {
    /// The connection went away.
    Disconnected,
    /// The server closed it: output over `--out-limit`.
    TooSlow,
    /// The server closed it: `--idle-timeout`.
    IdleTimeout,
}

impl Reason {
    /// The hub's reason.
    pub fn leave_reason(self) -> LeaveReason {
        match self {
            Reason::Disconnected => LeaveReason::Disconnected,
            Reason::TooSlow => LeaveReason::TooSlow,
            Reason::IdleTimeout => LeaveReason::IdleTimeout,
        }
    }

    /// The words the protocol puts in parentheses.
    fn words(self) -> &'static str {
        match self {
            Reason::Disconnected => "",
            Reason::TooSlow => "too slow",
            Reason::IdleTimeout => "idle timeout",
        }
    }
}

#[derive(Debug)]
struct ModelClient {
    nick: String,
    /// The room's key (lowercase).
    room: String,
    framer: NaiveFramer,
}

#[derive(Debug)]
struct ModelRoom {
    /// As first spelled.
    name: String,
    members: Vec<ClientId>,
}

/// The chat service of docs/protocol.md, naively. See the module docs.
#[derive(Debug)]
pub struct ChatModel {
    max_line: usize,
    clients: BTreeMap<ClientId, ModelClient>,
    /// Keyed by lowercase name, so iteration is `/rooms` order.
    rooms: BTreeMap<String, ModelRoom>,
    next_guest: u64,
    shut_down: bool,
    help: Vec<Vec<u8>>,
    expect: Vec<Expect>,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The protocol's name rule: 1 to 32 ASCII letters, digits, `_` and `-`.
fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Split at the first blank; the rest starts at its first non-blank.
fn split_word(text: &str) -> (&str, &str) {
    match text.find(is_blank) {
        Some(i) => (&text[..i], text[i + 1..].trim_start_matches(is_blank)),
        None => (text, ""),
    }
}

fn line(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(b'\n');
    bytes
}

impl ChatModel {
    /// An empty service for lines of at most `max_line` bytes; `help` is the
    /// block of lines `/help` answers with (read from a real hub once: the
    /// model checks that it is sent whole, to the asker alone).
    pub fn new(max_line: usize, help: Vec<Vec<u8>>) -> ChatModel {
        let mut rooms = BTreeMap::new();
        rooms.insert(
            LOBBY.to_string(),
            ModelRoom {
                name: LOBBY.to_string(),
                members: Vec::new(),
            },
        );
        ChatModel {
            max_line,
            clients: BTreeMap::new(),
            rooms,
            next_guest: 1,
            shut_down: false,
            help,
            expect: Vec::new(),
        }
    }

    /// Take the outputs predicted since the last call.
    pub fn take_expected(&mut self) -> Vec<Expect> {
        std::mem::take(&mut self.expect)
    }

    /// Whether `id` is connected.
    pub fn is_connected(&self, id: ClientId) -> bool {
        self.clients.contains_key(&id)
    }

    /// Connected clients.
    pub fn client_ids(&self) -> Vec<ClientId> {
        self.clients.keys().copied().collect()
    }

    /// `id`'s nickname, if connected.
    pub fn nick_of(&self, id: ClientId) -> Option<&str> {
        self.clients.get(&id).map(|c| c.nick.as_str())
    }

    /// `id`'s room as displayed (without `#`), if connected.
    pub fn room_of(&self, id: ClientId) -> Option<&str> {
        let client = self.clients.get(&id)?;
        Some(self.rooms[&client.room].name.as_str())
    }

    /// Bytes of an unfinished line held for `id`, if connected.
    pub fn input_held(&self, id: ClientId) -> Option<usize> {
        self.clients.get(&id).map(|c| c.framer.held())
    }

    /// Whether `id` has no unfinished line (so a whole line can be slipped
    /// in without joining one).
    pub fn between_lines(&self, id: ClientId) -> bool {
        self.clients
            .get(&id)
            .is_some_and(|c| c.framer.held() == 0 && !c.framer.is_discarding())
    }

    /// The `/who` line `id` would get.
    pub fn who_line(&self, id: ClientId) -> Option<Vec<u8>> {
        let room = &self.rooms[&self.clients.get(&id)?.room];
        let nicks: Vec<&str> = room
            .members
            .iter()
            .map(|m| self.clients[m].nick.as_str())
            .collect();
        Some(line(&format!(
            "* users in #{}: {}",
            room.name,
            nicks.join(", ")
        )))
    }

    /// The `/rooms` line.
    pub fn rooms_line(&self) -> Vec<u8> {
        let listed: Vec<String> = self
            .rooms
            .values()
            .filter(|r| !r.members.is_empty())
            .map(|r| format!("#{} ({})", r.name, r.members.len()))
            .collect();
        line(&format!("* rooms: {}", listed.join(", ")))
    }

    fn send(&mut self, to: ClientId, text: &str) {
        self.expect.push(Expect::Line(to, line(text)));
    }

    fn error(&mut self, to: ClientId) {
        self.expect.push(Expect::Error(to));
    }

    fn send_room(&mut self, room: &str, except: Option<ClientId>, text: &str) {
        let members = self.rooms[room].members.clone();
        for m in members {
            if Some(m) != except {
                self.send(m, text);
            }
        }
    }

    fn nick_taken(&self, nick: &str, by_other_than: Option<ClientId>) -> bool {
        let wanted = nick.to_ascii_lowercase();
        self.clients
            .iter()
            .any(|(id, c)| Some(*id) != by_other_than && c.nick.to_ascii_lowercase() == wanted)
    }

    /// A client connected.
    pub fn connect(&mut self, id: ClientId) {
        if self.shut_down {
            self.send(id, "* server shutting down");
            self.expect.push(Expect::Close(id));
            return;
        }
        if self.clients.contains_key(&id) {
            return;
        }
        let nick = loop {
            let candidate = format!("guest{}", self.next_guest);
            self.next_guest += 1;
            if !self.nick_taken(&candidate, None) {
                break candidate;
            }
        };
        self.send(
            id,
            &format!("* welcome to sockloop chat, you are {nick} in #lobby; /help lists commands"),
        );
        self.send_room(LOBBY, None, &format!("* {nick} joined #lobby"));
        self.rooms.get_mut(LOBBY).unwrap().members.push(id);
        self.clients.insert(
            id,
            ModelClient {
                nick,
                room: LOBBY.to_string(),
                framer: NaiveFramer::new(self.max_line),
            },
        );
    }

    /// Bytes arrived from `id`.
    pub fn input(&mut self, id: ClientId, bytes: &[u8]) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        for event in client.framer.push(bytes) {
            if !self.event(id, event) {
                return;
            }
        }
    }

    /// `id` shut down its sending side.
    pub fn eof(&mut self, id: ClientId) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if let Some(event) = client.framer.finish() {
            if !self.event(id, event) {
                return;
            }
        }
        self.forget(id, "");
        self.expect.push(Expect::Close(id));
    }

    /// `id`'s connection is gone, or the server closed it.
    pub fn disconnect(&mut self, id: ClientId, reason: Reason) {
        if self.clients.contains_key(&id) {
            self.forget(id, reason.words());
        }
    }

    /// The server shuts down.
    pub fn shutdown(&mut self) {
        self.shut_down = true;
        let rooms = std::mem::take(&mut self.rooms);
        for room in rooms.values() {
            for &m in &room.members {
                self.send(m, "* server shutting down");
                self.expect.push(Expect::Close(m));
            }
        }
        self.clients.clear();
        self.rooms.insert(
            LOBBY.to_string(),
            ModelRoom {
                name: LOBBY.to_string(),
                members: Vec::new(),
            },
        );
    }

    /// One framed line; false when the client left because of it.
    fn event(&mut self, id: ClientId, event: NaiveEvent) -> bool {
        let bytes = match event {
            NaiveEvent::TooLong => {
                self.error(id);
                return true;
            }
            NaiveEvent::Line { bytes, .. } => bytes,
        };
        if bytes.is_empty() {
            return true;
        }
        match String::from_utf8(bytes) {
            Ok(text) => self.command(id, &text),
            Err(_) => {
                self.error(id);
                true
            }
        }
    }

    fn command(&mut self, id: ClientId, text: &str) -> bool {
        if text == "bye" {
            return self.quit(id, "");
        }
        let Some(after_slash) = text.strip_prefix('/') else {
            let nick = self.clients[&id].nick.clone();
            let room = self.clients[&id].room.clone();
            self.send_room(&room, Some(id), &format!("<{nick}> {}", sanitize(text)));
            return true;
        };
        let (word, args) = split_word(after_slash);
        let name_arg = args.trim_end_matches(is_blank);
        match word.to_ascii_lowercase().as_str() {
            "nick" if !name_arg.is_empty() => self.nick(id, name_arg),
            "join" if !name_arg.is_empty() => self.join(id, name_arg),
            "who" if args.is_empty() => {
                let who = self.who_line(id).expect("connected");
                self.expect.push(Expect::Line(id, who));
            }
            "rooms" if args.is_empty() => {
                let rooms = self.rooms_line();
                self.expect.push(Expect::Line(id, rooms));
            }
            "help" if args.is_empty() => {
                for help in self.help.clone() {
                    self.expect.push(Expect::Line(id, help));
                }
            }
            "me" if !args.is_empty() => {
                let nick = self.clients[&id].nick.clone();
                let room = self.clients[&id].room.clone();
                self.send_room(&room, Some(id), &format!("* {nick} {}", sanitize(args)));
            }
            "msg" => {
                let (to, message) = split_word(args);
                if to.is_empty() || message.is_empty() {
                    self.error(id);
                } else {
                    self.msg(id, to, message);
                }
            }
            "quit" => return self.quit(id, name_arg),
            _ => self.error(id),
        }
        true
    }

    fn nick(&mut self, id: ClientId, wanted: &str) {
        let old = self.clients[&id].nick.clone();
        if !valid_name(wanted) || wanted == old || self.nick_taken(wanted, Some(id)) {
            self.error(id);
            return;
        }
        let client = self.clients.get_mut(&id).unwrap();
        client.nick = wanted.to_string();
        let room = client.room.clone();
        self.send_room(&room, None, &format!("* {old} is now known as {wanted}"));
    }

    fn join(&mut self, id: ClientId, wanted: &str) {
        let bare = wanted.strip_prefix('#').unwrap_or(wanted);
        let key = bare.to_ascii_lowercase();
        if !valid_name(bare) || self.clients[&id].room == key {
            self.error(id);
            return;
        }
        let client = self.clients.get_mut(&id).unwrap();
        let old = std::mem::replace(&mut client.room, key.clone());
        let nick = client.nick.clone();
        self.leave_room(&old, id, &nick, "");
        let room = self.rooms.entry(key.clone()).or_insert(ModelRoom {
            name: bare.to_string(),
            members: Vec::new(),
        });
        let name = room.name.clone();
        self.send_room(&key, None, &format!("* {nick} joined #{name}"));
        self.rooms.get_mut(&key).unwrap().members.push(id);
        self.send(id, &format!("* you are now in #{name}"));
    }

    fn msg(&mut self, id: ClientId, to: &str, text: &str) {
        let target = if valid_name(to) {
            let wanted = to.to_ascii_lowercase();
            self.clients
                .iter()
                .find(|(_, c)| c.nick.to_ascii_lowercase() == wanted)
                .map(|(target, c)| (*target, c.nick.clone()))
        } else {
            None
        };
        let Some((target, target_nick)) = target else {
            self.error(id);
            return;
        };
        let from = self.clients[&id].nick.clone();
        let text = sanitize(text);
        self.send(target, &format!("*{from}* {text}"));
        self.send(id, &format!("-> *{target_nick}* {text}"));
    }

    fn quit(&mut self, id: ClientId, reason: &str) -> bool {
        self.send(id, "* bye");
        self.forget(id, reason);
        self.expect.push(Expect::Close(id));
        false
    }

    fn forget(&mut self, id: ClientId, reason: &str) {
        let client = self.clients.remove(&id).expect("forget a connected client");
        self.leave_room(&client.room, id, &client.nick, reason);
    }

    fn leave_room(&mut self, key: &str, id: ClientId, nick: &str, reason: &str) {
        let room = self.rooms.get_mut(key).expect("a client's room exists");
        room.members.retain(|&m| m != id);
        if room.members.is_empty() {
            if key != LOBBY {
                self.rooms.remove(key);
            }
            return;
        }
        let mut notice = format!("* {nick} left #{}", room.name);
        if !reason.is_empty() {
            notice.push_str(&format!(" ({})", sanitize(reason)));
        }
        self.send_room(key, None, &notice);
    }
}

/// One client's connection as the harness's outbox sees it: a bounded
/// queue of shared lines, as the reactor keeps.
#[derive(Debug, Default)]
struct Pipe {
    queue: ChunkQueue,
    /// Every byte accepted into the queue, in order.
    stream: Vec<u8>,
    /// How many of them have been written out.
    drained: usize,
}

/// The clients' side of the hub: every effect recorded, and each carried
/// out on per-client queues by the server's own delivery policy
/// ([`Delivery`]), as the reactor does.
#[derive(Debug)]
struct Recorder {
    log: Vec<Actual>,
    pipes: HashMap<ClientId, Pipe>,
    delivery: Delivery,
    out_limit: usize,
}

impl Recorder {
    /// Take every effect out of `hub`, record it, and carry it out: a run of
    /// lines to one room as one run, exactly as `Delivery::apply_all` takes
    /// it in the server.
    fn take(&mut self, hub: &mut Hub) {
        while let Some(effect) = hub.poll_effect() {
            let effect = match effect {
                Effect::Send {
                    to: Recipients::Room { members, except },
                    line,
                } => {
                    self.delivery.push_to_run(line, except);
                    while let Some((line, except)) = hub.poll_line_to_room(&members) {
                        self.delivery.push_to_run(line, except);
                    }
                    self.take_run(&members);
                    continue;
                }
                other => other,
            };
            self.log.extend(Actual::of(&effect));
            // The queue of a client exists from its first line on, as a
            // connection's does from its accept. Note what was offered, to
            // mirror what the policy accepts byte for byte.
            let mut offered = Vec::new();
            if let Effect::Send { to, line } = &effect {
                for to in to.iter() {
                    let before = self.pipes.entry(to).or_default().queue.len();
                    offered.push((to, SharedLine::clone(line), before));
                }
            }
            self.delivery
                .apply(effect, &mut PipeQueues(&mut self.pipes));
            for (to, line, before) in offered {
                let pipe = self.pipes.get_mut(&to).expect("created above");
                if pipe.queue.len() > before {
                    pipe.stream.extend_from_slice(&line);
                }
            }
        }
    }
}

impl Recorder {
    /// Record the run of lines to `members` that the delivery holds, carry
    /// it out with [`Delivery::deliver_run`], and mirror what each member's
    /// queue took: the first lines meant for it, in order.
    fn take_run(&mut self, members: &std::rc::Rc<Vec<ClientId>>) {
        let run: Vec<(SharedLine, Option<ClientId>)> = self.delivery.run().to_vec();
        let mut before = Vec::with_capacity(members.len());
        for (line, except) in &run {
            self.log.extend(Actual::of(&Effect::Send {
                to: Recipients::Room {
                    members: std::rc::Rc::clone(members),
                    except: *except,
                },
                line: SharedLine::clone(line),
            }));
        }
        for &member in members.iter() {
            // A queue exists from the first line offered to it on.
            if run.iter().any(|(_, except)| *except != Some(member)) {
                let pipe = self.pipes.entry(member).or_default();
                before.push((member, pipe.queue.lines()));
            }
        }
        self.delivery
            .deliver_run(members, &mut PipeQueues(&mut self.pipes));
        for (member, lines_before) in before {
            let pipe = self.pipes.get_mut(&member).expect("created above");
            let taken = pipe.queue.lines() - lines_before;
            let meant = run.iter().filter(|(_, except)| *except != Some(member));
            for (line, _) in meant.take(taken) {
                pipe.stream.extend_from_slice(line);
            }
        }
    }
}

/// The recorded queues as the delivery policy sees them.
struct PipeQueues<'a>(&'a mut HashMap<ClientId, Pipe>);

impl Queues for PipeQueues<'_> {
    fn queue(&mut self, id: ClientId) -> Option<&mut ChunkQueue> {
        self.0.get_mut(&id).map(|p| &mut p.queue)
    }

    fn queued(&mut self, _id: ClientId, _cost: usize, _lines: usize) {}

    fn finish(&mut self, _id: ClientId) {}
}

/// Every effect `hub` has queued, recorded and not carried out (for audits
/// that must change nothing).
fn take_effects(hub: &mut Hub) -> Vec<Actual> {
    std::iter::from_fn(|| hub.poll_effect())
        .flat_map(|e| Actual::of(&e))
        .collect()
}

/// The `/help` block of a real hub (it does not depend on the limits), read
/// once per process: fuzz targets build a harness per input.
fn help_lines() -> Vec<Vec<u8>> {
    static HELP: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    HELP.get_or_init(read_help_lines).clone()
}

fn read_help_lines() -> Vec<Vec<u8>> {
    let mut hub = Hub::new(ChatLimits { max_line: 4096 });
    hub.handle_connect(ClientId(1));
    take_effects(&mut hub);
    hub.handle_input(ClientId(1), b"/help\n");
    let lines: Vec<Vec<u8>> = take_effects(&mut hub)
        .iter()
        .map(|a| match a {
            Actual::Send(ClientId(1), line) => line.to_vec(),
            other => panic!("/help answered with {}", other.render()),
        })
        .collect();
    assert!(!lines.is_empty(), "/help lists something");
    for help in &lines {
        assert!(help.starts_with(b"* "), "help lines are notices");
    }
    lines
}

/// The real hub and the model, side by side. See the module docs.
#[derive(Debug)]
pub struct ChatHarness {
    hub: Hub,
    model: ChatModel,
    out: Recorder,
    max_line: usize,
    /// Every id ever connected, in order.
    ids: Vec<ClientId>,
    /// Ids the hub is done with: closed, disconnected, or refused.
    departed: BTreeSet<ClientId>,
    /// Everything the hub did, over the whole run.
    history: Vec<Actual>,
    steps: usize,
}

impl ChatHarness {
    /// A hub with `--max-line` `max_line` and `--out-limit` `out_limit`.
    pub fn new(max_line: usize, out_limit: usize) -> ChatHarness {
        ChatHarness {
            hub: Hub::new(ChatLimits { max_line }),
            model: ChatModel::new(max_line, help_lines()),
            out: Recorder {
                log: Vec::new(),
                pipes: HashMap::new(),
                delivery: Delivery::new(out_limit),
                out_limit,
            },
            max_line,
            ids: Vec::new(),
            departed: BTreeSet::new(),
            history: Vec::new(),
            steps: 0,
        }
    }

    /// Every id connected so far, in order.
    pub fn ids(&self) -> &[ClientId] {
        &self.ids
    }

    /// The model (to read, not to change).
    pub fn model(&self) -> &ChatModel {
        &self.model
    }

    /// The hub (to read, not to change).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Everything the hub did so far, in order.
    pub fn actions(&self) -> &[Actual] {
        &self.history
    }

    /// Everything the hub did so far, rendered, in order.
    pub fn history(&self) -> Vec<String> {
        self.history.iter().map(Actual::render).collect()
    }

    /// Connect the next client (ids count up from 1, never reused).
    pub fn connect(&mut self) -> ClientId {
        let id = ClientId(self.ids.len() as u64 + 1);
        self.ids.push(id);
        self.hub.handle_connect(id);
        self.out.take(&mut self.hub);
        self.model.connect(id);
        self.settle("connect");
        id
    }

    /// Bytes from `id`, handed to the hub in one call.
    pub fn input(&mut self, id: ClientId, bytes: &[u8]) {
        self.hub.handle_input(id, bytes);
        self.out.take(&mut self.hub);
        self.model.input(id, bytes);
        self.settle(&format!("input from {} {}", id.0, show(bytes)));
    }

    /// `id` shut down its sending side.
    pub fn eof(&mut self, id: ClientId) {
        self.hub.handle_eof(id);
        self.out.take(&mut self.hub);
        self.model.eof(id);
        self.settle(&format!("end of input from {}", id.0));
    }

    /// `id`'s connection is gone (or the server closed it for `reason`).
    pub fn disconnect(&mut self, id: ClientId, reason: Reason) {
        self.hub.handle_disconnect(id, reason.leave_reason());
        self.out.take(&mut self.hub);
        let was_connected = self.model.is_connected(id);
        self.model.disconnect(id, reason);
        if was_connected {
            self.departed.insert(id);
        }
        self.settle(&format!("disconnect {} ({reason:?})", id.0));
    }

    /// The server shuts down.
    pub fn shutdown(&mut self) {
        self.hub.handle_shutdown();
        self.out.take(&mut self.hub);
        self.model.shutdown();
        self.settle("shutdown");
    }

    /// Bytes queued for `id` and not yet written out.
    pub fn pending_output(&self, id: ClientId) -> usize {
        self.out.pipes.get(&id).map_or(0, |p| p.queue.len())
    }

    /// The socket of `id` takes up to `n` bytes of its queued output, in
    /// slices as `writev` would get them.
    pub fn drain(&mut self, id: ClientId, n: usize) {
        let Some(pipe) = self.out.pipes.get_mut(&id) else {
            return;
        };
        let mut slices = [IoSlice::new(&[]); 4];
        let filled = pipe.queue.io_slices(&mut slices);
        let offered: Vec<u8> = slices[..filled]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        let take = n.min(offered.len());
        assert_eq!(
            offered[..take],
            pipe.stream[pipe.drained..pipe.drained + take],
            "client {}: output written out of order",
            id.0
        );
        pipe.queue.consume(take);
        pipe.drained += take;
        assert_eq!(
            pipe.queue.len(),
            pipe.stream.len() - pipe.drained,
            "client {}: queued byte count",
            id.0
        );
    }

    /// Check what the hub did against the model, disconnect the clients
    /// found too slow (as the reactor does, which may find more), then
    /// check the hub's state.
    fn settle(&mut self, step: &str) {
        self.compare(step);
        // The server's own loop (see `protocol::chat::delivery`): the
        // clients the policy found too slow, oldest first.
        while let Some(id) = self.out.delivery.next_too_slow() {
            self.hub.handle_disconnect(id, LeaveReason::TooSlow);
            self.out.take(&mut self.hub);
            if self.model.is_connected(id) {
                self.departed.insert(id);
            }
            self.model.disconnect(id, Reason::TooSlow);
            self.compare(&format!("{step}, then {} too slow", id.0));
        }
        self.check_state(step);
        self.steps += 1;
    }

    /// The longest line the hub may send now.
    fn line_bound(&self) -> usize {
        3 * self.max_line + 64 * (self.ids.len() + 1) + 128
    }

    fn compare(&mut self, step: &str) {
        let actual = std::mem::take(&mut self.out.log);
        let expected = self.model.take_expected();
        let bound = self.line_bound();
        let mut closed_now = BTreeSet::new();
        for a in &actual {
            match a {
                Actual::Send(to, line) => {
                    check_output_line(line, bound);
                    assert!(
                        !self.departed.contains(to),
                        "{step}: a line to client {}, which has left: {}",
                        to.0,
                        show(line)
                    );
                    assert!(
                        !closed_now.contains(to),
                        "{step}: a line to client {} after closing it",
                        to.0
                    );
                    assert!(
                        self.ids.contains(to),
                        "{step}: a line to client {}, which never connected",
                        to.0
                    );
                }
                Actual::Close(who) => {
                    assert!(
                        !self.departed.contains(who),
                        "{step}: client {} closed again after leaving",
                        who.0
                    );
                    assert!(closed_now.insert(*who), "{step}: {} closed twice", who.0);
                }
            }
        }
        self.departed.extend(closed_now);
        let matches = actual.len() == expected.len()
            && actual.iter().zip(&expected).all(|(a, e)| match (a, e) {
                (Actual::Send(to, got), Expect::Line(want_to, want)) => {
                    to == want_to && got[..] == want[..]
                }
                (Actual::Send(to, got), Expect::Error(want_to)) => {
                    to == want_to && got.starts_with(b"* error: ")
                }
                (Actual::Close(who), Expect::Close(want)) => who == want,
                _ => false,
            });
        if !matches {
            let expected: Vec<String> = expected
                .iter()
                .map(|e| match e {
                    Expect::Line(to, line) => format!("{} {}", to.0, show(line)),
                    Expect::Error(to) => format!("{} \"* error: ...\"", to.0),
                    Expect::Close(who) => format!("close {}", who.0),
                })
                .collect();
            let actual: Vec<String> = actual.iter().map(Actual::render).collect();
            panic!(
                "step {} ({step}): the hub's output differs from the model's\n  hub:   {actual:#?}\n  model: {expected:#?}",
                self.steps
            );
        }
        self.history.extend(actual);
    }

    fn check_state(&mut self, step: &str) {
        let hub = &self.hub;
        hub.check_invariants();
        let live = self.model.client_ids();
        assert_eq!(hub.client_count(), live.len(), "{step}: client count");
        let mut nicks = BTreeSet::new();
        for &id in &self.ids {
            assert_eq!(
                hub.nick_of(id),
                self.model.nick_of(id),
                "{step}: nickname of {}",
                id.0
            );
            assert_eq!(
                hub.room_of(id),
                self.model.room_of(id),
                "{step}: room of {}",
                id.0
            );
            let held = hub.input_buffered(id);
            assert_eq!(
                held,
                self.model.input_held(id),
                "{step}: unfinished input held for {}",
                id.0
            );
            assert!(
                held.unwrap_or(0) <= self.max_line + 1,
                "{step}: {} holds {held:?} bytes of input, over max_line + 1",
                id.0
            );
            if let Some(nick) = hub.nick_of(id) {
                assert!(
                    nicks.insert(nick.to_ascii_lowercase()),
                    "{step}: nickname {nick} twice"
                );
            }
        }
        for pipe in self.out.pipes.values() {
            assert!(
                pipe.queue.cost() <= self.out.out_limit,
                "{step}: queue bound"
            );
        }
        // Audit one client in turn with /who and /rooms, if it is between
        // lines (else the audit line would join its unfinished one).
        if live.is_empty() {
            return;
        }
        let id = live[self.steps % live.len()];
        let (ask, want) = if self.steps % 2 == 0 {
            (&b"/who\n"[..], self.model.who_line(id).expect("connected"))
        } else {
            (&b"/rooms\n"[..], self.model.rooms_line())
        };
        if !self.model.between_lines(id) || ask.len() - 1 > self.max_line {
            return;
        }
        self.hub.handle_input(id, ask);
        let got: Vec<String> = take_effects(&mut self.hub)
            .iter()
            .map(Actual::render)
            .collect();
        assert_eq!(
            got,
            vec![format!("{} {}", id.0, show(&want))],
            "{step}: audit {} from {}",
            show(ask),
            id.0
        );
    }
}
