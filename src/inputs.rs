//! Every input of the action, read once: CLI flags win over `INPUT_<NAME>` variables (the
//! runner upper-cases names and keeps hyphens: `INPUT_AWS-REGION`), an empty value means
//! "not given", and all validation happens here, before anything is created, built or pushed.
//!
//! This is the only module that reads configuration from the environment. Its only other I/O
//! is checking that the context folder and the Dockerfile exist, and reading the runner's
//! event payload for the time the source was made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::platform::Platform;
use crate::tag_mutability::{TagFilter, MAX_EXCLUSION_FILTERS};
use crate::tag_rules::{self, GitRef, TagRule};

pub use crate::tag_mutability::TagMutability;

/// The names of every input, exactly as `action.yml` declares them.
pub mod names {
    /// ECR repository name.
    pub const REPOSITORY: &str = "repository";
    /// Build context folder.
    pub const CONTEXT: &str = "context";
    /// Dockerfile path.
    pub const FILE: &str = "file";
    /// Platforms to build.
    pub const PLATFORMS: &str = "platforms";
    /// Tags for the index.
    pub const TAGS: &str = "tags";
    /// Rules that derive tags from the git ref.
    pub const TAG_RULES: &str = "tag-rules";
    /// Build arguments.
    pub const BUILD_ARGS: &str = "build-args";
    /// Build stage.
    pub const TARGET: &str = "target";
    /// Image labels.
    pub const LABELS: &str = "labels";
    /// Network mode for `RUN` steps.
    pub const NETWORK: &str = "network";
    /// Build without cache.
    pub const NO_CACHE: &str = "no-cache";
    /// Inline cache in every image, imported from the repository's own image.
    pub const REPOSITORY_CACHE: &str = "repository-cache";
    /// More images to import build cache from.
    pub const CACHE_FROM: &str = "cache-from";
    /// Build nothing when the repository already holds an image of the same inputs.
    pub const SKIP_UNCHANGED: &str = "skip-unchanged";
    /// Region of the registry.
    pub const AWS_REGION: &str = "aws-region";
    /// Account id of the registry.
    pub const REGISTRY_ID: &str = "registry-id";
    /// Registry host override.
    pub const REGISTRY: &str = "registry";
    /// Create the repository when missing.
    pub const CREATE_REPOSITORY: &str = "create-repository";
    /// Tag mutability for a created repository.
    pub const IMAGE_TAG_MUTABILITY: &str = "image-tag-mutability";
    /// Wildcard filters of the `*_WITH_EXCLUSION` tag mutability modes.
    pub const IMAGE_TAG_MUTABILITY_EXCLUSION_FILTERS: &str =
        "image-tag-mutability-exclusion-filters";
    /// Scan on push for a created repository.
    pub const SCAN_ON_PUSH: &str = "scan-on-push";
    /// Per-platform tags.
    pub const ARCH_TAGS: &str = "arch-tags";
    /// Token for the GitHub API.
    pub const GITHUB_TOKEN: &str = "github-token";

    /// Every input, in `action.yml` order.
    pub const ALL: &[&str] = &[
        REPOSITORY,
        CONTEXT,
        FILE,
        PLATFORMS,
        TAGS,
        TAG_RULES,
        BUILD_ARGS,
        TARGET,
        LABELS,
        NETWORK,
        NO_CACHE,
        REPOSITORY_CACHE,
        CACHE_FROM,
        SKIP_UNCHANGED,
        AWS_REGION,
        REGISTRY_ID,
        REGISTRY,
        CREATE_REPOSITORY,
        IMAGE_TAG_MUTABILITY,
        IMAGE_TAG_MUTABILITY_EXCLUSION_FILTERS,
        SCAN_ON_PUSH,
        ARCH_TAGS,
        GITHUB_TOKEN,
    ];
}

