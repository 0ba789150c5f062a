//! Errors that `main` turns into an exit status of their own.
use std::fmt;

/// A command line that only shows itself wrong once the command runs (e.g. `--window` with no
/// daemon to ask): `main` prints it as clap prints a usage error and exits 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
