//! The names of every input, exactly as `action.yml` declares them (a test holds them against
//! it). A value module, so that an error anywhere can name the input the user fixes.

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
pub const IMAGE_TAG_MUTABILITY_EXCLUSION_FILTERS: &str = "image-tag-mutability-exclusion-filters";
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
