//! Fuzz target `chat_hub`: see `sockloop::testing::chat_hub` for what it drives and
//! what it checks. The check panics on any broken invariant, which
//! libFuzzer reports as a crash and saves under fuzz/artifacts/chat_hub/.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockloop::testing::chat_hub::{check, ChatHubInput};

fuzz_target!(|input: ChatHubInput| check(&input));
