//! Nicknames and room names: 1 to 32 ASCII letters, digits, `_` and `-`.
//!
//! A [`Name`] can only hold a valid name (it is checked once, in
//! [`Name::parse`]), so the rest of the hub never re-validates, and it is
//! stored inline (`Copy`, no heap): a session's nickname or a room's name
//! costs no allocation, and neither does comparing or hashing one.
//!
//! Names are unique without regard to case. A [`NameKey`] is the lowercase
//! form used to index nicknames and rooms; the [`Name`] itself keeps the case
//! its owner chose, for display.

use std::fmt;

/// The longest nickname or room name, in bytes (all of them ASCII).
pub const MAX_NAME_LEN: usize = 32;

/// A valid nickname or room name, as its owner spelled it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name {
    len: u8,
    bytes: [u8; MAX_NAME_LEN],
}

/// A name folded to lowercase: equal keys are the same name to users.
/// Ordered by its bytes, so a map keyed by it lists names alphabetically
/// without regard to case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NameKey {
    // `bytes` first, so the derived order is alphabetical (zero padding sorts
    // a prefix first); `len` never decides, as equal bytes mean equal length.
    bytes: [u8; MAX_NAME_LEN],
    len: u8,
}

/// Whether `b` may appear in a name.
pub fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl Name {
    /// The name, if `text` is 1 to 32 ASCII letters, digits, `_` or `-`.
    pub fn parse(text: &[u8]) -> Option<Name> {
        if text.is_empty() || text.len() > MAX_NAME_LEN || !text.iter().all(|&b| is_name_byte(b)) {
            return None;
        }
        let mut bytes = [0; MAX_NAME_LEN];
        bytes[..text.len()].copy_from_slice(text);
        Some(Name {
            len: text.len() as u8,
            bytes,
        })
    }

    /// `guestN`, the name given to the N-th client (formatted without a
    /// heap allocation: it fits, as a u64 has at most 20 digits).
    pub fn guest(n: u64) -> Name {
        use std::io::Write;
        let mut bytes = [0; MAX_NAME_LEN];
        let mut rest = &mut bytes[..];
        write!(rest, "guest{n}").expect("guest names fit in 32 bytes");
        let len = MAX_NAME_LEN - rest.len();
        Name {
            len: len as u8,
            bytes,
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("names are ASCII")
    }

    /// The name as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The case-folded key under which this name is unique.
    pub fn key(&self) -> NameKey {
        let mut bytes = self.bytes;
        bytes.make_ascii_lowercase();
        NameKey {
            bytes,
            len: self.len,
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_letters_digits_underscore_and_dash_up_to_32() {
        for ok in [
            "a",
            "Z",
            "0",
            "_",
            "-",
            "guest1",
            "Alice_B-2",
            &"x".repeat(32),
        ] {
            assert_eq!(Name::parse(ok.as_bytes()).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "a b",
            "é",
            "a.b",
            "#room",
            "a\n",
            &"x".repeat(33),
            "\u{0}",
        ] {
            assert!(Name::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn keys_ignore_case_and_names_keep_it() {
        let a = Name::parse(b"Alice").unwrap();
        let b = Name::parse(b"aLICE").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.key(), b.key());
        assert_eq!(a.to_string(), "Alice");
    }

    #[test]
    fn guest_names() {
        assert_eq!(Name::guest(1).as_str(), "guest1");
        assert_eq!(Name::guest(u64::MAX).as_str(), format!("guest{}", u64::MAX));
    }

    #[test]
    fn keys_order_alphabetically_without_regard_to_case() {
        let key = |s: &str| Name::parse(s.as_bytes()).unwrap().key();
        assert!(key("Apple") < key("banana"));
        assert!(key("a") < key("ab"));
        assert!(key("lobby") < key("Rust"));
    }

    proptest! {
        #[test]
        fn parse_agrees_with_the_rule(text in proptest::collection::vec(any::<u8>(), 0..40)) {
            let valid = (1..=32).contains(&text.len())
                && text.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
            prop_assert_eq!(Name::parse(&text).is_some(), valid);
            if let Some(name) = Name::parse(&text) {
                prop_assert_eq!(name.as_bytes(), &text[..]);
            }
        }
    }
}
