//! Every input the fuzzer ever found a fault with, replayed by `cargo test`
//! on stable, so a fixed bug stays fixed. Each file under
//! tests/sans_io/fuzz-regressions/TARGET/ is the raw input libFuzzer saved (an
//! artifact, usually minimized with `cargo fuzz tmin`); it is decoded
//! exactly as the fuzz target decodes it (the `arbitrary` feature of
//! `sockloop::testing`) and checked by the target's own `check`.
//!
//! To add one: copy the artifact to tests/sans_io/fuzz-regressions/TARGET/NAME, add
//! a test below with a line saying what it found, see it fail before the
//! fix and pass after (docs/fuzzing.md).
//!
//! The seed corpus in fuzz/corpus/ is replayed here too: every seed must
//! decode to what it was written as and pass, so seeds never silently rot.

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use sockloop::testing::chat_hub::ChatHubInput;
use sockloop::testing::chat_session::ChatSessionInput;
use sockloop::testing::client_lines::ClientLinesInput;
use sockloop::testing::echo_stream::EchoStreamInput;
use sockloop::testing::line_framing::LineFramingInput;
use sockloop::testing::udp_echo::UdpEchoInput;
use sockloop::testing::{
    chat_hub, chat_session, client_lines, echo_stream, line_framing, udp_echo,
};

/// Decode `bytes` exactly as the fuzz target does.
fn decode<'a, T: Arbitrary<'a>>(bytes: &'a [u8]) -> T {
    T::arbitrary_take_rest(Unstructured::new(bytes)).expect("the input decodes as for the fuzzer")
}

/// Decode `bytes` as the fuzz target does, and check it.
fn replay<'a, T: Arbitrary<'a>>(bytes: &'a [u8], check: fn(&T)) {
    check(&decode(bytes));
}

/// Replay every file in fuzz/corpus/`target`; the number replayed.
fn replay_corpus<T: for<'a> Arbitrary<'a> + std::fmt::Debug>(target: &str, check: fn(&T)) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a corpus entry").path();
        let bytes = std::fs::read(&path).expect("a seed file");
        let shown = format!("{:?}", decode::<T>(&bytes));
        assert!(
            shown.len() > 40,
            "{} decodes to almost nothing: {shown}",
            path.display()
        );
        // Shown with the panic message if the check fails.
        eprintln!("checking seed {}", path.display());
        replay::<T>(&bytes, check);
        count += 1;
    }
    count
}

#[test]
fn every_seed_decodes_and_passes() {
    assert!(replay_corpus::<LineFramingInput>("line_framing", line_framing::check) >= 3);
    assert!(replay_corpus::<ChatSessionInput>("chat_session", chat_session::check) >= 3);
    assert!(replay_corpus::<ChatHubInput>("chat_hub", chat_hub::check) >= 3);
    assert!(replay_corpus::<EchoStreamInput>("echo_stream", echo_stream::check) >= 2);
    assert!(replay_corpus::<UdpEchoInput>("udp_echo", udp_echo::check) >= 2);
    assert!(replay_corpus::<ClientLinesInput>("client_lines", client_lines::check) >= 3);
    assert!(
        replay_raw_corpus("reactor_sim", |bytes| {
            sockloop::testing::sim::run_bytes(bytes);
        }) >= 3
    );
}

/// Replay every file in fuzz/corpus/`target` for a target that takes raw
/// bytes; the number replayed.
fn replay_raw_corpus(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus folder") {
        let bytes = std::fs::read(entry.expect("a corpus entry").path()).expect("a seed");
        check(&bytes);
        n += 1;
    }
    n
}

/// The seeds decode to the scenarios fuzz/make_seeds.py says they are.
#[test]
fn seeds_decode_as_written() {
    let seed = |target: &str, name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus")
                .join(target)
                .join(name),
        )
        .expect("a seed")
    };
    let bytes = seed("line_framing", "split-reads");
    let input = decode::<LineFramingInput>(&bytes);
    assert_eq!(input.max_line, 4);
    assert_eq!(input.chunk_lens, [1, 2, 3, 0]);
    assert_eq!(input.data, b"ab\r\ncdefgh\nij\r\n\r");

    let bytes = seed("chat_hub", "nick-join-msg");
    let input = decode::<ChatHubInput>(&bytes);
    assert_eq!(
        (input.max_line, input.out_limit, input.shutdown_at_end),
        (64, 4000, false)
    );
    assert_eq!(input.ops.len(), 11);
    let shown = format!("{:?}", input.ops);
    assert!(
        shown.contains("Msg { to: Guest(2), text: \"psst\" }"),
        "{shown}"
    );
    assert!(
        shown.contains("Disconnect { client: 2, reason: IdleTimeout }"),
        "{shown}"
    );

    let bytes = seed("udp_echo", "guarded-ports");
    let input = decode::<UdpEchoInput>(&bytes);
    assert_eq!(input.ops.len(), 7);
}

/// reactor_sim found, in 20 s: with `--max-pending 100`, one echo client
/// reading all along got nothing for 2000 turns while other connections
/// took the headroom each time it freed up (the paused connections resumed
/// in the order they paused, and the first one read it all). Fixed by
/// giving each resumed connection an equal share of the room.
#[test]
fn reactor_sim_max_pending_echo_starvation() {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sans_io/fuzz-regressions/reactor_sim/max-pending-echo-starvation"),
    )
    .expect("the regression input");
    sockloop::testing::sim::run_bytes(&bytes);
}
