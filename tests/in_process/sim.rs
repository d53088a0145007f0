//! The real reactor on the simulated network, seed after seed (see
//! `sockloop::testing::sim` and docs/simulation.md). Each seed draws a
//! scenario (limits, fault rates, windows, clients) and checks liveness,
//! safety and bounds at every step; a failure names its seed.
//!
//! - `cargo test --test in_process sim::` runs seeds 0..1000 (`SOCKLOOP_SIM_SEEDS=N` for
//!   more, `SOCKLOOP_SIM_FIRST=K` to start elsewhere);
//! - `SOCKLOOP_SIM_SEED=N cargo test --test in_process sim::` replays seed N alone, with
//!   the server's log on stderr (`RUST_LOG=debug` or `trace`).

use std::panic;
use std::sync::Arc;
use std::thread;
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
    let mut failed = Vec::new();
    // Each failure's message is collected and the first one printed whole
    // at the end, instead of a panic message per failing seed. The hook is
    // the process's: it stays quiet for this thread only.
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
                events += o.counters.events;
                faults += o.counters.eintr
                    + o.counters.spurious
                    + o.counters.emfile
                    + o.counters.short_writes;
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
        "{seeds} seeds from {first}: {} failed; {steps} steps, {events} events, {faults} injected faults, {:?}",
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
