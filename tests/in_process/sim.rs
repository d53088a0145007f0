//! The real reactor on the simulated network, seed after seed (see
//! `sockloop::testing::sim` and docs/simulation.md). Each seed draws a
//! scenario (limits, fault rates, windows, clients) and checks liveness,
//! safety and bounds at every step; a failure names its seed.
//!
//! - `cargo test --test in_process sim::` runs seeds 0..1000 (`SOCKLOOP_SIM_SEEDS=N` for
//!   more, `SOCKLOOP_SIM_FIRST=K` to start elsewhere);
//! - `SOCKLOOP_SIM_SEED=N cargo test --test in_process sim::` replays seed N alone, with
//!   the server's log on stderr (`RUST_LOG=debug` or `trace`).

use std::time::Instant;

use sockloop::testing::sim::run_seed;

use crate::seeds::{env_u64, fail_on, run_seeds};

#[test]
fn the_reactor_survives_every_seed() {
    if let Some(seed) = env_u64("SOCKLOOP_SIM_SEED") {
        let _ = env_logger::builder().is_test(true).try_init();
        let outcome = run_seed(seed);
        eprintln!("seed {seed}: {outcome:#?}");
        return;
    }
    let first = env_u64("SOCKLOOP_SIM_FIRST").unwrap_or(0);
    let seeds = env_u64("SOCKLOOP_SIM_SEEDS").unwrap_or(1000);
    let verbose = std::env::var_os("SOCKLOOP_SIM_VERBOSE").is_some();
    let started = Instant::now();
    let (mut steps, mut events, mut faults) = (0, 0, 0);
    let (mut relays, mut relayed, mut short_fills, mut spills) = (0, 0, 0, 0);
    let failed = run_seeds(first, seeds, run_seed, |seed, o, took| {
        steps += o.steps;
        events += o.counters.events;
        faults +=
            o.counters.eintr + o.counters.spurious + o.counters.emfile + o.counters.short_writes;
        relays += o.counters.relays_opened;
        relayed += o.counters.relayed;
        short_fills += o.counters.short_fills;
        spills += o.counters.relay_spills;
        if verbose {
            eprintln!(
                "seed {seed}: {} steps, {:?} virtual, {took:?}",
                o.steps, o.elapsed
            );
        }
    });
    eprintln!(
        "{seeds} seeds from {first}: {} failed; {steps} steps, {events} events, {faults} injected faults, {:?}",
        failed.len(),
        started.elapsed()
    );
    eprintln!(
        "echo relays: {relays} opened, {relayed} bytes through them, {short_fills} short fills, {spills} spills back to copying"
    );
    fail_on(&failed, seeds);
    // The default run must have taken the relay path, its trap (a fill that
    // stops short while the socket has more) and its way back to copying, or
    // it proved nothing about them; a narrower run only says what it saw.
    if first == 0 && seeds >= 1000 {
        assert!(
            relays > 0 && relayed > 0 && short_fills > 0 && spills > 0,
            "the relay path went untested: {relays} relays, {relayed} bytes, \
             {short_fills} short fills, {spills} spills"
        );
    }
}

/// A seed replays exactly: the same steps, events, faults and server
/// counters, run after run (nothing reads the wall clock, no hash map
/// iterates in a random order, no thread races).
#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 80, 105] {
        let (a, b) = (run_seed(seed), run_seed(seed));
        assert_eq!(a.steps, b.steps, "seed {seed}: steps differ");
        assert_eq!(a.elapsed, b.elapsed, "seed {seed}: virtual time differs");
        assert_eq!(a.stats, b.stats, "seed {seed}: server counters differ");
        assert_eq!(
            format!("{:?}", a.counters),
            format!("{:?}", b.counters),
            "seed {seed}: the network's counters differ"
        );
    }
}
