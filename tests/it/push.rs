//! Platform images pushed by digest through the registry API: re-runs that are safe on
//! immutable repositories, tags that move only when they may, layers sent once, and transient
//! registry failures retried (what the ECR layer counted is the independent witness).

use std::time::{Duration, Instant};

use super::scratch_engine::ScratchEngine;
use super::{
    fixture, layer_counters, layer_faults, registry_tags, skopeo_digest, testbed,
    unique_repository, LayerCounters, Run,
};
use crate::assert_user_sees;

const DOCKERFILE: &str = "\
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH}
ARG RELEASE
RUN echo \"$RELEASE on $(uname -m)\" > /release
CMD [\"cat\", \"/release\"]
";

/// A release run: `tags`, built with `RELEASE=release`.
fn release(repository: &str, context: &std::path::Path, release: &str, tags: &str) -> Run {
    let mut run = Run::new(repository, context);
    run.input("tags", tags)
        .input("build-args", &format!("RELEASE={release}"));
    run
}

/// Blob uploads started and manifests put, as the layer counted them.
fn uploads(counters: &LayerCounters) -> (u64, u64) {
    (
        counters.requests("upload_start"),
        counters.requests("manifest_put"),
    )
}

#[tokio::test]
async fn a_re_run_on_an_immutable_repository_is_a_no_op() {
    let repository = unique_repository("immutable-rerun");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let run = || {
        release(&repository, context.path(), "1.0.0", "1.0.0,latest")
            .input("image-tag-mutability", "IMMUTABLE")
            .run()
    };
    let first = run();
    first.assert_success();
    let digest = first.outputs["digest"].clone();
    let before = layer_counters(&repository).await;

    let again = run();
    again.assert_success();
    assert_eq!(again.outputs["digest"], digest);
    // Nothing uploaded: no blob upload started, no manifest PUT (which ECR would refuse with
    // TAG_INVALID on an existing immutable tag, even with the same digest).
    let after = layer_counters(&repository).await;
    assert_eq!(uploads(&after), uploads(&before), "{after:?}");
    assert_eq!(after.rule("tag_invalid"), 0, "{after:?}");
    let metadata = again.metadata();
    let registry = &testbed().registry;
    for tag in ["1.0.0", "latest"] {
        assert_eq!(
            metadata["tag-updates"][format!("{registry}/{repository}:{tag}")],
            "unchanged",
            "{metadata}"
        );
        assert_eq!(
            skopeo_digest(&repository, tag).as_deref(),
            Some(digest.as_str())
        );
    }
    for platform in ["linux/amd64", "linux/arm64"] {
        assert_eq!(metadata["platforms"][platform]["layers-uploaded"], 0);
        assert_eq!(metadata["platforms"][platform]["bytes-uploaded"], 0);
    }
    assert!(
        again
            .summary
            .contains("(unchanged: it already held this index)"),
        "{}",
        again.summary
    );
}

#[tokio::test]
async fn a_changed_build_cannot_move_an_immutable_tag() {
    let repository = unique_repository("immutable-changed");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let first = release(&repository, context.path(), "1.0.0", "1.0.0,latest")
        .input("image-tag-mutability", "IMMUTABLE")
        .run();
    first.assert_success();
    let digest = first.outputs["digest"].clone();
    let before = layer_counters(&repository).await;

    // Another build under a new version tag and the same `latest`: `latest` cannot move, so
    // the run ends before anything is uploaded and neither tag changes.
    let second = release(&repository, context.path(), "1.1.0", "1.1.0,latest")
        .expect_exit(1)
        .run();
    let error = second.error("Tag latest is immutable");
    assert!(
        error.contains(&format!("already holds `{digest}`")),
        "{error}"
    );
    assert_user_sees!("immutable_tag_error", second.error_line());
    let after = layer_counters(&repository).await;
    assert_eq!(uploads(&after), uploads(&before), "{after:?}");
    assert_eq!(skopeo_digest(&repository, "latest"), Some(digest.clone()));
    assert_eq!(skopeo_digest(&repository, "1.1.0"), None);
    assert!(second.outputs.is_empty());
}

#[test]
fn an_excluded_tag_moves_in_an_immutable_repository() {
    let repository = unique_repository("immutable-exclusion");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let run = |version: &str| {
        release(
            &repository,
            context.path(),
            version,
            &format!("{version},latest"),
        )
        .input("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION")
        .input("image-tag-mutability-exclusion-filters", "latest")
        .run()
    };
    let first = run("1.0.0");
    first.assert_success();
    let second = run("1.1.0");
    second.assert_success();
    let digest = second.outputs["digest"].clone();
    assert_ne!(digest, first.outputs["digest"]);
    assert_eq!(skopeo_digest(&repository, "latest"), Some(digest.clone()));
    assert_eq!(skopeo_digest(&repository, "1.1.0"), Some(digest));
    assert_eq!(
        skopeo_digest(&repository, "1.0.0"),
        Some(first.outputs["digest"].clone())
    );
    // `1.0.0` itself stays immutable.
    let moved = release(&repository, context.path(), "other", "1.0.0")
        .expect_exit(1)
        .run();
    moved.error("Tag 1.0.0 is immutable");
}

#[tokio::test]
async fn throttling_and_a_dropped_upload_are_retried() {
    let repository = unique_repository("retried");
    // ECR's PutImage limit, and a connection that breaks in the middle of a layer upload.
    layer_faults(
        &repository,
        serde_json::json!({"throttle_manifest_puts": 2, "drop_blob_uploads": 1}),
    )
    .await;
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = release(&repository, context.path(), &repository, "latest").run();
    result.assert_success();
    assert_eq!(
        skopeo_digest(&repository, "latest"),
        Some(result.outputs["digest"].clone())
    );
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.fault("throttled"), 2, "{counters:?}");
    assert_eq!(counters.fault("dropped"), 1, "{counters:?}");
    // Each retry is one line, in the log group of the platform (or phase) it belongs to.
    let retries: Vec<&str> = result
        .stdout
        .lines()
        .filter(|l| l.contains("] retrying "))
        .collect();
    assert_eq!(retries.len(), 3, "{}", result.stdout);
    assert_eq!(
        retries
            .iter()
            .filter(|l| l.contains("HTTP 429 TOOMANYREQUESTS"))
            .count(),
        2,
        "{retries:#?}"
    );
    assert!(
        retries
            .iter()
            .any(|l| l.contains("uploading blob") && l.starts_with("[linux/")),
        "{retries:#?}"
    );
}

