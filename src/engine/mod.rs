//! The Docker Engine: BuildKit builds per platform, and the built images' export. The only
//! user of bollard; it never talks to a registry. The daemon is reached through `DOCKER_HOST`
//! or the default socket; on a runner it is the host's, so the context is streamed from here
//! (a host path means nothing to it). The `engines` input sends some platforms to other
//! daemons ([`Engines`]), over TLS as the docker CLI does.
//!
//! Who failed decides the exit code: a step of the Dockerfile that BuildKit reports failing is
//! the user's ([`Error::BuildFailed`]); a daemon that cannot be reached, dies or drops the
//! connection ([`Error::Lost`]), answers with an error ([`Error::Api`]) or cannot build this
//! action's builds at all ([`Error::Unsupported`]) is an outside system's.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use bollard::auth::DockerCredentials;
use bollard::models::{BuildInfoAux, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, CreateContainerOptionsBuilder,
    CreateImageOptionsBuilder, ImportImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::TryStreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::context::BuildContext;
use crate::github::Console;
use crate::inputs::{DockerTls, Request};
use crate::platform::Platform;
use crate::secret::Secret;

mod filesync;
pub mod session;

/// The daemon's socket when `DOCKER_HOST` is not set (the docker CLI's default on Linux).
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The repository of each build's temporary image name, `ecr-multiarch-build:<uuid>`.
pub const TEMPORARY_REPOSITORY: &str = "ecr-multiarch-build";

/// How many log lines of a failing step an error shows.
const FAILED_STEP_LINES: usize = 20;

/// A failure of the Docker Engine or of a build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon did not answer.
    #[error("cannot reach the Docker Engine at `{address}`{} ({})", platforms_note(platforms), connect_hint(*named_by))]
    Connect {
        /// `DOCKER_HOST`, the default socket, or an address of `engines`.
        address: String,
        /// The platforms it was to build.
        platforms: Vec<Platform>,
        /// Which setting named it.
        named_by: NamedBy,
        /// The cause.
        source: bollard::errors::Error,
    },
    /// The daemon answers but cannot run this action's builds.
    #[error("the Docker Engine at `{address}` is Docker `{version}` with the {store}, which {problem}: {fix}")]
    Unsupported {
        /// `DOCKER_HOST`, or the default socket.
        address: String,
        /// The daemon's version, as `docker version` prints it.
        version: String,
        /// Its image store.
        store: ImageStore,
        /// What goes wrong with it.
        problem: &'static str,
        /// What the user can do.
        fix: &'static str,
    },
    /// The daemon died or dropped the connection in the middle of a call: no answer, so no
    /// verdict on the build either.
    #[error(
        "lost the Docker Engine at `{address}` while {action} (did the daemon stop or restart?)"
    )]
    Lost {
        /// `DOCKER_HOST`, or the default socket.
        address: String,
        /// The platform being built, when a build was under way.
        platform: Option<Platform>,
        /// What we were doing, e.g. ``building `linux/arm64` ``.
        action: String,
        /// The transport's error.
        source: bollard::errors::Error,
    },
    /// The Dockerfile failed to build for a platform: the user's to fix.
    #[error("building `{platform}` failed{}: {message}{}", step.as_ref().map(|s| format!(" at step `{s}`")).unwrap_or_default(), if last_lines.is_empty() { String::new() } else { format!("\nlast lines of the step:\n{}", last_lines.join("\n")) })]
    BuildFailed {
        /// The platform being built.
        platform: Platform,
        /// The failing step, as BuildKit names it (`[2/3] RUN make`).
        step: Option<String>,
        /// The 1-based line of that step's instruction in the Dockerfile, when found.
        dockerfile_line: Option<usize>,
        /// BuildKit's error.
        message: String,
        /// The step's last log lines.
        last_lines: Vec<String>,
    },
    /// Another Engine API call failed.
    #[error("{action} failed on the Docker Engine at `{address}`")]
    Api {
        /// `DOCKER_HOST`, or the default socket.
        address: String,
        /// What we were doing.
        action: String,
        /// The cause.
        source: bollard::errors::Error,
    },
    /// The Engine answered something we cannot use.
    #[error("{0}")]
    UnexpectedAnswer(String),
}

impl Error {
    /// Exit 1 for a Dockerfile that does not build, 2 for the Engine failing or unreachable.
    #[must_use]
    pub fn exit_status(&self) -> crate::exit_status::ExitStatus {
        match self {
            Error::BuildFailed { .. } => crate::exit_status::ExitStatus::User,
            Error::Connect { .. }
            | Error::Unsupported { .. }
            | Error::Lost { .. }
            | Error::Api { .. }
            | Error::UnexpectedAnswer(_) => crate::exit_status::ExitStatus::System,
        }
    }
}

/// Which setting names a Docker Engine: what a user changes when it does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedBy {
    /// `DOCKER_HOST`, or the default socket when it is not set.
    DockerHost,
    /// The `engines` input.
    EnginesInput,
}

fn platforms_note(platforms: &[Platform]) -> String {
    if platforms.is_empty() {
        return String::new();
    }
    let names: Vec<String> = platforms.iter().map(|p| format!("`{p}`")).collect();
    format!(" to build {}", names.join(", "))
}

fn connect_hint(named_by: NamedBy) -> &'static str {
    match named_by {
        NamedBy::DockerHost => {
            "is dockerd running, or the socket mounted? `DOCKER_HOST` names another daemon"
        }
        NamedBy::EnginesInput => {
            "is dockerd running there and listening on that address, and reachable from this \
             runner? the `engines` input names it"
        }
    }
}

