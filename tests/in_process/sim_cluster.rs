//! Several real reactors joined by a simulated Redis, seed after seed (see
//! `sockloop::testing::sim::cluster` and docs/simulation.md): each seed
//! draws two or three `serve --cluster` servers, chat clients on each, and
//! Redis faults (crash and restart with or without its data, every link
//! dropped, slow answers, small chunks, a slow subscriber cut), and checks
//! liveness, per-sender order across servers, names, notices and bounds.
//!
//! - `cargo test --test in_process sim_cluster::` runs seeds 0..250
//!   (`SOCKLOOP_SIM_CLUSTER_SEEDS=N` for more, `SOCKLOOP_SIM_CLUSTER_FIRST=K`
//!   to start elsewhere);
//! - `SOCKLOOP_SIM_CLUSTER_SEED=N cargo test --test in_process sim_cluster::` replays
//!   seed N alone, with the servers' log on stderr (`RUST_LOG=debug`).

use std::time::Instant;

use sockloop::testing::sim::cluster::run_seed;

use crate::seeds::{env_u64, fail_on, run_seeds};

/// Seeds run by default: about 12 s in a debug build on a 2-core machine.
const DEFAULT_SEEDS: u64 = 250;

#[test]
fn the_cluster_survives_every_seed() {
    if let Some(seed) = env_u64("SOCKLOOP_SIM_CLUSTER_SEED") {
        let _ = env_logger::builder().is_test(true).try_init();
        let outcome = run_seed(seed);
        eprintln!("seed {seed}: {outcome:#?}");
        return;
    }
    let first = env_u64("SOCKLOOP_SIM_CLUSTER_FIRST").unwrap_or(0);
    let seeds = env_u64("SOCKLOOP_SIM_CLUSTER_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let verbose = std::env::var_os("SOCKLOOP_SIM_VERBOSE").is_some();
    let started = Instant::now();
    let (mut steps, mut restarts, mut cuts, mut refused, mut turned_away, mut excused) =
        (0, 0, 0, 0, 0, 0);
    let mut max_output = 0;
    let failed = run_seeds(first, seeds, run_seed, |seed, o, took| {
        steps += o.steps;
        restarts += o.redis.restarts;
        cuts += o.redis.slow_cut;
        refused += o.redis.refused;
        turned_away += o.turned_away;
        excused += u64::from(o.names_excused);
        max_output = max_output.max(o.max_output);
        if verbose {
            eprintln!(
                "seed {seed}: {} steps, {:?} virtual, {took:?}",
                o.steps, o.elapsed
            );
        }
    });
    eprintln!(
        "{seeds} cluster seeds from {first}: {} failed; {steps} steps, {restarts} Redis restarts, \
         {cuts} slow subscribers cut, {refused} connects refused, {turned_away} clients turned \
         away, name checks suspended in {excused} seeds, at most {max_output} bytes waiting for \
         Redis; {:?}",
        failed.len(),
        started.elapsed()
    );
    fail_on(&failed, seeds);
}

/// A seed replays exactly: the same steps, virtual time and Redis
/// counters, run after run.
#[test]
fn a_cluster_seed_replays_exactly() {
    for seed in 0..8 {
        let (a, b) = (run_seed(seed), run_seed(seed));
        assert_eq!(a.steps, b.steps, "seed {seed}: steps differ");
        assert_eq!(a.elapsed, b.elapsed, "seed {seed}: virtual time differs");
        assert_eq!(a.redis, b.redis, "seed {seed}: Redis counters differ");
    }
}
