//! The fuzz targets' invariants as proptest properties, so that `cargo test`
//! on stable checks them on every run, without cargo-fuzz or nightly.
//!
//! The checks themselves live in `sockloop::testing` (one place, shared with
//! fuzz/ and tests/sans_io/fuzz_regressions.rs); this file only generates inputs.
//! The generators aim where the bugs would be: small `--max-line` and
//! queue bounds so limits are hit, guarded ports, nicknames that collide,
//! real commands mixed with junk. Failures proptest finds are kept in
//! proptest-regressions/ and replayed first on every later run.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use sockloop::testing::chat_hub::{ChatHubInput, HubOp, LineOp, NameChoice};
use sockloop::testing::chat_model::Reason;
use sockloop::testing::chat_session::ChatSessionInput;
use sockloop::testing::client_lines::ClientLinesInput;
use sockloop::testing::echo_stream::{EchoOp, EchoStreamInput};
use sockloop::testing::line_framing::LineFramingInput;
use sockloop::testing::udp_echo::{DatagramSource, UdpEchoInput, UdpOp};
use sockloop::testing::{
    chat_hub, chat_session, client_lines, echo_stream, line_framing, udp_echo,
};

/// Bytes rich in line endings.
fn line_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![6 => Just(b'a'), 2 => Just(b'\n'), 2 => Just(b'\r'), 1 => any::<u8>()],
        0..max,
    )
}

fn chunk_lens() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![3 => 0u8..8, 1 => any::<u8>()], 0..12)
}

/// Text a user might type, control characters and other scripts included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z ]{0,10}",
        1 => "[\\x00-\\x1f\\x7f-\\x9f\\ta-z]{0,6}",
        1 => ".{0,6}",
    ]
}

fn name() -> impl Strategy<Value = NameChoice> {
    prop_oneof![
        4 => (any::<u8>(), any::<bool>()).prop_map(|(index, shout)| NameChoice::Pool { index, shout }),
        2 => any::<u8>().prop_map(NameChoice::Guest),
        1 => text().prop_map(NameChoice::Typed),
    ]
}

fn line_op() -> impl Strategy<Value = LineOp> {
    prop_oneof![
        4 => text().prop_map(LineOp::Say),
        2 => name().prop_map(LineOp::Nick),
        1 => Just(LineOp::Who),
        1 => Just(LineOp::Rooms),
        1 => Just(LineOp::Help),
        2 => (any::<bool>(), name()).prop_map(|(hash, room)| LineOp::Join { hash, room }),
        2 => (name(), text()).prop_map(|(to, text)| LineOp::Msg { to, text }),
        1 => text().prop_map(LineOp::Me),
        1 => text().prop_map(LineOp::Quit),
        1 => Just(LineOp::Bye),
    ]
}

fn reason() -> impl Strategy<Value = Reason> {
    prop_oneof![
        Just(Reason::Disconnected),
        Just(Reason::TooSlow),
        Just(Reason::IdleTimeout)
    ]
}

fn hub_op() -> impl Strategy<Value = HubOp> {
    prop_oneof![
        2 => Just(HubOp::Connect),
        12 => (any::<u8>(), line_op(), any::<bool>())
            .prop_map(|(client, line, crlf)| HubOp::Line { client, line, crlf }),
        2 => (any::<u8>(), line_bytes(40)).prop_map(|(client, bytes)| HubOp::Raw { client, bytes }),
        1 => any::<u8>().prop_map(|client| HubOp::Eof { client }),
        1 => (any::<u8>(), reason()).prop_map(|(client, reason)| HubOp::Disconnect { client, reason }),
        3 => (any::<u8>(), any::<u16>()).prop_map(|(client, bytes)| HubOp::Drain { client, bytes }),
    ]
}

/// A client's lines as one stream: the hub ops' lines, rendered, plus raw
/// bytes now and then.
fn chat_stream() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            6 => (line_op(), any::<bool>()).prop_map(|(line, crlf)| {
                let mut bytes = line.text().into_bytes();
                bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                bytes
            }),
            1 => line_bytes(50),
        ],
        0..20,
    )
    .prop_map(|lines| lines.concat())
}

fn source() -> impl Strategy<Value = DatagramSource> {
    let port = prop_oneof![
        2 => proptest::sample::select(vec![0u16, 7, 13, 17, 19]),
        1 => 0u16..25,
        3 => any::<u16>(),
    ];
    (any::<bool>(), 0u8..3, port).prop_map(|(v6, host, port)| DatagramSource { v6, host, port })
}

