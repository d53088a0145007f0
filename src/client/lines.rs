//! Lines for the clients, sans-IO: received bytes in any chunking become
//! whole lines to print, and typed bytes are watched for a `bye` line.
//!
//! - [`LineSplitter`] keeps the unfinished tail of what was received and hands
//!   out complete lines (LF removed, and a CR before it). Its memory is
//!   bounded: a line longer than its limit comes out in pieces of the limit's
//!   size, so nothing received is ever dropped.
//! - [`printable`] makes a received line safe for a terminal: invalid UTF-8
//!   and control characters (other than TAB) become U+FFFD, so a peer cannot
//!   drive our terminal with escape sequences. The chat server already does
//!   this for relayed text; `talk` has no server in between, and `chat` may
//!   be pointed at any server, so the clients do it too.
//! - [`ByeWatcher`] scans what the user types for a line that is exactly
//!   `bye` (the tutorial's way to end a conversation), remembering no more
//!   than the first few bytes of the current line.

use std::borrow::Cow;

/// Splits a received byte stream into lines of at most `max` bytes.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    partial: Vec<u8>,
}

impl LineSplitter {
    /// A splitter that keeps at most `max` bytes of an unfinished line.
    pub fn new(max: usize) -> LineSplitter {
        assert!(max > 0, "a line limit of 0 makes no progress");
        LineSplitter {
            max,
            partial: Vec::new(),
        }
    }

    /// Feed received bytes; `on_line` gets each complete line (without LF,
    /// and without a CR before the LF), oldest first. A line that reaches the
    /// limit without an LF is handed out in pieces of `max` bytes.
    pub fn push(&mut self, mut data: &[u8], mut on_line: impl FnMut(&[u8])) {
        while !data.is_empty() {
            if self.partial.len() == self.max {
                // A full piece waits for one more byte: an LF makes it a whole
                // line (whose CR, if any, is dropped), anything else a piece.
                if data[0] == b'\n' {
                    data = &data[1..];
                    on_line(strip_cr(&self.partial));
                } else {
                    on_line(&self.partial);
                }
                self.partial.clear();
                continue;
            }
            let lf = data.iter().position(|&b| b == b'\n');
            match lf {
                Some(i) if self.partial.is_empty() && i <= self.max => {
                    // The common case: the whole line is in `data`; no copy.
                    on_line(strip_cr(&data[..i]));
                    data = &data[i + 1..];
                }
                _ => {
                    let end = lf.unwrap_or(data.len());
                    let take = end.min(self.max - self.partial.len());
                    self.partial.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if lf == Some(take) {
                        data = &data[1..];
                        on_line(strip_cr(&self.partial));
                        self.partial.clear();
                    }
                }
            }
        }
    }

    /// The stream ended: hand out an unfinished last line, if any.
    pub fn finish(&mut self, mut on_line: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            on_line(strip_cr(&self.partial));
            self.partial.clear();
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A received line made safe to print: UTF-8, with every control character
/// but TAB (U+0000..U+001F, U+007F, U+0080..U+009F) replaced by U+FFFD.
/// Borrows when there is nothing to replace.
pub fn printable(line: &[u8]) -> Cow<'_, str> {
    let is_bad = |c: char| c.is_control() && c != '\t';
    match String::from_utf8_lossy(line) {
        Cow::Borrowed(s) if !s.contains(is_bad) => Cow::Borrowed(s),
        text => Cow::Owned(text.replace(is_bad, "\u{FFFD}")),
    }
}

/// Whether a line (LF already removed) is the word that ends a conversation.
/// Exactly `bye`, as in the tutorial; a CR before the LF is tolerated.
pub fn is_bye(line: &[u8]) -> bool {
    strip_cr(line) == b"bye"
}

/// Watches typed bytes for a line that is exactly `bye`.
#[derive(Debug, Default)]
pub struct ByeWatcher {
    /// The current line's first bytes, enough to recognise `bye\r`.
    start: Vec<u8>,
    /// The current line is already longer than `bye\r`: it cannot be `bye`.
    too_long: bool,
}

impl ByeWatcher {
    /// A watcher at the start of a line.
    pub fn new() -> ByeWatcher {
        ByeWatcher::default()
    }

    /// Scan `data`. If it completes a `bye` line, returns how many bytes of
    /// `data` go up to and including that line's LF: the caller sends those
    /// and nothing after them.
    pub fn scan(&mut self, data: &[u8]) -> Option<usize> {
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                let bye = !self.too_long && is_bye(&self.start);
                self.start.clear();
                self.too_long = false;
                if bye {
                    return Some(i + 1);
                }
            } else if self.start.len() < b"bye\r".len() {
                self.start.push(b);
            } else {
                self.too_long = true;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_all(max: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |l| out.push(l.to_vec()));
        }
        s.finish(|l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn lines_across_chunks_with_crlf() {
        let got = split_all(100, &[b"he", b"llo\r\nwor", b"ld\n", b"\n", b"tail"]);
        assert_eq!(got, [&b"hello"[..], b"world", b"", b"tail"]);
    }

    #[test]
    fn a_long_line_comes_out_in_pieces_and_nothing_is_lost() {
        let got = split_all(4, &[b"abcdefghij\nxy\n"]);
        assert_eq!(got, [&b"abcd"[..], b"efgh", b"ij", b"xy"]);
        let got = split_all(4, &[b"ab", b"cdef", b"\n"]);
        assert_eq!(got, [&b"abcd"[..], b"ef"]);
    }

    #[test]
    fn printable_replaces_control_characters_but_not_tab() {
        assert_eq!(printable(b"plain\ttext"), "plain\ttext");
        assert!(matches!(printable(b"plain"), Cow::Borrowed(_)));
        assert_eq!(printable(b"\x1b[2Jhi\x07"), "\u{FFFD}[2Jhi\u{FFFD}");
        assert_eq!(printable("a\u{85}b".as_bytes()), "a\u{FFFD}b");
        assert_eq!(printable(b"\xffok"), "\u{FFFD}ok");
    }

    #[test]
    fn bye_watcher_finds_a_bye_line_only() {
        let mut w = ByeWatcher::new();
        assert_eq!(w.scan(b"hello\nbyebye\n bye\nBye\n"), None);
        assert_eq!(w.scan(b"b"), None);
        assert_eq!(w.scan(b"ye"), None);
        assert_eq!(w.scan(b"\r\nafter\n"), Some(2));
        let mut w = ByeWatcher::new();
        assert_eq!(w.scan(b"hi\nbye\nnot sent\n"), Some(7));
    }

    proptest! {
        /// Whatever the chunking, the lines are the same as splitting the
        /// whole stream at once, and every line respects the limit.
        #[test]
        fn chunking_does_not_matter(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..10),
            max in 1usize..20,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(&data[at..c]);
                at = c;
            }
            chunks.push(&data[at..]);
            let chunked = split_all(max, &chunks);
            let whole = split_all(max, &[&data]);
            prop_assert_eq!(&chunked, &whole);
            for line in &chunked {
                prop_assert!(line.len() <= max);
            }
        }
    }
}
