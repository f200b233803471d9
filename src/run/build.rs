//! The build half of a run: QEMU for foreign platforms, every platform built concurrently (each
//! on its own Engine when `engines` names one), and each built image prepared for the registry
//! (the repository's own copy when it already holds it, else the Engine's export with its
//! layers compressed).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use futures_util::future::{join_all, try_join_all};

use super::elapsed_ms;
use crate::context::BuildContext;
use crate::engine::{self, BuildSettings, BuiltImage, Engine, Engines};
use crate::github::Console;
use crate::image_export::{self, BlobSource, PreparedImage};
use crate::inputs::Request;
use crate::plan::Plan;
use crate::platform::{Platform, PlatformMismatch};
use crate::registry::RepositoryImages;

/// Registers QEMU for the platforms the Engine's CPU cannot run, like setup-qemu-action would,
/// unless the Engine already runs them. Whether it does is asked of the kernel: when the Engine
/// runs on this machine's kernel, by running a probe program of the platform here (emulators
/// are the kernel's, a few milliseconds); otherwise, or when that cannot tell, by a probe
/// container through the Engine (a few hundred bytes, loaded, never pulled). The installer
/// would pull its image and start a privileged container. A failure only warns (the runner may
/// already emulate them), unless the Engine itself is gone. Each Engine (`engines`) for its own
/// platforms.
pub async fn register_emulators(
    request: &Request,
    engines: &Engines,
    console: &Console,
    phase_ms: &mut BTreeMap<&'static str, u128>,
) -> anyhow::Result<()> {
    let several = engines.each().count() > 1;
    for (engine, platforms) in engines.each() {
        register_emulators_on(request, engine, &platforms, several, console, phase_ms).await?;
    }
    Ok(())
}

