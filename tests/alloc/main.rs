//! Exact heap allocation counts, with dhat's counting allocator as this
//! binary's `#[global_allocator]`. The tests come from two levels, each
//! file says which: the sans-IO chat hub (`chat_alloc`), and a real `Server`
//! in this process or a real `bench` run (`echo_alloc`, `chat_fanout_alloc`,
//! `bench_alloc`).
//!
//! Why a binary of their own, without libtest's harness (`harness = false`
//! in Cargo.toml): the global allocator is chosen per binary, and dhat
//! counts the allocations of every thread in the process. libtest runs tests
//! on threads of its own and allocates while they run, which made exact
//! counts fail now and then, and any test beside these would add its own
//! allocations. So they run here one after another on the main thread
//! ([`run_alone`]), and nothing else does.

#[path = "../support/common.rs"]
mod common;

mod bench_alloc;
mod chat_alloc;
mod chat_fanout_alloc;
mod echo_alloc;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    run_alone(&[
        (
            "echo_alloc::steady_state_echo_allocates_nothing_per_message",
            echo_alloc::steady_state_echo_allocates_nothing_per_message,
        ),
        (
            "echo_alloc::streamed_echo_allocates_nothing_per_message",
            echo_alloc::streamed_echo_allocates_nothing_per_message,
        ),
        (
            "chat_alloc::a_relayed_line_allocates_the_same_for_a_room_of_1_or_1000",
            chat_alloc::a_relayed_line_allocates_the_same_for_a_room_of_1_or_1000,
        ),
        (
            "chat_fanout_alloc::fan_out_allocations_do_not_grow_with_the_room",
            chat_fanout_alloc::fan_out_allocations_do_not_grow_with_the_room,
        ),
        // Last: it reads a child server's logs on threads of this process.
        (
            "bench_alloc::a_longer_run_allocates_nothing_more",
            bench_alloc::a_longer_run_allocates_nothing_more,
        ),
    ]);
}

/// Run `tests` one after another on the main thread, each under its name,
/// and print libtest's lines, so the run's totals count these tests too
/// (.ci/run adds up the `test result:` lines). Arguments that are not
/// options filter by name, as with libtest (`cargo test --test alloc echo`).
/// A failing test panics, which fails the binary.
fn run_alone(tests: &[(&str, fn())]) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut passed = 0;
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        test();
        println!("test {name} ... ok");
        passed += 1;
    }
    println!(
        "\ntest result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; {} filtered out\n",
        tests.len() - passed
    );
}
