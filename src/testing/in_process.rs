//! The in-process level of the tests in one place: a real [`Server`] bound
//! on 127.0.0.1 port 0 inside the test's own process, over real loopback
//! sockets, turned one loop at a time by the test itself. Between two turns
//! a test can look at the server's [`Stats`] and read its own client
//! sockets, which a test of the binary cannot.
//!
//! Every wait is [`InProcessServer::turn_until`]: turn until a condition
//! holds, under an overall deadline, never a fixed number of turns or a
//! sleep. It allocates nothing of its own, so the heap-counting tests can
//! turn the loop while dhat counts. Where the tests sit and which level a
//! new one belongs to: docs/architecture.md, "Tests by level".

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::config::{ListenerSpec, ServeConfig, Service};
use crate::net::mio::MioNet;
use crate::net::{EventList, Net};
use crate::reactor::stats::Stats;
use crate::reactor::Server;
use crate::testing::counting_net::CountingNet;

/// How long one turn sleeps at most when nothing is ready, unless the test
/// sets [`InProcessServer::max_wait`]. Short, because a condition may hang
/// on a client socket the server has no event for; a server timer that
/// falls sooner wakes the turn sooner anyway.
pub const TURN_WAIT: Duration = Duration::from_millis(100);

/// A [`Server`] in this process with the events buffer its turns use
/// (on the real network; [`InProcessServer::serve_counting`] puts a
/// [`CountingNet`] around it).
pub struct InProcessServer<N: Net = MioNet> {
    server: Server<N>,
    events: N::Events,
    /// How long one turn may sleep when nothing is ready ([`TURN_WAIT`]
    /// unless set). A test that counts turns sets it above the timer it
    /// waits for, so that a turn ends on the timer and not on this cap.
    pub max_wait: Duration,
}

/// One `service` listener on 127.0.0.1 port 0, every other option at its
/// default.
fn one_listener(service: Service) -> ServeConfig {
    ServeConfig::with_defaults(vec![ListenerSpec {
        service,
        addr: "127.0.0.1:0".into(),
    }])
}

impl InProcessServer {
    /// Bind every listener of `config` (tests give 127.0.0.1 port 0).
    /// Panics if a bind fails: the test cannot start.
    #[track_caller]
    pub fn bind(config: ServeConfig) -> InProcessServer {
        let net = MioNet::new().expect("an epoll instance");
        InProcessServer::bind_on(config, net)
    }

    /// One `service` listener on 127.0.0.1 port 0, every other option at
    /// its default.
    pub fn serve(service: Service) -> InProcessServer {
        InProcessServer::bind(one_listener(service))
    }
}

impl InProcessServer<CountingNet<MioNet>> {
    /// Like [`InProcessServer::serve`], with every system call of the
    /// server counted (`server().net().counts()`).
    pub fn serve_counting(service: Service) -> InProcessServer<CountingNet<MioNet>> {
        let net = CountingNet::new(MioNet::new().expect("an epoll instance"));
        InProcessServer::bind_on(one_listener(service), net)
    }
}

impl<N: Net> InProcessServer<N> {
    /// Bind every listener of `config` on `net`. Panics if a bind fails.
    #[track_caller]
    pub fn bind_on(config: ServeConfig, net: N) -> InProcessServer<N> {
        let wanted: Vec<String> = config.listeners.iter().map(|l| l.addr.clone()).collect();
        let server = Server::with_net(config, net)
            .unwrap_or_else(|e| panic!("bind {}: {e}", wanted.join(", ")));
        InProcessServer {
            server,
            events: N::Events::with_capacity(1024),
            max_wait: TURN_WAIT,
        }
    }

    /// The address of the first listener (its real port).
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addrs()[0].1
    }

    /// A client connected to [`addr`](Self::addr), non-blocking: the kernel
    /// completes the handshake before the server accepts, so connecting
    /// needs no turn, and a test reads what has arrived without blocking
    /// the loop it turns itself.
    pub fn connect(&self) -> TcpStream {
        let addr = self.addr();
        let client = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        client.set_nonblocking(true).expect("set_nonblocking");
        client
    }

    /// The server, to look at between turns.
    pub fn server(&self) -> &Server<N> {
        &self.server
    }

    /// The server, for a unit test of the reactor that plays part of a
    /// turn by hand (src/reactor/tests.rs).
    pub fn server_mut(&mut self) -> &mut Server<N> {
        &mut self.server
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        self.server.stats()
    }

    /// One turn of the loop: poll (sleeping at most [`max_wait`](Self::max_wait)
    /// when nothing is ready), then handle what is ready. Panics on an IO
    /// error of the loop itself.
    #[track_caller]
    pub fn turn(&mut self) {
        self.server
            .turn(&mut self.events, Some(self.max_wait))
            .unwrap_or_else(|e| panic!("a turn of the loop failed: {e}"));
    }

    /// Turn the loop until `done` holds, checked before every turn (so no
    /// turn at all if it holds already), and return how many turns it took.
    /// Panics naming `what` and the server's counters if `within` passes
    /// first: every wait has a deadline. `done` may read the test's own
    /// sockets as well as the server; like this method, it should not
    /// allocate while a heap-counting test counts. A failure points at the
    /// caller's line (`#[track_caller]`).
    #[track_caller]
    pub fn turn_until(
        &mut self,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&Server<N>) -> bool,
    ) -> usize {
        let deadline = Instant::now() + within;
        let mut turns = 0;
        while !done(&self.server) {
            if Instant::now() >= deadline {
                panic!(
                    "{what}: not within {within:?} ({turns} turns); {}",
                    self.server.stats()
                );
            }
            self.turn();
            turns += 1;
        }
        turns
    }
}
