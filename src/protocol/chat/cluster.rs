//! The hub as one of several servers of one chat (`serve --cluster`), still
//! sans-IO: what its users do goes out as [`ClusterRequest`]s inside
//! [`Effect::Cluster`](super::Effect::Cluster) (publish an event, claim or
//! release a nickname, reserve guest numbers), and what the other servers
//! do comes in through [`Hub::handle_bus`] and the other `handle_link_*` /
//! `handle_*` calls below. The reactor carries the requests to the Redis
//! link ([`crate::cluster::link`]) and feeds its effects back here; nothing
//! in this module knows about sockets or Redis.
//!
//! # What the hub keeps about other servers
//!
//! Every room holds, beside its local members (who receive lines), the
//! members on other servers ([`RemoteMember`]), stamped on the hub's join
//! clock so that `/who` lists everyone in the order this server learned
//! they joined; `/rooms` counts both. A table of remote nicknames makes
//! `/nick` refuse a name held elsewhere and lets `/msg` reach it. Remote
//! members receive nothing from this server: their own server serves them.
//!
//! # Names
//!
//! A nickname is granted only when Redis says it is free on every server
//! (a claim, [`ClusterRequest::Claim`]); `/nick` therefore answers when the
//! claim does. Guest names come from numbers reserved in blocks with
//! `INCRBY` and claimed *before* anybody needs one, so a new connection
//! gets its name at once from a small pool of proven-free names. While the
//! link is down the pool is not refilled; once it is empty a new
//! connection is told that no name can be proven free and is closed.
//!
//! # Bus input is untrusted
//!
//! A message that contradicts what this server knows (a member named like
//! a local user, a leave of someone another server holds) is dropped and
//! counted ([`Hub::bus_dropped`]), never a panic.

use std::collections::{HashMap, VecDeque};
use std::ops::RangeInclusive;

use super::name::{Name, NameKey};
use super::{ClientId, Effects, Hub, Room};
use crate::protocol::chat::bus::{self, Event, Member, Message, Reason, ServerId, Text};

/// What the hub asks of the Redis link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterRequest {
    /// Publish this event to every other server.
    Publish(Event),
    /// Claim `name` for this server; answer with [`Hub::handle_claimed`].
    Claim {
        /// The name.
        name: Name,
        /// Hand it back with the answer.
        token: u64,
    },
    /// This server no longer uses `name`: release its claim.
    Release {
        /// The name.
        name: Name,
    },
    /// Free `name` if lost server `server` still holds it.
    ReleaseFor {
        /// The lost server.
        server: ServerId,
        /// The name.
        name: Name,
    },
    /// Reserve `count` guest numbers; answer with [`Hub::handle_guests`].
    ReserveGuests {
        /// How many.
        count: u64,
        /// Hand it back with the answer.
        token: u64,
    },
}

/// A member of a room on another server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMember {
    /// When this server learned it joined (the hub's join clock).
    pub joined: u64,
    /// Its server.
    pub server: ServerId,
    /// Its nickname.
    pub nick: Name,
}

/// What a new connection is told when no guest name can be proven free.
pub const NO_GUEST_NAME: &str =
    "* error: no nickname can be proven free right now (cluster link down); try again later";

/// What a connection waiting for its guest name (and so for its welcome) is
/// told when it sends a line before the welcome: its input is not kept.
pub const NOT_WELCOMED_YET: &str =
    "* error: you have no nickname yet (one is on its way); send that again after the welcome";

/// Guest numbers reserved at a time.
pub const GUEST_BLOCK: u64 = 16;
/// Below this many proven-free guest names (ready or being claimed), the
/// hub reserves another block.
pub const GUEST_LOW: usize = 8;
/// Members of presence lists being received, all servers together; a part
/// that would pass it is dropped with its list.
pub const MAX_PRESENCE: usize = 1 << 18;
/// Members on other servers this server keeps track of; a join past it is
/// dropped and counted (their own servers still serve them).
pub const MAX_REMOTE_MEMBERS: usize = 1 << 20;
/// Lost servers remembered, so that one heard from again is recognised.
pub const MAX_LOST: usize = 1024;

/// A pending claim: whose it is.
#[derive(Debug, Clone, Copy)]
enum ClaimFor {
    /// `/nick` of `client`, then called `old`.
    Nick { client: ClientId, old: Name },
    /// A guest name for the pool.
    Guest,
}

/// What the hub keeps per other server, to check its heartbeats against.
#[derive(Debug, Clone, Copy)]
struct Peer {
    /// Its members this server knows of.
    members: u32,
    /// Heartbeats in a row whose count disagreed with `members`.
    disagreements: u32,
    /// Disagreements to wait for before asking its list again; doubles
    /// after each ask (up to [`MAX_PATIENCE`]), back to 2 once they agree.
    patience: u32,
}

impl Default for Peer {
    fn default() -> Peer {
        Peer {
            members: 0,
            disagreements: 0,
            patience: 2,
        }
    }
}

/// The longest wait, in heartbeats, between two asks for a list that keeps
/// disagreeing with its server's heartbeats (a name clash drops the same
/// member every time).
pub const MAX_PATIENCE: u32 = 64;

/// A member on another server, by nickname key.
#[derive(Debug, Clone, Copy)]
struct RemoteNick {
    server: ServerId,
    nick: Name,
    room: NameKey,
}

