//! The simulated network: an in-memory stand-in for the kernel's sockets and
//! epoll, with a virtual clock and a seeded fault injector, so that the real
//! reactor can be run through thousands of hostile network histories per
//! second, each one replayable from its seed (deterministic simulation
//! testing, as FoundationDB's sim2 and TigerBeetle's VOPR do it).
//!
//! [`SimNet`] implements [`Net`]: the reactor's side. The other side (the
//! clients) is the `client_*` and `udp_*` methods, which the scenarios in
//! `crate::testing::sim` call between the server's turns. No real socket, no
//! thread and no wall clock is involved; every choice (window sizes, when a
//! fault strikes, how many events one poll returns) is drawn from one
//! [`SimRng`], so a seed replays a run exactly.
//!
//! The model is *stingy* where epoll(7) in edge-triggered mode is, because a
//! generous model hides lost wake-ups:
//!
//! - READABLE is raised when bytes, a FIN or a RST arrive, on a listener when
//!   a connection arrives, on a UDP socket when a datagram arrives; never
//!   because unread bytes are still there.
//! - WRITABLE is raised only when a send buffer that a write found full gains
//!   room (for TCP: a third of it, as Linux's `sk_stream_write_space` waits
//!   for), never because a socket that never filled "is writable".
//! - Registering or re-registering (`epoll_ctl` ADD/MOD) reports the current
//!   state once, as Linux does; a poll reports, for each socket with an edge,
//!   its readiness *now* (an edge whose bytes were already read reports
//!   nothing), at most `capacity` events per poll, the rest left for the next.
//! - Closing a socket (dropping its handle) with unread input sends a RST, as
//!   Linux does: the peer loses what it had not read yet.
//!
//! On top, injected faults: spurious events, EINTR from any call, EMFILE on
//! accept (the connection stays in the backlog) and on opening a relay,
//! short writes (the buffer momentarily full, with the WRITABLE edge that
//! follows), short relay fills (a pipe out of pages while the socket still
//! has bytes, with no event to say so), events split over several polls.
//! Short reads come from the clients' segmentation and from receive windows
//! as small as one byte.
//!
//! The server may also connect out, to a simulated peer (the cluster's
//! Redis, `crate::testing::sim::redis`): a connect to an address where the
//! peer listens waits, as `EINPROGRESS` does, until the peer accepts or
//! refuses it; the peer then plays the client's end of an ordinary
//! connection. Several servers, each with its own `SimNet`, share one
//! virtual clock ([`SimNet::share_clock`]).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Interest, Token};

use super::{EventList, FdBudget, Net, Readiness, SIGNAL_TOKEN};

/// The one source of every choice the simulation makes. From a seed it is a
/// SplitMix64 generator; from fuzzer bytes it replays those bytes as its
/// first draws, so the fuzzer steers the same decisions a seed does.
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
    bytes: Option<(Vec<u8>, usize)>,
}

impl SimRng {
    /// A generator for `seed`.
    pub fn seeded(seed: u64) -> SimRng {
        SimRng {
            state: seed,
            bytes: None,
        }
    }

    /// A generator that plays `data` back, 8 bytes (a little-endian u64) a
    /// draw, then goes on as the generator seeded by a hash of `data` (so a
    /// short input still gives a varied run, never a run of zeros).
    pub fn from_bytes(data: &[u8]) -> SimRng {
        // FNV-1a: any fixed hash will do, it only has to be deterministic.
        let seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        SimRng {
            state: seed,
            bytes: Some((data.to_vec(), 0)),
        }
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        if let Some((data, pos)) = &mut self.bytes {
            if *pos < data.len() {
                let mut word = [0u8; 8];
                for b in &mut word {
                    *b = data.get(*pos).copied().unwrap_or(0);
                    *pos += 1;
                }
                return u64::from_le_bytes(word);
            }
        }
        // SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough here.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo) as u64 + 1) as usize
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// How often each fault strikes, in per mille of the calls that could see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// A call returns EINTR (and does nothing).
    pub eintr: u32,
    /// A poll reports a registered socket that is not ready.
    pub spurious: u32,
    /// `accept` fails with EMFILE, leaving the connection in the backlog;
    /// opening a relay (`pipe2`) fails with EMFILE.
    pub emfile: u32,
    /// A write takes fewer bytes than there is room for (then WRITABLE).
    pub short_write: u32,
}

/// The readiness of one simulated connection, as the client sees its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRead {
    /// This many bytes were read.
    Data(usize),
    /// The server closed its sending side and everything was read.
    Eof,
    /// Nothing to read now.
    WouldBlock,
    /// The server reset the connection (closed with input unread); what the
    /// client had not read is lost.
    Reset,
}

/// A datagram and the address at the other end.
type Datagram = (SocketAddr, Vec<u8>);

/// Identifies a simulated TCP connection (both ends), for the clients.
pub type ConnId = usize;

/// A byte pipe: a vector with a read position, compacted as it empties.
#[derive(Debug, Default)]
struct Pipe {
    buf: Vec<u8>,
    head: usize,
}

impl Pipe {
    fn len(&self) -> usize {
        self.buf.len() - self.head
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    fn take(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len());
        out[..n].copy_from_slice(&self.buf[self.head..self.head + n]);
        self.advance(n);
        n
    }
    fn take_into(&mut self, out: &mut Vec<u8>, max: usize) -> usize {
        let n = max.min(self.len());
        out.extend_from_slice(&self.buf[self.head..self.head + n]);
        self.advance(n);
        n
    }
    fn advance(&mut self, n: usize) {
        self.head += n;
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head > 64 * 1024 && self.head * 2 > self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }
    fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
    }
}

