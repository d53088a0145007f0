//! RESP, the Redis wire protocol, sans-IO: commands out, replies and pub/sub
//! pushes in, on plain byte slices.
//!
//! Out: [`encode_command`] appends one command (an array of bulk strings,
//! the only form Redis accepts from clients) to the caller's buffer. It is a
//! few lines and allocates nothing, so it is written here rather than built
//! as a frame tree for a library encoder.
//!
//! In: [`decode`] looks at the start of the bytes received so far and says
//! either "not complete yet" (`Ok(None)`), or "here is one frame and it took
//! this many bytes", or "this is not RESP" (an error value: bytes from the
//! network never cause a panic). Parsing is done by the `redis-protocol`
//! crate, which understands RESP2 and RESP3; this module turns its frames
//! into a small [`Value`] of our own so the rest of the cluster code does not
//! depend on that crate's types, and separates out-of-band pushes (pub/sub
//! messages, RESP3 `>` frames) from replies.
//!
//! Two guards sit in front of the parser, because its input comes from the
//! network: a frame may not be longer than [`MAX_FRAME`] (the caller's input
//! buffer is bounded by it too), and aggregates may not nest deeper than
//! [`MAX_DEPTH`] (the parser recurses once per level, and a few bytes per
//! level would otherwise let a peer overflow the stack). Redis never sends
//! anything near either limit.

use redis_protocol::resp2::decode::decode as resp2_decode;
use redis_protocol::resp2::types::OwnedFrame as Resp2Frame;
use redis_protocol::resp3::decode::complete::decode as resp3_decode;
use redis_protocol::resp3::types::OwnedFrame;
use std::fmt;

/// The longest frame accepted from Redis. Bus messages are far smaller
/// (see [`bus::MAX_MESSAGE`](crate::protocol::chat::bus::MAX_MESSAGE)); replies to our own
/// commands are a few bytes.
pub const MAX_FRAME: usize = 4 << 20;

/// The deepest nesting of aggregates (arrays, maps, sets, pushes) accepted.
/// The deepest reply Redis sends us is two levels (a push of bulk strings;
/// the HELLO map holding a `modules` array).
pub const MAX_DEPTH: usize = 8;

/// Append one command, `args` as an array of bulk strings, to `out`.
///
/// ```
/// let mut out = Vec::new();
/// sockloop::cluster::resp::encode_command(&mut out, &[b"GET", b"k"]);
/// assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
/// ```
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "*{}\r\n", args.len());
    for arg in args {
        let _ = write!(out, "${}\r\n", arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The number of bytes [`encode_command`] appends for `args`, so a caller
/// can check a bound before encoding.
pub fn command_len(args: &[&[u8]]) -> usize {
    fn digits(mut n: usize) -> usize {
        let mut d = 1;
        while n >= 10 {
            n /= 10;
            d += 1;
        }
        d
    }
    let header = 3 + digits(args.len());
    header
        + args
            .iter()
            .map(|a| 1 + digits(a.len()) + 2 + a.len() + 2)
            .sum::<usize>()
}

/// One decoded RESP value. RESP2 and RESP3 types map onto it; sets become
/// arrays, verbatim strings and big numbers become bulk strings, and
/// attributes (RESP3 metadata Redis may attach to a reply) are dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+OK`: a simple string.
    Simple(Vec<u8>),
    /// `-ERR ...` or a RESP3 blob error: the error text.
    Error(Vec<u8>),
    /// `:42`.
    Int(i64),
    /// `$3 abc`, a verbatim string or a big number: bytes.
    Bulk(Vec<u8>),
    /// RESP3 `_`, or RESP2's null bulk string / null array.
    Null,
    /// RESP3 `#t` / `#f`.
    Bool(bool),
    /// RESP3 `,3.14`.
    Double(f64),
    /// An array or a set, in wire order.
    Array(Vec<Value>),
    /// A RESP3 map, in wire order (a repeated key keeps its first place).
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// The bytes of a simple or bulk string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(b) | Value::Bulk(b) => Some(b),
            _ => None,
        }
    }
}

