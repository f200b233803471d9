//! The exit code and the annotation title of a failed run: 1 for what the user must fix (an
//! input, the Dockerfile, a missing repository, an immutable tag, a platform mismatch), 2 for an
//! outside system failing (the Docker Engine, ECR, the registry). Each error kind states its own
//! [`ExitStatus`]; here the outermost error of a kind this crate knows is found in the chain and
//! given a title. A `#[error(transparent)]` wrapper shows its payload's text but not the payload
//! itself in the chain, so the wrappers are asked, not looked through.

use std::path::Path;

use crate::ecr;
use crate::engine;
use crate::exit_status::ExitStatus;
use crate::github::SourceLocation;
use crate::image_export;
use crate::inputs::{InputError, Request};
use crate::plan;
use crate::platform::PlatformMismatch;
use crate::registry;

/// Exit code for a run that did what was asked.
pub const EXIT_OK: u8 = ExitStatus::Success.code();
/// Exit code for a failure the user must fix: an input, the Dockerfile, a missing repository.
pub const EXIT_USER: u8 = ExitStatus::User.code();
/// Exit code for an outside system failing: the Engine, ECR, the registry.
pub const EXIT_SYSTEM: u8 = ExitStatus::System.code();

/// The title of a failure no kind names better.
const GENERIC_TITLE: &str = "ecr-multiarch failed";

/// Exit code, annotation title and Dockerfile location for a failed run.
pub fn classify(request: &Request, error: &anyhow::Error) -> (u8, String, Option<SourceLocation>) {
    let (status, title, line) = classify_chain(error);
    let location = line.map(|line| SourceLocation {
        file: dockerfile_name(&request.dockerfile),
        line,
    });
    (status.code(), title, location)
}

fn dockerfile_name(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches("./").to_owned()
}

/// The status, the title and the Dockerfile line of the outermost known error in the chain.
fn classify_chain(error: &anyhow::Error) -> (ExitStatus, String, Option<usize>) {
    error.chain().find_map(known_kind).unwrap_or((
        ExitStatus::System,
        GENERIC_TITLE.to_owned(),
        None,
    ))
}

