//! Split builds (issue 10): `platform-only` runs on different Engines push by digest and tag
//! nothing; a `merge` run, with no Engine and no Dockerfile, joins their images into one index
//! under the tags, refuses what does not fit, and is a no-op when run again.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rstest::rstest;

use super::github::{on_tag, GitHubApi};
use super::{
    engine_setting, fixture, layer_counters, moto_repository, registry_tags, run_image,
    skopeo_digest, skopeo_raw, testbed, unique_repository, Run, RunResult,
};

const DOCKERFILE: &str = "\
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH}
ARG RELEASE
RUN echo \"$RELEASE\" > /release
CMD [\"uname\", \"-m\"]
";

/// A Docker Engine that answers nowhere: a merge run must not need one.
const NO_ENGINE: &str = "unix:///nonexistent/docker.sock";

/// The Engine the amd64 platform-only run uses: the system's Docker 20.10.
fn amd64_engine() -> String {
    engine_setting("system", "HOST")
}

/// The Engine the arm64 platform-only run uses: a Docker 28.5, the one under test when it is
/// one, else the containerd-store one.
fn arm64_engine() -> String {
    match testbed().engine.name.as_str() {
        "system" => engine_setting("28.5-containerd", "HOST"),
        _ => testbed().engine.host.clone(),
    }
}

/// A `platform-only` run of `platforms` on the Engine at `docker_host`, writing its result
/// into `folder`.
fn platform_only(
    repository: &str,
    context: &Path,
    platforms: &str,
    release: &str,
    folder: &Path,
    docker_host: &str,
) -> Run {
    let mut run = Run::new(repository, context);
    run.input("platforms", platforms)
        .input("platform-only", "true")
        .input("results-folder", folder.to_str().unwrap())
        .input("build-args", &format!("RELEASE={release}"))
        .env("DOCKER_HOST", docker_host);
    run
}

/// A merge run of `sources`, with no Engine to reach and no build context.
fn merge(repository: &str, sources: &str) -> Run {
    let mut run = Run::new(repository, Path::new("/nonexistent/context"));
    run.input("merge", sources).env("DOCKER_HOST", NO_ENGINE);
    run
}

fn platform_digests(result: &RunResult) -> serde_json::Value {
    serde_json::from_str(&result.outputs["platform-digests"]).unwrap()
}

/// The one result file under `folder`.
fn result_file(folder: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// `(platform, digest)` of each entry of an index, in order.
fn children(index: &serde_json::Value) -> Vec<(String, String)> {
    index["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .map(|m| {
            (
                format!(
                    "{}/{}",
                    m["platform"]["os"].as_str().unwrap(),
                    m["platform"]["architecture"].as_str().unwrap()
                ),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Runs `run` and says how long it took, start to outputs.
fn timed(run: &Run) -> (RunResult, Duration) {
    let started = Instant::now();
    let result = run.run();
    (result, started.elapsed())
}

#[tokio::test]
async fn platform_only_runs_on_two_engines_then_a_merge_make_one_index() {
    let tb = testbed();
    let repository = unique_repository("merge");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let results = tempfile::tempdir().unwrap();
    let registry = &tb.registry;

    // Each platform on an Engine of its own, each result in a folder of its own (as
    // actions/download-artifact lays artifacts out without `merge-multiple`).
    let amd64 = platform_only(
        &repository,
        context.path(),
        "linux/amd64",
        "1",
        &results.path().join("amd64"),
        &amd64_engine(),
    )
    .run();
    amd64.assert_success();
    let arm64 = platform_only(
        &repository,
        context.path(),
        "linux/arm64",
        "1",
        &results.path().join("arm64"),
        &arm64_engine(),
    )
    .run();
    arm64.assert_success();

    // Pushed by digest, under no tag; the outputs name the images and no index.
    assert_eq!(registry_tags(&repository), Vec::<String>::new());
    assert!(moto_repository(&repository).await.is_some(), "ensured");
    let mut pushed = Vec::new();
    for (result, platform, engine) in [
        (&amd64, "linux/amd64", amd64_engine()),
        (&arm64, "linux/arm64", arm64_engine()),
    ] {
        let digest = platform_digests(result)[platform]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(result.outputs["digest"], "");
        assert_eq!(result.outputs["tags"], "");
        assert_eq!(
            result.outputs["image-uri"],
            format!("{registry}/{repository}@{digest}")
        );
        let metadata = result.metadata();
        assert_eq!(metadata["kind"], "platform-only");
        assert_eq!(metadata["platforms"][platform]["engine"], engine.as_str());
        assert!(
            result.stdout.contains("under no tag (platform-only)"),
            "{}",
            result.stdout
        );
        assert!(result.summary.contains("**No index, no tag**"));
        pushed.push((platform.to_owned(), digest));
    }
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(result_file(&results.path().join("arm64"))).unwrap())
            .unwrap();
    assert_eq!(file["ecr-multiarch-result"], 1);
    assert_eq!(file["registry"], registry.as_str());
    assert_eq!(file["repository"], repository.as_str());
    assert_eq!(file["images"][0]["platform"], "linux/arm64");
    assert_eq!(file["images"][0]["digest"], pushed[1].1.as_str());

    // The merge: no Engine (`DOCKER_HOST` answers nowhere), no Dockerfile.
    let (merged, took) = timed(
        merge(&repository, results.path().to_str().unwrap())
            .input("tags", "latest,v1")
            .input("arch-tags", "true"),
    );
    merged.assert_success();
    let digest = merged.outputs["digest"].clone();
    eprintln!(
        "merge: {} ms from start to outputs; phases {}",
        took.as_millis(),
        merged.metadata()["timings-ms"]
    );
    for tag in ["latest", "v1"] {
        assert_eq!(skopeo_digest(&repository, tag), Some(digest.clone()));
        let index = skopeo_raw(&repository, tag).unwrap();
        assert_eq!(children(&index), pushed, "{index}");
    }
    // The per-platform tags of `arch-tags` are the merge's to put, on the children.
    let mut tags = registry_tags(&repository);
    tags.sort();
    assert_eq!(tags, ["latest", "latest-amd64", "latest-arm64", "v1"]);
    assert_eq!(
        skopeo_digest(&repository, "latest-amd64"),
        Some(pushed[0].1.clone())
    );
    assert_eq!(
        skopeo_digest(&repository, "latest-arm64"),
        Some(pushed[1].1.clone())
    );
    assert_eq!(merged.outputs["platform-digests"], {
        let digests: serde_json::Map<String, serde_json::Value> = pushed
            .iter()
            .map(|(p, d)| (p.clone(), serde_json::json!(d)))
            .collect();
        serde_json::Value::Object(digests).to_string()
    });
    assert_eq!(merged.metadata()["kind"], "merge");
    assert!(merged.summary.contains("(merge)"), "{}", merged.summary);
    assert!(
        merged.summary.contains(&format!("`{}`", arm64_engine())),
        "{}",
        merged.summary
    );

    // Each platform runs, and is what it says.
    let image = format!("{registry}/{repository}:latest");
    assert_eq!(run_image(&image, "linux/amd64", &[]), "x86_64");
    assert_eq!(run_image(&image, "linux/arm64", &[]), "aarch64");
}

/// Three platform-only results in one repository, made once for the refusal cases: amd64
/// twice (two builds) and arm64. No case pushes anything, so they share it.
struct Results {
    repository: String,
    amd64: PathBuf,
    amd64_again: PathBuf,
    arm64: PathBuf,
    /// Where the cases write their own files.
    scratch: PathBuf,
}

fn results() -> &'static Results {
    static RESULTS: OnceLock<Results> = OnceLock::new();
    RESULTS.get_or_init(|| {
        let repository = unique_repository("merge-refusals");
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(repository.replace('/', "_"));
        let context = fixture(&[("Dockerfile", DOCKERFILE)]);
        let host = testbed().engine.host.clone();
        let mut files = Vec::new();
        for (folder, platform, release) in [
            ("amd64", "linux/amd64", "1"),
            ("amd64-again", "linux/amd64", "2"),
            ("arm64", "linux/arm64", "1"),
        ] {
            let folder = root.join(folder);
            platform_only(
                &repository,
                context.path(),
                platform,
                release,
                &folder,
                &host,
            )
            .run()
            .assert_success();
            files.push(result_file(&folder));
        }
        let scratch = root.join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        Results {
            repository,
            amd64: files[0].clone(),
            amd64_again: files[1].clone(),
            arm64: files[2].clone(),
            scratch,
        }
    })
}

/// A copy of a result file with one field changed, for a case named `case`.
fn edited(results: &Results, file: &Path, case: &str, edit: fn(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    edit(&mut value);
    let path = results.scratch.join(format!("{case}.json"));
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

/// What one refusal case merges, and its extra inputs.
type Case = fn(&Results) -> (Vec<String>, Vec<(&'static str, &'static str)>);

fn shown(path: &Path) -> String {
    path.display().to_string()
}

#[rstest]
#[case::config_says_another_platform(
    |r: &Results| (vec![shown(&r.amd64), edited(r, &r.amd64, "amd64-as-arm64", |v| v["images"][0]["platform"] = "linux/arm64".into())], vec![]),
    "Wrong platform for linux/arm64",
    &["says it is `linux/amd64`", "amd64-as-arm64.json"]
)]
#[case::two_images_for_one_platform(
    |r: &Results| (vec![shown(&r.amd64), shown(&r.amd64_again), shown(&r.arm64)], vec![]),
    "Invalid input merge",
    &["two images for `linux/amd64`", "merge one image per platform"]
)]
#[case::a_digest_not_in_the_repository(
    |r: &Results| (vec![shown(&r.amd64), format!("{}@sha256:{}", r.repository, "0".repeat(64))], vec![]),
    "Image not in the repository",
    &["the image `sha256:0000", "is not in `"]
)]
#[case::a_platform_not_in_platforms(
    |r: &Results| (vec![shown(&r.amd64), shown(&r.arm64)], vec![("platforms", "linux/amd64")]),
    "Invalid input merge",
    &["gives a `linux/arm64` image", "`platforms` (`linux/amd64`) does not list `linux/arm64`"]
)]
#[case::a_platform_without_an_image(
    |r: &Results| (vec![shown(&r.amd64)], vec![]),
    "Invalid input merge",
    &["no image for `linux/arm64` of `platforms`"]
)]
#[case::a_result_of_another_repository(
    |r: &Results| (vec![edited(r, &r.arm64, "other-repository", |v| v["repository"] = "team/other".into()), shown(&r.amd64)], vec![]),
    "Invalid input merge",
    &["is a result for repository `team/other`", "one folder per repository"]
)]
#[case::a_result_of_another_registry(
    |r: &Results| (vec![shown(&r.amd64), edited(r, &r.arm64, "other-registry", |v| v["registry"] = "123456789012.dkr.ecr.eu-west-1.amazonaws.com".into())], vec![]),
    "Invalid input merge",
    &["is a result for registry `123456789012.dkr.ecr.eu-west-1.amazonaws.com`"]
)]
#[case::a_tag_for_a_digest(
    |r: &Results| (vec![shown(&r.amd64), edited(r, &r.arm64, "tag-digest", |v| v["images"][0]["digest"] = "latest".into())], vec![]),
    "Invalid input merge",
    &["tag-digest.json` is not an ecr-multiarch result", "`latest` is not a digest"]
)]
#[case::a_path_for_a_digest(
    |r: &Results| (vec![shown(&r.amd64), edited(r, &r.arm64, "path-digest", |v| v["images"][0]["digest"] = "../../../other/manifests/latest".into())], vec![]),
    "Invalid input merge",
    &["path-digest.json` is not an ecr-multiarch result", "is not a digest"]
)]
#[case::an_index_for_a_manifest(
    |r: &Results| (vec![shown(&r.amd64), edited(r, &r.arm64, "index-type", |v| v["images"][0]["media-type"] = "application/vnd.oci.image.index.v1+json".into())], vec![]),
    "Invalid input merge",
    &["index-type.json` is not an ecr-multiarch result", "not an image manifest's"]
)]
#[case::a_fifo(
    |r: &Results| {
        let fifo = r.scratch.join("fifo.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        (vec![shown(&r.amd64), shown(&fifo)], vec![])
    },
    "Invalid input merge",
    &["fifo.json` is neither a file nor a folder"]
)]
#[case::a_file_too_large(
    |r: &Results| {
        let big = r.scratch.join("big.json");
        std::fs::write(&big, " ".repeat(2 << 20)).unwrap();
        (vec![shown(&r.amd64), shown(&big)], vec![])
    },
    "Invalid input merge",
    &["big.json` is larger than 1048576 bytes"]
)]
#[tokio::test]
async fn a_merge_refuses_what_does_not_fit_and_pushes_nothing(
    #[case] case: Case,
    #[case] title: &str,
    #[case] message: &[&str],
) {
    let results = results();
    let (sources, inputs) = case(results);
    let before = layer_counters(&results.repository).await;
    let mut run = merge(&results.repository, &sources.join("\n"));
    for (name, value) in inputs {
        run.input(name, value);
    }
    let refused = run.run();
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    let error = refused.error_line();
    eprintln!("{error}");
    assert!(
        error.starts_with(&format!("::error title={title}::")),
        "{error}"
    );
    for part in message {
        assert!(error.contains(part), "`{part}` in {error}");
    }
    let after = layer_counters(&results.repository).await;
    assert_eq!(
        after.requests("manifest_put"),
        before.requests("manifest_put"),
        "nothing pushed: {after:?}"
    );
    assert!(refused.outputs.is_empty());
    assert_eq!(registry_tags(&results.repository), Vec::<String>::new());
}

