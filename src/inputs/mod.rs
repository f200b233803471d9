//! Every input of the action, read once: CLI flags win over `INPUT_<NAME>` variables (the
//! runner upper-cases names and keeps hyphens: `INPUT_AWS-REGION`), an empty value means
//! "not given", and all validation happens here, before anything is created, built or pushed.
//!
//! This is the only module that reads configuration from the environment. Its only other I/O
//! is checking that the context folder, the Dockerfile, `merge`'s folders and the TLS files
//! exist (and that `.dockerignore` keeps a TLS key in the context out of it), reading the
//! runner's event payload for the time the source was made, and reading the Dockerfile's stage
//! names when `target` is given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::platform::Platform;
use crate::secret::Secret;
use crate::tag_mutability::{TagFilter, MAX_EXCLUSION_FILTERS};
use crate::tag_rules::{self, GitRef, TagRule};

pub use crate::tag_mutability::TagMutability;

mod repository_settings;
pub use repository_settings::{Encryption, Endpoint, PolicyFile, RepositorySettings, FIPS_REGIONS};

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
    /// Push the platform images by digest only, for a later merge run.
    pub const PLATFORM_ONLY: &str = "platform-only";
    /// Where a platform-only run writes its result file.
    pub const RESULTS_FOLDER: &str = "results-folder";
    /// Results of platform-only runs to join into one index instead of building.
    pub const MERGE: &str = "merge";
    /// The Docker Engine of some platforms.
    pub const ENGINES: &str = "engines";

    // Repository settings (issue 18).
    /// Encryption of a created repository.
    pub const ENCRYPTION: &str = "encryption";
    /// KMS key of a created repository.
    pub const KMS_KEY: &str = "kms-key";
    /// Lifecycle policy file.
    pub const LIFECYCLE_POLICY: &str = "lifecycle-policy";
    /// Repository policy file.
    pub const REPOSITORY_POLICY: &str = "repository-policy";
    /// Apply the settings to an existing repository.
    pub const UPDATE_REPOSITORY: &str = "update-repository";
    /// ECR's endpoints: default, dual-stack or FIPS.
    pub const ENDPOINT: &str = "endpoint";
    // The vulnerability gate (issue 16).
    /// The lowest severity that refuses the image, or `none`.
    pub const VULNERABILITY_GATE: &str = "vulnerability-gate";
    /// YAML file of findings to let through, each with a reason and an expiry.
    pub const VULNERABILITY_IGNORE: &str = "vulnerability-ignore";
    /// Let findings with no fix available through.
    pub const VULNERABILITY_IGNORE_UNFIXED: &str = "vulnerability-ignore-unfixed";
    /// How long to wait for the scans.
    pub const SCAN_TIMEOUT: &str = "scan-timeout";

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
        PLATFORM_ONLY,
        RESULTS_FOLDER,
        MERGE,
        ENGINES,
        ENCRYPTION,
        KMS_KEY,
        LIFECYCLE_POLICY,
        REPOSITORY_POLICY,
        UPDATE_REPOSITORY,
        ENDPOINT,
        VULNERABILITY_GATE,
        VULNERABILITY_IGNORE,
        VULNERABILITY_IGNORE_UNFIXED,
        SCAN_TIMEOUT,
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
    /// Create the repository when missing: `true` or `false`, or `template` to leave it to ECR's
    /// create-on-push and its repository creation template [default: true]
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
    /// Push each platform image by digest and put no tag, writing a result file for a later
    /// `merge` run: `true` or `false` [default: false]
    #[arg(long = "platform-only", env = "INPUT_PLATFORM-ONLY")]
    pub platform_only: Option<String>,
    /// Where a `platform-only` run writes its result file, relative to the workspace
    /// [default: ecr-multiarch-results]
    #[arg(long = "results-folder", env = "INPUT_RESULTS-FOLDER")]
    pub results_folder: Option<String>,
    /// Instead of building, join the images of `platform-only` runs into one multi-arch image:
    /// comma- or newline-separated folders (or files) of their results, or image references
    /// `<repository>@sha256:...`
    #[arg(long, env = "INPUT_MERGE")]
    pub merge: Option<String>,
    /// Docker Engines for some platforms, comma- or newline-separated `<platform>=<address>`
    /// with `unix:///<socket>` or `tcp://<host>[:<port>]`; the other platforms build on
    /// `DOCKER_HOST`
    #[arg(long, env = "INPUT_ENGINES")]
    pub engines: Option<String>,

    // Repository settings (issue 18).
    /// Encryption of a created repository: `AES256`, `KMS` or `KMS_DSSE` [default: AES256]
    #[arg(long, env = "INPUT_ENCRYPTION")]
    pub encryption: Option<String>,
    /// KMS key of a created repository (`encryption: KMS` or `KMS_DSSE`): a key ARN or an alias
    /// `alias/<name>` [default: ECR's AWS-managed key]
    #[arg(long = "kms-key", env = "INPUT_KMS-KEY")]
    pub kms_key: Option<String>,
    /// Lifecycle policy of the repository: a JSON file, relative to the workspace
    #[arg(long = "lifecycle-policy", env = "INPUT_LIFECYCLE-POLICY")]
    pub lifecycle_policy: Option<String>,
    /// Repository (resource) policy: a JSON file, relative to the workspace
    #[arg(long = "repository-policy", env = "INPUT_REPOSITORY-POLICY")]
    pub repository_policy: Option<String>,
    /// Apply the settings the inputs name to an existing repository (tag mutability, lifecycle
    /// policy, repository policy, scan-on-push): `true` or `false` [default: false]
    #[arg(long = "update-repository", env = "INPUT_UPDATE-REPOSITORY")]
    pub update_repository: Option<String>,
    /// ECR's endpoints for the API and the registry: `default`, `dual-stack` or `fips`
    /// [default: `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT`, else default]
    #[arg(long, env = "INPUT_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The AWS SDK's FIPS setting.
    #[arg(long, env = "AWS_USE_FIPS_ENDPOINT", hide = true)]
    pub env_use_fips_endpoint: Option<String>,
    /// The AWS SDK's dual-stack setting.
    #[arg(long, env = "AWS_USE_DUALSTACK_ENDPOINT", hide = true)]
    pub env_use_dualstack_endpoint: Option<String>,
    /// An explicit ECR API endpoint URL, as the AWS SDK reads it.
    #[arg(long, env = "AWS_ENDPOINT_URL_ECR", hide = true)]
    pub env_endpoint_url_ecr: Option<String>,
    /// An explicit endpoint URL for every AWS service, as the AWS SDK reads it.
    #[arg(long, env = "AWS_ENDPOINT_URL", hide = true)]
    pub env_endpoint_url: Option<String>,
    /// Refuse the image (no tag moved) when ECR's scan of a platform image finds a
    /// vulnerability of this severity or worse: `none`, `critical`, `high`, `medium` or `low`
    /// [default: none]
    #[arg(long = "vulnerability-gate", env = "INPUT_VULNERABILITY-GATE")]
    pub vulnerability_gate: Option<String>,
    /// YAML file in the workspace listing findings to let through, each with `id`, `reason`
    /// and `expires` (a date)
    #[arg(long = "vulnerability-ignore", env = "INPUT_VULNERABILITY-IGNORE")]
    pub vulnerability_ignore: Option<String>,
    /// Let findings with no fix available through (enhanced scanning tells): `true` or `false`
    /// [default: false]
    #[arg(
        long = "vulnerability-ignore-unfixed",
        env = "INPUT_VULNERABILITY-IGNORE-UNFIXED"
    )]
    pub vulnerability_ignore_unfixed: Option<String>,
    /// How long to wait for ECR's scans, e.g. `10m`, `90s` [default: 10m]
    #[arg(long = "scan-timeout", env = "INPUT_SCAN-TIMEOUT")]
    pub scan_timeout: Option<String>,

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
    /// Any value: `tcp://` Engines are reached over TLS, their certificate checked (docker CLI).
    #[arg(long, env = "DOCKER_TLS_VERIFY", hide = true)]
    pub env_docker_tls_verify: Option<String>,
    /// Any value: TLS without checking the Engine's certificate (docker CLI's `--tls`).
    #[arg(long, env = "DOCKER_TLS", hide = true)]
    pub env_docker_tls: Option<String>,
    /// The folder of `ca.pem`, `cert.pem` and `key.pem` for TLS.
    #[arg(long, env = "DOCKER_CERT_PATH", hide = true)]
    pub env_docker_cert_path: Option<String>,
    /// The docker CLI's configuration folder, the certificates' default folder.
    #[arg(long, env = "DOCKER_CONFIG", hide = true)]
    pub env_docker_config: Option<String>,
    /// The home folder, where `~/.docker` is.
    #[arg(long, env = "HOME", hide = true)]
    pub env_home: Option<String>,
    /// The workspace; `/github/workspace` inside a container action, which sees only the
    /// runner's mounts.
    #[arg(long, env = "GITHUB_WORKSPACE", hide = true)]
    pub env_github_workspace: Option<String>,
    /// `1` or `true`: keep each build's image in the Engine under its temporary name
    /// (`ecr-multiarch-build:<uuid>`, logged) instead of removing it once exported.
    #[arg(long, env = "ECR_MULTIARCH_KEEP_IMAGES", hide = true)]
    pub env_keep_images: Option<String>,
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

