//! Fuzz target `client_lines`: see `sockloop::testing::client_lines` for what it drives and
//! what it checks. The check panics on any broken invariant, which
//! libFuzzer reports as a crash and saves under fuzz/artifacts/client_lines/.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockloop::testing::client_lines::{check, ClientLinesInput};

fuzz_target!(|input: ClientLinesInput| check(&input));
