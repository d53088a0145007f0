//! sockloop: one thread runs one hand-written [`mio`] poll loop that serves
//! TCP echo, UDP echo and a line-based chat, plus the matching clients and a
//! load generator. It is meant to be read: it shows, in working code, how a
//! single-threaded reactor multiplexes many sockets without blocking.
//!
//! The architecture in one paragraph: the [`reactor`] owns the `mio::Poll`,
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
//! - [`cli`]: the command line (clap), every subcommand and option; with
//!   `main.rs`, the only code that knows clap.
//! - [`config`]: every limit and default, named, in one place.
//! - [`reactor`]: the only code that calls mio for the server: poll loop,
//!   slab, dispatch, deferred close, timers, signals, stats, and the
//!   `--trace-events` timeline ([`reactor::trace`]).
//! - [`net`]: the reactor's seam to the OS, the [`net::Net`] trait, with
//!   mio behind it in production ([`net::mio`]) and an in-memory network
//!   with a virtual clock and injected faults in the tests ([`net::sim`]);
//!   plus tiny socket helpers (`would_block`, read/write once).
//! - [`buffer`]: bounded byte queues and shared lines for fan-out.
//! - [`protocol`]: sans-IO line framing, TCP echo, UDP echo and chat.
//! - [`client`]: the `send`, `chat` and `talk` clients, each a small mio loop.
//! - [`cluster`]: chat across servers through Redis, sans-IO: the RESP codec,
//!   the bus message format and the Redis link's state machine (not yet
//!   wired into the reactor).
//! - [`bench`](mod@bench): the load generator.
//! - [`testing`]: naive models and invariant checks of the protocol state
//!   machines, shared by the fuzz targets (fuzz/) and the property tests.
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