#[rstest]
#[case::mutable("MUTABLE")]
#[case::immutable("IMMUTABLE")]
#[tokio::test]
async fn a_merge_run_again_is_a_no_op(#[case] mutability: &str) {
    let repository = unique_repository("merge-again");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let results = tempfile::tempdir().unwrap();
    // One platform-only run of both platforms: one result file with two images.
    platform_only(
        &repository,
        context.path(),
        "linux/amd64,linux/arm64",
        "1",
        results.path(),
        &testbed().engine.host,
    )
    .input("image-tag-mutability", mutability)
    .run()
    .assert_success();
    let folder = results.path().to_str().unwrap();
    let first = merge(&repository, folder)
        .input("tags", "1.0.0,latest")
        .run();
    first.assert_success();
    let digest = first.outputs["digest"].clone();
    let before = layer_counters(&repository).await;

    let (again, took) = timed(merge(&repository, folder).input("tags", "1.0.0,latest"));
    again.assert_success();
    eprintln!(
        "merge run again on a {mutability} repository: {} ms",
        took.as_millis()
    );
    assert_eq!(again.outputs["digest"], digest);
    let after = layer_counters(&repository).await;
    assert_eq!(
        after.requests("manifest_put"),
        before.requests("manifest_put"),
        "{after:?}"
    );
    assert_eq!(after.rule("tag_invalid"), 0, "{after:?}");
    let metadata = again.metadata();
    let registry = &testbed().registry;
    for tag in ["1.0.0", "latest"] {
        assert_eq!(
            metadata["tag-updates"][format!("{registry}/{repository}:{tag}")],
            "unchanged",
            "{metadata}"
        );
        assert_eq!(skopeo_digest(&repository, tag), Some(digest.clone()));
    }
}

