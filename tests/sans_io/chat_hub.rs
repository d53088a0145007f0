//! The chat hub, driven through its public API with a recording outbox: every
//! row of the chat table (docs/protocol.md), every error, the name rules, and properties
//! (any chunking of a client's input gives the same output; any input keeps
//! the hub consistent and its output clean).

use std::rc::Rc;

use proptest::prelude::*;
use sockloop::buffer::SharedLine;
use sockloop::protocol::chat::{ChatLimits, ClientId, Effect, Hub, LeaveReason, SHUTTING_DOWN};

/// What the hub asked for, in order.
#[derive(Debug, Clone)]
enum Out {
    Send(ClientId, SharedLine),
    Close(ClientId),
}

#[derive(Debug, Default)]
struct Recorder {
    log: Vec<Out>,
}

impl Recorder {
    /// Take every effect the hub has queued, in order.
    fn take_from(&mut self, hub: &mut Hub) {
        while let Some(effect) = hub.poll_effect() {
            match effect {
                Effect::Send { to, line } => {
                    for to in to.iter() {
                        self.log.push(Out::Send(to, Rc::clone(&line)));
                    }
                }
                Effect::Close { who } => self.log.push(Out::Close(who)),
                Effect::Cluster(request) => panic!("a hub without a cluster asked {request:?}"),
            }
        }
    }
}

/// A hub, its recorder, and helpers that speak in client numbers.
struct Chat {
    hub: Hub,
    out: Recorder,
}

fn id(n: u64) -> ClientId {
    ClientId(n)
}

impl Chat {
    fn new() -> Chat {
        Chat::with_max_line(4096)
    }

    fn with_max_line(max_line: usize) -> Chat {
        Chat {
            hub: Hub::new(ChatLimits { max_line }),
            out: Recorder::default(),
        }
    }

    /// Connect client `n` and forget what that printed.
    fn join(&mut self, n: u64) {
        self.hub.handle_connect(id(n));
        self.take();
    }

    /// Connect clients 1..=n (guest1..guestN) and forget the notices.
    fn with_clients(n: u64) -> Chat {
        let mut chat = Chat::new();
        for i in 1..=n {
            chat.join(i);
        }
        chat
    }

    fn send(&mut self, n: u64, text: &str) -> Vec<String> {
        self.send_bytes(n, text.as_bytes())
    }

    fn send_bytes(&mut self, n: u64, bytes: &[u8]) -> Vec<String> {
        self.hub.handle_input(id(n), bytes);
        self.take()
    }

    /// Everything asked for since the last take, as `"N line"` (without the
    /// LF, after checking there is exactly one, at the end) and `"close N"`.
    fn take(&mut self) -> Vec<String> {
        self.hub.check_invariants();
        self.out.take_from(&mut self.hub);
        self.out
            .log
            .drain(..)
            .map(|o| match o {
                Out::Send(to, line) => {
                    let text = std::str::from_utf8(&line).expect("UTF-8 output");
                    let body = text.strip_suffix('\n').expect("LF-terminated");
                    assert!(!body.contains('\n'), "one line per send: {text:?}");
                    format!("{} {body}", to.0)
                }
                Out::Close(who) => format!("close {}", who.0),
            })
            .collect()
    }
}

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- connect

#[test]
fn connect_welcomes_the_client_and_tells_the_lobby() {
    let mut chat = Chat::new();
    chat.hub.handle_connect(id(1));
    assert_eq!(
        chat.take(),
        lines(&["1 * welcome to sockloop chat, you are guest1 in #lobby; /help lists commands"])
    );
    chat.hub.handle_connect(id(2));
    assert_eq!(
        chat.take(),
        lines(&[
            "2 * welcome to sockloop chat, you are guest2 in #lobby; /help lists commands",
            "1 * guest2 joined #lobby",
        ])
    );
    assert_eq!(chat.hub.client_count(), 2);
    assert_eq!(chat.hub.nick_of(id(2)), Some("guest2"));
    assert_eq!(chat.hub.room_of(id(2)), Some("lobby"));
}

