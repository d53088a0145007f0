//! What the load generator puts on the wire, and how it checks what comes
//! back: every message is a pure function of its sequence number and its send
//! timestamp, so the bench never stores a copy of what it sent and can still
//! compare every reply byte for byte.
//!
//! Two formats:
//!
//! - [`Format::Binary`] (TCP and UDP echo): the sequence number and the send
//!   time as two little-endian `u64`s (16 bytes), then filler bytes that
//!   depend on both the offset and the sequence number: a fixed 64 KiB table
//!   indexed by the offset, XORed with one key byte per message and per
//!   64 KiB block. A message shorter than
//!   16 bytes carries only the first bytes of that header; over TCP that is
//!   still checkable, because the stream keeps order and the bench knows what
//!   it sent in each position.
//! - [`Format::Text`] (chat): the same two numbers as 32 lowercase hex digits,
//!   then printable filler, then LF. Only letters, digits, `-` and `_`, so the
//!   chat server relays it unchanged.
//!
//! Producing and checking work on any byte range of a message (`offset` is
//! the position within the message), because a TCP read can end anywhere:
//! nothing here allocates, and there is no arithmetic per byte: producing is
//! a table copied with an XOR, checking is the same pass with an OR, both
//! compiled to wide vector operations (a bench that streams 64 KiB replies
//! spends far less on them than on the kernel's copies; docs/benchmarks.md,
//! "The load generator's own cost").

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

/// The filler repeats a table of this many bytes, XORed with a key per
/// message and per block of this size (see [`key`]).
const PERIOD: usize = 64 * 1024;

/// The position-dependent part of the filler: byte `i` is the top byte of
/// `i × 0x9E3779B1` (a Weyl sequence, so neighbouring bytes differ and a
/// shifted stream is caught). Built at compile time, so producing and
/// checking a message is a pass over a table that stays in cache, not
/// arithmetic per byte: a 64 KiB reply is checked with wide XORs.
static SPREAD: [u8; PERIOD] = spread_table();

