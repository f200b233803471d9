//! The BuildKit session of a run on one Engine: the build context crosses here, once, and
//! only what BuildKit asks for (the paths the Dockerfile reads, minus `.dockerignore`, minus
//! what its copy from the last build already holds).
//!
//! We open the session ourselves, as the docker CLI does: `POST /session` with
//! `Upgrade: h2c` and the `X-Docker-Expose-Session-*` headers, then serve gRPC on the
//! upgraded connection as the HTTP/2 *server* (the daemon is the client): file sync
//! ([`super::filesync`]), registry credentials, health. bollard 0.21 opens sessions only with
//! its own fixed services, its hijack (`process_upgraded`) is private, and its `build_image`
//! always sends a body and opens its own session under the same id: so the hijack is ours
//! (plain HTTP/1.1 on our own connection to the same address, TLS as bollard does it), and the
//! `/build` call stays bollard's, told by a request modifier to take the context from the
//! session (`version=2`, `remote=client-session`, no body).
//!
//! Owns: the session's connection and services, and what they sent. Does not build.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bollard_buildkit_proto::fsutil::types::Packet;
use bollard_buildkit_proto::health::health_check_response::ServingStatus;
use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard_buildkit_proto::moby::filesync::packet::file_sync_server::{FileSync, FileSyncServer};
use bollard_buildkit_proto::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard_buildkit_proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::filesync::{self, Selection, Sent};
use super::DockerTls;
use super::RegistryLogin;

/// The gRPC methods the session serves, announced to the daemon when it opens.
const METHODS: [&str; 8] = [
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.FileSync/TarStream",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.filesync.v1.Auth/FetchToken",
    "/moby.filesync.v1.Auth/GetTokenAuthority",
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
];

/// The folders a build may read through the session, by the names BuildKit's Dockerfile
/// frontend asks for.
#[derive(Debug, Clone)]
pub struct SessionDirs {
    /// `context`: the build context folder.
    pub context: PathBuf,
    /// `dockerfile`: the folder of the Dockerfile.
    pub dockerfile: PathBuf,
}

/// An open session on one Engine; closed when dropped.
pub struct ContextSession {
    id: String,
    sent: Arc<Sent>,
    session_bytes: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ContextSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextSession")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Drop for ContextSession {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What a session sent, for the run's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentSummary {
    /// Every byte written on the session's connection (framing, lists, contents, credentials).
    pub session_bytes: u64,
    /// File contents among them.
    pub data_bytes: u64,
    /// Files whose contents BuildKit asked for.
    pub files: u64,
    /// Entries listed.
    pub entries: u64,
}

impl ContextSession {
    /// The session id, for `/build`'s `session` parameter.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What crossed so far.
    pub fn sent(&self) -> SentSummary {
        SentSummary {
            session_bytes: self.session_bytes.load(Ordering::Relaxed),
            data_bytes: self.sent.data_bytes.load(Ordering::Relaxed),
            files: self.sent.files.load(Ordering::Relaxed),
            entries: self.sent.entries.load(Ordering::Relaxed),
        }
    }

    /// Opens a session on the Engine at `address` (API version `api_version`, e.g. `1.41`)
    /// serving `dirs` and `login`. `shared_key` names the context folder across runs: BuildKit
    /// keeps its synced copy under it, so the next build sends only what changed.
    pub async fn open(
        address: &str,
        tls: Option<&DockerTls>,
        api_version: &str,
        dirs: SessionDirs,
        shared_key: &str,
        login: Option<RegistryLogin>,
    ) -> io::Result<ContextSession> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut connection = dial(address, tls).await?;
        let name = dirs.context.file_name().map_or_else(
            || "context".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut head = format!(
            "POST /v{api_version}/session HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n\
             Upgrade: h2c\r\nContent-Length: 0\r\nX-Docker-Expose-Session-Uuid: {id}\r\n\
             X-Docker-Expose-Session-Name: {}\r\nX-Docker-Expose-Session-Sharedkey: {shared_key}\r\n",
            header_safe(&name)
        );
        for method in METHODS {
            head.push_str("X-Docker-Expose-Session-Grpc-Method: ");
            head.push_str(method);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        connection.write_all(head.as_bytes()).await?;
        connection.flush().await?;
        // Read the answer's head byte by byte: what follows it is already HTTP/2.
        let mut answer = Vec::new();
        while !answer.ends_with(b"\r\n\r\n") {
            if answer.len() > 16 * 1024 {
                return Err(io::Error::other(
                    "the answer to `POST /session` is too long",
                ));
            }
            answer.push(connection.read_u8().await?);
        }
        let status = String::from_utf8_lossy(&answer);
        let status = status.lines().next().unwrap_or_default().to_owned();
        if status.split_whitespace().nth(1) != Some("101") {
            return Err(io::Error::other(format!(
                "the Engine answered `POST /session` with `{status}`"
            )));
        }
        let sent = Arc::new(Sent::default());
        let session_bytes = Arc::new(AtomicU64::new(0));
        let connection = Counted {
            inner: connection,
            written: Arc::clone(&session_bytes),
        };
        let file_sync = FileSyncService {
            dirs: HashMap::from([
                ("context".to_owned(), dirs.context),
                ("dockerfile".to_owned(), dirs.dockerfile),
            ]),
            sent: Arc::clone(&sent),
        };
        let router = tonic::transport::Server::builder()
            .add_service(HealthServer::new(HealthService))
            .add_service(FileSyncServer::new(file_sync))
            .add_service(AuthServer::new(AuthService { login }));
        // One connection, then nothing more: the server lives until the session is dropped.
        let incoming = futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok::<_, io::Error>(connection)]),
            futures_util::stream::pending(),
        );
        let server = tokio::spawn(async move {
            let _ = router.serve_with_incoming(incoming).await;
        });
        Ok(ContextSession {
            id,
            sent,
            session_bytes,
            server,
        })
    }
}

