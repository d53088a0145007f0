//! The `line_framing` target: arbitrary bytes, cut into arbitrary chunks,
//! through [`LineFramer`], against [`NaiveFramer`] on the same bytes.
//!
//! Checked after every chunk: the framer reported exactly the events the
//! naive splitter reports for the bytes so far (so the `--max-line` rule,
//! "report once, skip to the next LF", holds at every chunk boundary, not
//! only at the end); it holds exactly the naive splitter's unfinished line,
//! never more than `max_line + 1` bytes (checked after every event too);
//! and a line lying wholly inside one chunk is handed out as a slice of that
//! chunk (the zero-copy promise). At the end, `finish` gives the naive
//! splitter's final line.

use crate::protocol::line::{LineEvent, LineFramer};
use crate::testing::{chunks, show, NaiveEvent, NaiveFramer};

/// One run of the framer.
#[derive(Debug, Clone)]
pub struct LineFramingInput {
    /// `--max-line`, small so that too-long lines are common.
    pub max_line: u8,
    /// How the input is cut into reads (see [`chunks`]).
    pub chunk_lens: Vec<u8>,
    /// The byte stream.
    pub data: Vec<u8>,
}

/// Decodes fuzzer bytes the way a reader of a seed file expects: the first
/// byte is `max_line`, a length taken from the last byte (or two) gives the
/// chunk lengths that follow the first byte, and every other byte is the
/// stream itself, as it is (a derived `Vec<u8>` would interleave a
/// "one more?" byte between bytes, which makes seed files unreadable and
/// mutations of the stream clumsy).
#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for LineFramingInput {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let max_line = u.arbitrary()?;
        let chunk_lens = <&[u8]>::arbitrary(u)?.to_vec();
        let data = u.bytes(u.len())?.to_vec();
        Ok(LineFramingInput {
            max_line,
            chunk_lens,
            data,
        })
    }
}

/// What the framer reported, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Line(Vec<u8>),
    TooLong,
}

fn from_model(event: &NaiveEvent) -> Seen {
    match event {
        NaiveEvent::Line { bytes, .. } => Seen::Line(bytes.clone()),
        NaiveEvent::TooLong => Seen::TooLong,
    }
}

/// Run `input` through the framer and the model; panics on any difference.
pub fn check(input: &LineFramingInput) {
    let max_line = usize::from(input.max_line);
    let bound = max_line + 1;
    let mut framer = LineFramer::new(max_line);
    let mut model = NaiveFramer::new(max_line);
    let mut chunk_start = 0;
    for (n, chunk) in chunks(&input.data, &input.chunk_lens)
        .into_iter()
        .enumerate()
    {
        let expected = model.push(chunk);
        let mut seen = Vec::new();
        let mut rest = chunk;
        while let Some(event) = framer.next_event(&mut rest) {
            let index = seen.len();
            seen.push(match event {
                LineEvent::Line(line) => {
                    if let Some(NaiveEvent::Line { start, .. }) = expected.get(index) {
                        if *start >= chunk_start {
                            assert_within(line, chunk, n);
                        }
                    }
                    Seen::Line(line.to_vec())
                }
                LineEvent::TooLong => Seen::TooLong,
            });
            assert!(
                framer.buffered() <= bound,
                "chunk {n}: the framer holds {} bytes, over max_line + 1 = {bound}",
                framer.buffered()
            );
        }
        let expected: Vec<Seen> = expected.iter().map(from_model).collect();
        assert_eq!(
            seen,
            expected,
            "chunk {n} ({}): framer events differ from the naive splitter's",
            show(chunk)
        );
        assert_eq!(
            framer.buffered(),
            model.held(),
            "chunk {n}: the framer holds a different unfinished line"
        );
        assert_eq!(
            framer.is_discarding(),
            model.is_discarding(),
            "chunk {n}: skipping a long line or not"
        );
        chunk_start += chunk.len();
    }
    let last = framer.finish().map(|event| match event {
        LineEvent::Line(line) => Seen::Line(line.to_vec()),
        LineEvent::TooLong => Seen::TooLong,
    });
    assert_eq!(
        last,
        model.finish().as_ref().map(from_model),
        "end of input: the final line differs"
    );
    assert_eq!(framer.buffered(), 0, "the framer is empty after finish");
    assert!(!framer.is_discarding(), "not skipping after finish");
}

/// Panics unless `line` points into `chunk` (no copy was made).
fn assert_within(line: &[u8], chunk: &[u8], n: usize) {
    let range = chunk.as_ptr_range();
    let line_range = line.as_ptr_range();
    assert!(
        range.start <= line_range.start && line_range.end <= range.end,
        "chunk {n}: the line {} lies inside the chunk but was copied",
        show(line)
    );
}
