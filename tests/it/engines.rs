//! Docker Engines: the ones the action cannot use, one that cannot be reached and one that
//! dies under a build (outside systems failing: exit 2, nothing left in ECR or the registry), and
//! `engines`, which builds each platform on an Engine of its own, at the same time.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rstest::rstest;

use super::scratch_engine::{tls_files, ScratchEngine};
use super::{
    engine_setting, fixture, moto_repository, registry_tags, run_image, testbed, unique_repository,
    Run,
};

/// A Docker Engine that answers nowhere.
const NO_ENGINE: &str = "unix:///nonexistent/docker.sock";

const DOCKERFILE: &str = "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nRUN true\n";

/// An image whose command prints the machine it runs on.
const UNAME_DOCKERFILE: &str =
    "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nCMD [\"uname\", \"-m\"]\n";

#[tokio::test]
async fn a_containerd_store_engine_older_than_27_5_is_refused_before_anything_is_created() {
    let engine = ScratchEngine::start("26.1-containerd", &[]);
    let (version, containerd_store) = engine.info();
    assert!(
        version.starts_with("26.1.") && containerd_store,
        "the testbed's 26.1-containerd engine is Docker {version}, containerd store: {containerd_store}"
    );
    let repository = unique_repository("docker-26");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .env("DOCKER_HOST", &engine.host)
        .run();
    assert_eq!(result.code, 2, "{}\n{}", result.stdout, result.stderr);
    let error = result.error_line();
    eprintln!("Docker {version} with the containerd image store: {error}");
    assert!(
        error.starts_with("::error title=Docker Engine not supported::"),
        "{error}"
    );
    for part in [
        engine.host.as_str(),
        &format!("Docker `{version}`"),
        "containerd image store",
        "moby/moby#47717",
        "upgrade Docker to 27.5 or later",
        "containerd-snapshotter",
    ] {
        assert!(error.contains(part), "`{part}` in {error}");
    }
    assert!(result.outputs.is_empty());
    assert!(
        moto_repository(&repository).await.is_none(),
        "no repository created"
    );
    assert!(registry_tags(&repository).is_empty(), "nothing pushed");
}

#[test]
fn an_engine_killed_during_a_build_is_a_system_failure_that_pushes_nothing() {
    let mut engine = ScratchEngine::start(&testbed().engine.name, &["testbase/busybox:amd64"]);
    let repository = unique_repository("engine-killed");
    let context = fixture(&[(
        "Dockerfile",
        "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nRUN echo building && sleep 30\n",
    )]);
    let mut run = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .env("DOCKER_HOST", &engine.host)
        .spawn();

    // The build is under way: its first line, then the slow step running.
    assert!(
        run.wait_for_line("[linux/amd64] #", Duration::from_mins(1)),
        "the build did not start"
    );
    let build_started = Instant::now();
    assert!(
        run.wait_for_line("RUN echo building", Duration::from_mins(1)),
        "the RUN step did not start"
    );
    if let Some(rest) = Duration::from_secs(3).checked_sub(build_started.elapsed()) {
        std::thread::sleep(rest);
    }
    engine.kill();
    let killed = Instant::now();

    let result = run
        .finish(Duration::from_secs(10))
        .expect("the run ends within 10 s of the Engine's death");
    assert_eq!(result.code, 2, "{}\n{}", result.stdout, result.stderr);
    let error = result.error_line();
    eprintln!(
        "the run ended {} ms after the Engine was killed: {error}",
        killed.elapsed().as_millis()
    );
    assert!(
        error.starts_with("::error title=Docker Engine lost while building linux/amd64::"),
        "{error}"
    );
    assert!(
        error.contains(&format!("lost the Docker Engine at `{}`", engine.host)),
        "{error}"
    );
    assert!(error.contains("building `linux/amd64`"), "{error}");
    assert!(result.outputs.is_empty());
    assert!(registry_tags(&repository).is_empty(), "nothing pushed");
}

#[tokio::test]
async fn an_unreachable_docker_engine_is_a_system_failure_before_any_side_effect() {
    let repository = unique_repository("no-engine");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .run();
    assert_eq!(result.code, 2, "{}", result.stdout);
    let error = result.error_line();
    assert!(
        error.contains("cannot reach the Docker Engine at `unix:///nonexistent/docker.sock`"),
        "{error}"
    );
    assert!(moto_repository(&repository).await.is_none());
}

/// A place both builds' `RUN` steps must reach at the same moment: it answers no request
/// until requests from both platforms are waiting (`together`), or, after two minutes, the
/// one that is (`alone`). Builds that ran one after the other cannot pass it.
struct Rendezvous {
    port: u16,
    met: std::thread::JoinHandle<Vec<String>>,
}