/// A complete frame from Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The answer to the oldest command still waiting for one.
    Reply(Value),
    /// Out-of-band data (RESP3 `>`): pub/sub messages and (un)subscribe
    /// confirmations. Never the answer to a command.
    Push(Vec<Value>),
}

/// Bytes that are not RESP, or that break one of this module's guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// The parser rejected the bytes.
    Malformed(String),
    /// A frame is longer than [`MAX_FRAME`].
    TooLong,
    /// Aggregates nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A frame type a server never sends to a client (a streamed string, an
    /// inline `HELLO`).
    Unexpected(&'static str),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Malformed(why) => write!(f, "not RESP: {why}"),
            RespError::TooLong => write!(f, "a RESP frame longer than {MAX_FRAME} bytes"),
            RespError::TooDeep => write!(f, "RESP aggregates nested deeper than {MAX_DEPTH}"),
            RespError::Unexpected(what) => write!(f, "unexpected RESP frame: {what}"),
        }
    }
}

impl std::error::Error for RespError {}

/// Decode the first frame in `buf`: `Ok(None)` if it is not complete yet,
/// else the frame and how many bytes of `buf` it took. Call again on the
/// rest. The answer depends only on the bytes, never on how they arrived.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, RespError> {
    check_depth(buf)?;
    match resp3_decode(buf) {
        Ok(Some((frame, used))) => {
            if used > MAX_FRAME {
                return Err(RespError::TooLong);
            }
            let frame = match frame {
                OwnedFrame::Push { data, .. } => {
                    Frame::Push(data.into_iter().map(value).collect::<Result<_, _>>()?)
                }
                other => Frame::Reply(value(other)?),
            };
            Ok(Some((frame, used)))
        }
        Ok(None) if buf.len() > MAX_FRAME => Err(RespError::TooLong),
        Ok(None) => Ok(None),
        // RESP3 spells null `_`; RESP2's `$-1` and `*-1` are the one RESP2
        // form the RESP3 parser refuses (it reads -1 as "streamed"). A
        // server speaking RESP2 (before HELLO 3 is answered, or an old
        // one refusing it) may send them, so ask the RESP2 parser.
        Err(e) => match resp2_decode(buf) {
            Ok(Some((frame, used))) if used <= MAX_FRAME => {
                Ok(Some((Frame::Reply(resp2_value(frame)), used)))
            }
            // A prefix of `$-1\r\n` may look wrong to the RESP3 parser
            // and merely unfinished to the RESP2 one: wait for the rest
            // (bounded by MAX_FRAME like any unfinished frame).
            Ok(None) if buf.len() <= MAX_FRAME => Ok(None),
            _ => Err(RespError::Malformed(e.details().to_string())),
        },
    }
}

fn resp2_value(frame: Resp2Frame) -> Value {
    match frame {
        Resp2Frame::SimpleString(data) => Value::Simple(data),
        Resp2Frame::Error(text) => Value::Error(text.into_bytes()),
        Resp2Frame::Integer(n) => Value::Int(n),
        Resp2Frame::BulkString(data) => Value::Bulk(data),
        Resp2Frame::Array(items) => Value::Array(items.into_iter().map(resp2_value).collect()),
        Resp2Frame::Null => Value::Null,
    }
}

fn value(frame: OwnedFrame) -> Result<Value, RespError> {
    Ok(match frame {
        OwnedFrame::SimpleString { data, .. } => Value::Simple(data),
        OwnedFrame::SimpleError { data, .. } => Value::Error(data.into_bytes()),
        OwnedFrame::BlobError { data, .. } => Value::Error(data),
        OwnedFrame::BlobString { data, .. }
        | OwnedFrame::VerbatimString { data, .. }
        | OwnedFrame::BigNumber { data, .. } => Value::Bulk(data),
        OwnedFrame::Number { data, .. } => Value::Int(data),
        OwnedFrame::Null => Value::Null,
        OwnedFrame::Boolean { data, .. } => Value::Bool(data),
        OwnedFrame::Double { data, .. } => Value::Double(data),
        OwnedFrame::Array { data, .. } | OwnedFrame::Push { data, .. } => {
            Value::Array(data.into_iter().map(value).collect::<Result<_, _>>()?)
        }
        OwnedFrame::Set { data, .. } => {
            Value::Array(data.into_iter().map(value).collect::<Result<_, _>>()?)
        }
        OwnedFrame::Map { data, .. } => Value::Map(
            data.into_iter()
                .map(|(k, v)| Ok((value(k)?, value(v)?)))
                .collect::<Result<_, _>>()?,
        ),
        OwnedFrame::Hello { .. } => return Err(RespError::Unexpected("HELLO")),
        OwnedFrame::ChunkedString(_) => return Err(RespError::Unexpected("streamed string")),
    })
}

