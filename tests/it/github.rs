//! Telling GitHub (a local wiremock server as `GITHUB_API_URL`, the one outside system tests may
//! fake): a commit status and a section in the release notes that name the pushed image, a
//! failing API that leaves the run green, and no token, no call. Also the stubs the other files'
//! release runs share ([`GitHubApi`]).

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{fixture, skopeo_digest, unique_repository, Run};

/// The commit the runner says it builds.
pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// The runner's description of a run for the tag `tag`, started by the event `event`.
pub fn on_tag<'a>(run: &'a mut Run, tag: &str, event: &str) -> &'a mut Run {
    run.env("GITHUB_REF", &format!("refs/tags/{tag}"))
        .env("GITHUB_REF_NAME", tag)
        .env("GITHUB_REF_TYPE", "tag")
        .env("GITHUB_SHA", SHA)
        .env("GITHUB_EVENT_NAME", event)
}

/// A fake GitHub API for the repository `octo/app`.
pub struct GitHubApi {
    pub server: MockServer,
}

impl GitHubApi {
    pub async fn start() -> GitHubApi {
        GitHubApi {
            server: MockServer::start().await,
        }
    }

    /// Points `run` at this API for `octo/app`, with a token.
    pub fn told_by<'a>(&self, run: &'a mut Run) -> &'a mut Run {
        run.input("github-token", "ghs_test_token")
            .env("GITHUB_API_URL", &self.server.uri())
            .env("GITHUB_REPOSITORY", "octo/app")
    }

    /// Expects one commit status on [`SHA`], one read of the notes of release `v2.1.0` (which
    /// answers `id` and `body`), and `edits` edits of them (when 0, none anywhere).
    pub async fn expect_status_and_release(&self, id: u64, body: &str, edits: u64) {
        Mock::given(method("POST"))
            .and(path(format!("/repos/octo/app/statuses/{SHA}")))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
            .expect(1)
            .mount(&self.server)
            .await;
        Mock::given(method("GET"))
            .and(path("/repos/octo/app/releases/tags/v2.1.0"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"id": id, "body": body})),
            )
            .expect(1)
            .mount(&self.server)
            .await;
        let edit = Mock::given(method("PATCH"));
        let edit = if edits == 0 {
            edit
        } else {
            edit.and(path(format!("/repos/octo/app/releases/{id}")))
        };
        edit.respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": id})))
            .expect(edits)
            .mount(&self.server)
            .await;
    }

    /// The requests received so far, in order.
    pub async fn requests(&self) -> Vec<wiremock::Request> {
        self.server.received_requests().await.unwrap()
    }

    /// The JSON body of the `index`th request received.
    pub async fn body(&self, index: usize) -> serde_json::Value {
        serde_json::from_slice(&self.requests().await[index].body).unwrap()
    }
}

const DOCKERFILE: &str =
    "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nARG VERSION\nRUN echo \"$VERSION\" > /version\n";

/// A release run against a fake GitHub API with a token, with the release event's payload
/// (written into the context folder, which `.dockerignore` keeps out of the image).
fn github_run(repository: &str, context: &std::path::Path, api: &GitHubApi) -> Run {
    let event = context.join("event.json");
    std::fs::write(
        &event,
        r#"{"action":"published","release":{"id":42,"tag_name":"v2.1.0","created_at":"2026-11-20T10:00:00Z"}}"#,
    )
    .unwrap();
    let mut run = Run::new(repository, context);
    run.env("GITHUB_EVENT_PATH", event.to_str().unwrap())
        .input("platforms", "linux/amd64")
        .input("tag-rules", "semver");
    on_tag(api.told_by(&mut run), "v2.1.0", "release");
    run
}

#[tokio::test]
async fn the_commit_status_and_release_notes_name_the_image() {
    let repository = unique_repository("github-api");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let api = GitHubApi::start().await;
    let (start, end) = ecr_multiarch::github_api::release_markers(&repository);
    api.expect_status_and_release(42, &format!("Notes\n\n{start}\nold section\n{end}\n"), 1)
        .await;

    let result = github_run(&repository, context.path(), &api).run();
    result.assert_success();
    assert!(!result.stdout.contains("::warning"), "{}", result.stdout);
    let digest = &result.outputs["digest"];
    for request in &api.requests().await {
        assert_eq!(
            request.headers.get("authorization").unwrap(),
            "Bearer ghs_test_token"
        );
    }
    let status = api.body(0).await;
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
    let patched = api.body(2).await["body"].as_str().unwrap().to_owned();
    assert!(patched.starts_with("Notes\n\n"), "{patched}");
    assert_eq!(patched.matches(&start).count(), 1, "{patched}");
    assert!(!patched.contains("old section"));
    assert!(
        patched.contains(&format!("- Digest: `{digest}`")),
        "{patched}"
    );
    assert!(patched.contains("- Platforms: `linux/amd64`"), "{patched}");
    api.server.verify().await;

    // A re-run finds its section already in place: no second edit.
    api.server.reset().await;
    api.expect_status_and_release(42, &patched, 0).await;
    let again = github_run(&repository, context.path(), &api).run();
    again.assert_success();
    assert_eq!(&again.outputs["digest"], digest);
    api.server.verify().await;
}

#[tokio::test]
async fn a_failing_github_api_leaves_the_run_green_with_a_warning() {
    let repository = unique_repository("github-500");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let api = GitHubApi::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(500).set_body_json(serde_json::json!({"message": "boom"})),
        )
        .mount(&api.server)
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
    let api = GitHubApi::start().await;
    let result = github_run(&repository, context.path(), &api)
        .input("github-token", "")
        .run();
    result.assert_success();
    assert!(
        result.stdout.contains("::notice::no `github-token`"),
        "{}",
        result.stdout
    );
    assert!(api.requests().await.is_empty());
}
