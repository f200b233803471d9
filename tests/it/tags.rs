//! Tags for real workflows: release tags with `semver` and `latest=auto` decided against the
//! ECR repository (moto, which the testbed's ECR layer keeps in step with every push), and the
//! GitHub API (a local wiremock server as `GITHUB_API_URL`).

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{fixture, skopeo_digest, unique_repository, Run};

const DOCKERFILE: &str =
    "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nARG VERSION\nRUN echo \"$VERSION\" > /version\n";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A run for a release tag `v<version>`, as the runner describes a tag push.
fn release_run(repository: &str, context: &std::path::Path, version: &str) -> Run {
    let mut run = Run::new(repository, context);
    run.input("platforms", "linux/amd64")
        .input("tag-rules", "semver\nlatest=auto")
        .input("build-args", &format!("VERSION={version}"))
        .env("GITHUB_REF", &format!("refs/tags/v{version}"))
        .env("GITHUB_REF_NAME", &format!("v{version}"))
        .env("GITHUB_REF_TYPE", "tag")
        .env("GITHUB_SHA", SHA)
        .env("GITHUB_EVENT_NAME", "push");
    run
}

/// Through the testbed registry and its ECR layer, a pushed release is what `ListImages` lists,
/// as on ECR: nothing is seeded in moto by hand.
#[tokio::test]
async fn latest_auto_never_moves_latest_back() {
    let repository = unique_repository("latest-auto");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let registry = &super::testbed().registry;

    // Release 1.5.0 on a new repository: `latest` goes to it.
    let current = release_run(&repository, context.path(), "1.5.0").run();
    current.assert_success();
    let current_digest = current.outputs["digest"].clone();
    assert_eq!(
        skopeo_digest(&repository, "latest"),
        Some(current_digest.clone())
    );

    // A patch of the old 1.4 line: semver tags, but `latest` stays on 1.5.0.
    let patch = release_run(&repository, context.path(), "1.4.3").run();
    patch.assert_success();
    let pushed: Vec<&str> = patch.outputs["tags"].split(',').collect();
    assert_eq!(
        pushed,
        ["1.4.3", "1.4", "1"]
            .map(|t| format!("{registry}/{repository}:{t}"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert!(
        patch.stdout.contains("so `latest` stays where it is"),
        "{}",
        patch.stdout
    );
    assert_ne!(patch.outputs["digest"], current_digest);
    assert_eq!(
        skopeo_digest(&repository, "latest"),
        Some(current_digest.clone())
    );

    // A new highest release: `latest` moves to it.
    let release = release_run(&repository, context.path(), "1.6.0")
        .input("arch-tags", "true")
        .run();
    release.assert_success();
    let digest = release.outputs["digest"].clone();
    assert_ne!(digest, current_digest);
    assert_eq!(skopeo_digest(&repository, "latest"), Some(digest.clone()));
    assert_eq!(skopeo_digest(&repository, "1.6"), Some(digest.clone()));
    let metadata: serde_json::Value = serde_json::from_str(&release.outputs["metadata"]).unwrap();
    let sources = &metadata["tag-sources"];
    assert_eq!(
        sources[format!("{registry}/{repository}:latest")],
        "latest=auto"
    );
    assert_eq!(sources[format!("{registry}/{repository}:1.6.0")], "semver");
    // Per-platform tags follow the first tag.
    assert!(skopeo_digest(&repository, "1.6.0-amd64").is_some());
    eprintln!("release v1.6.0 pushed: {}", release.outputs["tags"]);
}

#[tokio::test]
async fn a_pre_release_gets_only_its_own_tag() {
    let repository = unique_repository("pre-release");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = release_run(&repository, context.path(), "2.0.0-rc.1").run();
    result.assert_success();
    assert_eq!(
        result.outputs["tags"],
        format!("{}/{repository}:2.0.0-rc.1", super::testbed().registry)
    );
    assert!(
        result.stdout.contains("is a pre-release"),
        "{}",
        result.stdout
    );
}

#[tokio::test]
async fn rules_that_give_no_tag_at_all_are_an_input_error() {
    let repository = unique_repository("no-tag");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .input("tag-rules", "semver")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_REF_TYPE", "branch")
        .run();
    assert_eq!(result.code, 1);
    let error = result.error_line();
    assert!(
        error.starts_with("::error title=Invalid input tag-rules::"),
        "{error}"
    );
    assert!(error.contains("no tag at all"), "{error}");
    assert!(super::moto_repository(&repository).await.is_none());
}

#[tokio::test]
async fn full_references_from_metadata_action_are_accepted() {
    let repository = unique_repository("full-refs");
    let registry = &super::testbed().registry;
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .input(
            "tags",
            &format!("{registry}/{repository}:main\n{registry}/{repository}:sha-0123456"),
        )
        .run();
    result.assert_success();
    assert!(skopeo_digest(&repository, "sha-0123456").is_some());
    let other = Run::new(&repository, context.path())
        .input("tags", &format!("{registry}/someone/else:main"))
        .run();
    assert_eq!(other.code, 1);
    assert!(other.error_line().contains("names another repository"));
}

/// A release run against a fake GitHub API with a token, with the release event's payload
/// (written into the context folder, which `.dockerignore` keeps out of the image).
fn github_run(repository: &str, context: &std::path::Path, api: &MockServer) -> Run {
    let event = context.join("event.json");
    std::fs::write(
        &event,
        r#"{"action":"published","release":{"id":42,"tag_name":"v2.1.0","created_at":"2026-11-20T10:00:00Z"}}"#,
    )
    .unwrap();
    let mut run = Run::new(repository, context);
    run.env("GITHUB_EVENT_PATH", event.to_str().unwrap());
    run.input("platforms", "linux/amd64")
        .input("tag-rules", "semver")
        .input("github-token", "ghs_test_token")
        .env("GITHUB_API_URL", &api.uri())
        .env("GITHUB_REPOSITORY", "octo/app")
        .env("GITHUB_REF", "refs/tags/v2.1.0")
        .env("GITHUB_REF_NAME", "v2.1.0")
        .env("GITHUB_REF_TYPE", "tag")
        .env("GITHUB_SHA", SHA)
        .env("GITHUB_EVENT_NAME", "release");
    run
}

fn json_body(request: &wiremock::Request) -> serde_json::Value {
    serde_json::from_slice(&request.body).unwrap()
}

#[tokio::test]
async fn the_commit_status_and_release_notes_name_the_image() {
    let repository = unique_repository("github-api");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let api = MockServer::start().await;
    let (start, end) = ecr_multiarch::github_api::release_markers(&repository);
    Mock::given(method("POST"))
        .and(path(format!("/repos/octo/app/statuses/{SHA}")))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/app/releases/tags/v2.1.0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "id": 42,
            "body": format!("Notes\n\n{start}\nold section\n{end}\n"),
        })))
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/octo/app/releases/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": 42})))
        .expect(1)
        .mount(&api)
        .await;

    let result = github_run(&repository, context.path(), &api).run();
    result.assert_success();
    assert!(!result.stdout.contains("::warning"), "{}", result.stdout);
    let digest = &result.outputs["digest"];
    let requests = api.received_requests().await.unwrap();
    for request in &requests {
        assert_eq!(
            request.headers.get("authorization").unwrap(),
            "Bearer ghs_test_token"
        );
    }
    let status = json_body(&requests[0]);
    assert_eq!(status["state"], "success");
    assert_eq!(status["context"], format!("ecr-multiarch/{repository}"));
    assert_eq!(status["description"], format!("pushed index {digest}"));
    let target = status["target_url"].as_str().unwrap();
    assert!(
        target.starts_with(
            "https://us-east-1.console.aws.amazon.com/ecr/repositories/private/123456789012/"
        ) && target.contains(digest.as_str()),
        "{target}"
    );
    let patched = json_body(&requests[2])["body"].as_str().unwrap().to_owned();
    assert!(patched.starts_with("Notes\n\n"), "{patched}");
    assert_eq!(patched.matches(&start).count(), 1, "{patched}");
    assert!(!patched.contains("old section"));
    assert!(
        patched.contains(&format!("- Digest: `{digest}`")),
        "{patched}"
    );
    assert!(patched.contains("- Platforms: `linux/amd64`"), "{patched}");
    api.verify().await;

    // A re-run finds its section already in place: no second edit.
    api.reset().await;
    Mock::given(method("POST"))
        .and(path(format!("/repos/octo/app/statuses/{SHA}")))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 2})))
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/app/releases/tags/v2.1.0"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": 42, "body": patched})),
        )
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
        .expect(0)
        .mount(&api)
        .await;
    let again = github_run(&repository, context.path(), &api).run();
    again.assert_success();
    assert_eq!(&again.outputs["digest"], digest);
    api.verify().await;
}

#[tokio::test]
async fn a_failing_github_api_leaves_the_run_green_with_a_warning() {
    let repository = unique_repository("github-500");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(500).set_body_json(serde_json::json!({"message": "boom"})),
        )
        .mount(&api)
        .await;
    let result = github_run(&repository, context.path(), &api).run();
    result.assert_success();
    let warnings: Vec<&str> = result
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning::"))
        .collect();
    assert_eq!(warnings.len(), 2, "{}", result.stdout);
    assert!(warnings[0].contains("commit status") && warnings[0].contains("the image is pushed"));
    assert!(warnings[1].contains("release notes"));
    assert!(skopeo_digest(&repository, "2.1.0").is_some());
}

#[tokio::test]
async fn without_a_token_the_github_api_is_skipped_with_a_notice() {
    let repository = unique_repository("github-none");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let api = MockServer::start().await;
    let result = github_run(&repository, context.path(), &api)
        .input("github-token", "")
        .run();
    result.assert_success();
    assert!(
        result.stdout.contains("::notice::no `github-token`"),
        "{}",
        result.stdout
    );
    assert!(api.received_requests().await.unwrap().is_empty());
}