/// One line of `engines`: a platform and the Docker Engine that builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformEngine {
    /// The platform, spelt as in `platforms`.
    pub platform: Platform,
    /// `unix:///<socket>` or `tcp://<host>:<port>`, the port filled in as the docker CLI does.
    pub address: String,
}

/// TLS for `tcp://` Docker Engines, as the docker CLI reads it: `DOCKER_TLS_VERIFY` set, the
/// files in `DOCKER_CERT_PATH` (else `DOCKER_CONFIG`, else `~/.docker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerTls {
    /// The folder of `ca.pem` (what the Engine's certificate must be signed by) and the
    /// client's `cert.pem` and `key.pem`.
    pub cert_path: PathBuf,
}

/// One item of `merge`: what a merge run joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeSource {
    /// A folder of result files (read recursively), or one result file.
    Results(PathBuf),
    /// An image of this run's repository, by digest.
    Image {
        /// The reference as given.
        reference: String,
        /// Its digest, `sha256:...`.
        digest: String,
    },
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
    /// `platform-only`: push the platform images by digest, put no tag, write a result file.
    pub platform_only: bool,
    /// Where a platform-only run writes its result file.
    pub results_folder: PathBuf,
    /// `merge`: what a merge run joins; empty for a run that builds.
    pub merge: Vec<MergeSource>,
    /// Inputs given to a merge run that it does not use, as it builds nothing.
    pub unused_by_merge: Vec<&'static str>,
    /// `engines`: the Docker Engine of some platforms; the others build on `docker_host`.
    pub engines: Vec<PlatformEngine>,
    /// TLS for `tcp://` Engines, when `DOCKER_TLS_VERIFY` is set.
    pub docker_tls: Option<DockerTls>,
    /// Keep each build's image in the Engine under its temporary name
    /// (`ECR_MULTIARCH_KEEP_IMAGES`); by default it is removed once exported.
    pub keep_images: bool,
    /// Encryption, policies, `update-repository`, `endpoint` (issue 18).
    pub repository_settings: RepositorySettings,
    /// The vulnerability gate; `None` when `vulnerability-gate` is `none`.
    pub vulnerability_gate: Option<crate::gate::Policy>,
}

