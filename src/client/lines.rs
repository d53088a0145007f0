//! Lines for the clients, sans-IO: received lines made safe to print, and
//! typed bytes watched for a `bye` line. (Splitting received bytes into lines
//! is the server's own [`LineFramer`](crate::protocol::line::LineFramer), in
//! its splitting mode: a line longer than the client's limit comes out in
//! pieces, so nothing received is dropped and memory stays bounded.)
//!
//! - [`printable`] makes a received line safe for a terminal: invalid UTF-8
//!   and control characters (other than TAB) become U+FFFD, so a peer cannot
//!   drive our terminal with escape sequences. The chat server already does
//!   this for relayed text; `talk` has no server in between, and `chat` may
//!   be pointed at any server, so the clients do it too.
//! - [`ByeWatcher`] scans what the user types for a line that is exactly
//!   `bye` (the tutorial's way to end a conversation), remembering no more
//!   than the first few bytes of the current line.

use std::borrow::Cow;

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
}