#[test]
fn joins_are_announced_only_in_the_lobby() {
    let mut chat = Chat::with_clients(2);
    chat.send(2, "/join rust\n");
    chat.hub.handle_connect(id(3));
    let out = chat.take();
    assert!(out.contains(&"1 * guest3 joined #lobby".to_string()));
    assert!(!out.iter().any(|l| l.starts_with("2 ")), "{out:?}");
}

#[test]
fn a_second_connect_for_the_same_id_is_ignored() {
    let mut chat = Chat::with_clients(1);
    chat.hub.handle_connect(id(1));
    assert!(chat.take().is_empty());
    assert_eq!(chat.hub.client_count(), 1);
    assert_eq!(chat.hub.nick_of(id(1)), Some("guest1"));
}

#[test]
fn guest_numbers_only_increase_and_skip_chosen_names() {
    let mut chat = Chat::with_clients(1);
    chat.send(1, "/nick GUEST3\n");
    chat.join(2);
    chat.join(3);
    assert_eq!(chat.hub.nick_of(id(2)), Some("guest2"));
    assert_eq!(
        chat.hub.nick_of(id(3)),
        Some("guest4"),
        "guest3 is taken (case-insensitively)"
    );
    chat.hub.handle_disconnect(id(2), LeaveReason::Disconnected);
    chat.join(4);
    assert_eq!(
        chat.hub.nick_of(id(4)),
        Some("guest5"),
        "numbers are never reused"
    );
}

// ------------------------------------------------------------------- text

#[test]
fn text_goes_to_the_others_in_the_room_only() {
    let mut chat = Chat::with_clients(3);
    assert_eq!(
        chat.send(2, "hello all\n"),
        lines(&["1 <guest2> hello all", "3 <guest2> hello all"])
    );
    chat.send(3, "/join side\n");
    assert_eq!(
        chat.send(1, "still here?\n"),
        lines(&["2 <guest1> still here?"])
    );
    assert_eq!(chat.send(3, "alone\n"), lines(&[]));
}

#[test]
fn one_shared_buffer_serves_every_recipient() {
    let mut chat = Chat::with_clients(4);
    chat.hub.handle_input(id(1), b"fan out\n");
    chat.out.take_from(&mut chat.hub);
    let handles: Vec<SharedLine> = chat
        .out
        .log
        .iter()
        .map(|o| match o {
            Out::Send(_, line) => Rc::clone(line),
            Out::Close(_) => panic!("no close expected"),
        })
        .collect();
    assert_eq!(handles.len(), 3);
    assert!(
        handles.iter().all(|h| Rc::ptr_eq(h, &handles[0])),
        "one allocation, shared"
    );
}

#[test]
fn cr_before_lf_is_dropped_and_empty_lines_are_ignored() {
    let mut chat = Chat::with_clients(2);
    assert_eq!(chat.send(1, "hi\r\n\n\r\n"), lines(&["2 <guest1> hi"]));
    assert_eq!(chat.send(1, "a\rb\r\n"), lines(&["2 <guest1> a\u{fffd}b"]));
    assert_eq!(
        chat.send(1, "  \n"),
        lines(&["2 <guest1>   "]),
        "blank is not empty"
    );
}

#[test]
fn control_characters_are_replaced_in_relayed_text() {
    let mut chat = Chat::with_clients(2);
    assert_eq!(
        chat.send(1, "\u{1b}[2Jtab\there\u{7}\u{7f}\u{85}\u{a0}\n"),
        lines(&["2 <guest1> \u{fffd}[2Jtab\there\u{fffd}\u{fffd}\u{fffd}\u{a0}"])
    );
    assert_eq!(
        chat.send(1, "/me beeps\u{7}\n"),
        lines(&["2 * guest1 beeps\u{fffd}"])
    );
    assert_eq!(
        chat.send(1, "/msg guest2 \u{1b}c\n"),
        lines(&["2 *guest1* \u{fffd}c", "1 -> *guest2* \u{fffd}c"])
    );
    assert_eq!(
        chat.send(1, "/quit \u{1b}]0;pwned\u{7}\n"),
        lines(&[
            "1 * bye",
            "2 * guest1 left #lobby (\u{fffd}]0;pwned\u{fffd})",
            "close 1"
        ])
    );
}

