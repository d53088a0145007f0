//! `sockloop chat` (not built yet: see issue 4).

use crate::cli::ChatArgs;

/// Run `sockloop chat`.
pub fn run(_args: &ChatArgs) -> std::io::Result<()> {
    Err(std::io::Error::other("sockloop chat is not built yet"))
}
