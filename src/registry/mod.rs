//! The OCI distribution API: the only module that talks to a registry. Reads what the
//! repository already holds (tags, images, their layers), uploads each platform image by
//! digest (blobs, config, manifest), and puts the multi-arch index under the tags.
//!
//! Every request is retried when the failure is transient ([`retry`]); blobs go up in one
//! streamed PUT of known size (ECR mishandles chunked PATCH uploads,
//! aws/containers-roadmap#2831). Authentication is HTTP Basic with the ECR token, which ECR
//! accepts on every request. Plain HTTP only for loopback registries (the testbed).
//! Spec: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md>.

pub mod index;
mod read;
mod request;
pub mod retry;
mod upload;

use std::time::Duration;

pub use index::{Index, IndexChild};
pub use read::{ExistingImage, RepositoryImages};
pub use retry::RetryLog;
pub use upload::PushStats;

use crate::platform::PlatformMismatch;
use crate::secret::Secret;

/// How long connecting to the registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the registry may stay silent while answering.
const READ_TIMEOUT: Duration = Duration::from_mins(1);

/// A registry failure; callers branch on a platform mismatch and on what a status means.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image read back is not for the platform it is listed for.
    #[error(transparent)]
    PlatformMismatch(#[from] PlatformMismatch),
    /// The registry answered with an error status, on the last attempt.
    #[error("{operation} on `{registry}` failed{}: HTTP {status}{}{}", attempts_note(*attempts), code.as_ref().map(|c| format!(" {c}")).unwrap_or_default(), if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        /// What we were doing, e.g. "uploading layer `sha256:…` of `linux/arm64`".
        operation: String,
        /// The registry host.
        registry: String,
        /// The HTTP status of the last answer.
        status: u16,
        /// The distribution error code (`TAG_INVALID`, `TOOMANYREQUESTS`...), when given.
        code: Option<String>,
        /// The registry's message.
        message: String,
        /// How long the registry asked us to wait (`Retry-After`).
        retry_after: Option<Duration>,
        /// Attempts made.
        attempts: u32,
    },
    /// The registry could not be reached, or the connection broke, on the last attempt.
    #[error("{operation} on `{registry}` failed{}: {}", attempts_note(*attempts), crate::error_chain(source))]
    Transport {
        /// What we were doing.
        operation: String,
        /// The registry host.
        registry: String,
        /// Attempts made.
        attempts: u32,
        /// The cause.
        source: reqwest::Error,
    },
    /// Reading a local file to upload failed.
    #[error("{what}")]
    Io {
        /// What we were doing.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A manifest asked for by digest is not in the repository.
    #[error("{what} is not in `{repository}`")]
    NotInRepository {
        /// Which manifest, e.g. "the `linux/arm64` image `sha256:…`".
        what: String,
        /// `<host>/<repository>`.
        repository: String,
    },
    /// A reference names an index of several images where one platform's image was meant.
    #[error("`{digest}` is an index of {count} images, not one platform's image: name each platform's image by its own digest")]
    SeveralImages {
        /// The index.
        digest: String,
        /// How many images it holds.
        count: usize,
    },
    /// The registry returned a document we cannot read.
    #[error("{what} is not valid: {reason}")]
    Malformed {
        /// Which document.
        what: String,
        /// Why.
        reason: String,
    },
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

impl Error {
    /// Whether the registry refused the credentials or the permission (HTTP 401/403): the
    /// user fixes that (IAM policy, `registry-id`), retrying does not.
    #[must_use]
    pub fn is_denied(&self) -> bool {
        matches!(
            self,
            Error::Status {
                status: 401 | 403,
                ..
            }
        )
    }

    /// Exit 1 for what the user fixes: credentials or permissions refused, an image of
    /// another platform, a digest the repository lacks, an index named for one image, an
    /// immutable tag another run moved meanwhile (`TAG_INVALID`); 2 for the registry failing.
    #[must_use]
    pub fn exit_status(&self) -> crate::exit_status::ExitStatus {
        use crate::exit_status::ExitStatus;
        match self {
            Error::PlatformMismatch(mismatch) => mismatch.exit_status(),
            Error::NotInRepository { .. } | Error::SeveralImages { .. } => ExitStatus::User,
            error if error.is_denied() || error.code() == Some("TAG_INVALID") => ExitStatus::User,
            Error::Status { .. }
            | Error::Transport { .. }
            | Error::Io { .. }
            | Error::Malformed { .. } => ExitStatus::System,
        }
    }

    /// The distribution error code of a status error.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// Whether a registry host is on loopback, where plain HTTP is used: `localhost`, a loopback
/// address, or a name that resolves to loopback addresses only (as the Docker Engine decides
/// for its insecure-registry rule; e.g. a testbed's `/etc/hosts` entry for an ECR host name).
#[must_use]
pub fn is_loopback(host: &str) -> bool {
    let name = host_name(host);
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || (name.parse::<std::net::IpAddr>().is_err() && resolves_to_loopback_only(name))
}

/// Whether the system resolver knows `name` and gives loopback addresses only.
fn resolves_to_loopback_only(name: &str) -> bool {
    use std::net::ToSocketAddrs as _;
    (name, 0).to_socket_addrs().is_ok_and(|addresses| {
        let addresses: Vec<_> = addresses.collect();
        !addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback())
    })
}

/// The host name or address of `host[:port]`, without brackets.
fn host_name(host: &str) -> &str {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']') => {
            name
        }
        _ => host,
    };
    name.trim_start_matches('[').trim_end_matches(']')
}

/// A client for one repository of one registry.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    /// `http://host` or `https://host`.
    base: String,
    host: String,
    repository: String,
    username: String,
    password: Secret,
}

impl Registry {
    /// A client for `host/repository` with basic credentials; plain HTTP only on loopback.
    pub fn new(
        host: &str,
        repository: &str,
        username: &str,
        password: &str,
    ) -> Result<Registry, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("ecr-multiarch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| Error::Transport {
                operation: "setting up the HTTP client".to_owned(),
                registry: host.to_owned(),
                attempts: 1,
                source,
            })?;
        let scheme = if is_loopback(host) { "http" } else { "https" };
        Ok(Registry {
            http,
            base: format!("{scheme}://{host}"),
            host: host.to_owned(),
            repository: repository.to_owned(),
            username: username.to_owned(),
            password: Secret::new(password),
        })
    }

    /// The registry host.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `<host>/<repository>`.
    #[must_use]
    pub fn repository_uri(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("127.0.0.1:5000", true)]
    #[case("localhost", true)]
    #[case("localhost:5000", true)]
    #[case("[::1]:5000", true)]
    #[case("127.1.2.3", true)]
    #[case("123456789012.dkr.ecr.us-east-1.amazonaws.com", false)]
    #[case("10.0.0.1:5000", false)]
    fn plain_http_only_on_loopback(#[case] host: &str, #[case] loopback: bool) {
        assert_eq!(is_loopback(host), loopback);
    }
}
