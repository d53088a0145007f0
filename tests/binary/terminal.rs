//! The interactive clients as a person sees them: `chat` and `talk` run in a
//! real pseudo-terminal (a detached tmux session on a private tmux server),
//! keys are typed with `tmux send-keys`, and the screen is read back with
//! `tmux capture-pane`. Every wait polls the screen or the exit status
//! against a deadline.
//!
//! tmux is needed: without it each test says SKIPPED loudly and returns,
//! except under CI (`CI` set), where a missing tmux fails: .ci/run installs
//! it, so CI never skips.

use crate::client_support;
use crate::common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use client_support::Client;
use common::{bin, ChatClient, Server, WAIT};

/// A private tmux server with one session running one command, killed
/// (the server we started, by its own socket) when the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Run `shell_command` in a fresh 100x30 terminal. The pane stays after
    /// the command exits, so its last screen and status can be read.
    /// `None` (after saying SKIPPED) when tmux is not installed.
    fn start(test: &str, shell_command: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            // CI installs tmux (.ci/run): there a missing tmux is a failure.
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: tmux is not installed, and CI must not skip this (install tmux)"
            );
            // Straight to the process's stderr: libtest swallows the
            // `eprintln!` of a passing test, and a skip must be seen.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIPPED {test}: tmux is not installed (apt-get install tmux)\n")
                    .as_bytes(),
            );
            return None;
        }
        static N: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "sockloop-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let tmux = Tmux { socket };
        let out = tmux.run(&[
            "-f",
            "/dev/null",
            "start-server",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "30",
            shell_command,
        ]);
        assert!(out.status.success(), "tmux: {out:?}");
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run tmux")
    }

    /// Type text literally (no Enter).
    fn type_text(&self, text: &str) {
        assert!(self
            .run(&["send-keys", "-t", "t", "-l", text])
            .status
            .success());
    }

    /// Press keys by tmux name: `Enter`, `Up`, `Home`, `C-d`.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// The screen, one string per row, trailing blanks removed.
    fn screen(&self) -> Vec<String> {
        let out = self.run(&["capture-pane", "-p", "-t", "t"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// The screen's rows up to the last non-empty one.
    fn rows(&self) -> Vec<String> {
        let mut rows = self.screen();
        while rows.last().is_some_and(|r| r.is_empty()) {
            rows.pop();
        }
        rows
    }

    /// Wait until `ok` holds for the screen's rows; return them.
    fn wait_until(&self, what: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let rows = self.rows();
            if ok(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {what}; screen:\n{}",
                rows.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until a row equals `row`.
    fn wait_row(&self, row: &str) -> Vec<String> {
        self.wait_until(&format!("the row {row:?}"), |rows| {
            rows.iter().any(|r| r == row)
        })
    }

    /// Wait until the last row (where the input line is) equals `row`.
    fn wait_input_line(&self, row: &str) -> Vec<String> {
        self.wait_until(&format!("the input line {row:?}"), |rows| {
            rows.last().is_some_and(|r| r == row)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The shell command that runs `sockloop ARGS` and then reports, on the
/// screen, its exit status and whether the terminal is back in canonical
/// (line) mode: `EXIT=0 TTY=icanon` when all went well.
fn client_command(args: &str) -> String {
    format!(
        "{} {args}; echo EXIT=$? TTY=$(stty -a | grep -o -- '-\\?icanon')",
        bin()
    )
}

fn chat_server() -> Server {
    Server::start(&["--chat", "127.0.0.1:0"], 1)
}

/// Received lines scroll above the input line instead of landing in the
/// middle of what is being typed; the half-typed line survives intact and
/// is sent whole; what the user sent stays on screen after the prompt
/// (`> ...`), `/me` included, which is the sender's only feedback for it.
#[test]
fn chat_keeps_the_input_line_apart_from_received_lines() {
    let server = chat_server();
    let addr = server.addr("chat");
    let Some(tmux) = Tmux::start(
        "chat_keeps_the_input_line_apart_from_received_lines",
        &client_command(&format!("chat {addr} --nick alice")),
    ) else {
        return;
    };
    tmux.wait_row("* guest1 is now known as alice");
    let (mut bob, _) = ChatClient::join(addr);
    tmux.wait_row("* guest2 joined #lobby");
    tmux.type_text("partially typ");
    tmux.wait_input_line("> partially typ");
    bob.say("interrupting message");
    // The received line gets a row of its own, and the input line is
    // redrawn below it intact (spliced, neither would ever hold).
    tmux.wait_until("the line above an intact input line", |rows| {
        rows.iter().any(|r| r == "<guest2> interrupting message")
            && rows.last().is_some_and(|r| r == "> partially typ")
    });
    tmux.type_text("ed");
    tmux.keys(&["Enter"]);
    assert_eq!(bob.line(), "<alice> partially typed");
    tmux.type_text("/me waves");
    tmux.keys(&["Enter"]);
    assert_eq!(bob.line(), "* alice waves");
    let rows = tmux.wait_input_line(">");
    for mine in ["> partially typed", "> /me waves"] {
        assert!(rows.iter().any(|r| r == mine), "{mine:?} in {rows:#?}");
    }
}

/// Line editing (cursor keys) and history (Up recalls earlier lines).
#[test]
fn chat_has_line_editing_and_history() {
    let server = chat_server();
    let addr = server.addr("chat");
    let Some(tmux) = Tmux::start(
        "chat_has_line_editing_and_history",
        &client_command(&format!("chat {addr} -n alice")),
    ) else {
        return;
    };
    tmux.wait_row("* guest1 is now known as alice");
    let (mut bob, _) = ChatClient::join(addr);
    tmux.wait_row("* guest2 joined #lobby");
    tmux.type_text("hllo wrld");
    tmux.keys(&["Home", "Right"]);
    tmux.type_text("e");
    tmux.keys(&["End", "Left", "Left", "Left"]);
    tmux.type_text("o");
    tmux.wait_input_line("> hello world");
    tmux.keys(&["Enter"]);
    assert_eq!(bob.line(), "<alice> hello world");
    tmux.type_text("second");
    tmux.keys(&["Enter"]);
    assert_eq!(bob.line(), "<alice> second");
    tmux.keys(&["Up", "Up"]);
    tmux.wait_input_line("> hello world");
    tmux.keys(&["Enter"]);
    assert_eq!(bob.line(), "<alice> hello world");
}

/// Ctrl-D ends the input: the client sends `/quit`, the server says
/// `* bye` and closes, the client exits 0, and the terminal is back in
/// line mode although the editor thread held it in raw mode.
#[test]
fn ctrl_d_quits_and_gives_the_terminal_back() {
    let server = chat_server();
    let addr = server.addr("chat");
    let Some(tmux) = Tmux::start(
        "ctrl_d_quits_and_gives_the_terminal_back",
        &client_command(&format!("chat {addr}")),
    ) else {
        return;
    };
    tmux.wait_until("the welcome", |rows| {
        rows.iter().any(|r| r.starts_with("* welcome"))
    });
    let (mut bob, _) = ChatClient::join(addr);
    tmux.wait_row("* guest2 joined #lobby");
    tmux.keys(&["C-d"]);
    assert_eq!(bob.line(), "* guest1 left #lobby");
    let rows = tmux.wait_until("the exit line", |rows| {
        rows.iter().any(|r| r.starts_with("EXIT="))
    });
    assert!(rows.iter().any(|r| r == "* bye"), "{rows:#?}");
    assert!(
        rows.iter().any(|r| r == "EXIT=0 TTY=icanon"),
        "exit 0 and the terminal in line mode: {rows:#?}"
    );
}

/// A terminal as stdin but a file as stdout is not interactive: the file
/// holds exactly the lines received, no prompt, no escape codes.
#[test]
fn stdout_to_a_file_stays_exactly_the_lines_received() {
    let server = chat_server();
    let addr = server.addr("chat");
    let file = temp_path("chat-out");
    let Some(tmux) = Tmux::start(
        "stdout_to_a_file_stays_exactly_the_lines_received",
        &client_command(&format!("chat {addr} > {}", file.display())),
    ) else {
        return;
    };
    wait_for_file(&file, "* welcome");
    let (mut bob, _) = ChatClient::join(addr);
    wait_for_file(&file, "* guest2 joined #lobby");
    bob.say("hi there");
    // Without the editor the terminal echoes what is typed, as any program.
    tmux.type_text("hello");
    tmux.keys(&["Enter"]);
    assert_eq!(bob.line(), "<guest1> hello");
    tmux.keys(&["C-d"]);
    tmux.wait_until("the exit line", |rows| {
        rows.iter().any(|r| r.starts_with("EXIT=0"))
    });
    let written = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        written,
        "* welcome to sockloop chat, you are guest1 in #lobby; /help lists commands\n\
         * guest2 joined #lobby\n<guest2> hi there\n* bye\n"
    );
}

/// `talk` in a terminal: the user's own lines stay marked `me> `, the
/// peer's arrive above the input line unmarked, and the peer's `bye` ends
/// it with status 0 and the terminal given back.
#[test]
fn talk_marks_your_own_lines() {
    let Some(tmux) = Tmux::start(
        "talk_marks_your_own_lines",
        &client_command("talk -l 127.0.0.1:0"),
    ) else {
        return;
    };
    let rows = tmux.wait_until("listening on", |rows| {
        rows.iter().any(|r| r.starts_with("listening on "))
    });
    let addr = rows
        .iter()
        .find_map(|r| r.strip_prefix("listening on "))
        .unwrap()
        .to_string();
    let mut peer = Client::start(&["talk", &addr]);
    peer.stderr.wait_for("connected to ");
    tmux.wait_until("connected", |rows| {
        rows.iter().any(|r| r.starts_with("connected to "))
    });
    tmux.type_text("half");
    peer.type_line("hi there");
    tmux.wait_until("the peer's line above an intact input line", |rows| {
        rows.iter().any(|r| r == "hi there") && rows.last().is_some_and(|r| r == "me> half")
    });
    tmux.type_text(" done");
    tmux.keys(&["Enter"]);
    assert_eq!(peer.stdout.next_line().unwrap(), "half done");
    tmux.wait_row("me> half done");
    peer.type_line("bye");
    let rows = tmux.wait_until("the exit line", |rows| {
        rows.iter().any(|r| r.starts_with("EXIT="))
    });
    assert!(rows.iter().any(|r| r == "EXIT=0 TTY=icanon"), "{rows:#?}");
    assert_eq!(peer.wait_exit().code(), Some(0));
}

fn temp_path(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "sockloop-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

/// Wait until `file` contains `needle`.
fn wait_for_file(file: &std::path::Path, needle: &str) {
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(file).is_ok_and(|s| s.contains(needle)) {
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for {needle:?} in {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A terminal the line editor does not support (`TERM=dumb`) still chats,
/// in plain mode: no prompt, the terminal's own echo, lines as received.
#[test]
fn a_dumb_terminal_falls_back_to_plain_mode() {
    let server = chat_server();
    let addr = server.addr("chat");
    let Some(tmux) = Tmux::start(
        "a_dumb_terminal_falls_back_to_plain_mode",
        // The assignment applies to the client only, not to what follows it.
        &format!("TERM=dumb {}", client_command(&format!("chat {addr}"))),
    ) else {
        return;
    };
    tmux.wait_until("the welcome", |rows| {
        rows.iter().any(|r| r.starts_with("* welcome"))
    });
    let (mut bob, _) = ChatClient::join(addr);
    // Plain mode splices received lines into what is being typed (that is
    // why the editor exists): let bob's join notice arrive first.
    tmux.wait_row("* guest2 joined #lobby");
    tmux.type_text("plain hello");
    tmux.keys(&["Enter"]);
    assert_eq!(bob.line(), "<guest1> plain hello");
    let rows = tmux.wait_row("plain hello");
    assert!(!rows.iter().any(|r| r.starts_with("> ")), "{rows:#?}");
    tmux.keys(&["C-d"]);
    let rows = tmux.wait_until("the exit line", |rows| {
        rows.iter().any(|r| r.starts_with("EXIT="))
    });
    assert!(rows.iter().any(|r| r == "EXIT=0 TTY=icanon"), "{rows:#?}");
}