impl Request {
    /// Whether this run joins `platform-only` results instead of building.
    #[must_use]
    pub fn is_merge(&self) -> bool {
        !self.merge.is_empty()
    }
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

/// Inside a container action the runner shares only these folders (and its own
/// `/github/workflow` and `/github/file_commands`) with the steps around it
/// (<https://docs.github.com/actions/sharing-automations/creating-actions/creating-a-docker-container-action#accessing-files-created-by-a-container-action>):
/// what the action writes anywhere else, `runner.temp` included, is gone when its container
/// ends, and nothing else of the runner's file system is visible to it.
const CONTAINER_MOUNTS: &[&str] = &["/github/workspace", "/github/home"];

/// What to say about a path a container action cannot share with the runner.
const CONTAINER_MOUNTS_HINT: &str = "inside the action's container only `/github/workspace` (the \
     workspace) and `/github/home` are shared with the runner, not `runner.temp`: give a path \
     relative to the workspace";

/// Whether the run is a container action (the runner sets `GITHUB_WORKSPACE` to the
/// container's mount) and `path` lies outside every folder it shares with the runner.
/// The path is resolved against the workspace and its `..` taken lexically first, so that
/// `../results` and `/github/workspace/../results` are found outside too.
fn outside_container_mounts(args: &Args, path: &Path) -> bool {
    if given(args.env_github_workspace.as_ref()) != Some(CONTAINER_MOUNTS[0]) {
        return false;
    }
    let mut resolved = PathBuf::new();
    for part in Path::new(CONTAINER_MOUNTS[0]).join(path).components() {
        match part {
            std::path::Component::ParentDir => {
                resolved.pop();
            }
            std::path::Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    !CONTAINER_MOUNTS
        .iter()
        .any(|mount| resolved.starts_with(mount))
}

fn results_folder(args: &Args) -> Result<PathBuf, InputError> {
    let path = PathBuf::from(
        given(args.results_folder.as_ref()).unwrap_or(crate::handoff::DEFAULT_FOLDER),
    );
    if outside_container_mounts(args, &path) {
        return Err(InputError::new(
            names::RESULTS_FOLDER,
            format!(
                "`{}` is not where a later step can find the result: {CONTAINER_MOUNTS_HINT}, e.g. `{}`",
                path.display(),
                crate::handoff::DEFAULT_FOLDER
            ),
        ));
    }
    if path.exists() && !path.is_dir() {
        return Err(InputError::new(
            names::RESULTS_FOLDER,
            format!(
                "`{}` is a file: give a folder for the result files",
                path.display()
            ),
        ));
    }
    Ok(path)
}

/// `sha256:` and 64 lowercase hex digits.
fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The `merge` input: folders or files of results, and references to images of this run's
/// repository (`sha256:...`, `<repository>@sha256:...`, or the `image-uri` form
/// `<registry>/<repository>@sha256:...`).
fn merge(args: &Args, host: &TagHost<'_>) -> Result<Vec<MergeSource>, InputError> {
    let mut sources: Vec<MergeSource> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for item in list(given(args.merge.as_ref()).unwrap_or("")) {
        if seen.contains(&item) {
            return Err(InputError::new(
                names::MERGE,
                format!("`{item}` is listed twice"),
            ));
        }
        seen.push(item);
        let reference = item
            .rsplit_once('@')
            .map(|(name, digest)| (Some(name), digest));
        let reference = reference.or_else(|| item.starts_with("sha256:").then_some((None, item)));
        if let Some((name, digest)) = reference {
            if !is_digest(digest) {
                return Err(InputError::new(
                    names::MERGE,
                    format!("`{item}` is not an image reference: use `<repository>@sha256:<64 hex digits>`"),
                ));
            }
            let ours = name.is_none_or(|name| {
                name == host.repository
                    || name.split_once('/').is_some_and(|(registry, path)| {
                        path == host.repository && host.accepts(registry)
                    })
            });
            if !ours {
                return Err(InputError::new(
                    names::MERGE,
                    format!(
                        "`{item}` names another repository: a merge joins images of `{}` in this run's registry",
                        host.repository
                    ),
                ));
            }
            sources.push(MergeSource::Image {
                reference: item.to_owned(),
                digest: digest.to_owned(),
            });
            continue;
        }
        let path = PathBuf::from(item);
        if !path.exists() {
            let hint = if outside_container_mounts(args, &path) {
                format!("; {CONTAINER_MOUNTS_HINT}")
            } else {
                String::new()
            };
            return Err(InputError::new(
                names::MERGE,
                format!(
                    "`{item}` is neither a folder of results nor an image reference `<repository>@sha256:...`: give the folder the `platform-only` results were downloaded to{hint}"
                ),
            ));
        }
        sources.push(MergeSource::Results(path));
    }
    Ok(sources)
}

/// A `tcp://` Engine's address: a host name or IP address and a port, the docker CLI's
/// default port filled in (2376 with TLS, 2375 without).
fn tcp_address(rest: &str, tls: bool) -> Option<String> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (name, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        // An IPv6 address: `[::1]` or `[::1]:2376`.
        let (inside, after) = bracketed.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        let (name, port) = match rest.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (rest, None),
        };
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !name_ok {
            return None;
        }
        (name.to_owned(), port)
    };
    let port = match port {
        Some(port) => port.parse::<u16>().ok().filter(|p| *p > 0)?,
        None if tls => 2376,
        None => 2375,
    };
    Some(format!("tcp://{name}:{port}"))
}

/// One Engine address of `engines`, as the docker CLI's `-H` takes it.
fn engine_address(text: &str, tls: bool) -> Result<String, String> {
    let accepted = "use `unix:///<socket path>` or `tcp://<host>[:<port>]`";
    if let Some(path) = text.strip_prefix("unix://") {
        if path.starts_with('/') && path.len() > 1 {
            return Ok(text.to_owned());
        }
        return Err(format!(
            "`{text}` does not name a socket by its absolute path: {accepted}"
        ));
    }
    if let Some(rest) = text.strip_prefix("tcp://") {
        return tcp_address(rest, tls)
            .ok_or_else(|| format!("`{text}` is not a host and port: {accepted}"));
    }
    if text.starts_with("ssh://") {
        return Err(format!(
            "`{text}`: Engines over SSH are not supported: expose the Engine on TCP with TLS \
             (`dockerd --tlsverify -H tcp://0.0.0.0:2376`), then {accepted}"
        ));
    }
    Err(format!(
        "`{text}` is not a Docker Engine address: {accepted}"
    ))
}

/// The `engines` input: `<platform>=<address>` lines for platforms of this run, each once.
fn engines(args: &Args, platforms: &[Platform]) -> Result<Vec<PlatformEngine>, InputError> {
    let tls = given(args.env_docker_tls_verify.as_ref()).is_some();
    let mut engines: Vec<PlatformEngine> = Vec::new();
    for item in list(given(args.engines.as_ref()).unwrap_or("")) {
        let Some((platform, address)) = item.split_once('=') else {
            return Err(InputError::new(
                names::ENGINES,
                format!(
                    "`{item}` is not `<platform>=<address>`, e.g. `linux/arm64=tcp://builder:2376`"
                ),
            ));
        };
        let platform: Platform =
            platform
                .trim()
                .parse()
                .map_err(|e: crate::platform::PlatformParseError| {
                    InputError::new(names::ENGINES, e.to_string())
                })?;
        let Some(listed) = platforms
            .iter()
            .find(|p| p.normalized() == platform.normalized())
        else {
            let listed: Vec<String> = platforms.iter().map(|p| format!("`{p}`")).collect();
            return Err(InputError::new(
                names::ENGINES,
                format!(
                    "`{platform}` is not in `platforms` ({}): give an Engine only to a platform this run builds",
                    listed.join(", ")
                ),
            ));
        };
        if engines.iter().any(|e| &e.platform == listed) {
            return Err(InputError::new(
                names::ENGINES,
                format!("`{listed}` is given an Engine twice"),
            ));
        }
        let address = engine_address(address.trim(), tls)
            .map_err(|message| InputError::new(names::ENGINES, message))?;
        engines.push(PlatformEngine {
            platform: listed.clone(),
            address,
        });
    }
    Ok(engines)
}

/// TLS for `tcp://` Engines as the docker CLI reads it. When `engines` names a `tcp://` Engine
/// the files are checked here: `ca.pem` must be there, `cert.pem` and `key.pem` together or
/// not at all, and the key must not lie in the build context, where it would be sent to
/// every Engine and could be copied into the image.
fn docker_tls(
    args: &Args,
    engines: &[PlatformEngine],
    context: &Path,
) -> Result<Option<DockerTls>, InputError> {
    let tcp = engines.iter().any(|e| e.address.starts_with("tcp://"));
    if given(args.env_docker_tls_verify.as_ref()).is_none() {
        if tcp && given(args.env_docker_tls.as_ref()).is_some() {
            return Err(InputError::new(
                names::ENGINES,
                "`DOCKER_TLS` without `DOCKER_TLS_VERIFY` asks for TLS without checking the \
                 Engine's certificate, which is not supported: set `DOCKER_TLS_VERIFY=1` and put \
                 the Engine's CA in `DOCKER_CERT_PATH` as `ca.pem`",
            ));
        }
        return Ok(None);
    }
    let cert_path = given(args.env_docker_cert_path.as_ref())
        .or_else(|| given(args.env_docker_config.as_ref()))
        .map_or_else(
            || PathBuf::from(given(args.env_home.as_ref()).unwrap_or(".")).join(".docker"),
            PathBuf::from,
        );
    if !tcp {
        return Ok(Some(DockerTls { cert_path }));
    }
    let shown = cert_path.display();
    if !cert_path.join("ca.pem").is_file() {
        return Err(InputError::new(
            names::ENGINES,
            format!("`DOCKER_TLS_VERIFY` is set but `{shown}` has no `ca.pem`: put the CA that signed the Engines' certificates there (the folder is `DOCKER_CERT_PATH`, else `~/.docker`)"),
        ));
    }
    let key = cert_path.join("key.pem");
    if key.is_file() != cert_path.join("cert.pem").is_file() {
        return Err(InputError::new(
            names::ENGINES,
            format!("`{shown}` must hold both `cert.pem` and `key.pem` (the client's certificate and key), or neither"),
        ));
    }
    if key.is_file() {
        if let (Ok(root), Ok(key)) = (context.canonicalize(), key.canonicalize()) {
            if let Ok(relative) = key.strip_prefix(&root) {
                let name = relative.to_string_lossy().replace('\\', "/");
                let rules = std::fs::read_to_string(root.join(".dockerignore"))
                    .ok()
                    .and_then(|text| crate::context::IgnoreRules::parse(&text).ok())
                    .unwrap_or_default();
                if !rules.is_ignored(&name) {
                    return Err(InputError::new(
                        names::CONTEXT,
                        format!("the TLS key `{name}` (`DOCKER_CERT_PATH` `{shown}`) is inside the build context `{}`: it would be sent to every Engine and could end up in the image: list its folder in `.dockerignore`, or keep the certificates outside the context", context.display()),
                    ));
                }
            }
        }
    }
    Ok(Some(DockerTls { cert_path }))
}

/// The build inputs a merge run was given and does not use: it reads no Dockerfile and builds
/// nothing. (`context` and `no-cache: false` are the runner's defaults, so they say nothing.)
fn unused_by_merge(args: &Args) -> Vec<&'static str> {
    let given_inputs = [
        (names::FILE, &args.file),
        (names::BUILD_ARGS, &args.build_args),
        (names::TARGET, &args.target),
        (names::LABELS, &args.labels),
        (names::NETWORK, &args.network),
        (names::ENGINES, &args.engines),
    ]
    .into_iter()
    .filter(|(_, value)| given(value.as_ref()).is_some())
    .map(|(name, _)| name);
    let no_cache = given(args.no_cache.as_ref())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        .then_some(names::NO_CACHE);
    given_inputs.chain(no_cache).collect()
}

