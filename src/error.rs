//! Error kinds that decide the process exit code.
//!
//! Most code returns `anyhow::Error` with context added at each layer. The
//! two types here are the ones `main` branches on: a [`UsageError`] (a bad
//! option, a bad config, a refused command) exits with 2, a
//! [`RefreshFailed`] exits with 1. Anything else is an unexpected runtime
//! failure and also exits with 1.

use thiserror::Error;

/// The user asked for something that cannot be done as asked: a bad option,
/// a bad configuration, a refused edit. Exit code 2, nothing was written.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// One or more refreshes failed; the details were already printed and
/// logged. Exit code 1.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct RefreshFailed(pub String);

/// Shorthand for returning a [`UsageError`] from a function that returns
/// `anyhow::Result`.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::error::UsageError(format!($($arg)*))))
    };
}

/// Exit code for an error chain: 2 when any link is a usage error, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<UsageError>()) {
        2
    } else {
        1
    }
}
