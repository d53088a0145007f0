//! Level 2, in process: the library's IO layer runs inside this test
//! process: a whole `Server` turned one loop at a time (on real loopback
//! sockets through `sockloop::testing::in_process`, or on the simulated
//! network), or a library piece that does IO (the cluster's Redis link)
//! against a real `redis-server`. A test can look at the server's state
//! between two turns, which the binary level cannot; it never spawns the
//! `sockloop` binary.
//!
//! A test that changes what the whole process shares (the fd limit) runs
//! alone in a child process of this binary ([`in_a_process_of_its_own`]),
//! so the tests beside it never see the change. The levels are described
//! in docs/architecture.md, "Tests by level".

#[path = "../support/common.rs"]
mod common;
#[path = "../support/redis_support.rs"]
mod redis_support;

mod cluster_redis;
mod fd_exhaustion;
mod seeds;
mod sim;
mod sim_cluster;
mod syscalls;

use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a test run in a process of its own may take.
const ALONE_WAIT: Duration = Duration::from_secs(60);

/// Run `body`, the test `name` (its path in this binary,
/// `module::test_name`), in a child process of this binary where it is the
/// only test, and fail if it fails there. The child is this same
/// executable, run with `name --exact` and a variable that tells the test
/// it is the child, which then runs `body`. Its output is shown when it
/// fails; it must report exactly one test passed, so a misspelt `name`
/// fails instead of passing with nothing run. Waited for under a deadline.
pub fn in_a_process_of_its_own(name: &str, body: fn()) {
    const CHILD: &str = "SOCKLOOP_TEST_IN_ITS_OWN_PROCESS";
    if std::env::var(CHILD).is_ok_and(|v| v == name) {
        return body();
    }
    let child = Command::new(std::env::current_exe().expect("this test binary"))
        .args([name, "--exact", "--test-threads=1"])
        .env(CHILD, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start this test binary again");
    let what = format!("{name}, in a process of its own,");
    let (status, out, err) = common::output_within(child, ALONE_WAIT, &what);
    assert!(
        status.success() && out.contains("test result: ok. 1 passed"),
        "{what} {status}\n{out}\n{err}"
    );
}
