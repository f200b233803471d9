//! Tags for real workflows: release tags with `semver` and `latest=auto` decided against the
//! ECR repository (moto, which the testbed's ECR layer keeps in step with every push).

use super::github::on_tag;
use super::{assert_refused_input, fixture, skopeo_digest, unique_repository, Run};
use crate::assert_user_sees;

const DOCKERFILE: &str =
    "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nARG VERSION\nRUN echo \"$VERSION\" > /version\n";

/// A run for a release tag `v<version>`, as the runner describes a tag push.
fn release_run(repository: &str, context: &std::path::Path, version: &str) -> Run {
    let mut run = Run::new(repository, context);
    run.input("platforms", "linux/amd64")
        .input("tag-rules", "semver\nlatest=auto")
        .input("build-args", &format!("VERSION={version}"));
    on_tag(&mut run, &format!("v{version}"), "push");
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
    let error = assert_refused_input(&result, &repository, "tag-rules", "no tag at all").await;
    assert_user_sees!("no_tag_at_all_error", error);
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
        .expect_exit(1)
        .run();
    let error = other.error("Invalid input tags");
    assert!(error.contains("names another repository"), "{error}");
    assert_user_sees!("tag_of_another_repository_error", other.error_line());
}
