//! The `--cluster` address: `redis://HOST:PORT`, with optional credentials
//! (`redis://:PASSWORD@HOST:PORT`, `redis://USER:PASSWORD@HOST:PORT`).
//!
//! Parsing is strict so that a typo is a usage error at start-up, not a
//! link that never comes up: the scheme must be `redis://`, the host must be
//! there (an IPv6 address in brackets, as in `[::1]:6379`), the port is a
//! number from 1 to 65535 (6379 when left out, as every Redis client does),
//! and nothing may follow but an optional `/` or `/0` (pub/sub ignores
//! database numbers, so choosing one would mean nothing). `%XX` escapes in
//! the user name and password are decoded, so a password may hold `@` or
//! `:`.

use std::fmt;

/// Where Redis is and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address (an IPv6 address without its brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user name, when the URL names one (`default` otherwise).
    pub username: Option<String>,
    /// Password, when the URL has one.
    pub password: Option<String>,
}

/// Why a `--cluster` value is not a Redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (expected redis://HOST:PORT or redis://:PASSWORD@HOST:PORT)",
            self.0
        )
    }
}

impl std::error::Error for UrlError {}

fn err<T>(why: impl Into<String>) -> Result<T, UrlError> {
    Err(UrlError(why.into()))
}

impl RedisUrl {
    /// Parse `text` (see the module documentation for the accepted forms).
    pub fn parse(text: &str) -> Result<RedisUrl, UrlError> {
        let Some(rest) = text.strip_prefix("redis://") else {
            if text.starts_with("rediss://") {
                return err("TLS (rediss://) is not supported");
            }
            return err(format!("{text:?} does not start with redis://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !matches!(path, "" | "/" | "/0") {
            return err(format!(
                "{path:?} after the port: database numbers are not supported"
            ));
        }
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = match info.find(':') {
                    Some(i) => (&info[..i], Some(&info[i + 1..])),
                    None => (info, None),
                };
                let user = percent_decode(user)?;
                let pass = pass.map(percent_decode).transpose()?;
                ((!user.is_empty()).then_some(user), pass)
            }
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let Some(end) = v6.find(']') else {
                return err("an IPv6 host needs its closing ]");
            };
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return err(format!("{after:?} after the IPv6 host")),
            };
            (&v6[..end], port)
        } else {
            match hostport.rfind(':') {
                Some(i) => (&hostport[..i], Some(&hostport[i + 1..])),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return err("no host");
        }
        if host.contains(['[', ']', ':', '@', ' ']) && !hostport.starts_with('[') {
            return err(format!("{host:?} is not a host name"));
        }
        let port = match port {
            None => 6379,
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port != 0 && p.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => return err(format!("{p:?} is not a port number from 1 to 65535")),
            },
        };
        Ok(RedisUrl {
            host: host.to_owned(),
            port,
            username,
            password,
        })
    }

    /// `HOST:PORT` (brackets around an IPv6 address), for resolving and for
    /// messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The URL without its password, fit for logs and error messages.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, None) => {}
        }
        f.write_str(&self.addr())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn percent_decode(text: &str) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return err("a % in the credentials must start a %XX escape");
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).or_else(|_| err("the credentials are not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, user: Option<&str>, pass: Option<&str>) -> RedisUrl {
        RedisUrl {
            host: host.into(),
            port,
            username: user.map(Into::into),
            password: pass.map(Into::into),
        }
    }

    #[test]
    fn accepts_the_documented_forms() {
        let cases = [
            ("redis://127.0.0.1:6390", url("127.0.0.1", 6390, None, None)),
            ("redis://localhost", url("localhost", 6379, None, None)),
            ("redis://[::1]:7000/", url("::1", 7000, None, None)),
            ("redis://[::1]", url("::1", 6379, None, None)),
            (
                "redis://:s3cret@10.0.0.2:6379",
                url("10.0.0.2", 6379, None, Some("s3cret")),
            ),
            (
                "redis://bob:p%40ss:w@h:1/0",
                url("h", 1, Some("bob"), Some("p@ss:w")),
            ),
            ("redis://:@h:2", url("h", 2, None, Some(""))),
        ];
        for (text, expected) in cases {
            assert_eq!(RedisUrl::parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_the_rest_with_a_reason() {
        for (text, why) in [
            ("127.0.0.1:6379", "does not start with redis://"),
            ("rediss://h:1", "TLS"),
            ("redis://", "no host"),
            ("redis://:6379", "no host"),
            ("redis://h:0", "port number"),
            ("redis://h:65536", "port number"),
            ("redis://h:+1", "port number"),
            ("redis://h:x", "port number"),
            ("redis://h:1/2", "database numbers"),
            ("redis://[::1", "closing ]"),
            ("redis://[::1]x", "after the IPv6 host"),
            ("redis://:%zz@h:1", "%XX"),
            ("redis://a:b:1", "not a host name"),
        ] {
            let e = RedisUrl::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.contains("expected redis://HOST:PORT"), "{e}");
        }
    }

    #[test]
    fn display_hides_the_password() {
        let u = RedisUrl::parse("redis://:hunter2@[::1]:7000").unwrap();
        assert_eq!(u.to_string(), "redis://:***@[::1]:7000");
        assert_eq!(u.addr(), "[::1]:7000");
        assert!(!format!("{u:?}").contains("hunter2"));
    }
}
