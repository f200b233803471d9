//! The end of a `platform-only` run (issue 10): its platform images are in the repository by
//! digest and no tag moved; it writes the result file a merge run reads ([`crate::handoff`])
//! and reports the images, with no index.

use anyhow::Context as _;

use super::session::Session;

use crate::handoff::{self, PlatformImage, PlatformResults, FORMAT_VERSION};
use crate::registry::Index;
use crate::report::{Outcome, PlatformResult, RunKind};

/// Writes the result file for the pushed `platforms` (the `index` that was not pushed names
/// each image's digest, media type and size, in the same order) and makes the outcome.
pub fn finish(
    session: Session<'_>,
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
    let result_file = handoff::write(&request.results_folder, &results, &request.platforms)
        .with_context(|| {
            format!(
                "writing the result file into `{}` (the images are pushed, under no tag)",
                request.results_folder.display()
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
        phase_ms: session.timings(),
        repository_notes: Vec::new(),
        gate: None,
    })
}
