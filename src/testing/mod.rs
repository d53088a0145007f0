//! Reference models and invariant checks for the sans-IO state machines,
//! written once and used three ways: by the fuzz targets in `fuzz/`, by the
//! property tests in `tests/sans_io/properties.rs` (so `cargo test` on
//! stable checks the same invariants), and by
//! `tests/sans_io/fuzz_regressions.rs`, which replays every input the fuzzer
//! ever found a fault with.
//!
//! Each submodule owns one target: an input type (plain data: a few limits
//! and a list of operations, decoded from fuzzer bytes with the `arbitrary`
//! feature) and a `check` function that drives the real state machine and a
//! deliberately naive model of it side by side, and panics with a readable
//! message at the first disagreement or broken invariant. "Does not panic" is
//! the least of it: each `check` compares outputs byte for byte, and checks
//! bounds after every step.
//!
//! - [`line_framing`] checks [`LineFramer`](crate::protocol::line::LineFramer)
//!   against a byte-at-a-time splitter ([`NaiveFramer`]).
//! - [`chat_session`] and [`chat_hub`] check the chat
//!   [`Hub`](crate::protocol::chat::Hub) against [`chat_model::ChatModel`],
//!   which predicts every line it must send and to whom.
//! - [`echo_stream`] drives [`EchoSession`](crate::protocol::echo::EchoSession)
//!   with arbitrary reads and partial writes: output equals input.
//! - [`udp_echo`] checks [`UdpEcho`](crate::protocol::udp_echo::UdpEcho) against a
//!   queue model: replies whole, to their source, bounded, port guard.
//! - [`client_lines`] checks the clients' line splitting (the
//!   [`LineFramer`](crate::protocol::line::LineFramer) in its splitting
//!   mode), terminal-safe printing and `bye` detection
//!   ([`crate::client::lines`]).
//! - [`sim`] is bigger than the others: the whole server (the real reactor)
//!   on the simulated network ([`crate::net::sim`]), driven by scenario
//!   clients from a seed (`tests/in_process/sim.rs`) or from fuzzer bytes.
//! - [`in_process`] is no fuzz target: it is the tests' one way to run a
//!   real [`Server`](crate::reactor::Server) in their own process on
//!   loopback and turn its loop until a condition holds, under a deadline;
//!   with [`counting_net`] around the real network, a test counts the
//!   server's system calls.
//!
//! Why a module of the library rather than a file under `tests/`: the fuzz
//! crate and the tests are separate crates, and both need the same code and
//! the same `Arbitrary` decoding of the same types. A library module is
//! compiled, linted and documented once, and the server binary links none of
//! it (nothing in the server calls it). The `Arbitrary` derives exist only
//! with the `arbitrary` feature, which the fuzz crate and the tests turn on.
//! For the same reason [`in_process`] is here: the test binaries and the
//! reactor's own unit tests turn the loop with the same code.

pub mod chat_hub;
pub mod chat_model;
pub mod chat_session;
pub mod client_lines;
pub mod counting_net;
pub mod echo_stream;
pub mod in_process;
pub mod line_framing;
pub mod sim;
pub mod udp_echo;

/// Cut `data` into consecutive chunks whose lengths are taken from `lens` in
/// turn, cycling, the last chunk being whatever is left. A length of 0 gives
/// an empty chunk on the first pass through `lens` (an empty read must be
/// harmless too) and a 1-byte chunk after that, so the cutting always ends.
/// No `lens` at all means one chunk: the whole input.
pub fn chunks<'a>(data: &'a [u8], lens: &[u8]) -> Vec<&'a [u8]> {
    if lens.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let mut len = usize::from(lens[i % lens.len()]);
        if len == 0 && i >= lens.len() {
            len = 1;
        }
        i += 1;
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

/// What [`NaiveFramer`] reports: a line (without LF, one CR before the LF
/// dropped) and the offset in the whole stream where it started, or a line
/// that is too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NaiveEvent {
    /// A line of at most `max_line` bytes.
    Line {
        /// The line, without its ending.
        bytes: Vec<u8>,
        /// Offset of its first byte in the whole stream.
        start: usize,
    },
    /// A line longer than `max_line` bytes.
    TooLong,
}

/// The simplest framer that follows the protocol's rules (docs/protocol.md): one byte at a
/// time, an unbounded buffer, no cleverness. A line is known to be too long
/// as soon as `max_line + 2` bytes of it have arrived without LF (`max_line`
/// bytes and a CR could still be a valid line); it is reported then, once,
/// and everything up to its LF is skipped.
#[derive(Debug, Clone)]
pub struct NaiveFramer {
    max_line: usize,
    line: Vec<u8>,
    discarding: bool,
    /// Stream offset of the next byte.
    offset: usize,
    /// Stream offset where the current line started.
    line_start: usize,
}

