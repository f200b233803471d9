//! Nothing from outside commands the runner, and the runner's files are checked before
//! anything is pushed (issue 14, §2, §3 and §5's long repository name). Each run's whole
//! stdout and stderr are read the way the runner reads them
//! ([`ecr_multiarch::github::workflow_command::commands`]).

use std::path::Path;

use ecr_multiarch::github::workflow_command::{commands, Command};
use rstest::rstest;

use super::{fixture, moto_repository, registry_tags, testbed, unique_repository, Run, RunResult};

const BASE: &str = "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\n";

/// The commands the action itself prints.
const OWN: &[&str] = &[
    "add-mask", "group", "endgroup", "notice", "warning", "error",
];

/// Every command the runner would run on the run's stdout, then on its stderr; fails the
/// test on any command that is not the action's own, or that carries the hostile marker `X`.
fn own_commands(result: &RunResult) -> Vec<Command> {
    let mut found = commands(&result.stdout);
    found.extend(commands(&result.stderr));
    for command in &found {
        assert!(
            OWN.contains(&command.name.as_str()) && !command.legacy,
            "a command that is not the action's own: {command:?}\nstdout:\n{}\nstderr:\n{}",
            result.stdout,
            result.stderr
        );
        assert!(
            !(command.data == "X" || command.data.ends_with("]X")),
            "hostile text ran as a command: {command:?}\nstdout:\n{}",
            result.stdout
        );
    }
    // Every group the action opened, it closed.
    let mut open = false;
    for command in &found {
        match command.name.as_str() {
            "group" => {
                assert!(!open, "a group opened inside another: {}", result.stdout);
                open = true;
            }
            "endgroup" => open = false,
            _ => {}
        }
    }
    assert!(!open, "a group left open:\n{}", result.stdout);
    found
}

/// A Dockerfile whose step names and output hold every form of command, the last step failing
/// after a `stop-commands`: the failure's annotation must still reach the runner.
#[tokio::test]
async fn hostile_build_output_runs_no_command() {
    let repository = unique_repository("hostile-output");
    let dockerfile = format!(
        "{BASE}RUN printf 'progress\\r::warning::X\\n'\n\
         RUN printf 'legacy ##[warning]X\\n'\n\
         RUN true ##[notice]X\n\
         RUN printf '##[stop-commands]tok\\n' && printf '  ::error::X\\r\\n' && false\n"
    );
    let context = fixture(&[("Dockerfile", &dockerfile)]);
    let failed = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .input("no-cache", "true")
        .run();
    assert_eq!(failed.code, 1, "{}\n{}", failed.stdout, failed.stderr);
    // The hostile text is in the log, as text.
    for text in [
        "progress",
        "legacy ##\u{200B}[warning]X",
        "##\u{200B}[notice]X",
        "##\u{200B}[stop-commands]tok",
    ] {
        assert!(
            failed.stdout.contains(text),
            "`{text}` in\n{}",
            failed.stdout
        );
    }
    let found = own_commands(&failed);
    let errors: Vec<&Command> = found.iter().filter(|c| c.name == "error").collect();
    assert_eq!(errors.len(), 1, "{}", failed.stdout);
    assert!(
        errors[0]
            .properties
            .starts_with("title=Build failed for linux/amd64"),
        "{:?}",
        errors[0]
    );
    assert!(found.iter().any(|c| c.name == "group"), "{}", failed.stdout);
    assert_eq!(registry_tags(&repository), Vec::<String>::new());
}

