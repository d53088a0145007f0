//! Fuzz target `reactor_sim`: the whole server (the real reactor and every
//! protocol) on the simulated network, with the input as the simulation's
//! first random choices (see `sockloop::testing::sim::run_bytes`). A broken
//! liveness, safety or bounds check panics, which libFuzzer reports as a
//! crash and saves under fuzz/artifacts/reactor_sim/.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sockloop::testing::sim::run_bytes(data);
});
