//! What the slab holds: one [`Entry`] per registered source. A source is a
//! TCP listener, a UDP socket or a TCP connection; a connection carries the
//! sans-IO state machine of its service (echo or chat) plus the bookkeeping
//! the reactor needs (bytes moved, when it last sent, whether it is closing).
//!
//! The mio interest of every source is a pure function of its state
//! ([`Conn::desired_interest`]): READABLE while it wants input, WRITABLE only
//! while output waits. The reactor re-registers only when that function's
//! answer changes, so steady-state traffic costs no `epoll_ctl`.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::time::Instant;

use mio::Interest;

use crate::buffer::{BufferPool, ChunkQueue};
use crate::config::TcpService;
use crate::net::mio::MioNet;
use crate::net::Net;
use crate::protocol::chat::ClientId;
use crate::protocol::daytime::DaytimeSession;
use crate::protocol::echo::EchoSession;
use crate::protocol::udp_echo::UdpEcho;

/// One slab entry: a source and the serial number it was given when it was
/// inserted. Serial numbers only grow, so (slot, serial) names one source for
/// the whole life of the process, even after its slot is reused.
pub struct Entry<N: Net = MioNet> {
    /// Unique for the process's lifetime.
    pub serial: u64,
    /// The source itself.
    pub source: Source<N>,
}

/// A registered source.
pub enum Source<N: Net = MioNet> {
    /// A TCP listener for echo or chat.
    Listener(Listener<N>),
    /// A UDP echo socket (boxed: its queue makes it much larger than the
    /// other variants, and every slab slot is as large as the largest variant).
    Udp(Box<UdpEndpoint<N>>),
    /// An accepted TCP connection.
    Conn(Conn<N>),
    /// The link to Redis of `--cluster` (boxed, as rare as it is: one per
    /// server).
    Redis(Box<RedisSource<N>>),
}

impl<N: Net> Source<N> {
    /// A short name for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Listener(_) => "listener",
            Source::Udp(_) => "udp",
            Source::Redis(_) => "redis",
            Source::Conn(c) => match c.proto {
                Proto::Echo(_) => "echo-conn",
                Proto::Chat(_) => "chat-conn",
                Proto::Daytime(_) => "daytime-conn",
            },
        }
    }
}

/// A TCP listener.
pub struct Listener<N: Net = MioNet> {
    /// The socket.
    pub socket: N::Listener,
    /// Which service its connections get.
    pub service: TcpService,
    /// While set, accepting is paused until this time (the process ran out of
    /// file descriptors); it is also this listener's deadline in the loop's
    /// timers.
    pub backoff_until: Option<Instant>,
}

/// A UDP echo socket and the replies waiting to be sent on it.
pub struct UdpEndpoint<N: Net = MioNet> {
    /// The socket.
    pub socket: N::Udp,
    /// The sans-IO echo state (reply queue, port guard).
    pub echo: UdpEcho,
    /// What mio currently watches for.
    pub interest: Interest,
}

impl<N: Net> UdpEndpoint<N> {
    /// READABLE always; WRITABLE only while replies wait.
    pub fn desired_interest(&self) -> Interest {
        if self.echo.wants_write() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }
}

/// Why a connection closed, for the debug log line and the chat leave notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The protocol finished normally (echo: EOF and all echoed; chat: quit).
    Done,
    /// A read or write failed (reset, broken pipe, ...).
    Error(String),
    /// Chat output passed `--out-limit`.
    TooSlow,
    /// Nothing received for `--idle-timeout`.
    IdleTimeout,
    /// Closed by server shutdown.
    Shutdown,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Done => f.write_str("done"),
            CloseReason::Error(e) => write!(f, "error: {e}"),
            CloseReason::TooSlow => f.write_str("too slow"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::Shutdown => f.write_str("shutdown"),
        }
    }
}

/// The protocol side of a connection.
pub enum Proto {
    /// TCP echo: the sans-IO session holds the backlog.
    Echo(EchoSession),
    /// Chat: the hub holds the session; the connection holds its output.
    Chat(ChatConn),
    /// Daytime: one line out, nothing read, then a lingering close.
    Daytime(DaytimeSession),
}

/// A chat connection's share of the state: its output queue of shared lines.
/// Everything else about the client (nick, room, framing) is in the hub.
pub struct ChatConn {
    /// Lines waiting to be written, as handles to shared buffers.
    pub out: ChunkQueue,
    /// The hub is done with this client (quit, EOF or shutdown): stop
    /// reading, flush `out`, then close.
    pub finishing: bool,
}

/// An accepted TCP connection.
pub struct Conn<N: Net = MioNet> {
    /// The socket.
    pub stream: N::Stream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Which service it belongs to.
    pub service: TcpService,
    /// The protocol state.
    pub proto: Proto,
    /// What mio currently watches for.
    pub interest: Interest,
    /// Set when the connection is closing: events for it are ignored and it
    /// is removed from the slab after the current batch of events.
    pub closing: Option<CloseReason>,
    /// Already on the loop's list of connections to flush this turn.
    pub flush_queued: bool,
    /// When it was accepted.
    pub opened: Instant,
    /// When it last sent us something (for `--idle-timeout`), or when the
    /// server last resumed reading it after a pause of its own.
    pub last_input: Instant,
    /// Its one deadline in the loop's timers (idle check, or the end of a
    /// lingering close), kept so that closing can cancel it.
    pub deadline: Option<Instant>,
    /// The peer's end of input (EOF) was read: no unread byte can follow, so
    /// the connection may close without lingering.
    pub saw_eof: bool,
    /// Reading is paused because all connections' pending output together
    /// reached `--max-pending`; it resumes when the total falls below.
    pub paused_for_total: bool,
    /// After such a pause: how many more bytes it may read before it must
    /// let the other paused connections have their share of the room under
    /// `--max-pending` (`None`: no limit but the bounds themselves).
    pub total_share: Option<usize>,
    /// Bytes read from it.
    pub bytes_in: u64,
    /// Bytes written to it.
    pub bytes_out: u64,
    /// Echo only, while it streams: the relay its bytes pass through in the
    /// kernel (see `reactor::relay`); `None` when it copies.
    pub relay: Option<N::Relay>,
    /// Shutdown only: all output is out and our FIN is sent; the connection
    /// stays open, reading and discarding, until the client closes or the
    /// grace ends. Closing at once while the client's bytes sit unread in our
    /// receive buffer would make the kernel send RST, and an RST can destroy
    /// data the client has not read yet (a "lingering close", as in nginx).
    pub lingering: bool,
}

