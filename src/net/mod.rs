//! The server's seam to the operating system, and thin socket helpers shared
//! by the server, the clients and the load generator.
//!
//! [`Net`] is every call the reactor makes to the OS: wait for readiness
//! (`epoll_wait`), register interest (`epoll_ctl`), accept, read, `writev`,
//! shutdown, `recvfrom`, `sendto`, `splice` through a pipe (echo's relay),
//! close (dropping a socket), the clock and the signals. It has two
//! implementations: [`mio::MioNet`], the real thing, which the server runs
//! on, and [`sim::SimNet`], an in-memory network with a virtual clock and a
//! seeded fault injector, on which the tests run the very same reactor code
//! thousands of times (see docs/simulation.md).
//! The reactor is generic over `Net` with `MioNet` as the default, so the
//! production build is as direct as a hand-written loop: no trait object, no
//! allocation per call, every method a thin wrapper around the mio call.
//!
//! The helpers here name the two "not an error" errors of non-blocking IO
//! and make one read or one write with them turned into outcomes; they make
//! the reactor's code read like the rules in docs/pitfalls.md. The routines
//! built on them that the clients, bench and `MioNet` share (connect and its
//! check, `poll_once`, the read-until-`WouldBlock` loop [`toolkit::drain`],
//! the fd limit) are in [`toolkit`].

pub mod mio;
pub mod sim;
pub mod toolkit;

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use ::mio::{Interest, Token};

/// The socket has nothing more for us right now (`EAGAIN`/`EWOULDBLOCK`).
/// After an edge-triggered event this is the normal way a drain loop ends, and
/// right after an event it is also normal: events can be spurious.
pub fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the syscall (`EINTR`): retry it at once.
pub fn interrupted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}

/// How one attempt to read from a non-blocking stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `n` bytes arrived (`n > 0`).
    Data(usize),
    /// The peer shut down its sending side: no more input, ever.
    Eof,
    /// Nothing to read now; wait for the next readable event.
    WouldBlock,
}

/// One `read` on a non-blocking stream, with `EINTR` retried and
/// `WouldBlock` and end of stream turned into outcomes instead of errors.
/// A real error (reset, ...) is returned as `Err`: it closes this peer only.
pub fn read_once<R: Read>(src: &mut R, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    loop {
        match src.read(buf) {
            Ok(0) => return Ok(ReadOutcome::Eof),
            Ok(n) => return Ok(ReadOutcome::Data(n)),
            Err(e) if interrupted(&e) => continue,
            Err(e) if would_block(&e) => return Ok(ReadOutcome::WouldBlock),
            Err(e) => return Err(e),
        }
    }
}

/// How one attempt to write to a non-blocking stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The kernel took `n` bytes (maybe fewer than offered: a partial write).
    Wrote(usize),
    /// The send buffer is full; wait for a writable event.
    WouldBlock,
}

/// One vectored write with `EINTR` retried and `WouldBlock` as an outcome.
/// A real error (`BrokenPipe`, reset) is returned: it closes this peer only.
pub fn write_once<W: io::Write>(dst: &mut W, bufs: &[io::IoSlice<'_>]) -> io::Result<WriteOutcome> {
    loop {
        match dst.write_vectored(bufs) {
            Ok(n) => return Ok(WriteOutcome::Wrote(n)),
            Err(e) if interrupted(&e) => continue,
            Err(e) if would_block(&e) => return Ok(WriteOutcome::WouldBlock),
            Err(e) => return Err(e),
        }
    }
}

/// The token under which signals (SIGINT, SIGTERM) arrive as readable
/// events. Slab keys count up from 0, so the top of the token space never
/// collides with one.
pub const SIGNAL_TOKEN: Token = Token(usize::MAX);

/// Readiness of one event, as the reactor sees it: copied out of mio's
/// `Event` (or made by the simulation), so that still-ready sources can be
/// dispatched through the same code with a synthetic one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// There may be bytes, a connection or a datagram to take.
    pub readable: bool,
    /// There may be room to write.
    pub writable: bool,
    /// The peer shut down its sending side (FIN seen) or the socket failed:
    /// a short read then does not prove the socket is drained.
    pub read_closed: bool,
}

