//! Fuzz target `chat_session`: see `sockloop::testing::chat_session` for what it drives and
//! what it checks. The check panics on any broken invariant, which
//! libFuzzer reports as a crash and saves under fuzz/artifacts/chat_session/.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockloop::testing::chat_session::{check, ChatSessionInput};

fuzz_target!(|input: ChatSessionInput| check(&input));
