//! `bench chat` (being written).
use super::report::Tally;
use super::Plan;
use std::io;
use std::time::Duration;
/// Run `bench chat`.
pub fn run(_plan: &Plan) -> io::Result<(Tally, usize, Duration)> {
    Err(io::Error::other("bench chat: not yet"))
}
