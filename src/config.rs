//! Every limit and default of sockloop, named, in one place.
//!
//! The command-line defaults of `sockloop` live here as constants, and so do the
//! internal bounds that no option exposes (read budgets, queue lengths,
//! back-off delays). docs/limits.md explains the policy at each bound; when
//! you change a number here, change it there too.

pub mod redis_url;

use std::net::SocketAddr;
use std::time::Duration;

/// Default TCP echo (and UDP echo) address: the tutorial's 127.0.0.1:12345.
pub const DEFAULT_ECHO_ADDR: &str = "127.0.0.1:12345";
/// Default UDP echo address.
pub const DEFAULT_UDP_ECHO_ADDR: &str = "127.0.0.1:12345";
/// Default chat address.
pub const DEFAULT_CHAT_ADDR: &str = "127.0.0.1:12346";

/// `--max-conns`: TCP connections open at once, all listeners together.
pub const DEFAULT_MAX_CONNS: usize = 10_000;
/// `--max-line`: the longest chat line, without its line ending.
pub const DEFAULT_MAX_LINE: usize = 4096;
/// `--out-limit`: pending output allowed per TCP connection.
pub const DEFAULT_OUT_LIMIT: usize = 1_048_576;
/// `--max-pending`: pending output allowed for all connections together.
pub const DEFAULT_MAX_PENDING: usize = 256 * 1024 * 1024;
/// `--shutdown-grace`: seconds shutdown may spend flushing.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: f64 = 5.0;
/// `send --timeout`: seconds to wait for a reply.
pub const DEFAULT_SEND_TIMEOUT_SECS: f64 = 2.0;

/// Size of the one read buffer the loop owns and lends to every connection.
/// 64 KiB also holds any UDP datagram whole (at most 65,507 bytes over IPv4,
/// 65,527 over IPv6), so a datagram is never truncated.
pub const READ_BUF_SIZE: usize = 64 * 1024;
/// Echo relays (pipes, two file descriptors each) open at once. An echo
/// connection whose read fills the whole read buffer is streaming: it takes
/// a relay, and its bytes then go socket to pipe to socket with `splice`,
/// never copied into the process. It gives the relay back once its traffic
/// turns small ([`RELAY_KEEP_MIN`]) or it closes, so a few relays serve many
/// streams in turn; past this many at once, the others copy through the read
/// buffer as before.
pub const MAX_RELAYS: usize = 64;
/// Empty relays kept open for the next stream, so that taking one costs no
/// system call; beyond these, a relay given back is closed, so that the
/// descriptors and kernel memory held follow the streams open now.
pub const IDLE_RELAYS_KEPT: usize = 8;
/// A stream keeps its relay after a turn of reading that moved at least
/// this much; a turn that moved less gives the relay back (see
/// `reactor::relay`).
pub const RELAY_KEEP_MIN: usize = 16 * 1024;
/// The most one fill of a relay asks for: a pipe's default capacity (16
/// pages), the same as the read buffer.
pub const RELAY_FILL: usize = READ_BUF_SIZE;
/// The largest UDP payload the echo service promises to return whole (IPv4).
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Bytes one server connection may read in one turn of the loop before it
/// must let the others run (fairness). A source that still has input goes on
/// the "still ready" list: the next poll does not block, and the next turn
/// retries it (a source with a fresh event in that turn as well gets both).
///
/// Why two read budgets: the server's is four reads of the read buffer, so
/// that a streaming connection pays for one `epoll_wait` per 256 KiB rather
/// than per 64 KiB while thousands of others still get their turn soon
/// enough. A client (`chat`, `talk`) has only its socket and stdin, and
/// prints what one turn received in one write to stdout: its budget,
/// [`CLIENT_READ_BUDGET_PER_TURN`], is one buffer, so typing waits for at
/// most one buffer of received text and a turn's output stays that small.
pub const READ_BUDGET_PER_TURN: usize = 256 * 1024;
/// Bytes a client reads from one source (socket or stdin) in one turn of its
/// loop before giving the other source a turn; see [`READ_BUDGET_PER_TURN`]
/// for why it is smaller than the server's.
pub const CLIENT_READ_BUDGET_PER_TURN: usize = 64 * 1024;
/// Chat effects (a line to one client or to a room) the hub may hold while
/// the loop reads, before they are delivered: normally a turn's lines go out
/// together at the flush, which lets the delivery queue a run of lines to one
/// room member by member; past this many they are delivered at once, so the
/// hub's effect queue has a bound (this, plus the lines of one read).
pub const EFFECTS_BEFORE_DELIVERY: usize = 1024;
/// Bytes one connection may write in one turn of the loop.
pub const WRITE_BUDGET_PER_TURN: usize = 256 * 1024;
/// Connections one listener may accept in one turn of the loop.
pub const ACCEPT_BUDGET_PER_TURN: usize = 64;
/// Datagrams one UDP socket may receive in one turn of the loop.
pub const DATAGRAM_BUDGET_PER_TURN: usize = 256;
/// How long a listener stops accepting after the process ran out of file
/// descriptors (EMFILE/ENFILE), before it tries again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

