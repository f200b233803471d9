//! The build context through BuildKit's session (issue 17): only what the Dockerfile reads,
//! once per run, only what changed since the last build; and what arrives is what buildx
//! sends (issue 14 §7). The bytes are counted on our side of the session and read from the
//! run's log line `context: sent through the BuildKit session ...`.

use std::path::Path;

use super::{
    command, fixture, layer_counters, registry_tags, run_image, testbed, unique_repository, Run,
    RunResult,
};

const MIB: u64 = 1024 * 1024;

/// What one run's session sent: (bytes on the session, bytes of file contents, files).
fn session_sent(result: &RunResult) -> (u64, u64, u64) {
    let line = result
        .stdout
        .lines()
        .find(|l| l.contains("context: sent through the BuildKit session"))
        .unwrap_or_else(|| {
            panic!(
                "no session line in the log\nstdout:\n{}\nstderr:\n{}",
                result.stdout, result.stderr
            )
        });
    let number_before = |marker: &str| -> u64 {
        let before = &line[..line
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} in {line}"))];
        before
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a number before {marker} in {line}"))
    };
    (
        number_before(" bytes on the session"),
        number_before(" bytes of contents"),
        number_before(" files,"),
    )
}

fn write_file(path: &Path, size: u64, seed: u8) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    // Incompressible enough that nothing on the way can shrink it.
    let mut block = vec![0u8; usize::try_from(MIB).unwrap()];
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    for byte in &mut block {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *byte = state.to_le_bytes()[0];
    }
    for _ in 0..size / MIB {
        file.write_all(&block).unwrap();
    }
    file.write_all(&block[..usize::try_from(size % MIB).unwrap()])
        .unwrap();
}

#[tokio::test]
async fn a_file_the_dockerfile_never_copies_does_not_cross_and_two_platforms_share_one_sync() {
    let repository = unique_repository("ctx-unread");
    let context = fixture(&[
        (
            "Dockerfile",
            "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nCOPY payload.bin /payload.bin\n",
        ),
        (".dockerignore", "*.log\n"),
    ]);
    write_file(&context.path().join("payload.bin"), 4 * MIB, 1);
    // Sparse: quick to make, and every byte of it would count if it crossed.
    std::fs::File::create(context.path().join("unread.bin"))
        .unwrap()
        .set_len(256 * MIB)
        .unwrap();
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64,linux/arm64")
        .run();
    result.assert_success();
    let (session, contents, files) = session_sent(&result);
    // The copied 4 MiB crossed once for both platforms, the 256 MiB never, on the first run.
    assert!(contents >= 4 * MIB, "{contents} bytes of contents");
    assert!(
        contents < 6 * MIB,
        "{contents} bytes of contents: more than one copy"
    );
    assert!(session < 8 * MIB, "{session} bytes on the session");
    assert!(files <= 4, "{files} files");
}

#[tokio::test]
async fn a_second_run_sends_only_the_file_that_changed() {
    let context = fixture(&[(
        "Dockerfile",
        "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nCOPY data /data/\n",
    )]);
    std::fs::create_dir(context.path().join("data")).unwrap();
    for index in 0..12u8 {
        write_file(
            &context.path().join(format!("data/part-{index}")),
            MIB,
            index,
        );
    }
    let first = Run::new(&unique_repository("ctx-changed"), context.path())
        .input("platforms", "linux/amd64")
        .run();
    first.assert_success();
    let (_, first_contents, _) = session_sent(&first);
    assert!(first_contents >= 12 * MIB, "{first_contents}");

    write_file(&context.path().join("data/part-5"), MIB + 17, 99);
    let second = Run::new(&unique_repository("ctx-changed"), context.path())
        .input("platforms", "linux/amd64")
        .run();
    second.assert_success();
    let (session, contents, files) = session_sent(&second);
    assert!(
        (MIB + 17..2 * MIB).contains(&contents),
        "{contents} bytes of contents, {files} files"
    );
    assert!(session < 3 * MIB, "{session} bytes on the session");
}

/// A listing of `/ctx` made inside the build, right after the `COPY`: what the context
/// delivered, before any export or push.
const LISTING_DOCKERFILE: &str = "\
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH}
COPY ctx /ctx
RUN cd /ctx && find . | sort | while read -r f; do stat -c '%n|%F|%a|%u|%g|%s|%h' \"$f\"; \
if [ -L \"$f\" ]; then echo \"-> $(readlink \"$f\")\"; fi; done > /listing
";