/// Build a container image for several platforms and publish it to Amazon ECR as one
/// multi-arch image. Every flag can also be given as the `INPUT_<NAME>` variable a GitHub
/// runner sets; a flag wins over its variable, and an empty value counts as not given.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "ecr-multiarch", version, about, long_about = None)]
pub struct Args {
    /// ECR repository name, e.g. `team/api` (created if missing)
    #[arg(long, env = "INPUT_REPOSITORY")]
    pub repository: Option<String>,
    /// Build context folder [default: .]
    #[arg(long, env = "INPUT_CONTEXT")]
    pub context: Option<String>,
    /// Dockerfile path [default: Dockerfile in the context]
    #[arg(long, env = "INPUT_FILE")]
    pub file: Option<String>,
    /// Platforms, comma- or newline-separated `linux/<arch>[/<variant>]`, `<arch>` a Go `GOARCH`
    /// such as `amd64`, `arm64`, `arm`, `riscv64` [default: linux/amd64,linux/arm64]
    #[arg(long, env = "INPUT_PLATFORMS")]
    pub platforms: Option<String>,
    /// Tags, comma- or newline-separated, or full references `<registry>/<repository>:<tag>`;
    /// the index is pushed under each [default: latest, unless `tag-rules` is given]
    #[arg(long, env = "INPUT_TAGS")]
    pub tags: Option<String>,
    /// Tag rules, newline-separated: `latest`, `latest=auto`, `raw=<tag>`, `commit`,
    /// `commit-short`, `branch`, `semver`
    #[arg(long = "tag-rules", env = "INPUT_TAG-RULES")]
    pub tag_rules: Option<String>,
    /// Build arguments, newline-separated `KEY=VALUE`
    #[arg(long = "build-args", env = "INPUT_BUILD-ARGS")]
    pub build_args: Option<String>,
    /// Build stage to stop at
    #[arg(long, env = "INPUT_TARGET")]
    pub target: Option<String>,
    /// Labels added to every image, newline-separated `KEY=VALUE`
    #[arg(long, env = "INPUT_LABELS")]
    pub labels: Option<String>,
    /// Network mode for `RUN` steps: `default`, `host` or `none`
    #[arg(long, env = "INPUT_NETWORK")]
    pub network: Option<String>,
    /// Build without cache: `true` or `false` [default: false]
    #[arg(long = "no-cache", env = "INPUT_NO-CACHE")]
    pub no_cache: Option<String>,
    /// Put BuildKit's inline cache in every image and import it from the image the repository
    /// holds under the first tag: `true` or `false` [default: true]
    #[arg(long = "repository-cache", env = "INPUT_REPOSITORY-CACHE")]
    pub repository_cache: Option<String>,
    /// More images to import build cache from, comma- or newline-separated references such as
    /// `<registry>/<repository>:builder-cache` (built with inline cache)
    #[arg(long = "cache-from", env = "INPUT_CACHE-FROM")]
    pub cache_from: Option<String>,
    /// Build nothing when the image under the first tag was built from the same inputs (context,
    /// Dockerfile, build args, target, labels, platforms, base images): `true` or `false`
    /// [default: false]
    #[arg(long = "skip-unchanged", env = "INPUT_SKIP-UNCHANGED")]
    pub skip_unchanged: Option<String>,
    /// Region of the registry [default: `AWS_REGION`, then `AWS_DEFAULT_REGION`]
    #[arg(long = "aws-region", env = "INPUT_AWS-REGION")]
    pub aws_region: Option<String>,
    /// Account id of the registry, for cross-account pushes [default: the caller's account]
    #[arg(long = "registry-id", env = "INPUT_REGISTRY-ID")]
    pub registry_id: Option<String>,
    /// Registry `host[:port]` to push to; loopback hosts use plain HTTP [default: ECR's proxy endpoint]
    #[arg(long, env = "INPUT_REGISTRY")]
    pub registry: Option<String>,
    /// Create the repository when missing: `true` or `false` [default: true]
    #[arg(long = "create-repository", env = "INPUT_CREATE-REPOSITORY")]
    pub create_repository: Option<String>,
    /// Tag mutability of a created repository: `MUTABLE`, `IMMUTABLE`,
    /// `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION` [default: MUTABLE]
    #[arg(long = "image-tag-mutability", env = "INPUT_IMAGE-TAG-MUTABILITY")]
    pub image_tag_mutability: Option<String>,
    /// Tags the `*_WITH_EXCLUSION` modes except, comma- or newline-separated ECR wildcard
    /// filters (`*` matches any run of characters), 1 to 5, e.g. `latest,dev-*`
    #[arg(
        long = "image-tag-mutability-exclusion-filters",
        env = "INPUT_IMAGE-TAG-MUTABILITY-EXCLUSION-FILTERS"
    )]
    pub image_tag_mutability_exclusion_filters: Option<String>,
    /// Scan on push for a created repository: `true` or `false` [default: true]
    #[arg(long = "scan-on-push", env = "INPUT_SCAN-ON-PUSH")]
    pub scan_on_push: Option<String>,
    /// Also tag each platform image `<first tag>-<arch>`: `true` or `false` [default: false]
    #[arg(long = "arch-tags", env = "INPUT_ARCH-TAGS")]
    pub arch_tags: Option<String>,
    /// Token for the GitHub API: a commit status and release notes; empty skips them
    #[arg(
        long = "github-token",
        env = "INPUT_GITHUB-TOKEN",
        hide_env_values = true
    )]
    pub github_token: Option<String>,

    /// Region fallback, as the AWS CLI reads it.
    #[arg(long, env = "AWS_REGION", hide = true)]
    pub env_aws_region: Option<String>,
    /// Second region fallback.
    #[arg(long, env = "AWS_DEFAULT_REGION", hide = true)]
    pub env_aws_default_region: Option<String>,
    /// Set to `true` by GitHub runners: workflow commands go to stdout.
    #[arg(long, env = "GITHUB_ACTIONS", hide = true)]
    pub env_github_actions: Option<String>,
    /// The runner's outputs file.
    #[arg(long, env = "GITHUB_OUTPUT", hide = true)]
    pub env_github_output: Option<String>,
    /// The runner's job summary file.
    #[arg(long, env = "GITHUB_STEP_SUMMARY", hide = true)]
    pub env_github_step_summary: Option<String>,
    /// The git ref of the run, e.g. `refs/tags/v1.4.2`.
    #[arg(long, env = "GITHUB_REF", hide = true)]
    pub env_github_ref: Option<String>,
    /// The short ref name, e.g. `v1.4.2`.
    #[arg(long, env = "GITHUB_REF_NAME", hide = true)]
    pub env_github_ref_name: Option<String>,
    /// `branch` or `tag`.
    #[arg(long, env = "GITHUB_REF_TYPE", hide = true)]
    pub env_github_ref_type: Option<String>,
    /// The commit of the run.
    #[arg(long, env = "GITHUB_SHA", hide = true)]
    pub env_github_sha: Option<String>,
    /// The event that started the run, e.g. `push`, `release`.
    #[arg(long, env = "GITHUB_EVENT_NAME", hide = true)]
    pub env_github_event_name: Option<String>,
    /// The event payload file.
    #[arg(long, env = "GITHUB_EVENT_PATH", hide = true)]
    pub env_github_event_path: Option<String>,
    /// `owner/name` of the repository the workflow runs in.
    #[arg(long, env = "GITHUB_REPOSITORY", hide = true)]
    pub env_github_repository: Option<String>,
    /// e.g. `https://github.com`.
    #[arg(long, env = "GITHUB_SERVER_URL", hide = true)]
    pub env_github_server_url: Option<String>,
    /// e.g. `https://api.github.com`; a local fake in tests.
    #[arg(long, env = "GITHUB_API_URL", hide = true)]
    pub env_github_api_url: Option<String>,
    /// The image that registers QEMU emulators for foreign platforms.
    #[arg(long, env = "ECR_MULTIARCH_BINFMT_IMAGE", hide = true)]
    pub env_binfmt_image: Option<String>,
    /// Reproducible builds' timestamp, seconds since the epoch.
    #[arg(long, env = "SOURCE_DATE_EPOCH", hide = true)]
    pub env_source_date_epoch: Option<String>,
    /// The Docker Engine to build with, as the docker CLI reads it.
    #[arg(long, env = "DOCKER_HOST", hide = true)]
    pub env_docker_host: Option<String>,
}

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
    fn new(input: &'static str, message: impl Into<String>) -> Self {
        InputError {
            input,
            message: message.into(),
        }
    }
}