/// How long an Engine may take to answer the first calls before it counts as not answering.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// bollard's own request timeout (its `connect_with_host` default), in seconds.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// An image built for one platform, in the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The platform it was built for.
    pub platform: Platform,
    /// The image id (`sha256:` of its config).
    pub image_id: String,
    /// The build's own temporary name for it in the Engine, `ecr-multiarch-build:<uuid>`:
    /// an unnamed image is stored as `moby-dangling@<digest>` on the containerd image store,
    /// where two builds that end in the same image at once collide (moby/moby#49702).
    pub name: String,
    /// Uncompressed size in the daemon, bytes.
    pub size: i64,
    /// Its layers' `diff_id`s, in order.
    pub diff_ids: Vec<String>,
}

/// Credentials for one registry, which BuildKit asks the build's session for when it pulls
/// from that registry (a base image, a cache import).
#[derive(Debug, Clone)]
pub struct RegistryLogin {
    /// The registry host as references name it, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub host: String,
    /// `AWS` for ECR.
    pub username: String,
    /// The registry token (a secret: never printed).
    pub password: Secret,
}

impl RegistryLogin {
    fn credentials(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.expose().to_owned()),
            serveraddress: Some(self.host.clone()),
            ..DockerCredentials::default()
        }
    }
}

/// What a build sends besides the context.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    build_args: HashMap<String, String>,
    labels: HashMap<String, String>,
    network: Option<&'static str>,
    target: Option<String>,
    no_cache: bool,
    /// Export BuildKit's inline cache into the image config (`BUILDKIT_INLINE_CACHE=1`).
    inline_cache: bool,
    /// Images each platform's build imports cache from, in order.
    cache_from: HashMap<Platform, Vec<String>>,
    /// Credentials for the registry pushed to, for pulls and cache imports from it.
    registry_login: Option<RegistryLogin>,
}

impl BuildSettings {
    /// The build settings of a request, with the plan's labels.
    #[must_use]
    pub fn new(
        request: &Request,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> BuildSettings {
        BuildSettings {
            build_args: request.build_args.clone().into_iter().collect(),
            labels: labels.clone().into_iter().collect(),
            network: request.network.map(crate::inputs::NetworkMode::as_str),
            target: request.target.clone(),
            no_cache: request.no_cache,
            inline_cache: request.repository_cache,
            cache_from: HashMap::new(),
            registry_login: None,
        }
    }

    /// The images each platform's build imports cache from (ignored with `no-cache`).
    #[must_use]
    pub fn with_cache_from(mut self, cache_from: HashMap<Platform, Vec<String>>) -> BuildSettings {
        self.cache_from = cache_from;
        self
    }

    /// Credentials the build's pulls and cache imports from `login.host` use.
    #[must_use]
    pub fn with_registry_login(mut self, login: RegistryLogin) -> BuildSettings {
        self.registry_login = Some(login);
        self
    }
}

/// How the Engine resolves an image a Dockerfile names, for one platform: the way its BuildKit
/// will, a local image of that platform first, else the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedImage {
    /// The Engine holds the image for the platform: its id.
    Local(String),
    /// The registry's digest for the reference (an index's when it is multi-platform).
    Registry(String),
}

impl ResolvedImage {
    /// The id or digest.
    #[must_use]
    pub fn digest(&self) -> &str {
        match self {
            ResolvedImage::Local(id) | ResolvedImage::Registry(id) => id,
        }
    }
}

/// The registry host of an image reference, as the docker CLI splits it: a first path part
/// with a `.` or `:`, or `localhost`; else Docker Hub.
fn registry_host_of(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Where a daemon keeps its images (`docker info`): it decides what its BuildKit can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStore {
    /// The graph drivers (overlay2...): Docker's default up to 28.
    Classic,
    /// containerd's snapshotters: Docker 29's default on fresh installs.
    Containerd,
}

impl ImageStore {
    /// The store a daemon reports. With the containerd image store, `docker info` names the
    /// snapshotter as `Driver` (`overlayfs`) and its `DriverStatus` is exactly
    /// `[["driver-type", "io.containerd.snapshotter.v1"]]` (moby `daemon/containerd/service.go`,
    /// `LayerStoreStatus`: `plugins.SnapshotPlugin`; seen on 26.1 and 28.5); the graph drivers
    /// (overlay2 on 20.10 and on 28.5's classic store) list their own settings there instead.
    #[must_use]
    pub fn from_driver_status(driver_status: &[Vec<String>]) -> ImageStore {
        let containerd = driver_status.iter().any(|pair| {
            matches!(pair.as_slice(), [key, value]
                if key == "driver-type" && value == "io.containerd.snapshotter.v1")
        });
        if containerd {
            ImageStore::Containerd
        } else {
            ImageStore::Classic
        }
    }
}

impl std::fmt::Display for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageStore::Classic => "classic image store",
            ImageStore::Containerd => "containerd image store",
        })
    }
}

/// `Some((problem, fix))` when a daemon of this version and store cannot build what this action
/// sends it. Before moby 27.5.0 / 28.0.0, BuildKit on the containerd image store fails every
/// build whose context is streamed as a tar body, at `[internal] load remote build context`
/// (`Get "http://build-context-<id>": no such host`; moby/moby#47717), and that is the only way
/// a remote daemon can get the context. A version that does not parse is given the benefit of
/// the doubt.
fn unsupported(version: &str, store: ImageStore) -> Option<(&'static str, &'static str)> {
    let (major, minor) = major_minor(version)?;
    (store == ImageStore::Containerd && (major, minor) < (27, 5)).then_some((
        "fails every build from a streamed context at `[internal] load remote build context` \
         (moby/moby#47717, fixed in Docker 27.5.0 and 28.0.0)",
        "upgrade Docker to 27.5 or later, or turn the containerd image store off \
         (`\"features\": {\"containerd-snapshotter\": false}` in daemon.json, then restart \
         dockerd)",
    ))
}

