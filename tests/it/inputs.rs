//! Bad input ends the run with exit 1 and one `::error` naming the input, before anything is
//! created or pushed.

use rstest::rstest;

use ecr_multiarch::ecr::Ecr;
use ecr_multiarch::inputs::{Args, Request};

use super::{ecr_client, fixture, moto_repository, registry_tags, unique_repository, Run};

const DOCKERFILE: &str = "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\n";

const FILTERS: &str = "image-tag-mutability-exclusion-filters";

/// Each case: the input the error must name, the inputs given (over a valid run), and what the
/// message must say.
#[rstest]
// repository
#[case::uppercase_repository("repository", &[("repository", "Team/API")], "is not an ECR repository name")]
#[case::empty_repository("repository", &[("repository", " ")], "a repository name is required")]
#[case::repository_uri("repository", &[("repository", "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api")], "is a repository URI")]
// platforms: shape
#[case::bad_platform("platforms", &[("platforms", "linux")], "is not a platform")]
#[case::empty_os_platform("platforms", &[("platforms", "/arm64")], "is not a platform")]
#[case::no_platform("platforms", &[("platforms", " , ")], "no platform given")]
// platforms: an architecture that is not a Go GOARCH value for Linux
#[case::architecture_not_goarch("platforms", &[("platforms", "linux/sparc99x")], "`linux/sparc99x` names an unknown architecture `sparc99x`: use one of `386`, `amd64`")]
#[case::architecture_typo("platforms", &[("platforms", "linux/amd64,linux/amd46")], "unknown architecture `amd46` (did you mean `amd64`?)")]
#[case::architecture_kernel_name("platforms", &[("platforms", "linux/x86_64")], "(did you mean `amd64`?)")]
#[case::architecture_wasm("platforms", &[("platforms", "linux/wasm")], "unknown architecture `wasm`: use one of")]
// platforms: a variant its architecture does not have
#[case::amd64_v9("platforms", &[("platforms", "linux/amd64/v9")], "unknown variant `v9` of `amd64`: `amd64` has the variants `v1` (the default), `v2`, `v3` or `v4`")]
#[case::arm64_v7("platforms", &[("platforms", "linux/arm64/v7")], "unknown variant `v7` of `arm64`: `arm64` has the variants `v8` (the default)")]
#[case::arm_v9("platforms", &[("platforms", "linux/arm/v9")], "unknown variant `v9` of `arm`: `arm` has the variants `v5`, `v6`, `v7` (the default) or `v8`")]
#[case::riscv64_variant("platforms", &[("platforms", "linux/riscv64/rva22u64")], "`riscv64` has no variants: give `linux/riscv64`")]
#[case::variant_without_v("platforms", &[("platforms", "linux/arm/7")], "(did you mean `v7`?)")]
// platforms: an OS other than linux
#[case::windows("platforms", &[("platforms", "windows/amd64")], "`windows/amd64` is not a Linux platform: the Docker Engine builds Linux images only, so the OS must be `linux`, not `windows`")]
#[case::darwin("platforms", &[("platforms", "linux/amd64,darwin/arm64")], "so the OS must be `linux`, not `darwin`")]
// platforms: the same platform twice after normalising
#[case::duplicate_platform("platforms", &[("platforms", "linux/amd64,linux/amd64")], "`linux/amd64` is listed twice")]
#[case::arm64_and_arm64_v8("platforms", &[("platforms", "linux/arm64,linux/arm64/v8")], "`linux/arm64/v8` is listed twice (as `linux/arm64` before)")]
#[case::amd64_and_amd64_v1("platforms", &[("platforms", "linux/amd64\nlinux/amd64/v1")], "`linux/amd64/v1` is listed twice (as `linux/amd64` before)")]
#[case::arm_and_arm_v7("platforms", &[("platforms", "linux/arm/v7,linux/arm")], "`linux/arm` is listed twice (as `linux/arm/v7` before)")]
// tags
#[case::tag_starting_with_dot("tags", &[("tags", "latest,.hidden")], "`.hidden` is not a valid tag")]
#[case::tag_starting_with_dash("tags", &[("tags", "-latest")], "`-latest` is not a valid tag")]
#[case::tag_too_long("tags", &[("tags", &*"x".repeat(129).leak())], "is not a valid tag: use up to 128")]
#[case::duplicate_tag("tags", &[("tags", "v1,v1")], "listed twice")]
#[case::tag_of_another_repository("tags", &[("tags", "127.0.0.1:5000/other/repo:v1")], "names another repository")]
#[case::arch_tag_too_long("tags", &[("tags", &*"x".repeat(125).leak()), ("arch-tags", "true")], "would be longer than 128 characters")]
#[case::bad_tag_rule("tag-rules", &[("tag-rules", "semver2")], "semver2")]
// build args and labels
#[case::build_arg_without_value("build-args", &[("build-args", "JUST_A_NAME")], "is not `KEY=VALUE`")]
#[case::build_arg_empty_key("build-args", &[("build-args", "A=1\n=value")], "`=value` has no usable key")]
#[case::label_without_key("labels", &[("labels", "=value")], "no usable key")]
#[case::label_key_with_whitespace("labels", &[("labels", "my label=x")], "`my label=x` has no usable key")]
// the rest, one by one
#[case::bad_target("target", &[("target", "-stage")], "is not a stage name")]
#[case::bad_network("network", &[("network", "bridge")], "is not a network mode")]
#[case::bad_region("aws-region", &[("aws-region", "us_east_1")], "is not an AWS region")]
#[case::short_registry_id("registry-id", &[("registry-id", "12345")], "is not an AWS account id")]
#[case::registry_id_of_11_digits("registry-id", &[("registry-id", "12345678901")], "`12345678901` is not an AWS account id: use its 12 digits")]
#[case::registry_with_scheme("registry", &[("registry", "https://127.0.0.1:5000")], "is not a registry address")]
#[case::registry_with_path("registry", &[("registry", "127.0.0.1:5000/v2")], "is not a registry address")]
#[case::missing_context("context", &[("context", "/nonexistent/context")], "is not a folder")]
#[case::missing_file("file", &[("file", "/nonexistent/Dockerfile")], "is not a file")]
// every boolean input given `yes`, and other non-booleans
#[case::no_cache_yes("no-cache", &[("no-cache", "yes")], "`yes` is not a boolean: use `true` or `false`")]
#[case::create_repository_yes("create-repository", &[("create-repository", "yes")], "`yes` is not a boolean")]
#[case::scan_on_push_yes("scan-on-push", &[("scan-on-push", "yes")], "`yes` is not a boolean")]
#[case::arch_tags_yes("arch-tags", &[("arch-tags", "yes")], "`yes` is not a boolean")]
#[case::create_repository_maybe("create-repository", &[("create-repository", "maybe")], "is not a boolean")]
#[case::scan_on_push_on("scan-on-push", &[("scan-on-push", "on")], "is not a boolean")]
#[case::arch_tags_1("arch-tags", &[("arch-tags", "1")], "is not a boolean")]
#[case::repository_cache_yes("repository-cache", &[("repository-cache", "yes")], "`yes` is not a boolean")]
#[case::skip_unchanged_yes("skip-unchanged", &[("skip-unchanged", "yes")], "`yes` is not a boolean")]
// the cache inputs
#[case::skip_unchanged_with_no_cache("skip-unchanged", &[("skip-unchanged", "true"), ("no-cache", "true")], "set one of them, not both")]
#[case::cache_from_uppercase("cache-from", &[("cache-from", "Team/API:cache")], "`Team/API:cache` is not an image reference")]
#[case::cache_from_bad_tag("cache-from", &[("cache-from", "team/api:-x")], "`team/api:-x` is not an image reference")]
#[case::cache_from_short_digest("cache-from", &[("cache-from", "team/api@sha256:abc")], "is not an image reference")]
#[case::cache_from_scheme("cache-from", &[("cache-from", "https://127.0.0.1:5000/team/api")], "is not an image reference")]
#[case::cache_from_gha("cache-from", &[("cache-from", "type=gha,scope=build")], "cache type `gha` is not available: the Docker Engine's build imports cache from registry images only")]
#[case::cache_from_local("cache-from", &[("cache-from", "type=local,src=/tmp/cache")], "cache type `local` is not available")]
#[case::cache_from_registry_without_ref("cache-from", &[("cache-from", "type=registry,mode=max")], "names no image")]
#[case::cache_from_twice("cache-from", &[("cache-from", "team/api:cache\nteam/api:cache")], "`team/api:cache` is listed twice")]
// tag mutability and its exclusion filters
#[case::bad_mutability("image-tag-mutability", &[("image-tag-mutability", "mutable")], "`mutable` is not a tag mutability: use `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION`")]
#[case::bad_mutability_with_filters("image-tag-mutability", &[("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSIONS"), (FILTERS, "latest")], "`IMMUTABLE_WITH_EXCLUSIONS` is not a tag mutability")]
#[case::filter_regex("image-tag-mutability-exclusion-filters", &[("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION"), (FILTERS, "v[0-9]+")], "`v[0-9]+` is not an ECR wildcard filter")]
#[case::filter_question_mark("image-tag-mutability-exclusion-filters", &[("image-tag-mutability", "MUTABLE_WITH_EXCLUSION"), (FILTERS, "latest,dev-?")], "`dev-?` is not an ECR wildcard filter")]
#[case::filter_with_slash("image-tag-mutability-exclusion-filters", &[("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION"), (FILTERS, "release/*")], "`release/*` is not an ECR wildcard filter")]
#[case::filter_too_long("image-tag-mutability-exclusion-filters", &[("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION"), (FILTERS, &*"x".repeat(129).leak())], "is not an ECR wildcard filter: use 1 to 128")]
#[case::six_filters("image-tag-mutability-exclusion-filters", &[("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION"), (FILTERS, "a,b,c,d,e,f")], "6 filters given: ECR takes at most 5")]
#[case::duplicate_filter("image-tag-mutability-exclusion-filters", &[("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION"), (FILTERS, "latest\nlatest")], "`latest` is listed twice")]
#[case::immutable_with_exclusion_without_filters("image-tag-mutability-exclusion-filters", &[("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION")], "`image-tag-mutability` is `IMMUTABLE_WITH_EXCLUSION`, which needs at least one filter")]
#[case::mutable_with_exclusion_without_filters("image-tag-mutability-exclusion-filters", &[("image-tag-mutability", "MUTABLE_WITH_EXCLUSION"), (FILTERS, " ")], "`image-tag-mutability` is `MUTABLE_WITH_EXCLUSION`, which needs at least one filter")]
#[case::filters_with_immutable("image-tag-mutability-exclusion-filters", &[("image-tag-mutability", "IMMUTABLE"), (FILTERS, "latest")], "and `image-tag-mutability` is `IMMUTABLE`")]
#[case::filters_with_default_mutable("image-tag-mutability-exclusion-filters", &[(FILTERS, "latest")], "and `image-tag-mutability` is `MUTABLE`")]
// split builds (issue 10): platform-only, results-folder, merge
#[case::platform_only_yes("platform-only", &[("platform-only", "yes")], "`yes` is not a boolean")]
#[case::arch_tags_in_platform_only("arch-tags", &[("platform-only", "true"), ("arch-tags", "true")], "a `platform-only` run puts no tag at all: set `arch-tags` on the `merge` run")]
#[case::results_folder_is_a_file("results-folder", &[("platform-only", "true"), ("results-folder", "/etc/hostname")], "`/etc/hostname` is a file: give a folder")]
#[case::platform_only_and_merge("merge", &[("platform-only", "true"), ("merge", "ecr-multiarch-results")], "a run does one of the two")]
#[case::merge_missing_folder("merge", &[("merge", "/nonexistent/ecr-multiarch-results")], "`/nonexistent/ecr-multiarch-results` is neither a folder of results nor an image reference")]
#[case::merge_short_digest("merge", &[("merge", "sha256:abc123")], "`sha256:abc123` is not an image reference: use `<repository>@sha256:<64 hex digits>`")]
#[case::merge_another_repository("merge", &[("merge", "127.0.0.1:5000/other/repo@sha256:0000000000000000000000000000000000000000000000000000000000000000")], "names another repository")]
#[case::merge_listed_twice("merge", &[("merge", "sha256:1111111111111111111111111111111111111111111111111111111111111111\nsha256:1111111111111111111111111111111111111111111111111111111111111111")], "is listed twice")]
// engines
#[case::engine_without_address("engines", &[("engines", "linux/arm64")], "`linux/arm64` is not `<platform>=<address>`")]
#[case::engine_unknown_platform("engines", &[("engines", "linux/aarch64=tcp://graviton:2376")], "unknown architecture `aarch64` (did you mean `arm64`?)")]
#[case::engine_platform_not_built("engines", &[("platforms", "linux/amd64"), ("engines", "linux/arm64=tcp://graviton:2376")], "`linux/arm64` is not in `platforms` (`linux/amd64`)")]
#[case::engine_no_scheme("engines", &[("engines", "linux/arm64=graviton:2376")], "`graviton:2376` is not a Docker Engine address: use `unix:///<socket path>` or `tcp://<host>[:<port>]`")]
#[case::engine_bad_port("engines", &[("engines", "linux/arm64=tcp://graviton:70000")], "`tcp://graviton:70000` is not a host and port")]
#[case::engine_relative_socket("engines", &[("engines", "linux/arm64=unix://docker.sock")], "does not name a socket by its absolute path")]
#[case::engine_over_ssh("engines", &[("engines", "linux/arm64=ssh://ubuntu@graviton")], "Engines over SSH are not supported")]
#[case::engine_twice("engines", &[("engines", "linux/arm64=tcp://a:2376,linux/arm64/v8=tcp://b:2376")], "`linux/arm64` is given an Engine twice")]
#[tokio::test]
async fn bad_input_fails_before_any_side_effect(
    #[case] input: &str,
    #[case] given: &[(&str, &str)],
    #[case] message: &str,
) {
    let repository = unique_repository("bad-input");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let mut run = Run::new(&repository, context.path());
    for (name, value) in given {
        run.input(name, value);
    }
    let result = run.run();
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    let error = result.error_line();
    assert!(
        error.starts_with(&format!("::error title=Invalid input {input}::")),
        "{error}"
    );
    assert!(error.contains(message), "{error}");
    assert!(result.outputs.is_empty(), "no outputs on failure");
    assert!(
        moto_repository(&repository).await.is_none(),
        "no repository created"
    );
    assert!(registry_tags(&repository).is_empty(), "no tag pushed");
}