/// What one error of a kind this crate knows says of itself.
fn known_kind(
    cause: &(dyn std::error::Error + 'static),
) -> Option<(ExitStatus, String, Option<usize>)> {
    let mismatch_title =
        |mismatch: &PlatformMismatch| format!("Wrong platform for {}", mismatch.wanted);
    if let Some(gate) = cause.downcast_ref::<crate::gate::Error>() {
        return Some((gate.exit_status(), gate.title(), None));
    }
    if let Some(input) = cause.downcast_ref::<InputError>() {
        return Some((
            input.exit_status(),
            format!("Invalid input {}", input.input),
            None,
        ));
    }
    if let Some(error) = cause.downcast_ref::<engine::Error>() {
        let (title, line) = match error {
            engine::Error::BuildFailed {
                platform,
                dockerfile_line,
                ..
            } => (format!("Build failed for {platform}"), *dockerfile_line),
            engine::Error::Lost { platform, .. } => (
                platform.as_ref().map_or_else(
                    || "Docker Engine lost".to_owned(),
                    |platform| format!("Docker Engine lost while building {platform}"),
                ),
                None,
            ),
            engine::Error::ContextLost { platform, .. } => (
                format!("Build context lost while building {platform}"),
                None,
            ),
            engine::Error::Connect { platforms, .. } => {
                let names: Vec<String> = platforms.iter().map(ToString::to_string).collect();
                (
                    format!("Docker Engine unreachable for {}", names.join(", ")),
                    None,
                )
            }
            engine::Error::Unsupported { .. } => ("Docker Engine not supported".to_owned(), None),
            engine::Error::Api { .. } | engine::Error::UnexpectedAnswer(_) => {
                (GENERIC_TITLE.to_owned(), None)
            }
        };
        return Some((error.exit_status(), title, line));
    }
    if let Some(error) = cause.downcast_ref::<ecr::Error>() {
        let title = match error {
            ecr::Error::RepositoryMissing { .. } => "Repository missing".to_owned(),
            // Issue 18: `create-repository: template` and no template matches; a policy or key
            // ECR refuses.
            ecr::Error::NoCreationTemplate { .. } => "No repository creation template".to_owned(),
            ecr::Error::SettingRefused { input, .. } => format!("ECR refused {input}"),
            ecr::Error::Api { .. } | ecr::Error::UnexpectedAnswer(_) => GENERIC_TITLE.to_owned(),
        };
        return Some((error.exit_status(), title, None));
    }
    if let Some(error) = cause.downcast_ref::<image_export::Error>() {
        let title = match error {
            image_export::Error::PlatformMismatch(mismatch) => mismatch_title(mismatch),
            image_export::Error::Io { .. } | image_export::Error::Malformed { .. } => {
                GENERIC_TITLE.to_owned()
            }
        };
        return Some((error.exit_status(), title, None));
    }
    if let Some(error) = cause.downcast_ref::<registry::Error>() {
        let title = match error {
            error if error.is_denied() => "Registry denied access".to_owned(),
            registry::Error::PlatformMismatch(mismatch) => mismatch_title(mismatch),
            // A merge named an image the repository does not have, or an index of several.
            registry::Error::NotInRepository { .. } => "Image not in the repository".to_owned(),
            registry::Error::SeveralImages { .. } => "Not one platform's image".to_owned(),
            // Another run moved an immutable tag between our read and our push.
            error if error.code() == Some("TAG_INVALID") => "Tag is immutable".to_owned(),
            _ => GENERIC_TITLE.to_owned(),
        };
        return Some((error.exit_status(), title, None));
    }
    if let Some(mismatch) = cause.downcast_ref::<PlatformMismatch>() {
        return Some((mismatch.exit_status(), mismatch_title(mismatch), None));
    }
    if let Some(conflict) = cause.downcast_ref::<plan::ImmutableTag>() {
        return Some((
            conflict.exit_status(),
            format!("Tag {} is immutable", conflict.tag),
            None,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;
    use rstest::rstest;

    fn platform() -> Platform {
        "linux/arm64".parse().expect("platform")
    }

    fn mismatch() -> PlatformMismatch {
        PlatformMismatch {
            wanted: platform(),
            found: "linux/amd64".to_owned(),
            digest: format!("sha256:{}", "a".repeat(64)),
        }
    }

    fn bollard_error() -> bollard::errors::Error {
        bollard::errors::Error::RequestTimeoutError
    }

    fn reqwest_error() -> reqwest::Error {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
            .get("not a url")
            .build()
            .expect_err("not a URL")
    }

    fn status(status: u16, code: Option<&str>) -> registry::Error {
        registry::Error::Status {
            operation: "pushing".to_owned(),
            registry: "127.0.0.1:5000".to_owned(),
            status,
            code: code.map(str::to_owned),
            message: String::new(),
            retry_after: None,
            attempts: 1,
        }
    }

    fn io() -> std::io::Error {
        std::io::Error::other("disk full")
    }

    /// Every error kind, wrapped as the run wraps it, to its exit code and title.
    #[rstest]
    #[case::input(InputError { input: "target", message: "no stage".into() }.into(), 1, "Invalid input target")]
    #[case::gate_timeout(crate::gate::Error::Timeout { waited: "10 min".into(), pending: "`linux/arm64`: IN_PROGRESS".into() }.into(), 2, "Vulnerability scan timed out")]
    #[case::build_failed(engine::Error::BuildFailed { platform: platform(), step: None, dockerfile_line: Some(3), message: "exit 1".into(), last_lines: vec![] }.into(), 1, "Build failed for linux/arm64")]
    #[case::engine_lost(engine::Error::Lost { address: "unix:///x".into(), platform: Some(platform()), action: "building".into(), source: bollard_error() }.into(), 2, "Docker Engine lost while building linux/arm64")]
    #[case::context_lost(engine::Error::ContextLost { address: "unix:///x".into(), platform: platform(), context: "/ctx".into(), reason: "reset".into(), reported: "canceled".into() }.into(), 2, "Build context lost while building linux/arm64")]
    #[case::engine_unreachable(engine::Error::Connect { address: "unix:///x".into(), platforms: vec![platform()], named_by: engine::NamedBy::DockerHost, source: bollard_error() }.into(), 2, "Docker Engine unreachable for linux/arm64")]
    #[case::engine_unsupported(engine::Error::Unsupported { address: "unix:///x".into(), version: "26.1".into(), store: engine::ImageStore::Containerd, problem: "fails", fix: "upgrade" }.into(), 2, "Docker Engine not supported")]
    #[case::engine_api(engine::Error::Api { address: "unix:///x".into(), action: "exporting".into(), source: bollard_error() }.into(), 2, GENERIC_TITLE)]
    #[case::engine_answer(engine::Error::UnexpectedAnswer("no id".into()).into(), 2, GENERIC_TITLE)]
    #[case::repository_missing(ecr::Error::RepositoryMissing { repository: "team/api".into(), region: "us-east-1".into() }.into(), 1, "Repository missing")]
    #[case::ecr_api(ecr::Error::Api { action: "describing".into(), message: "throttled".into() }.into(), 2, GENERIC_TITLE)]
    #[case::ecr_answer(ecr::Error::UnexpectedAnswer("no token".into()).into(), 2, GENERIC_TITLE)]
    #[case::no_template(ecr::Error::NoCreationTemplate { repository: "team/api".into(), region: "us-east-1".into() }.into(), 1, "No repository creation template")]
    #[case::setting_refused(ecr::Error::SettingRefused { input: "repository-policy", repository: "team/api".into(), message: "invalid principal".into() }.into(), 1, "ECR refused repository-policy")]
    #[case::export_platform(image_export::Error::PlatformMismatch(mismatch()).into(), 1, "Wrong platform for linux/arm64")]
    #[case::export_io(image_export::Error::Io { what: "reading".into(), source: io() }.into(), 2, GENERIC_TITLE)]
    #[case::export_malformed(image_export::Error::Malformed { platform: platform(), reason: "missing".into() }.into(), 2, GENERIC_TITLE)]
    #[case::registry_platform(registry::Error::PlatformMismatch(mismatch()).into(), 1, "Wrong platform for linux/arm64")]
    #[case::registry_denied(status(403, Some("DENIED")).into(), 1, "Registry denied access")]
    #[case::registry_unauthorized(status(401, None).into(), 1, "Registry denied access")]
    #[case::registry_tag_invalid(status(400, Some("TAG_INVALID")).into(), 1, "Tag is immutable")]
    #[case::registry_status(status(503, None).into(), 2, GENERIC_TITLE)]
    #[case::registry_transport(registry::Error::Transport { operation: "pushing".into(), registry: "r".into(), attempts: 3, source: reqwest_error() }.into(), 2, GENERIC_TITLE)]
    #[case::registry_io(registry::Error::Io { what: "opening".into(), source: io() }.into(), 2, GENERIC_TITLE)]
    #[case::registry_malformed(registry::Error::Malformed { what: "manifest".into(), reason: "not JSON".into() }.into(), 2, GENERIC_TITLE)]
    #[case::not_in_repository(registry::Error::NotInRepository { what: "the image".into(), repository: "r/x".into() }.into(), 1, "Image not in the repository")]
    #[case::several_images(registry::Error::SeveralImages { digest: "sha256:x".into(), count: 2 }.into(), 1, "Not one platform's image")]
    #[case::platform_mismatch(mismatch().into(), 1, "Wrong platform for linux/arm64")]
    #[case::immutable_tag(plan::ImmutableTag { tag: "v1".into(), held: "a".into(), wanted: "b".into(), repository: "r".into(), mutability: "IMMUTABLE".into() }.into(), 1, "Tag v1 is immutable")]
    #[case::unknown(anyhow::anyhow!("something else"), 2, GENERIC_TITLE)]
    fn each_error_kind_has_its_exit_code(
        #[case] error: anyhow::Error,
        #[case] code: u8,
        #[case] title: &str,
    ) {
        // The run wraps errors in context: the kind still decides.
        let wrapped = error
            .context("preparing the `linux/arm64` image for the registry")
            .context("nothing was pushed");
        let (status, found_title, _) = classify_chain(&wrapped);
        assert_eq!((status.code(), found_title.as_str()), (code, title));
    }

    #[test]
    fn a_build_failure_points_at_its_dockerfile_line() {
        let error = anyhow::Error::new(engine::Error::BuildFailed {
            platform: platform(),
            step: Some("[2/3] RUN false".into()),
            dockerfile_line: Some(7),
            message: "exit 1".into(),
            last_lines: vec![],
        });
        assert_eq!(classify_chain(&error).2, Some(7));
        assert_eq!(
            dockerfile_name(Path::new("./app/Dockerfile")),
            "app/Dockerfile"
        );
    }
}
