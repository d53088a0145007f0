//! The chat's wire text, written once: the words of the lines whose shape
//! other programs rely on (the welcome, join notices, relayed text), used by
//! the hub to build them and by every reader (the `chat` client, the load
//! generator, the tests) to take them apart. Change a line here and both
//! sides change together.
//!
//! Readers get byte slices of one line without its LF, and answer `None` for
//! a line of another shape.

/// The start of the welcome line, up to the nickname:
/// `* welcome to sockloop chat, you are NICK in #ROOM; /help lists commands`.
pub const WELCOME_HEAD: &str = "* welcome to sockloop chat, you are ";
/// Between the nickname and the room's name (without its `#`).
pub const WELCOME_ROOM: &str = " in #";
/// The end of the welcome line.
pub const WELCOME_TAIL: &str = "; /help lists commands";

/// The nickname a welcome line gives.
pub fn welcome_nick(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(WELCOME_HEAD.as_bytes())?;
    let rest = rest.strip_suffix(WELCOME_TAIL.as_bytes())?;
    let at = find(rest, WELCOME_ROOM.as_bytes())?;
    Some(&rest[..at])
}

/// Whether `line` is a sockloop welcome line (how the `chat` client tells a
/// sockloop chat from some other service).
pub fn is_welcome(line: &[u8]) -> bool {
    welcome_nick(line).is_some()
}

/// The nickname and room (without `#`) of a join notice `* NICK joined #ROOM`.
pub fn joined(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = line.strip_prefix(b"* ")?;
    let at = find(rest, b" joined #")?;
    Some((&rest[..at], &rest[at + b" joined #".len()..]))
}

/// The sender and text of a relayed line `<NICK> text`.
pub fn relayed(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = line.strip_prefix(b"<")?;
    let at = rest.iter().position(|&b| b == b'>')?;
    let text = rest[at + 1..].strip_prefix(b" ")?;
    Some((&rest[..at], text))
}

/// The start of the answer to `/who`: `* users in #ROOM: A, B, C`.
pub const WHO_HEAD: &str = "* users in #";
/// Between the room's name and the first nickname.
pub const WHO_LIST: &str = ": ";
/// Between two nicknames (which never hold a comma or a space).
pub const WHO_SEP: &str = ", ";

/// The room (without `#`) and the nicknames, in order, of an answer to
/// `/who`.
pub fn who(line: &[u8]) -> Option<(&[u8], impl Iterator<Item = &[u8]>)> {
    let rest = line.strip_prefix(WHO_HEAD.as_bytes())?;
    let at = find(rest, WHO_LIST.as_bytes())?;
    let list = &rest[at + WHO_LIST.len()..];
    let nicks = list
        .split(|&b| b == WHO_SEP.as_bytes()[0])
        .map(|nick| nick.strip_prefix(&WHO_SEP.as_bytes()[1..]).unwrap_or(nick))
        .filter(|nick| !nick.is_empty());
    Some((&rest[..at], nicks))
}

/// The guest number in a nickname `guestK`.
pub fn guest_number(nick: &[u8]) -> Option<u64> {
    let digits = nick.strip_prefix(b"guest")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_other_programs_read_come_apart() {
        let welcome = format!("{WELCOME_HEAD}guest12{WELCOME_ROOM}lobby{WELCOME_TAIL}");
        assert_eq!(welcome_nick(welcome.as_bytes()), Some(&b"guest12"[..]));
        assert!(is_welcome(welcome.as_bytes()));
        assert!(!is_welcome(b"Hello,Server"));
        assert_eq!(
            joined(b"* bob joined #rust"),
            Some((&b"bob"[..], &b"rust"[..]))
        );
        assert_eq!(joined(b"* bob left #rust"), None);
        assert_eq!(
            relayed(b"<bob> hi > there"),
            Some((&b"bob"[..], &b"hi > there"[..]))
        );
        assert_eq!(relayed(b"<bob>hi"), None);
        let (room, nicks) = who(b"* users in #lobby: guest1, ann, guest12").unwrap();
        assert_eq!(room, b"lobby");
        assert_eq!(
            nicks.collect::<Vec<_>>(),
            [&b"guest1"[..], b"ann", b"guest12"]
        );
        let (_, nicks) = who(b"* users in #r: solo").unwrap();
        assert_eq!(nicks.collect::<Vec<_>>(), [&b"solo"[..]]);
        assert!(who(b"* bob joined #rust").is_none());
        assert_eq!(guest_number(b"guest7"), Some(7));
        assert_eq!(guest_number(b"guest"), None);
        assert_eq!(guest_number(b"bob"), None);
    }
}
