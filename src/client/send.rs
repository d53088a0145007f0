//! `sockloop send` (not built yet: see issue 4).

use crate::cli::SendArgs;

/// Run `sockloop send`.
pub fn run(_args: &SendArgs) -> std::io::Result<()> {
    Err(std::io::Error::other("sockloop send is not built yet"))
}
