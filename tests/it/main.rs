//! Integration tests against the real testbed (`scripts/testbed up`): dockerd with BuildKit and
//! QEMU, docker-registry behind the ECR layer on 127.0.0.1:5000 (`scripts/ecr-layer.py`) and moto
//! on 127.0.0.1:5001. One binary, so that it links once. A missing testbed fails loudly; nothing
//! is skipped.
//!
//! The suite runs on one of the testbed's Docker Engines, named by `TESTBED_ENGINE` (`system`,
//! `28.5-classic`, `28.5-containerd`; `scripts/test` runs it once on each): every command a test
//! spawns (the binary, the docker CLI, skopeo) is pointed at that engine.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, missing_docs)]

mod action;
mod build;
mod cache;
mod console;
mod context_sync;
mod docs;
mod ecr_api;
mod ecr_layer;
mod emulation;
mod engines;
mod export;
mod fidelity;
mod gate;
mod github;
mod inputs;
mod merge;
mod push;
mod registry;
mod repository_settings;
mod reuse;
mod scratch_engine;
mod tags;
mod testbed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The testbed's addresses and credentials, from `scripts/testbed env`.
pub struct Testbed {
    pub registry: String,
    pub moto_url: String,
    pub user: String,
    pub password: String,
    /// The ECR layer's control API, e.g. `http://127.0.0.1:5000/_ecr-layer`.
    pub layer_control: String,
    /// A docker CLI config folder logged in to the registry (for pulls in assertions).
    pub docker_config: PathBuf,
    /// The Docker Engine the suite runs on.
    pub engine: TestEngine,
}

/// One of the testbed's Docker Engines.
pub struct TestEngine {
    /// As `TESTBED_ENGINE` names it, e.g. `28.5-containerd`.
    pub name: String,
    /// Its `DOCKER_HOST`, e.g. `unix:///var/run/testbed-docker-28.5-containerd.sock`.
    pub host: String,
    /// What `docker version` says, e.g. `28.5.2+dfsg4`.
    pub version: String,
    /// Whether it keeps images in the containerd image store.
    pub containerd_store: bool,
}

impl TestEngine {
    /// The socket file, for mounting into a container as the runner does.
    pub fn socket(&self) -> &str {
        self.host
            .strip_prefix("unix://")
            .unwrap_or_else(|| panic!("engine `{}` is not on a unix socket", self.host))
    }
}

/// `TESTBED_ENGINE_<NAME>_<FIELD>` from `scripts/testbed env`, e.g.
/// `TESTBED_ENGINE_28_5_CLASSIC_HOST`.
pub fn engine_setting(engine: &str, field: &str) -> String {
    let key: String = engine
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    required(&format!("TESTBED_ENGINE_{key}_{field}"))
}

fn engine_under_test() -> TestEngine {
    let name = std::env::var("TESTBED_ENGINE").unwrap_or_else(|_| "system".to_owned());
    let host = engine_setting(&name, "HOST");
    let out = Command::new("docker")
        .args([
            "-H",
            &host,
            "info",
            "--format",
            "{{.ServerVersion}} {{json .DriverStatus}}",
        ])
        .output()
        .expect("the docker CLI runs");
    let info = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "engine `{name}` does not answer at `{host}`: {}; run `scripts/testbed up`",
        String::from_utf8_lossy(&out.stderr)
    );
    let (version, driver_status) = info.trim().split_once(' ').unwrap_or((info.trim(), ""));
    eprintln!("integration tests on engine `{name}`: Docker {version} at {host}");
    TestEngine {
        name,
        host,
        version: version.to_owned(),
        containerd_store: driver_status.contains("io.containerd.snapshotter.v1"),
    }
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "`{name}` is not set: the integration tests need the testbed. Run \
             `scripts/testbed up && eval \"$(scripts/testbed env)\"` first, or `scripts/test`"
        )
    })
}

