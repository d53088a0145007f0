//! The bus message format: what one sockloop server publishes for the
//! others on the shared Redis channel, and how it reads theirs.
//!
//! A message is a small binary record, versioned by its first byte:
//!
//! ```text
//! version u8 (= 1) | kind u8 | server u64 | seq u64 | fields of the kind
//! ```
//!
//! Integers are big-endian. A name is `len u8` (1 to 32) then its bytes,
//! checked against the nickname and room-name rule. Text is `len u32` (at
//! most [`MAX_TEXT`]) then UTF-8 without control characters (TAB allowed).
//! Every field's length is known from the bytes before it, so a message is
//! self-delimiting; one Redis message carries exactly one bus message, and
//! bytes left over are an error. `seq` counts the messages of one server
//! from 1, so a receiver sees a sender's order and any loss.
//!
//! Messages come from other processes: [`decode`] takes any bytes and
//! answers with a [`Message`] or a [`DecodeError`], never a panic. A message
//! of an unknown version is its own error ([`DecodeError::UnknownVersion`])
//! so the receiver can drop and count it apart from garbage: a newer server
//! in a mixed cluster is not a broken one. The encoding is canonical: a
//! message decodes only from the bytes [`encode`] makes of it.

use std::fmt;

use crate::protocol::chat::name::Name;
use crate::protocol::chat::text::{is_replaced_control, push_sanitized};

/// The format version this code writes and reads.
pub const VERSION: u8 = 1;

/// The longest text (a line, a `/me`, a `/msg`, a quit reason) a message
/// carries, in bytes. Longer text (only possible when a server's
/// `--max-line` is raised past it) is cut at a character boundary.
pub const MAX_TEXT: usize = 1 << 20;

/// The most members one [`Event::Presence`] part lists; a bigger snapshot
/// is sent in several parts ([`presence_parts`]).
pub const MAX_PRESENCE_MEMBERS: usize = 1024;

/// An upper bound on the encoded size of any message.
pub const MAX_MESSAGE: usize = HEADER_LEN + 4 + MAX_TEXT + 3 * (1 + 32) + 1;

const HEADER_LEN: usize = 1 + 1 + 8 + 8;

/// A server's identity on the bus, chosen at random when it starts
/// (never 0: see [`EVERY_SERVER`]).
pub type ServerId = u64;

/// The `to` of a [`Event::SyncRequest`] meant for every server.
pub const EVERY_SERVER: ServerId = 0;

/// One bus message: who sent it, its place in that sender's sequence, and
/// what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sending server.
    pub server: ServerId,
    /// 1 for the sender's first message, then one more for each.
    pub seq: u64,
    /// What happened.
    pub event: Event,
}

/// A member of a room on some server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its nickname.
    pub nick: Name,
    /// Its room, without the `#`.
    pub room: Name,
}

/// Why a member left its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No reason shown: it disconnected, or its server shut down.
    Plain,
    /// `/quit REASON` (a `/quit` without one is [`Reason::Plain`]).
    Quit(Text),
    /// Closed for passing its output limit: `(too slow)`.
    TooSlow,
    /// Closed after its idle timeout: `(idle timeout)`.
    IdleTimeout,
    /// Its server went silent: `(server lost)`.
    ServerLost,
}

/// Everything one server tells the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `nick` joined `room` (connected, or `/join`ed).
    Join {
        /// Who.
        nick: Name,
        /// Where.
        room: Name,
    },
    /// `nick` left `room` (disconnected, closed, or `/join`ed elsewhere).
    Leave {
        /// Who.
        nick: Name,
        /// Where from.
        room: Name,
        /// Why.
        reason: Reason,
    },
    /// A plain line from `nick` to `room`.
    Text {
        /// The sender.
        nick: Name,
        /// The sender's room.
        room: Name,
        /// The line.
        text: Text,
    },
    /// `/me ACTION` from `nick` in `room`.
    Action {
        /// The sender.
        nick: Name,
        /// The sender's room.
        room: Name,
        /// The action.
        text: Text,
    },
    /// `old` is now known as `new`, in `room`.
    Nick {
        /// The previous nickname.
        old: Name,
        /// The new one.
        new: Name,
        /// The room that is told.
        room: Name,
    },
    /// `/msg TO TEXT` from `from`, for whichever server holds `to`.
    Private {
        /// The sender.
        from: Name,
        /// The recipient.
        to: Name,
        /// The message.
        text: Text,
    },
    /// Part of the sender's member list, in the order its members joined:
    /// sent when its link comes up and when another server asks. A list in
    /// several parts runs from the part with `first` to the one with `last`.
    Presence {
        /// This part starts a new list.
        first: bool,
        /// This part ends it.
        last: bool,
        /// At most [`MAX_PRESENCE_MEMBERS`] members.
        members: Vec<Member>,
    },
    /// "Send me your member list": to server `to`, or to every server
    /// ([`EVERY_SERVER`]) when the sender's link has just come up. A
    /// receiver that saw a gap in one server's sequence asks that one only.
    SyncRequest {
        /// The server asked, or [`EVERY_SERVER`].
        to: ServerId,
    },
    /// "I am alive, with this many members."
    Heartbeat {
        /// How many members the sender has.
        members: u32,
    },
    /// The sender is shutting down: all its members left (plainly).
    Bye,
}

