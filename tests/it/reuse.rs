//! Issue 17: the push reads no image export when nothing new needs uploading. When the
//! repository holds an image whose layers and config the Engine's inspect shows for the built
//! image (only BuildKit's cache records can differ), that copy is pushed as it is; a changed
//! layer, label or step is exported and pushed. The Engine's own `save` events (one for each
//! export, labelled with the image's labels) count the exports.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rstest::rstest;

use super::{
    fixture, layer_counters, skopeo, skopeo_raw, testbed, unique_repository, Run, RunResult,
};

const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];

/// No `RUN` step, so that the arm64 build needs no emulation; `GREETING` reaches the config
/// only (an `ENV` step, no layer).
const DOCKERFILE: &str = "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nARG GREETING=hello\nENV GREETING=${GREETING}\nCOPY data /data\nCMD [\"cat\", \"/data\"]\n";

/// The label that tells this test's images (and their `save` events) from the others'.
const RUN_LABEL: &str = "it.reuse.run";

/// A run of the test's context, its images labelled with `run_id`.
fn reuse_run(repository: &str, context: &std::path::Path, run_id: &str) -> Run {
    let mut run = Run::new(repository, context);
    run.input("labels", &format!("{RUN_LABEL}={run_id}"));
    run
}

/// Runs `run` and counts the Engine's image exports (`save` events) of images labelled
/// `run_id` meanwhile, listening from just before the run to just after it.
fn exports_during(run_id: &str, run: &Run) -> (RunResult, usize) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let mut events = Command::new("docker")
        .args([
            "events",
            "--since",
            &format!("{since:.3}"),
            "--filter",
            "type=image",
            "--filter",
            "event=save",
            "--format",
            "{{json .Actor.Attributes}}",
        ])
        .env("DOCKER_CONFIG", &testbed().docker_config)
        .env("DOCKER_HOST", &testbed().engine.host)
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker events");
    let result = run.run();
    // Events reach a listener at once; a second covers a loaded machine.
    std::thread::sleep(Duration::from_secs(1));
    events.kill().expect("stop docker events");
    let mut listed = String::new();
    events
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut listed)
        .expect("events");
    let _ = events.wait();
    let exports = listed
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|attributes| attributes[RUN_LABEL] == run_id)
        .count();
    (result, exports)
}

/// The platform images of a run, in the order of `PLATFORMS`: digest and manifest.
fn platform_manifests(result: &RunResult, repository: &str) -> Vec<(String, serde_json::Value)> {
    let digests: serde_json::Value =
        serde_json::from_str(&result.outputs["platform-digests"]).expect("platform-digests");
    PLATFORMS
        .iter()
        .map(|platform| {
            let digest = digests[platform].as_str().expect("a digest");
            let manifest =
                skopeo_raw(repository, digest).expect("the platform image is in the registry");
            (digest.to_owned(), manifest)
        })
        .collect()
}

fn layers(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_owned())
        .collect()
}

/// A repository the test's image was pushed to once, by a run that read both exports (the
/// repository held nothing yet).
struct PushedOnce {
    repository: String,
    run_id: String,
    context: tempfile::TempDir,
    first: RunResult,
}

fn pushed_once(prefix: &str) -> PushedOnce {
    let repository = unique_repository(prefix);
    let run_id = uuid::Uuid::new_v4().to_string();
    let context = fixture(&[("Dockerfile", DOCKERFILE), ("data", &run_id)]);
    let (first, exports) =
        exports_during(&run_id, &reuse_run(&repository, context.path(), &run_id));
    first.assert_success();
    assert_eq!(exports, PLATFORMS.len(), "{}", first.stdout);
    PushedOnce {
        repository,
        run_id,
        context,
        first,
    }
}

/// A run after the first that read each platform's export and pushed another image.
fn assert_exported(second: &RunResult, exports: usize, first: &RunResult) {
    second.assert_success();
    assert_eq!(exports, PLATFORMS.len(), "{}", second.stdout);
    for platform in PLATFORMS {
        assert!(
            second
                .stdout
                .contains(&format!("[{platform}] reading the image from the Engine")),
            "{}",
            second.stdout
        );
    }
    assert_ne!(second.outputs["digest"], first.outputs["digest"]);
}

