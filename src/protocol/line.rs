//! Line framing, sans-IO: a byte stream in any chunking goes in, LF-terminated
//! lines come out, each at most `max_line` bytes long.
//!
//! The framer is on the hot path of the chat server, so it copies as little as
//! it can. A complete line that lies inside one input chunk is returned as a
//! slice of that chunk, never copied. Only the unfinished tail of a chunk is
//! copied into the framer's own buffer, to be completed by the next chunk.
//! That buffer never holds more than `max_line + 1` bytes (the line plus a CR
//! that may turn out to precede its LF): a line that grows past that is known
//! to be too long, is reported at once as [`LineEvent::TooLong`], and the
//! framer then discards input up to the next LF, however far away it is.
//!
//! Line endings: LF ends a line; one CR right before the LF is dropped, so
//! `nc` and `telnet` (CRLF) and Unix tools (LF) both work. A CR anywhere else
//! is part of the line.
//!
//! Use it as a cursor: call [`LineFramer::next_event`] until it returns
//! `None` (the chunk is used up), then feed the next chunk. Each event borrows
//! the framer only until the next call, so the caller can act on a line
//! before asking for the next one. At end of input, [`LineFramer::finish`]
//! returns a final line that had no LF, as `nc` sends it.
//!
//! It is the one line splitter of sockloop: the chat server frames its
//! clients' input with it, the `chat` and `talk` clients what they receive,
//! and the load generator the server's relayed lines. What happens to a line
//! longer than `max_line` is the one thing they differ on, so it is a
//! parameter, [`OverLongLine`]: the server rejects it (the sender gets an
//! error), a client splits it into pieces (it prints whatever the peer sent
//! and drops nothing).

/// What the framer found in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A complete line of at most `max_line` bytes, without its LF (and
    /// without the CR before it). It may be empty.
    Line(&'a [u8]),
    /// A line longer than `max_line` was found. It is reported once, as soon
    /// as it is known to be too long; the rest of it, up to and including its
    /// LF, is discarded.
    TooLong,
}

/// What the framer does with a line longer than `max_line` (without its
/// line ending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverLongLine {
    /// Report it once, as [`LineEvent::TooLong`], as soon as it is known to
    /// be too long, and discard it up to its LF: the chat server, where an
    /// over-long line is the sender's error and is answered with one.
    #[default]
    Reject,
    /// Hand it out as [`LineEvent::Line`]s of `max_line` bytes, the last one
    /// shorter, each as soon as it is known to be a piece: the clients, which
    /// show whatever their peer sends, bounded in memory, losing no byte.
    Split,
}

/// Above this capacity, the buffer of a finished partial line is freed rather
/// than kept, so an idle connection that once sent a long split line does
/// not hold `max_line` bytes forever. Below it, the buffer is kept, so a
/// client that sends every line in small pieces (telnet in character mode)
/// does not cost an allocation per line.
const KEEP_PARTIAL_CAPACITY: usize = 512;

