//! What the load generator puts on the wire, and how it checks what comes
//! back: every message is a pure function of its sequence number and its send
//! timestamp, so the bench never stores a copy of what it sent and can still
//! compare every reply byte for byte.
//!
//! Two formats:
//!
//! - [`Format::Binary`] (TCP and UDP echo): the sequence number and the send
//!   time as two little-endian `u64`s (16 bytes), then filler bytes that
//!   depend on both the offset and the sequence number. A message shorter than
//!   16 bytes carries only the first bytes of that header; over TCP that is
//!   still checkable, because the stream keeps order and the bench knows what
//!   it sent in each position.
//! - [`Format::Text`] (chat): the same two numbers as 32 lowercase hex digits,
//!   then printable filler, then LF. Only letters, digits, `-` and `_`, so the
//!   chat server relays it unchanged.
//!
//! Producing and checking work on any byte range of a message (`offset` is
//! the position within the message), because a TCP read can end anywhere:
//! nothing here allocates, and a check costs a few vectorised compares.

/// Bytes of the binary header: sequence number and send time, `u64` LE each.
pub const BINARY_HEADER: usize = 16;
/// Characters of the text header: sequence number and send time, 16 hex
/// digits each.
pub const TEXT_HEADER: usize = 32;

/// How one message is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `size` bytes of binary payload (TCP and UDP echo).
    Binary {
        /// Bytes per message.
        size: usize,
    },
    /// `size` bytes of printable text and a trailing LF (chat lines).
    Text {
        /// Bytes per line, without the LF. At least [`TEXT_HEADER`].
        size: usize,
    },
}

/// The printable alphabet of text filler: 64 characters, so an index is a
/// mask away. None of them is special to the chat server.
const TEXT_ALPHABET: &[u8; 64] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

/// A byte that depends on its position (so that a shifted or reordered stream
/// is caught) and on the sequence number (so that a stale copy of another
/// message is caught too).
#[inline]
fn mix(seq: u64, offset: usize) -> u8 {
    let spread = (offset as u32).wrapping_mul(0x9E37_79B1) >> 24;
    (spread as u8) ^ (seq as u8).wrapping_mul(0x5B)
}

impl Format {
    /// Bytes of one whole message on the wire (the LF included for text).
    pub fn wire_len(&self) -> usize {
        match *self {
            Format::Binary { size } => size,
            Format::Text { size } => size + 1,
        }
    }

    fn header(&self, seq: u64, sent_ns: u64) -> ([u8; TEXT_HEADER], usize) {
        let mut h = [0u8; TEXT_HEADER];
        match self {
            Format::Binary { .. } => {
                h[..8].copy_from_slice(&seq.to_le_bytes());
                h[8..16].copy_from_slice(&sent_ns.to_le_bytes());
                (h, BINARY_HEADER)
            }
            Format::Text { .. } => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for (i, value) in [seq, sent_ns].into_iter().enumerate() {
                    for d in 0..16 {
                        h[i * 16 + d] = HEX[((value >> (60 - 4 * d)) & 0xf) as usize];
                    }
                }
                (h, TEXT_HEADER)
            }
        }
    }

    /// Write bytes `offset..offset + out.len()` of message `seq` sent at
    /// `sent_ns` into `out`. The range must lie within [`wire_len`](Self::wire_len).
    pub fn fill(&self, seq: u64, sent_ns: u64, offset: usize, out: &mut [u8]) {
        debug_assert!(offset + out.len() <= self.wire_len());
        let (header, header_len) = self.header(seq, sent_ns);
        for (i, byte) in out.iter_mut().enumerate() {
            let at = offset + i;
            *byte = if at < header_len {
                header[at]
            } else {
                match *self {
                    Format::Binary { .. } => mix(seq, at),
                    Format::Text { size } if at == size => b'\n',
                    Format::Text { .. } => TEXT_ALPHABET[(mix(seq, at) & 63) as usize],
                }
            };
        }
    }

    /// Whether `chunk` equals bytes `offset..offset + chunk.len()` of message
    /// `seq` sent at `sent_ns`. A chunk running past the end of the message
    /// never matches.
    pub fn matches(&self, seq: u64, sent_ns: u64, offset: usize, chunk: &[u8]) -> bool {
        if offset + chunk.len() > self.wire_len() {
            return false;
        }
        // Produce the expected bytes in stack-sized pieces and compare slices:
        // the compare is a memcmp, and no buffer is allocated.
        let mut expected = [0u8; 256];
        let mut done = 0;
        while done < chunk.len() {
            let n = (chunk.len() - done).min(expected.len());
            self.fill(seq, sent_ns, offset + done, &mut expected[..n]);
            if expected[..n] != chunk[done..done + n] {
                return false;
            }
            done += n;
        }
        true
    }
}

