//! QEMU for the platforms an Engine's CPU cannot run: whether it already runs them (asked of
//! this machine's kernel when the Engine shares it, else of a probe container), and the
//! installer only when one is missing.

use std::time::Instant;

use futures_util::future::join_all;

use crate::engine::{self, Engine, Engines};
use crate::platform::Platform;
use crate::progress::Progress;

use super::{kernel, probe};

/// Registers QEMU for the platforms the Engine's CPU cannot run, like setup-qemu-action would,
/// unless the Engine already runs them. Whether it does is asked of the kernel: when the Engine
/// runs on this machine's kernel, by running a probe program of the platform here (emulators
/// are the kernel's, a few milliseconds); otherwise, or when that cannot tell, by a probe
/// container through the Engine (a few hundred bytes, loaded, never pulled). The installer
/// would pull its image and start a privileged container. A failure only warns (the runner may
/// already emulate them), unless the Engine itself is gone. Each Engine (`engines`) for its own
/// platforms. `binfmt_image` is the installer's image; `none` registers nothing. Returns the
/// time the checks took, `None` when no platform needed one.
pub async fn register_emulators(
    binfmt_image: &str,
    engines: &Engines,
    progress: &dyn Progress,
) -> anyhow::Result<Option<u128>> {
    let several = engines.each().count() > 1;
    let mut total_ms = None;
    for (engine, platforms) in engines.each() {
        if let Some(ms) =
            register_emulators_on(binfmt_image, engine, &platforms, several, progress).await?
        {
            total_ms = Some(total_ms.unwrap_or(0) + ms);
        }
    }
    Ok(total_ms)
}

/// Registers QEMU on one Engine for those of `platforms` its CPU cannot run.
async fn register_emulators_on(
    binfmt_image: &str,
    engine: &Engine,
    platforms: &[Platform],
    several: bool,
    progress: &dyn Progress,
) -> anyhow::Result<Option<u128>> {
    let foreign = engine.foreign_architectures(platforms);
    if foreign.is_empty() || binfmt_image == "none" {
        return Ok(None);
    }
    let phase = Instant::now();
    if several {
        progress.group_line("qemu", &format!("on {}", engine.describe()));
    }
    let foreign_platforms: Vec<&Platform> = platforms
        .iter()
        .filter(|p| foreign.contains(&p.architecture))
        .collect();
    let same_kernel = kernel::release().is_some_and(|r| engine.shares_kernel(&r));
    let temp_root = std::env::temp_dir();
    let checks = join_all(foreign_platforms.iter().map(|platform| {
        let temp_root = &temp_root;
        async move {
            if same_kernel {
                match kernel::runs(platform, temp_root).await {
                    kernel::Runs::Yes => return (Ok(Some(true)), "this machine's kernel"),
                    kernel::Runs::No => return (Ok(Some(false)), "this machine's kernel"),
                    kernel::Runs::Unknown => {}
                }
            }
            (probe_container(engine, platform).await, "a probe container")
        }
    }))
    .await;
    let mut missing: Vec<String> = Vec::new();
    let mut checked_by = Vec::new();
    for (platform, (probe, how)) in foreign_platforms.iter().zip(checks) {
        let runs = match probe {
            Ok(Some(runs)) => runs,
            Ok(None) => false,
            Err(error @ engine::Error::Lost { .. }) => {
                return Err(anyhow::Error::new(error).context("nothing was built or pushed"))
            }
            Err(error) => {
                progress.group_line(
                    "qemu",
                    &format!(
                        "could not tell whether the Engine runs `{platform}`: {}",
                        crate::error_chain(&error)
                    ),
                );
                false
            }
        };
        if !checked_by.contains(&how) {
            checked_by.push(how);
        }
        if !runs {
            progress.group_line(
                "qemu",
                &format!("the Engine does not run `{platform}` yet (checked by {how})"),
            );
            if !missing.contains(&platform.architecture) {
                missing.push(platform.architecture.clone());
            }
        }
    }
    if missing.is_empty() {
        progress.group_line(
            "qemu",
            &format!(
                "the Engine already runs {} (checked by {} in {} ms): no QEMU installer needed",
                foreign_platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                checked_by.join(" and "),
                phase.elapsed().as_millis()
            ),
        );
        progress.end_group();
        return Ok(Some(phase.elapsed().as_millis()));
    }
    if let Err(error) = engine
        .register_emulators(&missing, binfmt_image, progress)
        .await
    {
        // A daemon that died here cannot build either: that is the failure to report.
        if matches!(error, engine::Error::Lost { .. }) {
            return Err(anyhow::Error::new(error).context("nothing was built or pushed"));
        }
        progress.warning(&format!(
            "{:#} (builds for {} need QEMU registered on the runner)",
            anyhow::Error::new(error),
            missing.join(", ")
        ));
    }
    Ok(Some(phase.elapsed().as_millis()))
}

/// Whether `engine` runs programs of `platform`, asked of a probe container of that platform;
/// `None` when there is no probe program for its architecture.
pub async fn probe_container(
    engine: &Engine,
    platform: &Platform,
) -> Result<Option<bool>, engine::Error> {
    let Some(archive) = probe::image_archive(platform) else {
        return Ok(None);
    };
    let archive = archive.map_err(|e| {
        engine::Error::UnexpectedAnswer(format!("writing the `{platform}` probe image: {e}"))
    })?;
    let probe = engine::ProbeImage {
        classic_id: probe::classic_image_id(&archive),
        archive,
    };
    engine.runs_platform(platform, &probe).await.map(Some)
}
