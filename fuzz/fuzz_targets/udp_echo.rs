//! Fuzz target `udp_echo`: see `sockloop::testing::udp_echo` for what it drives and
//! what it checks. The check panics on any broken invariant, which
//! libFuzzer reports as a crash and saves under fuzz/artifacts/udp_echo/.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockloop::testing::udp_echo::{check, UdpEchoInput};

fuzz_target!(|input: UdpEchoInput| check(&input));