fn udp_op() -> impl Strategy<Value = UdpOp> {
    prop_oneof![
        6 => (source(), proptest::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(from, payload)| UdpOp::Datagram { from, payload }),
        2 => (0u8..4).prop_map(UdpOp::SendRoom),
        2 => Just(UdpOp::Writable),
    ]
}

fn echo_op() -> impl Strategy<Value = EchoOp> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..600).prop_map(EchoOp::Send),
        3 => (0u16..800).prop_map(EchoOp::Read),
        3 => prop_oneof![Just(0u16), 0u16..800].prop_map(EchoOp::Write),
        1 => Just(EchoOp::Shutdown),
        2 => (0u16..800).prop_map(EchoOp::RelayFill),
        2 => prop_oneof![Just(0u16), 0u16..800].prop_map(EchoOp::RelayDrain),
        1 => (0u16..300).prop_map(EchoOp::Spill),
    ]
}

proptest! {
    // Failing cases are saved (as seeds of proptest's generator) in
    // proptest-regressions/properties.txt, committed, and replayed first.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// `line_framing`: any chunking of any bytes gives the naive splitter's
    /// lines, at every chunk boundary, within `max_line + 1` bytes held.
    #[test]
    fn line_framing(
        max_line in prop_oneof![3 => 0u8..12, 1 => any::<u8>()],
        chunk_lens in chunk_lens(),
        data in line_bytes(400),
    ) {
        line_framing::check(&LineFramingInput { max_line, chunk_lens, data });
    }

    /// `echo_stream`: output equals input, the backlog stays under its bound.
    #[test]
    fn echo_stream(
        out_limit in prop_oneof![0u16..64, any::<u16>()],
        iovecs in any::<u8>(),
        ops in proptest::collection::vec(echo_op(), 0..40),
    ) {
        echo_stream::check(&EchoStreamInput { out_limit, iovecs, ops });
    }

    /// `udp_echo`: replies whole to their source, in order, queue bounded,
    /// guarded ports never answered.
    #[test]
    fn udp_echo(
        max_datagrams in any::<u8>(),
        max_bytes in prop_oneof![0u16..600, any::<u16>()],
        ops in proptest::collection::vec(udp_op(), 0..60),
    ) {
        udp_echo::check(&UdpEchoInput { max_datagrams, max_bytes, ops });
    }

    /// `chat_session`: one client's stream, any chunking: output well-formed
    /// and as the model says, errors change nothing, chunking changes
    /// nothing.
    #[test]
    fn chat_session(
        max_line in prop_oneof![3 => 24u8..80, 1 => any::<u8>()],
        chunk_lens in chunk_lens(),
        stream in chat_stream(),
    ) {
        chat_session::check(&ChatSessionInput { max_line, chunk_lens, stream });
    }

    /// `client_lines`: the clients' splitter agrees with the naive rule
    /// (long lines in pieces, nothing lost), printing is terminal-safe, and
    /// `bye` stops the typed stream at the right byte.
    #[test]
    fn client_lines(
        max in prop_oneof![3 => 0u8..8, 1 => any::<u8>()],
        chunk_lens in chunk_lens(),
        stream in proptest::collection::vec(
            prop_oneof![
                4 => line_bytes(12),
                1 => Just(b"bye\n".to_vec()),
                1 => Just(b"bye\r\n".to_vec()),
                1 => "[\\x00-\\x1f\\x7f-\\x9f\\ta-z]{0,6}\n".prop_map(String::into_bytes),
            ],
            0..12,
        ).prop_map(|parts| parts.concat()),
    ) {
        client_lines::check(&ClientLinesInput { max, chunk_lens, stream });
    }

    /// `chat_hub`: several clients, any interleaving: the hub agrees with
    /// the model after every step.
    #[test]
    fn chat_hub(
        max_line in prop_oneof![3 => 24u8..80, 1 => any::<u8>()],
        out_limit in prop_oneof![1 => 0u16..400, 2 => 400u16..4000, 1 => Just(u16::MAX)],
        shutdown_at_end in any::<bool>(),
        ops in proptest::collection::vec(hub_op(), 0..60),
    ) {
        chat_hub::check(&ChatHubInput { max_line, out_limit, shutdown_at_end, ops });
    }
}
