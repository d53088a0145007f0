//! `sockloop bench` (not built yet: see issue 7).

use crate::cli::BenchArgs;

/// Run `sockloop bench`.
pub fn run(_args: &BenchArgs) -> std::io::Result<()> {
    Err(std::io::Error::other("sockloop bench is not built yet"))
}