/// Network mode for `RUN` steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// The daemon's default network.
    Default,
    /// The host's network.
    Host,
    /// No network.
    None,
}

impl NetworkMode {
    /// The name the Engine API expects.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Default => "default",
            NetworkMode::Host => "host",
            NetworkMode::None => "none",
        }
    }
}

/// Where the run reports to: a GitHub runner, or a terminal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runner {
    /// Running inside GitHub Actions (`GITHUB_ACTIONS=true`).
    pub github_actions: bool,
    /// `$GITHUB_OUTPUT`, when set.
    pub output_file: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`, when set.
    pub summary_file: Option<PathBuf>,
}

/// What the runner tells about the workflow run (all optional: other CI systems set what
/// they can).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitContext {
    /// The git ref and commit.
    pub git_ref: GitRef,
    /// `GITHUB_EVENT_NAME`.
    pub event_name: Option<String>,
    /// `GITHUB_REPOSITORY`, `owner/name`.
    pub repository: Option<String>,
    /// `GITHUB_SERVER_URL`.
    pub server_url: String,
    /// `GITHUB_API_URL`.
    pub api_url: String,
    /// When the source was made (RFC 3339): `SOURCE_DATE_EPOCH`, else the pushed commit's (or
    /// the release's) time from the event payload, else now. A fixed time keeps rebuilds of one
    /// commit identical, so a re-run pushes the same digest.
    pub created: String,
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
    pub github_token: Option<String>,
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

/// An image reference as the distribution spec and the docker CLI write it:
/// `[host[:port]/]path[:tag][@sha256:<hex>]`, path components lowercase letters and digits
/// joined by `.`, `_`, `__` or runs of `-`.
fn is_image_reference(reference: &str) -> bool {
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let hex_ok = digest.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        });
        if !hex_ok {
            return false;
        }
    }
    // A `:` after the last `/` starts the tag; one before it belongs to the host's port.
    let (name, tag) = match name_and_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (name_and_tag, None),
    };
    if tag.is_some_and(|tag| !is_tag(tag)) {
        return false;
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    if components.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.bytes().any(|b| b.is_ascii_uppercase()))
    {
        if registry(Some(&first.to_owned())).is_err() {
            return false;
        }
        components.remove(0);
    }
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && !c.contains("..")
            && !c.contains("___")
            && !c.contains("._")
            && !c.contains("_.")
    };
    !components.is_empty() && components.iter().all(|c| component_ok(c))
}

/// `cache-from`: image references, or build-push-action's `type=registry,ref=<reference>`
/// (the only cache source the Engine API's build takes: BuildKit imports registry images).
fn cache_from(value: Option<&String>) -> Result<Vec<String>, InputError> {
    let mut references: Vec<String> = Vec::new();
    // Commas separate items, except inside the `type=...,ref=...` form: split on newlines,
    // then on commas only where the line is not that form.
    for line in given(value).unwrap_or("").lines().map(str::trim) {
        let items: Vec<&str> = if line.starts_with("type=") {
            vec![line]
        } else {
            list(line).collect()
        };
        for item in items.into_iter().filter(|i| !i.is_empty()) {
            let reference = if item.starts_with("type=") {
                let attributes: BTreeMap<&str, &str> = item
                    .split(',')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .collect();
                match (attributes.get("type"), attributes.get("ref")) {
                    (Some(&"registry"), Some(reference)) => *reference,
                    (Some(&"registry"), None) => {
                        return Err(InputError::new(
                            names::CACHE_FROM,
                            format!("`{item}` names no image: give `type=registry,ref=<reference>` or the reference alone"),
                        ))
                    }
                    (kind, _) => {
                        return Err(InputError::new(
                            names::CACHE_FROM,
                            format!(
                                "`{item}`: cache type `{}` is not available: the Docker Engine's build imports cache from registry images only, so give image references (e.g. `<registry>/<repository>:builder-cache`)",
                                kind.unwrap_or(&"")
                            ),
                        ))
                    }
                }
            } else {
                item
            };
            if !is_image_reference(reference) {
                return Err(InputError::new(
                    names::CACHE_FROM,
                    format!("`{reference}` is not an image reference: use `[registry/]repository[:tag][@sha256:...]`, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:builder-cache`"),
                ));
            }
            if references.iter().any(|r| r == reference) {
                return Err(InputError::new(
                    names::CACHE_FROM,
                    format!("`{reference}` is listed twice"),
                ));
            }
            references.push(reference.to_owned());
        }
    }
    Ok(references)
}

