//! Throwaway Docker Engines for tests that kill an Engine, wipe it as a fresh runner would, or
//! run a version the testbed does not keep ([`ScratchEngine`]: own socket, data root, exec root
//! and pidfile in a temporary folder); the testbed's shared engines are never touched.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{engine_setting, testbed};

/// A Docker Engine of one of the testbed's kinds (`system`, `28.5-classic`, `26.1-containerd`...)
/// started for one test, and stopped, unmounted and deleted when dropped.
pub struct ScratchEngine {
    /// Its `DOCKER_HOST`.
    pub host: String,
    /// For an Engine on TCP with TLS: the folder of the client's `ca.pem`, `cert.pem`, `key.pem`.
    tls: Option<PathBuf>,
    daemon: Child,
    dir: tempfile::TempDir,
}

/// TLS files for an Engine on `127.0.0.1` and its client, made with openssl as Docker's
/// "Protect the Docker daemon socket" page makes them: a CA, the server's certificate (for the
/// IP address) and key, and the client's `cert.pem` and `key.pem` beside `ca.pem`.
pub fn tls_files(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    let new_key = ["-newkey", "rsa:2048", "-nodes"];
    run(&[
        &["req", "-x509"],
        &new_key[..],
        &[
            "-days",
            "1",
            "-subj",
            "/CN=it-ca",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    ]
    .concat());
    for (name, subject, ext, key, cert) in [
        (
            "server",
            "/CN=127.0.0.1",
            "server.ext",
            "server-key.pem",
            "server-cert.pem",
        ),
        ("client", "/CN=client", "client.ext", "key.pem", "cert.pem"),
    ] {
        let csr = format!("{name}.csr");
        run(&[
            &["req"],
            &new_key[..],
            &["-subj", subject, "-keyout", key, "-out", &csr],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            ext,
            "-out",
            cert,
        ]);
    }
}

impl ScratchEngine {
    /// Starts an engine of `kind` (the binaries and image store `scripts/testbed env` names for
    /// it) and loads `images` into it from the engine under test.
    pub fn start(kind: &str, images: &[&str]) -> ScratchEngine {
        Self::start_on(kind, images, None)
    }

    /// Starts an engine of `kind` that listens on `tcp://127.0.0.1:<port>` with TLS, checking
    /// its clients' certificates (`dockerd --tlsverify`) against the files [`tls_files`] wrote
    /// into `certs`.
    pub fn start_tls(kind: &str, images: &[&str], certs: &Path) -> ScratchEngine {
        Self::start_on(kind, images, Some(certs))
    }

    fn start_on(kind: &str, images: &[&str], tls: Option<&Path>) -> ScratchEngine {
        let bin_path = engine_setting(kind, "PATH");
        let containerd_store = engine_setting(kind, "STORE") == "containerd";
        // Under /tmp, short: containerd's sockets live in the exec root (108-byte limit).
        let dir = tempfile::Builder::new()
            .prefix("it-engine-")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("daemon.json"),
            format!(r#"{{"features": {{"containerd-snapshotter": {containerd_store}}}}}"#),
        )
        .unwrap();
        let host = match tls {
            Some(_) => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                format!("tcp://127.0.0.1:{port}")
            }
            None => format!("unix://{}", root.join("docker.sock").display()),
        };
        let tls_args: Vec<String> = tls
            .map(|certs| {
                let file = |name: &str| certs.join(name).display().to_string();
                vec![
                    "--tlsverify".to_owned(),
                    format!("--tlscacert={}", file("ca.pem")),
                    format!("--tlscert={}", file("server-cert.pem")),
                    format!("--tlskey={}", file("server-key.pem")),
                ]
            })
            .unwrap_or_default();
        // dockerd starts the containerd it finds on PATH; runc comes from the system.
        let path = std::env::var("PATH").unwrap();
        let path = if bin_path.is_empty() {
            path
        } else {
            format!("{bin_path}:{path}")
        };
        let dockerd = std::env::split_paths(&path)
            .map(|dir| dir.join("dockerd"))
            .find(|candidate| candidate.is_file())
            .expect("dockerd is on PATH");
        let log = File::create(root.join("dockerd.log")).unwrap();
        let data_root = root.join("data");
        let exec_root = root.join("exec");
        let pidfile = root.join("dockerd.pid");
        let daemon = Command::new(dockerd)
            .env("PATH", &path)
            .arg("--config-file")
            .arg(root.join("daemon.json"))
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(&pidfile)
            .args(["--host", &host])
            .args(&tls_args)
            // No bridge, as every testbed daemon (TESTBED.md).
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut engine = ScratchEngine {
            host,
            tls: tls.map(Path::to_owned),
            daemon,
            dir,
        };
        engine.wait_until_it_answers();
        if !images.is_empty() {
            engine.load(images);
        }
        engine
    }

    /// The docker CLI, pointed at this engine (with the client's TLS files when it has TLS).
    fn cli(&self) -> Command {
        let mut command = Command::new("docker");
        command.arg("-H").arg(&self.host);
        if let Some(certs) = &self.tls {
            command
                .env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", certs);
        }
        command
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    fn wait_until_it_answers(&mut self) {
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let answer = self.cli().arg("version").output().unwrap();
            if answer.status.success() {
                return;
            }
            if let Some(status) = self.daemon.try_wait().unwrap() {
                panic!("the scratch dockerd ended ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the scratch dockerd did not answer within a minute:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `docker save` from the engine under test, `docker load` here.
    fn load(&self, images: &[&str]) {
        let mut save = Command::new("docker")
            .args(["-H", &testbed().engine.host, "save"])
            .args(images)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let load = self
            .cli()
            .args(["load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(save.wait().unwrap().success(), "docker save {images:?}");
        assert!(
            load.status.success(),
            "docker load: {}",
            String::from_utf8_lossy(&load.stderr)
        );
    }

    /// `docker info`'s version and whether the image store is containerd's.
    pub fn info(&self) -> (String, bool) {
        let out = self
            .cli()
            .args([
                "info",
                "--format",
                "{{.ServerVersion}} {{json .DriverStatus}}",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let (version, status) = text.split_once(' ').unwrap_or((&text, ""));
        (
            version.to_owned(),
            status.contains("io.containerd.snapshotter.v1"),
        )
    }

    /// Runs the docker CLI against this engine; fails the test when the command fails.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.cli().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kill -9` the daemon, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        self.daemon.kill().unwrap();
        self.daemon.wait().unwrap();
    }

    /// Processes left behind by the daemon: its containerd and the containers of a build cut
    /// short (their root file system is under the scratch folder).
    fn leftover_processes(&self) -> Vec<u32> {
        let dir = self.dir.path();
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != me)
            .filter(|pid| {
                let proc = PathBuf::from(format!("/proc/{pid}"));
                let rooted_here =
                    std::fs::read_link(proc.join("root")).is_ok_and(|root| root.starts_with(dir));
                let names_here = std::fs::read(proc.join("cmdline")).is_ok_and(|cmdline| {
                    String::from_utf8_lossy(&cmdline).contains(dir.to_str().unwrap())
                });
                rooted_here || names_here
            })
            .collect()
    }
}

impl Drop for ScratchEngine {
    fn drop(&mut self) {
        if self.daemon.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.daemon.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
        for pid in self.leftover_processes() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        // A killed daemon leaves its mounts (the data root is bind-mounted on itself, and each
        // build step has an overlay): unmount them, deepest first, so the folder can go.
        unmount_under(self.dir.path());
    }
}

fn unmount_under(dir: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in points {
        let _ = Command::new("umount").args(["-l", point]).status();
    }
}