#[test]
fn chinese_text_passes_unchanged() {
    let mut chat = Chat::with_clients(2);
    assert_eq!(chat.send(1, "你好\n"), lines(&["2 <guest1> 你好"]));
}

// ------------------------------------------------------------------- /nick

#[test]
fn nick_is_announced_to_the_whole_room_including_the_sender() {
    let mut chat = Chat::with_clients(3);
    chat.send(3, "/join elsewhere\n");
    assert_eq!(
        chat.send(1, "/nick alice\n"),
        lines(&[
            "1 * guest1 is now known as alice",
            "2 * guest1 is now known as alice"
        ])
    );
    assert_eq!(chat.send(1, "hi\n"), lines(&["2 <alice> hi"]));
    assert_eq!(
        chat.send(1, "/nick Alice\n"),
        lines(&[
            "1 * alice is now known as Alice",
            "2 * alice is now known as Alice"
        ]),
        "a change of case is a change"
    );
    assert_eq!(chat.hub.nick_of(id(1)), Some("Alice"));
}

#[test]
fn nick_errors_go_to_the_sender_alone_and_change_nothing() {
    let mut chat = Chat::with_clients(2);
    chat.send(2, "/nick Bob\n");
    assert_eq!(
        chat.send(1, "/nick bob\n"),
        lines(&["1 * error: nickname taken: bob"])
    );
    assert_eq!(
        chat.send(1, "/nick BOB\n"),
        lines(&["1 * error: nickname taken: BOB"])
    );
    assert_eq!(
        chat.send(1, "/nick bad.name\n"),
        lines(&["1 * error: invalid nickname: bad.name (1 to 32 ASCII letters, digits, _ or -)"])
    );
    assert_eq!(
        chat.send(1, "/nick two words\n"),
        lines(&["1 * error: invalid nickname: two words (1 to 32 ASCII letters, digits, _ or -)"])
    );
    let long = "x".repeat(33);
    assert_eq!(
        chat.send(1, &format!("/nick {long}\n")),
        lines(&[&format!(
            "1 * error: invalid nickname: {long} (1 to 32 ASCII letters, digits, _ or -)"
        )])
    );
    assert_eq!(
        chat.send(1, "/nick\n"),
        lines(&["1 * error: usage: /nick NAME"])
    );
    assert_eq!(
        chat.send(1, "/nick guest1\n"),
        lines(&["1 * error: you are already guest1"])
    );
    assert_eq!(chat.hub.nick_of(id(1)), Some("guest1"));
    let max = "y".repeat(32);
    assert_eq!(
        chat.send(1, &format!("/nick {max}\n")),
        lines(&[
            &format!("1 * guest1 is now known as {max}"),
            &format!("2 * guest1 is now known as {max}"),
        ])
    );
}

#[test]
fn a_freed_nickname_can_be_taken() {
    let mut chat = Chat::with_clients(2);
    chat.send(1, "/nick carol\n");
    chat.send(1, "/nick dave\n");
    assert_eq!(chat.send(2, "/nick Carol\n").len(), 2);
    chat.hub.handle_disconnect(id(2), LeaveReason::Disconnected);
    chat.take();
    assert_eq!(
        chat.send(1, "/nick carol\n"),
        lines(&["1 * dave is now known as carol"])
    );
}

// -------------------------------------------------------------------- /who