/// ECR's repository name rule: lowercase path components separated by `/`, each made of
/// alphanumerics joined by single `.`, `_` or `-`; 2 to 256 characters.
fn repository(value: Option<&String>) -> Result<String, InputError> {
    let name = given(value).ok_or_else(|| {
        InputError::new(
            names::REPOSITORY,
            "a repository name is required, e.g. `team/api`",
        )
    })?;
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.split(['.', '_', '-']).all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    if let Some((host, rest)) = name
        .split_once('/')
        .filter(|(h, _)| h.contains(".dkr.ecr."))
    {
        return Err(InputError::new(
            names::REPOSITORY,
            format!("`{name}` is a repository URI: give the name only (`{rest}`); set `registry-id` for another account's `{host}`"),
        ));
    }
    if !(2..=256).contains(&name.len()) || !name.split('/').all(component_ok) {
        return Err(InputError::new(
            names::REPOSITORY,
            format!(
                "`{name}` is not an ECR repository name: use 2 to 256 lowercase letters, digits and \
                 single `.`, `_` or `-` between them, with `/` between path parts (e.g. `team/api`); \
                 give the name only, not the registry host"
            ),
        ));
    }
    Ok(name.to_owned())
}

/// The registry tag grammar (distribution spec): `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    tag.len() <= 128
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Where full references in `tags` may point: the `registry` input, or this region's ECR
/// (of `registry-id` when given).
struct TagHost<'a> {
    repository: &'a str,
    registry: Option<&'a str>,
    region: &'a str,
    registry_id: Option<&'a str>,
}

impl TagHost<'_> {
    fn accepts(&self, host: &str) -> bool {
        if let Some(registry) = self.registry {
            return host == registry;
        }
        let Some((account, rest)) = host.split_once('.') else {
            return false;
        };
        account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && self.registry_id.is_none_or(|id| id == account)
            && rest == format!("dkr.ecr.{}.amazonaws.com", self.region)
    }
}

/// The `tags` input: plain tags, or full references as docker/metadata-action gives them,
/// accepted when they name this repository.
fn tags(value: Option<&str>, host: &TagHost<'_>) -> Result<Vec<String>, InputError> {
    let mut tags: Vec<String> = Vec::new();
    for item in list(value.unwrap_or("")) {
        let tag = match item.rsplit_once(':') {
            Some((reference, tag)) if reference.contains('/') && !tag.contains('/') => {
                let (registry_host, path) = reference.split_once('/').unwrap_or((reference, ""));
                if path != host.repository || !host.accepts(registry_host) {
                    return Err(InputError::new(
                        names::TAGS,
                        format!(
                            "`{item}` names another repository: a full reference must be `<registry>/{}:<tag>` with this run's registry",
                            host.repository
                        ),
                    ));
                }
                tag
            }
            _ => item,
        };
        if !is_tag(tag) {
            return Err(InputError::new(
                names::TAGS,
                format!(
                    "`{tag}` is not a valid tag: use up to 128 letters, digits, `_`, `.` and `-`, \
                     not starting with `.` or `-`"
                ),
            ));
        }
        if tags.iter().any(|t| t == tag) {
            return Err(InputError::new(
                names::TAGS,
                format!("`{tag}` is listed twice"),
            ));
        }
        tags.push(tag.to_owned());
    }
    Ok(tags)
}

