//! One platform's BuildKit build on an Engine: the request (platform arguments, cache,
//! credentials, the context through the session or as a tar body), its progress read to the
//! end of the stream, the failing step found in the Dockerfile, and the build's temporary
//! image: its name, export and removal.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use bollard::auth::DockerCredentials;
use bollard::models::BuildInfoAux;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, RemoveImageOptionsBuilder,
};
use futures_util::TryStreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::{session, Engine, Error};
use crate::context::BuildContext;
use crate::platform::Platform;
use crate::progress::Progress;
use crate::secret::Secret;

/// The repository of each build's temporary image name, `ecr-multiarch-build:<uuid>`.
pub const TEMPORARY_REPOSITORY: &str = "ecr-multiarch-build";

/// How many times a build runs at most when the cause of its failure is worth another attempt
/// (`worth_building_again`: another run, the connection; never the Dockerfile).
const BUILD_ATTEMPTS: usize = 3;

/// How many log lines of a failing step an error shows.
const FAILED_STEP_LINES: usize = 20;

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
    /// Whether the build asked BuildKit for inline cache records in its config.
    pub cache_records: bool,
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
    pub(super) fn credentials(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.expose().to_owned()),
            serveraddress: Some(self.host.clone()),
            ..DockerCredentials::default()
        }
    }
}

/// Network mode for `RUN` steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// The daemon's default network.
    Default,
    /// The host's network.
    Host,
    /// No network.
    None,
}

impl NetworkMode {
    /// The name the Engine API expects.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Default => "default",
            NetworkMode::Host => "host",
            NetworkMode::None => "none",
        }
    }
}

/// What the inputs ask of every build: `build-args`, `target`, `network`, `no-cache`, and
/// `repository-cache` (the inline cache).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Build arguments.
    pub build_args: std::collections::BTreeMap<String, String>,
    /// Build stage.
    pub target: Option<String>,
    /// Network mode for `RUN` steps; `None` is the daemon default.
    pub network: Option<NetworkMode>,
    /// Build without cache.
    pub no_cache: bool,
    /// Export BuildKit's inline cache into the image config (`BUILDKIT_INLINE_CACHE=1`).
    pub inline_cache: bool,
    /// Break the session's connection after this many bytes (a test knob,
    /// `ECR_MULTIARCH_SESSION_BREAK_AFTER`).
    pub session_break_after: Option<u64>,
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
    pub(super) registry_login: Option<RegistryLogin>,
    /// Break the session's connection after this many bytes (a test knob,
    /// `ECR_MULTIARCH_SESSION_BREAK_AFTER`).
    pub(super) session_break_after: Option<u64>,
}

