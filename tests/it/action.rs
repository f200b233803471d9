//! The action as GitHub runs it: `action.yml` and the binary agree on every name, and the
//! action image run the way the runner runs a container action publishes the image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ecr_multiarch::{inputs, report};

use super::{command, skopeo_digest, skopeo_raw, testbed, unique_repository};

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// `action.yml`'s inputs (name -> default) and output names, in file order.
fn action_definition() -> (Vec<(String, String)>, Vec<String>) {
    let text = std::fs::read_to_string(repo_file("action.yml")).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let inputs = yaml["inputs"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, spec)| {
            let default = match &spec["default"] {
                serde_norway::Value::String(s) => s.clone(),
                serde_norway::Value::Null => String::new(),
                other => panic!("default of {name:?} must be a string: {other:?}"),
            };
            (name.as_str().unwrap().to_owned(), default)
        })
        .collect();
    let outputs = yaml["outputs"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    (inputs, outputs)
}

#[test]
fn action_yml_declares_exactly_the_inputs_and_outputs_of_the_binary() {
    let (inputs, outputs) = action_definition();
    let input_names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(input_names, inputs::names::ALL);
    assert_eq!(outputs, report::names::ALL);
    // Every input is also a CLI flag of the same name.
    let help = command(env!("CARGO_BIN_EXE_ecr-multiarch"), &["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for name in inputs::names::ALL {
        assert!(
            help.contains(&format!("--{name} <")),
            "--help lacks --{name}"
        );
    }
}

/// The first column of the README table under a heading.
fn readme_table(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let section = readme
        .split(&format!("\n{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has no `{heading}` section"));
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.split('|')
                .nth(1)
                .unwrap()
                .trim()
                .trim_matches('`')
                .to_owned()
        })
        .collect()
}

#[test]
fn readme_tables_list_exactly_the_inputs_and_outputs() {
    let (inputs, outputs) = action_definition();
    let input_names: Vec<String> = inputs.into_iter().map(|(n, _)| n).collect();
    assert_eq!(readme_table("### Inputs"), input_names);
    assert_eq!(readme_table("### Outputs"), outputs);
}