fn rules(value: Option<&String>) -> Result<Vec<TagRule>, InputError> {
    let mut rules = Vec::new();
    for line in given(value).unwrap_or("").lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        let rule: TagRule = line.parse().map_err(|e: tag_rules::TagRuleParseError| {
            InputError::new(names::TAG_RULES, e.to_string())
        })?;
        if let TagRule::Raw(tag) = &rule {
            if !is_tag(tag) {
                return Err(InputError::new(
                    names::TAG_RULES,
                    format!("`{line}`: `{tag}` is not a valid tag"),
                ));
            }
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// The time the source was made, as an RFC 3339 UTC timestamp (see [`GitContext::created`]).
fn created(args: &Args) -> String {
    let from_epoch = given(args.env_source_date_epoch.as_ref())
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0));
    // The runner's event payload: a push names its head commit's time, a release its own.
    let from_event = || {
        let path = given(args.env_github_event_path.as_ref())?;
        let payload: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let timestamp = payload["head_commit"]["timestamp"]
            .as_str()
            .or_else(|| payload["release"]["created_at"].as_str())?;
        chrono::DateTime::parse_from_rfc3339(timestamp)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    from_epoch
        .or_else(from_event)
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn git_context(args: &Args) -> GitContext {
    let owned = |v: Option<&String>| given(v).map(str::to_owned);
    GitContext {
        git_ref: GitRef {
            full: owned(args.env_github_ref.as_ref()),
            name: owned(args.env_github_ref_name.as_ref()),
            kind: owned(args.env_github_ref_type.as_ref()),
            sha: owned(args.env_github_sha.as_ref()),
        },
        event_name: owned(args.env_github_event_name.as_ref()),
        repository: owned(args.env_github_repository.as_ref()),
        server_url: owned(args.env_github_server_url.as_ref())
            .unwrap_or_else(|| "https://github.com".to_owned()),
        api_url: owned(args.env_github_api_url.as_ref())
            .unwrap_or_else(|| "https://api.github.com".to_owned()),
        created: created(args),
    }
}

fn platforms(value: Option<&String>) -> Result<Vec<Platform>, InputError> {
    let mut platforms: Vec<Platform> = Vec::new();
    for text in list(given(value).unwrap_or("linux/amd64,linux/arm64")) {
        let platform: Platform =
            text.parse()
                .map_err(|e: crate::platform::PlatformParseError| {
                    InputError::new(names::PLATFORMS, e.to_string())
                })?;
        if let Some(earlier) = platforms
            .iter()
            .find(|p| p.normalized() == platform.normalized())
        {
            return Err(InputError::new(
                names::PLATFORMS,
                format!("`{platform}` is listed twice (as `{earlier}` before)"),
            ));
        }
        platforms.push(platform);
    }
    if platforms.is_empty() {
        return Err(InputError::new(names::PLATFORMS, "no platform given"));
    }
    Ok(platforms)
}

/// Newline-separated `KEY=VALUE` pairs; the value may contain `=` and may be empty.
fn key_values(
    input: &'static str,
    value: Option<&String>,
) -> Result<BTreeMap<String, String>, InputError> {
    let mut pairs = BTreeMap::new();
    for line in given(value).unwrap_or("").lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        let Some((key, val)) = line.split_once('=') else {
            return Err(InputError::new(
                input,
                format!("`{line}` is not `KEY=VALUE`: give one pair per line"),
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(InputError::new(
                input,
                format!("`{line}` has no usable key: give `KEY=VALUE` with a key without spaces"),
            ));
        }
        if pairs.insert(key.to_owned(), val.to_owned()).is_some() {
            return Err(InputError::new(input, format!("`{key}` is given twice")));
        }
    }
    Ok(pairs)
}

fn target(value: Option<&String>) -> Result<Option<String>, InputError> {
    let Some(stage) = given(value) else {
        return Ok(None);
    };
    let ok = stage
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && stage
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(InputError::new(
            names::TARGET,
            format!("`{stage}` is not a stage name: use letters, digits, `_`, `.` and `-`, starting with a letter"),
        ));
    }
    Ok(Some(stage.to_owned()))
}

fn network(value: Option<&String>) -> Result<Option<NetworkMode>, InputError> {
    match given(value) {
        None => Ok(None),
        Some("default") => Ok(Some(NetworkMode::Default)),
        Some("host") => Ok(Some(NetworkMode::Host)),
        Some("none") => Ok(Some(NetworkMode::None)),
        Some(other) => Err(InputError::new(
            names::NETWORK,
            format!("`{other}` is not a network mode: use `default`, `host` or `none`"),
        )),
    }
}

/// An AWS region name such as `us-east-1`, `eu-central-2` or `us-gov-west-1`.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn aws_region(args: &Args) -> Result<String, InputError> {
    let region = given(args.aws_region.as_ref())
        .or_else(|| given(args.env_aws_region.as_ref()))
        .or_else(|| given(args.env_aws_default_region.as_ref()))
        .ok_or_else(|| {
            InputError::new(
                names::AWS_REGION,
                "no region given: set the `aws-region` input, or `AWS_REGION` (e.g. with aws-actions/configure-aws-credentials)",
            )
        })?;
    if !is_region(region) {
        return Err(InputError::new(
            names::AWS_REGION,
            format!("`{region}` is not an AWS region name, like `us-east-1`"),
        ));
    }
    Ok(region.to_owned())
}

fn registry_id(value: Option<&String>) -> Result<Option<String>, InputError> {
    let Some(id) = given(value) else {
        return Ok(None);
    };
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InputError::new(
            names::REGISTRY_ID,
            format!("`{id}` is not an AWS account id: use its 12 digits"),
        ));
    }
    Ok(Some(id.to_owned()))
}

/// `host[:port]`, no scheme and no path.
fn registry(value: Option<&String>) -> Result<Option<String>, InputError> {
    let Some(host) = given(value) else {
        return Ok(None);
    };
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => (name, Some(port)),
        _ => (host, None),
    };
    let name_ok = !name.is_empty()
        && (name.starts_with('[') && name.ends_with(']')
            || name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host.contains("://") || host.contains('/') || !name_ok || !port_ok {
        return Err(InputError::new(
            names::REGISTRY,
            format!("`{host}` is not a registry address: use `host` or `host:port`, without a scheme or path"),
        ));
    }
    Ok(Some(host.to_owned()))
}