/// Both ends of one TCP connection.
#[derive(Debug)]
struct TcpConn {
    client_addr: SocketAddr,
    /// Client to server: bytes in the server's receive buffer.
    up: Pipe,
    /// The server's receive window.
    up_cap: usize,
    /// The client sent FIN (after every byte in `up`).
    up_fin: bool,
    /// Server to client: bytes in flight and in the client's receive buffer.
    down: Pipe,
    /// The server's send buffer plus the client's window.
    down_cap: usize,
    /// The server sent FIN (after every byte in `down`).
    down_fin: bool,
    /// The client reset the connection.
    client_reset: bool,
    /// The server reset it (closed with input unread).
    server_reset: bool,
    /// The client closed its socket.
    client_closed: bool,
    /// The server closed its socket (dropped the handle).
    server_closed: bool,
    /// A server write found the send buffer full: room raises WRITABLE.
    nospace: bool,
    /// The server-side socket, once accepted.
    sock: Option<usize>,
    /// The server ever registered it with epoll.
    registered: bool,
    /// An outbound connect (the server connected to a simulated peer; the
    /// "client" end is the peer) whose handshake has not completed.
    connecting: bool,
    /// An outbound connect the peer refused (or nobody listened): the
    /// socket reports an error and `connect_result` says `ECONNREFUSED`.
    refused: bool,
    /// The server connected out (to a simulated peer), rather than
    /// accepting it.
    outbound: bool,
}

/// What a server-side socket is.
#[derive(Debug)]
enum SockKind {
    Listener {
        addr: SocketAddr,
        backlog: VecDeque<ConnId>,
    },
    Stream {
        conn: ConnId,
    },
    Udp {
        addr: SocketAddr,
        inbox: VecDeque<Datagram>,
        /// Datagrams the receive buffer holds; more are dropped (as Linux).
        inbox_cap: usize,
        /// Bytes the send buffer can take now.
        room: usize,
        room_cap: usize,
        nospace: bool,
    },
}

/// A server-side socket: what it is, how it is registered, whether it has
/// an edge waiting to be reported.
#[derive(Debug)]
struct Sock {
    kind: SockKind,
    reg: Option<(Token, Interest)>,
    /// On the ready list.
    queued: bool,
    /// Report it at the next poll whatever its state (a spurious event).
    spurious: bool,
    open: bool,
}

/// Closes a socket when the reactor drops its handle, as `close(2)` does
/// when a mio socket is dropped.
#[derive(Debug)]
struct CloseOnDrop {
    id: usize,
    closed: Rc<RefCell<Vec<usize>>>,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.closed.borrow_mut().push(self.id);
    }
}

/// A simulated TCP listener (the reactor's handle).
#[derive(Debug)]
pub struct SimListener(CloseOnDrop);
/// A simulated TCP connection, server end (the reactor's handle).
#[derive(Debug)]
pub struct SimStream(CloseOnDrop);
/// A simulated UDP socket (the reactor's handle).
#[derive(Debug)]
pub struct SimUdp(CloseOnDrop);

/// A simulated relay (a pipe): bytes in the kernel on their way back out.
#[derive(Debug)]
pub struct SimRelay {
    bytes: Pipe,
    /// The network's count of relays open, given back on drop (close).
    open: Rc<Cell<usize>>,
}

impl Drop for SimRelay {
    fn drop(&mut self) {
        self.open.set(self.open.get() - 1);
    }
}

/// What a simulated relay holds at most, as a pipe's default 16 pages.
const RELAY_CAPACITY: usize = 64 * 1024;

/// Relays the simulated fd limit leaves room for: few, so that streams
/// outnumber them and wait their turn or copy.
const SIM_RELAYS: usize = 2;

/// What one simulated poll returned.
#[derive(Debug, Default)]
pub struct SimEvents {
    events: Vec<(Token, Readiness)>,
    capacity: usize,
}

impl EventList for SimEvents {
    fn with_capacity(capacity: usize) -> SimEvents {
        SimEvents {
            events: Vec::with_capacity(capacity),
            capacity,
        }
    }
    fn ready(&self) -> impl Iterator<Item = (Token, Readiness)> + '_ {
        self.events.iter().copied()
    }
}

/// Counters of what the simulation did, for reports and for tests that
/// check a fault really was exercised.
#[derive(Debug, Default, Clone)]
pub struct SimCounters {
    /// Polls made.
    pub polls: u64,
    /// Events reported.
    pub events: u64,
    /// Spurious events reported.
    pub spurious: u64,
    /// EINTRs returned.
    pub eintr: u64,
    /// EMFILEs returned by accept.
    pub emfile: u64,
    /// Injected short writes.
    pub short_writes: u64,
    /// Relays opened.
    pub relays_opened: u64,
    /// Bytes moved through relays (socket to relay).
    pub relayed: u64,
    /// Injected short relay fills (the socket had more).
    pub short_fills: u64,
    /// Reads of a relay's bytes back into the process (a stream that fell
    /// behind going back to copying).
    pub relay_spills: u64,
    /// Times virtual time jumped to the poll's deadline.
    pub time_jumps: u64,
    /// Connections reset by the server closing with input unread.
    pub server_resets: u64,
}

/// The simulated network. See the module documentation.
#[derive(Debug)]
pub struct SimNet {
    rng: SimRng,
    /// Fault rates.
    pub faults: Faults,
    epoch: Instant,
    /// Virtual time since `epoch`; shared by the networks of several
    /// servers in one simulation ([`SimNet::share_clock`]).
    clock: Rc<Cell<Duration>>,
    socks: Vec<Sock>,
    conns: Vec<TcpConn>,
    ready: VecDeque<usize>,
    signals: Vec<i32>,
    signal_edge: bool,
    closed: Rc<RefCell<Vec<usize>>>,
    /// UDP replies delivered to each client address.
    mailboxes: Vec<(SocketAddr, VecDeque<Datagram>)>,
    /// No spurious event and no injected short write (each comes with an
    /// event that could wake a stalled connection by luck): the scenarios
    /// set this while checking that everything owed arrives.
    pub stingy: bool,
    /// While clients are busy, a poll with nothing to report lets at most
    /// this much virtual time pass (the clients would act meanwhile); `None`
    /// jumps straight to the poll's deadline.
    pub max_jump: Option<Duration>,
    /// Receive windows are drawn from these sizes.
    windows: Vec<usize>,
    next_port: u16,
    /// What happened so far.
    pub counters: SimCounters,
    /// The last poll's events: (token, socket).
    batch: Vec<(Token, usize)>,
    /// Addresses where a simulated peer (Redis) accepts connections.
    peers: Vec<SocketAddr>,
    /// Outbound connects waiting for their peer to accept or refuse them.
    connects: VecDeque<ConnId>,
    /// Relays open now (created and not yet dropped).
    relays_open: Rc<Cell<usize>>,
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "simulated socket is closed")
}

