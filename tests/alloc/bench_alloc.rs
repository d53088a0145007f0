//! The load generator allocates nothing per message: a whole `bench` run,
//! in this process against the real server (a child process), allocates the
//! same number of heap blocks whether it lasts for a few thousand messages or
//! for several times as many. dhat counts every allocation; counts are exact,
//! so unlike speed they can be asserted.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use sockloop::bench::Target as BenchTarget;
use sockloop::bench::{self, Plan};

/// Heap blocks allocated by one run, and the messages it answered.
fn allocations_of(target: BenchTarget, addr: SocketAddr, secs: f64) -> (u64, u64) {
    let plan = Plan {
        target,
        addr,
        also: Vec::new(),
        conns: 4,
        size: 64,
        pipeline: 2,
        duration: Duration::from_secs_f64(secs),
        count: None,
        interval: None,
    };
    let before = dhat::HeapStats::get().total_blocks;
    let (tally, _, _) = match target {
        BenchTarget::Echo => bench::echo::run(&plan),
        BenchTarget::Udp => bench::udp::run(&plan),
        BenchTarget::Chat => bench::chat::run(&plan),
    }
    .unwrap();
    let blocks = dhat::HeapStats::get().total_blocks - before;
    assert_eq!(tally.errors(), 0, "{tally:?}");
    (blocks, tally.messages)
}

pub fn a_longer_run_allocates_nothing_more() {
    let _profiler = dhat::Profiler::builder().testing().build();
    // The server's logs are read by threads of this process: keep them quiet.
    let server = common::Server::start_env(&common::ALL_SERVICES, 3, &[("RUST_LOG", "error")]);
    for (target, service) in [
        (BenchTarget::Echo, "tcp-echo"),
        (BenchTarget::Udp, "udp-echo"),
        (BenchTarget::Chat, "chat"),
    ] {
        let addr = server.addr(service);
        // A first run pays for one-time initialisation (lazy statics, the
        // resolver); the two compared runs start from the same state.
        allocations_of(target, addr, 0.05);
        let (short_blocks, short_msgs) = allocations_of(target, addr, 0.1);
        let (long_blocks, long_msgs) = allocations_of(target, addr, 0.5);
        assert!(
            long_msgs > short_msgs + 100,
            "{target:?}: the longer run answered more ({short_msgs} vs {long_msgs})"
        );
        assert_eq!(
            long_blocks, short_blocks,
            "{target:?}: {short_blocks} blocks for {short_msgs} messages, \
             {long_blocks} for {long_msgs}"
        );
    }
}