/// Splits a byte stream into LF-terminated lines of at most `max_line` bytes.
///
/// [`Default`] gives a framer with `max_line` 0 that holds no memory; it is
/// meant as a placeholder for [`std::mem::take`].
#[derive(Debug, Default)]
pub struct LineFramer {
    max_line: usize,
    over_long: OverLongLine,
    /// Keep `partial`'s buffer whatever its size (see
    /// [`LineFramer::preallocated`]).
    keep_buffer: bool,
    /// The start of a line whose LF has not arrived yet; at most
    /// `max_line + 1` bytes. After a [`LineEvent::Line`] borrowed from it,
    /// its first `handed_out` bytes are that line, until the next call.
    partial: Vec<u8>,
    /// Bytes at the front of `partial` that were handed out as a line (or a
    /// piece of one): drop them first thing on the next call.
    handed_out: usize,
    /// Skipping the rest of a too-long line (already reported) up to its LF.
    discarding: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max_line` bytes (without the ending)
    /// that rejects longer ones ([`OverLongLine::Reject`]).
    pub fn new(max_line: usize) -> LineFramer {
        LineFramer {
            max_line,
            ..LineFramer::default()
        }
    }

    /// A framer that hands lines longer than `max_line` out in pieces of
    /// `max_line` bytes ([`OverLongLine::Split`]); `max_line` must not be 0,
    /// or a piece would make no progress.
    pub fn splitting(max_line: usize) -> LineFramer {
        assert!(max_line > 0, "pieces of 0 bytes make no progress");
        LineFramer {
            max_line,
            over_long: OverLongLine::Split,
            ..LineFramer::default()
        }
    }

    /// Allocate the buffer for an unfinished line now, at its full size
    /// (`max_line + 1` bytes), and keep it: for a reader that must not
    /// allocate per line, such as the load generator. By default the buffer
    /// grows as needed and a large one is freed after its line, so that an
    /// idle connection of the server holds no memory for it.
    pub fn preallocated(mut self) -> LineFramer {
        self.keep_buffer = true;
        self.partial = Vec::with_capacity(self.max_line.saturating_add(1));
        self
    }

    /// What this framer does with an over-long line.
    pub fn over_long(&self) -> OverLongLine {
        self.over_long
    }

    /// Bytes of an unfinished line held now (never more than `max_line + 1`).
    pub fn buffered(&self) -> usize {
        self.partial.len() - self.handed_out
    }

    /// Whether the framer is skipping the rest of a too-long line.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// The next line or error in `input`, advancing `input` past what was
    /// used. `None` means the input is used up (its unfinished tail, if any,
    /// is kept for the next chunk).
    ///
    /// The returned event borrows the framer (or the input) only until the
    /// next call, so this is a cursor: act on each event, then call again.
    pub fn next_event<'s, 'd: 's>(&'s mut self, input: &mut &'d [u8]) -> Option<LineEvent<'s>> {
        self.forget_handed_out();
        loop {
            let data: &'d [u8] = input;
            if data.is_empty() {
                return None;
            }
            let Some(lf) = data.iter().position(|&b| b == b'\n') else {
                // No LF in the rest of the chunk: it is the start (or more)
                // of an unfinished line.
                if self.discarding {
                    *input = &[];
                    return None;
                }
                if self.partial.len() + data.len() > self.max_line.saturating_add(1) {
                    // Too long even if a CR and its LF come next.
                    return Some(self.over_long_line(input, None));
                }
                *input = &[];
                self.append_partial(data);
                return None;
            };
            let rest = &data[lf + 1..];
            let head = &data[..lf];
            if self.discarding {
                // The LF that ends a too-long line, reported when it began.
                *input = rest;
                self.discarding = false;
                continue;
            }
            if self.partial.is_empty() {
                // The whole line is in this chunk: hand out a slice of it.
                let line = strip_cr(head);
                if line.len() > self.max_line {
                    return Some(self.over_long_line(input, Some(rest)));
                }
                *input = rest;
                return Some(LineEvent::Line(line));
            }
            // This LF finishes the line kept from earlier chunks.
            let ends_with_cr = head.last().or(self.partial.last()) == Some(&b'\r');
            let len = self.partial.len() + head.len() - usize::from(ends_with_cr);
            if len > self.max_line {
                return Some(self.over_long_line(input, Some(rest)));
            }
            *input = rest;
            self.append_partial(head);
            if ends_with_cr {
                self.partial.pop();
            }
            self.handed_out = self.partial.len();
            return Some(LineEvent::Line(&self.partial));
        }
    }

    /// The line that starts with `partial` and goes on in `input` is known to
    /// be longer than `max_line`. Rejecting it, skip `input` to `after_lf`
    /// (the input after the line's LF; `None` while the LF is still to come,
    /// which is then skipped to as it arrives) and report it. Splitting it, hand out its next `max_line` bytes as a
    /// piece: from the input without a copy when nothing is kept from
    /// earlier chunks, else from `partial`; the rest of the line, LF
    /// included, stays in `input` (and `partial`) for the next call.
    fn over_long_line<'s, 'd: 's>(
        &'s mut self,
        input: &mut &'d [u8],
        after_lf: Option<&'d [u8]>,
    ) -> LineEvent<'s> {
        match self.over_long {
            OverLongLine::Reject => {
                self.release_partial();
                self.discarding = after_lf.is_none();
                *input = after_lf.unwrap_or_default();
                LineEvent::TooLong
            }
            OverLongLine::Split => {
                let max = self.max_line;
                let data: &'d [u8] = input;
                if self.partial.is_empty() {
                    let (piece, rest) = data.split_at(max);
                    *input = rest;
                    return LineEvent::Line(piece);
                }
                let from_input = max.saturating_sub(self.partial.len());
                self.append_partial(&data[..from_input]);
                *input = &data[from_input..];
                self.handed_out = max;
                LineEvent::Line(&self.partial[..max])
            }
        }
    }

    /// The input has ended: the unfinished line, if any, is a final line
    /// (with a trailing CR dropped), or too long. Call until `None`: a
    /// splitting framer may have a piece and then the rest of the line.
    pub fn finish(&mut self) -> Option<LineEvent<'_>> {
        self.forget_handed_out();
        if self.discarding {
            // Already reported when it began.
            self.discarding = false;
            return None;
        }
        if self.partial.is_empty() {
            return None;
        }
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        if self.partial.len() > self.max_line {
            if self.over_long == OverLongLine::Reject {
                self.release_partial();
                return Some(LineEvent::TooLong);
            }
            return Some(self.over_long_line(&mut &[][..], Some(&[])));
        }
        self.handed_out = self.partial.len();
        Some(LineEvent::Line(&self.partial))
    }

    /// Feed one chunk and call `on_event` for each line or error in it: a
    /// convenience over [`next_event`](Self::next_event) for callers that
    /// need nothing else borrowed while they handle a line.
    pub fn push(&mut self, mut data: &[u8], mut on_event: impl FnMut(LineEvent<'_>)) {
        while let Some(event) = self.next_event(&mut data) {
            on_event(event);
        }
    }

    /// Feed one chunk to a splitting framer ([`LineFramer::splitting`]) and
    /// hand each line, or piece of an over-long line, to `on_line`.
    pub fn push_lines(&mut self, data: &[u8], mut on_line: impl FnMut(&[u8])) {
        assert_eq!(
            self.over_long,
            OverLongLine::Split,
            "only a splitting framer reports nothing but lines"
        );
        self.push(data, |event| {
            if let LineEvent::Line(line) = event {
                on_line(line);
            }
        });
    }

    /// The input of a splitting framer has ended: hand its last line (or
    /// the pieces of it) to `on_line`.
    pub fn finish_lines(&mut self, mut on_line: impl FnMut(&[u8])) {
        assert_eq!(self.over_long, OverLongLine::Split);
        while let Some(event) = self.finish() {
            if let LineEvent::Line(line) = event {
                on_line(line);
            }
        }
    }

    /// Drop the line (or piece) handed out by the last call.
    fn forget_handed_out(&mut self) {
        match self.handed_out {
            0 => {}
            n if n == self.partial.len() => {
                self.handed_out = 0;
                self.release_partial();
            }
            n => {
                self.handed_out = 0;
                self.partial.drain(..n);
            }
        }
    }

    /// Append to the unfinished line, growing its buffer by doubling but
    /// never past `max_line + 1` bytes (the most it can ever need to hold).
    fn append_partial(&mut self, bytes: &[u8]) {
        let needed = self.partial.len() + bytes.len();
        if needed > self.partial.capacity() {
            let target = needed
                .max(self.partial.capacity() * 2)
                .max(64)
                .min(self.max_line.saturating_add(1))
                .max(needed);
            self.partial.reserve_exact(target - self.partial.len());
        }
        self.partial.extend_from_slice(bytes);
    }

    fn release_partial(&mut self) {
        if self.partial.capacity() > KEEP_PARTIAL_CAPACITY && !self.keep_buffer {
            self.partial = Vec::new();
        } else {
            self.partial.clear();
        }
    }
}

/// The line without one CR at its end.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the framer reports, owned, for comparing.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Line(Vec<u8>),
        TooLong,
    }

    fn own(event: LineEvent<'_>) -> Owned {
        match event {
            LineEvent::Line(l) => Owned::Line(l.to_vec()),
            LineEvent::TooLong => Owned::TooLong,
        }
    }

    /// Feed `chunks` then end the input; every event, and the most bytes the
    /// framer ever held.
    fn frame(max_line: usize, chunks: &[&[u8]]) -> (Vec<Owned>, usize) {
        let mut framer = LineFramer::new(max_line);
        let mut events = Vec::new();
        let mut most_held = 0;
        for chunk in chunks {
            framer.push(chunk, |e| events.push(own(e)));
            most_held = most_held.max(framer.partial.len());
        }
        if let Some(e) = framer.finish() {
            events.push(own(e));
        }
        (events, most_held)
    }

    /// The obvious splitter, on the whole input at once: the model the
    /// framer must agree with.
    fn reference(max_line: usize, input: &[u8], at_end: bool) -> Vec<Owned> {
        let mut events = Vec::new();
        let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let tail = pieces.pop().unwrap_or(&[]);
        let judge = |piece: &[u8]| {
            let line = piece.strip_suffix(b"\r").unwrap_or(piece);
            if line.len() > max_line {
                Owned::TooLong
            } else {
                Owned::Line(line.to_vec())
            }
        };
        for piece in pieces {
            events.push(judge(piece));
        }
        if at_end && !tail.is_empty() {
            events.push(judge(tail));
        } else if !at_end && tail.len() > max_line + 1 {
            // Known to be too long before its LF arrives.
            events.push(Owned::TooLong);
        }
        events
    }

    #[test]
    fn splits_lines_and_drops_one_cr_before_lf() {
        let (events, _) = frame(10, &[b"a\nbc\r\n\n\r\nx\ry\n"]);
        assert_eq!(
            events,
            vec![
                Owned::Line(b"a".to_vec()),
                Owned::Line(b"bc".to_vec()),
                Owned::Line(b"".to_vec()),
                Owned::Line(b"".to_vec()),
                Owned::Line(b"x\ry".to_vec()),
            ]
        );
        let (events, _) = frame(10, &[b"a\r\r\n"]);
        assert_eq!(events, vec![Owned::Line(b"a\r".to_vec())]);
    }

    #[test]
    fn joins_a_line_split_over_chunks_and_a_cr_split_from_its_lf() {
        let (events, _) = frame(10, &[b"he", b"l", b"lo\r", b"\nwor", b"ld\n"]);
        assert_eq!(
            events,
            vec![
                Owned::Line(b"hello".to_vec()),
                Owned::Line(b"world".to_vec())
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_max_line_passes_and_one_more_byte_does_not() {
        let (events, _) = frame(3, &[b"abc\nabcd\nabc\r\n"]);
        assert_eq!(
            events,
            vec![
                Owned::Line(b"abc".to_vec()),
                Owned::TooLong,
                Owned::Line(b"abc".to_vec())
            ]
        );
        let (events, _) = frame(3, &[b"ab", b"c\r", b"\nab", b"cd\n"]);
        assert_eq!(events, vec![Owned::Line(b"abc".to_vec()), Owned::TooLong]);
    }

    #[test]
    fn a_too_long_line_is_reported_once_and_skipped_to_its_lf() {
        let mut framer = LineFramer::new(4);
        let mut events = Vec::new();
        framer.push(b"ok\n0123", |e| events.push(own(e)));
        framer.push(b"45678", |e| events.push(own(e)));
        assert!(framer.is_discarding());
        for _ in 0..1000 {
            framer.push(&[b'x'; 1000], |e| events.push(own(e)));
            assert_eq!(framer.buffered(), 0, "a skipped line is not kept");
        }
        framer.push(b"yyy\nnext\n", |e| events.push(own(e)));
        assert_eq!(
            events,
            vec![
                Owned::Line(b"ok".to_vec()),
                Owned::TooLong,
                Owned::Line(b"next".to_vec())
            ]
        );
    }

    #[test]
    fn finish_returns_a_final_line_without_lf() {
        assert_eq!(
            frame(10, &[b"a\nlast"]).0.last(),
            Some(&Owned::Line(b"last".to_vec()))
        );
        assert_eq!(
            frame(10, &[b"last\r"]).0,
            vec![Owned::Line(b"last".to_vec())]
        );
        assert_eq!(frame(10, &[b"a\n"]).0, vec![Owned::Line(b"a".to_vec())]);
        assert_eq!(frame(2, &[b"abc"]).0, vec![Owned::TooLong]);
        assert_eq!(frame(2, &[b"abcdef"]).0, vec![Owned::TooLong]);
    }

    #[test]
    fn lines_and_pieces_inside_a_chunk_are_not_copied() {
        let cases = [
            (LineFramer::new(10), &b"one\ntwo\n"[..], &b"one"[..]),
            (LineFramer::splitting(4), b"0123456789\n", b"0123"),
        ];
        for (mut framer, input, first) in cases {
            let mut rest = input;
            let Some(LineEvent::Line(line)) = framer.next_event(&mut rest) else {
                panic!("expected a line");
            };
            assert_eq!(line, first);
            assert_eq!(line.as_ptr(), input.as_ptr(), "a slice of the input");
            assert_eq!(framer.partial.capacity(), 0, "no buffer allocated");
        }
    }

    #[test]
    fn a_long_finished_partial_line_gives_its_buffer_back() {
        let mut framer = LineFramer::new(4096);
        framer.push(&[b'a'; 3000], |_| {});
        framer.push(b"\n", |_| {});
        framer.push(b"", |_| {});
        assert_eq!(framer.partial.capacity(), 0);
    }

    /// Feed `chunks` to a splitting framer then end the input; every line
    /// (or piece), and the most bytes the framer ever held.
    fn split(max_line: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
        let mut framer = LineFramer::splitting(max_line);
        let mut lines = Vec::new();
        let mut most_held = 0;
        for chunk in chunks {
            framer.push_lines(chunk, |l| lines.push(l.to_vec()));
            most_held = most_held.max(framer.partial.len());
        }
        framer.finish_lines(|l| lines.push(l.to_vec()));
        (lines, most_held)
    }

    /// The splitting rule on the whole input at once: every line, without
    /// one CR before its LF, cut into pieces of `max_line` bytes.
    fn split_reference(max_line: usize, input: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if pieces.last().is_some_and(|tail| tail.is_empty()) {
            pieces.pop();
        }
        for piece in pieces {
            let line = strip_cr(piece);
            if line.is_empty() {
                lines.push(Vec::new());
            }
            lines.extend(line.chunks(max_line).map(<[u8]>::to_vec));
        }
        lines
    }

    #[test]
    fn splitting_hands_a_long_line_out_in_pieces_and_loses_nothing() {
        let (lines, _) = split(4, &[b"abcdefghij\nxy\n"]);
        assert_eq!(lines, [&b"abcd"[..], b"efgh", b"ij", b"xy"]);
        let (lines, _) = split(4, &[b"ab", b"cdef", b"\n"]);
        assert_eq!(lines, [&b"abcd"[..], b"ef"]);
        // A CR before the LF is not part of the line, wherever it falls.
        let (lines, _) = split(4, &[b"abcd\r", b"\nabcde\r\n"]);
        assert_eq!(lines, [&b"abcd"[..], b"abcd", b"e"]);
        let (lines, _) = split(4, &[b"he", b"llo\r\nwor", b"ld\n", b"\n", b"tail"]);
        assert_eq!(lines, [&b"hell"[..], b"o", b"worl", b"d", b"", b"tail"]);
    }

    #[test]
    fn a_preallocated_framer_keeps_its_buffer() {
        let mut framer = LineFramer::new(4096).preallocated();
        let capacity = framer.partial.capacity();
        assert!(capacity > 4096);
        framer.push(&[b'a'; 3000], |_| {});
        framer.push(b"\n", |_| {});
        framer.push(b"", |_| {});
        assert_eq!(framer.partial.capacity(), capacity, "not freed, not grown");
    }

    proptest! {
        /// Any chunking of any input gives the reference splitter's events
        /// (and, splitting, the reference pieces), and the framer never holds
        /// more than `max_line + 1` bytes.
        #[test]
        fn any_chunking_agrees_with_the_reference(
            input in proptest::collection::vec(
                prop_oneof![4 => Just(b'a'), 2 => Just(b'\n'), 2 => Just(b'\r'), 1 => any::<u8>()],
                0..200,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..20),
            max_line in 0usize..12,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.push(0);
            cuts.push(input.len());
            cuts.sort_unstable();
            let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &input[w[0]..w[1]]).collect();
            let (events, most_held) = frame(max_line, &chunks);
            prop_assert_eq!(events, reference(max_line, &input, true));
            prop_assert!(most_held <= max_line + 1, "held {} bytes", most_held);
            if max_line > 0 {
                let (lines, most_held) = split(max_line, &chunks);
                prop_assert_eq!(lines, split_reference(max_line, &input));
                prop_assert!(most_held <= max_line + 1, "split: held {} bytes", most_held);
            }
        }

        /// Before the input ends, exactly the lines whose LF arrived (and a
        /// tail already too long) are reported.
        #[test]
        fn before_the_end_only_finished_lines_are_reported(
            input in proptest::collection::vec(
                prop_oneof![4 => Just(b'b'), 1 => Just(b'\n'), 1 => Just(b'\r')],
                0..100,
            ),
            split in 0usize..100,
            max_line in 0usize..8,
        ) {
            let split = split.min(input.len());
            let mut framer = LineFramer::new(max_line);
            let mut events = Vec::new();
            framer.push(&input[..split], |e| events.push(own(e)));
            framer.push(&input[split..], |e| events.push(own(e)));
            prop_assert_eq!(events, reference(max_line, &input, false));
        }
    }
}