fn interrupted() -> io::Error {
    io::ErrorKind::Interrupted.into()
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl SimNet {
    /// A network with no sockets, whose choices all come from `rng`.
    /// `windows` lists the receive window sizes connections may get.
    pub fn new(rng: SimRng, faults: Faults, windows: Vec<usize>) -> SimNet {
        SimNet {
            rng,
            faults,
            // Only differences of instants matter to the reactor; this one
            // reading of the real clock fixes where virtual time starts.
            epoch: Instant::now(),
            clock: Rc::new(Cell::new(Duration::ZERO)),
            socks: Vec::new(),
            conns: Vec::new(),
            ready: VecDeque::new(),
            signals: Vec::new(),
            signal_edge: false,
            closed: Rc::new(RefCell::new(Vec::new())),
            mailboxes: Vec::new(),
            max_jump: None,
            stingy: false,
            windows: if windows.is_empty() {
                vec![65536]
            } else {
                windows
            },
            next_port: 40000,
            counters: SimCounters::default(),
            batch: Vec::new(),
            peers: Vec::new(),
            connects: VecDeque::new(),
            relays_open: Rc::new(Cell::new(0)),
        }
    }

    /// The generator every choice comes from (the scenarios draw from it too).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.clock.get()
    }

    /// Let virtual time pass (the clients take their time).
    pub fn advance(&mut self, by: Duration) {
        self.clock.set(self.clock.get() + by);
    }

    /// Run on `other`'s clock from now on: several servers in one
    /// simulation (each with its own network, all joined by a simulated
    /// peer such as Redis) see one virtual time.
    pub fn share_clock(&mut self, other: &SimNet) {
        self.epoch = other.epoch;
        self.clock = Rc::clone(&other.clock);
    }

    /// Deliver a signal to the server (SIGINT, SIGTERM).
    pub fn raise_signal(&mut self, signal: i32) {
        self.signals.push(signal);
        self.signal_edge = true;
    }

    fn handle(&self, id: usize) -> CloseOnDrop {
        CloseOnDrop {
            id,
            closed: Rc::clone(&self.closed),
        }
    }

    fn new_sock(&mut self, kind: SockKind, reg: Option<(Token, Interest)>) -> usize {
        self.socks.push(Sock {
            kind,
            reg,
            queued: false,
            spurious: false,
            open: true,
        });
        self.socks.len() - 1
    }

    fn window(&mut self) -> usize {
        let w = self.windows[self.rng.below(self.windows.len() as u64) as usize];
        // Vary around the chosen size, never below one byte.
        self.rng.range(w.div_ceil(2), w).max(1)
    }

    /// Mark socket `id` as having an edge for `interest`-matching flags:
    /// it goes on the ready list if it is registered for them. `error`
    /// edges (a reset) are reported whatever the interest, as EPOLLERR and
    /// EPOLLHUP are.
    fn edge(&mut self, id: usize, readable: bool, writable: bool, error: bool) {
        let sock = &mut self.socks[id];
        let Some((_, interest)) = sock.reg else {
            return;
        };
        if !sock.open {
            return;
        }
        let wanted =
            error || (readable && interest.is_readable()) || (writable && interest.is_writable());
        if wanted && !sock.queued {
            sock.queued = true;
            self.ready.push_back(id);
        }
    }

    /// Socket `id`'s readiness now, before interest: (readable, writable,
    /// read_closed, error).
    fn state(&self, id: usize) -> (bool, bool, bool, bool) {
        match &self.socks[id].kind {
            SockKind::Listener { backlog, .. } => (!backlog.is_empty(), false, false, false),
            SockKind::Udp { inbox, room, .. } => (!inbox.is_empty(), *room > 0, false, false),
            SockKind::Stream { conn } => {
                let c = &self.conns[*conn];
                if c.refused {
                    // EPOLLERR | EPOLLHUP: whatever the interest.
                    return (true, true, true, true);
                }
                if c.connecting {
                    return (false, false, false, false);
                }
                let reset = c.client_reset;
                let readable = !c.up.is_empty() || c.up_fin || reset;
                let writable = c.down.len() < c.down_cap || reset || c.down_fin;
                (readable, writable, c.up_fin || reset, reset)
            }
        }
    }

    /// What a poll reports for socket `id`, if anything.
    fn report(&mut self, id: usize) -> Option<(Token, Readiness)> {
        let (token, interest) = self.socks[id].reg?;
        if !self.socks[id].open {
            return None;
        }
        let (mut readable, mut writable, read_closed, error) = self.state(id);
        if std::mem::take(&mut self.socks[id].spurious) {
            readable |= interest.is_readable();
            writable |= interest.is_writable();
        }
        let readable = readable && (interest.is_readable() || error);
        let writable = writable && (interest.is_writable() || error);
        let read_closed = read_closed && (interest.is_readable() || error);
        (readable || writable || read_closed).then_some((
            token,
            Readiness {
                readable,
                writable,
                read_closed,
            },
        ))
    }

    /// Apply the closes of handles the reactor dropped since the last call.
    fn reap_closed(&mut self) {
        let closed: Vec<usize> = self.closed.borrow_mut().drain(..).collect();
        for id in closed {
            let sock = &mut self.socks[id];
            sock.open = false;
            sock.reg = None;
            match &mut sock.kind {
                SockKind::Stream { conn } => {
                    let c = &mut self.conns[*conn];
                    c.server_closed = true;
                    if !c.up.is_empty() && !c.client_reset {
                        // Linux: closing with unread input sends RST, and
                        // the peer loses what it had not read.
                        c.server_reset = true;
                        c.down.clear();
                        self.counters.server_resets += 1;
                    } else {
                        c.down_fin = true;
                    }
                }
                SockKind::Listener { backlog, .. } => {
                    for conn in backlog.drain(..) {
                        let c = &mut self.conns[conn];
                        c.server_closed = true;
                        c.server_reset = true;
                    }
                }
                SockKind::Udp { .. } => {}
            }
        }
    }

    fn stream_conn(&mut self, stream: &SimStream) -> io::Result<&mut TcpConn> {
        let sock = &self.socks[stream.0.id];
        match sock.kind {
            SockKind::Stream { conn } if sock.open => Ok(&mut self.conns[conn]),
            _ => Err(closed_error()),
        }
    }

    fn set_reg(&mut self, id: usize, token: Token, interest: Interest) {
        self.socks[id].reg = Some((token, interest));
        // epoll_ctl ADD and MOD poll the socket once: whatever it is ready
        // for now (and is watched for) is reported at the next wait.
        let (r, w, closed, error) = self.state(id);
        self.edge(id, r || closed, w, error);
    }

    // ----- the clients' side -------------------------------------------

    /// A fresh client address (127.0.0.1, a new port each time).
    pub fn client_addr(&mut self) -> SocketAddr {
        self.next_port = self.next_port.wrapping_add(1).max(1024);
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.next_port)
    }

    /// A client connects to `server`: the connection waits in the
    /// listener's backlog until accepted. `None`: refused (nobody listens).
    pub fn client_connect(&mut self, server: SocketAddr) -> Option<ConnId> {
        let listener = self.socks.iter().position(|s| {
            s.open && matches!(&s.kind, SockKind::Listener { addr, .. } if *addr == server)
        })?;
        let client_addr = self.client_addr();
        let up_cap = self.window();
        let down_cap = self.window();
        self.conns.push(TcpConn {
            client_addr,
            up: Pipe::default(),
            up_cap,
            up_fin: false,
            down: Pipe::default(),
            down_cap,
            down_fin: false,
            client_reset: false,
            server_reset: false,
            client_closed: false,
            server_closed: false,
            nospace: false,
            sock: None,
            registered: false,
            connecting: false,
            refused: false,
            outbound: false,
        });
        let id = self.conns.len() - 1;
        if let SockKind::Listener { backlog, .. } = &mut self.socks[listener].kind {
            backlog.push_back(id);
        }
        self.edge(listener, true, false, false);
        Some(id)
    }

    /// The client sends (part of) `bytes`: as much as the server's receive
    /// window has room for. Returns how many it took.
    pub fn client_send(&mut self, id: ConnId, bytes: &[u8]) -> io::Result<usize> {
        let c = &mut self.conns[id];
        if c.server_reset || c.client_reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if c.up_fin || c.client_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if c.server_closed {
            // The server's kernel answers data for a closed socket with RST.
            c.server_reset = true;
            c.down.clear();
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        let n = bytes.len().min(c.up_cap - c.up.len());
        if n == 0 {
            return Ok(0);
        }
        c.up.push(&bytes[..n]);
        if let Some(sock) = c.sock {
            self.edge(sock, true, false, false);
        }
        Ok(n)
    }

    /// The client reads at most `max` bytes, appending them to `out`.
    pub fn client_recv(&mut self, id: ConnId, out: &mut Vec<u8>, max: usize) -> ClientRead {
        let c = &mut self.conns[id];
        if c.server_reset {
            return ClientRead::Reset;
        }
        if c.down.is_empty() {
            return if c.down_fin {
                ClientRead::Eof
            } else {
                ClientRead::WouldBlock
            };
        }
        let n = c.down.take_into(out, max);
        // Linux raises EPOLLOUT for a full send buffer once a third of it is
        // free again (sk_stream_write_space); not before, and not at all for
        // a buffer that never filled.
        let room = c.down_cap - c.down.len();
        if c.nospace && room >= (c.down_cap / 3).max(1) {
            c.nospace = false;
            if let Some(sock) = c.sock {
                self.edge(sock, false, true, false);
            }
        }
        ClientRead::Data(n)
    }

    /// Whether the server has closed its end of connection `id`.
    pub fn conn_server_closed(&mut self, id: ConnId) -> bool {
        self.reap_closed();
        self.conns[id].server_closed
    }

    /// Connection `id`'s state in one line, for failure messages.
    pub fn describe(&self, id: ConnId) -> String {
        let c = &self.conns[id];
        let token = c.sock.and_then(|s| self.socks[s].reg);
        format!(
            "conn {id} from {}: registered {token:?}, server receive buffer {}/{} bytes{}{}, \
             to the client {}/{} bytes{}{}{}{}",
            c.client_addr,
            c.up.len(),
            c.up_cap,
            if c.up_fin { " + FIN" } else { "" },
            if c.client_reset { " + RST" } else { "" },
            c.down.len(),
            c.down_cap,
            if c.down_fin { " + FIN" } else { "" },
            if c.server_reset { " + RST" } else { "" },
            if c.nospace { ", was full" } else { "" },
            if c.server_closed {
                ", server closed"
            } else {
                ""
            },
        )
    }

    /// Whether the client could send a byte now (room in the window, the
    /// connection open both ways).
    pub fn client_can_send(&self, id: ConnId) -> bool {
        let c = &self.conns[id];
        !(c.up_fin || c.client_closed || c.server_closed || c.server_reset || c.client_reset)
            && c.up.len() < c.up_cap
    }

    /// Whether the client has bytes from the server still to read.
    pub fn client_has_unread(&self, id: ConnId) -> bool {
        !self.conns[id].down.is_empty()
    }

    /// The client shuts down its sending side (FIN).
    pub fn client_shutdown(&mut self, id: ConnId) {
        let c = &mut self.conns[id];
        if c.up_fin || c.client_reset || c.server_reset {
            return;
        }
        c.up_fin = true;
        if let Some(sock) = c.sock {
            self.edge(sock, true, false, false);
        }
    }

    /// The client resets the connection (RST): whatever the server had not
    /// read is lost, and its next read or write fails.
    pub fn client_reset(&mut self, id: ConnId) {
        let c = &mut self.conns[id];
        if c.client_reset || c.server_reset {
            return;
        }
        c.client_reset = true;
        c.client_closed = true;
        c.up.clear();
        if let Some(sock) = c.sock {
            self.edge(sock, true, true, true);
        }
    }

    /// The client closes its socket: a FIN, or a RST if it left bytes from
    /// the server unread.
    pub fn client_close(&mut self, id: ConnId) {
        if !self.conns[id].down.is_empty() {
            self.client_reset(id);
            return;
        }
        self.client_shutdown(id);
        self.conns[id].client_closed = true;
    }

    /// Whether the server has accepted connection `id`.
    pub fn conn_accepted(&self, id: ConnId) -> bool {
        self.conns[id].sock.is_some()
    }

    /// Whether the server accepted connection `id` and closed it without
    /// ever watching it (turned away at `--max-conns`).
    pub fn conn_rejected(&mut self, id: ConnId) -> bool {
        self.reap_closed();
        let c = &self.conns[id];
        c.sock.is_some() && !c.registered && c.server_closed
    }

    /// A client sends datagram `data` from `from` to `to`. Returns false if
    /// it was lost (no such socket, or its receive buffer was full).
    pub fn udp_send(&mut self, from: SocketAddr, to: SocketAddr, data: &[u8]) -> bool {
        let Some(id) = self
            .socks
            .iter()
            .position(|s| s.open && matches!(&s.kind, SockKind::Udp { addr, .. } if *addr == to))
        else {
            return false;
        };
        if let SockKind::Udp {
            inbox, inbox_cap, ..
        } = &mut self.socks[id].kind
        {
            if inbox.len() >= *inbox_cap {
                return false;
            }
            inbox.push_back((from, data.to_vec()));
        }
        self.edge(id, true, false, false);
        true
    }

    /// The next datagram the server sent to client address `at`, with the
    /// address it came from.
    pub fn udp_recv(&mut self, at: SocketAddr) -> Option<Datagram> {
        self.mailboxes
            .iter_mut()
            .find(|(a, _)| *a == at)
            .and_then(|(_, q)| q.pop_front())
    }

    // ----- simulated peers the server connects to ----------------------
    //
    // An outbound connection is a `TcpConn` like an accepted one, with the
    // peer at its "client" end: the peer reads what the server wrote with
    // `client_recv`, answers with `client_send`, and cuts it with
    // `client_reset` or `client_close`.

    /// Whether a simulated peer accepts connections at `addr` from now on.
    /// Connects already waiting are not affected (refuse them one by one).
    pub fn peer_listen(&mut self, addr: SocketAddr, listening: bool) {
        self.peers.retain(|&a| a != addr);
        if listening {
            self.peers.push(addr);
        }
    }

    /// The oldest connect to `addr` still waiting for the peer's answer
    /// (connects the server gave up on meanwhile are forgotten).
    pub fn peer_pending(&mut self, addr: SocketAddr) -> Option<ConnId> {
        self.reap_closed();
        let conns = &self.conns;
        self.connects
            .retain(|&c| conns[c].connecting && !conns[c].server_closed);
        self.connects
            .iter()
            .copied()
            .find(|&c| self.conns[c].client_addr == addr)
    }

    /// The peer completes connect `id`'s handshake: the server's socket
    /// turns writable, and `connect_result` says connected.
    pub fn peer_accept(&mut self, id: ConnId) {
        let c = &mut self.conns[id];
        if !c.connecting {
            return;
        }
        c.connecting = false;
        self.connects.retain(|&c| c != id);
        if let Some(sock) = self.conns[id].sock {
            self.edge(sock, false, true, false);
        }
    }

    /// The peer refuses connect `id` (nobody listens any more): the socket
    /// reports an error, and `connect_result` says `ECONNREFUSED`.
    pub fn peer_refuse(&mut self, id: ConnId) {
        let c = &mut self.conns[id];
        if !c.connecting {
            return;
        }
        c.connecting = false;
        c.refused = true;
        self.connects.retain(|&c| c != id);
        if let Some(sock) = self.conns[id].sock {
            self.edge(sock, true, true, true);
        }
    }

    // ----- audits ------------------------------------------------------

    /// Datagrams waiting unread in the server's UDP sockets.
    pub fn udp_unread(&self) -> usize {
        self.socks
            .iter()
            .filter(|s| s.open)
            .map(|s| match &s.kind {
                SockKind::Udp { inbox, .. } => inbox.len(),
                _ => 0,
            })
            .sum()
    }

    /// Server-side sockets open now: (listeners and UDP sockets, accepted
    /// streams). Outbound connections (to a simulated Redis) are not
    /// counted.
    pub fn open_sockets(&mut self) -> (usize, usize) {
        self.reap_closed();
        let mut endpoints = 0;
        let mut streams = 0;
        for s in self.socks.iter().filter(|s| s.open) {
            match s.kind {
                SockKind::Stream { conn } if self.conns[conn].outbound => {}
                SockKind::Stream { .. } => streams += 1,
                _ => endpoints += 1,
            }
        }
        (endpoints, streams)
    }

    /// Relays (pipes) the server holds open now.
    pub fn relays_open(&self) -> usize {
        self.relays_open.get()
    }

    /// The token a reactor handle is registered under, if any.
    pub fn stream_token(&self, stream: &SimStream) -> Option<Token> {
        self.socks[stream.0.id].reg.map(|(t, _)| t)
    }
}

