//! The push half of a run: read what the repository holds, decide every tag before anything is
//! uploaded, push each platform image by digest, and put the tags last.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context as _;
use futures_util::future::try_join_all;
use tokio::sync::Semaphore;

use super::elapsed_ms;
use crate::github::Console;
use crate::image_export::PreparedImage;
use crate::inputs::{names, TagMutability};
use crate::oci::{Digest, ManifestDocument};
use crate::plan::{self, ImmutableTag, Plan, TagAction, TagUpdate};
use crate::registry::{Index, PushStats, Registry, RepositoryImages, RetryLog};
use crate::tag_rules::SourcedTag;

/// Blob uploads under way at once, across all platforms: enough to fill a runner's link, few
/// enough not to be throttled.
const CONCURRENT_UPLOADS: usize = 4;

/// What the repository holds before anything is uploaded.
pub struct RepositoryState {
    /// The images under the first tag: their layers are referenced, not uploaded again.
    pub existing: RepositoryImages,
    /// What every index tag and per-platform tag holds now.
    pub held: BTreeMap<String, Option<String>>,
}

/// Reads the images under the first tag and what every other tag holds.
pub async fn read_repository(
    registry: &Registry,
    plan: &Plan,
    log: RetryLog<'_>,
) -> anyhow::Result<RepositoryState> {
    let first_tag = plan.index_tags[0].tag.as_str();
    let existing = registry
        .images_under(first_tag, log)
        .await
        .with_context(|| {
            format!(
                "reading what `{}:{first_tag}` holds",
                registry.repository_uri()
            )
        })?;
    let mut held = BTreeMap::new();
    held.insert(
        first_tag.to_owned(),
        existing.digest.as_ref().map(Digest::to_string),
    );
    let other_tags: Vec<&str> = plan
        .index_tags
        .iter()
        .map(|t| t.tag.as_str())
        .chain(plan.platforms.iter().filter_map(|p| p.arch_tag.as_deref()))
        .filter(|tag| *tag != first_tag)
        .collect();
    let digests = try_join_all(
        other_tags
            .iter()
            .map(|tag| registry.manifest_digest(tag, log)),
    )
    .await
    .context("reading what the tags hold")?;
    held.extend(
        other_tags
            .iter()
            .map(|tag| (*tag).to_owned())
            .zip(digests.into_iter().map(|digest| digest.map(String::from))),
    );
    Ok(RepositoryState { existing, held })
}

/// What happens to every tag.
pub struct TagDecisions {
    /// The index tags.
    pub index: Vec<TagUpdate>,
    /// Each platform's `arch-tags` tag, in the plan's order.
    pub arch: Vec<Option<TagUpdate>>,
}

/// Decides every tag: one that already holds its digest stays; an immutable one that holds
/// another digest ends the run, before anything is uploaded.
pub fn decide_tags(
    plan: &Plan,
    held: &BTreeMap<String, Option<String>>,
    index: &Index,
    children: &[&ManifestDocument],
    mutability: &TagMutability,
) -> Result<TagDecisions, ImmutableTag> {
    let index_updates = plan::tag_updates(
        &plan.index_tags,
        held,
        index.document.digest.as_str(),
        mutability,
        &plan.repository,
    )?;
    let mut arch = Vec::new();
    for (platform_plan, child) in plan.platforms.iter().zip(children) {
        let update = match &platform_plan.arch_tag {
            Some(tag) => plan::tag_updates(
                &[SourcedTag {
                    tag: tag.clone(),
                    source: names::ARCH_TAGS,
                }],
                held,
                child.digest.as_str(),
                mutability,
                &plan.repository,
            )?
            .pop(),
            None => None,
        };
        arch.push(update);
    }
    Ok(TagDecisions {
        index: index_updates,
        arch,
    })
}

/// Pushes every platform image by digest, concurrently, blobs a few at a time across the run;
/// each with its push time (`prepare_ms` added, the time its export and compression took).
pub async fn push_images(
    registry: &Registry,
    prepared: &[(PreparedImage, u128)],
    console: &Console,
) -> anyhow::Result<Vec<(PushStats, u128)>> {
    let uploads = Semaphore::new(CONCURRENT_UPLOADS);
    let pushed = try_join_all(prepared.iter().map(|(image, prepare_ms)| {
        let uploads = &uploads;
        async move {
            let start = Instant::now();
            let group = image.platform.to_string();
            let log = RetryLog::new(console, &group);
            let stats = registry
                .push_image(image, uploads, log)
                .await
                .with_context(|| {
                    format!(
                        "pushing the `{group}` image to `{}`: no tag moved",
                        registry.repository_uri()
                    )
                })?;
            log.line(&if stats.manifest_uploaded {
                format!(
                    "pushed {} by digest: {} layers uploaded, {} already in the repository, {} sent",
                    image.manifest.digest,
                    stats.layers_uploaded,
                    stats.layers_reused,
                    crate::byte_size::human_size(stats.bytes_uploaded),
                )
            } else {
                format!(
                    "{} is already in the repository: nothing pushed",
                    image.manifest.digest
                )
            });
            anyhow::Ok((stats, prepare_ms + elapsed_ms(start)))
        }
    }))
    .await?;
    console.end_group();
    Ok(pushed)
}

/// Puts the tags, once every image is in: the index under each tag that does not hold it yet,
/// then the per-platform tags on their images.
pub async fn put_tags(
    registry: &Registry,
    decisions: &TagDecisions,
    index: &Index,
    children: &[&ManifestDocument],
    console: &Console,
) -> anyhow::Result<()> {
    let log = RetryLog::new(console, "registry");
    let repository_uri = registry.repository_uri();
    for update in &decisions.index {
        if update.action == TagAction::Push {
            registry
                .put_manifest(&update.tag, &index.document, log)
                .await
                .with_context(|| format!("pushing the index under `{}`", update.tag))?;
        }
        console.info(&format!(
            "{repository_uri}:{} {}",
            update.tag,
            match update.action {
                TagAction::Push => "pushed",
                TagAction::Unchanged => "unchanged (it already holds this index)",
            }
        ));
    }
    for (update, child) in decisions.arch.iter().zip(children) {
        if let Some(update) = update.as_ref().filter(|u| u.action == TagAction::Push) {
            registry
                .put_manifest(&update.tag, child, log)
                .await
                .with_context(|| format!("pushing the per-platform tag `{}`", update.tag))?;
        }
    }
    Ok(())
}
