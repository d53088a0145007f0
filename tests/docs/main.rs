//! The docs' own tests: the tour's quoted log replayed against the real
//! binary, and every name, link, number and "proved by" the docs give
//! checked against the code and the tests (see `tour`). They fail when code
//! and docs drift apart, whichever moved. The levels are described in
//! docs/architecture.md, "Tests by level".

#[path = "../support/common.rs"]
mod common;

mod tour;