fn fidelity_context() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let context = fixture(&[
        ("Dockerfile", LISTING_DOCKERFILE),
        ("ctx/a", "hard-linked"),
        ("ctx/with space", "x"),
        ("ctx/ünïcødé", "u"),
        ("ctx/exec", "#!/bin/sh\n"),
        ("ctx/setuid", "s"),
        ("ctx/owned", "o"),
        ("ctx/sub/deep/file", "d"),
    ]);
    let ctx = context.path().join("ctx");
    std::fs::hard_link(ctx.join("a"), ctx.join("b")).unwrap();
    std::fs::hard_link(ctx.join("a"), ctx.join("sub/c")).unwrap();
    std::os::unix::fs::symlink("a", ctx.join("link")).unwrap();
    std::os::unix::fs::symlink("missing", ctx.join("dangling")).unwrap();
    std::os::unix::fs::symlink(format!("sub/{}", "d".repeat(210)), ctx.join("long-link")).unwrap();
    std::fs::write(ctx.join("sub").join("n".repeat(200)), "long name").unwrap();
    std::fs::create_dir(ctx.join("empty")).unwrap();
    std::fs::set_permissions(ctx.join("exec"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(ctx.join("setuid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::set_permissions(ctx.join("empty"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::chown(ctx.join("owned"), Some(65534), Some(1_000_000)).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(ctx.join("pipe"))
        .status()
        .unwrap();
    assert!(fifo.success());
    context
}

/// What the listing build gives when buildx 0.29 (the docker driver) builds `context` on the
/// Engine under test: what the docker CLI sends.
fn buildx_listing(context: &Path, repository: &str) -> String {
    let tag = format!(
        "ctx-fidelity-buildx:{}",
        &repository[repository.len() - 10..]
    );
    let buildx = std::process::Command::new("docker")
        .args([
            "buildx",
            "build",
            "--no-cache",
            "--network",
            "none",
            "--build-arg",
        ])
        .args(["TARGETARCH=amd64", "--platform"])
        .args(["linux/amd64", "--load", "-t", &tag])
        .arg(context)
        .env(
            "DOCKER_CONFIG",
            std::env::var("TESTBED_DOCKER_CONFIG").unwrap(),
        )
        .env("DOCKER_HOST", &testbed().engine.host)
        .output()
        .unwrap();
    assert!(
        buildx.status.success(),
        "buildx: {}",
        String::from_utf8_lossy(&buildx.stderr)
    );
    let theirs = command(
        "docker",
        &["run", "--rm", "--network", "none", &tag, "cat", "/listing"],
    );
    let _ = command("docker", &["image", "rm", "-f", &tag]);
    assert!(theirs.status.success());
    String::from_utf8_lossy(&theirs.stdout).into_owned()
}

/// What the listing build gives when our `run` built it.
fn our_listing(result: &RunResult) -> String {
    result.assert_success();
    run_image(
        &result.outputs["image-uri"],
        "linux/amd64",
        &["cat", "/listing"],
    )
}

#[tokio::test]
async fn the_context_arrives_as_buildx_sends_it() {
    let context = fidelity_context();
    let repository = unique_repository("ctx-fidelity");
    let ours = our_listing(
        &Run::new(&repository, context.path())
            .input("platforms", "linux/amd64")
            .run(),
    );
    let theirs = buildx_listing(context.path(), &repository);
    assert_eq!(ours.trim_end(), theirs.trim_end());
    // And what buildx keeps is there: three names of one file (and the FIFO, which the
    // `COPY` of 20.10's BuildKit leaves out for both).
    assert!(ours.contains("./a|regular file|644|0|0|11|3"), "{ours}");
}

/// A plain TCP front to the Engine under test that refuses BuildKit sessions (`POST
/// /session` answered 403, as some Docker socket proxies do) and passes everything else on.
fn session_refusing_front() -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let socket = testbed().engine.socket().to_owned();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut client = client;
                // The request line decides; what follows passes on untouched.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n") {
                    if client.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let line = String::from_utf8_lossy(&head);
                if line.starts_with("POST ") && line.contains("/session ") {
                    let _ = client.write_all(
                        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                }
                let mut engine = std::os::unix::net::UnixStream::connect(&socket).unwrap();
                engine.write_all(&head).unwrap();
                let (mut from_client, mut to_engine) =
                    (client.try_clone().unwrap(), engine.try_clone().unwrap());
                let upstream = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_client, &mut to_engine);
                    let _ = to_engine.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut engine, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Both);
                let _ = upstream.join();
            });
        }
    });
    format!("tcp://{address}")
}

