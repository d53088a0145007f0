//! What a chat line asks for: plain text, `bye`, or a `/command`.
//!
//! Parsing is separate from acting on it, borrows from the line (no
//! allocation), and knows nothing of sessions or rooms: it only splits the
//! line and checks that each command got the arguments it needs. Whether a
//! nickname is valid, free or known is the hub's business.
//!
//! The rules, as docs/protocol.md states them for users:
//! - a line starting with `/` is a command; the command word is matched
//!   without regard to case (`/NICK` = `/nick`);
//! - arguments are separated by spaces or tabs; a text argument (`/msg`'s
//!   text, `/me`'s action) starts at its first non-blank character and runs
//!   to the end of the line as typed; a `/quit` reason is trimmed;
//! - a command that takes no argument rejects one, and a command missing an
//!   argument it needs is a usage error;
//! - the line `bye`, exactly, is the tutorial's way to leave, the same as
//!   `/quit` (with no reason).

/// A parsed chat line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// Plain text for the room (may be blank, never empty).
    Say(&'a str),
    /// `/nick NAME`: the requested name, not yet validated.
    Nick(&'a str),
    /// `/who`.
    Who,
    /// `/rooms`.
    Rooms,
    /// `/join ROOM`: the room name, `#` not yet removed, not validated.
    Join(&'a str),
    /// `/msg NICK TEXT`.
    Msg {
        /// The recipient's nickname, as typed.
        to: &'a str,
        /// The message, not empty.
        text: &'a str,
    },
    /// `/me ACTION`: the action, not empty.
    Me(&'a str),
    /// `/help`.
    Help,
    /// `/quit [REASON]` (reason empty when none was given) or `bye`.
    Quit(&'a str),
}

/// Why a line is not a valid command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError<'a> {
    /// No such command: the word as typed, with its `/`.
    Unknown(&'a str),
    /// A known command with missing or extra arguments: its usage line.
    Usage(&'static str),
}

/// Usage lines, as the error and `/help` show them.
pub mod usage {
    /// `/nick`.
    pub const NICK: &str = "/nick NAME";
    /// `/who`.
    pub const WHO: &str = "/who";
    /// `/rooms`.
    pub const ROOMS: &str = "/rooms";
    /// `/join`.
    pub const JOIN: &str = "/join ROOM";
    /// `/msg`.
    pub const MSG: &str = "/msg NICK TEXT";
    /// `/me`.
    pub const ME: &str = "/me ACTION";
    /// `/help`.
    pub const HELP: &str = "/help";
    /// `/quit`.
    pub const QUIT: &str = "/quit [REASON]";
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Split off the first blank-separated word; the rest starts at its first
/// non-blank character.
fn first_word(text: &str) -> (&str, &str) {
    match text.split_once(is_blank) {
        Some((word, rest)) => (word, rest.trim_start_matches(is_blank)),
        None => (text, ""),
    }
}

/// Parse one non-empty line (already checked to be UTF-8, its ending
/// removed).
pub fn parse(line: &str) -> Result<Command<'_>, CommandError<'_>> {
    if line == "bye" {
        return Ok(Command::Quit(""));
    }
    if !line.starts_with('/') {
        return Ok(Command::Say(line));
    }
    let (word, args) = first_word(line);
    let is = |name: &str| word[1..].eq_ignore_ascii_case(name);
    let no_args = |command: Command<'static>, usage: &'static str| {
        if args.is_empty() {
            Ok(command)
        } else {
            Err(CommandError::Usage(usage))
        }
    };
    // A name argument: the rest of the line, trimmed (so `/nick a b` asks
    // for the invalid name "a b" rather than silently ignoring "b").
    let name_arg = args.trim_end_matches(is_blank);
    if is("nick") {
        match name_arg {
            "" => Err(CommandError::Usage(usage::NICK)),
            name => Ok(Command::Nick(name)),
        }
    } else if is("join") {
        match name_arg {
            "" => Err(CommandError::Usage(usage::JOIN)),
            name => Ok(Command::Join(name)),
        }
    } else if is("who") {
        no_args(Command::Who, usage::WHO)
    } else if is("rooms") {
        no_args(Command::Rooms, usage::ROOMS)
    } else if is("help") {
        no_args(Command::Help, usage::HELP)
    } else if is("me") {
        if args.is_empty() {
            Err(CommandError::Usage(usage::ME))
        } else {
            Ok(Command::Me(args))
        }
    } else if is("msg") {
        let (to, text) = first_word(args);
        if to.is_empty() || text.is_empty() {
            Err(CommandError::Usage(usage::MSG))
        } else {
            Ok(Command::Msg { to, text })
        }
    } else if is("quit") {
        Ok(Command::Quit(args.trim_end_matches(is_blank)))
    } else {
        Err(CommandError::Unknown(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Command::*;

    #[test]
    fn text_and_bye() {
        assert_eq!(parse("hello /nick"), Ok(Say("hello /nick")));
        assert_eq!(parse("  "), Ok(Say("  ")));
        assert_eq!(parse("bye"), Ok(Quit("")));
        assert_eq!(parse("bye now"), Ok(Say("bye now")));
        assert_eq!(parse("Bye"), Ok(Say("Bye")));
    }

    #[test]
    fn commands_and_their_arguments() {
        assert_eq!(parse("/nick bob"), Ok(Nick("bob")));
        assert_eq!(parse("/NICK  bob \t"), Ok(Nick("bob")));
        assert_eq!(parse("/nick a b"), Ok(Nick("a b")));
        assert_eq!(parse("/join #rust"), Ok(Join("#rust")));
        assert_eq!(parse("/who"), Ok(Who));
        assert_eq!(parse("/rooms"), Ok(Rooms));
        assert_eq!(parse("/help"), Ok(Help));
        assert_eq!(parse("/me waves  hello "), Ok(Me("waves  hello ")));
        assert_eq!(
            parse("/msg\tbob   hi  there"),
            Ok(Msg {
                to: "bob",
                text: "hi  there"
            })
        );
        assert_eq!(parse("/quit"), Ok(Quit("")));
        assert_eq!(parse("/quit  gone fishing  "), Ok(Quit("gone fishing")));
    }

    #[test]
    fn usage_errors() {
        assert_eq!(parse("/nick"), Err(CommandError::Usage(usage::NICK)));
        assert_eq!(parse("/nick   "), Err(CommandError::Usage(usage::NICK)));
        assert_eq!(parse("/join"), Err(CommandError::Usage(usage::JOIN)));
        assert_eq!(parse("/who x"), Err(CommandError::Usage(usage::WHO)));
        assert_eq!(parse("/rooms x"), Err(CommandError::Usage(usage::ROOMS)));
        assert_eq!(parse("/help me"), Err(CommandError::Usage(usage::HELP)));
        assert_eq!(parse("/me"), Err(CommandError::Usage(usage::ME)));
        assert_eq!(parse("/me  "), Err(CommandError::Usage(usage::ME)));
        assert_eq!(parse("/msg"), Err(CommandError::Usage(usage::MSG)));
        assert_eq!(parse("/msg bob"), Err(CommandError::Usage(usage::MSG)));
        assert_eq!(parse("/msg bob  "), Err(CommandError::Usage(usage::MSG)));
    }

    #[test]
    fn unknown_commands() {
        assert_eq!(parse("/"), Err(CommandError::Unknown("/")));
        assert_eq!(parse("/dance now"), Err(CommandError::Unknown("/dance")));
        assert_eq!(
            parse("/nickname x"),
            Err(CommandError::Unknown("/nickname"))
        );
        assert_eq!(parse("/ nick"), Err(CommandError::Unknown("/")));
    }
}
