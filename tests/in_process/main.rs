//! Level 2, in process: the library's IO layer runs inside this test
//! process: a whole `Server` turned one loop at a time (on real loopback
//! sockets through `sockloop::testing::in_process`, or on the simulated
//! network), or a library piece that does IO (the cluster's Redis link)
//! against a real `redis-server`. A test can look at the server's state
//! between two turns, which the binary level cannot; it never spawns the
//! `sockloop` binary.
//!
//! The levels are described in docs/architecture.md, "Tests by level".

#[path = "../support/redis_support.rs"]
mod redis_support;

mod cluster_redis;
mod fd_exhaustion;
mod sim;
