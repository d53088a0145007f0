//! The reactor (being built).

/// Run `sockloop serve`.
pub fn serve(_args: &crate::cli::ServeArgs) -> std::io::Result<()> {
    Err(std::io::Error::other("not yet"))
}
