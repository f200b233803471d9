//! The exit code and the annotation title of a failed run: 1 for what the user must fix (an
//! input, the Dockerfile, a missing repository, an immutable tag, a platform mismatch), 2 for an
//! outside system failing (the Docker Engine, ECR, the registry).

use crate::ecr;
use crate::engine;
use crate::github::SourceLocation;
use crate::inputs::{InputError, Request};
use crate::plan;
use crate::platform::PlatformMismatch;
use crate::registry;

/// Exit code for a run that did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure the user must fix: an input, the Dockerfile, a missing repository.
pub const EXIT_USER: u8 = 1;
/// Exit code for an outside system failing: the Engine, ECR, the registry.
pub const EXIT_SYSTEM: u8 = 2;

/// Exit code, annotation title and Dockerfile location for a failed run.
pub fn classify(request: &Request, error: &anyhow::Error) -> (u8, String, Option<SourceLocation>) {
    for cause in error.chain() {
        if let Some(gate) = cause.downcast_ref::<crate::gate::Error>() {
            return (gate.exit_code(), gate.title(), None);
        }
        if let Some(input) = cause.downcast_ref::<InputError>() {
            return (EXIT_USER, format!("Invalid input {}", input.input), None);
        }
        if let Some(engine::Error::BuildFailed {
            platform,
            dockerfile_line,
            ..
        }) = cause.downcast_ref::<engine::Error>()
        {
            let location = dockerfile_line.map(|line| SourceLocation {
                file: request
                    .dockerfile
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_owned(),
                line,
            });
            return (EXIT_USER, format!("Build failed for {platform}"), location);
        }
        if let Some(engine::Error::Lost { platform, .. }) = cause.downcast_ref::<engine::Error>() {
            let title = platform.as_ref().map_or_else(
                || "Docker Engine lost".to_owned(),
                |platform| format!("Docker Engine lost while building {platform}"),
            );
            return (EXIT_SYSTEM, title, None);
        }
        if let Some(engine::Error::Connect { platforms, .. }) =
            cause.downcast_ref::<engine::Error>()
        {
            let names: Vec<String> = platforms.iter().map(ToString::to_string).collect();
            return (
                EXIT_SYSTEM,
                format!("Docker Engine unreachable for {}", names.join(", ")),
                None,
            );
        }
        if let Some(engine::Error::Unsupported { .. }) = cause.downcast_ref::<engine::Error>() {
            return (EXIT_SYSTEM, "Docker Engine not supported".to_owned(), None);
        }
        if let Some(ecr::Error::RepositoryMissing { .. }) = cause.downcast_ref::<ecr::Error>() {
            return (EXIT_USER, "Repository missing".to_owned(), None);
        }
        if let Some(mismatch) = cause.downcast_ref::<PlatformMismatch>() {
            return (
                EXIT_USER,
                format!("Wrong platform for {}", mismatch.wanted),
                None,
            );
        }
        if let Some(conflict) = cause.downcast_ref::<plan::ImmutableTag>() {
            return (
                EXIT_USER,
                format!("Tag {} is immutable", conflict.tag),
                None,
            );
        }
        if let Some(error) = cause.downcast_ref::<registry::Error>() {
            if error.is_denied() {
                return (EXIT_USER, "Registry denied access".to_owned(), None);
            }
            // A merge named an image the repository does not have, or an index of several.
            match error {
                // Transparent: the chain goes past it to its cause.
                registry::Error::PlatformMismatch(mismatch) => {
                    return (
                        EXIT_USER,
                        format!("Wrong platform for {}", mismatch.wanted),
                        None,
                    );
                }
                registry::Error::NotInRepository { .. } => {
                    return (EXIT_USER, "Image not in the repository".to_owned(), None);
                }
                registry::Error::SeveralImages { .. } => {
                    return (EXIT_USER, "Not one platform's image".to_owned(), None);
                }
                _ => {}
            }
            // Another run moved an immutable tag between our read and our push.
            if error.code() == Some("TAG_INVALID") {
                return (EXIT_USER, "Tag is immutable".to_owned(), None);
            }
        }
    }
    (EXIT_SYSTEM, "ecr-multiarch failed".to_owned(), None)
}
