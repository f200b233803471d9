//! Building and publishing: what the registry, the Engine and moto hold after a run.

use super::{
    assert_nothing_created, ecr_client, fixture, json_shape, moto_repository, run_image,
    skopeo_digest, skopeo_raw, testbed, unique_repository, Run,
};
use crate::assert_user_sees;

const APP_DOCKERFILE: &str = "\
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH}
ARG GREETING
RUN uname -m > /arch && echo \"$GREETING\" > /greeting
COPY . /app/
CMD [\"cat\", \"/arch\"]
";

fn platforms_of(index: &serde_json::Value) -> Vec<String> {
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    platforms.sort();
    platforms
}

#[tokio::test]
async fn two_platforms_become_one_index_under_every_tag() {
    let repository = unique_repository("two-platforms");
    let context = fixture(&[
        ("Dockerfile", APP_DOCKERFILE),
        ("app.txt", "shipped"),
        ("secret.env", "TOKEN=never-in-the-image"),
        (".dockerignore", "secret.env\n"),
    ]);
    let result = Run::new(&repository, context.path())
        .input("tags", "latest,v1")
        .input("arch-tags", "true")
        .input("build-args", "GREETING=hello from the test")
        .input("labels", "org.opencontainers.image.title=two-platforms")
        .run();
    result.assert_success();
    let digest = result.outputs["digest"].clone();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(result.json()["digest"], digest.as_str());

    // The registry holds one index under both tags, with exactly the two platforms.
    for tag in ["latest", "v1"] {
        assert_eq!(
            skopeo_digest(&repository, tag).as_deref(),
            Some(digest.as_str())
        );
        let index = skopeo_raw(&repository, tag).expect("the tag exists");
        assert_eq!(platforms_of(&index), vec!["linux/amd64", "linux/arm64"]);
    }
    let platform_digests: serde_json::Value =
        serde_json::from_str(&result.outputs["platform-digests"]).unwrap();
    let index = skopeo_raw(&repository, "latest").unwrap();
    for entry in index["manifests"].as_array().unwrap() {
        let platform = format!(
            "linux/{}",
            entry["platform"]["architecture"].as_str().unwrap()
        );
        assert_eq!(platform_digests[&platform], entry["digest"]);
    }
    // Per-platform tags point at the children.
    assert_eq!(
        skopeo_digest(&repository, "latest-arm64"),
        platform_digests["linux/arm64"].as_str().map(str::to_owned)
    );

    // Each platform runs and is what it says.
    let image_uri = &result.outputs["image-uri"];
    assert_eq!(
        image_uri,
        &format!("{}/{repository}@{digest}", testbed().registry)
    );
    assert_eq!(run_image(image_uri, "linux/arm64", &[]), "aarch64");
    assert_eq!(run_image(image_uri, "linux/amd64", &[]), "x86_64");
    assert_eq!(
        run_image(image_uri, "linux/arm64", &["cat", "/greeting"]),
        "hello from the test"
    );
    // The ignored file never reached the daemon.
    assert_eq!(
        run_image(image_uri, "linux/amd64", &["ls", "-A", "/app"]),
        ".dockerignore\nDockerfile\napp.txt"
    );

    // The label is in the image config, which says arm64 for the arm64 child.
    let image_ref = image_uri
        .strip_prefix(&format!("{}/", testbed().registry))
        .unwrap();
    let config = super::skopeo(
        "inspect",
        &["--config", "--override-arch", "arm64"],
        image_ref,
    );
    assert!(
        config.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&config.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.title"],
        "two-platforms"
    );

    // moto created the repository with scan-on-push and our tag.
    let created = moto_repository(&repository).await.expect("created");
    assert!(
        created
            .image_scanning_configuration()
            .is_some_and(|c| c.scan_on_push()),
        "{created:?}"
    );
    let tags = ecr_client()
        .await
        .list_tags_for_resource()
        .resource_arn(created.repository_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert!(tags
        .tags()
        .iter()
        .any(|t| t.key() == "created-by" && t.value() == "ecr-multiarch"));
    assert_eq!(result.json()["metadata"]["repository-created"], true);
    // What the user reads: the summary, and the outputs JSON a workflow parses.
    assert_user_sees!("two_platforms_summary", &result.summary);
    assert_user_sees!("two_platforms_outputs", json_shape(&result.json()));

    // Nothing changed: a second run yields the same digest.
    let again = Run::new(&repository, context.path())
        .input("tags", "latest,v1")
        .input("build-args", "GREETING=hello from the test")
        .input("labels", "org.opencontainers.image.title=two-platforms")
        .run();
    again.assert_success();
    assert_eq!(again.outputs["digest"], digest);
    assert_eq!(again.json()["metadata"]["repository-created"], false);
}

#[tokio::test]
async fn an_existing_repository_is_used_as_it_is() {
    let repository = unique_repository("existing");
    ecr_client()
        .await
        .create_repository()
        .repository_name(&repository)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    let context = fixture(&[("Dockerfile", APP_DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/arm64")
        .input("create-repository", "false")
        .run();
    result.assert_success();
    assert_eq!(result.json()["metadata"]["repository-created"], false);
    let index = skopeo_raw(&repository, "latest").expect("pushed");
    assert_eq!(platforms_of(&index), vec!["linux/arm64"]);
}

#[tokio::test]
async fn a_missing_repository_without_create_fails_clearly() {
    let repository = unique_repository("missing");
    let context = fixture(&[("Dockerfile", APP_DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .input("create-repository", "false")
        .expect_exit(1)
        .run();
    let error = result.error_line();
    assert!(error.contains(&repository), "{error}");
    assert_user_sees!("missing_repository_error", error);
    assert_nothing_created(&repository).await;
}

#[tokio::test]
async fn a_failing_platform_moves_no_tag() {
    let repository = unique_repository("failing");
    let good = fixture(&[("Dockerfile", APP_DOCKERFILE)]);
    let first = Run::new(&repository, good.path())
        .input("arch-tags", "true")
        .run();
    first.assert_success();
    let before_latest = skopeo_digest(&repository, "latest").expect("pushed");
    let before_amd64 = skopeo_digest(&repository, "latest-amd64").expect("pushed");

    // amd64 builds (and differs from before); arm64 fails at its RUN step.
    let failing = fixture(&[(
        "Dockerfile",
        "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nRUN echo changed > /changed\nRUN echo checking \"$(uname -m)\" && test \"$(uname -m)\" != aarch64\n",
    )]);
    let result = Run::new(&repository, failing.path())
        .input("arch-tags", "true")
        .run();
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    let error = result.error_line();
    assert!(
        error.contains("title=Build failed for linux/arm64"),
        "{error}"
    );
    assert!(error.contains("file="), "{error}");
    assert!(error.contains("line=4"), "{error}");
    assert!(
        error.contains("checking aarch64"),
        "the step's last lines: {error}"
    );
    assert!(result.outputs.is_empty());

    assert_eq!(skopeo_digest(&repository, "latest"), Some(before_latest));
    assert_eq!(
        skopeo_digest(&repository, "latest-amd64"),
        Some(before_amd64)
    );
}

#[tokio::test]
async fn a_cross_compiling_dockerfile_builds_natively() {
    let repository = unique_repository("cross");
    let context = fixture(&[(
        "Dockerfile",
        "\
ARG BUILDARCH
FROM --platform=$BUILDPLATFORM testbase/busybox:${BUILDARCH} AS build
ARG TARGETARCH
RUN echo \"built on $(uname -m) for $TARGETARCH\" > /build-info
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH}
COPY --from=build /build-info /build-info
CMD [\"cat\", \"/build-info\"]
",
    )]);
    let result = Run::new(&repository, context.path()).run();
    result.assert_success();
    let image_uri = &result.outputs["image-uri"];
    assert_eq!(
        run_image(image_uri, "linux/arm64", &[]),
        "built on x86_64 for arm64"
    );
    assert_eq!(
        run_image(image_uri, "linux/amd64", &[]),
        "built on x86_64 for amd64"
    );
}

#[test]
fn a_dockerfile_outside_the_context_builds_the_target_stage() {
    let repository = unique_repository("outside");
    let context = fixture(&[("data.txt", "from the context")]);
    let dockerfiles = fixture(&[(
        "build/app.Dockerfile",
        "\
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH} AS base
COPY data.txt /data.txt
FROM base AS release
RUN echo release > /stage
FROM base AS debug
RUN echo debug > /stage
",
    )]);
    let dockerfile = dockerfiles.path().join("build/app.Dockerfile");
    let result = Run::new(&repository, context.path())
        .input("file", dockerfile.to_str().unwrap())
        .input("target", "release")
        .input("no-cache", "true")
        .input("platforms", "linux/arm64")
        .run();
    result.assert_success();
    let image_uri = &result.outputs["image-uri"];
    assert_eq!(
        run_image(image_uri, "linux/arm64", &["cat", "/stage", "/data.txt"]),
        "release\nfrom the context"
    );
    // no-cache: a second run executes the RUN step again instead of taking it from the cache.
    let again = Run::new(&repository, context.path())
        .input("file", dockerfile.to_str().unwrap())
        .input("target", "release")
        .input("no-cache", "true")
        .input("platforms", "linux/arm64")
        .run();
    again.assert_success();
    let step = again
        .stdout
        .lines()
        .find(|l| l.ends_with("RUN echo release > /stage"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the RUN step is logged")
        .to_owned();
    assert!(
        again.stdout.contains(&format!("[linux/arm64] {step} DONE")),
        "{}",
        again.stdout
    );
    assert!(
        !again.stdout.contains("debug"),
        "the debug stage is not built"
    );
}

#[test]
fn the_repository_holds_exactly_the_requested_tags() {
    let repository = unique_repository("only-asked-tags");
    let context = fixture(&[("Dockerfile", APP_DOCKERFILE)]);
    let sorted_tags = || {
        let mut tags = super::registry_tags(&repository);
        tags.sort();
        tags
    };
    // Platform images go by digest: the index tags are all the repository lists.
    let first = Run::new(&repository, context.path())
        .input("tags", "edge,v2")
        .run();
    first.assert_success();
    assert_eq!(sorted_tags(), ["edge", "v2"]);
    let digests: serde_json::Value =
        serde_json::from_str(&first.outputs["platform-digests"]).unwrap();
    for platform in ["linux/amd64", "linux/arm64"] {
        let child = digests[platform].as_str().unwrap();
        let manifest = skopeo_raw(&repository, child).expect("the child is in by digest");
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
    }

    // `arch-tags` adds `<first tag>-<arch>` on the children, and nothing else.
    let with_arch_tags = Run::new(&repository, context.path())
        .input("tags", "edge,v2")
        .input("arch-tags", "true")
        .run();
    with_arch_tags.assert_success();
    assert_eq!(with_arch_tags.outputs["digest"], first.outputs["digest"]);
    assert_eq!(sorted_tags(), ["edge", "edge-amd64", "edge-arm64", "v2"]);
    assert_eq!(
        skopeo_digest(&repository, "edge-arm64").as_deref(),
        digests["linux/arm64"].as_str()
    );
    let metadata: serde_json::Value =
        serde_json::from_str(&with_arch_tags.outputs["metadata"]).unwrap();
    assert_eq!(
        metadata["platforms"]["linux/amd64"]["arch-tag"]["action"],
        "pushed"
    );
    // The index tags already held this index: left as they were.
    assert_eq!(
        metadata["tag-updates"][format!("{}/{repository}:edge", testbed().registry)],
        "unchanged"
    );
}