#[tokio::test]
async fn a_symlink_out_of_the_context_is_refused_before_any_side_effect() {
    let repository = unique_repository("symlink");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    std::os::unix::fs::symlink("/etc/passwd", context.path().join("passwd")).unwrap();
    let result = Run::new(&repository, context.path()).run();
    assert_eq!(result.code, 1);
    let error = result.error_line();
    assert!(
        error.starts_with("::error title=Invalid input context::"),
        "{error}"
    );
    assert!(error.contains("outside the build context"), "{error}");
    assert!(moto_repository(&repository).await.is_none());
}

#[test]
fn flags_win_over_input_variables() {
    let repository = unique_repository("flags");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    // The variable is bad, the flag is good: the flag decides, so the run gets past
    // validation and fails on the other, bad, flag instead.
    let result = Run::new(&repository, context.path())
        .input("network", "bridge")
        .flag("network", "none")
        .flag("platforms", "linux")
        .run();
    assert_eq!(result.code, 1);
    let error = result.error_line();
    assert!(
        error.starts_with("::error title=Invalid input platforms::"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_docker_engine_is_a_system_failure_before_any_side_effect() {
    let repository = unique_repository("no-engine");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .run();
    assert_eq!(result.code, 2, "{}", result.stdout);
    let error = result.error_line();
    assert!(
        error.contains("cannot reach the Docker Engine at `unix:///nonexistent/docker.sock`"),
        "{error}"
    );
    assert!(moto_repository(&repository).await.is_none());
}

#[test]
fn an_unreachable_ecr_endpoint_is_a_system_failure() {
    let repository = unique_repository("no-ecr");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .env("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:9")
        .env("AWS_MAX_ATTEMPTS", "1")
        .run();
    assert_eq!(result.code, 2, "{}", result.stdout);
    let error = result.error_line();
    assert!(
        error.contains("getting an ECR authorization token failed"),
        "{error}"
    );
    assert!(
        error.contains("check the AWS credentials and region"),
        "{error}"
    );
}

/// A request for `repository` with the given tag mutability inputs, as the action reads them.
fn mutability_request(
    repository: &str,
    context: &std::path::Path,
    mode: &str,
    filters: &str,
) -> Request {
    Request::try_from(Args {
        repository: Some(repository.to_owned()),
        context: Some(context.to_str().unwrap().to_owned()),
        aws_region: std::env::var("AWS_REGION").ok(),
        image_tag_mutability: Some(mode.to_owned()),
        image_tag_mutability_exclusion_filters: Some(filters.to_owned()),
        ..Args::default()
    })
    .expect("valid inputs")
}

/// The mode and filters moto holds for a repository.
async fn moto_mutability(repository: &str) -> (String, Vec<String>) {
    let described = moto_repository(repository)
        .await
        .expect("the repository exists");
    (
        described
            .image_tag_mutability()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        described
            .image_tag_mutability_exclusion_filters()
            .iter()
            .map(|f| {
                assert_eq!(f.filter_type().as_str(), "WILDCARD");
                f.filter().to_owned()
            })
            .collect(),
    )
}

#[rstest]
#[case::mutable("MUTABLE", "", &[])]
#[case::immutable("IMMUTABLE", "", &[])]
#[case::immutable_with_exclusion("IMMUTABLE_WITH_EXCLUSION", "latest\ndev-*", &["latest", "dev-*"])]
#[case::mutable_with_exclusion("MUTABLE_WITH_EXCLUSION", "v*.*.*,stable", &["v*.*.*", "stable"])]
#[tokio::test]
async fn each_tag_mutability_mode_is_applied_when_creating(
    #[case] mode: &str,
    #[case] filters: &str,
    #[case] expected_filters: &[&str],
) {
    let repository = unique_repository("mutability");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let request = mutability_request(&repository, context.path(), mode, filters);
    let ecr = Ecr::connect(&request.ecr_connection()).await;
    let ensured = ecr
        .ensure_repository(&request.wanted_repository())
        .await
        .expect("created");
    assert!(ensured.created);
    assert_eq!(ensured.mutability, request.image_tag_mutability);
    // What ECR (moto) now holds, read with a client of its own.
    let (held_mode, held_filters) = moto_mutability(&repository).await;
    assert_eq!(held_mode, mode);
    assert_eq!(held_filters, expected_filters);
}

#[tokio::test]
async fn an_existing_repository_keeps_its_mutability_and_reports_it() {
    let repository = unique_repository("mutability-existing");
    ecr_client()
        .await
        .create_repository()
        .repository_name(&repository)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::ImmutableWithExclusion)
        .image_tag_mutability_exclusion_filters(
            aws_sdk_ecr::types::ImageTagMutabilityExclusionFilter::builder()
                .filter_type(aws_sdk_ecr::types::ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter("latest")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    // The inputs ask for something else: they apply only when creating.
    let request = mutability_request(&repository, context.path(), "MUTABLE", "");
    let ensured = Ecr::connect(&request.ecr_connection())
        .await
        .ensure_repository(&request.wanted_repository())
        .await
        .expect("exists");
    assert!(!ensured.created);
    assert_eq!(
        ensured.mutability.to_string(),
        "IMMUTABLE_WITH_EXCLUSION (latest)"
    );
    assert!(!ensured.mutability.is_immutable("latest"));
    assert!(ensured.mutability.is_immutable("v1.0.0"));
    assert_eq!(
        moto_mutability(&repository).await,
        (
            "IMMUTABLE_WITH_EXCLUSION".to_owned(),
            vec!["latest".to_owned()]
        )
    );
}

#[tokio::test]
async fn the_action_creates_the_repository_with_the_exclusion_filters() {
    let repository = unique_repository("mutability-run");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .input("tags", "v1.0.0,latest")
        .input("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION")
        .input("image-tag-mutability-exclusion-filters", "latest, dev-*")
        .run();
    result.assert_success();
    assert_eq!(result.json()["metadata"]["repository-created"], true);
    assert_eq!(
        moto_mutability(&repository).await,
        (
            "IMMUTABLE_WITH_EXCLUSION".to_owned(),
            vec!["latest".to_owned(), "dev-*".to_owned()]
        )
    );
    // Only the requested tags, as arch tags are off by default (plus today's build tag).
    let mut tags = registry_tags(&repository);
    tags.retain(|t| !t.starts_with("build-"));
    tags.sort();
    assert_eq!(tags, vec!["latest", "v1.0.0"]);
}