/// `26.1.5+dfsg1` -> `(26, 1)`: Debian and Docker Desktop add suffixes to the version.
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut numbers = version.split('.').map(|part| {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().ok()
    });
    Some((numbers.next()??, numbers.next()??))
}

/// Whether a bollard error means the daemon is gone (never answered, died or dropped the
/// connection mid-stream), as opposed to an answer: an HTTP error, or an error that BuildKit
/// reported in the stream. Decided by the error's kind, not its text.
fn is_transport(error: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        error,
        // A body that stops mid-stream surfaces as I/O (bollard reads the stream through
        // `StreamReader`), a request that never got its answer as a hyper or client error.
        E::IOError { .. }
            | E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_)
    )
}

/// A connected Docker Engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    /// `DOCKER_HOST`, or the default socket: what messages name.
    address: String,
    /// The daemon's version, as `docker version` prints it.
    version: String,
    /// Where it keeps images.
    store: ImageStore,
    /// The daemon's own platform, where `FROM --platform=$BUILDPLATFORM` stages run.
    build_platform: Platform,
    /// The release of the kernel the daemon runs on (`docker info`'s `KernelVersion`).
    kernel_version: String,
    /// TLS for a `tcp://` Engine, which the BuildKit session's own connection uses too.
    tls: Option<DockerTls>,
    /// How this run's context reaches it: the BuildKit session, opened at the first build.
    transport: std::sync::Arc<tokio::sync::Mutex<session::Transport>>,
}

/// Progress of one BuildKit step, for numbering and the failure report.
#[derive(Debug, Default)]
struct Step {
    number: usize,
    name: String,
    started: bool,
    completed: bool,
    last_lines: VecDeque<String>,
}

impl Engine {
    /// Connects to the Engine at `address` that is to build `platforms` (`unix://` or
    /// `tcp://`, over TLS when `tls` is given, as the docker CLI does with
    /// `DOCKER_TLS_VERIFY`), negotiates the API version (dockerd 20.10 speaks 1.41) and checks
    /// that the daemon can run this action's builds, so that an engine it cannot use ends the
    /// run before anything is created. An Engine that does not answer within 30 s is not
    /// reachable.
    pub async fn connect(
        address: &str,
        tls: Option<&DockerTls>,
        platforms: &[Platform],
        named_by: NamedBy,
    ) -> Result<Engine, Error> {
        let address = address.to_owned();
        let connect = |source| Error::Connect {
            address: address.clone(),
            platforms: platforms.to_vec(),
            named_by,
            source,
        };
        let docker = match (tls, address.strip_prefix("tcp://")) {
            (Some(tls), Some(_)) => Docker::connect_with_ssl(
                &address,
                &tls.cert_path.join("key.pem"),
                &tls.cert_path.join("cert.pem"),
                &tls.cert_path.join("ca.pem"),
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
            (None, Some(_)) => Docker::connect_with_http(
                &address,
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
            _ => Docker::connect_with_host(&address),
        }
        .map_err(connect)?;
        let handshake = async {
            let docker = docker.negotiate_version().await?;
            let version = docker.version().await?;
            let info = docker.info().await?;
            Ok((docker, version, info))
        };
        let (docker, version, info) = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .unwrap_or(Err(bollard::errors::Error::RequestTimeoutError))
            .map_err(connect)?;
        let store = ImageStore::from_driver_status(&info.driver_status.unwrap_or_default());
        let kernel_version = info.kernel_version.unwrap_or_default();
        let server_version = version.version.unwrap_or_default();
        if let Some((problem, fix)) = unsupported(&server_version, store) {
            return Err(Error::Unsupported {
                address,
                version: server_version,
                store,
                problem,
                fix,
            });
        }
        let build_platform = Platform {
            os: version.os.unwrap_or_else(|| "linux".to_owned()),
            architecture: version.arch.unwrap_or_else(|| "amd64".to_owned()),
            variant: None,
        };
        Ok(Engine {
            docker,
            address,
            version: server_version,
            store,
            build_platform,
            kernel_version,
            tls: tls.cloned(),
            transport: std::sync::Arc::default(),
        })
    }

    /// The address it was reached at.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// One line for the log: which daemon builds, e.g.
    /// ``Docker Engine `28.5.2` at `unix:///var/run/docker.sock`, containerd image store``.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "Docker Engine `{}` at `{}`, {}",
            self.version, self.address, self.store
        )
    }

    /// The Engine's own platform: `BUILDPLATFORM`, where `FROM --platform=$BUILDPLATFORM`
    /// stages run.
    #[must_use]
    pub fn build_platform(&self) -> &Platform {
        &self.build_platform
    }

    /// Whether the daemon runs on the kernel of release `release` on this machine: it is
    /// reached through a unix socket and reports that kernel. Emulators registered in that
    /// kernel then run in its build containers as in this process.
    #[must_use]
    pub fn shares_kernel(&self, release: &str) -> bool {
        self.address.starts_with("unix://") && !release.is_empty() && self.kernel_version == release
    }

    /// An Engine API call failed: lost when the daemon is gone, an API error otherwise.
    fn call_failed(
        &self,
        platform: Option<&Platform>,
        action: String,
        source: bollard::errors::Error,
    ) -> Error {
        if is_transport(&source) {
            Error::Lost {
                address: self.address.clone(),
                platform: platform.cloned(),
                action,
                source,
            }
        } else {
            Error::Api {
                address: self.address.clone(),
                action,
                source,
            }
        }
    }

    /// The architectures among `platforms` that the daemon's CPU cannot run natively.
    #[must_use]
    pub fn foreign_architectures(&self, platforms: &[Platform]) -> Vec<String> {
        let mut foreign: Vec<String> = Vec::new();
        for platform in platforms {
            let native = platform.os == self.build_platform.os
                && platform.architecture == self.build_platform.architecture;
            if !native && !foreign.contains(&platform.architecture) {
                foreign.push(platform.architecture.clone());
            }
        }
        foreign
    }