impl<N: Net> Conn<N> {
    /// Whether the connection wants input now. Echo pauses at its backlog
    /// bound; chat stops after quit/EOF.
    pub fn wants_read(&self) -> bool {
        match &self.proto {
            Proto::Echo(e) => e.wants_read(),
            Proto::Chat(c) => !c.finishing,
            // Input is thrown away, by the lingering close once the line is
            // out; until then the client's bytes wait in the kernel.
            Proto::Daytime(_) => false,
        }
    }

    /// Bytes waiting to be written.
    pub fn pending_output(&self) -> usize {
        match &self.proto {
            Proto::Echo(e) => e.pending(),
            Proto::Chat(c) => c.out.len(),
            Proto::Daytime(d) => d.pending(),
        }
    }

    /// Of the pending output, the bytes waiting in an echo relay.
    pub fn relayed(&self) -> usize {
        match &self.proto {
            Proto::Echo(e) => e.relayed(),
            Proto::Chat(_) | Proto::Daytime(_) => 0,
        }
    }

    /// What the pending output costs, as `--out-limit` and `--max-pending`
    /// count it: echo's bytes; chat's bytes plus the bookkeeping of each
    /// queued line (see [`ChunkQueue::cost`]).
    pub fn pending_cost(&self) -> usize {
        match &self.proto {
            Proto::Echo(e) => e.pending(),
            Proto::Chat(c) => c.out.cost(),
            Proto::Daytime(d) => d.pending(),
        }
    }

    /// The server itself stopped reading this connection (its echo backlog
    /// is at `--out-limit`, or all pending output is at `--max-pending`):
    /// silence from the peer is then not idleness.
    pub fn input_paused_by_server(&self) -> bool {
        let at_out_limit = match &self.proto {
            Proto::Echo(e) => !e.input_closed() && !e.wants_read(),
            Proto::Chat(_) | Proto::Daytime(_) => false,
        };
        at_out_limit || self.paused_for_total
    }

    /// The protocol has nothing more to do: input ended and output drained.
    pub fn is_finished(&self) -> bool {
        match &self.proto {
            Proto::Echo(e) => e.is_done(),
            Proto::Chat(c) => c.finishing && c.out.is_empty(),
            Proto::Daytime(d) => d.is_done(),
        }
    }

    /// Interest as a pure function of state. `None` when the connection wants
    /// nothing (it is finished and about to close).
    pub fn desired_interest(&self) -> Option<Interest> {
        if self.lingering {
            return Some(Interest::READABLE);
        }
        match (self.wants_read(), self.pending_output() > 0) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    /// The pending output as I/O slices for one vectored write.
    pub fn output<'a>(&'a self, iov: &mut [IoSlice<'a>]) -> usize {
        match &self.proto {
            Proto::Echo(e) => e.output(iov),
            Proto::Chat(c) => c.out.io_slices(iov),
            Proto::Daytime(d) => match iov.first_mut() {
                Some(slot) if d.pending() > 0 => {
                    *slot = IoSlice::new(d.output());
                    1
                }
                _ => 0,
            },
        }
    }

    /// The socket took `n` bytes of output.
    pub fn consume_output(&mut self, n: usize, pool: &mut BufferPool) {
        self.bytes_out += n as u64;
        match &mut self.proto {
            Proto::Echo(e) => e.consume_output(n, pool),
            Proto::Chat(c) => c.out.consume(n),
            Proto::Daytime(d) => d.consume_output(n),
        }
    }

    /// Drop all pending output and give buffers back (closing).
    pub fn discard_output(&mut self, pool: &mut BufferPool) {
        match &mut self.proto {
            Proto::Echo(e) => e.release(pool),
            Proto::Chat(c) => c.out.clear(),
            Proto::Daytime(d) => d.discard(),
        }
    }
}

/// The id the chat hub knows connection (`key`, `serial`) by.
pub fn client_id(key: usize, serial: u64) -> ClientId {
    ClientId(((serial & 0xffff_ffff) << 32) | key as u64)
}

/// The slab key packed into a [`ClientId`] by [`client_id`].
pub fn key_of(id: ClientId) -> usize {
    (id.0 & 0xffff_ffff) as usize
}

/// Whether `serial` is the one packed into `id`.
pub fn serial_matches(id: ClientId, serial: u64) -> bool {
    id.0 >> 32 == serial & 0xffff_ffff
}

/// The link's socket, when one is open.
pub struct RedisSource<N: Net> {
    /// The connection to Redis.
    pub socket: Option<N::Stream>,
    /// Whether the connect has completed.
    pub connected: bool,
    /// What mio watches for now (`None`: not registered).
    pub interest: Option<Interest>,
}
