//! The real reactor on the simulated network, seed after seed (see
//! `sockloop::testing::sim` and docs/simulation.md). Each seed draws a
//! scenario (limits, fault rates, windows, clients) and checks liveness,
//! safety and bounds at every step; a failure names its seed.
//!
//! - `cargo test --test sim` runs seeds 0..1000 (`SOCKLOOP_SIM_SEEDS=N` for
//!   more, `SOCKLOOP_SIM_FIRST=K` to start elsewhere);
//! - `SOCKLOOP_SIM_SEED=N cargo test --test sim` replays seed N alone.

use std::time::Instant;

use sockloop::testing::sim::run_seed;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

#[test]
fn the_reactor_survives_every_seed() {
    if let Some(seed) = env_u64("SOCKLOOP_SIM_SEED") {
        let outcome = run_seed(seed);
        eprintln!("seed {seed}: {outcome:#?}");
        return;
    }
    let first = env_u64("SOCKLOOP_SIM_FIRST").unwrap_or(0);
    let seeds = env_u64("SOCKLOOP_SIM_SEEDS").unwrap_or(1000);
    let started = Instant::now();
    let (mut steps, mut events, mut faults) = (0, 0, 0);
    for seed in first..first + seeds {
        let o = run_seed(seed);
        steps += o.steps;
        events += o.counters.events;
        faults +=
            o.counters.eintr + o.counters.spurious + o.counters.emfile + o.counters.short_writes;
    }
    eprintln!(
        "{seeds} seeds from {first}: {steps} steps, {events} events, {faults} injected faults, {:?}",
        started.elapsed()
    );
}