    /// Registers QEMU emulators for `architectures` in the host kernel by running the binfmt
    /// image with `CAP_SYS_ADMIN` (pulling it when missing), so that `RUN` steps of other platforms work
    /// on a runner with no setup step. Registering what is already registered changes nothing.
    pub async fn register_emulators(
        &self,
        architectures: &[String],
        image: &str,
        console: &Console,
    ) -> Result<(), Error> {
        let group = "qemu";
        let api = |action: String| move |source| self.call_failed(None, action, source);
        if self.docker.inspect_image(image).await.is_err() {
            console.group_line(group, &format!("pulling {image}"));
            let mut pull = self.docker.create_image(
                Some(CreateImageOptionsBuilder::new().from_image(image).build()),
                None,
                None,
            );
            while pull
                .try_next()
                .await
                .map_err(api(format!("pulling the QEMU installer `{image}`")))?
                .is_some()
            {}
        }
        let list = architectures.join(",");
        console.group_line(
            group,
            &format!("registering QEMU emulators for {list} ({image})"),
        );
        let container = self
            .docker
            .create_container(
                None,
                ContainerCreateBody {
                    image: Some(image.to_owned()),
                    cmd: Some(vec!["--install".to_owned(), list.clone()]),
                    // What registering needs, and no more than `--privileged` would give:
                    // mounting binfmt_misc and writing its register file need CAP_SYS_ADMIN,
                    // and AppArmor's default profile forbids the mount.
                    host_config: Some(HostConfig {
                        cap_add: Some(vec!["SYS_ADMIN".to_owned()]),
                        security_opt: Some(vec![
                            "apparmor=unconfined".to_owned(),
                            "seccomp=unconfined".to_owned(),
                        ]),
                        network_mode: Some("none".to_owned()),
                        ..HostConfig::default()
                    }),
                    ..ContainerCreateBody::default()
                },
            )
            .await
            .map_err(api(format!("creating the QEMU installer from `{image}`")))?
            .id;
        let outcome = async {
            self.docker
                .start_container(&container, None)
                .await
                .map_err(api("starting the QEMU installer".to_owned()))?;
            let waited = self
                .docker
                .wait_container(&container, None)
                .try_collect::<Vec<_>>()
                .await;
            let mut logs = self.docker.logs(
                &container,
                Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
            );
            while let Ok(Some(line)) = logs.try_next().await {
                for text in line.to_string().lines().filter(|l| !l.trim().is_empty()) {
                    console.group_line(group, text);
                }
            }
            waited
                .map(|_| ())
                .map_err(api(format!("registering QEMU emulators for {list}")))
        }
        .await;
        // Remove the installer whatever happened; a leftover container is only clutter.
        let _ = self
            .docker
            .remove_container(
                &container,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await;
        console.end_group();
        outcome
    }

    /// Whether the Engine runs programs of `platform`: natively, or through an emulator the
    /// host's kernel has registered. Runs a probe container (a few hundred bytes, loaded, not
    /// pulled) of that platform whose program only exits 0; `None` when there is no probe for
    /// the architecture. An exec format error, or any other failure to start or exit cleanly,
    /// means no.
    pub async fn runs_platform(&self, platform: &Platform) -> Result<Option<bool>, Error> {
        let Some(archive) = crate::emulation::probe::image_archive(platform) else {
            return Ok(None);
        };
        let archive = archive.map_err(|e| {
            Error::UnexpectedAnswer(format!("writing the `{platform}` probe image: {e}"))
        })?;
        let api = |action: String| move |source| self.call_failed(None, action, source);
        let mut load = self.docker.import_image(
            ImportImageOptionsBuilder::new().quiet(true).build(),
            bollard::body_full(archive.clone().into()),
            None,
        );
        let mut loaded = None;
        while let Some(info) = load
            .try_next()
            .await
            .map_err(api(format!("loading the `{platform}` probe image")))?
        {
            if let Some(id) = info
                .stream
                .as_deref()
                .and_then(|text| text.trim().strip_prefix("Loaded image ID: "))
            {
                loaded = Some(id.trim().to_owned());
            }
        }
        let image = loaded
            .or_else(|| crate::emulation::probe::classic_image_id(&archive))
            .ok_or_else(|| {
                Error::UnexpectedAnswer(format!(
                    "the Engine loaded the `{platform}` probe image without naming it"
                ))
            })?;
        let container = self
            .docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::new()
                        .platform(&platform.to_string())
                        .build(),
                ),
                ContainerCreateBody {
                    image: Some(image),
                    host_config: Some(HostConfig {
                        network_mode: Some("none".to_owned()),
                        ..HostConfig::default()
                    }),
                    ..ContainerCreateBody::default()
                },
            )
            .await
            .map_err(api(format!("creating the `{platform}` probe container")))?
            .id;
        let outcome = async {
            match self.docker.start_container(&container, None).await {
                Ok(()) => {}
                // `exec format error`: nothing runs this platform's programs.
                Err(error) if !is_transport(&error) => return Ok(false),
                Err(error) => {
                    return Err(self.call_failed(
                        None,
                        format!("starting the `{platform}` probe container"),
                        error,
                    ))
                }
            }
            let waited = self
                .docker
                .wait_container(&container, None)
                .try_collect::<Vec<_>>()
                .await;
            match waited {
                Ok(answers) => Ok(answers.iter().all(|a| a.status_code == 0)),
                Err(bollard::errors::Error::DockerContainerWaitError { .. }) => Ok(false),
                Err(error) => Err(self.call_failed(
                    None,
                    format!("waiting for the `{platform}` probe container"),
                    error,
                )),
            }
        }
        .await;
        let _ = self
            .docker
            .remove_container(
                &container,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await;
        outcome.map(Some)
    }