impl Net for SimNet {
    type Listener = SimListener;
    type Stream = SimStream;
    type Udp = SimUdp;
    type Relay = SimRelay;
    type Events = SimEvents;

    fn now(&self) -> Instant {
        self.epoch + self.clock.get()
    }

    /// The virtual clock on the calendar: every run starts at the same
    /// moment (2023-11-14T22:13:20Z), so a seed replays the same lines.
    fn wall_clock(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + self.elapsed()
    }

    fn poll(&mut self, events: &mut SimEvents, timeout: Option<Duration>) -> io::Result<()> {
        events.events.clear();
        self.batch.clear();
        self.reap_closed();
        self.counters.polls += 1;
        // The loop's own work between two polls takes a little time.
        let work = Duration::from_micros(self.rng.below(50));
        self.advance(work);
        if self.rng.chance(self.faults.eintr) {
            self.counters.eintr += 1;
            return Err(interrupted());
        }
        // UDP send buffers drain onto the wire between polls.
        for id in 0..self.socks.len() {
            let refill = self.rng.below(64 * 1024) as usize;
            if let SockKind::Udp {
                room,
                room_cap,
                nospace,
                ..
            } = &mut self.socks[id].kind
            {
                *room = (*room + refill).min(*room_cap);
                if *nospace && *room > 0 {
                    *nospace = false;
                    self.edge(id, false, true, false);
                }
            }
        }
        if !self.stingy && self.rng.chance(self.faults.spurious) {
            let registered: Vec<usize> = (0..self.socks.len())
                .filter(|&i| self.socks[i].open && self.socks[i].reg.is_some())
                .collect();
            if !registered.is_empty() {
                let id = registered[self.rng.below(registered.len() as u64) as usize];
                self.socks[id].spurious = true;
                self.counters.spurious += 1;
                if !self.socks[id].queued {
                    self.socks[id].queued = true;
                    self.ready.push_back(id);
                }
            }
        }
        // A batch holds at most `capacity` events, and sometimes fewer are
        // taken: the rest stay queued for the next poll, as with a small
        // `Events` buffer.
        let cap = events.capacity.max(1);
        let take = if self.rng.chance(300) {
            self.rng.range(1, cap)
        } else {
            cap
        };
        if std::mem::take(&mut self.signal_edge) {
            events.events.push((
                SIGNAL_TOKEN,
                Readiness {
                    readable: true,
                    writable: false,
                    read_closed: false,
                },
            ));
        }
        while events.events.len() < take {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            self.socks[id].queued = false;
            if let Some(event) = self.report(id) {
                events.events.push(event);
                self.batch.push((event.0, id));
            }
        }
        self.counters.events += events.events.len() as u64;
        // Nothing to report: nothing happens until the deadline, so jump to
        // it (no further while clients are busy). Without a deadline a real
        // server sleeps until a client does something; the clients act
        // before the next turn.
        if let (true, Some(wait)) = (events.events.is_empty(), timeout) {
            let jump = self.max_jump.map_or(wait, |most| wait.min(most));
            self.advance(jump);
            self.counters.time_jumps += 1;
        }
        Ok(())
    }

