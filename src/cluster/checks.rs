//! The invariants the cluster's fuzz targets check, as plain functions of
//! the fuzzer's bytes, so that `cargo test` replays the seed corpus through
//! exactly the code the fuzzer runs. Each panics, naming the broken rule,
//! when the rule does not hold.

use std::ops::RangeInclusive;

use super::resp::{self, Frame, MAX_FRAME};
use crate::protocol::chat::bus;
use crate::protocol::chat::cluster::ClusterRequest;
use crate::protocol::chat::{ChatLimits, ClientId, Effect, Hub};

/// What decoding a stream of bytes from Redis produced: the frames, then
/// how it ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    /// `None`: every byte was used or waits for more; `Some(at)`: an error
    /// after `at` bytes were used by whole frames.
    error_at: Option<usize>,
    /// Bytes used by whole frames.
    used: usize,
}

/// `resp_decode`: the first two bytes of `data` choose chunk sizes, the
/// rest is a byte stream from "Redis". Decoding it whole and decoding it as
/// it arrives in chunks must give the same frames and end the same way
/// (an error at the same frame, or the same unfinished tail). Never a panic.
pub fn resp_chunking(data: &[u8]) {
    let (pattern, stream) = data.split_at(data.len().min(2));
    let whole = decode_all(stream, &[stream.len().max(1)]);
    let sizes: Vec<usize> = pattern.iter().map(|&b| usize::from(b % 16) + 1).collect();
    let chunked = decode_all(stream, if sizes.is_empty() { &[1] } else { &sizes });
    assert_eq!(
        whole, chunked,
        "decoding depends on chunking (chunk sizes {sizes:?})"
    );
}

/// Feed `stream` in chunks cycling through `sizes`, decoding as much as
/// possible after each, as the link does.
fn decode_all(stream: &[u8], sizes: &[usize]) -> Outcome {
    let mut buffer = Vec::new();
    let mut frames = Vec::new();
    let mut used = 0;
    let mut fed = 0;
    let mut size = sizes.iter().cycle();
    while fed < stream.len() {
        let n = (*size.next().expect("cycle")).min(stream.len() - fed);
        buffer.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        loop {
            match resp::decode(&buffer) {
                Ok(Some((frame, n))) => {
                    assert!(n > 0 && n <= buffer.len(), "used {n} of {}", buffer.len());
                    frames.push(frame);
                    buffer.drain(..n);
                    used += n;
                }
                Ok(None) => {
                    assert!(buffer.len() <= MAX_FRAME, "unbounded unfinished frame");
                    break;
                }
                Err(_) => {
                    return Outcome {
                        frames,
                        error_at: Some(used),
                        used,
                    };
                }
            }
        }
    }
    Outcome {
        frames,
        error_at: None,
        used,
    }
}

/// `bus_decode`: any bytes decode to a message or an error, never a panic;
/// a message re-encodes to exactly the same bytes (the format is
/// canonical) and decodes again to the same message; a message's header is
/// what [`bus::peek_header`] reads.
pub fn bus_round_trip(data: &[u8]) {
    let Ok(message) = bus::decode(data) else {
        return;
    };
    let mut again = Vec::new();
    bus::encode(&message, &mut again).expect("a decoded message re-encodes");
    assert_eq!(again, data, "re-encoding changed the bytes of {message:?}");
    assert_eq!(bus::decode(&again).as_ref(), Ok(&message));
    assert!(again.len() <= bus::MAX_MESSAGE);
    assert_eq!(bus::peek_header(data), Some((message.server, message.seq)));
}

/// A chat hub of a cluster whose link is up and whose guest pool is full
/// (every claim it asked for granted), with no effects left to take: the
/// starting point of the hub's cluster checks and tests.
pub fn cluster_hub_ready(limits: ChatLimits) -> Hub {
    let mut hub = Hub::with_cluster(limits);
    hub.handle_link_up(false);
    answer_requests(&mut hub, Some(1..=16));
    hub
}

/// Take every effect out of `hub`, answering its requests as a link whose
/// Redis grants everything would: claims granted, guest blocks from
/// `guests` (once). Lines and closes are dropped.
fn answer_requests(hub: &mut Hub, mut guests: Option<RangeInclusive<u64>>) {
    while let Some(effect) = hub.poll_effect() {
        match effect {
            Effect::Send { .. } | Effect::Close { .. } => {}
            Effect::Cluster(ClusterRequest::Claim { name, token }) => {
                hub.handle_claimed(token, name, true)
            }
            Effect::Cluster(ClusterRequest::ReserveGuests { token, .. }) => {
                hub.handle_guests(token, guests.take())
            }
            Effect::Cluster(
                ClusterRequest::Publish(_)
                | ClusterRequest::Release { .. }
                | ClusterRequest::ReleaseFor { .. },
            ) => {}
        }
    }
}

/// `cluster_hub`: what other servers say, from bytes, to a cluster hub with
/// one local user. `data` is a series of records `[who, len, len bytes]`:
/// `who` picks one of three servers (`who % 3`), or says that server went
/// silent (`who` 0xF0 to 0xFF), or that the link went down and came back
/// (`who` 0xE0 to 0xEF); the bytes are a bus message as that server's
/// (malformed ones are skipped, as the link drops them). Never a panic; the
/// hub's tables always agree; the local user keeps its name and room, and
/// at the end, with every other server lost, is alone in `/who`.
pub fn cluster_hub(data: &[u8]) {
    let mut hub = cluster_hub_ready(ChatLimits { max_line: 256 });
    let me = ClientId(1);
    hub.handle_connect(me);
    answer_requests(&mut hub, None);
    let mut rest = data;
    while let [who, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        let server = 1 + u64::from(*who % 3);
        match *who {
            0xF0..=0xFF => hub.handle_server_lost(server),
            0xE0..=0xEF => {
                hub.handle_link_down(true);
                hub.handle_link_up(true);
            }
            _ => {
                if let Ok(mut message) = bus::decode(bytes) {
                    message.server = server;
                    hub.handle_bus(message);
                }
            }
        }
        answer_requests(&mut hub, None);
        hub.check_invariants();
        assert_eq!(
            hub.nick_of(me),
            Some("guest1"),
            "the local user kept its name"
        );
        assert_eq!(hub.room_of(me), Some("lobby"), "and its room");
    }
    for server in 1..=3 {
        hub.handle_server_lost(server);
    }
    answer_requests(&mut hub, None);
    hub.check_invariants();
    assert_eq!(hub.client_count(), 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checks_hold_on_simple_cases() {
        resp_chunking(b"\x03\x05+OK\r\n:12\r\n$5\r\nhello\r\n>2\r\n$1\r\na\r\n$-1\r\n");
        resp_chunking(b"\x00\x00$-1\r\n*-1\r\n");
        resp_chunking(b"\x01\x07$3\r\nab");
        resp_chunking(b"\x02\x02??");
        resp_chunking(b"");
        bus_round_trip(b"\x01\x0a\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02");
        bus_round_trip(b"garbage");
        cluster_hub(b"");
        cluster_hub(b"\x00\x05junk!\xf0\x00\xe0\x00");
    }
}
