//! The build-it-yourself path (docs/build-your-own.md): every program in
//! examples/ serves the tutorial's client, here the real `sockloop send`,
//! and each idea the path adds is shown to matter by a test that breaks
//! without it.
//!
//! The examples are separate programs, started by PID on 127.0.0.1 port 0
//! (each prints `listening ADDR` once bound) and ended by PID. `cargo test`
//! builds them before any test runs; `cargo test --test binary examples::`
//! does not, so the first test to need them runs `cargo build --examples`
//! once (a no-op when they are fresh). Every wait has a deadline (`common::WAIT`, or
//! `send --timeout`); nothing sleeps a fixed time.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;

use common::{connect, pseudo_random_bytes, Lines};

const STEPS: [&str; 5] = [
    "step1_blocking",
    "step2_threads",
    "step3_poll",
    "step4_mio",
    "step5_budgets",
];

/// The example's executable, built beside this test's own (target/PROFILE/examples/).
fn example_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let deps = std::env::current_exe().unwrap();
    let profile_dir = deps.parent().unwrap().parent().unwrap().to_path_buf();
    BUILT.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--examples", "--quiet", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if profile_dir.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build --examples");
        assert!(status.success(), "cargo build --examples failed");
    });
    profile_dir.join("examples").join(name)
}

/// A running example, killed by its PID when dropped.
struct Example {
    child: Child,
    addr: SocketAddr,
    /// Its stdout after the `listening` line.
    out: Lines,
}

