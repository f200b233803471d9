//! Why an export could not be turned into an image for the registry, and the exit status of
//! each kind.

use std::io;

use crate::platform::{Platform, PlatformMismatch};

/// Why an export could not be turned into an image for the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image is not for the platform that was asked.
    #[error(transparent)]
    PlatformMismatch(#[from] PlatformMismatch),
    /// Reading the export or writing a temporary file failed.
    #[error("{what}")]
    Io {
        /// What we were doing.
        what: String,
        /// The cause.
        source: io::Error,
    },
    /// The export is not what the Engine should send.
    #[error("the image export of `{platform}` is not valid: {reason}")]
    Malformed {
        /// The platform whose export it is.
        platform: Platform,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Exit 1 for an image of another platform (the Dockerfile pins one), 2 for an export the
    /// Engine sent wrong or could not send.
    #[must_use]
    pub fn exit_status(&self) -> crate::exit_status::ExitStatus {
        match self {
            Error::PlatformMismatch(mismatch) => mismatch.exit_status(),
            Error::Io { .. } | Error::Malformed { .. } => crate::exit_status::ExitStatus::System,
        }
    }
}
