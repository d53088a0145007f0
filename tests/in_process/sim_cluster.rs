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

use std::panic;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use sockloop::testing::sim::cluster::run_seed;

/// Seeds run by default: about 12 s in a debug build on a 2-core machine.
const DEFAULT_SEEDS: u64 = 250;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

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
    let mut failed = Vec::new();
    // As in tests/sim.rs: failures are collected quietly, the first one
    // printed whole at the end.
    let default_hook: Arc<dyn Fn(&panic::PanicHookInfo<'_>) + Send + Sync> =
        Arc::from(panic::take_hook());
    let quiet = thread::current().id();
    let others = Arc::clone(&default_hook);
    panic::set_hook(Box::new(move |info| {
        if thread::current().id() != quiet {
            others(info)
        }
    }));
    for seed in first..first + seeds {
        let t = Instant::now();
        match panic::catch_unwind(|| run_seed(seed)) {
            Ok(o) => {
                steps += o.steps;
                restarts += o.redis.restarts;
                cuts += o.redis.slow_cut;
                refused += o.redis.refused;
                turned_away += o.turned_away;
                excused += u64::from(o.names_excused);
                max_output = max_output.max(o.max_output);
                if verbose {
                    eprintln!(
                        "seed {seed}: {} steps, {:?} virtual, {:?}",
                        o.steps,
                        o.elapsed,
                        t.elapsed()
                    );
                }
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "(no message)".into());
                let headline = msg.lines().nth(1).unwrap_or_default().to_string();
                eprintln!("seed {seed} FAILED: {headline}");
                failed.push((seed, msg));
            }
        }
    }
    panic::set_hook(Box::new(move |info| default_hook(info)));
    eprintln!(
        "{seeds} cluster seeds from {first}: {} failed; {steps} steps, {restarts} Redis restarts, \
         {cuts} slow subscribers cut, {refused} connects refused, {turned_away} clients turned \
         away, name checks suspended in {excused} seeds, at most {max_output} bytes waiting for \
         Redis; {:?}",
        failed.len(),
        started.elapsed()
    );
    if let Some((seed, msg)) = failed.first() {
        panic!(
            "{} of {seeds} seeds failed: {:?}\nfirst failure, seed {seed}:\n{msg}",
            failed.len(),
            failed.iter().map(|(s, _)| s).collect::<Vec<_>>()
        );
    }
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