/// Refuse input whose aggregates nest deeper than [`MAX_DEPTH`], before the
/// (recursive) parser sees it.
///
/// This is a scan of frame headers only, not a parser: it follows the type
/// byte of each frame, skips bulk payloads by their declared length, and
/// keeps a stack of how many children each open aggregate still expects. It
/// stops quietly at anything it does not understand or at the end of the
/// bytes: the parser then gives the real answer (an error, or "incomplete").
fn check_depth(buf: &[u8]) -> Result<(), RespError> {
    // Children still expected by each open aggregate, innermost last.
    let mut open: [u64; MAX_DEPTH] = [0; MAX_DEPTH];
    let mut depth = 0;
    let mut at = 0;
    loop {
        let Some(&kind) = buf.get(at) else {
            return Ok(());
        };
        // A frame is a type byte, a header, then CRLF; anything shorter
        // (no CRLF yet, or a CRLF where the type byte should be) is for
        // the parser to judge.
        let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(());
        };
        if eol == 0 {
            return Ok(());
        }
        let header = &buf[at + 1..at + eol];
        at += eol + 2;
        let children = match kind {
            b'*' | b'~' | b'>' => parse_len(header),
            b'%' => parse_len(header).map(|n| n.saturating_mul(2)),
            // An attribute annotates the frame after it without being a
            // child of the enclosing aggregate; Redis sends none to a plain
            // pub/sub client, so it is refused rather than modelled.
            b'|' => return Err(RespError::Unexpected("attribute")),
            b'$' | b'!' | b'=' => {
                // `$-1` (null) and streamed strings have no payload here.
                if let Some(n) = parse_len(header) {
                    match usize::try_from(n)
                        .ok()
                        .and_then(|n| n.checked_add(2))
                        .and_then(|n| at.checked_add(n))
                    {
                        Some(end) => at = end,
                        None => return Ok(()),
                    }
                }
                Some(0)
            }
            _ => Some(0),
        };
        // A null (`*-1`) or streamed aggregate has no counted children.
        let children = children.unwrap_or(0);
        if children > 0 {
            if depth == MAX_DEPTH {
                return Err(RespError::TooDeep);
            }
            open[depth] = children;
            depth += 1;
            continue;
        }
        if !finish_child(&mut open, &mut depth) {
            return Ok(());
        }
    }
}

/// One child of the innermost open aggregate is complete: close every
/// aggregate that this completes. False when the top-level frame is done.
fn finish_child(open: &mut [u64], depth: &mut usize) -> bool {
    while *depth > 0 {
        open[*depth - 1] -= 1;
        if open[*depth - 1] > 0 {
            return true;
        }
        *depth -= 1;
    }
    false
}