impl Readiness {
    /// For a source that still had work: try everything, assume nothing.
    pub const RETRY: Readiness = Readiness {
        readable: true,
        writable: true,
        read_closed: true,
    };
}

/// What the file descriptor limit leaves room for, beside the listening
/// sockets and [`toolkit::SERVER_FD_RESERVE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// Connections open at once: `--max-conns`, or less if the limit is short.
    pub max_conns: usize,
    /// Echo relays open at once (two descriptors each): up to
    /// [`crate::config::MAX_RELAYS`] out of what `max_conns` leaves; 0 when the
    /// limit is short, and echo then always copies.
    pub relays: usize,
}

/// The events one `poll` returned, as (token, readiness) pairs.
pub trait EventList {
    /// Room for `capacity` events per poll, allocated once.
    fn with_capacity(capacity: usize) -> Self;
    /// The events, in the order the poll reported them.
    fn ready(&self) -> impl Iterator<Item = (Token, Readiness)> + '_;
}

/// Every call the reactor makes to the operating system. The methods are the
/// system calls, one each (the comment on each names it); the sockets are
/// associated types, so the production reactor holds mio's own socket types
/// and every call compiles to a direct call into mio.
///
/// Closing is dropping: the reactor drops a socket to close it, as with std
/// and mio (closing the fd also removes it from epoll).
pub trait Net {
    /// A listening TCP socket.
    type Listener;
    /// A connected TCP socket.
    type Stream;
    /// A UDP socket.
    type Udp;
    /// A kernel buffer that echo's bulk streams pass through from the
    /// socket back to the same socket without being copied into the process
    /// (a pipe, filled and emptied with `splice`).
    type Relay;
    /// Where `poll` puts its events (allocated once, reused every turn).
    type Events: EventList;

    /// The clock (`clock_gettime(CLOCK_MONOTONIC)`).
    fn now(&self) -> Instant;
    /// The calendar time, for what a client is told the time is (daytime)
    /// and never for deadlines: it may jump (`clock_gettime(CLOCK_REALTIME)`).
    fn wall_clock(&self) -> SystemTime;
    /// Wait for events, at most `timeout` (`epoll_wait`). `Interrupted`
    /// (EINTR) means "nothing, call again".
    fn poll(&mut self, events: &mut Self::Events, timeout: Option<Duration>) -> io::Result<()>;
    /// Start receiving SIGINT and SIGTERM as readable events on
    /// [`SIGNAL_TOKEN`].
    fn register_signals(&mut self) -> io::Result<()>;
    /// Signals received since the last call (SIGINT, SIGTERM), appended to
    /// `out`. They arrive as a readable event on [`SIGNAL_TOKEN`].
    fn take_signals(&mut self, out: &mut Vec<i32>);
    /// Keep `max_conns` below the file descriptor limit in force
    /// (`getrlimit`), so the clean "server full" path is hit before `accept`
    /// fails with EMFILE, and give echo's relays what room is left. Only
    /// reads the limit: raising it is process-wide set-up, done once before
    /// any loop ([`toolkit::prepare_process_for_serving`]).
    fn fd_budget(&mut self, max_conns: usize, endpoints: usize) -> FdBudget;

