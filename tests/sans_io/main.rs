//! Level 1, sans-IO: the protocol state machines and the fuzz targets'
//! checks, driven directly with bytes (and `now`), as the reactor drives
//! them. No socket, no `Server` loop, no child process, no wall clock: every
//! test here is deterministic and fast.
//!
//! A test belongs here when it calls a sans-IO API (`Hub`, `LineFramer`,
//! the cluster codecs, a `sockloop::testing` check) and nothing else. The
//! replay of fuzz inputs lives here whatever the target, the whole reactor
//! on the simulated network (`reactor_sim`) included: it calls the target's
//! own `check`, which is as deterministic as the others. The levels are
//! described in docs/architecture.md, "Tests by level".

mod chat_hub;
mod cluster_fuzz_seeds;
mod fuzz_regressions;
mod properties;
