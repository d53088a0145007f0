//! The `client_lines` target: what the `chat` and `talk` clients do with
//! bytes. A received stream, cut into arbitrary chunks, goes through the
//! clients' [`LineFramer`] (splitting over-long lines) and each line through
//! [`printable`]; the same bytes, as typed by the user, go through
//! [`ByeWatcher`] (both from [`crate::client::lines`]).
//!
//! Checked against naive models, byte at a time:
//! - the framer gives, after every chunk, exactly the lines of the naive
//!   rule (LF ends a line and one CR before it is dropped; a line longer
//!   than `max` bytes comes out in `max`-byte pieces, each as soon as
//!   `max + 2` bytes without LF show it is one, so nothing is dropped), each
//!   at most `max` bytes;
//! - every printed line is the received line decoded lossily with every
//!   control character but TAB replaced by U+FFFD (so no peer drives the
//!   terminal), borrowed, not copied, when there was nothing to replace;
//! - the watcher stops the typed stream right after the first complete line
//!   that is exactly `bye` (or `bye` and CR), wherever the chunks fall, and
//!   never anywhere else.

use std::borrow::Cow;

use crate::client::lines::{printable, ByeWatcher};
use crate::protocol::line::LineFramer;
use crate::testing::{chunks, sanitize, show};

/// One stream, received and typed.
#[derive(Debug, Clone)]
pub struct ClientLinesInput {
    /// The framer's limit, as `1 + max % 64`.
    pub max: u8,
    /// How the stream is cut into reads (see [`chunks`]).
    pub chunk_lens: Vec<u8>,
    /// The bytes.
    pub stream: Vec<u8>,
}

/// Decoded by hand, like [`LineFramingInput`](crate::testing::line_framing::LineFramingInput):
/// the first byte is `max`, the chunk lengths follow (their count taken
/// from the last byte), every other byte is the stream as it is.
#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for ClientLinesInput {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let max = u.arbitrary()?;
        let chunk_lens = <&[u8]>::arbitrary(u)?.to_vec();
        let stream = u.bytes(u.len())?.to_vec();
        Ok(ClientLinesInput {
            max,
            chunk_lens,
            stream,
        })
    }
}

/// The splitting rule, one byte at a time.
struct NaiveSplitter {
    max: usize,
    line: Vec<u8>,
}

impl NaiveSplitter {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        for &b in bytes {
            if b == b'\n' {
                self.end_line(out);
                continue;
            }
            if self.line.len() == self.max + 1 {
                // No line of `max` bytes, even with its CR, is this long:
                // a full piece, and the line goes on.
                out.push(self.line.drain(..self.max).collect());
            }
            self.line.push(b);
        }
    }

    /// The line ends (its LF, or the end of input): without one CR at its
    /// end, in pieces of `max` bytes.
    fn end_line(&mut self, out: &mut Vec<Vec<u8>>) {
        let line = strip_cr(&self.line);
        if line.is_empty() {
            out.push(Vec::new());
        }
        out.extend(line.chunks(self.max).map(<[u8]>::to_vec));
        self.line.clear();
    }

    fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        if !self.line.is_empty() {
            self.end_line(out);
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Where the naive watcher stops: just after the first complete line that
/// is `bye` or `bye\r`.
fn naive_bye_end(stream: &[u8]) -> Option<usize> {
    let mut start = 0;
    for (i, &b) in stream.iter().enumerate() {
        if b == b'\n' {
            let line = &stream[start..i];
            if line == b"bye" || line == b"bye\r" {
                return Some(i + 1);
            }
            start = i + 1;
        }
    }
    None
}

/// Check one printed line against the rule.
fn check_printable(line: &[u8]) {
    let printed = printable(line);
    let want = sanitize(&String::from_utf8_lossy(line));
    assert_eq!(printed, want, "printable({})", show(line));
    let untouched = std::str::from_utf8(line).is_ok_and(|s| sanitize(s) == s);
    assert_eq!(
        matches!(printed, Cow::Borrowed(_)),
        untouched,
        "printable({}) copies exactly when it must",
        show(line)
    );
}

/// Run `input`; panics on any broken invariant.
pub fn check(input: &ClientLinesInput) {
    let max = 1 + usize::from(input.max) % 64;
    let pieces = chunks(&input.stream, &input.chunk_lens);

    let mut splitter = LineFramer::splitting(max);
    let mut model = NaiveSplitter {
        max,
        line: Vec::new(),
    };
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for (n, chunk) in pieces.iter().enumerate() {
        // Only the lines this chunk completed: earlier ones were compared.
        let (old_got, old_want) = (got.len(), want.len());
        splitter.push_lines(chunk, |line| got.push(line.to_vec()));
        model.push(chunk, &mut want);
        assert_eq!(
            got[old_got..],
            want[old_want..],
            "received chunk {n} ({}): lines differ",
            show(chunk)
        );
    }
    splitter.finish_lines(|line| got.push(line.to_vec()));
    model.finish(&mut want);
    assert_eq!(got, want, "end of input: lines differ");
    for line in &got {
        assert!(
            line.len() <= max,
            "a line of {} bytes over the limit {max}",
            line.len()
        );
        check_printable(line);
    }

    let mut watcher = ByeWatcher::new();
    let mut offset = 0;
    let mut stopped = None;
    for chunk in &pieces {
        if let Some(n) = watcher.scan(chunk) {
            assert!(
                n >= 1 && n <= chunk.len(),
                "scan returned {n} of {}",
                chunk.len()
            );
            assert_eq!(chunk[n - 1], b'\n', "a bye line ends at its LF");
            stopped = Some(offset + n);
            break;
        }
        offset += chunk.len();
    }
    assert_eq!(
        stopped,
        naive_bye_end(&input.stream),
        "the typed stream stops at the wrong place"
    );
}