fn parse_len(header: &[u8]) -> Option<u64> {
    if header.is_empty() || header.len() > 19 || !header.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(header).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(bytes: &[u8]) -> Frame {
        let (frame, used) = decode(bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        frame
    }

    #[test]
    fn decodes_replies_of_both_protocol_versions() {
        assert_eq!(one(b"+OK\r\n"), Frame::Reply(Value::Simple(b"OK".to_vec())));
        assert_eq!(
            one(b"-WRONGPASS invalid\r\n"),
            Frame::Reply(Value::Error(b"WRONGPASS invalid".to_vec()))
        );
        assert_eq!(one(b":7\r\n"), Frame::Reply(Value::Int(7)));
        assert_eq!(one(b"$-1\r\n"), Frame::Reply(Value::Null));
        assert_eq!(
            one(b"*2\r\n$-1\r\n:1\r\n"),
            Frame::Reply(Value::Array(vec![Value::Null, Value::Int(1)]))
        );
        assert_eq!(one(b"_\r\n"), Frame::Reply(Value::Null));
        assert_eq!(one(b"#t\r\n"), Frame::Reply(Value::Bool(true)));
        assert_eq!(
            one(b"%1\r\n$5\r\nproto\r\n:3\r\n"),
            Frame::Reply(Value::Map(vec![(
                Value::Bulk(b"proto".to_vec()),
                Value::Int(3)
            )]))
        );
        assert_eq!(
            one(b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"),
            Frame::Push(vec![
                Value::Bulk(b"message".to_vec()),
                Value::Bulk(b"c".to_vec()),
                Value::Bulk(b"hi".to_vec()),
            ])
        );
    }

    #[test]
    fn says_how_much_it_used_and_waits_for_the_rest() {
        let two = b":1\r\n:2\r\n";
        assert_eq!(decode(two).unwrap(), Some((Frame::Reply(Value::Int(1)), 4)));
        assert_eq!(decode(b"$5\r\nhel").unwrap(), None);
        assert_eq!(decode(b"").unwrap(), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b"?\r\n"[..], b"$x\r\n", b":abc\r\n", b"*1\r\n$?\r\n"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_the_parser_recurses() {
        let deep = b"*1\r\n".repeat(200_000);
        assert_eq!(decode(&deep), Err(RespError::TooDeep));
        // Deep through the last child of each level, too.
        let mut tail = Vec::new();
        for _ in 0..(MAX_DEPTH + 1) {
            tail.extend_from_slice(b"*2\r\n:1\r\n");
        }
        assert_eq!(decode(&tail), Err(RespError::TooDeep));
        // Exactly MAX_DEPTH levels is fine.
        let mut ok = b"*1\r\n".repeat(MAX_DEPTH);
        ok.extend_from_slice(b":5\r\n");
        assert!(decode(&ok).unwrap().is_some());
        // Many siblings are not depth.
        let mut wide = b"*100\r\n".to_vec();
        for _ in 0..100 {
            wide.extend_from_slice(b"*1\r\n:1\r\n");
        }
        assert!(decode(&wide).unwrap().is_some());
    }

    /// Found by the fuzzer: a line ending where a frame's type byte should
    /// be made the depth scan slice backwards.
    #[test]
    fn a_frame_starting_with_a_line_ending_is_an_error_not_a_panic() {
        assert!(decode(b"\r\n").is_err());
        assert!(decode(b"*1\r\n\r\n:1\r\n").is_err());
    }

    #[test]
    fn bulk_payloads_that_look_like_headers_are_skipped() {
        // A payload full of `*1\r\n` is data, not nesting.
        let payload = b"*1\r\n".repeat(50);
        let mut frame = Vec::new();
        encode_command(&mut frame, &[b"x", &payload]);
        let (f, used) = decode(&frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(
            f,
            Frame::Reply(Value::Array(vec![
                Value::Bulk(b"x".to_vec()),
                Value::Bulk(payload)
            ]))
        );
    }

    #[test]
    fn refuses_an_endless_frame() {
        let mut huge = b"$99999999\r\n".to_vec();
        huge.resize(MAX_FRAME + 1, b'a');
        assert_eq!(decode(&huge), Err(RespError::TooLong));
    }

    proptest! {
        /// Every command we encode decodes back to its arguments, and
        /// `command_len` predicts its size.
        #[test]
        fn commands_round_trip(args in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..40), 1..6)) {
            let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            let mut out = Vec::new();
            encode_command(&mut out, &refs);
            prop_assert_eq!(out.len(), command_len(&refs));
            let (frame, used) = decode(&out).unwrap().unwrap();
            prop_assert_eq!(used, out.len());
            let expected = Value::Array(args.into_iter().map(Value::Bulk).collect());
            prop_assert_eq!(frame, Frame::Reply(expected));
        }

        /// A prefix of a frame is never an error and never a frame.
        #[test]
        fn prefixes_are_incomplete(cut in 0usize..40) {
            let mut out = Vec::new();
            encode_command(&mut out, &[b"PUBLISH", b"chan", b"some payload"]);
            let cut = cut.min(out.len() - 1);
            prop_assert_eq!(decode(&out[..cut]), Ok(None));
        }
    }
}
