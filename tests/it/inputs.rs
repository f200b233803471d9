//! Bad input ends the run with exit 1 and one `::error` naming the input, before anything is
//! created or pushed.

use rstest::rstest;

use super::{fixture, moto_repository, registry_tags, unique_repository, Run};

const DOCKERFILE: &str = "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\n";

#[rstest]
#[case::uppercase_repository("repository", "Team/API", "is not an ECR repository name")]
#[case::bad_platform("platforms", "linux", "is not a platform")]
#[case::duplicate_platform("platforms", "linux/amd64,linux/amd64", "listed twice")]
#[case::empty_os_platform("platforms", "/arm64", "is not a platform")]
#[case::bad_tag("tags", "latest,.hidden", "is not a valid tag")]
#[case::tag_too_long("tags", &"x".repeat(129), "is not a valid tag")]
#[case::duplicate_tag("tags", "v1,v1", "listed twice")]
#[case::build_arg_without_value("build-args", "JUST_A_NAME", "is not `KEY=VALUE`")]
#[case::label_without_key("labels", "=value", "no usable key")]
#[case::bad_target("target", "-stage", "is not a stage name")]
#[case::bad_network("network", "bridge", "is not a network mode")]
#[case::bad_no_cache("no-cache", "yes", "is not a boolean")]
#[case::bad_region("aws-region", "us_east_1", "is not an AWS region")]
#[case::bad_registry_id("registry-id", "12345", "is not an AWS account id")]
#[case::registry_with_scheme("registry", "https://127.0.0.1:5000", "is not a registry address")]
#[case::bad_create_repository("create-repository", "maybe", "is not a boolean")]
#[case::bad_mutability("image-tag-mutability", "mutable", "is not a tag mutability")]
#[case::bad_scan_on_push("scan-on-push", "on", "is not a boolean")]
#[case::bad_arch_tags("arch-tags", "1", "is not a boolean")]
#[case::missing_context("context", "/nonexistent/context", "is not a folder")]
#[case::missing_file("file", "/nonexistent/Dockerfile", "is not a file")]
#[tokio::test]
async fn bad_input_fails_before_any_side_effect(
    #[case] input: &str,
    #[case] value: &str,
    #[case] message: &str,
) {
    let repository = unique_repository("bad-input");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .input(input, value)
        .run();
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