    /// Resolves an image a Dockerfile names for `platform` the way BuildKit on this Engine
    /// will: the local image when the Engine holds that reference for the platform (BuildKit
    /// on the docker driver prefers it), else the registry's digest through the Engine
    /// (`GET /distribution/{name}/json`), with `login` when the image is in its registry.
    pub async fn resolve_image(
        &self,
        reference: &str,
        platform: &Platform,
        login: Option<&RegistryLogin>,
    ) -> Result<ResolvedImage, Error> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => {
                let matches = platform.is_satisfied_by(
                    image.os.as_deref().unwrap_or_default(),
                    image.architecture.as_deref().unwrap_or_default(),
                    image.variant.as_deref(),
                );
                if let (true, Some(id)) = (matches, image.id) {
                    return Ok(ResolvedImage::Local(id));
                }
            }
            Err(error) if is_transport(&error) => {
                return Err(self.call_failed(
                    None,
                    format!("looking up `{reference}` for `{platform}`"),
                    error,
                ))
            }
            // Not here (404), or not a reference this Engine takes: ask the registry.
            Err(_) => {}
        }
        let credentials = login
            .filter(|login| registry_host_of(reference) == login.host)
            .map(RegistryLogin::credentials);
        let distribution = self
            .docker
            .inspect_registry_image(reference, credentials)
            .await
            .map_err(|source| {
                self.call_failed(
                    None,
                    format!("resolving `{reference}` for `{platform}` in its registry"),
                    source,
                )
            })?;
        Ok(ResolvedImage::Registry(
            distribution.descriptor.digest.unwrap_or_default(),
        ))
    }

    /// Builds the context for one platform with BuildKit, streaming progress to the console
    /// under the platform's name. Reads the stream to its end: any error fails the build.
    pub async fn build(
        &self,
        platform: &Platform,
        context: &BuildContext,
        dockerfile: &Path,
        settings: &BuildSettings,
        console: &Console,
    ) -> Result<BuiltImage, Error> {
        let built = self
            .build_once(platform, context, dockerfile, settings, console)
            .await;
        match built {
            // On the containerd image store, two builds that end in the same image at the same
            // moment (a matrix on one runner) both store it as `moby-dangling@<digest>`, and
            // the second fails with "already exists" (the exporter of moby/moby#49702). Each
            // build names its image now (`ecr-multiarch-build:<uuid>`), so this should not
            // happen; should an Engine still store one dangling, the image is there by then:
            // building again takes every step from the cache.
            Err(Error::BuildFailed { message, .. })
                if message.contains("moby-dangling@") && message.contains("already exists") =>
            {
                console.group_line(
                    &platform.to_string(),
                    "another build stored the same image at the same moment: building again",
                );
                self.build_once(platform, context, dockerfile, settings, console)
                    .await
            }
            // The build's answer broke off, yet the Engine still answers: the connection, not
            // the daemon, failed (seen on a busy 28.5 containerd-store engine as "bytes
            // remaining on stream"). Once more; the steps that finished come from the cache. A
            // daemon that is really gone fails the ping and is reported at once.
            Err(Error::Lost {
                platform: Some(_),
                source,
                ..
            }) if self.docker.ping().await.is_ok() => {
                console.group_line(
                    &platform.to_string(),
                    &format!(
                        "the connection to the Engine broke during the build ({source}); the Engine still answers: building again"
                    ),
                );
                self.build_once(platform, context, dockerfile, settings, console)
                    .await
            }
            other => other,
        }
    }

    async fn build_once(
        &self,
        platform: &Platform,
        context: &BuildContext,
        dockerfile: &Path,
        settings: &BuildSettings,
        console: &Console,
    ) -> Result<BuiltImage, Error> {
        let group = platform.to_string();
        let context_session = self.context_session(context, settings).await;
        let session = uuid::Uuid::new_v4().to_string();
        let name = format!("{TEMPORARY_REPOSITORY}:{}", uuid::Uuid::new_v4().simple());
        let mut build_args =
            platform_build_args(platform, &self.build_platform, &settings.build_args);
        if settings.inline_cache {
            // BuildKit writes its cache records for the image's layers into the image config
            // (`moby.buildkit.cache.v0`); a later build imports them from the pushed image.
            build_args
                .entry("BUILDKIT_INLINE_CACHE".to_owned())
                .or_insert_with(|| "1".to_owned());
        }
        let mut options = BuildImageOptionsBuilder::new()
            .dockerfile(&context.dockerfile)
            .platform(&group)
            .t(&name)
            .buildargs(&build_args)
            .labels(&settings.labels)
            .nocache(settings.no_cache)
            .rm(true)
            .version(BuilderVersion::BuilderBuildKit)
            .session(&session);
        if let Some(network) = settings.network {
            options = options.networkmode(network);
        }
        if let Some(target) = &settings.target {
            options = options.target(target);
        }
        if let Some(cache_from) = settings.cache_from.get(platform).filter(|c| !c.is_empty()) {
            if !settings.no_cache {
                options = options.cachefrom(cache_from);
            }
        }
        // The context through this run's BuildKit session (see `session`), else as a tar body.
        let session_docker;
        let (docker, body) = match &context_session {
            Some(open) => {
                options = options
                    .session(open.id())
                    .remote("client-session")
                    .dockerfile(&session::dockerfile_name(context))
                    .version(BuilderVersion::BuilderV1);
                session_docker = self
                    .docker
                    .clone()
                    .with_request_modifier(session::session_build_request);
                (&session_docker, bollard::body_full(bytes::Bytes::new()))
            }
            None => (
                &self.docker,
                bollard::body_try_stream(ReceiverStream::new(context.tar_stream())),
            ),
        };
        // With a BuildKit session, bollard serves these to BuildKit through the session's auth
        // service (what the docker CLI does from its config file); the classic builder would
        // read them from `X-Registry-Config`.
        let credentials = settings
            .registry_login
            .as_ref()
            .map(|login| HashMap::from([(login.host.clone(), login.credentials())]));
        let mut stream = docker.build_image(options.build(), credentials, Some(body));

        let mut steps: HashMap<String, Step> = HashMap::new();
        let mut failed_step: Option<String> = None;
        let mut image_id = None;
        let outcome: Result<(), bollard::errors::Error> = async {
            while let Some(info) = stream.try_next().await? {
                if let Some(text) = info.stream.as_deref() {
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        console.group_line(&group, line);
                    }
                }
                match info.aux {
                    Some(BuildInfoAux::Default(id)) => {
                        if let Some(id) = id.id {
                            image_id = Some(id);
                        }
                    }
                    Some(BuildInfoAux::BuildKit(status)) => {
                        for vertex in status.vertexes {
                            let next = steps.len() + 1;
                            let step = steps.entry(vertex.digest.clone()).or_insert_with(|| Step {
                                number: next,
                                ..Step::default()
                            });
                            if step.name.is_empty() {
                                step.name.clone_from(&vertex.name);
                            }
                            if vertex.started.is_some() && !step.started {
                                step.started = true;
                                console
                                    .group_line(&group, &format!("#{} {}", step.number, step.name));
                            }
                            if !vertex.error.is_empty() {
                                // Steps running beside the failing one end as "canceled":
                                // the first real error names the step to blame.
                                if failed_step.is_none() && !vertex.error.contains("canceled") {
                                    failed_step = Some(step.name.clone());
                                }
                                console.group_line(
                                    &group,
                                    &format!("#{} ERROR: {}", step.number, vertex.error),
                                );
                            } else if vertex.completed.is_some() && !step.completed {
                                step.completed = true;
                                let state = if vertex.cached { "CACHED" } else { "DONE" };
                                console.group_line(&group, &format!("#{} {state}", step.number));
                            }
                        }
                        for log in status.logs {
                            // A log may come before its step's first status: keep its lines.
                            let next = steps.len() + 1;
                            let step = steps.entry(log.vertex.clone()).or_insert_with(|| Step {
                                number: next,
                                ..Step::default()
                            });
                            for line in String::from_utf8_lossy(&log.msg).lines() {
                                console.group_line(&group, &format!("#{} {line}", step.number));
                                if step.last_lines.len() == FAILED_STEP_LINES {
                                    step.last_lines.pop_front();
                                }
                                step.last_lines.push_back(line.to_owned());
                            }
                        }
                    }
                    None => {}
                }
            }
            Ok(())
        }
        .await;

        if let Err(error) = outcome {
            let message = match error {
                // BuildKit's own verdict, in the stream: a step of the Dockerfile failed.
                bollard::errors::Error::DockerStreamError { error } => error,
                // The Engine refused the build request itself (bad options): still the build's.
                bollard::errors::Error::DockerResponseServerError {
                    status_code,
                    message,
                } if (400..500).contains(&status_code) => message,
                // No verdict: the daemon died, dropped the connection, or answered nonsense.
                other => {
                    return Err(self.call_failed(
                        Some(platform),
                        format!("building `{platform}`"),
                        other,
                    ))
                }
            };
            let last_lines = failed_step
                .as_ref()
                .and_then(|name| steps.values().find(|s| &s.name == name))
                .map(|s| s.last_lines.iter().cloned().collect())
                .unwrap_or_default();
            let dockerfile_line = failed_step
                .as_deref()
                .and_then(|step| find_instruction(dockerfile, step));
            return Err(Error::BuildFailed {
                platform: platform.clone(),
                step: failed_step,
                dockerfile_line,
                message,
                last_lines,
            });
        }
        let image_id = image_id.ok_or_else(|| {
            Error::UnexpectedAnswer(format!(
                "the Engine finished building `{platform}` without reporting an image id"
            ))
        })?;
        let inspect = self
            .docker
            .inspect_image(&image_id)
            .await
            .map_err(|source| {
                self.call_failed(
                    Some(platform),
                    format!("inspecting the image built for `{platform}`"),
                    source,
                )
            })?;
        Ok(BuiltImage {
            platform: platform.clone(),
            image_id,
            name,
            size: inspect.size.unwrap_or_default(),
            diff_ids: inspect
                .root_fs
                .and_then(|root_fs| root_fs.layers)
                .unwrap_or_default(),
        })
    }

    /// Removes the build's temporary name, and with it the image unless another name holds
    /// it (BuildKit's cache stays).
    pub async fn remove(&self, image: &BuiltImage) -> Result<(), Error> {
        self.docker
            .remove_image(
                &image.name,
                Some(RemoveImageOptionsBuilder::new().build()),
                None,
            )
            .await
            .map(|_| ())
            .map_err(|source| {
                self.call_failed(
                    Some(&image.platform),
                    format!("removing the temporary image `{}`", image.name),
                    source,
                )
            })
    }

    /// The built image as the Engine exports it (`GET /images/{id}/get`, the `docker save`
    /// format), as a byte stream read while it arrives. The Engine only exports: pushing is
    /// the registry module's job.
    pub fn export(
        &self,
        image: &BuiltImage,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, bollard::errors::Error>>
           + Send
           + Unpin
           + 'static {
        // By the build's own name: on the containerd image store an id can stand for several
        // images (other builds of the same image, under their names), which other runs remove.
        Box::pin(self.docker.export_image(&image.name))
    }
}

