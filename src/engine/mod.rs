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
//!
//! One concept per file: `compat` (image stores and the versions refused), `build` (a
//! platform's build, its progress and temporary image), `container` (the containers the
//! Engine runs for emulation), `inspect` (a built image as the Engine shows it, without an
//! export), `resolve` (images a Dockerfile names), `engines` (which Engine
//! builds which platform), `session` and `filesync` (the context through BuildKit's session).
//! This file connects to an Engine and says what failed.

use bollard::Docker;

use crate::platform::Platform;

mod build;
mod compat;
mod container;
mod engines;
mod filesync;
mod inspect;
mod resolve;
pub mod session;

pub use build::{
    BuildOptions, BuildSettings, BuiltImage, NetworkMode, RegistryLogin, TEMPORARY_REPOSITORY,
};
pub use compat::ImageStore;
pub use container::ProbeImage;
pub use engines::{Addresses, Engines, PlatformEngine};
pub use filesync::{sent_digest, Selection};
pub use inspect::InspectedImage;
pub use resolve::ResolvedImage;

/// TLS for `tcp://` Docker Engines, as the docker CLI reads it: `DOCKER_TLS_VERIFY` set, the
/// files in `DOCKER_CERT_PATH` (else `DOCKER_CONFIG`, else `~/.docker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerTls {
    /// The folder of `ca.pem` (what the Engine's certificate must be signed by) and the
    /// client's `cert.pem` and `key.pem`.
    pub cert_path: std::path::PathBuf,
}

/// The daemon's socket when `DOCKER_HOST` is not set (the docker CLI's default on Linux).
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

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
    /// The BuildKit session that carried the build context broke during a build: the
    /// transfer failed, not the Dockerfile (issue 17).
    #[error("sending the build context `{}` to the Docker Engine at `{address}` failed while building `{platform}`: the BuildKit session broke ({reason}); the Engine reported: {reported}", context.display())]
    ContextLost {
        /// `DOCKER_HOST`, or an address of `engines`.
        address: String,
        /// The platform being built.
        platform: Platform,
        /// The context folder.
        context: std::path::PathBuf,
        /// Why the session's connection ended.
        reason: String,
        /// What the Engine said of the build.
        reported: String,
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
            | Error::ContextLost { .. }
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
        if let Some((problem, fix)) = compat::unsupported(&server_version, store) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