    /// A non-blocking listener on `addr`, registered READABLE under `token`
    /// (`socket`, `bind`, `listen`, `epoll_ctl(ADD)`).
    fn listen_tcp(&mut self, addr: SocketAddr, token: Token) -> io::Result<Self::Listener>;
    /// A non-blocking UDP socket on `addr`, registered READABLE under `token`.
    fn bind_udp(&mut self, addr: SocketAddr, token: Token) -> io::Result<Self::Udp>;
    /// The address a listener is bound to (port 0 resolved).
    fn listener_addr(&self, listener: &Self::Listener) -> io::Result<SocketAddr>;
    /// The address a UDP socket is bound to.
    fn udp_addr(&self, socket: &Self::Udp) -> io::Result<SocketAddr>;
    /// Stop watching a listener (`epoll_ctl(DEL)`).
    fn deregister_listener(&mut self, listener: &mut Self::Listener) -> io::Result<()>;
    /// Take one connection from the backlog (`accept4`).
    fn accept(&mut self, listener: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)>;

    /// Watch a new connection (`epoll_ctl(ADD)`).
    fn register(
        &mut self,
        stream: &mut Self::Stream,
        token: Token,
        interest: Interest,
    ) -> io::Result<()>;
    /// Change what a connection is watched for (`epoll_ctl(MOD)`).
    fn reregister(
        &mut self,
        stream: &mut Self::Stream,
        token: Token,
        interest: Interest,
    ) -> io::Result<()>;
    /// Change what a UDP socket is watched for (`epoll_ctl(MOD)`).
    fn reregister_udp(
        &mut self,
        socket: &mut Self::Udp,
        token: Token,
        interest: Interest,
    ) -> io::Result<()>;
    /// Turn off Nagle's algorithm (`setsockopt(TCP_NODELAY)`).
    fn set_nodelay(&mut self, stream: &Self::Stream) -> io::Result<()>;
    /// Read what has arrived (`read`): 0 is end of input.
    fn read(&mut self, stream: &Self::Stream, buf: &mut [u8]) -> io::Result<usize>;
    /// Write several slices in one call (`writev`); may take fewer bytes.
    fn write_vectored(&mut self, stream: &Self::Stream, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Send our FIN (`shutdown(SHUT_WR)`).
    fn shutdown_write(&mut self, stream: &Self::Stream) -> io::Result<()>;
    /// Take one datagram and its source (`recvfrom`).
    fn recv_from(&mut self, socket: &Self::Udp, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// Send one datagram (`sendto`).
    fn send_to(&mut self, socket: &Self::Udp, buf: &[u8], to: SocketAddr) -> io::Result<usize>;

    /// A new, empty relay (`pipe2(O_NONBLOCK)`).
    fn open_relay(&mut self) -> io::Result<Self::Relay>;
    /// Move up to `max` bytes that arrived on `stream` into `relay`, in the
    /// kernel (`splice` socket to pipe); 0 is end of input. `WouldBlock`
    /// says the socket has nothing *or* the pipe has no room, so the reactor
    /// fills only an empty relay; and a short fill does not mean the socket
    /// is drained (a pipe holds a fixed number of pages, however full each).
    fn relay_in(
        &mut self,
        stream: &Self::Stream,
        relay: &mut Self::Relay,
        max: usize,
    ) -> io::Result<usize>;
    /// Move up to `max` bytes from `relay` out to `stream` (`splice` pipe to
    /// socket); may take fewer.
    fn relay_out(
        &mut self,
        relay: &mut Self::Relay,
        stream: &Self::Stream,
        max: usize,
    ) -> io::Result<usize>;
    /// Read bytes out of `relay` into `buf` (`read` from the pipe): the way
    /// back to copying, for a stream whose client stopped keeping up.
    fn relay_take(&mut self, relay: &mut Self::Relay, buf: &mut [u8]) -> io::Result<usize>;

    /// Start a non-blocking connect to `addr` (`socket`, `connect`, which
    /// answers `EINPROGRESS`): the stream turns writable when the connect
    /// has ended, one way or the other. Not registered yet.
    fn connect(&mut self, addr: SocketAddr) -> io::Result<Self::Stream>;
    /// How a connect ended, once the stream turned writable: `Ok(true)`
    /// connected, `Ok(false)` still in progress (a spurious event), `Err`
    /// failed (`getsockopt(SO_ERROR)`, then `getpeername`, which fails with
    /// `ENOTCONN` while the handshake is still under way).
    fn connect_result(&mut self, stream: &Self::Stream) -> io::Result<bool>;

    /// The id this server goes by on the cluster bus: random, so that no
    /// two servers share one (the OS's randomness and the clock here; the
    /// simulation draws it from its seed, so a run replays exactly).
    fn server_id(&mut self) -> u64 {
        crate::cluster::link::new_server_id()
    }

    /// A stream seen through this `Net` as `std::io::Read` and `Write`, so
    /// that [`read_once`] and [`write_once`] serve the reactor too.
    fn io<'a>(&'a mut self, stream: &'a Self::Stream) -> StreamIo<'a, Self>
    where
        Self: Sized,
    {
        StreamIo { net: self, stream }
    }
}

/// A stream borrowed together with its [`Net`], as `Read` and `Write`.
pub struct StreamIo<'a, N: Net> {
    net: &'a mut N,
    stream: &'a N::Stream,
}

impl<N: Net> Read for StreamIo<'_, N> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.net.read(self.stream, buf)
    }
}