const fn spread_table() -> [u8; PERIOD] {
    let mut table = [0u8; PERIOD];
    let mut i = 0;
    while i < PERIOD {
        table[i] = ((i as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8;
        i += 1;
    }
    table
}

/// What the filler of message `seq` is XORed with in its `block`-th
/// [`PERIOD`] bytes: depending on the sequence number, a stale copy of
/// another message is caught; depending on the block, so are two blocks of a
/// long message swapped. Block 0 adds nothing.
#[inline]
fn key(seq: u64, block: usize) -> u8 {
    let block_spread = ((block as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8;
    (seq as u8).wrapping_mul(0x5B) ^ block_spread
}

/// Visit the filler of message `seq` at `offset..offset + len` as runs that
/// stay inside one block: `visit(start, pattern, key)`, where `start` is the
/// run's position relative to `offset` and its bytes are `pattern[i] ^ key`.
/// Stops early, returning false, when `visit` does.
#[inline]
fn filler_runs(
    seq: u64,
    offset: usize,
    len: usize,
    mut visit: impl FnMut(usize, &'static [u8], u8) -> bool,
) -> bool {
    let mut done = 0;
    while done < len {
        let at = offset + done;
        let (block, from) = (at / PERIOD, at % PERIOD);
        let n = (PERIOD - from).min(len - done);
        if !visit(done, &SPREAD[from..from + n], key(seq, block)) {
            return false;
        }
        done += n;
    }
    true
}

/// The text filler character for one spread byte and key.
#[inline]
fn text_char(spread: u8, key: u8) -> u8 {
    TEXT_ALPHABET[((spread ^ key) & 63) as usize]
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

    /// How many of `len` bytes at `offset` are header, filler and (text)
    /// the final LF, in that order.
    fn parts(&self, header_len: usize, offset: usize, len: usize) -> (usize, usize, usize) {
        let head = header_len.saturating_sub(offset).min(len);
        let filler_end = match *self {
            Format::Binary { .. } => offset + len,
            Format::Text { size } => (offset + len).min(size),
        };
        let filler = filler_end.saturating_sub(offset + head);
        (head, filler, len - head - filler)
    }

    /// Write bytes `offset..offset + out.len()` of message `seq` sent at
    /// `sent_ns` into `out`. The range must lie within [`wire_len`](Self::wire_len).
    pub fn fill(&self, seq: u64, sent_ns: u64, offset: usize, out: &mut [u8]) {
        debug_assert!(offset + out.len() <= self.wire_len());
        let (header, header_len) = self.header(seq, sent_ns);
        let (head, filler, lf) = self.parts(header_len, offset, out.len());
        let (out_head, rest) = out.split_at_mut(head);
        out_head.copy_from_slice(&header[offset.min(header_len)..][..head]);
        let (out_filler, out_lf) = rest.split_at_mut(filler);
        let binary = matches!(self, Format::Binary { .. });
        filler_runs(seq, offset + head, filler, |start, pattern, key| {
            let run = &mut out_filler[start..start + pattern.len()];
            if binary {
                // Written as a plain loop over two slices so that it
                // compiles to wide XORs.
                for (byte, &spread) in run.iter_mut().zip(pattern) {
                    *byte = spread ^ key;
                }
            } else {
                for (byte, &spread) in run.iter_mut().zip(pattern) {
                    *byte = text_char(spread, key);
                }
            }
            true
        });
        debug_assert!(lf <= 1);
        out_lf.fill(b'\n');
    }

    /// Whether `chunk` equals bytes `offset..offset + chunk.len()` of message
    /// `seq` sent at `sent_ns`. A chunk running past the end of the message
    /// never matches.
    ///
    /// Nothing is produced to compare against: the header is compared as
    /// a slice, and the filler is checked against the `SPREAD` table
    /// directly, by OR-ing `byte ^ table ^ key` over each run, which the
    /// compiler turns into wide XORs and ORs with no branch per byte (a
    /// mismatch is rare, so the whole run is checked before looking).
    pub fn matches(&self, seq: u64, sent_ns: u64, offset: usize, chunk: &[u8]) -> bool {
        if offset + chunk.len() > self.wire_len() {
            return false;
        }
        let (header, header_len) = self.header(seq, sent_ns);
        let (head, filler, _) = self.parts(header_len, offset, chunk.len());
        let (chunk_head, rest) = chunk.split_at(head);
        if chunk_head != &header[offset.min(header_len)..][..head] {
            return false;
        }
        let (chunk_filler, chunk_lf) = rest.split_at(filler);
        let binary = matches!(self, Format::Binary { .. });
        let filler_ok = filler_runs(seq, offset + head, filler, |start, pattern, key| {
            let run = &chunk_filler[start..start + pattern.len()];
            let differ = if binary {
                run.iter()
                    .zip(pattern)
                    .fold(0u8, |acc, (&byte, &spread)| acc | (byte ^ spread ^ key))
            } else {
                run.iter().zip(pattern).fold(0u8, |acc, (&byte, &spread)| {
                    acc | (byte ^ text_char(spread, key))
                })
            };
            differ == 0
        });
        filler_ok && chunk_lf.iter().all(|&byte| byte == b'\n')
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

    use proptest::prelude::*;

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

    /// The formats defined byte by byte, the slow and obvious way, without
    /// the table: what `fill` and `matches` must agree with. For offsets
    /// below 64 KiB the filler is `mix(seq, at)` of the first version of the
    /// bench, so messages up to 64 KiB are what they always were.
    fn reference_byte(f: Format, seq: u64, ts: u64, at: usize) -> u8 {
        let weyl = |x: usize| ((x as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8;
        let filler = weyl(at % 65536) ^ (seq as u8).wrapping_mul(0x5B) ^ weyl(at / 65536);
        match f {
            Format::Binary { .. } if at < 8 => seq.to_le_bytes()[at],
            Format::Binary { .. } if at < 16 => ts.to_le_bytes()[at - 8],
            Format::Binary { .. } => filler,
            Format::Text { .. } if at < 32 => format!("{seq:016x}{ts:016x}").as_bytes()[at],
            Format::Text { size } if at == size => b'\n',
            Format::Text { .. } => TEXT_ALPHABET[(filler & 63) as usize],
        }
    }

    fn any_format() -> impl Strategy<Value = Format> {
        prop_oneof![
            (1usize..200_000).prop_map(|size| Format::Binary { size }),
            (32usize..70_000).prop_map(|size| Format::Text { size }),
        ]
    }

    /// A range of a message: anywhere, or straddling a 64 KiB block edge.
    fn any_range(f: Format) -> impl Strategy<Value = (usize, usize)> {
        let wire_len = f.wire_len();
        (0..wire_len, 0usize..4, 0usize..70, 0usize..3000).prop_map(
            move |(anywhere, block, before, len)| {
                let edge = (block * 65536).saturating_sub(before);
                let offset = if block == 0 || edge >= wire_len {
                    anywhere
                } else {
                    edge
                };
                (offset, len.min(wire_len - offset))
            },
        )
    }

    proptest! {
        #[test]
        fn fill_and_matches_agree_with_the_byte_by_byte_definition(
            (f, (offset, len)) in any_format().prop_flat_map(|f| (Just(f), any_range(f))),
            seq in any::<u64>(),
            ts in any::<u64>(),
            flip_at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let expected: Vec<u8> =
                (offset..offset + len).map(|at| reference_byte(f, seq, ts, at)).collect();
            let mut produced = vec![0u8; len];
            f.fill(seq, ts, offset, &mut produced);
            prop_assert_eq!(&produced, &expected);
            prop_assert!(f.matches(seq, ts, offset, &expected));
            if len > 0 {
                let mut bad = expected.clone();
                bad[flip_at.index(len)] ^= flip;
                prop_assert!(!f.matches(seq, ts, offset, &bad));
            }
        }
    }

    #[test]
    fn a_long_message_checks_across_block_edges_and_catches_swapped_blocks() {
        let f = Format::Binary {
            size: 3 * 65536 + 100,
        };
        let m = whole(f, 9, 8);
        for cut in [65535, 65536, 65537, 131072, 3 * 65536 + 99] {
            assert!(f.matches(9, 8, 0, &m[..cut]), "head {cut}");
            assert!(f.matches(9, 8, cut, &m[cut..]), "tail {cut}");
        }
        // The table repeats every 64 KiB; the key per block tells the
        // repetitions apart.
        let mut swapped = m.clone();
        swapped[65536..131072].copy_from_slice(&m[131072..196608]);
        swapped[131072..196608].copy_from_slice(&m[65536..131072]);
        assert!(!f.matches(9, 8, 0, &swapped));
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