#[tokio::test]
async fn an_engine_that_refuses_the_session_gets_a_tar_that_keeps_links_and_fifos() {
    let context = fidelity_context();
    let repository = unique_repository("ctx-tar");
    let front = session_refusing_front();
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .env("DOCKER_HOST", &front)
        .run();
    let ours = our_listing(&result);
    assert!(
        result.stdout.contains(&format!(
            "context: sent as a tar body per build to {front} (opening a BuildKit session failed: the Engine answered `POST /session` with `HTTP/1.1 403 Forbidden`)"
        )),
        "{}",
        result.stdout
    );
    let theirs = buildx_listing(context.path(), &repository);
    assert_eq!(ours.trim_end(), theirs.trim_end());
    assert!(ours.contains("./a|regular file|644|0|0|11|3"), "{ours}");
}

#[tokio::test]
async fn a_session_that_breaks_mid_transfer_fails_the_run_and_pushes_nothing() {
    let repository = unique_repository("ctx-broken");
    let context = fixture(&[(
        "Dockerfile",
        "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nCOPY payload.bin /payload.bin\n",
    )]);
    write_file(&context.path().join("payload.bin"), 8 * MIB, 3);
    // The session's connection fails after 1 MiB of the 8 MiB file, as a network that drops.
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .env("ECR_MULTIARCH_SESSION_BREAK_AFTER", &MIB.to_string())
        .run();
    assert_eq!(
        result.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        result.stdout, result.stderr
    );
    let error = result.error_line();
    let context_name = context.path().canonicalize().unwrap();
    for expected in [
        format!("sending the build context `{}`", context_name.display()),
        format!("to the Docker Engine at `{}`", testbed().engine.host),
        "the BuildKit session broke".to_owned(),
        "nothing was pushed".to_owned(),
    ] {
        assert!(error.contains(&expected), "{expected} in {error}");
    }
    assert_eq!(registry_tags(&repository), Vec::<String>::new());
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.requests("manifest_put"), 0, "{counters:?}");
}

/// Two `skip-unchanged` runs in a row of a context whose Dockerfile ends with `instruction`,
/// with `files`, and `change` made between them: whether the second skipped, and why.
fn second_run_skips(
    instruction: &str,
    files: &[(&str, &str)],
    change: impl FnOnce(&Path),
) -> (bool, String) {
    let dockerfile =
        format!("ARG TARGETARCH\nFROM testbase/busybox:${{TARGETARCH}}\n{instruction}\n");
    let mut all = vec![("Dockerfile", dockerfile.as_str())];
    all.extend_from_slice(files);
    let context = fixture(&all);
    let repository = unique_repository("ctx-skip");
    let run = || {
        let result = Run::new(&repository, context.path())
            .input("platforms", "linux/amd64")
            .input("skip-unchanged", "true")
            .input("tags", "main")
            .run();
        result.assert_success();
        let build = &result.metadata()["build"];
        (
            build["skipped"].as_bool().unwrap(),
            build["reason"].as_str().unwrap().to_owned(),
        )
    };
    assert!(!run().0);
    change(context.path());
    run()
}

#[tokio::test]
async fn skip_unchanged_hashes_only_the_files_the_dockerfile_reads() {
    let files = [("app/main.txt", "v1"), ("README.md", "docs")];
    let (skipped, reason) = second_run_skips("COPY app/ /app/", &files, |root| {
        std::fs::write(root.join("README.md"), "docs, edited").unwrap();
        std::fs::write(root.join("notes.txt"), "new").unwrap();
    });
    assert!(
        skipped,
        "a file the Dockerfile never reads defeated it: {reason}"
    );
    let (skipped, reason) = second_run_skips("COPY app/ /app/", &files, |root| {
        std::fs::write(root.join("app/main.txt"), "v2").unwrap();
    });
    assert!(!skipped, "a file the Dockerfile copies changed: {reason}");
    assert!(reason.contains("built from other inputs"), "{reason}");
}

#[tokio::test]
async fn skip_unchanged_hashes_the_whole_context_when_the_dockerfile_copies_it_all() {
    let files = [("README.md", "docs"), (".dockerignore", "*.log\n")];
    let (skipped, reason) = second_run_skips("COPY . /app/", &files, |root| {
        std::fs::write(root.join("build.log"), "ignored").unwrap();
    });
    assert!(skipped, "an ignored file defeated it: {reason}");
    let (skipped, reason) = second_run_skips("COPY . /app/", &files, |root| {
        std::fs::write(root.join("README.md"), "docs, edited").unwrap();
    });
    assert!(!skipped, "`COPY . /app/` reads every file: {reason}");
}