/// Builds the action image from the repository's Dockerfile (`prebuilt` target on the testbed's
/// runtime base) around the binary under test, laid out by `scripts/package-action`.
fn build_action_image() -> String {
    let context = tempfile::tempdir().unwrap();
    let packaged = std::process::Command::new(repo_file("scripts/package-action"))
        .arg(env!("CARGO_BIN_EXE_ecr-multiarch"))
        .arg(context.path())
        .output()
        .unwrap();
    assert!(
        packaged.status.success(),
        "scripts/package-action: {}",
        String::from_utf8_lossy(&packaged.stderr)
    );
    // One tag per test: each test removes its image when done.
    let tag = format!(
        "ecr-multiarch-action:it-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let out = std::process::Command::new("docker")
        .env("DOCKER_HOST", &testbed().engine.host)
        .env("DOCKER_BUILDKIT", "0")
        .args([
            "build",
            "-q",
            "--network",
            "none",
            "--target",
            "prebuilt",
            "--build-arg",
            "RUNTIME_IMAGE=testbase/runtime:bookworm",
            "-f",
            repo_file("Dockerfile").to_str().unwrap(),
            "-t",
            &tag,
        ])
        .arg(context.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the action image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag
}

#[tokio::test]
async fn the_action_runs_as_the_runner_runs_a_container_action() {
    let tb = testbed();
    let image = build_action_image();
    let repository = unique_repository("action");
    // The GitHub API the action reports to: a local fake, reached over the host network.
    let api = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(
            "/repos/octo/app/statuses/0123456789abcdef0123456789abcdef01234567",
        ))
        .respond_with(wiremock::ResponseTemplate::new(201).set_body_json(serde_json::json!({})))
        .expect(1)
        .mount(&api)
        .await;

    // The runner's mounts: workspace (the checkout), home, file commands.
    let github = tempfile::tempdir().unwrap();
    let workspace = github.path().join("workspace");
    let home = github.path().join("home");
    let file_commands = github.path().join("file_commands");
    for dir in [&workspace, &home, &file_commands] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let app = workspace.join("services/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nRUN uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n",
    )
    .unwrap();

    // One INPUT_ variable for every input of action.yml, its default unless set here.
    let overrides = BTreeMap::from([
        ("repository", repository.as_str()),
        ("context", "services/app"),
        ("registry", tb.registry.as_str()),
        ("network", "host"),
        ("tags", "latest,v1.0.0"),
    ]);
    let (inputs, outputs) = action_definition();
    let mut args: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--network".into(),
        "host".into(),
        "--workdir".into(),
        "/github/workspace".into(),
        "-v".into(),
        // The engine under test is the runner's daemon: its socket, where the runner mounts it.
        format!("{}:/var/run/docker.sock", tb.engine.socket()),
        "-v".into(),
        format!("{}:/github/workspace", workspace.display()),
        "-v".into(),
        format!("{}:/github/home", home.display()),
        "-v".into(),
        format!("{}:/github/file_commands", file_commands.display()),
    ];
    let mut env = vec![
        ("HOME", "/github/home".to_owned()),
        ("GITHUB_ACTIONS", "true".to_owned()),
        ("CI", "true".to_owned()),
        ("GITHUB_WORKSPACE", "/github/workspace".to_owned()),
        (
            "GITHUB_OUTPUT",
            "/github/file_commands/set_output_1".to_owned(),
        ),
        (
            "GITHUB_STEP_SUMMARY",
            "/github/file_commands/step_summary_1".to_owned(),
        ),
        ("GITHUB_REPOSITORY", "octo/app".to_owned()),
        (
            "GITHUB_SHA",
            "0123456789abcdef0123456789abcdef01234567".to_owned(),
        ),
        ("GITHUB_REF", "refs/heads/main".to_owned()),
        ("GITHUB_REF_NAME", "main".to_owned()),
        ("GITHUB_EVENT_NAME", "push".to_owned()),
        ("GITHUB_RUN_ID", "1".to_owned()),
        ("GITHUB_SERVER_URL", "https://github.com".to_owned()),
        ("GITHUB_API_URL", api.uri()),
        ("RUNNER_OS", "Linux".to_owned()),
        ("RUNNER_ARCH", "X64".to_owned()),
    ];
    for name in [
        "AWS_ENDPOINT_URL_ECR",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_EC2_METADATA_DISABLED",
        "ECR_MULTIARCH_BINFMT_IMAGE",
    ] {
        env.push((name, std::env::var(name).unwrap()));
    }
    // The runner evaluates expressions in defaults before it sets the variables.
    let evaluate = |default: &str| default.replace("${{ github.token }}", "ghs_action_token");
    let input_env: Vec<(String, String)> = inputs
        .iter()
        .map(|(name, default)| {
            let value = overrides
                .get(name.as_str())
                .map_or_else(|| evaluate(default), |v| (*v).to_owned());
            (format!("INPUT_{}", name.to_uppercase()), value)
        })
        .collect();
    for (name, value) in env
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .chain(input_env)
    {
        args.push("-e".into());
        args.push(format!("{name}={value}"));
    }
    args.push(image.clone());
    let started = std::time::Instant::now();
    let out = std::process::Command::new("docker")
        .env("DOCKER_HOST", &tb.engine.host)
        .args(&args)
        .output()
        .unwrap();
    let wall_ms = started.elapsed().as_millis();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the action failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    command("docker", &["image", "rm", &image]);

    // Every declared output is in the outputs file, with the digest the registry holds.
    let written =
        super::parse_outputs(&std::fs::read_to_string(file_commands.join("set_output_1")).unwrap());
    let written_names: Vec<&String> = written.keys().collect();
    let mut declared: Vec<&String> = outputs.iter().collect();
    declared.sort();
    assert_eq!(written_names, declared);
    let digest = &written["digest"];
    assert_eq!(skopeo_digest(&repository, "latest").as_ref(), Some(digest));
    assert_eq!(skopeo_digest(&repository, "v1.0.0").as_ref(), Some(digest));
    assert_eq!(
        skopeo_raw(&repository, "latest").unwrap()["manifests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let metadata: serde_json::Value = serde_json::from_str(&written["metadata"]).unwrap();
    eprintln!(
        "action: docker run to outputs {wall_ms} ms; the action's own phases: {}",
        metadata["timings-ms"]
    );

    // The summary has the platform table.
    let summary = std::fs::read_to_string(file_commands.join("step_summary_1")).unwrap();
    assert!(
        summary.contains(
            "| Platform | Digest | Size | Layers uploaded / reused | Sent | Build | Push |"
        ),
        "{summary}"
    );
    assert!(summary.contains("| `linux/amd64` |") && summary.contains("| `linux/arm64` |"));

    // The log: the mask comes first, each platform has its group, the password appears
    // nowhere but in the mask command.
    let first = stdout.lines().next().unwrap_or_default();
    assert_eq!(first, format!("::add-mask::{}", tb.password));
    assert!(stdout.contains("::group::linux/amd64"), "{stdout}");
    assert!(stdout.contains("::group::linux/arm64"), "{stdout}");
    // The QEMU check works from inside the action's container (no binfmt_misc there): the
    // testbed's host emulates arm64 already, so no installer runs.
    assert!(
        stdout.contains(
            "[qemu] the Engine already runs linux/arm64 (checked by this machine's kernel in "
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("registering QEMU"), "{stdout}");
    assert!(!stdout.contains("::warning"), "{stdout}");
    assert!(stdout.contains("::endgroup::"));
    assert!(stdout.contains(&format!("::notice::pushed {}", written["image-uri"])));
    assert_eq!(stdout.matches(tb.password.as_str()).count(), 1, "{stdout}");
    assert!(!stderr.contains(tb.password.as_str()), "{stderr}");
    // Nor in any file the runner keeps.
    for file in ["set_output_1", "step_summary_1"] {
        let text = std::fs::read_to_string(file_commands.join(file)).unwrap();
        assert!(!text.contains(tb.password.as_str()), "{file}");
        assert!(!text.contains("ghs_action_token"), "{file}");
    }
    // The token's mask follows the password's; the commit status was set with it.
    assert_eq!(stdout.lines().nth(1), Some("::add-mask::ghs_action_token"));
    assert_eq!(stdout.matches("ghs_action_token").count(), 1, "{stdout}");
    api.verify().await;
}

#[test]
fn help_shows_every_input_with_its_runner_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecr-multiarch"))
        .env_clear()
        .arg("--help")
        .output()
        .unwrap();
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

/// Runs the action image as the runner runs a container action step: the workspace, home and
/// file commands folders under `github` mounted, every input of action.yml set (its default
/// unless given), the runner's environment, and the Engine's socket only with `engine` (a
/// merge needs none). Returns the output and the outputs the step wrote.
fn run_action_step(
    image: &str,
    github: &Path,
    step: &str,
    inputs: &[(&str, &str)],
    engine: bool,
) -> (std::process::Output, BTreeMap<String, String>) {
    let tb = testbed();
    let mut args: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--network".into(),
        "host".into(),
        "--workdir".into(),
        "/github/workspace".into(),
    ];
    if engine {
        args.extend([
            "-v".into(),
            format!("{}:/var/run/docker.sock", tb.engine.socket()),
        ]);
    }
    for dir in ["workspace", "home", "file_commands"] {
        std::fs::create_dir_all(github.join(dir)).unwrap();
        args.extend([
            "-v".into(),
            format!("{}:/github/{dir}", github.join(dir).display()),
        ]);
    }
    let mut env: Vec<(String, String)> = [
        ("HOME", "/github/home"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_WORKSPACE", "/github/workspace"),
        ("RUNNER_TEMP", "/home/runner/work/_temp"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.push((
        "GITHUB_OUTPUT".into(),
        format!("/github/file_commands/set_output_{step}"),
    ));
    for name in [
        "AWS_ENDPOINT_URL_ECR",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_EC2_METADATA_DISABLED",
        "ECR_MULTIARCH_BINFMT_IMAGE",
    ] {
        env.push((name.to_owned(), std::env::var(name).unwrap()));
    }
    let (declared, _) = action_definition();
    for (name, default) in declared {
        let value = inputs.iter().find(|(n, _)| *n == name).map_or_else(
            || default.replace("${{ github.token }}", ""),
            |(_, v)| (*v).to_owned(),
        );
        env.push((format!("INPUT_{}", name.to_uppercase()), value));
    }
    for (name, value) in env {
        args.extend(["-e".into(), format!("{name}={value}")]);
    }
    args.push(image.to_owned());
    let out = std::process::Command::new("docker")
        .env("DOCKER_HOST", &tb.engine.host)
        .args(&args)
        .output()
        .unwrap();
    let outputs = std::fs::read_to_string(github.join(format!("file_commands/set_output_{step}")))
        .map(|text| super::parse_outputs(&text))
        .unwrap_or_default();
    (out, outputs)
}

#[test]
fn a_split_build_hands_its_results_over_in_the_workspace() {
    let tb = testbed();
    let image = build_action_image();
    let repository = unique_repository("action-split");
    let github = tempfile::tempdir().unwrap();
    let workspace = github.path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(
        workspace.join("Dockerfile"),
        "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nRUN uname -m > /arch\n",
    )
    .unwrap();
    let common = [
        ("repository", repository.as_str()),
        ("registry", tb.registry.as_str()),
        ("network", "host"),
    ];
    // Each platform's job: the default results folder, relative to the workspace.
    for platform in ["linux/amd64", "linux/arm64"] {
        let mut inputs = common.to_vec();
        inputs.extend([("platforms", platform), ("platform-only", "true")]);
        let (out, outputs) = run_action_step(
            &image,
            github.path(),
            platform.replace('/', "-").as_str(),
            &inputs,
            true,
        );
        assert!(
            out.status.success(),
            "platform-only {platform}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(outputs["digest"], "");
    }
    // On the runner's side of the mount, where actions/upload-artifact looks.
    let mut written: Vec<String> = std::fs::read_dir(workspace.join("ecr-multiarch-results"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let name = |platform: &str| {
        ecr_multiarch::handoff::file_name(&repository, &[platform.parse().unwrap()])
    };
    assert_eq!(written, [name("linux/amd64"), name("linux/arm64")]);
    assert_eq!(super::registry_tags(&repository), Vec::<String>::new());

    // `runner.temp` is not mounted into the container: refused, with the reason.
    let mut inputs = common.to_vec();
    inputs.extend([
        ("platform-only", "true"),
        ("results-folder", "/home/runner/work/_temp/digests"),
    ]);
    let (out, _) = run_action_step(&image, github.path(), "temp", &inputs, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("not `runner.temp`"), "{stdout}");

    // The merge job: no Docker socket mounted at all.
    let mut inputs = common.to_vec();
    inputs.extend([("merge", "ecr-multiarch-results"), ("tags", "latest")]);
    let (out, outputs) = run_action_step(&image, github.path(), "merge", &inputs, false);
    command("docker", &["image", "rm", &image]);
    assert!(
        out.status.success(),
        "merge: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        skopeo_digest(&repository, "latest").as_ref(),
        Some(&outputs["digest"])
    );
    assert_eq!(
        skopeo_raw(&repository, "latest").unwrap()["manifests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
