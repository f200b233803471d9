//! The containers an Engine runs for this action, both for emulation: the QEMU installer
//! (binfmt) and the platform probes. One lifecycle for both ([`Engine::run_container`]):
//! create, start, wait, read the logs, and remove whatever happened. Whether emulation is
//! needed, and the probe images themselves, come from `crate::emulation`, which calls these.

use bollard::models::{ContainerCreateBody, ContainerWaitResponse, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    ImportImageOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::TryStreamExt;

use super::{is_transport, Engine, Error};
use crate::platform::Platform;
use crate::progress::Progress;

/// A probe image for [`Engine::runs_platform`]: what to load, and what it is called.
#[derive(Debug, Clone)]
pub struct ProbeImage {
    /// A `docker save` archive of one untagged image.
    pub archive: Vec<u8>,
    /// The id a classic-store Engine gives it (the digest of its config), for when the load's
    /// answer does not name it.
    pub classic_id: Option<String>,
}

/// How a container's run ended, as the Engine answered.
enum Ran {
    /// Starting it failed (an `exec format error`, or the Engine's error).
    NotStarted(bollard::errors::Error),
    /// It ran to its end: the wait's answer (an exit status other than 0 is bollard's
    /// `DockerContainerWaitError`).
    Waited(Result<Vec<ContainerWaitResponse>, bollard::errors::Error>),
}

impl Engine {
    /// Creates a container (`creating` says what, for the error), starts it, waits for its
    /// end, hands its output lines to `log` when given, and removes it whatever happened: a
    /// leftover container is only clutter. Only creating it fails here; how the run ended is
    /// the caller's to judge.
    async fn run_container(
        &self,
        options: Option<CreateContainerOptions>,
        body: ContainerCreateBody,
        creating: String,
        log: Option<&dyn Fn(&str)>,
    ) -> Result<Ran, Error> {
        let container = self
            .docker
            .create_container(options, body)
            .await
            .map_err(|source| self.call_failed(None, creating, source))?
            .id;
        let ran = async {
            if let Err(error) = self.docker.start_container(&container, None).await {
                return Ran::NotStarted(error);
            }
            let waited = self
                .docker
                .wait_container(&container, None)
                .try_collect::<Vec<_>>()
                .await;
            if let Some(log) = log {
                let mut logs = self.docker.logs(
                    &container,
                    Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
                );
                while let Ok(Some(line)) = logs.try_next().await {
                    for text in line.to_string().lines().filter(|l| !l.trim().is_empty()) {
                        log(text);
                    }
                }
            }
            Ran::Waited(waited)
        }
        .await;
        let _ = self
            .docker
            .remove_container(
                &container,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await;
        Ok(ran)
    }

    /// Registers QEMU emulators for `architectures` in the host kernel by running the binfmt
    /// image with `CAP_SYS_ADMIN` (pulling it when missing), so that `RUN` steps of other platforms work
    /// on a runner with no setup step. Registering what is already registered changes nothing.
    pub async fn register_emulators(
        &self,
        architectures: &[String],
        image: &str,
        progress: &dyn Progress,
    ) -> Result<(), Error> {
        let group = "qemu";
        let api = |action: String| move |source| self.call_failed(None, action, source);
        if self.docker.inspect_image(image).await.is_err() {
            progress.group_line(group, &format!("pulling {image}"));
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
        progress.group_line(
            group,
            &format!("registering QEMU emulators for {list} ({image})"),
        );
        let ran = self
            .run_container(
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
                format!("creating the QEMU installer from `{image}`"),
                Some(&|text: &str| progress.group_line(group, text)),
            )
            .await?;
        let outcome = match ran {
            Ran::NotStarted(error) => Err(api("starting the QEMU installer".to_owned())(error)),
            Ran::Waited(waited) => waited
                .map(|_| ())
                .map_err(api(format!("registering QEMU emulators for {list}"))),
        };
        progress.end_group();
        outcome
    }

    /// Whether the Engine runs programs of `platform`: natively, or through an emulator the
    /// host's kernel has registered. Runs a container of `probe` (a few hundred bytes, loaded,
    /// not pulled), an image of that platform whose program only exits 0. An exec format
    /// error, or any other failure to start or exit cleanly, means no.
    pub async fn runs_platform(
        &self,
        platform: &Platform,
        probe: &ProbeImage,
    ) -> Result<bool, Error> {
        let api = |action: String| move |source| self.call_failed(None, action, source);
        let mut load = self.docker.import_image(
            ImportImageOptionsBuilder::new().quiet(true).build(),
            bollard::body_full(probe.archive.clone().into()),
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
        let image = loaded.or_else(|| probe.classic_id.clone()).ok_or_else(|| {
            Error::UnexpectedAnswer(format!(
                "the Engine loaded the `{platform}` probe image without naming it"
            ))
        })?;
        let ran = self
            .run_container(
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
                format!("creating the `{platform}` probe container"),
                None,
            )
            .await?;
        let runs = match ran {
            // `exec format error`: nothing runs this platform's programs.
            Ran::NotStarted(error) if !is_transport(&error) => false,
            Ran::NotStarted(error) => {
                return Err(self.call_failed(
                    None,
                    format!("starting the `{platform}` probe container"),
                    error,
                ))
            }
            Ran::Waited(Ok(answers)) => answers.iter().all(|a| a.status_code == 0),
            Ran::Waited(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => false,
            Ran::Waited(Err(error)) => {
                return Err(self.call_failed(
                    None,
                    format!("waiting for the `{platform}` probe container"),
                    error,
                ))
            }
        };
        Ok(runs)
    }
}
