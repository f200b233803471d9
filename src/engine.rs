//! The Docker Engine: BuildKit builds per platform, and the built images' export. The only
//! user of bollard; it never talks to a registry. The daemon is reached through `DOCKER_HOST` or the default socket; on a runner it
//! is the host's, so the context is streamed from here (a host path means nothing to it).

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use bollard::models::{BuildInfoAux, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::TryStreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::context::BuildContext;
use crate::github::Console;
use crate::inputs::Request;
use crate::platform::Platform;

/// How many log lines of a failing step an error shows.
const FAILED_STEP_LINES: usize = 20;

/// A failure of the Docker Engine or of a build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon did not answer.
    #[error("cannot reach the Docker Engine at `DOCKER_HOST` or /var/run/docker.sock (is dockerd running, or the socket mounted?)")]
    Connect {
        /// The cause.
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
    #[error("{action}")]
    Api {
        /// What we were doing.
        action: String,
        /// The cause.
        source: bollard::errors::Error,
    },
    /// The Engine answered something we cannot use.
    #[error("{0}")]
    UnexpectedAnswer(String),
}

/// An image built for one platform, in the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The platform it was built for.
    pub platform: Platform,
    /// The image id (`sha256:` of its config).
    pub image_id: String,
    /// Uncompressed size in the daemon, bytes.
    pub size: i64,
    /// Its layers' `diff_id`s, in order.
    pub diff_ids: Vec<String>,
}

/// What a build sends besides the context.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    build_args: HashMap<String, String>,
    labels: HashMap<String, String>,
    network: Option<&'static str>,
    target: Option<String>,
    no_cache: bool,
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
        }
    }
}

/// A connected Docker Engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    /// The daemon's own platform, where `FROM --platform=$BUILDPLATFORM` stages run.
    build_platform: Platform,
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
    /// Connects and negotiates the API version (dockerd 20.10 speaks 1.41).
    pub async fn connect() -> Result<Engine, Error> {
        let docker = Docker::connect_with_defaults()
            .map_err(|source| Error::Connect { source })?
            .negotiate_version()
            .await
            .map_err(|source| Error::Connect { source })?;
        let version = docker
            .version()
            .await
            .map_err(|source| Error::Connect { source })?;
        let build_platform = Platform {
            os: version.os.unwrap_or_else(|| "linux".to_owned()),
            architecture: version.arch.unwrap_or_else(|| "amd64".to_owned()),
            variant: None,
        };
        Ok(Engine {
            docker,
            build_platform,
        })
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
        let api = |action: String| move |source| Error::Api { action, source };
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
        let group = platform.to_string();
        let session = uuid::Uuid::new_v4().to_string();
        let build_args = platform_build_args(platform, &self.build_platform, &settings.build_args);
        let mut options = BuildImageOptionsBuilder::new()
            .dockerfile(&context.dockerfile)
            .platform(&group)
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
        let body = bollard::body_try_stream(ReceiverStream::new(context.tar_stream()));
        let mut stream = self.docker.build_image(options.build(), None, Some(body));

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
                bollard::errors::Error::DockerStreamError { error } => error,
                other => other.to_string(),
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
            .map_err(|source| Error::Api {
                action: format!("inspecting the image built for `{platform}`"),
                source,
            })?;
        Ok(BuiltImage {
            platform: platform.clone(),
            image_id,
            size: inspect.size.unwrap_or_default(),
            diff_ids: inspect
                .root_fs
                .and_then(|root_fs| root_fs.layers)
                .unwrap_or_default(),
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
        Box::pin(self.docker.export_image(&image.image_id))
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
    let mut args = HashMap::from([
        ("BUILDPLATFORM".to_owned(), build_platform.to_string()),
        ("BUILDOS".to_owned(), build_platform.os.clone()),
        ("BUILDARCH".to_owned(), build_platform.architecture.clone()),
        ("TARGETPLATFORM".to_owned(), platform.to_string()),
        ("TARGETOS".to_owned(), platform.os.clone()),
        ("TARGETARCH".to_owned(), platform.architecture.clone()),
        (
            "TARGETVARIANT".to_owned(),
            platform.variant.clone().unwrap_or_default(),
        ),
    ]);
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
}
