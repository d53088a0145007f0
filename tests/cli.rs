//! The command line itself, over the real binary: what a malformed address,
//! a short option or a `--help` page looks like to the person typing it.
//! (Terminal behaviour of the interactive clients is in tests/terminal.rs.)

mod common;

use common::run;

/// Every command that takes an ADDR, with the place the ADDR goes marked
/// `{}`, and a tail that makes the rest of the command line valid.
const ADDR_PLACES: &[&[&str]] = &[
    &["serve", "--echo", "{}"],
    &["serve", "--udp-echo", "{}"],
    &["serve", "--chat", "{}"],
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