/// A header value with nothing that could end the header.
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The shared key of a context folder: the same folder gives the same key on every run
/// (buildx hashes the folder's path the same way), so BuildKit finds its copy again.
#[must_use]
pub fn shared_key(context: &Path) -> String {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(format!("ecr-multiarch:{}", context.display()));
    format!("{digest:x}")
}

/// A byte stream to the Engine.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A new connection to the Engine at `address`: a unix socket, or TCP (over TLS with the
/// docker CLI's files when `tls` is given). Other transports have no session here.
async fn dial(address: &str, tls: Option<&DockerTls>) -> io::Result<Box<dyn Io>> {
    if let Some(path) = address.strip_prefix("unix://") {
        return Ok(Box::new(tokio::net::UnixStream::connect(path).await?));
    }
    let Some(host_port) = address.strip_prefix("tcp://") else {
        return Err(io::Error::other(format!(
            "no BuildKit session over `{address}` (only `unix://` and `tcp://`)"
        )));
    };
    let host_port = host_port.trim_end_matches('/');
    let tcp = tokio::net::TcpStream::connect(host_port).await?;
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let invalid =
        |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(tls.cert_path.join("ca.pem")).map_err(|e| invalid(&e))?
    {
        roots
            .add(cert.map_err(|e| invalid(&e))?)
            .map_err(|e| invalid(&e))?;
    }
    let certs = CertificateDer::pem_file_iter(tls.cert_path.join("cert.pem"))
        .map_err(|e| invalid(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    let key =
        PrivateKeyDer::from_pem_file(tls.cert_path.join("key.pem")).map_err(|e| invalid(&e))?;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| invalid(&e))?;
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).map_err(|e| invalid(&e))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(Box::new(stream))
}

/// The session's connection, counting what we write on it.
struct Counted {
    inner: Box<dyn Io>,
    written: Arc<AtomicU64>,
}

