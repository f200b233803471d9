//! [`Mode::PlatformOnly`](crate::inputs::Mode::PlatformOnly) (issue 10): builds its platforms
//! and pushes their images by digest, as a one-job run would, and moves no tag; it writes the
//! result file a merge run reads ([`crate::handoff`]) and reports the images, with no index.
//! The gate is the merge run's.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use super::children::{self, Ready};
use super::runner_files;
use super::session::Session;

use crate::github::Console;
use crate::handoff::{self, PlatformImage, PlatformResults, FORMAT_VERSION};
use crate::inputs::{names, Request};
use crate::plan::Plan;
use crate::registry::Index;
use crate::report::{Outcome, PlatformResult, RunKind};

/// The platform-only run: the results folder is checked before anything else.
pub async fn run(
    request: &Request,
    results_folder: &Path,
    console: &Console,
) -> anyhow::Result<Outcome> {
    runner_files::check_results_folder(results_folder)?;
    let started = Instant::now();
    let context = children::scan_context(request)?;
    let session = Session::open(request, console, started).await?;
    let plan = Plan::platform_only(request);
    let mut ready = Ready::new(session, plan, context).await?;
    let children = ready.build().await?;
    let pushed = children.push(&ready.registry, console).await?;
    if request.vulnerability_gate.is_some() {
        console.notice(&format!(
            "`{}`: a `platform-only` run moves no tag; the `merge` run judges the images",
            names::VULNERABILITY_GATE
        ));
    }
    let platforms = children.results(pushed, std::iter::repeat_with(|| None), &ready.engines);
    finish(
        ready.session,
        results_folder,
        ready.repository_uri,
        ready.repository.created,
        &children.index,
        platforms,
    )
}

/// Writes the result file for the pushed `platforms` (the `index` that was not pushed names
/// each image's digest, media type and size, in the same order) and makes the outcome.
fn finish(
    session: Session<'_>,
    results_folder: &Path,
    repository_uri: String,
    repository_created: bool,
    index: &Index,
    platforms: Vec<PlatformResult>,
) -> anyhow::Result<Outcome> {
    let request = session.request;
    let registry = session.registry_host.clone();
    let results = PlatformResults {
        version: FORMAT_VERSION,
        registry: registry.clone(),
        repository: request.repository.clone(),
        revision: request.git.git_ref.sha.clone(),
        images: platforms
            .iter()
            .zip(&index.children)
            .map(|(platform, child)| PlatformImage {
                platform: platform.platform.to_string(),
                digest: child.digest.clone(),
                media_type: child.media_type.clone(),
                size: child.size,
                image_uri: format!("{repository_uri}@{}", child.digest),
                engine: platform.engine.clone(),
                image_id: platform.image_id.clone(),
                // Set: a platform-only run always builds (no index to skip against).
                image_size: platform.image_size.unwrap_or_default(),
                build_ms: platform.build_ms,
                push_ms: platform.push_ms,
            })
            .collect(),
    };
    let result_file =
        handoff::write(results_folder, &results, &request.platforms).with_context(|| {
            format!(
                "writing the result file into `{}` (the images are pushed, under no tag)",
                results_folder.display()
            )
        })?;
    Ok(Outcome {
        kind: RunKind::PlatformOnly { result_file },
        skip: None,
        registry,
        repository_uri,
        repository_created,
        digest: String::new(),
        media_type: String::new(),
        tags: Vec::new(),
        platforms,
        console_url: None,
        timings: session.timings(),
        repository_notes: Vec::new(),
        gate: None,
    })
}