/// The hub's view of the cluster (see the module documentation).
#[derive(Debug, Default)]
pub struct ClusterView {
    /// Whether the link is up now.
    up: bool,
    /// Every member on another server, by nickname key.
    remote: HashMap<NameKey, RemoteNick>,
    /// Per other server: how many members we know, and heartbeat checks.
    peers: HashMap<ServerId, Peer>,
    /// Presence lists being received, part by part.
    partial: HashMap<ServerId, Vec<Member>>,
    /// Guest names claimed and not handed out yet.
    guests: VecDeque<Name>,
    /// Guest names whose claim is in flight.
    guests_claiming: usize,
    /// Whether a block of guest numbers has been asked for and not answered.
    guests_reserving: bool,
    /// Claims in flight, by token.
    claims: HashMap<u64, ClaimFor>,
    next_token: u64,
    /// Bus messages dropped because they contradict what we know.
    dropped: u64,
    /// Local users whose name another server holds now, waiting for a
    /// guest name to be renamed to (the pool was empty).
    renames_owed: Vec<ClientId>,
    /// New connections waiting for a guest name while the link is up but
    /// the pool is empty (a burst of connections used it up before the next
    /// block came), oldest first. They are welcomed as names arrive; as many
    /// as there are connections at most.
    awaiting_guest: VecDeque<ClientId>,
    /// Servers declared lost, most recent last (at most [`MAX_LOST`]): one
    /// heard from again was only cut off, and is asked for its list.
    lost: VecDeque<ServerId>,
}

impl ClusterView {
    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }
}

/// What a leave reason is called on the bus.
fn bus_reason(reason: &str) -> Reason {
    match reason {
        "" => Reason::Plain,
        "too slow" => Reason::TooSlow,
        "idle timeout" => Reason::IdleTimeout,
        "server lost" => Reason::ServerLost,
        other => Reason::Quit(Text::sanitized(other)),
    }
}

/// The words in parentheses for a leave reason from the bus.
fn reason_words(reason: &Reason) -> &str {
    match reason {
        Reason::Plain => "",
        Reason::Quit(text) => text.as_str(),
        Reason::TooSlow => "too slow",
        Reason::IdleTimeout => "idle timeout",
        Reason::ServerLost => "server lost",
    }
}

impl Hub {
    // ----- inputs from the link ------------------------------------------

    /// The link is up (`restored`: after a loss). Local users hear
    /// `* cluster link restored`; this server's member list goes out, and
    /// the guest pool is refilled.
    pub fn handle_link_up(&mut self, restored: bool) {
        self.emitting(|hub, out| {
            let Some(view) = hub.cluster.as_mut() else {
                return;
            };
            view.up = true;
            if restored {
                let line = hub.builder.str("* cluster link restored").finish();
                for id in hub.session_ids() {
                    out.send(id, &line);
                }
            }
            hub.publish_presence(out);
            hub.refill_guests(out);
        });
    }

    /// The link failed (`was_up`: it had been up). Local users hear that
    /// only this server hears them now; local chat goes on.
    pub fn handle_link_down(&mut self, was_up: bool) {
        self.emitting(|hub, out| {
            let Some(view) = hub.cluster.as_mut() else {
                return;
            };
            view.up = false;
            view.guests_reserving = false;
            view.partial.clear();
            // Nobody can prove a name free now: those still waiting for
            // one are told so, as a new connection would be.
            let waiting: Vec<ClientId> = view.awaiting_guest.drain(..).collect();
            if !waiting.is_empty() {
                let line = hub.builder.str(NO_GUEST_NAME).finish();
                for id in waiting {
                    out.send(id, &line);
                    out.close(id);
                }
            }
            if was_up {
                let line = hub
                    .builder
                    .str(
                        "* cluster link lost; until it is back, only users on this server hear you",
                    )
                    .finish();
                for id in hub.session_ids() {
                    out.send(id, &line);
                }
            }
        });
    }

    /// A message from another server.
    pub fn handle_bus(&mut self, message: Message) {
        self.emitting(|hub, out| hub.bus(message, out));
    }

    /// Server `server` went silent: its members leave with `(server lost)`
    /// and their names are freed.
    pub fn handle_server_lost(&mut self, server: ServerId) {
        self.emitting(|hub, out| {
            hub.drop_server(server, "server lost", out);
            if let Some(view) = hub.cluster.as_mut() {
                if view.lost.len() >= MAX_LOST {
                    view.lost.pop_front();
                }
                view.lost.push_back(server);
            }
        });
    }

    /// Messages from `server` were lost: ask it for its member list again.
    pub fn handle_gap(&mut self, server: ServerId) {
        self.emitting(|hub, out| {
            if hub.cluster.is_some() {
                out.cluster(ClusterRequest::Publish(Event::SyncRequest { to: server }));
            }
        });
    }

    /// The answer to a [`ClusterRequest::Claim`].
    pub fn handle_claimed(&mut self, token: u64, name: Name, granted: bool) {
        self.emitting(|hub, out| hub.claimed(token, name, granted, out));
    }

    /// The answer to a [`ClusterRequest::ReserveGuests`]: claim each guest
    /// name of the block for the pool.
    pub fn handle_guests(&mut self, _token: u64, numbers: Option<RangeInclusive<u64>>) {
        self.emitting(|hub, out| {
            let Some(view) = hub.cluster.as_mut() else {
                return;
            };
            view.guests_reserving = false;
            for n in numbers.into_iter().flatten() {
                let token = view.token();
                view.claims.insert(token, ClaimFor::Guest);
                view.guests_claiming += 1;
                out.cluster(ClusterRequest::Claim {
                    name: Name::guest(n),
                    token,
                });
            }
        });
    }