impl tonic::transport::server::Connected for Counted {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `moby.filesync.v1.FileSync`: the session's folders, by name.
struct FileSyncService {
    dirs: HashMap<String, PathBuf>,
    sent: Arc<Sent>,
}

fn metadata_values(request: &Request<Streaming<Packet>>, key: &str) -> Vec<String> {
    request
        .metadata()
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = ReceiverStream<Result<Packet, Status>>;
    type TarStreamStream = ReceiverStream<Result<Packet, Status>>;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let dir_name = metadata_values(&request, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let root =
            self.dirs.get(&dir_name).cloned().ok_or_else(|| {
                Status::not_found(format!("no folder `{dir_name}` in this session"))
            })?;
        let selection = Selection {
            include: metadata_values(&request, "include-patterns"),
            exclude: metadata_values(&request, "exclude-patterns"),
            follow: metadata_values(&request, "followpaths"),
        };
        let mut incoming = request.into_inner();
        let (requests, requested) = std::sync::mpsc::channel::<Packet>();
        tokio::spawn(async move {
            while let Ok(Some(packet)) = incoming.message().await {
                if requests.send(packet).is_err() {
                    break;
                }
            }
        });
        let (outgoing, stream) = mpsc::channel(16);
        let sent = Arc::clone(&self.sent);
        tokio::task::spawn_blocking(move || {
            if let Err(error) =
                filesync::serve_diff_copy(&root, &selection, requested, &outgoing, &sent)
            {
                let _ = outgoing.blocking_send(Err(Status::internal(format!(
                    "sending `{dir_name}`: {error}"
                ))));
            }
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented("the context is sent with DiffCopy"))
    }
}

/// `moby.filesync.v1.Auth`: the registry login for its host, nothing for others (anonymous);
/// no token authority, so BuildKit fetches tokens itself with these credentials.
struct AuthService {
    login: Option<RegistryLogin>,
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = request.into_inner().host;
        let response = match &self.login {
            Some(login) if login.host == host => CredentialsResponse {
                username: login.username.clone(),
                secret: login.password.expose().to_owned(),
            },
            _ => CredentialsResponse::default(),
        };
        Ok(Response::new(response))
    }

    async fn fetch_token(
        &self,
        _request: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }

    async fn get_token_authority(
        &self,
        _request: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }

    async fn verify_token_authority(
        &self,
        _request: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }
}

/// `grpc.health.v1.Health`: the daemon checks that the session still answers.
struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    type WatchStream = ReceiverStream<Result<HealthCheckResponse, Status>>;

    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("list"))
    }

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (sender, receiver) = mpsc::channel(1);
        let _ = sender
            .send(Ok(HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            }))
            .await;
        // Keep the stream open for the session's life: the sender lives in a task.
        tokio::spawn(async move {
            sender.closed().await;
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// `/build` as bollard sends it, told to take the context from the session: BuildKit
/// (`version=2`) and `remote=client-session`. bollard opens its own session for `version=2`,
/// so the build is asked as `version=1` and the query corrected here.
pub fn session_build_request(mut request: bollard::BollardRequest) -> bollard::BollardRequest {
    if !request.uri().path().ends_with("/build") {
        return request;
    }
    let Some(query) = request.uri().query() else {
        return request;
    };
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.starts_with("version="))
        .collect();
    pairs.push("version=2");
    let path_and_query = format!("{}?{}", request.uri().path(), pairs.join("&"));
    let mut parts = request.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// How a run's context reaches one Engine.
#[derive(Debug, Default)]
pub enum Transport {
    /// No build yet.
    #[default]
    Untried,
    /// Through this BuildKit session, shared by every build of the run on the Engine.
    Session(Arc<ContextSession>),
    /// As a tar body per build, for this reason.
    Tar(String),
}

/// The Dockerfile's name in the session's `dockerfile` folder.
pub fn dockerfile_name(context: &crate::context::BuildContext) -> String {
    context.dockerfile_path.file_name().map_or_else(
        || "Dockerfile".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The first Engine API version with `/session` out of experimental (Docker 18.09).
const SESSION_API: (usize, usize) = (1, 39);

impl super::Engine {
    /// The session this run's builds on this Engine take the context from, opened by the
    /// first build; `None`: a tar body per build (the reason is kept for [`Self::context_report`]).
    pub(super) async fn context_session(
        &self,
        context: &crate::context::BuildContext,
        settings: &super::BuildSettings,
    ) -> Option<Arc<ContextSession>> {
        let mut transport = self.transport.lock().await;
        match &*transport {
            Transport::Session(open) => return Some(Arc::clone(open)),
            Transport::Tar(_) => return None,
            Transport::Untried => {}
        }
        let version = self.docker.client_version();
        if (version.major_version, version.minor_version) < SESSION_API {
            *transport = Transport::Tar(format!(
                "the Engine speaks API {version}, sessions need {}.{}",
                SESSION_API.0, SESSION_API.1
            ));
            return None;
        }
        let dirs = SessionDirs {
            context: context.root.clone(),
            dockerfile: context
                .dockerfile_path
                .parent()
                .map_or_else(|| context.root.clone(), Path::to_owned),
        };
        let opened = ContextSession::open(
            &self.address,
            self.tls.as_ref(),
            &version.to_string(),
            dirs,
            &shared_key(&context.root),
            settings.registry_login.clone(),
        )
        .await;
        match opened {
            Ok(open) => {
                let open = Arc::new(open);
                *transport = Transport::Session(Arc::clone(&open));
                Some(open)
            }
            Err(error) => {
                *transport = Transport::Tar(format!("opening a BuildKit session failed: {error}"));
                None
            }
        }
    }

    /// One line for the log once the builds are done: how the context reached this Engine
    /// and how much crossed. `None` before any build.
    pub fn context_report(&self) -> Option<String> {
        let transport = self.transport.try_lock().ok()?;
        match &*transport {
            Transport::Untried => None,
            Transport::Session(open) => {
                let sent = open.sent();
                Some(format!(
                    "context: sent through the BuildKit session to {}: {} bytes on the session, {} bytes of contents in {} files, {} entries listed",
                    self.address, sent.session_bytes, sent.data_bytes, sent.files, sent.entries
                ))
            }
            Transport::Tar(reason) => Some(format!(
                "context: sent as a tar body per build to {} ({reason})",
                self.address
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> bollard::BollardRequest {
        http::Request::builder()
            .uri(uri)
            .body(bollard::body_full(bytes::Bytes::new()))
            .expect("request")
    }

    #[test]
    fn only_build_calls_are_turned_into_session_builds() {
        let build = session_build_request(request(
            "http://localhost/v1.41/build?dockerfile=Dockerfile&version=1&session=abc&remote=client-session",
        ));
        let query = build.uri().query().expect("query");
        assert!(query.contains("version=2"), "{query}");
        assert!(!query.contains("version=1"), "{query}");
        assert!(query.contains("remote=client-session"), "{query}");
        let other =
            session_build_request(request("http://localhost/v1.41/images/x/json?version=1"));
        assert_eq!(other.uri().query(), Some("version=1"));
    }

    #[test]
    fn the_shared_key_follows_the_folder() {
        assert_eq!(
            shared_key(Path::new("/a/ctx")),
            shared_key(Path::new("/a/ctx"))
        );
        assert_ne!(
            shared_key(Path::new("/a/ctx")),
            shared_key(Path::new("/b/ctx"))
        );
        assert_eq!(header_safe("ctx\r\nX: y"), "ctx__X: y");
    }
}
