//! The build half of a run: every platform built concurrently (each
//! on its own Engine when `engines` names one), and each built image prepared for the registry
//! (the repository's own copy when it already holds it, else the Engine's export with its
//! layers compressed).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use futures_util::future::{join_all, try_join_all};

use super::elapsed_ms;
use crate::context::BuildContext;
use crate::engine::{BuildSettings, BuiltImage, Engine, Engines};
use crate::github::Console;
use crate::image_export::{self, BlobSource, PreparedImage};
use crate::inputs::Request;
use crate::plan::Plan;
use crate::platform::{Platform, PlatformMismatch};
use crate::registry::{ExistingImage, RepositoryImages};

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
        // The platforms that built leave no image behind either.
        release_all(request, engines, &built, console).await;
        // Every platform's failure is already in its group's log; the first one is reported.
        return Err(anyhow::Error::new(first).context("nothing was pushed"));
    }
    Ok(built)
}

/// Removes each build's temporary image from its Engine once it is exported (issue 14, §8),
/// unless `ECR_MULTIARCH_KEEP_IMAGES=1` asks to keep them: then each one's name is logged, for
/// `docker save`, `docker run` or `docker image rm`. A failed removal only warns: what was
/// asked is done, and the image is named in the warning.
pub async fn release_all(
    request: &Request,
    engines: &Engines,
    built: &[(BuiltImage, u128)],
    console: &Console,
) {
    if request.keep_images {
        for (image, _) in built {
            console.info(&format!(
                "kept the `{}` image in the Engine as `{}` (ECR_MULTIARCH_KEEP_IMAGES)",
                image.platform, image.name
            ));
        }
        return;
    }
    let removals = join_all(built.iter().map(|(image, _)| async move {
        let removed = engines.for_platform(&image.platform).remove(image).await;
        (image, removed)
    }))
    .await;
    for (image, removed) in removals {
        if let Err(error) = removed {
            console.warning(&format!(
                "{} (remove it with `docker image rm {}`)",
                crate::error_chain(&error),
                image.name
            ));
        }
    }
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

/// One built image as the registry will hold it. When the repository already has this image
/// (issue 17), that copy is reused whole and nothing is exported: its config is the image id
/// (the classic store), or the Engine's inspect shows the held config's platform, runtime
/// config, history and layers (any store; only BuildKit's cache records can differ, see
/// `engine::InspectedImage`). Otherwise the Engine's export is read, reusing the layers the
/// repository holds, and the held copy is still taken when only its cache records differ.
async fn prepare_image(
    engine: &Engine,
    image: &BuiltImage,
    existing: &RepositoryImages,
    temp_root: &Path,
    console: &Console,
) -> anyhow::Result<PreparedImage> {
    let group = image.platform.to_string();
    let (held, why) = if let Some(found) = held_without_export(engine, image, existing).await? {
        found
    } else {
        console.group_line(&group, "reading the image from the Engine");
        let prepared = image_export::prepare(
            &image.platform,
            engine.export(image),
            &existing.known,
            &image.diff_ids,
            temp_root,
        )
        .await?;
        // A held config with a field inspect does not show may still be this very image
        // with other inline cache records (BuildKit varies them between builds): keep that
        // one, so that the same inputs keep one digest.
        let equivalent = if let BlobSource::Memory(config) = &prepared.config.source {
            existing.images.iter().find(|held| {
                built_for(image, held)
                    && image_export::same_image_but_cache_records(&held.config_bytes, config)
            })
        } else {
            None
        };
        let Some(held) = equivalent else {
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
            return Ok(prepared);
        };
        (held, "only BuildKit's cache records differ in the export")
    };
    console.group_line(
        &group,
        &format!(
            "the repository already holds this image as {} ({why}): nothing to upload",
            held.manifest.digest
        ),
    );
    Ok(PreparedImage::in_repository(
        image.platform.clone(),
        held.manifest.clone(),
        held.config.clone(),
        held.layers.clone(),
    ))
}

/// Whether a held image is of the platform `image` was built for.
fn built_for(image: &BuiltImage, held: &ExistingImage) -> bool {
    let found = &held.platform;
    image
        .platform
        .is_satisfied_by(&found.os, &found.architecture, found.variant.as_deref())
}

/// The held image the built one is, found without reading its export, and how it was found.
/// Inspect is asked only when the repository holds an image of the platform.
async fn held_without_export<'a>(
    engine: &Engine,
    image: &BuiltImage,
    existing: &'a RepositoryImages,
) -> anyhow::Result<Option<(&'a ExistingImage, &'static str)>> {
    if let Some(held) = existing.with_config(&image.image_id) {
        if !built_for(image, held) {
            return Err(PlatformMismatch {
                wanted: image.platform.clone(),
                found: held.platform.to_string(),
                digest: held.manifest.digest.to_string(),
            }
            .into());
        }
        return Ok(Some((
            held,
            "the same config, by the image id: not exported",
        )));
    }
    if !existing.images.iter().any(|held| built_for(image, held)) {
        return Ok(None);
    }
    let inspected = engine.inspect(image).await?;
    Ok(existing
        .images
        .iter()
        .find(|held| built_for(image, held) && inspected.matches_config(&held.config_bytes))
        .map(|held| {
            (
                held,
                "the Engine shows the same layers and config, only BuildKit's cache records can differ: not exported",
            )
        }))
}