    /// Another server holds `name`, which we thought ours (our lease ran
    /// out while we were cut off). A pool name is forgotten; a user holding
    /// it is renamed to a fresh guest name, announced like any rename.
    pub fn handle_lease_lost(&mut self, name: Name) {
        self.emitting(|hub, out| {
            let Some(view) = hub.cluster.as_mut() else {
                return;
            };
            view.guests.retain(|g| g.key() != name.key());
            let Some(&id) = hub.nicks.get(&name.key()) else {
                return;
            };
            match hub.take_cluster_guest(out) {
                Some(guest) => hub.rename(id, guest, out),
                None => {
                    let view = hub.cluster.as_mut().expect("a cluster hub");
                    if !view.renames_owed.contains(&id) {
                        view.renames_owed.push(id);
                    }
                }
            }
            // The others may have dropped what we said under the old name
            // (they gave it to someone else): lists are exchanged again.
            hub.publish_presence(out);
            out.cluster(ClusterRequest::Publish(Event::SyncRequest {
                to: bus::EVERY_SERVER,
            }));
        });
    }

    /// Whether a new connection would get a name now (the guest pool is
    /// not empty): the server waits for this at start-up.
    pub fn cluster_ready(&self) -> bool {
        self.cluster.as_ref().is_some_and(|v| !v.guests.is_empty())
    }

    /// Bus messages dropped because they contradicted what this server
    /// knows (on top of those the link drops as malformed).
    pub fn bus_dropped(&self) -> u64 {
        self.cluster.as_ref().map_or(0, |v| v.dropped)
    }

    // ----- what the hub's own users do -----------------------------------

    /// A proven-free guest name for a new connection, if the pool has one.
    pub(super) fn take_cluster_guest(&mut self, out: &mut Effects) -> Option<Name> {
        let view = self.cluster.as_mut()?;
        let name = loop {
            let name = view.guests.pop_front()?;
            if !self.nicks.contains_key(&name.key()) && !view.remote.contains_key(&name.key()) {
                break name;
            }
        };
        self.refill_guests(out);
        Some(name)
    }

    /// Ask for another block of guest numbers when the pool runs low.
    fn refill_guests(&mut self, out: &mut Effects) {
        let Some(view) = self.cluster.as_mut() else {
            return;
        };
        if view.up && !view.guests_reserving && view.guests.len() + view.guests_claiming < GUEST_LOW
        {
            view.guests_reserving = true;
            let token = view.token();
            out.cluster(ClusterRequest::ReserveGuests {
                count: GUEST_BLOCK,
                token,
            });
        }
    }

    /// A new connection that must wait for a guest name (the link is up, the
    /// pool is empty for now): `true` if it was put in line.
    pub(super) fn wait_for_guest(&mut self, id: ClientId) -> bool {
        match self.cluster.as_mut() {
            Some(view) if view.up => {
                view.awaiting_guest.push_back(id);
                true
            }
            _ => false,
        }
    }