/// The sequence number a binary message claims to carry, if it is long enough
/// to carry one. UDP replies can come back in any order (or not at all), so
/// the bench reads the number to know which message a reply answers, then
/// checks the whole datagram with [`Format::matches`].
pub fn binary_seq(message: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = message.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(format: Format, seq: u64, ts: u64) -> Vec<u8> {
        let mut v = vec![0u8; format.wire_len()];
        format.fill(seq, ts, 0, &mut v);
        v
    }

    #[test]
    fn binary_header_carries_seq_and_timestamp() {
        let f = Format::Binary { size: 64 };
        let m = whole(f, 0x0102_0304_0506_0708, 99);
        assert_eq!(binary_seq(&m), Some(0x0102_0304_0506_0708));
        assert_eq!(u64::from_le_bytes(m[8..16].try_into().unwrap()), 99);
        assert!(f.matches(0x0102_0304_0506_0708, 99, 0, &m));
        assert_eq!(binary_seq(&m[..7]), None);
    }

    #[test]
    fn text_is_printable_and_ends_with_one_lf() {
        let f = Format::Text { size: 100 };
        let m = whole(f, 42, 0xdead_beef);
        assert_eq!(m.len(), 101);
        assert_eq!(&m[..32], b"000000000000002a00000000deadbeef");
        assert_eq!(m[100], b'\n');
        assert!(m[..100]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
    }

    #[test]
    fn every_single_byte_flip_is_caught() {
        for f in [
            Format::Binary { size: 1 },
            Format::Binary { size: 5 },
            Format::Binary { size: 300 },
            Format::Text { size: 40 },
        ] {
            let good = whole(f, 7, 123_456);
            assert!(f.matches(7, 123_456, 0, &good));
            for i in 0..good.len() {
                let mut bad = good.clone();
                bad[i] ^= 0x20;
                assert!(!f.matches(7, 123_456, 0, &bad), "{f:?} flip at {i}");
            }
        }
    }

    #[test]
    fn another_message_or_timestamp_does_not_match() {
        let f = Format::Binary { size: 64 };
        let m = whole(f, 10, 5);
        assert!(!f.matches(11, 5, 0, &m));
        assert!(!f.matches(10, 6, 0, &m));
        // Even the filler alone tells messages apart.
        assert!(!f.matches(11, 5, 16, &m[16..]));
        let t = Format::Text { size: 64 };
        let m = whole(t, 10, 5);
        assert!(!t.matches(10, 6, 0, &m));
    }

    #[test]
    fn a_message_checks_in_any_split() {
        let f = Format::Binary { size: 700 };
        let m = whole(f, 3, 4);
        for cut in [0, 1, 15, 16, 17, 255, 256, 257, 699, 700] {
            assert!(f.matches(3, 4, 0, &m[..cut]), "head {cut}");
            assert!(f.matches(3, 4, cut, &m[cut..]), "tail {cut}");
        }
        let mut piece = [0u8; 10];
        f.fill(3, 4, 500, &mut piece);
        assert_eq!(&piece[..], &m[500..510]);
    }

    #[test]
    fn bytes_past_the_end_never_match() {
        let f = Format::Binary { size: 8 };
        let mut m = whole(f, 1, 1);
        m.push(0);
        assert!(!f.matches(1, 1, 0, &m));
        assert!(!f.matches(1, 1, 8, &[0]));
    }

    #[test]
    fn a_shifted_stream_is_caught() {
        // Two back-to-back messages read one byte off: what an echo server
        // that dropped or inserted one byte would produce.
        let f = Format::Binary { size: 32 };
        let mut stream = whole(f, 0, 1);
        stream.extend(whole(f, 1, 2));
        assert!(!f.matches(0, 1, 0, &stream[1..33]));
        assert!(!f.matches(1, 2, 0, &stream[31..63]));
    }
}
