//! Building outgoing lines: one reusable scratch buffer, one shared handle.
//!
//! Every line the hub sends is assembled in a [`LineBuilder`] (a scratch
//! buffer that is cleared, never freed) and then copied once into a
//! [`SharedLine`], the only allocation an outgoing line costs. The same
//! handle is given to every recipient, so a line to a room of N members is
//! one allocation and N reference-count increments.
//!
//! Text that came from a client goes in through
//! [`LineBuilder::sanitized`], which replaces control characters by U+FFFD
//! so that no client can drive another client's terminal.

use std::fmt;
use std::rc::Rc;

use crate::buffer::SharedLine;

/// U+FFFD REPLACEMENT CHARACTER, in UTF-8.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Whether `c` is replaced in relayed text: U+0000 to U+001F except TAB,
/// U+007F, and U+0080 to U+009F (the C0 and C1 controls and DEL).
pub fn is_replaced_control(c: char) -> bool {
    matches!(c, '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}') && c != '\t'
}

/// Append `text` to `out` with every control character (see
/// [`is_replaced_control`]) replaced by U+FFFD.
///
/// Works on bytes, copying runs between controls in one go: in valid UTF-8,
/// a C0 control or DEL is a single byte below 0x80, and a C1 control is the
/// two bytes `C2 80` to `C2 9F` (0xC2 is only ever a lead byte).
pub fn push_sanitized(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let control_len = if (b < 0x20 && b != b'\t') || b == 0x7f {
            1
        } else if b == 0xc2 && matches!(bytes.get(i + 1), Some(0x80..=0x9f)) {
            2
        } else {
            0
        };
        if control_len == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[run_start..i]);
        out.extend_from_slice(REPLACEMENT);
        i += control_len;
        run_start = i;
    }
    out.extend_from_slice(&bytes[run_start..]);
}

/// A reusable buffer in which one outgoing line is assembled.
#[derive(Debug, Default)]
pub struct LineBuilder {
    buf: Vec<u8>,
}

impl LineBuilder {
    /// An empty builder.
    pub fn new() -> LineBuilder {
        LineBuilder::default()
    }

    /// Append trusted text (a notice, a validated name) as it is.
    pub fn str(&mut self, text: &str) -> &mut LineBuilder {
        self.buf.extend_from_slice(text.as_bytes());
        self
    }

    /// Append text from a client, control characters replaced.
    pub fn sanitized(&mut self, text: &str) -> &mut LineBuilder {
        push_sanitized(&mut self.buf, text);
        self
    }

    /// Append a number.
    pub fn num(&mut self, n: usize) -> &mut LineBuilder {
        use std::fmt::Write;
        let _ = write!(self, "{n}");
        self
    }

    /// End the line with LF, copy it into its one shared allocation, and
    /// clear the builder for the next line (keeping its capacity).
    pub fn finish(&mut self) -> SharedLine {
        self.buf.push(b'\n');
        let line = Rc::from(&self.buf[..]);
        self.buf.clear();
        line
    }

    /// `* NICK joined #ROOM`: the one place the join notice is worded, for
    /// local and remote members alike.
    pub fn joined(&mut self, nick: &str, room: &str) -> SharedLine {
        self.str("* ").str(nick).str(" joined #").str(room).finish()
    }

    /// `* NICK left #ROOM`, with ` (REASON)` when there is one.
    pub fn left(&mut self, nick: &str, room: &str, reason: &str) -> SharedLine {
        self.str("* ").str(nick).str(" left #").str(room);
        if !reason.is_empty() {
            self.str(" (").sanitized(reason).str(")");
        }
        self.finish()
    }

    /// `* OLD is now known as NEW`.
    pub fn renamed(&mut self, old: &str, new: &str) -> SharedLine {
        self.str("* ")
            .str(old)
            .str(" is now known as ")
            .str(new)
            .finish()
    }

    /// `*FROM* text`: a private message as its recipient sees it.
    pub fn private(&mut self, from: &str, text: &str) -> SharedLine {
        self.str("*").str(from).str("* ").sanitized(text).finish()
    }
}

impl fmt::Write for LineBuilder {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.buf.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sanitize(text: &str) -> String {
        let mut out = Vec::new();
        push_sanitized(&mut out, text);
        String::from_utf8(out).expect("sanitizing keeps UTF-8 valid")
    }

    #[test]
    fn replaces_c0_del_and_c1_but_keeps_tab() {
        assert_eq!(sanitize("a\tb"), "a\tb");
        assert_eq!(sanitize("\u{1b}[2J"), "\u{fffd}[2J");
        assert_eq!(sanitize("x\u{0}\r\u{7f}y"), "x\u{fffd}\u{fffd}\u{fffd}y");
        assert_eq!(
            sanitize("\u{80}\u{9b}\u{9f}\u{a0}"),
            "\u{fffd}\u{fffd}\u{fffd}\u{a0}"
        );
        assert_eq!(sanitize("你好 ¢ é"), "你好 ¢ é");
    }

    #[test]
    fn builder_ends_lines_with_lf_and_reuses_its_buffer() {
        let mut b = LineBuilder::new();
        let one = b.str("<a> ").sanitized("hi\u{7}").finish();
        assert_eq!(&one[..], "<a> hi\u{fffd}\n".as_bytes());
        let capacity = b.buf.capacity();
        let two = b.str("* n ").num(42).finish();
        assert_eq!(&two[..], b"* n 42\n");
        assert_eq!(b.buf.capacity(), capacity);
    }

    proptest! {
        /// The byte-level scan agrees with the char-level rule.
        #[test]
        fn agrees_with_the_char_rule(
            chars in proptest::collection::vec(
                prop_oneof![any::<char>(), proptest::char::range('\0', '\u{a0}')],
                0..40,
            ),
        ) {
            let text: String = chars.into_iter().collect();
            let expected: String = text
                .chars()
                .map(|c| if is_replaced_control(c) { '\u{fffd}' } else { c })
                .collect();
            prop_assert_eq!(sanitize(&text), expected);
        }
    }
}