impl BuildSettings {
    /// The build settings of the inputs' `options`, with the plan's labels.
    #[must_use]
    pub fn new(
        options: &BuildOptions,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> BuildSettings {
        BuildSettings {
            build_args: options.build_args.clone().into_iter().collect(),
            labels: labels.clone().into_iter().collect(),
            network: options.network.map(NetworkMode::as_str),
            target: options.target.clone(),
            no_cache: options.no_cache,
            inline_cache: options.inline_cache,
            cache_from: HashMap::new(),
            registry_login: None,
            session_break_after: options.session_break_after,
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
    /// Builds the context for one platform with BuildKit, streaming its progress to `progress`
    /// under the platform's name. Reads the stream to its end: any error fails the build.
    pub async fn build(
        &self,
        platform: &Platform,
        context: &BuildContext,
        dockerfile: &Path,
        settings: &BuildSettings,
        progress: &dyn Progress,
    ) -> Result<BuiltImage, Error> {
        // One name for every attempt: an attempt that fails may leave its name behind in the
        // Engine (the classic store names the image before it fails, below), and only the
        // name this build ends with is removed after export.
        let name = format!("{TEMPORARY_REPOSITORY}:{}", uuid::Uuid::new_v4().simple());
        let mut attempt = 1;
        loop {
            let built = self
                .build_once(platform, context, dockerfile, settings, progress, &name)
                .await;
            let why_again = match &built {
                Err(error) if attempt < BUILD_ATTEMPTS => self.worth_building_again(error).await,
                _ => None,
            };
            let Some(why_again) = why_again else {
                return built;
            };
            progress.group_line(&platform.to_string(), &why_again);
            attempt += 1;
        }
    }

    /// Why a failed build is worth building again, said as the log line, or `None`. Each
    /// cause is another build or the connection, never the Dockerfile; BuildKit's cache holds
    /// the steps that finished, so another attempt is cheap.
    async fn worth_building_again(&self, error: &Error) -> Option<String> {
        match error {
            // On the classic image store, concurrent runs that build the same image share its
            // id, and each removes its own name after export (issue 14 §8): removing the last
            // name deletes the image, also while the Engine is storing and naming it for this
            // build. No removal avoids that (the Engine cannot untag without deleting an
            // unnamed image, nor see a build about to name it).
            error if image_vanished(error) => Some(
                "another run removed the same image while the Engine stored it for this build: building again".to_owned(),
            ),
            // On the containerd image store, two builds that end in the same image at the same
            // moment (a matrix on one runner) both store it as `moby-dangling@<digest>`, and
            // the second fails with "already exists" (the exporter of moby/moby#49702). Each
            // build names its image now (`ecr-multiarch-build:<uuid>`), so this should not
            // happen; should an Engine still store one dangling, the image is there by then.
            Error::BuildFailed { message, .. }
                if message.contains("moby-dangling@") && message.contains("already exists") =>
            {
                Some("another build stored the same image at the same moment: building again".to_owned())
            }
            // The build's answer broke off, yet the Engine still answers: the connection, not
            // the daemon, failed (seen on a busy 28.5 containerd-store engine as "bytes
            // remaining on stream"). A daemon that is really gone fails the ping and is
            // reported at once.
            Error::Lost {
                platform: Some(_),
                source,
                ..
            } if self.docker.ping().await.is_ok() => Some(format!(
                "the connection to the Engine broke during the build ({source}); the Engine still answers: building again"
            )),
            _ => None,
        }
    }

    async fn build_once(
        &self,
        platform: &Platform,
        context: &BuildContext,
        dockerfile: &Path,
        settings: &BuildSettings,
        progress: &dyn Progress,
        name: &str,
    ) -> Result<BuiltImage, Error> {
        let group = platform.to_string();
        let context_session = self.context_session(context, settings).await;
        let session = uuid::Uuid::new_v4().to_string();
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
            .t(name)
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
                        progress.group_line(&group, line);
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
                                progress
                                    .group_line(&group, &format!("#{} {}", step.number, step.name));
                            }
                            if !vertex.error.is_empty() {
                                // Steps running beside the failing one end as "canceled":
                                // the first real error names the step to blame.
                                if failed_step.is_none() && !vertex.error.contains("canceled") {
                                    failed_step = Some(step.name.clone());
                                }
                                progress.group_line(
                                    &group,
                                    &format!("#{} ERROR: {}", step.number, vertex.error),
                                );
                            } else if vertex.completed.is_some() && !step.completed {
                                step.completed = true;
                                let state = if vertex.cached { "CACHED" } else { "DONE" };
                                progress.group_line(&group, &format!("#{} {state}", step.number));
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
                                progress.group_line(&group, &format!("#{} {line}", step.number));
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
            // The session broke while the Engine read the context, and the Engine, still
            // answering, failed the build for it: the transfer failed, not the Dockerfile. (An
            // Engine that is gone closes the session too: that is `Lost`, below.)
            let broken = context_session.as_ref().and_then(|s| s.broken());
            if let (Some(reason), false) = (broken, super::is_transport(&error)) {
                return Err(Error::ContextLost {
                    address: self.address.clone(),
                    platform: platform.clone(),
                    context: context.root.clone(),
                    reason,
                    reported: crate::error_chain(&error),
                });
            }
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
        // By the build's name: that another run's removal deleted the image after this build
        // named it shows here, as "no such image" (see `image_vanished`).
        let inspect = self.docker.inspect_image(name).await.map_err(|source| {
            self.call_failed(
                Some(platform),
                format!("inspecting the image built for `{platform}`"),
                source,
            )
        })?;
        Ok(BuiltImage {
            platform: platform.clone(),
            image_id,
            name: name.to_owned(),
            size: inspect.size.unwrap_or_default(),
            diff_ids: inspect
                .root_fs
                .and_then(|root_fs| root_fs.layers)
                .unwrap_or_default(),
            cache_records: settings.inline_cache,
        })
    }

    /// Removes the build's temporary name, and with it the image unless another name holds
    /// it (BuildKit's cache stays).
    pub async fn remove(&self, image: &BuiltImage) -> Result<(), Error> {
        let removed = self
            .docker
            .remove_image(
                &image.name,
                Some(RemoveImageOptionsBuilder::new().build()),
                None,
            )
            .await;
        match removed {
            // The classic store took the name off, then found that another run's removal had
            // already deleted the image (see `build`): nothing of this build is left.
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.starts_with("unrecognized image ID") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
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

/// Whether another run's removal deleted the image this build stored (see `Engine::build`):
/// Docker 20.10's image store, reading the image's config file to name it, finds it gone; or
/// the deletion, decided before this build named the image, came after, and the name the
/// build answered with holds no image.
fn image_vanished(error: &Error) -> bool {
    match error {
        Error::BuildFailed { message, .. } => {
            message.contains("failed to get digest")
                && message.contains("no such file or directory")
        }
        Error::Api {
            source:
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                },
            ..
        } => true,
        _ => false,
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

    fn build_failed(message: &str) -> Error {
        Error::BuildFailed {
            platform: "linux/arm64".parse().expect("platform"),
            step: None,
            dockerfile_line: None,
            message: message.to_owned(),
            last_lines: Vec::new(),
        }
    }

    #[test]
    fn a_build_whose_image_another_run_deleted_is_built_again() {
        // Docker 20.10.24's answer, seen with eight concurrent runs on the classic store.
        let digest = "sha256:762b0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c";
        assert!(image_vanished(&build_failed(&format!(
            "failed to get digest {digest}: open /var/lib/docker/image/overlay2/imagedb/content/sha256/762b0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c: no such file or directory"
        ))));
        assert!(!image_vanished(&build_failed(
            "process \"/bin/sh -c cat missing\" did not complete successfully: exit code: 1"
        )));
    }
}