impl Rendezvous {
    fn start() -> Rendezvous {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let met = std::thread::spawn(move || {
            listener.set_nonblocking(true).unwrap();
            let deadline = Instant::now() + Duration::from_mins(2);
            let mut waiting: Vec<(TcpStream, String)> = Vec::new();
            while waiting.len() < 2 && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let mut line = String::new();
                        BufReader::new(&stream).read_line(&mut line).unwrap();
                        // `GET /<arch> HTTP/1.1`
                        let arch = line.split(' ').nth(1).unwrap_or("").trim_start_matches('/');
                        waiting.push((stream, arch.to_owned()));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            let word = if waiting.len() == 2 {
                "together"
            } else {
                "alone"
            };
            let arches: Vec<String> = waiting.iter().map(|(_, arch)| arch.clone()).collect();
            for (mut stream, _) in waiting {
                let body = format!("{word}\n");
                let _ = write!(
                    stream,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            arches
        });
        Rendezvous { port, met }
    }
}

#[tokio::test]
async fn engines_build_each_platform_on_its_own_engine_at_the_same_time() {
    let repository = unique_repository("engines");
    let amd64_host = testbed().engine.host.clone();
    let arm64_host = match testbed().engine.name.as_str() {
        "system" => engine_setting("28.5-classic", "HOST"),
        _ => engine_setting("system", "HOST"),
    };
    let rendezvous = Rendezvous::start();
    let context = fixture(&[(
        "Dockerfile",
        "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nARG TARGETARCH\nARG RENDEZVOUS\n\
         RUN wget -q -O /met \"http://127.0.0.1:${RENDEZVOUS}/${TARGETARCH}\" && grep -qx together /met\n\
         CMD [\"cat\", \"/met\"]\n",
    )]);
    let result = Run::new(&repository, context.path())
        .input(
            "engines",
            &format!("linux/amd64={amd64_host}\nlinux/arm64={arm64_host}"),
        )
        .input("build-args", &format!("RENDEZVOUS={}", rendezvous.port))
        .input("no-cache", "true")
        // Every platform has its Engine: the default one is never asked.
        .env("DOCKER_HOST", NO_ENGINE)
        .run();
    let met = rendezvous.met.join().unwrap();
    result.assert_success();
    let mut met_sorted = met.clone();
    met_sorted.sort();
    assert_eq!(
        met_sorted,
        ["amd64", "arm64"],
        "both RUN steps waited together"
    );

    let metadata = result.metadata();
    assert_eq!(
        metadata["platforms"]["linux/amd64"]["engine"],
        amd64_host.as_str()
    );
    assert_eq!(
        metadata["platforms"]["linux/arm64"]["engine"],
        arm64_host.as_str()
    );
    let timings = &metadata["timings-ms"];
    eprintln!(
        "engines: linux/amd64 on {amd64_host} built in {} ms, linux/arm64 on {arm64_host} in {} ms, whole run {} ms; RUN steps met in the order {met:?}",
        timings["build"]["linux/amd64"], timings["build"]["linux/arm64"], timings["total"]
    );
    // QEMU goes only to the Engine that builds a platform its CPU cannot run.
    let qemu: Vec<&str> = result
        .stdout
        .lines()
        .filter(|l| l.starts_with("[qemu] on "))
        .collect();
    assert_eq!(qemu.len(), 1, "{}", result.stdout);
    assert!(qemu[0].contains(&format!("at `{arm64_host}`")), "{qemu:?}");
    for (host, platform) in [(&amd64_host, "linux/amd64"), (&arm64_host, "linux/arm64")] {
        assert!(
            result.stdout.contains(&format!("at `{host}`, "))
                && result.stdout.contains(&format!(": builds {platform}")),
            "{}",
            result.stdout
        );
    }
    let image = format!("{}/{repository}:latest", testbed().registry);
    assert_eq!(run_image(&image, "linux/amd64", &[]), "together");
    assert_eq!(run_image(&image, "linux/arm64", &[]), "together");
}

#[tokio::test]
async fn a_tcp_engine_with_tls_builds_its_platform() {
    let certs = tempfile::tempdir().unwrap();
    tls_files(certs.path());
    let engine = ScratchEngine::start_tls(
        &testbed().engine.name,
        &["testbase/busybox:arm64", "testbase/binfmt:latest"],
        certs.path(),
    );
    let repository = unique_repository("engine-tls");
    let context = fixture(&[("Dockerfile", UNAME_DOCKERFILE)]);
    let run = |tls: bool| {
        let mut run = Run::new(&repository, context.path());
        run.input("platforms", "linux/arm64")
            .input("engines", &format!("linux/arm64={}", engine.host));
        if tls {
            run.env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", certs.path().to_str().unwrap());
        }
        run.run()
    };
    // Without TLS, the Engine does not answer plain HTTP: nothing is created.
    let plain = run(false);
    assert_eq!(plain.code, 2, "{}\n{}", plain.stdout, plain.stderr);
    assert!(
        plain.error_line().contains(&engine.host),
        "{}",
        plain.stdout
    );
    assert!(moto_repository(&repository).await.is_none());

    let result = run(true);
    result.assert_success();
    assert_eq!(
        result.metadata()["platforms"]["linux/arm64"]["engine"],
        engine.host.as_str()
    );
    let image = format!("{}/{repository}:latest", testbed().registry);
    assert_eq!(run_image(&image, "linux/arm64", &[]), "aarch64");
}

#[rstest]
#[case::closed_port("tcp://127.0.0.1:9")]
#[case::missing_socket("unix:///nonexistent/arm64.sock")]
#[tokio::test]
async fn an_engine_that_does_not_answer_is_exit_2_before_anything_is_created(
    #[case] address: &str,
) {
    let repository = unique_repository("engine-down");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .input("engines", &format!("linux/arm64={address}"))
        .run();
    assert_eq!(result.code, 2, "{}\n{}", result.stdout, result.stderr);
    let error = result.error_line();
    eprintln!("{error}");
    assert!(
        error.starts_with("::error title=Docker Engine unreachable for linux/arm64::"),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "cannot reach the Docker Engine at `{address}` to build `linux/arm64`"
        )),
        "{error}"
    );
    assert!(error.contains("the `engines` input names it"), "{error}");
    assert!(
        moto_repository(&repository).await.is_none(),
        "nothing created"
    );
    assert!(registry_tags(&repository).is_empty());
}
