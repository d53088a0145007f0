//! Fuzz target `resp_decode`: bytes "from Redis", in chunks the input
//! chooses, through the RESP decoder of the cluster link. See
//! `sockloop::cluster::checks::resp_chunking` for what is checked (no panic,
//! no stack overflow, the same frames and end however the bytes are cut).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sockloop::cluster::checks::resp_chunking(data));