#[test]
fn who_lists_the_room_in_join_order() {
    let mut chat = Chat::with_clients(4);
    assert_eq!(
        chat.send(3, "/who\n"),
        lines(&["3 * users in #lobby: guest1, guest2, guest3, guest4"])
    );
    chat.send(2, "/join rust\n");
    chat.send(4, "/join rust\n");
    chat.send(1, "/join rust\n");
    chat.send(4, "/nick zed\n");
    assert_eq!(
        chat.send(1, "/who\n"),
        lines(&["1 * users in #rust: guest2, zed, guest1"])
    );
    chat.send(2, "/join lobby\n");
    assert_eq!(
        chat.send(2, "/who\n"),
        lines(&["2 * users in #lobby: guest3, guest2"])
    );
    assert_eq!(
        chat.send(2, "/who rust\n"),
        lines(&["2 * error: usage: /who"])
    );
}

// ------------------------------------------------------------------ /rooms

#[test]
fn rooms_lists_rooms_with_members_by_name() {
    let mut chat = Chat::with_clients(5);
    chat.send(2, "/join rust\n");
    chat.send(3, "/join Zoo\n");
    chat.send(4, "/join apple\n");
    chat.send(5, "/join RUST\n");
    assert_eq!(
        chat.send(1, "/rooms\n"),
        lines(&["1 * rooms: #apple (1), #lobby (1), #rust (2), #Zoo (1)"])
    );
    chat.send(1, "/join zoo\n");
    assert_eq!(
        chat.send(1, "/rooms\n"),
        lines(&["1 * rooms: #apple (1), #rust (2), #Zoo (2)"]),
        "an empty #lobby is not listed"
    );
    assert_eq!(
        chat.send(1, "/rooms all\n"),
        lines(&["1 * error: usage: /rooms"])
    );
}

// ------------------------------------------------------------------- /join

#[test]
fn join_sends_the_three_notices() {
    let mut chat = Chat::with_clients(4);
    chat.send(3, "/join rust\n");
    chat.send(4, "/join rust\n");
    assert_eq!(
        chat.send(1, "/join #rust\n"),
        lines(&[
            "2 * guest1 left #lobby",
            "3 * guest1 joined #rust",
            "4 * guest1 joined #rust",
            "1 * you are now in #rust",
        ])
    );
    assert_eq!(chat.hub.room_of(id(1)), Some("rust"));
    assert_eq!(
        chat.send(2, "/join new-room\n"),
        lines(&["2 * you are now in #new-room"])
    );
}

#[test]
fn room_names_ignore_case_and_keep_their_first_spelling() {
    let mut chat = Chat::with_clients(3);
    chat.send(1, "/join RustLang\n");
    assert_eq!(
        chat.send(2, "/join #rustlang\n"),
        lines(&[
            "3 * guest2 left #lobby",
            "1 * guest2 joined #RustLang",
            "2 * you are now in #RustLang"
        ])
    );
    chat.send(1, "/join lobby\n");
    chat.send(2, "/join LOBBY\n");
    assert_eq!(
        chat.send(3, "/join rustlang\n"),
        lines(&[
            "1 * guest3 left #lobby",
            "2 * guest3 left #lobby",
            "3 * you are now in #rustlang",
        ]),
        "an emptied room is gone; the next creator spells it"
    );
}

#[test]
fn join_errors() {
    let mut chat = Chat::with_clients(2);
    let rule = "(1 to 32 ASCII letters, digits, _ or -)";
    assert_eq!(
        chat.send(1, "/join\n"),
        lines(&["1 * error: usage: /join ROOM"])
    );
    assert_eq!(
        chat.send(1, "/join ##x\n"),
        lines(&[&format!("1 * error: invalid room name: ##x {rule}")])
    );
    assert_eq!(
        chat.send(1, "/join #\n"),
        lines(&[&format!("1 * error: invalid room name: # {rule}")])
    );
    assert_eq!(
        chat.send(1, "/join a room\n"),
        lines(&[&format!("1 * error: invalid room name: a room {rule}")])
    );
    assert_eq!(
        chat.send(1, "/join #Lobby\n"),
        lines(&["1 * error: you are already in #lobby"])
    );
    assert_eq!(chat.hub.room_of(id(1)), Some("lobby"));
    assert_eq!(
        chat.send(2, "/who\n"),
        lines(&["2 * users in #lobby: guest1, guest2"])
    );
}

// -------------------------------------------------------------------- /msg