impl Example {
    fn start(name: &str, flags: &[&str]) -> Example {
        let mut child = Command::new(example_path(name))
            .arg("0")
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start example {name}: {e}"));
        let mut out = Lines::spawn(child.stdout.take().unwrap());
        let first = out
            .next_line()
            .expect("the example exited before listening");
        let addr = first
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("{name}: unexpected first line {first:?}"))
            .parse()
            .unwrap();
        Example { child, addr, out }
    }

    /// `sockloop send --to ADDR Hello,Server`: (exit code, stdout, stderr).
    fn send(&self, timeout_secs: &str) -> (Option<i32>, String, String) {
        let to = self.addr.to_string();
        let (status, out, err) = common::run(&[
            "send",
            "--to",
            &to,
            "--timeout",
            timeout_secs,
            "Hello,Server",
        ]);
        (status.code(), out, err)
    }

    fn expect_hello(&self, name: &str) {
        let (code, out, err) = self.send("10");
        assert_eq!(code, Some(0), "{name}: send failed: {err}");
        assert_eq!(out, "Received from server: Hello,Server\n", "{name}");
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        // Only the process this test started, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send `message` while reading the echo on another thread, shut down the
/// sending side, and return everything the server sent before closing.
fn round_trip(addr: SocketAddr, message: Vec<u8>) -> Vec<u8> {
    let mut conn = connect(addr);
    let mut writer = conn.try_clone().unwrap();
    let sending = thread::spawn(move || {
        writer.write_all(&message).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut echoed = Vec::new();
    conn.read_to_end(&mut echoed)
        .expect("read the echo to the end");
    sending.join().unwrap();
    echoed
}

#[test]
fn every_step_serves_the_tutorial_client() {
    for name in STEPS {
        let example = Example::start(name, &[]);
        example.expect_hello(name);
        example.expect_hello(name); // and the next client too
    }
}

#[test]
fn every_step_echoes_a_megabyte_exactly() {
    // Far more than any socket buffer: partial writes, many reads, and for
    // steps 3 to 5 output that waits in the server for the client to read.
    let message = pseudo_random_bytes(16, 1 << 20);
    for name in STEPS {
        let example = Example::start(name, &[]);
        let echoed = round_trip(example.addr, message.clone());
        assert!(echoed == message, "{name}: the echo differs from the input");
    }
}

#[test]
fn step1_a_silent_client_blocks_everyone_else() {
    let example = Example::start("step1_blocking", &[]);
    let silent = connect(example.addr);
    // The server sits in `read` on the silent client; the next one times out.
    let (code, _out, err) = example.send("1");
    assert_eq!(code, Some(1), "step 1 served a second client: {err}");
    // Once the silent client leaves, the server gets to the next one.
    drop(silent);
    example.expect_hello("step1_blocking");
}

#[test]
fn from_step2_on_a_silent_client_blocks_nobody() {
    for name in &STEPS[1..] {
        let example = Example::start(name, &[]);
        let silent = connect(example.addr);
        example.expect_hello(name);
        drop(silent);
    }
}

#[test]
fn from_step2_on_clients_are_served_at_once() {
    // Eight clients, all connected before any finishes.
    for name in &STEPS[1..] {
        let example = Example::start(name, &[]);
        let mut conns: Vec<TcpStream> = (0..8).map(|_| connect(example.addr)).collect();
        for (i, conn) in conns.iter_mut().enumerate() {
            conn.write_all(format!("client {i}").as_bytes()).unwrap();
            conn.shutdown(Shutdown::Write).unwrap();
        }
        for (i, conn) in conns.iter_mut().enumerate().rev() {
            let mut echoed = String::new();
            conn.read_to_string(&mut echoed).unwrap();
            assert_eq!(echoed, format!("client {i}"), "{name}");
        }
    }
}

/// Lines of step 4's stale-token demo, after `listening`.
fn stale_token_demo(flags: &[&str]) -> Vec<String> {
    let mut example = Example::start("step4_mio", flags);
    example.out.wait_eof();
    assert_eq!(
        common::wait_exit(&mut example.child).code(),
        Some(0),
        "the demo failed: {:?}",
        example.out.seen
    );
    example.out.seen.clone()
}

#[test]
fn step4_a_slot_freed_mid_batch_hands_a_stale_event_to_the_next_connection() {
    let lines = stale_token_demo(&["--demo-stale-token", "--free-at-once"]);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("accepted connection #2") && l.ends_with("into slot 0")),
        "B took A's slot at once: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("WRONG CONNECTION: an event meant for #1 reached #2")),
        "the stale event reached B: {lines:#?}"
    );
}

#[test]
fn step4_a_slot_freed_after_the_batch_never_sees_a_stale_event() {
    let lines = stale_token_demo(&["--demo-stale-token"]);
    let expected_in_order = [
        "closing connection #1, slot 0 stays taken until the sweep",
        "into slot 1",
        "event for token 0 ignored: connection #1 is closing",
        "swept connection #1, slot 0 is free",
        "A got back \"bye\"",
    ];
    let mut rest = lines.iter();
    for wanted in expected_in_order {
        assert!(
            rest.any(|l| l.contains(wanted)),
            "missing, or out of order: {wanted:?} in {lines:#?}"
        );
    }
    assert!(!lines.iter().any(|l| l.starts_with("WRONG")), "{lines:#?}");
}

/// Eight reads' worth of bytes at a budget of 1024 per turn, in one write:
/// on loopback it arrives as one segment, so one edge announces all of it.
const BURST: usize = 8 * 1024;

/// Wait for the read that spends the budget, then return the next `poll:`
/// line (what the loop does with the bytes it left unread).
fn after_budget_spent(example: &mut Example) -> (String, String) {
    let spent = example.out.wait_for("budget spent");
    let next = example.out.wait_for("poll:");
    (spent, next)
}

#[test]
fn step5_without_the_still_ready_list_the_loop_sleeps_on_unread_bytes() {
    let mut example = Example::start(
        "step5_budgets",
        &["--budget", "1024", "--no-still-ready", "--verbose"],
    );
    let mut client = connect(example.addr);
    client.write_all(&vec![b'x'; BURST]).unwrap();
    let (spent, next) = after_budget_spent(&mut example);
    // The lost wake-up: bytes still unread, and the loop asleep.
    assert!(spent.contains("read 1024 bytes (1024 in total)"), "{spent}");
    assert_eq!(
        next, "poll: sleeping until an event",
        "{:#?}",
        example.out.seen
    );
    // Only new input raises a new edge; it wakes the loop for one more budget.
    client.write_all(b"y").unwrap();
    let spent = example.out.wait_for("connection #1: read");
    assert_eq!(
        spent, "connection #1: read 1024 bytes (2048 in total), budget spent",
        "the next event reads where the last one stopped"
    );
}

#[test]
fn step5_with_the_still_ready_list_the_loop_comes_back_without_sleeping() {
    let mut example = Example::start("step5_budgets", &["--budget", "1024", "--verbose"]);
    let message = pseudo_random_bytes(5, BURST);
    let mut client = connect(example.addr);
    client.write_all(&message).unwrap();
    let (_, next) = after_budget_spent(&mut example);
    assert_eq!(next, "poll: not sleeping, 1 still ready");
    client.shutdown(Shutdown::Write).unwrap();
    let mut echoed = Vec::new();
    client.read_to_end(&mut echoed).unwrap();
    assert!(echoed == message, "every byte back, with no further input");
}

#[test]
fn step5_without_a_budget_one_event_drains_a_client_however_much_it_sent() {
    let mut example = Example::start("step5_budgets", &["--no-budget", "--verbose"]);
    let mut client = connect(example.addr);
    client.write_all(&vec![b'x'; BURST]).unwrap();
    // All of it in one event: while that goes on, every other client waits.
    let read = example.out.wait_for("connection #1: read");
    assert_eq!(
        read,
        format!("connection #1: read {BURST} bytes ({BURST} in total)")
    );
}
