//! The `chat_session` target: one client's arbitrary byte stream, cut into
//! arbitrary chunks, against the chat hub, with two other clients
//! listening (one in #lobby with it, one in #side).
//!
//! The stream is run twice, through [`ChatHarness`] (so every step is
//! compared with the model, every line checked well-formed and bounded,
//! the input held checked against `max_line + 1`):
//! 1. in the given chunks;
//! 2. one line per call, checking after each line that produced a
//!    `* error: ` line that this was the only line sent, to the sender
//!    alone, and that no client's nickname or room changed, and no one
//!    came or went: errors change nothing.
//!
//! Both runs must make the hub say exactly the same things: the chunking of
//! the input never matters.

use crate::protocol::chat::ClientId;
use crate::testing::chat_model::{Actual, ChatHarness};
use crate::testing::{chunks, show};

/// Output allowed per client: large, so that this target never meets the
/// out-limit (`chat_hub` does).
const OUT_LIMIT: usize = 1 << 20;

/// One client's session.
#[derive(Debug, Clone)]
pub struct ChatSessionInput {
    /// `--max-line`.
    pub max_line: u8,
    /// How the stream is cut into reads (see [`chunks`]).
    pub chunk_lens: Vec<u8>,
    /// What the client sends.
    pub stream: Vec<u8>,
}

/// Decodes fuzzer bytes the way a reader of a seed file expects: the first
/// byte is `max_line`, a length taken from the last byte (or two) gives the
/// chunk lengths that follow the first byte, and every other byte is the
/// stream itself, as it is (a derived `Vec<u8>` would interleave a
/// "one more?" byte between bytes, which makes seed files unreadable and
/// mutations of the stream clumsy).
#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for ChatSessionInput {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let max_line = u.arbitrary()?;
        let chunk_lens = <&[u8]>::arbitrary(u)?.to_vec();
        let stream = u.bytes(u.len())?.to_vec();
        Ok(ChatSessionInput {
            max_line,
            chunk_lens,
            stream,
        })
    }
}

/// The stream cut after each LF: one line per piece.
fn lines(stream: &[u8]) -> Vec<&[u8]> {
    stream.split_inclusive(|&b| b == b'\n').collect()
}

/// What can be seen of the hub's state from outside.
fn snapshot(h: &ChatHarness) -> Vec<(Option<String>, Option<String>)> {
    let hub = h.hub();
    h.ids()
        .iter()
        .map(|&id| {
            (
                hub.nick_of(id).map(str::to_string),
                hub.room_of(id).map(str::to_string),
            )
        })
        .collect()
}

/// Connect the client under test and its listeners, feed `pieces`, end the
/// input; everything the hub said after the set-up.
fn run(max_line: usize, pieces: &[&[u8]], errors_change_nothing: bool) -> Vec<String> {
    let mut h = ChatHarness::new(max_line, OUT_LIMIT);
    let me = h.connect();
    h.connect();
    let side = h.connect();
    h.input(side, b"/join side\n");
    let start = h.actions().len();
    for piece in pieces {
        let before = snapshot(&h);
        let said_before = h.actions().len();
        h.input(me, piece);
        if !errors_change_nothing {
            continue;
        }
        let said = &h.actions()[said_before..];
        let is_error =
            |a: &Actual| matches!(a, Actual::Send(_, line) if line.starts_with(b"* error: "));
        if said.iter().any(is_error) {
            let rendered: Vec<String> = said.iter().map(Actual::render).collect();
            assert!(
                matches!(said, [Actual::Send(to, _)] if *to == me),
                "line {}: an error, and more than the one error line to the sender: {rendered:#?}",
                show(piece)
            );
            assert_eq!(
                snapshot(&h),
                before,
                "line {}: an error changed the state",
                show(piece)
            );
        }
    }
    h.eof(me);
    assert!(
        h.hub().nick_of(me).is_none(),
        "the client is gone after its input ends"
    );
    assert!(h.hub().nick_of(ClientId(2)).is_some(), "its listeners stay");
    h.history()[start..].to_vec()
}

/// Run `input`; panics on any broken invariant.
pub fn check(input: &ChatSessionInput) {
    let max_line = usize::from(input.max_line);
    let chunked = run(max_line, &chunks(&input.stream, &input.chunk_lens), false);
    let by_line = run(max_line, &lines(&input.stream), true);
    assert_eq!(
        chunked, by_line,
        "the same stream in other chunks made the hub say other things"
    );
}