#[tokio::test]
async fn a_registry_that_keeps_failing_is_exit_2_within_the_bound_and_moves_no_tag() {
    let repository = unique_repository("failing-registry");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let first = release(&repository, context.path(), "1", "latest").run();
    first.assert_success();
    let digest = first.outputs["digest"].clone();

    layer_faults(&repository, serde_json::json!({"unavailable_every": 1})).await;
    let started = Instant::now();
    let failed = release(&repository, context.path(), "2", "latest").run();
    let took = started.elapsed();
    layer_faults(&repository, serde_json::json!({"unavailable_every": 0})).await;
    assert_eq!(failed.code, 2, "{}\n{}", failed.stdout, failed.stderr);
    let error = failed.error_line();
    assert!(
        error.contains(&format!("on `{}`", testbed().registry)),
        "{error}"
    );
    assert!(error.contains("after 6 attempts: HTTP 503"), "{error}");
    // The documented bound: at most 25 s of waiting per request, plus the builds.
    assert!(took < Duration::from_mins(1), "{took:?}");
    assert_eq!(skopeo_digest(&repository, "latest"), Some(digest));
}

#[tokio::test]
async fn a_fresh_runner_uploads_no_layer_the_repository_has() {
    let repository = unique_repository("fresh-runner");
    // No `RUN` and no new folder: a rebuild from an empty cache gives the same layers (COPY
    // keeps the context's file times; a folder it creates would get the time of the build),
    // though a new config (its creation time).
    let context = fixture(&[
        (
            "Dockerfile",
            "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nCOPY app.txt /app.txt\nCMD [\"cat\", \"/app.txt\"]\n",
        ),
        ("app.txt", "the same commit"),
    ]);
    let engine_kind = std::env::var("TESTBED_ENGINE").unwrap_or_else(|_| "system".to_owned());
    let engine = ScratchEngine::start(
        &engine_kind,
        &["testbase/busybox:amd64", "testbase/busybox:arm64"],
    );
    let run = || {
        Run::new(&repository, context.path())
            .env("DOCKER_HOST", &engine.host)
            .input("tags", "main")
            .run()
    };
    let first = run();
    first.assert_success();
    let before = layer_counters(&repository).await;

    // What a fresh runner's Engine looks like: none of the built images (they are untagged:
    // the action pushes by digest), no build cache; the base images stay, as a runner's
    // `FROM` images would be pulled again.
    engine.docker(&["image", "prune", "-f"]);
    engine.docker(&["builder", "prune", "-af"]);
    let second = run();
    second.assert_success();
    let after = layer_counters(&repository).await;
    let metadata = second.metadata();
    let mut layers_uploaded = 0;
    let mut configs = 0;
    for platform in ["linux/amd64", "linux/arm64"] {
        let p = &metadata["platforms"][platform];
        assert_eq!(p["layers-uploaded"], 0, "{metadata}");
        assert!(p["layers-reused"].as_u64().unwrap() >= 2, "{metadata}");
        layers_uploaded += p["layers-uploaded"].as_u64().unwrap();
        configs += u64::from(p["bytes-uploaded"].as_u64().unwrap() > 0);
    }
    // The layer saw exactly what metadata says: no layer, at most one config per platform.
    let blob_uploads = after.requests("upload_start") - before.requests("upload_start");
    assert_eq!(blob_uploads, layers_uploaded + configs, "{after:?}");
    assert_eq!(registry_tags(&repository), ["main"]);
}