    fn register_signals(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn take_signals(&mut self, out: &mut Vec<i32>) {
        out.append(&mut self.signals);
    }

    fn fd_budget(&mut self, max_conns: usize, _endpoints: usize) -> FdBudget {
        FdBudget {
            max_conns,
            relays: SIM_RELAYS,
        }
    }

    fn listen_tcp(&mut self, addr: SocketAddr, token: Token) -> io::Result<SimListener> {
        let mut addr = addr;
        if addr.port() == 0 {
            addr.set_port(10000 + self.socks.len() as u16);
        }
        let id = self.new_sock(
            SockKind::Listener {
                addr,
                backlog: VecDeque::new(),
            },
            None,
        );
        self.set_reg(id, token, Interest::READABLE);
        Ok(SimListener(self.handle(id)))
    }

    fn bind_udp(&mut self, addr: SocketAddr, token: Token) -> io::Result<SimUdp> {
        let mut addr = addr;
        if addr.port() == 0 {
            addr.set_port(10000 + self.socks.len() as u16);
        }
        let room_cap = self.rng.range(1, 4) * 64 * 1024;
        let inbox_cap = self.rng.pick(&[4, 64, 256, 1024]);
        let id = self.new_sock(
            SockKind::Udp {
                addr,
                inbox: VecDeque::new(),
                inbox_cap,
                room: room_cap,
                room_cap,
                nospace: false,
            },
            None,
        );
        self.set_reg(id, token, Interest::READABLE);
        Ok(SimUdp(self.handle(id)))
    }

    fn listener_addr(&self, listener: &SimListener) -> io::Result<SocketAddr> {
        match &self.socks[listener.0.id].kind {
            SockKind::Listener { addr, .. } => Ok(*addr),
            _ => Err(closed_error()),
        }
    }

    fn udp_addr(&self, socket: &SimUdp) -> io::Result<SocketAddr> {
        match &self.socks[socket.0.id].kind {
            SockKind::Udp { addr, .. } => Ok(*addr),
            _ => Err(closed_error()),
        }
    }

    fn deregister_listener(&mut self, listener: &mut SimListener) -> io::Result<()> {
        self.socks[listener.0.id].reg = None;
        Ok(())
    }

    fn accept(&mut self, listener: &SimListener) -> io::Result<(SimStream, SocketAddr)> {
        if self.rng.chance(self.faults.eintr) {
            self.counters.eintr += 1;
            return Err(interrupted());
        }
        let SockKind::Listener { backlog, .. } = &self.socks[listener.0.id].kind else {
            return Err(closed_error());
        };
        if backlog.is_empty() {
            return Err(would_block());
        }
        if self.rng.chance(self.faults.emfile) {
            self.counters.emfile += 1;
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        let SockKind::Listener { backlog, .. } = &mut self.socks[listener.0.id].kind else {
            return Err(closed_error());
        };
        let conn = backlog.pop_front().ok_or_else(would_block)?;
        let id = self.new_sock(SockKind::Stream { conn }, None);
        self.conns[conn].sock = Some(id);
        let peer = self.conns[conn].client_addr;
        Ok((SimStream(self.handle(id)), peer))
    }

    fn register(
        &mut self,
        stream: &mut SimStream,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        // The stale-event trap: this token's previous owner was closed, but
        // the batch being handled may still hold an event of the old owner,
        // which would now be dispatched to this one. A reactor must free a
        // slot only after the batch (or put a generation in its tokens).
        self.reap_closed();
        if let Some(&(_, old)) = self
            .batch
            .iter()
            .find(|&&(t, id)| t == token && id != stream.0.id && !self.socks[id].open)
        {
            panic!(
                "token {} registered for a new socket while the batch being handled holds an event \
                 of socket {old}, closed since: its stale event would reach the newcomer",
                token.0
            );
        }
        if let SockKind::Stream { conn } = self.socks[stream.0.id].kind {
            self.conns[conn].registered = true;
        }
        self.set_reg(stream.0.id, token, interest);
        Ok(())
    }

    fn reregister(
        &mut self,
        stream: &mut SimStream,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        if self.socks[stream.0.id].reg.is_none() {
            return Err(io::ErrorKind::NotFound.into());
        }
        self.set_reg(stream.0.id, token, interest);
        Ok(())
    }

    fn reregister_udp(
        &mut self,
        socket: &mut SimUdp,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.set_reg(socket.0.id, token, interest);
        Ok(())
    }

    fn set_nodelay(&mut self, _stream: &SimStream) -> io::Result<()> {
        Ok(())
    }

    fn read(&mut self, stream: &SimStream, buf: &mut [u8]) -> io::Result<usize> {
        if self.rng.chance(self.faults.eintr) {
            self.counters.eintr += 1;
            return Err(interrupted());
        }
        let c = self.stream_conn(stream)?;
        if c.refused {
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        if c.client_reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if c.connecting {
            return Err(would_block());
        }
        if !c.up.is_empty() {
            return Ok(c.up.take(buf));
        }
        if c.up_fin {
            return Ok(0);
        }
        Err(would_block())
    }

    fn write_vectored(&mut self, stream: &SimStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.rng.chance(self.faults.eintr) {
            self.counters.eintr += 1;
            return Err(interrupted());
        }
        let short = !self.stingy && self.rng.chance(self.faults.short_write);
        let cut = self.rng.next_u64();
        let sock = stream.0.id;
        let c = self.stream_conn(stream)?;
        if c.refused {
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        if c.client_reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if c.connecting {
            return Err(would_block());
        }
        if c.down_fin {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let offered: usize = bufs.iter().map(|b| b.len()).sum();
        if c.client_closed {
            // The client's kernel answers with RST; the bytes go nowhere.
            c.client_reset = true;
            self.edge(sock, true, true, true);
            return Ok(offered);
        }
        let room = c.down_cap - c.down.len();
        if room == 0 {
            c.nospace = true;
            return Err(would_block());
        }
        let mut take = offered.min(room);
        let mut injected = false;
        if short && take > 1 {
            take = 1 + (cut % (take as u64 - 1)) as usize;
            injected = true;
        }
        if take < offered {
            c.nospace = true;
        }
        let mut left = take;
        for b in bufs {
            let n = b.len().min(left);
            c.down.push(&b[..n]);
            left -= n;
            if left == 0 {
                break;
            }
        }
        if injected {
            // The buffer was momentarily full; it drains, and the edge that
            // a real kernel raises then follows.
            self.counters.short_writes += 1;
            self.conns_nospace_edge(sock);
        }
        Ok(take)
    }

    fn open_relay(&mut self) -> io::Result<SimRelay> {
        if self.rng.chance(self.faults.emfile) {
            self.counters.emfile += 1;
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        self.counters.relays_opened += 1;
        self.relays_open.set(self.relays_open.get() + 1);
        Ok(SimRelay {
            bytes: Pipe::default(),
            open: Rc::clone(&self.relays_open),
        })
    }

    fn relay_in(
        &mut self,
        stream: &SimStream,
        relay: &mut SimRelay,
        max: usize,
    ) -> io::Result<usize> {
        let room = RELAY_CAPACITY - relay.bytes.len();
        if room == 0 {
            // A full pipe answers as an empty socket does.
            return Err(would_block());
        }
        let mut want = max.min(room);
        // A pipe holds pages, not bytes: it may take less than there is,
        // with no event to say the socket still has more. Injected even when
        // stingy: it wakes nothing, it can only strand bytes.
        if want > 1 && self.rng.chance(self.faults.short_write) {
            want = self.rng.range(1, want - 1);
            self.counters.short_fills += 1;
        }
        let mut staged = vec![0; want];
        let n = self.read(stream, &mut staged)?;
        relay.bytes.push(&staged[..n]);
        self.counters.relayed += n as u64;
        Ok(n)
    }

    fn relay_out(
        &mut self,
        relay: &mut SimRelay,
        stream: &SimStream,
        max: usize,
    ) -> io::Result<usize> {
        let n = max.min(relay.bytes.len());
        if n == 0 {
            return Ok(0);
        }
        let head = relay.bytes.head;
        let w = self.write_vectored(stream, &[IoSlice::new(&relay.bytes.buf[head..head + n])])?;
        relay.bytes.advance(w);
        Ok(w)
    }

    fn relay_take(&mut self, relay: &mut SimRelay, buf: &mut [u8]) -> io::Result<usize> {
        if self.rng.chance(self.faults.eintr) {
            self.counters.eintr += 1;
            return Err(interrupted());
        }
        if relay.bytes.is_empty() {
            return Err(would_block());
        }
        self.counters.relay_spills += 1;
        Ok(relay.bytes.take(buf))
    }

    fn shutdown_write(&mut self, stream: &SimStream) -> io::Result<()> {
        let c = self.stream_conn(stream)?;
        c.down_fin = true;
        Ok(())
    }

    /// A connect to an address where a simulated peer listens
    /// ([`SimNet::peer_listen`]) waits until the peer accepts or refuses it
    /// ([`SimNet::peer_accept`], [`SimNet::peer_refuse`]), as `EINPROGRESS`
    /// does. Nobody listening: refused, either at once (as loopback
    /// sometimes answers) or through the socket's error, drawn by the seed.
    fn connect(&mut self, addr: SocketAddr) -> io::Result<SimStream> {
        let listening = self.peers.contains(&addr);
        if !listening && self.rng.chance(500) {
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        // Windows of at least 256 bytes: the peer moves bytes once a step, and
        // its own faults cut them into small pieces when the seed says so.
        let up_cap = self.window().max(256);
        let down_cap = self.window().max(256);
        self.conns.push(TcpConn {
            client_addr: addr,
            up: Pipe::default(),
            up_cap,
            up_fin: false,
            down: Pipe::default(),
            down_cap,
            down_fin: false,
            client_reset: false,
            server_reset: false,
            client_closed: false,
            server_closed: false,
            nospace: false,
            sock: None,
            registered: false,
            connecting: listening,
            refused: !listening,
            outbound: true,
        });
        let conn = self.conns.len() - 1;
        let id = self.new_sock(SockKind::Stream { conn }, None);
        self.conns[conn].sock = Some(id);
        if listening {
            self.connects.push_back(conn);
        }
        Ok(SimStream(self.handle(id)))
    }

    fn server_id(&mut self) -> u64 {
        self.rng.next_u64().max(1)
    }

    fn connect_result(&mut self, stream: &SimStream) -> io::Result<bool> {
        let c = self.stream_conn(stream)?;
        if c.refused {
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        Ok(!c.connecting)
    }

    fn recv_from(&mut self, socket: &SimUdp, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if self.rng.chance(self.faults.eintr) {
            self.counters.eintr += 1;
            return Err(interrupted());
        }
        let SockKind::Udp { inbox, .. } = &mut self.socks[socket.0.id].kind else {
            return Err(closed_error());
        };
        let (from, data) = inbox.pop_front().ok_or_else(would_block)?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok((n, from))
    }

    fn send_to(&mut self, socket: &SimUdp, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        if self.rng.chance(self.faults.eintr) {
            self.counters.eintr += 1;
            return Err(interrupted());
        }
        let SockKind::Udp {
            room,
            nospace,
            addr,
            ..
        } = &mut self.socks[socket.0.id].kind
        else {
            return Err(closed_error());
        };
        if *room < buf.len().max(1) {
            *nospace = true;
            return Err(would_block());
        }
        *room -= buf.len().max(1);
        let from = *addr;
        match self.mailboxes.iter_mut().find(|(a, _)| *a == to) {
            Some((_, q)) => q.push_back((from, buf.to_vec())),
            None => self
                .mailboxes
                .push((to, VecDeque::from([(from, buf.to_vec())]))),
        }
        Ok(buf.len())
    }
}

impl SimNet {
    /// After an injected short write: the send buffer drains and WRITABLE
    /// is raised, as after a real one.
    fn conns_nospace_edge(&mut self, sock: usize) {
        if let SockKind::Stream { conn } = self.socks[sock].kind {
            self.conns[conn].nospace = false;
        }
        self.edge(sock, false, true, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> SimNet {
        SimNet::new(SimRng::seeded(1), Faults::default(), vec![1000])
    }

    fn poll(net: &mut SimNet) -> Vec<(Token, Readiness)> {
        let mut events = SimEvents::with_capacity(16);
        net.poll(&mut events, Some(Duration::ZERO)).unwrap();
        events.ready().collect()
    }

    fn connected(net: &mut SimNet) -> (SimListener, SimStream, ConnId) {
        let addr: SocketAddr = "127.0.0.1:7".parse().unwrap();
        let listener = net.listen_tcp(addr, Token(0)).unwrap();
        let conn = net.client_connect(addr).unwrap();
        assert_eq!(poll(net).len(), 1, "the listener is readable");
        let (mut stream, _) = net.accept(&listener).unwrap();
        net.register(&mut stream, Token(1), Interest::READABLE)
            .unwrap();
        assert!(poll(net).is_empty(), "nothing to read yet: no event");
        (listener, stream, conn)
    }

    #[test]
    fn each_arrival_raises_one_readable_edge_and_nothing_else_does() {
        let mut net = net();
        let (_l, stream, conn) = connected(&mut net);
        net.client_send(conn, b"a").unwrap();
        let events = poll(&mut net);
        assert_eq!(events.len(), 1);
        assert!(events[0].1.readable && !events[0].1.writable);
        assert!(poll(&mut net).is_empty(), "an edge is reported once");
        let mut buf = [0u8; 8];
        assert_eq!(net.read(&stream, &mut buf).unwrap(), 1);
        net.client_send(conn, b"bc").unwrap();
        assert_eq!(poll(&mut net).len(), 1, "a new arrival, a new edge");
        net.client_send(conn, b"d").unwrap();
        assert_eq!(net.read(&stream, &mut buf).unwrap(), 3);
        assert!(
            poll(&mut net).is_empty(),
            "an edge whose bytes were read before the poll reports nothing"
        );
    }

    #[test]
    fn writable_only_when_a_full_buffer_gains_room() {
        let mut net = net();
        let (_l, mut stream, conn) = connected(&mut net);
        net.reregister(
            &mut stream,
            Token(1),
            Interest::READABLE | Interest::WRITABLE,
        )
        .unwrap();
        assert_eq!(
            poll(&mut net).len(),
            1,
            "MOD reports the room there is, once"
        );
        let big = vec![7u8; 5000];
        let cap = net.write_vectored(&stream, &[IoSlice::new(&big)]).unwrap();
        assert!(cap < big.len());
        let mut out = Vec::new();
        assert_eq!(net.client_recv(conn, &mut out, 1), ClientRead::Data(1));
        assert!(poll(&mut net).is_empty(), "one byte of room is not enough");
        net.client_recv(conn, &mut out, cap);
        let events = poll(&mut net);
        assert_eq!(events.len(), 1);
        assert!(events[0].1.writable);
        // A buffer that never filled raises nothing, however much it drains.
        net.write_vectored(&stream, &[IoSlice::new(b"x")]).unwrap();
        net.client_recv(conn, &mut out, 10);
        assert!(poll(&mut net).is_empty());
    }

    #[test]
    #[should_panic(expected = "stale event would reach the newcomer")]
    fn a_token_reused_within_the_batch_of_its_closed_owner_is_flagged() {
        let mut net = net();
        let (listener, stream, conn) = connected(&mut net);
        net.client_send(conn, b"x").unwrap();
        let addr = net.listener_addr(&listener).unwrap();
        net.client_connect(addr).unwrap();
        assert_eq!(
            poll(&mut net).len(),
            2,
            "the stream's and the listener's events"
        );
        // Handling the batch: the stream is closed, its slot reused at once.
        drop(stream);
        let (mut newcomer, _) = net.accept(&listener).unwrap();
        net.register(&mut newcomer, Token(1), Interest::READABLE)
            .unwrap();
    }

    #[test]
    fn a_token_reused_after_the_batch_is_fine() {
        let mut net = net();
        let (listener, stream, conn) = connected(&mut net);
        net.client_send(conn, b"x").unwrap();
        let addr = net.listener_addr(&listener).unwrap();
        net.client_connect(addr).unwrap();
        assert_eq!(poll(&mut net).len(), 2);
        drop(stream);
        poll(&mut net);
        let (mut newcomer, _) = net.accept(&listener).unwrap();
        net.register(&mut newcomer, Token(1), Interest::READABLE)
            .unwrap();
    }

    #[test]
    fn emfile_leaves_the_connection_in_the_backlog() {
        let mut net = net();
        net.faults.emfile = 1000;
        let addr: SocketAddr = "127.0.0.1:7".parse().unwrap();
        let listener = net.listen_tcp(addr, Token(0)).unwrap();
        net.client_connect(addr).unwrap();
        let err = net.accept(&listener).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
        net.faults.emfile = 0;
        assert!(net.accept(&listener).is_ok(), "the connection waited");
        assert_eq!(
            net.accept(&listener).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn closing_with_unread_input_resets_the_peer() {
        let mut net = net();
        let (_l, stream, conn) = connected(&mut net);
        net.write_vectored(&stream, &[IoSlice::new(b"reply")])
            .unwrap();
        net.client_send(conn, b"unread").unwrap();
        drop(stream);
        let mut out = Vec::new();
        assert!(net.conn_server_closed(conn));
        assert_eq!(net.client_recv(conn, &mut out, 100), ClientRead::Reset);
    }
}
