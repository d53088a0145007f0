//! Level 3, the real binary: every test here starts `sockloop` (serve,
//! send, chat, talk, bench, the examples) as a user would, talks to it over
//! loopback, a pipe or a pseudo-terminal, and ends it by PID. What these
//! tests see is what a user sees: the exact lines, the exit codes, the
//! signals.
//!
//! A test belongs here when it needs the process boundary: arguments, exit
//! status, stdout and stderr, signals, a terminal, several servers. Each
//! file covers one command or one theme. The levels are described in
//! docs/architecture.md, "Tests by level".

#[path = "../support/client_support.rs"]
mod client_support;
#[path = "../support/common.rs"]
mod common;
#[path = "../support/redis_support.rs"]
mod redis_support;

mod bench;
mod chat_server;
mod cli;
mod clients;
mod cluster_chat;
mod daytime;
mod examples;
mod faults;
mod relay;
mod server;
mod talk;
mod terminal;
