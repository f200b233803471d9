//! Platform images pushed by digest through the registry API: re-runs that are safe on
//! immutable repositories, tags that move only when they may, and layers sent once.

use super::{fixture, skopeo_digest, testbed, unique_repository, Run};

const DOCKERFILE: &str = "\
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH}
ARG RELEASE
RUN echo \"$RELEASE on $(uname -m)\" > /release
CMD [\"cat\", \"/release\"]
";

/// A release run: `tags` on a repository created with `mutability`.
fn release(repository: &str, context: &std::path::Path, release: &str, tags: &str) -> Run {
    let mut run = Run::new(repository, context);
    run.input("tags", tags)
        .input("build-args", &format!("RELEASE={release}"));
    run
}

fn metadata(result: &super::RunResult) -> serde_json::Value {
    serde_json::from_str(&result.outputs["metadata"]).unwrap()
}

#[test]
fn a_re_run_on_an_immutable_repository_is_a_no_op() {
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

    let again = run();
    again.assert_success();
    assert_eq!(again.outputs["digest"], digest);
    let metadata = metadata(&again);
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

#[test]
fn a_changed_build_cannot_move_an_immutable_tag() {
    let repository = unique_repository("immutable-changed");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let first = release(&repository, context.path(), "1.0.0", "1.0.0,latest")
        .input("image-tag-mutability", "IMMUTABLE")
        .run();
    first.assert_success();
    let digest = first.outputs["digest"].clone();

    // Another build under a new version tag and the same `latest`: `latest` cannot move, so
    // the run ends before anything is uploaded and neither tag changes.
    let second = release(&repository, context.path(), "1.1.0", "1.1.0,latest").run();
    assert_eq!(second.code, 1, "{}\n{}", second.stdout, second.stderr);
    let error = second.error_line();
    assert!(error.contains("title=Tag latest is immutable"), "{error}");
    assert!(
        error.contains(&format!("already holds `{digest}`")),
        "{error}"
    );
    assert!(error.contains("is IMMUTABLE"), "{error}");
    assert!(error.contains("nothing was uploaded"), "{error}");
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
    let again = run("1.0.0-changed");
    again.assert_success();
    let moved = release(&repository, context.path(), "other", "1.0.0").run();
    assert_eq!(moved.code, 1, "{}", moved.stdout);
    assert!(moved.error_line().contains("title=Tag 1.0.0 is immutable"));
}