/// `image-tag-mutability` with its exclusion filters, by ECR's rules (see
/// [`crate::tag_mutability`]): the `*_WITH_EXCLUSION` modes need 1 to 5 filters, the plain
/// modes take none.
fn tag_mutability(
    mode: Option<&String>,
    filters: Option<&String>,
) -> Result<TagMutability, InputError> {
    const FILTERS: &str = names::IMAGE_TAG_MUTABILITY_EXCLUSION_FILTERS;
    const MODES: &[&str] = &[
        "MUTABLE",
        "IMMUTABLE",
        "IMMUTABLE_WITH_EXCLUSION",
        "MUTABLE_WITH_EXCLUSION",
    ];
    // The mode first: filters are judged against it.
    let mode = given(mode).unwrap_or("MUTABLE");
    if !MODES.contains(&mode) {
        return Err(InputError::new(
            names::IMAGE_TAG_MUTABILITY,
            format!("`{mode}` is not a tag mutability: use `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION`"),
        ));
    }
    let mut parsed: Vec<TagFilter> = Vec::new();
    for item in list(given(filters).unwrap_or("")) {
        let filter: TagFilter =
            item.parse()
                .map_err(|e: crate::tag_mutability::TagFilterParseError| {
                    InputError::new(FILTERS, e.to_string())
                })?;
        if parsed.contains(&filter) {
            return Err(InputError::new(
                FILTERS,
                format!("`{filter}` is listed twice"),
            ));
        }
        parsed.push(filter);
    }
    if parsed.len() > MAX_EXCLUSION_FILTERS {
        return Err(InputError::new(
            FILTERS,
            format!(
                "{} filters given: ECR takes at most {MAX_EXCLUSION_FILTERS}; a `*` matches any run of characters, so one filter can cover several tags",
                parsed.len()
            ),
        ));
    }
    match (mode, parsed.is_empty()) {
        ("MUTABLE", true) => Ok(TagMutability::Mutable),
        ("IMMUTABLE", true) => Ok(TagMutability::Immutable),
        ("MUTABLE_WITH_EXCLUSION", false) => Ok(TagMutability::MutableWithExclusion(parsed)),
        ("IMMUTABLE_WITH_EXCLUSION", false) => Ok(TagMutability::ImmutableWithExclusion(parsed)),
        ("MUTABLE" | "IMMUTABLE", false) => Err(InputError::new(
            FILTERS,
            format!("exclusion filters apply only to the modes `MUTABLE_WITH_EXCLUSION` and `IMMUTABLE_WITH_EXCLUSION`, and `image-tag-mutability` is `{mode}`: set one of those modes or leave the filters empty"),
        )),
        _ => Err(InputError::new(
            FILTERS,
            format!("`image-tag-mutability` is `{mode}`, which needs at least one filter: give the tags it excepts, e.g. `latest` or `dev-*`"),
        )),
    }
}

fn context(value: Option<&String>) -> Result<PathBuf, InputError> {
    let path = PathBuf::from(given(value).unwrap_or("."));
    if !path.is_dir() {
        return Err(InputError::new(
            names::CONTEXT,
            format!(
                "`{}` is not a folder: give the build context relative to the workspace",
                path.display()
            ),
        ));
    }
    Ok(path)
}

