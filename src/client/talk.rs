//! `sockloop talk` (not built yet: see issue 4).

use crate::cli::TalkArgs;

/// Run `sockloop talk`.
pub fn run(_args: &TalkArgs) -> std::io::Result<()> {
    Err(std::io::Error::other("sockloop talk is not built yet"))
}
