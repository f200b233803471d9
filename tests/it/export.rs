//! Issue 14 on the real testbed: an image that lists one layer twice is pushed whole (§1); the
//! early refusals of §5 leave nothing behind; each build's temporary image name (§8) is
//! removed once the image is exported, or kept, and logged, with `ECR_MULTIARCH_KEEP_IMAGES`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::process::Command;

use rstest::{rstest, Context};

use crate::assert_user_sees;

use super::{
    assert_refused_input, command, fixture, run_image, skopeo_raw, testbed, unique_repository, Run,
    RunResult,
};

/// Each case makes `rootfs.diff_ids` name one layer twice (or more): no-op `RUN` steps give
/// the same empty layer, and `COPY x`, `RUN rm x`, `COPY x` give the same `COPY` layer twice.
/// `/etc/hosts` and `/etc/resolv.conf` come first: BuildKit makes them for a `RUN` step's
/// mounts when the image lacks them, which leaves `/etc` with the step's time in the layer, so
/// no-op steps in different seconds would differ.
#[rstest]
#[case::three_no_op_runs(
    "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nCOPY hosts resolv.conf /etc/\nARG RUN_ID\nRUN echo \"$RUN_ID\" > /id\nRUN echo a\nRUN echo b\nRUN echo c\nCMD [\"cat\", \"/id\"]\n"
)]
#[case::copy_remove_copy(
    "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nARG RUN_ID\nRUN echo \"$RUN_ID\" > /id\nCOPY x /x\nRUN rm /x\nCOPY x /x\nCMD [\"cat\", \"/id\", \"/x\"]\n"
)]
#[tokio::test]
async fn an_image_that_lists_a_layer_twice_is_pushed_whole(#[case] dockerfile: &str) {
    let repository = unique_repository("repeated-layer");
    let run_id = uuid::Uuid::new_v4().to_string();
    let context = fixture(&[
        ("Dockerfile", dockerfile),
        ("x", "the copied file\n"),
        ("hosts", "127.0.0.1 localhost\n"),
        ("resolv.conf", ""),
    ]);
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64,linux/arm64")
        .input("build-args", &format!("RUN_ID={run_id}"))
        .run();
    result.assert_success();
    let platform_digests: serde_json::Value =
        serde_json::from_str(&result.outputs["platform-digests"]).unwrap();
    for (platform, arch) in [("linux/amd64", "amd64"), ("linux/arm64", "arm64")] {
        let child = platform_digests[platform].as_str().unwrap();
        let manifest = skopeo_raw(&repository, child).expect("the child is in the registry");
        let layers: Vec<&str> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        let config = super::skopeo(
            "inspect",
            &["--config", "--raw"],
            &format!("{repository}@{child}"),
        );
        assert!(
            config.status.success(),
            "{}",
            String::from_utf8_lossy(&config.stderr)
        );
        let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
        assert_eq!(config["architecture"], arch);
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(layers.len(), diff_ids.len(), "{platform}: {manifest}");
        // The manifest lists the layer as many times as the config does.
        let mut distinct = layers.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            distinct.len() < layers.len(),
            "{platform}: no layer is listed twice: {layers:?}"
        );
        let mut distinct_diff_ids: Vec<&str> =
            diff_ids.iter().map(|d| d.as_str().unwrap()).collect();
        distinct_diff_ids.sort_unstable();
        distinct_diff_ids.dedup();
        assert_eq!(distinct.len(), distinct_diff_ids.len(), "{platform}");
    }
    // The Engine pulls and runs what was pushed, on each platform.
    let image_uri = &result.outputs["image-uri"];
    for platform in ["linux/amd64", "linux/arm64"] {
        let printed = run_image(image_uri, platform, &[]);
        assert!(printed.starts_with(&run_id), "{platform}: {printed}");
        if dockerfile.contains("COPY x") {
            assert!(
                printed.ends_with("the copied file"),
                "{platform}: {printed}"
            );
        }
    }
}

const DOCKERFILE: &str = "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nFROM testbase/busybox:${TARGETARCH} AS app\nRUN true\n";

/// Refused before the repository is created (§5): a stage the Dockerfile does not have, and
/// build args or labels too large for the Engine API's request URL.
#[rstest]
#[case::no_such_stage("target", &[("target", "nosuchstage")], "has no stage `nosuchstage`: its stages are `app`")]
#[case::quotes_in_a_build_arg("build-args", &[("build-args", &*format!("QUOTES={}", "\"".repeat(12_000)).leak())], "more than the limit of 48 KiB")]
#[case::large_labels("labels", &[("labels", &*format!("big={}\nsmall=x", "v".repeat(50_000)).leak())], "more than the limit of 48 KiB")]
#[tokio::test]
async fn refused_before_the_repository_is_created(
    #[context] case: Context,
    #[case] input: &str,
    #[case] given: &[(&str, &str)],
    #[case] message: &str,
) {
    let repository = unique_repository("early-refusal");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let mut run = Run::new(&repository, context.path());
    for (name, value) in given {
        run.input(name, value);
    }
    let error = assert_refused_input(&run.run(), &repository, input, message).await;
    assert_user_sees!(case.description.unwrap(), error);
}