#[tokio::test]
async fn a_merge_tags_releases_and_tells_github_as_a_one_job_run() {
    let repository = unique_repository("merge-release");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let results = tempfile::tempdir().unwrap();
    let api = GitHubApi::start().await;
    let release = |run: &mut Run| {
        run.input("tag-rules", "semver\nlatest=auto");
        on_tag(api.told_by(run), "v2.1.0", "push");
    };
    // The platform jobs: tags from the rules, but nothing tagged and nothing told to GitHub.
    for platform in ["linux/amd64", "linux/arm64"] {
        let mut run = platform_only(
            &repository,
            context.path(),
            platform,
            "2.1.0",
            results.path(),
            &testbed().engine.host,
        );
        release(&mut run);
        run.run().assert_success();
    }
    assert!(api.requests().await.is_empty());
    assert_eq!(registry_tags(&repository), Vec::<String>::new());

    api.expect_status_and_release(7, "Notes", 1).await;
    let mut run = merge(&repository, results.path().to_str().unwrap());
    release(&mut run);
    let merged = run.run();
    merged.assert_success();
    let digest = &merged.outputs["digest"];
    // `semver` and `latest=auto` (the only release, so the highest): every tag holds the index.
    let mut tags = registry_tags(&repository);
    tags.sort();
    assert_eq!(tags, ["2", "2.1", "2.1.0", "latest"]);
    for tag in &tags {
        assert_eq!(skopeo_digest(&repository, tag).as_ref(), Some(digest));
    }
    let status = api.body(0).await;
    assert_eq!(status["description"], format!("pushed index {digest}"));
    let notes = api.body(2).await;
    let notes = notes["body"].as_str().unwrap();
    assert!(notes.contains(&format!("- Digest: `{digest}`")), "{notes}");
    assert!(
        notes.contains("- Platforms: `linux/amd64`, `linux/arm64`"),
        "{notes}"
    );
    api.server.verify().await;
}