/// How long a connection that is done (a chat client that quit) may linger
/// after our FIN, reading and discarding what the client still sends, before
/// it is closed anyway. Closing at once with unread input would send RST.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// The listen backlog: connections the kernel completes and queues for us
/// before we accept them (capped by the kernel at `net.core.somaxconn`).
/// std's and mio's 128 overflows under a burst of connects, and an overflow
/// drops the SYN, which costs the client a one-second retransmit.
pub const LISTEN_BACKLOG: i32 = 1024;

/// UDP replies that may wait while the socket cannot send. Past this the
/// reply is dropped and counted.
pub const UDP_QUEUE_DATAGRAMS: usize = 1024;
/// Payload bytes those waiting UDP replies may hold together.
pub const UDP_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Output slices gathered into one vectored write.
pub const MAX_IOVECS: usize = 64;
/// Spare echo buffers the loop keeps for reuse, so that steady-state echo
/// allocates nothing. A buffer larger than `POOLED_BUF_MAX` is freed instead.
pub const POOL_MAX_BUFFERS: usize = 256;
/// The largest buffer the pool keeps.
pub const POOLED_BUF_MAX: usize = 256 * 1024;

/// What to serve and under which limits: `sockloop serve`'s options, resolved.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Every socket to open, in the order the command line gave them.
    pub listeners: Vec<ListenerSpec>,
    /// TCP connections open at once.
    pub max_conns: usize,
    /// Longest chat line, without its ending.
    pub max_line: usize,
    /// Pending output allowed per TCP connection.
    pub out_limit: usize,
    /// Pending output allowed for all connections together.
    pub max_pending: usize,
    /// Close a TCP connection silent for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// How long shutdown may spend flushing.
    pub shutdown_grace: Duration,
    /// Log counters this often (`None`: only at shutdown).
    pub stats_interval: Option<Duration>,
    /// Write a Chrome trace of the loop here.
    pub trace_events: Option<std::path::PathBuf>,
    /// Join the chat to other servers through this Redis (`--cluster`).
    pub cluster: Option<crate::config::redis_url::RedisUrl>,
}

/// One socket to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Which service answers on it.
    pub service: Service,
    /// The address as the user wrote it (`localhost:0`, `[::1]:7000`).
    pub addr: String,
}

/// The three services of `sockloop serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// TCP echo (RFC 862).
    TcpEcho,
    /// UDP echo (RFC 862).
    UdpEcho,
    /// Line-based chat.
    Chat,
    /// TCP daytime (RFC 867): the time, then close.
    Daytime,
}

impl Service {
    /// Every service, in the order `serve --help` lists their options. A
    /// new service goes here too (the test below points at this list).
    pub const ALL: [Service; 4] = [
        Service::TcpEcho,
        Service::UdpEcho,
        Service::Chat,
        Service::Daytime,
    ];

    /// The name printed in `listening SERVICE ADDR` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Service::TcpEcho => "tcp-echo",
            Service::UdpEcho => "udp-echo",
            Service::Chat => "chat",
            Service::Daytime => "daytime",
        }
    }
}

/// The services a TCP listener hands its connections to. Kept apart from
/// [`Service`] so that every `match` on what a connection runs is exhaustive
/// over exactly these: a new TCP service is one more variant here, and the
/// compiler points at every place that must learn about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpService {
    /// TCP echo (RFC 862).
    Echo,
    /// Line-based chat.
    Chat,
    /// TCP daytime (RFC 867).
    Daytime,
}

impl TcpService {
    /// The service as the command line and the `listening` lines name it.
    pub fn service(self) -> Service {
        match self {
            TcpService::Echo => Service::TcpEcho,
            TcpService::Chat => Service::Chat,
            TcpService::Daytime => Service::Daytime,
        }
    }

    /// The name printed in logs.
    pub fn name(self) -> &'static str {
        self.service().name()
    }
}