/// A merge of a result file whose fields are hostile: the log runs none of them, the summary
/// shows them in their cells, and the outputs JSON on stdout still parses to the same values.
#[tokio::test]
async fn hostile_result_fields_run_no_command_and_stay_in_their_cells() {
    let repository = unique_repository("hostile-result");
    let context = fixture(&[("Dockerfile", BASE)]);
    let results = tempfile::tempdir().unwrap();
    Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .input("platform-only", "true")
        .input("results-folder", results.path().to_str().unwrap())
        .run()
        .assert_success();
    let file = std::fs::read_dir(results.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let hostile =
        "##[warning]X\r::error::X\n# Heading [link](https://example.com) <b>html</b> | cell";
    value["images"][0]["engine"] = hostile.into();
    value["revision"] = hostile.into();
    std::fs::write(&file, value.to_string()).unwrap();

    let merged = Run::new(&repository, Path::new("/nonexistent/context"))
        .input("platforms", "linux/amd64")
        .input("merge", results.path().to_str().unwrap())
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .run();
    merged.assert_success();
    let found = own_commands(&merged);
    // The warning about the other commit is the action's own, with the revision escaped in it.
    assert!(
        found
            .iter()
            .any(|c| c.name == "warning" && c.data.contains("was built from commit")),
        "{}",
        merged.stdout
    );
    assert_eq!(
        merged.json()["metadata"]["platforms"]["linux/amd64"]["engine"],
        hostile
    );
    // One table row, the hostile text inside a code span in it, no heading or link made.
    let row: Vec<&str> = merged
        .summary
        .lines()
        .filter(|l| l.starts_with("| `linux/amd64`"))
        .collect();
    assert_eq!(row.len(), 1, "{}", merged.summary);
    assert!(
        row[0].contains(
            "`##[warning]X ::error::X # Heading [link](https://example.com) <b>html</b> \\| cell`"
        ),
        "{}",
        row[0]
    );
    assert!(
        !merged
            .summary
            .lines()
            .any(|l| l.starts_with("# ") || l.starts_with('<')),
        "{}",
        merged.summary
    );
}

/// `GITHUB_OUTPUT` that cannot be written: exit 2 before anything is created or pushed.
#[tokio::test]
async fn unwritable_outputs_fail_before_anything_is_created() {
    let repository = unique_repository("unwritable-outputs");
    let context = fixture(&[("Dockerfile", BASE)]);
    let folder = tempfile::tempdir().unwrap();
    let refused = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .env("GITHUB_OUTPUT", folder.path().to_str().unwrap())
        .run();
    assert_eq!(refused.code, 2, "{}\n{}", refused.stdout, refused.stderr);
    let error = refused.error_line();
    assert!(
        error.starts_with("::error title=Outputs cannot be written::"),
        "{error}"
    );
    assert!(error.contains("GITHUB_OUTPUT"), "{error}");
    assert!(moto_repository(&repository).await.is_none(), "created");
    assert_eq!(registry_tags(&repository), Vec::<String>::new());
}

/// `GITHUB_STEP_SUMMARY` that cannot be written: a warning; the run pushes and succeeds.
#[tokio::test]
async fn an_unwritable_summary_is_a_warning() {
    let repository = unique_repository("unwritable-summary");
    let context = fixture(&[("Dockerfile", BASE)]);
    let folder = tempfile::tempdir().unwrap();
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .env("GITHUB_STEP_SUMMARY", folder.path().to_str().unwrap())
        .run();
    result.assert_success();
    let warnings: Vec<&str> = result
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning::") && l.contains("GITHUB_STEP_SUMMARY"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", result.stdout);
    assert!(result.outputs["digest"].starts_with("sha256:"));
    assert_eq!(registry_tags(&repository), ["latest"]);
}

/// A `results-folder` the result cannot be written to: exit 1 naming the input, before the
/// repository is created and anything pushed.
#[rstest]
#[case::a_symbolic_link("link")]
#[case::below_a_file("file/results")]
#[tokio::test]
async fn an_unwritable_results_folder_is_refused_before_anything_is_created(#[case] folder: &str) {
    let repository = unique_repository("unwritable-results");
    let context = fixture(&[("Dockerfile", BASE)]);
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("file"), "a file").unwrap();
    std::fs::create_dir(scratch.path().join("real")).unwrap();
    std::os::unix::fs::symlink(scratch.path().join("real"), scratch.path().join("link")).unwrap();
    let refused = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .input("platform-only", "true")
        .input(
            "results-folder",
            scratch.path().join(folder).to_str().unwrap(),
        )
        .run();
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    let error = refused.error_line();
    assert!(
        error.starts_with("::error title=Invalid input results-folder::"),
        "{error}"
    );
    assert!(moto_repository(&repository).await.is_none(), "created");
    assert!(refused.outputs.is_empty());
    assert_eq!(
        std::fs::read_dir(scratch.path().join("real"))
            .unwrap()
            .count(),
        0
    );
}

/// A valid repository name of 246 characters in a platform-only run: the result file's name
/// stays short, and the run succeeds.
#[tokio::test]
async fn a_long_repository_name_gives_a_short_result_file() {
    let prefix = unique_repository("long");
    let repository = format!("{prefix}/{}", "a".repeat(246 - prefix.len() - 1));
    assert_eq!(repository.len(), 246);
    let context = fixture(&[("Dockerfile", BASE)]);
    let results = tempfile::tempdir().unwrap();
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .input("platform-only", "true")
        .input("results-folder", results.path().to_str().unwrap())
        .run();
    result.assert_success();
    let files: Vec<String> = std::fs::read_dir(results.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].len() <= 100, "{files:?}");
    let _ = testbed();
}

/// `GITHUB_OUTPUT` that opens but cannot take the outputs (a full disk: `/dev/full`): the run
/// pushed, so the error says what it pushed, the digest and the tags.
#[tokio::test]
async fn outputs_failing_after_the_push_name_what_was_pushed() {
    let repository = unique_repository("full-outputs");
    let context = fixture(&[("Dockerfile", BASE)]);
    let failed = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .input("tags", "v1")
        .env("GITHUB_OUTPUT", "/dev/full")
        .run();
    assert_eq!(failed.code, 2, "{}\n{}", failed.stdout, failed.stderr);
    let error = failed.error_line();
    assert!(
        error.starts_with("::error title=Writing outputs failed::"),
        "{error}"
    );
    let digest = super::skopeo_digest(&repository, "v1").expect("pushed under v1");
    let registry = &testbed().registry;
    assert!(
        error.contains(&format!("{registry}/{repository}@{digest}")),
        "{error}"
    );
    assert!(
        error.contains(&format!("`{registry}/{repository}:v1`")),
        "{error}"
    );
}
