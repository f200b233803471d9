//! Every input of the action, read once: CLI flags win over `INPUT_<NAME>` variables (the
//! runner upper-cases names and keeps hyphens: `INPUT_AWS-REGION`), an empty value means
//! "not given", and all validation happens here, before anything is created, built or pushed.
//!
//! This is the only module that reads configuration from the environment. Its only other I/O
//! is checking that the context folder, the Dockerfile, `merge`'s folders and the TLS files
//! exist (and that `.dockerignore` keeps a TLS key in the context out of it), reading the
//! runner's event payload for the time the source was made, and reading the Dockerfile's stage
//! names when `target` is given.
//!
//! Each grammar has its own file: `args` (clap and the input names), `build`, `platforms`,
//! `tags`, `repository`, `repository_settings`, `references` (`cache-from`), `merge`, `runner`
//! (runner files and `results-folder`), `engines` (and TLS), `git`, `gate`, and `mode`
//! (`platform-only` or `merge`). Each reads its group of inputs into its own typed part; this
//! file holds the `Request` and the `TryFrom` that assembles it from the parts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::ecr::RepositorySettings;
use crate::engine::{DockerTls, NetworkMode, PlatformEngine};
use crate::platform::Platform;
use crate::secret::Secret;
use crate::tag_rules;

use build::{BuildFiles, BuildPart};
use engines::EngineAccess;
use gate::vulnerability_gate;
use mode::mode;
use platforms::platforms;
use repository::{repository, Destination, NewRepository};
use tags::{rules, Tagging};

mod args;
mod build;
mod engines;
mod gate;
mod git;
mod merge;
mod mode;
mod platforms;
mod references;
mod repository;
mod repository_settings;
mod runner;
mod tags;

pub use crate::tag_mutability::TagMutability;
pub use args::{names, not_utf8, on_github_runner, Args};
pub use build::MAX_ARGS_AND_LABELS_BYTES;
pub use git::GitContext;
pub use merge::MergeSource;
pub use mode::Mode;
pub use repository_settings::FIPS_REGIONS;
pub use runner::Runner;

/// The image that registers QEMU user-mode emulators in the host kernel, as
/// docker/setup-qemu-action runs it; pinned to the release known not to crash on Ubuntu 24.04
/// runners (tonistiigi/binfmt#240). `ECR_MULTIARCH_BINFMT_IMAGE` overrides it.
pub const DEFAULT_BINFMT_IMAGE: &str = "docker.io/tonistiigi/binfmt:qemu-v7.0.0-28";

/// A refused input: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid input `{input}`: {message}")]
pub struct InputError {
    /// The input's name as in `action.yml`.
    pub input: &'static str,
    /// What is wrong and the accepted form.
    pub message: String,
}

impl InputError {
    /// Always the user's to fix.
    #[must_use]
    pub fn exit_status(&self) -> crate::exit_status::ExitStatus {
        crate::exit_status::ExitStatus::User
    }

    fn new(input: &'static str, message: impl Into<String>) -> Self {
        InputError {
            input,
            message: message.into(),
        }
    }
}