/// The vulnerability gate's inputs (issue 16). The ignore file is read and checked here, so
/// that a bad entry stops the run before anything is created; it is checked even when the
/// gate is `none`.
fn vulnerability_gate(args: &Args) -> Result<Option<crate::gate::Policy>, InputError> {
    let threshold = match given(args.vulnerability_gate.as_ref()) {
        None => None,
        Some(text) if text.eq_ignore_ascii_case("none") => None,
        Some(text) => Some(
            text.parse::<crate::gate::judge::Severity>()
                .map_err(|message| InputError::new(names::VULNERABILITY_GATE, message))?,
        ),
    };
    let ignore_file = given(args.vulnerability_ignore.as_ref()).map(PathBuf::from);
    let ignore = match &ignore_file {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                InputError::new(
                    names::VULNERABILITY_IGNORE,
                    format!("cannot read `{}`: {e}", path.display()),
                )
            })?;
            crate::gate::ignore::parse(&text).map_err(|message| {
                InputError::new(
                    names::VULNERABILITY_IGNORE,
                    format!("`{}`: {message}", path.display()),
                )
            })?
        }
    };
    let ignore_unfixed = boolean(
        names::VULNERABILITY_IGNORE_UNFIXED,
        args.vulnerability_ignore_unfixed.as_ref(),
        false,
    )?;
    let timeout = match given(args.scan_timeout.as_ref()) {
        None => crate::gate::DEFAULT_TIMEOUT,
        Some(text) => crate::gate::parse_timeout(text)
            .map_err(|message| InputError::new(names::SCAN_TIMEOUT, message))?,
    };
    Ok(threshold.map(|threshold| crate::gate::Policy {
        threshold,
        ignore_file,
        ignore,
        ignore_unfixed,
        timeout,
    }))
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
        request_url_room(&build_args, &labels)?;
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
        // Issue 10: a platform-only run pushes no tag; a merge run builds nothing.
        let platform_only = boolean(names::PLATFORM_ONLY, args.platform_only.as_ref(), false)?;
        // `latest` is the default only when neither `tags` nor `tag-rules` says anything, so
        // that `latest=auto` really decides.
        let tags_value =
            given(args.tags.as_ref()).or_else(|| tag_rules.is_empty().then_some("latest"));
        let tag_host = TagHost {
            repository: &repository,
            registry: registry.as_deref(),
            region: &aws_region,
            registry_id: registry_id.as_deref(),
        };
        let tags = tags(tags_value, &tag_host)?;
        let git = git_context(&args);
        let evaluation = tag_rules::evaluate(&tags, &tag_rules, &git.git_ref);
        // `latest=auto` may still add `latest`; that is the first tag then, at the longest.
        let first_tag = match (evaluation.tags.first(), &evaluation.latest_auto) {
            (Some(first), _) => first.tag.clone(),
            (None, Some(_)) => "latest".to_owned(),
            // Nothing goes under a tag anyway; `latest` is where layers are looked up.
            (None, None) if platform_only => "latest".to_owned(),
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
        // `true`, `false` or `template` (issue 18).
        let (create_repository, _) =
            repository_settings::create_repository(args.create_repository.as_ref())?;
        let image_tag_mutability = tag_mutability(
            args.image_tag_mutability.as_ref(),
            args.image_tag_mutability_exclusion_filters.as_ref(),
        )?;
        let scan_on_push = boolean(names::SCAN_ON_PUSH, args.scan_on_push.as_ref(), true)?;
        // Off by default (issue 9): only the requested tags; children go by digest.
        let arch_tags = boolean(names::ARCH_TAGS, args.arch_tags.as_ref(), false)?;
        if arch_tags && platform_only {
            return Err(InputError::new(
                names::ARCH_TAGS,
                "a `platform-only` run puts no tag at all: set `arch-tags` on the `merge` run, which tags the platform images",
            ));
        }
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
        if skip_unchanged && platform_only {
            return Err(InputError::new(
                names::SKIP_UNCHANGED,
                "a `platform-only` run pushes no index to compare with: skipping needs the index under the first tag, which only a one-job or a `merge` run puts there",
            ));
        }
        if platform_only && given(args.merge.as_ref()).is_some() {
            return Err(InputError::new(
                names::MERGE,
                "`platform-only` builds platform images and `merge` joins them: a run does one of the two",
            ));
        }
        let merge = merge(&args, &tag_host)?;
        let engines = engines(&args, &platforms)?;
        let results_folder = if platform_only {
            results_folder(&args)?
        } else {
            PathBuf::from(crate::handoff::DEFAULT_FOLDER)
        };
        // A merge run reads no Dockerfile: the build's files need not be there.
        let (context, dockerfile, unused_by_merge) = if merge.is_empty() {
            let context = context(args.context.as_ref())?;
            let dockerfile = dockerfile(args.file.as_ref(), &context)?;
            if let Some(target) = &target {
                target_stage(&dockerfile, target)?;
            }
            (context, dockerfile, Vec::new())
        } else {
            let context = PathBuf::from(given(args.context.as_ref()).unwrap_or("."));
            let dockerfile =
                given(args.file.as_ref()).map_or_else(|| context.join("Dockerfile"), PathBuf::from);
            (context, dockerfile, unused_by_merge(&args))
        };
        let (engines, docker_tls) = if merge.is_empty() {
            let tls = docker_tls(&args, &engines, &context)?;
            (engines, tls)
        } else {
            (Vec::new(), None)
        };
        let repository_settings =
            repository_settings::repository_settings(&repository_settings::Raw {
                create_repository: args.create_repository.as_ref(),
                encryption: args.encryption.as_ref(),
                kms_key: args.kms_key.as_ref(),
                lifecycle_policy: args.lifecycle_policy.as_ref(),
                repository_policy: args.repository_policy.as_ref(),
                update_repository: args.update_repository.as_ref(),
                endpoint: args.endpoint.as_ref(),
                env_use_fips: args.env_use_fips_endpoint.as_ref(),
                env_use_dual_stack: args.env_use_dualstack_endpoint.as_ref(),
                explicit_endpoint_url: given(args.env_endpoint_url_ecr.as_ref()).is_some()
                    || given(args.env_endpoint_url.as_ref()).is_some(),
                image_tag_mutability: args.image_tag_mutability.as_ref(),
                image_tag_mutability_exclusion_filters: args
                    .image_tag_mutability_exclusion_filters
                    .as_ref(),
                scan_on_push: args.scan_on_push.as_ref(),
                region: &aws_region,
            })?;
        let vulnerability_gate = vulnerability_gate(&args)?;
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
            github_token: given(args.github_token.as_ref()).map(Secret::new),
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
            platform_only,
            results_folder,
            merge,
            unused_by_merge,
            engines,
            docker_tls,
            keep_images: matches!(
                given(args.env_keep_images.as_ref()),
                Some("1" | "true" | "TRUE" | "True")
            ),
            repository_settings,
            vulnerability_gate,
        })
    }
}

