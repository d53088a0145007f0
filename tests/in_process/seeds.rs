//! Running many simulation seeds in one test: shared by the reactor's
//! simulation (`sim`) and the cluster's (`sim_cluster`), which run side by
//! side in this binary.
//!
//! A failing seed panics; its message is collected and the first one printed
//! whole at the end, instead of a panic message per failing seed. Silencing
//! the panic message is done by one process-wide panic hook, installed once,
//! that stays quiet only for the threads currently running seeds: two tests
//! that each swapped the hook in and out would undo each other's.

use std::collections::HashSet;
use std::panic;
use std::sync::{Mutex, OnceLock};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

/// Parse the environment variable `name` as a number, if it is set.
pub fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// Threads whose panics the hook keeps quiet.
fn quiet_threads() -> &'static Mutex<HashSet<ThreadId>> {
    static QUIET: OnceLock<Mutex<HashSet<ThreadId>>> = OnceLock::new();
    QUIET.get_or_init(|| {
        let default_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let quiet = quiet_threads()
                .lock()
                .map(|q| q.contains(&thread::current().id()))
                .unwrap_or(false);
            if !quiet {
                default_hook(info)
            }
        }));
        Mutex::new(HashSet::new())
    })
}

/// Run seeds `first..first + count` through `run`, passing each outcome and
/// how long it took to `on_ok`; a panicking seed is reported on one line
/// (`seed N FAILED: ...`) and collected. Returns the failures, in order.
pub fn run_seeds<O>(
    first: u64,
    count: u64,
    run: impl Fn(u64) -> O,
    mut on_ok: impl FnMut(u64, &O, Duration),
) -> Vec<(u64, String)> {
    let me = thread::current().id();
    quiet_threads().lock().unwrap().insert(me);
    let mut failed = Vec::new();
    for seed in first..first + count {
        let t = Instant::now();
        match panic::catch_unwind(panic::AssertUnwindSafe(|| run(seed))) {
            Ok(outcome) => on_ok(seed, &outcome, t.elapsed()),
            Err(panic) => {
                let msg = sockloop::testing::sim::panic_message(panic.as_ref());
                let headline = msg.lines().nth(1).unwrap_or_default().to_string();
                eprintln!("seed {seed} FAILED: {headline}");
                failed.push((seed, msg));
            }
        }
    }
    quiet_threads().lock().unwrap().remove(&me);
    failed
}

/// Fail the test with the first failure whole, if any seed failed.
pub fn fail_on(failed: &[(u64, String)], count: u64) {
    if let Some((seed, msg)) = failed.first() {
        panic!(
            "{} of {count} seeds failed: {:?}\nfirst failure, seed {seed}:\n{msg}",
            failed.len(),
            failed.iter().map(|(s, _)| s).collect::<Vec<_>>()
        );
    }
}
