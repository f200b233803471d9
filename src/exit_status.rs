//! The exit status of a failed run, which every error kind states for itself
//! (`exit_status()` on each module's error), so that nothing has to look through a chain of
//! wrappers to guess it: 1 for what the user must fix (an input, the Dockerfile, a missing
//! repository, an immutable tag, an image of another platform), 2 for an outside system
//! failing (the Docker Engine, ECR, the registry).

/// How a run ended, as its exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Did what was asked.
    Success,
    /// Something the user must fix: exit 1.
    User,
    /// An outside system failed: exit 2.
    System,
}

impl ExitStatus {
    /// The process exit code.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::User => 1,
            ExitStatus::System => 2,
        }
    }
}