impl ServeConfig {
    /// Serve `listeners` with every other option at its default (for
    /// embedding the server, and for tests).
    pub fn with_defaults(listeners: Vec<ListenerSpec>) -> ServeConfig {
        ServeConfig {
            listeners,
            max_conns: DEFAULT_MAX_CONNS,
            max_line: DEFAULT_MAX_LINE,
            out_limit: DEFAULT_OUT_LIMIT,
            max_pending: DEFAULT_MAX_PENDING,
            idle_timeout: None,
            shutdown_grace: Duration::from_secs_f64(DEFAULT_SHUTDOWN_GRACE_SECS),
            stats_interval: None,
            trace_events: None,
            cluster: None,
        }
    }
}

/// What every ADDR must look like, for error messages.
pub const ADDR_FORM: &str = "HOST:PORT, for example 127.0.0.1:12345 or [::1]:12345 \
     (a port from 0 to 65535; 0 picks a free one)";

/// Check that `addr` has the form `host:port` without resolving anything:
/// an IPv4 address, a bracketed IPv6 address or a host name, a colon, and a
/// port from 0 to 65535. On success the address is returned unchanged.
///
/// This is the line between a bad argument and a run-time failure: an
/// address that fails here can never work, whatever the network does, so it
/// is a usage error; one that passes may still fail to resolve ([`resolve`]).
pub fn check_addr(addr: &str) -> Result<&str, String> {
    let bad = |why: &str| Err(format!("{why}; expected {ADDR_FORM}"));
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return bad("an IPv6 address opened with [ is not closed with ]");
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("not an IPv6 address between [ and ]");
        }
        match after.strip_prefix(':') {
            Some(port) => (inside, port),
            None => return bad("no port"),
        }
    } else {
        match addr.rsplit_once(':') {
            None => return bad("no port"),
            Some((host, _)) if host.contains(':') => {
                return bad("an IPv6 address needs brackets: [ADDRESS]:PORT")
            }
            Some(pair) => pair,
        }
    };
    if host.is_empty() {
        return bad("no host");
    }
    if port.is_empty() {
        return bad("no port");
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
        return bad("the port is not a number from 0 to 65535");
    }
    if !addr.starts_with('[') {
        let name_like = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !name_like {
            return bad("the host is neither an address nor a host name");
        }
        let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if numeric && host.parse::<std::net::Ipv4Addr>().is_err() {
            return bad("not an IPv4 address");
        }
    }
    Ok(addr)
}

/// Resolve `host:port` (IPv4, `[IPv6]`, or a host name) to the first address
/// it names. Errors are worded for a person: they name what was asked.
pub fn resolve(addr: &str) -> std::io::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let mut it = addr
        .to_socket_addrs()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot resolve {addr}: {e}")))?;
    it.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("cannot resolve {addr}: no address"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new `Service` variant fails to compile here until it has a place;
    /// the assertion then wants that place filled in `Service::ALL`.
    #[test]
    fn service_all_lists_every_service_once_in_order() {
        let place = |s: Service| match s {
            Service::TcpEcho => 0,
            Service::UdpEcho => 1,
            Service::Chat => 2,
            Service::Daytime => 3,
        };
        let places: Vec<usize> = Service::ALL.into_iter().map(place).collect();
        assert_eq!(places, (0..Service::ALL.len()).collect::<Vec<_>>());
        let names: std::collections::HashSet<_> = Service::ALL.map(Service::name).into();
        assert_eq!(names.len(), Service::ALL.len(), "names are unique");
    }

    #[test]
    fn well_formed_addresses_pass_unchanged() {
        for ok in [
            "127.0.0.1:0",
            "127.0.0.1:65535",
            "[::1]:7000",
            "[fe80::1]:1",
            "localhost:12345",
            "my-host.example_1:80",
        ] {
            assert_eq!(check_addr(ok), Ok(ok));
        }
    }

    #[test]
    fn malformed_addresses_say_which_form_was_expected() {
        for (bad, why) in [
            ("127.0.0.1", "no port"),
            ("127.0.0.1:", "no port"),
            (":12399", "no host"),
            ("[::1]", "no port"),
            ("[::1:5", "not closed"),
            ("[nope]:5", "not an IPv6"),
            ("::1", "brackets"),
            ("::1:80", "brackets"),
            ("host:99999", "0 to 65535"),
            ("host:+80", "0 to 65535"),
            ("host:http", "0 to 65535"),
            ("127.0.0.256:80", "not an IPv4"),
            ("a b:80", "neither"),
            ("", "no port"),
        ] {
            let err = check_addr(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains("HOST:PORT"), "{bad:?}: {err}");
        }
    }
}