/// The Docker Engines of a run, each with the platforms it builds: those the `engines` input
/// maps (issue 10: each platform where it is native), and the Engine at `DOCKER_HOST` for the
/// rest. An Engine named for several platforms is reached once.
#[derive(Debug, Clone)]
pub struct Engines {
    engines: Vec<Engine>,
    /// Each platform of the run and the index of its Engine in `engines`.
    assigned: Vec<(Platform, usize)>,
}

/// Which address builds which platforms, in the run's platform order, and what named it.
fn assign(request: &Request) -> Vec<(String, Vec<Platform>, NamedBy)> {
    let default = request
        .docker_host
        .clone()
        .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned());
    let mut groups: Vec<(String, Vec<Platform>, NamedBy)> = Vec::new();
    for platform in &request.platforms {
        let (address, named_by) = request
            .engines
            .iter()
            .find(|e| &e.platform == platform)
            .map_or((default.as_str(), NamedBy::DockerHost), |e| {
                (e.address.as_str(), NamedBy::EnginesInput)
            });
        match groups.iter_mut().find(|(a, _, _)| a == address) {
            Some((_, platforms, _)) => platforms.push(platform.clone()),
            None => groups.push((address.to_owned(), vec![platform.clone()], named_by)),
        }
    }
    groups
}