/// Text that may cross the bus: valid UTF-8, at most [`MAX_TEXT`] bytes,
/// no control character but TAB.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Text(String);

impl Text {
    /// `text` as it is, if it follows the rule.
    pub fn new(text: &str) -> Option<Text> {
        (text.len() <= MAX_TEXT && !text.chars().any(is_replaced_control))
            .then(|| Text(text.to_owned()))
    }

    /// `text` with its control characters replaced by U+FFFD (as every
    /// relayed line is), cut to [`MAX_TEXT`] bytes at a character boundary.
    pub fn sanitized(text: &str) -> Text {
        let mut out = Vec::with_capacity(text.len());
        push_sanitized(&mut out, text);
        let mut end = out.len().min(MAX_TEXT);
        // Cut on a character boundary: back off over continuation bytes.
        while end < out.len() && (out[end] & 0xc0) == 0x80 {
            end -= 1;
        }
        out.truncate(end);
        Text(String::from_utf8(out).expect("sanitizing keeps UTF-8 valid"))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Why bytes from the bus are not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Written by a version of sockloop this one does not speak.
    UnknownVersion(u8),
    /// A kind this version does not define.
    UnknownKind(u8),
    /// The bytes end inside a field.
    Truncated,
    /// Bytes follow the last field.
    TrailingBytes,
    /// A nickname or room name that breaks the name rule.
    BadName,
    /// Text that is not UTF-8, too long, or holds a control character.
    BadText,
    /// A reason code this version does not define.
    BadReason(u8),
    /// A presence flags byte other than 0 to 3.
    BadFlags(u8),
    /// More presence members than [`MAX_PRESENCE_MEMBERS`].
    TooManyMembers,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownVersion(v) => write!(f, "unknown bus version {v}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown bus message kind {k}"),
            DecodeError::Truncated => write!(f, "bus message cut short"),
            DecodeError::TrailingBytes => write!(f, "bytes after the bus message"),
            DecodeError::BadName => write!(f, "invalid name in bus message"),
            DecodeError::BadText => write!(f, "invalid text in bus message"),
            DecodeError::BadReason(r) => write!(f, "unknown leave reason {r}"),
            DecodeError::BadFlags(b) => write!(f, "invalid presence flags {b}"),
            DecodeError::TooManyMembers => write!(f, "too many members in one presence part"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A presence list with more than [`MAX_PRESENCE_MEMBERS`] members in one
/// part: split it with [`presence_parts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyMembers;

// Kind bytes. Never renumber one: add new kinds at the end.
const JOIN: u8 = 1;
const LEAVE: u8 = 2;
const TEXT: u8 = 3;
const ACTION: u8 = 4;
const NICK: u8 = 5;
const PRIVATE: u8 = 6;
const PRESENCE: u8 = 7;
const SYNC_REQUEST: u8 = 8;
const HEARTBEAT: u8 = 9;
const BYE: u8 = 10;

// Reason codes.
const PLAIN: u8 = 0;
const QUIT: u8 = 1;
const TOO_SLOW: u8 = 2;
const IDLE_TIMEOUT: u8 = 3;
const SERVER_LOST: u8 = 4;

/// Append `msg` to `out`. Fails only for a presence part holding more than
/// [`MAX_PRESENCE_MEMBERS`] (then nothing is appended).
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<(), TooManyMembers> {
    if let Event::Presence { members, .. } = &msg.event {
        if members.len() > MAX_PRESENCE_MEMBERS {
            return Err(TooManyMembers);
        }
    }
    out.push(VERSION);
    out.push(kind(&msg.event));
    out.extend_from_slice(&msg.server.to_be_bytes());
    out.extend_from_slice(&msg.seq.to_be_bytes());
    match &msg.event {
        Event::Join { nick, room } => {
            put_name(out, nick);
            put_name(out, room);
        }
        Event::Leave { nick, room, reason } => {
            put_name(out, nick);
            put_name(out, room);
            match reason {
                Reason::Plain => out.push(PLAIN),
                Reason::Quit(text) => {
                    out.push(QUIT);
                    put_text(out, text);
                }
                Reason::TooSlow => out.push(TOO_SLOW),
                Reason::IdleTimeout => out.push(IDLE_TIMEOUT),
                Reason::ServerLost => out.push(SERVER_LOST),
            }
        }
        Event::Text { nick, room, text } | Event::Action { nick, room, text } => {
            put_name(out, nick);
            put_name(out, room);
            put_text(out, text);
        }
        Event::Nick { old, new, room } => {
            put_name(out, old);
            put_name(out, new);
            put_name(out, room);
        }
        Event::Private { from, to, text } => {
            put_name(out, from);
            put_name(out, to);
            put_text(out, text);
        }
        Event::Presence {
            first,
            last,
            members,
        } => {
            out.push(u8::from(*first) | u8::from(*last) << 1);
            out.extend_from_slice(&(members.len() as u16).to_be_bytes());
            for m in members {
                put_name(out, &m.nick);
                put_name(out, &m.room);
            }
        }
        Event::SyncRequest { to } => out.extend_from_slice(&to.to_be_bytes()),
        Event::Bye => {}
        Event::Heartbeat { members } => out.extend_from_slice(&members.to_be_bytes()),
    }
    Ok(())
}

/// `members` as a sequence of presence parts (one empty part for an empty
/// list, so "I have no members" is said too).
pub fn presence_parts(members: &[Member]) -> impl Iterator<Item = Event> + '_ {
    let parts = members.len().div_ceil(MAX_PRESENCE_MEMBERS).max(1);
    (0..parts).map(move |i| {
        let start = i * MAX_PRESENCE_MEMBERS;
        let end = (start + MAX_PRESENCE_MEMBERS).min(members.len());
        Event::Presence {
            first: i == 0,
            last: i + 1 == parts,
            members: members[start..end].to_vec(),
        }
    })
}

fn kind(event: &Event) -> u8 {
    match event {
        Event::Join { .. } => JOIN,
        Event::Leave { .. } => LEAVE,
        Event::Text { .. } => TEXT,
        Event::Action { .. } => ACTION,
        Event::Nick { .. } => NICK,
        Event::Private { .. } => PRIVATE,
        Event::Presence { .. } => PRESENCE,
        Event::SyncRequest { .. } => SYNC_REQUEST,
        Event::Heartbeat { .. } => HEARTBEAT,
        Event::Bye => BYE,
    }
}

fn put_name(out: &mut Vec<u8>, name: &Name) {
    out.push(name.as_bytes().len() as u8);
    out.extend_from_slice(name.as_bytes());
}

fn put_text(out: &mut Vec<u8>, text: &Text) {
    out.extend_from_slice(&(text.0.len() as u32).to_be_bytes());
    out.extend_from_slice(text.0.as_bytes());
}

/// Read one message from exactly `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { rest: bytes };
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let kind = r.u8()?;
    let server = r.u64()?;
    let seq = r.u64()?;
    let event = match kind {
        JOIN => Event::Join {
            nick: r.name()?,
            room: r.name()?,
        },
        LEAVE => Event::Leave {
            nick: r.name()?,
            room: r.name()?,
            reason: match r.u8()? {
                PLAIN => Reason::Plain,
                QUIT => Reason::Quit(r.text()?),
                TOO_SLOW => Reason::TooSlow,
                IDLE_TIMEOUT => Reason::IdleTimeout,
                SERVER_LOST => Reason::ServerLost,
                other => return Err(DecodeError::BadReason(other)),
            },
        },
        TEXT => Event::Text {
            nick: r.name()?,
            room: r.name()?,
            text: r.text()?,
        },
        ACTION => Event::Action {
            nick: r.name()?,
            room: r.name()?,
            text: r.text()?,
        },
        NICK => Event::Nick {
            old: r.name()?,
            new: r.name()?,
            room: r.name()?,
        },
        PRIVATE => Event::Private {
            from: r.name()?,
            to: r.name()?,
            text: r.text()?,
        },
        PRESENCE => {
            let flags = r.u8()?;
            if flags > 3 {
                return Err(DecodeError::BadFlags(flags));
            }
            let count = usize::from(r.u16()?);
            if count > MAX_PRESENCE_MEMBERS {
                return Err(DecodeError::TooManyMembers);
            }
            // Each member takes at least 4 bytes: never reserve more than
            // the input could hold.
            let mut members = Vec::with_capacity(count.min(r.rest.len() / 4));
            for _ in 0..count {
                members.push(Member {
                    nick: r.name()?,
                    room: r.name()?,
                });
            }
            Event::Presence {
                first: flags & 1 != 0,
                last: flags & 2 != 0,
                members,
            }
        }
        SYNC_REQUEST => Event::SyncRequest { to: r.u64()? },
        HEARTBEAT => Event::Heartbeat { members: r.u32()? },
        BYE => Event::Bye,
        other => return Err(DecodeError::UnknownKind(other)),
    };
    if !r.rest.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(Message { server, seq, event })
}

/// The header of a message, read without decoding the rest: enough to track
/// a sender's sequence even when its payload is of a newer kind.
pub fn peek_header(bytes: &[u8]) -> Option<(ServerId, u64)> {
    if bytes.len() < HEADER_LEN || bytes[0] != VERSION {
        return None;
    }
    let server = u64::from_be_bytes(bytes[2..10].try_into().ok()?);
    let seq = u64::from_be_bytes(bytes[10..18].try_into().ok()?);
    Some((server, seq))
}

/// A cursor over untrusted bytes: every read checks the length first.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn name(&mut self) -> Result<Name, DecodeError> {
        let len = usize::from(self.u8()?);
        Name::parse(self.take(len)?).ok_or(DecodeError::BadName)
    }

    fn text(&mut self) -> Result<Text, DecodeError> {
        let len = self.u32()? as usize;
        if len > MAX_TEXT {
            return Err(DecodeError::BadText);
        }
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::BadText)?;
        Text::new(text).ok_or(DecodeError::BadText)
    }
}