/// Registers QEMU on one Engine for those of `platforms` its CPU cannot run.
async fn register_emulators_on(
    request: &Request,
    engine: &Engine,
    platforms: &[Platform],
    several: bool,
    console: &Console,
    phase_ms: &mut BTreeMap<&'static str, u128>,
) -> anyhow::Result<()> {
    let foreign = engine.foreign_architectures(platforms);
    if foreign.is_empty() || request.binfmt_image == "none" {
        return Ok(());
    }
    let phase = Instant::now();
    if several {
        console.group_line("qemu", &format!("on {}", engine.describe()));
    }
    let foreign_platforms: Vec<&Platform> = platforms
        .iter()
        .filter(|p| foreign.contains(&p.architecture))
        .collect();
    let same_kernel = crate::kernel::release().is_some_and(|r| engine.shares_kernel(&r));
    let temp_root = std::env::temp_dir();
    let checks = join_all(foreign_platforms.iter().map(|platform| {
        let temp_root = &temp_root;
        async move {
            if same_kernel {
                match crate::kernel::runs(platform, temp_root).await {
                    crate::kernel::Runs::Yes => return (Ok(Some(true)), "this machine's kernel"),
                    crate::kernel::Runs::No => return (Ok(Some(false)), "this machine's kernel"),
                    crate::kernel::Runs::Unknown => {}
                }
            }
            (engine.runs_platform(platform).await, "a probe container")
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
                console.group_line(
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
            console.group_line(
                "qemu",
                &format!("the Engine does not run `{platform}` yet (checked by {how})"),
            );
            if !missing.contains(&platform.architecture) {
                missing.push(platform.architecture.clone());
            }
        }
    }
    if missing.is_empty() {
        console.group_line(
            "qemu",
            &format!(
                "the Engine already runs {} (checked by {} in {} ms): no QEMU installer needed",
                foreign_platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                checked_by.join(" and "),
                elapsed_ms(phase)
            ),
        );
        console.end_group();
        *phase_ms.entry("emulation").or_default() += elapsed_ms(phase);
        return Ok(());
    }
    if let Err(error) = engine
        .register_emulators(&missing, &request.binfmt_image, console)
        .await
    {
        // A daemon that died here cannot build either: that is the failure to report.
        if matches!(error, engine::Error::Lost { .. }) {
            return Err(anyhow::Error::new(error).context("nothing was built or pushed"));
        }
        console.warning(&format!(
            "{:#} (builds for {} need QEMU registered on the runner)",
            anyhow::Error::new(error),
            missing.join(", ")
        ));
    }
    *phase_ms.entry("emulation").or_default() += elapsed_ms(phase);
    Ok(())
}

/// The images each platform's build imports cache from: the same platform's image under the
/// first tag (by digest: an index would make BuildKit read every platform's cache), when
/// `repository-cache` is on, then `cache-from`. Each source is logged in its platform's group.
pub fn cache_sources(
    request: &Request,
    plan: &Plan,
    existing: &RepositoryImages,
    repository_uri: &str,
    console: &Console,
) -> HashMap<Platform, Vec<String>> {
    if request.no_cache {
        return HashMap::new();
    }
    let first_tag = &plan.index_tags[0].tag;
    plan.platforms
        .iter()
        .map(|p| {
            let mut sources = Vec::new();
            let own = existing.images.iter().find(|image| {
                let found = &image.platform;
                p.platform
                    .is_satisfied_by(&found.os, &found.architecture, found.variant.as_deref())
            });
            if let (true, Some(image)) = (request.repository_cache, own) {
                let reference = format!("{repository_uri}@{}", image.manifest.digest);
                console.group_line(
                    &p.platform.to_string(),
                    &format!("build cache from {reference} (the image under `{first_tag}`)"),
                );
                sources.push(reference);
            }
            for reference in &request.cache_from {
                console.group_line(
                    &p.platform.to_string(),
                    &format!("build cache from {reference}"),
                );
                sources.push(reference.clone());
            }
            (p.platform.clone(), sources)
        })
        .collect()
}

/// Builds every platform concurrently, each with its build time; fails, with the first
/// platform's error, unless all of them built, so that a failing platform moves no tag at all.
pub async fn build_all(
    request: &Request,
    settings: &BuildSettings,
    plan: &Plan,
    engines: &Engines,
    context: &BuildContext,
    console: &Console,
) -> anyhow::Result<Vec<(BuiltImage, u128)>> {
    let builds = join_all(plan.platforms.iter().map(|p| async {
        let start = Instant::now();
        let built = engines
            .for_platform(&p.platform)
            .build(&p.platform, context, &request.dockerfile, settings, console)
            .await;
        (built, elapsed_ms(start))
    }))
    .await;
    console.end_group();
    for line in engines
        .each()
        .filter_map(|(engine, _)| engine.context_report())
    {
        console.info(&line);
    }
    let mut built = Vec::new();
    let mut failures = Vec::new();
    for (result, ms) in builds {
        match result {
            Ok(image) => built.push((image, ms)),
            Err(error) => failures.push(error),
        }
    }
    if let Some(first) = failures.into_iter().next() {
        // Every platform's failure is already in its group's log; the first one is reported.
        return Err(anyhow::Error::new(first).context("nothing was pushed"));
    }
    Ok(built)
}

/// Every built image as the registry will hold it, with the time that took.
pub async fn prepare_all(
    engines: &Engines,
    built: &[(BuiltImage, u128)],
    existing: &RepositoryImages,
    console: &Console,
) -> anyhow::Result<Vec<(PreparedImage, u128)>> {
    let temp_root = std::env::temp_dir();
    let prepared = try_join_all(built.iter().map(|(image, _)| {
        let temp_root = &temp_root;
        async move {
            let start = Instant::now();
            let group = image.platform.to_string();
            let engine = engines.for_platform(&image.platform);
            let prepared = prepare_image(engine, image, existing, temp_root, console)
                .await
                .with_context(|| format!("preparing the `{group}` image for the registry"))?;
            anyhow::Ok((prepared, elapsed_ms(start)))
        }
    }))
    .await?;
    console.end_group();
    Ok(prepared)
}

/// One built image as the registry will hold it. When the repository already has an image
/// with this config (the image id is the config's digest on the classic store), that image is
/// reused whole and nothing is exported; otherwise the Engine's export is read, reusing the
/// layers the repository holds.
async fn prepare_image(
    engine: &Engine,
    image: &BuiltImage,
    existing: &RepositoryImages,
    temp_root: &Path,
    console: &Console,
) -> anyhow::Result<PreparedImage> {
    let group = image.platform.to_string();
    if let Some(held) = existing.with_config(&image.image_id) {
        let found = &held.platform;
        if !image
            .platform
            .is_satisfied_by(&found.os, &found.architecture, found.variant.as_deref())
        {
            return Err(PlatformMismatch {
                wanted: image.platform.clone(),
                found: found.to_string(),
                digest: held.manifest.digest.clone(),
            }
            .into());
        }
        console.group_line(
            &group,
            &format!(
                "the repository already holds this image as {}: nothing to export or upload",
                held.manifest.digest
            ),
        );
        return Ok(PreparedImage::in_repository(
            image.platform.clone(),
            held.manifest.clone(),
            held.config.clone(),
            held.layers.clone(),
        ));
    }
    console.group_line(&group, "reading the image from the Engine");
    let prepared = image_export::prepare(
        &image.platform,
        engine.export(image),
        &existing.known,
        &image.diff_ids,
        temp_root,
    )
    .await?;
    // The repository may hold this very image with other inline cache records (BuildKit
    // varies them between builds): keep that one, so that the same inputs keep one digest.
    if let BlobSource::Memory(config) = &prepared.config.source {
        let equivalent = existing.images.iter().find(|held| {
            let found = &held.platform;
            image
                .platform
                .is_satisfied_by(&found.os, &found.architecture, found.variant.as_deref())
                && image_export::same_image_but_cache_records(&held.config_bytes, config)
        });
        if let Some(held) = equivalent {
            console.group_line(
                &group,
                &format!(
                    "the repository already holds this image as {} (only BuildKit's cache records differ): nothing to upload",
                    held.manifest.digest
                ),
            );
            return Ok(PreparedImage::in_repository(
                image.platform.clone(),
                held.manifest.clone(),
                held.config.clone(),
                held.layers.clone(),
            ));
        }
    }
    let reused = prepared
        .layers
        .iter()
        .filter(|l| l.source == BlobSource::Repository)
        .count();
    console.group_line(
        &group,
        &format!(
            "manifest {}: {} layers, {reused} of them already in the repository",
            prepared.manifest.digest,
            prepared.layers.len()
        ),
    );
    Ok(prepared)
}