#[test]
fn msg_reaches_one_user_in_any_room() {
    let mut chat = Chat::with_clients(3);
    chat.send(2, "/nick Bob\n");
    chat.send(2, "/join far\n");
    assert_eq!(
        chat.send(1, "/msg bob  psst, over here \n"),
        lines(&["2 *guest1* psst, over here ", "1 -> *Bob* psst, over here "])
    );
    assert_eq!(
        chat.send(1, "/msg guest1 note to self\n"),
        lines(&["1 *guest1* note to self", "1 -> *guest1* note to self"])
    );
}

#[test]
fn msg_errors() {
    let mut chat = Chat::with_clients(2);
    assert_eq!(
        chat.send(1, "/msg nobody hi\n"),
        lines(&["1 * error: no such user: nobody"])
    );
    assert_eq!(
        chat.send(1, "/msg no.body hi\n"),
        lines(&["1 * error: no such user: no.body"])
    );
    assert_eq!(
        chat.send(1, "/msg guest2\n"),
        lines(&["1 * error: usage: /msg NICK TEXT"])
    );
    assert_eq!(
        chat.send(1, "/msg\n"),
        lines(&["1 * error: usage: /msg NICK TEXT"])
    );
}

// ------------------------------------------------------------ /me and /help

#[test]
fn me_goes_to_the_others_in_the_room() {
    let mut chat = Chat::with_clients(3);
    assert_eq!(
        chat.send(2, "/me waves\n"),
        lines(&["1 * guest2 waves", "3 * guest2 waves"])
    );
    assert_eq!(
        chat.send(2, "/me\n"),
        lines(&["2 * error: usage: /me ACTION"])
    );
}

#[test]
fn help_lists_every_command_to_the_sender() {
    let mut chat = Chat::with_clients(2);
    let out = chat.send(1, "/help\n");
    assert!(out.len() > 1);
    for line in &out {
        assert!(line.starts_with("1 * "), "{line}");
    }
    let text = out.join("\n");
    for command in [
        "/nick", "/who", "/rooms", "/join", "/msg", "/me", "/quit", "/help", "bye",
    ] {
        assert!(text.contains(command), "{command} missing from {text}");
    }
    assert_eq!(chat.send(1, "/HELP\n"), out, "command words ignore case");
    assert_eq!(
        chat.send(1, "/help me\n"),
        lines(&["1 * error: usage: /help"])
    );
}

// ------------------------------------------------------------ /quit and bye

#[test]
fn quit_says_bye_tells_the_room_and_closes() {
    let mut chat = Chat::with_clients(3);
    assert_eq!(
        chat.send(2, "/quit\n"),
        lines(&[
            "2 * bye",
            "1 * guest2 left #lobby",
            "3 * guest2 left #lobby",
            "close 2"
        ])
    );
    assert_eq!(chat.hub.client_count(), 2);
    assert_eq!(chat.hub.nick_of(id(2)), None);
    assert_eq!(
        chat.send(3, "/quit  off to lunch \n"),
        lines(&[
            "3 * bye",
            "1 * guest3 left #lobby (off to lunch)",
            "close 3"
        ])
    );
    assert_eq!(chat.send(1, "bye\r\n"), lines(&["1 * bye", "close 1"]));
    assert_eq!(chat.hub.client_count(), 0);
}

#[test]
fn bytes_after_quit_in_the_same_input_are_ignored() {
    let mut chat = Chat::with_clients(2);
    assert_eq!(
        chat.send(1, "first\nbye\nafter\n/nick ghost\n"),
        lines(&[
            "2 <guest1> first",
            "1 * bye",
            "2 * guest1 left #lobby",
            "close 1"
        ])
    );
    assert!(
        chat.send(1, "later\n").is_empty(),
        "a forgotten client is ignored"
    );
}

#[test]
fn quitting_the_last_member_drops_the_room() {
    let mut chat = Chat::with_clients(2);
    chat.send(2, "/join solo\n");
    chat.send(2, "/quit\n");
    assert_eq!(chat.send(1, "/rooms\n"), lines(&["1 * rooms: #lobby (1)"]));
}