    /// Whether `id` is a connection still waiting for its guest name.
    pub(super) fn is_awaiting_guest(&self, id: ClientId) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|v| v.awaiting_guest.contains(&id))
    }

    /// Everyone still waiting for a name (the server is shutting down).
    pub(super) fn take_waiting(&mut self) -> Vec<ClientId> {
        self.cluster
            .as_mut()
            .map(|v| v.awaiting_guest.drain(..).collect())
            .unwrap_or_default()
    }

    /// `id` went away before it had a name.
    pub(super) fn forget_waiting(&mut self, id: ClientId) {
        if let Some(view) = self.cluster.as_mut() {
            view.awaiting_guest.retain(|&w| w != id);
        }
    }

    /// Whether another server holds the name `key`.
    pub(super) fn held_elsewhere(&self, key: NameKey) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|v| v.remote.contains_key(&key))
    }

    /// The nickname as spelled by its holder, if another server holds it.
    pub(super) fn remote_nick(&self, key: NameKey) -> Option<Name> {
        self.cluster.as_ref()?.remote.get(&key).map(|r| r.nick)
    }

    /// `/nick NEW` in a cluster: claim NEW; the rename happens when granted.
    pub(super) fn claim_nick(&mut self, id: ClientId, old: Name, new: Name, out: &mut Effects) {
        let view = self.cluster.as_mut().expect("a cluster hub");
        let token = view.token();
        view.claims
            .insert(token, ClaimFor::Nick { client: id, old });
        out.cluster(ClusterRequest::Claim { name: new, token });
    }

    fn claimed(&mut self, token: u64, name: Name, granted: bool, out: &mut Effects) {
        let Some(view) = self.cluster.as_mut() else {
            return;
        };
        let Some(claim) = view.claims.remove(&token) else {
            if granted {
                out.cluster(ClusterRequest::Release { name });
            }
            return;
        };
        let up = view.up;
        match claim {
            ClaimFor::Guest => {
                view.guests_claiming -= 1;
                if granted {
                    view.guests.push_back(name);
                }
                // New connections waiting for a name come first: they
                // have none at all.
                loop {
                    let view = self.cluster.as_mut().expect("a cluster hub");
                    if view.guests.is_empty() {
                        break;
                    }
                    let Some(id) = view.awaiting_guest.pop_front() else {
                        break;
                    };
                    match self.take_cluster_guest(out) {
                        Some(nick) => self.welcome(id, nick, out),
                        None => {
                            let view = self.cluster.as_mut().expect("a cluster hub");
                            view.awaiting_guest.push_front(id);
                            break;
                        }
                    }
                }
                while let Some(id) = self.cluster.as_mut().and_then(|v| v.renames_owed.pop()) {
                    if !self.sessions.contains_key(&id) {
                        continue; // gone meanwhile: its name went with it
                    }
                    match self.take_cluster_guest(out) {
                        Some(guest) => self.rename(id, guest, out),
                        None => {
                            let view = self.cluster.as_mut().expect("a cluster hub");
                            view.renames_owed.push(id);
                            break;
                        }
                    }
                }
                self.refill_guests(out);
            }
            ClaimFor::Nick { client, old } => {
                let current = self.sessions.get(&client).map(|s| s.nick);
                let free_here = self.nicks.get(&name.key()).is_none_or(|&c| c == client);
                if granted && current == Some(old) && free_here {
                    self.rename(client, name, out);
                    out.cluster(ClusterRequest::Release { name: old });
                    return;
                }
                if granted {
                    // Its user went away or renamed meanwhile: it no
                    // longer wants the name, and nothing needs saying.
                    out.cluster(ClusterRequest::Release { name });
                    return;
                }
                if current.is_none() {
                    return;
                }
                let b = &mut self.builder;
                if up {
                    b.str("* error: nickname taken: ").str(name.as_str());
                } else {
                    b.str("* error: nickname ").str(name.as_str()).str(
                        " cannot be proven free while the cluster link is down (try again later)",
                    );
                }
                out.send(client, &b.finish());
            }
        }
    }

    /// Tell the other servers `nick` joined the room `key`.
    pub(super) fn publish_join(&mut self, nick: Name, key: NameKey, out: &mut Effects) {
        if self.cluster.is_none() {
            return;
        }
        let room = self.rooms[&key].name;
        out.cluster(ClusterRequest::Publish(Event::Join { nick, room }));
    }

    /// Tell the other servers `nick` left `room`.
    pub(super) fn publish_left(&mut self, nick: Name, room: Name, reason: &str, out: &mut Effects) {
        if self.cluster.is_none() {
            return;
        }
        let reason = bus_reason(reason);
        out.cluster(ClusterRequest::Publish(Event::Leave { nick, room, reason }));
    }

    /// Tell the other servers what `id` said (`/me` when `action`).
    pub(super) fn publish_said(
        &mut self,
        id: ClientId,
        text: &str,
        action: bool,
        out: &mut Effects,
    ) {
        let session = &self.sessions[&id];
        let (nick, room) = (session.nick, self.rooms[&session.room].name);
        let text = Text::sanitized(text);
        let event = if action {
            Event::Action { nick, room, text }
        } else {
            Event::Text { nick, room, text }
        };
        out.cluster(ClusterRequest::Publish(event));
    }

    /// Tell the other servers about a rename.
    pub(super) fn publish_rename(&mut self, old: Name, new: Name, key: NameKey, out: &mut Effects) {
        if self.cluster.is_none() {
            return;
        }
        let room = self.rooms[&key].name;
        out.cluster(ClusterRequest::Publish(Event::Nick { old, new, room }));
    }

    /// A local user is gone: its name is free again.
    pub(super) fn release_name(&mut self, name: Name, out: &mut Effects) {
        if self.cluster.is_some() {
            out.cluster(ClusterRequest::Release { name });
        }
    }

    /// `/msg` to `to`, who is on another server.
    pub(super) fn msg_remote(&mut self, id: ClientId, to: Name, text: &str, out: &mut Effects) {
        if !self.cluster.as_ref().is_some_and(|v| v.up) {
            // Said now, it would be lost without a word.
            let line = self
                .builder
                .str("* error: ")
                .str(to.as_str())
                .str(" is on another server, out of reach while the cluster link is down")
                .finish();
            out.send(id, &line);
            return;
        }
        let from = self.sessions[&id].nick;
        out.cluster(ClusterRequest::Publish(Event::Private {
            from,
            to,
            text: Text::sanitized(text),
        }));
        let echo = self
            .builder
            .str("-> *")
            .str(to.as_str())
            .str("* ")
            .sanitized(text)
            .finish();
        out.send(id, &echo);
    }

    /// The server is shutting down: the other servers hear that all its
    /// users left (one `bye`), and every name it holds is released.
    pub(super) fn cluster_shutdown(&mut self, out: &mut Effects) {
        let Some(view) = self.cluster.as_mut() else {
            return;
        };
        out.cluster(ClusterRequest::Publish(Event::Bye));
        for name in view.guests.drain(..) {
            out.cluster(ClusterRequest::Release { name });
        }
        for id in self.session_ids() {
            let name = self.sessions[&id].nick;
            out.cluster(ClusterRequest::Release { name });
        }
    }

    /// Every local client, in id order: a notice to all of them goes out in
    /// the same order every run (a `HashMap`'s order changes from one run
    /// to the next, and the simulation replays a seed exactly). Rare
    /// events only (the link lost or back, shutdown): it allocates.
    fn session_ids(&self) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// This server's members, in join order (for presence lists and
    /// heartbeats).
    fn local_members(&self) -> Vec<Member> {
        let mut members: Vec<(u64, Member)> = self
            .sessions
            .values()
            .map(|s| {
                let member = Member {
                    nick: s.nick,
                    room: self.rooms[&s.room].name,
                };
                (s.joined, member)
            })
            .collect();
        members.sort_by_key(|(joined, _)| *joined);
        members.into_iter().map(|(_, m)| m).collect()
    }

    fn publish_presence(&mut self, out: &mut Effects) {
        let members = self.local_members();
        for part in bus::presence_parts(&members) {
            out.cluster(ClusterRequest::Publish(part));
        }
    }

    /// Panics if the remote tables disagree with the rooms.
    pub(super) fn check_cluster_invariants(&self) {
        let remote_in_rooms: usize = self.rooms.values().map(|r| r.remote.len()).sum();
        let Some(view) = self.cluster.as_ref() else {
            assert_eq!(remote_in_rooms, 0, "remote members without a cluster");
            return;
        };
        assert_eq!(
            remote_in_rooms,
            view.remote.len(),
            "each remote member in one room"
        );
        for (server, peer) in &view.peers {
            let known = view.remote.values().filter(|r| r.server == *server).count();
            assert_eq!(
                peer.members as usize, known,
                "member count of {server:016x}"
            );
        }
        for (key, r) in &view.remote {
            assert!(
                !self.nicks.contains_key(key),
                "a name held here and elsewhere"
            );
            let room = &self.rooms[&r.room];
            assert!(room.remote.iter().any(|m| m.nick.key() == *key));
        }
    }

    // ----- what other servers do -----------------------------------------

    fn bus(&mut self, message: Message, out: &mut Effects) {
        let Some(view) = self.cluster.as_mut() else {
            return;
        };
        let server = message.server;
        if let Some(at) = view.lost.iter().position(|&s| s == server) {
            // Declared lost, yet alive: it was cut off. Its members left
            // here with (server lost); its list brings them back.
            view.lost.remove(at);
            out.cluster(ClusterRequest::Publish(Event::SyncRequest { to: server }));
        }
        let accepted = match message.event {
            Event::Join { nick, room } => self.remote_join(server, nick, room, out),
            Event::Leave { nick, room, reason } => self.remote_leave(
                server,
                nick.key(),
                Some(room.key()),
                reason_words(&reason),
                out,
            ),
            Event::Text { nick, room, text } => self.remote_said(nick, room, &text, false, out),
            Event::Action { nick, room, text } => self.remote_said(nick, room, &text, true, out),
            Event::Nick { old, new, room: _ } => self.remote_rename(server, old, new, out),
            Event::Private { from, to, text } => {
                if let Some(&id) = self.nicks.get(&to.key()) {
                    let line = self.builder.private(from.as_str(), text.as_str());
                    out.send(id, &line);
                }
                true
            }
            Event::Presence {
                first,
                last,
                members,
            } => self.presence_part(server, first, last, members, out),
            Event::SyncRequest { .. } => {
                self.publish_presence(out);
                true
            }
            Event::Heartbeat { members } => {
                self.check_heartbeat(server, members, out);
                true
            }
            Event::Bye => {
                self.drop_server(server, "", out);
                true
            }
        };
        if !accepted {
            let view = self.cluster.as_mut().expect("a cluster hub");
            view.dropped += 1;
            log::debug!("bus message from {server:016x} contradicts what we know: dropped");
        }
    }

    /// `nick` of `server` joined `room`. False if the name is not theirs.
    fn remote_join(&mut self, server: ServerId, nick: Name, room: Name, out: &mut Effects) -> bool {
        let key = nick.key();
        if self.nicks.contains_key(&key) {
            return false;
        }
        let view = self.cluster.as_ref().expect("a cluster hub");
        if !view.remote.contains_key(&key) && view.remote.len() >= MAX_REMOTE_MEMBERS {
            return false;
        }
        if let Some(known) = view.remote.get(&key) {
            if known.server != server {
                return false;
            }
            if known.room == room.key() {
                return true; // already known there (a repeated join)
            }
            // A join elsewhere without a leave (its leave was lost).
            self.remote_leave(server, key, None, "", out);
        }
        let joined = self.next_join();
        let room_entry = self.rooms.entry(room.key()).or_insert(Room::new(room));
        if !room_entry.members.is_empty() {
            let line = self.builder.joined(nick.as_str(), room_entry.name.as_str());
            out.send_room(&room_entry.members, None, &line);
        }
        room_entry.remote.push(super::RemoteMember {
            joined,
            server,
            nick,
        });
        let view = self.cluster.as_mut().expect("a cluster hub");
        view.peers.entry(server).or_default().members += 1;
        view.remote.insert(
            key,
            RemoteNick {
                server,
                nick,
                room: room.key(),
            },
        );
        true
    }

    /// `server` says it has `members` members. A count that keeps
    /// disagreeing with what we know means we missed something no gap in
    /// its sequence shows (a publish it had to drop, a list cut short):
    /// ask for its list, less and less often while it still disagrees.
    fn check_heartbeat(&mut self, server: ServerId, members: u32, out: &mut Effects) {
        let view = self.cluster.as_mut().expect("a cluster hub");
        if view.partial.contains_key(&server) {
            return; // its list is on its way
        }
        let peer = view.peers.entry(server).or_default();
        if peer.members == members {
            peer.disagreements = 0;
            peer.patience = 2;
            return;
        }
        peer.disagreements += 1;
        if peer.disagreements >= peer.patience {
            peer.disagreements = 0;
            peer.patience = (peer.patience * 2).min(MAX_PATIENCE);
            log::debug!(
                "server {server:016x} says {members} members, we know {}: asking its list",
                peer.members
            );
            out.cluster(ClusterRequest::Publish(Event::SyncRequest { to: server }));
        }
    }

    /// `key` of `server` left its room (`room`, if the message names one,
    /// must be it). False if that member is not theirs.
    fn remote_leave(
        &mut self,
        server: ServerId,
        key: NameKey,
        room: Option<NameKey>,
        reason: &str,
        out: &mut Effects,
    ) -> bool {
        let view = self.cluster.as_mut().expect("a cluster hub");
        match view.remote.get(&key) {
            Some(known) if known.server == server && room.is_none_or(|r| r == known.room) => {}
            _ => return false,
        }
        let known = view.remote.remove(&key).expect("just seen");
        if let Some(peer) = view.peers.get_mut(&server) {
            peer.members = peer.members.saturating_sub(1);
        }
        let room = self
            .rooms
            .get_mut(&known.room)
            .expect("a remote member's room");
        room.remote.retain(|m| m.nick.key() != key);
        if !room.members.is_empty() {
            let line = self
                .builder
                .left(known.nick.as_str(), room.name.as_str(), reason);
            out.send_room(&room.members, None, &line);
        }
        if room.is_empty() && known.room != self.lobby {
            self.rooms.remove(&known.room);
        }
        true
    }

    /// A line from `nick` (on another server) to `room`.
    fn remote_said(
        &mut self,
        nick: Name,
        room: Name,
        text: &Text,
        action: bool,
        out: &mut Effects,
    ) -> bool {
        if self.nicks.contains_key(&nick.key()) {
            return false;
        }
        let Some(room) = self.rooms.get(&room.key()) else {
            return true; // nobody here to tell
        };
        if room.members.is_empty() {
            return true;
        }
        let b = &mut self.builder;
        if action {
            b.str("* ").str(nick.as_str()).str(" ");
        } else {
            b.str("<").str(nick.as_str()).str("> ");
        }
        // Checked on decoding: no control characters.
        let line = b.str(text.as_str()).finish();
        out.send_room(&room.members, None, &line);
        true
    }

    /// `old` of `server` is now `new`.
    fn remote_rename(&mut self, server: ServerId, old: Name, new: Name, out: &mut Effects) -> bool {
        if self.nicks.contains_key(&new.key()) {
            return false;
        }
        let view = self.cluster.as_mut().expect("a cluster hub");
        match view.remote.get(&old.key()) {
            Some(known) if known.server == server => {}
            _ => return false,
        }
        if new.key() != old.key() && view.remote.contains_key(&new.key()) {
            return false;
        }
        let mut known = view.remote.remove(&old.key()).expect("just seen");
        known.nick = new;
        view.remote.insert(new.key(), known);
        let room = self
            .rooms
            .get_mut(&known.room)
            .expect("a remote member's room");
        if let Some(m) = room.remote.iter_mut().find(|m| m.nick.key() == old.key()) {
            m.nick = new;
        }
        if !room.members.is_empty() {
            let line = self.builder.renamed(old.as_str(), new.as_str());
            out.send_room(&room.members, None, &line);
        }
        true
    }

    /// Every member of `server` leaves (with `reason`), and their names are
    /// freed for good measure (a server that said goodbye freed them itself).
    fn drop_server(&mut self, server: ServerId, reason: &str, out: &mut Effects) {
        let Some(view) = self.cluster.as_mut() else {
            return;
        };
        view.partial.remove(&server);
        let mut gone: Vec<(u64, NameKey, Name)> = Vec::new();
        for (key, r) in &view.remote {
            if r.server == server {
                let joined = self.rooms[&r.room]
                    .remote
                    .iter()
                    .find(|m| m.nick.key() == *key)
                    .map_or(0, |m| m.joined);
                gone.push((joined, *key, r.nick));
            }
        }
        gone.sort_by_key(|(joined, _, _)| *joined);
        for (_, key, nick) in gone {
            self.remote_leave(server, key, None, reason, out);
            out.cluster(ClusterRequest::ReleaseFor { server, name: nick });
        }
        if let Some(view) = self.cluster.as_mut() {
            view.peers.remove(&server);
        }
    }

    /// One part of `server`'s member list; the last part replaces what we
    /// knew of it, announcing only the differences.
    fn presence_part(
        &mut self,
        server: ServerId,
        first: bool,
        last: bool,
        members: Vec<Member>,
        out: &mut Effects,
    ) -> bool {
        let view = self.cluster.as_mut().expect("a cluster hub");
        if first {
            view.partial.insert(server, Vec::new());
        }
        let receiving: usize = view.partial.values().map(Vec::len).sum();
        let Some(list) = view.partial.get_mut(&server) else {
            return false; // a part without its start (the first was lost)
        };
        if receiving + members.len() > MAX_PRESENCE {
            view.partial.remove(&server);
            return false;
        }
        list.extend(members);
        if !last {
            return true;
        }
        let list = view.partial.remove(&server).expect("just used");
        self.apply_presence(server, list, out);
        true
    }

    fn apply_presence(&mut self, server: ServerId, list: Vec<Member>, out: &mut Effects) {
        let view = self.cluster.as_ref().expect("a cluster hub");
        let wanted: HashMap<NameKey, Member> = list.iter().map(|m| (m.nick.key(), *m)).collect();
        // Members we knew and who are gone (or elsewhere) now.
        let stale: Vec<NameKey> = view
            .remote
            .iter()
            .filter(|(key, r)| {
                r.server == server
                    && wanted
                        .get(key)
                        .is_none_or(|m| m.room.key() != r.room || m.nick != r.nick)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in stale {
            let view = self.cluster.as_ref().expect("a cluster hub");
            let known = view.remote[&key];
            match wanted.get(&key) {
                Some(m) if m.room.key() == known.room => {
                    self.remote_rename(server, known.nick, m.nick, out);
                }
                _ => {
                    self.remote_leave(server, key, None, "", out);
                }
            }
        }
        for member in list {
            let view = self.cluster.as_mut().expect("a cluster hub");
            if view
                .remote
                .get(&member.nick.key())
                .is_some_and(|r| r.server == server)
            {
                continue; // known, unchanged
            }
            if !self.remote_join(server, member.nick, member.room, out) {
                let view = self.cluster.as_mut().expect("a cluster hub");
                view.dropped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::chat::{ChatLimits, Effect};
    use proptest::prelude::*;

    const OTHER: ServerId = 0xb;

    /// A cluster hub whose link is up and whose guest pool is full, and
    /// what it emitted since the last look.
    struct Rig {
        hub: Hub,
        sent: Vec<(ClientId, String)>,
        requests: Vec<ClusterRequest>,
    }

    fn name(s: &str) -> Name {
        Name::parse(s.as_bytes()).unwrap()
    }

    impl Rig {
        fn new() -> Rig {
            let mut rig = Rig {
                hub: Hub::with_cluster(ChatLimits { max_line: 100 }),
                sent: Vec::new(),
                requests: Vec::new(),
            };
            rig.hub.handle_link_up(false);
            rig.take();
            let token = rig
                .reserve_token()
                .expect("a guest block is reserved when the link comes up");
            rig.hub.handle_guests(token, Some(1..=16));
            rig.take();
            rig.grant_claims(true);
            assert!(rig.hub.cluster_ready());
            rig
        }

        /// The token of the guest block asked for last, if any.
        fn reserve_token(&self) -> Option<u64> {
            self.requests.iter().find_map(|r| match r {
                ClusterRequest::ReserveGuests { token, .. } => Some(*token),
                _ => None,
            })
        }

        fn take(&mut self) {
            self.sent.clear();
            self.requests.clear();
            while let Some(effect) = self.hub.poll_effect() {
                match effect {
                    Effect::Send { to, line } => {
                        let text = String::from_utf8_lossy(&line).trim_end().to_string();
                        self.sent.extend(to.iter().map(|id| (id, text.clone())));
                    }
                    Effect::Close { .. } => {}
                    Effect::Cluster(request) => self.requests.push(request),
                }
            }
            self.hub.check_invariants();
        }

        /// Answer every claim emitted last.
        fn grant_claims(&mut self, granted: bool) {
            let claims: Vec<(u64, Name)> = self
                .requests
                .iter()
                .filter_map(|r| match r {
                    ClusterRequest::Claim { name, token } => Some((*token, *name)),
                    _ => None,
                })
                .collect();
            for (token, name) in claims {
                self.hub.handle_claimed(token, name, granted);
            }
            self.take();
        }

        fn bus(&mut self, seq: u64, event: Event) {
            self.hub.handle_bus(Message {
                server: OTHER,
                seq,
                event,
            });
            self.take();
        }

        fn lines_to(&self, id: ClientId) -> Vec<&str> {
            self.sent
                .iter()
                .filter(|(to, _)| *to == id)
                .map(|(_, l)| l.as_str())
                .collect()
        }
    }

    fn join(nick: &str, room: &str) -> Event {
        Event::Join {
            nick: name(nick),
            room: name(room),
        }
    }

    #[test]
    fn remote_members_are_listed_counted_and_announced() {
        let mut rig = Rig::new();
        let me = ClientId(1);
        rig.hub.handle_connect(me);
        rig.take();
        rig.bus(1, join("ann", "lobby"));
        assert_eq!(rig.lines_to(me), ["* ann joined #lobby"]);
        rig.bus(2, join("bob", "rust"));
        assert!(rig.sent.is_empty(), "#rust has nobody here");
        rig.hub.handle_input(me, b"/who\n/rooms\n");
        rig.take();
        assert_eq!(
            rig.lines_to(me),
            [
                "* users in #lobby: guest1, ann",
                "* rooms: #lobby (2), #rust (1)"
            ]
        );
        rig.hub.handle_input(me, b"/nick ANN\n");
        rig.take();
        assert_eq!(rig.lines_to(me), ["* error: nickname taken: ANN"]);
        assert!(rig.requests.is_empty(), "no claim for a name known taken");
    }

    #[test]
    fn contradicting_messages_are_dropped_and_counted() {
        let mut rig = Rig::new();
        rig.hub.handle_connect(ClientId(1));
        rig.take();
        rig.bus(1, join("guest1", "lobby")); // our own user's name
        rig.bus(
            2,
            Event::Leave {
                nick: name("nobody"),
                room: name("lobby"),
                reason: Reason::Plain,
            },
        );
        rig.bus(
            3,
            Event::Presence {
                first: false,
                last: true,
                members: Vec::new(),
            },
        );
        assert_eq!(rig.hub.bus_dropped(), 3);
        assert!(rig.sent.is_empty());
    }

    #[test]
    fn a_presence_list_announces_only_what_changed() {
        let mut rig = Rig::new();
        let me = ClientId(1);
        rig.hub.handle_connect(me);
        rig.take();
        rig.bus(1, join("ann", "lobby"));
        rig.bus(2, join("bob", "lobby"));
        let member = |nick: &str| Member {
            nick: name(nick),
            room: name("lobby"),
        };
        rig.bus(
            3,
            Event::Presence {
                first: true,
                last: true,
                members: vec![member("ann"), member("cy")],
            },
        );
        assert_eq!(
            rig.lines_to(me),
            ["* bob left #lobby", "* cy joined #lobby"]
        );
    }

    #[test]
    fn a_lost_server_takes_its_members_and_frees_their_names() {
        let mut rig = Rig::new();
        let me = ClientId(1);
        rig.hub.handle_connect(me);
        rig.take();
        rig.bus(1, join("ann", "lobby"));
        rig.hub.handle_server_lost(OTHER);
        rig.take();
        assert_eq!(rig.lines_to(me), ["* ann left #lobby (server lost)"]);
        assert_eq!(
            rig.requests,
            [ClusterRequest::ReleaseFor {
                server: OTHER,
                name: name("ann")
            }]
        );
        // Heard from again: it is asked for its list.
        rig.bus(2, Event::Heartbeat { members: 1 });
        assert_eq!(
            rig.requests,
            [ClusterRequest::Publish(Event::SyncRequest { to: OTHER })]
        );
    }

    #[test]
    fn a_heartbeat_that_keeps_disagreeing_asks_for_the_list() {
        let mut rig = Rig::new();
        rig.bus(1, join("ann", "lobby"));
        let ask = [ClusterRequest::Publish(Event::SyncRequest { to: OTHER })];
        rig.bus(2, Event::Heartbeat { members: 1 });
        rig.bus(3, Event::Heartbeat { members: 2 });
        assert!(rig.requests.is_empty(), "one disagreement may be a race");
        rig.bus(4, Event::Heartbeat { members: 2 });
        assert_eq!(rig.requests, ask);
        // Still disagreeing: asked again, but only after twice as long.
        for seq in 5..8 {
            rig.bus(seq, Event::Heartbeat { members: 2 });
            assert!(rig.requests.is_empty());
        }
        rig.bus(8, Event::Heartbeat { members: 2 });
        assert_eq!(rig.requests, ask);
    }

    #[test]
    fn a_rename_waits_for_its_claim() {
        let mut rig = Rig::new();
        let me = ClientId(1);
        rig.hub.handle_connect(me);
        rig.take();
        rig.hub.handle_input(me, b"/nick zed\n");
        rig.take();
        assert!(rig.sent.is_empty(), "nothing until Redis answers");
        rig.grant_claims(false);
        assert_eq!(rig.lines_to(me), ["* error: nickname taken: zed"]);
        rig.hub.handle_input(me, b"/nick zed\n");
        rig.take();
        rig.grant_claims(true);
        assert_eq!(rig.lines_to(me), ["* guest1 is now known as zed"]);
        assert!(rig.requests.contains(&ClusterRequest::Release {
            name: name("guest1")
        }));
        // A change of case keeps the lease: no claim.
        rig.hub.handle_input(me, b"/nick Zed\n");
        rig.take();
        assert_eq!(rig.lines_to(me), ["* zed is now known as Zed"]);
        assert!(!rig
            .requests
            .iter()
            .any(|r| matches!(r, ClusterRequest::Claim { .. })));
    }

    #[test]
    fn link_notices_and_no_name_without_proof() {
        let mut rig = Rig::new();
        let me = ClientId(1);
        rig.hub.handle_connect(me);
        rig.take();
        rig.hub.handle_link_down(true);
        rig.take();
        assert_eq!(
            rig.lines_to(me),
            ["* cluster link lost; until it is back, only users on this server hear you"]
        );
        // The pool still serves 15 more; then new connections are refused.
        for i in 2..=16 {
            rig.hub.handle_connect(ClientId(i));
        }
        rig.take();
        rig.hub.handle_connect(ClientId(99));
        rig.take();
        assert_eq!(rig.lines_to(ClientId(99)), [NO_GUEST_NAME]);
        rig.bus(1, join("ann", "lobby"));
        rig.hub.handle_input(me, b"/msg ann hi\n");
        rig.take();
        assert_eq!(
            rig.lines_to(me),
            ["* error: ann is on another server, out of reach while the cluster link is down"]
        );
        rig.hub.handle_link_up(true);
        rig.take();
        assert_eq!(rig.lines_to(me), ["* cluster link restored"]);
    }

    #[test]
    fn a_lost_lease_renames_its_user_as_soon_as_a_guest_name_is_proven() {
        let mut rig = Rig::new();
        for i in 1..=16 {
            rig.hub.handle_connect(ClientId(i));
        }
        rig.take();
        let reserve = rig.reserve_token().expect("the pool ran low");
        rig.hub.handle_lease_lost(name("guest1"));
        rig.take();
        assert!(rig.sent.is_empty(), "no proven name to give yet");
        rig.hub.handle_guests(reserve, Some(17..=32));
        rig.take();
        rig.grant_claims(true);
        assert_eq!(
            rig.lines_to(ClientId(2)),
            ["* guest1 is now known as guest17"]
        );
    }

    proptest! {
        /// Whatever other servers say, in any order, the hub neither panics
        /// nor lets its tables disagree, and a local user keeps its name.
        #[test]
        fn any_bus_messages_keep_the_hub_consistent(
            events in proptest::collection::vec(bus::strategy::event(), 0..40),
        ) {
            let mut rig = Rig::new();
            rig.hub.handle_connect(ClientId(1));
            rig.take();
            for (i, event) in events.into_iter().enumerate() {
                rig.bus(i as u64 + 1, event);
            }
            rig.hub.handle_server_lost(OTHER);
            rig.take();
            prop_assert_eq!(rig.hub.nick_of(ClientId(1)), Some("guest1"));
            rig.hub.handle_input(ClientId(1), b"/who\n");
            rig.take();
            prop_assert_eq!(rig.lines_to(ClientId(1)), ["* users in #lobby: guest1"]);
        }
    }
}
