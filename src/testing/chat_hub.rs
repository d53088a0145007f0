//! The `chat_hub` target: an arbitrary list of operations over several
//! clients (connect, a line, raw bytes, end of input, disconnect, the
//! socket draining some output), applied to the hub through
//! [`ChatHarness`], which compares every step with
//! [`ChatModel`](crate::testing::chat_model::ChatModel) and checks the
//! hub's state after it (see [`chat_model`](crate::testing::chat_model)).
//!
//! Lines are generated with structure (real commands, nicknames from a
//! small pool that collide, without regard to case, with each other and
//! with guest names) so that the interesting paths are reached at once;
//! raw bytes and free text cover everything else. Output is queued under a
//! small `out_limit`, so clients that do not drain are disconnected as too
//! slow, and their rooms told. The run ends with either a shutdown (and a
//! connection refused after it) or every client ending its input.

use crate::protocol::chat::ClientId;
use crate::testing::chat_model::{ChatHarness, Reason};

/// Clients connected at most over a run.
const MAX_CLIENTS: usize = 16;

/// Names that collide with each other and with guest names.
const NAME_POOL: [&str; 12] = [
    "alice",
    "bob",
    "Carol",
    "lobby",
    "rust",
    "x",
    "Zed_9-x",
    "guest1",
    "guest2",
    "abcdefghijklmnopqrstuvwxyz012345",
    "abcdefghijklmnopqrstuvwxyz0123456",
    "bad name",
];

/// A whole run.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ChatHubInput {
    /// `--max-line`.
    pub max_line: u8,
    /// `--out-limit`, as `1 + out_limit`.
    pub out_limit: u16,
    /// End with a server shutdown (else every client ends its input).
    pub shutdown_at_end: bool,
    /// What happens, in order.
    pub ops: Vec<HubOp>,
}

/// One event. `client` picks among the clients connected so far (and one
/// id that never connected), by `client % (connected + 1)`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum HubOp {
    /// A new client connects.
    Connect,
    /// A client sends one line, ended by LF or CRLF.
    Line {
        /// Who.
        client: u8,
        /// What.
        line: LineOp,
        /// CRLF rather than LF.
        crlf: bool,
    },
    /// A client sends any bytes (part of a line, several lines, not UTF-8).
    Raw {
        /// Who.
        client: u8,
        /// What.
        bytes: Vec<u8>,
    },
    /// A client shuts down its sending side.
    Eof {
        /// Who.
        client: u8,
    },
    /// A client's connection goes away, or the server closes it.
    Disconnect {
        /// Who.
        client: u8,
        /// Why.
        reason: Reason,
    },
    /// A client's socket takes up to `bytes` of its queued output.
    Drain {
        /// Whose.
        client: u8,
        /// How much.
        bytes: u16,
    },
}

/// A line of the chat protocol.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum LineOp {
    /// Text (which may start with `/` too).
    Say(String),
    /// `/nick NAME`.
    Nick(NameChoice),
    /// `/who`.
    Who,
    /// `/rooms`.
    Rooms,
    /// `/help`.
    Help,
    /// `/join ROOM` or `/join #ROOM`.
    Join {
        /// With `#`.
        hash: bool,
        /// Which room.
        room: NameChoice,
    },
    /// `/msg NICK TEXT`.
    Msg {
        /// To whom.
        to: NameChoice,
        /// What.
        text: String,
    },
    /// `/me ACTION`.
    Me(String),
    /// `/quit` or `/quit REASON`.
    Quit(String),
    /// `bye`.
    Bye,
}

/// A nickname or room name.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum NameChoice {
    /// From a small pool, maybe in capitals.
    Pool {
        /// Which, modulo the pool's size.
        index: u8,
        /// In capitals.
        shout: bool,
    },
    /// `guestN`, N modulo 8.
    Guest(u8),
    /// Anything.
    Typed(String),
}

impl NameChoice {
    /// The name as typed.
    pub fn text(&self) -> String {
        match self {
            NameChoice::Pool { index, shout } => {
                let name = NAME_POOL[usize::from(*index) % NAME_POOL.len()];
                if *shout {
                    name.to_ascii_uppercase()
                } else {
                    name.to_string()
                }
            }
            NameChoice::Guest(n) => format!("guest{}", n % 8),
            NameChoice::Typed(text) => text.clone(),
        }
    }
}

impl LineOp {
    /// The line as the client types it, without its ending.
    pub fn text(&self) -> String {
        match self {
            LineOp::Say(text) => text.clone(),
            LineOp::Nick(name) => format!("/nick {}", name.text()),
            LineOp::Who => "/who".to_string(),
            LineOp::Rooms => "/rooms".to_string(),
            LineOp::Help => "/help".to_string(),
            LineOp::Join { hash, room } => {
                format!("/join {}{}", if *hash { "#" } else { "" }, room.text())
            }
            LineOp::Msg { to, text } => format!("/msg {} {text}", to.text()),
            LineOp::Me(action) => format!("/me {action}"),
            LineOp::Quit(reason) if reason.is_empty() => "/quit".to_string(),
            LineOp::Quit(reason) => format!("/quit {reason}"),
            LineOp::Bye => "bye".to_string(),
        }
    }
}

/// The id `client` picks (see [`HubOp`]).
fn pick(h: &ChatHarness, client: u8) -> ClientId {
    let ids = h.ids();
    ids.get(usize::from(client) % (ids.len() + 1))
        .copied()
        .unwrap_or(ClientId(u64::MAX))
}

/// Run `input`; panics on any broken invariant.
pub fn check(input: &ChatHubInput) {
    let mut h = ChatHarness::new(
        usize::from(input.max_line),
        1 + usize::from(input.out_limit),
    );
    for _ in 0..3 {
        h.connect();
    }
    for op in &input.ops {
        match op {
            HubOp::Connect => {
                if h.ids().len() < MAX_CLIENTS {
                    h.connect();
                }
            }
            HubOp::Line { client, line, crlf } => {
                let mut bytes = line.text().into_bytes();
                bytes.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
                h.input(pick(&h, *client), &bytes);
            }
            HubOp::Raw { client, bytes } => h.input(pick(&h, *client), bytes),
            HubOp::Eof { client } => h.eof(pick(&h, *client)),
            HubOp::Disconnect { client, reason } => h.disconnect(pick(&h, *client), *reason),
            HubOp::Drain { client, bytes } => h.drain(pick(&h, *client), usize::from(*bytes)),
        }
    }
    if input.shutdown_at_end {
        h.shutdown();
        h.connect();
        assert_eq!(
            h.hub().client_count(),
            0,
            "no one is accepted after shutdown"
        );
    } else {
        for id in h.model().client_ids() {
            h.eof(id);
        }
        assert_eq!(h.hub().client_count(), 0, "everyone left");
    }
    for id in h.ids().to_vec() {
        while h.pending_output(id) > 0 {
            h.drain(id, usize::MAX);
        }
    }
}