// ------------------------------------------------------ leaving and closing

#[test]
fn disconnects_are_announced_with_their_reason_and_not_closed_again() {
    let mut chat = Chat::with_clients(4);
    chat.hub.handle_disconnect(id(2), LeaveReason::Disconnected);
    assert_eq!(
        chat.take(),
        lines(&[
            "1 * guest2 left #lobby",
            "3 * guest2 left #lobby",
            "4 * guest2 left #lobby"
        ])
    );
    chat.hub.handle_disconnect(id(3), LeaveReason::TooSlow);
    assert_eq!(
        chat.take(),
        lines(&[
            "1 * guest3 left #lobby (too slow)",
            "4 * guest3 left #lobby (too slow)"
        ])
    );
    chat.send(4, "/join quiet\n");
    chat.join(5);
    chat.send(5, "/join quiet\n");
    chat.hub.handle_disconnect(id(4), LeaveReason::IdleTimeout);
    assert_eq!(
        chat.take(),
        lines(&["5 * guest4 left #quiet (idle timeout)"])
    );
    chat.hub.handle_disconnect(id(4), LeaveReason::Disconnected);
    chat.hub.handle_disconnect(id(99), LeaveReason::TooSlow);
    assert!(chat.take().is_empty(), "unknown ids are ignored");
    assert_eq!(chat.hub.client_count(), 2);
}

#[test]
fn end_of_input_handles_a_final_line_without_lf_then_leaves() {
    let mut chat = Chat::with_clients(2);
    chat.send(1, "last words");
    chat.hub.handle_eof(id(1));
    assert_eq!(
        chat.take(),
        lines(&["2 <guest1> last words", "2 * guest1 left #lobby", "close 1"])
    );
    chat.hub.handle_eof(id(1));
    assert!(chat.take().is_empty());
}

#[test]
fn end_of_input_after_a_final_bye_closes_once() {
    let mut chat = Chat::with_clients(2);
    chat.send(1, "bye");
    chat.hub.handle_eof(id(1));
    assert_eq!(
        chat.take(),
        lines(&["1 * bye", "2 * guest1 left #lobby", "close 1"])
    );
}

#[test]
fn end_of_input_with_nothing_pending() {
    let mut chat = Chat::with_clients(2);
    chat.send(2, "/join x\n");
    chat.hub.handle_eof(id(2));
    assert_eq!(chat.take(), lines(&["close 2"]));
}

#[test]
fn input_for_an_unknown_client_is_ignored() {
    let mut chat = Chat::with_clients(1);
    assert!(chat.send(7, "hello\n/nick x\n").is_empty());
    chat.hub.handle_eof(id(7));
    assert!(chat.take().is_empty());
}

#[test]
fn shutdown_tells_everyone_and_closes_them() {
    let mut chat = Chat::with_clients(3);
    chat.send(3, "/join other\n");
    chat.hub.handle_shutdown();
    let notice = std::str::from_utf8(SHUTTING_DOWN).unwrap().trim_end();
    assert_eq!(
        chat.take(),
        lines(&[
            &format!("1 {notice}"),
            "close 1",
            &format!("2 {notice}"),
            "close 2",
            &format!("3 {notice}"),
            "close 3",
        ])
    );
    assert_eq!(chat.hub.client_count(), 0);
    chat.hub.handle_disconnect(id(1), LeaveReason::Disconnected);
    assert!(chat.send(2, "anyone?\n").is_empty());
    chat.hub.handle_connect(id(4));
    assert_eq!(chat.take(), lines(&[&format!("4 {notice}"), "close 4"]));
}

// ------------------------------------------------------------------ errors

