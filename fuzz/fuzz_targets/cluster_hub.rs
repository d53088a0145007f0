//! Fuzz target `cluster_hub`: what "other servers" say, as bus messages, to
//! a chat hub of a cluster with one local user. See
//! `sockloop::cluster::checks::cluster_hub` for the record layout and what
//! is checked (no panic, the hub's tables agree, the local user keeps its
//! name and room).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sockloop::cluster::checks::cluster_hub(data));