/// Proptest strategies for bus messages, shared by the unit tests here and
/// the link's tests.
#[cfg(test)]
pub(crate) mod strategy {
    use super::*;
    use proptest::prelude::*;

    pub fn name() -> impl Strategy<Value = Name> {
        "[A-Za-z0-9_-]{1,32}".prop_map(|s| Name::parse(s.as_bytes()).unwrap())
    }

    pub fn text() -> impl Strategy<Value = Text> {
        any::<String>().prop_map(|s| Text::sanitized(&s))
    }

    fn member() -> impl Strategy<Value = Member> {
        (name(), name()).prop_map(|(nick, room)| Member { nick, room })
    }

    fn reason() -> impl Strategy<Value = Reason> {
        prop_oneof![
            Just(Reason::Plain),
            text().prop_map(Reason::Quit),
            Just(Reason::TooSlow),
            Just(Reason::IdleTimeout),
            Just(Reason::ServerLost),
        ]
    }

    pub fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (name(), name()).prop_map(|(nick, room)| Event::Join { nick, room }),
            (name(), name(), reason()).prop_map(|(nick, room, reason)| Event::Leave {
                nick,
                room,
                reason
            }),
            (name(), name(), text()).prop_map(|(nick, room, text)| Event::Text {
                nick,
                room,
                text
            }),
            (name(), name(), text()).prop_map(|(nick, room, text)| Event::Action {
                nick,
                room,
                text
            }),
            (name(), name(), name()).prop_map(|(old, new, room)| Event::Nick { old, new, room }),
            (name(), name(), text()).prop_map(|(from, to, text)| Event::Private { from, to, text }),
            (
                any::<bool>(),
                any::<bool>(),
                proptest::collection::vec(member(), 0..20)
            )
                .prop_map(|(first, last, members)| Event::Presence {
                    first,
                    last,
                    members
                }),
            any::<u64>().prop_map(|to| Event::SyncRequest { to }),
            any::<u32>().prop_map(|members| Event::Heartbeat { members }),
            Just(Event::Bye),
        ]
    }

    pub fn message() -> impl Strategy<Value = Message> {
        (any::<u64>(), any::<u64>(), event()).prop_map(|(server, seq, event)| Message {
            server,
            seq,
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> Name {
        Name::parse(s.as_bytes()).unwrap()
    }

    fn bytes_of(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        encode(msg, &mut out).unwrap();
        out
    }

    #[test]
    fn a_join_is_laid_out_field_by_field() {
        let msg = Message {
            server: 0x0102030405060708,
            seq: 9,
            event: Event::Join {
                nick: name("ann"),
                room: name("lobby"),
            },
        };
        let mut expected = vec![1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 9];
        expected.extend_from_slice(b"\x03ann\x05lobby");
        assert_eq!(bytes_of(&msg), expected);
        assert_eq!(decode(&expected), Ok(msg));
        assert_eq!(peek_header(&expected), Some((0x0102030405060708, 9)));
    }

    #[test]
    fn unknown_versions_and_kinds_are_their_own_errors() {
        let mut msg = bytes_of(&Message {
            server: 1,
            seq: 1,
            event: Event::Bye,
        });
        msg[0] = 2;
        assert_eq!(decode(&msg), Err(DecodeError::UnknownVersion(2)));
        msg[0] = VERSION;
        msg[1] = 200;
        assert_eq!(decode(&msg), Err(DecodeError::UnknownKind(200)));
    }

    #[test]
    fn names_and_text_from_the_bus_are_checked() {
        let good = bytes_of(&Message {
            server: 1,
            seq: 1,
            event: Event::Text {
                nick: name("a"),
                room: name("r"),
                text: Text::new("hi").unwrap(),
            },
        });
        let mut bad_name = good.clone();
        bad_name[19] = b' '; // the nick's one byte
        assert_eq!(decode(&bad_name), Err(DecodeError::BadName));
        let mut control = good.clone();
        *control.last_mut().unwrap() = 0x1b; // ESC in the text
        assert_eq!(decode(&control), Err(DecodeError::BadText));
        let mut not_utf8 = good.clone();
        *not_utf8.last_mut().unwrap() = 0xff;
        assert_eq!(decode(&not_utf8), Err(DecodeError::BadText));
        let mut long = good.clone();
        long.push(b'!');
        assert_eq!(decode(&long), Err(DecodeError::TrailingBytes));
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn sanitized_text_replaces_controls_and_is_cut_on_a_char_boundary() {
        assert_eq!(Text::sanitized("a\u{1b}b\tc").as_str(), "a\u{fffd}b\tc");
        assert!(Text::new("a\u{7}").is_none());
        let long = "é".repeat(MAX_TEXT); // 2 bytes each
        let cut = Text::sanitized(&long);
        assert_eq!(cut.as_str().len(), MAX_TEXT);
        let odd = format!("x{long}");
        assert_eq!(Text::sanitized(&odd).as_str().len(), MAX_TEXT - 1);
    }

    #[test]
    fn presence_is_split_into_bounded_parts() {
        let m = Member {
            nick: name("n"),
            room: name("r"),
        };
        let members = vec![m; 2 * MAX_PRESENCE_MEMBERS + 1];
        let parts: Vec<Event> = presence_parts(&members).collect();
        assert_eq!(parts.len(), 3);
        let flags: Vec<(bool, bool, usize)> = parts
            .iter()
            .map(|p| match p {
                Event::Presence {
                    first,
                    last,
                    members,
                } => (*first, *last, members.len()),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            flags,
            [(true, false, 1024), (false, false, 1024), (false, true, 1)]
        );
        assert_eq!(
            presence_parts(&[]).collect::<Vec<_>>(),
            [Event::Presence {
                first: true,
                last: true,
                members: vec![]
            }]
        );
        let too_many = Message {
            server: 1,
            seq: 1,
            event: Event::Presence {
                first: true,
                last: true,
                members,
            },
        };
        let mut out = Vec::new();
        assert_eq!(encode(&too_many, &mut out), Err(TooManyMembers));
        assert!(out.is_empty());
    }

    proptest! {
        /// encode then decode is the identity, within the size bound.
        #[test]
        fn round_trip(msg in strategy::message()) {
            let bytes = bytes_of(&msg);
            prop_assert!(bytes.len() <= MAX_MESSAGE);
            prop_assert_eq!(peek_header(&bytes), Some((msg.server, msg.seq)));
            prop_assert_eq!(decode(&bytes), Ok(msg));
        }

        /// Any bytes: an answer, never a panic; and what decodes re-encodes
        /// to the very same bytes (the encoding is canonical).
        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(msg) = decode(&bytes) {
                prop_assert_eq!(bytes_of(&msg), bytes);
            }
        }
    }
}
