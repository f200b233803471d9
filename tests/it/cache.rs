//! Fast on a fresh runner (issue 11): the build cache travels with the pushed image and comes
//! back from the repository, and `skip-unchanged` builds nothing when nothing changed.
//!
//! A "fresh runner" is a scratch Engine ([`ScratchEngine`], of the kind under test) whose built
//! images and build cache are wiped between runs; the shared engines are never wiped.

use std::path::Path;
use std::process::Command;

use super::scratch_engine::ScratchEngine;
use super::{
    fixture, layer_counters, skopeo, skopeo_digest, skopeo_raw, testbed, unique_repository, Run,
    RunResult,
};

const ANNOTATION: &str = ecr_multiarch::build_digest::ANNOTATION;

/// An expensive step in the final stage whose output differs on every real run, so that a
/// digest that stays the same proves the step was not run again.
const EXPENSIVE: &str = "\
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH}
COPY app.txt /app.txt
RUN echo expensive && sleep 2 && cat /proc/sys/kernel/random/uuid > /computed
CMD [\"cat\", \"/computed\"]
";

/// A small build whose inputs the skip tests change one at a time.
const APP: &str = "\
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH}
ARG FLAVOUR
COPY app.txt /app.txt
RUN echo \"$FLAVOUR\" > /flavour
";

fn engine_kind() -> String {
    std::env::var("TESTBED_ENGINE").unwrap_or_else(|_| "system".to_owned())
}

/// A scratch Engine of the kind under test holding the base images, as a fresh runner's
/// Engine would after pulling them.
fn fresh_engine() -> ScratchEngine {
    ScratchEngine::start(
        &engine_kind(),
        &["testbase/busybox:amd64", "testbase/busybox:arm64"],
    )
}

/// What a fresh runner's Engine looks like: none of the built images (they are untagged: the
/// action pushes by digest), no build cache; the base images stay.
fn wipe(engine: &ScratchEngine) {
    engine.docker(&["image", "prune", "-f"]);
    engine.docker(&["builder", "prune", "-af"]);
    assert_eq!(built_images(engine), "", "nothing built is left");
}

/// Untagged images and build cache records the Engine holds.
fn built_images(engine: &ScratchEngine) -> String {
    let dangling = engine.docker(&["image", "ls", "-q", "--filter", "dangling=true"]);
    let cache = engine.docker(&["system", "df", "--format", "{{.Type}}={{.TotalCount}}"]);
    let cache = cache
        .lines()
        .find(|l| l.starts_with("Build Cache="))
        .unwrap_or_default()
        .trim_start_matches("Build Cache=")
        .to_owned();
    format!(
        "{}{}",
        dangling.trim(),
        if cache == "0" || cache.is_empty() {
            String::new()
        } else {
            format!(" build cache records: {cache}")
        }
    )
}

/// Whether the step whose name contains `step` ended `CACHED` in `platform`'s log, and ran
/// nowhere else in it.
fn step_state(stdout: &str, platform: &str, step: &str) -> String {
    let prefix = format!("[{platform}] #");
    let number = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .find(|l| l.contains(step))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{step}` step for {platform} in:\n{stdout}"))
        .to_owned();
    let states: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{prefix}{number} ")))
        .filter(|rest| matches!(*rest, "CACHED" | "DONE") || rest.starts_with("ERROR"))
        .collect();
    states.join(",")
}

/// The raw config blob of the `platform` child of `repository@digest`.
fn config_of(repository: &str, digest: &str, arch: &str) -> serde_json::Value {
    let out = skopeo(
        "inspect",
        &["--config", "--raw", "--override-arch", arch],
        &format!("{repository}@{digest}"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_fresh_runner_takes_the_expensive_step_from_the_repository() {
    let repository = unique_repository("cache-fresh");
    let context = fixture(&[("Dockerfile", EXPENSIVE), ("app.txt", "the same commit")]);
    let engine = fresh_engine();
    let run = || {
        Run::new(&repository, context.path())
            .env("DOCKER_HOST", &engine.host)
            .input("tags", "main")
            .run()
    };
    let first = run();
    first.assert_success();
    let digest = first.outputs["digest"].clone();
    for platform in ["linux/amd64", "linux/arm64"] {
        assert_eq!(
            step_state(&first.stdout, platform, "RUN echo expensive"),
            "DONE"
        );
    }
    // The inline cache survives the push: the config in the registry is the Engine's, records
    // included.
    for arch in ["amd64", "arm64"] {
        let config = config_of(&repository, &digest, arch);
        assert!(
            config[ecr_multiarch::image_export::INLINE_CACHE_KEY].is_string(),
            "{arch}: {config}"
        );
    }

    wipe(&engine);
    let second = run();
    second.assert_success();
    for platform in ["linux/amd64", "linux/arm64"] {
        assert!(
            second.stdout.contains(&format!(
                "[{platform}] build cache from {}/{repository}@sha256:",
                testbed().registry
            )),
            "{}",
            second.stdout
        );
        assert_eq!(
            step_state(&second.stdout, platform, "RUN echo expensive"),
            "CACHED",
            "{platform}:\n{}",
            second.stdout
        );
    }
    assert_eq!(second.outputs["digest"], digest, "the same index");
    let metadata = second.metadata();
    for platform in ["linux/amd64", "linux/arm64"] {
        assert_eq!(metadata["platforms"][platform]["layers-uploaded"], 0);
    }
}

#[tokio::test]
async fn without_repository_cache_a_fresh_runner_runs_every_step_again() {
    let repository = unique_repository("cache-off");
    let context = fixture(&[("Dockerfile", EXPENSIVE), ("app.txt", "the same commit")]);
    let engine = ScratchEngine::start(&engine_kind(), &["testbase/busybox:amd64"]);
    let run = || {
        Run::new(&repository, context.path())
            .env("DOCKER_HOST", &engine.host)
            .input("platforms", "linux/amd64")
            .input("repository-cache", "false")
            .run()
    };
    let first = run();
    first.assert_success();
    let config = config_of(&repository, &first.outputs["digest"], "amd64");
    assert!(
        config
            .get(ecr_multiarch::image_export::INLINE_CACHE_KEY)
            .is_none(),
        "{config}"
    );
    wipe(&engine);
    let second = run();
    second.assert_success();
    assert!(
        !second.stdout.contains("build cache from"),
        "{}",
        second.stdout
    );
    assert_eq!(
        step_state(&second.stdout, "linux/amd64", "RUN echo expensive"),
        "DONE"
    );
    assert_ne!(second.outputs["digest"], first.outputs["digest"]);
}

#[tokio::test]
async fn cache_from_imports_another_image_and_a_missing_one_is_no_error() {
    // The cache of a builder stage, pushed on its own with `target`, serves the full build.
    let repository = unique_repository("cache-from");
    let dockerfile = "\
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH} AS builder
RUN echo compiling && sleep 1 && cat /proc/sys/kernel/random/uuid > /artifact
FROM testbase/busybox:${TARGETARCH}
COPY --from=builder /artifact /artifact
";
    let context = fixture(&[("Dockerfile", dockerfile)]);
    let engine = ScratchEngine::start(&engine_kind(), &["testbase/busybox:amd64"]);
    let builder = Run::new(&repository, context.path())
        .env("DOCKER_HOST", &engine.host)
        .input("platforms", "linux/amd64")
        .input("target", "builder")
        .input("tags", "builder-cache")
        .run();
    builder.assert_success();
    wipe(&engine);
    let registry = &testbed().registry;
    let app = Run::new(&repository, context.path())
        .env("DOCKER_HOST", &engine.host)
        .input("platforms", "linux/amd64")
        .input("tags", "app")
        .input(
            "cache-from",
            &format!(
                "{registry}/{repository}:builder-cache\ntype=registry,ref={registry}/{repository}:never-pushed"
            ),
        )
        .run();
    app.assert_success();
    assert_eq!(
        step_state(&app.stdout, "linux/amd64", "RUN echo compiling"),
        "CACHED",
        "{}",
        app.stdout
    );
    assert!(
        app.stdout.contains(&format!(
            "build cache from {registry}/{repository}:never-pushed"
        )),
        "{}",
        app.stdout
    );
}

/// A run with `skip-unchanged` on, tags `tags`, on `engine` (a scratch one) or the one under
/// test.
fn skip_run(repository: &str, context: &Path, tags: &str, engine: Option<&ScratchEngine>) -> Run {
    let mut run = Run::new(repository, context);
    run.input("skip-unchanged", "true").input("tags", tags);
    if let Some(engine) = engine {
        run.env("DOCKER_HOST", &engine.host);
    }
    run
}

#[tokio::test]
async fn skip_unchanged_builds_nothing_on_a_fresh_runner_and_a_new_base_image_builds() {
    let repository = unique_repository("skip-fresh");
    let context = fixture(&[("Dockerfile", APP), ("app.txt", "v1")]);
    let engine = fresh_engine();
    let first = skip_run(&repository, context.path(), "main,c1", Some(&engine)).run();
    first.assert_success();
    let digest = first.outputs["digest"].clone();
    let recorded = first.metadata()["build"]["build-digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(first.metadata()["build"]["skipped"], false);
    assert!(
        first.metadata()["build"]["reason"]
            .as_str()
            .unwrap()
            .contains("holds no image under `main` yet"),
        "{}",
        first.metadata()
    );
    // The digest is recorded on the index (an OCI index, which has annotations).
    let index = skopeo_raw(&repository, "main").unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["annotations"][ANNOTATION], recorded.as_str());

    wipe(&engine);
    let before = layer_counters(&repository).await;
    let second = skip_run(&repository, context.path(), "main,c2", Some(&engine)).run();
    second.assert_success();
    // Nothing reached the Engine's builder: no build log, no image, no cache record.
    assert!(
        !second.stdout.contains("] #1 "),
        "a build ran:\n{}",
        second.stdout
    );
    assert!(!second.stdout.contains("[qemu]"), "{}", second.stdout);
    assert_eq!(built_images(&engine), "", "the Engine built something");
    let metadata_second = second.metadata();
    assert_eq!(
        metadata_second["build"]["skipped"], true,
        "{metadata_second}"
    );
    assert_eq!(metadata_second["build"]["build-digest"], recorded.as_str());
    assert!(
        second
            .summary
            .contains("**Build skipped**: the image under `main`"),
        "{}",
        second.summary
    );
    assert!(
        second.stdout.contains("::notice::build skipped: "),
        "{}",
        second.stdout
    );
    // The same index under the new tag, and nothing uploaded but that tag.
    assert_eq!(second.outputs["digest"], digest);
    assert_eq!(second.outputs["image-uri"], first.outputs["image-uri"]);
    assert_eq!(skopeo_digest(&repository, "c2"), Some(digest.clone()));
    let registry = &testbed().registry;
    assert_eq!(
        metadata_second["tag-updates"][format!("{registry}/{repository}:main")],
        "unchanged"
    );
    assert_eq!(
        metadata_second["tag-updates"][format!("{registry}/{repository}:c2")],
        "pushed"
    );
    let after = layer_counters(&repository).await;
    assert_eq!(
        after.requests("upload_start"),
        before.requests("upload_start"),
        "{after:?}"
    );
    assert_eq!(
        after.requests("manifest_put") - before.requests("manifest_put"),
        1,
        "only the new tag: {after:?}"
    );
    assert_eq!(
        metadata_second["platform-digests"],
        first.metadata()["platform-digests"]
    );

    // Another image under the `FROM` name: the base changed, so the run builds.
    retag_base(&engine, "testbase/busybox:amd64");
    let third = skip_run(&repository, context.path(), "main,c3", Some(&engine)).run();
    third.assert_success();
    let metadata_third = third.metadata();
    assert_eq!(metadata_third["build"]["skipped"], false);
    assert!(
        metadata_third["build"]["reason"]
            .as_str()
            .unwrap()
            .contains("was built from other inputs"),
        "{metadata_third}"
    );
    assert_ne!(metadata_third["build"]["build-digest"], recorded.as_str());
    assert_ne!(
        metadata_third["build"]["base-images"]["linux/amd64"]["testbase/busybox:amd64"],
        first.metadata()["build"]["base-images"]["linux/amd64"]["testbase/busybox:amd64"]
    );
    assert_ne!(third.outputs["digest"], digest);
}

/// Puts another image under `name` in `engine`: the same files with one more label.
fn retag_base(engine: &ScratchEngine, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {name}\nLABEL changed=yes\n"),
    )
    .unwrap();
    let out = Command::new("docker")
        .args([
            "-H",
            &engine.host,
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            name,
        ])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn skip_unchanged_builds_when_a_byte_or_a_build_arg_changes() {
    let repository = unique_repository("skip-changes");
    let context = fixture(&[("Dockerfile", APP), ("app.txt", "v1")]);
    // `main` may move; every other tag is immutable, as in a release workflow.
    let run = |tags: &str, flavour: &str| {
        skip_run(&repository, context.path(), tags, None)
            .input("build-args", &format!("FLAVOUR={flavour}"))
            .input("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION")
            .input("image-tag-mutability-exclusion-filters", "main")
            .run()
    };
    let built = |result: &RunResult| -> (bool, String, String) {
        result.assert_success();
        let metadata = result.metadata();
        (
            metadata["build"]["skipped"].as_bool().unwrap(),
            metadata["build"]["reason"].as_str().unwrap().to_owned(),
            result.outputs["digest"].clone(),
        )
    };
    let (skipped, _, first) = built(&run("main,1", "plain"));
    assert!(!skipped);
    // A re-run of the same job: skipped, and no tag is written (ECR would refuse `1`).
    let (skipped, reason, again) = built(&run("main,1", "plain"));
    assert!(skipped, "{reason}");
    assert_eq!(again, first);
    assert_eq!(layer_counters(&repository).await.rule("tag_invalid"), 0);

    // One byte more in the context.
    std::fs::write(context.path().join("app.txt"), "v1.").unwrap();
    let (skipped, reason, second) = built(&run("main,2", "plain"));
    assert!(!skipped, "{reason}");
    assert!(reason.contains("built from other inputs"), "{reason}");
    assert_ne!(second, first);

    // Another build arg.
    let (skipped, reason, third) = built(&run("main,3", "spicy"));
    assert!(!skipped, "{reason}");
    assert_ne!(third, second);
    assert_eq!(skopeo_digest(&repository, "1"), Some(first));
    assert_eq!(skopeo_digest(&repository, "main"), Some(third));
}

#[tokio::test]
async fn a_base_image_that_cannot_be_resolved_turns_skipping_off_with_a_notice() {
    let repository = unique_repository("skip-unresolved");
    let missing = format!("{}/{}:1", testbed().registry, unique_repository("absent"));
    let context = fixture(&[("Dockerfile", &*format!("FROM {missing}\nRUN true\n"))]);
    let result = skip_run(&repository, context.path(), "main", None)
        .input("platforms", "linux/amd64")
        .run();
    let notice = result
        .stdout
        .lines()
        .find(|l| l.starts_with("::notice::`skip-unchanged` is off for this run"))
        .unwrap_or_else(|| panic!("no notice:\n{}", result.stdout))
        .to_owned();
    assert!(
        notice.contains(&format!("cannot resolve `{missing}` for `linux/amd64`")),
        "{notice}"
    );
    // Then it builds, which fails here: the image does not exist.
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    assert!(
        result.error_line().contains("Build failed for linux/amd64"),
        "{}",
        result.stdout
    );
}

#[tokio::test]
async fn an_add_of_a_url_without_checksum_turns_skipping_off_and_builds() {
    let repository = unique_repository("skip-add-url");
    // Content the build fetches itself: nothing in the inputs says when it changes.
    let context = fixture(&[(
        "Dockerfile",
        &*format!(
            "FROM testbase/busybox:amd64\nADD {}/moto-api/ /moto.html\n",
            testbed().moto_url
        ),
    )]);
    let run = || {
        skip_run(&repository, context.path(), "main", None)
            .input("platforms", "linux/amd64")
            .run()
    };
    for _ in 0..2 {
        let result = run();
        result.assert_success();
        let metadata = result.metadata();
        assert_eq!(metadata["build"]["skipped"], false);
        assert!(
            metadata["build"]["reason"]
                .as_str()
                .unwrap()
                .contains("--checksum="),
            "{metadata}"
        );
        let index = skopeo_raw(&repository, "main").unwrap();
        assert!(index.get("annotations").is_none(), "{index}");
    }
}
