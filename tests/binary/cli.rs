//! The command line itself, over the real binary: what a malformed address,
//! a short option or a `--help` page looks like to the person typing it.
//! (Terminal behaviour of the interactive clients is in tests/binary/terminal.rs.)

use crate::common;

use common::run;

/// Every command that takes an ADDR, with the place the ADDR goes marked
/// `{}`, and a tail that makes the rest of the command line valid.
const ADDR_PLACES: &[&[&str]] = &[
    &["serve", "--echo", "{}"],
    &["serve", "--udp-echo", "{}"],
    &["serve", "--chat", "{}"],
    &["serve", "--daytime", "{}"],
    &["send", "--to", "{}", "hi"],
    &["send", "-u", "--to", "{}", "hi"],
    &["chat", "{}"],
    &["chat", "--to", "{}"],
    &["talk", "{}"],
    &["talk", "--to", "{}"],
    &["talk", "--listen", "{}"],
    &["bench", "echo", "--to", "{}"],
    &["bench", "chat", "{}"],
];

/// Addresses that are not `host:port`: no port, an empty port, a port that
/// is not a number from 0 to 65535, no host, an IPv6 address without
/// brackets or without a port.
const MALFORMED: &[&str] = &[
    "127.0.0.1",
    "localhost",
    ":12399",
    "127.0.0.1:",
    "[::1]",
    "::1",
    "host:99999",
    "127.0.0.1:-1",
    "127.0.0.1:http",
    "[::1:12345",
    "",
];

fn with_addr(place: &[&str], addr: &str) -> Vec<String> {
    place.iter().map(|a| a.replace("{}", addr)).collect()
}

/// A malformed ADDR is a bad argument, for every command: exit 2, the usage
/// on stderr, and a message that says which form was expected. Nothing is
/// resolved, bound or served.
#[test]
fn a_malformed_addr_is_a_usage_error_everywhere() {
    for place in ADDR_PLACES {
        for bad in MALFORMED {
            let args = with_addr(place, bad);
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let (status, out, err) = run(&argv);
            assert_eq!(status.code(), Some(2), "{argv:?}: stderr {err:?}");
            assert_eq!(out, "", "{argv:?}");
            assert!(err.contains("HOST:PORT"), "{argv:?}: stderr {err:?}");
            assert!(
                err.contains("127.0.0.1:12345") && err.contains("[::1]:12345"),
                "{argv:?}: no example in {err:?}"
            );
            assert!(err.contains("Usage: sockloop"), "{argv:?}: {err:?}");
        }
    }
}

/// A well-formed host name that does not resolve is a run-time failure:
/// exit 1, one line naming the address, no usage.
#[test]
fn an_unresolvable_host_is_a_runtime_failure_naming_it() {
    let addr = "no-such-host.invalid:12345";
    for place in [
        &["send", "--to", "{}", "hi"][..],
        &["chat", "{}"],
        &["talk", "{}"],
        &["serve", "--echo", "{}"],
        &["bench", "echo", "--to", "{}"],
    ] {
        let args = with_addr(place, addr);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, _, err) = run(&argv);
        assert_eq!(status.code(), Some(1), "{argv:?}: stderr {err:?}");
        assert!(err.contains(addr), "{argv:?}: {err:?}");
        assert!(!err.contains("Usage:"), "{argv:?}: {err:?}");
    }
}

/// `COMMAND --help` as text, checked to exit 0.
fn help(command: &str) -> String {
    let (status, out, err) = run(&[command, "--help"]);
    assert_eq!(status.code(), Some(0), "{command} --help: {err}");
    out
}

#[test]
fn serve_help_shows_the_defaults_the_address_form_and_what_one_flag_does() {
    let h = help("serve");
    for needle in [
        "--echo 127.0.0.1:12345 --udp-echo 127.0.0.1:12345 --chat 127.0.0.1:12346",
        "serves exactly those and nothing else",
        "HOST:PORT, for example 127.0.0.1:12345 or [::1]:12345",
        "[default: 10000]",
        "[default: 268435456]",
    ] {
        assert!(h.contains(needle), "{needle:?} not in serve --help:\n{h}");
    }
}

