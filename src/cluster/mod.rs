//! Chat across servers: the pieces that join several sockloop servers into
//! one chat through Redis, all sans-IO (bytes and `now` in, bytes and
//! effects out), so they are tested and fuzzed without a socket.
//!
//! - [`resp`]: the Redis wire protocol (commands out, replies and pushes in).
//! - [`link`]: the connection to Redis as a state machine: handshake,
//!   subscription, bounded output, reconnect back-off, name leases, the
//!   guest counter, and noticing servers that went silent.
//! - [`checks`]: the invariants the fuzz targets check (and `cargo test`
//!   replays on their seeds).
//!
//! What travels between servers, the bus messages, is chat's own format and
//! lives with chat ([`crate::protocol::chat::bus`]); the `redis://` address
//! is configuration ([`crate::config::redis_url`]). Both sit below this
//! module: it imports them, they import nothing of it.
//!
//! The reactor (`src/reactor/redis.rs`) owns the TCP connection and calls
//! [`link::Link`]; the chat hub ([`crate::protocol::chat::cluster`])
//! consumes the link's effects and asks for publishes and name claims.

pub mod checks;
pub mod link;
pub mod resp;