/// An input the runner passes as bytes that are not UTF-8 (a variable) or a flag given so.
#[rstest]
#[case::input_variable(true)]
#[case::flag(false)]
#[tokio::test]
async fn an_input_that_is_not_utf8_is_refused_by_name(#[case] as_variable: bool) {
    let repository = unique_repository("not-utf8");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let files = tempfile::tempdir().unwrap();
    let label = OsStr::from_bytes(b"note=caf\xe9");
    let mut cli = Command::new(env!("CARGO_BIN_EXE_ecr-multiarch"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("INPUT_") || key.starts_with("GITHUB_") {
            cli.env_remove(key);
        }
    }
    cli.env("INPUT_REPOSITORY", &repository)
        .env("INPUT_CONTEXT", context.path())
        .env("INPUT_REGISTRY", &testbed().registry)
        .env("INPUT_NETWORK", "host")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", files.path().join("output"))
        .env("DOCKER_HOST", &testbed().engine.host);
    if as_variable {
        cli.env("INPUT_LABELS", label);
    } else {
        cli.arg("--labels").arg(label);
    }
    let output = cli.output().unwrap();
    let result = RunResult {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        outputs: std::collections::BTreeMap::new(),
        summary: String::new(),
    };
    let error = assert_refused_input(&result, &repository, "labels", "not valid UTF-8").await;
    assert_user_sees!("labels_not_utf8", error);
}

/// A file of the context whose name is not UTF-8 (Docker 23+ refuses such names in a build
/// context, buildx too) is refused by name before anything is created: it could only be sent
/// under another name.
#[tokio::test]
async fn a_context_file_whose_name_is_not_utf8_is_refused_before_anything_is_created() {
    let repository = unique_repository("name-not-utf8");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    std::fs::write(context.path().join(OsStr::from_bytes(b"caf\xe9.txt")), "x").unwrap();
    let result = Run::new(&repository, context.path()).run();
    assert_refused_input(
        &result,
        &repository,
        "context",
        "`caf\u{fffd}.txt` (in the build context) has a name that is not UTF-8, which Docker Engines refuse in a build context: rename it, or list it in `.dockerignore`",
    )
    .await;
}

/// The build's image name that a run logged as kept.
fn kept_images(result: &RunResult) -> Vec<String> {
    result
        .stdout
        .lines()
        .filter(|l| l.contains("(ECR_MULTIARCH_KEEP_IMAGES)"))
        .filter_map(|l| l.split("in the Engine as `").nth(1))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// §8: each build names its image `ecr-multiarch-build:<uuid>`, so nothing is left dangling,
/// and removes it once exported; `ECR_MULTIARCH_KEEP_IMAGES=1` keeps it and logs the name.
#[tokio::test]
async fn the_build_image_is_removed_once_exported_unless_kept() {
    let repository = unique_repository("temporary-image");
    let dockerfile = format!(
        "ARG TARGETARCH\nFROM testbase/busybox:${{TARGETARCH}}\nRUN echo {} > /id\n",
        uuid::Uuid::new_v4()
    );
    let context = fixture(&[("Dockerfile", &dockerfile)]);
    let run = |keep: bool| {
        let mut run = Run::new(&repository, context.path());
        run.input("platforms", "linux/amd64");
        if keep {
            run.env("ECR_MULTIARCH_KEEP_IMAGES", "1");
        }
        run.run()
    };

    let image_id = |result: &RunResult| -> String {
        let metadata: serde_json::Value =
            serde_json::from_str(&result.outputs["metadata"]).unwrap();
        metadata["platforms"]["linux/amd64"]["image-id"]
            .as_str()
            .unwrap_or_else(|| panic!("no image id in {metadata}"))
            .to_owned()
    };

    let kept = run(true);
    kept.assert_success();
    let names = kept_images(&kept);
    assert_eq!(names.len(), 1, "{}", kept.stdout);
    assert!(names[0].starts_with("ecr-multiarch-build:"), "{names:?}");
    let inspect = command("docker", &["image", "inspect", &names[0]]);
    assert!(
        inspect.status.success(),
        "the kept image `{}` is not in the Engine: {}",
        names[0],
        String::from_utf8_lossy(&inspect.stderr)
    );
    let removed = command("docker", &["image", "rm", &names[0]]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );

    // Built again (from the cache), not kept: the image (no other run makes this one) is gone
    // from the Engine once the run ends, and no name was logged.
    let second = run(false);
    second.assert_success();
    assert!(kept_images(&second).is_empty(), "{}", second.stdout);
    let id = image_id(&second);
    let inspect = command("docker", &["image", "inspect", &id]);
    assert!(
        !inspect.status.success(),
        "the built image `{id}` is still in the Engine: {}",
        String::from_utf8_lossy(&inspect.stdout)
    );
}