/// The validated request: the only form of the inputs that travels further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// ECR repository name.
    pub repository: String,
    /// Build context folder.
    pub context: PathBuf,
    /// Dockerfile path (exists; may be outside the context).
    pub dockerfile: PathBuf,
    /// Platforms, in the order given, no duplicates.
    pub platforms: Vec<Platform>,
    /// The tags of `tags` and `tag-rules`, evaluated for the run's git ref; only
    /// `latest=auto` is left to decide against the repository.
    pub tag_evaluation: tag_rules::Evaluation,
    /// The run's git ref, for the tag rules and the OCI labels.
    pub git: GitContext,
    /// Token for the GitHub API (a secret: never printed).
    pub github_token: Option<Secret>,
    /// Build arguments.
    pub build_args: BTreeMap<String, String>,
    /// Build stage.
    pub target: Option<String>,
    /// Labels for every image.
    pub labels: BTreeMap<String, String>,
    /// Network mode for `RUN` steps; `None` is the daemon default.
    pub network: Option<NetworkMode>,
    /// Build without cache.
    pub no_cache: bool,
    /// Put BuildKit's inline cache in every image and import the cache of the image the
    /// repository holds under the first tag.
    pub repository_cache: bool,
    /// More image references to import build cache from (`cache-from`).
    pub cache_from: Vec<String>,
    /// Build nothing when the image under the first tag records this run's build digest.
    pub skip_unchanged: bool,
    /// Region of the registry.
    pub aws_region: String,
    /// Account id of the registry.
    pub registry_id: Option<String>,
    /// Registry host override.
    pub registry: Option<String>,
    /// Create the repository when missing.
    pub create_repository: bool,
    /// Tag mutability (with its exclusion filters) for a created repository.
    pub image_tag_mutability: TagMutability,
    /// Scan on push for a created repository.
    pub scan_on_push: bool,
    /// Tag each platform image `<first tag>-<arch>`.
    pub arch_tags: bool,
    /// Where to report.
    pub runner: Runner,
    /// The image that registers QEMU emulators (`ECR_MULTIARCH_BINFMT_IMAGE`, else
    /// tonistiigi/binfmt); `none` skips the registration.
    pub binfmt_image: String,
    /// The Docker Engine's address (`DOCKER_HOST`); `None`: the default socket.
    pub docker_host: Option<String>,
    /// What the run does: build, build one part (`platform-only`), or join parts (`merge`).
    pub mode: Mode,
    /// `engines`: the Docker Engine of some platforms; the others build on `docker_host`.
    pub engines: Vec<PlatformEngine>,
    /// TLS for `tcp://` Engines, when `DOCKER_TLS_VERIFY` is set.
    pub docker_tls: Option<DockerTls>,
    /// Keep each build's image in the Engine under its temporary name
    /// (`ECR_MULTIARCH_KEEP_IMAGES`); by default it is removed once exported.
    pub keep_images: bool,
    /// Break the BuildKit session's connection after this many bytes
    /// (`ECR_MULTIARCH_SESSION_BREAK_AFTER`, for tests); `None`: never.
    pub session_break_after: Option<u64>,
    /// Encryption, policies, `update-repository`, `endpoint` (issue 18).
    pub repository_settings: RepositorySettings,
    /// The vulnerability gate; `None` when `vulnerability-gate` is `none`.
    pub vulnerability_gate: Option<crate::gate::Policy>,
}