impl Engines {
    /// Connects to every Engine the request's platforms need, all at once; the first that
    /// cannot be used ends the run, before anything is created. The Engine at `DOCKER_HOST` is
    /// not contacted when `engines` maps every platform elsewhere.
    pub async fn connect(request: &Request) -> Result<Engines, Error> {
        let groups = assign(request);
        let engines = futures_util::future::try_join_all(groups.iter().map(
            |(address, platforms, named_by)| {
                Engine::connect(address, request.docker_tls.as_ref(), platforms, *named_by)
            },
        ))
        .await?;
        let assigned = groups
            .iter()
            .enumerate()
            .flat_map(|(index, (_, platforms, _))| {
                platforms.iter().map(move |p| (p.clone(), index))
            })
            .collect();
        Ok(Engines { engines, assigned })
    }

    /// The Engine that builds `platform`, one of the run's platforms (another, which the
    /// inputs rule out, would get the first Engine).
    #[must_use]
    pub fn for_platform(&self, platform: &Platform) -> &Engine {
        let index = self
            .assigned
            .iter()
            .find(|(p, _)| p == platform)
            .map_or(0, |(_, index)| *index);
        &self.engines[index]
    }

    /// Each Engine with the platforms it builds, in the run's order.
    pub fn each(&self) -> impl Iterator<Item = (&Engine, Vec<Platform>)> {
        self.engines.iter().enumerate().map(|(index, engine)| {
            let platforms = self
                .assigned
                .iter()
                .filter(|(_, i)| *i == index)
                .map(|(p, _)| p.clone())
                .collect();
            (engine, platforms)
        })
    }

    /// One line per Engine for the log: which daemon builds which platforms.
    #[must_use]
    pub fn describe(&self) -> Vec<String> {
        self.each()
            .map(|(engine, platforms)| {
                let names: Vec<String> = platforms.iter().map(ToString::to_string).collect();
                format!("{}: builds {}", engine.describe(), names.join(", "))
            })
            .collect()
    }
}

/// The build arguments with BuildKit's automatic platform arguments (`TARGET*`, `BUILD*`)
/// made explicit. BuildKit
/// 0.8 (Docker 20.10) lets a global `ARG TARGETARCH` without a default shadow the automatic
/// value with an empty one, which breaks `FROM base:${TARGETARCH}`; passing the values as
/// build arguments gives every daemon version the same result. The user's values win.
fn platform_build_args(
    platform: &Platform,
    build_platform: &Platform,
    user_args: &HashMap<String, String>,
) -> HashMap<String, String> {
    let mut args: HashMap<String, String> =
        crate::dockerfile::platform_args(platform, build_platform)
            .into_iter()
            .collect();
    args.extend(user_args.iter().map(|(k, v)| (k.clone(), v.clone())));
    args
}