#[test]
fn too_long_lines_are_refused_and_skipped_to_their_lf() {
    let mut chat = Chat::with_max_line(10);
    chat.join(1);
    chat.join(2);
    let error = "1 * error: line too long (the limit is 10 bytes)";
    assert_eq!(
        chat.send(1, "0123456789\n"),
        lines(&["2 <guest1> 0123456789"])
    );
    assert_eq!(
        chat.send(1, "0123456789\r\n"),
        lines(&["2 <guest1> 0123456789"])
    );
    assert_eq!(
        chat.send(1, "0123456789a\nok\n"),
        lines(&[error, "2 <guest1> ok"])
    );
    assert_eq!(
        chat.send(1, "0123456789ab"),
        lines(&[error]),
        "known before its LF"
    );
    for _ in 0..100 {
        assert!(chat.send(1, "/quit this is all skipped").is_empty());
    }
    assert_eq!(
        chat.send(1, "still skipped\nback\n"),
        lines(&["2 <guest1> back"])
    );
    assert_eq!(chat.hub.client_count(), 2, "the connection lives on");
}

#[test]
fn invalid_utf8_is_refused() {
    let mut chat = Chat::with_clients(2);
    assert_eq!(
        chat.send_bytes(1, b"caf\xe9\nok\n"),
        lines(&["1 * error: line is not valid UTF-8", "2 <guest1> ok"])
    );
    assert_eq!(
        chat.send_bytes(1, b"/nick \xff\n"),
        lines(&["1 * error: line is not valid UTF-8"])
    );
    assert_eq!(chat.hub.nick_of(id(1)), Some("guest1"));
}

#[test]
fn unknown_commands_are_refused() {
    let mut chat = Chat::with_clients(2);
    assert_eq!(
        chat.send(1, "/dance wildly\n"),
        lines(&["1 * error: unknown command: /dance (/help lists commands)"])
    );
    assert_eq!(
        chat.send(1, "/\n"),
        lines(&["1 * error: unknown command: / (/help lists commands)"])
    );
    assert_eq!(
        chat.send(1, "/\u{1b}x\n"),
        lines(&["1 * error: unknown command: /\u{fffd}x (/help lists commands)"])
    );
}

// -------------------------------------------------------------- properties

/// Lines a client might send: text, commands (valid or not), names that
/// collide, control characters, bytes that are not UTF-8.
fn a_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "[a-z ]{0,12}".prop_map(String::into_bytes),
        1 => Just(b"/who".to_vec()),
        1 => Just(b"/rooms".to_vec()),
        1 => Just(b"/help".to_vec()),
        2 => "/nick [a-cA-C]{1,2}".prop_map(String::into_bytes),
        1 => "/nick guest[1-6]".prop_map(String::into_bytes),
        2 => "/join #?[a-cA-C]{1,2}".prop_map(String::into_bytes),
        2 => "/msg (guest[1-4]|[a-c]) [a-z]{1,5}".prop_map(String::into_bytes),
        1 => "/me [a-z]{1,5}".prop_map(String::into_bytes),
        1 => "/[a-z]{1,4}".prop_map(String::into_bytes),
        1 => Just(b"/join x y".to_vec()),
        1 => Just(b"bad \xff utf8".to_vec()),
        1 => Just("ctl \u{1b}\u{7}\u{85}\t".as_bytes().to_vec()),
        1 => "x{30,40}".prop_map(String::into_bytes),
        1 => Just(b"".to_vec()),
    ]
}

/// A client's lines as one byte stream, each ended by LF or CRLF.
fn a_script() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((a_line(), any::<bool>()), 0..25).prop_map(|lines| {
        let mut bytes = Vec::new();
        for (line, crlf) in lines {
            bytes.extend_from_slice(&line);
            bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        bytes
    })
}

/// Client 1's script, fed in the given chunks, with clients 2 and 3
/// listening; then end of input. Everything the hub said.
fn run_chunked(script: &[u8], cuts: &[usize]) -> Vec<String> {
    let mut chat = Chat::with_max_line(32);
    for i in 1..=3 {
        chat.join(i);
    }
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(script.len())).collect();
    cuts.extend([0, script.len()]);
    cuts.sort_unstable();
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        out.extend(chat.send_bytes(1, &script[w[0]..w[1]]));
    }
    chat.hub.handle_eof(id(1));
    out.extend(chat.take());
    out
}