impl NaiveFramer {
    /// A model framer for lines of at most `max_line` bytes.
    pub fn new(max_line: usize) -> NaiveFramer {
        NaiveFramer {
            max_line,
            line: Vec::new(),
            discarding: false,
            offset: 0,
            line_start: 0,
        }
    }

    /// Feed bytes; every event they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<NaiveEvent> {
        let mut events = Vec::new();
        for &b in bytes {
            self.offset += 1;
            if b == b'\n' {
                if self.discarding {
                    self.discarding = false;
                } else {
                    events.push(self.judge());
                }
                self.line.clear();
                self.line_start = self.offset;
            } else if !self.discarding {
                self.line.push(b);
                if self.line.len() > self.max_line.saturating_add(1) {
                    events.push(NaiveEvent::TooLong);
                    self.discarding = true;
                    self.line.clear();
                }
            }
        }
        events
    }

    /// The stream ended: a final line without LF, if any.
    pub fn finish(&mut self) -> Option<NaiveEvent> {
        if std::mem::take(&mut self.discarding) || self.line.is_empty() {
            return None;
        }
        let event = self.judge();
        self.line.clear();
        Some(event)
    }

    /// Bytes of the unfinished line held (0 while skipping a long one).
    pub fn held(&self) -> usize {
        self.line.len()
    }

    /// Whether it is skipping the rest of a too-long line.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    fn judge(&self) -> NaiveEvent {
        let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        if line.len() > self.max_line {
            NaiveEvent::TooLong
        } else {
            NaiveEvent::Line {
                bytes: line.to_vec(),
                start: self.line_start,
            }
        }
    }
}

/// Whether the protocol says `c` must never reach a client's terminal: U+0000 to
/// U+001F other than TAB, U+007F, U+0080 to U+009F.
pub fn is_forbidden_control(c: char) -> bool {
    (c < ' ' && c != '\t') || ('\u{7f}'..='\u{9f}').contains(&c)
}

/// The protocol's rule for relayed text, char by char: forbidden controls become
/// U+FFFD.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if is_forbidden_control(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// Panics unless `line` is one well-formed line as the chat server sends
/// it: valid UTF-8, exactly one LF, at the end, no forbidden control
/// character, at most `max_len` bytes.
pub fn check_output_line(line: &[u8], max_len: usize) {
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(e) => panic!("output line is not UTF-8 ({e}): {line:?}"),
    };
    let Some(body) = text.strip_suffix('\n') else {
        panic!("output line does not end with LF: {text:?}");
    };
    assert!(!body.contains('\n'), "LF inside an output line: {text:?}");
    if let Some(c) = body.chars().find(|&c| is_forbidden_control(c)) {
        panic!("control character {c:?} in output line {text:?}");
    }
    assert!(
        line.len() <= max_len,
        "output line of {} bytes, over the bound of {max_len}: {text:?}",
        line.len()
    );
}

/// Bytes as text for failure messages.
pub fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_input_in_order() {
        let data: Vec<u8> = (0..20).collect();
        let cut = chunks(&data, &[3, 0, 5]);
        assert_eq!(cut[0], &data[..3]);
        assert!(
            cut[1].is_empty(),
            "a 0 gives one empty chunk on the first pass"
        );
        assert_eq!(cut.concat(), data);
        assert!(chunks(&data, &[0]).iter().skip(1).all(|c| c.len() == 1));
        assert_eq!(chunks(&data, &[]), vec![&data[..]]);
    }

    #[test]
    fn the_naive_framer_skips_long_lines_to_their_lf() {
        let mut f = NaiveFramer::new(2);
        let events = f.push(b"ab\r\nabcd\nxy");
        assert_eq!(
            events,
            vec![
                NaiveEvent::Line {
                    bytes: b"ab".to_vec(),
                    start: 0
                },
                NaiveEvent::TooLong
            ]
        );
        assert_eq!(f.held(), 2);
        assert_eq!(
            f.finish(),
            Some(NaiveEvent::Line {
                bytes: b"xy".to_vec(),
                start: 9
            })
        );
    }

    #[test]
    #[should_panic(expected = "control character")]
    fn an_escape_in_output_is_caught() {
        check_output_line(b"<a> \x1b[2J\n", 100);
    }
}