/// The testbed, checked once to answer.
pub fn testbed() -> &'static Testbed {
    static TESTBED: OnceLock<Testbed> = OnceLock::new();
    TESTBED.get_or_init(|| {
        let registry = required("TESTBED_REGISTRY");
        let user = required("TESTBED_REGISTRY_USER");
        let password = required("TESTBED_REGISTRY_PASSWORD");
        let engine = engine_under_test();
        let docker_config = std::env::temp_dir().join("ecr-multiarch-it-docker-config");
        std::fs::create_dir_all(&docker_config).unwrap();
        let mut login = Command::new("docker")
            .env("DOCKER_CONFIG", &docker_config)
            .env("DOCKER_HOST", &engine.host)
            .args(["login", &registry, "-u", &user, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the docker CLI runs");
        std::io::Write::write_all(login.stdin.as_mut().unwrap(), password.as_bytes()).unwrap();
        let out = login.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker login to the testbed registry failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Testbed {
            registry,
            moto_url: required("TESTBED_MOTO_URL"),
            layer_control: required("TESTBED_ECR_LAYER_CONTROL"),
            user,
            password,
            docker_config,
            engine,
        }
    })
}

/// A repository name no other test uses.
pub fn unique_repository(prefix: &str) -> String {
    format!(
        "it/{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// Runs a command on the engine under test and returns its output, failing the test with
/// stderr when it cannot start.
pub fn command(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DOCKER_CONFIG", &testbed().docker_config)
        .env("DOCKER_HOST", &testbed().engine.host)
        .output()
        .unwrap_or_else(|e| panic!("running `{program}`: {e}"))
}

/// What one run of the binary did.
pub struct RunResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Parsed `GITHUB_OUTPUT` (empty when not run as on a runner).
    pub outputs: BTreeMap<String, String>,
    pub summary: String,
}

impl RunResult {
    /// The outputs JSON printed on stdout.
    pub fn json(&self) -> serde_json::Value {
        let start = self.stdout.find("\n{").map_or(0, |i| i + 1);
        serde_json::from_str(&self.stdout[start..]).unwrap_or_else(|e| {
            panic!(
                "stdout is not the outputs JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn assert_success(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "the run failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The `metadata` output, parsed.
    pub fn metadata(&self) -> serde_json::Value {
        let text = self.outputs.get("metadata").unwrap_or_else(|| {
            panic!(
                "no `metadata` output\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        });
        serde_json::from_str(text).expect("the metadata output is JSON")
    }

    /// The `platform-digests` output: platform -> digest.
    pub fn platform_digests(&self) -> BTreeMap<String, String> {
        let text = self.outputs.get("platform-digests").unwrap_or_else(|| {
            panic!(
                "no `platform-digests` output\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        });
        serde_json::from_str(text).expect("the platform-digests output is JSON")
    }

    /// The message of the one `::error` line, which must have the title `title`.
    pub fn error(&self, title: &str) -> String {
        let line = self.error_line();
        let prefix = format!("::error title={title}::");
        line.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("expected an error titled `{title}`: {line}"))
            .to_owned()
    }

    /// The one `::error` line.
    pub fn error_line(&self) -> String {
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.starts_with("::error"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one ::error line\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        lines[0].to_owned()
    }
}

/// A run of `ecr-multiarch` as a GitHub runner would start it (inputs as `INPUT_*`, hyphens
/// kept) or as a CLI user would (flags).
///
/// A test reads like the workflow it stands for:
///
/// ```ignore
/// let refused = Run::new(&repository, context.path())
///     .input("platforms", "linux/arm64")
///     .input("vulnerability-gate", "high")
///     .expect_exit(1)
///     .run();
/// assert_user_sees!("a_high_finding", refused.error_line());
/// ```
pub struct Run {
    inputs: BTreeMap<String, String>,
    flags: Vec<String>,
    env: BTreeMap<String, String>,
    github: bool,
    expected_exit: Option<i32>,
}

impl Run {
    /// A run against the testbed registry with network `host` (the testbed has no bridge).
    pub fn new(repository: &str, context: &Path) -> Run {
        let mut run = Run {
            inputs: BTreeMap::new(),
            flags: Vec::new(),
            env: BTreeMap::new(),
            github: true,
            expected_exit: None,
        };
        run.input("repository", repository)
            .input("context", context.to_str().unwrap())
            .input("registry", &testbed().registry)
            .input("network", "host");
        run
    }

    pub fn input(&mut self, name: &str, value: &str) -> &mut Run {
        self.inputs.insert(name.to_owned(), value.to_owned());
        self
    }

    /// An environment variable, e.g. the runner's `GITHUB_REF`.
    pub fn env(&mut self, name: &str, value: &str) -> &mut Run {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The Docker Engine the run builds on (its `DOCKER_HOST`), instead of the one under test.
    pub fn engine(&mut self, host: &str) -> &mut Run {
        self.env("DOCKER_HOST", host)
    }

    /// The exit code the run must end with ([`Run::run`] fails the test, with the run's output,
    /// on any other).
    pub fn expect_exit(&mut self, code: i32) -> &mut Run {
        self.expected_exit = Some(code);
        self
    }

    pub fn flag(&mut self, name: &str, value: &str) -> &mut Run {
        self.flags.push(format!("--{name}"));
        self.flags.push(value.to_owned());
        self
    }

    /// The binary's command, on the engine under test unless `DOCKER_HOST` is set with
    /// [`Run::env`]; the runner's files go into `files`.
    fn command(&self, files: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ecr-multiarch"));
        for (key, _) in std::env::vars() {
            if key.starts_with("INPUT_") || key.starts_with("GITHUB_") {
                command.env_remove(key);
            }
        }
        for (name, value) in &self.inputs {
            command.env(format!("INPUT_{}", name.to_uppercase()), value);
        }
        if self.github {
            command
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_OUTPUT", files.join("output"))
                .env("GITHUB_STEP_SUMMARY", files.join("summary"));
        }
        command.env("DOCKER_HOST", &testbed().engine.host);
        command.envs(&self.env);
        command.args(&self.flags);
        command
    }

    pub fn run(&self) -> RunResult {
        let files = tempfile::tempdir().unwrap();
        let output = self.command(files.path()).output().unwrap();
        let result = RunResult::read(
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            files.path(),
        );
        if let Some(code) = self.expected_exit {
            assert_eq!(
                result.code, code,
                "the run's exit code\nstdout:\n{}\nstderr:\n{}",
                result.stdout, result.stderr
            );
        }
        result
    }

    /// Starts the run and hands its stdout over line by line while it runs.
    pub fn spawn(&self) -> RunningRun {
        let files = tempfile::tempdir().unwrap();
        let mut child = self
            .command(files.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        RunningRun {
            child,
            files,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }
}

/// A run of the binary under way (see [`Run::spawn`]).
pub struct RunningRun {
    child: std::process::Child,
    files: tempfile::TempDir,
    lines: std::sync::mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl RunningRun {
    /// Waits at most `timeout` for a stdout line containing `text`; `false` if none came.
    pub fn wait_for_line(&mut self, text: &str, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.stdout.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Waits at most `timeout` for the run to end; `None` (and the run killed) if it did not.
    pub fn finish(mut self, timeout: std::time::Duration) -> Option<RunResult> {
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        self.stdout.extend(self.lines.iter());
        let mut stdout = self.stdout.join("\n");
        stdout.push('\n');
        Some(RunResult::read(
            status,
            stdout,
            self.stderr.join().unwrap(),
            self.files.path(),
        ))
    }
}

impl RunResult {
    /// A finished run: its exit, its output and the runner files it wrote into `files`.
    fn read(
        status: std::process::ExitStatus,
        stdout: String,
        stderr: String,
        files: &Path,
    ) -> Self {
        RunResult {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            outputs: std::fs::read_to_string(files.join("output"))
                .map(|text| parse_outputs(&text))
                .unwrap_or_default(),
            summary: std::fs::read_to_string(files.join("summary")).unwrap_or_default(),
        }
    }
}

/// Parses the heredoc form of `GITHUB_OUTPUT`.
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let (name, delimiter) = line.split_once("<<").expect("heredoc output");
        let mut value = Vec::new();
        for line in lines.by_ref() {
            if line == delimiter {
                break;
            }
            value.push(line);
        }
        outputs.insert(name.to_owned(), value.join("\n"));
    }
    outputs
}

/// Runs `skopeo <verb> [options] docker://<registry>/<target>` against the testbed registry
/// with its credentials.
pub fn skopeo(verb: &str, options: &[&str], target: &str) -> Output {
    let tb = testbed();
    let creds = format!("{}:{}", tb.user, tb.password);
    let location = format!("docker://{}/{target}", tb.registry);
    let mut args = vec![verb, "--tls-verify=false", "--creds", &creds];
    args.extend_from_slice(options);
    args.push(&location);
    command("skopeo", &args)
}

/// What skopeo reads back from the registry for `repository:tag` (raw manifest), or `None`
/// when the tag does not exist.
pub fn skopeo_raw(repository: &str, reference: &str) -> Option<serde_json::Value> {
    let separator = if reference.starts_with("sha256:") {
        "@"
    } else {
        ":"
    };
    let out = skopeo(
        "inspect",
        &["--raw"],
        &format!("{repository}{separator}{reference}"),
    );
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("manifest unknown")
                || stderr.contains("not found")
                || stderr.contains("name unknown"),
            "skopeo failed unexpectedly: {stderr}"
        );
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("skopeo prints JSON"))
}

/// The digest of what the registry holds under `repository:tag`: sha256 of the exact bytes
/// skopeo reads back (`--raw`, so an index is not resolved to one platform).
pub fn skopeo_digest(repository: &str, tag: &str) -> Option<String> {
    use sha2::Digest as _;
    let out = skopeo("inspect", &["--raw"], &format!("{repository}:{tag}"));
    out.status
        .success()
        .then(|| format!("sha256:{:x}", sha2::Sha256::digest(&out.stdout)))
}

/// The tags the registry holds for a repository (empty when it has none).
pub fn registry_tags(repository: &str) -> Vec<String> {
    let out = skopeo("list-tags", &[], repository);
    if !out.status.success() {
        return Vec::new();
    }
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    value["Tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// An ECR client on moto, configured from the environment only.
pub async fn ecr_client() -> aws_sdk_ecr::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client)
        .load()
        .await;
    aws_sdk_ecr::Client::new(&config)
}

/// The repository as moto describes it, or `None` when it does not exist.
pub async fn moto_repository(name: &str) -> Option<aws_sdk_ecr::types::Repository> {
    match ecr_client()
        .await
        .describe_repositories()
        .repository_names(name)
        .send()
        .await
    {
        Ok(answer) => answer.repositories().first().cloned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception()) =>
        {
            None
        }
        Err(e) => panic!("moto DescribeRepositories failed: {e:?}"),
    }
}

/// Asserts that a refused run left nothing behind: no repository in moto, no tag in the
/// registry.
pub async fn assert_nothing_created(repository: &str) {
    assert!(
        moto_repository(repository).await.is_none(),
        "no repository created"
    );
    assert!(registry_tags(repository).is_empty(), "no tag pushed");
}

/// Asserts a run refused `input` as every bad input is refused: exit 1, one `::error` titled
/// `Invalid input <input>` whose message says `message`, no outputs, and nothing created.
/// Answers the error line, for a snapshot of what the user reads.
pub async fn assert_refused_input(
    result: &RunResult,
    repository: &str,
    input: &str,
    message: &str,
) -> String {
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    let error = result.error(&format!("Invalid input {input}"));
    assert!(error.contains(message), "{error}");
    assert!(result.outputs.is_empty(), "no outputs on failure");
    assert_nothing_created(repository).await;
    result.error_line()
}

/// Snapshot settings for what a user sees (annotations, the summary, stdout), so that one
/// snapshot holds on every engine and every run: digests, the tests' random repository names,
/// temporary folders, the engine's address, and the timings, sizes and layer counts of the
/// summary's tables (which differ by engine or run) are replaced by placeholders.
/// Everything else is compared to the letter.
pub fn user_view() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    for (pattern, placeholder) in [
        (r"sha256:[0-9a-f]{64}", "sha256:[digest]"),
        (r"it/([a-z0-9-]+)-[0-9a-f]{10}\b", "it/$1-[id]"),
        (r"/tmp/\.tmp[A-Za-z0-9]+", "[tmp]"),
        (r"unix:///var/run/testbed-docker[^ `|]*\.sock", "[engine]"),
        // Summary table cells only: a time or size in a message is the user's and stays.
        (r"\b\d+\.\d s \|", "[time] |"),
        (r"\b\d+(\.\d+)? (B|kB|MB|GB) \|", "[size] |"),
        // Which platform uploads a layer both share, and which reuses it, is a race.
        (r"\| \d+ / \d+ \|", "| [uploaded] / [reused] |"),
    ] {
        settings.add_filter(pattern, placeholder);
    }
    settings
}

/// The shape of a JSON value, for a snapshot of what a workflow reads from it: every key kept,
/// every string, number and boolean replaced by its type's name.
pub fn json_shape(value: &serde_json::Value) -> String {
    fn shape(value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Null => Value::Null,
            Value::Bool(_) => "boolean".into(),
            Value::Number(_) => "number".into(),
            Value::String(_) => "string".into(),
            Value::Array(items) => items.iter().map(shape).collect(),
            Value::Object(fields) => fields
                .iter()
                .map(|(key, value)| (key.clone(), shape(value)))
                .collect(),
        }
    }
    serde_json::to_string_pretty(&shape(value)).unwrap()
}

/// `insta::assert_snapshot!` with [`user_view`]'s placeholders; the snapshot is named
/// `<test file>__<name>`.
#[macro_export]
macro_rules! assert_user_sees {
    ($name:expr, $value:expr) => {
        $crate::user_view().bind(|| {
            insta::assert_snapshot!(
                format!("{}__{}", module_path!().rsplit("::").next().unwrap(), $name),
                $value
            )
        })
    };
}

/// A build context folder with the given files.
pub fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// Pulls `reference` for a platform and runs `args` in it, returning stdout.
pub fn run_image(reference: &str, platform: &str, args: &[&str]) -> String {
    let pull = command("docker", &["pull", "-q", "--platform", platform, reference]);
    assert!(
        pull.status.success(),
        "docker pull {reference} for {platform}: {}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let mut all = vec![
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        platform,
        reference,
    ];
    all.extend_from_slice(args);
    let out = command("docker", &all);
    assert!(
        out.status.success(),
        "docker run {reference} for {platform}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The classic image store keeps one platform per reference: let go of this one so that
    // the next platform can be pulled under the same digest (a failure here would let the
    // next run use this platform). The containerd store keeps the index and every platform
    // pulled under it, and removes them all at once.
    let rm = command("docker", &["image", "rm", reference]);
    assert!(
        rm.status.success(),
        "docker image rm {reference}: {}",
        String::from_utf8_lossy(&rm.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Creates a repository in moto with default settings, as a user would before pushing to it
/// with another client (the ECR layer answers `NAME_UNKNOWN` for a repository moto lacks).
pub async fn create_moto_repository(name: &str) {
    ecr_client()
        .await
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto CreateRepository `{name}`: {e:?}"));
}

/// What the ECR layer counted for one repository (`GET /_ecr-layer/counters`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct LayerCounters {
    /// Requests by kind: `blob_head`, `upload_start`, `mount`, `upload_patch`, `manifest_put`...
    pub requests: BTreeMap<String, u64>,
    /// Responses by kind, then status (`"201"`, `"429"`, `"dropped"`).
    pub responses: BTreeMap<String, BTreeMap<String, u64>>,
    /// Bytes of blob bodies read from clients.
    pub blob_bytes_received: u64,
    /// Bytes of blob bodies sent to clients.
    pub blob_bytes_sent: u64,
    /// Faults injected: `throttled`, `unavailable`, `dropped`, `delayed`.
    pub faults: BTreeMap<String, u64>,
    /// ECR rules that answered: `unauthorized`, `name_unknown`, `tag_invalid`,
    /// `manifest_blob_unknown`.
    pub rules: BTreeMap<String, u64>,
    /// Calls the layer made to moto: `put_image`, `batch_delete_image`, `errors`.
    pub moto: BTreeMap<String, u64>,
    /// Requests by the `Host` they named (issue 18: dual-stack and FIPS host names).
    #[serde(default)]
    pub hosts: BTreeMap<String, u64>,
}

impl LayerCounters {
    pub fn requests(&self, kind: &str) -> u64 {
        self.requests.get(kind).copied().unwrap_or(0)
    }

    pub fn responses(&self, kind: &str, status: &str) -> u64 {
        self.responses
            .get(kind)
            .and_then(|by_status| by_status.get(status))
            .copied()
            .unwrap_or(0)
    }

    pub fn fault(&self, name: &str) -> u64 {
        self.faults.get(name).copied().unwrap_or(0)
    }

    pub fn rule(&self, name: &str) -> u64 {
        self.rules.get(name).copied().unwrap_or(0)
    }

    pub fn moto(&self, name: &str) -> u64 {
        self.moto.get(name).copied().unwrap_or(0)
    }
}

/// A plain HTTP client for the testbed (reqwest needs the crypto provider even without TLS).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn layer_url(path: &str, repository: &str) -> String {
    format!("{}/{path}?repository={repository}", testbed().layer_control)
}

/// Switches faults on (or off with 0) for one repository only, so that tests running beside it
/// are not hit: `{"throttle_manifest_puts": 2}`, `{"unavailable_every": 3}`,
/// `{"drop_blob_uploads": 1, "drop_after_bytes": 4096}`, `{"delay_ms": 300}`.
pub async fn layer_faults(repository: &str, faults: serde_json::Value) {
    let answer = http_client()
        .post(layer_url("faults", repository))
        .json(&faults)
        .send()
        .await
        .expect("the ECR layer's control API answers");
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "setting faults {faults}: {status} {body}"
    );
}

/// The ECR layer's counters for one repository.
pub async fn layer_counters(repository: &str) -> LayerCounters {
    http_client()
        .get(layer_url("counters", repository))
        .send()
        .await
        .expect("the ECR layer's control API answers")
        .json()
        .await
        .expect("counters JSON")
}

/// The ECR layer's process status: `rss_bytes`, `peak_rss_bytes`, global counters.
pub async fn layer_status() -> serde_json::Value {
    http_client()
        .get(format!("{}/status", testbed().layer_control))
        .send()
        .await
        .expect("the ECR layer's control API answers")
        .json()
        .await
        .expect("status JSON")
}