#[test]
fn client_help_pages_say_what_a_user_needs() {
    let send = help("send");
    for needle in [
        "-u, --udp",
        "-t, --timeout",
        "connect included",
        "0: wait forever",
    ] {
        assert!(
            send.contains(needle),
            "{needle:?} not in send --help:\n{send}"
        );
    }
    let chat = help("chat");
    for needle in [
        "/help",
        "bye",
        "/quit",
        "[default: 127.0.0.1:12346]",
        "--to",
    ] {
        assert!(
            chat.contains(needle),
            "{needle:?} not in chat --help:\n{chat}"
        );
    }
    let talk = help("talk");
    for needle in ["-l, --listen", "--to", "bye", "me>"] {
        assert!(
            talk.contains(needle),
            "{needle:?} not in talk --help:\n{talk}"
        );
    }
}

/// `bench --help` is laid out like every other page: one line per option
/// with its default, no long list of target values, the address default.
#[test]
fn bench_help_is_laid_out_like_the_rest() {
    let h = help("bench");
    assert!(!h.contains("Possible values:"), "{h}");
    for needle in [
        "127.0.0.1:12345 for echo and udp, 127.0.0.1:12346 for chat",
        "-c, --conns <N>",
        "-P, --pipeline <W>",
        "-d, --duration <SECS>",
        "-n, --count <COUNT>",
        "-i, --interval <SECS>",
        "[default: 10]",
    ] {
        assert!(h.contains(needle), "{needle:?} not in bench --help:\n{h}");
    }
    // Short help: every option on one line, as `serve -h` has it.
    let (_, short, _) = run(&["bench", "-h"]);
    let option_lines = short
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .count();
    assert!(option_lines >= 9, "{short}");
}

/// Completions and man pages come from the same clap definition: every
/// subcommand and option appears in them.
#[test]
fn completions_and_man_pages_are_generated_from_the_command_line() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (status, out, err) = run(&["completions", shell]);
        assert_eq!(status.code(), Some(0), "{shell}: {err}");
        for word in ["serve", "bench", "udp-echo", "pipeline"] {
            assert!(out.contains(word), "{shell}: no {word:?}");
        }
    }
    let (status, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(status.code(), Some(2), "{err}");

    let (status, page, err) = run(&["man"]);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        page.starts_with(".ie") || page.contains(".TH sockloop"),
        "{page}"
    );
    for word in ["serve", "send", "chat", "talk", "bench"] {
        assert!(page.contains(word), "no {word:?} in the man page");
    }
    let (status, page, err) = run(&["man", "bench"]);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(page.contains(".TH sockloop-bench"), "{page}");
    assert!(page.contains("pipeline"), "{page}");
    let (status, _, err) = run(&["man", "nosuch"]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("serve, send, chat, talk, bench"), "{err}");
}

/// nc's `HOST PORT MESSAGE` habit: the words are still sent as the message
/// (that is the contract), with a warning saying how to send to that address.
#[test]
fn send_warns_when_the_message_looks_like_host_port() {
    let (status, out, err) = run(&["send", "--to", "127.0.0.1:1", "127.0.0.1", "12345", "hi"]);
    // Nothing listens on port 1: the send fails, after the warning.
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(out, "");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("sockloop: warning:") && first.contains("--to 127.0.0.1:12345"),
        "{err}"
    );
}

/// `serve` says on stderr what it serves (one service flag serves only that
/// service); stdout carries exactly the `listening` lines.
#[test]
fn serve_says_what_it_serves_on_stderr() {
    let mut server = common::Server::start(&["--echo", "127.0.0.1:0", "--chat", "[::1]:0"], 2);
    let echo = server.addr("tcp-echo");
    let chat = server.addr("chat");
    let line = server.stderr.wait_for("serving ");
    assert!(
        line.ends_with(&format!("serving tcp-echo on {echo}, chat on {chat}")),
        "{line}"
    );
    assert!(!line.contains("udp-echo"), "{line}");
}