#[tokio::test]
async fn a_second_run_with_nothing_changed_reads_no_export_and_pushes_nothing() {
    let PushedOnce {
        repository,
        run_id,
        context,
        first,
    } = pushed_once("reuse-same");
    let digests: serde_json::Value =
        serde_json::from_str(&first.outputs["platform-digests"]).expect("platform-digests");

    let before = layer_counters(&repository).await;
    let (second, exports) =
        exports_during(&run_id, &reuse_run(&repository, context.path(), &run_id));
    second.assert_success();
    assert_eq!(
        exports, 0,
        "the Engine exported an image:\n{}",
        second.stdout
    );
    for platform in PLATFORMS {
        let held = format!(
            "[{platform}] the repository already holds this image as {} (",
            digests[platform].as_str().expect("digest")
        );
        let line = second
            .stdout
            .lines()
            .find(|line| line.starts_with(&held))
            .unwrap_or_else(|| panic!("no `{held}` line:\n{}", second.stdout));
        assert!(
            line.ends_with(": not exported): nothing to upload"),
            "{line}"
        );
        // On the containerd store the image id is the manifest's digest: only inspect tells.
        if testbed().engine.containerd_store {
            assert!(
                line.contains("(the Engine shows the same layers and config"),
                "{line}"
            );
        }
        assert!(
            !second
                .stdout
                .contains(&format!("[{platform}] reading the image from the Engine")),
            "{}",
            second.stdout
        );
    }
    assert_eq!(second.outputs["digest"], first.outputs["digest"]);
    let after = layer_counters(&repository).await;
    for kind in ["upload_start", "manifest_put"] {
        assert_eq!(
            after.requests(kind),
            before.requests(kind),
            "{kind}: {after:?}"
        );
    }
}

#[tokio::test]
async fn a_changed_layer_is_exported_and_pushed() {
    let PushedOnce {
        repository,
        run_id,
        context,
        first,
    } = pushed_once("reuse-layer");

    std::fs::write(context.path().join("data"), format!("{run_id} changed")).unwrap();
    let before = layer_counters(&repository).await;
    let (second, exports) =
        exports_during(&run_id, &reuse_run(&repository, context.path(), &run_id));
    assert_exported(&second, exports, &first);
    // The base layer stays; the `COPY` layer is new, and it was uploaded.
    for (old, new) in platform_manifests(&first, &repository)
        .iter()
        .zip(platform_manifests(&second, &repository))
    {
        let (old, new) = (layers(&old.1), layers(&new.1));
        assert_eq!(old.len(), new.len());
        assert_eq!(old[0], new[0]);
        assert_ne!(old.last(), new.last());
    }
    let after = layer_counters(&repository).await;
    assert!(
        after.requests("upload_start") > before.requests("upload_start"),
        "{after:?}"
    );
}

/// The same layers under another config: a label the action adds (no step shows it) or an
/// `ENV` step's value.
#[rstest]
#[case::a_label(
    "labels",
    "it.reuse.extra=changed",
    "/config/Labels/it.reuse.extra",
    "changed"
)]
#[case::an_env_value("build-args", "GREETING=changed", "/config/Env/1", "GREETING=changed")]
#[tokio::test]
async fn a_config_change_with_the_same_layers_is_exported_and_pushed(
    #[case] input: &str,
    #[case] value: &str,
    #[case] pointer: &str,
    #[case] expected: &str,
) {
    let PushedOnce {
        repository,
        run_id,
        context,
        first,
    } = pushed_once("reuse-config");

    let mut changed = reuse_run(&repository, context.path(), &run_id);
    if input == "labels" {
        changed.input("labels", &format!("{RUN_LABEL}={run_id}\n{value}"));
    } else {
        changed.input(input, value);
    }
    let (second, exports) = exports_during(&run_id, &changed);
    assert_exported(&second, exports, &first);
    for (platform, (old, new)) in PLATFORMS.iter().zip(
        platform_manifests(&first, &repository)
            .iter()
            .zip(platform_manifests(&second, &repository)),
    ) {
        assert_eq!(layers(&old.1), layers(&new.1), "{platform}");
        let config = skopeo(
            "inspect",
            &["--raw", "--config"],
            &format!("{repository}@{}", new.0),
        );
        let config: serde_json::Value = serde_json::from_slice(&config.stdout).expect("config");
        assert_eq!(config.pointer(pointer), Some(&expected.into()), "{config}");
    }
}
