//! sockloop: one thread runs one hand-written [`mio`] poll loop that serves
//! TCP echo, UDP echo and a line-based chat, plus the matching clients and a
//! load generator. It is meant to be read: it shows, in working code, how a
//! single-threaded reactor multiplexes many sockets without blocking.
//!
//! The architecture in one paragraph: the [`reactor`] owns the poll (epoll
//! through mio, behind the [`net::Net`] seam),
//! a [`slab::Slab`] of every registered source (listeners, connections, UDP
//! sockets) and the timers. Each readiness event's token finds a slab entry;
//! the reactor reads the socket until it would block, hands the bytes to that
//! entry's *sans-IO* state machine from [`protocol`] (echo, UDP echo, chat:
//! bytes in, bytes out, never a socket),
//! and writes back whatever output the state machine queued in [`buffer`]s,
//! asking mio for WRITABLE only while output waits. The protocol code never
//! touches a socket, so it is tested and fuzzed without one.
//!
//! # Layout
//!
//! From the top down; each layer may use the ones below it, never one above
//! (docs/architecture.md draws it):
//!
//! - `main.rs` and [`cli`]: the command line (clap), every subcommand and
//!   option, exit statuses, the `listening` lines; the only code that knows
//!   clap. They turn options into the plain structs below.
//! - [`reactor`]: one poll loop of the server: the slab of sources
//!   (listeners, connections, UDP sockets, the Redis link of `--cluster` in
//!   `reactor/redis.rs`), dispatch, deferred close, still-ready, one timer
//!   set, signals, stats and the `--trace-events` timeline
//!   ([`reactor::trace`]). `Server::bind(ServeConfig)` then `Server::run()`.
//!   It calls the OS only through [`net`].
//! - [`client`] and [`bench`](mod@bench): the `send`, `chat` and `talk`
//!   clients and the load generator, each a small mio loop on
//!   [`net::toolkit`], [`protocol::line`]'s line framer and [`protocol`]'s
//!   wire text; no socket routine of their own.
//! - [`net`]: the seam to the OS, the [`net::Net`] trait, with mio behind it
//!   in production ([`net::mio`]) and an in-memory network with a virtual
//!   clock and injected faults in the tests ([`net::sim`]); the small helpers
//!   every non-blocking loop needs (`would_block`, read/write once); and the
//!   non-blocking toolkit ([`net::toolkit`]: connect and its check,
//!   `poll_once`, the `drain` read loop with the FIN guard, the fd limit)
//!   that `MioNet`, the clients and bench share.
//! - [`cluster`]: chat across servers, the Redis side, sans-IO: the RESP
//!   codec and the Redis link's state machine ([`cluster::link`]).
//! - [`protocol`]: everything else sans-IO: line framing (the one line
//!   splitter, for the server, the clients and bench), TCP echo, UDP
//!   echo, the chat hub (handle_* in, effects out) with its delivery policy
//!   ([`protocol::chat::delivery`]), its wire text
//!   ([`protocol::chat::wire`]), its view of other servers
//!   ([`protocol::chat::cluster`]) and the message format between servers
//!   ([`protocol::chat::bus`]); and daytime ([`protocol::daytime`]), the
//!   worked example of docs/adding-a-service.md.
//! - [`buffer`] and [`config`]: bounded queues and shared lines; every limit
//!   and default, named, and the `redis://` URL ([`config::redis_url`]).
//!   They import nothing above them.
//! - [`testing`]: naive models, invariant checks, the deterministic
//!   simulation of the reactor ([`testing::sim`]) and the in-process
//!   server the tests turn by hand ([`testing::in_process`]), for the tests
//!   (tests/, by level: docs/architecture.md) and the fuzz targets (fuzz/)
//!   only.
//!
//! # Reading further
//!
//! In the repository's `docs/`: `tour.md` follows one real run of the
//! server line by line, from `RUST_LOG=trace` output and a timeline;
//! `architecture.md` draws the loop, the slab and token lifecycle and every
//! state machine; `pitfalls.md` names each trap of a hand-written reactor,
//! where this crate handles it and which test proves it; `limits.md` lists
//! every bound and its policy; `protocol.md` is the protocols, for users;
//! `fuzzing.md` is how the state machines are fuzzed and what is checked;
//! `build-your-own.md` builds the reactor up from the tutorial's blocking
//! server in five runnable programs (`examples/`, one idea each); and
//! `glossary.md` defines every term (sans-IO, still-ready, interest,
//! edge-triggered, token, budget, ...).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod bench;
pub mod buffer;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod net;
pub mod protocol;
pub mod reactor;
pub mod testing;