/// How many bytes build args and labels may take, together, in the Engine API's request URL.
/// They travel in its query string (`buildargs` and `labels`, JSON, URL-encoded), and the URL
/// as a whole cannot pass 64 KiB (the HTTP stack refuses it: `uri too long`); the rest of the
/// request (platform, cache sources, the image's own labels) needs a few KiB.
pub const MAX_ARGS_AND_LABELS_BYTES: usize = 48 * 1024;

/// The size of `pairs` as the Engine API request carries them: JSON, URL-encoded.
fn url_encoded_json_len(pairs: &BTreeMap<String, String>) -> usize {
    if pairs.is_empty() {
        return 0;
    }
    serde_json::to_string(pairs)
        .unwrap_or_default()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_' | b' ') {
                1
            } else {
                3
            }
        })
        .sum()
}

/// Refuses build args and labels that would make the build request's URL too long, naming the
/// input that takes more of it.
fn request_url_room(
    build_args: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> Result<(), InputError> {
    let (args_len, labels_len) = (
        url_encoded_json_len(build_args),
        url_encoded_json_len(labels),
    );
    let total = args_len + labels_len;
    if total <= MAX_ARGS_AND_LABELS_BYTES {
        return Ok(());
    }
    Err(InputError::new(
        if args_len >= labels_len {
            names::BUILD_ARGS
        } else {
            names::LABELS
        },
        format!(
            "build args ({args_len} bytes) and labels ({labels_len} bytes) take {total} bytes in the Docker Engine API's build request (JSON, URL-encoded), more than the limit of {} KiB ({MAX_ARGS_AND_LABELS_BYTES} bytes): the Engine API carries them in the request URL, which cannot pass 64 KiB. Put large values in a file of the build context (or a `RUN --mount=type=secret`) instead",
            MAX_ARGS_AND_LABELS_BYTES / 1024
        ),
    ))
}

/// Refuses a `target` that is not a stage of the Dockerfile. A Dockerfile this parser cannot
/// read is left to BuildKit, which says what is wrong with it.
fn target_stage(dockerfile: &Path, target: &str) -> Result<(), InputError> {
    let Ok(text) = std::fs::read_to_string(dockerfile) else {
        return Ok(());
    };
    let Ok(parsed) = crate::dockerfile::Dockerfile::parse(&text) else {
        return Ok(());
    };
    if parsed.has_stage(target) {
        return Ok(());
    }
    let stages: Vec<String> = parsed
        .stage_names()
        .iter()
        .map(|name| format!("`{name}`"))
        .collect();
    Err(InputError::new(
        names::TARGET,
        format!(
            "`{}` has no stage `{target}`: {}",
            dockerfile.display(),
            if stages.is_empty() {
                "it names no stage (`FROM <image> AS <name>`)".to_owned()
            } else {
                format!("its stages are {}", stages.join(", "))
            }
        ),
    ))
}

/// Whether this runs as a GitHub Actions step (`GITHUB_ACTIONS=true`), read without the parser.
#[must_use]
pub fn on_github_runner() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v.trim() == "true")
}