impl<N: Net> Write for StreamIo<'_, N> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.net.write_vectored(self.stream, &[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.net.write_vectored(self.stream, bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stand-ins for a socket in unit tests: a reader that replays a script and
/// a writer whose send buffer fills, so that the loops over them can be
/// driven through every branch without a socket.
#[cfg(test)]
pub(crate) mod fake {
    use std::io::{self, Read, Write};

    /// A reader that replays a script of results (bytes, or an error), and
    /// counts the reads: a socket whose data, errors and FIN arrive as
    /// scripted.
    pub(crate) struct ScriptedReader {
        steps: Vec<io::Result<usize>>,
        /// `read` calls so far.
        pub(crate) reads: usize,
    }

    impl ScriptedReader {
        pub(crate) fn new(steps: Vec<io::Result<usize>>) -> ScriptedReader {
            ScriptedReader { steps, reads: 0 }
        }
    }

    impl Read for ScriptedReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            let step = self.steps.remove(0);
            if let Ok(n) = step {
                assert!(n <= buf.len(), "the script reads at most what is asked");
                buf[..n].fill(b'x');
            }
            step
        }
    }

    /// A writer like a socket whose send buffer fills: each write takes at
    /// most `per_write` bytes, and once `room` bytes are taken it says
    /// `WouldBlock` until the test gives it more room.
    pub(crate) struct ThrottledWriter {
        /// Every byte taken, in order.
        pub(crate) taken: Vec<u8>,
        /// Bytes it will still take.
        pub(crate) room: usize,
        per_write: usize,
    }

    impl ThrottledWriter {
        pub(crate) fn new(room: usize, per_write: usize) -> ThrottledWriter {
            ThrottledWriter {
                taken: Vec::new(),
                room,
                per_write,
            }
        }
    }

    impl Write for ThrottledWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room).min(self.per_write);
            self.room -= n;
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::fake::ScriptedReader as Script;

    #[test]
    fn read_once_retries_eintr_and_names_the_outcomes() {
        let mut buf = [0u8; 8];
        let mut s = Script::new(vec![Err(io::ErrorKind::Interrupted.into()), Ok(3)]);
        assert_eq!(read_once(&mut s, &mut buf).unwrap(), ReadOutcome::Data(3));
        let mut s = Script::new(vec![Ok(0)]);
        assert_eq!(read_once(&mut s, &mut buf).unwrap(), ReadOutcome::Eof);
        let mut s = Script::new(vec![Err(io::ErrorKind::WouldBlock.into())]);
        assert_eq!(
            read_once(&mut s, &mut buf).unwrap(),
            ReadOutcome::WouldBlock
        );
        let mut s = Script::new(vec![Err(io::ErrorKind::ConnectionReset.into())]);
        assert!(read_once(&mut s, &mut buf).is_err());
    }
}