fn dockerfile(value: Option<&String>, context: &Path) -> Result<PathBuf, InputError> {
    let path = given(value).map_or_else(|| context.join("Dockerfile"), PathBuf::from);
    if !path.is_file() {
        return Err(InputError::new(
            names::FILE,
            format!(
                "`{}` is not a file: give the Dockerfile's path relative to the workspace{}",
                path.display(),
                if given(value).is_none() {
                    " (the default is `Dockerfile` in the context)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(path)
}

impl TryFrom<Args> for Request {
    type Error = InputError;

    fn try_from(args: Args) -> Result<Self, Self::Error> {
        // Cheap, pure checks first, file-system checks last, in action.yml order otherwise.
        let repository = repository(args.repository.as_ref())?;
        let platforms = platforms(args.platforms.as_ref())?;
        let tag_rules = rules(args.tag_rules.as_ref())?;
        let build_args = key_values(names::BUILD_ARGS, args.build_args.as_ref())?;
        let target = target(args.target.as_ref())?;
        let labels = key_values(names::LABELS, args.labels.as_ref())?;
        let network = network(args.network.as_ref())?;
        let no_cache = boolean(names::NO_CACHE, args.no_cache.as_ref(), false)?;
        let repository_cache = boolean(
            names::REPOSITORY_CACHE,
            args.repository_cache.as_ref(),
            true,
        )?;
        let cache_from = cache_from(args.cache_from.as_ref())?;
        let skip_unchanged = boolean(names::SKIP_UNCHANGED, args.skip_unchanged.as_ref(), false)?;
        if skip_unchanged && no_cache {
            return Err(InputError::new(
                names::SKIP_UNCHANGED,
                "`skip-unchanged` reuses an image built from the same inputs, and `no-cache` asks to build everything again: set one of them, not both",
            ));
        }
        let aws_region = aws_region(&args)?;
        let registry_id = registry_id(args.registry_id.as_ref())?;
        let registry = registry(args.registry.as_ref())?;
        // `latest` is the default only when neither `tags` nor `tag-rules` says anything, so
        // that `latest=auto` really decides.
        let tags_value =
            given(args.tags.as_ref()).or_else(|| tag_rules.is_empty().then_some("latest"));
        let tags = tags(
            tags_value,
            &TagHost {
                repository: &repository,
                registry: registry.as_deref(),
                region: &aws_region,
                registry_id: registry_id.as_deref(),
            },
        )?;
        let git = git_context(&args);
        let evaluation = tag_rules::evaluate(&tags, &tag_rules, &git.git_ref);
        // `latest=auto` may still add `latest`; that is the first tag then, at the longest.
        let first_tag = match (evaluation.tags.first(), &evaluation.latest_auto) {
            (Some(first), _) => first.tag.clone(),
            (None, Some(_)) => "latest".to_owned(),
            (None, None) => {
                let reasons: Vec<String> = evaluation
                    .skipped
                    .iter()
                    .map(|(rule, why)| format!("`{rule}`: {why}"))
                    .collect();
                return Err(InputError::new(
                    if tag_rules.is_empty() { names::TAGS } else { names::TAG_RULES },
                    format!(
                        "this run would push under no tag at all ({}): add a tag or a rule that applies",
                        if reasons.is_empty() { "no tag given".to_owned() } else { reasons.join("; ") }
                    ),
                ));
            }
        };
        let create_repository = boolean(
            names::CREATE_REPOSITORY,
            args.create_repository.as_ref(),
            true,
        )?;
        let image_tag_mutability = tag_mutability(
            args.image_tag_mutability.as_ref(),
            args.image_tag_mutability_exclusion_filters.as_ref(),
        )?;
        let scan_on_push = boolean(names::SCAN_ON_PUSH, args.scan_on_push.as_ref(), true)?;
        // Off by default (issue 9): only the requested tags; children go by digest.
        let arch_tags = boolean(names::ARCH_TAGS, args.arch_tags.as_ref(), false)?;
        if arch_tags {
            // `<first tag>-<arch>` must itself be a tag; a 128-character first tag leaves no room.
            for platform in &platforms {
                let tag = format!("{first_tag}-{}", platform.tag_suffix());
                if !is_tag(&tag) {
                    return Err(InputError::new(
                        names::TAGS,
                        format!("the per-platform tag `{tag}` would be longer than 128 characters: shorten the first tag or set `arch-tags: false`"),
                    ));
                }
            }
        }
        let context = context(args.context.as_ref())?;
        let dockerfile = dockerfile(args.file.as_ref(), &context)?;
        let runner = Runner {
            github_actions: given(args.env_github_actions.as_ref()) == Some("true"),
            output_file: given(args.env_github_output.as_ref()).map(PathBuf::from),
            summary_file: given(args.env_github_step_summary.as_ref()).map(PathBuf::from),
        };
        Ok(Request {
            repository,
            context,
            dockerfile,
            platforms,
            tag_evaluation: evaluation,
            git,
            github_token: given(args.github_token.as_ref()).map(str::to_owned),
            build_args,
            target,
            labels,
            network,
            no_cache,
            repository_cache,
            cache_from,
            skip_unchanged,
            aws_region,
            registry_id,
            registry,
            create_repository,
            image_tag_mutability,
            scan_on_push,
            arch_tags,
            runner,
            binfmt_image: given(args.env_binfmt_image.as_ref())
                .unwrap_or(DEFAULT_BINFMT_IMAGE)
                .to_owned(),
            docker_host: given(args.env_docker_host.as_ref()).map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn args() -> Args {
        Args {
            repository: Some("team/api".into()),
            context: Some(env!("CARGO_MANIFEST_DIR").to_owned() + "/examples/hello"),
            aws_region: Some("us-east-1".into()),
            ..Args::default()
        }
    }

    fn tag_names(request: &Request) -> Vec<&str> {
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
    fn region_falls_back_to_the_environment_names() {
        let request = Request::try_from(Args {
            aws_region: Some(String::new()),
            env_aws_region: None,
            env_aws_default_region: Some("eu-west-2".into()),
            ..args()
        })
        .expect("valid");
        assert_eq!(request.aws_region, "eu-west-2");
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

    #[rstest]
    #[case("linux/arm64,linux/amd64", &["linux/arm64", "linux/amd64"])]
    #[case("linux/arm/v7\nlinux/arm/v6", &["linux/arm/v7", "linux/arm/v6"])]
    #[case("linux/amd64/v3, linux/arm64/v8.2, linux/riscv64", &["linux/amd64/v3", "linux/arm64/v8.2", "linux/riscv64"])]
    fn platforms_keep_their_order_and_spelling(#[case] value: &str, #[case] expected: &[&str]) {
        let request = Request::try_from(Args {
            platforms: Some(value.into()),
            ..args()
        })
        .expect("valid");
        let found: Vec<String> = request.platforms.iter().map(ToString::to_string).collect();
        assert_eq!(found, expected);
    }

    #[rstest]
    #[case(
        "linux/arm64,linux/arm64/v8",
        "`linux/arm64/v8` is listed twice (as `linux/arm64` before)"
    )]
    #[case(
        "linux/amd64/v1,linux/amd64",
        "`linux/amd64` is listed twice (as `linux/amd64/v1` before)"
    )]
    #[case(
        "linux/arm,linux/arm/v7",
        "`linux/arm/v7` is listed twice (as `linux/arm` before)"
    )]
    #[case(
        "linux/arm64/v9.0,linux/arm64/v9",
        "`linux/arm64/v9` is listed twice (as `linux/arm64/v9.0` before)"
    )]
    fn the_same_platform_twice_after_normalising_is_refused(
        #[case] value: &str,
        #[case] message: &str,
    ) {
        let error = Request::try_from(Args {
            platforms: Some(value.into()),
            ..args()
        })
        .expect_err("duplicate");
        assert_eq!(error.input, names::PLATFORMS);
        assert_eq!(error.message, message);
    }

    fn mutability(mode: &str, filters: &str) -> Result<TagMutability, InputError> {
        Request::try_from(Args {
            image_tag_mutability: Some(mode.into()),
            image_tag_mutability_exclusion_filters: Some(filters.into()),
            ..args()
        })
        .map(|request| request.image_tag_mutability)
    }

    #[test]
    fn the_four_mutability_modes_are_accepted() {
        assert_eq!(mutability("", ""), Ok(TagMutability::Mutable));
        assert_eq!(mutability("MUTABLE", ""), Ok(TagMutability::Mutable));
        assert_eq!(mutability("IMMUTABLE", " "), Ok(TagMutability::Immutable));
        let excepted = mutability("IMMUTABLE_WITH_EXCLUSION", "latest,\ndev-*\n").expect("valid");
        assert_eq!(excepted.mode(), "IMMUTABLE_WITH_EXCLUSION");
        let filters: Vec<&str> = excepted
            .exclusion_filters()
            .iter()
            .map(|f| f.as_str())
            .collect();
        assert_eq!(filters, vec!["latest", "dev-*"]);
        assert!(!excepted.is_immutable("latest") && !excepted.is_immutable("dev-7"));
        assert!(excepted.is_immutable("v1.0.0"));
        let pinned = mutability("MUTABLE_WITH_EXCLUSION", "v*.*.*, stable").expect("valid");
        assert_eq!(pinned.mode(), "MUTABLE_WITH_EXCLUSION");
        assert_eq!(pinned.exclusion_filters().len(), 2);
        assert!(pinned.is_immutable("v1.2.3") && pinned.is_immutable("stable"));
        assert!(!pinned.is_immutable("latest"));
        let five = mutability("MUTABLE_WITH_EXCLUSION", "a,b,c,d,e").expect("five is the most");
        assert_eq!(five.exclusion_filters().len(), 5);
    }

    #[rstest]
    #[case(
        "IMMUTABLE_WITH_EXCLUSION",
        "",
        "`image-tag-mutability` is `IMMUTABLE_WITH_EXCLUSION`, which needs at least one filter"
    )]
    #[case(
        "MUTABLE_WITH_EXCLUSION",
        " , ",
        "`image-tag-mutability` is `MUTABLE_WITH_EXCLUSION`, which needs at least one filter"
    )]
    #[case("MUTABLE", "latest", "and `image-tag-mutability` is `MUTABLE`")]
    #[case("", "latest", "and `image-tag-mutability` is `MUTABLE`")]
    #[case("IMMUTABLE", "latest", "and `image-tag-mutability` is `IMMUTABLE`")]
    #[case(
        "IMMUTABLE_WITH_EXCLUSION",
        "release/*",
        "`release/*` is not an ECR wildcard filter"
    )]
    #[case(
        "IMMUTABLE_WITH_EXCLUSION",
        "v?.0",
        "`v?.0` is not an ECR wildcard filter"
    )]
    #[case("IMMUTABLE_WITH_EXCLUSION", &"x".repeat(129), "is not an ECR wildcard filter: use 1 to 128")]
    #[case(
        "IMMUTABLE_WITH_EXCLUSION",
        "latest,latest",
        "`latest` is listed twice"
    )]
    #[case(
        "IMMUTABLE_WITH_EXCLUSION",
        "a,b,c,d,e,f",
        "6 filters given: ECR takes at most 5"
    )]
    fn exclusion_filters_follow_ecr_rules(
        #[case] mode: &str,
        #[case] filters: &str,
        #[case] message: &str,
    ) {
        let error = mutability(mode, filters).expect_err("invalid");
        assert_eq!(error.input, names::IMAGE_TAG_MUTABILITY_EXCLUSION_FILTERS);
        assert!(error.message.contains(message), "{error}");
    }

    #[test]
    fn the_cache_is_on_and_skipping_off_by_default() {
        let request = Request::try_from(args()).expect("valid");
        assert!(request.repository_cache);
        assert!(!request.skip_unchanged);
        assert!(request.cache_from.is_empty());
    }

    #[test]
    fn cache_from_takes_references_and_the_registry_form() {
        let request = Request::try_from(Args {
            cache_from: Some(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:builder-cache, team/base\n\
                 type=registry,ref=127.0.0.1:5000/it/cache:x\n\
                 localhost:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
                    .into(),
            ),
            ..args()
        })
        .expect("valid");
        assert_eq!(
            request.cache_from,
            vec![
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:builder-cache",
                "team/base",
                "127.0.0.1:5000/it/cache:x",
                "localhost:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ]
        );
    }

    #[rstest]
    #[case("127.0.0.1:5000")]
    #[case("localhost")]
    #[case("123456789012.dkr.ecr.us-east-1.amazonaws.com")]
    #[case("[::1]:5000")]
    fn accepts_registry_addresses(#[case] host: &str) {
        let request = Request::try_from(Args {
            registry: Some(host.into()),
            ..args()
        })
        .expect("valid");
        assert_eq!(request.registry.as_deref(), Some(host));
    }
}