/// Finds the Dockerfile line of a BuildKit step such as `[build 2/4] RUN make`: the first
/// line (continuations joined) whose instruction text is the step's.
fn find_instruction(dockerfile: &Path, step: &str) -> Option<usize> {
    let instruction = step
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
        .map_or(step, |(_, rest)| rest)
        .trim();
    if instruction.is_empty() {
        return None;
    }
    let text = std::fs::read_to_string(dockerfile).ok()?;
    let normalize = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let wanted = normalize(instruction);
    let lines: Vec<&str> = text.lines().collect();
    let mut index = 0;
    while index < lines.len() {
        let start = index;
        let mut joined = lines[index].trim_end().to_owned();
        while joined.ends_with('\\') && index + 1 < lines.len() {
            joined.pop();
            index += 1;
            joined.push(' ');
            joined.push_str(lines[index].trim());
        }
        let candidate = normalize(&joined);
        if !candidate.is_empty()
            && (candidate.eq_ignore_ascii_case(&wanted)
                || candidate
                    .to_ascii_lowercase()
                    .starts_with(&wanted.to_ascii_lowercase()))
        {
            return Some(start + 1);
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn status(pairs: &[[&str; 2]]) -> Vec<Vec<String>> {
        pairs
            .iter()
            .map(|pair| pair.iter().map(|s| (*s).to_owned()).collect())
            .collect()
    }

    #[test]
    fn the_image_store_is_read_from_the_driver_status() {
        // As `docker info` reports them: 28.5 and 26.1 with the containerd store, 20.10 and
        // 28.5 with overlay2.
        assert_eq!(
            ImageStore::from_driver_status(&status(&[[
                "driver-type",
                "io.containerd.snapshotter.v1"
            ]])),
            ImageStore::Containerd
        );
        assert_eq!(
            ImageStore::from_driver_status(&status(&[
                ["Backing Filesystem", "extfs"],
                ["Supports d_type", "true"],
                ["Native Overlay Diff", "true"],
                ["userxattr", "false"],
            ])),
            ImageStore::Classic
        );
        assert_eq!(ImageStore::from_driver_status(&[]), ImageStore::Classic);
    }

    #[rstest]
    #[case::debian_trixie("26.1.5+dfsg1", ImageStore::Containerd, false)]
    #[case::last_broken_27("27.4.1", ImageStore::Containerd, false)]
    #[case::old_24("24.0.7", ImageStore::Containerd, false)]
    #[case::first_fixed_27("27.5.0", ImageStore::Containerd, true)]
    #[case::fixed_28("28.0.0", ImageStore::Containerd, true)]
    #[case::debian_sid("28.5.2+dfsg4", ImageStore::Containerd, true)]
    #[case::docker_29("29.0.1", ImageStore::Containerd, true)]
    #[case::release_candidate("28.0.0-rc.1", ImageStore::Containerd, true)]
    #[case::classic_26("26.1.5+dfsg1", ImageStore::Classic, true)]
    #[case::classic_20("20.10.24+dfsg1", ImageStore::Classic, true)]
    #[case::unparsable("dev", ImageStore::Containerd, true)]
    fn a_containerd_store_older_than_27_5_is_refused(
        #[case] version: &str,
        #[case] store: ImageStore,
        #[case] usable: bool,
    ) {
        assert_eq!(unsupported(version, store).is_none(), usable);
    }

    #[test]
    fn the_refusal_names_version_store_and_fix() {
        let (problem, fix) =
            unsupported("26.1.5+dfsg1", ImageStore::Containerd).expect("26.1 is refused");
        let error = Error::Unsupported {
            address: "unix:///var/run/docker.sock".to_owned(),
            version: "26.1.5+dfsg1".to_owned(),
            store: ImageStore::Containerd,
            problem,
            fix,
        }
        .to_string();
        for part in [
            "`unix:///var/run/docker.sock`",
            "Docker `26.1.5+dfsg1`",
            "containerd image store",
            "moby/moby#47717",
            "upgrade Docker to 27.5 or later",
            "containerd-snapshotter\": false",
        ] {
            assert!(error.contains(part), "{part} in {error}");
        }
    }

    #[test]
    fn transport_failures_are_told_from_answers_by_kind() {
        use bollard::errors::Error as E;
        let dropped = std::io::Error::other("error reading a body from connection");
        assert!(is_transport(&E::from(dropped)));
        assert!(is_transport(&E::RequestTimeoutError));
        assert!(is_transport(&E::SocketNotFoundError(
            "/var/run/docker.sock".to_owned()
        )));
        assert!(!is_transport(&E::DockerStreamError {
            error: "process \"/bin/sh -c false\" did not complete successfully: exit code: 1"
                .to_owned()
        }));
        assert!(!is_transport(&E::DockerResponseServerError {
            status_code: 500,
            message: "no space left on device".to_owned()
        }));
    }

    #[test]
    fn finds_the_failing_instruction_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Dockerfile");
        std::fs::write(
            &path,
            "FROM x AS build\nRUN echo one\nRUN make \\\n    all\nFROM y\n",
        )
        .expect("write");
        assert_eq!(find_instruction(&path, "[build 2/3] RUN echo one"), Some(2));
        assert_eq!(
            find_instruction(&path, "[build 3/3] RUN make     all"),
            Some(3)
        );
        assert_eq!(find_instruction(&path, "[internal] load metadata"), None);
    }
    #[test]
    fn each_engine_builds_its_platforms_and_the_rest_go_to_docker_host() {
        let mut request = crate::inputs::Request::try_from(crate::inputs::Args {
            repository: Some("team/api".into()),
            context: Some(env!("CARGO_MANIFEST_DIR").to_owned() + "/examples/hello"),
            aws_region: Some("us-east-1".into()),
            platforms: Some("linux/amd64,linux/arm64,linux/arm/v7,linux/386".into()),
            engines: Some(
                "linux/arm64=tcp://graviton:2376\nlinux/arm/v7=tcp://graviton:2376".into(),
            ),
            ..crate::inputs::Args::default()
        })
        .expect("valid");
        let names = |platforms: &[Platform]| -> Vec<String> {
            platforms.iter().map(ToString::to_string).collect()
        };
        let groups: Vec<(String, Vec<String>, NamedBy)> = assign(&request)
            .into_iter()
            .map(|(address, platforms, named_by)| (address, names(&platforms), named_by))
            .collect();
        assert_eq!(
            groups,
            vec![
                (
                    DEFAULT_DOCKER_HOST.to_owned(),
                    vec!["linux/amd64".to_owned(), "linux/386".to_owned()],
                    NamedBy::DockerHost
                ),
                (
                    "tcp://graviton:2376".to_owned(),
                    vec!["linux/arm64".to_owned(), "linux/arm/v7".to_owned()],
                    NamedBy::EnginesInput
                ),
            ]
        );
        // Every platform mapped: `DOCKER_HOST` is not contacted at all.
        request
            .platforms
            .retain(|p| p.architecture.starts_with("arm"));
        assert_eq!(assign(&request).len(), 1);
    }

    #[test]
    fn an_engine_that_does_not_answer_is_named_with_its_platforms() {
        let error = Error::Connect {
            address: "tcp://graviton:2376".to_owned(),
            platforms: vec!["linux/arm64".parse().expect("platform")],
            named_by: NamedBy::EnginesInput,
            source: bollard::errors::Error::RequestTimeoutError,
        }
        .to_string();
        assert!(
            error.starts_with(
                "cannot reach the Docker Engine at `tcp://graviton:2376` to build `linux/arm64` (is dockerd running there"
            ),
            "{error}"
        );
        assert!(error.contains("the `engines` input names it"), "{error}");
    }
}