/// An argument or variable the parser would refuse because it is not UTF-8: the input it
/// gives (`INPUT_<NAME>`, `--<name>`), or the variable's name.
#[must_use]
pub fn not_utf8() -> Option<InputError> {
    use std::os::unix::ffi::OsStrExt as _;
    let command = <Args as clap::CommandFactory>::command();
    let arguments: Vec<&clap::Arg> = command.get_arguments().collect();
    let input_name = |name: &str| -> &'static str {
        // Each input's name is a constant; another name (a variable) lives until exit.
        names::ALL
            .iter()
            .find(|known| known.eq_ignore_ascii_case(name))
            .copied()
            .unwrap_or_else(|| Box::leak(name.to_owned().into_boxed_str()))
    };
    let refusal = |name: &'static str| InputError {
        input: name,
        message: "the value is not valid UTF-8: give it as UTF-8 text".to_owned(),
    };
    let mut previous_flag: Option<String> = None;
    for argument in std::env::args_os().skip(1) {
        let bytes = argument.as_bytes();
        if let Some(flag) = bytes.strip_prefix(b"--") {
            let name = flag.split(|b| *b == b'=').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).into_owned();
            if argument.to_str().is_none() {
                return Some(refusal(input_name(&name)));
            }
            previous_flag = Some(name);
        } else {
            if argument.to_str().is_none() {
                let name = previous_flag
                    .take()
                    .unwrap_or_else(|| "arguments".to_owned());
                return Some(refusal(input_name(&name)));
            }
            previous_flag = None;
        }
    }
    for argument in arguments {
        let Some(variable) = argument.get_env() else {
            continue;
        };
        let Some(value) = std::env::var_os(variable) else {
            continue;
        };
        if value.to_str().is_none() {
            let variable = variable.to_string_lossy();
            let name = match variable.strip_prefix("INPUT_") {
                Some(input) => input_name(input),
                None => input_name(&variable),
            };
            return Some(refusal(name));
        }
    }
    None
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
    #[rstest]
    #[case(
        "linux/arm64=tcp://graviton-builder",
        None,
        "tcp://graviton-builder:2375"
    )]
    #[case(
        "linux/arm64=tcp://graviton-builder:2376/",
        None,
        "tcp://graviton-builder:2376"
    )]
    #[case("linux/arm64 = tcp://10.0.0.7", Some("1"), "tcp://10.0.0.7:2376")]
    #[case("linux/arm64/v8=tcp://[fd00::7]:2376", None, "tcp://[fd00::7]:2376")]
    #[case("linux/arm64=unix:///run/arm.sock", None, "unix:///run/arm.sock")]
    fn engines_take_the_docker_cli_address_forms(
        #[case] value: &str,
        #[case] tls_verify: Option<&str>,
        #[case] address: &str,
    ) {
        let certs = tempfile::tempdir().expect("tempdir");
        std::fs::write(certs.path().join("ca.pem"), "").expect("ca");
        let request = Request::try_from(Args {
            engines: Some(value.into()),
            env_docker_tls_verify: tls_verify.map(str::to_owned),
            env_docker_cert_path: Some(certs.path().display().to_string()),
            ..args()
        })
        .expect("valid");
        assert_eq!(
            request.engines,
            vec![PlatformEngine {
                // The spelling of `platforms`, whatever `engines` says.
                platform: "linux/arm64".parse().expect("platform"),
                address: address.to_owned(),
            }]
        );
        assert_eq!(request.docker_tls.is_some(), tls_verify.is_some());
    }

    #[test]
    fn tls_needs_the_ca_and_keeps_the_key_out_of_the_context() {
        let context = tempfile::tempdir().expect("tempdir");
        std::fs::write(context.path().join("Dockerfile"), "FROM scratch\n").expect("Dockerfile");
        let certs = context.path().join(".docker-tls");
        std::fs::create_dir(&certs).expect("certs");
        let tls_run = || {
            Request::try_from(Args {
                context: Some(context.path().display().to_string()),
                engines: Some("linux/arm64=tcp://graviton:2376".into()),
                env_docker_tls_verify: Some("1".into()),
                env_docker_cert_path: Some(certs.display().to_string()),
                ..args()
            })
        };
        let error = tls_run().expect_err("no ca.pem");
        assert!(error.message.contains("has no `ca.pem`"), "{error}");
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(certs.join(file), "").expect("pem");
        }
        let error = tls_run().expect_err("key in the context");
        assert_eq!(error.input, names::CONTEXT);
        assert!(
            error.message.contains("the TLS key `.docker-tls/key.pem`"),
            "{error}"
        );
        std::fs::write(context.path().join(".dockerignore"), ".docker-tls\n").expect("ignore");
        let request = tls_run().expect("ignored: valid");
        assert_eq!(request.docker_tls.expect("tls").cert_path, certs);
    }

    #[test]
    fn a_merge_reads_no_dockerfile_and_names_what_it_does_not_use() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let request = Request::try_from(Args {
            context: Some("/nonexistent/context".into()),
            merge: Some(format!(
                "{digest}\n123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api@sha256:{}",
                "c".repeat(64)
            )),
            build_args: Some("A=1".into()),
            no_cache: Some("false".into()),
            engines: Some("linux/arm64=tcp://b:1".into()),
            ..args()
        })
        .expect("valid: a merge needs no build context");
        assert!(request.is_merge());
        assert_eq!(request.merge.len(), 2);
        assert_eq!(
            request.merge[0],
            MergeSource::Image {
                reference: digest.clone(),
                digest
            }
        );
        assert_eq!(request.unused_by_merge, vec!["build-args", "engines"]);
        assert!(request.engines.is_empty());
    }

    #[test]
    fn a_platform_only_run_needs_no_tag() {
        let request = Request::try_from(Args {
            platform_only: Some("true".into()),
            tag_rules: Some("semver".into()),
            ..args()
        })
        .expect("valid: nothing is tagged");
        assert!(request.platform_only);
        assert_eq!(
            request.results_folder,
            PathBuf::from(crate::handoff::DEFAULT_FOLDER)
        );
    }
}
