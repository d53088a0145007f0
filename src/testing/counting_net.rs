//! A [`Net`] that passes every call on to another one and counts it. Each
//! method of `Net` is one system call, so with [`MioNet`](crate::net::mio::MioNet)
//! inside, the counts are the server's system calls, exactly, per kind:
//! what `strace -c` would show, without strace, in a test that can assert
//! them (one `read` and one `writev` per echo round trip, three `splice`s
//! per streamed 64 KiB, no `epoll_ctl` per message).

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use mio::{Interest, Token};

use crate::net::{FdBudget, Net};

/// How many times the reactor made each call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyscallCounts {
    /// `epoll_wait`.
    pub polls: u64,
    /// `accept4`.
    pub accepts: u64,
    /// `epoll_ctl(ADD)` of a connection.
    pub registers: u64,
    /// `epoll_ctl(MOD)` of a connection or UDP socket.
    pub reregisters: u64,
    /// `read` from a connection.
    pub reads: u64,
    /// `writev` to a connection.
    pub writes: u64,
    /// `recvfrom` and `sendto`.
    pub datagrams: u64,
    /// `pipe2` for a relay.
    pub relays_opened: u64,
    /// `splice` from a socket into a relay.
    pub relay_fills: u64,
    /// `splice` from a relay into a socket.
    pub relay_drains: u64,
    /// `read` from a relay (a spill back to copying).
    pub relay_takes: u64,
}

impl std::ops::Sub for SyscallCounts {
    type Output = SyscallCounts;
    fn sub(self, before: SyscallCounts) -> SyscallCounts {
        SyscallCounts {
            polls: self.polls - before.polls,
            accepts: self.accepts - before.accepts,
            registers: self.registers - before.registers,
            reregisters: self.reregisters - before.reregisters,
            reads: self.reads - before.reads,
            writes: self.writes - before.writes,
            datagrams: self.datagrams - before.datagrams,
            relays_opened: self.relays_opened - before.relays_opened,
            relay_fills: self.relay_fills - before.relay_fills,
            relay_drains: self.relay_drains - before.relay_drains,
            relay_takes: self.relay_takes - before.relay_takes,
        }
    }
}

/// `inner`, with every call counted.
pub struct CountingNet<N> {
    inner: N,
    counts: SyscallCounts,
}

impl<N: Net> CountingNet<N> {
    /// Count the calls made to `inner`.
    pub fn new(inner: N) -> CountingNet<N> {
        CountingNet {
            inner,
            counts: SyscallCounts::default(),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> SyscallCounts {
        self.counts
    }
}

impl<N: Net> Net for CountingNet<N> {
    type Listener = N::Listener;
    type Stream = N::Stream;
    type Udp = N::Udp;
    type Relay = N::Relay;
    type Events = N::Events;

    fn now(&self) -> Instant {
        self.inner.now()
    }
    fn wall_clock(&self) -> SystemTime {
        self.inner.wall_clock()
    }
    fn poll(&mut self, events: &mut N::Events, timeout: Option<Duration>) -> io::Result<()> {
        self.counts.polls += 1;
        self.inner.poll(events, timeout)
    }
    fn register_signals(&mut self) -> io::Result<()> {
        self.inner.register_signals()
    }
    fn take_signals(&mut self, out: &mut Vec<i32>) {
        self.inner.take_signals(out)
    }
    fn fd_budget(&mut self, max_conns: usize, endpoints: usize) -> FdBudget {
        self.inner.fd_budget(max_conns, endpoints)
    }
    fn listen_tcp(&mut self, addr: SocketAddr, token: Token) -> io::Result<N::Listener> {
        self.inner.listen_tcp(addr, token)
    }
    fn bind_udp(&mut self, addr: SocketAddr, token: Token) -> io::Result<N::Udp> {
        self.inner.bind_udp(addr, token)
    }
    fn listener_addr(&self, listener: &N::Listener) -> io::Result<SocketAddr> {
        self.inner.listener_addr(listener)
    }
    fn udp_addr(&self, socket: &N::Udp) -> io::Result<SocketAddr> {
        self.inner.udp_addr(socket)
    }
    fn deregister_listener(&mut self, listener: &mut N::Listener) -> io::Result<()> {
        self.inner.deregister_listener(listener)
    }
    fn accept(&mut self, listener: &N::Listener) -> io::Result<(N::Stream, SocketAddr)> {
        self.counts.accepts += 1;
        self.inner.accept(listener)
    }
    fn register(
        &mut self,
        stream: &mut N::Stream,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.counts.registers += 1;
        self.inner.register(stream, token, interest)
    }
    fn reregister(
        &mut self,
        stream: &mut N::Stream,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.counts.reregisters += 1;
        self.inner.reregister(stream, token, interest)
    }
    fn reregister_udp(
        &mut self,
        socket: &mut N::Udp,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.counts.reregisters += 1;
        self.inner.reregister_udp(socket, token, interest)
    }
    fn set_nodelay(&mut self, stream: &N::Stream) -> io::Result<()> {
        self.inner.set_nodelay(stream)
    }
    fn read(&mut self, stream: &N::Stream, buf: &mut [u8]) -> io::Result<usize> {
        self.counts.reads += 1;
        self.inner.read(stream, buf)
    }
    fn write_vectored(&mut self, stream: &N::Stream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.counts.writes += 1;
        self.inner.write_vectored(stream, bufs)
    }
    fn shutdown_write(&mut self, stream: &N::Stream) -> io::Result<()> {
        self.inner.shutdown_write(stream)
    }
    fn recv_from(&mut self, socket: &N::Udp, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.counts.datagrams += 1;
        self.inner.recv_from(socket, buf)
    }
    fn send_to(&mut self, socket: &N::Udp, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.counts.datagrams += 1;
        self.inner.send_to(socket, buf, to)
    }
    fn open_relay(&mut self) -> io::Result<N::Relay> {
        self.counts.relays_opened += 1;
        self.inner.open_relay()
    }
    fn relay_in(
        &mut self,
        stream: &N::Stream,
        relay: &mut N::Relay,
        max: usize,
    ) -> io::Result<usize> {
        self.counts.relay_fills += 1;
        self.inner.relay_in(stream, relay, max)
    }
    fn relay_out(
        &mut self,
        relay: &mut N::Relay,
        stream: &N::Stream,
        max: usize,
    ) -> io::Result<usize> {
        self.counts.relay_drains += 1;
        self.inner.relay_out(relay, stream, max)
    }
    fn relay_take(&mut self, relay: &mut N::Relay, buf: &mut [u8]) -> io::Result<usize> {
        self.counts.relay_takes += 1;
        self.inner.relay_take(relay, buf)
    }
    fn connect(&mut self, addr: SocketAddr) -> io::Result<N::Stream> {
        self.inner.connect(addr)
    }
    fn connect_result(&mut self, stream: &N::Stream) -> io::Result<bool> {
        self.inner.connect_result(stream)
    }
    fn server_id(&mut self) -> u64 {
        self.inner.server_id()
    }
}
