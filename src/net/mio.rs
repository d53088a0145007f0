//! The production [`Net`]: mio, and through it epoll, the socket system
//! calls and the real clock. Each method is the one mio call it names, so a
//! reader following the reactor's `self.net.read(..)` lands here on
//! `TcpStream::read` (`read(2)`), `self.net.poll(..)` on `Poll::poll`
//! (`epoll_wait(2)`), and `write_vectored` on `writev(2)`. Echo's relay is a
//! pipe, filled from and emptied into the socket with `splice(2)` (through
//! nix, whose wrappers are safe).
//!
//! Signals come in through signal-hook-mio: a handler that only records the
//! signal and wakes the poll, so SIGINT and SIGTERM are readable events like
//! any socket's.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant, SystemTime};

use log::warn;
use mio::event::Event;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use nix::fcntl::{splice, OFlag, SpliceFFlags};
use nix::unistd::pipe2;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::toolkit::{connect_result, fd_limit, SERVER_FD_RESERVE};
use super::{EventList, FdBudget, Net, Readiness, SIGNAL_TOKEN};
use crate::config;

/// The real network: one `mio::Poll` (an epoll instance) and, once
/// registered, the signal source in it.
pub struct MioNet {
    poll: Poll,
    signals: Option<Signals>,
}

impl MioNet {
    /// A new epoll instance.
    pub fn new() -> io::Result<MioNet> {
        Ok(MioNet {
            poll: Poll::new()?,
            signals: None,
        })
    }
}

/// Echo's relay: a non-blocking pipe. Bytes spliced into it from a socket
/// are references to the kernel's pages, not copies, and splicing them out
/// to a socket hands the same pages on; closing is dropping both ends.
#[derive(Debug)]
pub struct PipeRelay {
    read_end: OwnedFd,
    write_end: OwnedFd,
}

/// `splice` without blocking on the pipe (`SPLICE_F_NONBLOCK`; the socket is
/// non-blocking already), moving pages rather than copying where it can.
const SPLICE_FLAGS: SpliceFFlags =
    SpliceFFlags::SPLICE_F_MOVE.union(SpliceFFlags::SPLICE_F_NONBLOCK);

/// mio's readiness flags in the reactor's terms (the load generator reads
/// its events through this too). `is_error` counts as closed: a failed
/// socket's next read returns the error.
pub fn readiness_of(event: &Event) -> Readiness {
    Readiness {
        readable: event.is_readable(),
        writable: event.is_writable(),
        read_closed: event.is_read_closed() || event.is_error(),
    }
}

impl EventList for Events {
    fn with_capacity(capacity: usize) -> Events {
        Events::with_capacity(capacity)
    }
    fn ready(&self) -> impl Iterator<Item = (Token, Readiness)> + '_ {
        self.iter().map(|e| (e.token(), readiness_of(e)))
    }
}

impl Net for MioNet {
    type Listener = TcpListener;
    type Stream = TcpStream;
    type Udp = UdpSocket;
    type Relay = PipeRelay;
    type Events = Events;

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        self.poll.poll(events, timeout)
    }

    fn register_signals(&mut self) -> io::Result<()> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    fn take_signals(&mut self, out: &mut Vec<i32>) {
        if let Some(signals) = self.signals.as_mut() {
            out.extend(signals.pending());
        }
    }

    fn fd_budget(&mut self, max_conns: usize, endpoints: usize) -> FdBudget {
        let reserve = endpoints + SERVER_FD_RESERVE;
        let Ok(limit) = fd_limit() else {
            // Without the limit, spend no descriptor on relays: echo copies.
            return FdBudget {
                max_conns,
                relays: 0,
            };
        };
        let usable = (limit as usize).saturating_sub(reserve).max(1);
        if usable < max_conns {
            warn!(
                "--max-conns {max_conns} is above what the fd limit {limit} allows; using {usable}"
            );
            return FdBudget {
                max_conns: usable,
                relays: 0,
            };
        }
        // A relay is two descriptors; relays live on what connections leave.
        FdBudget {
            max_conns,
            relays: ((usable - max_conns) / 2).min(config::MAX_RELAYS),
        }
    }

    fn listen_tcp(&mut self, addr: SocketAddr, token: Token) -> io::Result<TcpListener> {
        let mut socket = bind_listener(addr)?;
        self.poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)?;
        Ok(socket)
    }

    fn bind_udp(&mut self, addr: SocketAddr, token: Token) -> io::Result<UdpSocket> {
        let mut socket = UdpSocket::bind(addr)?;
        self.poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)?;
        Ok(socket)
    }

    fn listener_addr(&self, listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn udp_addr(&self, socket: &UdpSocket) -> io::Result<SocketAddr> {
        socket.local_addr()
    }

    fn deregister_listener(&mut self, listener: &mut TcpListener) -> io::Result<()> {
        self.poll.registry().deregister(listener)
    }

    fn accept(&mut self, listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
        listener.accept()
    }

    fn register(
        &mut self,
        stream: &mut TcpStream,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.poll.registry().register(stream, token, interest)
    }

    fn reregister(
        &mut self,
        stream: &mut TcpStream,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.poll.registry().reregister(stream, token, interest)
    }

    fn reregister_udp(
        &mut self,
        socket: &mut UdpSocket,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.poll.registry().reregister(socket, token, interest)
    }

    fn set_nodelay(&mut self, stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)
    }

    fn read(&mut self, mut stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        // mio implements Read and Write for &TcpStream: no &mut needed.
        stream.read(buf)
    }

    fn write_vectored(
        &mut self,
        mut stream: &TcpStream,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        stream.write_vectored(bufs)
    }

    fn shutdown_write(&mut self, stream: &TcpStream) -> io::Result<()> {
        stream.shutdown(std::net::Shutdown::Write)
    }

    fn open_relay(&mut self) -> io::Result<PipeRelay> {
        let (read_end, write_end) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        Ok(PipeRelay {
            read_end,
            write_end,
        })
    }

    fn relay_in(
        &mut self,
        stream: &TcpStream,
        relay: &mut PipeRelay,
        max: usize,
    ) -> io::Result<usize> {
        Ok(splice(
            stream,
            None,
            &relay.write_end,
            None,
            max,
            SPLICE_FLAGS,
        )?)
    }

    fn relay_out(
        &mut self,
        relay: &mut PipeRelay,
        stream: &TcpStream,
        max: usize,
    ) -> io::Result<usize> {
        Ok(splice(
            &relay.read_end,
            None,
            stream,
            None,
            max,
            SPLICE_FLAGS,
        )?)
    }

    fn relay_take(&mut self, relay: &mut PipeRelay, buf: &mut [u8]) -> io::Result<usize> {
        Ok(nix::unistd::read(&relay.read_end, buf)?)
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect(addr)
    }

    fn connect_result(&mut self, stream: &TcpStream) -> io::Result<bool> {
        connect_result(stream).map(|peer| peer.is_some())
    }

    fn recv_from(&mut self, socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        socket.recv_from(buf)
    }

    fn send_to(&mut self, socket: &UdpSocket, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        socket.send_to(buf, to)
    }
}

/// A non-blocking TCP listener with our backlog (`config::LISTEN_BACKLOG`)
/// and `SO_REUSEADDR` (so a restarted server can bind while old connections
/// sit in TIME_WAIT), as mio's own `bind` does but with a larger backlog.
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(config::LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}
