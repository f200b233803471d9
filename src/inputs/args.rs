//! The command line and the `INPUT_<NAME>` variables as clap reads them (`Args`), the input
//! names as `action.yml` declares them, and the checks that run before clap: the runner and
//! non-UTF-8 values. Nothing here validates a value: that is the grammars' work.

use clap::Parser;

use super::InputError;

/// The names of every input: their home is [`crate::input_names`], which the rooms below
/// this one name inputs through too.
pub use crate::input_names as names;

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
