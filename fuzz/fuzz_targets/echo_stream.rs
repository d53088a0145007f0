//! Fuzz target `echo_stream`: see `sockloop::testing::echo_stream` for what it drives and
//! what it checks. The check panics on any broken invariant, which
//! libFuzzer reports as a crash and saves under fuzz/artifacts/echo_stream/.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockloop::testing::echo_stream::{check, EchoStreamInput};

fuzz_target!(|input: EchoStreamInput| check(&input));
