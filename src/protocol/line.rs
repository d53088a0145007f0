//! Line framing, sans-IO: bytes in any chunking go in, complete lines come
//! out. (Minimal version; issue 3 completes it.)

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A complete line, without its LF (and without a CR before it).
    Line(&'a [u8]),
    /// A line longer than the limit was skipped up to its LF.
    TooLong,
}

/// Splits a byte stream into LF-terminated lines of at most `max_line` bytes.
pub struct LineFramer {
    max_line: usize,
    partial: Vec<u8>,
    discarding: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max_line` bytes (without the ending).
    pub fn new(max_line: usize) -> LineFramer {
        LineFramer {
            max_line,
            partial: Vec::new(),
            discarding: false,
        }
    }

    /// Feed bytes; `on_event` is called for each line or error found.
    pub fn push(&mut self, mut data: &[u8], mut on_event: impl FnMut(LineEvent<'_>)) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    if self.discarding {
                        self.discarding = false;
                        on_event(LineEvent::TooLong);
                    } else {
                        self.partial.extend_from_slice(&data[..i]);
                        if self.partial.last() == Some(&b'\r') {
                            self.partial.pop();
                        }
                        if self.partial.len() > self.max_line {
                            on_event(LineEvent::TooLong);
                        } else {
                            on_event(LineEvent::Line(&self.partial));
                        }
                        self.partial.clear();
                    }
                    data = &data[i + 1..];
                }
                None => {
                    if !self.discarding {
                        self.partial.extend_from_slice(data);
                        if self.partial.len() > self.max_line + 1 {
                            self.partial.clear();
                            self.discarding = true;
                        }
                    }
                    data = &[];
                }
            }
        }
    }
}