proptest! {
    /// Whatever the chunking of a client's input, the hub says the same
    /// things to the same clients in the same order.
    #[test]
    fn any_chunking_gives_identical_output(
        script in a_script(),
        cuts in proptest::collection::vec(0usize..600, 0..30),
    ) {
        let whole = run_chunked(&script, &[]);
        let chunked = run_chunked(&script, &cuts);
        prop_assert_eq!(chunked, whole);
    }

    /// Several clients, arbitrary interleaving of input, disconnects and
    /// reconnects: the hub's tables stay consistent (checked after every
    /// step by `take`), and every line it sends is one valid UTF-8 line with
    /// no control character but TAB.
    #[test]
    fn any_interleaving_keeps_the_hub_consistent_and_its_output_clean(
        steps in proptest::collection::vec(
            (1u64..6, prop_oneof![
                8 => a_line().prop_map(|mut l| { l.push(b'\n'); Step::Input(l) }),
                1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(Step::Input),
                1 => Just(Step::Eof),
                1 => Just(Step::Gone),
                1 => Just(Step::Connect),
            ]),
            0..60,
        ),
    ) {
        let mut chat = Chat::with_max_line(32);
        for i in 1..=5 {
            chat.join(i);
        }
        let mut next_id = 100;
        for (client, step) in steps {
            match step {
                Step::Input(bytes) => chat.hub.handle_input(id(client), &bytes),
                Step::Eof => chat.hub.handle_eof(id(client)),
                Step::Gone => chat.hub.handle_disconnect(id(client), LeaveReason::TooSlow),
                Step::Connect => {
                    next_id += 1;
                    chat.hub.handle_connect(id(next_id));
                }
            }
            for line in chat.take() {
                let body = line.split_once(' ').map_or("", |(_, b)| b);
                prop_assert!(
                    !body.chars().any(|c| c != '\t' && (c.is_control())),
                    "control character in {:?}", line
                );
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Input(Vec<u8>),
    Eof,
    Gone,
    Connect,
}

// ------------------------------------------------------------ the docs

/// The sample session in docs/protocol.md, replayed: the page shows exactly
/// what the hub says. `A connects`, `A> line` and `A closed` are actions and
/// a close; `<A line` is a line A receives.
#[test]
fn the_sample_session_in_docs_protocol_md_is_what_the_hub_says() {
    let doc = include_str!("../../docs/protocol.md");
    let start = doc
        .find("### A sample session")
        .expect("the sample session section");
    let block = &doc[start..];
    let block = &block[block.find("```text\n").expect("its transcript") + 8..];
    let block = &block[..block.find("```").expect("the end of the transcript")];

    let client = |name: &str| {
        assert_eq!(name.len(), 1, "clients are single letters: {name:?}");
        u64::from(name.as_bytes()[0] - b'A' + 1)
    };
    let mut chat = Chat::new();
    let mut expected: Vec<String> = Vec::new();
    let mut steps = 0;
    // Each action is checked against the lines that follow it.
    let mut lines = block.lines().peekable();
    while let Some(action) = lines.next() {
        while let Some(line) = lines.next_if(|l| l.starts_with('<') || l.ends_with(" closed")) {
            expected.push(match line.strip_prefix('<') {
                Some(rest) => {
                    let (who, text) = rest.split_once(' ').expect("<X text");
                    format!("{} {text}", client(who))
                }
                None => format!("close {}", client(line.trim_end_matches(" closed"))),
            });
        }
        if let Some(who) = action.strip_suffix(" connects") {
            chat.hub.handle_connect(id(client(who)));
        } else if let Some((who, text)) = action.split_once("> ") {
            chat.hub
                .handle_input(id(client(who)), format!("{text}\n").as_bytes());
        } else {
            panic!("not an action: {action:?}");
        }
        assert_eq!(chat.take(), expected, "after {action:?}");
        expected.clear();
        steps += 1;
    }
    assert!(steps > 10, "the transcript was found and replayed");
}
