//! Fuzz target `line_framing`: see `sockloop::testing::line_framing` for what it drives and
//! what it checks. The check panics on any broken invariant, which
//! libFuzzer reports as a crash and saves under fuzz/artifacts/line_framing/.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockloop::testing::line_framing::{check, LineFramingInput};

fuzz_target!(|input: LineFramingInput| check(&input));