/// An input's value, or `None` when it was not given or given empty (the runner passes `""`
/// for every input a workflow leaves out).
fn given(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// Splits a comma- or newline-separated list, dropping empty items.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([',', '\n'])
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Booleans as the Actions toolkit's `getBooleanInput` reads them.
fn boolean(input: &'static str, value: Option<&String>, default: bool) -> Result<bool, InputError> {
    match given(value) {
        None => Ok(default),
        Some("true" | "True" | "TRUE") => Ok(true),
        Some("false" | "False" | "FALSE") => Ok(false),
        Some(other) => Err(InputError::new(
            input,
            format!("`{other}` is not a boolean: use `true` or `false`"),
        )),
    }
}

impl TryFrom<Args> for Request {
    type Error = InputError;

    /// Each group of inputs is read by its own grammar; cheap, pure checks first, file-system
    /// checks last.
    fn try_from(args: Args) -> Result<Self, Self::Error> {
        let repository = repository(args.repository.as_ref())?;
        let platforms = platforms(args.platforms.as_ref())?;
        let tag_rules = rules(args.tag_rules.as_ref())?;
        let build = BuildPart::parse(&args)?;
        let destination = Destination::parse(&args, repository)?;
        // Issue 10: a platform-only run pushes no tag; a merge run builds nothing.
        let platform_only = boolean(names::PLATFORM_ONLY, args.platform_only.as_ref(), false)?;
        let host = destination.tag_host();
        let tagging = Tagging::parse(&args, &tag_rules, &host, &platforms, platform_only)?;
        let new_repository = NewRepository::parse(&args)?;
        let mode = mode(&args, platform_only, build.skip_unchanged, &host)?;
        let files = BuildFiles::check(&args, build.target.as_deref(), &mode)?;
        let engine = EngineAccess::parse(&args, &platforms, &files.context, &mode)?;
        let repository_settings = repository_settings::parse(&args, &destination.aws_region)?;
        Ok(Request {
            repository: destination.repository,
            context: files.context,
            dockerfile: files.dockerfile,
            platforms,
            tag_evaluation: tagging.tag_evaluation,
            git: tagging.git,
            github_token: given(args.github_token.as_ref()).map(Secret::new),
            build_args: build.build_args,
            target: build.target,
            labels: build.labels,
            network: build.network,
            no_cache: build.no_cache,
            repository_cache: build.repository_cache,
            cache_from: build.cache_from,
            skip_unchanged: build.skip_unchanged,
            aws_region: destination.aws_region,
            registry_id: destination.registry_id,
            registry: destination.registry,
            create_repository: new_repository.create_repository,
            image_tag_mutability: new_repository.image_tag_mutability,
            scan_on_push: new_repository.scan_on_push,
            arch_tags: tagging.arch_tags,
            runner: Runner::parse(&args),
            binfmt_image: engine.binfmt_image,
            docker_host: engine.docker_host,
            mode,
            engines: engine.engines,
            docker_tls: engine.docker_tls,
            keep_images: engine.keep_images,
            session_break_after: engine.session_break_after,
            repository_settings,
            vulnerability_gate: vulnerability_gate(&args)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    pub(super) fn args() -> Args {
        Args {
            repository: Some("team/api".into()),
            context: Some(env!("CARGO_MANIFEST_DIR").to_owned() + "/examples/hello"),
            aws_region: Some("us-east-1".into()),
            ..Args::default()
        }
    }

    pub(super) fn tag_names(request: &Request) -> Vec<&str> {
        request
            .tag_evaluation
            .tags
            .iter()
            .map(|t| t.tag.as_str())
            .collect()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let request = Request::try_from(args()).expect("valid");
        assert_eq!(tag_names(&request), vec!["latest"]);
        assert_eq!(
            request
                .platforms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec!["linux/amd64", "linux/arm64"]
        );
        assert!(request.create_repository && request.scan_on_push);
        assert!(!request.arch_tags, "arch tags are opt-in");
        assert!(!request.no_cache);
        assert_eq!(request.image_tag_mutability, TagMutability::Mutable);
        assert!(request.dockerfile.ends_with("examples/hello/Dockerfile"));
    }

    #[test]
    fn empty_strings_mean_not_given() {
        let request = Request::try_from(Args {
            tags: Some(String::new()),
            platforms: Some("  ".into()),
            network: Some(String::new()),
            arch_tags: Some(String::new()),
            ..args()
        })
        .expect("valid");
        assert_eq!(tag_names(&request), vec!["latest"]);
        assert_eq!(request.platforms.len(), 2);
        assert_eq!(request.network, None);
    }

    #[test]
    fn lists_split_on_commas_and_newlines() {
        let request = Request::try_from(Args {
            tags: Some("v1, stable\nedge\n".into()),
            build_args: Some("A=1\nB=x=y\n\nC=".into()),
            ..args()
        })
        .expect("valid");
        assert_eq!(tag_names(&request), vec!["v1", "stable", "edge"]);
        assert_eq!(request.build_args["B"], "x=y");
        assert_eq!(request.build_args["C"], "");
    }

    #[rstest]
    #[case::missing_repository(Args { repository: None, ..args() }, "repository")]
    #[case::uppercase_repository(Args { repository: Some("Team/API".into()), ..args() }, "repository")]
    #[case::registry_in_repository(Args { repository: Some("1.dkr.ecr.us-east-1.amazonaws.com/x".into()), ..args() }, "repository")]
    #[case::double_separator(Args { repository: Some("team//api".into()), ..args() }, "repository")]
    #[case::bad_platform(Args { platforms: Some("linux".into()), ..args() }, "platforms")]
    #[case::duplicate_platform(Args { platforms: Some("linux/arm64,linux/arm64/v8".into()), ..args() }, "platforms")]
    #[case::unknown_architecture(Args { platforms: Some("linux/amd64,linux/sparc99x".into()), ..args() }, "platforms")]
    #[case::unknown_variant(Args { platforms: Some("linux/arm64/v7".into()), ..args() }, "platforms")]
    #[case::not_linux(Args { platforms: Some("windows/amd64".into()), ..args() }, "platforms")]
    #[case::bad_tag(Args { tags: Some("-latest".into()), ..args() }, "tags")]
    #[case::long_tag(Args { tags: Some("a".repeat(129)), ..args() }, "tags")]
    #[case::duplicate_tag(Args { tags: Some("a,a".into()), ..args() }, "tags")]
    #[case::arch_tag_too_long(Args { tags: Some("a".repeat(125)), arch_tags: Some("true".into()), ..args() }, "tags")]
    #[case::build_arg_without_equals(Args { build_args: Some("NOPE".into()), ..args() }, "build-args")]
    #[case::label_without_key(Args { labels: Some("=x".into()), ..args() }, "labels")]
    #[case::bad_target(Args { target: Some("1stage".into()), ..args() }, "target")]
    #[case::bad_network(Args { network: Some("bridge0".into()), ..args() }, "network")]
    #[case::bad_boolean(Args { no_cache: Some("yes".into()), ..args() }, "no-cache")]
    #[case::bad_repository_cache(Args { repository_cache: Some("off".into()), ..args() }, "repository-cache")]
    #[case::bad_skip_unchanged(Args { skip_unchanged: Some("1".into()), ..args() }, "skip-unchanged")]
    #[case::skip_unchanged_with_no_cache(Args { skip_unchanged: Some("true".into()), no_cache: Some("true".into()), ..args() }, "skip-unchanged")]
    #[case::cache_from_not_a_reference(Args { cache_from: Some("Team/API:x".into()), ..args() }, "cache-from")]
    #[case::cache_from_local(Args { cache_from: Some("type=local,src=/tmp/cache".into()), ..args() }, "cache-from")]
    #[case::cache_from_gha(Args { cache_from: Some("type=gha".into()), ..args() }, "cache-from")]
    #[case::cache_from_registry_without_ref(Args { cache_from: Some("type=registry,mode=max".into()), ..args() }, "cache-from")]
    #[case::cache_from_short_digest(Args { cache_from: Some("team/api@sha256:abc".into()), ..args() }, "cache-from")]
    #[case::no_region(Args { aws_region: None, ..args() }, "aws-region")]
    #[case::bad_region(Args { aws_region: Some("useast1".into()), ..args() }, "aws-region")]
    #[case::bad_registry_id(Args { registry_id: Some("1234".into()), ..args() }, "registry-id")]
    #[case::registry_with_scheme(Args { registry: Some("https://x.example".into()), ..args() }, "registry")]
    #[case::bad_mutability(Args { image_tag_mutability: Some("mutable".into()), ..args() }, "image-tag-mutability")]
    #[case::exclusion_mode_without_filters(Args { image_tag_mutability: Some("IMMUTABLE_WITH_EXCLUSION".into()), ..args() }, "image-tag-mutability-exclusion-filters")]
    #[case::filters_with_plain_mode(Args { image_tag_mutability: Some("IMMUTABLE".into()), image_tag_mutability_exclusion_filters: Some("latest".into()), ..args() }, "image-tag-mutability-exclusion-filters")]
    #[case::filter_not_a_wildcard(Args { image_tag_mutability: Some("MUTABLE_WITH_EXCLUSION".into()), image_tag_mutability_exclusion_filters: Some("v[0-9]+".into()), ..args() }, "image-tag-mutability-exclusion-filters")]
    #[case::bad_mode_with_bad_filters(Args { image_tag_mutability: Some("IMMUTABLE_WITH_EXCLUSIONS".into()), image_tag_mutability_exclusion_filters: Some("v[0-9]+".into()), ..args() }, "image-tag-mutability")]
    #[case::too_many_filters(Args { image_tag_mutability: Some("MUTABLE_WITH_EXCLUSION".into()), image_tag_mutability_exclusion_filters: Some("a,b,c,d,e,f".into()), ..args() }, "image-tag-mutability-exclusion-filters")]
    #[case::missing_context(Args { context: Some("/nonexistent".into()), ..args() }, "context")]
    #[case::missing_file(Args { file: Some("/nonexistent/Dockerfile".into()), ..args() }, "file")]
    #[case::platform_only_yes(Args { platform_only: Some("yes".into()), ..args() }, "platform-only")]
    #[case::arch_tags_in_platform_only(Args { platform_only: Some("true".into()), arch_tags: Some("true".into()), ..args() }, "arch-tags")]
    #[case::skip_unchanged_in_platform_only(Args { platform_only: Some("true".into()), skip_unchanged: Some("true".into()), ..args() }, "skip-unchanged")]
    #[case::merge_and_platform_only(Args { platform_only: Some("true".into()), merge: Some("sha256:".to_owned() + &"a".repeat(64)), ..args() }, "merge")]
    #[case::merge_missing_folder(Args { merge: Some("/nonexistent/results".into()), ..args() }, "merge")]
    #[case::merge_short_digest(Args { merge: Some("team/api@sha256:abc".into()), ..args() }, "merge")]
    #[case::merge_other_repository(Args { merge: Some("team/web@sha256:".to_owned() + &"a".repeat(64)), ..args() }, "merge")]
    #[case::merge_twice(Args { merge: Some(format!("sha256:{0},sha256:{0}", "a".repeat(64))), ..args() }, "merge")]
    #[case::engine_without_address(Args { engines: Some("linux/arm64".into()), ..args() }, "engines")]
    #[case::engine_unknown_platform(Args { engines: Some("linux/sparc99x=tcp://b:2376".into()), ..args() }, "engines")]
    #[case::engine_platform_not_built(Args { engines: Some("linux/s390x=tcp://b:2376".into()), ..args() }, "engines")]
    #[case::engine_bad_scheme(Args { engines: Some("linux/arm64=builder:2376".into()), ..args() }, "engines")]
    #[case::engine_ssh(Args { engines: Some("linux/arm64=ssh://me@builder".into()), ..args() }, "engines")]
    #[case::engine_relative_socket(Args { engines: Some("linux/arm64=unix://docker.sock".into()), ..args() }, "engines")]
    #[case::engine_bad_port(Args { engines: Some("linux/arm64=tcp://builder:99999".into()), ..args() }, "engines")]
    #[case::engine_twice(Args { engines: Some("linux/arm64=tcp://a:1\nlinux/arm64/v8=tcp://b:1".into()), ..args() }, "engines")]
    #[case::results_folder_outside_the_mounts(Args { platform_only: Some("true".into()), results_folder: Some("/home/runner/work/_temp/digests".into()), env_github_workspace: Some("/github/workspace".into()), ..args() }, "results-folder")]
    #[case::results_folder_above_the_workspace(Args { platform_only: Some("true".into()), results_folder: Some("../results".into()), env_github_workspace: Some("/github/workspace".into()), ..args() }, "results-folder")]
    #[case::results_folder_out_through_the_workspace(Args { platform_only: Some("true".into()), results_folder: Some("/github/workspace/../results".into()), env_github_workspace: Some("/github/workspace".into()), ..args() }, "results-folder")]
    fn refuses_bad_input_naming_it(#[case] args: Args, #[case] input: &str) {
        let error = Request::try_from(args).expect_err("invalid");
        assert_eq!(error.input, input, "{error}");
    }

    #[test]
    fn a_long_first_tag_is_fine_without_arch_tags() {
        let request = Request::try_from(Args {
            tags: Some("a".repeat(128)),
            ..args()
        })
        .expect("valid: no per-platform tag is made");
        assert_eq!(tag_names(&request), vec!["a".repeat(128)]);
    }

    #[test]
    fn the_cache_is_on_and_skipping_off_by_default() {
        let request = Request::try_from(args()).expect("valid");
        assert!(request.repository_cache);
        assert!(!request.skip_unchanged);
        assert!(request.cache_from.is_empty());
    }

    #[test]
    fn a_platform_only_run_needs_no_tag() {
        let request = Request::try_from(Args {
            platform_only: Some("true".into()),
            tag_rules: Some("semver".into()),
            ..args()
        })
        .expect("valid: nothing is tagged");
        assert_eq!(
            request.mode,
            Mode::PlatformOnly {
                results_folder: PathBuf::from(crate::handoff::DEFAULT_FOLDER)
            }
        );
    }
}
